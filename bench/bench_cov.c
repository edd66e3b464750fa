/* `corrsde-bench cov`: the time of y = C x for one block of tau x D (C = ar1:rho=0.9),
 * methods dense, circulant-tchan and embed, for each tau. The ratio is t / t_dense at the
 * same tau (below 1: faster than dense). The crossover is the smallest tau from which
 * embed is faster than dense at every measured tau; it sets CSDE_COV_AUTO_TAU.
 * Then the small-tau kernel (src/core/smallmm.c) against cblas_dgemm on the same product,
 * for each tau up to CSDE_SMALLMM_MAX_K (each sample at least 256 / tau products): where it
 * is faster sets CSDE_SMALLMM_MAX_TAU (the AVX-512 kernel's). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "bench.h"
#include "core/smallmm.h"
#include "corrsde/corrsde.h"

#ifdef CSDE_HAVE_OPENBLAS_THREADS
void openblas_set_num_threads(int n);
#endif

enum { MAXTAU = 64, NMETH = 3 };

static const csde_cov_method meth[NMETH] = {CSDE_COV_DENSE, CSDE_COV_CIRC_TCHAN, CSDE_COV_EMBED};

static int parse_taus(const char *s, size_t *tau, int max)
{
  int k = 0;
  while (*s) {
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || v < 1 || v > 1000000 || (*end && *end != ',') || k == max) return -1;
    tau[k++] = (size_t)v;
    s = *end ? end + 1 : end;
  }
  return k;
}

typedef struct {
  int ok;
  bench_stat s;
  double err; /* max |y - y_dense| / max |y_dense| */
  size_t m;   /* embedding size, for embed */
  char msg[CSDE_MSG_MAX];
} result;

/* Time R applies of method k at tau (after one untimed apply); y receives C x. */
static result time_apply(csde_cov_method k, size_t tau, size_t D, int R, const double *x,
                         double *y, double *t)
{
  result res = {0};
  csde_cov *C = NULL;
  csde_cov_ws *ws = NULL;
  csde_err err;
  csde_err_clear(&err);
  csde_cov_params p = csde_cov_default_params();
  p.method = k;
  if (csde_cov_alloc(&C, "ar1:rho=0.9", tau, &p, &err) || csde_cov_ws_alloc(&ws, C, D, 1, &err) ||
      csde_cov_apply(C, ws, CSDE_COV_OP_C, 1, x, y, &err)) {
    snprintf(res.msg, sizeof res.msg, "%s", err.msg[0] ? err.msg : csde_strerror(err.status));
    csde_cov_ws_free(ws);
    csde_cov_free(C);
    return res;
  }
  for (int r = 0; r < R; r++) {
    double t0 = bench_now();
    csde_cov_apply(C, ws, CSDE_COV_OP_C, 1, x, y, &err);
    t[r] = bench_now() - t0;
  }
  res.ok = 1;
  res.s = bench_stats(t, R);
  res.m = csde_cov_embed_size(C);
  csde_cov_ws_free(ws);
  csde_cov_free(C);
  return res;
}

/* y = A x for a tau x tau A and tau x D x: the small-tau kernel against BLAS */
static void small_kernel(const bench_opts *o, const size_t *tau, int nt, size_t D, int R,
                         const double *x, double *y, double *y0, double *t)
{
  int kern = csde_smallmm_kernel();
  if (kern == CSDE_SMALLMM_NONE) {
    printf("\nthe small-tau kernel: none on this CPU (or CSDE_SMALLMM_KERNEL=blas): BLAS "
           "throughout\n");
    return;
  }
  printf("\nthe small-tau kernel (%s, src/core/smallmm.c) against cblas_dgemm: y = A x, A "
         "tau x tau,\none block of tau x %zu; x blas = BLAS's median / the kernel's; err = "
         "max|y - y_blas| / max|y_blas|\n\n",
         csde_smallmm_kernel_name(kern), D);
  printf("%6s  %10s %10s %8s %9s\n", "tau", "kernel s", "blas s", "x blas", "err");
  double A[CSDE_SMALLMM_MAX_K * CSDE_SMALLMM_MAX_K];
  int up_to = -1, slower = 0, measured = 0;
  for (int i = 0; i < nt && tau[i] <= CSDE_SMALLMM_MAX_K; i++) {
    size_t m = tau[i];
    measured++;
    csde_rng_normal((csde_rng_key){2025, m}, 0, m * m, A);
    bench_stat s[2];
    int inner = m < 64 ? (int)(256 / m) : 1; /* a sample of at least about 0.5 ms */
    for (int k = 0; k < 2; k++) {
      for (int r = -1; r < R; r++) {
        double t0 = bench_now();
        for (int q = 0; q < inner; q++)
          if (k == 0)
            csde_smallmm(kern, m, m, D, 1.0, A, m, x, D, 0.0, NULL, 0.0, NULL, D, y);
          else
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)D, (int)m,
                        1.0, A, (int)m, x, (int)D, 0.0, y0, (int)D);
        if (r >= 0) t[r] = (bench_now() - t0) / inner;
      }
      s[k] = bench_stats(t, R);
    }
    double e = 0, ymax = 0;
    for (size_t j = 0; j < m * D; j++) {
      e = fmax(e, fabs(y[j] - y0[j]));
      ymax = fmax(ymax, fabs(y0[j]));
    }
    double ratio = s[1].med / s[0].med;
    if (ratio > 1) up_to = i;
    if (ratio <= 1) slower++;
    printf("%6zu  %10.6f %10.6f %8.2f %9.2g\n", m, s[0].med, s[1].med, ratio,
           ymax > 0 ? e / ymax : e);
    char param[32];
    snprintf(param, sizeof param, "tau=%zu,D=%zu", m, D);
    bench_csv_row(o, "cov", "smallmm kernel", param, 1, (double)(m * D), R, s[0], NAN, ratio,
                  "cblas_dgemm / kernel", csde_smallmm_kernel_name(kern));
  }
  if (up_to < 0)
    printf("\nthe kernel is slower than BLAS at every measured tau");
  else
    printf("\nthe kernel is faster than BLAS at %d of %d measured tau, the largest %zu", measured - slower,
           measured, tau[up_to]);
  printf(" (it is used up to tau = %zu)\n", csde_smallmm_max_tau(kern));
}

int bench_cov(const bench_opts *o)
{
  size_t tau[MAXTAU], D = o->D;
  int nt = parse_taus(o->taus ? o->taus : "8,16,32,64,96,128,192,256,384,512,768,1024", tau,
                      MAXTAU);
  int R = o->repeats > 0 ? o->repeats : 5, T = o->threads > 0 ? o->threads : 1;
  if (nt <= 0) {
    fprintf(stderr, "corrsde-bench: bad --taus '%s' (comma-separated positive integers)\n",
            o->taus);
    return 1;
  }
#ifdef CSDE_HAVE_OPENBLAS_THREADS
  openblas_set_num_threads(T);
#else
  T = 0; /* not OpenBLAS: the BLAS keeps its own default */
#endif
  size_t tmax = 0;
  for (int i = 0; i < nt; i++) tmax = tau[i] > tmax ? tau[i] : tmax;
  double *x = malloc(tmax * D * sizeof *x), *y = malloc(tmax * D * sizeof *y);
  double *y0 = malloc(tmax * D * sizeof *y0), *t = malloc((size_t)R * sizeof *t);
  if (!x || !y || !y0 || !t) {
    fprintf(stderr, "corrsde-bench: out of memory (tau %zu, D %zu)\n", tmax, D);
    free(x), free(y), free(y0), free(t);
    return 1;
  }

  printf("corrsde-bench cov: y = C x, C = ar1:rho=0.9, one block of tau x %zu, median of %d "
         "repeats [min, max]\n",
         D, R);
  printf("BLAS threads %d (0: the BLAS default), one workspace thread\n"
         "t/dense = t / t_dense at the same tau; err = max|y - y_dense| / max|y_dense|\n\n",
         T);
  printf("%6s  %-16s %10s %10s %10s %8s %9s  %s\n", "tau", "method", "median s", "min s",
         "max s", "t/dense", "err", "note");
  int faster[MAXTAU];
  for (int i = 0; i < nt; i++) {
    size_t n = tau[i] * D;
    csde_rng_normal((csde_rng_key){2024, tau[i]}, 0, n, x);
    double tdense = NAN, ymax = 0;
    faster[i] = 0;
    for (int k = 0; k < NMETH; k++) {
      result r = time_apply(meth[k], tau[i], D, R, x, k ? y : y0, t);
      const char *mname = csde_cov_method_name(meth[k]);
      char param[32], note[CSDE_MSG_MAX + 32] = "";
      snprintf(param, sizeof param, "tau=%zu,D=%zu", tau[i], D);
      if (!r.ok) {
        printf("%6zu  %-16s %10s %10s %10s %8s %9s  failed: %s\n", tau[i], mname, "-", "-", "-",
               "-", "-", r.msg);
        snprintf(note, sizeof note, "failed: %s", r.msg);
        bench_csv_row(o, "cov", mname, param, T, (double)n, R, r.s, NAN, NAN, "", note);
        continue;
      }
      if (k == 0) {
        tdense = r.s.med;
        for (size_t j = 0; j < n; j++) ymax = fmax(ymax, fabs(y0[j]));
      }
      double e = 0;
      if (k)
        for (size_t j = 0; j < n; j++) e = fmax(e, fabs(y[j] - y0[j]));
      e = ymax > 0 ? e / ymax : e;
      if (meth[k] == CSDE_COV_EMBED) {
        snprintf(note, sizeof note, "embedding m = %zu", r.m);
        faster[i] = r.s.med < tdense;
      }
      if (meth[k] == CSDE_COV_CIRC_TCHAN) snprintf(note, sizeof note, "approximation");
      double ratio = r.s.med / tdense;
      printf("%6zu  %-16s %10.6f %10.6f %10.6f %8.3f %9.2g  %s\n", tau[i], mname, r.s.med,
             r.s.min, r.s.max, ratio, e, note);
      bench_csv_row(o, "cov", mname, param, T, (double)n, R, r.s, (double)n / r.s.med,
                    isfinite(ratio) ? ratio : NAN, isfinite(ratio) ? "dense" : "", note);
    }
  }
  /* the crossover: embed faster at this tau and every larger measured tau */
  int first = -1, from = -1;
  for (int i = 0; i < nt; i++)
    if (faster[i] && first < 0) first = i;
  for (int i = nt - 1; i >= 0 && faster[i]; i--) from = i;
  printf("\n");
  if (from < 0) {
    printf("crossover: embed is not faster than dense at the largest tau measured\n");
  } else {
    printf("crossover: embed is faster than dense from tau = %zu on (every measured tau >= it)",
           tau[from]);
    if (first != from) printf("; first faster at tau = %zu", tau[first]);
    printf("\n(CSDE_COV_AUTO_TAU is %d)\n", CSDE_COV_AUTO_TAU);
  }
  bench_csv_row(o, "cov", "crossover embed<dense", "", T, from >= 0 ? (double)tau[from] : NAN, R,
                (bench_stat){NAN, NAN, NAN}, NAN, NAN, "",
                from >= 0 ? "n column = the crossover tau" : "embed never faster");
  small_kernel(o, tau, nt, D, R, x, y, y0, t);
  free(x), free(y), free(y0), free(t);
  return 0;
}
