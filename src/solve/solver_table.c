/* The integrators' registry (corrsde/solve.h): every type table of solvers/ in one list.
 * Adding an integrator adds its file and one line here. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "solve/stepper.h"

static const csde_solver_type *const solver_types[] = {
  &csde_solver_euler, &csde_solver_heun, &csde_solver_rk45, &csde_solver_rkck,
  &csde_solver_rk8pd, &csde_solver_dopri5, &csde_solver_dpmpp2m,
  &csde_solver_dpmpp3m, &csde_solver_unipc, &csde_solver_unipc3,
  &csde_solver_edm_heun, &csde_solver_euler_ancestral, &csde_solver_dpmpp2m_sde,
  &csde_solver_ddim, &csde_solver_ddpm,
  NULL};

const csde_solver_type *csde_solver_lookup(const char *name)
{
  if (!name) return NULL;
  for (const csde_solver_type *const *t = solver_types; *t; t++)
    if (!strcmp((*t)->name, name) || ((*t)->alias && !strcmp((*t)->alias, name))) return *t;
  return NULL;
}

const csde_solver_type *const *csde_solver_types(void) { return solver_types; }

const char *csde_solver_type_name(const csde_solver_type *T) { return T ? T->name : NULL; }

const char *csde_solver_type_alias(const csde_solver_type *T) { return T ? T->alias : NULL; }
const char *csde_solver_type_summary(const csde_solver_type *T) { return T ? T->summary : NULL; }

char *csde_solver_names(int p, char *buf, size_t len)
{
  size_t o = 0;
  if (len) buf[0] = '\0';
  for (const csde_solver_type *const *t = solver_types; *t && o < len; t++) {
    if ((p >= 0 && !csde_solver_type_fits(*t, (csde_process)p)) || (*t)->via_process) continue;
    const char *names[2] = {(*t)->alias, (*t)->name};
    for (int k = 0; k < 2 && o < len; k++)
      if (names[k]) o += (size_t)snprintf(buf + o, len - o, "%s%s", o ? ", " : "", names[k]);
  }
  return buf;
}

/* SDE processes need an SDE integrator, the ODE processes an ODE one. */
int csde_solver_type_fits(const csde_solver_type *T, csde_process p)
{
  if (!T || T->via_process) return 0;
  if (T->reverse_only && p == CSDE_PROC_FORWARD_SDE) return 0;
  return csde_process_is_sde(p) ? T->sde != 0 : T->ode != 0;
}

unsigned csde_solver_type_nfe_per_step(const csde_solver_type *T)
{
  return T ? T->nfe_per_step : 0;
}

/* "ode", "strong" or "weak" (0 where it does not apply); NaN for an unknown `which` or a
 * NULL type. */
double csde_solver_type_order(const csde_solver_type *T, const char *which)
{
  if (!T || !which) return NAN;
  if (!strcmp(which, "ode")) return T->order_ode;
  if (!strcmp(which, "strong")) return T->order_strong;
  if (!strcmp(which, "weak")) return T->order_weak;
  return NAN;
}
