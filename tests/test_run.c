/* TAP test of the run API (corrsde/run.h): the settings' errors name the setting at
 * fault; the span and the save plan (which steps, how many, at which times); the run
 * equals a bare csde_solver_run bit for bit; the hooks; the status text; the trajectory
 * writer keeps the caller's HDF5 error handler, refuses an existing file without
 * overwrite, and records a failed run. */
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "corrsde/corrsde.h"
#include "tap.h"

static char tmpdir[64];

static double csde_now_for_tests(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* C grad log p = -x: the exact score of N(0, C) data. */
static int cscore(double t, size_t batch, const double *x, double *out, void *user)
{
  (void)t;
  size_t n = batch * *(const size_t *)user;
  for (size_t i = 0; i < n; i++) out[i] = -x[i];
  return 0;
}

static size_t per_sample = 4 * 3; /* tau x D */
static csde_cov *C;
static csde_schedule *S, *Sd;
static csde_model *M;

/* csde_run_alloc with one setting changed; returns its status, err filled. */
static int try_settings(const csde_run_settings *s, const csde_schedule *sched, csde_err *err)
{
  csde_run *r = NULL;
  size_t shape[1] = {3};
  int st = csde_run_alloc(&r, s, C, sched, M, 2, 1, shape, err);
  csde_run_free(r);
  return st;
}

static void setting_errors(void)
{
  static const struct {
    const char *what, *process, *save, *noise;
    double t_start, t_end;
    size_t steps;
    int discrete_schedule;
    const char *param, *msg;
  } cases[] = {
      {"unknown process", "backward", "final", "stream", NAN, NAN, 8, 0, CSDE_PARAM_PROCESS,
       "expected one of forward-sde"},
      {"ddim eta > 1", "ddim:eta=2", "final", "stream", NAN, NAN, 8, 0, CSDE_PARAM_PROCESS,
       "eta must be in [0, 1]"},
      {"save every:0", "reverse-sde", "every:0", "stream", NAN, NAN, 8, 0, CSDE_PARAM_SAVE,
       "every needs a positive integer"},
      {"save time outside [0, 1]", "reverse-sde", "times:0.5,2", "stream", NAN, NAN, 8, 0,
       CSDE_PARAM_SAVE, "outside [0, 1]"},
      {"save times with an empty entry", "reverse-sde", "times:0.5,,0.4", "stream", NAN, NAN,
       8, 0, CSDE_PARAM_SAVE, "entry 2 is empty"},
      {"save times with a leading comma", "reverse-sde", "times:,0.5", "stream", NAN, NAN, 8,
       0, CSDE_PARAM_SAVE, "entry 1 is empty"},
      {"save times with a trailing comma", "reverse-sde", "times:0.5,", "stream", NAN, NAN, 8,
       0, CSDE_PARAM_SAVE, "entry 2 is empty (a trailing comma)"},
      {"save time outside the span", "forward-sde", "times:0.9", "stream", NAN, 0.5, 8, 0,
       CSDE_PARAM_SAVE, "outside the run's span [0, 0.5]"},
      {"save kind unknown", "reverse-sde", "all", "stream", NAN, NAN, 8, 0, CSDE_PARAM_SAVE,
       "expected final, every:K"},
      {"reverse span inverted", "reverse-sde", "final", "stream", 0.2, 0.5, 8, 0,
       CSDE_PARAM_SPAN, "runs backwards"},
      {"forward from t > 0", "forward-sde", "final", "stream", 0.3, NAN, 8, 0,
       CSDE_PARAM_SPAN, "starts at t = 0"},
      {"time outside [0, 1]", "pf-ode", "final", "stream", 1.5, NAN, 8, 0, CSDE_PARAM_SPAN,
       "expected times in [0, 1]"},
      {"ddpm with times", "ddpm", "final", "stream", 0.5, NAN, 8, 1, CSDE_PARAM_SPAN,
       "ddpm runs its schedule"},
      {"ddpm, continuous schedule", "ddpm", "final", "stream", NAN, NAN, 8, 0,
       CSDE_PARAM_SCHEDULE, "needs a discrete schedule"},
      {"path noise on the PF-ODE", "pf-ode", "final", "path", NAN, NAN, 8, 0, CSDE_PARAM_NOISE,
       "path applies to forward-sde and reverse-sde"},
      {"noise unknown", "reverse-sde", "final", "brownian", NAN, NAN, 8, 0, CSDE_PARAM_NOISE,
       "expected stream or path"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    csde_run_settings s = csde_run_default_settings();
    s.process = cases[i].process;
    s.save = cases[i].save;
    s.noise = cases[i].noise;
    s.t_start = cases[i].t_start;
    s.t_end = cases[i].t_end;
    s.steps = cases[i].steps;
    csde_err err;
    csde_err_clear(&err);
    int st = try_settings(&s, cases[i].discrete_schedule ? Sd : S, &err);
    ok(st == CSDE_EINVAL && err.param && !strcmp(err.param, cases[i].param) &&
           strstr(err.msg, cases[i].msg) && !strstr(err.msg, "--"),
       "%s: CSDE_EINVAL, param %s, \"%s\" (got %d, %s, \"%s\")", cases[i].what, cases[i].param,
       cases[i].msg, st, err.param ? err.param : "NULL", err.msg);
  }
}

/* Issue 23, item 17: spans a solver divides by zero on are refused up front, naming the
 * setting; edm-heun's step to sigma = 0 is EDM's Euler step. */
static void expect_setting(const csde_run_settings *s, const csde_schedule *sched, int want,
                           const char *param, const char *msg, const char *what)
{
  csde_err err;
  csde_err_clear(&err);
  int st = try_settings(s, sched, &err);
  ok(st == want && err.param && !strcmp(err.param, param) && strstr(err.msg, msg) &&
         !strstr(err.msg, "--"),
     "%s: status %d, param %s, \"%s\" (got %d, %s, \"%s\")", what, want, param, msg, st,
     err.param ? err.param : "NULL", err.msg);
}

static void span_errors(void)
{
  csde_schedule *stiff = NULL;
  csde_err err;
  csde_schedule_alloc(&stiff, "vp-linear:bmax=1e6", &err);
  static const char *const view[] = {"dpmpp2m", "dpmpp3m", "unipc", "unipc3", "ipndm",
                                     "edm-heun"};
  for (size_t i = 0; i < sizeof view / sizeof view[0]; i++) {
    csde_run_settings s = csde_run_default_settings();
    s.process = "pf-ode-encode";
    s.solver = view[i];
    s.steps = 20;
    s.t_start = 0;
    char what[128];
    snprintf(what, sizeof what, "pf-ode-encode with %s from t_start = 0 (sigma = 0)", view[i]);
    expect_setting(&s, S, CSDE_EINVAL, CSDE_PARAM_SPAN,
                   "sigma(t) = sqrt(1 - abar(t)) at a step's start, which is 0 at the span's "
                   "start t_start = 0",
                   what);
  }
  for (size_t i = 0; i < 4; i++) { /* the lambda steppers: no step may end at lambda = inf */
    csde_run_settings s = csde_run_default_settings();
    s.process = "pf-ode";
    s.solver = view[i];
    s.steps = 20;
    s.t_end = 0;
    char what[128];
    snprintf(what, sizeof what, "pf-ode with %s to t_end = 0 (lambda = inf)", view[i]);
    expect_setting(&s, S, CSDE_EINVAL, CSDE_PARAM_SPAN,
                   "at a step's end, which is 0 at the span's end t_end = 0", what);
  }
  csde_run_settings s;
  s = csde_run_default_settings();
  s.process = "ddim";
  s.steps = 10;
  expect_setting(&s, stiff, CSDE_EINVAL, CSDE_PARAM_SPAN,
                 "divides by alpha(t) = sqrt(abar(t)), which is 0 at the span's start t_start = 1",
                 "ddim on vp-linear:bmax=1e6 (abar(1) underflows to 0)");
  s = csde_run_default_settings();
  s.process = "pf-ode-encode";
  s.solver = "ddim";
  s.steps = 10;
  expect_setting(&s, stiff, CSDE_EDOM, CSDE_PARAM_SCHEDULE,
                 "which is 0 at grid node 1 (t = 0.1009)",
                 "encode with ddim on vp-linear:bmax=1e6: a step starts where abar = 0");

  /* edm-heun to t_end = 0: the last step is EDM's Euler step (it was 0/0). The model's
   * flow is the identity (data N(0, C): C grad log p_t = -x), so the state moves by the
   * solver's error only */
  s = csde_run_default_settings();
  s.process = "pf-ode";
  s.solver = "edm-heun";
  s.steps = 20;
  s.t_end = 0;
  csde_run *r = NULL;
  size_t shape[1] = {3};
  double x[24], x0[24];
  csde_solve_stats st;
  int rc = csde_run_alloc(&r, &s, C, S, M, 2, 1, shape, &err);
  if (!rc) rc = csde_run_prior(r, x, &err);
  memcpy(x0, x, sizeof x);
  if (!rc) rc = csde_run_exec(r, x, NULL, NULL, &st, &err);
  double d = 0, m = 0;
  for (int i = 0; i < 24; i++) {
    d = fmax(d, fabs(x[i] - x0[i]));
    m = fmax(m, fabs(x0[i]));
  }
  ok(rc == 0 && d <= 0.05 * m && st.nfe == 39,
     "edm-heun to t_end = 0: finite, within %.3g of the exact (identity) flow, 39 NFE (the "
     "last step one) (rc %d, nfe %zu: %s)", d / m, rc, st.nfe, rc ? err.msg : "");
  csde_run_free(r);
  csde_schedule_free(stiff);
}

/* Issue 23, item 17: an explicit solver that blows up fails (CSDE_EUNSTABLE) instead of
 * passing its state on; the same process with steps small enough passes. */
static int count_saves(size_t step, double t, const double *x, void *user)
{
  (void)step;
  (void)t;
  (void)x;
  ++*(size_t *)user;
  return 0;
}

static int cscore_grow(double t, size_t batch, const double *x, double *out, void *user)
{
  (void)t;
  size_t n = batch * *(const size_t *)user;
  for (size_t i = 0; i < n; i++) out[i] = 1e3 * x[i];
  return 0;
}

static void blow_up(void)
{
  csde_schedule *stiff = NULL;
  csde_err err;
  csde_schedule_alloc(&stiff, "vp-linear:bmin=0.1,bmax=1e4", &err);
  size_t shape[1] = {3}, saves[2] = {0, 0}, steps[2] = {20, 10000};
  int rc[2];
  char msg[2][CSDE_MSG_MAX];
  const char *param[2] = {NULL, NULL};
  for (int i = 0; i < 2; i++) {
    csde_run_settings s = csde_run_default_settings();
    s.process = "forward-sde";
    s.steps = steps[i];
    s.seed = 3;
    csde_run *r = NULL;
    double x[24];
    csde_solve_stats st;
    csde_err_clear(&err);
    rc[i] = csde_run_alloc(&r, &s, C, stiff, M, 2, 1, shape, &err);
    for (int j = 0; j < 24; j++) x[j] = 0.5 * sin(j); /* data: max |x| < 1 */
    csde_run_hooks h = {count_saves, NULL, &saves[i], NULL, NULL};
    if (!rc[i]) rc[i] = csde_run_exec(r, x, NULL, &h, &st, &err);
    snprintf(msg[i], sizeof msg[i], "%s", err.msg);
    param[i] = err.param;
    csde_run_free(r);
  }
  /* h beta(1) = 1e4 / 20 = 500: the linear part's factor |1 - h beta / 2| is far above 1 */
  ok(rc[0] == CSDE_EUNSTABLE && param[0] && !strcmp(param[0], CSDE_PARAM_STEPS) &&
         strstr(msg[0], "the state at step 20 (t = 1) grew to max |x| = ") &&
         strstr(msg[0], "beyond 1000 times the process's scale 1 + ") &&
         strstr(msg[0], "|h| beta(t) reaches 500 on its grid") && saves[0] == 0 &&
         !strstr(msg[0], "--"),
     "forward-sde, vp-linear:bmax=1e4, 20 em steps: CSDE_EUNSTABLE, param steps, the final "
     "state not saved (rc %d, %zu saved: \"%s\")", rc[0], saves[0], msg[0]);
  ok(rc[1] == 0 && saves[1] == 1, "... with 10000 steps (h beta <= 1) it passes (rc %d: %s)",
     rc[1], msg[1]);
  /* growth the model makes on small steps is not the step size's: C grad log p = 1e3 x
   * on the reverse SDE, 20 steps (|h| beta <= 1), grows x ~ 200-fold a step and passes */
  csde_model *grow = NULL;
  csde_model_alloc(&grow, "grow", cscore_grow, CSDE_OUT_CSCORE, &per_sample, NULL, &err);
  csde_run_settings s = csde_run_default_settings();
  s.steps = 20;
  csde_run *r = NULL;
  double x[24], m = 0;
  csde_solve_stats st;
  int rg = csde_run_alloc(&r, &s, C, S, grow, 2, 1, shape, &err);
  if (!rg) rg = csde_run_prior(r, x, &err);
  if (!rg) rg = csde_run_exec(r, x, NULL, NULL, &st, &err);
  for (int j = 0; j < 24; j++) m = fmax(m, fabs(x[j]));
  ok(rg == 0 && m > 1e20 && isfinite(m),
     "a model that makes the state grow to %.3g on steps with |h| beta <= 1: not judged "
     "(rc %d: %s)", m, rg, rg ? err.msg : "");
  csde_run_free(r);
  csde_model_free(grow);
  ok(!strcmp(csde_strerror(CSDE_EUNSTABLE),
             "the state grew far beyond the process's scale (unstable steps)"),
     "csde_strerror(CSDE_EUNSTABLE)");
  csde_schedule_free(stiff);
}

/* Issue 23, item 12: the run's memory, estimated before anything large is allocated and
 * compared with max_memory (the tests do not depend on the machine's memory). */
static int alloc_mem(const csde_run_settings *s, csde_run_memory *m, csde_err *err)
{
  csde_run *r = NULL;
  size_t shape[1] = {3};
  csde_err_clear(err);
  int st = csde_run_alloc(&r, s, C, S, M, 2, 1, shape, err);
  if (!st) *m = *csde_run_memory_of(r);
  csde_run_free(r);
  return st;
}

static void memory(void)
{
  const size_t SB = 2 * 4 * 3 * sizeof(double); /* a state: batch 2, tau 4, D 3 */
  const size_t ws = csde_cov_ws_size(C, 3, 1);
  csde_run_memory m;
  csde_err err;
  /* em on the reverse SDE: the caller's state and the model's output (em takes the drift
   * in parts); workspaces for the noise and the prior draw; the writer's float32 half */
  csde_run_settings s = csde_run_default_settings();
  s.steps = 8;
  int st = alloc_mem(&s, &m, &err);
  ok(st == 0 && m.states == 2 * SB && m.noise == 0 && m.workspaces == 2 * ws &&
         m.writer == SB / 2 && m.saved == 0 && ws > 0 &&
         m.total == m.states + m.workspaces + m.writer,
     "em, reverse SDE: states 2 x %zu B, workspaces 2 x %zu B, writer %zu B (got %zu, %zu, "
     "%zu; total %zu)", SB, ws, SB / 2, m.states, m.workspaces, m.writer, m.total);
  /* path noise on 8 = 2^3 steps: the walk's k + 2 + 3 = 8 pairs and 2 increments of
   * batch x noise dim (4) x D values, and dW */
  s.noise = "path";
  st = alloc_mem(&s, &m, &err);
  ok(st == 0 && m.states == 3 * SB && m.noise == (2 * 8 + 2) * SB,
     "em, path noise on 8 steps: states 3 x %zu B, the tree 18 x %zu B (got %zu, %zu)", SB, SB,
     m.states, m.noise);
  /* rk45 on the PF-ODE: x, its 3 loop buffers and GSL's 8 stages; keep_saved with every:2
   * on 8 steps keeps at most 8/2 + 2 states */
  s = csde_run_default_settings();
  s.process = "pf-ode";
  s.solver = "rk45";
  s.steps = 8;
  s.save = "every:2";
  s.keep_saved = 1;
  st = alloc_mem(&s, &m, &err);
  ok(st == 0 && m.states == 12 * SB && m.saved == 6 * SB,
     "rk45, pf-ode: states 12 x %zu B, 6 saved states kept (got %zu, %zu)", SB, m.states,
     m.saved);
  /* refused above max_memory, naming both figures; SIZE_MAX turns the check off */
  s = csde_run_default_settings();
  s.steps = 8;
  s.max_memory = 500;
  st = alloc_mem(&s, &m, &err);
  ok(st == CSDE_ENOMEM && err.param && !strcmp(err.param, CSDE_PARAM_SIZE) &&
         strstr(err.msg, "the run needs ") && strstr(err.msg, "(states 384 B, ") &&
         strstr(err.msg, "but 500 B are available (max_memory)"),
     "max_memory 500: CSDE_ENOMEM, param size, \"%s\"", err.msg);
  s.max_memory = SIZE_MAX;
  st = alloc_mem(&s, &m, &err);
  ok(st == 0 && m.available == SIZE_MAX, "max_memory SIZE_MAX: no check (%d)", st);
  /* before any object: 1e8 frames of 1e8 pixels, refused at once from the sizes alone */
  s = csde_run_default_settings();
  size_t big[1] = {100000000};
  double t0 = csde_now_for_tests();
  st = csde_run_check_memory(&s, NULL, NULL, 4, 100000000, 1, big, 0, &m, &err);
  ok(st == CSDE_ENOMEM && m.states == (size_t)2 * 4 * 100000000 * 100000000 * 8 &&
         strstr(err.msg, "the run needs 800 PB (states 640 PB, writer 160 PB), but ") &&
         csde_now_for_tests() - t0 < 1,
     "csde_run_check_memory: 4 x 1e8 x 1e8 values refused from the sizes (\"%s\")", err.msg);
  s.max_memory = 10000;
  size_t small[1] = {3};
  st = csde_run_check_memory(&s, NULL, NULL, 2, 4, 1, small, 20000, &m, &err);
  ok(st == CSDE_ENOMEM && m.extra == 20000 && strstr(err.msg, "other 20 kB"),
     "csde_run_check_memory counts the caller's extra bytes (\"%s\")", err.msg);
}

/* The save hook's record. */
typedef struct {
  size_t n, steps[64], last_step;
  double t[64];
  int stop_at; /* the step hook stops after this step (-1: never) */
  size_t step_calls;
} record;

static int on_save(size_t step, double t, const double *x, void *user)
{
  (void)x;
  record *r = user;
  if (r->n < 64) {
    r->steps[r->n] = step;
    r->t[r->n] = t;
  }
  r->n++;
  return 0;
}

static int on_step(size_t step, double t, size_t saved, int final, void *user)
{
  (void)t;
  (void)saved;
  (void)final;
  record *r = user;
  r->step_calls++;
  r->last_step = step;
  return r->stop_at >= 0 && step == (size_t)r->stop_at;
}

/* Run with settings s from the prior; the record, the final state and the stats. */
static int run_with(const csde_run_settings *s, record *rec, double *x, csde_solve_stats *st,
                    csde_run **keep)
{
  csde_run *r = NULL;
  size_t shape[1] = {3};
  csde_err err;
  int rc = csde_run_alloc(&r, s, C, S, M, 2, 1, shape, &err);
  if (!rc) rc = csde_run_prior(r, x, &err);
  csde_run_hooks h = {on_save, on_step, rec, NULL, NULL};
  if (!rc) rc = csde_run_exec(r, x, NULL, &h, st, &err);
  if (rc) printf("# run: %s\n", err.msg);
  if (keep)
    *keep = r;
  else
    csde_run_free(r);
  return rc;
}

static void save_plans(void)
{
  double x[24], y[24];
  csde_solve_stats st;
  /* every:3 on 10 steps: 0, 3, 6, 9 and the end */
  csde_run_settings s = csde_run_default_settings();
  s.steps = 10;
  s.save = "every:3";
  s.seed = 7;
  record rec = {0};
  rec.stop_at = -1;
  csde_run *r = NULL;
  int rc = run_with(&s, &rec, x, &st, &r);
  size_t want[] = {0, 3, 6, 9, 10};
  int same = rc == 0 && rec.n == 5;
  for (size_t i = 0; same && i < 5; i++) same = rec.steps[i] == want[i];
  ok(same && csde_run_capacity(r) == 5 && csde_run_nsteps(r) == 10,
     "every:3 on 10 steps saves steps 0, 3, 6, 9, 10 (capacity %zu, %zu saved)",
     r ? csde_run_capacity(r) : 0, rec.n);
  ok(rec.t[0] == 1.0 && rec.t[4] == 1e-3 && rec.step_calls == 10,
     "their times run from T = 1 to eps = 1e-3; the step hook saw every step (%zu)",
     rec.step_calls);
  /* the same run as a bare solve: the same bits */
  const csde_problem *P = csde_run_problem(r);
  csde_solve_params par = csde_solve_default_params();
  par.solver = "em";
  par.steps = 10;
  par.seed = 7;
  csde_err err;
  csde_rng_key key = {7, (uint64_t)1 << 63};
  csde_cov_ws *ws = NULL;
  csde_cov_ws_alloc(&ws, C, 3, 1, &err);
  csde_cov_sample(C, ws, key, 0, 2, y, &err);
  csde_cov_ws_free(ws);
  csde_solve_stats st2;
  rc = csde_solve(P, &par, y, &st2, &err);
  ok(rc == 0 && !memcmp(x, y, sizeof x) && st.nfe == st2.nfe,
     "the run's final state is csde_solve's from the same prior draw, bit for bit");
  csde_run_free(r);

  /* times on a fixed grid: the nearest nodes, and the end */
  s.save = "times:0.5,0.9,1";
  memset(&rec, 0, sizeof rec);
  rec.stop_at = -1;
  rc = run_with(&s, &rec, x, &st, &r);
  /* the grid t_k = 1 - k (1 - 1e-3) / 10: 0.9 is nearest node 1, 0.5 node 5, 1 node 0 */
  same = rc == 0 && rec.n == 4 && rec.steps[0] == 0 && rec.steps[1] == 1 && rec.steps[2] == 5 &&
         rec.steps[3] == 10;
  ok(same && csde_run_capacity(r) == 4, "times:0.5,0.9,1 saves nodes 0, 1, 5 and the end");
  csde_run_free(r);

  /* adaptive PF-ODE: the solver lands on the save times exactly */
  s = csde_run_default_settings();
  s.process = "pf-ode";
  s.rtol = s.atol = 1e-8;
  s.save = "times:0.25,0.75";
  memset(&rec, 0, sizeof rec);
  rec.stop_at = -1;
  rc = run_with(&s, &rec, x, &st, &r);
  ok(rc == 0 && rec.n == 3 && rec.t[0] == 0.75 && rec.t[1] == 0.25 && rec.t[2] == 1e-3 &&
         csde_run_capacity(r) == 3 && csde_run_nsteps(r) == 0 &&
         !strcmp(csde_run_settings_of(r)->solver, "rk45"),
     "adaptive (rk45 by default): states at t = 0.75, 0.25 exactly and the end (%zu saved)",
     rec.n);
  csde_run_free(r);

  /* a step hook that stops the run: stopped, and the status says so */
  s = csde_run_default_settings();
  s.steps = 20;
  s.save = "every:1";
  memset(&rec, 0, sizeof rec);
  rec.stop_at = 4;
  rc = run_with(&s, &rec, x, &st, NULL);
  char status[600];
  csde_run_status(rc, &st, NULL, "interrupted", status, sizeof status);
  ok(rc == 0 && st.stopped && rec.n == 5 && rec.last_step == 4 &&
         !strcmp(status, "failed: interrupted at step 4"),
     "a step hook stops the run after step 4: 5 states saved, \"%s\"", status);
  st.stopped = 0;
  csde_run_status(0, &st, NULL, NULL, status, sizeof status);
  ok(!strcmp(status, "ok"), "a finished run's status is \"ok\"");
}

static int handler_calls = 0;
static herr_t count_handler(hid_t stack, void *data)
{
  (void)stack;
  (void)data;
  handler_calls++;
  return 0;
}

static int handler_kept(int *token)
{
  H5E_auto2_t fn = NULL;
  void *data = NULL;
  H5Eget_auto2(H5E_DEFAULT, &fn, &data);
  return fn == count_handler && data == token && handler_calls == 0;
}

static void trajectory_writer(void)
{
  static int token;
  H5Eset_auto2(H5E_DEFAULT, count_handler, &token);
  char path[128];
  snprintf(path, sizeof path, "%s/run.h5", tmpdir);
  csde_run_settings s = csde_run_default_settings();
  s.steps = 6;
  s.save = "every:2";
  csde_run *r = NULL;
  size_t shape[1] = {3};
  csde_err err;
  double x[24];
  int rc = csde_run_alloc(&r, &s, C, S, M, 2, 1, shape, &err);
  if (!rc) rc = csde_run_prior(r, x, &err);
  csde_traj *w = NULL;
  csde_traj_options o = {0, 0, 0, NULL};
  if (!rc) rc = csde_traj_create(&w, path, r, &o, &err);
  csde_solve_stats st;
  if (!rc) rc = csde_run_exec(r, x, w, NULL, &st, &err);
  size_t n = w ? csde_traj_count(w) : 0;
  char status[600];
  csde_run_status(rc, &st, &err, NULL, status, sizeof status);
  int cs = w ? csde_traj_close(w, &st, status, &err) : -1;
  ok(rc == 0 && cs == 0 && n == 4 && access(path, R_OK) == 0,
     "a run writes its 4 states (every:2 on 6 steps) to the file");
  ok(handler_kept(&token), "the caller's HDF5 error handler is kept (called %d times)",
     handler_calls);
  /* an existing file without overwrite: refused, the file kept */
  w = NULL;
  int s2 = csde_traj_create(&w, path, r, &o, &err);
  ok(s2 == CSDE_EIO && !w && strstr(err.msg, "exists") && access(path, R_OK) == 0,
     "an existing file without overwrite is refused (\"%s\")", err.msg);
  ok(handler_kept(&token), "... and the handler is kept (called %d times)", handler_calls);
  /* read back: n_saved 4, status ok */
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  hid_t a = H5Aopen_by_name(f, "/trajectory", "n_saved", H5P_DEFAULT, H5P_DEFAULT);
  long long ns = -1;
  H5Aread(a, H5T_NATIVE_LLONG, &ns);
  H5Aclose(a);
  H5Fclose(f);
  ok(ns == 4, "the file counts 4 saved states (n_saved %lld)", ns);
  csde_run_free(r);
  unlink(path);
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

/* ---- the check of the model's first answer (csde_run_warning) ---- */

/* delta_hat = sqrt(1 - abar) x: the noise answer of N(0, C) data (x ~ N(0, C) at any t) */
static int noise_answer(const csde_model_ctx *c, const double *x, double *out, void *user)
{
  (void)user;
  size_t n = c->batch * c->tau * c->D;
  for (size_t i = 0; i < n; i++) out[i] = sqrt(1 - c->abar) * x[i];
  return 0;
}

typedef struct {
  int calls;
  char msg[CSDE_MSG_MAX];
} warn_rec;

static int on_warn(const char *msg, void *user)
{
  warn_rec *w = user;
  w->calls++;
  snprintf(w->msg, sizeof w->msg, "%s", msg);
  return 0;
}

static int count_step(size_t step, double t, size_t saved, int final, void *user)
{
  (void)step, (void)t, (void)saved, (void)final, (void)user;
  return 0;
}

/* /stats warnings of a file ("?" if unreadable). */
static void stats_warnings(const char *path, char *buf, size_t len)
{
  snprintf(buf, len, "?");
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  hid_t a = f >= 0 ? H5Aopen_by_name(f, "/stats", "warnings", H5P_DEFAULT, H5P_DEFAULT) : -1;
  hid_t t = a >= 0 ? H5Aget_type(a) : -1;
  char *v = NULL;
  if (t >= 0 && H5Tis_variable_str(t) > 0 && H5Aread(a, t, &v) >= 0 && v) {
    snprintf(buf, len, "%s", v);
    H5free_memory(v);
  }
  if (t >= 0) H5Tclose(t);
  if (a >= 0) H5Aclose(a);
  if (f >= 0) H5Fclose(f);
}

static void first_answer(void)
{
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  const csde_model_output declared[2] = {CSDE_OUT_SCORE, CSDE_OUT_NOISE};
  for (int k = 0; k < 2; k++) {
    csde_model *Mn = NULL;
    csde_run *r = NULL;
    csde_traj *w = NULL;
    csde_err err;
    csde_err_clear(&err);
    size_t shape[2] = {2, 3}, batch = 4; /* B D tr C / lambda_max(C) > 16: judged */
    double x[4 * 4 * 6];
    char path[128], got[CSDE_MSG_MAX];
    snprintf(path, sizeof path, "%s/warn%d.h5", tmpdir, k);
    csde_run_settings s = csde_run_default_settings();
    s.steps = 20;
    s.seed = 3;
    csde_traj_options o = {0, 0, 0, NULL};
    warn_rec wr = {0, ""};
    csde_run_hooks h = {NULL, count_step, &wr, on_warn, NULL};
    csde_solve_stats st;
    int rc = csde_model_alloc_ctx(&Mn, "noisy", noise_answer, declared[k], NULL, NULL, &err);
    if (!rc) rc = csde_run_alloc(&r, &s, C, S, Mn, batch, 2, shape, &err);
    if (!rc) rc = csde_run_prior(r, x, &err);
    if (!rc) rc = csde_traj_create(&w, path, r, &o, &err);
    ok(rc == 0 && !*csde_run_warning(r), "no warning before the run%s%s", rc ? ": " : "",
       rc ? err.msg : "");
    if (!rc) rc = csde_run_exec(r, x, w, &h, &st, &err);
    char status[CSDE_MSG_MAX + 64];
    csde_run_status(rc, &st, &err, NULL, status, sizeof status);
    if (w) csde_traj_close(w, &st, status, &err);
    stats_warnings(path, got, sizeof got);
    const char *msg = r ? csde_run_warning(r) : "";
    if (k == 0) {
      ok(strstr(msg, "model 'noisy' declares its answer score") &&
             strstr(msg, "it looks like noise"),
         "a noise answer declared a score: the warning names noise ('%s')", msg);
      ok(wr.calls == 1 && !strcmp(wr.msg, msg), "the warn hook gets it once (%d calls)",
         wr.calls);
      ok(!strcmp(got, msg), "/stats warnings records it");
    } else {
      ok(!*msg && wr.calls == 0, "the same answer declared noise: no warning ('%s')", msg);
      ok(!strcmp(got, ""), "/stats warnings is '' (got '%s')", got);
    }
    csde_run_free(r);
    csde_model_free(Mn);
    unlink(path);
  }
}

/* The solver a run takes when its settings name none: one rule (csde_run_default_solver),
 * the one csde_run_alloc resolves and `corrsde sample` prints. */
static void default_solvers(void)
{
  static const struct {
    const char *process;
    int adaptive;
    const char *want;
  } cases[] = {
    {"forward-sde", 0, "em"},   {"reverse-sde", 0, "em"},     {"pf-ode", 0, "em"},
    {"pf-ode-encode", 0, "em"}, {"forward-sde", 1, "heun"},   {"reverse-sde", 1, "heun"},
    {"pf-ode", 1, "rk45"},      {"pf-ode-encode", 1, "rk45"}, {"ddpm", 0, "ddpm"},
    {"ddim", 0, "ddim"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    csde_run_process p;
    csde_err err;
    const char *got = "?";
    if (!csde_run_process_parse(cases[i].process, &p, NULL, &err))
      got = csde_run_default_solver(p, cases[i].adaptive);
    ok(!strcmp(got, cases[i].want), "default solver of %s%s: %s (want %s)", cases[i].process,
       cases[i].adaptive ? " (adaptive)" : "", got, cases[i].want);
    if (p == CSDE_RUN_DDPM) continue; /* vp-linear is not discrete */
    csde_run_settings s = csde_run_default_settings();
    s.process = cases[i].process;
    if (cases[i].adaptive) s.rtol = 1e-3;
    if (cases[i].adaptive && !strcmp(cases[i].want, "heun")) s.noise = "path";
    csde_run *r = NULL;
    size_t shape[1] = {3};
    int st = csde_run_alloc(&r, &s, C, S, M, 2, 1, shape, &err);
    const char *used = st ? err.msg : csde_run_settings_of(r)->solver;
    ok(!st && !strcmp(used, cases[i].want), "a run of %s%s with no solver takes %s (want %s)",
       cases[i].process, cases[i].adaptive ? " (adaptive)" : "", used, cases[i].want);
    csde_run_free(r);
  }
}

int main(void)
{
  snprintf(tmpdir, sizeof tmpdir, "/tmp/csde_test_run_XXXXXX");
  if (!mkdtemp(tmpdir)) {
    perror("mkdtemp");
    return 2;
  }
  csde_err err;
  if (csde_cov_alloc(&C, "ar1:rho=0.8", 4, NULL, &err) ||
      csde_schedule_alloc(&S, "vp-linear", &err) ||
      csde_schedule_alloc(&Sd, "ddpm-linear:n=10", &err) ||
      csde_model_alloc(&M, "exact", cscore, CSDE_OUT_CSCORE, &per_sample, NULL, &err)) {
    printf("Bail out! %s\n", err.msg);
    return 1;
  }
  setting_errors();
  default_solvers();
  span_errors();
  blow_up();
  memory();
  save_plans();
  trajectory_writer();
  first_answer();
  csde_model_free(M);
  csde_schedule_free(S);
  csde_schedule_free(Sd);
  csde_cov_free(C);
  rmdir(tmpdir);
  return tap_done();
}
