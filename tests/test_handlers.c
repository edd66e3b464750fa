/* Process-wide state: a library call leaves GSL's error handler and HDF5's automatic
 * error printing as the caller set them, and two threads factorizing dense covariances
 * at once (GSL's handler turned off and back around each GSL call) get the same bits as
 * one thread, never reach the caller's handler, and leave it in place. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <gsl/gsl_errno.h>
#include <hdf5.h>

#include "corrsde/corrsde.h"
#include "experiment/report.h"
#include "io/h5traj.h"
#include "io/h5util.h"
#include "tap.h"

static char tmpdir[64];

/* ---- the caller's handlers: they count their calls ---- */

static volatile int gsl_calls = 0;
static void count_gsl(const char *reason, const char *file, int line, int gsl_errno)
{
  (void)reason, (void)file, (void)line, (void)gsl_errno;
  gsl_calls++;
}

static int h5_calls = 0, h5_token;
static herr_t count_h5(hid_t stack, void *data)
{
  (void)stack, (void)data;
  h5_calls++;
  return 0;
}

static int gsl_kept(void)
{
  gsl_error_handler_t *now = gsl_set_error_handler(count_gsl);
  return now == count_gsl && gsl_calls == 0;
}

static int h5_kept(void)
{
  H5E_auto2_t fn = NULL;
  void *data = NULL;
  H5Eget_auto2(H5E_DEFAULT, &fn, &data);
  return fn == count_h5 && data == &h5_token && h5_calls == 0;
}

/* ---- dense factorizations ---- */

#define NSPEC 3
static const char *const specs[NSPEC] = {
    "toeplitz:col=1,1,1,1,1,1", /* 11^T: semi-definite, its Cholesky fails in GSL */
    "ar1:rho=0.9",
    "matern52:ell=3",
};
static const size_t taus[NSPEC] = {6, 40, 24};
static const csde_cov_method methods[NSPEC] = {CSDE_COV_DENSE, CSDE_COV_DENSE,
                                               CSDE_COV_DENSE_CHOLESKY};
#define TAU_MAX 40
#define D 3

/* What a factorization gives: logdet, eigenvalues and V' z for a fixed z. */
typedef struct {
  double logdet, eig[TAU_MAX], y[TAU_MAX * D];
  int status;
} fact;

static void factorize(size_t k, fact *f)
{
  memset(f, 0, sizeof *f);
  csde_cov_params par = csde_cov_default_params();
  par.method = methods[k];
  csde_cov *C = NULL;
  csde_cov_ws *ws = NULL;
  csde_err err;
  size_t tau = taus[k];
  double z[TAU_MAX * D];
  for (size_t i = 0; i < tau * D; i++) z[i] = (double)((i * 7) % 11) / 11.0 - 0.4;
  f->status = csde_cov_alloc(&C, specs[k], tau, &par, &err);
  if (!f->status) f->status = csde_cov_ws_alloc(&ws, C, D, 1, &err);
  if (!f->status) f->status = csde_cov_eigenvalues(C, f->eig, &err);
  if (!f->status) f->status = csde_cov_apply(C, ws, CSDE_COV_OP_SQRT, 1, z, f->y, &err);
  if (!f->status) f->logdet = csde_cov_logdet(C);
  csde_cov_ws_free(ws);
  csde_cov_free(C);
}

static fact ref[NSPEC];
#define ROUNDS 1000

typedef struct {
  int same, offset;
} worker_arg;

static void *worker(void *p)
{
  worker_arg *a = p;
  a->same = 1;
  for (int r = 0; r < ROUNDS; r++) {
    size_t k = (size_t)(r + a->offset) % NSPEC;
    fact f;
    factorize(k, &f);
    if (memcmp(&f, &ref[k], sizeof f)) a->same = 0;
  }
  return NULL;
}

static void gsl_handler(void)
{
  gsl_set_error_handler(count_gsl);
  for (size_t k = 0; k < NSPEC; k++) factorize(k, &ref[k]);
  ok(ref[0].status == 0 && ref[1].status == 0 && ref[2].status == 0 &&
         ref[0].logdet == -INFINITY,
     "three dense factorizations, one singular (logdet %g)", ref[0].logdet);
  ok(gsl_kept(), "one thread: GSL's handler is the caller's, never called (%d calls)",
     gsl_calls);
  pthread_t th[2];
  worker_arg a[2] = {{0, 0}, {0, 1}};
  int started = 0;
  for (int i = 0; i < 2; i++) started += !pthread_create(&th[i], NULL, worker, &a[i]);
  for (int i = 0; i < started; i++) pthread_join(th[i], NULL);
  ok(started == 2 && a[0].same && a[1].same,
     "two threads, %d factorizations each: the bits of one thread's", ROUNDS);
  ok(gsl_kept(), "two threads: GSL's handler is the caller's after, never called (%d calls)",
     gsl_calls);
  gsl_set_error_handler(NULL);
}

/* ---- HDF5 ---- */

static void h5_handler(void)
{
  H5Eset_auto2(H5E_DEFAULT, count_h5, &h5_token);
  char path[128], col[160];
  csde_err err;
  /* the trajectory writer (internal, below corrsde/run.h's csde_traj_create) */
  snprintf(path, sizeof path, "%s/traj.h5", tmpdir);
  csde_h5traj_params p;
  memset(&p, 0, sizeof p);
  p.batch = 1;
  p.tau = 2;
  p.shape_rank = 1;
  p.shape[0] = 2;
  p.capacity = 2;
  csde_h5traj *w = NULL;
  int s = csde_h5traj_create(&w, path, &p, &err);
  ok(s == 0 && w, "csde_h5traj_create makes a file");
  ok(h5_kept(), "... and leaves HDF5's error printing as the caller set it");
  csde_h5_quiet q;
  csde_h5_quiet_begin(&q);
  csde_h5traj_discard(w);
  csde_h5_quiet_end(&q);
  /* a refused create: the file is there */
  H5Eset_auto2(H5E_DEFAULT, count_h5, &h5_token);
  w = NULL;
  FILE *f = fopen(path, "w");
  if (f) fclose(f);
  s = csde_h5traj_create(&w, path, &p, &err);
  ok(s != 0 && !w && h5_kept(), "a refused create (\"%s\") keeps it too", err.msg);
  unlink(path);
  /* the convergence report's file */
  csde_h5out *o = NULL;
  snprintf(path, sizeof path, "%s/conv.h5", tmpdir);
  H5Eset_auto2(H5E_DEFAULT, count_h5, &h5_token);
  csde_h5_quiet_begin(&q);
  s = csde_h5out_create(&o, path, 0, &err);
  if (!s) s = csde_h5out_attr_str(o, "/", "a", "b", &err);
  if (!s) s = csde_h5out_close(o, &err);
  csde_h5_quiet_end(&q);
  ok(s == 0 && h5_kept(), "csde_h5_quiet_begin/end put the caller's setting back");
  /* a covariance read from a file: a missing dataset, then a file that is not HDF5 */
  csde_cov *C = NULL;
  snprintf(col, sizeof col, "toeplitz:file=%s:/nothing", path);
  s = csde_cov_alloc(&C, col, 4, NULL, &err);
  ok(s != 0 && !C && h5_kept(), "a missing dataset (\"%s\"): HDF5's setting kept", err.msg);
  snprintf(path, sizeof path, "%s/not.h5", tmpdir);
  f = fopen(path, "w");
  if (f) {
    fputs("\x89HDF\r\n\x1a\n garbage", f);
    fclose(f);
  }
  snprintf(col, sizeof col, "toeplitz:file=%s:/col", path);
  s = csde_cov_alloc(&C, col, 4, NULL, &err);
  ok(s != 0 && !C && h5_kept(), "a corrupt file (\"%s\"): HDF5's setting kept", err.msg);
  unlink(path);
  snprintf(path, sizeof path, "%s/conv.h5", tmpdir);
  unlink(path);
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

int main(void)
{
  csde_init(); /* a program's choice: GSL's handler off; the tests set their own after */
  snprintf(tmpdir, sizeof tmpdir, "/tmp/csde_handlers_XXXXXX");
  if (!mkdtemp(tmpdir)) {
    ok(0, "mkdtemp");
    return tap_done();
  }
  gsl_handler();
  h5_handler();
  rmdir(tmpdir);
  return tap_done();
}
