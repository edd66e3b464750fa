/* An output file and the files a run makes beside it (outfile.h): nothing the run did
 * not create is written, truncated or replaced. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "io/outfile.h"

#define OPEN_FLAGS (O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)

/* What a directory entry that is not a regular file is, for messages. */
static const char *kind_name(mode_t m)
{
  return S_ISLNK(m)                  ? "a symbolic link"
         : S_ISDIR(m)                ? "a directory"
         : S_ISFIFO(m)               ? "a FIFO"
         : S_ISCHR(m) || S_ISBLK(m)  ? "a device"
         : S_ISSOCK(m)               ? "a socket"
                                     : "not a regular file";
}

/* Entry name of dirfd, never followed: 0 absent, 1 a regular file (*st filled),
 * else CSDE_EIO naming it (shown as shown/name). */
static int entry(int dirfd, const char *name, const char *shown, struct stat *st,
                 const char *role, csde_err *err)
{
  if (fstatat(dirfd, name, st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return 0;
    return -csde_err_set(err, CSDE_EIO, "%s'%s': %s", role, shown, strerror(errno));
  }
  if (S_ISREG(st->st_mode)) return 1;
  return -csde_err_set(err, CSDE_EIO, "%s'%s' is %s: refused (only a regular file is ever "
                       "replaced, and nothing is written through a link)", role, shown,
                       kind_name(st->st_mode));
}

/* 1 if the regular file name of dirfd (inode of *st) is locked by a writer: flock
 * exclusive, as a run's lock or a file HDF5 holds open for writing are. Readers (a
 * shared lock) do not count. */
static int locked_by_writer(int dirfd, const char *name, const struct stat *st)
{
  int fd = openat(dirfd, name, O_RDONLY | OPEN_FLAGS);
  if (fd < 0) return 0;
  struct stat b;
  int locked = fstat(fd, &b) == 0 && b.st_dev == st->st_dev && b.st_ino == st->st_ino &&
               flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
  close(fd); /* drops our shared lock */
  return locked;
}

static char *join(const char *a, const char *sep, const char *b)
{
  size_t la = strlen(a), ls = strlen(sep), lb = strlen(b);
  char *s = malloc(la + ls + lb + 1);
  if (s) {
    memcpy(s, a, la);
    memcpy(s + la, sep, ls);
    memcpy(s + la + ls, b, lb + 1);
  }
  return s;
}

/* path -> dir and base (malloc'd). */
static int split(const char *path, char **dir, char **base)
{
  char *a = strdup(path), *b = strdup(path);
  *dir = a ? strdup(dirname(a)) : NULL;
  *base = b ? strdup(basename(b)) : NULL;
  free(a);
  free(b);
  return *dir && *base ? 0 : -1;
}

/* The checks of OUT shared by csde_outfile_check and csde_outfile_open. */
static int check_out(int dirfd, const char *base, const char *path, int overwrite,
                     int *existed, csde_err *err)
{
  struct stat st;
  int e = entry(dirfd, base, path, &st, "", err);
  if (e < 0) return -e;
  *existed = e;
  if (!e) return CSDE_SUCCESS;
  if (!overwrite)
    return csde_err_set(err, CSDE_EIO, "'%s' exists (and overwriting was not asked for)", path);
  if (locked_by_writer(dirfd, base, &st))
    return csde_err_set(err, CSDE_EIO, "'%s' is locked by another process (a run's lock "
                        "file, or a file open for writing): refused", path);
  return CSDE_SUCCESS;
}

static int open_dir(const char *dir, const char *path, csde_err *err)
{
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    csde_err_set(err, CSDE_EIO, "'%s': cannot open its directory '%s': %s", path, dir,
                 strerror(errno));
  return fd;
}

static int bad_name(const char *base, const char *path, csde_err *err)
{
  if (!*base || !strcmp(base, ".") || !strcmp(base, "..") || !strcmp(base, "/") ||
      path[strlen(path) - 1] == '/')
    return csde_err_set(err, CSDE_EIO, "'%s' names a directory, not a file", path);
  return CSDE_SUCCESS;
}

/* The pid line of a lock (at most len - 1 characters), or "?". */
static void lock_pid(int fd, char *pid, size_t len)
{
  ssize_t k = pread(fd, pid, len - 1, 0);
  pid[k > 0 ? k : 0] = '\0';
  pid[strcspn(pid, "\n")] = '\0';
  if (!pid[0]) snprintf(pid, len, "?");
}

/* CSDE_EIO if base.lock of dirfd is held by a run. */
static int lock_free(int dirfd, const char *base, const char *path, csde_err *err)
{
  char *lock = join(base, "", ".lock");
  int fd = lock ? openat(dirfd, lock, O_RDONLY | OPEN_FLAGS) : -1, s = CSDE_SUCCESS;
  struct stat st;
  if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
      flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK) {
    char pid[32];
    lock_pid(fd, pid, sizeof pid);
    s = csde_err_set(err, CSDE_EIO, "'%s' is being written by another run (process %s "
                     "holds the lock '%s.lock')", path, pid, path);
  }
  if (fd >= 0) close(fd);
  free(lock);
  return s;
}

int csde_outfile_check(const char *path, int overwrite, csde_err *err)
{
  char *dir = NULL, *base = NULL;
  int s = !*path ? csde_err_set(err, CSDE_EIO, "expected a file name, got ''")
          : split(path, &dir, &base) ? csde_err_set(err, CSDE_ENOMEM, "out of memory")
                                     : bad_name(base, path, err);
  int dirfd = s ? -1 : open_dir(dir, path, err), existed = 0;
  if (!s && dirfd < 0) s = CSDE_EIO;
  if (!s) s = lock_free(dirfd, base, path, err);
  if (!s) s = check_out(dirfd, base, path, overwrite, &existed, err);
  if (!s && faccessat(dirfd, ".", W_OK | X_OK, AT_EACCESS) != 0)
    s = csde_err_set(err, CSDE_EIO, "'%s': cannot create a file in '%s': %s", path, dir,
                     strerror(errno));
  if (dirfd >= 0) close(dirfd);
  free(dir);
  free(base);
  return s;
}

/* A reused lock file holds what a run writes into one: nothing, or a pid line (then
 * zeros: the disk reserve). */
static int looks_like_lock(int fd)
{
  char buf[64];
  ssize_t k = pread(fd, buf, sizeof buf, 0);
  if (k < 0) return 0;
  ssize_t i = 0;
  while (i < k && buf[i] >= '0' && buf[i] <= '9') i++;
  if (i < k && buf[i] == '\n') i++;
  while (i < k && buf[i] == '\0') i++;
  return i == k;
}

/* Take base.lock with flock(LOCK_EX | LOCK_NB) and write our pid into it. A lock file
 * its holder removed between our open and our flock is opened again. */
static int lock_take(csde_outfile *o, csde_err *err)
{
  for (int tries = 0; tries < 16; tries++) {
    int fd = openat(o->dirfd, o->lock, O_RDWR | O_CREAT | O_EXCL | OPEN_FLAGS, 0644);
    if (fd < 0 && errno == EEXIST) { /* a killed run's, or a live one's */
      struct stat st;
      int e = entry(o->dirfd, o->lock, o->lock_path, &st, "the lock ", err);
      if (e < 0) return -e;
      if (e == 0) continue; /* removed meanwhile */
      fd = openat(o->dirfd, o->lock, O_RDWR | OPEN_FLAGS);
      if (fd >= 0 && (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1 ||
                      !looks_like_lock(fd))) {
        close(fd);
        return csde_err_set(err, CSDE_EIO, "the lock '%s' exists and is not a corrsde "
                            "lock file (a regular file with one link holding a pid): "
                            "refused", o->lock_path);
      }
    }
    if (fd < 0) {
      if (errno == ENOENT) continue;
      return csde_err_set(err, CSDE_EIO, "cannot create the lock file '%s': %s",
                          o->lock_path, errno == ELOOP ? "it is a symbolic link" : strerror(errno));
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
      int e = errno;
      char pid[32];
      lock_pid(fd, pid, sizeof pid);
      close(fd);
      if (e == EWOULDBLOCK)
        return csde_err_set(err, CSDE_EIO,
                            "'%s' is being written by another run (process %s holds the "
                            "lock '%s')", o->path, pid, o->lock_path);
      return csde_err_set(err, CSDE_EIO, "cannot lock '%s': %s", o->lock_path,
                          strerror(e));
    }
    struct stat a, b;
    if (fstat(fd, &a) == 0 && fstatat(o->dirfd, o->lock, &b, AT_SYMLINK_NOFOLLOW) == 0 &&
        a.st_dev == b.st_dev && a.st_ino == b.st_ino) {
      char pid[32];
      int len = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
      if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)len, 0) != len) {
        close(fd);
        return csde_err_set(err, CSDE_EIO, "cannot write the lock file '%s': %s",
                            o->lock_path, strerror(errno));
      }
      o->lock_fd = fd;
      return CSDE_SUCCESS;
    }
    close(fd);
  }
  return csde_err_set(err, CSDE_EIO, "cannot take the lock '%s': it keeps being replaced",
                      o->lock_path);
}

/* 1 if name of dirfd is the inode of fd. */
static int names_fd(int dirfd, const char *name, int fd)
{
  struct stat a, b;
  return fstat(fd, &a) == 0 && fstatat(dirfd, name, &b, AT_SYMLINK_NOFOLLOW) == 0 &&
         a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

/* A fresh base.partial.XXXXXX, made with O_EXCL (like mkstemp). */
static int make_tmp(csde_outfile *o, csde_err *err)
{
  static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  size_t lb = strlen(o->base);
  if (!(o->tmp = malloc(lb + sizeof ".partial.XXXXXX")))
    return csde_err_set(err, CSDE_ENOMEM, "out of memory");
  for (int tries = 0; tries < 100; tries++) {
    unsigned char r[6];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) { /* no entropy: time and pid */
      unsigned long long v = (unsigned long long)time(NULL) * 2654435761u ^
                             (unsigned long long)getpid() << 16 ^ (unsigned)tries * 40503u;
      for (int i = 0; i < 6; i++, v >>= 8) r[i] = (unsigned char)v;
    }
    char *p = o->tmp + lb;
    memcpy(o->tmp, o->base, lb);
    p += sprintf(p, ".partial.");
    for (int i = 0; i < 6; i++) *p++ = abc[r[i] % (sizeof abc - 1)];
    *p = '\0';
    int fd = openat(o->dirfd, o->tmp, O_RDWR | O_CREAT | O_EXCL | OPEN_FLAGS, 0666);
    if (fd >= 0) {
      struct stat st;
      if (fstat(fd, &st) != 0) {
        int e = errno;
        unlinkat(o->dirfd, o->tmp, 0);
        close(fd);
        return csde_err_set(err, CSDE_EIO, "'%s/%s': %s", o->dir, o->tmp, strerror(e));
      }
      o->tmp_fd = fd;
      o->tmp_dev = st.st_dev;
      o->tmp_ino = st.st_ino;
      break;
    }
    if (errno != EEXIST)
      return csde_err_set(err, CSDE_EIO, "cannot create '%s/%s': %s", o->dir, o->tmp,
                          strerror(errno));
  }
  if (o->tmp_fd < 0)
    return csde_err_set(err, CSDE_EIO, "cannot make a temporary name for '%s'", o->path);
  if (!(o->tmp_path = join(o->dir, "/", o->tmp)))
    return csde_err_set(err, CSDE_ENOMEM, "out of memory");
  /* /proc/self/fd/N opens this inode whatever becomes of the name; without /proc, the
   * name (made with O_EXCL under a random name) */
  snprintf(o->fdname, sizeof o->fdname, "/proc/self/fd/%d", o->tmp_fd);
  struct stat st;
  if (stat(o->fdname, &st) != 0 || st.st_ino != o->tmp_ino || st.st_dev != o->tmp_dev)
    o->flags |= CSDE_OUT_NAMED;
  return CSDE_SUCCESS;
}

int csde_outfile_open(csde_outfile *o, const char *path, int flags, csde_err *err)
{
  memset(o, 0, sizeof *o);
  o->dirfd = o->lock_fd = o->tmp_fd = -1;
  o->flags = flags;
  int s = !*path ? csde_err_set(err, CSDE_EIO, "expected a file name, got ''")
          : !(o->path = strdup(path)) || split(path, &o->dir, &o->base) ||
                  !(o->lock = join(o->base, "", ".lock")) ||
                  !(o->lock_path = join(o->dir, "/", o->lock))
              ? csde_err_set(err, CSDE_ENOMEM, "out of memory")
              : bad_name(o->base, path, err);
  if (!s && (o->dirfd = open_dir(o->dir, path, err)) < 0) s = CSDE_EIO;
  /* the lock first: a second writer is refused before it looks at anything else */
  if (!s && (flags & CSDE_OUT_LOCK)) s = lock_take(o, err);
  if (!s) s = check_out(o->dirfd, o->base, path, flags & CSDE_OUT_OVERWRITE, &o->existed, err);
  if (!s && !(flags & CSDE_OUT_NO_TMP)) s = make_tmp(o, err);
  if (s) csde_outfile_release(o);
  return s;
}

const char *csde_outfile_name(const csde_outfile *o)
{
  return o->flags & CSDE_OUT_NAMED ? o->tmp_path : o->fdname;
}
int csde_outfile_fd(const csde_outfile *o) { return o->tmp_fd; }
const char *csde_outfile_tmp_path(const csde_outfile *o) { return o->tmp_path; }

/* rename tmp -> base, failing if base exists. */
static int rename_noreplace(csde_outfile *o)
{
  if (renameat2(o->dirfd, o->tmp, o->dirfd, o->base, RENAME_NOREPLACE) == 0) return 0;
  if (errno != EINVAL && errno != ENOSYS) return -1;
  /* a file system without RENAME_NOREPLACE: link() never replaces either */
  if (linkat(o->dirfd, o->tmp, o->dirfd, o->base, 0) != 0) return -1;
  unlinkat(o->dirfd, o->tmp, 0);
  return 0;
}

int csde_outfile_commit(csde_outfile *o, csde_err *err)
{
  if (o->committed) return CSDE_SUCCESS;
  if (!names_fd(o->dirfd, o->tmp, o->tmp_fd))
    return csde_err_set(err, CSDE_EIO, "'%s' was removed or replaced by another process: "
                        "'%s' is not replaced", o->tmp_path, o->path);
  struct stat st;
  int e = entry(o->dirfd, o->base, o->path, &st, "", err);
  if (e < 0) return -e;
  if (e && !(o->flags & CSDE_OUT_OVERWRITE))
    return csde_err_set(err, CSDE_EIO, "'%s' appeared while the run wrote '%s': not "
                        "replaced", o->path, o->tmp_path);
  if (e && locked_by_writer(o->dirfd, o->base, &st))
    return csde_err_set(err, CSDE_EIO, "'%s' is locked by another process (a run's lock "
                        "file, or a file open for writing): not replaced", o->path);
  int r = e ? renameat(o->dirfd, o->tmp, o->dirfd, o->base) : rename_noreplace(o);
  if (r != 0)
    return csde_err_set(err, CSDE_EIO, "cannot rename '%s' to '%s': %s", o->tmp_path,
                        o->path, strerror(errno));
  o->committed = 1;
  return CSDE_SUCCESS;
}

void csde_outfile_remove_new(csde_outfile *o)
{
  if (o->committed && !o->existed && o->tmp_fd >= 0 && names_fd(o->dirfd, o->base, o->tmp_fd))
    unlinkat(o->dirfd, o->base, 0);
}

void csde_outfile_release(csde_outfile *o)
{
  if (!o || !o->path) return; /* zeroed, or released */
  if (o->tmp_fd >= 0) {
    if (!o->committed && names_fd(o->dirfd, o->tmp, o->tmp_fd)) unlinkat(o->dirfd, o->tmp, 0);
    close(o->tmp_fd);
  }
  if (o->lock_fd >= 0) { /* removed while still held: see lock_take */
    if (names_fd(o->dirfd, o->lock, o->lock_fd)) unlinkat(o->dirfd, o->lock, 0);
    close(o->lock_fd);
  }
  if (o->dirfd >= 0) close(o->dirfd);
  free(o->path);
  free(o->dir);
  free(o->base);
  free(o->lock);
  free(o->lock_path);
  free(o->tmp);
  free(o->tmp_path);
  memset(o, 0, sizeof *o);
  o->dirfd = o->lock_fd = o->tmp_fd = -1;
}
