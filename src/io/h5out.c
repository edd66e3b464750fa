/* A plain HDF5 output file (no trajectory): io/h5out.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <hdf5.h>

#include "io/h5out.h"
#include "io/h5util.h"
#include "io/outfile.h"

/* Written as OUT.partial.XXXXXX under OUT.lock, and renamed to OUT by the close
 * (io/outfile.h): nothing but a regular OUT is ever replaced, and only whole. */
struct csde_h5out {
  char *path;
  csde_outfile out;
  hid_t file;
};

int csde_h5out_create(csde_h5out **out, const char *path, int overwrite, csde_err *err)
{
  return csde_h5out_create_flags(out, path,
                                 CSDE_OUT_LOCK | (overwrite ? CSDE_OUT_OVERWRITE : 0), err);
}

int csde_h5out_create_flags(csde_h5out **out, const char *path, int flags, csde_err *err)
{
  *out = NULL;
  csde_h5out *w = calloc(1, sizeof *w);
  if (!w || !(w->path = strdup(path))) {
    free(w);
    return csde_err_set(err, CSDE_ENOMEM, "out of memory");
  }
  int s = csde_outfile_open(&w->out, path, flags & ~CSDE_OUT_NO_TMP, err);
  errno = 0;
  w->file = s ? -1 : H5Fcreate(csde_outfile_name(&w->out), H5F_ACC_TRUNC, H5P_DEFAULT,
                               H5P_DEFAULT);
  if (!s && w->file < 0)
    s = csde_err_set(err, CSDE_EIO, "cannot create '%s'%s%s", csde_outfile_tmp_path(&w->out),
                     errno ? ": " : "", errno ? strerror(errno) : "");
  if (s) {
    csde_outfile_release(&w->out);
    free(w->path);
    free(w);
    return s;
  }
  *out = w;
  return CSDE_SUCCESS;
}

static int fail(csde_h5out *w, const char *what, const char *name, csde_err *err)
{
  return csde_err_set(err, CSDE_EIO, "'%s': cannot write %s %s", w->path, what, name);
}

/* Make every missing group along name ("/a/b/c" makes /a and /a/b; with self also /a/b/c). */
static int make_groups(csde_h5out *w, const char *name, int self, csde_err *err)
{
  char buf[512];
  size_t n = strlen(name);
  if (n >= sizeof buf) return fail(w, "group", name, err);
  memcpy(buf, name, n + 1);
  for (size_t i = 1; i <= n; i++) {
    if (buf[i] != '/' && buf[i] != '\0') continue;
    if (buf[i] == '\0' && !self) break;
    char c = buf[i];
    buf[i] = '\0';
    htri_t ex = H5Lexists(w->file, buf, H5P_DEFAULT);
    if (ex == 0) {
      hid_t g = H5Gcreate2(w->file, buf, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
      if (g < 0) return fail(w, "group", buf, err);
      H5Gclose(g);
    } else if (ex < 0) {
      return fail(w, "group", buf, err);
    }
    buf[i] = c;
  }
  return CSDE_SUCCESS;
}

int csde_h5out_group(csde_h5out *w, const char *name, csde_err *err)
{
  return make_groups(w, name, 1, err);
}

static int put_attr(csde_h5out *w, const char *obj, const char *name, hid_t ftype,
                    hid_t mtype, const void *buf, size_t n, int list, csde_err *err)
{
  return csde_h5_put_attr(w->file, w->path, obj, name, ftype, mtype, buf, n, list, err);
}


int csde_h5out_attr_str(csde_h5out *w, const char *obj, const char *name, const char *v,
                        csde_err *err)
{
  hid_t st = csde_h5_str_type();
  if (st < 0) return fail(w, "attribute", name, err);
  const char *val = v ? v : "";
  int s = put_attr(w, obj, name, st, st, &val, 1, 0, err);
  H5Tclose(st);
  return s;
}

int csde_h5out_attr_f64(csde_h5out *w, const char *obj, const char *name, const double *v,
                        size_t n, int list, csde_err *err)
{
  return put_attr(w, obj, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, v, n, list, err);
}

int csde_h5out_attr_i64(csde_h5out *w, const char *obj, const char *name, const int64_t *v,
                        size_t n, int list, csde_err *err)
{
  return put_attr(w, obj, name, H5T_STD_I64LE, H5T_NATIVE_INT64, v, n, list, err);
}

int csde_h5out_attr_u64(csde_h5out *w, const char *obj, const char *name, const uint64_t *v,
                        csde_err *err)
{
  return put_attr(w, obj, name, H5T_STD_U64LE, H5T_NATIVE_UINT64, v, 1, 0, err);
}

static int write_dset(csde_h5out *w, const char *name, hid_t ftype, hid_t mtype, const void *v,
                      int rank, const size_t *dims, csde_err *err)
{
  hsize_t hd[8];
  if (rank < 1 || rank > 8) return fail(w, "dataset", name, err);
  int s = make_groups(w, name, 0, err);
  if (s) return s;
  size_t total = 1;
  for (int i = 0; i < rank; i++) {
    hd[i] = dims[i];
    total *= dims[i];
  }
  hid_t sp = H5Screate_simple(rank, hd, NULL), d = -1;
  if (sp >= 0) d = H5Dcreate2(w->file, name, ftype, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  if (d < 0 || (total > 0 && H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) < 0))
    s = fail(w, "dataset", name, err);
  if (d >= 0) H5Dclose(d);
  if (sp >= 0) H5Sclose(sp);
  return s;
}

int csde_h5out_write_f64(csde_h5out *w, const char *name, const double *v, int rank,
                         const size_t *dims, csde_err *err)
{
  return write_dset(w, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, v, rank, dims, err);
}

int csde_h5out_write_i64(csde_h5out *w, const char *name, const int64_t *v, size_t n,
                         csde_err *err)
{
  return write_dset(w, name, H5T_STD_I64LE, H5T_NATIVE_INT64, v, 1, &n, err);
}

int csde_h5out_write_strings(csde_h5out *w, const char *name, const char *const *v, size_t n,
                             csde_err *err)
{
  hid_t st = csde_h5_str_type();
  if (st < 0) return fail(w, "dataset", name, err);
  int s = write_dset(w, name, st, st, v, 1, &n, err);
  H5Tclose(st);
  return s;
}

/* ---- as a sink of /parameters and /covariance (io/h5meta.h) ---- */

static int sink_str(void *w, const char *obj, const char *name, const char *v, csde_err *err)
{
  return csde_h5out_attr_str(w, obj, name, v, err);
}
static int sink_f64(void *w, const char *obj, const char *name, const double *v, size_t n,
                    int list, csde_err *err)
{
  return csde_h5out_attr_f64(w, obj, name, v, n, list, err);
}
static int sink_i64(void *w, const char *obj, const char *name, const int64_t *v, size_t n,
                    int list, csde_err *err)
{
  return csde_h5out_attr_i64(w, obj, name, v, n, list, err);
}
static int sink_u64(void *w, const char *obj, const char *name, const uint64_t *v,
                    csde_err *err)
{
  return csde_h5out_attr_u64(w, obj, name, v, err);
}
static int sink_array(void *w, const char *name, const double *v, int rank,
                      const size_t *dims, csde_err *err)
{
  return csde_h5out_write_f64(w, name, v, rank, dims, err);
}
static int sink_group(void *w, const char *name, csde_err *err)
{
  return csde_h5out_group(w, name, err);
}

csde_h5sink csde_h5out_sink(csde_h5out *w)
{
  csde_h5sink k = {w, sink_str, sink_f64, sink_i64, sink_u64, sink_array, sink_group};
  return k;
}

int csde_h5out_close(csde_h5out *w, csde_err *err)
{
  if (!w) return CSDE_SUCCESS;
  int s = CSDE_SUCCESS;
  if (H5Fflush(w->file, H5F_SCOPE_GLOBAL) < 0 || H5Fclose(w->file) < 0)
    s = csde_err_set(err, CSDE_EIO, "'%s': cannot write the file", w->path);
  if (!s) s = csde_outfile_commit(&w->out, err);
  csde_outfile_release(&w->out); /* the temporary goes unless it was committed */
  free(w->path);
  free(w);
  return s;
}

void csde_h5out_discard(csde_h5out *w)
{
  if (!w) return;
  H5Fclose(w->file);
  csde_outfile_release(&w->out); /* removes the temporary; an old OUT stays as it was */
  free(w->path);
  free(w);
}
