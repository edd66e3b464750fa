/* TAP test of the conditioning channel, classifier-free guidance and the x0 preview
 * (issue 25, items 1-3; src/process/process.c, src/run/run.c):
 *   - a conditional gaussian (sample j's data mean c_j m1, c_j read as
 *     ctx->cond[ctx->first + j]): the PF-ODE endpoint (dopri5, rtol 1e-10) is each
 *     sample's own exact flow, also with the batch cut over two runs (first_sample 0, 2);
 *   - guidance over two gaussians of one covariance and means m_c, m_u: the guided score
 *     is u + w (c - u) = -C Sigma_t^-1 (x - sqrt(abar) m_w), m_w = m_u + w (m_c - m_u),
 *     exactly the score of the gaussian of mean m_w (linear in the mean), so the guided
 *     PF-ODE is that gaussian's exact flow: every PF-ODE solver and ddim at two step
 *     counts, its observed order within 0.35 of its declared one; the SDE samplers give
 *     the run of that gaussian with the same noise (V' z untouched);
 *   - per-frame w: u + W (c - u) with W = diag(w_f) along the frames is the score of mean
 *     m_u + W (m_c - m_u) only where W commutes with C Sigma_t^-1: here C = I and S0
 *     diagonal (every frame its own 1-D gaussian), checked frame by frame; linear:A,B is
 *     the list it stands for, bit for bit;
 *   - one call of 2B and two calls of B give the same states bit for bit, NFE twice the
 *     unguided; w = 0 is the unconditional model bit for bit (u + 0 (c - u) = u), w = 1
 *     the conditional one to rounding (u + (c - u) = c within 2 ulp of max(|c|, |u|) per
 *     evaluation: 1e-12 relative on the final state);
 *   - the preview: x0 handed to the hook is Tweedie's formula at the state of the step's
 *     last evaluation (euler and ddim: the step's start), no extra model call, the
 *     states unchanged; a non-zero return stops the run; forward-sde gets NULL;
 *   - bad input: guidance without uncond, uncond without guidance, non-finite or
 *     |w| > 1e3, a wrong per-frame count, a guidance function going out of range, the
 *     problem-level checks: CSDE_EINVAL naming guidance or cond. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hdf5.h>

#include "corrsde/corrsde.h"
#include "tap.h"

#define TAU 4
#define DPIX 3
#define B 4
#define N (B * TAU * DPIX)
#define PER (TAU * DPIX)

static csde_cov *C, *CI;
static csde_schedule *S;

/* ---- helpers ---- */

static double maxdiff(const double *a, const double *b, size_t n)
{
  double m = 0;
  for (size_t i = 0; i < n; i++) m = fmax(m, fabs(a[i] - b[i]));
  return m;
}

static double maxabs(const double *a, size_t n)
{
  double m = 0;
  for (size_t i = 0; i < n; i++) m = fmax(m, fabs(a[i]));
  return m;
}

/* A run from the prior of samples [first, first + batch) (seed 11); x: the final state. */
static int run_final(const csde_run_settings *s0, const csde_cov *cov, const csde_model *m,
                     size_t batch, size_t first, const csde_run_hooks *h, double *x,
                     csde_solve_stats *st, csde_err *err)
{
  csde_run_settings s = *s0;
  s.seed = 11;
  s.first_sample = first;
  csde_run *r = NULL;
  size_t shape[1] = {DPIX};
  csde_solve_stats st0;
  int rc = csde_run_alloc(&r, &s, cov, S, m, batch, 1, shape, err);
  if (!rc) rc = csde_run_prior(r, x, err);
  if (!rc) rc = csde_run_exec(r, x, NULL, h, st ? st : &st0, err);
  csde_run_free(r);
  return rc;
}

/* The prior states of samples [0, batch) (seed 11), as run_final starts from. */
static void prior(const csde_cov *cov, size_t batch, double *x)
{
  csde_run_settings s = csde_run_default_settings();
  s.seed = 11;
  s.process = "forward-sde"; /* no model needed: the prior draw is the process's alone */
  csde_run *r = NULL;
  size_t shape[1] = {DPIX};
  csde_err err;
  if (csde_run_alloc(&r, &s, cov, S, NULL, batch, 1, shape, &err) || csde_run_prior(r, x, &err))
    memset(x, 0, batch * PER * sizeof *x);
  csde_run_free(r);
}

static csde_model *gauss(const csde_cov *cov, const double *mean, const double *S0)
{
  csde_model *m = NULL;
  csde_err err;
  if (csde_model_gaussian_alloc(&m, cov, S, DPIX, mean, TAU, S0, &err)) {
    printf("# gaussian: %s\n", err.msg);
    exit(1);
  }
  return m;
}

/* ---- the conditional gaussian (item 1) ---- */

typedef struct {
  const csde_model *g0; /* the gaussian of mean 0 */
  const double *m1;     /* tau values: the mean of c = 1 */
  double y[2 * N];      /* x - sqrt(abar) c_j m1 */
  size_t bad;           /* calls whose context was not as expected */
  size_t first_lo, first_hi; /* the least and largest ctx->first seen */
} condg;

/* C grad log p_t for mean m = c m1: the zero-mean answer at x - sqrt(abar) m (the score
 * -C Sigma_t^-1 (x - sqrt(abar) m) depends on x and m through that difference only). */
static int condg_fn(const csde_model_ctx *c, const double *x, double *out, void *user)
{
  condg *g = user;
  const double *cv = c->cond;
  if (!cv || c->ncond != c->batch || c->uncond || c->batch > B) {
    g->bad++;
    return -1;
  }
  g->first_lo = c->first < g->first_lo ? c->first : g->first_lo;
  g->first_hi = c->first > g->first_hi ? c->first : g->first_hi;
  const double a = sqrt(c->abar);
  for (size_t j = 0; j < c->batch; j++)
    for (size_t f = 0; f < TAU; f++)
      for (size_t p = 0; p < DPIX; p++) {
        size_t i = (j * TAU + f) * DPIX + p;
        g->y[i] = x[i] - a * cv[c->first + j] * g->m1[f];
      }
  return csde_model_call(g->g0, c->t, c->batch, g->y, out);
}

static void conditional(void)
{
  const double m1[TAU] = {1.0, -0.5, 0.25, 2.0}, zero[TAU] = {0};
  const double cvals[B] = {0.0, 1.0, -2.0, 3.5};
  csde_model *g0 = gauss(C, zero, NULL), *gj[B];
  for (size_t j = 0; j < B; j++) {
    double m[TAU];
    for (size_t f = 0; f < TAU; f++) m[f] = cvals[j] * m1[f];
    gj[j] = gauss(C, m, NULL);
  }
  condg g = {g0, m1, {0}, 0, SIZE_MAX, 0};
  csde_model *M = NULL;
  csde_err err;
  csde_model_alloc_ctx(&M, "condg", condg_fn, CSDE_OUT_CSCORE, &g, NULL, &err);
  csde_run_settings s = csde_run_default_settings();
  s.process = "pf-ode";
  s.solver = "dopri5";
  s.rtol = s.atol = 1e-10;
  s.cond = cvals;
  double x[N], x0[N], xr[N], xs[N];
  prior(C, B, x0);
  int rc = run_final(&s, C, M, B, 0, NULL, x, NULL, &err);
  double T, eps; /* the exact flow of each sample's own gaussian from T to eps */
  csde_problem P = csde_problem_default();
  csde_problem_span(&P, &T, &eps);
  for (size_t j = 0; j < B && !rc; j++)
    rc = csde_model_gaussian_flow_apply(gj[j], T, eps, 1, x0 + j * PER, xr + j * PER, &err);
  double e = maxdiff(x, xr, N), scale = 1 + maxabs(xr, N);
  printf("# conditional gaussian, dopri5 rtol 1e-10: max error %.3g (scale %.3g)\n", e, scale);
  ok(!rc && !g.bad && e <= 1e-8 * scale,
     "conditional gaussian: the PF-ODE endpoint is each sample's own exact flow "
     "(max |x - x_exact| %.3g <= 1e-8 (1 + max |x|))%s%s", e, rc ? ": " : "", rc ? err.msg : "");
  /* the batch cut over two runs (MPI-style): samples [0, 2) and [2, 4), one cond array */
  const int first0 = g.first_lo == 0 && g.first_hi == 0;
  g.first_lo = SIZE_MAX, g.first_hi = 0;
  rc = run_final(&s, C, M, 2, 0, NULL, xs, NULL, &err);
  const int first1 = g.first_lo == 0 && g.first_hi == 0;
  g.first_lo = SIZE_MAX, g.first_hi = 0;
  if (!rc) rc = run_final(&s, C, M, 2, 2, NULL, xs + 2 * PER, NULL, &err);
  const int first2 = g.first_lo == 2 && g.first_hi == 2;
  double es = maxdiff(xs, xr, N);
  ok(!rc && !g.bad && es <= 1e-8 * scale && first0 && first1 && first2,
     "conditional gaussian cut over two runs (first_sample 0 and 2): each sample's exact "
     "flow (max error %.3g), ctx->first 0 in the whole run and the first part, 2 in the "
     "second", es);
  csde_model_free(M);
  csde_model_free(g0);
  for (size_t j = 0; j < B; j++) csde_model_free(gj[j]);
}

/* ---- guidance over two gaussians (item 2) ---- */

typedef struct {
  const csde_model *mc, *mu; /* the conditional and the unconditional gaussian */
  size_t calls, bad, passes; /* calls; contexts not as expected; samples evaluated / B */
} gpair;

/* Samples [0, ncond) answered by mc, [ncond, batch) by mu. */
static int gpair_fn(const csde_model_ctx *c, const double *x, double *out, void *user)
{
  gpair *g = user;
  g->calls++;
  g->passes += c->batch;
  if (c->ncond > c->batch || (c->ncond < c->batch && !c->uncond) || c->first != 0) g->bad++;
  if (c->ncond && csde_model_call(g->mc, c->t, c->ncond, x, out)) return -1;
  if (c->batch > c->ncond && csde_model_call(g->mu, c->t, c->batch - c->ncond,
                                             x + c->ncond * PER, out + c->ncond * PER))
    return -1;
  return 0;
}

static const double mc[TAU] = {1.5, 1.0, -0.5, 0.75}, mu[TAU] = {-0.25, 0.5, 0.0, 0.25};
static int uncond_token; /* the unconditional conditioning (gpair_fn does not read it) */

/* One guided PF-ODE solver at steps n and 2n: errors against the exact flow of mean m_w.
 * Step counts where each method is asymptotic and above round-off (errors at 4 .. 512
 * steps measured on this problem): the observed order must be within 0.35 of the type's
 * declared one (csde_solver_type_order), except two with a lower bound only (as
 * test_orders.c has for the RK family): dopri5, whose fixed-step global error on this
 * linear ODE falls as h^6 (local orders 6.1, 6.0, 5.8 from 32 steps on), and dpmpp3m on
 * the logsnr grid, order 4 from 32 steps (3.98, 3.94: the cancellation test_orders.c
 * notes on that grid). */
static const struct {
  const char *process, *solver, *grid;
  size_t n;
  int at_least; /* 1: order >= declared - 0.35 only */
} gcases[] = {
    {"pf-ode", "euler", "uniform", 64, 0},    {"pf-ode", "heun", "uniform", 32, 0},
    {"pf-ode", "edm-heun", "logsnr", 64, 0},  {"pf-ode", "rk45", "uniform", 128, 0},
    {"pf-ode", "rkck", "uniform", 128, 0},    {"pf-ode", "dopri5", "uniform", 32, 1},
    {"pf-ode", "rk8pd", "uniform", 32, 0},    {"pf-ode", "dpmpp2m", "logsnr", 64, 0},
    {"pf-ode", "dpmpp3m", "logsnr", 64, 1},   {"pf-ode", "unipc", "logsnr", 64, 0},
    {"pf-ode", "unipc3", "logsnr", 256, 0},   {"pf-ode", "ipndm", "logsnr", 256, 0},
    {"ddim", NULL, "logsnr", 64, 0},
};

static void guided_orders(void)
{
  const double w = 3.0;
  double mw[TAU];
  for (size_t f = 0; f < TAU; f++) mw[f] = mu[f] + w * (mc[f] - mu[f]);
  csde_model *Gc = gauss(C, mc, NULL), *Gu = gauss(C, mu, NULL), *Gw = gauss(C, mw, NULL);
  gpair g = {Gc, Gu, 0, 0, 0};
  csde_model *M = NULL;
  csde_err err;
  csde_model_alloc_ctx(&M, "gpair", gpair_fn, CSDE_OUT_CSCORE, &g, NULL, &err);
  double x0[N], xr[N], x[N];
  prior(C, B, x0);
  double T, eps;
  csde_problem P = csde_problem_default();
  csde_problem_span(&P, &T, &eps);
  csde_model_gaussian_flow_apply(Gw, T, eps, B, x0, xr, &err);
  const double scale = 1 + maxabs(xr, N);
  printf("# guided PF-ODE, w = %g, against the exact flow of mean m_u + w (m_c - m_u):\n", w);
  printf("# %-10s %-8s %5s %12s %12s %8s %6s\n", "solver", "grid", "n", "err(n)", "err(2n)",
         "order", "theory");
  for (size_t i = 0; i < sizeof gcases / sizeof gcases[0]; i++) {
    csde_run_settings s = csde_run_default_settings();
    s.process = gcases[i].process;
    s.solver = gcases[i].solver;
    s.grid = gcases[i].grid;
    s.uncond = &uncond_token;
    s.guidance = "3";
    double e[2];
    int rc = 0;
    for (int k = 0; k < 2 && !rc; k++) {
      s.steps = gcases[i].n << k;
      rc = run_final(&s, C, M, B, 0, NULL, x, NULL, &err);
      e[k] = maxdiff(x, xr, N) / scale;
    }
    const char *name = gcases[i].solver ? gcases[i].solver : "ddim";
    const double th = csde_solver_type_order(csde_solver_lookup(name), "ode");
    const double p = log2(e[0] / e[1]);
    printf("# %-10s %-8s %5zu %12.3e %12.3e %8.3f %6g\n", name, gcases[i].grid,
           gcases[i].n, e[0], e[1], p, th);
    ok(!rc && !g.bad && (gcases[i].at_least ? p >= th - 0.35 : fabs(p - th) <= 0.35),
       "guided %s (%s, %zu and %zu steps): relative errors %.3g, %.3g against the exact "
       "flow of mean m_u + w (m_c - m_u), observed order %.3f %s 0.35 of %g%s%s",
       name, gcases[i].grid, gcases[i].n, 2 * gcases[i].n, e[0], e[1], p,
       gcases[i].at_least ? "at least within" : "within", th,
       rc ? ": " : "", rc ? err.msg : "");
  }
  /* adaptive dopri5 and rk45: within a small multiple of the tolerance */
  for (int k = 0; k < 2; k++) {
    csde_run_settings s = csde_run_default_settings();
    s.process = "pf-ode";
    s.solver = k ? "rk45" : "dopri5";
    s.rtol = s.atol = 1e-9;
    s.uncond = &uncond_token;
    s.guidance = "3";
    int rc = run_final(&s, C, M, B, 0, NULL, x, NULL, &err);
    double e = maxdiff(x, xr, N) / scale;
    printf("# %-10s adaptive rtol = atol = 1e-9: relative error %.3e\n", s.solver, e);
    ok(!rc && e <= 1e-7, "guided %s adaptive (rtol 1e-9): relative error %.3g <= 1e-7", s.solver, e);
  }
  /* the SDE samplers: the run of the gaussian of mean m_w, with the same noise */
  static const struct { const char *process, *solver; } sde[] = {
      {"reverse-sde", "em"}, {"reverse-sde", "euler-ancestral"},
      {"reverse-sde", "dpmpp2m-sde"}, {"ddim:eta=1", NULL}, {"pf-ode", "edm-heun:churn=20"}};
  for (size_t i = 0; i < sizeof sde / sizeof sde[0]; i++) {
    csde_run_settings s = csde_run_default_settings();
    s.process = sde[i].process;
    s.solver = sde[i].solver;
    s.steps = 50;
    s.grid = "logsnr";
    double xw[N];
    int rc = run_final(&s, C, Gw, B, 0, NULL, xw, NULL, &err);
    s.uncond = &uncond_token;
    s.guidance = "3";
    if (!rc) rc = run_final(&s, C, M, B, 0, NULL, x, NULL, &err);
    double e = maxdiff(x, xw, N) / (1 + maxabs(xw, N));
    ok(!rc && e <= 1e-11, "guided %s %s: the run of the gaussian of mean m_w with the same "
       "noise (relative difference %.3g <= 1e-11)%s%s", sde[i].process,
       sde[i].solver ? sde[i].solver : "", e, rc ? ": " : "", rc ? err.msg : "");
  }
  csde_model_free(M);
  csde_model_free(Gc);
  csde_model_free(Gu);
  csde_model_free(Gw);
}

/* ---- per-frame scales: C = I, S0 diagonal ---- */

static void per_frame(void)
{
  const double S0[TAU * TAU] = {0.3, 0, 0, 0, 0, 0.5, 0, 0, 0, 0, 0.2, 0, 0, 0, 0, 0.8};
  const double wf[TAU] = {0.5, 1.0, 2.5, 4.0};
  double mw[TAU];
  for (size_t f = 0; f < TAU; f++) mw[f] = mu[f] + wf[f] * (mc[f] - mu[f]);
  csde_model *Gc = gauss(CI, mc, S0), *Gu = gauss(CI, mu, S0), *Gw = gauss(CI, mw, S0);
  gpair g = {Gc, Gu, 0, 0, 0};
  csde_model *M = NULL;
  csde_err err;
  csde_model_alloc_ctx(&M, "gpair", gpair_fn, CSDE_OUT_CSCORE, &g, NULL, &err);
  double x0[N], xr[N], x[N], xl[N];
  prior(CI, B, x0);
  double T, eps;
  csde_problem P = csde_problem_default();
  csde_problem_span(&P, &T, &eps);
  csde_model_gaussian_flow_apply(Gw, T, eps, B, x0, xr, &err);
  csde_run_settings s = csde_run_default_settings();
  s.process = "pf-ode";
  s.solver = "dopri5";
  s.rtol = s.atol = 1e-10;
  s.uncond = &uncond_token;
  s.guidance = "0.5,1,2.5,4";
  int rc = run_final(&s, CI, M, B, 0, NULL, x, NULL, &err);
  const double scale = 1 + maxabs(xr, N);
  for (size_t f = 0; f < TAU; f++) {
    double e = 0;
    for (size_t j = 0; j < B; j++)
      for (size_t p = 0; p < DPIX; p++) {
        size_t i = (j * TAU + f) * DPIX + p;
        e = fmax(e, fabs(x[i] - xr[i]));
      }
    ok(!rc && e <= 1e-8 * scale, "per-frame w = %g on frame %zu (C = I, S0 diagonal): the "
       "exact flow of mean m_u + w_f (m_c - m_u) on that frame (max error %.3g)%s%s", wf[f], f,
       e, rc ? ": " : "", rc ? err.msg : "");
  }
  /* linear:A,B is the list w_f = A + (B - A) f / (tau - 1): 1, 2, 3, 4 */
  s.solver = "dpmpp2m";
  s.rtol = s.atol = 0;
  s.steps = 20;
  s.grid = "logsnr";
  s.guidance = "1,2,3,4";
  rc = run_final(&s, CI, M, B, 0, NULL, x, NULL, &err);
  s.guidance = "linear:1,4";
  if (!rc) rc = run_final(&s, CI, M, B, 0, NULL, xl, NULL, &err);
  ok(!rc && !memcmp(x, xl, sizeof x), "guidance linear:1,4 gives the run of 1,2,3,4 bit for bit");
  csde_model_free(M);
  csde_model_free(Gc);
  csde_model_free(Gu);
  csde_model_free(Gw);
}

/* ---- 2B against split, NFE, w = 0 and 1 ---- */

static double wfn(double t, size_t frame, void *user)
{
  (void)user;
  return 1.0 + t + 0.25 * (double)frame; /* a schedule in t, per frame */
}

static void modes(void)
{
  csde_model *Gc = gauss(C, mc, NULL), *Gu = gauss(C, mu, NULL);
  gpair g = {Gc, Gu, 0, 0, 0};
  csde_model *M = NULL;
  csde_err err;
  csde_model_alloc_ctx(&M, "gpair", gpair_fn, CSDE_OUT_CSCORE, &g, NULL, &err);
  static const struct { const char *process, *solver; double rtol; } cases[] = {
      {"pf-ode", "euler", 0}, {"pf-ode", "heun", 0}, {"pf-ode", "dpmpp2m", 0},
      {"pf-ode", "unipc", 0}, {"ddim:eta=0.5", NULL, 0}, {"reverse-sde", "em", 0},
      {"reverse-sde", "euler-ancestral", 0}, {"pf-ode", "dopri5", 1e-6}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    csde_run_settings s = csde_run_default_settings();
    s.process = cases[i].process;
    s.solver = cases[i].solver;
    s.steps = 20;
    s.grid = "logsnr";
    s.rtol = s.atol = cases[i].rtol;
    double xu[N], x2[N], xs[N], xf[N], xf2[N];
    csde_solve_stats su, s2, ss, sf, sf2;
    int rc = run_final(&s, C, Gc, B, 0, NULL, xu, &su, &err); /* unguided */
    s.uncond = &uncond_token;
    s.guidance = "2.5";
    g.calls = g.passes = 0;
    if (!rc) rc = run_final(&s, C, M, B, 0, NULL, x2, &s2, &err);
    size_t calls2 = g.calls, passes2 = g.passes;
    s.guidance_split = 1;
    g.calls = g.passes = 0;
    if (!rc) rc = run_final(&s, C, M, B, 0, NULL, xs, &ss, &err);
    size_t callss = g.calls, passess = g.passes;
    /* a guidance function: the same in both modes */
    s.guidance = NULL;
    s.guidance_fn = wfn;
    if (!rc) rc = run_final(&s, C, M, B, 0, NULL, xf, &sf, &err);
    s.guidance_split = 0;
    if (!rc) rc = run_final(&s, C, M, B, 0, NULL, xf2, &sf2, &err);
    const char *nm = cases[i].solver ? cases[i].solver : cases[i].process;
    ok(!rc && !memcmp(x2, xs, sizeof x2) && !memcmp(xf, xf2, sizeof xf),
       "%s: one call of 2B and two calls of B give the same states bit for bit (scalar w "
       "and w(t, frame))%s%s", nm, rc ? ": " : "", rc ? err.msg : "");
    ok(!rc && !g.bad && calls2 * 2 == callss && passes2 == passess && passes2 == s2.nfe * B &&
           (cases[i].rtol > 0 || s2.nfe == 2 * su.nfe) && ss.nfe == s2.nfe,
       "%s: NFE counts forward passes: guided %zu (%zu calls of 2B, %zu of B split), "
       "unguided %zu", nm, s2.nfe, calls2, callss, su.nfe);
  }
  /* w = 0: the unconditional model bit for bit; w = 1: the conditional one to rounding */
  for (int w = 0; w <= 1; w++) {
    csde_run_settings s = csde_run_default_settings();
    s.process = "pf-ode";
    s.solver = "dpmpp3m";
    s.steps = 20;
    s.grid = "logsnr";
    double xa[N], xb[N];
    int rc = run_final(&s, C, w ? Gc : Gu, B, 0, NULL, xa, NULL, &err);
    s.uncond = &uncond_token;
    s.guidance = w ? "1" : "0";
    if (!rc) rc = run_final(&s, C, M, B, 0, NULL, xb, NULL, &err);
    double e = maxdiff(xa, xb, N) / (1 + maxabs(xa, N));
    if (!w)
      ok(!rc && !memcmp(xa, xb, sizeof xa), "w = 0: the unconditional model's run bit for bit");
    else
      ok(!rc && e <= 1e-12, "w = 1: the conditional model's run to rounding (relative "
         "difference %.3g <= 1e-12)", e);
  }
  csde_model_free(M);
  csde_model_free(Gc);
  csde_model_free(Gu);
}

/* ---- the preview (item 3) ---- */

typedef struct {
  const csde_model *G; /* the exact gaussian the run follows */
  double xprev[N], tprev;
  const double *grid;
  size_t calls, nulls, stop_at;
  double err;
  double xlast[N], x0last[N];
} prev;

/* x0 against Tweedie at the step's start (euler, ddim: their one evaluation). */
static int on_preview(size_t step, double t, const double *x, const double *x0, void *user)
{
  prev *p = user;
  p->calls++;
  if (!x0) {
    p->nulls++;
  } else if (p->G) {
    double s[N], abar = csde_schedule_abar(S, p->tprev);
    csde_model_call(p->G, p->tprev, B, p->xprev, s);
    for (size_t i = 0; i < N; i++) {
      double want = (p->xprev[i] + (1 - abar) * s[i]) / sqrt(abar);
      p->err = fmax(p->err, fabs(x0[i] - want) / (1 + fabs(want)));
    }
    memcpy(p->x0last, x0, sizeof p->x0last);
  }
  memcpy(p->xprev, x, sizeof p->xprev);
  memcpy(p->xlast, x, sizeof p->xlast);
  p->tprev = t;
  (void)step;
  return p->stop_at && step >= p->stop_at;
}

static void preview(void)
{
  double mw[TAU];
  for (size_t f = 0; f < TAU; f++) mw[f] = mu[f] + 2 * (mc[f] - mu[f]);
  csde_model *Gc = gauss(C, mc, NULL), *Gu = gauss(C, mu, NULL), *Gw = gauss(C, mw, NULL);
  gpair g = {Gc, Gu, 0, 0, 0};
  csde_model *M = NULL;
  csde_err err;
  csde_model_alloc_ctx(&M, "gpair", gpair_fn, CSDE_OUT_CSCORE, &g, NULL, &err);
  static const char *const procs[] = {"pf-ode", "ddim"};
  for (int guided = 0; guided < 2; guided++)
    for (int k = 0; k < 2; k++) {
      csde_run_settings s = csde_run_default_settings();
      s.process = procs[k];
      s.solver = k ? NULL : "euler";
      s.steps = 12;
      s.grid = "logsnr";
      if (guided) s.uncond = &uncond_token, s.guidance = "2";
      double x[N], xp[N];
      csde_solve_stats st, stp;
      int rc = run_final(&s, C, guided ? M : Gc, B, 0, NULL, x, &st, &err);
      prev *p = calloc(1, sizeof *p);
      p->G = guided ? Gw : Gc;
      prior(C, B, p->xprev);
      double t1;
      csde_problem P = csde_problem_default();
      csde_problem_span(&P, &p->tprev, &t1);
      csde_run_hooks h = {NULL, NULL, p, NULL, on_preview};
      s.preview = 1;
      if (!rc) rc = run_final(&s, C, guided ? M : Gc, B, 0, &h, xp, &stp, &err);
      ok(!rc && p->calls == 12 && !p->nulls && p->err <= 1e-12 && !memcmp(x, xp, sizeof x) &&
             st.nfe == stp.nfe,
         "preview, %s%s%s: x0 of each of the 12 steps is Tweedie's (x + (1 - abar) C grad "
         "log p_t(x)) / sqrt(abar) of the exact gaussian%s at the step's start (relative "
         "error %.3g <= 1e-12); the states and the NFE (%zu) as without the preview%s%s",
         procs[k], k ? "" : " euler", guided ? ", guided w = 2" : "",
         guided ? " of mean m_w" : "", p->err, stp.nfe, rc ? ": " : "", rc ? err.msg : "");
      free(p);
    }
  /* stopping, and forward-sde's NULL */
  {
    csde_run_settings s = csde_run_default_settings();
    s.process = "pf-ode";
    s.solver = "heun";
    s.steps = 12;
    s.preview = 1;
    prev *p = calloc(1, sizeof *p);
    p->stop_at = 3;
    csde_run_hooks h = {NULL, NULL, p, NULL, on_preview};
    double x[N];
    csde_solve_stats st;
    int rc = run_final(&s, C, Gc, B, 0, &h, x, &st, &err);
    ok(!rc && st.stopped && st.steps == 3 && p->calls == 3,
       "preview returning non-zero at step 3 stops the run (rc %d, stopped %d, steps %zu)", rc,
       st.stopped, st.steps);
    memset(p, 0, sizeof *p);
    s.process = "forward-sde";
    s.solver = "em";
    s.steps = 5;
    double xd[N];
    prior(C, B, xd);
    csde_run *r = NULL;
    size_t shape[1] = {DPIX};
    rc = csde_run_alloc(&r, &s, C, S, Gc, B, 1, shape, &err);
    if (!rc) rc = csde_run_exec(r, xd, NULL, &h, &st, &err);
    csde_run_free(r);
    ok(!rc && p->calls == 5 && p->nulls == 5, "forward-sde: the preview gets x0 = NULL (%zu "
       "calls, %zu NULL)", p->calls, p->nulls);
    free(p);
  }
  csde_model_free(M);
  csde_model_free(Gc);
  csde_model_free(Gu);
  csde_model_free(Gw);
}

/* ---- bad input ---- */

static double bad_fn(double t, size_t frame, void *user)
{
  (void)user;
  return t < 0.5 && frame == 2 ? NAN : 1.0;
}

static void errors(void)
{
  csde_model *Gc = gauss(C, mc, NULL), *Gu = gauss(C, mu, NULL);
  gpair g = {Gc, Gu, 0, 0, 0};
  csde_model *M = NULL;
  csde_err err;
  csde_model_alloc_ctx(&M, "gpair", gpair_fn, CSDE_OUT_CSCORE, &g, NULL, &err);
  static const struct {
    const char *process, *guidance;
    int uncond;
    const char *param, *what;
  } cases[] = {
      {"pf-ode", "3", 0, CSDE_PARAM_GUIDANCE, "guidance without uncond"},
      {"pf-ode", NULL, 1, CSDE_PARAM_COND, "uncond without guidance"},
      {"pf-ode", "nan", 1, CSDE_PARAM_GUIDANCE, "a NaN scale"},
      {"pf-ode", "inf", 1, CSDE_PARAM_GUIDANCE, "an infinite scale"},
      {"pf-ode", "1001", 1, CSDE_PARAM_GUIDANCE, "w = 1001 > 1e3"},
      {"pf-ode", "1,2,3,-1e4", 1, CSDE_PARAM_GUIDANCE, "a per-frame w of -1e4"},
      {"pf-ode", "1,2,3", 1, CSDE_PARAM_GUIDANCE, "3 per-frame scales for 4 frames"},
      {"pf-ode", "1,2,3,4,5", 1, CSDE_PARAM_GUIDANCE, "5 per-frame scales for 4 frames"},
      {"pf-ode", "linear:1", 1, CSDE_PARAM_GUIDANCE, "linear: with one number"},
      {"pf-ode", "linear:1,2e3", 1, CSDE_PARAM_GUIDANCE, "linear: reaching 2e3"},
      {"pf-ode", "big", 1, CSDE_PARAM_GUIDANCE, "not a number"},
      {"pf-ode", "", 1, CSDE_PARAM_GUIDANCE, "an empty spec"},
      {"forward-sde", "2", 1, CSDE_PARAM_GUIDANCE, "guidance on forward-sde"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    csde_run_settings s = csde_run_default_settings();
    s.process = cases[i].process;
    s.guidance = cases[i].guidance;
    s.uncond = cases[i].uncond ? &uncond_token : NULL;
    csde_run *r = NULL;
    size_t shape[1] = {DPIX};
    memset(&err, 0, sizeof err);
    int rc = csde_run_alloc(&r, &s, C, S, M, B, 1, shape, &err);
    csde_run_free(r);
    ok(rc == CSDE_EINVAL && err.param && !strcmp(err.param, cases[i].param),
       "%s: CSDE_EINVAL, param %s (rc %d, param %s: %s)", cases[i].what, cases[i].param, rc,
       err.param ? err.param : "NULL", err.msg);
  }
  /* a guidance function out of range at a call: the run fails naming guidance */
  {
    csde_run_settings s = csde_run_default_settings();
    s.process = "pf-ode";
    s.solver = "euler";
    s.steps = 10;
    s.uncond = &uncond_token;
    s.guidance_fn = bad_fn;
    double x[N];
    memset(&err, 0, sizeof err);
    int rc = run_final(&s, C, M, B, 0, NULL, x, NULL, &err);
    ok(rc == CSDE_EINVAL && err.param && !strcmp(err.param, CSDE_PARAM_GUIDANCE) &&
           strstr(err.msg, "frame 2"),
       "a guidance function giving NaN: CSDE_EINVAL, param guidance (%s)", err.msg);
  }
  /* the problem-level checks (csde_solver_alloc) */
  {
    csde_problem P = csde_problem_default();
    P.process = CSDE_PROC_PFODE;
    P.tau = TAU, P.D = DPIX, P.batch = B, P.C = C, P.sched = S, P.model = M;
    const double wf[TAU] = {1, 2, 3, 4};
    csde_solve_params par = csde_solve_default_params();
    csde_solver *sv = NULL;
    P.guidance.w_frames = wf;
    memset(&err, 0, sizeof err);
    int rc = csde_solver_alloc(&sv, &P, &par, &err);
    csde_solver_free(sv);
    ok(rc == CSDE_EINVAL && err.param && !strcmp(err.param, CSDE_PARAM_GUIDANCE),
       "csde_problem: per-frame scales without uncond: CSDE_EINVAL, param guidance (%s)", err.msg);
    P.guidance.w_frames = NULL;
    P.guidance.uncond = &uncond_token;
    P.guidance.w = -INFINITY;
    sv = NULL;
    memset(&err, 0, sizeof err);
    rc = csde_solver_alloc(&sv, &P, &par, &err);
    csde_solver_free(sv);
    ok(rc == CSDE_EINVAL && err.param && !strcmp(err.param, CSDE_PARAM_GUIDANCE),
       "csde_problem: w = -inf: CSDE_EINVAL, param guidance (%s)", err.msg);
  }
  csde_model_free(M);
  csde_model_free(Gc);
  csde_model_free(Gu);
}

/* A string attribute of /parameters ("?" if unreadable). */
static void param_str(hid_t f, const char *name, char *buf, size_t len)
{
  snprintf(buf, len, "?");
  hid_t a = H5Aopen_by_name(f, "/parameters", name, H5P_DEFAULT, H5P_DEFAULT);
  hid_t t = a >= 0 ? H5Aget_type(a) : -1;
  char *v = NULL;
  if (t >= 0 && H5Tis_variable_str(t) > 0 && H5Aread(a, t, &v) >= 0 && v) {
    snprintf(buf, len, "%s", v);
    H5free_memory(v);
  }
  if (t >= 0) H5Tclose(t);
  if (a >= 0) H5Aclose(a);
}

/* /parameters records guidance (the spec; "none" when off) and guidance_split. */
static void recorded(void)
{
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  csde_model *Gc = gauss(C, mc, NULL), *Gu = gauss(C, mu, NULL);
  gpair g = {Gc, Gu, 0, 0, 0};
  csde_model *M = NULL;
  csde_err err;
  csde_model_alloc_ctx(&M, "gpair", gpair_fn, CSDE_OUT_CSCORE, &g, NULL, &err);
  char dir[64], path[96];
  snprintf(dir, sizeof dir, "/tmp/csde_test_guidance_XXXXXX");
  if (!mkdtemp(dir)) {
    ok(0, "a temporary directory");
    return;
  }
  snprintf(path, sizeof path, "%s/g.h5", dir);
  for (int guided = 0; guided < 2; guided++) {
    csde_run_settings s = csde_run_default_settings();
    s.process = "pf-ode";
    s.solver = "euler";
    s.steps = 4;
    if (guided) s.uncond = &uncond_token, s.guidance = "linear:1,3", s.guidance_split = 1;
    csde_run *r = NULL;
    csde_traj *w = NULL;
    csde_traj_options o = {0, 0, 1, NULL};
    size_t shape[1] = {DPIX};
    double x[N];
    csde_solve_stats st;
    int rc = csde_run_alloc(&r, &s, C, S, M, B, 1, shape, &err);
    if (!rc) rc = csde_run_prior(r, x, &err);
    if (!rc) rc = csde_traj_create(&w, path, r, &o, &err);
    if (!rc) rc = csde_run_exec(r, x, w, NULL, &st, &err);
    if (w) csde_traj_close(w, &st, "ok", &err);
    csde_run_free(r);
    char gs[64] = "?";
    long long split = -1;
    hid_t f = rc ? -1 : H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f >= 0) {
      param_str(f, "guidance", gs, sizeof gs);
      hid_t a = H5Aopen_by_name(f, "/parameters", "guidance_split", H5P_DEFAULT, H5P_DEFAULT);
      if (a >= 0) H5Aread(a, H5T_NATIVE_LLONG, &split), H5Aclose(a);
      H5Fclose(f);
    }
    ok(!rc && !strcmp(gs, guided ? "linear:1,3" : "none") && split == guided,
       "/parameters records guidance '%s' and guidance_split %lld (%s)%s%s", gs, split,
       guided ? "linear:1,3, split" : "off", rc ? ": " : "", rc ? err.msg : "");
    unlink(path);
  }
  rmdir(dir);
  csde_model_free(M);
  csde_model_free(Gc);
  csde_model_free(Gu);
}

int main(void)
{
  csde_err err;
  if (csde_cov_alloc(&C, "ar1:rho=0.6", TAU, NULL, &err) ||
      csde_cov_alloc(&CI, "identity", TAU, NULL, &err) ||
      csde_schedule_alloc(&S, "vp-linear", &err)) {
    printf("Bail out! %s\n", err.msg);
    return 1;
  }
  conditional();
  guided_orders();
  per_frame();
  modes();
  preview();
  errors();
  recorded();
  csde_cov_free(C);
  csde_cov_free(CI);
  csde_schedule_free(S);
  return tap_done();
}
