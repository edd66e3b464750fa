/* The continuous processes: drift and diffusion in one place (process.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "process/process.h"

static const char *const proc_names[] = {"forward-sde", "reverse-sde", "pf-ode",
                                         "pf-ode-encode"};

int csde_process_parse(const char *name, csde_process *out, csde_err *err)
{
  for (int i = 0; name && i < 4; i++)
    if (!strcmp(name, proc_names[i])) {
      *out = (csde_process)i;
      return CSDE_SUCCESS;
    }
  return csde_err_set(err, CSDE_ESPEC,
                      "unknown process '%s' (expected forward-sde, reverse-sde, pf-ode or "
                      "pf-ode-encode)",
                      name ? name : "");
}

const char *csde_process_name(csde_process p)
{
  return (unsigned)p < 4 ? proc_names[p] : "unknown";
}

int csde_process_is_sde(csde_process p)
{
  return p == CSDE_PROC_FORWARD_SDE || p == CSDE_PROC_REVERSE_SDE;
}

csde_problem csde_problem_default(void)
{
  csde_problem P;
  memset(&P, 0, sizeof P);
  P.process = CSDE_PROC_REVERSE_SDE;
  P.T = 1.0;
  P.eps = 1e-3;
  return P;
}

void csde_problem_span(const csde_problem *P, double *t_start, double *t_end)
{
  switch (P->process) {
  case CSDE_PROC_FORWARD_SDE:
    *t_start = 0.0, *t_end = P->T;
    break;
  case CSDE_PROC_PFODE_ENCODE:
    *t_start = P->eps, *t_end = P->T;
    break;
  default:
    *t_start = P->T, *t_end = P->eps;
  }
}

int csde_proc_uses_model(const csde_proc *pr) { return pr->P.process != CSDE_PROC_FORWARD_SDE; }

int csde_proc_init(csde_proc *pr, const csde_problem *P, int threads, int parts, csde_err *err)
{
  memset(pr, 0, sizeof *pr);
  pr->P = *P;
  pr->threads = threads > 0 ? threads : 1;
  if (!P->C || !P->sched)
    return csde_err_set(err, CSDE_EINVAL, "problem needs a covariance and a schedule");
  if (P->tau == 0 || P->D == 0 || P->batch == 0)
    return csde_err_blame(err, CSDE_PARAM_SIZE,
                          csde_err_set(err, CSDE_EINVAL, "problem sizes must be positive (tau %zu, D %zu, batch %zu)",
                                       P->tau, P->D, P->batch));
  if (csde_cov_tau(P->C) != P->tau)
    return csde_err_set(err, CSDE_EBADLEN, "covariance has %zu frames but the problem %zu",
                        csde_cov_tau(P->C), P->tau);
  if (!(P->T > 0 && P->T <= 1) || !(P->eps >= 0 && P->eps < P->T))
    return csde_err_blame(err, CSDE_PARAM_SPAN,
                          csde_err_set(err, CSDE_EDOM, "need 0 <= eps < T <= 1 (eps = %g, T = %g)",
                                       P->eps, P->T));
  if ((unsigned)P->process > CSDE_PROC_PFODE_ENCODE)
    return csde_err_set(err, CSDE_EINVAL, "unknown process %d", (int)P->process);
  if (P->process != CSDE_PROC_FORWARD_SDE && !P->model)
    return csde_err_blame(err, CSDE_PARAM_MODEL,
                          csde_err_set(err, CSDE_EINVAL, "process %s needs a model",
                                       csde_process_name(P->process)));
  if (csde_mul_size(P->batch, P->tau * P->D, &pr->n))
    return csde_err_blame(err, CSDE_PARAM_SIZE,
                          csde_err_set(err, CSDE_EINVAL, "state size overflows"));
  if (csde_proc_uses_model(pr)) {
    int score = csde_model_output_of(P->model) == CSDE_OUT_SCORE;
    if (score || parts) { /* else the model writes straight into the caller's f */
      pr->out = csde_alloc(pr->n, sizeof(double));
      if (!pr->out)
        return csde_err_blame(err, CSDE_PARAM_SIZE,
                              csde_err_set(err, CSDE_ENOMEM, "out of memory (%zu doubles)", pr->n));
    }
    if (score) {
      pr->cout = parts ? csde_alloc(pr->n, sizeof(double)) : NULL;
      if (parts && !pr->cout) {
        csde_proc_free(pr);
        return csde_err_blame(err, CSDE_PARAM_SIZE,
                              csde_err_set(err, CSDE_ENOMEM, "out of memory (%zu doubles)", pr->n));
      }
      int s = csde_cov_ws_alloc(&pr->ws, P->C, P->D, pr->threads, err);
      if (s) {
        csde_proc_free(pr);
        return s;
      }
    }
  }
  return CSDE_SUCCESS;
}

void csde_proc_free(csde_proc *pr)
{
  csde_cov_ws_free(pr->ws);
  csde_free(pr->out);
  csde_free(pr->cout);
  pr->ws = NULL;
  pr->out = pr->cout = NULL;
}

double csde_proc_diffusion(const csde_proc *pr, double t)
{
  return csde_process_is_sde(pr->P.process) ? sqrt(csde_schedule_beta(pr->P.sched, t)) : 0.0;
}

/* The first non-finite value of buf (the model's raw output, or C times it), as an error. */
static int nan_error_in(const csde_proc *pr, const double *buf, double t, size_t step,
                        csde_err *err)
{
  const csde_problem *P = &pr->P;
  size_t i = 0;
  while (i + 1 < pr->n && isfinite(buf[i])) i++;
  size_t per = P->tau * P->D, b = i / per, r = (i % per) / P->D, p = i % P->D;
  return csde_err_set(err, CSDE_ENAN,
                      "model '%s' returned %s at t = %.17g (step %zu), index %zu (sample %zu, "
                      "frame %zu, pixel %zu)",
                      csde_model_name(P->model), isnan(buf[i]) ? "NaN" : "Inf", t, step, i,
                      b, r, p);
}

static int nan_error(const csde_proc *pr, double t, size_t step, csde_err *err)
{
  return nan_error_in(pr, pr->raw, t, step, err);
}

/* Call the model at (t, x) and express s = C grad log p_t(x) as s = ax x + as src, where
 * src is the model's output (or, for a SCORE model, C times it, written into dst). The
 * model writes into pr->out when there is one, else into dst (which must not be x). */
static int model_eval(csde_proc *pr, double t, size_t step, const double *x, double *dst,
                      double *ax, double *as, const double **src, csde_err *err)
{
  const csde_problem *P = &pr->P;
  pr->raw = pr->out ? pr->out : dst;
  /* the model's context (model.h): sigma = sqrt(expm1(B)), logsnr = -log(expm1(B)) */
  double B = csde_schedule_int_beta(P->sched, t), abar = exp(-B), omab = -expm1(-B);
  size_t N = csde_schedule_nsteps(P->sched);
  csde_model_ctx c = {t, step, P->batch, P->tau, P->D, abar, sqrt(expm1(B)), -log(expm1(B)),
                      N ? lround(t * (double)N) : -1, P->C, P->sched, pr->model_msg,
                      sizeof pr->model_msg};
  pr->model_msg[0] = '\0';
  int rc = csde_model_call_ctx(P->model, &c, x, pr->raw);
  pr->model_msg[sizeof pr->model_msg - 1] = '\0';
  const char *sep = pr->model_msg[0] ? ": " : "";
  if (rc < 0)
    return csde_err_set(err, CSDE_EBADFUNC,
                        "model '%s' returned fatal code %d at t = %.17g (step %zu)%s%s",
                        csde_model_name(P->model), rc, t, step, sep, pr->model_msg);
  if (rc > 0)
    return csde_err_set(err, CSDE_ERETRY,
                        "model '%s' asked for a smaller step (code %d) at t = %.17g (step "
                        "%zu)%s%s", csde_model_name(P->model), rc, t, step, sep, pr->model_msg);
  /* model.h's conversions; 1 - abar = -expm1(-B(t)) */
  *ax = 0, *as = 1, *src = pr->raw;
  switch (csde_model_output_of(P->model)) {
  case CSDE_OUT_SCORE: { /* s = C out */
    int s = csde_cov_apply(P->C, pr->ws, CSDE_COV_OP_C, P->batch, pr->raw, dst, err);
    if (s) return s;
    *src = dst;
    break;
  }
  case CSDE_OUT_CSCORE:
    break;
  case CSDE_OUT_NOISE: /* s = -delta / sqrt(1 - abar) */
    *as = -1.0 / sqrt(omab);
    break;
  case CSDE_OUT_X0: /* s = -(x - sqrt(abar) x0) / (1 - abar) */
    *ax = -1.0 / omab;
    *as = sqrt(abar) / omab;
    break;
  case CSDE_OUT_V: /* delta = sqrt(1 - abar) x + sqrt(abar) v: s = -x - sqrt(abar / (1 - abar)) v */
    *ax = -1.0;
    *as = -sqrt(abar / omab);
    break;
  }
  return CSDE_SUCCESS;
}

/* dst = cx x + cs src in one pass that also checks src is finite. */
static int combine(csde_proc *pr, double t, size_t step, const double *x, const double *src,
                   double cx, double cs, double *dst, csde_err *err)
{
  long ln = (long)pr->n;
  int th = pr->threads;
  double chk = 0; /* sum of 0 src_i: 0, or NaN when some src_i is not finite (any order) */
#ifdef _OPENMP
#pragma omp parallel for simd num_threads(th) schedule(static) reduction(+ : chk) if (th > 1)
#else
#pragma omp simd reduction(+ : chk)
#endif
  for (long i = 0; i < ln; i++) {
    chk += 0.0 * src[i];
    dst[i] = cx * x[i] + cs * src[i];
  }
  return chk == 0 ? CSDE_SUCCESS : nan_error(pr, t, step, err);
}

int csde_proc_cscore(csde_proc *pr, double t, size_t step, const double *x, double *sc,
                     csde_err *err)
{
  double ax = 0, as = 1;
  const double *src = NULL;
  int s = model_eval(pr, t, step, x, sc, &ax, &as, &src, err);
  return s ? s : combine(pr, t, step, x, src, ax, as, sc, err);
}

void csde_proc_view(const csde_proc *pr, double t, double *alpha, double *sigma,
                    double *lambda)
{
  double B = csde_schedule_int_beta(pr->P.sched, t); /* abar = e^-B, 1 - abar = -expm1(-B) */
  *alpha = exp(-0.5 * B);
  *sigma = sqrt(-expm1(-B));
  *lambda = -0.5 * log(expm1(B)); /* log(alpha / sigma) = -1/2 log(e^B - 1) */
}

int csde_proc_denoise(csde_proc *pr, double t, size_t step, const double *x, double *x0,
                      csde_err *err)
{
  double ax = 0, as = 1, a, sg, l;
  const double *src = NULL;
  int s = model_eval(pr, t, step, x, x0, &ax, &as, &src, err);
  if (s) return s;
  csde_proc_view(pr, t, &a, &sg, &l);
  /* x0 = (x + sigma^2 (ax x + as src)) / alpha */
  double s2 = sg * sg;
  return combine(pr, t, step, x, src, (1 + s2 * ax) / a, s2 * as / a, x0, err);
}

/* The drift as f = cx x + cs src; C times a SCORE model's output goes into dst. */
static int drift_parts(csde_proc *pr, double t, size_t step, const double *x, double *dst,
                       double *cx, double *cs, const double **src, csde_err *err)
{
  const csde_problem *P = &pr->P;
  double beta = csde_schedule_beta(P->sched, t);
  *cx = -0.5 * beta, *cs = 0, *src = NULL; /* forward: f = -1/2 beta x */
  if (P->process == CSDE_PROC_FORWARD_SDE) return CSDE_SUCCESS;
  double ax = 0, as = 1;
  int s = model_eval(pr, t, step, x, dst, &ax, &as, src, err);
  if (s) return s;
  /* reverse: f = -1/2 beta x - beta s;  PF-ODE: f = -1/2 beta (x + s);  s = ax x + as src */
  double c = P->process == CSDE_PROC_REVERSE_SDE ? -beta : -0.5 * beta;
  *cx += c * ax;
  *cs = c * as;
  return CSDE_SUCCESS;
}

int csde_proc_drift_parts(csde_proc *pr, double t, size_t step, const double *x, double *cx,
                          double *cs, const double **src, csde_err *err)
{
  return drift_parts(pr, t, step, x, pr->cout, cx, cs, src, err);
}

int csde_proc_output_error(const csde_proc *pr, double t, size_t step, csde_err *err)
{
  return nan_error(pr, t, step, err);
}

int csde_proc_drift_src(csde_proc *pr, double t, size_t step, const double *x, double *dst,
                        double *cx, double *cs, csde_err *err)
{
  const double *src = NULL;
  int s = drift_parts(pr, t, step, x, dst, cx, cs, &src, err);
  if (s) return s;
  if (!src) /* forward SDE: f = cx x */
    memset(dst, 0, pr->n * sizeof *dst);
  else if (src != dst) /* the model wrote into pr->out */
    memcpy(dst, src, pr->n * sizeof *dst);
  return CSDE_SUCCESS;
}

int csde_proc_src_error(const csde_proc *pr, double t, size_t step, const double *src,
                        csde_err *err)
{
  return nan_error_in(pr, src, t, step, err);
}

int csde_proc_drift(csde_proc *pr, double t, size_t step, const double *x, double *f,
                    csde_err *err)
{
  double cx, cs;
  const double *src;
  int s = drift_parts(pr, t, step, x, f, &cx, &cs, &src, err);
  if (s) return s;
  if (src) return combine(pr, t, step, x, src, cx, cs, f, err);
  long ln = (long)pr->n;
  int th = pr->threads;
#ifdef _OPENMP
#pragma omp parallel for num_threads(th) schedule(static) if (th > 1)
#endif
  for (long i = 0; i < ln; i++) f[i] = cx * x[i]; /* forward: f = -1/2 beta x */
  return CSDE_SUCCESS;
}
