/* Internal: the output files of io/outfile.c; their declarations are public
 * (corrsde/io.h, "output files"). */
#ifndef CSDE_IO_OUTFILE_H
#define CSDE_IO_OUTFILE_H

#include "corrsde/io.h"

#endif
