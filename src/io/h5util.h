/* Internal: HDF5 pieces shared by the trajectory writer and reader (h5traj.c,
 * h5traj_read.c), the convergence report (src/experiment/report.c) and the files'
 * /parameters and /covariance (h5meta.h). hid_t stays out of installed headers. */
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

/* HDF5's automatic error printing off for a span of calls, and the caller's setting
 * (H5Eget_auto2 of H5E_DEFAULT) put back after: every library entry that calls HDF5
 * makes its calls between a begin and its end, so no call leaves it changed. (HDF5's
 * setting is per thread in a thread-safe HDF5 and global otherwise: the serial HDF5
 * is not called from two threads at once.) */
typedef struct {
  H5E_auto2_t fn;
  void *data;
} csde_h5_quiet;
void csde_h5_quiet_begin(csde_h5_quiet *q);
void csde_h5_quiet_end(const csde_h5_quiet *q);

#endif
