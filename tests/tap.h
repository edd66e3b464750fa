/* A minimal TAP producer for the test programs (meson test, protocol 'tap').
 * ok(cond, fmt, ...) records one test point; tap_done() prints the plan and returns
 * the exit code. Numeric helpers print the values compared when a point fails. */
#ifndef CSDE_TESTS_TAP_H
#define CSDE_TESTS_TAP_H

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int tap_n = 0, tap_fail = 0;

static inline int ok(int cond, const char *fmt, ...)
{
  va_list ap;
  tap_n++;
  if (!cond) tap_fail++;
  printf("%sok %d - ", cond ? "" : "not ", tap_n);
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  printf("\n");
  fflush(stdout);
  return cond;
}

/* |got - want| <= tol */
static inline int ok_close(double got, double want, double tol, const char *what)
{
  int c = fabs(got - want) <= tol;
  if (!c) printf("# %s: got %.17g want %.17g |diff| %.3g > tol %.3g\n", what, got, want,
                 fabs(got - want), tol);
  return ok(c, "%s (|diff| %.3g <= %.3g)", what, fabs(got - want), tol);
}

/* status == want, and (if substr) the message contains substr */
static inline int ok_status(int got, int want, const char *msg, const char *substr, const char *what)
{
  int c = got == want && (!substr || (msg && strstr(msg, substr)));
  if (!c) printf("# %s: status %d (want %d), message '%s' (want to contain '%s')\n", what,
                 got, want, msg ? msg : "", substr ? substr : "");
  else if (msg && msg[0]) printf("# message: %s\n", msg);
  return ok(c, "%s", what);
}

static inline int tap_done(void)
{
  printf("1..%d\n", tap_n);
  return tap_fail ? 1 : 0;
}

#endif
