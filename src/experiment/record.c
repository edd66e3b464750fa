/* The HDF5 file of a convergence run (corrsde/converge.h, csde_conv_write_file): every
 * setting in /parameters, the C used in /covariance, the results in /convergence
 * (report.c). What `corrsde converge -o` and corrsde.converge(output=) write. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "corrsde/converge.h"
#include "corrsde/rng.h"
#include "corrsde/run.h"
#include "noise/tree.h"
#include "experiment/report.h"
#include "io/h5traj.h"
#include "io/h5util.h"
#include "io/outfile.h"

#define PUT(call)                                                                          \
  do {                                                                                     \
    if ((s = (call))) return s;                                                            \
  } while (0)

static const char *or_empty(const char *s) { return s ? s : ""; }

static int write_parameters(csde_h5out *w, const csde_conv_result *res,
                            const csde_conv_params *p, const csde_conv_record *rec,
                            csde_err *err)
{
  int s;
  const char *g = "/parameters";
  const csde_problem *P = &p->P;
  int64_t i64;
  double f64, t0, t1;
  char buf[64];
  csde_problem_span(P, &t0, &t1);
  PUT(csde_h5out_group(w, g, err));
  PUT(csde_h5out_attr_str(w, g, "command", "converge", err));
  PUT(csde_h5out_attr_str(w, g, "process", csde_process_name(P->process), err));
  PUT(csde_h5out_attr_str(w, g, "solvers", or_empty(rec->solvers), err));
  PUT(csde_h5out_attr_str(w, g, "error", csde_conv_kind_name(p->kind), err));
  PUT(csde_h5out_attr_str(w, g, "levels", or_empty(rec->levels), err));
  int64_t steps[CSDE_CONV_MAXLEVEL + 1];
  for (size_t k = 0; k < res->L; k++) steps[k] = (int64_t)res->steps[k];
  PUT(csde_h5out_attr_i64(w, g, "steps", steps, res->L, 1, err));
  PUT(csde_h5out_attr_str(w, g, "stepping", "fixed", err));
  PUT(csde_h5out_attr_str(w, g, "grid", p->grid ? p->grid : "uniform", err));
  i64 = (int64_t)p->paths;
  PUT(csde_h5out_attr_i64(w, g, "paths", &i64, 1, 0, err));
  PUT(csde_h5out_attr_str(w, g, "reference", or_empty(rec->reference), err));
  int64_t rl[CSDE_CONV_MAXSOLVERS];
  for (size_t i = 0; i < res->nsolvers; i++) rl[i] = res->s[i].ref_level;
  PUT(csde_h5out_attr_i64(w, g, "reference_levels", rl, res->nsolvers, 1, err));
  PUT(csde_h5out_attr_str(w, g, "schedule", csde_schedule_spec(P->sched), err));
  PUT(csde_h5out_attr_f64(w, g, "t_start", &t0, 1, 0, err));
  PUT(csde_h5out_attr_f64(w, g, "t_end", &t1, 1, 0, err));
  PUT(csde_h5out_attr_f64(w, g, "T", &P->T, 1, 0, err));
  PUT(csde_h5out_attr_f64(w, g, "eps", &P->eps, 1, 0, err));
  PUT(csde_h5out_attr_str(w, g, "covariance", csde_cov_spec(P->C), err));
  PUT(csde_h5out_attr_str(w, g, "cov_method", or_empty(rec->cov_method), err));
  PUT(csde_h5out_attr_str(w, g, "cov_method_used",
                          csde_cov_method_name(csde_cov_method_of(P->C)), err));
  PUT(csde_h5out_attr_str(w, g, "model", or_empty(rec->model_spec), err));
  PUT(csde_h5out_attr_str(w, g, "model_name", or_empty(rec->model_name), err));
  PUT(csde_h5out_attr_str(w, g, "model_output", or_empty(rec->model_output), err));
  i64 = (int64_t)P->tau;
  PUT(csde_h5out_attr_i64(w, g, "frames", &i64, 1, 0, err));
  int64_t shape[3];
  for (int i = 0; i < rec->shape_rank && i < 3; i++) shape[i] = (int64_t)rec->shape[i];
  PUT(csde_h5out_attr_i64(w, g, "frame_shape", shape, (size_t)rec->shape_rank, 1, err));
  i64 = (int64_t)P->D;
  PUT(csde_h5out_attr_i64(w, g, "pixels", &i64, 1, 0, err));
  PUT(csde_h5out_attr_u64(w, g, "seed", &p->seed, err));
  PUT(csde_h5out_attr_str(w, g, "init", or_empty(rec->init), err));
  if (isfinite(rec->start_mismatch_moment)) {
    PUT(csde_h5out_attr_f64(w, g, "start_mismatch_mean", &rec->start_mismatch_mean, 1, 0, err));
    PUT(csde_h5out_attr_f64(w, g, "start_mismatch_frame_moment", &rec->start_mismatch_moment,
                            1, 0, err));
  }
  PUT(csde_h5out_attr_str(w, g, "noise", csde_process_is_sde(P->process) ? "path" : "none",
                          err));
  PUT(csde_h5out_attr_str(w, g, "rng", csde_rng_name(), err));
  PUT(csde_h5out_attr_str(w, g, "rng_kernel", csde_rng_kernel_name(), err));
  PUT(csde_h5out_attr_str(w, g, "noise_generator", CSDE_TREE_GENERATOR, err));
  PUT(csde_h5out_attr_str(w, g, "noise_streams",
                          "path noise: the Brownian tree, node (level l, index m): streams "
                          "2^62 + l 2^52 + m and + 2^51; "
                          "initial states: stream 2^63; path j is sample j (row r, pixel p: "
                          "index (j * noise_dim + r) * D + p); bootstrap replicate b: "
                          "uniforms of (bootstrap_seed, b)",
                          err));
  i64 = (int64_t)p->boot;
  PUT(csde_h5out_attr_i64(w, g, "bootstrap", &i64, 1, 0, err));
  f64 = p->conf;
  PUT(csde_h5out_attr_f64(w, g, "confidence", &f64, 1, 0, err));
  i64 = rec->threads;
  PUT(csde_h5out_attr_i64(w, g, "threads", &i64, 1, 0, err));
  PUT(csde_h5out_attr_f64(w, g, "wall_seconds", &res->wall_seconds, 1, 0, err));
  i64 = (int64_t)res->nfe;
  PUT(csde_h5out_attr_i64(w, g, "nfe", &i64, 1, 0, err));
  PUT(csde_h5out_attr_str(w, g, "command_line", or_empty(rec->command_line), err));
  PUT(csde_h5out_attr_str(w, g, "corrsde_version", csde_version(), err));
  time_t now_t = time(NULL);
  struct tm tmv;
  gmtime_r(&now_t, &tmv);
  strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tmv);
  return csde_h5out_attr_str(w, g, "created", buf, err);
}

/* What /covariance holds, computed once for every write of a run's file. */
typedef struct {
  const csde_cov *C;
  double *m, *eig; /* dense: the matrix and its eigenvalues */
  double logdet;
  int have_logdet;
} cov_cache;

static int cov_cache_fill(cov_cache *cc, const csde_cov *C, csde_err *err)
{
  if (cc->C == C) return CSDE_SUCCESS;
  free(cc->m);
  free(cc->eig);
  memset(cc, 0, sizeof *cc);
  size_t tau = csde_cov_tau(C);
  if (tau <= CSDE_TRAJ_COV_MAX_TAU) {
    cc->m = malloc(tau * tau * sizeof *cc->m);
    cc->eig = malloc(tau * sizeof *cc->eig);
    if (!cc->m || !cc->eig)
      return csde_err_set(err, CSDE_ENOMEM, "out of memory for a %zu x %zu matrix", tau, tau);
    csde_cov_matrix(C, cc->m);
    int s = csde_cov_eigenvalues(C, cc->eig, err);
    if (s) return s;
  }
  if (tau <= CSDE_TRAJ_COV_MAX_TAU || csde_cov_logdet_cheap(C)) { /* else a Levinson pass */
    cc->logdet = csde_cov_logdet(C);
    cc->have_logdet = 1;
  }
  cc->C = C;
  return CSDE_SUCCESS;
}

static void cov_cache_free(cov_cache *cc)
{
  free(cc->m);
  free(cc->eig);
  memset(cc, 0, sizeof *cc);
}

/* The covariance used: matrix and eigenvalues up to CSDE_TRAJ_COV_MAX_TAU frames. */
static int write_covariance(csde_h5out *w, const csde_cov *C, cov_cache *cc, csde_err *err)
{
  int s;
  const char *c = "/covariance";
  size_t tau = csde_cov_tau(C);
  int dense = tau <= CSDE_TRAJ_COV_MAX_TAU;
  int64_t i64;
  PUT(cov_cache_fill(cc, C, err));
  PUT(csde_h5out_group(w, c, err));
  if (dense) {
    size_t d2[2] = {tau, tau}, d1[1] = {tau};
    PUT(csde_h5out_write_f64(w, "/covariance/matrix", cc->m, 2, d2, err));
    PUT(csde_h5out_write_f64(w, "/covariance/eigenvalues", cc->eig, 1, d1, err));
  } else {
    char buf[64];
    snprintf(buf, sizeof buf, "not stored: %zu frames > %d", tau, CSDE_TRAJ_COV_MAX_TAU);
    PUT(csde_h5out_attr_str(w, c, "matrix", buf, err));
  }
  PUT(csde_h5out_attr_str(w, c, "spec", csde_cov_spec(C), err));
  PUT(csde_h5out_attr_str(w, c, "method", csde_cov_method_name(csde_cov_method_of(C)), err));
  csde_cov_report rep = csde_cov_approx_report(C);
  i64 = !rep.approx;
  PUT(csde_h5out_attr_i64(w, c, "exact", &i64, 1, 0, err));
  i64 = (int64_t)csde_cov_noise_dim(C);
  PUT(csde_h5out_attr_i64(w, c, "noise_dim", &i64, 1, 0, err));
  if (cc->have_logdet) PUT(csde_h5out_attr_f64(w, c, "logdet", &cc->logdet, 1, 0, err));
  if (rep.approx) {
    PUT(csde_h5out_attr_f64(w, c, "kl_per_frame", &rep.kl_per_frame, 1, 0, err));
    PUT(csde_h5out_attr_f64(w, c, "max_entry_diff", &rep.max_entry_diff, 1, 0, err));
  }
  return CSDE_SUCCESS;
}
#undef PUT

/* The whole file, written as OUT.partial.XXXXXX and renamed to OUT (flags: outfile's). */
static int write_whole(const char *path, int flags, const csde_conv_result *r,
                       const csde_conv_params *p, const csde_conv_record *rec,
                       const char *status, cov_cache *cc, csde_err *err)
{
  csde_h5_quiet q;
  csde_h5_quiet_begin(&q);
  csde_h5out *w = NULL;
  int s = csde_h5out_create_flags(&w, path, flags, err);
  if (!s) s = write_parameters(w, r, p, rec, err);
  if (!s) s = write_covariance(w, p->P.C, cc, err);
  if (!s) s = csde_conv_write_h5(w, r, p->kind, p, status, err);
  if (s)
    csde_h5out_discard(w);
  else
    s = csde_h5out_close(w, err); /* renames the whole file into place */
  csde_h5_quiet_end(&q);
  return s;
}

int csde_conv_write_file(const char *path, const csde_conv_result *r,
                         const csde_conv_params *p, const csde_conv_record *rec,
                         int overwrite, csde_err *err)
{
  cov_cache cc;
  memset(&cc, 0, sizeof cc);
  int s = write_whole(path, CSDE_OUT_LOCK | (overwrite ? CSDE_OUT_OVERWRITE : 0), r, p, rec,
                      r->complete ? "ok" : "incomplete", &cc, err);
  cov_cache_free(&cc);
  return s;
}

/* ---- the file of a run in progress ---- */

struct csde_conv_file {
  char *path;
  csde_outfile lock;  /* OUT.lock, held from the open to the close (no temporary) */
  int overwrite;      /* OUT may be replaced */
  int existed;        /* OUT was there at the open: replaced only once a stage finished */
  int written;        /* OUT is ours */
  csde_conv_record rec;
  cov_cache cc;
};

int csde_conv_file_open(csde_conv_file **out, const char *path, const csde_conv_record *rec,
                        int overwrite, csde_err *err)
{
  *out = NULL;
  csde_conv_file *f = calloc(1, sizeof *f);
  if (!f || !(f->path = strdup(path))) {
    free(f);
    return csde_err_set(err, CSDE_ENOMEM, "out of memory");
  }
  int s = csde_outfile_open(&f->lock, path,
                            CSDE_OUT_LOCK | CSDE_OUT_NO_TMP | (overwrite ? CSDE_OUT_OVERWRITE : 0),
                            err);
  if (s) {
    free(f->path);
    free(f);
    return s;
  }
  f->overwrite = overwrite;
  f->existed = f->lock.existed;
  f->rec = *rec;
  *out = f;
  return CSDE_SUCCESS;
}

/* Something finished that an old file may be given up for. */
static int any_done(const csde_conv_result *r)
{
  for (size_t i = 0; i < r->nsolvers; i++)
    if (r->s[i].ref_done || r->s[i].levels_done) return 1;
  return 0;
}

int csde_conv_file_write(csde_conv_file *f, const csde_conv_result *r,
                         const csde_conv_params *p, const char *status, csde_err *err)
{
  if (!f || !r || !r->L || !r->s) return CSDE_SUCCESS; /* nothing to write yet */
  if (f->existed && !f->written && !any_done(r)) return CSDE_SUCCESS; /* the old one stays */
  int flags = f->written || f->overwrite ? CSDE_OUT_OVERWRITE : 0; /* the lock: ours */
  int s = write_whole(f->path, flags, r, p, &f->rec, status, &f->cc, err);
  if (!s) f->written = 1;
  return s;
}

int csde_conv_file_close(csde_conv_file *f, const csde_conv_result *r,
                         const csde_conv_params *p, const char *status, csde_err *err)
{
  if (!f) return CSDE_SUCCESS;
  int s = csde_conv_file_write(f, r, p, status, err);
  csde_outfile_release(&f->lock);
  cov_cache_free(&f->cc);
  free(f->path);
  free(f);
  return s;
}

int csde_conv_file_written(const csde_conv_file *f) { return f && f->written; }
