/* Issue 28, items 3 and 5: the model context on every path, and the flow-shifted output.
 *   1. a context callback on edm, ve, rf:shift=3 and vp-linear (pf-ode with heun, and
 *      dpmpp2m) sees alpha, sigma_path, lambda and t_shifted equal, bit for bit, to the
 *      schedule's accessors at ctx.t (t_shifted: rf's sigma_path, which is t' = S t / q,
 *      q = 1 + (S - 1) t, checked against that formula to 1 ulp; t itself elsewhere), and
 *      abar, sigma, logsnr as before (exp(-B), sqrt(expm1(B)), -log(expm1(B))); a call
 *      without a problem (csde_model_call) sees NaN there.
 *   2. plugins: one built for ABI 6 reads the same fields; one built for ABI 5 (its
 *      csde_model_ctx ends at `first`) loads and reads t, sigma, batch, first where they
 *      were.
 *   3. output flow-shifted (w = dx/dt' = delta - x0 on rf:shift=S): the exact gaussian
 *      model answered as w gives the same PF-ODE endpoint as answered as the flow u =
 *      (S / q^2) w, bit for bit (rk45 at 1e-10, dpmpp2m fixed steps, euler reverse SDE:
 *      the process layer forms u = (dt'/dt) w, the product the flow callback forms), and
 *      within 1e-7 of the exact flow; refused (EINVAL, param schedule, naming the output
 *      and the schedule) on vp-linear, edm and ve, from the library, a plugin and the CLI. */
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "corrsde/cov.h"
#include "corrsde/model.h"
#include "corrsde/plugin.h"
#include "corrsde/problem.h"
#include "corrsde/schedule.h"
#include "corrsde/solve.h"
#include "tap.h"

#define TAU 3
#define DPIX 2
static const double XS[TAU * DPIX] = {0.7, -1.2, 0.3, 2.0, -0.4, 1.1};
static const double MEAN[TAU * DPIX] = {0.5, -0.5, 1.0, 0.25, -1.0, 0.0};
static const double L0[TAU][TAU] = {{0.8, 0, 0}, {0.3, 0.6, 0}, {-0.2, 0.4, 0.5}};

static csde_schedule *make(const char *spec)
{
  csde_schedule *s = NULL;
  csde_err err = {0};
  int st = csde_schedule_alloc(&s, spec, &err);
  ok(st == 0 && s, "alloc '%s'%s%s", spec, st ? ": " : "", st ? err.msg : "");
  return s;
}

static int same(double a, double b) { return a == b || (isnan(a) && isnan(b)); }

/* ---- 1. the context of a user callback ---- */

#define MAXREC 512
typedef struct {
  size_t n;
  csde_model_ctx c[MAXREC];
} recorder;

static int rec_fn(const csde_model_ctx *c, const double *x, double *out, void *user)
{
  (void)x;
  recorder *r = user;
  if (r->n < MAXREC) r->c[r->n++] = *c;
  for (size_t i = 0; i < c->batch * c->tau * c->D; i++) out[i] = 0;
  return 0;
}

/* the records' path fields against the accessors (bitwise); the count of calls seen */
static size_t check_records(const csde_schedule *s, const recorder *r, const char *what)
{
  const int rf = !strcmp(csde_schedule_path_name(s), "rf");
  size_t bad = 0, badv = 0;
  double worst_shift = 0;
  for (size_t k = 0; k < r->n; k++) {
    const csde_model_ctx *c = &r->c[k];
    const double t = c->t, B = csde_schedule_int_beta(s, t);
    if (!same(c->alpha, csde_schedule_path_alpha(s, t)) ||
        !same(c->sigma_path, csde_schedule_path_sigma(s, t)) ||
        !same(c->lambda, csde_schedule_path_lambda(s, t)) ||
        !same(c->t_shifted, rf ? csde_schedule_path_sigma(s, t) : t)) {
      if (!bad)
        printf("# %s: t %.17g: alpha %.17g sigma_path %.17g lambda %.17g t_shifted %.17g\n",
               what, t, c->alpha, c->sigma_path, c->lambda, c->t_shifted);
      bad++;
    }
    if (!same(c->abar, exp(-B)) || !same(c->sigma, sqrt(expm1(B))) ||
        !same(c->logsnr, -log(expm1(B))))
      badv++;
    if (rf) { /* t' = S t / (1 + (S - 1) t), S = 3 */
      const double tp = 3 * t / (1 + 2 * t);
      worst_shift = fmax(worst_shift, fabs(c->t_shifted - tp) / tp);
    }
  }
  ok(r->n > 0 && bad == 0, "%s: %zu calls, alpha, sigma_path, lambda, t_shifted are the "
     "accessors' bits at ctx.t (%zu differ)", what, r->n, bad);
  ok(r->n > 0 && badv == 0, "%s: abar, sigma, logsnr the VP view's bits as before (%zu differ)",
     what, badv);
  if (rf)
    ok(worst_shift <= 0x1p-52, "%s: t_shifted = 3 t / (1 + 2 t) to 1 ulp (rel. %.2g)", what,
       worst_shift);
  return r->n;
}

static int solve_with(const csde_schedule *s, const csde_cov *C, const csde_model *M,
                      const char *solver, csde_process proc, size_t steps, double *x,
                      csde_err *err)
{
  csde_problem P = csde_problem_default();
  P.process = proc;
  P.tau = TAU, P.D = DPIX, P.batch = 1, P.C = C, P.sched = s, P.model = M;
  P.T = csde_problem_t_max(s);
  double t0, t1;
  csde_schedule_path_span(s, &t0, &t1);
  P.eps = t0 > 0 ? t0 : 1e-3;
  csde_solve_params par = csde_solve_default_params();
  par.seed = 11;
  par.solver = solver;
  par.steps = steps;
  if (!steps) par.rtol = par.atol = 1e-10;
  return csde_solve(&P, &par, x, NULL, err);
}

static void check_ctx(const char *spec)
{
  csde_schedule *s = make(spec);
  csde_cov *C = NULL;
  csde_model *M = NULL;
  csde_err err = {0};
  static recorder r;
  if (!s || csde_cov_alloc(&C, "ar1:rho=0.5", TAU, NULL, &err) ||
      csde_model_alloc_ctx(&M, "recorder", rec_fn, CSDE_OUT_CSCORE, &r, NULL, &err)) {
    ok(0, "setup %s: %s", spec, err.msg);
    goto done;
  }
  static const char *const solvers[] = {"heun", "dpmpp2m"};
  for (int i = 0; i < 2; i++) {
    double x[TAU * DPIX];
    memcpy(x, XS, sizeof x);
    r.n = 0;
    int st = solve_with(s, C, M, solvers[i], CSDE_PROC_PFODE, 8, x, &err);
    char what[96];
    snprintf(what, sizeof what, "%s, %s", spec, solvers[i]);
    ok(!st, "%s solves%s%s", what, st ? ": " : "", st ? err.msg : "");
    check_records(s, &r, what);
  }
  r.n = 0;
  double out[TAU * DPIX];
  csde_model_call(M, 0.5, 1, XS, out);
  ok(r.n == 1 && isnan(r.c[0].alpha) && isnan(r.c[0].sigma_path) && isnan(r.c[0].lambda) &&
     isnan(r.c[0].t_shifted) && r.c[0].t == 0.5,
     "%s: csde_model_call (no problem) gives NaN path fields", spec);
done:
  csde_model_free(M);
  csde_cov_free(C);
  csde_schedule_free(s);
}

/* ---- 2. plugins of ABI 6 and 5 ---- */

typedef size_t (*seen_fn)(const double (**out)[8]);

static void check_plugin(const char *env, int abi)
{
  const char *path = getenv(env);
  if (!path) {
    ok(0, "%s is not set (meson test sets it)", env);
    return;
  }
  csde_schedule *s = make("rf:shift=3");
  csde_cov *C = NULL;
  csde_model *M = NULL;
  csde_err err = {0};
  void *h = NULL;
  if (!s || csde_cov_alloc(&C, "ar1:rho=0.5", TAU, NULL, &err) ||
      csde_model_plugin_load(&M, path, "", TAU, DPIX, &err)) {
    ok(0, "ABI %d plugin loads: %s", abi, err.msg);
    goto done;
  }
  ok(1, "a plugin built for ABI %d loads (corrsde's ABI %d)", abi, CSDE_PLUGIN_ABI);
  h = dlopen(path, RTLD_NOW | RTLD_LOCAL); /* the same library: the same records */
  void *sym = h ? dlsym(h, "plugin_ctx_seen") : NULL;
  if (!sym) {
    ok(0, "plugin_ctx_seen in %s: %s", path, dlerror());
    goto done;
  }
  seen_fn seen;
  memcpy(&seen, &sym, sizeof seen);
  const double (*rec)[8] = NULL;
  seen(&rec); /* clear */
  double x[TAU * DPIX];
  memcpy(x, XS, sizeof x);
  int st = solve_with(s, C, M, "heun", CSDE_PROC_PFODE, 6, x, &err);
  ok(!st, "ABI %d plugin solves on rf:shift=3%s%s", abi, st ? ": " : "", st ? err.msg : "");
  size_t n = seen(&rec), bad = 0;
  for (size_t k = 0; k < n; k++) {
    const double t = rec[k][0], B = csde_schedule_int_beta(s, t);
    int good = t > 0 && t < 1 && same(rec[k][1], sqrt(expm1(B))) && rec[k][6] == 1 &&
               rec[k][7] == 0;
    if (abi >= 6)
      good = good && same(rec[k][2], csde_schedule_path_alpha(s, t)) &&
             same(rec[k][3], csde_schedule_path_sigma(s, t)) &&
             same(rec[k][4], csde_schedule_path_lambda(s, t)) &&
             same(rec[k][5], csde_schedule_path_sigma(s, t));
    if (!good && !bad)
      printf("# record %zu: t %.17g sigma %.17g alpha %.17g sigma_path %.17g lambda %.17g "
             "t' %.17g batch %g first %g\n", k, t, rec[k][1], rec[k][2], rec[k][3], rec[k][4],
             rec[k][5], rec[k][6], rec[k][7]);
    bad += !good;
  }
  ok(n == 12 && bad == 0, "ABI %d plugin: %zu calls (heun, 6 steps: 12), %s right in all "
     "(%zu wrong)", abi, n, abi >= 6 ? "t, sigma, batch, first, alpha, sigma_path, lambda, "
     "t_shifted" : "t, sigma, batch, first", bad);
done:
  if (h) dlclose(h);
  csde_model_free(M);
  csde_cov_free(C);
  csde_schedule_free(s);
}

/* ---- 3. flow-shifted ---- */

typedef struct {
  const csde_model *M;
  const csde_schedule *s;
  int shifted;
} wrap;

/* the gaussian's answer as w = delta - x0 (shifted) or u = (dt'/dt) w, dt'/dt = sigma'(t):
 * delta = -sigma s, x0 = (x + sigma^2 s) / alpha */
static int wrap_fn(double t, size_t batch, const double *x, double *out, void *user)
{
  const wrap *w = user;
  if (csde_model_call(w->M, t, batch, x, out)) return -1;
  const double a = csde_schedule_path_alpha(w->s, t), sg = csde_schedule_path_sigma(w->s, t);
  const double d = csde_schedule_path_dsigma(w->s, t);
  for (size_t i = 0; i < batch * TAU * DPIX; i++) {
    const double sc = out[i], wv = -sg * sc - (x[i] + sg * sg * sc) / a;
    out[i] = w->shifted ? wv : wv * d;
  }
  return 0;
}

static void gaussian_setup(const char *spec, csde_schedule **s, csde_cov **C, csde_model **M,
                           csde_model *W[2], wrap wr[2], csde_err *err)
{
  double S0[TAU * TAU];
  for (int i = 0; i < TAU; i++)
    for (int j = 0; j < TAU; j++) {
      S0[i * TAU + j] = 0;
      for (int k = 0; k < TAU; k++) S0[i * TAU + j] += L0[i][k] * L0[j][k];
    }
  *s = make(spec);
  if (!*s || csde_cov_alloc(C, "ar1:rho=0.5", TAU, NULL, err) ||
      csde_model_gaussian_alloc(M, *C, *s, DPIX, MEAN, TAU * DPIX, S0, err))
    return;
  for (int k = 0; k < 2; k++) {
    wr[k] = (wrap){*M, *s, k};
    if (csde_model_alloc(&W[k], k ? "gaussian-shifted" : "gaussian-flow", wrap_fn,
                         k ? CSDE_OUT_FLOW_SHIFTED : CSDE_OUT_FLOW, &wr[k], NULL, err))
      return;
  }
}

static void check_flow_shifted(void)
{
  csde_schedule *s = NULL;
  csde_cov *C = NULL;
  csde_model *M = NULL, *W[2] = {NULL, NULL};
  csde_err err = {0};
  wrap wr[2];
  gaussian_setup("rf:shift=3", &s, &C, &M, W, wr, &err);
  if (!W[1]) {
    ok(0, "setup rf:shift=3: %s", err.msg);
    goto done;
  }
  ok(!strcmp(csde_model_output_name(CSDE_OUT_FLOW_SHIFTED), "flow-shifted"),
     "the output registry names flow-shifted");
  const double T = csde_problem_t_max(s), eps = 1e-3;
  double ex[TAU * DPIX];
  int st = csde_model_gaussian_flow_apply(M, T, eps, 1, XS, ex, &err);
  ok(!st, "exact flow%s%s", st ? ": " : "", st ? err.msg : "");
  static const struct {
    const char *solver;
    csde_process proc;
    size_t steps;
  } runs[] = {{"rk45", CSDE_PROC_PFODE, 0},
              {"dpmpp2m", CSDE_PROC_PFODE, 10},
              {"euler", CSDE_PROC_REVERSE_SDE, 50}};
  for (size_t i = 0; i < sizeof runs / sizeof runs[0]; i++) {
    double x[2][TAU * DPIX];
    int ss[2];
    for (int k = 0; k < 2; k++) {
      memcpy(x[k], XS, sizeof x[k]);
      ss[k] = solve_with(s, C, W[k], runs[i].solver, runs[i].proc, runs[i].steps, x[k], &err);
      if (ss[k]) printf("# %s: %s\n", k ? "flow-shifted" : "flow", err.msg);
    }
    double diff = 0, e = 0;
    for (int j = 0; j < TAU * DPIX; j++) {
      diff = fmax(diff, fabs(x[0][j] - x[1][j]));
      e = fmax(e, fabs(x[1][j] - ex[j]));
    }
    printf("# flow-shifted | rf:shift=3 | %-12s %-7s %2zu steps | |flow-shifted - flow| %.3g"
           " | vs exact flow %.3g\n", csde_process_name(runs[i].proc), runs[i].solver,
           runs[i].steps, diff, e);
    ok(!ss[0] && !ss[1] && !memcmp(x[0], x[1], sizeof x[0]),
       "%s %s on rf:shift=3: flow-shifted's endpoint is flow's bit for bit (max diff %.3g)",
       csde_process_name(runs[i].proc), runs[i].solver, diff);
    if (runs[i].proc == CSDE_PROC_PFODE && !runs[i].steps)
      ok(e < 1e-7, "rk45 at 1e-10 with flow-shifted: exact flow to %.2g < 1e-7", e);
  }
done:
  csde_model_free(W[0]);
  csde_model_free(W[1]);
  csde_model_free(M);
  csde_cov_free(C);
  csde_schedule_free(s);
}

static void check_refusals(void)
{
  static const char *const specs[] = {"vp-linear", "edm:smin=0.002,smax=80", "ve"};
  for (int i = 0; i < 3; i++) {
    csde_schedule *s = NULL;
    csde_cov *C = NULL;
    csde_model *M = NULL, *W[2] = {NULL, NULL};
    csde_err err = {0};
    wrap wr[2];
    gaussian_setup(specs[i], &s, &C, &M, W, wr, &err);
    if (!W[1]) {
      ok(0, "setup %s: %s", specs[i], err.msg);
    } else {
      static const char *const solvers[] = {"heun", "dpmpp2m"};
      for (int j = 0; j < 2; j++) {
        double x[TAU * DPIX];
        memcpy(x, XS, sizeof x);
        err = (csde_err){0};
        int st = solve_with(s, C, W[1], solvers[j], CSDE_PROC_PFODE, 4, x, &err);
        char what[128];
        snprintf(what, sizeof what, "flow-shifted on %s (%s) refused, naming the output and "
                 "the schedule", specs[i], solvers[j]);
        ok_status(st, CSDE_EINVAL, err.msg, "flow-shifted", what);
        ok(strstr(err.msg, csde_schedule_spec(s)) && err.param &&
           !strcmp(err.param, CSDE_PARAM_SCHEDULE), "... the message names '%s', param %s",
           csde_schedule_spec(s), err.param ? err.param : "(none)");
      }
    }
    csde_model_free(W[0]);
    csde_model_free(W[1]);
    csde_model_free(M);
    csde_cov_free(C);
    csde_schedule_free(s);
  }
}

/* the CLI: a plugin declaring flow-shifted on vp-linear exits 1 naming both */
static void check_cli(void)
{
  const char *exe = getenv("CORRSDE"), *plug = getenv("CSDE_PLUGIN_CTX6");
  if (!exe || !plug) {
    ok(0, "CORRSDE and CSDE_PLUGIN_CTX6 must be set (meson test sets them)");
    return;
  }
  char cmd[4096];
  snprintf(cmd, sizeof cmd,
           "'%s' sample --model 'plugin:%s:output=flow-shifted' --schedule vp-linear "
           "--frames 3 --frame-shape 2 --steps 4 -q -o '%s/corrsde_ctx_cli.h5' 2>&1; echo rc=$?",
           exe, plug, getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  FILE *p = popen(cmd, "r");
  char out[8192] = "";
  size_t n = p ? fread(out, 1, sizeof out - 1, p) : 0;
  out[n] = '\0';
  if (p) pclose(p);
  const int good = strstr(out, "flow-shifted") && strstr(out, "vp-linear") &&
                   !strstr(out, "rc=0\n");
  for (char *l = strtok(out, "\n"); l; l = strtok(NULL, "\n")) printf("# %s\n", l);
  ok(good, "corrsde sample: a flow-shifted plugin on vp-linear exits non-zero, naming the "
     "output and the schedule");
}

int main(void)
{
  static const char *const specs[] = {"edm:smin=0.002,smax=80", "ve", "rf:shift=3",
                                      "vp-linear"};
  for (int i = 0; i < 4; i++) check_ctx(specs[i]);
  check_plugin("CSDE_PLUGIN_CTX6", 6);
  check_plugin("CSDE_PLUGIN_CTX5", 5);
  check_flow_shifted();
  check_refusals();
  check_cli();
  return tap_done();
}
