/* Internal: the HDF5 readers of src/io/h5traj_read.c (arrays, and a trajectory file for
 * `corrsde info`); their declarations are public (corrsde/io.h, "reading HDF5 files"). */
#ifndef CSDE_IO_H5TRAJ_READ_H
#define CSDE_IO_H5TRAJ_READ_H

#include "corrsde/io.h"

#endif
