/* UniPC (stepper.h): the unified predictor-corrector of Zhao et al. (2023), variant bh2,
 * in data prediction on the PF-ODE, one model evaluation per step. Two types: `unipc`
 * (predictor order 2, with the corrector UniC order 3) and `unipc3` (3, with UniC 4).
 *
 * Setting as in dpmpp2m.c: lambda = log(alpha / sigma), D_j the data prediction at node
 * j. A step t0 -> t1 of order p, h = lambda1 - lambda0, hh = -h, B = e^hh - 1, with the
 * last p - 1 nodes before t0 at r_i = (lambda_{-i} - lambda0) / h (i = 1..p-1; r_p = 1):
 *   base   = (sigma1 / sigma0) x - alpha1 (e^hh - 1) D0
 *   dD_i   = (D_{-i} - D0) / r_i
 *   R[m][i] = r_i^m, b[m] = phi_{m+1}(hh) (m + 1)! / B, m = 0..p-1, with
 *   phi_1 = (e^hh - 1) / hh - 1 and phi_{m+1} = phi_m / hh - 1 / (m + 1)! (the recursion
 *   of the reference implementation)
 *   predictor  x~ = base - alpha1 B sum_i rho_i dD_i,  R[:p-1, :p-1] rho = b[:p-1]
 *              (rho = 1/2 for p = 2)
 *   corrector  D1 = x0_theta(x~, t1), and
 *              x1 = base - alpha1 B (sum_i c_i dD_i + c_p (D1 - D0)),  R c = b
 *              (c = 1/2 for p = 1).
 * D1, the prediction at the predicted state, is the next step's D0 (no extra evaluation);
 * the last step takes the predictor alone. The order is min(p_max, steps so far + 1) and,
 * below 15 steps, min with the steps left (lower order at the end, as dpmpp2m.c). The
 * small systems are solved by GSL's Householder solver.
 *
 * Buffers: 0 .. p_max hold D at the last nodes by turns; p_max + 1 is x~. */
#include <gsl/gsl_linalg.h>
#include <math.h>
#include <string.h>

#include "core/linalg.h"
#include "solve/stepper.h"

#define UNIPC_MAX 3
#define UNIPC_LOWER_FINAL 15

typedef struct {
  int pmax;
  size_t k;                  /* steps taken in this run */
  int have;                  /* predictions at nodes up to t0 (0: none yet) */
  unsigned cur;              /* ring slot of D0 */
  double lam[UNIPC_MAX];     /* lambda at t0, and the nodes before it */
} unipc_state;

static int unipc_init_p(csde_stepper *S, int pmax, csde_err *err)
{
  int s = csde_stepper_state_alloc(S, sizeof(unipc_state), err);
  if (!s) ((unipc_state *)csde_stepper_state(S))->pmax = pmax;
  return s;
}

static int unipc2_init(csde_stepper *S, csde_err *err) { return unipc_init_p(S, 2, err); }
static int unipc3_init(csde_stepper *S, csde_err *err) { return unipc_init_p(S, 3, err); }

static void unipc_reset(csde_stepper *S)
{
  unipc_state *st = csde_stepper_state(S);
  st->k = 0;
  st->have = 0;
  st->cur = 0;
}

/* Solve the n x n system A z = b (row-major A, overwritten) for z; n <= UNIPC_MAX. */
static int small_solve(size_t n, double *A, const double *b, double *z)
{
  if (n == 1) {
    z[0] = b[0] / A[0];
    return isfinite(z[0]) ? 0 : -1;
  }
  gsl_matrix_view Av = gsl_matrix_view_array(A, n, n);
  memcpy(z, b, n * sizeof *z);
  gsl_vector_view zv = gsl_vector_view_array(z, n);
  csde_gsl_quiet_begin(); /* a singular system: a status */
  int s = gsl_linalg_HH_svx(&Av.matrix, &zv.vector);
  csde_gsl_quiet_end();
  return s;
}

static int unipc_step(csde_stepper *S, double t0, double t1, double *x, const double *dW,
                      int last)
{
  (void)dW;
  unipc_state *st = csde_stepper_state(S);
  const unsigned ring = (unsigned)st->pmax + 1;
  double a0, s0, l0, a1, s1, l1;
  csde_stepper_view(S, t0, &a0, &s0, &l0);
  csde_stepper_view(S, t1, &a1, &s1, &l1);
  double *D0 = csde_stepper_buf(S, st->cur), *xp = csde_stepper_buf(S, ring);
  int s;
  if (!st->have) { /* the first step: D0 = x0_theta(x, t0) */
    if ((s = csde_stepper_denoise(S, t0, x, D0))) return s;
    st->have = 1;
    st->lam[0] = l0;
  }
  /* the order of this step */
  const size_t N = csde_stepper_params(S)->steps;
  int p = st->have < st->pmax ? st->have : st->pmax;
  if (N < UNIPC_LOWER_FINAL && N > st->k && (size_t)p > N - st->k) p = (int)(N - st->k);
  const double *Dm[UNIPC_MAX]; /* D_{-i}, i = 1..p-1 */
  double r[UNIPC_MAX + 1];
  const double h = l1 - l0, hh = -h, B = expm1(hh);
  for (int i = 1; i < p; i++) {
    Dm[i - 1] = csde_stepper_buf(S, (st->cur + ring - (unsigned)i) % ring);
    r[i - 1] = (st->lam[i] - l0) / h;
  }
  r[p - 1] = 1.0;
  /* R[m][i] = r_i^m, b[m] = phi_{m+1} (m+1)! / B */
  double R[UNIPC_MAX * UNIPC_MAX], Rp[UNIPC_MAX * UNIPC_MAX], b[UNIPC_MAX];
  double phi = expm1(hh) / hh - 1, fac = 1;
  for (int m = 0; m < p; m++) {
    for (int i = 0; i < p; i++) R[m * p + i] = pow(r[i], m);
    b[m] = phi * fac / B;
    fac *= m + 2;
    phi = phi / hh - 1 / fac;
  }
  double rho[UNIPC_MAX] = {0}, c[UNIPC_MAX] = {0};
  if (p == 2) {
    rho[0] = 0.5;
  } else if (p > 2) {
    for (int m = 0; m < p - 1; m++)
      for (int i = 0; i < p - 1; i++) Rp[m * (p - 1) + i] = R[m * p + i];
    if (small_solve((size_t)(p - 1), Rp, b, rho))
      return csde_stepper_fail(S, CSDE_EFAILED, "unipc: singular predictor system at t = %g", t0);
  }
  const double cx = s1 / s0, cd = -a1 * expm1(hh), cb = -a1 * B;
  /* x~ = base - alpha1 B sum_i rho_i (D_{-i} - D0) / r_i */
  double wp[UNIPC_MAX + 1] = {cd}; /* the weights of D0, D_{-1}, ..., D_{-(p-1)} */
  const double *bp[UNIPC_MAX + 1] = {D0};
  for (int i = 1; i < p; i++) {
    wp[i] = cb * rho[i - 1] / r[i - 1];
    wp[0] -= wp[i];
    bp[i] = Dm[i - 1];
  }
  csde_stepper_lincomb(S, last ? x : xp, cx, x, (unsigned)p, wp, bp);
  if (!last) {
    /* the corrector: D1 = x0_theta(x~, t1) goes into the slot after D0 */
    unsigned nxt = (st->cur + 1) % ring;
    double *D1 = csde_stepper_buf(S, nxt);
    if ((s = csde_stepper_denoise(S, t1, xp, D1))) return s;
    if (p == 1) {
      c[0] = 0.5;
    } else if (small_solve((size_t)p, R, b, c)) {
      return csde_stepper_fail(S, CSDE_EFAILED, "unipc: singular corrector system at t = %g", t0);
    }
    /* x1 = base - alpha1 B (sum_i c_i (D_{-i} - D0) / r_i + c_p (D1 - D0)) */
    double wc[UNIPC_MAX + 1] = {cd - cb * c[p - 1], cb * c[p - 1]}; /* D0, D1, D_{-i} */
    const double *bc[UNIPC_MAX + 1] = {D0, D1};
    for (int i = 0; i < p - 1; i++) {
      wc[i + 2] = cb * c[i] / r[i];
      wc[0] -= wc[i + 2];
      bc[i + 2] = Dm[i];
    }
    csde_stepper_lincomb(S, x, cx, x, (unsigned)p + 1, wc, bc);
    st->cur = nxt;
    for (int i = UNIPC_MAX - 1; i > 0; i--) st->lam[i] = st->lam[i - 1];
    st->lam[0] = l1;
    if (st->have < st->pmax) st->have++;
  }
  st->k++;
  return CSDE_SUCCESS;
}

#define UNIPC_TYPE(var, nm, sum, initfn, ord)                                              \
  const csde_solver_type var = {                                                          \
    .name = nm, .summary = sum,                                                           \
    .ode = 1, .nfe_per_step = 1, .order_ode = ord,                                        \
    .nbuf = UNIPC_MAX + 2, .view = CSDE_VIEW_LAMBDA,                                      \
    .init = initfn, .free = csde_stepper_state_free, .reset = unipc_reset, .step = unipc_step,\
  };

UNIPC_TYPE(csde_solver_unipc, "unipc", "UniPC-bh2, predictor 2 + corrector: PF-ODE, order 3",
           unipc2_init, 3.0)
UNIPC_TYPE(csde_solver_unipc3, "unipc3", "UniPC-bh2, predictor 3 + corrector: PF-ODE, order 4",
           unipc3_init, 4.0)
