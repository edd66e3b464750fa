#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <hdf5.h>

#include "core/spec.h"
#include "core/util.h"
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

static int h5_read(const char *path, const char *dset, double **out, int *rank,
                   size_t dims[4], csde_err *err);

/* HDF5's error printing is off while we read (our messages, not its stack dumps) and
 * the caller's handler is put back after: nothing process-wide changes. */
int csde_h5_read(const char *path, const char *dset, double **out, int *rank,
                 size_t dims[4], csde_err *err)
{
  H5E_auto2_t fn = NULL;
  void *data = NULL;
  H5Eget_auto2(H5E_DEFAULT, &fn, &data);
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  int s = h5_read(path, dset, out, rank, dims, err);
  H5Eset_auto2(H5E_DEFAULT, fn, data);
  return s;
}

static int h5_read(const char *path, const char *dset, double **out, int *rank,
                   size_t dims[4], csde_err *err)
{
  int status = CSDE_SUCCESS;
  hid_t f = -1, d = -1, sp = -1;
  double *buf = NULL;
  if (access(path, R_OK) != 0)
    return csde_err_set(err, CSDE_EIO, "cannot read '%s': %s", path, strerror(errno));
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
    if (csde_mul_size(total, dims[i], &total) || total > SIZE_MAX / sizeof(double)) {
      status = csde_err_set(err, CSDE_ENOMEM, "dataset '%s' in '%s' is too large to read",
                            dset, path);
      goto done;
    }
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

int csde_h5_has(const char *path, const char *dset)
{
  int has = 0;
  H5E_BEGIN_TRY
  {
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f >= 0) {
      has = H5Lexists(f, dset, H5P_DEFAULT) > 0;
      H5Fclose(f);
    }
  }
  H5E_END_TRY;
  return has;
}

int csde_list_check_entries(const char *s, size_t len, csde_err *err)
{
  /* Separators are runs of blanks with at most one comma; two commas with only blanks
   * between them (or a comma first or last) leave an entry empty. */
  size_t entry = 1, commas = 0;
  int seen = 0; /* a number has been seen */
  for (size_t i = 0; i < len; i++) {
    char c = s[i];
    if (c == ',') {
      if (!seen || ++commas > 1)
        return csde_err_set(err, CSDE_ESPEC,
                            "entry %zu is empty (two commas with nothing between them, or a "
                            "leading comma); every entry must be a number",
                            seen ? entry + 1 : entry);
    } else if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      continue;
    } else {
      if (seen && (commas || (i > 0 && (s[i - 1] == ' ' || s[i - 1] == '\t' ||
                                        s[i - 1] == '\n' || s[i - 1] == '\r'))))
        entry++;
      seen = 1;
      commas = 0;
    }
  }
  if (commas)
    return csde_err_set(err, CSDE_ESPEC,
                        "entry %zu is empty (a trailing comma); every entry must be a number",
                        entry + 1);
  return CSDE_SUCCESS;
}

/* HDF5's signature: the first 8 bytes of a file without a user block. */
static const unsigned char h5_sig[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};

int csde_text_read(const char *path, double **out, size_t *n, csde_err *err)
{
  FILE *fp = fopen(path, "r");
  if (!fp) return csde_err_set(err, CSDE_EIO, "cannot read '%s': %s", path, strerror(errno));
  struct stat st;
  if (fstat(fileno(fp), &st) != 0 || !S_ISREG(st.st_mode)) {
    fclose(fp);
    return csde_err_set(err, CSDE_EIO,
                        "'%s' is not a regular file (a device, pipe or directory); expected a "
                        "text file of numbers or F.h5:/dataset",
                        path);
  }
  if ((unsigned long long)st.st_size > CSDE_TEXT_MAX_BYTES) {
    fclose(fp);
    return csde_err_set(err, CSDE_EBADLEN,
                        "'%s' is %lld bytes; a text file of numbers may have at most %llu "
                        "bytes (use an HDF5 dataset, F.h5:/dataset)",
                        path, (long long)st.st_size, (unsigned long long)CSDE_TEXT_MAX_BYTES);
  }
  htri_t h5 = 0; /* an HDF5 file named without its dataset: say so, do not parse it */
  H5E_BEGIN_TRY { h5 = H5Fis_hdf5(path); }
  H5E_END_TRY;
  if (h5 > 0) {
    fclose(fp);
    return csde_err_set(err, CSDE_EBADLEN,
                        "'%s' is an HDF5 file: name the dataset to read, as '%s:/dataset'",
                        path, path);
  }
  /* the whole file, at most CSDE_TEXT_MAX_BYTES (+1 to see a file that grew) */
  size_t cap = (size_t)st.st_size + 2, len = 0;
  char *text = malloc(cap);
  if (!text) {
    fclose(fp);
    return csde_err_set(err, CSDE_ENOMEM, "out of memory reading '%s'", path);
  }
  len = fread(text, 1, cap - 1, fp);
  fclose(fp);
  if (len > (size_t)st.st_size) {
    free(text);
    return csde_err_set(err, CSDE_EIO, "'%s' grew while it was read", path);
  }
  if (len >= sizeof h5_sig && !memcmp(text, h5_sig, sizeof h5_sig)) {
    free(text);
    return csde_err_set(err, CSDE_EBADLEN,
                        "'%s' is an HDF5 file: name the dataset to read, as '%s:/dataset'",
                        path, path);
  }
  const char *nul = memchr(text, '\0', len);
  if (nul) {
    size_t off = (size_t)(nul - text);
    free(text);
    return csde_err_set(err, CSDE_ESPEC,
                        "'%s' has a NUL byte at offset %zu: not a text file of numbers",
                        path, off);
  }
  int comment = 0; /* blank out '#' comments in place */
  for (size_t i = 0; i < len; i++) {
    if (text[i] == '#') comment = 1;
    if (text[i] == '\n') comment = 0;
    if (comment) text[i] = ' ';
  }
  text[len] = '\0';
  csde_err e;
  int s = csde_list_check_entries(text, len, &e);
  if (!s) s = csde_parse_double_list(text, out, n, &e);
  free(text);
  if (s) return csde_err_set(err, s, "'%s': %s", path, e.msg);
  return CSDE_SUCCESS;
}
