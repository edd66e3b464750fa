/* The integrators' registry (corrsde/solve.h): every type table of solvers/ in one list.
 * Adding an integrator adds its file (solvers/, listed in meson.build), its declaration
 * and its entry here; tests/test_orders.c (conformance) then runs it on every process it
 * fits against its declared orders and NFE per step. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/spec.h"
#include "solve/stepper.h"

/* The type tables, one per integrator (solvers/X.c). */
extern const csde_solver_type csde_solver_euler;
extern const csde_solver_type csde_solver_heun;
extern const csde_solver_type csde_solver_sra1;
extern const csde_solver_type csde_solver_rk45;
extern const csde_solver_type csde_solver_rkck;
extern const csde_solver_type csde_solver_rk8pd;
extern const csde_solver_type csde_solver_dopri5;
extern const csde_solver_type csde_solver_dpmpp2m;
extern const csde_solver_type csde_solver_dpmpp3m;
extern const csde_solver_type csde_solver_ipndm;
extern const csde_solver_type csde_solver_unipc;
extern const csde_solver_type csde_solver_unipc3;
extern const csde_solver_type csde_solver_edm_heun;
extern const csde_solver_type csde_solver_euler_ancestral;
extern const csde_solver_type csde_solver_dpmpp2m_sde;
extern const csde_solver_type csde_solver_ddim;
extern const csde_solver_type csde_solver_ddpm;

static const csde_solver_type *const solver_types[] = {
  &csde_solver_euler, &csde_solver_heun, &csde_solver_sra1, &csde_solver_rk45, &csde_solver_rkck,
  &csde_solver_rk8pd, &csde_solver_dopri5, &csde_solver_dpmpp2m,
  &csde_solver_dpmpp3m, &csde_solver_unipc, &csde_solver_unipc3, &csde_solver_ipndm,
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

/* The name of a spec "name[:options]": its first len - 1 characters at most. */
static size_t spec_name(const char *spec, char *name, size_t len)
{
  size_t k = strcspn(spec, ":");
  if (len) {
    size_t c = k < len - 1 ? k : len - 1;
    memcpy(name, spec, c);
    name[c] = '\0';
  }
  return k;
}

const csde_solver_type *csde_solver_spec_lookup(const char *spec)
{
  char name[64];
  if (!spec || spec_name(spec, name, sizeof name) >= sizeof name) return NULL;
  return csde_solver_lookup(name);
}

char *csde_solver_type_options(const csde_solver_type *T, char *buf, size_t len)
{
  if (!T || !T->options || !len) return NULL;
  size_t o = 0;
  buf[0] = '\0';
  for (const csde_solver_option *q = T->options; q->key && o < len; q++)
    o += (size_t)snprintf(buf + o, len - o, "%s%s=%s", o ? "," : "", q->key, q->what);
  return buf;
}

int csde_solver_spec_parse(const char *spec, csde_solve_params *par, char *name, size_t len,
                           csde_err *err)
{
  if (!spec || !par || !name || !len)
    return csde_err_set(err, CSDE_EINVAL, "a solver spec, parameters and a name buffer are needed");
  if (spec_name(spec, name, len) >= len)
    return csde_err_set(err, CSDE_EINVAL, "solver name too long in '%s'", spec);
  const csde_solver_type *T = csde_solver_lookup(name);
  if (!T) {
    char names[1024];
    return csde_err_set(err, CSDE_EINVAL, "expected one of %s, got '%s'",
                        csde_solver_names(-1, names, sizeof names), name);
  }
  if (!strchr(spec, ':')) return CSDE_SUCCESS;
  if (!T->options)
    return csde_err_set(err, CSDE_EINVAL, "'%s': %s takes no options", spec, T->name);
  csde_spec sp;
  const char *keys[CSDE_SPEC_MAXKV + 1];
  size_t nk = 0;
  for (const csde_solver_option *q = T->options; q->key && nk < CSDE_SPEC_MAXKV; q++)
    keys[nk++] = q->key;
  keys[nk] = NULL;
  csde_err e2;
  char words[256];
  if (csde_spec_parse(spec, "solver", &sp, &e2))
    return csde_err_set(err, CSDE_EINVAL, "'%s': %s (expected %s:%s)", spec, e2.msg, T->name,
                        csde_solver_type_options(T, words, sizeof words));
  if (csde_spec_check_keys(&sp, keys, &e2))
    return csde_err_set(err, CSDE_EINVAL, "'%s': %s", spec, e2.msg);
  for (const csde_solver_option *q = T->options; q->key; q++) {
    const char *v = csde_spec_get(&sp, q->key);
    double x;
    if (!v) continue;
    if (!strcmp(v, "inf") && isinf(q->hi)) x = INFINITY;
    else if (csde_parse_double(v, &x))
      return csde_err_set(err, CSDE_EINVAL, "'%s': %s = '%s' is not a number", spec, q->key, v);
    if (!(x >= q->lo && x <= q->hi))
      return csde_err_set(err, CSDE_EINVAL, "'%s': %s = %g outside [%g, %g]", spec, q->key, x,
                          q->lo, q->hi);
    *(double *)((char *)par + q->offset) = x;
  }
  return CSDE_SUCCESS;
}

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
