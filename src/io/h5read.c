#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hdf5.h>

#include "core/spec.h"
#include "io/h5read.h"

void csde_shape_str(const size_t *dims, int rank, char *buf, size_t len)
{
  size_t o = (size_t)snprintf(buf, len, "[");
  for (int i = 0; i < rank && o < len; i++)
    o += (size_t)snprintf(buf + o, len - o, "%s%zu", i ? ", " : "", dims[i]);
  if (o < len) snprintf(buf + o, len - o, "]");
}

int csde_split_h5_path(const char *s, char *path, size_t plen, char *dset, size_t dlen)
{
  const char *c = strstr(s, ":/");
  if (!c) return 0;
  /* the last ":/" separates file from dataset */
  for (const char *d = c; (d = strstr(d + 1, ":/"));) c = d;
  size_t n = (size_t)(c - s);
  if (n == 0 || n >= plen || strlen(c + 1) >= dlen) return 0;
  memcpy(path, s, n);
  path[n] = '\0';
  strcpy(dset, c + 1);
  return 1;
}

int csde_h5_read(const char *path, const char *dset, double **out, int *rank,
                 size_t dims[4], csde_err *err)
{
  int status = CSDE_SUCCESS;
  hid_t f = -1, d = -1, sp = -1;
  double *buf = NULL;
  if (access(path, R_OK) != 0)
    return csde_err_set(err, CSDE_EIO, "cannot read '%s': %s", path, strerror(errno));
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* our messages, not HDF5's stack dumps */
  if (H5Fis_hdf5(path) <= 0)
    return csde_err_set(err, CSDE_EIO, "'%s' is not an HDF5 file", path);
  f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  if (f < 0) return csde_err_set(err, CSDE_EIO, "cannot open HDF5 file '%s'", path);
  if (H5Lexists(f, dset, H5P_DEFAULT) <= 0 || (d = H5Dopen2(f, dset, H5P_DEFAULT)) < 0) {
    status = csde_err_set(err, CSDE_EIO, "no dataset '%s' in '%s'", dset, path);
    goto done;
  }
  sp = H5Dget_space(d);
  int r = H5Sget_simple_extent_ndims(sp);
  if (r < 0 || r > 4) {
    status = csde_err_set(err, CSDE_EBADLEN, "dataset '%s' in '%s' has rank %d (at most 4)",
                          dset, path, r);
    goto done;
  }
  hsize_t h[4] = {0, 0, 0, 0};
  H5Sget_simple_extent_dims(sp, h, NULL);
  size_t total = 1;
  for (int i = 0; i < r; i++) {
    dims[i] = (size_t)h[i];
    total *= dims[i];
  }
  *rank = r;
  buf = malloc((total ? total : 1) * sizeof *buf);
  if (!buf) {
    status = csde_err_set(err, CSDE_ENOMEM, "out of memory reading '%s:%s'", path, dset);
    goto done;
  }
  if (total && H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
    status = csde_err_set(err, CSDE_EIO,
                          "cannot read dataset '%s' in '%s' as numbers", dset, path);
    free(buf);
    buf = NULL;
    goto done;
  }
  *out = buf;
done:
  if (sp >= 0) H5Sclose(sp);
  if (d >= 0) H5Dclose(d);
  if (f >= 0) H5Fclose(f);
  return status;
}

int csde_text_read(const char *path, double **out, size_t *n, csde_err *err)
{
  FILE *fp = fopen(path, "r");
  if (!fp) return csde_err_set(err, CSDE_EIO, "cannot read '%s': %s", path, strerror(errno));
  size_t cap = 4096, len = 0;
  char *text = malloc(cap);
  int c, comment = 0;
  while (text && (c = fgetc(fp)) != EOF) {
    if (c == '#') comment = 1;
    if (c == '\n') comment = 0;
    if (comment) continue;
    if (len + 2 > cap) {
      char *t = realloc(text, cap *= 2);
      if (!t) {
        free(text);
        text = NULL;
        break;
      }
      text = t;
    }
    text[len++] = (char)c;
  }
  fclose(fp);
  if (!text) return csde_err_set(err, CSDE_ENOMEM, "out of memory reading '%s'", path);
  text[len] = '\0';
  csde_err e;
  int s = csde_parse_double_list(text, out, n, &e);
  free(text);
  if (s) return csde_err_set(err, s, "'%s': %s", path, e.msg);
  return CSDE_SUCCESS;
}
