/* The PF-ODE log-likelihood (corrsde/likelihood.h), on every Gaussian path:
 *   log p_eps(x) = log p_T(x_T) + int_eps^T div f(x_t, t) dt,
 *   div f = tau D f(t) - 1/2 g(t)^2 tr(C grad^2 log p_t(x_t))
 *         (VP: f = -1/2 beta, g^2 = beta: -1/2 beta (tau D + tr), computed as such),
 * the state x and the K integrals per sample carried by one solve of the encode ODE
 * (src/solve/augment.h), the traces from divergence.c, the prior N(0, p^2 C), p the path's
 * prior scale (VP, rf: 1), from the covariance operator (csde_cov_logpdf):
 *   log p_T(x_T) = log N(x_T / p; 0, C (x) I_D) - tau D log p. */
#include <gsl/gsl_cdf.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/spec.h"
#include "core/util.h"
#include "likelihood/divergence.h"
#include "solve/augment.h"

csde_ll_params csde_ll_default_params(void)
{
  csde_ll_params p;
  memset(&p, 0, sizeof p);
  p.solver = "dopri5";
  p.rtol = p.atol = 1e-6;
  p.grid = "uniform";
  p.max_nfe = 10000000;
  p.div = CSDE_DIV_AUTO;
  p.probes = 8;
  p.probe = CSDE_PROBE_RADEMACHER;
  p.jvp = CSDE_JVP_AUTO;
  p.conf = 0.95;
  p.dequant = csde_dequant_continuous();
  return p;
}

static const char *const div_names[] = {"auto", "exact", "directional", "hutchinson", NULL};

const char *csde_div_kind_name(csde_div_kind k)
{
  return (unsigned)k < 4 ? div_names[k] : NULL;
}

static int div_fail(csde_err *err, int status) /* blamed on the divergence */
{
  return csde_err_blame(err, CSDE_PARAM_DIVERGENCE, status);
}

int csde_div_parse(const char *spec, csde_ll_params *par, csde_err *err)
{
  csde_spec sp;
  int s = csde_spec_parse(spec ? spec : "auto", "divergence", &sp, err);
  if (s) return div_fail(err, s);
  size_t k = 0;
  while (div_names[k] && strcmp(div_names[k], sp.name)) k++;
  if (!div_names[k])
    return div_fail(err, csde_err_set(err, CSDE_ESPEC, "unknown divergence '%s' (expected "
                                      "auto, exact, directional or hutchinson[:probes=K,"
                                      "probe=rademacher|gaussian,seed=S])", sp.name));
  static const char *const none[] = {NULL};
  static const char *const hkeys[] = {"probes", "probe", "seed", NULL};
  const int hut = k == CSDE_DIV_HUTCHINSON;
  if ((s = csde_spec_check_keys(&sp, hut ? hkeys : none, err))) return div_fail(err, s);
  par->div = (csde_div_kind)k;
  if (!hut) return CSDE_SUCCESS;
  size_t K = 8;
  if ((s = csde_spec_size(&sp, "probes", par->probes ? par->probes : 8, &K, err)))
    return div_fail(err, s);
  par->probes = K;
  const char *pk = csde_spec_get(&sp, "probe");
  if (pk && strcmp(pk, "rademacher") && strcmp(pk, "gaussian"))
    return div_fail(err, csde_err_set(err, CSDE_ESPEC, "'%s': probe = %s, expected rademacher "
                                      "or gaussian", spec, pk));
  if (pk) par->probe = strcmp(pk, "gaussian") ? CSDE_PROBE_RADEMACHER : CSDE_PROBE_GAUSSIAN;
  const char *sd = csde_spec_get(&sp, "seed");
  if (sd) {
    char *end;
    unsigned long long v = strtoull(sd, &end, 10);
    if (!*sd || *end || *sd == '-')
      return div_fail(err, csde_err_set(err, CSDE_ESPEC, "'%s': seed = %s, expected a "
                                        "non-negative integer", spec, sd));
    par->seed = (uint64_t)v;
  }
  return CSDE_SUCCESS;
}

int csde_jvp_parse(const char *spec, csde_ll_params *par, csde_err *err)
{
  csde_spec sp;
  int s = csde_spec_parse(spec ? spec : "auto", "jvp", &sp, err);
  if (s) return div_fail(err, s);
  static const char *const none[] = {NULL};
  static const char *const fkeys[] = {"step", NULL};
  const int fd = !strcmp(sp.name, "fd");
  if (!fd && strcmp(sp.name, "auto") && strcmp(sp.name, "model"))
    return div_fail(err, csde_err_set(err, CSDE_ESPEC, "unknown jvp '%s' (expected auto, "
                                      "model or fd[:step=H])", sp.name));
  if ((s = csde_spec_check_keys(&sp, fd ? fkeys : none, err))) return div_fail(err, s);
  par->jvp = fd ? CSDE_JVP_FD : strcmp(sp.name, "model") ? CSDE_JVP_AUTO : CSDE_JVP_MODEL;
  if (!fd) return CSDE_SUCCESS;
  double h = CSDE_LL_FD_STEP;
  if ((s = csde_spec_double(&sp, "step", CSDE_LL_FD_STEP, &h, err))) return div_fail(err, s);
  if (!(h > 0 && h < 1))
    return div_fail(err, csde_err_set(err, CSDE_EDOM, "'%s': step = %g, expected 0 < step "
                                      "< 1 (relative)", spec, h));
  par->fd_step = h;
  return CSDE_SUCCESS;
}

/* The solve's carried values: K integrals per sample, d/dt = div f. */
typedef struct {
  csde_div div;
  double *tr;           /* batch K traces */
  const csde_schedule *sched;
  int vp;               /* a VP schedule: its beta; else the path's f and g^2 */
} ll_aug;

static int aug_rate(void *user, double t, size_t step, const double *x, const double *f,
                    double *daug, csde_err *err)
{
  (void)f;
  ll_aug *a = user;
  const csde_div *d = &a->div;
  int s = csde_div_trace(&a->div, t, step, x, a->tr, err);
  if (s) return s;
  /* VP: div f = -1/2 beta (tau D + tr), as it always was (bit for bit);
   * a path: div f = tau D f - 1/2 g^2 tr */
  const double hb = a->vp ? -0.5 * csde_schedule_beta(a->sched, t)
                          : -0.5 * csde_schedule_path_g2(a->sched, t);
  const double fd = a->vp ? 0.0 : (double)d->per * csde_schedule_path_f(a->sched, t);
  for (size_t i = 0; i < d->batch * d->K; i++) {
    daug[i] = a->vp ? hb * ((double)d->per + a->tr[i]) : fd + hb * a->tr[i];
    if (!isfinite(daug[i]))
      return csde_err_set(err, CSDE_ENAN, "the divergence of sample %zu is %g at t = %.17g "
                          "(step %zu; %s)", i / d->K, a->tr[i], t, step,
                          csde_div_kind_name(d->kind));
  }
  return CSDE_SUCCESS;
}

static int check_params(const csde_problem *P, const csde_ll_params *par, const double *x,
                        csde_err *err)
{
  if (!P->model)
    return csde_err_blame(err, CSDE_PARAM_MODEL,
                          csde_err_set(err, CSDE_EINVAL, "the likelihood needs a model"));
  if (P->guidance.uncond)
    return csde_err_blame(err, CSDE_PARAM_GUIDANCE,
                          csde_err_set(err, CSDE_EINVAL, "the likelihood of a guided model "
                                       "is not a density's: give no guidance"));
  if (P->x0.kind != CSDE_X0_NONE)
    return csde_err_blame(err, CSDE_PARAM_X0_CLIP,
                          csde_err_set(err, CSDE_EINVAL, "the likelihood takes the model as "
                                       "it is: no x0 clipping or thresholding"));
  const char *sv = par->solver ? par->solver : "dopri5";
  const csde_solver_type *T = csde_solver_spec_lookup(sv);
  char names[256];
  if (T && !csde_solver_type_carries(T))
    return csde_err_blame(err, CSDE_PARAM_SOLVER,
                          csde_err_set(err, CSDE_EINVAL, "solver '%s' steps on the denoiser "
                                       "view, not on the drift f, so it cannot carry the "
                                       "log-density: use %s", sv,
                                       csde_solver_carry_names(names, sizeof names)));
  if (!(par->conf > 0 && par->conf < 1))
    return csde_err_set(err, CSDE_EDOM, "conf = %g, expected 0 < conf < 1", par->conf);
  const csde_dequant *q = &par->dequant;
  if (q->bits < 0 || q->bits > CSDE_DEQUANT_MAX_BITS ||
      (q->bits && !(q->scale > 0 && q->scale < INFINITY && isfinite(q->shift))))
    return csde_err_blame(err, CSDE_PARAM_DEQUANT,
                          csde_err_set(err, CSDE_EDOM, "dequant: bits = %d, scale = %g, shift "
                                       "= %g: expected 0 <= bits <= %d, scale > 0 and a finite "
                                       "shift", q->bits, q->scale, q->shift,
                                       CSDE_DEQUANT_MAX_BITS));
  const size_t per = P->tau * P->D;
  for (size_t i = 0; i < P->batch * per; i++)
    if (!isfinite(x[i]))
      return csde_err_blame(err, CSDE_PARAM_DATA,
                            csde_err_set(err, CSDE_ENAN, "x of sample %zu holds %g at index "
                                         "%zu (frame %zu, pixel %zu)",
                                         par->first_sample + i / per, x[i], i % per,
                                         (i % per) / P->D, i % P->D));
  return CSDE_SUCCESS;
}

/* Sample b's result from its K integrals l_k and its prior: the mean, the spread's
 * standard error sd / sqrt(K) and the Student-t interval (K >= 2). */
static void summarise(const csde_ll_params *par, const csde_div *d, const double *l,
                      double prior, csde_ll_sample *o)
{
  const size_t K = d->K;
  double m = 0, ss = 0;
  for (size_t k = 0; k < K; k++) m += l[k];
  m /= (double)K;
  for (size_t k = 0; k < K; k++) ss += (l[k] - m) * (l[k] - m);
  o->prior = prior;
  o->delta = m;
  o->logp = prior + m;
  o->se = d->kind != CSDE_DIV_HUTCHINSON ? 0.0 : K >= 2 ? sqrt(ss / (double)(K - 1) / (double)K) : NAN;
  const double q = o->se > 0 ? gsl_cdf_tdist_Pinv(0.5 + 0.5 * par->conf, (double)(K - 1)) : 0;
  o->lo = o->se > 0 ? o->logp - q * o->se : o->se == 0 ? o->logp : NAN;
  o->hi = o->se > 0 ? o->logp + q * o->se : o->se == 0 ? o->logp : NAN;
  o->bpd = csde_bits_per_dim(-o->logp, d->per, &par->dequant);
}

/* One solve of the P->batch samples x (global first_sample par->first_sample), stats
 * added to *acc. */
static int ll_solve(const csde_problem *P, const csde_ll_params *par, const double *x,
                    double *xT, csde_ll_sample *out, csde_ll_stats *acc, csde_err *err)
{
  csde_problem Q = *P;
  Q.process = CSDE_PROC_PFODE_ENCODE;
  ll_aug a = {.sched = P->sched, .vp = csde_schedule_is_vp(P->sched)};
  csde_solver *S = NULL;
  csde_cov_ws *ws = NULL;
  double *y = NULL, *prior = NULL;
  int s = csde_div_init(&a.div, &Q, par, err);
  if (s) return s;
  const csde_div *d = &a.div;
  const size_t n = d->n, naug = d->batch * d->K;
  a.tr = csde_alloc(naug, sizeof(double));
  y = csde_alloc(n + naug, sizeof(double));
  prior = csde_alloc(d->batch, sizeof(double));
  if (!a.tr || !y || !prior) {
    s = csde_err_blame(err, CSDE_PARAM_SIZE,
                       csde_err_set(err, CSDE_ENOMEM, "out of memory (%zu doubles)", n + naug));
    goto done;
  }
  csde_solve_params sp = csde_solve_default_params();
  sp.solver = par->solver ? par->solver : "dopri5";
  sp.rtol = par->rtol, sp.atol = par->atol, sp.steps = par->steps;
  sp.grid = par->grid ? par->grid : "uniform";
  sp.max_nfe = par->max_nfe ? par->max_nfe : sp.max_nfe;
  sp.threads = par->threads;
  sp.first_sample = par->first_sample;
  if ((s = csde_solver_alloc_aug(&S, &Q, &sp, naug, aug_rate, &a, err))) goto done;
  memcpy(y, x, n * sizeof *y);
  memset(y + n, 0, naug * sizeof *y);
  csde_solve_stats st;
  if ((s = csde_solver_run(S, y, &st, err))) goto done;
  if (xT) memcpy(xT, y, n * sizeof *y);
  /* the prior log N(x_T / p; 0, C (x) I_D) - tau D log p, with the operator's own log
   * det and C^-1 (p = 1: log N(x_T; 0, C (x) I_D) as it is; y's x_T is spent here) */
  const double pscale = csde_schedule_path_prior_scale(P->sched);
  if ((s = csde_cov_ws_alloc(&ws, P->C, P->D, par->threads, err))) goto done;
  if (pscale != 1)
    for (size_t i = 0; i < n; i++) y[i] /= pscale;
  if ((s = csde_cov_logpdf(P->C, ws, d->batch, y, prior, err))) goto done;
  if (pscale != 1) {
    const double lp = (double)d->per * log(pscale);
    for (size_t b = 0; b < d->batch; b++) prior[b] -= lp;
  }
  for (size_t b = 0; b < d->batch; b++) {
    summarise(par, d, y + n + b * d->K, prior[b], &out[b]);
    out[b].nfe = st.nfe + d->nfe, out[b].jvp = d->njvp;
  }
  acc->nfe += st.nfe + d->nfe;
  acc->jvp += d->njvp;
  acc->steps += st.steps, acc->rejected += st.rejected;
  acc->wall_seconds += st.wall_seconds;
  acc->div = d->kind;
  acc->jvp_kind = d->kind == CSDE_DIV_EXACT ? CSDE_JVP_AUTO : d->jvp;
done:
  csde_solver_free(S);
  csde_cov_ws_free(ws);
  csde_div_free(&a.div);
  csde_free(a.tr);
  csde_free(y);
  csde_free(prior);
  return s;
}

int csde_likelihood(const csde_problem *P, const csde_ll_params *par_in, const double *x,
                    double *xT, csde_ll_sample *out, csde_ll_stats *stats, csde_err *err)
{
  const csde_ll_params par = par_in ? *par_in : csde_ll_default_params();
  csde_ll_stats acc;
  memset(&acc, 0, sizeof acc);
  if (stats) *stats = acc;
  int s = check_params(P, &par, x, err);
  if (!s && P->sched && !csde_schedule_is_vp(P->sched)) { /* div f needs f, g^2 finite */
    const double fT = csde_schedule_path_f(P->sched, P->T);
    const double gT = csde_schedule_path_g2(P->sched, P->T);
    if (!(isfinite(fT) && isfinite(gT)) && !isnan(P->T))
      s = csde_err_blame(err, CSDE_PARAM_SPAN,
                         csde_err_set(err, CSDE_EDOM, "the PF-ODE likelihood on schedule '%s' "
                                      "(the %s path): its drift is infinite at T = %g (f = %g, "
                                      "g^2 = %g); end at T <= %g", csde_schedule_spec(P->sched),
                                      csde_schedule_path_name(P->sched), P->T, fT, gT,
                                      csde_problem_t_max(P->sched)));
  }
  if (s) return s;
  /* adaptive steps follow the error of the state they solve, so each sample is its own
   * solve (a batch would share its steps, and a sample's bits would depend on the
   * others); fixed steps solve the batch at once */
  const size_t per = P->tau * P->D;
  const size_t chunk = par.rtol > 0 || par.atol > 0 ? 1 : P->batch;
  for (size_t b0 = 0; b0 < P->batch && !s; b0 += chunk) {
    csde_problem Q = *P;
    csde_ll_params pc = par;
    Q.batch = chunk < P->batch - b0 ? chunk : P->batch - b0;
    pc.first_sample = par.first_sample + b0;
    s = ll_solve(&Q, &pc, x + b0 * per, xT ? xT + b0 * per : NULL, out + b0, &acc, err);
  }
  if (stats && !s) *stats = acc;
  return s;
}
