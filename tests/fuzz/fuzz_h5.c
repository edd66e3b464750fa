/* Fuzz corrsde's HDF5 readers (the CI harness): the input describes a valid HDF5 file,
 * which is written through HDF5's own API and then read every way corrsde reads files
 * (fuzz_h5_readers.h). So what is fuzzed is our handling of any shape, element type,
 * layout, value (NaN, Inf, huge) and attribute a user's file can hold, not libhdf5's
 * parser of corrupt bytes (that is fuzz_h5_raw, for manual runs).
 *
 * Input: a sequence of records, each one header byte and its bytes:
 *   byte 0: which object (b & 7): /x, /C, /trajectory/x, /trajectory/t, /trajectory/step,
 *           /covariance/eigenvalues, /stats (attributes only), /parameters (attributes);
 *   byte 1: element type (b % 8): float64, float32, int16, uint8, int64, fixed string,
 *           variable-length string, enum {FALSE, TRUE}; bit 3: chunked; bit 4: gzip;
 *   byte 2: rank (b % 6, 0 = scalar), then one byte per axis (b % 5, 0 = empty axis);
 *   the values (as many bytes as the elements need, zeros after the input's end);
 *   then one attribute on the object: a name byte (one of 8 names corrsde reads), a type
 *   byte, a length byte (0: scalar, else 1..8 elements), its values. */
#include <math.h>

#include "fuzz_h5_readers.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

FUZZ_INITIALIZE(atexit(fuzz_rm_input);)

typedef struct {
  const uint8_t *p;
  size_t n;
} cursor;

static unsigned next(cursor *c)
{
  if (!c->n) return 0;
  c->n--;
  return *c->p++;
}

/* A value of the input: mostly small numbers, sometimes NaN, Inf or huge ones. */
static double value(cursor *c)
{
  unsigned b = next(c), k = b >> 5;
  double v = (double)(int)(b & 31) - 8;
  return k == 7 ? NAN : k == 6 ? (b & 1 ? INFINITY : -INFINITY) : k == 5 ? v * 1e300 : v / 4;
}

static hid_t elem_type(unsigned t, size_t strlen_fixed)
{
  hid_t ty;
  switch (t % 8) {
  case 0: return H5Tcopy(H5T_IEEE_F64LE);
  case 1: return H5Tcopy(H5T_IEEE_F32LE);
  case 2: return H5Tcopy(H5T_STD_I16LE);
  case 3: return H5Tcopy(H5T_STD_U8LE);
  case 4: return H5Tcopy(H5T_STD_I64BE);
  case 5:
    ty = H5Tcopy(H5T_C_S1);
    H5Tset_size(ty, strlen_fixed);
    return ty;
  case 6:
    ty = H5Tcopy(H5T_C_S1);
    H5Tset_size(ty, H5T_VARIABLE);
    return ty;
  default: {
    signed char f = 0, tr = 1;
    ty = H5Tenum_create(H5T_NATIVE_SCHAR);
    H5Tenum_insert(ty, "FALSE", &f);
    H5Tenum_insert(ty, "TRUE", &tr);
    return ty;
  }
  }
}

/* Write n elements of type class t from the input: numbers through a double buffer
 * (HDF5 converts, clipping what a narrow type cannot hold), strings of 3 letters. */
static int write_values(hid_t obj, int is_attr, unsigned t, size_t n, cursor *c)
{
  if (n == 0) return 0;
  int s = -1;
  hid_t ty = elem_type(t, 4);
  if (t % 8 == 5 || t % 8 == 6) {
    char(*fixed)[4] = calloc(n, sizeof *fixed);
    const char **vl = calloc(n, sizeof *vl);
    if (fixed && vl) {
      for (size_t i = 0; i < n; i++) {
        for (int j = 0; j < 3; j++) fixed[i][j] = (char)('a' + next(c) % 26);
        vl[i] = fixed[i];
      }
      const void *buf = t % 8 == 5 ? (const void *)fixed : (const void *)vl;
      s = is_attr ? H5Awrite(obj, ty, buf) : H5Dwrite(obj, ty, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
    }
    free(fixed);
    free(vl);
  } else if (t % 8 == 7) {
    signed char *e = malloc(n);
    if (e) {
      for (size_t i = 0; i < n; i++) e[i] = (signed char)(next(c) & 1);
      s = is_attr ? H5Awrite(obj, ty, e) : H5Dwrite(obj, ty, H5S_ALL, H5S_ALL, H5P_DEFAULT, e);
    }
    free(e);
  } else {
    double *v = malloc(n * sizeof *v);
    if (v) {
      for (size_t i = 0; i < n; i++) v[i] = value(c);
      /* a value a narrow type cannot hold is clipped (HDF5's default) */
      s = is_attr ? H5Awrite(obj, H5T_NATIVE_DOUBLE, v)
                  : H5Dwrite(obj, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v);
    }
    free(v);
  }
  H5Tclose(ty);
  return s < 0 ? -1 : 0;
}

static const char *const objects[] = {"/x", "/C", "/trajectory/x", "/trajectory/t",
                                      "/trajectory/step", "/covariance/eigenvalues",
                                      "/stats", "/parameters"};
static const char *const attr_names[] = {"status", "n_saved", "nfe", "spec", "method",
                                         "command_line", "save_times", "wall_seconds"};

/* One record: an object (a dataset, or a group for the last two) and one attribute. */
static void record(hid_t f, cursor *c)
{
  unsigned which = next(c) & 7, t = next(c), rank = next(c) % 6;
  hsize_t dims[5], ch[5], n = 1;
  for (unsigned i = 0; i < rank; i++) {
    dims[i] = next(c) % 5;
    ch[i] = dims[i] ? dims[i] : 1;
    n *= dims[i];
  }
  const char *name = objects[which];
  hid_t obj = -1;
  int is_group = which >= 6;
  if (H5Lexists(f, name, H5P_DEFAULT) > 0) return; /* each object once */
  if (is_group) {
    obj = H5Gcreate2(f, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  } else {
    hid_t sp = rank ? H5Screate_simple((int)rank, dims, NULL) : H5Screate(H5S_SCALAR);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (rank && (t & 8)) {
      H5Pset_chunk(dcpl, (int)rank, ch);
      if (t & 16) H5Pset_deflate(dcpl, 1);
    }
    hid_t ty = elem_type(t, 4);
    obj = H5Dcreate2(f, name, ty, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    H5Tclose(ty);
    H5Pclose(dcpl);
    H5Sclose(sp);
    if (obj >= 0) write_values(obj, 0, t, (size_t)n, c);
  }
  if (obj < 0) return;
  /* one attribute */
  const char *an = attr_names[next(c) & 7];
  unsigned at = next(c), len = next(c) % 9;
  hsize_t alen = len;
  hid_t asp = len ? H5Screate_simple(1, &alen, NULL) : H5Screate(H5S_SCALAR);
  hid_t aty = elem_type(at, 4);
  hid_t a = H5Acreate2(obj, an, aty, asp, H5P_DEFAULT, H5P_DEFAULT);
  if (a >= 0) {
    write_values(a, 1, at, len ? len : 1, c);
    H5Aclose(a);
  }
  H5Tclose(aty);
  H5Sclose(asp);
  if (is_group) H5Gclose(obj);
  else H5Dclose(obj);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  const char *path = fuzz_write_input(data, 0); /* the name; the file is made below */
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);       /* this harness's own writes */
  hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (f < 0) abort();
  H5Gclose(H5Gcreate2(f, "/trajectory", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
  H5Gclose(H5Gcreate2(f, "/covariance", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
  cursor c = {data, size};
  for (int k = 0; k < 8 && c.n; k++) record(f, &c);
  if (H5Fclose(f) < 0) abort();
  fuzz_h5_valid_ = 1;
  fuzz_quiet_begin();
  fuzz_read_all(path);
  fuzz_quiet_end("the HDF5 readers");
  return 0;
}
