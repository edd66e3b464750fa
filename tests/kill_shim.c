/* LD_PRELOAD shim for tests/test_kills.sh: counts the writes to regular files (write,
 * pwrite, pwrite64, writev, pwritev) and SIGKILLs the process right after the N-th one
 * (CSDE_KILL_AT_WRITE=N), so that a test can stop a run at every write it makes.
 * CSDE_WRITE_COUNT=FILE: at exit, the count is written to FILE (a run's number of
 * writes). Not part of the library. */
/* pwrite and pwrite64 are both wrapped: neither may be renamed to the other */
#undef _FILE_OFFSET_BITS
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

static long count, kill_at = -1;
static int ready;

static void setup(void)
{
  if (ready) return;
  ready = 1;
  const char *k = getenv("CSDE_KILL_AT_WRITE");
  if (k && *k) kill_at = atol(k);
}

/* After a write to fd that wrote something: count it, and die if it is the one. */
static void after(int fd, ssize_t r)
{
  struct stat st;
  if (r <= 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return;
  setup();
  if (++count == kill_at) raise(SIGKILL);
}

#define WRAP(ret, name, params, args)                                                      \
  ret name params                                                                          \
  {                                                                                        \
    static ret(*real) params;                                                              \
    if (!real) { /* dlsym's object pointer as a function pointer, as POSIX allows */     \
      void *sym = dlsym(RTLD_NEXT, #name);                                                 \
      memcpy(&real, &sym, sizeof sym);                                                     \
    }                                                                                      \
    ret r = real args;                                                                     \
    after(fd, r);                                                                          \
    return r;                                                                              \
  }

WRAP(ssize_t, write, (int fd, const void *b, size_t n), (fd, b, n))
WRAP(ssize_t, pwrite, (int fd, const void *b, size_t n, off_t o), (fd, b, n, o))
WRAP(ssize_t, pwrite64, (int fd, const void *b, size_t n, off64_t o), (fd, b, n, o))
WRAP(ssize_t, writev, (int fd, const struct iovec *v, int n), (fd, v, n))
WRAP(ssize_t, pwritev, (int fd, const struct iovec *v, int n, off_t o), (fd, v, n, o))

__attribute__((destructor)) static void report(void)
{
  const char *f = getenv("CSDE_WRITE_COUNT");
  if (!f || !*f) return;
  FILE *o = fopen(f, "w"); /* its own writes come after the count is taken */
  if (o) {
    fprintf(o, "%ld\n", count);
    fclose(o);
  }
}
