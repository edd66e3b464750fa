/* The convergence settings layer (corrsde/converge.h: csde_conv_settings,
 * csde_conv_resolve): the resolved params of the defaults, cosine's T = 0.999, each
 * process's default solvers and error, the t_end mapping of the forward and the reverse
 * processes, and the error (and the param it blames) of each bad setting. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "corrsde/corrsde.h"
#include "tap.h"

static csde_cov *C;
static csde_schedule *vp, *cosine;

/* Resolve s on vp (or cosine) with D = 16; the status, the plan kept in *pl. */
static int resolve(const csde_conv_settings *s, const csde_schedule *sched, csde_conv_plan *pl,
                   csde_err *err)
{
  csde_err_clear(err);
  return csde_conv_resolve(s, C, sched, 16, pl, err);
}

static void test_defaults(void)
{
  csde_conv_settings s = csde_conv_default_settings();
  csde_conv_plan pl;
  csde_err err;
  int st = resolve(&s, vp, &pl, &err);
  const csde_conv_params *p = &pl.params;
  const csde_conv_params d = csde_conv_default_params();
  ok(st == 0, "the default settings resolve (%s)", err.msg);
  ok(p->P.process == CSDE_PROC_PFODE && p->P.T == 1.0 && p->P.eps == 1e-3,
     "defaults: pf-ode from T = 1 to eps = 1e-3 (got T %g, eps %g)", p->P.T, p->P.eps);
  ok(p->P.tau == 8 && p->P.D == 16 && p->P.C == C && p->P.sched == vp && !p->P.model,
     "defaults: tau, D, C and the schedule set; the model left to the caller");
  ok(p->nsolvers == 3 && !strcmp(p->solvers[0], "euler") && !strcmp(p->solvers[1], "heun") &&
         !strcmp(p->solvers[2], "rk45") && !strcmp(pl.solvers_text, "euler,heun,rk45"),
     "defaults: solvers euler, heun, rk45 (text '%s')", pl.solvers_text);
  ok(p->kind == CSDE_CONV_ODE && p->k0 == 3 && p->k1 == 8 && !strcmp(pl.levels_text, "3:8"),
     "defaults: the ode error over levels 3:8");
  ok(p->ref == CSDE_CONV_REF_AUTO && !p->ref_level && !strcmp(pl.reference_text, "auto"),
     "defaults: reference auto");
  ok(p->paths == 16 && p->seed == 0 && !p->grid && p->threads == 1 && p->batch == d.batch &&
         p->boot == 1000 && p->boot_seed == d.boot_seed && p->conf == 0.95 && !p->dist &&
         !p->file,
     "defaults: 16 paths, seed 0, uniform grid, 1 thread, batch %zu, 1000 replicates, 0.95",
     p->batch);
  csde_conv_plan_free(&pl);
}

static void test_processes(void)
{
  static const struct {
    const char *process, *solvers;
    csde_conv_kind kind;
  } want[] = {{"forward-sde", "em,heun", CSDE_CONV_STRONG},
              {"reverse-sde", "em,heun", CSDE_CONV_WEAK_COV},
              {"pf-ode", "euler,heun,rk45", CSDE_CONV_ODE},
              {"pf-ode-encode", "euler,heun,rk45", CSDE_CONV_ODE}};
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
    csde_conv_settings s = csde_conv_default_settings();
    s.process = want[i].process;
    if (!strcmp(s.process, "forward-sde") || !strcmp(s.process, "reverse-sde"))
      s.reference = "fine";
    csde_conv_plan pl;
    csde_err err;
    int st = resolve(&s, vp, &pl, &err);
    ok(st == 0 && !strcmp(pl.solvers_text, want[i].solvers) && pl.params.kind == want[i].kind,
       "%s: default solvers %s (got '%s') and error %s (got %s)", want[i].process,
       want[i].solvers, pl.solvers_text, csde_conv_kind_name(want[i].kind),
       csde_conv_kind_name(pl.params.kind));
    csde_conv_plan_free(&pl);
  }
}

/* The span of each process with and without t_end, on vp and on cosine. */
static void test_span(void)
{
  static const struct {
    const char *process;
    int cos;
    double t_end, T, eps;
  } want[] = {
      {"pf-ode", 0, NAN, 1.0, 1e-3},          {"pf-ode", 0, 0.1, 1.0, 0.1},
      {"reverse-sde", 0, 0.25, 1.0, 0.25},    {"pf-ode", 1, NAN, 0.999, 1e-3},
      {"pf-ode", 1, 0.5, 0.999, 0.5},         {"forward-sde", 0, NAN, 1.0, 0.0},
      {"forward-sde", 0, 0.5, 0.5, 0.0},      {"forward-sde", 1, NAN, 0.999, 0.0},
      {"pf-ode-encode", 0, 0.7, 0.7, 1e-3},   {"pf-ode-encode", 1, NAN, 0.999, 1e-3}};
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
    csde_conv_settings s = csde_conv_default_settings();
    s.process = want[i].process;
    s.t_end = want[i].t_end;
    s.reference = "fine";
    csde_conv_plan pl;
    csde_err err;
    int st = resolve(&s, want[i].cos ? cosine : vp, &pl, &err);
    ok(st == 0 && pl.params.P.T == want[i].T && pl.params.P.eps == want[i].eps,
       "%s on %s, t_end %g: T %g, eps %g (got %g, %g; %s)", want[i].process,
       want[i].cos ? "cosine" : "vp-linear", want[i].t_end, want[i].T, want[i].eps,
       pl.params.P.T, pl.params.P.eps, err.msg);
    csde_conv_plan_free(&pl);
  }
  ok(csde_problem_t_max(vp) == 1.0 && csde_problem_t_max(cosine) == 0.999,
     "csde_problem_t_max: 1 for vp-linear, 0.999 for cosine (beta(1) infinite)");
}

/* One bad setting: its status, the param blamed and the start of the message. */
/* The error kinds' registry: every name listed parses back to its kind, in kind order. */
static void test_kind_names(void)
{
  char buf[64], *save = NULL;
  csde_conv_kind_names(buf, sizeof buf);
  ok(!strcmp(buf, "strong, weak-mean, weak-cov, ode"), "kind names: '%s'", buf);
  int i = 0, good = 1;
  for (char *w = strtok_r(buf, ", ", &save); w; w = strtok_r(NULL, ", ", &save), i++) {
    csde_conv_kind k;
    good &= !csde_conv_kind_parse(w, &k) && (int)k == i && !strcmp(csde_conv_kind_name(k), w);
  }
  ok(good && i == 4, "each of the %d names parses to its kind and back", i);
}

static void bad(csde_conv_settings s, const csde_schedule *sched, const char *param,
                const char *msg, const char *what)
{
  csde_conv_plan pl;
  csde_err err;
  int st = resolve(&s, sched, &pl, &err);
  ok(st != 0 && err.param && !strcmp(err.param, param) && !strncmp(err.msg, msg, strlen(msg)),
     "%s: status %d, blames '%s' (want '%s'): %s", what, st, err.param ? err.param : "(none)",
     param, err.msg);
  csde_conv_plan_free(&pl);
}

static void test_errors(void)
{
  const csde_conv_settings d = csde_conv_default_settings();
  csde_conv_settings s;
#define SET(field, v) (s = d, s.field = (v), s)
  bad(SET(process, "ddpm"), vp, CSDE_PARAM_PROCESS, "", "process unknown");
  bad(SET(solvers, "euler,,heun"), vp, CSDE_PARAM_SOLVER, "solvers: expected a comma", "solvers with an empty entry");
  bad(SET(solvers, "euler,rk4"), vp, CSDE_PARAM_SOLVER, "solvers: unknown solver 'rk4'", "solvers unknown");
  bad(SET(solvers, "euler,em"), vp, CSDE_PARAM_SOLVER, "solvers: 'em' is given twice", "solvers twice (alias)");
  s = d;
  s.process = "forward-sde";
  s.solvers = "em,rk45";
  bad(s, vp, CSDE_PARAM_SOLVER, "solvers: 'rk45' does not fit forward-sde", "solvers not fitting");
  bad(SET(error, "weak"), vp, CSDE_CONV_PARAM_KIND, "error: expected one of strong, weak-mean", "error unknown");
  s = d;
  s.process = "reverse-sde";
  s.error = "ode";
  bad(s, vp, CSDE_CONV_PARAM_KIND, "error ode: the deterministic error", "error ode on an SDE");
  bad(SET(levels, "8:3"), vp, CSDE_CONV_PARAM_LEVELS, "levels: expected K0:K1", "levels reversed");
  bad(SET(levels, "3:40"), vp, CSDE_CONV_PARAM_LEVELS, "levels: expected K0:K1", "levels too deep");
  bad(SET(levels, "3-8"), vp, CSDE_CONV_PARAM_LEVELS, "levels: expected K0:K1", "levels without a colon");
  bad(SET(paths, 1), vp, CSDE_CONV_PARAM_PATHS, "paths: expected an integer >= 2", "paths 1");
  bad(SET(reference, "fine:x"), vp, CSDE_CONV_PARAM_REFERENCE, "reference", "reference malformed");
  s = d;
  s.process = "forward-sde";
  s.error = "strong";
  s.reference = "exact";
  bad(s, vp, CSDE_CONV_PARAM_REFERENCE, "reference exact: strong errors", "reference exact, strong");
  bad(SET(reference, "fine:8"), vp, CSDE_CONV_PARAM_REFERENCE, "reference fine:8: level 8 is not finer",
      "reference level equal to the finest");
  bad(SET(t_end, 1.0), vp, CSDE_CONV_PARAM_T_END, "t_end: pf-ode runs backwards from T = 1; "
      "expected 0 <= t_end < 1", "t_end at pf-ode's start");
  bad(SET(t_end, -0.1), vp, CSDE_CONV_PARAM_T_END, "t_end: pf-ode runs backwards", "t_end < 0");
  bad(SET(t_end, INFINITY), vp, CSDE_CONV_PARAM_T_END, "t_end: pf-ode runs backwards", "t_end inf");
  bad(SET(t_end, 0.9995), cosine, CSDE_CONV_PARAM_T_END, "t_end: pf-ode runs backwards from T = "
      "0.999; expected 0 <= t_end < 0.999", "t_end after cosine's T = 0.999");
  s = d;
  s.process = "forward-sde";
  s.reference = "fine";
  s.t_end = 0;
  bad(s, vp, CSDE_CONV_PARAM_T_END, "t_end: forward-sde runs forwards from t = 0", "t_end 0, forward-sde");
  s.t_end = 1;
  bad(s, cosine, CSDE_CONV_PARAM_T_END, "t_end: beta(1) of the schedule", "t_end 1 on cosine, forward-sde");
  s.process = "pf-ode-encode";
  s.t_end = 0.0005;
  bad(s, vp, CSDE_CONV_PARAM_T_END, "t_end: pf-ode-encode runs forwards from t = 0.001",
      "t_end before pf-ode-encode's eps");
  bad(SET(threads, 0), vp, CSDE_CONV_PARAM_THREADS, "threads:", "threads 0");
  bad(SET(batch, 0), vp, CSDE_CONV_PARAM_BATCH, "batch:", "batch 0");
  bad(SET(conf, 1.0), vp, CSDE_CONV_PARAM_CONF, "confidence:", "confidence 1");
  bad(SET(conf, 0.0), vp, CSDE_CONV_PARAM_CONF, "confidence:", "confidence 0");
#undef SET
}

int main(void)
{
  csde_err err;
  csde_err_clear(&err);
  if (csde_cov_alloc(&C, "ar1:rho=0.9", 8, CSDE_COV_AUTO, &err) ||
      csde_schedule_alloc(&vp, "vp-linear:bmin=0.1,bmax=20", &err) ||
      csde_schedule_alloc(&cosine, "cosine", &err)) {
    printf("Bail out! %s\n", err.msg);
    return 1;
  }
  test_defaults();
  test_processes();
  test_span();
  test_errors();
  test_kind_names();
  csde_schedule_free(cosine);
  csde_schedule_free(vp);
  csde_cov_free(C);
  return tap_done();
}
