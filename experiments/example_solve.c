/* The README's solve example, complete: decode the PF-ODE of the built-in gaussian video
 * model with adaptive dopri5 from exact samples of p_T, and compare with the model's
 * exact flow. Only the umbrella header is included. Exit 0 when the largest error is
 * below 1e-6 (the tolerances are 1e-9); it prints that error. */
#include <math.h>
#include <stdio.h>

#include <corrsde/corrsde.h>

int main(void)
{
  enum { TAU = 8, D = 16, B = 4 };
  static double x[B * TAU * D], ref[B * TAU * D];
  csde_cov *C = NULL;
  csde_schedule *sched = NULL;
  csde_model *model = NULL;
  csde_err err;
  csde_init(); /* GSL errors returned, never aborts */
  if (csde_cov_alloc(&C, "ar1:rho=0.9", TAU, NULL, &err) ||
      csde_schedule_alloc(&sched, "vp-linear", &err) ||
      /* data N(0, 0.25 ar1(0.95) (x) I): S0 does not commute with C */
      csde_model_gaussian_alloc_spec(&model, C, sched, D, NULL, 0, "ar1:rho=0.95", 0.25,
                                     &err)) {
    fprintf(stderr, "error: %s\n", err.msg);
    return 1;
  }
  csde_problem P = csde_problem_default(); /* T = 1, eps = 1e-3 */
  P.process = CSDE_PROC_PFODE;
  P.tau = TAU;
  P.D = D;
  P.batch = B;
  P.C = C;
  P.sched = sched;
  P.model = model;
  csde_solve_params par = csde_solve_default_params();
  par.solver = "dopri5";
  par.rtol = par.atol = 1e-9;
  csde_solve_stats st;
  int s = csde_model_gaussian_sample(model, P.T, (csde_rng_key){.seed = 7}, 0, B, x, &err) ||
          csde_model_gaussian_flow_apply(model, P.T, P.eps, B, x, ref, &err) ||
          csde_solve(&P, &par, x, &st, &err);
  double e = 0;
  for (size_t i = 0; !s && i < (size_t)B * TAU * D; i++) e = fmax(e, fabs(x[i] - ref[i]));
  if (s)
    fprintf(stderr, "error: %s\n", err.msg);
  else
    printf("dopri5, rtol = atol = 1e-9: %zu model evaluations, max |x - exact flow| = %.3g\n",
           st.nfe, e);
  csde_model_free(model);
  csde_schedule_free(sched);
  csde_cov_free(C);
  return s || !(e < 1e-6);
}
