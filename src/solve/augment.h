/* Internal: a solve whose state carries naug values more than the process's batch * tau *
 * D, integrated by the same steps (the likelihood's log-density integrals, src/likelihood).
 *
 * After every drift evaluation f = f(t, x) of the process (the first n values), fn gives
 * the derivative of the extra values, daug = d/dt x[n .. n + naug), from the whole state
 * x and f. Steps of the solver then treat the state as one vector of n + naug values
 * (adaptive error control included); for drift_parts / drift_src the whole derivative is
 * passed as f = 0 x + 1 src. Only ODE processes and the integrators that step on f itself
 * (not on the denoiser view, not the discrete samplers) can carry it: others are refused
 * with CSDE_EINVAL naming the solver; so is a corrector. */
#ifndef CSDE_SOLVE_AUGMENT_H
#define CSDE_SOLVE_AUGMENT_H

#include "corrsde/solve.h"

typedef int (*csde_aug_fn)(void *user, double t, size_t step, const double *x,
                           const double *f, double *daug, csde_err *err);

int csde_solver_alloc_aug(csde_solver **out, const csde_problem *P,
                          const csde_solve_params *par, size_t naug, csde_aug_fn fn,
                          void *user, csde_err *err);
/* csde_solver_type_carries (solve.h) is the test of csde_solver_alloc_aug; the names of
 * the types that pass it, joined by ", " into buf (from the solver table). Returns buf. */
char *csde_solver_carry_names(char *buf, size_t len);

#endif
