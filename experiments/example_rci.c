/* Reverse communication (corrsde/run.h): the caller evaluates the model, as a GPU-resident
 * or JAX model would, and corrsde takes the steps. Here the "caller's model" is the
 * built-in gaussian one, called from the loop; the PF-ODE is decoded with rk45 (adaptive)
 * from exact samples of p_T and compared with the exact flow. Only the umbrella header is
 * included. Exit 0 when the largest error is below 1e-5 (rtol = atol = 1e-8). */
#include <math.h>
#include <stdio.h>

#include <corrsde/corrsde.h>

int main(void)
{
  enum { TAU = 8, D = 16, B = 4 };
  static double x[B * TAU * D], ref[B * TAU * D];
  csde_cov *C = NULL;
  csde_schedule *sched = NULL;
  csde_model *mine = NULL, *ext = NULL; /* the caller's model; the run's stand-in for it */
  csde_run *r = NULL;
  csde_err err;
  csde_run_settings s = csde_run_default_settings();
  s.process = "pf-ode";
  s.solver = "rk45";
  s.rtol = s.atol = 1e-8;
  size_t shape[1] = {D}, evals = 0, steps = 0;
  csde_rci q;
  csde_solve_stats st;
  int rc = csde_cov_alloc(&C, "ar1:rho=0.9", TAU, NULL, &err) ||
           csde_schedule_alloc(&sched, "vp-linear", &err) ||
           csde_model_gaussian_alloc(&mine, C, sched, D, NULL, 0, NULL, &err) ||
           csde_model_alloc_external(&ext, "mine", CSDE_OUT_CSCORE, &err) ||
           csde_run_alloc(&r, &s, C, sched, ext, B, 1, shape, &err);
  double t0 = 0, t1 = 0, e = 0;
  if (!rc) {
    csde_run_span(r, &t0, &t1);
    rc = csde_model_gaussian_sample(mine, t0, (csde_rng_key){.seed = 7}, 0, B, x, &err) ||
         csde_model_gaussian_flow_apply(mine, t0, t1, B, x, ref, &err);
  }
  /* the loop: EVAL -> evaluate at (q.ctx->t, q.x) into q.out and give the status */
  rc = rc ? rc : csde_run_begin(r, x, NULL, &err);
  while (!rc && !(rc = csde_run_next(r, &q, &err)) && q.what != CSDE_RCI_DONE) {
    if (q.what == CSDE_RCI_EVAL) {
      evals++;
      rc = csde_run_give(r, csde_model_call_ctx(mine, q.ctx, q.x, q.out), &err);
    } else {
      steps++; /* CSDE_RCI_STEP: q.x is the state after step q.step */
    }
  }
  int rc2 = r ? csde_run_end(r, &st, &err) : rc;
  rc = rc ? rc : rc2;
  for (size_t i = 0; !rc && i < (size_t)B * TAU * D; i++) e = fmax(e, fabs(x[i] - ref[i]));
  if (rc)
    fprintf(stderr, "error: %s\n", err.msg);
  else
    printf("rk45 by reverse communication: %zu evaluations, %zu steps, max |x - exact flow| "
           "= %.3g\n", evals, steps, e);
  csde_run_free(r);
  csde_model_free(ext);
  csde_model_free(mine);
  csde_schedule_free(sched);
  csde_cov_free(C);
  return rc || !(e < 1e-5);
}
