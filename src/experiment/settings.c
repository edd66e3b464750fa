/* The settings layer of a convergence run (corrsde/converge.h: csde_conv_settings):
 * every default and every rule of `corrsde converge` and corrsde.converge() in one
 * place. A message starts with the settings field's name, so that a front end can put
 * its own flag or keyword there. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "corrsde/converge.h"
#include "corrsde/cov.h"
#include "corrsde/schedule.h"
#include "corrsde/solve.h"
#include "noise/noise.h"

#define BAD(param, ...) csde_err_blame(err, param, csde_err_set(err, CSDE_EINVAL, __VA_ARGS__))

csde_conv_settings csde_conv_default_settings(void)
{
  const csde_conv_params d = csde_conv_default_params();
  csde_conv_settings s;
  memset(&s, 0, sizeof s);
  s.process = "pf-ode";
  s.levels = CSDE_CONV_DEFAULT_LEVELS;
  s.paths = d.paths;
  s.reference = "auto";
  s.t_end = NAN;
  s.threads = 1;
  s.batch = d.batch;
  s.boot = d.boot;
  s.boot_seed = d.boot_seed;
  s.conf = d.conf;
  return s;
}

const char *csde_conv_default_solvers(csde_process p)
{
  return csde_process_is_sde(p) ? CSDE_CONV_DEFAULT_SDE_SOLVERS : CSDE_CONV_DEFAULT_ODE_SOLVERS;
}

csde_conv_kind csde_conv_default_kind(csde_process p)
{
  return !csde_process_is_sde(p) ? CSDE_CONV_ODE
         : p == CSDE_PROC_FORWARD_SDE ? CSDE_CONV_STRONG : CSDE_CONV_WEAK_COV;
}

void csde_conv_plan_free(csde_conv_plan *plan)
{
  if (!plan) return;
  free(plan->buf);
  plan->buf = NULL;
}

int csde_conv_solvers_parse(const char *list, int process, csde_conv_plan *pl, csde_err *err)
{
  csde_conv_params *p = &pl->params;
  char names[256];
  free(pl->buf);
  pl->buf = NULL;
  p->nsolvers = 0;
  p->solvers = pl->solvers;
  snprintf(pl->solvers_text, sizeof pl->solvers_text, "%s", list);
  if (!*list || list[strlen(list) - 1] == ',' || *list == ',' || strstr(list, ",,"))
    return BAD(CSDE_PARAM_SOLVER, "solvers: expected a comma-separated list such as euler,heun, "
                                  "got '%s'", list);
  if (!(pl->buf = strdup(list))) return csde_err_set(err, CSDE_ENOMEM, "out of memory");
  char *save = NULL;
  for (char *t = strtok_r(pl->buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
    const csde_solver_type *T = csde_solver_lookup(t);
    if (!T)
      return BAD(CSDE_PARAM_SOLVER, "solvers: unknown solver '%s' (expected %s)", t,
                 csde_solver_names(-1, names, sizeof names));
    for (size_t i = 0; i < p->nsolvers; i++)
      if (csde_solver_lookup(pl->solvers[i]) == T)
        return BAD(CSDE_PARAM_SOLVER, "solvers: '%s' is given twice (as '%s' and '%s')", t,
                   pl->solvers[i], t);
    if (p->nsolvers == CSDE_CONV_MAXSOLVERS)
      return BAD(CSDE_PARAM_SOLVER, "solvers: at most %d solvers", CSDE_CONV_MAXSOLVERS);
    if (process >= 0 && !csde_solver_type_fits(T, (csde_process)process))
      return BAD(CSDE_PARAM_SOLVER, "solvers: '%s' does not fit %s (solvers that do: %s)", t,
                 csde_process_name((csde_process)process),
                 csde_solver_names(process, names, sizeof names));
    pl->solvers[p->nsolvers++] = t;
  }
  return CSDE_SUCCESS;
}

/* A non-negative integer <= CSDE_CONV_MAXLEVEL (digits only). */
static int parse_level(const char *s, size_t n, unsigned *out)
{
  unsigned v = 0;
  if (n == 0) return -1;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return -1;
    v = v * 10 + (unsigned)(s[i] - '0');
    if (v > CSDE_CONV_MAXLEVEL) return -1;
  }
  *out = v;
  return 0;
}

int csde_conv_levels_parse(const char *s, unsigned *k0, unsigned *k1, csde_err *err)
{
  const char *colon = s ? strchr(s, ':') : NULL;
  if (!colon || parse_level(s, (size_t)(colon - s), k0) ||
      parse_level(colon + 1, strlen(colon + 1), k1) || !(*k0 < *k1))
    return BAD(CSDE_CONV_PARAM_LEVELS, "levels: expected K0:K1 with integers 0 <= K0 < K1 <= %d "
                                       "(level k runs 2^k steps), got '%s'",
               CSDE_CONV_MAXLEVEL, s ? s : "");
  return CSDE_SUCCESS;
}

/* The error kind, and the reference it can have. */
static int resolve_kind_reference(const csde_conv_settings *s, csde_conv_plan *pl,
                                  csde_err *err)
{
  csde_conv_params *p = &pl->params;
  const csde_process pr = p->P.process;
  if (!s->error)
    p->kind = csde_conv_default_kind(pr);
  else if (csde_conv_kind_parse(s->error, &p->kind)) {
    char names[64];
    return BAD(CSDE_CONV_PARAM_KIND, "error: expected one of %s, got '%s'",
               csde_conv_kind_names(names, sizeof names), s->error);
  }
  if (p->kind == CSDE_CONV_ODE && csde_process_is_sde(pr))
    return BAD(CSDE_CONV_PARAM_KIND, "error ode: the deterministic error needs pf-ode or "
                                     "pf-ode-encode; for %s use strong, weak-mean or weak-cov",
               csde_process_name(pr));
  const char *ref = s->reference ? s->reference : "auto";
  int rc = csde_conv_reference_parse(ref, p, err);
  if (rc) return rc;
  snprintf(pl->reference_text, sizeof pl->reference_text, "%s", ref);
  if (p->ref == CSDE_CONV_REF_FINE && !p->ref_level) p->ref_level = s->ref_level;
  if (p->ref == CSDE_CONV_REF_EXACT && p->kind == CSDE_CONV_STRONG)
    return BAD(CSDE_CONV_PARAM_REFERENCE, "reference exact: strong errors need a pathwise "
                                          "solution and an SDE has no exact one here "
                                          "(expected fine or fine:LEVEL)");
  if (p->ref == CSDE_CONV_REF_FINE && p->ref_level && p->ref_level <= p->k1)
    return BAD(CSDE_CONV_PARAM_REFERENCE, "reference fine:%u: level %u is not finer than the "
                                          "finest level %u of levels %s (expected fine:LEVEL "
                                          "with %u < LEVEL <= 30)",
               p->ref_level, p->ref_level, p->k1, pl->levels_text, p->k1);
  return CSDE_SUCCESS;
}

/* The span: T = csde_problem_t_max (cosine: 0.999; a path: its t_max, rf 0.999), eps the
 * default or the path's t_min where the default is below it (edm: smin; forward-sde: t_min,
 * VP 0), and t_end mapped as `corrsde sample` maps it: eps for reverse-sde and pf-ode
 * (T -> eps), T for forward-sde (t_min -> T) and pf-ode-encode (eps -> T). */
static int resolve_span(double e, const csde_schedule *sched, csde_problem *P, csde_err *err)
{
  const char *proc = csde_process_name(P->process);
  const int vp = csde_schedule_is_vp(sched);
  double lo = 0, hi = 1;
  if (!vp) csde_schedule_path_span(sched, &lo, &hi);
  P->T = csde_problem_t_max(sched);
  if (P->eps < lo) P->eps = lo;
  if (P->process == CSDE_PROC_FORWARD_SDE) P->eps = lo;
  if (isnan(e)) return CSDE_SUCCESS;
  if (P->process == CSDE_PROC_FORWARD_SDE || P->process == CSDE_PROC_PFODE_ENCODE) {
    double t0 = P->process == CSDE_PROC_FORWARD_SDE ? lo : P->eps;
    if (!(e > t0 && e <= hi)) {
      if (vp)
        return BAD(CSDE_CONV_PARAM_T_END, "t_end: %s runs forwards from t = %g, so its end T "
                                          "must be later (expected %g < t_end <= 1), got %g",
                   proc, t0, t0, e);
      return BAD(CSDE_CONV_PARAM_T_END, "t_end: %s runs forwards from t = %g within the span "
                                        "[%g, %g] of the %s path (schedule '%s'); expected %g "
                                        "< t_end <= %g, got %g",
                 proc, t0, lo, hi, csde_schedule_path_name(sched), csde_schedule_spec(sched),
                 t0, hi, e);
    }
    if (vp && !isfinite(csde_schedule_beta(sched, e)))
      return BAD(CSDE_CONV_PARAM_T_END, "t_end: beta(%g) of the schedule %s is infinite "
                                        "(expected t_end < %g, such as %g), got %g",
                 e, csde_schedule_spec(sched), e, CSDE_T_COSINE, e);
    if (!vp && !(isfinite(csde_schedule_path_f(sched, e)) &&
                 isfinite(csde_schedule_path_g2(sched, e))))
      return BAD(CSDE_CONV_PARAM_T_END, "t_end: f or g^2 of the %s path (schedule '%s') is "
                                        "infinite at %g (expected t_end < %g, such as %g)",
                 csde_schedule_path_name(sched), csde_schedule_spec(sched), e, e,
                 csde_problem_t_max(sched));
    P->T = e;
  } else {
    if (!(e >= lo && e < P->T)) {
      if (vp)
        return BAD(CSDE_CONV_PARAM_T_END, "t_end: %s runs backwards from T = %g; expected 0 "
                                          "<= t_end < %g (its end eps must be earlier), got %g",
                   proc, P->T, P->T, e);
      return BAD(CSDE_CONV_PARAM_T_END, "t_end: %s runs backwards from T = %g within the span "
                                        "[%g, %g] of the %s path (schedule '%s'); expected %g "
                                        "<= t_end < %g, got %g",
                 proc, P->T, lo, hi, csde_schedule_path_name(sched), csde_schedule_spec(sched),
                 lo, P->T, e);
    }
    P->eps = e;
  }
  return CSDE_SUCCESS;
}

/* The numbers: paths, threads, batch, bootstrap, confidence. */
static int resolve_numbers(const csde_conv_settings *s, csde_conv_params *p, csde_err *err)
{
  if (s->paths < 2)
    return BAD(CSDE_CONV_PARAM_PATHS, "paths: expected an integer >= 2 (a bootstrap needs paths "
                                      "to resample), got %zu", s->paths);
  if (s->threads < 1)
    return BAD(CSDE_CONV_PARAM_THREADS, "threads: expected a positive integer, got %d",
               s->threads);
  if (s->batch < 1)
    return BAD(CSDE_CONV_PARAM_BATCH, "batch: expected a positive integer, got %zu", s->batch);
  if (!(s->conf > 0 && s->conf < 1))
    return BAD(CSDE_CONV_PARAM_CONF, "confidence: expected a number in (0, 1), got %g", s->conf);
  p->paths = s->paths;
  p->seed = s->seed;
  p->grid = s->grid;
  p->threads = s->threads;
  p->batch = s->batch;
  p->boot = s->boot;
  p->boot_seed = s->boot_seed;
  p->conf = s->conf;
  return CSDE_SUCCESS;
}

int csde_conv_resolve(const csde_conv_settings *s, const csde_cov *C,
                      const csde_schedule *sched, size_t D, csde_conv_plan *pl, csde_err *err)
{
  memset(pl, 0, sizeof *pl);
  csde_conv_params *p = &pl->params;
  *p = csde_conv_default_params();
  if (!C || !sched || D == 0)
    return csde_err_set(err, CSDE_EINVAL, "convergence settings: missing covariance, schedule "
                                          "or frame size");
  const char *levels = s->levels ? s->levels : CSDE_CONV_DEFAULT_LEVELS;
  snprintf(pl->levels_text, sizeof pl->levels_text, "%s", levels);
  int rc = csde_process_parse(s->process ? s->process : "pf-ode", &p->P.process, err);
  if (rc) return csde_err_blame(err, CSDE_CONV_PARAM_PROCESS, rc);
  p->P.tau = csde_cov_tau(C);
  p->P.D = D;
  p->P.C = C;
  p->P.sched = sched;
  if ((rc = resolve_span(s->t_end, sched, &p->P, err)) ||
      (rc = csde_conv_solvers_parse(s->solvers ? s->solvers
                                               : csde_conv_default_solvers(p->P.process),
                                    (int)p->P.process, pl, err)) ||
      (rc = csde_conv_levels_parse(levels, &p->k0, &p->k1, err)) ||
      (rc = resolve_kind_reference(s, pl, err)) || (rc = resolve_numbers(s, p, err)))
    return rc;
  return CSDE_SUCCESS;
}

csde_rng_key csde_conv_start_key(uint64_t seed)
{
  csde_rng_key key = {seed, CSDE_STREAM_INIT};
  return key;
}

int csde_conv_start_prior(const csde_cov *C, csde_cov_ws *ws, uint64_t seed, size_t first,
                          size_t n, double *x, csde_err *err)
{
  return csde_cov_sample(C, ws, csde_conv_start_key(seed), first, n, x, err);
}
