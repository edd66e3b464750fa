/* The continuous processes: drift and diffusion in one place (process.h). */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/spec.h"
#include "core/util.h"
#include "process/process.h"

/* 1 on rectified flow (rf:shift=S), the one path with a shifted time t' = sigma(t). */
static int is_rf(const csde_schedule *s) { return !strcmp(csde_schedule_path_name(s), "rf"); }

static const char *const proc_names[] = {"forward-sde", "reverse-sde", "pf-ode",
                                         "pf-ode-encode"};

char *csde_process_names(char *buf, size_t len)
{
  size_t o = 0;
  if (!buf || !len) return buf;
  buf[0] = '\0';
  for (int i = 0; i < 4 && o < len; i++)
    o += (size_t)snprintf(buf + o, len - o, "%s%s", i ? ", " : "", proc_names[i]);
  return buf;
}

int csde_process_parse(const char *name, csde_process *out, csde_err *err)
{
  for (int i = 0; name && i < 4; i++)
    if (!strcmp(name, proc_names[i])) {
      *out = (csde_process)i;
      return CSDE_SUCCESS;
    }
  char names[128];
  return csde_err_set(err, CSDE_ESPEC, "unknown process '%s' (expected %s)", name ? name : "",
                      csde_process_names(names, sizeof names));
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
  case CSDE_PROC_FORWARD_SDE: /* from the path's t_min (VP: 0) */
    *t_start = P->sched && !csde_schedule_is_vp(P->sched) ? csde_problem_t_min(P->sched) : 0.0;
    *t_end = P->T;
    break;
  case CSDE_PROC_PFODE_ENCODE:
    *t_start = P->eps, *t_end = P->T;
    break;
  default:
    *t_start = P->T, *t_end = P->eps;
  }
}

double csde_problem_t_max(const csde_schedule *sched)
{
  if (csde_schedule_is_vp(sched))
    return isfinite(csde_schedule_beta(sched, 1.0)) ? 1.0 : CSDE_T_COSINE;
  /* a path: its span's t_max, or 0.999 of it where f or g^2 is infinite there (rf) */
  double t1;
  csde_schedule_path_span(sched, NULL, &t1);
  const double f = csde_schedule_path_f(sched, t1), g2 = csde_schedule_path_g2(sched, t1);
  return isfinite(f) && isfinite(g2) ? t1 : CSDE_T_COSINE * t1;
}

double csde_problem_t_min(const csde_schedule *sched)
{
  double t0;
  csde_schedule_path_span(sched, &t0, NULL);
  return t0;
}

int csde_proc_uses_model(const csde_proc *pr) { return pr->P.process != CSDE_PROC_FORWARD_SDE; }

/* ---- x0 post-processing: the specs (problem.h) ---- */

#define X0_CLIP_FORMS "LO,HI (two finite numbers, LO < HI)"
#define X0_THRESHOLD_FORMS "p=P[,max=M] (0 < P <= 1, M >= 1 or inf)"

static int x0_fail(csde_err *err, const char *param, const char *fmt, const char *spec,
                   const char *forms)
{
  csde_err_set(err, CSDE_EINVAL, fmt, spec, forms);
  return csde_err_blame(err, param, CSDE_EINVAL);
}

/* The ranges of problem.h, for a parsed spec and for a problem a caller filled. */
static int x0_check(const csde_x0_post *q, csde_err *err)
{
  char m[160];
  switch (q->kind) {
  case CSDE_X0_NONE:
    return CSDE_SUCCESS;
  case CSDE_X0_CLIP:
    if (isfinite(q->lo) && isfinite(q->hi) && q->lo < q->hi) return CSDE_SUCCESS;
    snprintf(m, sizeof m, "clip bounds %g, %g", q->lo, q->hi);
    return x0_fail(err, CSDE_PARAM_X0_CLIP, "%s: expected %s", m, X0_CLIP_FORMS);
  case CSDE_X0_THRESHOLD:
    if (q->p > 0 && q->p <= 1 && q->max >= 1) return CSDE_SUCCESS;
    snprintf(m, sizeof m, "threshold p %g, max %g", q->p, q->max);
    return x0_fail(err, CSDE_PARAM_X0_THRESHOLD, "%s: expected %s", m, X0_THRESHOLD_FORMS);
  }
  csde_err_set(err, CSDE_EINVAL, "unknown x0 post-processing kind %d", (int)q->kind);
  return csde_err_blame(err, CSDE_PARAM_X0_CLIP, CSDE_EINVAL);
}

/* A whole string as a number: finite, or (inf_ok) +inf written as inf or infinity. */
static int x0_number(const char *s, int inf_ok, double *v)
{
  if (!csde_parse_double(s, v)) return 0;
  char *end;
  double d = s && *s ? strtod(s, &end) : 0;
  if (!inf_ok || !s || !*s || end == s || d != INFINITY) return -1;
  while (*end == ' ' || *end == '\t') end++;
  if (*end) return -1;
  *v = d;
  return 0;
}

static int x0_parse_clip(const char *s, csde_x0_post *q, csde_err *err)
{
  const char *comma = strchr(s, ',');
  char lo[128];
  size_t nlo = comma ? (size_t)(comma - s) : 0;
  if (!comma || strchr(comma + 1, ',') || nlo >= sizeof lo)
    return x0_fail(err, CSDE_PARAM_X0_CLIP, "'%s': expected %s", s, X0_CLIP_FORMS);
  memcpy(lo, s, nlo);
  lo[nlo] = '\0';
  if (x0_number(lo, 0, &q->lo) || x0_number(comma + 1, 0, &q->hi))
    return x0_fail(err, CSDE_PARAM_X0_CLIP, "'%s': expected %s", s, X0_CLIP_FORMS);
  if (!(q->lo < q->hi))
    return x0_fail(err, CSDE_PARAM_X0_CLIP, "'%s': LO must be below HI (expected %s)", s,
                   X0_CLIP_FORMS);
  q->kind = CSDE_X0_CLIP;
  return CSDE_SUCCESS;
}

static int x0_parse_threshold(const char *s, csde_x0_post *q, csde_err *err)
{
  char buf[256];
  int have_p = 0, have_max = 0;
  q->p = NAN;
  q->max = INFINITY;
  if (strlen(s) >= sizeof buf)
    return x0_fail(err, CSDE_PARAM_X0_THRESHOLD, "'%.64s...': too long (expected %s)", s,
                   X0_THRESHOLD_FORMS);
  strcpy(buf, s);
  for (char *tok = buf, *next; tok; tok = next) {
    next = strchr(tok, ',');
    if (next) *next++ = '\0';
    char *eq = strchr(tok, '=');
    if (eq) *eq = '\0';
    int is_p = eq && !strcmp(tok, "p"), is_max = eq && !strcmp(tok, "max");
    if (!is_p && !is_max)
      return x0_fail(err, CSDE_PARAM_X0_THRESHOLD, "'%s': expected %s", s, X0_THRESHOLD_FORMS);
    if ((is_p && have_p++) || (is_max && have_max++))
      return x0_fail(err, CSDE_PARAM_X0_THRESHOLD, "'%s': a key given twice (expected %s)", s,
                     X0_THRESHOLD_FORMS);
    if (x0_number(eq + 1, is_max, is_p ? &q->p : &q->max))
      return x0_fail(err, CSDE_PARAM_X0_THRESHOLD, "'%s': expected a number after '=' "
                     "(expected %s)", s, X0_THRESHOLD_FORMS);
  }
  if (!have_p)
    return x0_fail(err, CSDE_PARAM_X0_THRESHOLD, "'%s': p is missing (expected %s)", s,
                   X0_THRESHOLD_FORMS);
  if (!(q->p > 0 && q->p <= 1))
    return x0_fail(err, CSDE_PARAM_X0_THRESHOLD, "'%s': p must be in (0, 1] (expected %s)", s,
                   X0_THRESHOLD_FORMS);
  if (!(q->max >= 1))
    return x0_fail(err, CSDE_PARAM_X0_THRESHOLD, "'%s': max must be >= 1 (expected %s)", s,
                   X0_THRESHOLD_FORMS);
  q->kind = CSDE_X0_THRESHOLD;
  return CSDE_SUCCESS;
}

int csde_x0_post_parse(const char *clip, const char *threshold, csde_x0_post *x0,
                       csde_err *err)
{
  memset(x0, 0, sizeof *x0);
  x0->kind = CSDE_X0_NONE;
  int hc = clip && strcmp(clip, "none"), ht = threshold && strcmp(threshold, "none");
  if (hc && ht) {
    csde_err_set(err, CSDE_EINVAL, "clipping (%s) and thresholding (%s) of x0 exclude each "
                 "other (give one)", clip, threshold);
    return csde_err_blame(err, CSDE_PARAM_X0_THRESHOLD, CSDE_EINVAL);
  }
  int st = hc ? x0_parse_clip(clip, x0, err) : ht ? x0_parse_threshold(threshold, x0, err) : 0;
  if (st) x0->kind = CSDE_X0_NONE;
  return st;
}

/* v in its shortest form that reads back exactly ("1", "50", "0.995", "inf"): at least
 * the integer digits, so that %g writes no exponent below 1e17. */
static void x0_fmt(double v, char *b, size_t n)
{
  const double m = fabs(v);
  int prec = m >= 1 && m < 1e17 ? (int)floor(log10(m)) + 1 : 1;
  for (; prec <= 17; prec++) {
    snprintf(b, n, "%.*g", prec, v);
    if (strtod(b, NULL) == v) return;
  }
}

void csde_x0_post_specs(const csde_x0_post *x0, char *clip, size_t clip_len, char *threshold,
                        size_t threshold_len)
{
  char a[40], b[40];
  if (clip) snprintf(clip, clip_len, "none");
  if (threshold) snprintf(threshold, threshold_len, "none");
  if (x0->kind == CSDE_X0_CLIP && clip) {
    x0_fmt(x0->lo, a, sizeof a);
    x0_fmt(x0->hi, b, sizeof b);
    snprintf(clip, clip_len, "%s,%s", a, b);
  }
  if (x0->kind == CSDE_X0_THRESHOLD && threshold) {
    x0_fmt(x0->p, a, sizeof a);
    x0_fmt(x0->max, b, sizeof b);
    snprintf(threshold, threshold_len, "p=%s,max=%s", a, b);
  }
}

/* ---- x0 post-processing: the quantile ---- */

/* v[left .. right] reordered so that v[k] is its (k - left)-th smallest, those before it
 * <= it and those after >= it: Floyd and Rivest's SELECT (CACM 18(3), 1975, Algorithm
 * 489), which first selects within a sample around k's expected rank to find a pivot close
 * to v_(k), so one partition pass leaves little: about n + min(k, n - k) comparisons. v is
 * finite. Deterministic (no random pivots). */
static void select_k(double *v, long left, long right, long k)
{
  double t;
#define X0_SWAP(a, b) (t = v[a], v[a] = v[b], v[b] = t)
  while (right > left) {
    if (right - left > 600) { /* recurse on a sample of about n^(2/3) values */
      const double n = (double)(right - left + 1), i = (double)(k - left + 1), z = log(n);
      const double s = 0.5 * exp(2 * z / 3);
      const double sd = 0.5 * sqrt(z * s * (n - s) / n) * (i < n / 2 ? -1 : 1);
      long nl = (long)((double)k - i * s / n + sd), nr = (long)((double)k + (n - i) * s / n + sd);
      select_k(v, nl > left ? nl : left, nr < right ? nr : right, k);
    }
    const double piv = v[k];
    long i = left, j = right;
    X0_SWAP(left, k);
    if (v[right] > piv) X0_SWAP(right, left);
    while (i < j) {
      X0_SWAP(i, j);
      i++, j--;
      while (v[i] < piv) i++;
      while (v[j] > piv) j--;
    }
    if (v[left] == piv) X0_SWAP(left, j);
    else {
      j++;
      X0_SWAP(j, right);
    }
    /* v[left .. j - 1] <= piv = v[j] <= v[j + 1 .. right] */
    if (j <= k) left = j + 1;
    if (k <= j) right = j - 1;
  }
#undef X0_SWAP
}

double csde_proc_quantile(double *v, size_t n, double p)
{
  /* numpy's 'linear': h = (n - 1) p, k = floor(h), g = h - k, between v_(k) and v_(k+1) */
  const double h = (double)(n - 1) * p;
  const long k = (long)floor(h);
  const double g = h - (double)k;
  select_k(v, 0, (long)n - 1, k);
  const double a = v[k];
  double b = a; /* v_(k+1): the least of v[k+1 ..] (k = n - 1: none, b = a) */
  if ((size_t)k + 1 < n) {
    b = v[k + 1];
    for (size_t i = (size_t)k + 2; i < n; i++) b = fmin(b, v[i]);
  }
  /* numpy's _lerp: a + (b - a) g, or b - (b - a)(1 - g) when g >= 1/2 */
  const double d = b - a;
  return g >= 0.5 ? b - d * (1 - g) : a + d * g;
}

/* ---- classifier-free guidance (problem.h) ---- */

/* A scale w of frame f: finite, |w| <= CSDE_GUIDANCE_MAX. */
static int guidance_bad(double w) { return !(fabs(w) <= CSDE_GUIDANCE_MAX); }

static int guidance_fail(csde_err *err, const char *param, const char *fmt, double w,
                         size_t f)
{
  csde_err_set(err, CSDE_EINVAL, fmt, w, f, CSDE_GUIDANCE_MAX);
  return csde_err_blame(err, param, CSDE_EINVAL);
}

#define GUIDANCE_RANGE "guidance scale %g (frame %zu): expected a finite w with |w| <= %g"

static int guidance_check(csde_proc *pr, csde_err *err)
{
  const csde_guidance *g = &pr->P.guidance;
  pr->guided = g->uncond != NULL;
  if (!pr->guided && (g->w_frames || g->fn)) {
    csde_err_set(err, CSDE_EINVAL, "guidance scales given without the unconditional "
                                   "conditioning (uncond)");
    return csde_err_blame(err, CSDE_PARAM_GUIDANCE, CSDE_EINVAL);
  }
  if (!pr->guided) return CSDE_SUCCESS;
  if (!csde_proc_uses_model(pr)) {
    csde_err_set(err, CSDE_EINVAL, "forward-sde never calls the model: nothing to guide");
    return csde_err_blame(err, CSDE_PARAM_GUIDANCE, CSDE_EINVAL);
  }
  if (g->fn) return CSDE_SUCCESS; /* checked at each call */
  for (size_t f = 0; f < (g->w_frames ? pr->P.tau : 1); f++) {
    const double w = g->w_frames ? g->w_frames[f] : g->w;
    if (guidance_bad(w)) return guidance_fail(err, CSDE_PARAM_GUIDANCE, GUIDANCE_RANGE, w, f);
  }
  return CSDE_SUCCESS;
}

/* The scales w_f at t into pr->gw: fn(t, f), else w_frames[f], else w. */
static int guidance_scales(csde_proc *pr, double t, csde_err *err)
{
  const csde_guidance *g = &pr->P.guidance;
  for (size_t f = 0; f < pr->P.tau; f++) {
    const double w = g->fn ? g->fn(t, f, g->fn_user) : g->w_frames ? g->w_frames[f] : g->w;
    if (g->fn && guidance_bad(w)) {
      csde_err_set(err, CSDE_EINVAL, "the guidance function gave scale %g at t = %.17g, "
                   "frame %zu: expected a finite w with |w| <= %g", w, t, f,
                   CSDE_GUIDANCE_MAX);
      return csde_err_blame(err, CSDE_PARAM_GUIDANCE, CSDE_EINVAL);
    }
    pr->gw[f] = w;
  }
  return CSDE_SUCCESS;
}

/* The model's answer at (c, x) into out: one call, or, guided, the conditional answer
 * out_c and the unconditional one out_u at the same states (one call of 2B, or two of B:
 * problem.h) combined frame by frame in the model's own output space,
 *   out = out_u + w_f (out_c - out_u). */
static int model_answer(csde_proc *pr, csde_model_ctx *c, const double *x, double *out,
                        int *gst, csde_err *err)
{
  const csde_problem *P = &pr->P;
  if (!pr->guided) return csde_model_call_ctx(P->model, c, x, out);
  if ((*gst = guidance_scales(pr, c->t, err))) return *gst;
  int rc;
  const size_t n = pr->n, B = P->batch;
  const double *oc, *ou;
  c->uncond = P->guidance.uncond;
  c->ncond = B;
  if (!P->guidance.split) { /* one call of 2B: samples [0, B) cond, [B, 2B) uncond */
    double *xx = pr->gx, *oo = pr->gx + 2 * n;
    memcpy(xx, x, n * sizeof *x);
    memcpy(xx + n, x, n * sizeof *x);
    c->batch = 2 * B;
    rc = csde_model_call_ctx(P->model, c, xx, oo);
    c->batch = B;
    oc = oo, ou = oo + n;
  } else { /* two calls of B: cond into out, uncond (ncond = 0) into scratch */
    rc = csde_model_call_ctx(P->model, c, x, out);
    c->ncond = 0;
    if (!rc) rc = csde_model_call_ctx(P->model, c, x, pr->gx);
    oc = out, ou = pr->gx;
  }
  if (rc) return rc;
  const long nblk = (long)(B * P->tau), D = (long)P->D, tau = (long)P->tau;
  const double *w = pr->gw;
  const int th = pr->threads;
  (void)th;
#ifdef _OPENMP
#pragma omp parallel for num_threads(th) schedule(static) if (th > 1)
#endif
  for (long k = 0; k < nblk; k++) { /* block k: sample k / tau, frame k % tau */
    const double wf = w[k % tau];
    const double *cc = oc + k * D, *uu = ou + k * D;
    double *o = out + k * D;
#pragma omp simd
    for (long i = 0; i < D; i++) o[i] = uu[i] + wf * (cc[i] - uu[i]); /* u + w (c - u) */
  }
  return CSDE_SUCCESS;
}

int csde_proc_init(csde_proc *pr, const csde_problem *P, int threads, int parts, csde_err *err)
{
  memset(pr, 0, sizeof *pr);
  pr->P = *P;
  pr->threads = threads > 0 ? threads : 1;
  if (!P->C || !P->sched)
    return csde_err_set(err, CSDE_EINVAL, "problem needs a covariance and a schedule");
  const int vp = csde_schedule_is_vp(P->sched);
  if (P->tau == 0 || P->D == 0 || P->batch == 0)
    return csde_err_blame(err, CSDE_PARAM_SIZE,
                          csde_err_set(err, CSDE_EINVAL, "problem sizes must be positive (tau %zu, D %zu, batch %zu)",
                                       P->tau, P->D, P->batch));
  if (csde_cov_tau(P->C) != P->tau)
    return csde_err_set(err, CSDE_EBADLEN, "covariance has %zu frames but the problem %zu",
                        csde_cov_tau(P->C), P->tau);
  if (vp && (!(P->T > 0 && P->T <= 1) || !(P->eps >= 0 && P->eps < P->T)))
    return csde_err_blame(err, CSDE_PARAM_SPAN,
                          csde_err_set(err, CSDE_EDOM, "need 0 <= eps < T <= 1 (eps = %g, T = %g)",
                                       P->eps, P->T));
  if (!vp) { /* the path's span [t_min, t_max]; the forward SDE starts at t_min */
    double t0, t1;
    csde_schedule_path_span(P->sched, &t0, &t1);
    const int fwd = P->process == CSDE_PROC_FORWARD_SDE;
    if (!(P->T > t0 && P->T <= t1) || (!fwd && !(P->eps >= t0 && P->eps < P->T)))
      return csde_err_blame(
          err, CSDE_PARAM_SPAN,
          csde_err_set(err, CSDE_EDOM,
                       "schedule '%s' (the %s path) spans [%g, %g]: need %s%s T <= %g "
                       "(eps = %g, T = %g)",
                       csde_schedule_spec(P->sched), csde_schedule_path_name(P->sched), t0,
                       t1, fwd ? "" : "t_min <= eps < T,", fwd ? "t_min <" : "", t1, P->eps,
                       P->T));
  }
  { /* the drift f x and diffusion g at the span's ends: infinite where alpha = 0
     * (cosine's beta(1), rf at t = 1), which no conversion survives */
    double ta, tb;
    csde_problem_span(P, &ta, &tb);
    for (int e = 0; e < 2; e++) {
      const double te = e ? tb : ta, f = csde_schedule_path_f(P->sched, te),
                   g2 = csde_schedule_path_g2(P->sched, te);
      if (!(isfinite(f) && isfinite(g2)))
        return csde_err_blame(
            err, CSDE_PARAM_SPAN,
            csde_err_set(err, CSDE_EINVAL,
                         "schedule '%s': the drift is infinite at t = %g (f = %g, g^2 = %g, "
                         "alpha = %g): end the span before it, at t <= %g",
                         csde_schedule_spec(P->sched), te, f, g2,
                         csde_schedule_path_alpha(P->sched, te),
                         csde_problem_t_max(P->sched)));
    }
  }
  if ((unsigned)P->process > CSDE_PROC_PFODE_ENCODE)
    return csde_err_set(err, CSDE_EINVAL, "unknown process %d", (int)P->process);
  if (P->process != CSDE_PROC_FORWARD_SDE && !P->model)
    return csde_err_blame(err, CSDE_PARAM_MODEL,
                          csde_err_set(err, CSDE_EINVAL, "process %s needs a model",
                                       csde_process_name(P->process)));
  if (P->process != CSDE_PROC_FORWARD_SDE &&
      csde_model_output_of(P->model) == CSDE_OUT_FLOW_SHIFTED && !is_rf(P->sched))
    return csde_err_blame(
        err, CSDE_PARAM_SCHEDULE,
        csde_err_set(err, CSDE_EINVAL,
                     "model '%s' answers output flow-shifted (dx/dt' in rectified flow's "
                     "shifted time t'), which needs an rf schedule (rf:shift=S): schedule "
                     "'%s' is the %s path (use output flow, dx/dt)",
                     csde_model_name(P->model), csde_schedule_spec(P->sched),
                     csde_schedule_path_name(P->sched)));
  if (csde_mul_size(P->batch, P->tau * P->D, &pr->n))
    return csde_err_blame(err, CSDE_PARAM_SIZE,
                          csde_err_set(err, CSDE_EINVAL, "state size overflows"));
  int s0 = x0_check(&P->x0, err);
  if (s0) return s0;
  if ((s0 = guidance_check(pr, err))) return s0;
  if (csde_proc_uses_model(pr) && P->x0.kind == CSDE_X0_THRESHOLD) {
    /* one sample's |x0| per thread that takes a sample (schedule(static, 1)) */
    size_t nt = (size_t)pr->threads < P->batch ? (size_t)pr->threads : P->batch;
    pr->x0ws = csde_alloc(nt * P->tau * P->D, sizeof(double));
    if (!pr->x0ws)
      return csde_err_blame(err, CSDE_PARAM_SIZE,
                            csde_err_set(err, CSDE_ENOMEM, "out of memory (%zu doubles)",
                                         nt * P->tau * P->D));
  }
  if (pr->guided) { /* problem.h: 2B: x twice and the 2B answers; split: the uncond answer */
    pr->gx = csde_alloc(P->guidance.split ? pr->n : 4 * pr->n, sizeof(double));
    pr->gw = csde_alloc(P->tau, sizeof(double));
    if (!pr->gx || !pr->gw) {
      csde_proc_free(pr);
      return csde_err_blame(err, CSDE_PARAM_SIZE,
                            csde_err_set(err, CSDE_ENOMEM, "out of memory for guidance (%zu "
                                         "doubles)", (P->guidance.split ? 1 : 4) * pr->n));
    }
  }
  if (csde_proc_uses_model(pr)) {
    int score = csde_model_output_of(P->model) == CSDE_OUT_SCORE;
    if (score || parts) { /* else the model writes straight into the caller's f */
      pr->out = csde_alloc(pr->n, sizeof(double));
      if (!pr->out) {
        csde_proc_free(pr);
        return csde_err_blame(err, CSDE_PARAM_SIZE,
                              csde_err_set(err, CSDE_ENOMEM, "out of memory (%zu doubles)", pr->n));
      }
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
  csde_free(pr->x0ws);
  csde_free(pr->gx);
  csde_free(pr->gw);
  csde_free(pr->x0);
  pr->ws = NULL;
  pr->out = pr->cout = pr->x0ws = pr->gx = pr->gw = pr->x0 = NULL;
}

int csde_proc_preview_alloc(csde_proc *pr, csde_err *err)
{
  if (pr->x0) return CSDE_SUCCESS;
  if (!(pr->x0 = csde_alloc(pr->n, sizeof(double))))
    return csde_err_blame(err, CSDE_PARAM_SIZE,
                          csde_err_set(err, CSDE_ENOMEM, "out of memory for the x0 preview "
                                       "(%zu doubles)", pr->n));
  return CSDE_SUCCESS;
}

unsigned csde_proc_passes(const csde_proc *pr)
{
  return csde_proc_uses_model(pr) ? (pr->guided ? 2u : 1u) : 0u;
}

/* g = sqrt(g^2) (VP: sqrt(beta), the same bits written as before) */
double csde_proc_diffusion(const csde_proc *pr, double t)
{
  const csde_schedule *s = pr->P.sched;
  if (!csde_process_is_sde(pr->P.process)) return 0.0;
  return sqrt(csde_schedule_is_vp(s) ? csde_schedule_beta(s, t) : csde_schedule_path_g2(s, t));
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

/* ---- x0 post-processing: the change (problem.h) ---- */

/* The model's answer src (of kind k, at abar and 1 - abar = omab, both > 0) at x, taken
 * to x0 = px x + ps src, changed as pr->P.x0 says, and taken back, src = (qx x + q0 x0)
 * / qd, at the entries it changed (in place). alpha = sqrt(abar), sigma = sqrt(omab):
 *   score, C score (src = s):  x0 = (x + sigma^2 s) / alpha   s = (alpha x0 - x) / sigma^2
 *   noise (src = delta):       x0 = (x - sigma delta) / alpha delta = (x - alpha x0) / sigma
 *   x0:                        x0 = src                      src = x0
 *   v:                         x0 = alpha x - sigma v        v = (alpha x - x0) / sigma
 * (v: delta = sigma x + alpha v, MATH.md). A flow answer, and any answer on a non-VP path
 * (abar = alpha^2, omab = sigma^2), from s = ax x + as src and x0 = (x + sigma^2 s) / alpha. An entry whose src is not finite is left for
 * the caller's check to report; so is a sample of the thresholding with one. */
static void x0_post(csde_proc *pr, csde_model_output k, double abar, double omab,
                    const double *x, double *src, double ax, double as)
{
  const csde_problem *P = &pr->P;
  const double a = sqrt(abar), sg = sqrt(omab);
  /* x0 = px x + ps src;  src = (qx x + q0 x0) / qd */
  double px = 1 / a, ps = omab / a, qx = -1, q0 = a, qd = omab; /* score, C score */
  if (k == CSDE_OUT_NOISE) px = 1 / a, ps = -sg / a, qx = 1, q0 = -a, qd = sg;
  if (k == CSDE_OUT_X0) px = 0, ps = 1, qx = 0, q0 = 1, qd = 1;
  if (k == CSDE_OUT_V) px = a, ps = -sg, qx = a, q0 = -1, qd = sg;
  if (k == CSDE_OUT_FLOW || !csde_schedule_is_vp(P->sched)) {
    /* any kind on any path (abar = alpha^2, omab = sigma^2 there), from s = ax x + as src:
     * x0 = ((1 + sigma^2 ax) x + sigma^2 as src) / alpha,
     * src = (-(1 + sigma^2 ax) x + alpha x0) / (sigma^2 as) */
    const double e = 1 + omab * ax;
    px = e / a, ps = omab * as / a, qx = -e, q0 = a, qd = omab * as;
  }
  const int th = pr->threads;
  (void)th;
  /* branch-free selects, so that the passes vectorize (elementwise: the same bits) */
  if (P->x0.kind == CSDE_X0_CLIP) { /* x0 <- min(max(x0, lo), hi) */
    const double lo = P->x0.lo, hi = P->x0.hi;
    const long n = (long)pr->n;
#ifdef _OPENMP
#pragma omp parallel for simd num_threads(th) schedule(static) if (th > 1)
#else
#pragma omp simd
#endif
    for (long i = 0; i < n; i++) {
      const double x0 = px * x[i] + ps * src[i], c = x0 < lo ? lo : x0 > hi ? hi : x0;
      const double back = (qx * x[i] + q0 * c) / qd;
      src[i] = c != x0 && fabs(src[i]) <= DBL_MAX ? back : src[i];
    }
    return;
  }
  /* Imagen: s = min(max(q_p(|x0|), 1), max) per sample, x0 <- min(max(x0, -s), s) / s */
  const long nb = (long)P->batch, per = (long)(P->tau * P->D);
  const double p = P->x0.p, smax = P->x0.max;
#ifdef _OPENMP
#pragma omp parallel for num_threads(th) schedule(static, 1) if (th > 1)
#endif
  for (long b = 0; b < nb; b++) {
    double *w = pr->x0ws + (size_t)csde_thread_num() * (size_t)per, *sb = src + b * per;
    const double *xb = x + b * per;
    double chk = 0; /* sum of 0 src_i and 0 x0_i: 0, or NaN when one is not finite */
#pragma omp simd reduction(+ : chk)
    for (long i = 0; i < per; i++) {
      const double x0 = px * xb[i] + ps * sb[i];
      chk += 0.0 * sb[i] + 0.0 * x0;
      w[i] = fabs(x0);
    }
    if (chk != 0) continue;
    const double s = fmin(fmax(csde_proc_quantile(w, (size_t)per, p), 1.0), smax);
    if (!(s < INFINITY)) continue;
#pragma omp simd
    for (long i = 0; i < per; i++) {
      const double x0 = px * xb[i] + ps * sb[i], c = (x0 < -s ? -s : x0 > s ? s : x0) / s;
      const double back = (qx * xb[i] + q0 * c) / qd;
      sb[i] = c != x0 ? back : sb[i];
    }
  }
}

/* ---- the first answer's check ----
 * An answer of the declared kind implies the noise prediction delta_hat = -sigma_t s
 * (s = ax x + as src = C grad log p_t as model_eval converts it, sigma_t = sqrt(1 - abar)).
 * Two facts hold for the exact answer at x ~ p_t, whatever the data law:
 *   Stein's identity E[x . C grad log p_t(x)] = -n mean C_ii (integration by parts,
 *   n = batch tau D), so  g = <x, delta_hat> / (sigma_t n mean C_ii)  has E g = 1;
 *   delta_hat = E[delta | x], so E |delta_hat|^2 <= E |delta|^2 = n mean C_ii, and
 *   r = RMS(delta_hat) / sqrt(mean C_ii) has E r^2 <= 1.
 * The check is made at the first call when that call is mostly noise (1 - abar >= 1/2:
 * every run from the prior; not an encode from data) on enough independent values
 * (dof = B D tr C / lambda_max(C) >= 16, a lower bound on the degrees of freedom of
 * |x|^2): g and r^2 of a right answer are then means whose relative spread is about
 * sqrt(2 / dof) <= 0.36, and g outside [0.1, 10] or r > 2 happens with probability
 * < 1e-5, while a sign error (a noise answer declared a score: g ~ -1), an x0 or v answer
 * read as noise (g ~ sqrt(abar)), a score declared C times one or the other way round
 * (r ~ sqrt(mean diag C^-1) or sqrt(mean diag C^2)) or a scale error of 10 falls outside.
 * The kind it looks like: each other kind k's delta_hat = ex x + eo out (model.h's
 * conversions in the denoiser view; a score is taken as C times one, as C is not
 * applied here, and its r_k not judged) gives g_k and r_k; k fits when 0.5 <= g_k <= 2,
 * r_k <= 2 and the answer carries at least half of g_k. A declared score (cscore) whose
 * g is right but r not looks like a cscore (score). Near t = 1 an x0 or v answer hardly moves g
 * (its coefficient is sqrt(abar)), so an answer no larger than x that fits as x0 from
 * x alone is named "x0 or v" (or flow, whose coefficient alpha vanishes as well). */
#define ANSWER_G_LO 0.1
#define ANSWER_G_HI 10.0
#define ANSWER_R_HI 2.0
#define ANSWER_MIN_DOF 16.0

static void answer_check(csde_proc *pr, double t, size_t step, const double *x,
                         const double *src, double ax, double as)
{
  const csde_problem *P = &pr->P;
  pr->answered = 1;
  pr->warning[0] = '\0';
  const int vp = csde_schedule_is_vp(P->sched);
  const double B = csde_schedule_int_beta(P->sched, t);
  /* sigma_t, alpha_t (VP: sqrt(abar)), n2 = alpha^2 + sigma^2 (VP: 1) */
  const double al = vp ? exp(-0.5 * B) : csde_schedule_path_alpha(P->sched, t);
  const double sgp = csde_schedule_path_sigma(P->sched, t);
  const double omab = vp ? -expm1(-B) : sgp * sgp, sg = sqrt(omab);
  const double n2 = vp ? 1.0 : al * al + omab;
  /* a flow u = alpha' x0 + sigma' delta: W = alpha' sigma - alpha sigma' (never 0 on a path
   * whose alpha falls and sigma rises) */
  const double da = csde_schedule_path_dalpha(P->sched, t),
               wr = da * sgp - al * csde_schedule_path_dsigma(P->sched, t);
  const size_t tau = P->tau, n = pr->n;
  double tr = 0, lo = 0, hi = 0;
  for (size_t i = 0; i < tau; i++) tr += csde_cov_entry(P->C, i, i);
  csde_cov_eig_bounds(P->C, &lo, &hi);
  if (!(omab / n2 >= 0.5) || !(tr > 0) || !(hi > 0) ||
      (double)P->batch * (double)P->D * tr / hi < ANSWER_MIN_DOF)
    return;
  const double *raw = pr->raw; /* the answer itself (src: C times it for a score) */
  double xx = 0, xs = 0, ss = 0, xo = 0, oo = 0; /* dot products of x, src, raw: one pass */
  for (size_t i = 0; i < n; i++) {
    xx += x[i] * x[i];
    xs += x[i] * src[i];
    ss += src[i] * src[i];
    xo += x[i] * raw[i];
    oo += raw[i] * raw[i];
  }
  if (!isfinite(xx + xs + ss + xo + oo) || !(xx > 0)) return; /* the NaN check reports */
  const double nc = (double)n * tr / (double)tau; /* n mean C_ii = E |delta|^2 */
  /* the declared kind: <x, delta_hat> = -sigma (ax xx + as xs), |delta_hat|^2 */
  const double g = -sg * (ax * xx + as * xs) / (sg * nc);
  const double r = sqrt(omab * (ax * ax * xx + 2 * ax * as * xs + as * as * ss) / nc);
  if (g >= ANSWER_G_LO && g <= ANSWER_G_HI && r <= ANSWER_R_HI) return;
  const csde_model_output kind = csde_model_output_of(P->model);
  const int scores = kind == CSDE_OUT_SCORE || kind == CSDE_OUT_CSCORE;
  const struct { csde_model_output k; const char *name; double ex, eo; } kinds[] = {
      {CSDE_OUT_CSCORE, kind == CSDE_OUT_SCORE ? "cscore" : "a score (score or cscore)", 0,
       -sg},                                         /* delta = -sigma C grad log p */
      {CSDE_OUT_NOISE, "noise", 0, 1},               /* delta = out */
      {CSDE_OUT_X0, "x0", 1 / sg, -al / sg},         /* delta = (x - alpha x0) / sigma */
      {CSDE_OUT_V, "v", sg / n2, al / n2},           /* delta = (sigma x + alpha v) / n2 */
      {CSDE_OUT_FLOW, "flow", da / wr, -al / wr}};   /* delta = (alpha' x - alpha u) / W */
  const char *best = NULL;
  double best_g = 0, g_x0 = 0, r_x0 = 0;
  for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
    const double ex = kinds[i].ex, eo = kinds[i].eo;
    const double gk = (ex * xx + eo * xo) / (sg * nc), ak = eo * xo / (sg * nc);
    const double rk = sqrt(fmax(ex * ex * xx + 2 * ex * eo * xo + eo * eo * oo, 0) / nc);
    if (kinds[i].k == CSDE_OUT_X0) g_x0 = gk, r_x0 = rk;
    if (kinds[i].k == kind) continue; /* (a declared cscore: the score's numbers are its) */
    /* (the score proxy's r is off by C: not judged) */
    const int rok = rk <= ANSWER_R_HI || (kinds[i].k == CSDE_OUT_CSCORE && !scores);
    if (gk >= 0.5 && gk <= 2 && rok && ak >= 0.5 * gk &&
        (!best || fabs(log(gk)) < fabs(log(best_g)))) {
      best = kinds[i].name;
      best_g = gk;
    }
  }
  const char *like = best; /* else: a score for C times one (or back), or x0/v */
  if (!like && scores && g >= ANSWER_G_LO && g <= ANSWER_G_HI)
    like = kind == CSDE_OUT_SCORE ? "cscore (C grad log p, as if C were applied twice)"
                                  : "score (grad log p, which C multiplies)";
  if (!like && kind != CSDE_OUT_X0 && kind != CSDE_OUT_V && g_x0 >= 0.5 && g_x0 <= 2 &&
      r_x0 <= ANSWER_R_HI && oo <= xx)
    like = "x0 or v (or flow: near t = 1 their answer hardly matters, so not which)";
  const char *kn = csde_model_output_name(kind);
  int k = snprintf(pr->warning, sizeof pr->warning,
                   "model '%s' declares its answer %s, but the first one (t = %.6g, step %zu) "
                   "does not look like one: taken as %s, it predicts the noise with Stein "
                   "ratio %.3g (<x, delta_hat> / (sigma n mean C_ii): about 1 for the right "
                   "kind) and RMS %.3g times the noise's (at most about 1 for the right "
                   "kind); ",
                   csde_model_name(P->model), kn, t, step, kn, g, r);
  if (k > 0 && (size_t)k < sizeof pr->warning && best)
    snprintf(pr->warning + k, sizeof pr->warning - (size_t)k,
             "it looks like %s (ratio %.3g taken as that)", best, best_g);
  else if (k > 0 && (size_t)k < sizeof pr->warning)
    snprintf(pr->warning + k, sizeof pr->warning - (size_t)k, "%s%s",
             like ? "it looks like " : "no kind fits it (a scale or sign error?)",
             like ? like : "");
}

const char *csde_proc_warning(const csde_proc *pr) { return pr->warning; }

/* The preview (solve.h, csde_preview_fn): x0 = (x + sigma^2 (ax x + as src)) / alpha, the
 * coefficients of csde_proc_denoise, into pr->x0 (one pass). */
static void preview_x0(csde_proc *pr, double t, const double *x, const double *src,
                       double ax, double as)
{
  double a, sg, l;
  csde_proc_view(pr, t, &a, &sg, &l);
  const double s2 = sg * sg, cx = (1 + s2 * ax) / a, cs = s2 * as / a;
  const long ln = (long)pr->n;
  double *x0 = pr->x0;
  const int th = pr->threads;
  (void)th;
#ifdef _OPENMP
#pragma omp parallel for simd num_threads(th) schedule(static) if (th > 1)
#else
#pragma omp simd
#endif
  for (long i = 0; i < ln; i++) x0[i] = cx * x[i] + cs * src[i];
  pr->x0_valid = 1;
}

/* The model's context at t (model.h): sigma = sqrt(expm1(B)), logsnr = -log(expm1(B)) (the
 * VP view); the path's alpha, sigma, lambda from its accessors; t' = sigma(t) on rf. */
static csde_model_ctx model_ctx(csde_proc *pr, double t, size_t step)
{
  const csde_problem *P = &pr->P;
  const csde_schedule *s = P->sched;
  const double B = csde_schedule_int_beta(s, t), sp = csde_schedule_path_sigma(s, t);
  const size_t N = csde_schedule_nsteps(s);
  csde_model_ctx c = {.t = t, .step = step, .batch = P->batch, .tau = P->tau, .D = P->D,
                      .abar = exp(-B), .sigma = sqrt(expm1(B)), .logsnr = -log(expm1(B)),
                      .index = N ? lround(t * (double)N) : -1, .C = P->C, .sched = s,
                      .errmsg = pr->model_msg, .errlen = sizeof pr->model_msg,
                      .cond = P->cond, .ncond = P->batch, .first = pr->first,
                      .alpha = csde_schedule_path_alpha(s, t), .sigma_path = sp,
                      .lambda = csde_schedule_path_lambda(s, t),
                      .t_shifted = is_rf(s) ? sp : t};
  pr->model_msg[0] = '\0';
  return c;
}

/* A model call's return code rc as a status: < 0 fatal, > 0 a smaller step asked for. */
static int model_rc(csde_proc *pr, int rc, const char *what, double t, size_t step,
                    csde_err *err)
{
  const csde_problem *P = &pr->P;
  pr->model_msg[sizeof pr->model_msg - 1] = '\0';
  const char *sep = pr->model_msg[0] ? ": " : "";
  if (rc < 0)
    return csde_err_set(err, CSDE_EBADFUNC,
                        "model '%s'%s returned fatal code %d at t = %.17g (step %zu)%s%s",
                        csde_model_name(P->model), what, rc, t, step, sep, pr->model_msg);
  if (rc > 0)
    return csde_err_set(err, CSDE_ERETRY,
                        "model '%s'%s asked for a smaller step (code %d) at t = %.17g (step "
                        "%zu)%s%s", csde_model_name(P->model), what, rc, t, step, sep,
                        pr->model_msg);
  return CSDE_SUCCESS;
}

/* On a Gaussian path, abar and omab of the conversions are alpha^2 and sigma^2 (MATH.md
 * "Gaussian paths"; the VP view's abar would be alpha^2 / (alpha^2 + sigma^2)); a VP
 * schedule keeps the values given. */
static void path_abar(const csde_schedule *s, double t, double *abar, double *omab)
{
  if (csde_schedule_is_vp(s)) return;
  const double a = csde_schedule_path_alpha(s, t), sg = csde_schedule_path_sigma(s, t);
  *abar = a * a, *omab = sg * sg;
}

/* model.h's conversions: s = C grad log p_t(x) = ax x + as src, src the model's answer (C
 * times it for a SCORE model); 1 - abar = omab = -expm1(-B(t)). */
static void answer_coefs(const csde_schedule *sc, double t, csde_model_output kind,
                         double abar, double omab, double *ax, double *as)
{
  *ax = 0, *as = 1; /* score (src = C out), C score */
  if (kind == CSDE_OUT_FLOW) { /* u = f x - 1/2 g^2 s:  s = 2 (f x - u) / g^2 */
    const double g2 = csde_schedule_path_g2(sc, t);
    *ax = 2 * csde_schedule_path_f(sc, t) / g2, *as = -2 / g2;
    return;
  }
  if (!csde_schedule_is_vp(sc)) { /* a path: abar = alpha^2, omab = sigma^2 */
    const double a = sqrt(abar), sg = sqrt(omab), n2 = abar + omab;
    if (kind == CSDE_OUT_NOISE) *as = -1.0 / sg;           /* s = -delta / sigma */
    if (kind == CSDE_OUT_X0) *ax = -1.0 / omab, *as = a / omab; /* s = (alpha x0 - x) / sigma^2 */
    if (kind == CSDE_OUT_V) /* delta = (sigma x + alpha v) / n2, s = -delta / sigma */
      *ax = -1.0 / n2, *as = -a / (sg * n2);
    return;
  }
  if (kind == CSDE_OUT_NOISE) *as = -1.0 / sqrt(omab); /* s = -delta / sqrt(1 - abar) */
  if (kind == CSDE_OUT_X0) /* s = -(x - sqrt(abar) x0) / (1 - abar) */
    *ax = -1.0 / omab, *as = sqrt(abar) / omab;
  if (kind == CSDE_OUT_V) /* delta = sqrt(1 - abar) x + sqrt(abar) v: s = -x - sqrt(abar / (1 - abar)) v */
    *ax = -1.0, *as = -sqrt(abar / omab);
}

/* A noise, x0 or v answer at sigma(t) = 0 (t = 0 on VP and rf: abar = 1) has no score:
 * its conversion divides by sigma (a flow's does not: drift_parts takes u itself). */
static int coefs_check(const csde_proc *pr, double t, csde_model_output kind, double ax,
                       double as, csde_err *err)
{
  if (kind == CSDE_OUT_FLOW || (isfinite(ax) && isfinite(as))) return CSDE_SUCCESS;
  return csde_err_blame(
      err, CSDE_PARAM_SPAN,
      csde_err_set(err, CSDE_EINVAL,
                   "model '%s' answers %s, which gives C grad log p only where sigma(t) > 0: "
                   "the solver evaluates it at t = %g, where sigma = %g; end the span above it "
                   "(e.g. t_end = 1e-3, the default), or take a solver that does not "
                   "evaluate the model at the span's end (euler)",
                   csde_model_name(pr->P.model), csde_model_output_name(kind), t,
                   csde_schedule_path_sigma(pr->P.sched, t)));
}

/* The kind the conversions read: a flow-shifted answer w = dx/dt' (rf:shift=S, t' = S t / q,
 * q = 1 + (S - 1) t) becomes the flow u = (dt'/dt) w = (S / q^2) w in place (dt'/dt is rf's
 * sigma'(t)), and is a flow from then on; any other kind is left as it is. */
static csde_model_output flow_unshift(csde_proc *pr, double t, double *raw)
{
  const csde_model_output kind = csde_model_output_of(pr->P.model);
  if (kind != CSDE_OUT_FLOW_SHIFTED) return kind;
  const double d = csde_schedule_path_dsigma(pr->P.sched, t); /* dt'/dt = S / q^2 */
  const long ln = (long)pr->n;
  const int th = pr->threads;
  (void)th;
#ifdef _OPENMP
#pragma omp parallel for simd num_threads(th) schedule(static) if (th > 1)
#else
#pragma omp simd
#endif
  for (long i = 0; i < ln; i++) raw[i] *= d; /* u = (dt'/dt) w */
  return CSDE_OUT_FLOW;
}

/* Call the model at (t, x) and express s = C grad log p_t(x) as s = ax x + as src, where
 * src is the model's output (or, for a SCORE model, C times it, written into dst). The
 * model writes into pr->out when there is one, else into dst (which must not be x). */
static int model_eval(csde_proc *pr, double t, size_t step, const double *x, double *dst,
                      double *ax, double *as, const double **src, csde_err *err)
{
  const csde_problem *P = &pr->P;
  pr->raw = pr->out ? pr->out : dst;
  csde_model_ctx c = model_ctx(pr, t, step);
  double abar = c.abar, omab = -expm1(-csde_schedule_int_beta(P->sched, t));
  path_abar(P->sched, t, &abar, &omab);
  int gst = 0; /* a guidance function's scale out of range */
  int rc = model_answer(pr, &c, x, pr->raw, &gst, err);
  if (gst) return gst;
  if ((rc = model_rc(pr, rc, "", t, step, err))) return rc;
  const csde_model_output kind = flow_unshift(pr, t, pr->raw);
  double *ans = pr->raw; /* the answer src: the model's output, or C times it */
  *src = pr->raw;
  answer_coefs(P->sched, t, kind, abar, omab, ax, as);
  if ((rc = coefs_check(pr, t, kind, *ax, *as, err))) return rc;
  if (kind == CSDE_OUT_SCORE) { /* s = C out */
    int s = csde_cov_apply(P->C, pr->ws, CSDE_COV_OP_C, P->batch, pr->raw, dst, err);
    if (s) return s;
    *src = ans = dst;
  }
  /* the model's own answer is judged first, then changed */
  if (!pr->answered) answer_check(pr, t, step, x, *src, *ax, *as);
  if (P->x0.kind != CSDE_X0_NONE && abar > 0 && omab > 0) /* sigma = 0: x0 = x, left */
    x0_post(pr, kind, abar, omab, x, ans, *ax, *as);
  if (pr->x0) preview_x0(pr, t, x, *src, *ax, *as);
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

int csde_proc_cscore_jvp(csde_proc *pr, double t, size_t step, const double *x,
                         const double *v, double *jv, csde_err *err)
{
  const csde_problem *P = &pr->P;
  if (!csde_model_has_jvp(P->model))
    return csde_err_set(err, CSDE_ENOTSUP, "model '%s' has no Jacobian-vector product",
                        csde_model_name(P->model));
  pr->raw = pr->out ? pr->out : jv;
  csde_model_ctx c = model_ctx(pr, t, step);
  double abar = c.abar, omab = -expm1(-csde_schedule_int_beta(P->sched, t));
  path_abar(P->sched, t, &abar, &omab);
  int rc = csde_model_call_jvp(P->model, &c, x, v, pr->raw);
  if ((rc = model_rc(pr, rc, "'s JVP", t, step, err))) return rc;
  const csde_model_output kind = flow_unshift(pr, t, pr->raw); /* J u v = (dt'/dt) J w v */
  double ax, as;
  const double *src = pr->raw;
  answer_coefs(P->sched, t, kind, abar, omab, &ax, &as);
  if ((rc = coefs_check(pr, t, kind, ax, as, err))) return rc;
  if (kind == CSDE_OUT_SCORE) { /* J (C out) v = C (J out v) */
    int s = csde_cov_apply(P->C, pr->ws, CSDE_COV_OP_C, P->batch, pr->raw, jv, err);
    if (s) return s;
    src = jv;
  }
  /* J s v = ax v + as J src v */
  return combine(pr, t, step, v, src, ax, as, jv, err);
}

void csde_proc_view(const csde_proc *pr, double t, double *alpha, double *sigma,
                    double *lambda)
{
  const csde_schedule *s = pr->P.sched;
  if (!csde_schedule_is_vp(s)) { /* a path: its own (alpha, sigma, lambda) */
    *alpha = csde_schedule_path_alpha(s, t);
    *sigma = csde_schedule_path_sigma(s, t);
    *lambda = csde_schedule_path_lambda(s, t);
    return;
  }
  double B = csde_schedule_int_beta(s, t); /* abar = e^-B, 1 - abar = -expm1(-B) */
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
  if (!csde_schedule_is_vp(P->sched)) *cx = csde_schedule_path_f(P->sched, t); /* f x */
  if (P->process == CSDE_PROC_FORWARD_SDE) return CSDE_SUCCESS;
  double ax = 0, as = 1;
  int s = model_eval(pr, t, step, x, dst, &ax, &as, src, err);
  if (s) return s;
  const int rev = P->process == CSDE_PROC_REVERSE_SDE;
  const csde_model_output kind = csde_model_output_of(P->model);
  if (kind == CSDE_OUT_FLOW || kind == CSDE_OUT_FLOW_SHIFTED) { /* (model_eval: w -> u) */
    /* s = 2 (f x - u) / g^2: PF-ODE f x - 1/2 g^2 s = u, reverse f x - g^2 s = 2 u - f x
     * (exactly, also where g^2 = 0) */
    *cx = rev ? -csde_schedule_path_f(P->sched, t) : 0.0, *cs = rev ? 2.0 : 1.0;
    return CSDE_SUCCESS;
  }
  /* reverse: f = -1/2 beta x - beta s;  PF-ODE: f = -1/2 beta (x + s);  s = ax x + as src;
   * a path: f x - g^2 s and f x - 1/2 g^2 s */
  const double g2 = csde_schedule_is_vp(P->sched) ? beta : csde_schedule_path_g2(P->sched, t);
  double c = rev ? -g2 : -0.5 * g2;
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
