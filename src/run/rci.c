/* Reverse communication (corrsde/run.h, "reverse communication"): the caller evaluates the
 * model.
 *
 * csde_run_begin starts csde_run_exec on a worker thread. Every solver stays as it is: the
 * external model's callback (on the worker) posts the request (ctx, x, out) and waits for
 * csde_run_give; the step hook posts the state after each step and waits for the next
 * csde_run_next. The two threads hand one token back and forth under a mutex (phase ==
 * RUN: the worker computes while the caller waits in csde_run_next; any other phase: the
 * worker waits), so only one of them ever runs: the solve does what csde_run_exec does on
 * the caller's thread, bit for bit, and every access to the shared fields is ordered by
 * the mutex. The worker's OpenMP regions (threads > 1) get their own team, as on any
 * thread; the outputs do not depend on the team (run.h).
 *
 * An early csde_run_end (or csde_run_free) stops the worker through the channel it waits
 * on: a pending evaluation answers -1 (a fatal model status, which stops every solver),
 * a pending step hook returns 1 (a stop); then the worker is joined. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "corrsde/run.h"
#include "model/model_internal.h"
#include "run/run_internal.h"

enum { PH_WAIT = 0, PH_RUN, PH_EVAL, PH_STEP, PH_DONE };

struct csde_rci_run {
  pthread_t th;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int phase;      /* PH_*: who holds the token, and what the worker posted */
  int owed;       /* an EVAL was handed out and not yet answered */
  int given;      /* the status csde_run_give passed */
  int abandon;    /* csde_run_end before DONE: stop the worker */
  int busy;       /* a csde_run_next is waiting on the worker */
  /* the posted request */
  const csde_model_ctx *ctx;
  const double *x;
  double *out;
  size_t step;
  double t;
  /* the solve */
  csde_run *r;
  double *state;  /* the caller's x: the start state, the final one at the end */
  csde_traj *w;
  csde_run_hooks hooks;
  int rc;
  csde_solve_stats st;
  csde_err err;
};

/* The RCI run the calling thread works for (the worker sets it for itself). */
static _Thread_local struct csde_rci_run *tls_rci;

/* Post what the worker has (phase), hand the token over and wait for it back. Returns 1
 * when the caller abandons the run. Called with the mutex not held. */
static int post_and_wait(struct csde_rci_run *q, int phase)
{
  pthread_mutex_lock(&q->mu);
  q->phase = phase;
  pthread_cond_broadcast(&q->cv);
  while (q->phase != PH_RUN) pthread_cond_wait(&q->cv, &q->mu);
  int stop = q->abandon;
  pthread_mutex_unlock(&q->mu);
  return stop;
}

static int external_fn(const csde_model_ctx *ctx, const double *x, double *out, void *user)
{
  (void)user;
  struct csde_rci_run *q = tls_rci;
  if (!q || !q->r || !q->r->P.model || q->r->P.model->fn_ctx != external_fn) {
    if (ctx->errmsg && ctx->errlen)
      snprintf(ctx->errmsg, ctx->errlen, "an external model is evaluated by the caller "
                                         "(csde_run_begin, csde_run_next, csde_run_give)");
    return -1;
  }
  q->ctx = ctx;
  q->x = x;
  q->out = out;
  q->step = ctx->step;
  q->t = ctx->t;
  if (post_and_wait(q, PH_EVAL)) {
    if (ctx->errmsg && ctx->errlen)
      snprintf(ctx->errmsg, ctx->errlen, "the caller ended the run (csde_run_end)");
    return -1;
  }
  return q->given;
}

static int step_hook(size_t step, double t, size_t saved, int final, void *user)
{
  (void)saved, (void)final;
  struct csde_rci_run *q = user;
  q->ctx = NULL;
  q->x = q->r->ex.x; /* the state after the step (run.c's observer) */
  q->out = NULL;
  q->step = step;
  q->t = t;
  return post_and_wait(q, PH_STEP);
}

static void *worker(void *arg)
{
  struct csde_rci_run *q = arg;
  tls_rci = q;
  pthread_mutex_lock(&q->mu);
  while (q->phase != PH_RUN) pthread_cond_wait(&q->cv, &q->mu);
  int stop = q->abandon;
  pthread_mutex_unlock(&q->mu);
  if (stop) { /* ended before the first csde_run_next */
    memset(&q->st, 0, sizeof q->st);
    q->st.stopped = 1;
    q->rc = CSDE_SUCCESS;
  } else {
    q->rc = csde_run_exec(q->r, q->state, q->w, &q->hooks, &q->st, &q->err);
  }
  q->ctx = NULL;
  q->x = q->state;
  q->out = NULL;
  q->step = q->st.steps;
  if (!q->rc && !q->st.stopped) q->t = q->r->t1;
  pthread_mutex_lock(&q->mu);
  q->phase = PH_DONE;
  pthread_cond_broadcast(&q->cv);
  pthread_mutex_unlock(&q->mu);
  tls_rci = NULL;
  return NULL;
}

int csde_model_alloc_external(csde_model **out, const char *name, csde_model_output kind,
                              csde_err *err)
{
  return csde_model_alloc_ctx(out, name ? name : "external", external_fn, kind, NULL, NULL,
                              err);
}

int csde_model_is_external(const csde_model *M) { return M && M->fn_ctx == external_fn; }

int csde_run_rci_check_exec(const csde_run *r, csde_err *err)
{
  const int worker_here = r->rci && tls_rci == r->rci;
  if (r->rci && !worker_here)
    return csde_err_set(err, CSDE_EINVAL, "csde_run_exec: a reverse-communication run of "
                                          "this run is in progress (csde_run_end it first)");
  if (!worker_here && csde_model_is_external(r->P.model))
    return csde_err_set(err, CSDE_EINVAL, "csde_run_exec: model '%s' is external (the caller "
                                          "evaluates it): drive the run with csde_run_begin, "
                                          "csde_run_next, csde_run_give and csde_run_end",
                        csde_model_name(r->P.model));
  return CSDE_SUCCESS;
}

int csde_run_begin(csde_run *r, double *x, csde_traj *w, csde_err *err)
{
  if (!r || !x)
    return csde_err_set(err, CSDE_EINVAL, "csde_run_begin: the run and the state x are needed");
  if (r->rci)
    return csde_err_set(err, CSDE_EINVAL, "csde_run_begin: this run was already begun "
                                          "(csde_run_end it before beginning again)");
  struct csde_rci_run *q = calloc(1, sizeof *q);
  if (!q) return csde_err_set(err, CSDE_ENOMEM, "csde_run_begin: out of memory");
  q->r = r;
  q->state = x;
  q->w = w;
  q->hooks = (csde_run_hooks){.step = step_hook, .user = q};
  q->t = r->t0;
  q->x = x;
  csde_err_clear(&q->err);
  if (pthread_mutex_init(&q->mu, NULL)) {
    free(q);
    return csde_err_set(err, CSDE_EFAILED, "csde_run_begin: could not make a mutex");
  }
  if (pthread_cond_init(&q->cv, NULL)) {
    pthread_mutex_destroy(&q->mu);
    free(q);
    return csde_err_set(err, CSDE_EFAILED, "csde_run_begin: could not make a condition "
                                           "variable");
  }
  r->rci = q; /* before the thread exists: csde_run_exec on it checks it */
  int e = pthread_create(&q->th, NULL, worker, q);
  if (e) {
    r->rci = NULL;
    pthread_cond_destroy(&q->cv);
    pthread_mutex_destroy(&q->mu);
    free(q);
    return csde_err_set(err, CSDE_EFAILED, "csde_run_begin: could not start the solve's "
                                           "thread (pthread_create: %s)", strerror(e));
  }
  return CSDE_SUCCESS;
}

/* The request the worker posted (mutex held). */
static void fill(const struct csde_rci_run *q, csde_rci *req)
{
  req->what = q->phase == PH_EVAL ? CSDE_RCI_EVAL
              : q->phase == PH_STEP ? CSDE_RCI_STEP : CSDE_RCI_DONE;
  req->ctx = q->phase == PH_EVAL ? q->ctx : NULL;
  req->x = q->x;
  req->out = q->phase == PH_EVAL ? q->out : NULL;
  req->step = q->step;
  req->t = q->t;
}

int csde_run_next(csde_run *r, csde_rci *req, csde_err *err)
{
  if (!r || !req) return csde_err_set(err, CSDE_EINVAL, "csde_run_next: the run and the "
                                                        "request are needed");
  struct csde_rci_run *q = r->rci;
  if (!q)
    return csde_err_set(err, CSDE_EINVAL, "csde_run_next: no reverse-communication run in "
                                          "progress (csde_run_begin first)");
  pthread_mutex_lock(&q->mu);
  if (q->busy) {
    pthread_mutex_unlock(&q->mu);
    return csde_err_set(err, CSDE_EINVAL, "csde_run_next: another call on this run is "
                                          "waiting (one caller at a time)");
  }
  if (q->phase == PH_EVAL && q->owed) {
    pthread_mutex_unlock(&q->mu);
    return csde_err_set(err, CSDE_EINVAL, "csde_run_next: an answer is owed: evaluate the "
                                          "model at the request's x into its out and call "
                                          "csde_run_give first (step %zu, t = %.17g)",
                        q->step, q->t);
  }
  if (q->phase != PH_DONE) { /* hand the token to the worker until it posts */
    q->phase = PH_RUN;
    q->busy = 1;
    pthread_cond_broadcast(&q->cv);
    while (q->phase == PH_RUN) pthread_cond_wait(&q->cv, &q->mu);
    q->busy = 0;
  }
  fill(q, req);
  if (q->phase == PH_EVAL) q->owed = 1;
  int rc = CSDE_SUCCESS;
  if (q->phase == PH_DONE && (rc = q->rc) && err) *err = q->err;
  pthread_mutex_unlock(&q->mu);
  return rc;
}

int csde_run_give(csde_run *r, int status, csde_err *err)
{
  struct csde_rci_run *q = r ? r->rci : NULL;
  if (!q)
    return csde_err_set(err, CSDE_EINVAL, "csde_run_give: no reverse-communication run in "
                                          "progress (csde_run_begin first)");
  pthread_mutex_lock(&q->mu);
  int ok = !q->busy && q->phase == PH_EVAL && q->owed;
  if (ok) {
    q->given = status;
    q->owed = 0;
  }
  pthread_mutex_unlock(&q->mu);
  if (!ok)
    return csde_err_set(err, CSDE_EINVAL, "csde_run_give: no evaluation is pending (give "
                                          "answers the EVAL request of the last "
                                          "csde_run_next, once)");
  return CSDE_SUCCESS;
}

/* Stop the worker (if it has not finished), join it and free the state; *rc and st get
 * the run's outcome (an abandoned run: 0 and stopped). */
static void finish(csde_run *r, int *rc, csde_solve_stats *st, csde_err *err)
{
  struct csde_rci_run *q = r->rci;
  pthread_mutex_lock(&q->mu);
  const int abandoned = q->phase != PH_DONE;
  if (abandoned) q->abandon = 1;
  while (q->phase != PH_DONE) {
    q->phase = PH_RUN;
    pthread_cond_broadcast(&q->cv);
    while (q->phase == PH_RUN) pthread_cond_wait(&q->cv, &q->mu);
  }
  pthread_mutex_unlock(&q->mu);
  pthread_join(q->th, NULL);
  pthread_cond_destroy(&q->cv);
  pthread_mutex_destroy(&q->mu);
  if (st) *st = q->st;
  if (abandoned) {
    if (st) st->stopped = 1;
    *rc = CSDE_SUCCESS;
  } else {
    *rc = q->rc;
    if (q->rc && err) *err = q->err;
  }
  r->rci = NULL;
  free(q);
}

int csde_run_end(csde_run *r, csde_solve_stats *st, csde_err *err)
{
  if (st) memset(st, 0, sizeof *st);
  struct csde_rci_run *q = r ? r->rci : NULL;
  if (!q)
    return csde_err_set(err, CSDE_EINVAL, "csde_run_end: no reverse-communication run in "
                                          "progress (csde_run_begin first)");
  pthread_mutex_lock(&q->mu);
  int busy = q->busy;
  pthread_mutex_unlock(&q->mu);
  if (busy)
    return csde_err_set(err, CSDE_EINVAL, "csde_run_end: a csde_run_next on this run is "
                                          "still waiting");
  int rc;
  finish(r, &rc, st, err);
  return rc;
}

void csde_run_rci_free(csde_run *r)
{
  if (r && r->rci) {
    int rc;
    finish(r, &rc, NULL, NULL);
  }
}
