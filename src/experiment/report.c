/* The outputs of a convergence experiment: table, CSV, HDF5 (report.h). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <hdf5.h>

#include "core/util.h"
#include "io/h5util.h"
#include "io/outfile.h"
#include "corrsde/solve.h"
#include "experiment/report.h"

/* ---- the table ---- */

/* Model evaluations of one solve at level k: 2^k steps times the solver's per step. */
static size_t level_nfe(const csde_conv_result *r, const csde_conv_solver_result *s, size_t k)
{
  return r->steps[k] * csde_solver_type_nfe_per_step(csde_solver_lookup(s->name));
}

static void levels_list(const csde_conv_result *r, const csde_conv_fit *f, int used, char *buf,
                        size_t len)
{
  size_t n = 0;
  buf[0] = '\0';
  for (size_t k = 0; k < f->L && n < len; k++)
    if ((f->decision[k] == CSDE_CONV_USED) == used)
      n += (size_t)snprintf(buf + n, len - n, "%s%u", n ? ", " : "", r->level[k]);
  if (!n) snprintf(buf, len, "none");
}

void csde_conv_print(FILE *out, const csde_conv_result *r, csde_conv_kind kind)
{
  int weak = csde_conv_kind_is_weak(kind);
  for (size_t i = 0; i < r->nsolvers; i++) {
    const csde_conv_solver_result *s = &r->s[i];
    const csde_conv_fit *f = &s->fit;
    fprintf(out, "\n%s: %s error, reference %s\n", s->name, csde_conv_kind_name(kind),
            s->reference);
    if (!s->analysed) { /* a run that stopped: fewer than 2 of its levels finished */
      fprintf(out, "  %zu of %zu levels finished: not analysed\n", s->levels_done, r->L);
      continue;
    }
    const size_t L = f->L;
    fprintf(out, "  level  steps     nfe          h       error  95%% interval            %-9s  "
                 "slope  decision\n",
            weak ? "MC noise" : "RMS");
    for (size_t k = 0; k < L; k++) {
      char slope[16] = "";
      if (k + 1 < L && isfinite(f->slope[k])) snprintf(slope, sizeof slope, "%6.3f", f->slope[k]);
      double extra = weak ? f->mc_noise[k] : f->rms[k];
      fprintf(out, "  %5u %6zu %7zu  %9.3e  %10.4e  [%9.3e, %9.3e]  %9.3e  %6s  %s\n",
              r->level[k], r->steps[k], level_nfe(r, s, k), r->h[k], f->err[k], f->err_lo[k],
              f->err_hi[k], extra, slope,
              csde_conv_decision_name((csde_conv_decision)f->decision[k]));
    }
    if (L < r->L) fprintf(out, "  (%zu of %zu levels finished)\n", L, r->L);
    char used[256], dropped[256];
    levels_list(r, f, 1, used, sizeof used);
    levels_list(r, f, 0, dropped, sizeof dropped);
    if (isfinite(f->order)) {
      fprintf(out, "  order %.3f  95%% interval [%.3f, %.3f]  (theory %g)\n", f->order,
              f->order_lo, f->order_hi, s->theory);
      fprintf(out, "  fit: %s\n", f->fit);
    } else {
      fprintf(out, "  order: %s  (theory %g)\n", f->fit, s->theory);
    }
    fprintf(out, "  levels used: %s; dropped: %s\n", used, dropped);
    for (size_t k = 0; k < L; k++)
      if (f->decision[k] != CSDE_CONV_USED)
        fprintf(out, "    level %u: %s\n", r->level[k], f->reason[k]);
    if (f->have_ref_check)
      fprintf(out, "  reference check: error of level %u vs %u %.3g, reference error <= %.3g, "
                   "finest level %.3gx above it%s\n",
              s->ref_level - 1, s->ref_level, f->ref_diff, f->ref_error, f->ref_ratio,
              f->ref_ok ? "" : " -- WARNING: want >= 10x; raise --reference fine:LEVEL");
    else if (r->ref_shared)
      fprintf(out, "  reference check: rtol %g vs rtol/10 on paths 0..%zu differ by %.3g, "
                   "finest level %.3gx above it%s\n",
              r->ref_rtol, r->ref_check_paths - 1, r->ref_check, f->ref_ratio,
              f->ref_ok ? "" : " -- WARNING: want >= 10x; tighten the reference's rtol");
    if (s->exact_dev)
      fprintf(out, "  reference vs the exact moments (plain Monte Carlo): %.3g, noise "
                   "half-width %.3g\n",
              s->exact_dev_norm, s->exact_dev_halfwidth);
  }
}

/* ---- CSV ---- */

/* "s" with each '"' doubled. */
static void csv_str(FILE *f, const char *s)
{
  fputc('"', f);
  for (const char *q; (q = strchr(s, '"')); s = q + 1) fprintf(f, "%.*s\"\"", (int)(q - s), s);
  fprintf(f, "%s\"", s);
}

int csde_conv_write_csv(const char *path, const csde_conv_result *r, csde_conv_kind kind,
                        csde_err *err)
{
  /* written as path.partial.XXXXXX, renamed over a regular path (io/outfile.h) */
  csde_outfile o;
  int s = csde_outfile_open(&o, path, CSDE_OUT_LOCK | CSDE_OUT_OVERWRITE, err);
  if (s) return s;
  int fd = dup(csde_outfile_fd(&o));
  FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
  if (!f) {
    s = csde_err_set(err, CSDE_EIO, "cannot write '%s': %s", csde_outfile_tmp_path(&o),
                     strerror(errno));
    if (fd >= 0) close(fd);
    csde_outfile_release(&o);
    return s;
  }
  int weak = csde_conv_kind_is_weak(kind);
  fprintf(f, "solver,error_kind,level,steps,nfe,h,error,error_lo,error_hi,halfwidth,error_rms,"
             "mc_noise,local_slope,local_slope_lo,local_slope_hi,used,decision,order,order_lo,"
             "order_hi,theory_order,reference_level,reference,fit\n");
  for (size_t i = 0; i < r->nsolvers; i++) {
    const csde_conv_solver_result *s = &r->s[i];
    const csde_conv_fit *fi = &s->fit;
    const size_t L = s->analysed ? fi->L : 0;
    for (size_t k = 0; k < L; k++) {
      double sl = k + 1 < L ? fi->slope[k] : NAN;
      double sllo = k + 1 < L ? fi->slope_lo[k] : NAN;
      double slhi = k + 1 < L ? fi->slope_hi[k] : NAN;
      fprintf(f, "%s,%s,%u,%zu,%zu,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,"
                 "%d,",
              s->name, csde_conv_kind_name(kind), r->level[k], r->steps[k], level_nfe(r, s, k),
              r->h[k],
              fi->err[k], fi->err_lo[k], fi->err_hi[k], fi->halfwidth[k],
              weak ? NAN : fi->rms[k], weak ? fi->mc_noise[k] : NAN, sl, sllo, slhi,
              fi->decision[k] == CSDE_CONV_USED);
      csv_str(f, fi->reason[k]);
      fprintf(f, ",%.17g,%.17g,%.17g,%.17g,%u,", fi->order, fi->order_lo, fi->order_hi,
              s->theory, s->ref_level);
      csv_str(f, s->reference);
      fputc(',', f);
      csv_str(f, fi->fit);
      fputc('\n', f);
    }
  }
  int bad = ferror(f);
  if (fclose(f) != 0 || bad)
    s = csde_err_set(err, CSDE_EIO, "cannot write '%s': %s", csde_outfile_tmp_path(&o),
                     strerror(errno));
  if (!s) s = csde_outfile_commit(&o, err);
  csde_outfile_release(&o);
  return s;
}

/* ---- HDF5 ---- */

#define PUT(call)                                                                          \
  do {                                                                                     \
    if ((st = (call))) goto done;                                                          \
  } while (0)

/* The plain estimate of level k from the per-path values (no bootstrap): the mean and
 * the RMS (scalar kinds), or the norm of the mean (weak). */
static void plain_error(const csde_conv_result *r, const csde_conv_solver_result *s,
                        csde_conv_kind kind, size_t k, double *m, double *err, double *rms)
{
  const size_t N = r->N, L = r->L, Q = r->Q;
  if (!csde_conv_kind_is_weak(kind)) {
    double a = 0, b = 0;
    for (size_t i = 0; i < N; i++) {
      double x = s->v[i * L + k];
      a += x;
      b += x * x;
    }
    *err = a / (double)N;
    *rms = sqrt(b / (double)N);
    return;
  }
  for (size_t q = 0; q < Q; q++) m[q] = 0;
  for (size_t i = 0; i < N; i++)
    for (size_t q = 0; q < Q; q++) m[q] += s->v[(i * L + k) * Q + q];
  double t = 0;
  for (size_t q = 0; q < Q; q++) t += (m[q] / (double)N) * (m[q] / (double)N);
  *err = sqrt(kind == CSDE_CONV_WEAK_MEAN ? t / (double)Q : t);
  *rms = NAN;
}

#define DS(suffix) (snprintf(name, sizeof name, "%s/%s", g, suffix), name)

/* Scratch for the writers below: L + 1 integers, 2 L doubles, Q doubles, L strings and
 * (owned, grown as needed) the finished levels of every path. */
typedef struct {
  int64_t *iv;
  double *dv, *m, *pp;
  const char **sv;
} conv_h5_buf;

/* /convergence and its attributes: the run's settings and the shared reference. */
static int write_conv_attrs(csde_h5out *w, const csde_conv_result *r, csde_conv_kind kind,
                            const csde_conv_params *p, const char *status, int64_t *iv,
                            csde_err *err)
{
  int st = CSDE_SUCCESS;
  const size_t L = r->L, N = r->N;
  PUT(csde_h5out_group(w, "/convergence", err));
  const char *c = "/convergence";
  PUT(csde_h5out_attr_str(w, c, "status", status ? status : "ok", err));
  PUT(csde_h5out_attr_str(w, c, "error", csde_conv_kind_name(kind), err));
  PUT(csde_h5out_attr_str(w, c, "estimator", r->estimator, err));
  PUT(csde_h5out_attr_str(w, c, "reference", r->reference, err));
  iv[0] = (int64_t)N;
  PUT(csde_h5out_attr_i64(w, c, "paths", iv, 1, 0, err));
  for (size_t k = 0; k < L; k++) iv[k] = r->level[k];
  PUT(csde_h5out_attr_i64(w, c, "levels", iv, L, 1, err));
  iv[0] = (int64_t)(p->boot ? p->boot : 1000);
  PUT(csde_h5out_attr_i64(w, c, "bootstrap", iv, 1, 0, err));
  PUT(csde_h5out_attr_u64(w, c, "bootstrap_seed", &p->boot_seed, err));
  double conf = p->conf > 0 ? p->conf : 0.95;
  PUT(csde_h5out_attr_f64(w, c, "confidence", &conf, 1, 0, err));
  {
    char list[512] = "";
    size_t n = 0;
    for (size_t i = 0; i < r->nsolvers && n < sizeof list; i++)
      n += (size_t)snprintf(list + n, sizeof list - n, "%s%s", i ? "," : "", r->s[i].name);
    PUT(csde_h5out_attr_str(w, c, "solvers", list, err));
  }
  PUT(csde_h5out_attr_str(w, c, "norm",
                          kind == CSDE_CONV_WEAK_COV
                              ? "Frobenius norm of the tau x tau frame second-moment error"
                              : "RMS over the tau x D entries of a sample",
                          err));
  if (r->ref_shared) {
    PUT(csde_h5out_attr_str(w, c, "reference_solver", r->ref_solver, err));
    PUT(csde_h5out_attr_f64(w, c, "reference_rtol", &r->ref_rtol, 1, 0, err));
    PUT(csde_h5out_attr_f64(w, c, "reference_atol", &r->ref_atol, 1, 0, err));
    iv[0] = (int64_t)r->ref_nfe;
    PUT(csde_h5out_attr_i64(w, c, "reference_nfe", iv, 1, 0, err));
    iv[0] = (int64_t)r->ref_check_paths;
    PUT(csde_h5out_attr_i64(w, c, "reference_check_paths", iv, 1, 0, err));
    PUT(csde_h5out_attr_f64(w, c, "reference_check_error", &r->ref_check, 1, 0, err));
  }
done:
  return st;
}

/* A solver's group g: its attributes, the reference check, the levels' steps, NFE, h and
 * per-path values, and (not analysed) the plain error estimates. Lw: the levels written. */
static int write_solver_levels(csde_h5out *w, const csde_conv_result *r,
                               const csde_conv_solver_result *s, csde_conv_kind kind,
                               conv_h5_buf *b, const char *g, size_t Lw, csde_err *err)
{
  int st = CSDE_SUCCESS, weak = csde_conv_kind_is_weak(kind);
  const size_t L = r->L, N = r->N, Q = r->Q;
  int64_t *iv = b->iv;
  double *dv = b->dv, *m = b->m, *pp = b->pp;
  char name[192];
  PUT(csde_h5out_group(w, g, err));
  iv[0] = (int64_t)s->levels_done;
  PUT(csde_h5out_attr_i64(w, g, "levels_done", iv, 1, 0, err));
  iv[0] = s->analysed;
  PUT(csde_h5out_attr_i64(w, g, "analysed", iv, 1, 0, err));
  PUT(csde_h5out_attr_f64(w, g, "theory_order", &s->theory, 1, 0, err));
  PUT(csde_h5out_attr_str(w, g, "reference", s->reference, err));
  int64_t rl = s->ref_level;
  PUT(csde_h5out_attr_i64(w, g, "reference_level", &rl, 1, 0, err));
  if (s->ref_done && s->vref) {
    size_t rd[2] = {N, Q};
    PUT(csde_h5out_write_f64(w, DS("ref_check_per_path"), s->vref, weak ? 2 : 1, rd, err));
  }
  if (Lw == 0) goto done;
  for (size_t k = 0; k < Lw; k++) iv[k] = (int64_t)r->steps[k];
  PUT(csde_h5out_write_i64(w, DS("steps"), iv, Lw, err));
  for (size_t k = 0; k < Lw; k++) iv[k] = (int64_t)level_nfe(r, s, k);
  PUT(csde_h5out_write_i64(w, DS("nfe"), iv, Lw, err));
  for (size_t k = 0; k < Lw; k++) iv[k] = r->level[k];
  PUT(csde_h5out_write_i64(w, DS("level"), iv, Lw, err));
  size_t d1[1] = {Lw};
  PUT(csde_h5out_write_f64(w, DS("h"), r->h, 1, d1, err));
  size_t pd[3] = {N, Lw, Q};
  const double *v = s->v;
  if (Lw < L) { /* the finished levels of every path */
    free(b->pp);
    if (!(b->pp = pp = malloc(N * Lw * Q * sizeof *pp))) {
      st = csde_err_set(err, CSDE_ENOMEM, "out of memory");
      goto done;
    }
    for (size_t j = 0; j < N; j++) memcpy(pp + j * Lw * Q, s->v + j * L * Q, Lw * Q * sizeof *pp);
    v = pp;
  }
  PUT(csde_h5out_write_f64(w, DS("per_path"), v, weak ? 3 : 2, pd, err));
  if (!s->analysed) { /* the plain estimates of the finished levels */
    for (size_t k = 0; k < Lw; k++) plain_error(r, s, kind, k, m, &dv[k], &dv[L + k]);
    PUT(csde_h5out_write_f64(w, DS("error"), dv, 1, d1, err));
    if (!weak) PUT(csde_h5out_write_f64(w, DS("error_rms"), dv + L, 1, d1, err));
  }
done:
  return st;
}

/* An analysed solver's fit: errors and slopes with their intervals, the decisions. */
static int write_solver_fit(csde_h5out *w, const csde_conv_fit *f, csde_conv_kind kind,
                            conv_h5_buf *b, const char *g, size_t Lw, csde_err *err)
{
  int st = CSDE_SUCCESS, weak = csde_conv_kind_is_weak(kind);
  int64_t *iv = b->iv;
  double *dv = b->dv;
  const char **sv = b->sv;
  char name[192];
  size_t d1[1] = {Lw}, d2[2] = {Lw, 2};
  PUT(csde_h5out_write_f64(w, DS("error"), f->err, 1, d1, err));
  for (size_t k = 0; k < Lw; k++) {
    dv[2 * k] = f->err_lo[k];
    dv[2 * k + 1] = f->err_hi[k];
  }
  PUT(csde_h5out_write_f64(w, DS("error_ci"), dv, 2, d2, err));
  PUT(csde_h5out_write_f64(w, DS("halfwidth"), f->halfwidth, 1, d1, err));
  size_t s1[1] = {Lw - 1}, s2[2] = {Lw - 1, 2};
  PUT(csde_h5out_write_f64(w, DS("local_slope"), f->slope, 1, s1, err));
  for (size_t k = 0; k + 1 < Lw; k++) {
    dv[2 * k] = f->slope_lo[k];
    dv[2 * k + 1] = f->slope_hi[k];
  }
  PUT(csde_h5out_write_f64(w, DS("local_slope_ci"), dv, 2, s2, err));
  for (size_t k = 0; k < Lw; k++) iv[k] = f->decision[k] == CSDE_CONV_USED;
  PUT(csde_h5out_write_i64(w, DS("used"), iv, Lw, err));
  for (size_t k = 0; k < Lw; k++) sv[k] = f->reason[k];
  PUT(csde_h5out_write_strings(w, DS("decision"), sv, Lw, err));
  if (weak) {
    PUT(csde_h5out_write_f64(w, DS("mc_noise"), f->mc_noise, 1, d1, err));
  } else {
    PUT(csde_h5out_write_f64(w, DS("error_rms"), f->rms, 1, d1, err));
    for (size_t k = 0; k < Lw; k++) {
      dv[2 * k] = f->rms_lo[k];
      dv[2 * k + 1] = f->rms_hi[k];
    }
    PUT(csde_h5out_write_f64(w, DS("error_rms_ci"), dv, 2, d2, err));
  }
done:
  return st;
}

/* An analysed solver's order and the fit's diagnostics, as attributes of g. */
static int write_solver_order(csde_h5out *w, const csde_conv_result *r,
                              const csde_conv_solver_result *s, int64_t *iv, const char *g,
                              size_t Lw, csde_err *err)
{
  int st = CSDE_SUCCESS;
  const csde_conv_fit *f = &s->fit;
  double ci[2] = {f->order_lo, f->order_hi}, bci[2] = {f->order_boot_lo, f->order_boot_hi};
  PUT(csde_h5out_attr_f64(w, g, "order", &f->order, 1, 0, err));
  PUT(csde_h5out_attr_f64(w, g, "order_ci", ci, 2, 1, err));
  size_t nu = 0, nd = 0;
  int64_t *dropped = iv + 0;
  for (size_t k = 0; k < Lw; k++)
    if (f->decision[k] == CSDE_CONV_USED) nu++;
  int64_t *used = malloc((nu + 1) * sizeof *used);
  if (!used) {
    st = csde_err_set(err, CSDE_ENOMEM, "out of memory");
    goto done;
  }
  nu = 0;
  for (size_t k = 0; k < Lw; k++) {
    if (f->decision[k] == CSDE_CONV_USED) used[nu++] = r->level[k];
    else dropped[nd++] = r->level[k];
  }
  st = csde_h5out_attr_i64(w, g, "levels_used", used, nu, 1, err);
  free(used);
  if (st) goto done;
  PUT(csde_h5out_attr_i64(w, g, "levels_dropped", dropped, nd, 1, err));
  PUT(csde_h5out_attr_f64(w, g, "order_bootstrap_ci", bci, 2, 1, err));
  PUT(csde_h5out_attr_f64(w, g, "order_plain", &f->order_plain, 1, 0, err));
  PUT(csde_h5out_attr_str(w, g, "fit", f->fit, err));
  PUT(csde_h5out_attr_f64(w, g, "systematic_extrapolation", &f->order_sys, 1, 0, err));
  PUT(csde_h5out_attr_f64(w, g, "systematic_misfit", &f->order_misfit, 1, 0, err));
  PUT(csde_h5out_attr_f64(w, g, "systematic_reference", &f->order_sys_ref, 1, 0, err));
  PUT(csde_h5out_attr_f64(w, g, "curvature", &f->curvature, 1, 0, err));
  PUT(csde_h5out_attr_f64(w, g, "curvature2", &f->curvature2, 1, 0, err));
  int64_t nterms = f->curved;
  PUT(csde_h5out_attr_i64(w, g, "corrections", &nterms, 1, 0, err));
  PUT(csde_h5out_attr_f64(w, g, "reference_error", &f->ref_error, 1, 0, err));
  PUT(csde_h5out_attr_f64(w, g, "reference_ratio", &f->ref_ratio, 1, 0, err));
  int64_t rok = f->ref_ok;
  PUT(csde_h5out_attr_i64(w, g, "reference_ok", &rok, 1, 0, err));
  if (f->have_ref_check)
    PUT(csde_h5out_attr_f64(w, g, "reference_check_error", &f->ref_diff, 1, 0, err));
  PUT(csde_h5out_attr_f64(w, g, "floor", &f->floor, 1, 0, err));
  PUT(csde_h5out_attr_str(w, g, "floor_name", f->floor_name, err));
  PUT(csde_h5out_attr_f64(w, g, "reference_scale", &s->ref_scale, 1, 0, err));
  if (s->exact_dev) {
    PUT(csde_h5out_attr_f64(w, g, "exact_deviation", &s->exact_dev_norm, 1, 0, err));
    PUT(csde_h5out_attr_f64(w, g, "exact_deviation_halfwidth", &s->exact_dev_halfwidth, 1, 0,
                            err));
  }
done:
  return st;
}
#undef DS

int csde_conv_write_h5(csde_h5out *w, const csde_conv_result *r, csde_conv_kind kind,
                       const csde_conv_params *p, const char *status, csde_err *err)
{
  int st = CSDE_SUCCESS;
  const size_t L = r->L, Q = r->Q;
  conv_h5_buf b = {malloc((L + 1) * sizeof *b.iv), malloc(2 * L * sizeof *b.dv),
                   malloc(Q * sizeof *b.m), NULL, malloc(L * sizeof *b.sv)};
  char g[128];
  if (!b.iv || !b.dv || !b.sv || !b.m) {
    st = csde_err_set(err, CSDE_ENOMEM, "out of memory");
    goto done;
  }
  PUT(write_conv_attrs(w, r, kind, p, status, b.iv, err));
  for (size_t i = 0; i < r->nsolvers; i++) {
    const csde_conv_solver_result *s = &r->s[i];
    /* the levels written: all the analysis saw, else the finished ones */
    const size_t Lw = s->analysed ? s->fit.L : s->levels_done;
    snprintf(g, sizeof g, "/convergence/%s", s->name);
    PUT(write_solver_levels(w, r, s, kind, &b, g, Lw, err));
    if (Lw == 0 || !s->analysed) continue;
    PUT(write_solver_fit(w, &s->fit, kind, &b, g, Lw, err));
    PUT(write_solver_order(w, r, s, b.iv, g, Lw, err));
  }
done:
  free(b.iv);
  free(b.dv);
  free(b.sv);
  free(b.m);
  free(b.pp);
  return st;
}

/* ---- the progress display ---- */

void csde_conv_progress_line_init(csde_conv_progress_line *l, FILE *f, int tty,
                                  const char *prefix)
{
  memset(l, 0, sizeof *l);
  l->f = f;
  l->tty = tty;
  l->prefix = prefix ? prefix : "converge";
  l->last = -1e300;
}

void csde_conv_progress_end(csde_conv_progress_line *l)
{
  if (l->drawn && l->tty) fputc('\n', l->f);
  l->drawn = 0;
  fflush(l->f);
}

/* What the stage is, in words: "heun level 5 (32 steps)", "reference dopri5 (rtol)". */
static void stage_words(const csde_conv_progress *p, char *buf, size_t len)
{
  if (p->solver == SIZE_MAX)
    snprintf(buf, len, "reference %s", p->solver_name);
  else if (p->reference)
    snprintf(buf, len, "%s reference (level %u)", p->solver_name, p->level);
  else
    snprintf(buf, len, "%s level %u (%zu steps)", p->solver_name, p->level,
             (size_t)1 << p->level);
}

void csde_conv_progress_draw(csde_conv_progress_line *l, const csde_conv_progress *p)
{
  char what[96], es[32], ts[32];
  stage_words(p, what, sizeof what);
  if (p->event == CSDE_CONV_PLAN) {
    csde_conv_progress_end(l);
    fprintf(l->f, "%s: %zu model calls%s, each on a batch of up to %zu paths (%zu batch%s a "
                  "stage, %d thread%s)\n",
            l->prefix, p->nfe_total,
            p->nfe_total_estimated ? " for the fixed-step solves, and the adaptive reference's "
                                     "(counted on its first batch)"
                                   : "",
            p->batch, p->batches, p->batches == 1 ? "" : "es", p->threads,
            p->threads == 1 ? "" : "s");
    fflush(l->f);
    return;
  }
  if (p->event == CSDE_CONV_ESTIMATE) {
    csde_conv_progress_end(l);
    if (p->seconds_total < 60)
      snprintf(ts, sizeof ts, "%.2g s", p->seconds_total);
    else
      csde_fmt_seconds(p->seconds_total, ts, sizeof ts);
    fprintf(l->f, "%s: estimated %s in all: %zu model calls%s x %.3g s a call (timed on the "
                  "first calls)\n",
            l->prefix, ts, p->nfe_total, p->nfe_total_estimated ? " (the reference's counted "
                                                                  "on its first batch)" : "",
            p->sec_per_call);
    fflush(l->f);
    return;
  }
  double tn = csde_now();
  int stage = p->event == CSDE_CONV_STAGE;
  if (!stage && tn - l->last < (l->tty ? 0.1 : 1.0)) return;
  if (stage && !l->tty) { /* a line per stage */
    fprintf(l->f, "%s: %s done, %zu of %zu model calls (%.0f%%), %.1f s\n", l->prefix, what,
            p->nfe_done, p->nfe_total, 100 * p->fraction, p->elapsed);
    fflush(l->f);
    l->last = tn;
    return;
  }
  l->last = tn;
  if (p->nfe_total_estimated && !isfinite(p->seconds_total)) {
    /* an adaptive reference's first batch: its count, and so the fraction, comes after */
    char tt[32] = "";
    if (isfinite(p->t)) snprintf(tt, sizeof tt, "  t = %.4g", p->t);
    fprintf(l->f, "%s%s  paths %zu/%zu%s  %zu model calls (the total comes with its first "
                  "batch)%s",
            l->tty ? "\r" : "", what, p->paths_done, p->paths, tt, p->nfe_done,
            l->tty ? "\033[K" : "\n");
    fflush(l->f);
    l->drawn = l->tty;
    return;
  }
  double frac = fmin(fmax(p->fraction, 0), 1), el = p->elapsed;
  char bar[32];
  int w = 20, k = (int)(frac * w + 0.5);
  for (int i = 0; i < w; i++) bar[i] = i < k ? '#' : '.';
  bar[w] = '\0';
  /* after the estimate: the time per call until 5% is done, then the pace so far */
  double eta = !isfinite(p->seconds_total) ? NAN
               : frac >= 0.05                ? el * (1 - frac) / frac
                                             : fmax(p->seconds_total - el, 0);
  csde_fmt_seconds(eta, es, sizeof es);
  fprintf(l->f, "%s%s  paths %zu/%zu  [%s] %3.0f%%  ETA %s%s", l->tty ? "\r" : "", what,
          p->paths_done, p->paths, bar, 100 * frac, es, l->tty ? "\033[K" : "\n");
  fflush(l->f);
  l->drawn = l->tty;
}
