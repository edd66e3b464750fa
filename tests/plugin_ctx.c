/* A model plugin that records the context of its calls (tests/test_ctx_paths.c): a fn_ctx
 * model whose answer is 0 (cscore: the PF-ODE then moves x by f x only) or, with
 * output=flow-shifted, 0 of that kind. Built twice: as for ABI 6 (plugin_ctx6.so: it reads
 * the path fields alpha, sigma_path, lambda, t_shifted) and, with -DPLUGIN_CTX_ABI5, as a
 * plugin built for ABI 5 (plugin_ctx5.so: it knows csde_model_ctx only up to `first`, laid
 * out here as plugin.h had it, and reads t, sigma, batch and first where they were). The
 * test reads the records through plugin_ctx_seen (dlopen of the same file gives the same
 * library, so the same records). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "corrsde/plugin.h"

#define MAXREC 4096
/* per call: t, sigma, alpha, sigma_path, lambda, t_shifted, batch, first */
static double rec[MAXREC][8];
static size_t nrec;

#ifdef __GNUC__
__attribute__((visibility("default")))
#endif
size_t plugin_ctx_seen(const double (**out)[8]);
size_t plugin_ctx_seen(const double (**out)[8])
{
  *out = (const double (*)[8])rec;
  size_t n = nrec;
  nrec = 0;
  return n;
}

#ifdef PLUGIN_CTX_ABI5
/* csde_model_ctx as plugin.h's ABI 5 had it (ends at first) */
typedef struct {
  double t;
  size_t step;
  size_t batch, tau, D;
  double abar, sigma, logsnr;
  long index;
  const csde_cov *C;
  const csde_schedule *sched;
  char *errmsg;
  size_t errlen;
  const void *cond, *uncond;
  size_t ncond, first;
} ctx5;
#endif

static int ctx_fn(const csde_model_ctx *c, const double *x, double *out, void *user)
{
  (void)x, (void)user;
#ifdef PLUGIN_CTX_ABI5
  ctx5 k;
  memcpy(&k, c, sizeof k); /* the bytes an ABI 5 plugin knows */
  const double r[8] = {k.t, k.sigma, NAN, NAN, NAN, NAN, (double)k.batch, (double)k.first};
  const size_t n = k.batch * k.tau * k.D;
#else
  const double r[8] = {c->t,      c->sigma,     c->alpha,        c->sigma_path,
                       c->lambda, c->t_shifted, (double)c->batch, (double)c->first};
  const size_t n = c->batch * c->tau * c->D;
#endif
  if (nrec < MAXREC) memcpy(rec[nrec++], r, sizeof r);
  for (size_t i = 0; i < n; i++) out[i] = 0;
  return 0;
}

int csde_plugin_init(const csde_plugin_info *info, csde_plugin *out)
{
  out->output = CSDE_OUT_CSCORE;
  if (!strcmp(info->args, "output=flow-shifted"))
    out->output = CSDE_OUT_FLOW_SHIFTED;
  else if (info->args[0]) {
    snprintf(info->errmsg, info->errlen, "plugin_ctx: unknown ARGS '%s'", info->args);
    return 1;
  }
  out->name = "plugin_ctx";
  out->fn_ctx = ctx_fn;
#ifdef PLUGIN_CTX_ABI5
  out->abi = 5;
#else
  out->abi = CSDE_PLUGIN_ABI;
#endif
  nrec = 0;
  return 0;
}
