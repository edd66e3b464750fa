/* The readers of HDF5 files (h5traj_read.h): a dataset's shape and values (--init) and
 * everything `corrsde info` shows of a trajectory file. HDF5's own error stack printing
 * is turned off: every failure becomes one csde_err message naming the file and the
 * object. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <hdf5.h>

#include "core/util.h"
#include "io/h5traj_read.h"

static void quiet_hdf5(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

/* ---- reading arrays ---- */

/* A file HDF5 will not open because it is shorter than its superblock's end-of-file
 * address: a writer that could not finish (disk full, a file-size limit). Superblock
 * versions 0 and 1 with 8-byte addresses keep that address at byte 40. Returns the
 * stored end, or 0. */
static unsigned long long truncated_eof(const char *path, off_t size)
{
  unsigned char sb[48];
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return 0;
  ssize_t k = pread(fd, sb, sizeof sb, 0);
  close(fd);
  if (k != (ssize_t)sizeof sb || memcmp(sb, "\211HDF\r\n\032\n", 8) || sb[8] > 1 || sb[13] != 8)
    return 0;
  unsigned long long eof = 0;
  for (int i = 7; i >= 0; i--) eof = eof << 8 | sb[40 + i];
  return eof > (unsigned long long)size ? eof : 0;
}

static hid_t open_ro(const char *path, int lock, csde_err *err)
{
  quiet_hdf5();
  struct stat st;
  if (stat(path, &st) != 0 || access(path, R_OK) != 0) {
    csde_err_set(err, CSDE_EIO, "cannot read '%s': %s", path, strerror(errno));
    return -1;
  }
  if (!S_ISREG(st.st_mode)) { /* a FIFO or a device would block or never end */
    csde_err_set(err, CSDE_EIO, "'%s' is not a regular file (%s)", path,
                 S_ISDIR(st.st_mode) ? "a directory" : S_ISFIFO(st.st_mode) ? "a FIFO"
                 : S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) ? "a device" : "a special file");
    return -1;
  }
  if (H5Fis_hdf5(path) <= 0) {
    csde_err_set(err, CSDE_EIO, "'%s' is not an HDF5 file", path);
    return -1;
  }
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
#if H5_VERSION_GE(1, 10, 7)
  /* a reader of a file a run is still writing: show what has been flushed */
  if (!lock && fapl >= 0) H5Pset_file_locking(fapl, 0, 1);
#else
  (void)lock;
#endif
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, fapl >= 0 ? fapl : H5P_DEFAULT);
  if (fapl >= 0) H5Pclose(fapl);
  unsigned long long eof;
  if (f < 0 && (eof = truncated_eof(path, st.st_size)))
    csde_err_set(err, CSDE_EIO,
                 "'%s' is truncated: %lld bytes, its superblock says %llu. Its writer could "
                 "not finish it (disk full or a file-size limit); the states it recorded in "
                 "/trajectory n_saved are intact, and 'truncate -s %llu %s' makes it "
                 "readable", path, (long long)st.st_size, eof, eof, path);
  else if (f < 0)
    csde_err_set(err, CSDE_EIO,
                 "cannot open HDF5 file '%s' (is a run still writing it?)", path);
  return f;
}

static hid_t open_dset(hid_t f, const char *path, const char *dset, csde_err *err)
{
  hid_t d = -1;
  if (H5Lexists(f, dset, H5P_DEFAULT) <= 0 || H5Oexists_by_name(f, dset, H5P_DEFAULT) <= 0 ||
      (d = H5Dopen2(f, dset, H5P_DEFAULT)) < 0)
    csde_err_set(err, CSDE_EIO, "no dataset '%s' in '%s'", dset, path);
  return d;
}

int csde_h5_shape(const char *path, const char *dset, int *rank,
                  size_t dims[CSDE_H5_MAXRANK], csde_err *err)
{
  int s = CSDE_SUCCESS;
  hid_t f = open_ro(path, 1, err), d = -1, sp = -1;
  if (f < 0) return CSDE_EIO;
  if ((d = open_dset(f, path, dset, err)) < 0) {
    s = CSDE_EIO;
    goto done;
  }
  sp = H5Dget_space(d);
  int r = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
  if (r < 0 || r > CSDE_H5_MAXRANK) {
    s = csde_err_set(err, CSDE_EBADLEN, "dataset '%s' in '%s' has rank %d (at most %d)", dset,
                     path, r, CSDE_H5_MAXRANK);
    goto done;
  }
  hsize_t h[CSDE_H5_MAXRANK];
  H5Sget_simple_extent_dims(sp, h, NULL);
  for (int i = 0; i < r; i++) dims[i] = (size_t)h[i];
  *rank = r;
done:
  if (sp >= 0) H5Sclose(sp);
  if (d >= 0) H5Dclose(d);
  H5Fclose(f);
  return s;
}

/* The attribute n_saved of the group holding dataset dset ("/trajectory" for
 * "/trajectory/x"), or -1. */
static long long saved_count(hid_t f, const char *dset)
{
  char grp[256];
  const char *slash = strrchr(dset, '/');
  size_t len = slash ? (size_t)(slash - dset) : 0;
  if (len >= sizeof grp) return -1;
  memcpy(grp, dset, len);
  strcpy(grp + len, len ? "" : "/");
  long long v = -1;
  if (H5Aexists_by_name(f, grp, "n_saved", H5P_DEFAULT) > 0) {
    hid_t a = H5Aopen_by_name(f, grp, "n_saved", H5P_DEFAULT, H5P_DEFAULT);
    if (a < 0 || H5Aread(a, H5T_NATIVE_LLONG, &v) < 0 || v < 0) v = -1;
    if (a >= 0) H5Aclose(a);
  }
  return v;
}

int csde_h5_read_doubles(const char *path, const char *dset, int last_of_first_axis,
                         double **out, csde_err *err)
{
  int s = CSDE_SUCCESS;
  double *buf = NULL;
  hid_t f = open_ro(path, 1, err), d = -1, fs = -1, ms = -1;
  if (f < 0) return CSDE_EIO;
  if ((d = open_dset(f, path, dset, err)) < 0) {
    s = CSDE_EIO;
    goto done;
  }
  fs = H5Dget_space(d);
  int r = fs >= 0 ? H5Sget_simple_extent_ndims(fs) : -1;
  if (r < 0 || r > CSDE_H5_MAXRANK || (last_of_first_axis && r < 1)) {
    s = csde_err_set(err, CSDE_EBADLEN, "dataset '%s' in '%s' has rank %d", dset, path, r);
    goto done;
  }
  H5T_class_t cls = H5T_NO_CLASS;
  hid_t ty = H5Dget_type(d);
  if (ty >= 0) {
    cls = H5Tget_class(ty);
    H5Tclose(ty);
  }
  if (cls != H5T_FLOAT && cls != H5T_INTEGER) {
    s = csde_err_set(err, CSDE_EIO, "dataset '%s' in '%s' does not hold numbers", dset, path);
    goto done;
  }
  hsize_t h[CSDE_H5_MAXRANK], start[CSDE_H5_MAXRANK];
  H5Sget_simple_extent_dims(fs, h, NULL);
  if (last_of_first_axis) {
    /* the last saved state: entry n_saved - 1 where the parent group counts them (a
     * killed run's entries past n_saved are not states) */
    long long ns = saved_count(f, dset);
    hsize_t len = ns >= 0 && (hsize_t)ns < h[0] ? (hsize_t)ns : h[0];
    if (len == 0) {
      s = csde_err_set(err, CSDE_EBADLEN, "dataset '%s' in '%s' is empty%s", dset, path,
                       h[0] ? " (n_saved is 0: no state was saved)" : "");
      goto done;
    }
    for (int i = 0; i < r; i++) start[i] = 0;
    start[0] = len - 1;
    h[0] = 1;
    if (H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, h, NULL) < 0) {
      s = csde_err_set(err, CSDE_EIO, "cannot select in '%s' of '%s'", dset, path);
      goto done;
    }
  }
  size_t total = 1;
  for (int i = 0; i < r; i++)
    if (csde_mul_size(total, (size_t)h[i], &total) || total > SIZE_MAX / sizeof(double)) {
      s = csde_err_set(err, CSDE_ENOMEM, "dataset '%s' in '%s' is too large to read", dset,
                       path);
      goto done;
    }
  buf = malloc((total ? total : 1) * sizeof *buf);
  ms = H5Screate_simple(r ? r : 1, r ? h : (hsize_t[]){1}, NULL);
  if (!buf || ms < 0) {
    s = csde_err_set(err, CSDE_ENOMEM, "out of memory reading '%s' of '%s'", dset, path);
    goto done;
  }
  if (total && H5Dread(d, H5T_NATIVE_DOUBLE, ms, fs, H5P_DEFAULT, buf) < 0) {
    s = csde_err_set(err, CSDE_EIO, "cannot read dataset '%s' in '%s' as numbers", dset, path);
    goto done;
  }
  *out = buf;
  buf = NULL;
done:
  free(buf);
  if (ms >= 0) H5Sclose(ms);
  if (fs >= 0) H5Sclose(fs);
  if (d >= 0) H5Dclose(d);
  H5Fclose(f);
  return s;
}

/* ---- reading a trajectory file ---- */

typedef struct {
  char *s;
  size_t len, cap;
} strbuf;

static void sb_add(strbuf *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

static void sb_add(strbuf *b, const char *fmt, ...)
{
  va_list ap;
  for (;;) {
    if (!b->s) {
      b->cap = 128;
      b->s = malloc(b->cap);
      if (!b->s) return;
      b->s[0] = '\0';
      b->len = 0;
    }
    va_start(ap, fmt);
    int n = vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < b->cap - b->len) {
      b->len += (size_t)n;
      return;
    }
    char *t = realloc(b->s, b->cap * 2 + (size_t)n);
    if (!t) return;
    b->s = t;
    b->cap = b->cap * 2 + (size_t)n;
  }
}

/* The shortest "%.*g" that reads back as v. */
static void fmt_double(strbuf *b, double v)
{
  char tmp[40];
  for (int p = 6; p <= 17; p++) {
    snprintf(tmp, sizeof tmp, "%.*g", p, v);
    if (strtod(tmp, NULL) == v || p == 17) break;
  }
  sb_add(b, "%s", tmp);
}

#define ATTR_SHOW_MAX 16 /* array values shown before "..." */

/* Format n values of class cls held in raw (native types chosen by the caller). */
static void fmt_attr(hid_t a, strbuf *b)
{
  hid_t ty = H5Aget_type(a), sp = H5Aget_space(a);
  if (ty < 0 || sp < 0) {
    sb_add(b, "(unreadable)");
    goto done;
  }
  hssize_t np = H5Sget_simple_extent_npoints(sp);
  int arr = H5Sget_simple_extent_type(sp) == H5S_SIMPLE;
  size_t n = np > 0 ? (size_t)np : 0;
  H5T_class_t cls = H5Tget_class(ty);
  if (H5Sget_simple_extent_type(sp) == H5S_NULL || n == 0) {
    sb_add(b, "(empty)");
    goto done;
  }
  size_t show = n < ATTR_SHOW_MAX ? n : ATTR_SHOW_MAX;
  if (arr) sb_add(b, "[");
  if (cls == H5T_STRING) {
    hid_t mt = H5Tcopy(H5T_C_S1);
    H5Tset_cset(mt, H5Tget_cset(ty));
    if (H5Tis_variable_str(ty) > 0) {
      H5Tset_size(mt, H5T_VARIABLE);
      char **v = calloc(n, sizeof *v);
      if (v && H5Aread(a, mt, v) >= 0) {
        for (size_t i = 0; i < show; i++)
          sb_add(b, arr ? "%s'%s'" : "%s%s", i ? ", " : "", v[i] ? v[i] : "");
#if H5_VERSION_GE(1, 12, 0)
        H5Treclaim(mt, sp, H5P_DEFAULT, v);
#else
        H5Dvlen_reclaim(mt, sp, H5P_DEFAULT, v);
#endif
      } else {
        sb_add(b, "(unreadable string)");
      }
      free(v);
    } else {
      size_t sz = H5Tget_size(ty);
      H5Tset_size(mt, sz + 1); /* room for a terminator */
      H5Tset_strpad(mt, H5T_STR_NULLTERM);
      char *v = calloc(n, sz + 1);
      if (v && H5Aread(a, mt, v) >= 0) {
        for (size_t i = 0; i < show; i++) {
          char *e = v + i * (sz + 1);
          size_t l = strnlen(e, sz);
          while (l > 0 && e[l - 1] == ' ') l--; /* space-padded (Fortran) strings */
          sb_add(b, arr ? "%s'%.*s'" : "%s%.*s", i ? ", " : "", (int)l, e);
        }
      } else {
        sb_add(b, "(unreadable string)");
      }
      free(v);
    }
    H5Tclose(mt);
  } else if (cls == H5T_INTEGER) {
    int sgn = H5Tget_sign(ty) != H5T_SGN_NONE;
    if (sgn) {
      long long *v = malloc(n * sizeof *v);
      if (v && H5Aread(a, H5T_NATIVE_LLONG, v) >= 0)
        for (size_t i = 0; i < show; i++) sb_add(b, "%s%lld", i ? ", " : "", v[i]);
      else
        sb_add(b, "(unreadable)");
      free(v);
    } else {
      unsigned long long *v = malloc(n * sizeof *v);
      if (v && H5Aread(a, H5T_NATIVE_ULLONG, v) >= 0)
        for (size_t i = 0; i < show; i++) sb_add(b, "%s%llu", i ? ", " : "", v[i]);
      else
        sb_add(b, "(unreadable)");
      free(v);
    }
  } else if (cls == H5T_FLOAT) {
    double *v = malloc(n * sizeof *v);
    if (v && H5Aread(a, H5T_NATIVE_DOUBLE, v) >= 0)
      for (size_t i = 0; i < show; i++) {
        if (i) sb_add(b, ", ");
        fmt_double(b, v[i]);
      }
    else
      sb_add(b, "(unreadable)");
    free(v);
  } else if (cls == H5T_ENUM) { /* h5py's booleans are an enum {FALSE, TRUE} */
    size_t sz = H5Tget_size(ty);
    unsigned char *v = malloc(n * sz);
    if (v && H5Aread(a, ty, v) >= 0) {
      for (size_t i = 0; i < show; i++) {
        char name[64];
        if (H5Tenum_nameof(ty, v + i * sz, name, sizeof name) < 0) strcpy(name, "?");
        sb_add(b, "%s%s", i ? ", " : "", name);
      }
    } else {
      sb_add(b, "(unreadable)");
    }
    free(v);
  } else {
    sb_add(b, "(HDF5 type class %d)", (int)cls);
  }
  if (show < n) sb_add(b, ", ... (%zu values)", n);
  if (arr) sb_add(b, "]");
done:
  if (ty >= 0) H5Tclose(ty);
  if (sp >= 0) H5Sclose(sp);
}

typedef struct {
  csde_h5attr *a;
  size_t n, cap;
  int oom;
} attr_list;

static herr_t attr_cb(hid_t loc, const char *name, const H5A_info_t *ainfo, void *data)
{
  (void)ainfo;
  attr_list *L = data;
  if (L->n == L->cap) {
    size_t cap = L->cap ? 2 * L->cap : 32;
    csde_h5attr *t = realloc(L->a, cap * sizeof *t);
    if (!t) {
      L->oom = 1;
      return -1;
    }
    L->a = t;
    L->cap = cap;
  }
  strbuf b = {0};
  hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
  if (a >= 0) {
    fmt_attr(a, &b);
    H5Aclose(a);
  } else {
    sb_add(&b, "(unreadable)");
  }
  L->a[L->n].name = strdup(name);
  L->a[L->n].text = b.s ? b.s : strdup("");
  if (!L->a[L->n].name || !L->a[L->n].text) {
    free(L->a[L->n].name);
    free(L->a[L->n].text);
    L->oom = 1;
    return -1;
  }
  L->n++;
  return 0;
}

static int attr_cmp(const void *x, const void *y)
{
  return strcmp(((const csde_h5attr *)x)->name, ((const csde_h5attr *)y)->name);
}

/* Every attribute of object obj (absent object: none), sorted by name. */
static int read_attrs(hid_t f, const char *obj, csde_h5attr **out, size_t *n)
{
  attr_list L = {0};
  *out = NULL;
  *n = 0;
  if (H5Lexists(f, obj, H5P_DEFAULT) <= 0) return 0;
  hid_t o = H5Oopen(f, obj, H5P_DEFAULT);
  if (o < 0) return 0;
  hsize_t idx = 0;
  H5Aiterate2(o, H5_INDEX_NAME, H5_ITER_INC, &idx, attr_cb, &L);
  H5Oclose(o);
  if (L.n) qsort(L.a, L.n, sizeof *L.a, attr_cmp);
  *out = L.a;
  *n = L.n;
  return L.oom ? -1 : 0;
}

static void type_name(hid_t ty, char *buf, size_t len)
{
  H5T_class_t c = H5Tget_class(ty);
  size_t bits = 8 * H5Tget_size(ty);
  if (c == H5T_FLOAT)
    snprintf(buf, len, "float%zu", bits);
  else if (c == H5T_INTEGER)
    snprintf(buf, len, "%sint%zu", H5Tget_sign(ty) == H5T_SGN_NONE ? "u" : "", bits);
  else if (c == H5T_STRING)
    snprintf(buf, len, "string");
  else
    snprintf(buf, len, "type class %d", (int)c);
}

static void dset_info(hid_t f, const char *name, csde_h5dset_info *di)
{
  memset(di, 0, sizeof *di);
  if (H5Lexists(f, name, H5P_DEFAULT) <= 0) return;
  hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
  if (d < 0) return;
  hid_t sp = H5Dget_space(d), ty = H5Dget_type(d), dcpl = H5Dget_create_plist(d);
  int r = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
  if (r >= 0 && r <= CSDE_H5_MAXRANK) {
    hsize_t h[CSDE_H5_MAXRANK];
    H5Sget_simple_extent_dims(sp, h, NULL);
    di->present = 1;
    di->rank = r;
    for (int i = 0; i < r; i++) di->dims[i] = (size_t)h[i];
    if (ty >= 0) type_name(ty, di->type, sizeof di->type);
    if (dcpl >= 0 && H5Pget_layout(dcpl) == H5D_CHUNKED) {
      hsize_t c[CSDE_H5_MAXRANK];
      if (H5Pget_chunk(dcpl, CSDE_H5_MAXRANK, c) == r) {
        di->chunked = 1;
        for (int i = 0; i < r; i++) di->chunk[i] = (size_t)c[i];
      }
    }
    int nf = dcpl >= 0 ? H5Pget_nfilters(dcpl) : 0;
    size_t used = 0;
    for (int i = 0; i < nf && used < sizeof di->filters - 16; i++) {
      unsigned flags, cd[8];
      size_t ncd = 8;
      char fname[32] = "";
      H5Z_filter_t id = H5Pget_filter2(dcpl, (unsigned)i, &flags, &ncd, cd, sizeof fname,
                                       fname, NULL);
      char one[32];
      if (id == H5Z_FILTER_DEFLATE)
        snprintf(one, sizeof one, "gzip(%u)", ncd ? cd[0] : 0);
      else if (id == H5Z_FILTER_SHUFFLE)
        snprintf(one, sizeof one, "shuffle");
      else if (id == H5Z_FILTER_FLETCHER32)
        snprintf(one, sizeof one, "fletcher32");
      else
        snprintf(one, sizeof one, "filter %d", (int)id);
      used += (size_t)snprintf(di->filters + used, sizeof di->filters - used, "%s%s",
                               used ? "+" : "", one);
    }
  }
  if (dcpl >= 0) H5Pclose(dcpl);
  if (ty >= 0) H5Tclose(ty);
  if (sp >= 0) H5Sclose(sp);
  H5Dclose(d);
}

/* Read a whole 1-D dataset as type mt (n values of size esize) into a new buffer. */
static void *read_1d(hid_t f, const char *name, hid_t mt, size_t esize, size_t n)
{
  if (n == 0) return NULL;
  hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
  if (d < 0) return NULL;
  void *buf = malloc(n * esize);
  if (buf && H5Dread(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
    free(buf);
    buf = NULL;
  }
  H5Dclose(d);
  return buf;
}

static void free_attrs(csde_h5attr *a, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    free(a[i].name);
    free(a[i].text);
  }
  free(a);
}

void csde_h5traj_info_free(csde_h5traj_info *info)
{
  if (!info) return;
  free_attrs(info->params, info->nparams);
  free_attrs(info->stats, info->nstats);
  free_attrs(info->cov_attrs, info->ncov_attrs);
  memset(info, 0, sizeof *info);
}

const char *csde_h5attr_get(const csde_h5attr *a, size_t n, const char *name)
{
  for (size_t i = 0; i < n; i++)
    if (!strcmp(a[i].name, name)) return a[i].text;
  return NULL;
}

size_t csde_h5traj_info_saved(const csde_h5traj_info *info, size_t len)
{
  return info->n_saved >= 0 && (size_t)info->n_saved < len ? (size_t)info->n_saved : len;
}

int csde_h5traj_info_read(const char *path, csde_h5traj_info *info, csde_err *err)
{
  memset(info, 0, sizeof *info);
  hid_t f = open_ro(path, 0, err);
  if (f < 0) return CSDE_EIO;
  int s = CSDE_SUCCESS;
  dset_info(f, "/trajectory/x", &info->x);
  if (!info->x.present) {
    s = csde_err_set(err, CSDE_EIO, "'%s' has no dataset /trajectory/x (not a trajectory file)",
                     path);
    goto done;
  }
  dset_info(f, "/trajectory/t", &info->t);
  dset_info(f, "/trajectory/step", &info->step);
  info->n_saved = saved_count(f, "/trajectory/x");
  dset_info(f, "/covariance/matrix", &info->cov);
  dset_info(f, "/covariance/eigenvalues", &info->eig);
  if (info->t.present && info->t.rank == 1 && csde_h5traj_info_saved(info, info->t.dims[0])) {
    double *t = read_1d(f, "/trajectory/t", H5T_NATIVE_DOUBLE, sizeof(double), info->t.dims[0]);
    if (t) {
      info->t_first = t[0];
      info->t_last = t[csde_h5traj_info_saved(info, info->t.dims[0]) - 1];
      free(t);
    } else {
      info->t.dims[0] = 0; /* unreadable: show no range */
    }
  }
  if (info->step.present && info->step.rank == 1 &&
      csde_h5traj_info_saved(info, info->step.dims[0])) {
    long long *v = read_1d(f, "/trajectory/step", H5T_NATIVE_LLONG, sizeof(long long),
                           info->step.dims[0]);
    if (v) {
      info->step_first = v[0];
      info->step_last = v[csde_h5traj_info_saved(info, info->step.dims[0]) - 1];
      free(v);
    } else {
      info->step.dims[0] = 0;
    }
  }
  if (info->eig.present && info->eig.rank == 1 && info->eig.dims[0] > 0) {
    double *e = read_1d(f, "/covariance/eigenvalues", H5T_NATIVE_DOUBLE, sizeof(double),
                        info->eig.dims[0]);
    if (e) {
      info->eig_min = INFINITY;
      info->eig_max = -INFINITY;
      for (size_t i = 0; i < info->eig.dims[0]; i++) {
        info->eig_min = fmin(info->eig_min, e[i]);
        info->eig_max = fmax(info->eig_max, e[i]);
      }
      free(e);
    } else {
      info->eig.dims[0] = 0;
    }
  }
  if (read_attrs(f, "/parameters", &info->params, &info->nparams) ||
      read_attrs(f, "/stats", &info->stats, &info->nstats) ||
      read_attrs(f, "/covariance", &info->cov_attrs, &info->ncov_attrs))
    s = csde_err_set(err, CSDE_ENOMEM, "out of memory reading the attributes of '%s'", path);
done:
  H5Fclose(f);
  if (s) csde_h5traj_info_free(info);
  return s;
}
