/* Status codes and the error record. */
#include <string.h>

#include "corrsde/corrsde.h"
#include "tap.h"

int main(void)
{
  csde_init();
  ok(!strcmp(csde_strerror(CSDE_SUCCESS), "success"), "strerror(0) is 'success'");
  ok(CSDE_ESING == 21 && CSDE_EINVAL == 4 && CSDE_ENOMEM == 8, "GSL numbers reused");
  ok(CSDE_ENOTPSD > 1024, "own codes start above 1024");
  ok(!strcmp(csde_strerror(CSDE_ENOTPSD), "matrix is not positive semi-definite"),
     "strerror(ENOTPSD)");
  ok(!strcmp(csde_strerror(-77), "unknown status"), "unknown code");
  csde_err e;
  int s = csde_err_set(&e, CSDE_EDOM, "rho = %g outside (-1, 1)", 1.5);
  ok(s == CSDE_EDOM && e.status == CSDE_EDOM && !strcmp(e.msg, "rho = 1.5 outside (-1, 1)"),
     "err_set records code and message");
  csde_err_clear(&e);
  ok(e.status == 0 && e.msg[0] == 0, "err_clear");
  ok(csde_err_set(NULL, CSDE_EIO, "x") == CSDE_EIO, "err_set accepts NULL");
  ok(strlen(csde_version()) >= 5, "version string");
  return tap_done();
}
