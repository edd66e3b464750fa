/* TAP test of the predictor-corrector sampler's Langevin corrector (issue 27, item 4;
 * src/solve/corrector.c, the solve loop's correct()), on the exact gaussian model with
 * S0 and C that do not commute and tau = 3 (odd). (a) and (b) run with the argument "law"
 * (the slow suite), (c) to (e) without (the fast suite, valgrind's too):
 *   (a) the corrector alone at a fixed t with a fixed e: the chain
 *       x <- x + e C s + sqrt(2 e) V' z has the stationary law N(sqrt(abar) m, Sigma_e),
 *       Sigma_e = A Sigma_e A^T + 2 e C, A = I - e C Sigma_t^-1 (exact for the discrete
 *       chain; Sigma_e -> Sigma_t as e -> 0, checked too); its moments after a burn-in
 *       from x = 0 against them within 4.5 standard errors of the sample size;
 *   (b) PC sampling (reverse-sde, em predictor, langevin:snr=R,steps=1) from the exact
 *       p_T: its moments at eps against the exact p_eps = N(sqrt(abar) m, Sigma_eps)
 *       within standard errors at the finest grid (snr 0.04: the step rule's own bias,
 *       a covariance inflation of about snr^2 relative, is below the se there), and the
 *       table against em alone at equal NFE printed as # lines (snr 0.16 and 0.04). On
 *       this problem PC does NOT beat em at equal NFE: halving the predictor's steps
 *       costs more than one corrector step gains (docs/notes: reported, not asserted);
 *   (c) threads 1 vs 2 and batch 4 vs 2 + 2 (first_sample) give the same bits with the
 *       corrector on; NFE = steps (1 + K);
 *   (d) the corrector off (NULL, "none") gives the bits of a run without it, NFE = steps;
 *   (e) bad specs (snr <= 0, steps 0 or > 1000, an unknown key or name) and bad
 *       combinations (forward-sde, pf-ode-encode, ddpm, ddim, adaptive steps): errors
 *       naming the corrector. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "corrsde/corrsde.h"
#include "process/process.h"
#include "solve/corrector.h"
#include "tap.h"

#define TAU 3

static csde_cov *C;
static csde_schedule *S;
static double Cm[9];
static const double S0[9] = {0.30, 0.10, 0.00, 0.10, 0.20, -0.05, 0.00, -0.05, 0.40};
static const double M0[TAU] = {0.5, -0.3, 0.8};

static void mat3_mul(const double *a, const double *b, double *o)
{
  double t[9];
  for (int i = 0; i < 3; i++)
    for (int j = 0; j < 3; j++) {
      t[i * 3 + j] = 0;
      for (int k = 0; k < 3; k++) t[i * 3 + j] += a[i * 3 + k] * b[k * 3 + j];
    }
  memcpy(o, t, sizeof t);
}

static void mat3_inv(const double *a, double *o)
{
  double d = a[0] * (a[4] * a[8] - a[5] * a[7]) - a[1] * (a[3] * a[8] - a[5] * a[6]) +
             a[2] * (a[3] * a[7] - a[4] * a[6]);
  o[0] = (a[4] * a[8] - a[5] * a[7]) / d;
  o[1] = (a[2] * a[7] - a[1] * a[8]) / d;
  o[2] = (a[1] * a[5] - a[2] * a[4]) / d;
  o[3] = (a[5] * a[6] - a[3] * a[8]) / d;
  o[4] = (a[0] * a[8] - a[2] * a[6]) / d;
  o[5] = (a[2] * a[3] - a[0] * a[5]) / d;
  o[6] = (a[3] * a[7] - a[4] * a[6]) / d;
  o[7] = (a[1] * a[6] - a[0] * a[7]) / d;
  o[8] = (a[0] * a[4] - a[1] * a[3]) / d;
}

/* Sigma_t = abar S0 + (1 - abar) C, mu_t = sqrt(abar) m */
static void marginal(double t, double *Sig, double *mu)
{
  double ab = csde_schedule_abar(S, t);
  for (int i = 0; i < 9; i++) Sig[i] = ab * S0[i] + (1 - ab) * Cm[i];
  for (int i = 0; i < TAU; i++) mu[i] = sqrt(ab) * M0[i];
}

/* The sample moments of the n = batch D frame vectors of x against (mu, Sig): the
 * largest errors and the largest errors in standard errors (se of a mean sqrt(S_ii/n), of
 * a covariance sqrt((S_ii S_jj + S_ij^2)/n)). */
typedef struct {
  double mean_err, cov_err, mean_z, cov_z;
} moments;

static moments check_moments(const double *x, size_t batch, size_t D, const double *mu,
                             const double *Sig)
{
  const double n = (double)(batch * D);
  double mh[TAU] = {0}, ch[9] = {0};
  for (size_t b = 0; b < batch; b++)
    for (size_t p = 0; p < D; p++)
      for (int i = 0; i < TAU; i++) mh[i] += x[(b * TAU + (size_t)i) * D + p] / n;
  for (size_t b = 0; b < batch; b++)
    for (size_t p = 0; p < D; p++)
      for (int i = 0; i < TAU; i++)
        for (int j = 0; j < TAU; j++)
          ch[i * 3 + j] += (x[(b * TAU + (size_t)i) * D + p] - mh[i]) *
                           (x[(b * TAU + (size_t)j) * D + p] - mh[j]) / (n - 1);
  moments m = {0, 0, 0, 0};
  for (int i = 0; i < TAU; i++) {
    double d = fabs(mh[i] - mu[i]);
    m.mean_err = fmax(m.mean_err, d);
    m.mean_z = fmax(m.mean_z, d / sqrt(Sig[i * 4] / n));
    for (int j = 0; j < TAU; j++) {
      double dc = fabs(ch[i * 3 + j] - Sig[i * 3 + j]);
      m.cov_err = fmax(m.cov_err, dc);
      m.cov_z = fmax(m.cov_z, dc / sqrt((Sig[i * 4] * Sig[j * 4] + Sig[i * 3 + j] *
                                         Sig[i * 3 + j]) / n));
    }
  }
  return m;
}

static csde_model *gauss(size_t D)
{
  csde_model *m = NULL;
  csde_err err;
  if (csde_model_gaussian_alloc(&m, C, S, D, M0, TAU, S0, &err)) {
    printf("# gaussian: %s\n", err.msg);
    exit(1);
  }
  return m;
}

/* ---- (a) the corrector alone at fixed t ---- */
static void test_chain(void)
{
  const size_t D = 20000, n = TAU * D;
  const double t = 0.4, e = 0.02;
  const size_t iters = 1500;
  csde_model *m = gauss(D);
  csde_problem P = csde_problem_default();
  P.process = CSDE_PROC_REVERSE_SDE;
  P.tau = TAU;
  P.D = D;
  P.batch = 1;
  P.C = C;
  P.sched = S;
  P.model = m;
  csde_proc pr;
  csde_corrector c;
  csde_err err;
  double *x = calloc(n, sizeof *x);
  int s = csde_proc_init(&pr, &P, 1, 0, &err);
  if (!s) s = csde_corrector_init(&c, C, 1, D, 1, 1, 0.16, &err);
  for (size_t k = 0; !s && k < iters; k++) {
    s = csde_proc_cscore(&pr, t, 0, x, c.g, &err);
    if (!s) s = csde_corrector_langevin(&c, csde_corrector_key(5, k, 0), 0, 0.0, e, x, NULL,
                                        &err);
  }
  ok(!s, "(a) %zu corrector steps at t = %g, e = %g (%s)", iters, t, e, s ? err.msg : "ok");
  double Sig[9], mu[TAU], Si[9], A[9], At[9], Se[9], T1[9];
  marginal(t, Sig, mu);
  mat3_inv(Sig, Si);
  mat3_mul(Cm, Si, A); /* A = I - e C Sigma^-1 */
  for (int i = 0; i < 9; i++) A[i] = (i % 4 == 0) - e * A[i];
  for (int i = 0; i < 3; i++)
    for (int j = 0; j < 3; j++) At[i * 3 + j] = A[j * 3 + i];
  memcpy(Se, Sig, sizeof Se);
  for (int it = 0; it < 20000; it++) { /* Sigma_e = A Sigma_e A^T + 2 e C */
    mat3_mul(A, Se, T1);
    mat3_mul(T1, At, Se);
    for (int i = 0; i < 9; i++) Se[i] += 2 * e * Cm[i];
  }
  double gap = 0, scale = 0;
  for (int i = 0; i < 9; i++) gap = fmax(gap, fabs(Se[i] - Sig[i])), scale = fmax(scale, fabs(Sig[i]));
  printf("# (a) max |Sigma_e - Sigma_t| = %.3g (max |Sigma_t| %.3g): the chain's bias at e = %g\n",
         gap, scale, e);
  ok(gap < 0.05 * scale, "(a) Sigma_e is within 5%% of Sigma_t at e = %g (O(e))", e);
  moments mo = check_moments(x, 1, D, mu, Se);
  printf("# (a) n = %zu: mean err %.3g (%.2f se), cov err %.3g (%.2f se) against N(mu_t, "
         "Sigma_e)\n", D, mo.mean_err, mo.mean_z, mo.cov_err, mo.cov_z);
  ok(mo.mean_z < 4.5 && mo.cov_z < 4.5, "(a) the chain's moments are N(sqrt(abar) m, Sigma_e) "
     "within 4.5 se (mean %.2f, cov %.2f)", mo.mean_z, mo.cov_z);
  moments mt = check_moments(x, 1, D, mu, Sig);
  printf("# (a) against N(mu_t, Sigma_t) itself: mean %.2f se, cov %.2f se\n", mt.mean_z,
         mt.cov_z);
  csde_corrector_free(&c);
  csde_proc_free(&pr);
  free(x);
  csde_model_free(m);
}

/* ---- (b) PC sampling from the exact p_T ---- */

/* x: exact draws of p_T = N(sqrt(abar_T) m, Sigma_T) (Cholesky by hand), stream 77 */
static void exact_prior(double *x, size_t D, double T)
{
  double Sig[9], mu[TAU], L[9] = {0};
  marginal(T, Sig, mu);
  for (int i = 0; i < 3; i++)
    for (int j = 0; j <= i; j++) {
      double v = Sig[i * 3 + j];
      for (int k = 0; k < j; k++) v -= L[i * 3 + k] * L[j * 3 + k];
      L[i * 3 + j] = i == j ? sqrt(v) : v / L[j * 3 + j];
    }
  double *z = malloc(TAU * D * sizeof *z);
  csde_rng_key key = {77, 0};
  csde_rng_normal(key, 0, TAU * D, z);
  for (size_t p = 0; p < D; p++)
    for (int i = 0; i < TAU; i++) {
      double v = mu[i];
      for (int k = 0; k <= i; k++) v += L[i * 3 + k] * z[(size_t)k * D + p];
      x[(size_t)i * D + p] = v;
    }
  free(z);
}

static moments pc_run(size_t D, const csde_model *m, size_t steps, size_t K, double snr,
                      size_t *nfe)
{
  csde_problem P = csde_problem_default();
  P.process = CSDE_PROC_REVERSE_SDE;
  P.tau = TAU;
  P.D = D;
  P.batch = 1;
  P.C = C;
  P.sched = S;
  P.model = m;
  csde_solve_params par = csde_solve_default_params();
  par.solver = "em";
  par.steps = steps;
  par.seed = 3;
  par.corrector_steps = K;
  par.corrector_snr = snr;
  double *x = malloc(TAU * D * sizeof *x), Sig[9], mu[TAU];
  exact_prior(x, D, P.T);
  csde_solve_stats st;
  csde_err err;
  moments mo = {NAN, NAN, NAN, NAN};
  if (csde_solve(&P, &par, x, &st, &err)) {
    printf("# solve: %s\n", err.msg);
    *nfe = 0;
  } else {
    marginal(P.eps, Sig, mu);
    mo = check_moments(x, 1, D, mu, Sig);
    *nfe = st.nfe;
  }
  free(x);
  return mo;
}

/* The table for one snr; *fine: the PC moments at the finest grid within 4.5 se. */
static void test_pc_snr(double snr, int *fine_ok, int *nfe_ok);
static void test_pc(void)
{
  int fine = 0, nfe = 0;
  test_pc_snr(0.16, &fine, &nfe); /* score_sde's snr: reported */
  ok(nfe, "(b) NFE: em N steps = N, PC N/2 steps + 1 corrector step each = N");
  test_pc_snr(0.04, &fine, &nfe);
  ok(fine, "(b) PC (snr 0.04) at NFE 320 gives the exact p_eps moments within 4.5 se");
}
static void test_pc_snr(double snr, int *fine_ok, int *nfe_ok)
{
  const size_t D = 40000;
  csde_model *m = gauss(D);
  printf("# (b) reverse-sde from the exact p_T to eps = 1e-3, n = %zu frame vectors; errors "
         "against the exact p_eps (max over entries; se in brackets)\n", D);
  printf("# (b)  NFE | em alone: mean err    cov err       | PC em + langevin:snr=%g,steps=1: "
         "mean err    cov err\n", snr);
  const size_t nfes[] = {20, 40, 80, 320};
  *nfe_ok = 1;
  for (size_t i = 0; i < sizeof nfes / sizeof nfes[0]; i++) {
    size_t n1, n2;
    moments a = pc_run(D, m, nfes[i], 0, snr, &n1);
    moments b = pc_run(D, m, nfes[i] / 2, 1, snr, &n2);
    printf("# (b) %4zu | %.4f (%5.1f se) %.4f (%5.1f se) | %.4f (%5.1f se) %.4f (%5.1f se)\n",
           nfes[i], a.mean_err, a.mean_z, a.cov_err, a.cov_z, b.mean_err, b.mean_z, b.cov_err,
           b.cov_z);
    *nfe_ok = *nfe_ok && n1 == nfes[i] && n2 == nfes[i];
    if (i + 1 == sizeof nfes / sizeof nfes[0]) *fine_ok = b.mean_z < 4.5 && b.cov_z < 4.5;
  }
  csde_model_free(m);
}

/* ---- (c), (d): the run API, bit for bit ---- */
#define DP 5
static int run_final(const char *corrector, int threads, size_t batch, size_t first,
                     double *x, csde_solve_stats *st, csde_err *err)
{
  csde_model *m = gauss(DP);
  csde_run_settings s = csde_run_default_settings();
  s.seed = 9;
  s.steps = 12;
  s.threads = threads;
  s.first_sample = first;
  s.corrector = corrector;
  csde_run *r = NULL;
  size_t shape[1] = {DP};
  int rc = csde_run_alloc(&r, &s, C, S, m, batch, 1, shape, err);
  if (!rc) rc = csde_run_prior(r, x, err);
  if (!rc) rc = csde_run_exec(r, x, NULL, NULL, st, err);
  csde_run_free(r);
  csde_model_free(m);
  return rc;
}

static void test_bits(void)
{
  const size_t per = TAU * DP, n = 4 * per;
  double *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b), *c = malloc(n * sizeof *c);
  csde_solve_stats st, st2;
  csde_err err;
  const char *spec = "langevin:snr=0.16,steps=2";
  int rc = run_final(spec, 1, 4, 0, a, &st, &err);
  ok(!rc && st.nfe == 12 * 3, "(c) corrector on: NFE = steps (1 + K) = %zu (%s)", st.nfe,
     rc ? err.msg : "ok");
  rc = run_final(spec, 2, 4, 0, b, &st2, &err);
  ok(!rc && !memcmp(a, b, n * sizeof *a), "(c) threads 1 and 2 give the same bits");
  rc = run_final(spec, 1, 2, 0, c, &st2, &err);
  if (!rc) rc = run_final(spec, 2, 2, 2, c + 2 * per, &st2, &err);
  ok(!rc && !memcmp(a, c, n * sizeof *a), "(c) batch 4 and batches 2 + 2 (first_sample 2) "
     "give the same bits");
  rc = run_final(NULL, 1, 4, 0, b, &st, &err);
  ok(!rc && memcmp(a, b, n * sizeof *a), "(c) the corrector changes the states");
  ok(!rc && st.nfe == 12, "(d) corrector off: NFE = steps");
  rc = run_final("none", 1, 4, 0, c, &st2, &err);
  ok(!rc && !memcmp(b, c, n * sizeof *b), "(d) \"none\" gives the bits of no corrector");
  /* the bits of the predictor alone, by the solve layer with no corrector fields set */
  {
    csde_model *m = gauss(DP);
    csde_run_settings s = csde_run_default_settings();
    s.seed = 9;
    s.steps = 12;
    csde_run *r = NULL;
    size_t shape[1] = {DP};
    rc = csde_run_alloc(&r, &s, C, S, m, 4, 1, shape, &err);
    if (!rc) rc = csde_run_prior(r, c, &err);
    csde_problem P = *csde_run_problem(r);
    csde_solve_params par = csde_solve_default_params();
    par.solver = "em";
    par.steps = 12;
    par.seed = 9;
    if (!rc) rc = csde_solve(&P, &par, c, &st2, &err);
    ok(!rc && !memcmp(b, c, n * sizeof *b), "(d) the off run equals a bare csde_solve");
    csde_run_free(r);
    csde_model_free(m);
  }
  free(a);
  free(b);
  free(c);
}

/* ---- (e) errors ---- */
static void test_errors(void)
{
  size_t k;
  double r;
  csde_err err;
  static const char *const bad[] = {"langevin:snr=0",     "langevin:snr=-1",
                                    "langevin:steps=0",   "langevin:steps=1001",
                                    "langevin:snr=0.1,x=1", "hmc:snr=0.1",
                                    "langevin:snr=nan",   "langevin:steps=-1"};
  static const char *const why[] = {"snr > 0", "snr > 0", "steps = 0", "steps <= 1000",
                                    "unknown parameter 'x'", "unknown corrector 'hmc'",
                                    "", "positive integer"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    int s = csde_corrector_parse(bad[i], &k, &r, &err);
    ok_status(s != 0, 1, err.msg, why[i], bad[i]);
  }
  ok(!csde_corrector_parse("langevin", &k, &r, &err) && k == 1 && r == 0.16,
     "defaults: langevin = snr 0.16, steps 1");
  ok(!csde_corrector_parse(NULL, &k, &r, &err) && k == 0 &&
     !csde_corrector_parse("none", &k, &r, &err) && k == 0, "NULL and none: off");
  csde_model *m = gauss(DP);
  struct {
    const char *process, *noise;
    double rtol;
    const char *sched, *want;
  } combos[] = {{"forward-sde", NULL, 0, NULL, "forward-sde"},
                {"pf-ode-encode", NULL, 0, NULL, "pf-ode-encode"},
                {"ddim", NULL, 0, NULL, "ddim"},
                {"ddpm", NULL, 0, "ddpm-linear:n=50", "ddpm"},
                {"reverse-sde", "path", 1e-3, NULL, "adaptive"},
                {"pf-ode", NULL, 1e-3, NULL, "adaptive"},
                {"reverse-sde", NULL, 0, NULL, "snr"}};
  for (size_t i = 0; i < sizeof combos / sizeof combos[0]; i++) {
    csde_schedule *sc = NULL;
    if (combos[i].sched) csde_schedule_alloc(&sc, combos[i].sched, &err);
    csde_run_settings s = csde_run_default_settings();
    s.process = combos[i].process;
    if (combos[i].noise) s.noise = combos[i].noise;
    s.rtol = combos[i].rtol;
    s.corrector = i + 1 == sizeof combos / sizeof combos[0] ? "langevin:snr=-2" : "langevin";
    csde_run *run = NULL;
    size_t shape[1] = {DP};
    csde_err_clear(&err);
    int st = csde_run_alloc(&run, &s, C, sc ? sc : S, m, 2, 1, shape, &err);
    ok(st != 0 && err.param && !strcmp(err.param, CSDE_PARAM_CORRECTOR) &&
       strstr(err.msg, combos[i].want), "%s%s with a corrector: refused naming the corrector "
       "(%s)", combos[i].process, combos[i].rtol > 0 ? " adaptive" : "", err.msg);
    csde_run_free(run);
    csde_schedule_free(sc);
  }
  csde_model_free(m);
}

/* No argument: the refusals and the bits (fast suite, valgrind included). "law": the
 * chain's moments and the PC table (slow suite: 40 000 frame vectors per row). */
int main(int argc, char **argv)
{
  const int law = argc > 1 && !strcmp(argv[1], "law");
  csde_err err;
  csde_cov_params cp = csde_cov_default_params();
  cp.method = CSDE_COV_DENSE;
  if (csde_cov_alloc(&C, "ar1:rho=0.8", TAU, &cp, &err) ||
      csde_schedule_alloc(&S, "vp-linear", &err)) {
    printf("Bail out! %s\n", err.msg);
    return 1;
  }
  csde_cov_matrix(C, Cm);
  if (law) {
    test_chain();
    test_pc();
  } else {
    test_errors();
    test_bits();
  }
  csde_cov_free(C);
  csde_schedule_free(S);
  return tap_done();
}
