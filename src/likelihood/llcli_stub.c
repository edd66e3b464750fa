/* TEMPORARY stand-ins (branch i27-llcli) for the dequantization and ELBO functions that
 * src/likelihood/bpd.c and elbo.c implement: DELETE this file and its line in meson.build
 * when those land (the link then fails on duplicate symbols until it is gone). They let
 * `corrsde likelihood` build and run its PF-ODE paths: --dequant none works, uniform
 * parses but is not dequantized (CSDE_ENOTSUP), and csde_elbo returns CSDE_ENOTSUP. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "corrsde/likelihood.h"

csde_dequant csde_dequant_bits(int bits)
{
  csde_dequant q = {bits, 2.0 / (double)(1L << bits), -1.0};
  return q;
}

int csde_dequant_parse(const char *spec, csde_dequant *q, csde_err *err)
{
  if (spec && !strcmp(spec, "none")) {
    *q = csde_dequant_continuous();
    return CSDE_SUCCESS;
  }
  if (spec && (!strcmp(spec, "uniform") || !strncmp(spec, "uniform:", 8))) {
    *q = csde_dequant_bits(8);
    return CSDE_SUCCESS;
  }
  csde_err_set(err, CSDE_ESPEC, "unknown dequant '%s' (expected none or "
               "uniform[:bits=B,scale=S,shift=H])", spec ? spec : "(null)");
  return csde_err_blame(err, CSDE_PARAM_DEQUANT, CSDE_ESPEC);
}

char *csde_dequant_spec(const csde_dequant *q, char *buf, size_t len)
{
  if (!q->bits)
    snprintf(buf, len, "none");
  else
    snprintf(buf, len, "uniform:bits=%d,scale=%.17g,shift=%.17g", q->bits, q->scale, q->shift);
  return buf;
}

int csde_dequantize(const csde_dequant *q, csde_rng_key key, size_t first, size_t batch,
                    size_t n, const double *k, double *y, csde_err *err)
{
  (void)key, (void)first;
  if (q->bits) {
    csde_err_set(err, CSDE_ENOTSUP, "dequantization is not implemented yet");
    return csde_err_blame(err, CSDE_PARAM_DEQUANT, CSDE_ENOTSUP);
  }
  if (y != k) memcpy(y, k, batch * n * sizeof *y);
  return CSDE_SUCCESS;
}

csde_elbo_params csde_elbo_default_params(void)
{
  csde_elbo_params p;
  memset(&p, 0, sizeof p);
  p.draws = 1;
  p.conf = 0.95;
  return p;
}

int csde_elbo(const csde_problem *P, const csde_elbo_params *par, const double *x0,
              csde_elbo_sample *out, size_t *nfe, csde_err *err)
{
  (void)P, (void)par, (void)x0, (void)out, (void)nfe;
  return csde_err_set(err, CSDE_ENOTSUP, "the discrete bound is not implemented yet");
}
