/* Shared pieces of the steps in solvers/ (stepper.h), over the stepper's accessors. */
#include "solve/stepper.h"

#ifdef _OPENMP
#define CSDE_PAR_FOR _Pragma("omp parallel for num_threads(th) schedule(static) if (th > 1)")
#else
#define CSDE_PAR_FOR
#endif
/* One parallel pass over the state: y[i] = expr. */
#define CSDE_LINCOMB_LOOP(expr)                                                            \
  do {                                                                                     \
    CSDE_PAR_FOR                                                                           \
    for (long i = 0; i < n; i++) y[i] = (expr);                                            \
  } while (0)

void csde_stepper_lincomb(const csde_stepper *S, double *y, double cx, const double *x,
                          unsigned k, const double *w, const double *const *b)
{
  const long n = (long)csde_stepper_n(S);
  const int th = csde_stepper_threads(S);
  (void)th;
  const double w0 = k > 0 ? w[0] : 0, w1 = k > 1 ? w[1] : 0, w2 = k > 2 ? w[2] : 0,
               w3 = k > 3 ? w[3] : 0;
  const double *b0 = k > 0 ? b[0] : NULL, *b1 = k > 1 ? b[1] : NULL,
               *b2 = k > 2 ? b[2] : NULL, *b3 = k > 3 ? b[3] : NULL;
  switch (k) {
  case 0: CSDE_LINCOMB_LOOP(cx * x[i]); break;
  case 1: CSDE_LINCOMB_LOOP(cx * x[i] + w0 * b0[i]); break;
  case 2: CSDE_LINCOMB_LOOP(cx * x[i] + w0 * b0[i] + w1 * b1[i]); break;
  case 3: CSDE_LINCOMB_LOOP(cx * x[i] + w0 * b0[i] + w1 * b1[i] + w2 * b2[i]); break;
  case 4:
    CSDE_LINCOMB_LOOP(cx * x[i] + w0 * b0[i] + w1 * b1[i] + w2 * b2[i] + w3 * b3[i]);
    break;
  default: /* more terms: the same left-to-right sum, term by term */
    CSDE_PAR_FOR
    for (long i = 0; i < n; i++) {
      double v = cx * x[i];
      for (unsigned j = 0; j < k; j++) v += w[j] * b[j][i];
      y[i] = v;
    }
  }
}
