/* The HDF5 file of a convergence run (corrsde/converge.h, csde_conv_write_file): every
 * setting in /parameters, the C used in /covariance, the results in /convergence
 * (report.c). What `corrsde converge -o` and corrsde.converge(output=) write. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "corrsde/converge.h"
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
  if (isfinite(rec->start_mismatch_moment)) {
    PUT(csde_h5out_attr_f64(w, g, "start_mismatch_mean", &rec->start_mismatch_mean, 1, 0, err));
    PUT(csde_h5out_attr_f64(w, g, "start_mismatch_frame_moment", &rec->start_mismatch_moment,
                            1, 0, err));
  }
  PUT(csde_h5out_attr_str(w, g, "noise", csde_process_is_sde(P->process) ? "path" : "none",
                          err));
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
  PUT(csde_h5out_attr_f64(w, g, "wall_seconds", &res->wall_seconds, 1, 0, err));
  i64 = (int64_t)res->nfe;
  PUT(csde_h5out_attr_i64(w, g, "nfe", &i64, 1, 0, err));
  csde_h5params hp = {csde_schedule_spec(P->sched), t0, t1, P->T, P->eps,
                      csde_cov_spec(P->C), rec->cov_method, P->C,
                      rec->model_spec, rec->model_name, rec->model_output,
                      P->tau, P->D, rec->shape_rank, rec->shape, p->seed, rec->init,
                      (int64_t)rec->threads, rec->command_line};
  csde_h5sink k = csde_h5out_sink(w);
  return csde_h5params_write(&k, &hp, err);
}

/* The whole file, written as OUT.partial.XXXXXX and renamed to OUT (flags: outfile's). */
static int write_whole(const char *path, int flags, const csde_conv_result *r,
                       const csde_conv_params *p, const csde_conv_record *rec,
                       const char *status, csde_h5cov *cc, csde_err *err)
{
  csde_h5_quiet q;
  csde_h5_quiet_begin(&q);
  csde_h5out *w = NULL;
  int s = csde_h5out_create_flags(&w, path, flags, err);
  if (!s) s = write_parameters(w, r, p, rec, err);
  csde_h5sink k = csde_h5out_sink(w);
  if (!s) s = csde_h5cov_write(&k, cc, p->P.C, err);
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
  csde_h5cov cc;
  memset(&cc, 0, sizeof cc);
  int s = write_whole(path, CSDE_OUT_LOCK | (overwrite ? CSDE_OUT_OVERWRITE : 0), r, p, rec,
                      r->complete ? "ok" : "incomplete", &cc, err);
  csde_h5cov_free(&cc);
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
  csde_h5cov cc;
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
  csde_h5cov_free(&f->cc);
  free(f->path);
  free(f);
  return s;
}

int csde_conv_file_written(const csde_conv_file *f) { return f && f->written; }
