/* GSL's explicit embedded Runge-Kutta pairs for the ODEs (stepper.h): rk45 (Fehlberg
 * 4(5), gsl_odeiv2_step_rkf45), rkck (Cash-Karp 4(5)) and rk8pd (Prince-Dormand 8(7)),
 * in two modes.
 *
 * Fixed step (`step`): one gsl_odeiv2_step_apply over the grid's step, error estimate
 * ignored (GSL's driver would refuse steps that miss its tolerance).
 *
 * Adaptive (`evolve`): one accepted step towards t1 under an error control, landing
 * exactly on t1. This is GSL's evolve layer (gsl_odeiv2_evolve_apply, evolve.c) written
 * over GSL's own step and control layers, for two reasons:
 *   - gsl_odeiv2_evolve_apply always asks the step for dydt_out, and for these methods
 *     that is one more model evaluation per attempt (7 instead of 6 for rkf45, 14
 *     instead of 13 for rk8pd), used by nothing here: the controls weigh y only;
 *   - on its "cannot reach the tolerance" exit it returns with y holding the rejected
 *     step and t advanced; here a failure always leaves x and t as they were.
 * Otherwise it does what GSL's does: f(t0, x) once per call (reused by the retries), a
 * rejected step is undone and retried with the control's smaller h, a recoverable model
 * failure halves h (as GSL does for a non-fatal status), the step is clamped to land on
 * t1, and the step-size suggestion is not taken from that clamped final step.
 *
 * Controls: params->max_norm selects GSL's standard control,
 *   gsl_odeiv2_control_standard_new(atol, rtol, 1, 0):  max_i |yerr_i| / (atol + rtol |y_i|),
 * and otherwise (default) the "rms" control below, the weighted RMS norm of scipy's
 * solve_ivp and DPM-Solver (Hairer, Norsett & Wanner I, II.4):
 *   err = sqrt( (1/n) sum_i ( yerr_i / (atol + rtol max(|y_old_i|, |y_new_i|)) )^2 ),
 * n the state length, y_old the state at the start of the step, y_new the propagated
 * solution. Both adjust h as GSL's standard control does (cstd.c), with q the GSL order
 * of the step (5 for rkf45 and rkck, whose error estimate is O(h^5); 8 for rk8pd):
 *   err > 1.1:  reject, h *= max(0.2, 0.9 err^(-1/q))
 *   err < 0.5:  accept, h *= min(5, max(1, 0.9 err^(-1/(q+1))))
 *   otherwise:  accept, h unchanged.
 *
 * Memory: GSL allocates its own stage buffers of the state's size in init
 * (gsl_odeiv2_step_alloc: 8 state-sized arrays for rkf45 and rkck, k1..k6, y0, ytmp; 15
 * for rk8pd, k1..k13, y0, ytmp); nothing is allocated in step or evolve. The system's y is
 * the corrsde state itself (no copies); the loop's buffers are 0 = yerr, 1 = the state at
 * the start of an adaptive step (to undo a rejected attempt), 2 = f(t0, x).
 *
 * Where the numbers come from (GSL's source, ode-initval2/rkf45.c, rkck.c, rk8pd.c; the
 * measured fixed-step orders on the Gaussian PF-ODE agree: about 5, 5 and 8):
 *   rkf45: 6 stage evaluations; the final sum uses c1 = 902880/7618050 = 16/135,
 *          c3 = 6656/12825, c4 = 28561/56430, c5 = -9/50, c6 = 2/55, Fehlberg's 5th-order
 *          weights, so the propagated solution is the 5th-order one (local extrapolation;
 *          rkf45_order returns 5).
 *   rkck:  6 stage evaluations; final weights 37/378, 250/621, 125/594, 512/1771, Cash-
 *          Karp's 5th-order solution (rkck_order returns 5).
 *   rk8pd: 13 stage evaluations; the final sum is the 8th-order solution (the embedded
 *          one, used only for yerr, is 7th order; rk8pd_order returns 8).
 * The nfe_per_step numbers are for a fixed step (dydt_in = NULL: every stage evaluated;
 * no dydt_out). An adaptive call costs 1 + (nfe_per_step - 1) per attempt: f(t0, x) is
 * evaluated once and reused by every attempt of the call. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_errno.h>
#include <gsl/gsl_odeiv2.h>

#include "solve/stepper.h"

enum { BUF_YERR = 0, BUF_Y0 = 1, BUF_DYDT = 2, RK_NBUF = 3 };

/* What the system returns when the model asks for a smaller step. */
#define RK_RETRY GSL_FAILURE

typedef struct {
  csde_stepper *S;
  gsl_odeiv2_step *step;
  gsl_odeiv2_control *con; /* adaptive only */
  gsl_odeiv2_system sys;
  int status;              /* the corrsde status behind the last failed evaluation */
} rk_state;

/* The GSL system: dydt = f(t, y) over the whole state. CSDE_ERETRY (the model asked for
 * a smaller step) returns RK_RETRY = GSL_FAILURE, a non-success that GSL's evolve would
 * retry with a smaller step; anything else (CSDE_EBADFUNC, CSDE_ENAN, the NFE guard's
 * CSDE_EMAXITER, ...) returns GSL_EBADFUNC, which makes evolve stop at once. The
 * corrsde status is kept in st->status; its message is already on the solver. */
static int rk_system(double t, const double y[], double dydt[], void *params)
{
  rk_state *st = params;
  int s = csde_stepper_drift(st->S, t, y, dydt);
  if (!s) return GSL_SUCCESS;
  st->status = s;
  return s == CSDE_ERETRY ? RK_RETRY : GSL_EBADFUNC;
}

/* ---- the "rms" control (see the top of the file) ---- */

typedef struct {
  double atol, rtol;
  const double *y_old; /* the state at the start of the step, or NULL: max(|y_new|) only */
} rms_control;

static void *rms_alloc(void) { return calloc(1, sizeof(rms_control)); }

static int rms_init(void *vs, double eps_abs, double eps_rel, double a_y, double a_dydt)
{
  rms_control *c = vs;
  (void)a_y, (void)a_dydt; /* the RMS norm weighs the state only */
  if (!(eps_abs >= 0) || !(eps_rel >= 0)) return GSL_EINVAL;
  c->atol = eps_abs;
  c->rtol = eps_rel;
  return GSL_SUCCESS;
}

static int rms_hadjust(void *vs, size_t dim, unsigned int ord, const double y[],
                       const double yerr[], const double yp[], double *h)
{
  const rms_control *c = vs;
  const double S = 0.9, h_old = *h;
  (void)yp;
  /* sum_i (yerr_i / (atol + rtol max(|y_old_i|, |y_new_i|)))^2, serial so that the
   * result does not depend on the thread count */
  double sum = 0;
  for (size_t i = 0; i < dim; i++) {
    double a = fabs(y[i]);
    if (c->y_old && fabs(c->y_old[i]) > a) a = fabs(c->y_old[i]);
    const double sc = c->atol + c->rtol * a;
    if (yerr[i] == 0) continue; /* also when sc == 0 */
    const double r = yerr[i] / sc;
    sum += r * r;
  }
  double err = sqrt(sum / (double)(dim ? dim : 1));
  if (isnan(err)) err = HUGE_VAL;
  if (err < DBL_MIN) err = DBL_MIN;

  if (err > 1.1) {
    /* decrease, no more than a factor 5, a fraction S more than the scaling suggests */
    double r = S / pow(err, 1.0 / ord);
    if (!(r >= 0.2)) r = 0.2;
    *h = r * h_old;
    return GSL_ODEIV_HADJ_DEC;
  }
  if (err < 0.5) {
    /* increase, no more than a factor 5 (and no decrease caused by S < 1) */
    double r = S / pow(err, 1.0 / (ord + 1.0));
    if (r > 5.0) r = 5.0;
    if (r < 1.0) r = 1.0;
    *h = r * h_old;
    return GSL_ODEIV_HADJ_INC;
  }
  return GSL_ODEIV_HADJ_NIL;
}

static int rms_errlevel(void *vs, const double y, const double dydt, const double h,
                        const size_t ind, double *errlev)
{
  const rms_control *c = vs;
  (void)dydt, (void)h, (void)ind;
  *errlev = c->atol + c->rtol * fabs(y);
  return GSL_SUCCESS;
}

static int rms_set_driver(void *vs, const gsl_odeiv2_driver *d)
{
  (void)vs, (void)d; /* the driver is not used */
  return GSL_SUCCESS;
}

static void rms_free(void *vs) { free(vs); }

static const gsl_odeiv2_control_type rms_control_type = {
  "rms", &rms_alloc, &rms_init, &rms_hadjust, &rms_errlevel, &rms_set_driver, &rms_free};

/* ---- init / free ---- */

static void rk_free(csde_stepper *S)
{
  rk_state *st = csde_stepper_state(S);
  if (!st) return;
  if (st->con) gsl_odeiv2_control_free(st->con);
  if (st->step) gsl_odeiv2_step_free(st->step);
  free(st);
  csde_stepper_set_state(S, NULL);
}

static int rk_init_type(csde_stepper *S, const gsl_odeiv2_step_type *gt, const char *name)
{
  const size_t n = csde_stepper_n(S);
  const csde_solve_params *par = csde_stepper_params(S);
  if (n == 0) return csde_stepper_fail(S, CSDE_EBADLEN, "%s: the state is empty", name);
  rk_state *st = calloc(1, sizeof *st);
  if (!st) return csde_stepper_fail(S, CSDE_ENOMEM, "%s: out of memory", name);
  csde_stepper_set_state(S, st);
  st->S = S;
  st->sys.function = rk_system;
  st->sys.jacobian = NULL;
  st->sys.dimension = n;
  st->sys.params = st;
  st->step = gsl_odeiv2_step_alloc(gt, n);
  if (!st->step) {
    rk_free(S);
    return csde_stepper_fail(S, CSDE_ENOMEM,
                             "%s: out of memory for GSL's stage buffers (state of %zu doubles)",
                             name, n);
  }
  if (par->rtol > 0 || par->atol > 0) {
    if (!(par->rtol >= 0 && par->atol >= 0 && isfinite(par->rtol) && isfinite(par->atol))) {
      rk_free(S);
      return csde_stepper_fail(S, CSDE_EDOM, "%s: rtol and atol must be finite and >= 0 "
                               "(rtol %g, atol %g)", name, par->rtol, par->atol);
    }
    if (par->max_norm) {
      st->con = gsl_odeiv2_control_standard_new(par->atol, par->rtol, 1.0, 0.0);
    } else {
      st->con = gsl_odeiv2_control_alloc(&rms_control_type);
      if (st->con && gsl_odeiv2_control_init(st->con, par->atol, par->rtol, 1.0, 0.0)) {
        gsl_odeiv2_control_free(st->con);
        st->con = NULL;
      }
    }
    if (!st->con) {
      rk_free(S);
      return csde_stepper_fail(S, CSDE_ENOMEM, "%s: cannot set up the step-size control",
                               name);
    }
  }
  return 0;
}

static int rk45_init(csde_stepper *S, csde_err *err)
{
  (void)err; /* messages go on the solver (its err) through csde_stepper_fail */
  return rk_init_type(S, gsl_odeiv2_step_rkf45, "rk45");
}
static int rkck_init(csde_stepper *S, csde_err *err)
{
  (void)err;
  return rk_init_type(S, gsl_odeiv2_step_rkck, "rkck");
}
static int rk8pd_init(csde_stepper *S, csde_err *err)
{
  (void)err;
  return rk_init_type(S, gsl_odeiv2_step_rk8pd, "rk8pd");
}

/* The corrsde status of a failed gsl_odeiv2_step_apply. */
static int rk_status(csde_stepper *S, rk_state *st, int gs)
{
  if ((gs == GSL_EBADFUNC || gs == RK_RETRY) && st->status) return st->status;
  return csde_stepper_fail(S, CSDE_EFAILED, "GSL step %s failed: %s",
                           gsl_odeiv2_step_name(st->step), gsl_strerror(gs));
}

/* ---- fixed step ---- */

static int rk_step(csde_stepper *S, double t0, double t1, double *x, const double *dW,
                   int last)
{
  rk_state *st = csde_stepper_state(S);
  (void)last;
  if (dW)
    return csde_stepper_fail(S, CSDE_ENOTSUP, "%s integrates ODEs only",
                             gsl_odeiv2_step_name(st->step));
  st->status = 0;
  /* x <- x + h sum_j b_j k_j (all stages evaluated here: no dydt_in, no dydt_out) */
  int gs = gsl_odeiv2_step_apply(st->step, t0, t1 - t0, x, csde_stepper_buf(S, BUF_YERR), NULL,
                                 NULL, &st->sys);
  return gs == GSL_SUCCESS ? 0 : rk_status(S, st, gs);
}

/* ---- adaptive ---- */

static int rk_evolve(csde_stepper *S, double *t, double t1, double *h, double *x)
{
  rk_state *st = csde_stepper_state(S);
  const size_t n = csde_stepper_n(S);
  const char *name = gsl_odeiv2_step_name(st->step);
  if (!st->con)
    return csde_stepper_fail(S, CSDE_EINVAL, "%s: the adaptive mode needs rtol > 0 or atol > 0",
                             name);
  const double t0 = *t, dt = t1 - t0;
  if (!isfinite(t0) || !isfinite(t1))
    return csde_stepper_fail(S, CSDE_EDOM, "%s: step from t = %g to %g", name, t0, t1);
  if (dt == 0) return 0;
  double *yerr = csde_stepper_buf(S, BUF_YERR), *y0 = csde_stepper_buf(S, BUF_Y0),
         *dydt = csde_stepper_buf(S, BUF_DYDT);
  if (st->con->type == &rms_control_type) ((rms_control *)st->con->state)->y_old = y0;

  /* a trial step of the wrong sign, zero or NaN: try the whole remaining interval */
  const int h_ok = isfinite(*h) && *h * dt > 0;
  double h0 = h_ok ? *h : dt;
  int rejected = 0, recovered = 0;

  memcpy(y0, x, n * sizeof *x); /* undo copy */
  st->status = 0;
  if (rk_system(t0, x, dydt, st) != GSL_SUCCESS) /* dydt = f(t0, x), once */
    return st->status; /* a smaller step cannot help at its start point */

  for (;;) {
    int final = 0;
    if (fabs(h0) >= fabs(dt)) {
      h0 = dt;
      final = 1;
    }
    st->status = 0;
    int gs = gsl_odeiv2_step_apply(st->step, t0, h0, x, yerr, dydt, NULL, &st->sys);
    if (gs != GSL_SUCCESS) {
      memcpy(x, y0, n * sizeof *x);
      if (gs != RK_RETRY) return rk_status(S, st, gs);
      /* the model asked to retry: halve h, as GSL's evolve does */
      const double h_old = h0;
      h0 *= 0.5;
      csde_stepper_count(S, 0);
      if (!(fabs(h0) < fabs(h_old) && t0 + h0 != t0))
        return st->status; /* its message ("asked to retry ...") is on the solver */
      rejected = 1, recovered = 1;
      continue;
    }
    const double h_used = h0;
    /* the control's new h0 from yerr (dydt is only read by the standard control, times
     * a_dydt = 0) */
    int adj = gsl_odeiv2_control_hadjust(st->con, st->step, x, yerr, dydt, &h0);
    if (adj == GSL_ODEIV_HADJ_DEC) {
      memcpy(x, y0, n * sizeof *x);
      csde_stepper_count(S, 0);
      if (!(fabs(h0) < fabs(h_used) && t0 + h0 != t0))
        return csde_stepper_fail(
            S, CSDE_EFAILED,
            "%s cannot reach rtol = %g, atol = %g: step size underflow (h = %.3g at t = %.17g)",
            name, csde_stepper_params(S)->rtol, csde_stepper_params(S)->atol, h0, t0);
      rejected = 1;
      continue;
    }
    csde_stepper_count(S, 1);
    *t = final ? t1 : t0 + h_used;
    /* the next trial step: the control's suggestion, except after the final step clamped
     * to t1 (it can be tiny): keep the caller's h then, unless this call had to shrink
     * it or it was unusable */
    if (!final || !h_ok || (rejected && fabs(h0) < fabs(*h))) *h = h0;
    if (recovered) csde_stepper_fail(S, CSDE_SUCCESS, "%s", ""); /* clear the retry record */
    return 0;
  }
}

#define RK_TYPE(var, nm, sum, nfe, ord, initfn, own)                                        \
  const csde_solver_type var = {                                                          \
    .name = nm, .summary = sum,                                                           \
    .ode = 1, .adaptive = CSDE_ADAPT_ODE,                                                 \
    .nfe_per_step = nfe, .order_ode = ord,                                                \
    .nbuf = RK_NBUF, .nbuf_own = own,                                                     \
    .init = initfn, .free = rk_free, .step = rk_step, .evolve = rk_evolve,                \
  };

/* Fehlberg 4(5), propagating the 5th-order solution */
RK_TYPE(csde_solver_rk45, "rk45", "GSL Fehlberg 4(5): ODEs, adaptive, order 5",
        6, 5.0, rk45_init, 8)
/* Cash-Karp 4(5), propagating the 5th-order solution */
RK_TYPE(csde_solver_rkck, "rkck", "GSL Cash-Karp 4(5): ODEs, adaptive, order 5", 6,
        5.0, rkck_init, 8)
/* Prince-Dormand 8(7), propagating the 8th-order solution */
RK_TYPE(csde_solver_rk8pd, "rk8pd", "GSL Prince-Dormand 8(7): ODEs, adaptive, order 8",
        13, 8.0, rk8pd_init, 15)
