/* The readers of HDF5 files (h5traj_read.h): a dataset's shape and values (--init and
 * the other readers of numbers) and what `corrsde info` shows of a trajectory file.
 * Every file is hostile until checked: see h5traj_read.h for what is checked before
 * HDF5 is asked for anything that could block, open another file, load a plugin or
 * size a buffer. Every failure becomes one csde_err message naming the file and the
 * object; HDF5's own error printing is off for the span of each public call. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
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
#include "io/h5util.h"

#if H5_VERSION_GE(1, 12, 0)
typedef H5O_info2_t oinfo_t;
#define OINFO(o, i, f) H5Oget_info3(o, i, f)
#define OINFO_BY_NAME(l, n, i, f) H5Oget_info_by_name3(l, n, i, f, H5P_DEFAULT)
#else
typedef H5O_info_t oinfo_t;
#define OINFO(o, i, f) H5Oget_info2(o, i, f)
#define OINFO_BY_NAME(l, n, i, f) H5Oget_info_by_name2(l, n, i, f, H5P_DEFAULT)
#endif

/* A chunk index larger than this many chunks of one read is not checked chunk by chunk
 * (check_raw). */
#define CHUNK_CHECK_MAX 65536
/* The longest fixed-size string attribute read (bytes). */
#define STR_MAX ((size_t)1 << 20)
/* The most values an attribute list (frame_shape, eigenvalue_range) may have. */
#define LIST_MAX 16
/* The most eigenvalues info scans for their range. */
#define EIG_MAX ((hsize_t)1 << 20)

/* ---- strings from a file, for a terminal ---- */

/* The length of the valid UTF-8 sequence at s (1..4) and its code point, or 0. */
static int utf8_seq(const unsigned char *s, unsigned long *cp)
{
  unsigned long c;
  int n;
  if (s[0] < 0x80) {
    *cp = s[0];
    return 1;
  }
  if (s[0] >= 0xC2 && s[0] <= 0xDF) n = 2, c = s[0] & 0x1Fu;
  else if (s[0] >= 0xE0 && s[0] <= 0xEF) n = 3, c = s[0] & 0x0Fu;
  else if (s[0] >= 0xF0 && s[0] <= 0xF4) n = 4, c = s[0] & 0x07u;
  else return 0;
  for (int i = 1; i < n; i++) {
    if ((s[i] & 0xC0) != 0x80) return 0; /* a terminator stops here too */
    c = c << 6 | (s[i] & 0x3Fu);
  }
  /* overlong forms, surrogates, beyond U+10FFFF */
  if ((n == 3 && c < 0x800) || (n == 4 && (c < 0x10000 || c > 0x10FFFF)) ||
      (c >= 0xD800 && c <= 0xDFFF))
    return 0;
  *cp = c;
  return n;
}

size_t csde_h5_escape(const char *s, char *buf, size_t len)
{
  size_t o = 0;
#define PUT(c)                                                                             \
  do {                                                                                     \
    if (o + 1 < len) buf[o] = (c);                                                         \
    o++;                                                                                   \
  } while (0)
  const unsigned char *p = (const unsigned char *)s;
  while (*p) {
    unsigned long cp;
    int n = utf8_seq(p, &cp);
    char tmp[16];
    if (n == 1 && cp >= 0x20 && cp != 0x7F && cp != '\\') {
      PUT((char)cp);
    } else if (n == 1) {
      const char *e = cp == '\n' ? "\\n" : cp == '\t' ? "\\t" : cp == '\r' ? "\\r"
                    : cp == '\\' ? "\\\\" : NULL;
      if (!e) {
        snprintf(tmp, sizeof tmp, "\\x%02x", (unsigned)cp);
        e = tmp;
      }
      for (; *e; e++) PUT(*e);
    } else if (n == 0) {
      snprintf(tmp, sizeof tmp, "\\x%02x", (unsigned)*p);
      for (const char *e = tmp; *e; e++) PUT(*e);
      n = 1;
    } else if ((cp >= 0x80 && cp <= 0x9F) || (cp >= 0x202A && cp <= 0x202E) ||
               (cp >= 0x2066 && cp <= 0x2069)) {
      snprintf(tmp, sizeof tmp, "\\u%04lx", cp);
      for (const char *e = tmp; *e; e++) PUT(*e);
    } else {
      for (int i = 0; i < n; i++) PUT((char)p[i]);
    }
    p += n;
  }
#undef PUT
  if (len) buf[o < len ? o : len - 1] = '\0';
  return o;
}

/* s escaped into a fixed buffer (for messages). */
static const char *esc(const char *s, char *buf, size_t len)
{
  csde_h5_escape(s, buf, len);
  return buf;
}

/* ---- opening: the file, the path, the storage ---- */

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

enum { PATH_OK = 0, PATH_ABSENT = 1, PATH_UNREADABLE = 2, PATH_BAD = -1 };

/* Whether object obj ("/trajectory/x") of file f is reached through hard links only:
 * each prefix (/trajectory, then /trajectory/x) is looked up without following its
 * own last link, and only a hard link is gone through. PATH_ABSENT if a part is
 * missing; PATH_UNREADABLE with err if a lookup failed (a corrupt group); PATH_BAD with
 * err for another kind of link. */
static int check_path(hid_t f, const char *path, const char *obj, csde_err *err)
{
  char pre[1024], e1[160];
  size_t o = 0;
  const char *p = obj;
  if (strlen(obj) >= sizeof pre)
    return csde_err_set(err, CSDE_EIO, "object name '%.64s...' is too long", obj), PATH_BAD;
  for (;;) {
    while (*p == '/') p++;
    if (!*p) return PATH_OK;
    size_t len = strcspn(p, "/");
    pre[o++] = '/';
    memcpy(pre + o, p, len);
    o += len;
    pre[o] = '\0';
    p += len;
    htri_t ex = H5Lexists(f, pre, H5P_DEFAULT);
    if (ex == 0) return PATH_ABSENT;
    H5L_info_t li;
    if (ex < 0 || H5Lget_info(f, pre, &li, H5P_DEFAULT) < 0) {
      csde_err_set(err, CSDE_EIO, "cannot look up '%s' in '%s' (a corrupt file?)",
                   esc(pre, e1, sizeof e1), path);
      return PATH_UNREADABLE;
    }
    if (li.type != H5L_TYPE_HARD) {
      csde_err_set(err, CSDE_EIO,
                   "'%s' in '%s' is %s link: only hard links are followed (an external "
                   "link would open another file, a soft one may point anywhere)",
                   esc(pre, e1, sizeof e1), path,
                   li.type == H5L_TYPE_EXTERNAL ? "an external"
                   : li.type == H5L_TYPE_SOFT   ? "a soft"
                                                : "a user-defined");
      return PATH_BAD;
    }
  }
}

/* Open object obj, which must be of type want (a group or a dataset) and reached
 * through hard links. -1 with err if it is not. Where absent is not NULL, an optional
 * object: *absent = 1 if it does not exist, 2 if it is another kind of object, 3 if it
 * cannot be looked up or opened (a corrupt file; err says which). */
static hid_t open_obj(hid_t f, const char *path, const char *obj, H5O_type_t want,
                      int *absent, csde_err *err)
{
  char e1[160];
  if (absent) *absent = 0;
  int pc = check_path(f, path, obj, err);
  if ((pc == PATH_ABSENT || pc == PATH_UNREADABLE) && absent) {
    *absent = pc == PATH_ABSENT ? 1 : 3;
    return -1;
  }
  const char *kind = want == H5O_TYPE_GROUP ? "group" : "dataset";
  if (pc == PATH_ABSENT) {
    csde_err_set(err, CSDE_EIO, "no %s '%s' in '%s'", kind, esc(obj, e1, sizeof e1), path);
    return -1;
  }
  if (pc != PATH_OK) return -1;
  oinfo_t oi;
  if (OINFO_BY_NAME(f, obj, &oi, H5O_INFO_BASIC) < 0) {
    csde_err_set(err, CSDE_EIO, "cannot read the header of '%s' in '%s' (a corrupt file?)",
                 esc(obj, e1, sizeof e1), path);
    if (absent) *absent = 3;
    return -1;
  }
  if (oi.type != want && absent) { /* optional: another kind of object is no such one */
    *absent = 2;
    return -1;
  }
  if (oi.type != want) {
    csde_err_set(err, CSDE_EIO, "'%s' in '%s' is not a %s", esc(obj, e1, sizeof e1), path,
                 kind);
    return -1;
  }
  hid_t o = H5Oopen(f, obj, H5P_DEFAULT);
  if (o < 0) {
    csde_err_set(err, CSDE_EIO, "cannot open %s '%s' in '%s' (a corrupt file?)", kind,
                 esc(obj, e1, sizeof e1), path);
    if (absent) *absent = 3;
  }
  return o;
}

/* 0 if dataset d keeps its values in the file itself in a way HDF5 reads without
 * opening another file or loading a plugin: compact, contiguous or chunked storage
 * without external files, and no filter but deflate, shuffle and fletcher32. Else
 * CSDE_EIO with err. *nfilters: its filters. */
static int check_storage(hid_t d, const char *path, const char *dset, int *nfilters,
                         csde_err *err)
{
  char e1[160], e2[160];
  int s = CSDE_SUCCESS;
  hid_t dcpl = H5Dget_create_plist(d);
  if (dcpl < 0)
    return csde_err_set(err, CSDE_EIO, "cannot read the storage of dataset '%s' in '%s'",
                        dset, path);
  H5D_layout_t lay = H5Pget_layout(dcpl);
  int next = H5Pget_external_count(dcpl), nf = H5Pget_nfilters(dcpl);
  if (lay == H5D_VIRTUAL) {
    s = csde_err_set(err, CSDE_EIO,
                     "dataset '%s' in '%s' is a virtual dataset: its values are in other "
                     "files, which are not read", dset, path);
  } else if (lay != H5D_COMPACT && lay != H5D_CONTIGUOUS && lay != H5D_CHUNKED) {
    s = csde_err_set(err, CSDE_EIO, "dataset '%s' in '%s' has an unknown storage layout",
                     dset, path);
  } else if (next != 0) {
    char name[256] = "?";
    off_t off;
    hsize_t size;
    if (next < 0 || H5Pget_external(dcpl, 0, sizeof name, name, &off, &size) < 0)
      strcpy(name, "?");
    name[sizeof name - 1] = '\0';
    s = csde_err_set(err, CSDE_EIO,
                     "dataset '%s' in '%s' uses external storage (its values are in '%s'): "
                     "external storage is not read", dset, path, esc(name, e1, sizeof e1));
  } else if (nf < 0) {
    s = csde_err_set(err, CSDE_EIO, "cannot read the filters of dataset '%s' in '%s'", dset,
                     path);
  } else {
    for (int i = 0; i < nf && !s; i++) {
      unsigned flags = 0, conf = 0;
      size_t ncd = 0;
      char fname[64] = "";
      H5Z_filter_t id = H5Pget_filter2(dcpl, (unsigned)i, &flags, &ncd, NULL, sizeof fname,
                                       fname, &conf);
      fname[sizeof fname - 1] = '\0';
      if (id != H5Z_FILTER_DEFLATE && id != H5Z_FILTER_SHUFFLE && id != H5Z_FILTER_FLETCHER32)
        s = csde_err_set(err, CSDE_EIO,
                         "dataset '%s' in '%s' uses filter %d%s%s%s: only deflate (gzip), "
                         "shuffle and fletcher32 are read (HDF5 would load another from a "
                         "plugin)", dset, path, (int)id, fname[0] ? " (" : "",
                         esc(fname, e2, sizeof e2), fname[0] ? ")" : "");
    }
  }
  if (nfilters) *nfilters = nf > 0 ? nf : 0;
  H5Pclose(dcpl);
  return s;
}

/* The extent of dataspace sp: its rank (0 for a scalar, at most maxrank), dims and the
 * product of the dims (*n), checked against overflow and against HDF5's own count.
 * what names the object in messages. */
static int get_extent(hid_t sp, int maxrank, int *rank, hsize_t dims[CSDE_H5_MAXRANK],
                      size_t *n, const char *what, const char *path, csde_err *err)
{
  H5S_class_t c = sp >= 0 ? H5Sget_simple_extent_type(sp) : H5S_NO_CLASS;
  if (c == H5S_NULL)
    return csde_err_set(err, CSDE_EBADLEN, "%s in '%s' has no values (a null dataspace)",
                        what, path);
  if (c != H5S_SCALAR && c != H5S_SIMPLE)
    return csde_err_set(err, CSDE_EIO, "cannot read the dataspace of %s in '%s'", what, path);
  int r = H5Sget_simple_extent_ndims(sp);
  if (r < 0 || (c == H5S_SCALAR && r != 0))
    return csde_err_set(err, CSDE_EIO, "cannot read the rank of %s in '%s'", what, path);
  if (r > maxrank)
    return csde_err_set(err, CSDE_EBADLEN, "%s in '%s' has rank %d (at most %d)", what, path,
                        r, maxrank);
  if (r > 0 && H5Sget_simple_extent_dims(sp, dims, NULL) != r)
    return csde_err_set(err, CSDE_EIO, "cannot read the dims of %s in '%s'", what, path);
  size_t total = 1;
  for (int i = 0; i < r; i++)
    if (dims[i] > (hsize_t)SIZE_MAX || csde_mul_size(total, (size_t)dims[i], &total))
      return csde_err_set(err, CSDE_ENOMEM,
                          "%s in '%s' is too large to read: the product of its dims "
                          "overflows", what, path);
  hssize_t np = H5Sget_simple_extent_npoints(sp);
  if (np < 0 || (unsigned long long)np != (unsigned long long)total)
    return csde_err_set(err, CSDE_EIO, "the dims of %s in '%s' disagree with its size "
                        "(a corrupt file?)", what, path);
  *rank = r;
  *n = total;
  return CSDE_SUCCESS;
}

/* Where the values a read will copy lie, checked before libhdf5 copies them (libhdf5
 * 1.10.8 trusts its index: a chunk recorded at address 0, over the superblock, made
 * H5Dread overflow its own buffer). Contiguous storage, if allocated: inside the file,
 * past address 0, as long as the extent. Chunks that meet the box [start, start + count)
 * (at most CHUNK_CHECK_MAX of them), if written: inside the file, past address 0, and
 * unfiltered ones exactly a chunk's bytes. */
static int check_raw(hid_t d, int rank, const hsize_t *start, const hsize_t *count,
                     const char *path, const char *dset, csde_err *err)
{
  int s = CSDE_SUCCESS;
  hid_t dcpl = H5Dget_create_plist(d), ty = H5Dget_type(d), fid = H5Iget_file_id(d),
        sp = -1;
  hsize_t fsize = 0;
  if (dcpl < 0 || ty < 0 || fid < 0 || H5Fget_filesize(fid, &fsize) < 0) {
    s = csde_err_set(err, CSDE_EIO, "cannot read the storage of dataset '%s' in '%s'", dset,
                     path);
    goto done;
  }
  H5D_layout_t lay = H5Pget_layout(dcpl);
  size_t esize = H5Tget_size(ty);
  if (lay == H5D_CONTIGUOUS) {
    haddr_t off = H5Dget_offset(d); /* undefined: never written (fill values) */
    hsize_t sz = H5Dget_storage_size(d);
    hssize_t np = (sp = H5Dget_space(d)) >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
    if (off != HADDR_UNDEF &&
        (off == 0 || sz > fsize || off > fsize - sz || np < 0 || esize == 0 ||
         sz / esize < (hsize_t)np))
      s = csde_err_set(err, CSDE_EIO, "the values of dataset '%s' in '%s' lie outside the "
                       "file or are shorter than its extent (a corrupt file)", dset, path);
    goto done;
  }
  if (lay != H5D_CHUNKED || rank < 1) goto done;
  int unfiltered = H5Pget_nfilters(dcpl) == 0;
  hsize_t ch[CSDE_H5_MAXRANK], lo[CSDE_H5_MAXRANK], hi[CSDE_H5_MAXRANK], at[CSDE_H5_MAXRANK];
  if (H5Pget_chunk(dcpl, CSDE_H5_MAXRANK, ch) != rank) {
    s = csde_err_set(err, CSDE_EIO, "cannot read the chunk shape of dataset '%s' in '%s'",
                     dset, path);
    goto done;
  }
  size_t bytes = esize, nchunks = 1;
  for (int i = 0; i < rank; i++) {
    if (ch[i] == 0 || csde_mul_size(bytes, (size_t)ch[i], &bytes)) {
      s = csde_err_set(err, CSDE_EIO, "dataset '%s' in '%s' has a chunk shape of no or "
                       "overflowing size", dset, path);
      goto done;
    }
    if (count[i] == 0) goto done; /* nothing is read */
    lo[i] = start[i] / ch[i];
    hi[i] = (start[i] + count[i] - 1) / ch[i];
    if (csde_mul_size(nchunks, (size_t)(hi[i] - lo[i] + 1), &nchunks) ||
        nchunks > CHUNK_CHECK_MAX)
      goto done;
    at[i] = lo[i];
  }
  for (;;) { /* every chunk of the box, last axis fastest */
    hsize_t off[CSDE_H5_MAXRANK], nb = 0;
    haddr_t addr = HADDR_UNDEF;
    unsigned mask = 0;
    for (int i = 0; i < rank; i++) off[i] = at[i] * ch[i];
    /* a chunk never written: size 0, address undefined */
    if (H5Dget_chunk_info_by_coord(d, off, &mask, &addr, &nb) < 0) {
      s = csde_err_set(err, CSDE_EIO, "cannot look up a chunk of dataset '%s' in '%s' "
                       "(a corrupt chunk index?)", dset, path);
      goto done;
    }
    if (nb != 0 && (addr == HADDR_UNDEF || addr == 0 || nb > fsize || addr > fsize - nb)) {
      s = csde_err_set(err, CSDE_EIO, "a chunk of dataset '%s' in '%s' lies outside the "
                       "file's data (a corrupt file)", dset, path);
      goto done;
    }
    if (nb != 0 && unfiltered && nb != (hsize_t)bytes) {
      s = csde_err_set(err, CSDE_EIO, "a chunk of dataset '%s' in '%s' holds %llu bytes, "
                       "its layout says %zu (a corrupt file)", dset, path,
                       (unsigned long long)nb, bytes);
      goto done;
    }
    int i = rank - 1;
    while (i >= 0 && at[i] == hi[i]) at[i--] = 0;
    if (i < 0) break;
    at[i]++;
    for (int j = i + 1; j < rank; j++) at[j] = lo[j];
  }
done:
  if (sp >= 0) H5Sclose(sp);
  if (fid >= 0) H5Fclose(fid);
  if (ty >= 0) H5Tclose(ty);
  if (dcpl >= 0) H5Pclose(dcpl);
  return s;
}

/* The class of dataset d's elements if they are numbers (integers or floats of at most
 * 16 bytes), else H5T_NO_CLASS. */
static H5T_class_t number_class(hid_t d)
{
  hid_t ty = H5Dget_type(d);
  if (ty < 0) return H5T_NO_CLASS;
  H5T_class_t c = H5Tget_class(ty);
  size_t sz = H5Tget_size(ty);
  H5Tclose(ty);
  return (c == H5T_INTEGER || c == H5T_FLOAT) && sz >= 1 && sz <= 16 ? c : H5T_NO_CLASS;
}

/* ---- attributes: looked up by name, checked, then read ---- */

typedef enum { A_STR, A_INT, A_FLOAT, A_INTS, A_FLOATS } attr_kind;

static const char *const kind_text[] = {"a string", "one integer", "one number",
                                        "a list of integers", "a list of numbers"};

typedef struct {
  H5T_class_t cls;
  size_t size;   /* bytes of one element (H5T_VARIABLE's size for variable strings) */
  int sign;      /* integers: 1 signed */
  int vlen;      /* a variable-length string */
  int scalar;    /* a scalar dataspace */
  int rank;      /* of a simple dataspace */
  size_t n;      /* elements */
} attr_desc;

static const char *class_text(H5T_class_t c)
{
  switch (c) {
  case H5T_INTEGER: return "an integer";
  case H5T_FLOAT: return "a float";
  case H5T_STRING: return "a string";
  case H5T_ENUM: return "an enum";
  case H5T_COMPOUND: return "a compound";
  case H5T_VLEN: return "a variable-length sequence";
  case H5T_ARRAY: return "an array type";
  case H5T_OPAQUE: return "an opaque";
  case H5T_REFERENCE: return "a reference";
  case H5T_BITFIELD: return "a bitfield";
  case H5T_TIME: return "a time";
  default: return "an unknown type";
  }
}

/* The type and space of open attribute a, or -1 with why. */
static int attr_describe(hid_t a, attr_desc *d, char *why, size_t wlen)
{
  int s = -1;
  hid_t ty = H5Aget_type(a), sp = H5Aget_space(a);
  memset(d, 0, sizeof *d);
  if (ty < 0 || sp < 0) {
    snprintf(why, wlen, "unreadable (its type or dataspace)");
    goto done;
  }
  d->cls = H5Tget_class(ty);
  d->size = H5Tget_size(ty);
  if (d->cls == H5T_INTEGER) d->sign = H5Tget_sign(ty) != H5T_SGN_NONE;
  if (d->cls == H5T_STRING) d->vlen = H5Tis_variable_str(ty) > 0;
  H5S_class_t sc = H5Sget_simple_extent_type(sp);
  if (sc == H5S_NULL) {
    snprintf(why, wlen, "empty (a null dataspace)");
    goto done;
  }
  if (sc != H5S_SCALAR && sc != H5S_SIMPLE) {
    snprintf(why, wlen, "unreadable (its dataspace)");
    goto done;
  }
  d->scalar = sc == H5S_SCALAR;
  d->rank = H5Sget_simple_extent_ndims(sp);
  hssize_t np = H5Sget_simple_extent_npoints(sp);
  if (d->rank < 0 || np < 0 || (d->scalar && (d->rank != 0 || np != 1))) {
    snprintf(why, wlen, "unreadable (its dataspace)");
    goto done;
  }
  d->n = (size_t)np;
  if (d->size == 0 && !d->vlen) {
    snprintf(why, wlen, "unreadable (an element of 0 bytes)");
    goto done;
  }
  s = 0;
done:
  if (ty >= 0) H5Tclose(ty);
  if (sp >= 0) H5Sclose(sp);
  return s;
}

/* Whether an attribute described by d can be read as kind k: -1 with why if not. One
 * value: a scalar or a simple space of one element; a list: rank 1, at most LIST_MAX. */
static int attr_fits(const attr_desc *d, attr_kind k, char *why, size_t wlen)
{
  int list = k == A_INTS || k == A_FLOATS;
  int cls_ok = k == A_STR ? d->cls == H5T_STRING
             : k == A_INT || k == A_INTS ? d->cls == H5T_INTEGER
             : d->cls == H5T_INTEGER || d->cls == H5T_FLOAT;
  if (!cls_ok) {
    snprintf(why, wlen, "%s, expected %s", class_text(d->cls), kind_text[k]);
    return -1;
  }
  if (d->cls == H5T_INTEGER && (d->size < 1 || d->size > 8)) {
    snprintf(why, wlen, "an integer of %zu bytes, expected at most 8", d->size);
    return -1;
  }
  if (d->cls == H5T_FLOAT && (d->size < 2 || d->size > 16)) {
    snprintf(why, wlen, "a float of %zu bytes", d->size);
    return -1;
  }
  if (d->cls == H5T_STRING && !d->vlen && d->size > STR_MAX) {
    snprintf(why, wlen, "a string of %zu bytes, more than %zu", d->size, STR_MAX);
    return -1;
  }
  if (d->cls == H5T_STRING && d->vlen && !d->scalar) {
    snprintf(why, wlen, "%s of %zu variable-length strings, expected %s",
             d->rank == 1 ? "an array" : "a multi-dimensional array", d->n, kind_text[k]);
    return -1;
  }
  if (list ? d->scalar || d->rank != 1 || d->n > LIST_MAX : d->n != 1) {
    if (d->n == 0)
      snprintf(why, wlen, "an empty array, expected %s", kind_text[k]);
    else if (d->rank > 1)
      snprintf(why, wlen, "a %d-dimensional array of %zu values, expected %s", d->rank, d->n,
               kind_text[k]);
    else if (list && d->scalar)
      snprintf(why, wlen, "a scalar, expected %s", kind_text[k]);
    else
      snprintf(why, wlen, "an array of %zu values, expected %s%s", d->n, kind_text[k],
               list ? " of at most 16" : "");
    return -1;
  }
  return 0;
}

/* Open attribute name of obj: 1 (opened, *a), 0 (absent), -1 (the lookup failed). */
static int attr_open(hid_t obj, const char *name, hid_t *a)
{
  htri_t ex = H5Aexists(obj, name);
  if (ex == 0) return 0;
  if (ex < 0 || (*a = H5Aopen(obj, name, H5P_DEFAULT)) < 0) return -1;
  return 1;
}

/* Read attribute name of obj as one integer (n_saved): 1 (*v), 0 absent, -1 with why (an
 * array, another class, an unsigned value beyond INT64_MAX, unreadable). */
static int attr_int1(hid_t obj, const char *name, long long *v, char *why, size_t wlen)
{
  hid_t a = -1;
  int r = attr_open(obj, name, &a);
  if (r <= 0) {
    if (r < 0) snprintf(why, wlen, "unreadable (a corrupt attribute table?)");
    return r;
  }
  attr_desc d;
  r = -1;
  if (attr_describe(a, &d, why, wlen) == 0 && attr_fits(&d, A_INT, why, wlen) == 0) {
    if (d.sign) {
      if (H5Aread(a, H5T_NATIVE_LLONG, v) >= 0) r = 1;
    } else {
      unsigned long long u;
      if (H5Aread(a, H5T_NATIVE_ULLONG, &u) >= 0) {
        if (u > (unsigned long long)LLONG_MAX) {
          snprintf(why, wlen, "%llu, beyond the range of int64", u);
        } else {
          *v = (long long)u;
          r = 1;
        }
      }
    }
    if (r < 0 && !why[0]) snprintf(why, wlen, "unreadable");
  }
  H5Aclose(a);
  return r;
}

/* ---- reading arrays ---- */

csde_h5_read_params csde_h5_read_default_params(void)
{
  csde_h5_read_params p = {0, 0, 0};
  return p;
}

size_t csde_h5_read_max_default(void)
{
  long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
  size_t b;
  if (pages <= 0 || psize <= 0 || csde_mul_size((size_t)pages, (size_t)psize, &b))
    return SIZE_MAX / 2;
  return b;
}

/* The group holding dataset dset ("/trajectory" for "/trajectory/x"), or "/". */
static void parent_of(const char *dset, char *grp, size_t len)
{
  const char *slash = strrchr(dset, '/');
  size_t n = slash ? (size_t)(slash - dset) : 0;
  if (n >= len) n = len - 1;
  memcpy(grp, dset, n);
  strcpy(grp + n, n ? "" : "/");
}

/* The entries of axis 0 that hold saved states: n_saved of the group holding dset
 * (checked: one integer, 1 <= n_saved <= len), or len where there is none. */
static int saved_entries(hid_t f, const char *path, const char *dset, hsize_t len,
                         hsize_t *out, csde_err *err)
{
  char grp[1024], why[160];
  parent_of(dset, grp, sizeof grp);
  int absent;
  hid_t g = open_obj(f, path, grp, H5O_TYPE_GROUP, &absent, err);
  if (g < 0 && (absent == 1 || absent == 2)) {
    *out = len;
    return CSDE_SUCCESS;
  }
  if (g < 0) return CSDE_EIO;
  long long ns = -1;
  why[0] = '\0';
  int r = attr_int1(g, "n_saved", &ns, why, sizeof why);
  H5Oclose(g);
  if (r == 0) {
    *out = len;
    return CSDE_SUCCESS;
  }
  if (r < 0)
    return csde_err_set(err, CSDE_EBADLEN,
                        "the attribute n_saved of '%s' in '%s' is not a count of saved "
                        "states: %s", grp, path, why);
  if (ns < 0)
    return csde_err_set(err, CSDE_EBADLEN,
                        "the attribute n_saved of '%s' in '%s' is %lld: a count of saved "
                        "states cannot be negative", grp, path, ns);
  if ((unsigned long long)ns > (unsigned long long)len)
    return csde_err_set(err, CSDE_EBADLEN,
                        "the attribute n_saved of '%s' in '%s' is %lld, but '%s' has %llu "
                        "entries", grp, path, ns, dset,
                        (unsigned long long)len);
  *out = (hsize_t)ns;
  return CSDE_SUCCESS;
}

static int read_array(const char *path, const char *dset, const csde_h5_read_params *p,
                      double **out, int *rank_out, size_t dims_out[CSDE_H5_MAXRANK],
                      int values, csde_err *err)
{
  int s = CSDE_SUCCESS, maxrank = p->max_rank > 0 && p->max_rank < CSDE_H5_MAXRANK
                                      ? p->max_rank : CSDE_H5_MAXRANK;
  size_t max_bytes = p->max_bytes ? p->max_bytes : csde_h5_read_max_default();
  double *buf = NULL;
  hid_t f = open_ro(path, 1, err), d = -1, fs = -1, ms = -1;
  if (f < 0) return CSDE_EIO;
  if ((d = open_obj(f, path, dset, H5O_TYPE_DATASET, NULL, err)) < 0) {
    s = CSDE_EIO;
    goto done;
  }
  if ((s = check_storage(d, path, dset, NULL, err))) goto done;
  if (number_class(d) == H5T_NO_CLASS) {
    s = csde_err_set(err, CSDE_EIO, "dataset '%s' in '%s' does not hold numbers", dset, path);
    goto done;
  }
  char what[300];
  snprintf(what, sizeof what, "dataset '%s'", dset);
  hsize_t h[CSDE_H5_MAXRANK], start[CSDE_H5_MAXRANK];
  int r = 0;
  size_t total = 0;
  fs = H5Dget_space(d);
  if ((s = get_extent(fs, maxrank, &r, h, &total, what, path, err))) goto done;
  if (p->last_of_first_axis && r < 1) {
    s = csde_err_set(err, CSDE_EBADLEN, "dataset '%s' in '%s' is a scalar, expected an axis "
                     "of saved states", dset, path);
    goto done;
  }
  if (rank_out) *rank_out = r;
  if (dims_out)
    for (int i = 0; i < r; i++) dims_out[i] = (size_t)h[i];
  if (!values) goto done;
  for (int i = 0; i < r; i++) start[i] = 0;
  if (p->last_of_first_axis) {
    /* the last saved state: entry n_saved - 1 (a killed run's entries past n_saved are
     * not states) */
    hsize_t len = 0;
    if ((s = saved_entries(f, path, dset, h[0], &len, err))) goto done;
    if (len == 0) {
      s = csde_err_set(err, CSDE_EBADLEN, "dataset '%s' in '%s' is empty%s", dset, path,
                       h[0] ? " (n_saved is 0: no state was saved)" : "");
      goto done;
    }
    start[0] = len - 1;
    total /= (size_t)h[0];
    h[0] = 1;
    if (H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, h, NULL) < 0) {
      s = csde_err_set(err, CSDE_EIO, "cannot select in '%s' of '%s'", dset, path);
      goto done;
    }
  }
  if (total > max_bytes / sizeof(double)) {
    s = csde_err_set(err, CSDE_ENOMEM,
                     "dataset '%s' in '%s' holds %zu values (%.3g GB as doubles), more than "
                     "the %.3g GB this read may take", dset, path, total,
                     (double)total * sizeof(double) * 1e-9, (double)max_bytes * 1e-9);
    goto done;
  }
  if ((s = check_raw(d, r, start, h, path, dset, err))) goto done;
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

int csde_h5_read_array(const char *path, const char *dset, const csde_h5_read_params *p,
                       double **out, int *rank, size_t dims[CSDE_H5_MAXRANK], csde_err *err)
{
  csde_h5_read_params def = csde_h5_read_default_params();
  csde_h5_quiet q;
  csde_h5_quiet_begin(&q);
  int s = read_array(path, dset, p ? p : &def, out, rank, dims, 1, err);
  csde_h5_quiet_end(&q);
  return s;
}

int csde_h5_shape(const char *path, const char *dset, int *rank,
                  size_t dims[CSDE_H5_MAXRANK], csde_err *err)
{
  csde_h5_read_params def = csde_h5_read_default_params();
  csde_h5_quiet q;
  csde_h5_quiet_begin(&q);
  int s = read_array(path, dset, &def, NULL, rank, dims, 0, err);
  csde_h5_quiet_end(&q);
  return s;
}

static int group_datasets(const char *path, const char *group, csde_h5_member **out,
                          size_t *n, csde_err *err)
{
  char e1[160];
  int s = CSDE_SUCCESS;
  csde_h5_member *m = NULL;
  size_t k = 0;
  hid_t f = open_ro(path, 1, err), g = -1;
  if (f < 0) return CSDE_EIO;
  if ((g = open_obj(f, path, group, H5O_TYPE_GROUP, NULL, err)) < 0) {
    s = CSDE_EIO;
    goto done;
  }
  H5G_info_t gi;
  if (H5Gget_info(g, &gi) < 0) {
    s = csde_err_set(err, CSDE_EIO, "cannot list group '%s' in '%s' (a corrupt file?)",
                     esc(group, e1, sizeof e1), path);
    goto done;
  }
  if (gi.nlinks == 0 || gi.nlinks > 4096) {
    s = csde_err_set(err, CSDE_EBADLEN, "group '%s' in '%s' holds %llu entries, expected 1 "
                     "to 4096 datasets", esc(group, e1, sizeof e1), path,
                     (unsigned long long)gi.nlinks);
    goto done;
  }
  if (!(m = calloc((size_t)gi.nlinks, sizeof *m))) {
    s = csde_err_set(err, CSDE_ENOMEM, "out of memory listing '%s'", path);
    goto done;
  }
  for (hsize_t i = 0; i < gi.nlinks; i++, k++) {
    char name[256], obj[1024];
    ssize_t len = H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, name,
                                     sizeof name, H5P_DEFAULT);
    if (len <= 0 || (size_t)len >= sizeof name || strlen(name) != (size_t)len) {
      s = csde_err_set(err, CSDE_EIO, "entry %llu of group '%s' in '%s' has no usable name "
                       "(empty, over 255 bytes or with a NUL)", (unsigned long long)i,
                       esc(group, e1, sizeof e1), path);
      goto done;
    }
    snprintf(obj, sizeof obj, "%s/%s", strcmp(group, "/") ? group : "", name);
    hid_t d = open_obj(f, path, obj, H5O_TYPE_DATASET, NULL, err); /* hard links only */
    if (d < 0) {
      s = CSDE_EIO;
      goto done;
    }
    H5T_class_t c = number_class(d);
    H5Dclose(d);
    if (c == H5T_NO_CLASS) {
      s = csde_err_set(err, CSDE_EIO, "dataset '%s' in '%s' does not hold numbers",
                       esc(obj, e1, sizeof e1), path);
      goto done;
    }
    if (!(m[k].name = strdup(name))) {
      s = csde_err_set(err, CSDE_ENOMEM, "out of memory listing '%s'", path);
      goto done;
    }
    m[k].integer = c == H5T_INTEGER;
  }
done:
  if (g >= 0) H5Oclose(g);
  H5Fclose(f);
  if (s) {
    csde_h5_members_free(m, m ? k + 1 : 0); /* the entry that failed: NULL or its name */
    m = NULL;
    k = 0;
  }
  *out = m;
  *n = k;
  return s;
}

int csde_h5_group_datasets(const char *path, const char *group, csde_h5_member **out,
                           size_t *n, csde_err *err)
{
  csde_h5_quiet q;
  csde_h5_quiet_begin(&q);
  int s = group_datasets(path, group, out, n, err);
  csde_h5_quiet_end(&q);
  return s;
}

void csde_h5_members_free(csde_h5_member *m, size_t n)
{
  for (size_t i = 0; m && i < n; i++) free(m[i].name);
  free(m);
}

int csde_h5_read_doubles(const char *path, const char *dset, int last_of_first_axis,
                         double **out, csde_err *err)
{
  csde_h5_read_params p = csde_h5_read_default_params();
  p.last_of_first_axis = last_of_first_axis;
  return csde_h5_read_array(path, dset, &p, out, NULL, NULL, err);
}

int csde_h5_exists(const char *path, const char *dset)
{
  csde_h5_quiet q;
  csde_h5_quiet_begin(&q);
  csde_err err;
  int has = 0, absent = 0;
  hid_t f = open_ro(path, 1, &err);
  if (f >= 0) {
    hid_t d = open_obj(f, path, dset, H5O_TYPE_DATASET, &absent, &err);
    if (d >= 0) {
      has = 1;
      H5Oclose(d);
    }
    H5Fclose(f);
  }
  csde_h5_quiet_end(&q);
  return has;
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

/* The attributes corrsde's writers put on each object (src/run/traj.c write_parameters
 * and write_covariance, src/io/h5traj.c's /stats, src/experiment/record.c), with the
 * kind info reads each as; no other attribute is read. */
typedef struct {
  const char *name;
  attr_kind kind;
} known_attr;

static const known_attr params_known[] = {
  {"T", A_FLOAT}, {"atol", A_FLOAT}, {"batch", A_INT}, {"command_line", A_STR},
  {"compress", A_INT}, {"compression", A_STR}, {"corrsde_version", A_STR},
  {"cov_method", A_STR}, {"cov_method_used", A_STR}, {"covariance", A_STR},
  {"created", A_STR}, {"dtype", A_STR}, {"eps", A_FLOAT}, {"eta", A_FLOAT},
  {"first_sample", A_INT}, {"frame_shape", A_INTS}, {"frames", A_INT}, {"grid", A_STR},
  {"guidance", A_STR}, {"guidance_split", A_INT},
  {"init", A_STR}, {"init_stream", A_INT}, {"max_nfe", A_INT}, {"model", A_STR},
  {"model_name", A_STR}, {"model_output", A_STR}, {"noise", A_STR},
  {"noise_generator", A_STR}, {"noise_streams", A_STR}, {"pixels", A_INT},
  {"process", A_STR}, {"process_spec", A_STR}, {"rng", A_STR}, {"rng_kernel", A_STR},
  {"rtol", A_FLOAT}, {"save", A_STR}, {"schedule", A_STR}, {"seed", A_INT},
  {"solver", A_STR}, {"stepping", A_STR}, {"steps", A_INT}, {"t_end", A_FLOAT},
  {"t_start", A_FLOAT}, {"threads", A_INT}, {"x0_clip", A_STR}, {"x0_threshold", A_STR},
  {NULL, A_STR},
};

static const known_attr stats_known[] = {
  {"accepted", A_INT}, {"n_saved", A_INT}, {"nfe", A_INT}, {"rejected", A_INT},
  {"status", A_STR}, {"steps", A_INT}, {"wall_seconds", A_FLOAT}, {NULL, A_STR},
};

static const known_attr cov_known[] = {
  {"eigenvalue_range", A_FLOATS}, {"eigenvalue_range_exact", A_INT}, {"exact", A_INT},
  {"kl_per_frame", A_FLOAT}, {"logdet", A_FLOAT}, {"matrix", A_STR},
  {"max_entry_diff", A_FLOAT}, {"method", A_STR}, {"noise_dim", A_INT}, {"spec", A_STR},
  {NULL, A_STR},
};

/* Read open attribute a (described by d, of kind k) into b. -1 if HDF5 fails. */
static int attr_format(hid_t a, const attr_desc *d, attr_kind k, strbuf *b)
{
  int s = -1, list = k == A_INTS || k == A_FLOATS;
  if (d->cls == H5T_STRING) {
    hid_t ty = H5Aget_type(a), mt = H5Tcopy(H5T_C_S1);
    if (ty >= 0 && mt >= 0 && H5Tset_cset(mt, H5Tget_cset(ty)) >= 0) {
      if (d->vlen) { /* a scalar (attr_fits): one pointer */
        char *v = NULL;
        if (H5Tset_size(mt, H5T_VARIABLE) >= 0 && H5Aread(a, mt, &v) >= 0) {
          sb_add(b, "%s", v ? v : "");
          s = 0;
          H5free_memory(v);
        }
      } else {
        char *v = calloc(1, d->size + 1); /* one element (attr_fits), with a terminator */
        if (v && H5Tset_size(mt, d->size + 1) >= 0 && H5Tset_strpad(mt, H5T_STR_NULLTERM) >= 0 &&
            H5Aread(a, mt, v) >= 0) {
          size_t l = strnlen(v, d->size);
          while (l > 0 && v[l - 1] == ' ') l--; /* space-padded (Fortran) strings */
          sb_add(b, "%.*s", (int)l, v);
          s = 0;
        }
        free(v);
      }
    }
    if (mt >= 0) H5Tclose(mt);
    if (ty >= 0) H5Tclose(ty);
    return s;
  }
  size_t n = d->n; /* 1, or a list of at most LIST_MAX (attr_fits) */
  if (list) sb_add(b, "[");
  if (d->cls == H5T_INTEGER && d->sign) {
    long long v[LIST_MAX];
    if ((s = H5Aread(a, H5T_NATIVE_LLONG, v) < 0 ? -1 : 0) == 0)
      for (size_t i = 0; i < n; i++) sb_add(b, "%s%lld", i ? ", " : "", v[i]);
  } else if (d->cls == H5T_INTEGER) {
    unsigned long long v[LIST_MAX];
    if ((s = H5Aread(a, H5T_NATIVE_ULLONG, v) < 0 ? -1 : 0) == 0)
      for (size_t i = 0; i < n; i++) sb_add(b, "%s%llu", i ? ", " : "", v[i]);
  } else {
    double v[LIST_MAX];
    if ((s = H5Aread(a, H5T_NATIVE_DOUBLE, v) < 0 ? -1 : 0) == 0)
      for (size_t i = 0; i < n; i++) {
        if (i) sb_add(b, ", ");
        fmt_double(b, v[i]);
      }
  }
  if (list) sb_add(b, "]");
  return s;
}

static int attr_add(csde_h5attrs *g, const char *name, strbuf *b, int ok)
{
  csde_h5attr *t = realloc(g->a, (g->n + 1) * sizeof *t);
  if (!t) {
    free(b->s);
    return -1;
  }
  g->a = t;
  t[g->n].name = strdup(name);
  t[g->n].text = b->s ? b->s : strdup("");
  t[g->n].ok = ok;
  if (!t[g->n].name || !t[g->n].text) {
    free(t[g->n].name);
    free(t[g->n].text);
    return -1;
  }
  g->n++;
  return 0;
}

/* One pass over the known attributes of obj: phase 0 reads the fixed-size ones (and
 * counts what is there), phase 1 the variable-length strings (their values are in the
 * global heap, where a corrupt file can still crash libhdf5: read last, and only these
 * few). -1 when out of memory. */
static int read_known(hid_t obj, const known_attr *known, int phase, csde_h5attrs *g)
{
  for (const known_attr *k = known; k->name; k++) {
    hid_t a = -1;
    int r = attr_open(obj, k->name, &a);
    if (r < 0 && phase == 0) g->unreadable++;
    if (r <= 0) continue;
    attr_desc d;
    char why[160] = "";
    strbuf b = {0};
    int ok = attr_describe(a, &d, why, sizeof why) == 0 &&
             attr_fits(&d, k->kind, why, sizeof why) == 0;
    int late = ok && d.cls == H5T_STRING && d.vlen; /* read in phase 1 */
    if (late != (phase == 1)) {
      H5Aclose(a);
      continue;
    }
    if (ok && attr_format(a, &d, k->kind, &b) < 0) {
      free(b.s);
      b.s = NULL;
      snprintf(why, sizeof why, "unreadable");
      ok = 0;
    }
    if (!ok) {
      free(b.s);
      b.s = NULL;
      sb_add(&b, "%s", why);
    }
    H5Aclose(a);
    if (attr_add(g, k->name, &b, ok)) return -1;
  }
  return 0;
}

static int attr_cmp(const void *x, const void *y)
{
  return strcmp(((const csde_h5attr *)x)->name, ((const csde_h5attr *)y)->name);
}

static void free_attrs(csde_h5attrs *g)
{
  for (size_t i = 0; i < g->n; i++) {
    free(g->a[i].name);
    free(g->a[i].text);
  }
  free(g->a);
  memset(g, 0, sizeof *g);
}

/* The known attributes of the three groups: fixed-size values first, then variable
 * strings; the other attributes are counted (H5Oget_info: the object header's count,
 * no attribute is decoded). Never an iteration over the attributes: libhdf5 1.10.8
 * crashes building the table of a corrupt one (H5A__close in H5Aiterate2, and in
 * H5Aget_name_by_idx). */
static int read_groups(hid_t f, const char *path, csde_h5traj_info *info, csde_err *err)
{
  static const char *const names[3] = {"/parameters", "/stats", "/covariance"};
  static const known_attr *const tables[3] = {params_known, stats_known, cov_known};
  csde_h5attrs *groups[3] = {&info->params, &info->stats, &info->cov_attrs};
  hid_t obj[3] = {-1, -1, -1};
  int s = CSDE_SUCCESS;
  for (int i = 0; i < 3 && !s; i++) {
    int absent;
    csde_err e;
    obj[i] = open_obj(f, path, names[i], H5O_TYPE_GROUP, &absent, &e);
    if (obj[i] < 0 && !absent) s = csde_err_set(err, e.status, "%s", e.msg); /* a link */
    if (absent == 3) groups[i]->lookup_failed = 1;
  }
  for (int phase = 0; phase < 2 && !s; phase++)
    for (int i = 0; i < 3 && !s; i++)
      if (obj[i] >= 0 && read_known(obj[i], tables[i], phase, groups[i]))
        s = csde_err_set(err, CSDE_ENOMEM, "out of memory reading the attributes of '%s'",
                         path);
  for (int i = 0; i < 3; i++) {
    if (obj[i] < 0) continue;
    oinfo_t oi;
    if (!s && OINFO(obj[i], &oi, H5O_INFO_NUM_ATTRS) >= 0) {
      size_t seen = groups[i]->n + groups[i]->unreadable;
      groups[i]->other = (size_t)oi.num_attrs > seen ? (size_t)oi.num_attrs - seen : 0;
    }
    if (groups[i]->n) qsort(groups[i]->a, groups[i]->n, sizeof *groups[i]->a, attr_cmp);
    H5Oclose(obj[i]);
  }
  return s;
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
    snprintf(buf, len, "%s", class_text(c));
}

/* Describe dataset name: absent (present = 0), or its shape, type, chunks and filters.
 * A dataset kept out of the file (a link, external storage, a virtual dataset, a
 * plugin's filter) or of rank above CSDE_H5_MAXRANK is an error. */
static int dset_info(hid_t f, const char *path, const char *name, csde_h5dset_info *di,
                     csde_err *err)
{
  memset(di, 0, sizeof *di);
  int absent, s = CSDE_SUCCESS;
  hid_t d = open_obj(f, path, name, H5O_TYPE_DATASET, &absent, err);
  if (d < 0 && absent == 3) { /* shown as a note: the rest of the file may be readable */
    snprintf(di->note, sizeof di->note, "cannot be looked up or opened (a corrupt file?)");
    return CSDE_SUCCESS;
  }
  if (d < 0) return absent ? CSDE_SUCCESS : CSDE_EIO;
  hid_t sp = -1, ty = -1, dcpl = -1;
  if ((s = check_storage(d, path, name, NULL, err))) goto done;
  sp = H5Dget_space(d);
  ty = H5Dget_type(d);
  dcpl = H5Dget_create_plist(d);
  char what[300];
  snprintf(what, sizeof what, "dataset '%s'", name);
  hsize_t h[CSDE_H5_MAXRANK];
  size_t total;
  int r = 0;
  s = get_extent(sp, CSDE_H5_MAXRANK, &r, h, &total, what, path, err);
  if (s == CSDE_EBADLEN && sp >= 0 && H5Sget_simple_extent_type(sp) == H5S_NULL) {
    s = CSDE_SUCCESS; /* shown, with no values */
    r = 0;
    snprintf(di->note, sizeof di->note, "no values (a null dataspace)");
  } else if (s == CSDE_ENOMEM) { /* overflowing dims: shown as they are */
    s = CSDE_SUCCESS;
    r = H5Sget_simple_extent_ndims(sp);
    if (r < 0 || r > CSDE_H5_MAXRANK || H5Sget_simple_extent_dims(sp, h, NULL) != r) {
      s = csde_err_set(err, CSDE_EIO, "cannot read the dims of %s in '%s'", what, path);
      goto done;
    }
    snprintf(di->note, sizeof di->note, "the product of its dims overflows");
  }
  if (s) goto done;
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
    H5Z_filter_t id = H5Pget_filter2(dcpl, (unsigned)i, &flags, &ncd, cd, 0, NULL, NULL);
    char one[32];
    if (id == H5Z_FILTER_DEFLATE)
      snprintf(one, sizeof one, "gzip(%u)", ncd ? cd[0] : 0);
    else if (id == H5Z_FILTER_SHUFFLE)
      snprintf(one, sizeof one, "shuffle");
    else
      snprintf(one, sizeof one, "fletcher32"); /* the only other (check_storage) */
    used += (size_t)snprintf(di->filters + used, sizeof di->filters - used, "%s%s",
                             used ? "+" : "", one);
  }
done:
  if (dcpl >= 0) H5Pclose(dcpl);
  if (ty >= 0) H5Tclose(ty);
  if (sp >= 0) H5Sclose(sp);
  H5Dclose(d);
  return s;
}

/* Read entries idx[0..n) (n <= 2) of 1-D dataset name as memory type mt into out. A
 * note says why not (and -1) when the dataset is not 1-D numbers of class want (want
 * H5T_FLOAT takes integers too). */
static int read_points(hid_t f, const char *path, const char *name, csde_h5dset_info *di,
                       H5T_class_t want, hid_t mt, const hsize_t *idx, size_t n, void *out)
{
  if (di->note[0]) return -1;
  if (di->rank != 1) {
    snprintf(di->note, sizeof di->note, "not read: %d dimensions, expected 1", di->rank);
    return -1;
  }
  csde_err e;
  hid_t d = open_obj(f, path, name, H5O_TYPE_DATASET, NULL, &e), fs = -1, ms = -1;
  int s = -1;
  if (d < 0) {
    snprintf(di->note, sizeof di->note, "not read: cannot open it");
    return -1;
  }
  H5T_class_t c = number_class(d);
  if (c == H5T_NO_CLASS || (want == H5T_INTEGER && c != H5T_INTEGER)) {
    snprintf(di->note, sizeof di->note, "not read: %s values, expected %s",
             c == H5T_NO_CLASS ? di->type : "float",
             want == H5T_INTEGER ? "integers" : "numbers");
    goto done;
  }
  hsize_t one = 1, cnt = n;
  for (size_t i = 0; i < n; i++)
    if (idx[i] >= di->dims[0] || check_raw(d, 1, &idx[i], &one, path, name, &e)) {
      snprintf(di->note, sizeof di->note, "not read: %s", idx[i] >= di->dims[0]
               ? "an entry beyond its extent" : "its storage is corrupt");
      goto done;
    }
  fs = H5Dget_space(d);
  ms = H5Screate_simple(1, &cnt, NULL);
  if (fs < 0 || ms < 0 || H5Sselect_elements(fs, H5S_SELECT_SET, n, idx) < 0 ||
      H5Dread(d, mt, ms, fs, H5P_DEFAULT, out) < 0) {
    snprintf(di->note, sizeof di->note, "not read: HDF5 cannot read it");
    goto done;
  }
  s = 0;
done:
  if (ms >= 0) H5Sclose(ms);
  if (fs >= 0) H5Sclose(fs);
  H5Dclose(d);
  return s;
}

/* The range of the eigenvalues, read in blocks (at most EIG_MAX of them). */
static void read_eig_range(hid_t f, const char *path, csde_h5traj_info *info)
{
  csde_h5dset_info *di = &info->eig;
  const char *name = "/covariance/eigenvalues";
  if (di->note[0] || di->rank != 1 || di->dims[0] == 0) {
    if (!di->note[0] && di->rank != 1)
      snprintf(di->note, sizeof di->note, "not read: %d dimensions, expected 1", di->rank);
    return;
  }
  if (di->dims[0] > EIG_MAX) {
    snprintf(di->note, sizeof di->note, "not read: %zu values, more than %llu", di->dims[0],
             (unsigned long long)EIG_MAX);
    return;
  }
  csde_err e;
  hid_t d = open_obj(f, path, name, H5O_TYPE_DATASET, NULL, &e), fs = -1, ms = -1;
  if (d < 0) {
    snprintf(di->note, sizeof di->note, "not read: cannot open it");
    return;
  }
  enum { BLK = 4096 };
  double v[BLK];
  hsize_t len = di->dims[0], blk = BLK;
  info->eig_min = INFINITY;
  info->eig_max = -INFINITY;
  if (number_class(d) == H5T_NO_CLASS) {
    snprintf(di->note, sizeof di->note, "not read: %s values, expected numbers", di->type);
    goto done;
  }
  fs = H5Dget_space(d);
  ms = H5Screate_simple(1, &blk, NULL);
  for (hsize_t i = 0; i < len; i += BLK) {
    hsize_t cnt = len - i < BLK ? len - i : BLK, z = 0;
    if (fs < 0 || ms < 0 || check_raw(d, 1, &i, &cnt, path, name, &e) ||
        H5Sselect_hyperslab(fs, H5S_SELECT_SET, &i, NULL, &cnt, NULL) < 0 ||
        H5Sselect_hyperslab(ms, H5S_SELECT_SET, &z, NULL, &cnt, NULL) < 0 ||
        H5Dread(d, H5T_NATIVE_DOUBLE, ms, fs, H5P_DEFAULT, v) < 0) {
      snprintf(di->note, sizeof di->note, "not read: HDF5 cannot read it");
      goto done;
    }
    for (hsize_t j = 0; j < cnt; j++) {
      info->eig_min = fmin(info->eig_min, v[j]);
      info->eig_max = fmax(info->eig_max, v[j]);
    }
  }
done:
  if (ms >= 0) H5Sclose(ms);
  if (fs >= 0) H5Sclose(fs);
  H5Dclose(d);
}

/* /trajectory n_saved for info: ignored (with a note) unless one integer >= 0; clamped
 * (with a note) to the extent of x. */
static void read_n_saved(hid_t f, const char *path, csde_h5traj_info *info)
{
  char why[160] = "";
  csde_err e;
  info->n_saved = -1;
  hid_t g = open_obj(f, path, "/trajectory", H5O_TYPE_GROUP, NULL, &e);
  if (g < 0) return;
  long long v = -1;
  int r = attr_int1(g, "n_saved", &v, why, sizeof why);
  H5Oclose(g);
  size_t extent = info->x.rank > 0 ? info->x.dims[0] : 0;
  if (r < 0) {
    snprintf(info->n_saved_note, sizeof info->n_saved_note,
             "n_saved ignored: %s; all %zu entries counted", why, extent);
  } else if (r > 0 && v < 0) {
    snprintf(info->n_saved_note, sizeof info->n_saved_note,
             "n_saved ignored: %lld is negative; all %zu entries counted", v, extent);
  } else if (r > 0 && (unsigned long long)v > (unsigned long long)extent) {
    snprintf(info->n_saved_note, sizeof info->n_saved_note,
             "n_saved is %lld, more than the %zu entries of x: clamped to %zu", v, extent,
             extent);
    info->n_saved = (long long)extent;
  } else if (r > 0) {
    info->n_saved = v;
  }
}

void csde_h5traj_info_free(csde_h5traj_info *info)
{
  if (!info) return;
  free_attrs(&info->params);
  free_attrs(&info->stats);
  free_attrs(&info->cov_attrs);
  memset(info, 0, sizeof *info);
}

const char *csde_h5attr_get(const csde_h5attrs *g, const char *name)
{
  for (size_t i = 0; i < g->n; i++)
    if (!strcmp(g->a[i].name, name)) return g->a[i].ok ? g->a[i].text : NULL;
  return NULL;
}

size_t csde_h5traj_info_saved(const csde_h5traj_info *info, size_t len)
{
  return info->n_saved >= 0 && (size_t)info->n_saved < len ? (size_t)info->n_saved : len;
}

static int info_read(const char *path, csde_h5traj_info *info, csde_err *err)
{
  memset(info, 0, sizeof *info);
  info->n_saved = -1;
  hid_t f = open_ro(path, 0, err);
  if (f < 0) return CSDE_EIO;
  int s = dset_info(f, path, "/trajectory/x", &info->x, err);
  if (!s && !info->x.present && info->x.note[0])
    s = csde_err_set(err, CSDE_EIO, "'%s': /trajectory/x %s", path, info->x.note);
  else if (!s && !info->x.present)
    s = csde_err_set(err, CSDE_EIO, "'%s' has no dataset /trajectory/x (not a trajectory file)",
                     path);
  if (!s) s = dset_info(f, path, "/trajectory/t", &info->t, err);
  if (!s) s = dset_info(f, path, "/trajectory/step", &info->step, err);
  if (!s) s = dset_info(f, path, "/covariance/matrix", &info->cov, err);
  if (!s) s = dset_info(f, path, "/covariance/eigenvalues", &info->eig, err);
  if (s) goto done;
  read_n_saved(f, path, info);
  size_t nt = info->t.present ? csde_h5traj_info_saved(info, info->t.dims[0]) : 0;
  if (nt && info->t.rank == 1) {
    double v[2];
    hsize_t idx[2] = {0, nt - 1};
    if (read_points(f, path, "/trajectory/t", &info->t, H5T_FLOAT, H5T_NATIVE_DOUBLE, idx, 2,
                    v) == 0) {
      info->t_first = v[0];
      info->t_last = v[1];
    }
  } else if (info->t.present && info->t.rank != 1 && !info->t.note[0]) {
    snprintf(info->t.note, sizeof info->t.note, "not read: %d dimensions, expected 1",
             info->t.rank);
  }
  size_t ns = info->step.present ? csde_h5traj_info_saved(info, info->step.dims[0]) : 0;
  if (ns && info->step.rank == 1) {
    long long v[2];
    hsize_t idx[2] = {0, ns - 1};
    if (read_points(f, path, "/trajectory/step", &info->step, H5T_INTEGER, H5T_NATIVE_LLONG,
                    idx, 2, v) == 0) {
      info->step_first = v[0];
      info->step_last = v[1];
    }
  } else if (info->step.present && info->step.rank != 1 && !info->step.note[0]) {
    snprintf(info->step.note, sizeof info->step.note, "not read: %d dimensions, expected 1",
             info->step.rank);
  }
  if (info->eig.present) read_eig_range(f, path, info);
  s = read_groups(f, path, info, err);
done:
  H5Fclose(f);
  if (s) csde_h5traj_info_free(info);
  return s;
}

int csde_h5traj_info_read(const char *path, csde_h5traj_info *info, csde_err *err)
{
  csde_h5_quiet q;
  csde_h5_quiet_begin(&q);
  int s = info_read(path, info, err);
  csde_h5_quiet_end(&q);
  return s;
}
