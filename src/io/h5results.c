/* A file of per-sample results with the run's /parameters and /covariance (corrsde/io.h,
 * csde_results_write): `corrsde likelihood -o`. Written whole as OUT.partial.XXXXXX
 * under OUT.lock and renamed over OUT at the close (io/h5out.h); a failure discards the
 * temporary, so no half-written file is ever left. */
#include <string.h>

#include "corrsde/io.h"
#include "corrsde/problem.h"
#include "io/h5meta.h"
#include "io/h5out.h"
#include "io/h5util.h"

#define PUT(call)                                                                          \
  do {                                                                                     \
    if ((s = (call))) return s;                                                            \
  } while (0)

static int write_contents(csde_h5out *w, const csde_results_file *f, csde_h5cov *cc,
                          csde_err *err)
{
  int s;
  const char *g = "/parameters";
  const csde_problem *P = f->P;
  PUT(csde_h5out_group(w, g, err));
  PUT(csde_h5out_attr_str(w, g, "command", f->command ? f->command : "", err));
  for (size_t i = 0; i < f->nattrs; i++) {
    const csde_results_attr *a = &f->attrs[i];
    if (a->text) {
      PUT(csde_h5out_attr_str(w, g, a->name, a->text, err));
    } else if (a->integer) {
      const int64_t v = (int64_t)a->value;
      PUT(csde_h5out_attr_i64(w, g, a->name, &v, 1, 0, err));
    } else {
      PUT(csde_h5out_attr_f64(w, g, a->name, &a->value, 1, 0, err));
    }
  }
  csde_h5params hp = {csde_schedule_spec(P->sched), f->t_start, f->t_end, P->T, P->eps,
                      csde_cov_spec(P->C), f->cov_method, P->C,
                      f->model_spec, P->model ? csde_model_name(P->model) : "",
                      P->model ? csde_model_output_name(csde_model_output_of(P->model)) : "",
                      P->tau, P->D, f->shape_rank, f->shape, f->seed, f->init,
                      f->threads, f->command_line};
  csde_h5sink k = csde_h5out_sink(w);
  PUT(csde_h5params_write(&k, &hp, err));
  PUT(csde_h5cov_write(&k, cc, P->C, err));
  for (size_t i = 0; i < f->narrays; i++) {
    const csde_results_array *a = &f->arrays[i];
    PUT(csde_h5out_write_f64(w, a->name, a->v, a->rank, a->dims, err));
  }
  return CSDE_SUCCESS;
}

int csde_results_write(const char *path, int overwrite, const csde_results_file *f,
                       csde_err *err)
{
  if (!path || !f || !f->P || !f->P->C || !f->P->sched)
    return csde_err_set(err, CSDE_EINVAL, "csde_results_write: no path, file or problem");
  for (size_t i = 0; i < f->narrays; i++)
    if (!f->arrays[i].name || f->arrays[i].rank < 1 || f->arrays[i].rank > CSDE_H5_MAXRANK)
      return csde_err_set(err, CSDE_EINVAL, "csde_results_write: array %zu has no name or "
                          "a rank outside 1..%d", i, CSDE_H5_MAXRANK);
  csde_h5cov cc;
  memset(&cc, 0, sizeof cc);
  csde_h5_quiet q;
  csde_h5_quiet_begin(&q);
  csde_h5out *w = NULL;
  int s = csde_h5out_create_flags(&w, path, CSDE_OUT_LOCK | (overwrite ? CSDE_OUT_OVERWRITE : 0),
                                  err);
  if (!s) s = write_contents(w, f, &cc, err);
  if (s)
    csde_h5out_discard(w);
  else
    s = csde_h5out_close(w, err); /* renames the whole file into place */
  csde_h5_quiet_end(&q);
  csde_h5cov_free(&cc);
  return s;
}
