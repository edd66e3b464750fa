/* Internal: a plain HDF5 output file (no trajectory), written as OUT.partial.XXXXXX
 * under OUT.lock and renamed over OUT by the close (io/outfile.h). The convergence file
 * (experiment/report.h, experiment/record.c) is written with it.
 */
#ifndef CSDE_IO_H5OUT_H
#define CSDE_IO_H5OUT_H

#include <stddef.h>
#include <stdint.h>

#include "corrsde/status.h"
#include "io/h5meta.h"

typedef struct csde_h5out csde_h5out;

/* Create path (overwrite = 0: fail if it exists), under path.lock. */
int csde_h5out_create(csde_h5out **out, const char *path, int overwrite, csde_err *err);
/* The same with csde_outfile_open's flags (without CSDE_OUT_LOCK: the caller holds it). */
int csde_h5out_create_flags(csde_h5out **out, const char *path, int flags, csde_err *err);
/* Groups are made as needed by the writers below (every parent of a dataset). */
int csde_h5out_group(csde_h5out *w, const char *name, csde_err *err);
/* Attributes on an existing object; n == 1 a scalar unless list. */
int csde_h5out_attr_str(csde_h5out *w, const char *obj, const char *name, const char *v,
                        csde_err *err);
int csde_h5out_attr_f64(csde_h5out *w, const char *obj, const char *name, const double *v,
                        size_t n, int list, csde_err *err);
int csde_h5out_attr_i64(csde_h5out *w, const char *obj, const char *name, const int64_t *v,
                        size_t n, int list, csde_err *err);
int csde_h5out_attr_u64(csde_h5out *w, const char *obj, const char *name, const uint64_t *v,
                        csde_err *err);
int csde_h5out_write_f64(csde_h5out *w, const char *name, const double *v, int rank,
                         const size_t *dims, csde_err *err);
int csde_h5out_write_i64(csde_h5out *w, const char *name, const int64_t *v, size_t n,
                         csde_err *err);
int csde_h5out_write_strings(csde_h5out *w, const char *name, const char *const *v,
                             size_t n, csde_err *err);
/* w as the writer of /parameters and /covariance (io/h5meta.h). */
csde_h5sink csde_h5out_sink(csde_h5out *w);
/* Close (reporting a failure to flush); frees w. */
int csde_h5out_close(csde_h5out *w, csde_err *err);
/* Close without reporting and delete the file (error paths). Accepts NULL. */
void csde_h5out_discard(csde_h5out *w);

#endif
