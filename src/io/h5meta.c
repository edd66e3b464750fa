/* /parameters' shared attributes and /covariance, for both file kinds (h5meta.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "corrsde/rng.h"
#include "io/h5meta.h"

#define PUT(call)                                                                          \
  do {                                                                                     \
    if ((s = (call))) return s;                                                            \
  } while (0)

static const char *or_empty(const char *v) { return v ? v : ""; }

static int put_str(const csde_h5sink *k, const char *obj, const char *name, const char *v,
                   csde_err *err)
{
  return k->str(k->w, obj, name, or_empty(v), err);
}

static int put_f64(const csde_h5sink *k, const char *obj, const char *name, double v,
                   csde_err *err)
{
  return k->f64(k->w, obj, name, &v, 1, 0, err);
}

static int put_i64(const csde_h5sink *k, const char *obj, const char *name, int64_t v,
                   csde_err *err)
{
  return k->i64(k->w, obj, name, &v, 1, 0, err);
}

int csde_h5params_write(const csde_h5sink *k, const csde_h5params *p, csde_err *err)
{
  int s;
  const char *g = "/parameters";
  if (k->group) PUT(k->group(k->w, g, err));
  PUT(put_str(k, g, "schedule", p->schedule, err));
  PUT(put_f64(k, g, "t_start", p->t_start, err));
  PUT(put_f64(k, g, "t_end", p->t_end, err));
  PUT(put_f64(k, g, "T", p->T, err));
  PUT(put_f64(k, g, "eps", p->eps, err));
  PUT(put_str(k, g, "covariance", p->covariance, err));
  PUT(put_str(k, g, "cov_method", p->cov_method, err));
  PUT(put_str(k, g, "cov_method_used", csde_cov_method_name(csde_cov_method_of(p->C)), err));
  PUT(put_str(k, g, "model", p->model, err));
  PUT(put_str(k, g, "model_name", p->model_name, err));
  PUT(put_str(k, g, "model_output", p->model_output, err));
  PUT(put_i64(k, g, "frames", (int64_t)p->frames, err));
  int64_t shape[3];
  size_t rank = p->shape_rank < 0 ? 0 : p->shape_rank > 3 ? 3 : (size_t)p->shape_rank;
  for (size_t i = 0; i < rank; i++) shape[i] = (int64_t)p->frame_shape[i];
  PUT(k->i64(k->w, g, "frame_shape", shape, rank, 1, err));
  PUT(put_i64(k, g, "pixels", (int64_t)p->pixels, err));
  PUT(k->u64(k->w, g, "seed", &p->seed, err));
  PUT(put_str(k, g, "init", p->init, err));
  PUT(put_str(k, g, "rng", csde_rng_name(), err));
  PUT(put_str(k, g, "rng_kernel", csde_rng_kernel_name(), err));
  PUT(put_i64(k, g, "threads", p->threads, err));
  PUT(put_str(k, g, "command_line", p->command_line, err));
  PUT(put_str(k, g, "corrsde_version", csde_version(), err));
  char buf[64];
  time_t now_t = time(NULL);
  struct tm tmv;
  gmtime_r(&now_t, &tmv);
  strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tmv);
  return put_str(k, g, "created", buf, err);
}

int csde_h5cov_fill(csde_h5cov *c, const csde_cov *C, csde_err *err)
{
  if (c->C == C) return CSDE_SUCCESS;
  csde_h5cov_free(c);
  size_t tau = csde_cov_tau(C);
  if (tau <= CSDE_H5COV_MAX_TAU) {
    c->m = malloc(tau * tau * sizeof *c->m);
    c->eig = malloc(tau * sizeof *c->eig);
    if (!c->m || !c->eig)
      return csde_err_set(err, CSDE_ENOMEM, "out of memory for a %zu x %zu matrix", tau, tau);
    csde_cov_matrix(C, c->m);
    int s = csde_cov_eigenvalues(C, c->eig, err);
    if (s) return s;
  }
  if (tau <= CSDE_H5COV_MAX_TAU || csde_cov_logdet_cheap(C)) { /* else a Levinson pass */
    c->logdet = csde_cov_logdet(C);
    c->have_logdet = 1;
  }
  c->C = C;
  return CSDE_SUCCESS;
}

void csde_h5cov_free(csde_h5cov *c)
{
  free(c->m);
  free(c->eig);
  memset(c, 0, sizeof *c);
}

int csde_h5cov_write(const csde_h5sink *k, csde_h5cov *c, const csde_cov *C, csde_err *err)
{
  int s;
  const char *g = "/covariance";
  size_t tau = csde_cov_tau(C);
  PUT(csde_h5cov_fill(c, C, err));
  if (k->group) PUT(k->group(k->w, g, err));
  if (tau <= CSDE_H5COV_MAX_TAU) {
    size_t d2[2] = {tau, tau};
    PUT(k->array(k->w, "/covariance/matrix", c->m, 2, d2, err));
    PUT(k->array(k->w, "/covariance/eigenvalues", c->eig, 1, d2, err));
  } else {
    char why[160];
    snprintf(why, sizeof why, "not stored: %zu frames > %d (it would take %.3g MB; "
             "'corrsde cov' shows it)", tau, CSDE_H5COV_MAX_TAU,
             (double)tau * (double)tau * 8e-6);
    PUT(put_str(k, g, "matrix", why, err));
  }
  PUT(put_str(k, g, "spec", csde_cov_spec(C), err));
  PUT(put_str(k, g, "method", csde_cov_method_name(csde_cov_method_of(C)), err));
  csde_cov_report rep = csde_cov_approx_report(C);
  PUT(put_i64(k, g, "exact", !rep.approx, err));
  PUT(put_i64(k, g, "noise_dim", (int64_t)csde_cov_noise_dim(C), err));
  if (c->have_logdet) PUT(put_f64(k, g, "logdet", c->logdet, err));
  double eb[2];
  int64_t exact = csde_cov_eig_bounds(C, &eb[0], &eb[1]);
  PUT(k->f64(k->w, g, "eigenvalue_range", eb, 2, 1, err));
  PUT(put_i64(k, g, "eigenvalue_range_exact", exact, err));
  if (rep.approx) {
    PUT(put_f64(k, g, "kl_per_frame", rep.kl_per_frame, err));
    PUT(put_f64(k, g, "max_entry_diff", rep.max_entry_diff, err));
  }
  return CSDE_SUCCESS;
}
