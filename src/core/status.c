/* Status codes, messages and the error record (corrsde/status.h). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <gsl/gsl_errno.h>

#include "corrsde/status.h"

const char *csde_strerror(int status)
{
  switch (status) {
#define CSDE_X_CASE(name, num, msg) \
  case name:                        \
    return msg;
    CSDE_STATUS_LIST(CSDE_X_CASE)
#undef CSDE_X_CASE
  default:
    return "unknown status";
  }
}

int csde_err_set(csde_err *err, int status, const char *fmt, ...)
{
  if (err) {
    va_list ap;
    va_start(ap, fmt);
    err->status = status;
    err->param = NULL;
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
  }
  return status;
}

int csde_err_blame(csde_err *err, const char *param, int status)
{
  if (err && !err->param) err->param = param;
  return status;
}

void csde_err_clear(csde_err *err)
{
  if (err) {
    err->status = CSDE_SUCCESS;
    err->msg[0] = '\0';
    err->param = NULL;
  }
}

#ifdef CSDE_HAVE_OPENBLAS_THREADS
void openblas_set_num_threads(int n);
#endif

#ifdef CSDE_HAVE_OPENBLAS_SHUTDOWN
void blas_thread_shutdown_(void); /* OpenBLAS (pthreads): joins its pool's threads */
#endif

void csde_init(void)
{
  gsl_set_error_handler_off();
#ifdef CSDE_HAVE_OPENBLAS_THREADS
  /* corrsde threads its own tiles with OpenMP; BLAS calls inside them run serially */
  openblas_set_num_threads(1);
#endif
#ifdef CSDE_HAVE_OPENBLAS_SHUTDOWN
  /* ... so OpenBLAS's pool is not needed, and its threads must go: started when the
   * library loads, an idle pool thread spins on sched_yield for about 0.1 s (2^28 cycles)
   * before it sleeps, which took the cores from the first ~100 ms of every two-thread run
   * (10 EM steps at 64x64: 105 ms instead of 10). With one BLAS thread OpenBLAS calls
   * its kernels directly and never restarts the pool. */
  blas_thread_shutdown_();
#endif
}

const char *csde_version(void) { return CSDE_VERSION; }
