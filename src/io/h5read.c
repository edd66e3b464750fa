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
#include "io/h5traj_read.h"

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

/* The checked reader of h5traj_read.c (links, storage, class, rank, size) with rank at
 * most 4 and the default bound on the bytes read. */
int csde_h5_read(const char *path, const char *dset, double **out, int *rank,
                 size_t dims[4], csde_err *err)
{
  csde_h5_read_params p = csde_h5_read_default_params();
  p.max_rank = 4;
  size_t d[CSDE_H5_MAXRANK];
  int r = 0, s = csde_h5_read_array(path, dset, &p, out, &r, d, err);
  if (s) return s;
  *rank = r;
  for (int i = 0; i < r; i++) dims[i] = d[i];
  return CSDE_SUCCESS;
}

int csde_h5_has(const char *path, const char *dset) { return csde_h5_exists(path, dset); }

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
