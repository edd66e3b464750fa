/* Internal: an output file and the files a run makes beside it (io/outfile.c), so that
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
#ifndef CSDE_IO_OUTFILE_H
#define CSDE_IO_OUTFILE_H

#include <sys/types.h>

#include "corrsde/status.h"

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
int csde_outfile_check(const char *path, int overwrite, csde_err *err);

/* Open OUT's directory, check OUT, take the lock (CSDE_OUT_LOCK) and create the
 * temporary. On failure nothing is left behind and o needs no release. */
int csde_outfile_open(csde_outfile *o, const char *path, int flags, csde_err *err);

/* The name a writer opens the temporary by (/proc/self/fd/N, or its path with
 * CSDE_OUT_NAMED), and the descriptor kept on it. */
const char *csde_outfile_name(const csde_outfile *o);
int csde_outfile_fd(const csde_outfile *o);
/* The temporary's path (messages). */
const char *csde_outfile_tmp_path(const csde_outfile *o);

/* Rename the temporary to OUT (once; later calls do nothing). */
int csde_outfile_commit(csde_outfile *o, csde_err *err);

/* Remove OUT if it is the file this run committed as new (a run that fails before it
 * starts leaves nothing); never an old file it replaced. */
void csde_outfile_remove_new(csde_outfile *o);

/* Remove the temporary if it was not committed, close everything and release the lock.
 * Accepts a zeroed (never opened) or released o. */
void csde_outfile_release(csde_outfile *o);

#endif
