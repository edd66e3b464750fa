/* Internal: HDF5 pieces shared by the trajectory writer (h5traj.c) and the convergence
 * report (src/experiment/report.c). hid_t stays out of installed headers. */
#ifndef CSDE_IO_H5UTIL_H
#define CSDE_IO_H5UTIL_H

#include <stddef.h>

#include <hdf5.h>

#include "corrsde/status.h"

/* Write (or replace) attribute `name` of object `obj` in `file`: n values of memory type
 * mtype stored as ftype; a scalar when n == 1 and !list. `path` labels messages. */
int csde_h5_put_attr(hid_t file, const char *path, const char *obj, const char *name,
                     hid_t ftype, hid_t mtype, const void *buf, size_t n, int list,
                     csde_err *err);

/* A variable-length UTF-8 string type (close with H5Tclose); -1 on failure. */
hid_t csde_h5_str_type(void);

#endif
