/* TEMPORARY stub (removed when src/model's exact traces land) */
#include "likelihood/divergence.h"
#include <math.h>
double csde_bits_per_dim(double nll, size_t n, const csde_dequant *q)
{
  return nll / ((double)n * log(2.0)) - (q && q->bits ? log2(q->scale) : 0.0);
}
csde_dequant csde_dequant_continuous(void)
{
  csde_dequant q = {0, 0, 0};
  return q;
}
/* TEMPORARY stub (removed when bpd.c's dequantization lands): "none" only */
#include <string.h>
int csde_dequant_parse(const char *spec, csde_dequant *q, csde_err *err)
{
  if (spec && !strcmp(spec, "none")) {
    *q = csde_dequant_continuous();
    return CSDE_SUCCESS;
  }
  csde_err_set(err, CSDE_ENOTSUP, "dequant '%s': not yet implemented", spec ? spec : "");
  return csde_err_blame(err, CSDE_PARAM_DEQUANT, CSDE_ENOTSUP);
}
