/* TAP test of the PF-ODE log-likelihood (issue 27, items 1 and 6; src/likelihood/,
 * src/solve/augment.h), on exact models with S0 and C that do not commute and tau = 5
 * (odd), D = 2:
 *   (a) gaussian: log p_eps(x) from the solve equals the closed form log N(x; sqrt(abar)
 *       m, Sigma_eps) to 1e-6 relative at rtol = atol = 1e-9, for the exact, directional
 *       (central difference and the model's JVP) routes, and C dense, embed and circulant
 *       (the model built on the same operator, so used consistently). The solve's prior
 *       is N(0, C) at T = 1, the exact p_T is N(sqrt(abar_T) m, Sigma_T): the test adds
 *       the model's own prior mismatch log N(x_T; mu_T, Sigma_T) - prior, and checks the
 *       prior against log N(x_T; 0, C) computed here;
 *   (b) gmm: against the closed-form mixture density (csde_model_gmm_logpdf at eps and,
 *       for the prior mismatch, at T);
 *   (c) every solver that can carry the log-density gives it (rk45, rkck, rk8pd adaptive;
 *       heun on fixed steps within its O(h^2) error);
 *   (d) threads 1 vs 2 and batch 4 vs 2 + 2 (first_sample) give the same bits with
 *       Hutchinson probes and central differences;
 *   (e) refusals naming the setting: denoiser-view solvers, guidance, x0 clipping, NaN in
 *       x, conf, exact for a user model, jvp model without one, bad specs;
 * and with the argument "coverage" (the slow suite):
 *   (f) Hutchinson: over 200 seeds the 95% interval covers the exact value at the nominal
 *       rate (binomial tolerance 3 sd), and the mean standard error falls like 1/sqrt(K)
 *       (K = 4 -> 16: ratio 2 within the spread of the estimates). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "corrsde/corrsde.h"
#include "corrsde/likelihood.h"
#include "tap.h"

#define TAU 5
#define DD 2
#define PER (TAU * DD)
#define NB 4

static csde_schedule *S;
static double S0[TAU * TAU];
static const double M0[TAU] = {0.5, -0.3, 0.8, 0.1, -0.6};

/* S0: an ar1 of 0.5 plus a rising diagonal, so it commutes with no ar1 C */
static void make_s0(void)
{
  for (int i = 0; i < TAU; i++)
    for (int j = 0; j < TAU; j++)
      S0[i * TAU + j] = 0.3 * pow(0.5, abs(i - j)) + (i == j ? 0.05 * i : 0);
}

/* log N(x_b - mu; 0, Sig (x) I_D) per sample, via a dense operator of Sig. */
static void lognormal(const double *Sig, const double *mu, size_t nb, const double *x,
                      double *lp)
{
  csde_err e;
  csde_cov *A;
  csde_cov_ws *w;
  double z[NB * PER];
  csde_cov_alloc_dense(&A, Sig, TAU, NULL, &e);
  csde_cov_ws_alloc(&w, A, DD, 1, &e);
  for (size_t i = 0; i < nb * PER; i++) z[i] = x[i] - (mu ? mu[i % PER] : 0);
  csde_cov_logpdf(A, w, nb, z, lp, &e);
  csde_cov_ws_free(w);
  csde_cov_free(A);
}

static csde_problem problem(const csde_cov *C, const csde_model *M, size_t batch)
{
  csde_problem P = csde_problem_default();
  P.tau = TAU, P.D = DD, P.batch = batch, P.C = C, P.sched = S, P.model = M;
  P.eps = 1e-3;
  return P;
}

/* ---- a user model with the gaussian's exact JVP: J v = -C Sigma_t^-1 v ---- */
typedef struct {
  csde_model *g;
  const csde_cov *C;
  size_t calls;
} jvp_user;

static int user_fn(double t, size_t batch, const double *x, double *out, void *u)
{
  return csde_model_call(((jvp_user *)u)->g, t, batch, x, out);
}

static int user_jvp(const csde_model_ctx *ctx, const double *x, const double *v, double *jv,
                    void *u)
{
  (void)x;
  jvp_user *ju = u;
  csde_err e;
  double Sig[TAU * TAU], Cm[TAU * TAU];
  ju->calls++;
  if (csde_model_gaussian_marginal(ju->g, ctx->t, NULL, Sig, &e)) return -1;
  csde_cov_matrix(ju->C, Cm);
  csde_cov *A;
  csde_cov_ws *w;
  if (csde_cov_alloc_dense(&A, Sig, TAU, NULL, &e)) return -1;
  csde_cov_ws_alloc(&w, A, DD, 1, &e);
  double *y = malloc(ctx->batch * PER * sizeof *y);
  csde_cov_apply(A, w, CSDE_COV_OP_INV, ctx->batch, v, y, &e); /* Sigma^-1 v */
  for (size_t b = 0; b < ctx->batch; b++) /* jv = -C y per pixel */
    for (size_t f = 0; f < TAU; f++)
      for (size_t p = 0; p < DD; p++) {
        double s = 0;
        for (size_t k = 0; k < TAU; k++) s += Cm[f * TAU + k] * y[(b * TAU + k) * DD + p];
        jv[(b * TAU + f) * DD + p] = -s;
      }
  free(y);
  csde_cov_ws_free(w);
  csde_cov_free(A);
  return 0;
}

/* The gaussian model on C; x: NB samples of p_eps. */
static csde_model *gaussian(const csde_cov *C, double *x)
{
  csde_err e;
  csde_model *M = NULL;
  if (csde_model_gaussian_alloc(&M, C, S, DD, M0, TAU, S0, &e)) {
    ok(0, "gaussian model: %s", e.msg);
    return NULL;
  }
  csde_rng_key k = {11, 3};
  if (x) csde_model_gaussian_sample(M, 1e-3, k, 0, NB, x, &e);
  return M;
}

/* The relative error of the solve's log p against the gaussian closed form, with the
 * prior mismatch at T added; also checks the prior itself. */
static double gaussian_err(const csde_model *M, const csde_cov *C, const double *x,
                           const csde_ll_sample *o, const double *xT, const char *what)
{
  csde_err e;
  double mu[PER], Sig[TAU * TAU], lp[NB], lpT[NB], l0[NB], Cm[TAU * TAU], worst = 0, pw = 0;
  csde_model_gaussian_marginal(M, 1e-3, mu, Sig, &e);
  lognormal(Sig, mu, NB, x, lp);
  csde_model_gaussian_marginal(M, 1.0, mu, Sig, &e);
  lognormal(Sig, mu, NB, xT, lpT);
  csde_cov_matrix(C, Cm);
  lognormal(Cm, NULL, NB, xT, l0);
  for (int b = 0; b < NB; b++) {
    const double c = o[b].logp - o[b].prior + lpT[b];
    worst = fmax(worst, fabs(c - lp[b]) / fabs(lp[b]));
    pw = fmax(pw, fabs(o[b].prior - l0[b]) / fabs(l0[b]));
  }
  ok(pw <= 1e-12, "%s: the prior is log N(x_T; 0, C) (rel %.2e)", what, pw);
  return worst;
}

static void exactness(void)
{
  static const char *const methods[] = {"dense", "embed", "circulant"};
  static const struct { csde_div_kind div; csde_jvp_kind jvp; const char *name; } routes[] = {
      {CSDE_DIV_EXACT, CSDE_JVP_AUTO, "exact"},
      {CSDE_DIV_DIRECTIONAL, CSDE_JVP_FD, "directional fd"},
      {CSDE_DIV_DIRECTIONAL, CSDE_JVP_MODEL, "directional jvp"}};
  printf("# exactness: |log p - closed form| / |closed form|, rtol = atol = 1e-9, dopri5\n");
  printf("# %-10s %-16s %10s %8s\n", "C", "route", "rel err", "NFE");
  for (size_t m = 0; m < 3; m++) {
    csde_err e;
    csde_cov_params cp = csde_cov_default_params();
    csde_cov_method_parse(methods[m], &cp.method, &e);
    csde_cov *C = NULL;
    if (csde_cov_alloc(&C, "ar1:rho=0.7", TAU, &cp, &e)) {
      ok(0, "cov %s: %s", methods[m], e.msg);
      continue;
    }
    double x[NB * PER], xT[NB * PER];
    csde_model *G = gaussian(C, x);
    jvp_user ju = {G, C, 0};
    csde_model *U = NULL;
    csde_model_alloc(&U, "gaussian-jvp", user_fn, CSDE_OUT_CSCORE, &ju, NULL, &e);
    csde_model_set_jvp(U, user_jvp, &e);
    for (size_t r = 0; r < 3; r++) {
      const csde_model *M = routes[r].jvp == CSDE_JVP_MODEL ? U : G;
      csde_problem P = problem(C, M, NB);
      csde_ll_params par = csde_ll_default_params();
      par.rtol = par.atol = 1e-9;
      par.div = routes[r].div, par.jvp = routes[r].jvp;
      csde_ll_sample o[NB];
      csde_ll_stats st;
      int s = csde_likelihood(&P, &par, x, xT, o, &st, &e);
      char what[96];
      snprintf(what, sizeof what, "%s C, %s", methods[m], routes[r].name);
      if (!ok(s == 0, "%s: solves (%s)", what, s ? e.msg : "")) continue;
      const double err = gaussian_err(G, C, x, o, xT, what);
      printf("# %-10s %-16s %10.2e %8zu\n", methods[m], routes[r].name, err, st.nfe);
      ok(err <= 1e-6, "%s: log p equals the closed form to %.2e <= 1e-6", what, err);
      ok(st.div == routes[r].div, "%s: the route taken is %s", what,
         csde_div_kind_name(st.div));
      if (routes[r].jvp == CSDE_JVP_MODEL)
        ok(st.jvp > 0 && st.jvp == st.nfe * PER,
           "%s: the model's JVP is used, tau D = %d per drift evaluation (%zu calls, NFE "
           "%zu: no central differences)", what, PER, st.jvp, st.nfe);
      for (int b = 0; b < NB; b++)
        if (!ok(o[b].se == 0 && o[b].lo == o[b].logp && o[b].hi == o[b].logp,
                "%s: sample %d has no spread (se 0)", what, b))
          break;
    }
    csde_model_free(U);
    csde_model_free(G);
    csde_cov_free(C);
  }
}

/* (b) a gmm of 3 components against csde_model_gmm_logpdf. */
static void gmm(void)
{
  csde_err e;
  csde_cov *C = NULL;
  csde_cov_alloc(&C, "mixed:r=0.5", TAU, NULL, &e);
  const double w[3] = {0.5, 0.3, 0.2};
  double means[3 * TAU], covs[3 * TAU * TAU];
  for (int k = 0; k < 3; k++) {
    for (int f = 0; f < TAU; f++) means[k * TAU + f] = (k - 1) * 0.8 + 0.1 * f;
    for (int i = 0; i < TAU * TAU; i++) covs[k * TAU * TAU + i] = S0[i] * (0.5 + 0.5 * k);
  }
  csde_model *M = NULL;
  if (!ok(csde_model_gmm_alloc(&M, C, S, DD, 3, w, means, 3 * TAU, covs, &e) == 0,
          "gmm model (%s)", e.msg)) {
    csde_cov_free(C);
    return;
  }
  double x[NB * PER], xT[NB * PER], lp[NB], lpT[NB];
  csde_rng_key key = {5, 1};
  csde_model_gmm_sample(M, key, 0, NB, x, &e);
  csde_problem P = problem(C, M, NB);
  csde_ll_params par = csde_ll_default_params();
  par.rtol = par.atol = 1e-9;
  par.div = CSDE_DIV_EXACT;
  csde_ll_sample o[NB];
  csde_ll_stats st;
  int s = csde_likelihood(&P, &par, x, xT, o, &st, &e);
  if (ok(s == 0, "gmm: solves (%s)", s ? e.msg : "")) {
    csde_model_gmm_logpdf(M, 1e-3, NB, x, lp, &e);
    csde_model_gmm_logpdf(M, 1.0, NB, xT, lpT, &e);
    double worst = 0;
    for (int b = 0; b < NB; b++)
      worst = fmax(worst, fabs(o[b].logp - o[b].prior + lpT[b] - lp[b]) / fabs(lp[b]));
    printf("# gmm (K = 3, mixed C, exact divergence): rel err %.2e, NFE %zu\n", worst,
           st.nfe);
    ok(worst <= 1e-6, "gmm: log p equals the mixture density to %.2e <= 1e-6", worst);
  }
  csde_model_free(M);
  csde_cov_free(C);
}

/* (c) the other carrying solvers */
static void solvers(void)
{
  csde_err e;
  csde_cov *C = NULL;
  csde_cov_alloc(&C, "ar1:rho=0.7", TAU, NULL, &e);
  double x[NB * PER], xT[NB * PER];
  csde_model *G = gaussian(C, x);
  static const char *const names[] = {"rk45", "rkck", "rk8pd", "heun", "euler"};
  for (int i = 0; i < 5; i++) {
    csde_problem P = problem(C, G, NB);
    csde_ll_params par = csde_ll_default_params();
    par.solver = names[i];
    par.div = CSDE_DIV_EXACT;
    const int fixed = i >= 3;
    par.rtol = par.atol = fixed ? 0 : 1e-9;
    par.steps = fixed ? 400 : 0;
    csde_ll_sample o[NB];
    csde_ll_stats st;
    int s = csde_likelihood(&P, &par, x, xT, o, &st, &e);
    if (!ok(s == 0, "%s: solves (%s)", names[i], s ? e.msg : "")) continue;
    const double err = gaussian_err(G, C, x, o, xT, names[i]);
    /* heun: O(h^2) over 400 steps; euler: O(h) (beta up to 20 over span 1) */
    const double tol = i == 3 ? 1e-4 : i == 4 ? 5e-3 : 1e-6;
    printf("# %-6s %s: rel err %.2e (NFE %zu)\n", names[i], fixed ? "400 steps" : "rtol 1e-9",
           err, st.nfe);
    ok(err <= tol, "%s: log p within %.0e of the closed form (%.2e)", names[i], tol, err);
  }
  csde_model_free(G);
  csde_cov_free(C);
}

/* The NB samples x solved as 2 + 2 (first_sample 0 and 2) into c: the bits of a? */
static int halves_agree(const csde_problem *P, csde_ll_params par, const double *x,
                        const csde_ll_sample *a, csde_ll_sample *c)
{
  csde_err e;
  csde_problem Q = *P;
  Q.batch = 2;
  int s = csde_likelihood(&Q, &par, x, NULL, c, NULL, &e);
  par.first_sample = 2;
  s |= csde_likelihood(&Q, &par, x + 2 * PER, NULL, c + 2, NULL, &e);
  return s == 0 && !memcmp(a, c, NB * sizeof *a);
}

/* (d) bits: threads and batch */
static void bits(void)
{
  csde_err e;
  csde_cov *C = NULL;
  csde_cov_alloc(&C, "ar1:rho=0.7", TAU, NULL, &e);
  double x[NB * PER];
  csde_model *G = gaussian(C, x);
  csde_ll_params par = csde_ll_default_params();
  par.div = CSDE_DIV_HUTCHINSON, par.jvp = CSDE_JVP_FD, par.probes = 3, par.seed = 9;
  par.rtol = par.atol = 1e-5;
  csde_ll_sample a[NB], b[NB], c[NB];
  csde_problem P = problem(C, G, NB);
  int s = csde_likelihood(&P, &par, x, NULL, a, NULL, &e);
  par.threads = 2;
  s |= csde_likelihood(&P, &par, x, NULL, b, NULL, &e);
  ok(s == 0 && !memcmp(a, b, sizeof a), "hutchinson fd: threads 1 and 2 give the same bits");
  /* adaptive: each sample is its own solve, so batch 4 and 2 + 2 agree too */
  par.threads = 1;
  ok(s == 0 && halves_agree(&P, par, x, a, c),
     "hutchinson fd, dopri5 at 1e-5: batch 4 and 2 + 2 (first_sample) give the same bits");
  /* fixed steps: the batch is one solve */
  par.rtol = par.atol = 0, par.steps = 50, par.solver = "heun";
  s = csde_likelihood(&P, &par, x, NULL, a, NULL, &e);
  ok(s == 0 && halves_agree(&P, par, x, a, c),
     "hutchinson fd, 50 heun steps: batch 4 and 2 + 2 (first_sample) give the same bits");
  ok(a[0].se > 0 && a[0].lo < a[0].logp && a[0].hi > a[0].logp,
     "hutchinson: a spread and an interval around the mean (se %.3g)", a[0].se);
  csde_model_free(G);
  csde_cov_free(C);
}

/* (e) refusals */
static void refusals(void)
{
  csde_err e;
  csde_cov *C = NULL;
  csde_cov_alloc(&C, "ar1:rho=0.7", TAU, NULL, &e);
  double x[NB * PER];
  csde_model *G = gaussian(C, x);
  csde_ll_sample o[NB];
  csde_problem P = problem(C, G, NB);
  csde_ll_params par = csde_ll_default_params();
  static const char *const bad[] = {"ddim", "dpmpp2m", "unipc3", "edm-heun", "ipndm"};
  for (int i = 0; i < 5; i++) {
    par.solver = bad[i], par.steps = 10, par.rtol = par.atol = 0;
    int s = csde_likelihood(&P, &par, x, NULL, o, NULL, &e);
    ok(s == CSDE_EINVAL && e.param && !strcmp(e.param, CSDE_PARAM_SOLVER) &&
           strstr(e.msg, "denoiser view"),
       "solver %s refused, naming the solver (%s)", bad[i], e.msg);
  }
  par = csde_ll_default_params();
  csde_problem Q = P;
  int uncond = 0;
  Q.guidance.uncond = &uncond;
  int s = csde_likelihood(&Q, &par, x, NULL, o, NULL, &e);
  ok(s == CSDE_EINVAL && !strcmp(e.param, CSDE_PARAM_GUIDANCE), "guidance refused (%s)", e.msg);
  Q = P;
  Q.x0.kind = CSDE_X0_CLIP, Q.x0.lo = -1, Q.x0.hi = 1;
  s = csde_likelihood(&Q, &par, x, NULL, o, NULL, &e);
  ok(s == CSDE_EINVAL && strstr(e.msg, "clipping"), "x0 clipping refused (%s)", e.msg);
  double xn[NB * PER];
  memcpy(xn, x, sizeof xn);
  xn[PER + 7] = NAN;
  s = csde_likelihood(&P, &par, xn, NULL, o, NULL, &e);
  ok(s == CSDE_ENAN && !strcmp(e.param, CSDE_PARAM_DATA) && strstr(e.msg, "sample 1"),
     "NaN in x refused, naming the sample (%s)", e.msg);
  par.conf = 1;
  s = csde_likelihood(&P, &par, x, NULL, o, NULL, &e);
  ok(s == CSDE_EDOM && strstr(e.msg, "conf"), "conf = 1 refused (%s)", e.msg);
  par = csde_ll_default_params();
  jvp_user ju = {G, C, 0};
  csde_model *U = NULL;
  csde_model_alloc(&U, "plain", user_fn, CSDE_OUT_CSCORE, &ju, NULL, &e);
  P.model = U;
  par.div = CSDE_DIV_EXACT;
  s = csde_likelihood(&P, &par, x, NULL, o, NULL, &e);
  ok(s == CSDE_ENOTSUP && !strcmp(e.param, CSDE_PARAM_DIVERGENCE),
     "exact for a user model refused (%s)", e.msg);
  par.div = CSDE_DIV_HUTCHINSON, par.jvp = CSDE_JVP_MODEL;
  s = csde_likelihood(&P, &par, x, NULL, o, NULL, &e);
  ok(s == CSDE_EINVAL && !strcmp(e.param, CSDE_PARAM_DIVERGENCE) && strstr(e.msg, "fd"),
     "jvp model without one refused (%s)", e.msg);
  par = csde_ll_default_params();
  par.div = CSDE_DIV_DIRECTIONAL, par.probes = 5;
  csde_ll_stats st;
  s = csde_likelihood(&P, &par, x, NULL, o, &st, &e);
  ok(s == 0 && st.div == CSDE_DIV_DIRECTIONAL && st.jvp_kind == CSDE_JVP_FD && st.jvp == 0,
     "a model without a JVP takes the central difference");
  P.model = G;
  static const struct { const char *spec; int jvp; int status; const char *needle; } specs[] = {
      {"hutch", 0, CSDE_ESPEC, "unknown divergence"},
      {"hutchinson:probes=0", 0, CSDE_ESPEC, "probes"},
      {"hutchinson:probe=sobol", 0, CSDE_ESPEC, "probe"},
      {"exact:probes=3", 0, CSDE_ESPEC, "probes"},
      {"hutchinson:seed=-1", 0, CSDE_ESPEC, "seed"},
      {"fd:step=0", 1, CSDE_EDOM, "step"},
      {"fd:step=2", 1, CSDE_EDOM, "step"},
      {"model:step=1e-3", 1, CSDE_ESPEC, "step"},
      {"jacobian", 1, CSDE_ESPEC, "unknown jvp"}};
  for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
    par = csde_ll_default_params();
    s = specs[i].jvp ? csde_jvp_parse(specs[i].spec, &par, &e)
                     : csde_div_parse(specs[i].spec, &par, &e);
    ok(s == specs[i].status && !strcmp(e.param, CSDE_PARAM_DIVERGENCE) &&
           strstr(e.msg, specs[i].needle),
       "%s spec '%s' refused (%s)", specs[i].jvp ? "jvp" : "divergence", specs[i].spec, e.msg);
  }
  par = csde_ll_default_params();
  s = csde_div_parse("hutchinson:probes=12,probe=gaussian,seed=4", &par, &e) |
      csde_jvp_parse("fd:step=1e-4", &par, &e);
  ok(s == 0 && par.div == CSDE_DIV_HUTCHINSON && par.probes == 12 &&
         par.probe == CSDE_PROBE_GAUSSIAN && par.seed == 4 && par.jvp == CSDE_JVP_FD &&
         par.fd_step == 1e-4,
     "specs parse into the parameters");
  csde_model_free(U);
  csde_model_free(G);
  csde_cov_free(C);
}

/* (f) Hutchinson's interval and width over seeds (exact JVP: the estimator's own spread) */
static void coverage(void)
{
  csde_err e;
  csde_cov *C = NULL;
  csde_cov_alloc(&C, "ar1:rho=0.7", TAU, NULL, &e);
  double x[NB * PER];
  csde_model *G = gaussian(C, x);
  jvp_user ju = {G, C, 0};
  csde_model *U = NULL;
  csde_model_alloc(&U, "gaussian-jvp", user_fn, CSDE_OUT_CSCORE, &ju, NULL, &e);
  csde_model_set_jvp(U, user_jvp, &e);
  csde_problem P = problem(C, U, NB);
  csde_ll_params par = csde_ll_default_params();
  par.rtol = par.atol = 1e-8;
  par.div = CSDE_DIV_DIRECTIONAL, par.jvp = CSDE_JVP_MODEL; /* the exact trace */
  csde_ll_sample ex[NB], o[NB];
  if (!ok(csde_likelihood(&P, &par, x, NULL, ex, NULL, &e) == 0, "the exact value (%s)",
          e.msg))
    return;
  par.div = CSDE_DIV_HUTCHINSON;
  const int seeds = 200;
  const size_t Ks[2] = {4, 16};
  double mse[2] = {0, 0};
  printf("# hutchinson (rademacher, model JVP, %d seeds x %d samples): K, coverage of the "
         "95%% t-interval, mean se, mean |error|, JVP calls per sample\n", seeds, NB);
  for (int kk = 0; kk < 2; kk++) {
    int cover = 0, n = 0;
    double aerr = 0, se2 = 0;
    par.probes = Ks[kk];
    csde_ll_stats st;
    for (int sd = 0; sd < seeds; sd++) {
      par.seed = (uint64_t)sd;
      if (csde_likelihood(&P, &par, x, NULL, o, &st, &e)) {
        ok(0, "hutchinson seed %d: %s", sd, e.msg);
        break;
      }
      for (int b = 0; b < NB; b++, n++) {
        cover += o[b].lo <= ex[b].logp && ex[b].logp <= o[b].hi;
        mse[kk] += o[b].se;
        se2 += o[b].se * o[b].se;
        aerr += fabs(o[b].logp - ex[b].logp);
      }
    }
    const double rate = (double)cover / n, sd_rate = sqrt(0.95 * 0.05 / n);
    mse[kk] /= n;
    printf("# K = %2zu: coverage %.3f (n = %d), mean se %.4f, mean |error| %.4f, JVP calls "
           "%.0f\n", Ks[kk], rate, n, mse[kk], aerr / n, (double)st.jvp / NB);
    ok(fabs(rate - 0.95) <= 3 * sd_rate + 0.01,
       "K = %zu: the 95%% interval covers the exact value at rate %.3f (0.95 +- %.3f)",
       Ks[kk], rate, 3 * sd_rate + 0.01);
    (void)se2;
  }
  /* se_K = sd_K / sqrt(K); the ratio of means from 800 estimates each: the spread of sd
   * with K - 1 = 3 degrees of freedom is about 0.42 relative per sample, / sqrt(800) */
  /* E se_K = c4(K) sigma / sqrt(K), c4(K) = sqrt(2 / (K - 1)) Gamma(K/2) / Gamma((K-1)/2):
   * the expected ratio is 2 c4(4) / c4(16) = 1.874 */
  const double c4_4 = sqrt(2.0 / 3) * tgamma(2.0) / tgamma(1.5),
               c4_16 = sqrt(2.0 / 15) * tgamma(8.0) / tgamma(7.5), want = 2 * c4_4 / c4_16;
  const double ratio = mse[0] / mse[1];
  ok(fabs(ratio - want) <= 0.15, "the width falls like 1/sqrt(K): se(4) / se(16) = %.3f "
     "(2 c4(4) / c4(16) = %.3f +- 0.15)", ratio, want);
  csde_model_free(U);
  csde_model_free(G);
  csde_cov_free(C);
}

int main(int argc, char **argv)
{
  csde_err e;
  make_s0();
  if (csde_schedule_alloc(&S, "vp-linear", &e)) return 1;
  if (argc > 1 && !strcmp(argv[1], "coverage"))
    coverage();
  else {
    exactness();
    gmm();
    solvers();
    bits();
    refusals();
  }
  csde_schedule_free(S);
  return tap_done();
}
