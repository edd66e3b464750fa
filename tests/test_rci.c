/* TAP test of reverse communication (corrsde/run.h, "reverse communication"): for every
 * solver and sampler (multistage, multistep, SDEs, adaptive), the loop in which the caller
 * evaluates the exact gaussian model gives bit for bit the states of csde_run_exec with the
 * gaussian model as a callback: the final state, every step's state (STEP against a save
 * hook with every:1) and the NFE. Then the out-of-turn calls, an early csde_run_end at an
 * EVAL and at a STEP, a model status != 0 given back, csde_run_free of a run still going,
 * and the trajectory file of an RCI run. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "corrsde/corrsde.h"
#include "tap.h"

#define TAU 4
#define DPIX 3
#define BATCH 2
#define NSTATE (BATCH * TAU * DPIX)
#define MAXSAVE 4096

static csde_cov *C;
static csde_schedule *S, *Sd;
static csde_model *G, *E; /* the gaussian model, the external one (cscore) */

/* every state the save hook sees, by step */
typedef struct {
  double x[MAXSAVE][NSTATE];
  int64_t step[MAXSAVE];
  size_t n;
} saved_states;
static saved_states cb_saved, rci_steps;

static int keep(size_t step, double t, const double *x, void *user)
{
  (void)t;
  saved_states *s = user;
  if (s->n == MAXSAVE) return CSDE_ENOMEM;
  memcpy(s->x[s->n], x, sizeof s->x[0]);
  s->step[s->n++] = (int64_t)step;
  return 0;
}

typedef struct {
  const char *name, *process, *solver, *noise;
  double rtol;
  size_t steps;
  int discrete;
  int threads;
} rci_case;

static csde_run_settings settings_of(const rci_case *c)
{
  csde_run_settings s = csde_run_default_settings();
  s.process = c->process;
  s.solver = c->solver;
  s.noise = c->noise ? c->noise : "stream";
  s.steps = c->steps;
  s.rtol = s.atol = c->rtol;
  s.seed = 7;
  s.save = "every:1";
  s.threads = c->threads ? c->threads : 1;
  return s;
}

/* The start state: the prior, or data for the forward processes. */
static int start_state(const csde_run *r, const rci_case *c, double *x, csde_err *err)
{
  if (!strcmp(c->process, "forward-sde") || !strcmp(c->process, "pf-ode-encode")) {
    csde_rng_key key = {11, 3};
    return csde_model_gaussian_sample(G, 0.0, key, 0, BATCH, x, err);
  }
  return csde_run_prior(r, x, err);
}

static void one_case(const rci_case *c)
{
  csde_err err;
  csde_run_settings s = settings_of(c);
  size_t shape[1] = {DPIX};
  const csde_schedule *sched = c->discrete ? Sd : S;
  csde_run *ra = NULL, *rb = NULL;
  static double xa[NSTATE], xb[NSTATE];
  int st = csde_run_alloc(&ra, &s, C, sched, G, BATCH, 1, shape, &err);
  if (!st) st = csde_run_alloc(&rb, &s, C, sched, E, BATCH, 1, shape, &err);
  if (!st) st = start_state(ra, c, xa, &err);
  if (st) {
    ok(0, "%s: setup failed: %s", c->name, err.msg);
    csde_run_free(ra);
    csde_run_free(rb);
    return;
  }
  memcpy(xb, xa, sizeof xa);

  /* the callback path */
  cb_saved.n = 0;
  csde_solve_stats sa, sb;
  csde_run_hooks h = {.save = keep, .user = &cb_saved};
  int rca = csde_run_exec(ra, xa, NULL, &h, &sa, &err);

  /* the reverse-communication path: the caller evaluates the gaussian model */
  rci_steps.n = 0;
  size_t evals = 0, order_bad = 0, mine = 0;
  csde_rci q;
  int rcb = csde_run_begin(rb, xb, NULL, &err);
  while (!rcb && !(rcb = csde_run_next(rb, &q, &err)) && q.what != CSDE_RCI_DONE) {
    if (q.what == CSDE_RCI_EVAL) {
      evals++;
      /* the request points into the run's own memory, never the caller's buffer unless
       * the solver evaluates at the state itself */
      mine += q.out == xb;
      rcb = csde_run_give(rb, csde_model_call_ctx(G, q.ctx, q.x, q.out), &err);
    } else if (q.what == CSDE_RCI_STEP) {
      if (q.x != xb) order_bad++; /* the state is the caller's x, updated in place */
      keep(q.step, q.t, q.x, &rci_steps);
    }
  }
  int rce = csde_run_end(rb, &sb, &err);
  int same = rca == 0 && rcb == 0 && rce == 0 && !memcmp(xa, xb, sizeof xa);
  /* every saved state past the start against the STEP of that step */
  size_t k0 = cb_saved.n && cb_saved.step[0] == 0, diff = 0;
  int counts = cb_saved.n - k0 == rci_steps.n;
  for (size_t i = 0; counts && i < rci_steps.n; i++)
    diff += cb_saved.step[i + k0] != rci_steps.step[i] ||
            memcmp(cb_saved.x[i + k0], rci_steps.x[i], sizeof cb_saved.x[0]) != 0;
  double maxd = 0;
  for (size_t i = 0; i < NSTATE; i++) maxd = fmax(maxd, fabs(xa[i] - xb[i]));
  ok(same && counts && !diff && !order_bad && !mine && sa.nfe == sb.nfe && sb.nfe == evals &&
         sa.steps == sb.steps && sa.rejected == sb.rejected,
     "%s: RCI == callback bit for bit (final max |diff| %.3g, %zu step states, %zu differ; "
     "nfe %zu == %zu, %zu EVALs; steps %zu, rejected %zu)",
     c->name, maxd, rci_steps.n, diff, sa.nfe, sb.nfe, evals, sb.steps, sb.rejected);
  if (rca || rcb || rce) printf("# statuses %d %d %d: %s\n", rca, rcb, rce, err.msg);
  csde_run_free(ra);
  csde_run_free(rb);
}

static const rci_case cases[] = {
    {"pf-ode euler", "pf-ode", "euler", NULL, 0, 12, 0, 0},
    {"pf-ode heun", "pf-ode", "heun", NULL, 0, 12, 0, 0},
    {"pf-ode rk45 fixed", "pf-ode", "rk45", NULL, 0, 6, 0, 0},
    {"pf-ode rkck fixed", "pf-ode", "rkck", NULL, 0, 6, 0, 0},
    {"pf-ode rk8pd fixed", "pf-ode", "rk8pd", NULL, 0, 4, 0, 0},
    {"pf-ode dopri5 fixed", "pf-ode", "dopri5", NULL, 0, 6, 0, 0},
    {"pf-ode rk45 adaptive", "pf-ode", "rk45", NULL, 1e-6, 0, 0, 0},
    {"pf-ode rkck adaptive", "pf-ode", "rkck", NULL, 1e-6, 0, 0, 0},
    {"pf-ode rk8pd adaptive", "pf-ode", "rk8pd", NULL, 1e-8, 0, 0, 0},
    {"pf-ode dopri5 adaptive", "pf-ode", "dopri5", NULL, 1e-6, 0, 0, 0},
    {"pf-ode dpmpp2m", "pf-ode", "dpmpp2m", NULL, 0, 10, 0, 0},
    {"pf-ode dpmpp3m", "pf-ode", "dpmpp3m", NULL, 0, 10, 0, 0},
    {"pf-ode unipc", "pf-ode", "unipc", NULL, 0, 10, 0, 0},
    {"pf-ode unipc3", "pf-ode", "unipc3", NULL, 0, 10, 0, 0},
    {"pf-ode ipndm", "pf-ode", "ipndm", NULL, 0, 10, 0, 0},
    {"pf-ode edm-heun", "pf-ode", "edm-heun", NULL, 0, 10, 0, 0},
    {"pf-ode edm-heun churn", "pf-ode", "edm-heun:churn=40", NULL, 0, 10, 0, 0},
    {"pf-ode-encode dpmpp2m", "pf-ode-encode", "dpmpp2m", NULL, 0, 10, 0, 0},
    {"ddim", "ddim", NULL, NULL, 0, 10, 0, 0},
    {"ddim eta 0.5", "ddim:eta=0.5", NULL, NULL, 0, 10, 0, 0},
    {"ddpm", "ddpm", NULL, NULL, 0, 0, 1, 0},
    {"reverse-sde em", "reverse-sde", "em", NULL, 0, 20, 0, 0},
    {"reverse-sde heun", "reverse-sde", "heun", NULL, 0, 12, 0, 0},
    {"reverse-sde sra1", "reverse-sde", "sra1", NULL, 0, 12, 0, 0},
    {"reverse-sde euler-ancestral", "reverse-sde", "euler-ancestral", NULL, 0, 12, 0, 0},
    {"reverse-sde dpmpp2m-sde", "reverse-sde", "dpmpp2m-sde", NULL, 0, 12, 0, 0},
    {"reverse-sde em path", "reverse-sde", "em", "path", 0, 16, 0, 0},
    {"reverse-sde em adaptive path", "reverse-sde", "em", "path", 1e-2, 0, 0, 0},
    {"reverse-sde heun adaptive path", "reverse-sde", "heun", "path", 1e-3, 0, 0, 0},
    {"reverse-sde sra1 adaptive path", "reverse-sde", "sra1", "path", 1e-3, 0, 0, 0},
    {"forward-sde em (no model calls)", "forward-sde", "em", NULL, 0, 8, 0, 0},
    {"pf-ode dpmpp2m, 2 threads", "pf-ode", "dpmpp2m", NULL, 0, 10, 0, 2},
    {"reverse-sde dpmpp2m-sde, 2 threads", "reverse-sde", "dpmpp2m-sde", NULL, 0, 12, 0, 2},
};

/* ---- misuse, early ends, failures ---- */

static csde_run *make_run(const csde_model *M, const char *solver, const char *save)
{
  csde_err err;
  csde_run_settings s = csde_run_default_settings();
  s.process = "pf-ode";
  s.solver = solver;
  s.steps = 6;
  if (save) s.save = save;
  size_t shape[1] = {DPIX};
  csde_run *r = NULL;
  if (csde_run_alloc(&r, &s, C, S, M, BATCH, 1, shape, &err)) {
    printf("# make_run: %s\n", err.msg);
    return NULL;
  }
  return r;
}

static void misuse(void)
{
  csde_err err;
  csde_rci q;
  csde_solve_stats st;
  static double x[NSTATE];
  csde_run *r = make_run(E, "heun", NULL);
  if (!r) {
    ok(0, "misuse: setup");
    return;
  }
  csde_run_prior(r, x, &err);
  ok_status(csde_run_exec(r, x, NULL, NULL, &st, &err), CSDE_EINVAL, err.msg, "is external",
            "csde_run_exec on an external model: EINVAL");
  ok_status(csde_run_next(r, &q, &err), CSDE_EINVAL, err.msg, "csde_run_begin first",
            "csde_run_next before csde_run_begin: EINVAL");
  ok_status(csde_run_give(r, 0, &err), CSDE_EINVAL, err.msg, "csde_run_begin first",
            "csde_run_give before csde_run_begin: EINVAL");
  ok_status(csde_run_end(r, &st, &err), CSDE_EINVAL, err.msg, "csde_run_begin first",
            "csde_run_end before csde_run_begin: EINVAL");
  ok(csde_run_begin(r, x, NULL, &err) == 0, "csde_run_begin");
  ok_status(csde_run_begin(r, x, NULL, &err), CSDE_EINVAL, err.msg, "already begun",
            "csde_run_begin twice: EINVAL");
  ok_status(csde_run_give(r, 0, &err), CSDE_EINVAL, err.msg, "no evaluation is pending",
            "csde_run_give before any request: EINVAL");
  int rc = csde_run_next(r, &q, &err);
  ok(rc == 0 && q.what == CSDE_RCI_EVAL && q.ctx && q.ctx->batch == BATCH && q.step == 0,
     "the first request is an EVAL at step 0 (t = %g)", q.t);
  ok_status(csde_run_next(r, &q, &err), CSDE_EINVAL, err.msg, "an answer is owed",
            "csde_run_next with an answer owed: EINVAL");
  ok_status(csde_run_exec(r, x, NULL, NULL, &st, &err), CSDE_EINVAL, err.msg, "in progress",
            "csde_run_exec during a reverse-communication run: EINVAL");
  ok(csde_run_give(r, csde_model_call_ctx(G, q.ctx, q.x, q.out), &err) == 0, "give");
  ok_status(csde_run_give(r, 0, &err), CSDE_EINVAL, err.msg, "no evaluation is pending",
            "csde_run_give twice: EINVAL");
  /* an early end at the next EVAL (heun's second stage) */
  rc = csde_run_next(r, &q, &err);
  ok(rc == 0 && q.what == CSDE_RCI_EVAL, "heun's second evaluation of step 0");
  rc = csde_run_end(r, &st, &err);
  ok(rc == 0 && st.stopped, "csde_run_end at a pending EVAL: the run stops (rc %d, stopped "
                            "%d, nfe %zu)", rc, st.stopped, st.nfe);
  ok_status(csde_run_next(r, &q, &err), CSDE_EINVAL, err.msg, "csde_run_begin first",
            "csde_run_next after csde_run_end: EINVAL");

  /* the run is reusable: begin again, end at a STEP */
  csde_run_prior(r, x, &err);
  rc = csde_run_begin(r, x, NULL, &err);
  size_t steps_seen = 0;
  while (!rc && !(rc = csde_run_next(r, &q, &err)) && q.what != CSDE_RCI_DONE) {
    if (q.what == CSDE_RCI_EVAL) rc = csde_run_give(r, csde_model_call_ctx(G, q.ctx, q.x, q.out), &err);
    else if (++steps_seen == 2) break;
  }
  rc = csde_run_end(r, &st, &err);
  ok(rc == 0 && st.stopped && st.steps == 2, "csde_run_end at a STEP: stopped after %zu steps",
     st.steps);

  /* ended before the first csde_run_next */
  rc = csde_run_begin(r, x, NULL, &err);
  rc = rc ? rc : csde_run_end(r, &st, &err);
  ok(rc == 0 && st.stopped && st.nfe == 0, "csde_run_end right after csde_run_begin");

  /* a fatal model status */
  csde_run_prior(r, x, &err);
  rc = csde_run_begin(r, x, NULL, &err);
  rc = rc ? rc : csde_run_next(r, &q, &err);
  if (!rc && q.ctx->errmsg && q.ctx->errlen) snprintf(q.ctx->errmsg, q.ctx->errlen, "out of GPU");
  rc = rc ? rc : csde_run_give(r, -3, &err);
  rc = rc ? rc : csde_run_next(r, &q, &err);
  ok(rc == CSDE_EBADFUNC && q.what == CSDE_RCI_DONE && strstr(err.msg, "fatal code -3") &&
         strstr(err.msg, "out of GPU"),
     "a fatal status given: DONE, csde_run_next returns the run's failure: %s", err.msg);
  csde_err err2;
  int rc2 = csde_run_end(r, &st, &err2);
  ok(rc2 == CSDE_EBADFUNC && !strcmp(err.msg, err2.msg), "csde_run_end returns it again");

  /* csde_run_free of a run still going (valgrind/ASan: nothing leaked, nothing hangs) */
  rc = csde_run_begin(r, x, NULL, &err);
  rc = rc ? rc : csde_run_next(r, &q, &err);
  ok(rc == 0 && q.what == CSDE_RCI_EVAL, "begun, an EVAL pending");
  csde_run_free(r);
  ok(1, "csde_run_free with a run still going returns");

  /* the external model called as a callback fails */
  char msg[160] = "";
  csde_model_ctx c = {.t = 0.5, .batch = 1, .tau = TAU, .D = DPIX, .abar = NAN, .sigma = NAN,
                      .logsnr = NAN, .index = -1, .C = C, .sched = S, .errmsg = msg,
                      .errlen = sizeof msg, .ncond = 1};
  ok(csde_model_call_ctx(E, &c, x, x) == -1 && strstr(msg, "evaluated by the caller"),
     "the external model called outside a run: -1 (%s)", msg);
}

/* A model with a callback may be driven too: STEP and DONE only; the file of an RCI run
 * equals the file of csde_run_exec. */
static void traj_and_callback(void)
{
  csde_err err;
  csde_rci q;
  csde_solve_stats st;
  static double xa[NSTATE], xb[NSTATE];
  char pa[96], pb[96];
  snprintf(pa, sizeof pa, "/tmp/corrsde_rci_%ld_a.h5", (long)getpid());
  snprintf(pb, sizeof pb, "/tmp/corrsde_rci_%ld_b.h5", (long)getpid());
  csde_run *ra = make_run(G, "dpmpp2m", "every:2"), *rb = make_run(E, "dpmpp2m", "every:2");
  csde_traj *wa = NULL, *wb = NULL;
  csde_traj_options o = {0, 0, 1, NULL};
  if (!ra || !rb || csde_traj_create(&wa, pa, ra, &o, &err) ||
      csde_traj_create(&wb, pb, rb, &o, &err)) {
    ok(0, "traj: setup");
    return;
  }
  csde_run_prior(ra, xa, &err);
  memcpy(xb, xa, sizeof xa);
  int rca = csde_run_exec(ra, xa, wa, NULL, &st, &err);
  size_t na = csde_traj_count(wa);
  csde_traj_close(wa, &st, "ok", &err);
  int rc = csde_run_begin(rb, xb, wb, &err);
  while (!rc && !(rc = csde_run_next(rb, &q, &err)) && q.what != CSDE_RCI_DONE)
    if (q.what == CSDE_RCI_EVAL) rc = csde_run_give(rb, csde_model_call_ctx(G, q.ctx, q.x, q.out), &err);
  int rce = csde_run_end(rb, &st, &err);
  size_t nb = csde_traj_count(wb);
  csde_traj_close(wb, &st, "ok", &err);
  ok(!rca && !rc && !rce && na == nb && na == 4 && !memcmp(xa, xb, sizeof xa),
     "the trajectory file of an RCI run: %zu states as csde_run_exec's %zu", nb, na);
  remove(pa);
  remove(pb);

  /* the gaussian model as a callback, driven step by step */
  csde_run_prior(ra, xa, &err);
  memcpy(xb, xa, sizeof xa);
  rca = csde_run_exec(ra, xa, NULL, NULL, &st, &err);
  size_t evals = 0, steps = 0;
  rc = csde_run_begin(ra, xb, NULL, &err);
  while (!rc && !(rc = csde_run_next(ra, &q, &err)) && q.what != CSDE_RCI_DONE)
    evals += q.what == CSDE_RCI_EVAL, steps += q.what == CSDE_RCI_STEP;
  rce = csde_run_end(ra, &st, &err);
  ok(!rca && !rc && !rce && evals == 0 && steps == 6 && !memcmp(xa, xb, sizeof xa),
     "a callback model driven step by step: %zu STEPs, no EVAL, the same bits", steps);
  csde_run_free(ra);
  csde_run_free(rb);
}

/* argv[1] "nothreads": skip the cases with OpenMP teams (helgrind cannot see libgomp's
 * own synchronisation: `valgrind --tool=helgrind test_rci nothreads` then judges rci.c). */
int main(int argc, char **argv)
{
  const int nothreads = argc > 1 && !strcmp(argv[1], "nothreads");
  csde_err err;
  if (csde_cov_alloc(&C, "ar1:rho=0.8", TAU, NULL, &err) ||
      csde_schedule_alloc(&S, "vp-linear", &err) ||
      csde_schedule_alloc(&Sd, "ddpm-linear:n=20", &err) ||
      csde_model_gaussian_alloc(&G, C, S, DPIX, NULL, 0, NULL, &err) ||
      csde_model_alloc_external(&E, "caller", CSDE_OUT_CSCORE, &err)) {
    printf("Bail out! setup: %s\n", err.msg);
    return 1;
  }
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    if (nothreads && cases[i].threads > 1) continue;
    if (cases[i].discrete) { /* the gaussian model of the discrete schedule */
      csde_model *Gs = G;
      if (csde_model_gaussian_alloc(&G, C, Sd, DPIX, NULL, 0, NULL, &err)) {
        ok(0, "%s: %s", cases[i].name, err.msg);
        G = Gs;
        continue;
      }
      one_case(&cases[i]);
      csde_model_free(G);
      G = Gs;
    } else {
      one_case(&cases[i]);
    }
  }
  misuse();
  traj_and_callback();
  csde_model_free(G);
  csde_model_free(E);
  csde_schedule_free(Sd);
  csde_schedule_free(S);
  csde_cov_free(C);
  return tap_done();
}
