/* The ways corrsde reads an HDF5 file, shared by the HDF5 harnesses (fuzz_h5, fuzz_h5_raw):
 * csde_h5_read (src/io/h5read.c: /x, /C), csde_h5_shape + csde_h5_read_doubles (--init:
 * /x, or the last state of /trajectory/x), csde_h5_read_array with a byte bound,
 * csde_h5_exists and csde_h5traj_info_read (corrsde info). */
#ifndef CSDE_FUZZ_H5_READERS_H
#define CSDE_FUZZ_H5_READERS_H

#include "io/h5read.h"
#include "io/h5traj.h"
#include "fuzz_common.h"

/* Values in dataset dset after its first axis (last = 1) or in all of it, 0 if there is
 * no such dataset or more than 2^22: a file may declare any size, and reading a dataset
 * of 10^12 fill values is the caller's request, not a parsing bug. */
static inline size_t small_size(const char *path, const char *dset, int last, int *rank)
{
  size_t dims[CSDE_H5_MAXRANK], n = 1;
  csde_err err;
  csde_err_clear(&err);
  int s = csde_h5_shape(path, dset, rank, dims, &err);
  if (s != CSDE_SUCCESS) {
    fuzz_check_err(s, &err);
    return 0;
  }
  if (*rank < 0 || *rank > CSDE_H5_MAXRANK) abort();
  if (last && (*rank == 0 || dims[0] == 0)) return 0;
  for (int i = 0; i < *rank; i++) {
    if (dims[i] == 0) return 1; /* empty */
    if (dims[i] > ((size_t)1 << 22) || n > ((size_t)1 << 22) / dims[i]) return 0;
    if (i >= last) n *= dims[i];
  }
  return n;
}

/* 1 while the file was written through HDF5's API (fuzz_h5): no reader may call it
 * corrupt. */
static int fuzz_h5_valid_;

static inline void fuzz_check_not_corrupt(const char *what, const csde_err *err)
{
  if (fuzz_h5_valid_ && strstr(err->msg, "corrupt")) {
    fprintf(stderr, "==fuzz: %s calls a valid file corrupt: %s\n", what, err->msg);
    abort();
  }
}

/* csde_h5_read_array with a bound of the caller's: any declared size, refused above it
 * (CSDE_ENOMEM) before anything is allocated. */
static inline void read_bounded(const char *path, const char *dset, int last)
{
  csde_h5_read_params p = csde_h5_read_default_params();
  p.last_of_first_axis = last;
  p.max_bytes = (size_t)32 << 20;
  size_t dims[CSDE_H5_MAXRANK];
  int rank = -1;
  double *x = NULL;
  csde_err err;
  csde_err_clear(&err);
  int s = csde_h5_read_array(path, dset, &p, &x, &rank, dims, &err);
  if (s == CSDE_SUCCESS) {
    if (!x || rank < 0 || rank > CSDE_H5_MAXRANK || (last && rank < 1)) abort();
    free(x);
  } else {
    fuzz_check_err(s, &err);
    fuzz_check_not_corrupt("csde_h5_read_array", &err);
  }
}

static inline void read_dset(const char *path, const char *dset, int last)
{
  int rank = 0;
  read_bounded(path, dset, last);
  if (!small_size(path, dset, last, &rank)) return;
  csde_err err;
  csde_err_clear(&err);
  double *x = NULL;
  int s = csde_h5_read_doubles(path, dset, last, &x, &err);
  if (s == CSDE_SUCCESS)
    free(x);
  else
    fuzz_check_err(s, &err);
  if (last || rank > 4) return;
  x = NULL;
  size_t dims[4];
  int r2 = -1;
  s = csde_h5_read(path, dset, &x, &r2, dims, &err); /* toeplitz:file=, dense:file= */
  if (s == CSDE_SUCCESS) {
    if (!x || r2 != rank) abort();
    free(x);
  } else {
    fuzz_check_err(s, &err);
  }
}

/* Every reader on the file at path. */
static inline void fuzz_read_all(const char *path)
{
  (void)csde_h5_exists(path, "/trajectory/x");
  read_dset(path, "/x", 0);
  read_dset(path, "/C", 0);
  read_dset(path, "/trajectory/x", 1);
  read_dset(path, "/trajectory/x", 0);
  csde_h5traj_info info;
  csde_err err;
  memset(&info, 0, sizeof info);
  int s = csde_h5traj_info_read(path, &info, &err);
  if (s != CSDE_SUCCESS) {
    fuzz_check_err(s, &err);
    fuzz_check_not_corrupt("csde_h5traj_info_read", &err);
  } else { /* nor any note of info's */
    const csde_h5dset_info *d[] = {&info.x, &info.t, &info.step, &info.cov, &info.eig};
    for (int i = 0; i < 5; i++) {
      csde_err e;
      snprintf(e.msg, sizeof e.msg, "%s", d[i]->note);
      fuzz_check_not_corrupt("csde_h5traj_info_read (a note)", &e);
    }
  }
  csde_h5traj_info_free(&info);
}

#endif
