/* tr(C grad^2 log p_t) per sample (divergence.h). */
#include <math.h>
#include <string.h>

#include "core/util.h"
#include "likelihood/divergence.h"
#include "model/model_internal.h"

static int is_builtin(const csde_model *M)
{
  return csde_model_is_gaussian(M) || csde_model_is_gmm(M);
}

/* The probes: probe k of global sample j at index j per + i of stream CSDE_STREAM_PROBE + k:
 * Rademacher -1 where the uniform is < 1/2, else +1; or the normal itself. */
static void draw_probes(csde_div *d, const csde_ll_params *par)
{
  for (size_t k = 0; k < d->K; k++) {
    const csde_rng_key key = {par->seed, CSDE_STREAM_PROBE + k};
    double *v = d->v + k * d->n;
    const uint64_t at = (uint64_t)par->first_sample * d->per;
    if (par->probe == CSDE_PROBE_GAUSSIAN) {
      csde_rng_normal(key, at, d->n, v);
      continue;
    }
    csde_rng_uniform(key, at, d->n, v);
    for (size_t i = 0; i < d->n; i++) v[i] = v[i] < 0.5 ? -1.0 : 1.0;
  }
}

int csde_div_init(csde_div *d, const csde_problem *P, const csde_ll_params *par,
                  csde_err *err)
{
  memset(d, 0, sizeof *d);
  const csde_model *M = P->model;
  d->batch = P->batch, d->per = P->tau * P->D, d->n = d->batch * d->per;
  d->fd_step = par->fd_step > 0 ? par->fd_step : CSDE_LL_FD_STEP;
  d->kind = par->div;
  if (d->kind == CSDE_DIV_AUTO)
    d->kind = is_builtin(M) ? CSDE_DIV_EXACT
              : d->per <= CSDE_LL_DIRECTIONAL_MAX ? CSDE_DIV_DIRECTIONAL
                                                  : CSDE_DIV_HUTCHINSON;
  d->K = d->kind == CSDE_DIV_HUTCHINSON ? par->probes : 1;
  if (!(d->K >= 1)) {
    csde_err_set(err, CSDE_EDOM, "hutchinson needs probes >= 1");
    return csde_err_blame(err, CSDE_PARAM_DIVERGENCE, CSDE_EDOM);
  }
  if (d->kind == CSDE_DIV_EXACT) {
    if (!is_builtin(M)) {
      csde_err_set(err, CSDE_ENOTSUP, "the exact divergence is known for the built-in "
                   "gaussian and gmm models only, not model '%s' (use directional or "
                   "hutchinson)", csde_model_name(M));
      return csde_err_blame(err, CSDE_PARAM_DIVERGENCE, CSDE_ENOTSUP);
    }
    int s = csde_model_exact_cdiv_prepare((csde_model *)M, err);
    return s ? csde_err_blame(err, CSDE_PARAM_MODEL, s) : CSDE_SUCCESS;
  }
  d->jvp = par->jvp;
  if (d->jvp == CSDE_JVP_AUTO) d->jvp = csde_model_has_jvp(M) ? CSDE_JVP_MODEL : CSDE_JVP_FD;
  if (d->jvp == CSDE_JVP_MODEL && !csde_model_has_jvp(M)) {
    csde_err_set(err, CSDE_EINVAL, "jvp model: model '%s' has no Jacobian-vector product "
                 "(use fd)", csde_model_name(M));
    return csde_err_blame(err, CSDE_PARAM_DIVERGENCE, CSDE_EINVAL);
  }
  csde_problem Q = *P;
  Q.process = CSDE_PROC_PFODE_ENCODE;
  int s = csde_proc_init(&d->pr, &Q, par->threads, 0, err);
  if (s) return s;
  d->pr.first = par->first_sample; /* ctx->first of the JVP's calls, as the solve's */
  d->v = csde_alloc(d->K * d->n, sizeof(double));
  d->xp = csde_alloc(d->n, sizeof(double));
  d->sp = csde_alloc(d->n, sizeof(double));
  d->sm = csde_alloc(d->n, sizeof(double));
  d->h = csde_alloc(d->batch, sizeof(double));
  if (!d->v || !d->xp || !d->sp || !d->sm || !d->h) {
    csde_div_free(d);
    csde_err_set(err, CSDE_ENOMEM, "out of memory for the divergence (%zu doubles)",
                 (d->K + 3) * d->n);
    return csde_err_blame(err, CSDE_PARAM_SIZE, CSDE_ENOMEM);
  }
  if (d->kind == CSDE_DIV_HUTCHINSON) draw_probes(d, par);
  return CSDE_SUCCESS;
}

void csde_div_free(csde_div *d)
{
  csde_proc_free(&d->pr);
  csde_free(d->v);
  csde_free(d->xp);
  csde_free(d->sp);
  csde_free(d->sm);
  csde_free(d->h);
  d->v = d->xp = d->sp = d->sm = d->h = NULL;
}

/* d->sp = J v at (t, x), J = d(C s)/dx: the model's JVP, or the central difference
 * (s(x + h_b v) - s(x - h_b v)) / (2 h_b) per sample b. */
static int jvp(csde_div *d, double t, size_t step, const double *x, const double *v,
               csde_err *err)
{
  if (d->jvp == CSDE_JVP_MODEL) {
    d->njvp++;
    return csde_proc_cscore_jvp(&d->pr, t, step, x, v, d->sp, err);
  }
  const size_t per = d->per;
  for (size_t b = 0; b < d->batch; b++) { /* h_b = fd_step (1 + |x_b|_inf) / |v_b|_inf */
    double xm = 0, vm = 0;
    for (size_t i = 0; i < per; i++) {
      xm = fmax(xm, fabs(x[b * per + i]));
      vm = fmax(vm, fabs(v[b * per + i]));
    }
    d->h[b] = vm > 0 ? d->fd_step * (1 + xm) / vm : 0;
  }
  for (int sgn = 1; sgn >= -1; sgn -= 2) {
    for (size_t i = 0; i < d->n; i++) d->xp[i] = x[i] + sgn * d->h[i / per] * v[i];
    d->nfe++;
    int s = csde_proc_cscore(&d->pr, t, step, d->xp, sgn > 0 ? d->sp : d->sm, err);
    if (s) return s;
  }
  for (size_t i = 0; i < d->n; i++) { /* (s+ - s-) / (2 h); v_b = 0: J v = 0 */
    const double h = d->h[i / per];
    d->sp[i] = h > 0 ? (d->sp[i] - d->sm[i]) / (2 * h) : 0.0;
  }
  return CSDE_SUCCESS;
}

int csde_div_trace(csde_div *d, double t, size_t step, const double *x, double *tr,
                   csde_err *err)
{
  const size_t per = d->per, K = d->K;
  if (d->kind == CSDE_DIV_EXACT)
    return csde_model_exact_cdiv(d->pr.P.model, t, d->batch, x, tr, err);
  memset(tr, 0, d->batch * K * sizeof *tr);
  if (d->kind == CSDE_DIV_DIRECTIONAL) { /* tr_b = sum_i (J e_i)_i */
    memset(d->v, 0, d->n * sizeof *d->v);
    for (size_t i = 0; i < per; i++) {
      for (size_t b = 0; b < d->batch; b++) d->v[b * per + i] = 1;
      int s = jvp(d, t, step, x, d->v, err);
      if (s) return s;
      for (size_t b = 0; b < d->batch; b++) {
        d->v[b * per + i] = 0;
        tr[b] += d->sp[b * per + i];
      }
    }
    return CSDE_SUCCESS;
  }
  for (size_t k = 0; k < K; k++) { /* hutchinson: tr_bk = v_k^T J v_k */
    const double *v = d->v + k * d->n;
    int s = jvp(d, t, step, x, v, err);
    if (s) return s;
    for (size_t b = 0; b < d->batch; b++) {
      double q = 0;
      for (size_t i = b * per; i < (b + 1) * per; i++) q += v[i] * d->sp[i];
      tr[b * K + k] = q;
    }
  }
  return CSDE_SUCCESS;
}
