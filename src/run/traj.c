/* The trajectory file of a run (corrsde/run.h): /parameters records every setting of the
 * run, /covariance the C used; the datasets and their crash safety are io/h5traj.c's.
 * Every call keeps HDF5's error printing as the caller had it. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "corrsde/rng.h"
#include "corrsde/run.h"
#include "io/h5traj.h"
#include "io/h5util.h"
#include "noise/noise.h"
#include "run/run_internal.h"
#include "run/traj_part.h"

struct csde_traj {
  csde_h5traj *h;
  char warning[CSDE_MSG_MAX]; /* /stats warnings (csde_traj_set_warning) */
};

void csde_traj_set_warning(csde_traj *w, const char *msg)
{
  snprintf(w->warning, sizeof w->warning, "%s", msg);
}

#define PUT(call)                                                                          \
  do {                                                                                     \
    if ((s = (call))) return s;                                                            \
  } while (0)

static int write_parameters(csde_h5traj *w, const csde_run *r, const csde_traj_options *o,
                            const csde_traj_part *part, csde_err *err)
{
  int s;
  const char *g = "/parameters";
  const csde_run_settings *a = &r->s;
  int ddpm = r->process == CSDE_RUN_DDPM;
  int64_t i64;
  uint64_t u64;
  PUT(csde_h5traj_attr_str(w, g, "process", csde_run_process_name(r->process), err));
  PUT(csde_h5traj_attr_str(w, g, "process_spec", a->process, err));
  if (r->process == CSDE_RUN_DDIM) PUT(csde_h5traj_attr_f64(w, g, "eta", &r->eta, 1, err));
  PUT(csde_h5traj_attr_str(w, g, "solver", a->solver, err));
  PUT(csde_h5traj_attr_str(w, g, "stepping", r->adaptive ? "adaptive" : "fixed", err));
  i64 = (int64_t)(ddpm ? r->nsteps : r->adaptive ? 0 : a->steps);
  PUT(csde_h5traj_attr_i64(w, g, "steps", &i64, 1, err));
  PUT(csde_h5traj_attr_f64(w, g, "rtol", r->adaptive ? &a->rtol : &(double){0}, 1, err));
  PUT(csde_h5traj_attr_f64(w, g, "atol", r->adaptive ? &a->atol : &(double){0}, 1, err));
  PUT(csde_h5traj_attr_str(w, g, "grid", r->adaptive ? "adaptive" : ddpm ? "ddpm" : a->grid,
                           err));
  i64 = (int64_t)a->max_nfe;
  PUT(csde_h5traj_attr_i64(w, g, "max_nfe", &i64, 1, err));
  i64 = (int64_t)(part ? part->total : r->batch);
  PUT(csde_h5traj_attr_i64(w, g, "batch", &i64, 1, err));
  u64 = (uint64_t)(a->first_sample - (part ? part->first : 0)); /* of the file's sample 0 */
  PUT(csde_h5traj_attr_u64(w, g, "first_sample", &u64, 1, err));
  const char *init = a->init;
  if (!init)
    init = r->process == CSDE_RUN_FORWARD_SDE || r->process == CSDE_RUN_PFODE_ENCODE
               ? "data law p_0 of the model (seed, stream 2^63)"
               : "prior N(0, C) (seed, stream 2^63)";
  PUT(csde_h5traj_attr_str(w, g, "noise", r->noise_path ? "path" : "stream", err));
  if (r->noise_path)
    PUT(csde_h5traj_attr_str(w, g, "noise_generator", CSDE_TREE_GENERATOR, err));
  PUT(csde_h5traj_attr_str(w, g, "noise_streams",
                           "step n: stream n (its Levy area: 2^61 + n); path noise, tree "
                           "node (level l, index m): streams 2^62 + l 2^52 + m and + 2^51; "
                           "initial states: stream 2^63; sample j, row r, pixel p: index "
                           "(j * noise_dim + r) * D + p",
                           err));
  u64 = CSDE_STREAM_INIT;
  PUT(csde_h5traj_attr_u64(w, g, "init_stream", &u64, 1, err));
  char clip[96], thr[96]; /* the parsed specs, or "none" */
  csde_x0_post_specs(&r->P.x0, clip, sizeof clip, thr, sizeof thr);
  PUT(csde_h5traj_attr_str(w, g, "x0_clip", clip, err));
  PUT(csde_h5traj_attr_str(w, g, "x0_threshold", thr, err));
  /* classifier-free guidance: the spec as given ("none" when off; "function" for a
   * guidance_fn without a label) and whether cond and uncond went in two calls */
  const int guided = r->P.guidance.uncond != NULL;
  PUT(csde_h5traj_attr_str(w, g, "guidance",
                           !guided ? "none" : a->guidance ? a->guidance : "function", err));
  i64 = guided && r->P.guidance.split;
  PUT(csde_h5traj_attr_i64(w, g, "guidance_split", &i64, 1, err));
  /* the predictor-corrector's Langevin corrector (solve.h): "none", or its spec in full
   * with its numbers and noise streams */
  if (r->par.corrector_steps) {
    char cs[96];
    int dg = 15; /* the shortest %g that reads back as snr */
    for (char b[32]; dg < 17; dg++) {
      snprintf(b, sizeof b, "%.*g", dg, r->par.corrector_snr);
      if (strtod(b, NULL) == r->par.corrector_snr) break;
    }
    snprintf(cs, sizeof cs, "langevin:snr=%.*g,steps=%zu", dg, r->par.corrector_snr,
             r->par.corrector_steps);
    PUT(csde_h5traj_attr_str(w, g, "corrector", cs, err));
    PUT(csde_h5traj_attr_f64(w, g, "corrector_snr", &r->par.corrector_snr, 1, err));
    i64 = (int64_t)r->par.corrector_steps;
    PUT(csde_h5traj_attr_i64(w, g, "corrector_steps", &i64, 1, err));
    PUT(csde_h5traj_attr_str(w, g, "corrector_streams",
                             "predictor step n, corrector step k: stream 3 2^61 + n 2^24 + k",
                             err));
  } else {
    PUT(csde_h5traj_attr_str(w, g, "corrector", "none", err));
  }
  PUT(csde_h5traj_attr_str(w, g, "save", a->save, err));
  if (r->save_kind == CSDE_SAVE_TIMES) { /* a dataset: an attribute is limited to 64 KiB */
    size_t nt = r->ntimes;
    PUT(csde_h5traj_write_array(w, "/parameters/save_times", r->times, 1, &nt, err));
  }
  PUT(csde_h5traj_attr_str(w, g, "dtype", o->float32 ? "float32" : "float64", err));
  i64 = o->compress != 0;
  PUT(csde_h5traj_attr_i64(w, g, "compress", &i64, 1, err));
  PUT(csde_h5traj_attr_str(w, g, "compression", o->compress ? "gzip(4)+shuffle" : "none", err));
  csde_h5params hp = {csde_schedule_spec(r->sched), r->t0, r->t1, r->P.T, r->P.eps,
                      csde_cov_spec(r->P.C), a->cov_method, r->P.C,
                      a->model_spec, csde_model_name(r->P.model),
                      csde_model_output_name(csde_model_output_of(r->P.model)),
                      r->tau, r->D, r->rank, r->shape, a->seed, init,
                      (int64_t)r->par.threads, a->command_line};
  csde_h5sink k = csde_h5traj_sink(w);
  return csde_h5params_write(&k, &hp, err);
}

/* The covariance actually used (io/h5meta.h: the matrix and its eigenvalues up to
 * CSDE_TRAJ_COV_MAX_TAU frames). */
_Static_assert(CSDE_TRAJ_COV_MAX_TAU == CSDE_H5COV_MAX_TAU, "one bound for /covariance");

static int write_covariance(csde_h5traj *w, const csde_run *r, csde_err *err)
{
  csde_h5cov c;
  memset(&c, 0, sizeof c);
  csde_h5sink k = csde_h5traj_sink(w);
  int s = csde_h5cov_write(&k, &c, r->P.C, err);
  csde_h5cov_free(&c);
  return s;
}

int csde_traj_create(csde_traj **out, const char *path, const csde_run *r,
                     const csde_traj_options *o, csde_err *err)
{
  return csde_traj_create_part(out, path, r, o, NULL, err);
}

int csde_traj_create_part(csde_traj **out, const char *path, const csde_run *r,
                          const csde_traj_options *o, const csde_traj_part *part,
                          csde_err *err)
{
  *out = NULL;
  csde_traj_options none = {0, 0, 0, NULL};
  if (!o) o = &none;
  if (part && part->count > r->batch)
    return csde_err_set(err, CSDE_EINVAL, "trajectory: a part of %zu samples from a run of %zu",
                        part->count, r->batch);
  csde_traj *w = calloc(1, sizeof *w);
  if (!w) return csde_err_set(err, CSDE_ENOMEM, "out of memory");
  csde_h5traj_params hp;
  memset(&hp, 0, sizeof hp);
  hp.batch = part ? part->total : r->batch;
  if (part) {
    hp.comm = part->comm;
    hp.part_first = part->first;
    hp.part_batch = part->count;
  }
  hp.tau = r->tau;
  hp.shape_rank = r->rank;
  for (int i = 0; i < r->rank; i++) hp.shape[i] = r->shape[i];
  hp.float32 = o->float32 != 0;
  hp.compress = o->compress != 0;
  hp.overwrite = o->overwrite != 0;
  hp.stop = o->stop;
  hp.capacity = r->capacity;
  csde_h5_quiet q;
  csde_h5_quiet_begin(&q);
  int s = csde_h5traj_create(&w->h, path, &hp, err);
  if (!s) s = write_parameters(w->h, r, o, part, err);
  if (!s) s = write_covariance(w->h, r, err);
  /* beside /stats' attributes (made with the file): rewritten in place at close */
  if (!s) s = csde_h5traj_attr_str(w->h, "/stats", "warnings", "", err);
  if (!s) s = csde_h5traj_flush(w->h, err);
  if (!s) s = csde_h5traj_ready(w->h, err);
  if (s) {
    csde_h5traj_discard(w->h);
    free(w);
  } else {
    *out = w;
  }
  csde_h5_quiet_end(&q);
  return s;
}

int csde_traj_append(csde_traj *w, int64_t step, double t, const double *x, csde_err *err)
{
  csde_h5_quiet q;
  csde_h5_quiet_begin(&q);
  int s = csde_h5traj_append(w->h, step, t, x, err);
  csde_h5_quiet_end(&q);
  return s;
}

int csde_traj_agree(csde_traj *w, int s, csde_err *err)
{
  return csde_h5traj_agree(w->h, s, err);
}
int csde_traj_failed_rank(const csde_traj *w) { return csde_h5traj_failed_rank(w->h); }

size_t csde_traj_count(const csde_traj *w) { return csde_h5traj_count(w->h); }
int csde_traj_replaces(const csde_traj *w) { return csde_h5traj_replaces(w->h); }

int csde_traj_close(csde_traj *w, const csde_solve_stats *st, const char *status,
                    csde_err *err)
{
  csde_h5_quiet q;
  csde_h5_quiet_begin(&q);
  /* a group: every writer writes it (rank 0's text) */
  int s = csde_h5traj_attr_str(w->h, "/stats", "warnings", w->warning, err);
  if (!s) s = csde_h5traj_stats(w->h, st, status, err);
  int c = csde_h5traj_close(w->h, s ? NULL : err);
  csde_h5_quiet_end(&q);
  free(w);
  return s ? s : c;
}

void csde_traj_discard(csde_traj *w)
{
  if (!w) return;
  csde_h5_quiet q;
  csde_h5_quiet_begin(&q);
  csde_h5traj_discard(w->h);
  csde_h5_quiet_end(&q);
  free(w);
}
