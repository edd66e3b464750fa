/* The run: settings over borrowed objects -> span, solver or sampler grid, save plan
 * (corrsde/run.h). What `corrsde sample` and corrsde.solve() share. */
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/resource.h>

#include "core/spec.h"
#include "core/util.h"
#include "corrsde/rng.h"
#include "corrsde/run.h"
#include "corrsde/solve.h"
#include "noise/noise.h"
#include "run/run_internal.h"
#include "solve/stepper.h"

#define TIME_TOL 1e-12

/* The discrete samplers after csde_process's four continuous processes: names and forms. */
static const char *const discrete_names[] = {"ddpm", "ddim"};
static const char *const discrete_forms[] = {"ddpm", "ddim[:eta=E]"};
#define SAVE_FORMS "final, every:K (K a positive integer) or times:t1,t2,... (times in [0, 1])"

const char *csde_run_process_name(csde_run_process p)
{
  if ((unsigned)p <= CSDE_RUN_PFODE_ENCODE) return csde_process_name((csde_process)p);
  return (unsigned)p <= CSDE_RUN_DDIM ? discrete_names[p - CSDE_RUN_DDPM] : "unknown";
}

char *csde_run_process_names(char *buf, size_t len)
{
  if (!buf || !len) return buf;
  csde_process_names(buf, len);
  size_t o = strlen(buf);
  for (int i = CSDE_RUN_DDPM; i <= CSDE_RUN_DDIM && o < len; i++)
    o += (size_t)snprintf(buf + o, len - o, ", %s", discrete_forms[i - CSDE_RUN_DDPM]);
  return buf;
}

int csde_run_process_parse(const char *spec, csde_run_process *p, double *eta, csde_err *err)
{
  double e = 0;
  if (!spec) spec = "";
  for (int i = 0; i <= CSDE_RUN_DDIM; i++)
    if (!strcmp(spec, csde_run_process_name((csde_run_process)i))) {
      *p = (csde_run_process)i;
      if (eta) *eta = 0;
      return CSDE_SUCCESS;
    }
  if (!strncmp(spec, "ddim:", 5)) {
    csde_spec sp;
    static const char *const keys[] = {"eta", NULL};
    csde_err e2;
    if (csde_spec_parse(spec, "process", &sp, &e2) || csde_spec_check_keys(&sp, keys, &e2) ||
        csde_spec_double(&sp, "eta", 0.0, &e, &e2)) {
      csde_err_set(err, CSDE_EINVAL, "'%s': %s (expected ddim[:eta=E], 0 <= E <= 1)", spec,
                   e2.msg);
      return csde_err_blame(err, CSDE_PARAM_PROCESS, CSDE_EINVAL);
    }
    if (!(e >= 0 && e <= 1)) {
      csde_err_set(err, CSDE_EINVAL, "'%s': eta must be in [0, 1] (expected ddim[:eta=E])", spec);
      return csde_err_blame(err, CSDE_PARAM_PROCESS, CSDE_EINVAL);
    }
    *p = CSDE_RUN_DDIM;
    if (eta) *eta = e;
    return CSDE_SUCCESS;
  }
  char forms[256];
  csde_err_set(err, CSDE_EINVAL, "expected one of %s, got '%s'",
               csde_run_process_names(forms, sizeof forms), spec);
  return csde_err_blame(err, CSDE_PARAM_PROCESS, CSDE_EINVAL);
}

csde_run_settings csde_run_default_settings(void)
{
  csde_run_settings s;
  memset(&s, 0, sizeof s);
  s.process = "reverse-sde";
  s.steps = 100;
  s.grid = "uniform";
  s.t_start = s.t_end = NAN;
  s.noise = "stream";
  s.threads = 1;
  s.max_nfe = csde_solve_default_params().max_nfe;
  s.save = "final";
  return s;
}

/* ---- the span ---- */

static int set_span(csde_run *r, const csde_run_settings *s, csde_err *err)
{
  csde_problem d = csde_problem_default();
  double T = d.T, eps = d.eps;
  int ts = !isnan(s->t_start), te = !isnan(s->t_end);
  /* the path's span [lo, hi] (VP: [0, 1]; edm: [smin, smax]) */
  const int vp = csde_schedule_is_vp(r->sched);
  double lo = 0, hi = 1;
  if (!vp) csde_schedule_path_span(r->sched, &lo, &hi);
  if ((ts && !(s->t_start >= lo && s->t_start <= hi)) ||
      (te && !(s->t_end >= lo && s->t_end <= hi))) {
    if (vp)
      csde_err_set(err, CSDE_EINVAL, "expected times in [0, 1], got t_start %g and t_end %g",
                   s->t_start, s->t_end);
    else
      csde_err_set(err, CSDE_EINVAL, "expected times in the span [%g, %g] of the %s path "
                                     "(schedule '%s'), got t_start %g and t_end %g",
                   lo, hi, csde_schedule_path_name(r->sched), csde_schedule_spec(r->sched),
                   s->t_start, s->t_end);
    return csde_err_blame(err, CSDE_PARAM_SPAN, CSDE_EINVAL);
  }
  T = csde_problem_t_max(r->sched); /* 1, or 0.999 for cosine (beta(1) = inf); paths: t_max */
  if (eps < lo) eps = lo; /* edm: the default 1e-3 is below smin */
  switch (r->process) {
  case CSDE_RUN_FORWARD_SDE:
    if (ts && s->t_start != lo) {
      csde_err_set(err, CSDE_EINVAL, "forward-sde starts at t = %g (expected %g, got %g)", lo,
                   lo, s->t_start);
      return csde_err_blame(err, CSDE_PARAM_SPAN, CSDE_EINVAL);
    }
    if (te) T = s->t_end;
    if (!(T > lo)) {
      csde_err_set(err, CSDE_EINVAL, "forward-sde runs from %g to t_end; expected %g < t_end "
                                     "<= %g, got %g", lo, lo, hi, T);
      return csde_err_blame(err, CSDE_PARAM_SPAN, CSDE_EINVAL);
    }
    r->t0 = lo;
    r->t1 = T;
    eps = lo; /* unused by the forward SDE; the library wants eps < T */
    break;
  case CSDE_RUN_PFODE_ENCODE:
    if (ts) eps = s->t_start;
    if (te) T = s->t_end;
    if (!(eps < T)) {
      csde_err_set(err, CSDE_EINVAL, "pf-ode-encode runs forwards; expected t_start < t_end, "
                                     "got %g and %g", eps, T);
      return csde_err_blame(err, CSDE_PARAM_SPAN, CSDE_EINVAL);
    }
    r->t0 = eps;
    r->t1 = T;
    break;
  case CSDE_RUN_DDPM:
    if (ts || te) {
      csde_err_set(err, CSDE_EINVAL, "ddpm runs its schedule from t = 1 to t = 0 (set no "
                                     "times, or use ddim)");
      return csde_err_blame(err, CSDE_PARAM_SPAN, CSDE_EINVAL);
    }
    r->t0 = 1;
    r->t1 = 0;
    T = 1;
    eps = 0; /* the chain's grid t_k = (N - k) / N ends at 0 */
    break;
  default: /* reverse-sde, pf-ode, ddim: T -> eps */
    if (ts) T = s->t_start;
    if (te) eps = s->t_end;
    if (!(eps < T)) {
      csde_err_set(err, CSDE_EINVAL, "%s runs backwards; expected t_end < t_start, got "
                                     "t_start %g and t_end %g",
                   csde_run_process_name(r->process), T, eps);
      return csde_err_blame(err, CSDE_PARAM_SPAN, CSDE_EINVAL);
    }
    r->t0 = T;
    r->t1 = eps;
  }
  r->P.T = T;
  r->P.eps = eps;
  return CSDE_SUCCESS;
}

/* ---- the save plan ---- */

static int save_error(csde_err *err, const char *fmt, const char *spec, double v)
{
  char m[CSDE_MSG_MAX];
  snprintf(m, sizeof m, fmt, v);
  csde_err_set(err, CSDE_EINVAL, "'%s': %s (expected %s)", spec, m, SAVE_FORMS);
  return csde_err_blame(err, CSDE_PARAM_SAVE, CSDE_EINVAL);
}

static int parse_save(csde_run *r, const char *s, csde_err *err)
{
  if (!strcmp(s, "final")) {
    r->save_kind = CSDE_SAVE_FINAL;
    return CSDE_SUCCESS;
  }
  if (!strncmp(s, "every:", 6)) {
    size_t v = 0;
    int ok = s[6] != '\0';
    for (const char *p = s + 6; ok && *p; p++) {
      if (*p < '0' || *p > '9' || v > (SIZE_MAX - 9) / 10) ok = 0;
      else v = v * 10 + (size_t)(*p - '0');
    }
    if (!ok || v == 0) return save_error(err, "every needs a positive integer K%.0s", s, 0);
    r->save_kind = CSDE_SAVE_EVERY;
    r->every = v;
    return CSDE_SUCCESS;
  }
  if (!strncmp(s, "times:", 6)) {
    csde_err e2;
    if (csde_parse_double_list(s + 6, &r->times, &r->ntimes, &e2)) {
      csde_err_set(err, CSDE_EINVAL, "'%s': %s (expected %s)", s, e2.msg, SAVE_FORMS);
      return csde_err_blame(err, CSDE_PARAM_SAVE, CSDE_EINVAL);
    }
    for (size_t i = 0; i < r->ntimes; i++)
      if (!(r->times[i] >= 0 && r->times[i] <= 1))
        return save_error(err, "time %g is outside [0, 1]", s, r->times[i]);
    r->save_kind = CSDE_SAVE_TIMES;
    return CSDE_SUCCESS;
  }
  csde_err_set(err, CSDE_EINVAL, "expected %s, got '%s'", SAVE_FORMS, s);
  return csde_err_blame(err, CSDE_PARAM_SAVE, CSDE_EINVAL);
}

/* Times inside the span; an adaptive solve lands on them exactly (sorted along the
 * solve, those at the start taken as the start state), a fixed grid saves the nearest
 * node (mask). */
static int plan_times(csde_run *r, csde_err *err)
{
  double lo = fmin(r->t0, r->t1), hi = fmax(r->t0, r->t1);
  for (size_t i = 0; i < r->ntimes; i++)
    if (r->times[i] < lo - TIME_TOL || r->times[i] > hi + TIME_TOL) {
      csde_err_set(err, CSDE_EINVAL, "'%s': time %g is outside the run's span [%g, %g] "
                                     "(expected times between its start and end)",
                   r->s.save, r->times[i], lo, hi);
      return csde_err_blame(err, CSDE_PARAM_SAVE, CSDE_EINVAL);
    }
  if (r->grid) {
    r->mask = calloc(r->nsteps + 1, 1);
    if (!r->mask) return csde_err_set(err, CSDE_ENOMEM, "out of memory for the save plan");
    for (size_t i = 0; i < r->ntimes; i++) {
      size_t best = 0; /* the nearest node */
      for (size_t k = 1; k <= r->nsteps; k++)
        if (fabs(r->grid[k] - r->times[i]) < fabs(r->grid[best] - r->times[i])) best = k;
      r->mask[best] = 1;
    }
    return CSDE_SUCCESS;
  }
  r->out = malloc((r->ntimes ? r->ntimes : 1) * sizeof *r->out);
  if (!r->out) return csde_err_set(err, CSDE_ENOMEM, "out of memory for the save plan");
  memcpy(r->out, r->times, r->ntimes * sizeof *r->out);
  double dir = r->t1 > r->t0 ? 1 : -1;
  for (size_t i = 1; i < r->ntimes; i++) /* insertion sort: few values */
    for (size_t j = i; j > 0 && dir * (r->out[j - 1] - r->out[j]) > 0; j--) {
      double tmp = r->out[j];
      r->out[j] = r->out[j - 1];
      r->out[j - 1] = tmp;
    }
  size_t k0 = 0;
  while (k0 < r->ntimes && fabs(r->out[k0] - r->t0) <= TIME_TOL * fmax(1.0, fabs(r->t0))) k0++;
  r->save_start = k0 > 0;
  r->nout = r->ntimes - k0;
  memmove(r->out, r->out + k0, r->nout * sizeof *r->out);
  return CSDE_SUCCESS;
}

/* The states the plan saves at most, if known. */
static size_t capacity(const csde_run *r)
{
  size_t c = 1; /* final: the end */
  if (r->save_kind == CSDE_SAVE_EVERY) /* steps 0, K, 2K, ... and the end */
    return r->nsteps ? r->nsteps / r->every + 1 + (r->nsteps % r->every != 0) : 0;
  if (r->mask) /* the marked nodes before the end, and the end */
    for (size_t k = 0; k < r->nsteps; k++) c += r->mask[k];
  else if (r->save_kind == CSDE_SAVE_TIMES) /* adaptive: the first state past each time */
    c = r->nout + 1 + (size_t)r->save_start;
  return c;
}

static int observe(size_t step, double t, const double *x, void *user);
static int preview(size_t step, double t, const double *x, const double *x0, void *user);

/* ---- classifier-free guidance (problem.h, csde_guidance) ---- */

#define GUIDANCE_FORMS "W, w1,...,w_tau (one per frame) or linear:A,B (finite, |w| <= 1000)"

/* A guidance scale or function is given (NULL and "none": off). */
static int guidance_given(const csde_run_settings *s)
{
  return s->guidance_fn || (s->guidance && strcmp(s->guidance, "none"));
}

static int guidance_fail(csde_err *err, const char *param, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static int guidance_fail(csde_err *err, const char *param, const char *fmt, ...)
{
  char m[CSDE_MSG_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(m, sizeof m, fmt, ap);
  va_end(ap);
  csde_err_set(err, CSDE_EINVAL, "%s", m);
  return csde_err_blame(err, param, CSDE_EINVAL);
}

/* The numbers of a spec "a,b,..." (n of them at most) into v: their count, or -1 when one
 * is not a number. */
static long guidance_numbers(const char *spec, double *v, size_t n)
{
  size_t k = 0;
  const char *p = spec;
  char buf[64];
  for (;;) {
    const char *comma = strchr(p, ',');
    size_t len = comma ? (size_t)(comma - p) : strlen(p);
    if (len >= sizeof buf) return -1;
    memcpy(buf, p, len);
    buf[len] = '\0';
    double d;
    if (csde_parse_double(buf, &d)) return -1;
    if (k < n) v[k] = d;
    k++;
    if (!comma) break;
    p = comma + 1;
  }
  return (long)k;
}

/* The settings' conditioning and guidance into r->P (cond, guidance; r->w_frames owns the
 * per-frame scales): the spec parsed, the errors of run.h. */
static int set_guidance(csde_run *r, const csde_run_settings *s, csde_err *err)
{
  csde_guidance *g = &r->P.guidance;
  const char *spec = s->guidance;
  r->P.cond = s->cond;
  memset(g, 0, sizeof *g);
  if (!guidance_given(s)) {
    if (s->uncond)
      return guidance_fail(err, CSDE_PARAM_COND, "an unconditional conditioning (uncond) "
                           "without guidance: give a guidance scale (expected %s)",
                           GUIDANCE_FORMS);
    return CSDE_SUCCESS;
  }
  if (!s->uncond)
    return guidance_fail(err, CSDE_PARAM_GUIDANCE, "guidance '%s' needs the unconditional "
                         "conditioning (uncond)", spec && !s->guidance_fn ? spec : "function");
  if (r->process == CSDE_RUN_FORWARD_SDE)
    return guidance_fail(err, CSDE_PARAM_GUIDANCE, "forward-sde never calls the model: it "
                         "is not guided (give no guidance)");
  g->uncond = s->uncond;
  g->split = s->guidance_split != 0;
  if (s->guidance_fn) {
    g->fn = s->guidance_fn;
    g->fn_user = s->guidance_user;
    return CSDE_SUCCESS;
  }
  const size_t tau = r->tau;
  const int linear = !strncmp(spec, "linear:", 7);
  const char *body = linear ? spec + 7 : spec;
  if (!(r->w_frames = malloc(tau * sizeof *r->w_frames)))
    return csde_err_set(err, CSDE_ENOMEM, "out of memory");
  double ab[2];
  long k = linear ? guidance_numbers(body, ab, 2) : guidance_numbers(body, r->w_frames, tau);
  if (k < 0 || (linear && k != 2))
    return guidance_fail(err, CSDE_PARAM_GUIDANCE, "'%s': expected %s", spec, GUIDANCE_FORMS);
  if (!linear && k > 1 && (size_t)k != tau)
    return guidance_fail(err, CSDE_PARAM_GUIDANCE, "'%s': %ld scales for %zu frames "
                         "(expected one scale or one per frame)", spec, k, tau);
  if (linear) /* w_f = A + (B - A) f / (tau - 1) */
    for (size_t f = 0; f < tau; f++)
      r->w_frames[f] = tau > 1 ? ab[0] + (ab[1] - ab[0]) * (double)f / (double)(tau - 1) : ab[0];
  const size_t nw = linear || k > 1 ? tau : 1;
  for (size_t f = 0; f < nw; f++)
    if (!(fabs(r->w_frames[f]) <= CSDE_GUIDANCE_MAX))
      return guidance_fail(err, CSDE_PARAM_GUIDANCE, "'%s': scale %g%s is not finite or "
                           "beyond %g in size (expected %s)", spec, r->w_frames[f],
                           nw > 1 ? " of a frame" : "", CSDE_GUIDANCE_MAX, GUIDANCE_FORMS);
  if (nw > 1)
    g->w_frames = r->w_frames;
  else
    g->w = r->w_frames[0];
  return CSDE_SUCCESS;
}

/* ---- memory (corrsde/run.h, csde_run_memory) ---- */

/* What the estimate needs, resolved from a run or from bare settings. */
typedef struct {
  csde_run_process process;
  const csde_solver_type *type; /* NULL: unknown (none of its buffers counted) */
  int adaptive, path, walk_k;   /* walk_k: the tree's depth when it walks, else -1 */
  size_t capacity;              /* saved states, an upper bound (keep_saved) */
  int keep_saved, threads;
  double churn, eta;            /* edm-heun's churn, ddim's eta */
  const csde_cov *C;            /* may be NULL */
  const csde_model *model;      /* may be NULL */
  size_t batch, tau, D, extra;
  int x0_threshold;             /* x0 thresholding: one sample's |x0| per thread */
  int guided, split, preview;   /* guidance's scratch (problem.h), the preview's x0 */
  int corrector;                /* the Langevin corrector: 2 states and a workspace */
} mem_in;

static size_t to_size(double b) { return b >= (double)SIZE_MAX ? SIZE_MAX : (size_t)b; }

/* The buffers csde_solver_alloc, the process layer, the noise, csde_run_prior and the
 * writer make, as solve.c, process.c, noise.c and tree.c size them. */
static void mem_estimate(const mem_in *in, csde_run_memory *m)
{
  const double S = 8.0 * (double)in->batch * (double)in->tau * (double)in->D; /* a state */
  const csde_solver_type *T = in->type;
  const int sde = in->process == CSDE_RUN_FORWARD_SDE || in->process == CSDE_RUN_REVERSE_SDE;
  const int uses_model = in->process != CSDE_RUN_FORWARD_SDE;
  const int own = T && T->own_noise;
  const int score = in->model && csde_model_output_of(in->model) == CSDE_OUT_SCORE;
  const int ddim = T && !strcmp(T->name, "ddim"), ddpm = T && !strcmp(T->name, "ddpm");
  double states = 1, nws = 0; /* the caller's x */
  if (T) {
    const int need_dW = sde && (!own || in->path);
    states += (in->adaptive && T->nbuf_adaptive ? T->nbuf_adaptive : T->nbuf) + T->nbuf_own +
              need_dW + (need_dW && T->area);
  }
  states += uses_model && (score || own);        /* the model's output */
  states += uses_model && score && own;          /* ... and C times it */
  states += in->churn > 0;                       /* edm-heun's churn noise */
  states += uses_model && in->guided ? (in->split ? 1 : 4) : 0; /* process.c's gx */
  states += uses_model && in->preview;           /* process.c's x0 */
  states += 2.0 * (in->corrector != 0);          /* corrector.c's C s and V' z */
  nws = sde + (uses_model && score) + (in->churn > 0) + (ddim && in->eta > 0) + ddpm +
        (in->process != CSDE_RUN_FORWARD_SDE && in->process != CSDE_RUN_PFODE_ENCODE) +
        (in->corrector != 0);
  double noise = 0;
  if (sde && in->path) { /* the tree: 2 (k + 2 + 3) or 2 x 3 values of batch x nd x D */
    const double len = 8.0 * (double)in->batch * (double)in->D *
                       (double)(in->C ? csde_cov_noise_dim(in->C) : in->tau);
    const double npair = (in->walk_k >= 0 ? in->walk_k + 2 : 0) + 3;
    noise = len * (2 * npair + 2 + (in->walk_k >= 0 ? 0 : 3));
  }
  double ws = in->C ? nws * (double)csde_cov_ws_size(in->C, in->D, in->threads) : 0;
  if (uses_model && in->model && csde_model_is_gaussian(in->model) &&
      !csde_model_gaussian_has_dense(in->model)) /* six tau x tau parts, made on first use */
    ws += 6.0 * 8.0 * (double)in->tau * (double)in->tau;
  if (uses_model && in->x0_threshold) /* process.c's x0ws */
    ws += 8.0 * (double)(in->threads < (int)in->batch ? (size_t)in->threads : in->batch) *
          (double)in->tau * (double)in->D;
  m->states = to_size(states * S);
  m->noise = to_size(noise);
  m->workspaces = to_size(ws);
  m->saved = to_size(in->keep_saved ? (double)in->capacity * S : 0);
  m->writer = to_size(S / 2);
  m->extra = in->extra;
  m->total = to_size(states * S + noise + ws + (double)m->saved + S / 2 + (double)in->extra);
}

/* A "Key:   123 kB" line of a /proc file, in bytes; SIZE_MAX when absent. */
static size_t proc_kb(const char *path, const char *key)
{
  FILE *fp = fopen(path, "r");
  char line[256];
  size_t v = SIZE_MAX, n = strlen(key);
  unsigned long long kb;
  while (fp && fgets(line, sizeof line, fp))
    if (!strncmp(line, key, n) && sscanf(line + n, " %llu", &kb) == 1) {
      v = kb > SIZE_MAX / 1024 ? SIZE_MAX : (size_t)kb * 1024;
      break;
    }
  if (fp) fclose(fp);
  return v;
}

/* The memory a run may take: max_memory, else the least of MemAvailable and the room
 * under the soft RLIMIT_AS (beside VmSize) and RLIMIT_DATA (beside VmData). An
 * environment read, as the issue asks; max_memory overrides it. */
static void mem_available(size_t max_memory, csde_run_memory *m, size_t *lim, size_t *used)
{
  *lim = *used = 0;
  m->available = SIZE_MAX;
  m->limit = NULL;
  if (max_memory) {
    if (max_memory != SIZE_MAX) m->available = max_memory, m->limit = "max_memory";
    return;
  }
  size_t a = proc_kb("/proc/meminfo", "MemAvailable:");
  if (a != SIZE_MAX) m->available = a, m->limit = "MemAvailable";
  static const struct {
    int res;
    const char *name, *vm;
  } rl[] = {{RLIMIT_AS, "RLIMIT_AS", "VmSize:"}, {RLIMIT_DATA, "RLIMIT_DATA", "VmData:"}};
  for (int i = 0; i < 2; i++) {
    struct rlimit r;
    if (getrlimit(rl[i].res, &r) || r.rlim_cur == RLIM_INFINITY) continue;
    size_t u = proc_kb("/proc/self/status", rl[i].vm), cur = (size_t)r.rlim_cur;
    if (u == SIZE_MAX) u = 0;
    size_t room = cur > u ? cur - u : 0;
    if (room < m->available) {
      m->available = room;
      m->limit = rl[i].name;
      *lim = cur;
      *used = u;
    }
  }
}

/* Refuse a run whose estimate exceeds the memory available: CSDE_ENOMEM, param size. */
static int mem_check(csde_run_memory *m, size_t max_memory, csde_err *err)
{
  size_t lim, used;
  mem_available(max_memory, m, &lim, &used);
  if (m->total <= m->available) return CSDE_SUCCESS;
  static const char *const names[] = {"states", "path noise", "workspaces", "saved states",
                                      "writer", "other"};
  const size_t parts[] = {m->states, m->noise, m->workspaces, m->saved, m->writer, m->extra};
  char need[32], avail[32], list[256] = "", b[32], where[160];
  size_t o = 0;
  for (int i = 0; i < 6; i++)
    if (parts[i]) {
      csde_fmt_bytes((double)parts[i], b, sizeof b);
      o += (size_t)snprintf(list + o, sizeof list - o, "%s%s %s", o ? ", " : "", names[i], b);
      if (o >= sizeof list) o = sizeof list - 1;
    }
  csde_fmt_bytes((double)m->total, need, sizeof need);
  csde_fmt_bytes((double)m->available, avail, sizeof avail);
  if (lim) {
    char l1[32], l2[32];
    csde_fmt_bytes((double)lim, l1, sizeof l1);
    csde_fmt_bytes((double)used, l2, sizeof l2);
    snprintf(where, sizeof where, "%s: a soft limit of %s, %s of it in use", m->limit, l1, l2);
  } else {
    snprintf(where, sizeof where, "%s", m->limit);
  }
  csde_err_set(err, CSDE_ENOMEM, "the run needs %s (%s), but %s %s available (%s)", need, list,
               avail, m->available == 1 ? "is" : "are", where);
  return csde_err_blame(err, CSDE_PARAM_SIZE, CSDE_ENOMEM);
}

/* The states a save plan keeps at most, before the grid is known. */
static size_t capacity_bound(csde_save_kind k, size_t every, size_t ntimes, size_t steps,
                             int adaptive)
{
  if (k == CSDE_SAVE_EVERY) return adaptive || !every ? 0 : steps / every + 2;
  if (k == CSDE_SAVE_TIMES) return ntimes + 2;
  return 1;
}

/* The tree's depth when path noise walks it: 2^k fixed steps of a grid kind (not list). */
static int walk_depth(int path, int adaptive, const char *grid, size_t steps)
{
  if (!path || adaptive || !steps || (steps & (steps - 1))) return -1;
  if (grid && !strncmp(grid, "list", 4) && (grid[4] == ':' || grid[4] == '\0')) return -1;
  int k = 0;
  while (((size_t)1 << k) < steps) k++;
  return k;
}

const char *csde_run_default_solver(csde_run_process p, int adaptive)
{
  return p == CSDE_RUN_DDPM   ? "ddpm"
         : p == CSDE_RUN_DDIM ? "ddim"
         : adaptive && (p == CSDE_RUN_FORWARD_SDE || p == CSDE_RUN_REVERSE_SDE)
             ? "heun" /* path noise: adaptive steps on one Brownian path */
         : adaptive ? "rk45"
                    : "em";
}

/* The solver of a process: the settings' unless a discrete sampler runs. */
static const char *default_solver(csde_run_process p, int adaptive, const char *solver)
{
  return p == CSDE_RUN_DDPM || p == CSDE_RUN_DDIM || !solver
             ? csde_run_default_solver(p, adaptive)
             : solver;
}

static int parse_save(csde_run *r, const char *s, csde_err *err);

int csde_run_check_memory(const csde_run_settings *s, const csde_cov *C,
                          const csde_model *model, size_t batch, size_t tau, int shape_rank,
                          const size_t *shape, size_t extra, csde_run_memory *m,
                          csde_err *err)
{
  csde_run_memory mm;
  memset(&mm, 0, sizeof mm);
  mm.available = SIZE_MAX;
  if (m) *m = mm;
  if (!s || !shape || shape_rank < 1 || shape_rank > 3) return CSDE_SUCCESS;
  mem_in in;
  memset(&in, 0, sizeof in);
  csde_err e;
  csde_run r; /* for parse_save only */
  memset(&r, 0, sizeof r);
  int bad = csde_run_process_parse(s->process ? s->process : "reverse-sde", &in.process,
                                   &in.eta, &e) ||
            parse_save(&r, s->save ? s->save : "final", &e);
  free(r.times);
  if (bad) return CSDE_SUCCESS; /* csde_run_alloc names what is wrong */
  const int discrete = in.process >= CSDE_RUN_DDPM;
  in.adaptive = !discrete && (s->rtol > 0 || s->atol > 0);
  csde_solve_params par = csde_solve_default_params();
  char name[64];
  if (csde_solver_spec_parse(default_solver(in.process, in.adaptive, s->solver), &par, name,
                             sizeof name, &e) == CSDE_SUCCESS)
    in.type = csde_solver_lookup(name);
  in.churn = par.s_churn;
  if (!discrete) in.eta = par.eta;
  in.path = s->noise && !strcmp(s->noise, "path");
  size_t steps = in.adaptive || in.process == CSDE_RUN_DDPM ? 0 : s->steps;
  in.walk_k = walk_depth(in.path, in.adaptive, s->grid, steps);
  in.capacity = capacity_bound(r.save_kind, r.every, r.ntimes, steps, in.adaptive);
  in.keep_saved = s->keep_saved;
  in.threads = s->threads > 0 ? s->threads : 1;
  csde_x0_post x0;
  in.x0_threshold = !csde_x0_post_parse(s->x0_clip, s->x0_threshold, &x0, &e) &&
                    x0.kind == CSDE_X0_THRESHOLD;
  in.guided = guidance_given(s) && s->uncond;
  in.split = s->guidance_split != 0;
  in.preview = s->preview != 0;
  {
    size_t ck;
    double cr;
    in.corrector = !csde_corrector_parse(s->corrector, &ck, &cr, &e) && ck > 0;
  }
  in.C = C;
  in.model = model;
  in.batch = batch;
  in.tau = C ? csde_cov_tau(C) : tau;
  in.D = 1;
  for (int i = 0; i < shape_rank; i++) in.D = shape[i] && in.D > SIZE_MAX / shape[i] ? SIZE_MAX : in.D * shape[i];
  in.extra = extra;
  mem_estimate(&in, &mm);
  int st = mem_check(&mm, s->max_memory, err);
  if (m) *m = mm;
  return st;
}

/* sqrt(max_i C_ii): the noise's standard deviation per value (Toeplitz: sqrt(c_0)). */
static double noise_scale(const csde_cov *C)
{
  size_t tau = csde_cov_tau(C);
  double m = csde_cov_entry(C, 0, 0);
  for (size_t i = 1; !csde_cov_is_toeplitz(C) && i < tau; i++) m = fmax(m, csde_cov_entry(C, i, i));
  return sqrt(fmax(m, 0.0));
}

/* ---- alloc ---- */

static char *dup_or(const char *s, const char *dflt)
{
  const char *v = s ? s : dflt;
  if (!v) return NULL;
  size_t n = strlen(v) + 1;
  char *d = malloc(n);
  if (d) memcpy(d, v, n);
  return d;
}

void csde_run_free(csde_run *r)
{
  if (!r) return;
  csde_run_rci_free(r); /* a reverse-communication run still going: stopped, joined */
  csde_solver_free(r->solver);
  free(r->grid);
  free(r->hbeta);
  free(r->mask);
  free(r->out);
  free(r->times);
  free(r->w_frames);
  for (size_t i = 0; i < sizeof r->str / sizeof r->str[0]; i++) free(r->str[i]);
  free(r);
}

/* Copy the strings of the settings (r->s points at the copies). */
static int copy_settings(csde_run *r, const csde_run_settings *s, const char *solver)
{
  r->s = *s;
  const char **f[] = {&r->s.process, &r->s.solver, &r->s.grid, &r->s.noise, &r->s.save,
                      &r->s.model_spec, &r->s.cov_method, &r->s.init, &r->s.command_line,
                      &r->s.x0_clip, &r->s.x0_threshold, &r->s.guidance, &r->s.corrector};
  const char *dflt[] = {"reverse-sde", solver, "uniform", "stream", "final",
                        csde_model_name(r->P.model), csde_cov_method_name(csde_cov_method_of(r->P.C)),
                        NULL, "", NULL, NULL, NULL, "none"};
  for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
    const char *v = i == 1 ? solver : *f[i];
    r->str[i] = dup_or(v, dflt[i]);
    if (!r->str[i] && (v || dflt[i])) return CSDE_ENOMEM;
    *f[i] = r->str[i];
  }
  return CSDE_SUCCESS;
}

/* The frame shape, D and the state length n = batch tau D (CSDE_PARAM_SIZE blamed). */
static int set_shape(csde_run *r, size_t batch, int shape_rank, const size_t *shape,
                     csde_err *err)
{
  int st;
  r->D = 1;
  for (int i = 0; i < shape_rank; i++) {
    r->shape[i] = shape[i];
    if (shape[i] == 0 || r->D > SIZE_MAX / shape[i]) {
      st = csde_err_set(err, CSDE_EINVAL, "the frame shape needs sizes >= 1 that fit in memory");
      return csde_err_blame(err, CSDE_PARAM_SIZE, st);
    }
    r->D *= shape[i];
  }
  r->n = batch;
  if (r->n > SIZE_MAX / r->tau || (r->n *= r->tau) > SIZE_MAX / r->D ||
      (r->n *= r->D) > SIZE_MAX / 8 / sizeof(double)) {
    st = csde_err_set(err, CSDE_EINVAL, "%zu x %zu x %zu values do not fit in memory", batch,
                      r->tau, r->D);
    return csde_err_blame(err, CSDE_PARAM_SIZE, st);
  }
  return CSDE_SUCCESS;
}

/* The process, its eta and whether the run is adaptive, with the tolerances' checks. */
static int set_process(csde_run *r, const csde_run_settings *s, csde_err *err)
{
  int st;
  if ((st = csde_run_process_parse(s->process ? s->process : "reverse-sde", &r->process,
                                   &r->eta, err)))
    return st;
  int discrete = r->process >= CSDE_RUN_DDPM;
  r->adaptive = !discrete && (s->rtol > 0 || s->atol > 0);
  if (!discrete && !(s->rtol >= 0 && s->atol >= 0)) {
    st = csde_err_set(err, CSDE_EINVAL, "expected tolerances >= 0, got rtol %g and atol %g",
                      s->rtol, s->atol);
    return csde_err_blame(err, CSDE_PARAM_TOLERANCES, st);
  }
  if (discrete && (s->rtol > 0 || s->atol > 0)) {
    st = csde_err_set(err, CSDE_EINVAL, "%s takes fixed steps only (no tolerances)",
                      csde_run_process_name(r->process));
    return csde_err_blame(err, CSDE_PARAM_TOLERANCES, st);
  }
  return CSDE_SUCCESS;
}

/* The settings that need the problem: the ddpm schedule, span, saves, x0 post-processing,
 * guidance and noise kind, checked in that order. */
static int check_settings(csde_run *r, const csde_run_settings *s, const csde_schedule *sched,
                          csde_err *err)
{
  int st;
  if (r->process == CSDE_RUN_DDPM && csde_schedule_nsteps(sched) == 0) {
    st = csde_err_set(err, CSDE_EINVAL, "ddpm needs a discrete schedule (expected "
                                        "ddpm-linear[:n=N] or discrete:betas=...), got '%s'",
                      csde_schedule_spec(sched));
    return csde_err_blame(err, CSDE_PARAM_SCHEDULE, st);
  }
  if ((st = set_span(r, s, err))) return st;
  if ((st = parse_save(r, r->s.save, err))) return st;

  /* the model's x0 clipped or thresholded at every call (process.c) */
  if ((st = csde_x0_post_parse(r->s.x0_clip, r->s.x0_threshold, &r->P.x0, err))) return st;
  if (r->P.x0.kind != CSDE_X0_NONE && r->process == CSDE_RUN_FORWARD_SDE) {
    st = csde_err_set(err, CSDE_EINVAL, "forward-sde never calls the model: its x0 is not "
                                        "clipped or thresholded (give neither)");
    return csde_err_blame(err, r->P.x0.kind == CSDE_X0_CLIP ? CSDE_PARAM_X0_CLIP
                                                            : CSDE_PARAM_X0_THRESHOLD, st);
  }

  /* conditioning and classifier-free guidance (problem.h), applied by process.c */
  if ((st = set_guidance(r, s, err))) return st;

  csde_noise_kind nk = CSDE_NOISE_STREAM;
  int known = !csde_noise_kind_lookup(r->s.noise, &nk);
  r->noise_path = nk == CSDE_NOISE_PATH;
  if (!known) {
    st = csde_err_set(err, CSDE_EINVAL, "expected stream or path, got '%s'", r->s.noise);
    return csde_err_blame(err, CSDE_PARAM_NOISE, st);
  }
  if (r->noise_path && r->process != CSDE_RUN_FORWARD_SDE && r->process != CSDE_RUN_REVERSE_SDE) {
    st = csde_err_set(err, CSDE_EINVAL, "path applies to forward-sde and reverse-sde (%s draws "
                                        "no Brownian path)", csde_run_process_name(r->process));
    return csde_err_blame(err, CSDE_PARAM_NOISE, st);
  }
  return CSDE_SUCCESS;
}

/* The solve parameters r->par from the settings. */
static int set_params(csde_run *r, const csde_run_settings *s, const csde_schedule *sched,
                      csde_err *err)
{
  int st;
  r->par = csde_solve_default_params();
  r->par.eta = r->eta;
  /* "edm-heun:churn=S,...": the options go into par, the bare name is the solver */
  if ((st = csde_solver_spec_parse(r->s.solver, &r->par, r->solver_name, sizeof r->solver_name,
                                   err)))
    return csde_err_blame(err, CSDE_PARAM_SOLVER, st);
  r->par.solver = r->solver_name;
  r->par.steps = r->adaptive ? 0 : s->steps;
  r->par.grid = r->s.grid;
  if (r->process == CSDE_RUN_DDPM) { /* the schedule's N steps, t_k = (N - k) / N */
    r->par.steps = csde_schedule_nsteps(sched);
    r->par.grid = "uniform";
  }
  r->par.rtol = r->adaptive ? s->rtol : 0;
  r->par.atol = r->adaptive ? s->atol : 0;
  r->par.max_nfe = s->max_nfe;
  r->par.seed = s->seed;
  r->par.first_sample = s->first_sample;
  r->par.threads = s->threads > 0 ? s->threads : 1;
  r->par.observer = observe; /* its context r->ex is filled by csde_run_exec */
  r->par.observer_user = &r->ex;
  r->par.preview = s->preview ? preview : NULL;
  r->par.preview_user = &r->ex;
  if (r->noise_path) r->par.noise = CSDE_NOISE_PATH;
  /* the predictor-corrector's Langevin steps (solve.h); the solver refuses the rest */
  if ((st = csde_corrector_parse(r->s.corrector, &r->par.corrector_steps,
                                 &r->par.corrector_snr, err)))
    return csde_err_blame(err, CSDE_PARAM_CORRECTOR, CSDE_EINVAL); /* a setting, as x0's */
  if (r->par.corrector_steps && r->process >= CSDE_RUN_DDPM) {
    st = csde_err_set(err, CSDE_EINVAL, "the Langevin corrector does not apply to %s (a "
                      "discrete sampler); give reverse-sde or pf-ode",
                      csde_run_process_name(r->process));
    return csde_err_blame(err, CSDE_PARAM_CORRECTOR, st);
  }
  return CSDE_SUCCESS;
}

/* The rate of the linear part a step must resolve: VP beta(t); a path |f| + g^2 / (2 (alpha^2
 * + sigma^2)) (the drift f x plus the score part of a unit-variance law; VP: beta/2 + beta/2). */
static double stiffness(const csde_schedule *sched, double t)
{
  if (csde_schedule_is_vp(sched)) return csde_schedule_beta(sched, t);
  const double a = csde_schedule_path_alpha(sched, t), sg = csde_schedule_path_sigma(sched, t);
  return fabs(csde_schedule_path_f(sched, t)) +
         csde_schedule_path_g2(sched, t) / (2 * (a * a + sg * sg));
}

/* The memory check, the solver, its grid, the save plan and hbeta. */
static int alloc_solver(csde_run *r, const csde_run_settings *s, const csde_cov *C,
                        const csde_schedule *sched, const csde_model *model, size_t batch,
                        csde_err *err)
{
  int st;
  /* the memory it will take, before anything large is allocated */
  {
    mem_in in = {r->process, csde_solver_lookup(r->solver_name), r->adaptive, r->noise_path,
                 walk_depth(r->noise_path, r->adaptive, r->par.grid, r->par.steps),
                 capacity_bound(r->save_kind, r->every, r->ntimes, r->par.steps, r->adaptive),
                 s->keep_saved, r->par.threads, r->par.s_churn, r->par.eta, C, model, batch,
                 r->tau, r->D, 0, r->P.x0.kind == CSDE_X0_THRESHOLD, r->P.guidance.uncond != NULL,
                 r->P.guidance.split, s->preview != 0, r->par.corrector_steps > 0};
    mem_estimate(&in, &r->mem);
    if ((st = mem_check(&r->mem, s->max_memory, err))) return st;
  }

  /* the grid: where the fixed-step states fall (save times, the final step) */
  if (r->save_kind == CSDE_SAVE_TIMES && r->adaptive) {
    /* the adaptive solve lands on the save times: the plan first, then the solver */
    if ((st = plan_times(r, err))) return st;
    r->par.out_times = r->nout ? r->out : NULL;
    r->par.n_out_times = r->nout;
  }
  if ((st = csde_solver_alloc(&r->solver, &r->P, &r->par, err))) return st;
  if (!r->adaptive) {
    size_t ns;
    const double *g = csde_solver_grid(r->solver, &ns);
    r->grid = malloc((ns + 1) * sizeof *r->grid);
    if (!r->grid) return csde_err_set(err, CSDE_ENOMEM, "out of memory for %zu steps", ns);
    memcpy(r->grid, g, (ns + 1) * sizeof *g);
    r->nsteps = ns;
  }
  if (r->save_kind == CSDE_SAVE_TIMES && r->grid && (st = plan_times(r, err))) return st;
  if (r->grid) { /* hbeta[k]: the largest |h| beta(t) of steps 0 .. k - 1 (either end) */
    if (!(r->hbeta = malloc((r->nsteps + 1) * sizeof *r->hbeta)))
      return csde_err_set(err, CSDE_ENOMEM, "out of memory for %zu steps", r->nsteps);
    r->hbeta[0] = 0;
    for (size_t k = 0; k < r->nsteps; k++) {
      const double b = fmax(stiffness(sched, r->grid[k]), stiffness(sched, r->grid[k + 1]));
      r->hbeta[k + 1] = fmax(r->hbeta[k], fabs(r->grid[k + 1] - r->grid[k]) * b);
    }
  }
  return CSDE_SUCCESS;
}

int csde_run_alloc(csde_run **out, const csde_run_settings *s, const csde_cov *C,
                   const csde_schedule *sched, const csde_model *model, size_t batch,
                   int shape_rank, const size_t *shape, csde_err *err)
{
  int st;
  *out = NULL;
  if (!s || !C || !sched || !shape || shape_rank < 1 || shape_rank > 3 || batch == 0)
    return csde_err_set(err, CSDE_EINVAL, "a run needs settings, a covariance, a schedule, a "
                                          "batch >= 1 and a frame shape of rank 1 to 3");
  csde_run *r = calloc(1, sizeof *r);
  if (!r) return csde_err_set(err, CSDE_ENOMEM, "out of memory");
  r->sched = sched;
  r->batch = batch;
  r->tau = csde_cov_tau(C);
  r->rank = shape_rank;
  if ((st = set_shape(r, batch, shape_rank, shape, err))) goto fail;
  if ((st = set_process(r, s, err))) goto fail;
  /* the discrete samplers are solver types too (solvers/ddpm.c, ddim.c), on the PF-ODE
   * process: they draw their own noise */
  const char *solver = default_solver(r->process, r->adaptive, s->solver);

  r->P = csde_problem_default();
  r->P.process = r->process >= CSDE_RUN_DDPM ? CSDE_PROC_PFODE : (csde_process)r->process;
  r->P.tau = r->tau;
  r->P.D = r->D;
  r->P.batch = batch;
  r->P.C = C;
  r->P.sched = sched;
  r->P.model = model;
  if ((st = copy_settings(r, s, solver))) {
    csde_err_set(err, st, "out of memory");
    goto fail;
  }
  if ((st = check_settings(r, s, sched, err))) goto fail;
  if ((st = set_params(r, s, sched, err))) goto fail;
  if ((st = alloc_solver(r, s, C, sched, model, batch, err))) goto fail;
  r->capacity = capacity(r);
  r->noise_scale = noise_scale(C);
  r->s.t_start = r->t0;
  r->s.t_end = r->t1;
  *out = r;
  return CSDE_SUCCESS;
fail:
  csde_run_free(r);
  return st;
}

csde_run_process csde_run_process_of(const csde_run *r) { return r->process; }
void csde_run_span(const csde_run *r, double *t_start, double *t_end)
{
  *t_start = r->t0;
  *t_end = r->t1;
}
size_t csde_run_nsteps(const csde_run *r) { return r->nsteps; }
size_t csde_run_capacity(const csde_run *r) { return r->capacity; }
size_t csde_run_size(const csde_run *r) { return r->n; }
const csde_problem *csde_run_problem(const csde_run *r) { return &r->P; }
const csde_run_settings *csde_run_settings_of(const csde_run *r) { return &r->s; }
csde_save_kind csde_run_save_kind(const csde_run *r) { return r->save_kind; }
const csde_run_memory *csde_run_memory_of(const csde_run *r) { return &r->mem; }

int csde_run_prior(const csde_run *r, double *x, csde_err *err)
{
  csde_rng_key key = {r->s.seed, CSDE_STREAM_INIT};
  csde_cov_ws *ws = NULL;
  int st = csde_cov_ws_alloc(&ws, r->P.C, r->D, r->par.threads, err);
  if (!st) st = csde_cov_sample(r->P.C, ws, key, r->s.first_sample, r->batch, x, err);
  csde_cov_ws_free(ws);
  /* N(0, p^2 C), p the path's prior scale (VP: 1, the draw untouched) */
  const double p = csde_schedule_path_prior_scale(r->sched);
  if (!st && p != 1)
    for (size_t i = 0; i < r->n; i++) x[i] *= p;
  return st;
}

/* ---- the solve ---- */

typedef csde_run_exec_ctx exec_ctx;

static int is_final(const csde_run *r, size_t step, double t)
{
  return r->grid ? step == r->nsteps : t == r->t1;
}

static int want_save(exec_ctx *o, size_t step, double t)
{
  const csde_run *r = o->r;
  if (is_final(r, step, t)) return 1;
  switch (r->save_kind) {
  case CSDE_SAVE_EVERY:
    return step % r->every == 0;
  case CSDE_SAVE_TIMES:
    if (r->mask) return step <= r->nsteps && r->mask[step];
    {
      int hit = 0; /* adaptive: the first state at or past each requested time */
      double tol = TIME_TOL * fmax(1.0, fabs(t)), dir = r->t1 > r->t0 ? 1 : -1;
      while (o->next < r->nout && dir * (t - r->out[o->next]) >= -tol) {
        hit = 1;
        o->next++;
      }
      return hit;
    }
  default:
    return 0;
  }
}

/* max |x_i| over the state, with the run's threads (a max: any order gives the same). */
static double max_abs(const csde_run *r, const double *x)
{
  const long n = (long)r->n;
  const int th = r->par.threads;
  double m = 0;
  (void)th;
#ifdef _OPENMP
#pragma omp parallel for num_threads(th) schedule(static) reduction(max : m) if (th > 1)
#endif
  for (long i = 0; i < n; i++) m = fmax(m, fabs(x[i]));
  return m;
}

/* A saved state beyond the bound after steps beyond the stability limit (csde_run_exec's
 * header): CSDE_EUNSTABLE. */
static int unstable(exec_ctx *o, size_t step, double t, double m)
{
  const csde_run *r = o->r;
  csde_err_set(o->err, CSDE_EUNSTABLE,
               "the state at step %zu (t = %.6g) grew to max |x| = %.3g, beyond %g times the "
               "process's scale 1 + %.3g (the larger of the start state's max |x| and the "
               "noise's sqrt(max C_ii) %.3g): the solver is unstable at this step size "
               "(|h| beta(t) reaches %.3g on its grid; explicit steps need it below about "
               "%g): use more steps, or an adaptive solver",
               step, t, m, CSDE_RUN_GROWTH_MAX, fmax(o->scale0, r->noise_scale),
               r->noise_scale, r->hbeta[step], CSDE_RUN_HBETA_MAX);
  return o->status = csde_err_blame(o->err, CSDE_PARAM_STEPS, CSDE_EUNSTABLE);
}

static int save_state(exec_ctx *o, size_t step, double t, const double *x)
{
  if (o->last == (int64_t)step) return 0;
  /* the start is the reference; only steps past the stability limit can be blamed */
  if (step > 0 && o->r->hbeta && step <= o->r->nsteps &&
      o->r->hbeta[step] > CSDE_RUN_HBETA_MAX) {
    const double m = max_abs(o->r, x);
    if (isfinite(m) && m > o->bound) {
      unstable(o, step, t, m);
      return 1;
    }
  }
  if (o->w && (o->status = csde_traj_append(o->w, (int64_t)step, t, x, o->err))) return 1;
  if (o->h && o->h->save && (o->status = o->h->save(step, t, x, o->h->user))) {
    csde_err_set(o->err, o->status, "saving the state of step %zu failed", step);
    return 1;
  }
  o->last = (int64_t)step;
  o->saved++;
  return 0;
}

const char *csde_run_warning(const csde_run *r)
{
  return r->solver ? csde_solver_warning(r->solver) : "";
}

/* The first model answer's warning (csde_run_warning), once: to the file and the warn
 * hook. Non-zero: the hook stops the run. */
static int report_warning(exec_ctx *o)
{
  const char *msg = csde_run_warning(o->r);
  if (o->warned || !*msg) return 0;
  o->warned = 1;
  if (o->w) csde_traj_set_warning(o->w, msg);
  return o->h && o->h->warn ? o->h->warn(msg, o->h->user) : 0;
}

static int preview(size_t step, double t, const double *x, const double *x0, void *user)
{
  exec_ctx *o = user;
  return o->h && o->h->preview ? o->h->preview(step, t, x, x0, o->h->user) : 0;
}

static int observe(size_t step, double t, const double *x, void *user)
{
  exec_ctx *o = user;
  o->x = x;
  if (report_warning(o)) return 1;
  if (want_save(o, step, t) && save_state(o, step, t, x)) return 1;
  return o->h && o->h->step ? o->h->step(step, t, o->saved, is_final(o->r, step, t), o->h->user)
                            : 0;
}

int csde_run_exec(csde_run *r, double *x, csde_traj *w, const csde_run_hooks *h,
                  csde_solve_stats *st, csde_err *err)
{
  exec_ctx *o = &r->ex;
  memset(st, 0, sizeof *st);
  int s = csde_run_rci_check_exec(r, err);
  if (s) return s;
  *o = (exec_ctx){r, w, h, 0, 0, -1, 0, err, 0, 0, 0, x};
  o->scale0 = max_abs(r, x); /* one pass: the blow-up check's reference */
  o->bound = CSDE_RUN_GROWTH_MAX * (1 + fmax(o->scale0, r->noise_scale));
  /* the start state (step 0) */
  if (r->save_kind == CSDE_SAVE_EVERY || (r->mask && r->mask[0]) || r->save_start) {
    if (save_state(o, 0, r->t0, x)) {
      st->stopped = 1;
      return o->status;
    }
  }
  s = csde_solver_run(r->solver, x, st, err);
  if (report_warning(o)) st->stopped = 1; /* a run that failed before its first step's end */
  if (o->status) return o->status; /* a failed save stopped the solve */
  /* the final state, if the observer could not tell it was the last */
  if (!s && !st->stopped && save_state(o, st->steps, r->t1, x)) {
    st->stopped = 1;
    return o->status;
  }
  return s;
}

void csde_run_status(int rc, const csde_solve_stats *st, const csde_err *err,
                     const char *stop_reason, char *buf, size_t len)
{
  if (rc)
    snprintf(buf, len, "failed: %s", err && err->msg[0] ? err->msg : csde_strerror(rc));
  else if (st->stopped && stop_reason)
    snprintf(buf, len, "failed: %s at step %zu", stop_reason, st->steps);
  else if (st->stopped)
    snprintf(buf, len, "failed: the solve stopped early at step %zu", st->steps);
  else
    snprintf(buf, len, "ok");
}
