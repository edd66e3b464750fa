/* Time grids (corrsde/solve.h): N steps from t_start to t_end, t_i = map(u_i), u_i = i/N.
 *
 * Nesting. u_i is computed as (double)i / (double)N: both integers are exact doubles
 * (N < 2^53) and IEEE division is correctly rounded, so (2i)/(2N) rounds the same real
 * number as i/N and gives the bitwise same u. Every map below is a fixed function of u
 * alone (its constants depend on the kind and the ends, never on N), so node 2i of the
 * 2N-step grid is bitwise node i of the N-step grid. The ends are set exactly: t_0 =
 * t_start and t_N = t_end (u = 0 and u = 1 only occur there, for every N).
 *
 * Maps, with d the data end (the end with the smaller t):
 *   uniform         t = t_start + u (t_end - t_start)
 *   quadratic       |t - d| quadratic in u, zero at the data end:
 *                     data end at t_start:  t = t_start + (t_end - t_start) u^2
 *                     data end at t_end:    t = t_end + (t_start - t_end) (1 - u)^2
 *   karras[:rho=7]  v = a + u (b - a), a = sigma(t_start)^(1/rho), b = sigma(t_end)^(1/rho),
 *                   t = t_of_logsnr(-2 log v^rho)        (logsnr = -2 log sigma)
 *   logsnr          l = l0 + u (l1 - l0), l0 = logsnr(t_start), l1 = logsnr(t_end),
 *                   t = t_of_logsnr(l)
 *   list:t0,t1,...  the given nodes; N is ignored (the list sets the number of steps).
 * The result is checked to be finite and strictly monotone (a very large N can make
 * neighbouring nodes round to the same double: that is an error, not a silent
 * zero-length step). */
#include <math.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/spec.h"
#include "corrsde/solve.h"
#include "solve/grid.h"

static double map_u(const csde_grid_map *g, double u)
{
  switch (g->kind) {
  case CSDE_GRID_UNIFORM:
    return g->ts + u * (g->te - g->ts);
  case CSDE_GRID_QUADRATIC:
    if (g->data_at_start) return g->ts + (g->te - g->ts) * (u * u);
    {
      const double w = 1.0 - u;
      return g->te + (g->ts - g->te) * (w * w);
    }
  case CSDE_GRID_KARRAS: {
    const double v = g->a + u * (g->b - g->a); /* sigma^(1/rho), linear in u */
    const double sigma = pow(v, g->rho);
    return csde_schedule_t_of_logsnr(g->s, -2.0 * log(sigma));
  }
  case CSDE_GRID_LOGSNR:
    return csde_schedule_t_of_logsnr(g->s, g->a + u * (g->b - g->a));
  }
  return NAN;
}

/* Checks the ends of a schedule-based kind. */
static int need_schedule(const char *kind, const csde_schedule *s, double ts, double te,
                         csde_err *err)
{
  if (!s)
    return csde_err_set(err, CSDE_EINVAL, "%s grid needs a noise schedule (got none)", kind);
  double lo, hi; /* the path's span: [0, 1] for VP, [smin, smax] for edm */
  csde_schedule_path_span(s, &lo, &hi);
  if (!(ts >= lo && ts <= hi && te >= lo && te <= hi))
    return csde_err_set(err, CSDE_EDOM,
                        "%s grid: the ends t_start = %.17g and t_end = %.17g must lie in [%g, %g]",
                        kind, ts, te, lo, hi);
  return CSDE_SUCCESS;
}

/* list:t0,t1,... */
static int grid_list(const char *vals, double ts, double te, double **times, size_t *nsteps,
                     csde_err *err)
{
  if (!vals || !*vals)
    return csde_err_set(err, CSDE_ESPEC,
                        "list grid needs its nodes: list:t0,t1,... from t_start = %.17g to "
                        "t_end = %.17g",
                        ts, te);
  double *v;
  size_t n;
  csde_err e2;
  int s = csde_parse_double_list(vals, &v, &n, &e2);
  if (s) return csde_err_set(err, s, "list grid: %s", e2.msg);
  if (n < 2) {
    free(v);
    return csde_err_set(err, CSDE_EINVAL,
                        "list grid: needs at least 2 nodes (t_start = %.17g and t_end = %.17g), "
                        "got %zu",
                        ts, te, n);
  }
  /* the ends must be t_start and t_end; a difference within printing noise is snapped */
  const double tol = 1e-12 * fmax(1.0, fmax(fabs(ts), fabs(te)));
  if (!(fabs(v[0] - ts) <= tol)) {
    s = csde_err_set(err, CSDE_EINVAL,
                     "list grid: the first node %.17g must be t_start = %.17g", v[0], ts);
    free(v);
    return s;
  }
  if (!(fabs(v[n - 1] - te) <= tol)) {
    s = csde_err_set(err, CSDE_EINVAL,
                     "list grid: the last node %.17g must be t_end = %.17g", v[n - 1], te);
    free(v);
    return s;
  }
  v[0] = ts;
  v[n - 1] = te;
  const double dir = te > ts ? 1.0 : -1.0;
  for (size_t i = 1; i < n; i++)
    if (!(dir * (v[i] - v[i - 1]) > 0)) {
      s = csde_err_set(err, CSDE_EDOM,
                       "list grid: nodes must be strictly %s from t_start to t_end, but node "
                       "%zu (t = %.17g) does not follow node %zu (t = %.17g)",
                       dir > 0 ? "increasing" : "decreasing", i, v[i], i - 1, v[i - 1]);
      free(v);
      return s;
    }
  *times = v;
  *nsteps = n - 1;
  return CSDE_SUCCESS;
}

int csde_grid_map_make(const char *spec, const csde_schedule *s, double t_start, double t_end,
                       csde_grid_map *out, csde_err *err)
{
  if (!isfinite(t_start) || !isfinite(t_end) || t_start == t_end)
    return csde_err_set(err, CSDE_EDOM, "grid: the ends must be finite and differ (t_start = %g, "
                                        "t_end = %g)", t_start, t_end);
  csde_spec sp;
  int st = csde_spec_parse(spec, "grid spec", &sp, err);
  if (st) return st;
  csde_grid_map g;
  memset(&g, 0, sizeof g);
  g.s = s;
  g.ts = t_start;
  g.te = t_end;
  static const char *const no_keys[] = {NULL};
  static const char *const karras_keys[] = {"rho", NULL};
  if (!strcmp(sp.name, "uniform")) {
    g.kind = CSDE_GRID_UNIFORM;
    if ((st = csde_spec_check_keys(&sp, no_keys, err))) return st;
  } else if (!strcmp(sp.name, "quadratic")) {
    g.kind = CSDE_GRID_QUADRATIC;
    g.data_at_start = t_start < t_end;
    if ((st = csde_spec_check_keys(&sp, no_keys, err))) return st;
  } else if (!strcmp(sp.name, "karras")) {
    g.kind = CSDE_GRID_KARRAS;
    if ((st = csde_spec_check_keys(&sp, karras_keys, err)) ||
        (st = csde_spec_double(&sp, "rho", 7.0, &g.rho, err)))
      return st;
    if (!(g.rho > 0))
      return csde_err_set(err, CSDE_EDOM, "karras grid: rho = %g must be > 0", g.rho);
    if ((st = need_schedule("karras", s, t_start, t_end, err))) return st;
    const double s0 = csde_schedule_sigma(s, t_start), s1 = csde_schedule_sigma(s, t_end);
    if (!isfinite(s0) || !isfinite(s1))
      return csde_err_set(err, CSDE_EDOM,
                          "karras grid: sigma(t) is infinite at t = %.17g (the schedule's "
                          "abar is 0 there); end the interval before it",
                          isfinite(s0) ? t_end : t_start);
    g.a = pow(s0, 1.0 / g.rho);
    g.b = pow(s1, 1.0 / g.rho);
  } else if (!strcmp(sp.name, "logsnr")) {
    g.kind = CSDE_GRID_LOGSNR;
    if ((st = csde_spec_check_keys(&sp, no_keys, err))) return st;
    if ((st = need_schedule("logsnr", s, t_start, t_end, err))) return st;
    g.a = csde_schedule_logsnr(s, t_start);
    g.b = csde_schedule_logsnr(s, t_end);
    if (!isfinite(g.a) || !isfinite(g.b)) {
      const int bad_start = !isfinite(g.a);
      const double l = bad_start ? g.a : g.b;
      return csde_err_set(err, CSDE_EDOM,
                          "logsnr grid: the log-SNR is %s at t = %.17g (t_%s), so it cannot be "
                          "spaced uniformly; use an end with 0 < t and abar(t) > 0, or another "
                          "grid kind",
                          l > 0 ? "+inf" : isnan(l) ? "NaN" : "-inf",
                          bad_start ? t_start : t_end, bad_start ? "start" : "end");
    }
  } else {
    return csde_err_set(err, CSDE_ESPEC,
                        "unknown grid kind '%s' (expected uniform, quadratic, karras[:rho=R], "
                        "logsnr or list:t0,t1,...)",
                        sp.name);
  }

  snprintf(g.name, sizeof g.name, "%s", sp.name);
  *out = g;
  return CSDE_SUCCESS;
}

double csde_grid_map_at(const void *map, double u)
{
  const csde_grid_map *g = map;
  if (u <= 0) return g->ts;
  if (u >= 1) return g->te;
  return map_u(g, u);
}

int csde_grid_make(const char *spec, const csde_schedule *s, double t_start, double t_end,
                   size_t N, double **times, size_t *nsteps, csde_err *err)
{
  *times = NULL;
  *nsteps = 0;
  if (isnan(t_start) || isnan(t_end) || !isfinite(t_start) || !isfinite(t_end))
    return csde_err_set(err, CSDE_EDOM, "grid: the ends must be finite (t_start = %g, t_end = %g)",
                        t_start, t_end);
  if (t_start == t_end)
    return csde_err_set(err, CSDE_EDOM, "grid: t_start = t_end = %.17g, an empty interval",
                        t_start);

  if (spec && !strncmp(spec, "list", 4) && (spec[4] == ':' || spec[4] == '\0'))
    return grid_list(spec[4] ? spec + 5 : NULL, t_start, t_end, times, nsteps, err);

  csde_grid_map g;
  int st = csde_grid_map_make(spec, s, t_start, t_end, &g, err);
  if (st) return st;
  if (N == 0) return csde_err_set(err, CSDE_EINVAL, "grid: N = 0 steps (need N >= 1)");
  if (N > ((size_t)1 << 52) || N >= SIZE_MAX / sizeof(double))
    return csde_err_set(err, CSDE_EINVAL, "grid: N = %zu steps is too many", N);
  double *t = malloc((N + 1) * sizeof *t);
  if (!t) return csde_err_set(err, CSDE_ENOMEM, "grid: out of memory for %zu nodes", N + 1);
  const double dN = (double)N;
  t[0] = t_start;
  for (size_t i = 1; i < N; i++) t[i] = map_u(&g, (double)i / dN); /* u_i = i/N */
  t[N] = t_end;

  const double dir = t_end > t_start ? 1.0 : -1.0;
  for (size_t i = 1; i <= N; i++)
    if (!(dir * (t[i] - t[i - 1]) > 0)) {
      st = csde_err_set(err, CSDE_EDOM,
                        "%s grid with N = %zu: nodes %zu and %zu (t = %.17g, %.17g) are not "
                        "strictly %s; N is too large for this grid's resolution",
                        g.name, N, i - 1, i, t[i - 1], t[i],
                        dir > 0 ? "increasing" : "decreasing");
      free(t);
      return st;
    }
  *times = t;
  *nsteps = N;
  return CSDE_SUCCESS;
}
