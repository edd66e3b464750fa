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
