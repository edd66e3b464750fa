/* Internal: reading HDF5 files: a dataset's shape and values (--init), and a trajectory
 * file for `corrsde info` (src/io/h5traj_read.c). The layout is h5traj.h's. */
#ifndef CSDE_IO_H5TRAJ_READ_H
#define CSDE_IO_H5TRAJ_READ_H

#include <stddef.h>
#include <stdint.h>

#include "corrsde/status.h"

#define CSDE_H5_MAXRANK 8

/* ---- reading arrays (for --init) ---- */

/* The rank and shape of dataset dset of file path. */
int csde_h5_shape(const char *path, const char *dset, int *rank,
                  size_t dims[CSDE_H5_MAXRANK], csde_err *err);
/* Read dataset dset as doubles into a new array (free()). last_of_first_axis = 1 reads
 * only the last entry along axis 0 (e.g. the final state of /trajectory/x). */
int csde_h5_read_doubles(const char *path, const char *dset, int last_of_first_axis,
                         double **out, csde_err *err);

/* ---- reading a trajectory file (corrsde info) ---- */

typedef struct {
  char *name;
  char *text; /* the value formatted for people: "0.9", "ar1:rho=0.9", "[32, 32]" */
} csde_h5attr;

typedef struct {
  int present;
  int rank;
  size_t dims[CSDE_H5_MAXRANK];
  char type[32];         /* "float32", "float64", "int64", "uint8", "string", ... */
  int chunked;
  size_t chunk[CSDE_H5_MAXRANK];
  char filters[64];      /* "gzip(4)+shuffle", "" for none */
} csde_h5dset_info;

typedef struct {
  csde_h5dset_info x, t, step, cov, eig;
  long long n_saved;            /* /trajectory n_saved: whole states; -1 if absent */
  double t_first, t_last;       /* valid when t has values */
  int64_t step_first, step_last;
  double eig_min, eig_max;      /* valid when eig has values */
  csde_h5attr *params, *stats, *cov_attrs;
  size_t nparams, nstats, ncov_attrs;
} csde_h5traj_info;

/* Read everything `corrsde info` shows. Fails (CSDE_EIO) if the file does not open or
 * has no /trajectory/x; every other part is optional. */
int csde_h5traj_info_read(const char *path, csde_h5traj_info *info, csde_err *err);
void csde_h5traj_info_free(csde_h5traj_info *info);
/* The saved entries of a dataset of length len along the saved axis: n_saved of them
 * where the file counts them, else len. */
size_t csde_h5traj_info_saved(const csde_h5traj_info *info, size_t len);
/* The text of attribute name in list a (n entries), or NULL. */
const char *csde_h5attr_get(const csde_h5attr *a, size_t n, const char *name);

#endif
