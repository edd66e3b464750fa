/* What the libFuzzer harnesses share (README.md here): the input as a C string, a check
 * that the library writes nothing on stdout or stderr (HDF5's error stacks included),
 * and a scratch directory with small fixture files that specs may name.
 *
 * Quiet check: the stdio streams `stdout` and `stderr` are swapped for a temporary file
 * around each library call (glibc's stdin/stdout/stderr are assignable variables). The
 * sanitizers and libFuzzer write their reports to file descriptor 2 directly, so a crash
 * report is never swallowed. Anything the library printed is shown and aborts the run. */
#ifndef CSDE_FUZZ_COMMON_H
#define CSDE_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hdf5.h>

#include "corrsde/status.h"

/* The input as a new NUL-terminated string (free()). An embedded NUL ends it. */
static inline char *fuzz_str(const uint8_t *data, size_t size)
{
  char *s = malloc(size + 1);
  if (!s) abort();
  memcpy(s, data, size);
  s[size] = '\0';
  return s;
}

/* 0 for a spec that names a device or a kernel file (a read of /dev/zero never ends). */
static inline int fuzz_paths_ok(const char *s)
{
  return !strstr(s, "/dev") && !strstr(s, "/proc") && !strstr(s, "/sys");
}

/* CSDE_FUZZ_VERBOSE=1: the harnesses print what each input gave (to check seeds). */
static inline int fuzz_verbose(void)
{
  static int v = -1;
  if (v < 0) v = getenv("CSDE_FUZZ_VERBOSE") != NULL;
  return v;
}

static FILE *fuzz_cap_, *fuzz_saved_out_, *fuzz_saved_err_;

static inline void fuzz_quiet_begin(void)
{
  if (!fuzz_cap_ && !(fuzz_cap_ = tmpfile())) abort();
  rewind(fuzz_cap_);
  fflush(stdout);
  fflush(stderr);
  fuzz_saved_out_ = stdout;
  fuzz_saved_err_ = stderr;
  stdout = fuzz_cap_;
  stderr = fuzz_cap_;
}

static inline void fuzz_quiet_end(const char *what)
{
  fflush(fuzz_cap_);
  stdout = fuzz_saved_out_;
  stderr = fuzz_saved_err_;
  long n = ftell(fuzz_cap_);
  if (n > 0) {
    char buf[2048];
    rewind(fuzz_cap_);
    size_t k = fread(buf, 1, sizeof buf - 1, fuzz_cap_);
    buf[k] = '\0';
    fprintf(stderr, "==fuzz: %s wrote %ld bytes on stdout/stderr (the library must not "
                    "print):\n%s\n", what, n, buf);
    abort();
  }
}

/* The error record after a failed call: a status and a terminated message. */
static inline void fuzz_check_err(int status, const csde_err *err)
{
  if (status == CSDE_SUCCESS || memchr(err->msg, '\0', sizeof err->msg) == NULL) abort();
}

/* ---- fixtures ---- */

static char fuzz_dir_[64];

static inline void fuzz_rm_dir(void)
{
  static const char *const names[] = {"col.txt", "col.h5", "C.h5", "P.h5", "G.h5", NULL};
  if (!fuzz_dir_[0]) return;
  for (int i = 0; names[i]; i++) {
    char p[128];
    snprintf(p, sizeof p, "%s/%s", fuzz_dir_, names[i]);
    unlink(p);
  }
  rmdir(fuzz_dir_);
}

/* Write (or add to) an HDF5 file: dataset name of the given shape, float64. */
static inline void fuzz_h5_put(const char *path, const char *name, int rank, const hsize_t *dims,
                               const double *v)
{
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
  if (f < 0) f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  hid_t sp = H5Screate_simple(rank, dims, NULL);
  hid_t d = H5Dcreate2(f, name, H5T_NATIVE_DOUBLE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  if (f < 0 || sp < 0 || d < 0 ||
      H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) < 0)
    abort();
  H5Dclose(d);
  H5Sclose(sp);
  H5Fclose(f);
}

/* A scratch directory, made the working directory, holding (for tau <= 4 frames):
 *   col.txt             "1 0.5 0.25 0.125" (a Toeplitz column as text)
 *   col.h5:/col         the same column as a 1-D dataset
 *   C.h5:/C             a 4 x 4 PSD matrix (the Toeplitz matrix of that column)
 *   G.h5                a gaussian model: /mean [4], /frame_cov [4, 4]
 *   P.h5                a gmm: /weights [2], /means [2, 4], /frame_covs [2, 4, 4]
 * Removed at exit. */
static inline void fuzz_fixtures(void)
{
  strcpy(fuzz_dir_, "/tmp/csde-fuzz-XXXXXX");
  if (!mkdtemp(fuzz_dir_) || chdir(fuzz_dir_) != 0) abort();
  atexit(fuzz_rm_dir);
  static const double col[4] = {1, 0.5, 0.25, 0.125};
  double C[16], covs[32], means[8] = {0, 0, 0, 0, 1, 1, 1, 1}, w[2] = {0.3, 0.7};
  for (int i = 0; i < 4; i++)
    for (int j = 0; j < 4; j++) {
      C[i * 4 + j] = col[i > j ? i - j : j - i];
      covs[i * 4 + j] = 0.25 * C[i * 4 + j];
      covs[16 + i * 4 + j] = (i == j) ? 0.5 : 0.0;
    }
  FILE *f = fopen("col.txt", "w");
  if (!f) abort();
  fputs("# a Toeplitz column\n1 0.5, 0.25\n0.125\n", f);
  fclose(f);
  hsize_t d1[1] = {4}, d2[2] = {4, 4}, w1[1] = {2}, m2[2] = {2, 4}, c3[3] = {2, 4, 4};
  fuzz_h5_put("col.h5", "/col", 1, d1, col);
  fuzz_h5_put("C.h5", "/C", 2, d2, C);
  fuzz_h5_put("G.h5", "/mean", 1, d1, means + 4);
  fuzz_h5_put("G.h5", "/frame_cov", 2, d2, covs);
  fuzz_h5_put("P.h5", "/weights", 1, w1, w);
  fuzz_h5_put("P.h5", "/means", 2, m2, means);
  fuzz_h5_put("P.h5", "/frame_covs", 3, c3, covs);
}

/* A file of this process for inputs that are files: rewritten for each input. */
static char fuzz_file_[64];

static inline const char *fuzz_write_input(const uint8_t *data, size_t size)
{
  if (!fuzz_file_[0]) {
    strcpy(fuzz_file_, "/tmp/csde-fuzz-input-XXXXXX");
    int fd = mkstemp(fuzz_file_);
    if (fd < 0) abort();
    close(fd);
  }
  FILE *f = fopen(fuzz_file_, "wb");
  if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0) abort();
  return fuzz_file_;
}

static inline void fuzz_rm_input(void)
{
  if (fuzz_file_[0]) unlink(fuzz_file_);
}

/* libFuzzer's start-up hook: csde_init, then the harness's own set-up (statements). */
#define FUZZ_INITIALIZE(...)                                                              \
  int LLVMFuzzerInitialize(int *argc, char ***argv);                                     \
  int LLVMFuzzerInitialize(int *argc, char ***argv)                                      \
  {                                                                                      \
    (void)argc;                                                                          \
    (void)argv;                                                                          \
    csde_init();                                                                         \
    __VA_ARGS__                                                                          \
    return 0;                                                                            \
  }

#endif
