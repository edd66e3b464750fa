/* Internal: tr(C grad^2 log p_t) per sample, the divergence part of the PF-ODE
 * likelihood (corrsde/likelihood.h), by the route csde_ll_params names:
 *   exact        csde_model_exact_cdiv (src/model: gaussian, gmm)
 *   directional  sum_i e_i^T J e_i over the tau D unit vectors, J = d(C s)/dx
 *   hutchinson   v_k^T J v_k for each of K probes, fixed for the whole solve
 * with J v from the model's JVP (process.h, csde_proc_cscore_jvp) or the central
 * difference (s(x + h v) - s(x - h v)) / (2 h), h = fd_step (1 + |x_b|_inf) / |v_b|_inf per
 * sample b (every entry of x moves by at most fd_step (1 + |x_b|_inf)). */
#ifndef CSDE_LIKELIHOOD_DIVERGENCE_H
#define CSDE_LIKELIHOOD_DIVERGENCE_H

#include "corrsde/likelihood.h"
#include "process/process.h"


typedef struct {
  csde_div_kind kind;  /* never AUTO */
  csde_jvp_kind jvp;   /* MODEL or FD (AUTO for exact) */
  size_t K;            /* traces per sample: the probes (1 unless hutchinson) */
  size_t batch, per, n;/* samples, tau D, batch tau D */
  double fd_step;
  csde_proc pr;        /* the model calls of the JVPs (its own scratch) */
  double *v;           /* hutchinson: K probes of n; directional: one unit vector of n */
  double *xp, *sp, *sm;/* x + h v, then s(x + h v) or J v; s(x - h v) */
  double *h;           /* batch steps */
  size_t nfe, njvp;    /* forward passes of the central differences; JVP calls */
} csde_div;

/* Resolve par's route for P's model (AUTO: exact for gaussian/gmm, directional for tau D
 * <= CSDE_LL_DIRECTIONAL_MAX, else hutchinson), draw the probes, allocate. */
int csde_div_init(csde_div *d, const csde_problem *P, const csde_ll_params *par,
                  csde_err *err);
void csde_div_free(csde_div *d);
/* tr[b K + k] = the k-th trace of sample b at (t, x): x is the batch's n values. */
int csde_div_trace(csde_div *d, double t, size_t step, const double *x, double *tr,
                   csde_err *err);

#endif
