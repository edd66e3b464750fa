/* A model plugin for the reliability tests (tests/test_reliability.sh): a noise model
 * whose answer is the constant `value` (default 0), that fails on its `fail`-th call
 * (1-based; 0 never) with a message, and returns `big` (a finite double, default 0: off)
 * from its `big_at`-th call on. ARGS: value=V,fail=K,big=B,big_at=K,ctx=1,rank=R. ctx=1 uses
 * the ABI 2 callback (fn_ctx), whose failure gives a reason naming the step and sigma.
 * rank=R (tests/test_mpi.sh): fail only in the MPI process of that rank (Open MPI's
 * OMPI_COMM_WORLD_RANK), elsewhere never. raise=S,raise_at=K: raise signal S on the K-th
 * call (then answer as usual); exit_at=K: call exit(0) on the K-th call (a model that
 * ends the process). echo_run=1: init fails with what it was told of the run (plugin.h's
 * ABI 3 csde_plugin_run), for tests/test_model.c. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "corrsde/plugin.h"

typedef struct {
  double value, big;
  long fail, big_at, calls, ctx, sig, raise_at, exit_at, echo_run;
  int only_elsewhere; /* rank=R given and this is not rank R: never fail */
  size_t n; /* values per sample: tau * D */
} faulty;

static int faulty_fn(double t, size_t batch, const double *x, double *out, void *user)
{
  (void)t;
  (void)x;
  faulty *f = user;
  f->calls++;
  if (f->fail && f->calls == f->fail) return -7;
  if (f->exit_at && f->calls == f->exit_at) exit(0);
  if (f->sig && f->calls == f->raise_at) raise((int)f->sig);
  double v = f->big_at && f->calls >= f->big_at ? f->big : f->value;
  for (size_t i = 0; i < batch * f->n; i++) out[i] = v;
  return 0;
}

static int faulty_ctx_fn(const csde_model_ctx *c, const double *x, double *out, void *user)
{
  faulty *f = user;
  if (f->fail && f->calls + 1 == f->fail)
    snprintf(c->errmsg, c->errlen, "faulty: failing as asked at step %zu (sigma %.4g)", c->step,
             c->sigma);
  return faulty_fn(c->t, c->batch, x, out, user);
}

static int parse(const char *args, faulty *f, char *msg, size_t len)
{
  char *copy = strdup(args), *save = NULL;
  if (!copy) return 1;
  int bad = 0;
  for (char *kv = strtok_r(copy, ",", &save); kv && !bad; kv = strtok_r(NULL, ",", &save)) {
    char *eq = strchr(kv, '='), *end;
    if (!eq) {
      bad = 1;
      break;
    }
    *eq = '\0';
    double v = strtod(eq + 1, &end);
    if (*end || end == eq + 1) bad = 1;
    else if (!strcmp(kv, "value")) f->value = v;
    else if (!strcmp(kv, "big")) f->big = v;
    else if (!strcmp(kv, "fail")) f->fail = (long)v;
    else if (!strcmp(kv, "big_at")) f->big_at = (long)v;
    else if (!strcmp(kv, "ctx")) f->ctx = (long)v;
    else if (!strcmp(kv, "raise")) f->sig = (long)v;
    else if (!strcmp(kv, "raise_at")) f->raise_at = (long)v;
    else if (!strcmp(kv, "exit_at")) f->exit_at = (long)v;
    else if (!strcmp(kv, "echo_run")) f->echo_run = (long)v;
    else if (!strcmp(kv, "rank")) {
      const char *r = getenv("OMPI_COMM_WORLD_RANK");
      if (!r || atol(r) != (long)v) f->only_elsewhere = 1;
    } else bad = 1;
  }
  if (f->only_elsewhere) f->fail = 0;
  if (bad)
    snprintf(msg, len, "plugin_faulty: bad ARGS '%s' (value=V,fail=K,big=B,big_at=K,ctx=1,rank=R,"
             "raise=S,raise_at=K,exit_at=K,echo_run=1)",
             args);
  free(copy);
  return bad;
}

int csde_plugin_init(const csde_plugin_info *info, csde_plugin *out)
{
  faulty *f = calloc(1, sizeof *f);
  if (!f) return 1;
  f->n = info->tau * info->D;
  if (parse(info->args, f, info->errmsg, info->errlen)) {
    free(f);
    return 1;
  }
  if (f->echo_run) { /* "abi 3, tau 4, D 6, shape 3x2, rank 2, batch 5, C set, ..." */
    const csde_plugin_run *r = info->abi >= 3 ? info->run : NULL;
    int k = snprintf(info->errmsg, info->errlen, "abi %d, tau %zu, D %zu", info->abi,
                     info->tau, info->D);
    for (size_t i = 0; r && i < r->rank && k > 0 && (size_t)k < info->errlen; i++)
      k += snprintf(info->errmsg + k, info->errlen - (size_t)k, "%s%zu", i ? "x" : ", shape ",
                    r->frame_shape[i]);
    if (r && k > 0 && (size_t)k < info->errlen)
      snprintf(info->errmsg + k, info->errlen - (size_t)k, ", rank %zu, batch %zu, C %s, "
               "sched %s, process %s", r->rank, r->batch, r->C ? "set" : "NULL",
               r->sched ? "set" : "NULL", r->process ? r->process : "NULL");
    free(f);
    return 1;
  }
  out->name = "faulty";
  if (f->ctx && info->abi >= 2) out->fn_ctx = faulty_ctx_fn;
  else out->fn = faulty_fn;
  out->output = CSDE_OUT_NOISE;
  out->user = f;
  out->free = free;
  return 0;
}
