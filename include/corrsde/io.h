/* corrsde/io.h: the library's files, for programs (the `corrsde` command line, bindings).
 *
 *   csde_outfile_*        an output file written so that nothing the run did not create
 *                         is ever written, truncated or replaced (src/io/outfile.c)
 *   csde_results_write    a file of per-sample results with the run's /parameters
 *   csde_h5_read_array    and the other readers of numbers in HDF5 files, every file
 *                         hostile until checked (src/io/h5traj_read.c)
 *   csde_h5traj_info_*    what `corrsde info` shows of a trajectory file
 *   csde_split_h5_path, csde_shape_str, csde_h5_escape: "F.h5:/dataset", shapes and a
 *                         file's strings, for messages
 *   csde_h5_program_init  HDF5's exit handler off, for programs
 */
#ifndef CORRSDE_IO_H
#define CORRSDE_IO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "corrsde/export.h"
#include "corrsde/problem.h"
#include "corrsde/status.h"

/* ==== output files ====
 *
 * An output file and the files a run makes beside it (io/outfile.c), so that
 * nothing the run did not create is ever written, truncated or replaced.
 *
 * - OUT's directory is opened once; every name below is used relative to it (openat,
 *   renameat, unlinkat) and never through a symbolic link (O_NOFOLLOW), so a link or a
 *   directory swapped in along the path after the checks changes nothing.
 * - OUT must be absent or a regular file. A symbolic link, a device, a FIFO, a socket or
 *   a directory is refused, with or without overwrite; so is a file locked by a writer
 *   (flock: another run's lock file, or a file HDF5 holds open for writing).
 * - OUT.lock (CSDE_OUT_LOCK) is made, or reused when it is a lock a killed run left (a
 *   regular file with one link holding at most a pid line), and held with
 *   flock(LOCK_EX) until the release, which removes it while still holding it. A second
 *   writer of OUT is refused before it touches anything.
 * - The file is written under a fresh name, OUT.partial.XXXXXX, made with O_CREAT |
 *   O_EXCL | O_NOFOLLOW (like mkstemp) and kept open: a writer opens it through
 *   csde_outfile_name(), /proc/self/fd/N, which is that inode whatever happens to the
 *   names in the directory.
 * - The commit renames it to OUT: over nothing (RENAME_NOREPLACE) for a new file, over a
 *   regular file not locked by a writer when overwriting, and only while the temporary
 *   name still names our file. A rename replaces a directory entry and never writes
 *   through one.
 * The checks of an existing name and the rename are two calls: an entry swapped in
 * between them is replaced (never written through), which the directory's owner can do
 * anyway. */

enum {
  CSDE_OUT_OVERWRITE = 1, /* an existing regular OUT may be replaced (at the commit) */
  CSDE_OUT_LOCK = 2,      /* hold OUT.lock from open to release */
  CSDE_OUT_NAMED = 4,     /* csde_outfile_name() is the temporary's path, not
                             /proc/self/fd/N (for other processes: MPI ranks) */
  CSDE_OUT_NO_TMP = 8     /* no temporary: the lock and the checks alone (a writer that
                             makes a new temporary per write, under the lock it holds) */
};

typedef struct {
  char *path;     /* OUT as the caller named it (messages) */
  char *dir;      /* its directory, as named */
  char *base;     /* its last component */
  char *lock;     /* base.lock */
  char *lock_path; /* dir/lock (messages) */
  char *tmp;      /* base.partial.XXXXXX */
  char *tmp_path; /* dir/tmp (messages, and CSDE_OUT_NAMED) */
  char fdname[40];
  int dirfd, lock_fd, tmp_fd;
  dev_t tmp_dev;
  ino_t tmp_ino;
  int flags;
  int existed;    /* OUT was a regular file at open */
  int committed;  /* the temporary is OUT now */
} csde_outfile;

/* Check that OUT may be written (the rules above; overwrite: an existing regular file may
 * be replaced), touching nothing: for a front end's early message. CSDE_EIO naming the
 * file and what is wrong. */
CSDE_API int csde_outfile_check(const char *path, int overwrite, csde_err *err);

/* Open OUT's directory, check OUT, take the lock (CSDE_OUT_LOCK) and create the
 * temporary. On failure nothing is left behind and o needs no release. */
CSDE_API int csde_outfile_open(csde_outfile *o, const char *path, int flags, csde_err *err);

/* The name a writer opens the temporary by (/proc/self/fd/N, or its path with
 * CSDE_OUT_NAMED), and the descriptor kept on it. */
CSDE_API const char *csde_outfile_name(const csde_outfile *o);
CSDE_API int csde_outfile_fd(const csde_outfile *o);
/* The temporary's path (messages). */
CSDE_API const char *csde_outfile_tmp_path(const csde_outfile *o);

/* Rename the temporary to OUT (once; later calls do nothing). */
CSDE_API int csde_outfile_commit(csde_outfile *o, csde_err *err);

/* Remove OUT if it is the file this run committed as new (a run that fails before it
 * starts leaves nothing); never an old file it replaced. */
CSDE_API void csde_outfile_remove_new(csde_outfile *o);

/* Remove the temporary if it was not committed, close everything and release the lock.
 * Accepts a zeroed (never opened) or released o. */
CSDE_API void csde_outfile_release(csde_outfile *o);

/* ==== a file of per-sample results (`corrsde likelihood -o`) ====
 * /parameters: "command", the caller's attributes (attrs, in order), then the problem's
 * shared ones (schedule, t_start, t_end, T, eps, covariance, cov_method, cov_method_used,
 * model, model_name, model_output, frames, frame_shape, pixels, seed, init, rng,
 * threads, command_line, corrsde_version, created: those of every corrsde file);
 * /covariance as in a trajectory file; then each array as a float64 dataset. Written
 * whole under a temporary name and renamed over path (the rules above; overwrite: an
 * existing regular file may be replaced), so a failure leaves nothing behind. */
typedef struct {
  const char *name;  /* the attribute's name */
  const char *text;  /* a string; or NULL: */
  double value;      /* a float64 scalar, or an int64 scalar when integer */
  int integer;
} csde_results_attr;
typedef struct {
  const char *name;  /* a dataset path ("/logp"); parents are made */
  const double *v;
  int rank;          /* 1..CSDE_H5_MAXRANK */
  const size_t *dims;
} csde_results_array;
typedef struct {
  const csde_problem *P;          /* sched, T, eps, C, model, tau, D */
  double t_start, t_end;
  const char *command, *cov_method, *model_spec, *init, *command_line;
  int shape_rank;                 /* 1..3: the frame shape, D its product */
  const size_t *shape;
  uint64_t seed;
  int64_t threads;
  const csde_results_attr *attrs;
  size_t nattrs;
  const csde_results_array *arrays;
  size_t narrays;
} csde_results_file;
CSDE_API int csde_results_write(const char *path, int overwrite, const csde_results_file *f,
                                csde_err *err);

/* ==== reading HDF5 files ====
 *
 * Reading HDF5 files: a dataset's shape and values (--init, dense:file=, the
 * gaussian and gmm models), and a trajectory file for `corrsde info`
 * (src/io/h5traj_read.c). The layout is h5traj.h's.
 *
 * Every file is hostile until checked (issue 23). What the readers take from a file is
 * checked before it is used or sizes anything:
 *   - the path: a regular file (a FIFO or a device would block), and every link on the
 *     way to an object a hard link (an external link makes HDF5 open another file, a
 *     soft one points anywhere);
 *   - a dataset's storage: its values in the file itself (no external storage, no
 *     virtual dataset: both read other files, which may be FIFOs) with no filter but
 *     deflate, shuffle and fletcher32 (HDF5 would load any other from HDF5_PLUGIN_PATH);
 *     the values to be read inside the file, past its superblock, and unfiltered chunks
 *     of the size the layout says (libhdf5 1.10.8 trusts its index and overflows its own
 *     buffer otherwise);
 *   - a dataset's class (numbers), rank, and the product of its dims (no overflow, and
 *     at most the bytes the caller allows);
 *   - an attribute's class, dataspace (a scalar or one element where one value is
 *     expected), size and sign, before it is read; variable-length strings only as
 *     scalars, and only the attributes that are known by name (never an iteration).
 * Each call keeps HDF5's error printing off for its span and puts the caller's handler
 * back (csde_h5_quiet_begin/end): nothing process-wide changes. */

#define CSDE_H5_MAXRANK 8

/* ---- reading arrays (--init and the other readers of numbers) ---- */

typedef struct {
  /* 1: read only the last saved entry along axis 0: entry n_saved - 1 where the group
   * holding the dataset has an attribute n_saved (a killed run's /trajectory/x is longer
   * than its saved states), else the last entry. n_saved must be one integer (a scalar,
   * or an array of one element), 1 <= n_saved <= the extent of axis 0: anything else is
   * an error. */
  int last_of_first_axis;
  /* the highest rank accepted (0: CSDE_H5_MAXRANK) */
  int max_rank;
  /* the most bytes the values read may take as doubles; a larger read is refused
   * (CSDE_ENOMEM) before anything is allocated. 0: the default, the machine's physical
   * memory (csde_h5_read_max_default()). */
  size_t max_bytes;
} csde_h5_read_params;

CSDE_API csde_h5_read_params csde_h5_read_default_params(void);
/* The default bound of max_bytes: the machine's physical memory (SIZE_MAX / 2 where the
 * system does not say). */
CSDE_API size_t csde_h5_read_max_default(void);

/* Read dataset dset of file path as doubles into a new array (free()): the whole of it,
 * or the last saved entry along axis 0 (p->last_of_first_axis). rank and dims (each may
 * be NULL) receive the dataset's own shape (of the whole dataset, axis 0 included).
 * p NULL: the defaults. Errors: CSDE_EIO (the file, a link, the storage, the type),
 * CSDE_EBADLEN (the rank, n_saved, an empty dataset), CSDE_ENOMEM (more than max_bytes,
 * or out of memory), each with a message naming the file and the dataset. */
CSDE_API int csde_h5_read_array(const char *path, const char *dset, const csde_h5_read_params *p,
                       double **out, int *rank, size_t dims[CSDE_H5_MAXRANK], csde_err *err);

/* The rank and shape of dataset dset of file path, with the checks of a read (path,
 * storage, class, rank; no values are read). */
CSDE_API int csde_h5_shape(const char *path, const char *dset, int *rank,
                  size_t dims[CSDE_H5_MAXRANK], csde_err *err);
/* csde_h5_read_array with the defaults, and last_of_first_axis. */
CSDE_API int csde_h5_read_doubles(const char *path, const char *dset, int last_of_first_axis,
                         double **out, csde_err *err);
/* The members of group `group` of file path (`corrsde sample --cond`), by name: every
 * one must be a dataset of numbers reached through a hard link (anything else is an
 * error naming it); 1 to 4096 of them. integer: 1 for an integer class. Free with
 * csde_h5_members_free. */
typedef struct {
  char *name;
  int integer;
} csde_h5_member;
CSDE_API int csde_h5_group_datasets(const char *path, const char *group, csde_h5_member **out,
                           size_t *n, csde_err *err);
CSDE_API void csde_h5_members_free(csde_h5_member *m, size_t n);
/* 1 if file path is a regular HDF5 file with a dataset dset reached through hard links
 * only; 0 otherwise (any failure, quietly). */
CSDE_API int csde_h5_exists(const char *path, const char *dset);

/* ---- reading a trajectory file (corrsde info) ---- */

typedef struct {
  char *name;
  /* ok: the value formatted for people ("0.9", "ar1:rho=0.9", "[32, 32]"), the file's
   * bytes as they are (escape them before printing: csde_h5_escape); !ok: why it is not
   * shown ("an array of 5 values, expected one integer") */
  char *text;
  int ok;
} csde_h5attr;

/* The attributes of one object that `corrsde info` knows (the names and kinds
 * corrsde's writers write); no other attribute is read, not even its name. */
typedef struct {
  csde_h5attr *a; /* the known ones the object has, sorted by name */
  size_t n;
  size_t other;      /* attributes of other names: counted, not read */
  size_t unreadable; /* known names whose lookup failed (a corrupt attribute table) */
  int lookup_failed; /* the object itself could not be looked up or opened */
} csde_h5attrs;

typedef struct {
  int present;
  int rank;
  size_t dims[CSDE_H5_MAXRANK];
  char type[32];         /* "float32", "float64", "int64", "uint8", "string", ... */
  int chunked;
  size_t chunk[CSDE_H5_MAXRANK];
  char filters[64];      /* "gzip(4)+shuffle", "" for none */
  /* why its values were not read ("2 dimensions, expected 1"), or ""; with present = 0:
   * why it could not be looked up */
  char note[128];
} csde_h5dset_info;

typedef struct {
  csde_h5dset_info x, t, step, cov, eig;
  long long n_saved;            /* /trajectory n_saved: whole states; -1 if absent or
                                   unusable; clamped to x's extent */
  char n_saved_note[128];       /* why n_saved was ignored or clamped, or "" */
  double t_first, t_last;       /* valid when t has values and no note */
  int64_t step_first, step_last;
  double eig_min, eig_max;      /* valid when eig has values and no note */
  csde_h5attrs params, stats, cov_attrs;
} csde_h5traj_info;

/* Read everything `corrsde info` shows. Fails (CSDE_EIO) if the file does not open, has
 * no /trajectory/x, or keeps a dataset info looks at out of the file (a link, external
 * storage, a virtual dataset, a filter that is not built in); every other part is
 * optional. */
CSDE_API int csde_h5traj_info_read(const char *path, csde_h5traj_info *info, csde_err *err);
CSDE_API void csde_h5traj_info_free(csde_h5traj_info *info);
/* The saved entries of a dataset of length len along the saved axis: n_saved of them
 * where the file counts them (at most len), else len. */
CSDE_API size_t csde_h5traj_info_saved(const csde_h5traj_info *info, size_t len);
/* The text of known attribute name of g when its value was read, or NULL. */
CSDE_API const char *csde_h5attr_get(const csde_h5attrs *g, const char *name);

/* ---- strings from a file, for a terminal ---- */

/* Escape the NUL-terminated string s for printing: control characters (C0, DEL) become
 * "\xHH" ("\n", "\t", "\r" for those three), a backslash "\\", bytes that are not valid
 * UTF-8 "\xHH", and the valid UTF-8 encodings of C1 controls (U+0080..U+009F) and of
 * the bidirectional overrides (U+202A..U+202E, U+2066..U+2069) "\uHHHH"; other valid
 * UTF-8 stays as it is. Writes at most len bytes with a terminator (len > 0) and returns
 * the length of the whole escaped string, as snprintf does (at most 4 strlen(s)). */
CSDE_API size_t csde_h5_escape(const char *s, char *buf, size_t len);

/* Split "F.h5:/dataset" at the ':' before the last '/' section: 1 if it has that form
 * (path and dset filled, at most len-1 characters each), 0 otherwise. */
CSDE_API int csde_split_h5_path(const char *s, char *path, size_t plen, char *dset, size_t dlen);

/* Format a shape as "[3, 4]" into buf. */
CSDE_API void csde_shape_str(const size_t *dims, int rank, char *buf, size_t len);

/* For programs, not the library (it changes HDF5 for the whole process): HDF5 1.10
 * installs an exit handler that closes open files again, and it crashes on a file whose
 * close failed (a write that could not be undone). Programs close every file themselves,
 * so they turn the handler off. Call before any other HDF5 call. */
CSDE_API void csde_h5_program_init(void);

#endif
