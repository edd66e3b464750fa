/* TAP test of the PF-ODE log-likelihood on every Gaussian path (issue 28; src/likelihood/,
 * docs/MATH.md "Likelihood"): the gaussian model (S0 and C = ar1(0.7) that do not commute,
 * mean m, tau = 4, D = 2) on vp-linear, edm, ve, rf:shift=1 and rf:shift=3, eps =
 * max(1e-3, t_min) and T = csde_problem_t_max (rf 0.999, edm smax = 80):
 *   (a) the PF-ODE maps the exact marginal p_eps = N(alpha m, alpha^2 S0 + sigma^2 C) onto
 *       the exact p_T, so the solve's integral satisfies
 *         log p_eps(x) = log p_T^exact(x_T) + int_eps^T div f dt
 *       with both log-densities in closed form (csde_model_gaussian_marginal). Asserted:
 *       |delta + log N(x_T; mu_T, Sigma_T) - log N(x; mu_eps, Sigma_eps)| <= 1e-7 nats
 *       (dopri5, rtol = atol = 1e-10, exact trace), i.e. log p (ODE) equals the closed form
 *       once the prior mismatch log p_T^exact(x_T) - prior (the model's, not the solver's)
 *       is taken out; and the prior is log N(x_T / p; 0, C) - tau D log p, p the path's
 *       prior scale, computed here, to 1e-12 relative;
 *   (a') the same for a gmm of 3 components (mixed C) against csde_model_gmm_logpdf;
 *   (b) on rf:shift=3, the directional route (central differences) equals exact to 1e-6
 *       nats, and Hutchinson (K = 8 Rademacher probes) lies within 4 of its standard
 *       errors of exact, se > 0;
 *   (c) refusals: rf at T = 1 (the drift is infinite there) naming the span and the
 *       schedule; edm with eps below smin; the discrete bound on a path, naming the
 *       schedule and "VP-only";
 * and with the argument "hutchinson" (the slow suite): (b) with K = 64 probes on every
 * path. Under CSDE_TEST_QUICK (valgrind) the fast run leaves out (b)'s directional route. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "corrsde/corrsde.h"
#include "corrsde/likelihood.h"
#include "tap.h"

#define TAU 4
#define DD 2
#define PER (TAU * DD)
#define NB 2

static double S0[TAU * TAU];
static const double M0[TAU] = {0.5, -0.3, 0.8, 0.1};
static const char *const PATHS[] = {"vp-linear", "edm", "ve", "rf:shift=1", "rf:shift=3"};
#define NPATH 5

/* S0: an ar1 of 0.5 plus a rising diagonal, so it commutes with no ar1 C */
static void make_s0(void)
{
  for (int i = 0; i < TAU; i++)
    for (int j = 0; j < TAU; j++)
      S0[i * TAU + j] = 0.3 * pow(0.5, abs(i - j)) + (i == j ? 0.05 * i : 0);
}

/* log N(x_b; mu, Sig (x) I_D) per sample, through a dense operator of Sig. */
static void lognormal(const double *Sig, const double *mu, size_t nb, const double *x,
                      double *lp)
{
  csde_err e;
  csde_cov *A = NULL;
  csde_cov_ws *w = NULL;
  double z[NB * PER];
  csde_cov_alloc_dense(&A, Sig, TAU, NULL, &e);
  csde_cov_ws_alloc(&w, A, DD, 1, &e);
  for (size_t i = 0; i < nb * PER; i++) z[i] = x[i] - (mu ? mu[i % PER] : 0);
  csde_cov_logpdf(A, w, nb, z, lp, &e);
  csde_cov_ws_free(w);
  csde_cov_free(A);
}

typedef struct {
  csde_schedule *s;
  csde_cov *C;
  csde_model *G;
  double x[NB * PER];
  csde_problem P;
} setup;

static int make(setup *u, const char *spec)
{
  csde_err e;
  csde_err_clear(&e);
  memset(u, 0, sizeof *u);
  if (csde_schedule_alloc(&u->s, spec, &e) ||
      csde_cov_alloc(&u->C, "ar1:rho=0.7", TAU, NULL, &e) ||
      csde_model_gaussian_alloc(&u->G, u->C, u->s, DD, M0, TAU, S0, &e))
    return ok(0, "%s: set up (%s)", spec, e.msg), -1;
  u->P = csde_problem_default();
  u->P.tau = TAU, u->P.D = DD, u->P.batch = NB, u->P.C = u->C, u->P.sched = u->s;
  u->P.model = u->G;
  u->P.T = csde_problem_t_max(u->s);
  u->P.eps = fmax(1e-3, csde_problem_t_min(u->s));
  csde_rng_key k = {11, 3};
  if (csde_model_gaussian_sample(u->G, u->P.eps, k, 0, NB, u->x, &e))
    return ok(0, "%s: samples of p_eps (%s)", spec, e.msg), -1;
  return 0;
}

static void unmake(setup *u)
{
  csde_model_free(u->G);
  csde_cov_free(u->C);
  csde_schedule_free(u->s);
}

/* The worst |delta + log p_T^exact(x_T) - log p_eps^exact(x)| over the samples, and the
 * prior's worst relative error against log N(x_T / p; 0, C) - tau D log p in *perr; the
 * prior mismatch log p_T^exact(x_T) - prior of sample 0 in *mis. */
static double closed_err(const setup *u, const csde_ll_sample *o, const double *xT,
                         double *perr, double *mis)
{
  csde_err e;
  double mu[PER], Sig[TAU * TAU], Cm[TAU * TAU], lp[NB], lpT[NB], l0[NB], z[NB * PER];
  csde_model_gaussian_marginal(u->G, u->P.eps, mu, Sig, &e);
  lognormal(Sig, mu, NB, u->x, lp);
  csde_model_gaussian_marginal(u->G, u->P.T, mu, Sig, &e);
  lognormal(Sig, mu, NB, xT, lpT);
  const double p = csde_schedule_path_prior_scale(u->s);
  for (size_t i = 0; i < NB * PER; i++) z[i] = xT[i] / p;
  csde_cov_matrix(u->C, Cm);
  lognormal(Cm, NULL, NB, z, l0);
  double worst = 0;
  *perr = 0;
  for (int b = 0; b < NB; b++) {
    worst = fmax(worst, fabs(o[b].delta + lpT[b] - lp[b]));
    const double pr = l0[b] - PER * log(p);
    *perr = fmax(*perr, fabs(o[b].prior - pr) / fabs(pr));
  }
  *mis = lpT[0] - o[0].prior;
  return worst;
}

static int solve(setup *u, csde_div_kind div, csde_jvp_kind jvp, size_t K, double tol,
                 csde_ll_sample *o, double *xT, csde_ll_stats *st)
{
  csde_err e;
  csde_ll_params par = csde_ll_default_params();
  par.rtol = par.atol = tol;
  par.div = div, par.jvp = jvp, par.probes = K, par.seed = 5;
  int s = csde_likelihood(&u->P, &par, u->x, xT, o, st, &e);
  if (s) printf("# %s: %s\n", csde_schedule_spec(u->s), e.msg);
  return s;
}

static void exactness(void)
{
  printf("# |log p (ODE) - closed form| in nats (the prior mismatch at T taken out),\n"
         "# dopri5 rtol = atol = 1e-10, exact trace, %d samples of tau %d x D %d\n", NB, TAU,
         DD);
  printf("# %-11s %9s %9s %10s %12s %12s %7s\n", "path", "eps", "T", "abs err", "log p",
         "mismatch", "NFE");
  for (int k = 0; k < NPATH; k++) {
    setup u;
    if (make(&u, PATHS[k])) continue;
    csde_ll_sample o[NB];
    csde_ll_stats st;
    double xT[NB * PER], perr, mis;
    if (ok(!solve(&u, CSDE_DIV_EXACT, CSDE_JVP_AUTO, 1, 1e-10, o, xT, &st),
           "%s: the likelihood solves", PATHS[k])) {
      const double err = closed_err(&u, o, xT, &perr, &mis);
      printf("# %-11s %9.3g %9.4g %10.2e %12.6f %12.3e %7zu\n", PATHS[k], u.P.eps, u.P.T, err,
             o[0].logp, mis, st.nfe);
      ok(err <= 1e-7, "%s: log p_eps(x) equals the closed form to %.2e <= 1e-7 nats",
         PATHS[k], err);
      ok(perr <= 1e-12, "%s: the prior is log N(x_T / p; 0, C) - tau D log p, p = %g (rel "
         "%.2e)", PATHS[k], csde_schedule_path_prior_scale(u.s), perr);
      ok(o[0].logp == o[0].prior + o[0].delta && o[0].se == 0, "%s: logp = prior + delta, "
         "se 0", PATHS[k]);
    }
    unmake(&u);
  }
}

/* (a') a gmm of 3 components (mixed C) against csde_model_gmm_logpdf at eps and T: the
 * identity log p_eps(x) = log p_T(x_T) + delta holds at every x, here the data law's draws */
static void gmm(void)
{
  printf("# gmm (K = 3, mixed C, exact divergence), dopri5 1e-10: abs err in nats\n");
  for (int p = 0; p < NPATH; p++) {
    csde_err e;
    csde_err_clear(&e);
    csde_schedule *s = NULL;
    csde_cov *C = NULL;
    csde_model *M = NULL;
    const double w[3] = {0.5, 0.3, 0.2};
    double means[3 * TAU], covs[3 * TAU * TAU];
    for (int k = 0; k < 3; k++) {
      for (int f = 0; f < TAU; f++) means[k * TAU + f] = (k - 1) * 0.8 + 0.1 * f;
      for (int i = 0; i < TAU * TAU; i++) covs[k * TAU * TAU + i] = S0[i] * (0.5 + 0.5 * k);
    }
    if (!ok(!csde_schedule_alloc(&s, PATHS[p], &e) &&
            !csde_cov_alloc(&C, "mixed:r=0.5", TAU, NULL, &e) &&
            !csde_model_gmm_alloc(&M, C, s, DD, 3, w, means, 3 * TAU, covs, &e),
            "%s: gmm model (%s)", PATHS[p], e.msg))
      goto next;
    double x[NB * PER], xT[NB * PER], lp[NB], lpT[NB], worst = 0;
    csde_rng_key key = {5, 1};
    csde_model_gmm_sample(M, key, 0, NB, x, &e);
    csde_problem P = csde_problem_default();
    P.tau = TAU, P.D = DD, P.batch = NB, P.C = C, P.sched = s, P.model = M;
    P.T = csde_problem_t_max(s), P.eps = fmax(1e-3, csde_problem_t_min(s));
    csde_ll_params par = csde_ll_default_params();
    par.rtol = par.atol = 1e-10;
    par.div = CSDE_DIV_EXACT;
    csde_ll_sample o[NB];
    csde_ll_stats st;
    int rc = csde_likelihood(&P, &par, x, xT, o, &st, &e);
    if (!ok(rc == 0, "%s: gmm solves (%s)", PATHS[p], rc ? e.msg : "")) goto next;
    csde_model_gmm_logpdf(M, P.eps, NB, x, lp, &e);
    csde_model_gmm_logpdf(M, P.T, NB, xT, lpT, &e);
    for (int b = 0; b < NB; b++) worst = fmax(worst, fabs(o[b].delta + lpT[b] - lp[b]));
    printf("# %-11s gmm %10.2e  NFE %zu\n", PATHS[p], worst, st.nfe);
    ok(worst <= 1e-7, "%s: gmm log p_eps(x) equals the mixture density to %.2e <= 1e-7 nats",
       PATHS[p], worst);
  next:
    csde_model_free(M);
    csde_cov_free(C);
    csde_schedule_free(s);
  }
}

/* directional and Hutchinson against exact on one path */
static void routes(const char *spec, size_t K, int quick)
{
  setup u;
  if (make(&u, spec)) return;
  csde_ll_sample ex[NB], di[NB], hu[NB];
  csde_ll_stats st;
  double xT[NB * PER];
  const double tol = 1e-9;
  if (!ok(!solve(&u, CSDE_DIV_EXACT, CSDE_JVP_AUTO, 1, tol, ex, xT, &st) &&
          (quick || !solve(&u, CSDE_DIV_DIRECTIONAL, CSDE_JVP_FD, 1, tol, di, xT, &st)) &&
          !solve(&u, CSDE_DIV_HUTCHINSON, CSDE_JVP_FD, K, tol, hu, xT, &st),
          "%s: exact, directional and hutchinson (K = %zu) solve", spec, K))
    goto done;
  double dmax = 0, zmax = 0, sesum = 0;
  int sefin = 1;
  for (int b = 0; b < NB; b++) {
    if (quick) di[b] = ex[b];
    dmax = fmax(dmax, fabs(di[b].logp - ex[b].logp));
    zmax = fmax(zmax, fabs(hu[b].logp - ex[b].logp) / hu[b].se);
    sefin &= hu[b].se > 0 && isfinite(hu[b].se);
    sesum += hu[b].se;
  }
  printf("# %s: |directional - exact| %.2e nats; hutchinson K = %zu: max |z| %.2f, mean se "
         "%.3f, NFE %zu\n", spec, dmax, K, zmax, sesum / NB, st.nfe);
  if (!quick)
    ok(dmax <= 1e-6, "%s: directional (central differences) equals exact to %.2e <= 1e-6 "
       "nats", spec, dmax);
  ok(sefin && zmax <= 4, "%s: hutchinson K = %zu within 4 se of exact (max |z| %.2f)", spec,
     K, zmax);
done:
  unmake(&u);
}

static void refusals(void)
{
  setup u;
  csde_err e;
  csde_ll_sample o[NB];
  if (make(&u, "rf:shift=3")) return;
  csde_ll_params par = csde_ll_default_params();
  u.P.T = 1;
  int s = csde_likelihood(&u.P, &par, u.x, NULL, o, NULL, &e);
  ok_status(s, CSDE_EDOM, e.msg, "'rf:shift=3' (the rf path): its drift is infinite at T = 1",
            "rf at T = 1: refused, naming the schedule");
  ok(s && !strcmp(e.param, CSDE_PARAM_SPAN), "rf at T = 1: blamed on the span ('%s')",
     s ? e.param : "");
  u.P.T = csde_problem_t_max(u.s);
  csde_elbo_params ep = csde_elbo_default_params();
  csde_elbo_sample eo[NB];
  s = csde_elbo(&u.P, &ep, u.x, eo, NULL, &e);
  ok_status(s, CSDE_ENOTSUP, e.msg, "is VP-only: schedule 'rf:shift=3' is the rf path",
            "elbo on rf:shift=3: refused, naming the schedule");
  ok(s && !strcmp(e.param, CSDE_PARAM_SCHEDULE), "elbo: blamed on the schedule ('%s')",
     s ? e.param : "");
  unmake(&u);
  if (make(&u, "edm")) return;
  u.P.eps = 1e-3;
  s = csde_likelihood(&u.P, &par, u.x, NULL, o, NULL, &e);
  ok_status(s, CSDE_EDOM, e.msg, "spans [0.002, 80]", "edm with eps 1e-3 < smin: refused");
  ok(s && !strcmp(e.param, CSDE_PARAM_SPAN), "edm eps: blamed on the span ('%s')",
     s ? e.param : "");
  unmake(&u);
}

int main(int argc, char **argv)
{
  make_s0();
  if (argc > 1 && !strcmp(argv[1], "hutchinson")) {
    for (int k = 0; k < NPATH; k++) routes(PATHS[k], 64, 0);
    return tap_done();
  }
  exactness();
  gmm();
  routes("rf:shift=3", 8, getenv("CSDE_TEST_QUICK") != NULL);
  refusals();
  return tap_done();
}
