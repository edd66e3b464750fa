/* Bits per dimension and the uniform dequantization of integer data (corrsde/likelihood.h):
 *   y = scale (k + u) + shift,  u ~ U(0, 1)^n,
 *   bpd = nll / (n ln 2) - log2(scale)  (integer data; Theis et al. 2016, Jensen over u),
 *   bpd = nll / (n ln 2)               (continuous data).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/spec.h"
#include "corrsde/likelihood.h"

csde_dequant csde_dequant_continuous(void)
{
  csde_dequant q = {0, 0, 0};
  return q;
}

csde_dequant csde_dequant_bits(int bits)
{
  csde_dequant q = {bits, 2 / ldexp(1, bits), -1}; /* [-1, 1): scale 2 / 2^bits */
  return q;
}

/* 0 when q is a valid rule, else CSDE_EINVAL blamed on the dequantization. */
static int dequant_check(const csde_dequant *q, csde_err *err)
{
  if (!q)
    return csde_err_blame(err, CSDE_PARAM_DEQUANT,
                          csde_err_set(err, CSDE_EINVAL, "dequant: the rule is NULL"));
  if (q->bits == 0) return CSDE_SUCCESS;
  if (q->bits < 0 || q->bits > CSDE_DEQUANT_MAX_BITS)
    return csde_err_blame(err, CSDE_PARAM_DEQUANT,
                          csde_err_set(err, CSDE_EINVAL, "dequant: bits = %d, expected 0 "
                                       "(continuous) or 1 <= bits <= %d", q->bits,
                                       CSDE_DEQUANT_MAX_BITS));
  if (!(q->scale > 0 && isfinite(q->scale)))
    return csde_err_blame(err, CSDE_PARAM_DEQUANT,
                          csde_err_set(err, CSDE_EINVAL, "dequant: scale = %g, expected a "
                                       "finite scale > 0", q->scale));
  if (!isfinite(q->shift))
    return csde_err_blame(err, CSDE_PARAM_DEQUANT,
                          csde_err_set(err, CSDE_EINVAL, "dequant: shift = %g, expected a "
                                       "finite number", q->shift));
  return CSDE_SUCCESS;
}

int csde_dequant_parse(const char *spec, csde_dequant *q, csde_err *err)
{
  if (!q)
    return csde_err_blame(err, CSDE_PARAM_DEQUANT,
                          csde_err_set(err, CSDE_EINVAL, "dequant: output is NULL"));
  *q = csde_dequant_continuous();
  if (!spec || !*spec || !strcmp(spec, "none")) return CSDE_SUCCESS;
  csde_spec sp;
  static const char *const keys[] = {"bits", "scale", "shift", NULL};
  int s = csde_spec_parse(spec, "dequant", &sp, err);
  if (!s && strcmp(sp.name, "uniform"))
    s = csde_err_set(err, CSDE_ESPEC, "dequant: unknown rule '%s' (expected none or "
                     "uniform[:bits=B,scale=S,shift=H])", sp.name);
  size_t bits = 8;
  if (!s) s = csde_spec_check_keys(&sp, keys, err);
  if (!s) s = csde_spec_size(&sp, "bits", 8, &bits, err);
  if (!s && bits > CSDE_DEQUANT_MAX_BITS)
    s = csde_err_set(err, CSDE_EDOM, "dequant '%s': bits = %zu, expected 1 <= bits <= %d",
                     spec, bits, CSDE_DEQUANT_MAX_BITS);
  csde_dequant r = csde_dequant_bits(s ? 8 : (int)bits);
  if (!s) s = csde_spec_double(&sp, "scale", r.scale, &r.scale, err);
  if (!s && !(r.scale > 0))
    s = csde_err_set(err, CSDE_EDOM, "dequant '%s': scale = %g, expected scale > 0", spec,
                     r.scale);
  if (!s) s = csde_spec_double(&sp, "shift", -1, &r.shift, err);
  if (s) {
    size_t len = err ? strlen(err->msg) : 0;
    if (err && strncmp(err->msg, "dequant", 7) && len + 10 < sizeof err->msg) {
      memmove(err->msg + 9, err->msg, len + 1); /* name the setting in every message */
      memcpy(err->msg, "dequant: ", 9);
    }
    return csde_err_blame(err, CSDE_PARAM_DEQUANT, s);
  }
  *q = r;
  return CSDE_SUCCESS;
}

/* v in its shortest form that reads back exactly. */
static void fmt_exact(double v, char *b, size_t n)
{
  for (int prec = 1; prec <= 17; prec++) {
    snprintf(b, n, "%.*g", prec, v);
    if (strtod(b, NULL) == v) return;
  }
}

char *csde_dequant_spec(const csde_dequant *q, char *buf, size_t len)
{
  if (!buf || !len) return buf;
  if (!q || q->bits == 0) {
    snprintf(buf, len, "none");
    return buf;
  }
  char a[40], b[40];
  fmt_exact(q->scale, a, sizeof a);
  fmt_exact(q->shift, b, sizeof b);
  snprintf(buf, len, "uniform:bits=%d,scale=%s,shift=%s", q->bits, a, b);
  return buf;
}

int csde_dequantize(const csde_dequant *q, csde_rng_key key, size_t first, size_t batch,
                    size_t n, const double *k, double *y, csde_err *err)
{
  int s = dequant_check(q, err);
  if (s) return s;
  if (batch == 0 || n == 0) return CSDE_SUCCESS;
  if (!k || !y)
    return csde_err_blame(err, CSDE_PARAM_DATA,
                          csde_err_set(err, CSDE_EINVAL, "dequant: %s is NULL",
                                       k ? "y" : "the data k"));
  if (q->bits == 0) {
    if (y != k) memmove(y, k, batch * n * sizeof *y);
    return CSDE_SUCCESS;
  }
  const double top = ldexp(1, q->bits); /* k in [0, 2^bits), an integer */
  for (size_t b = 0; b < batch; b++)
    for (size_t i = 0; i < n; i++) {
      double v = k[b * n + i];
      if (!(v >= 0 && v < top && v == floor(v)))
        return csde_err_blame(err, CSDE_PARAM_DATA,
                              csde_err_set(err, CSDE_EDOM, "dequant: sample %zu, index %zu: "
                                           "%.17g is not an integer in [0, %.0f) (%d-bit "
                                           "data)", first + b, i, v, top, q->bits));
    }
  /* u of value i of global sample j = uniform(key, j n + i), in chunks; k is read before
   * y is written, so y may equal k */
  enum { CHUNK = 256 };
  double u[CHUNK];
  for (size_t b = 0; b < batch; b++)
    for (size_t i0 = 0; i0 < n; i0 += CHUNK) {
      size_t m = n - i0 < CHUNK ? n - i0 : CHUNK;
      csde_rng_uniform(key, (uint64_t)(first + b) * n + i0, m, u);
      const double *kk = k + b * n + i0;
      double *yy = y + b * n + i0;
      for (size_t i = 0; i < m; i++) yy[i] = q->scale * (kk[i] + u[i]) + q->shift;
    }
  return CSDE_SUCCESS;
}

double csde_bits_per_dim(double nll, size_t n, const csde_dequant *q)
{
  if (n == 0) return NAN;
  double bpd = nll / ((double)n * M_LN2);
  if (q && q->bits > 0) bpd -= log2(q->scale); /* -log2(scale): 7 for [-1, 1), 8 for [0, 1) */
  return bpd;
}
