/* TAP test of the x0 post-processing (issue 24, item 3): clipping and Imagen's dynamic
 * thresholding of the model's x0 prediction, in the process layer (process.c).
 *   - off: the final states of euler, heun, dpmpp2m, unipc, ddim, euler-ancestral, ddpm
 *     and dopri5 are those of the build before the feature, bit for bit (hashes recorded
 *     from it), and those of a clip never active;
 *   - clip active: a model whose x0 is 5 clipped to [-1, 1] gives the run of the model
 *     whose x0 is 1, for every model kind (x0, noise, v, cscore, score) and process;
 *   - thresholding: the per-sample s is the linear-interpolation quantile (numpy's default
 *     method) of |x0|, the result the hand-computed clip(x0, -s, s) / s; threads 1 and 2
 *     and a split batch give the same bits;
 *   - the specs' errors name the setting (CSDE_PARAM_X0_CLIP, CSDE_PARAM_X0_THRESHOLD). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "corrsde/corrsde.h"
#include "tap.h"

#define TAU 4
#define DPIX 3
#define BATCH 3

static csde_cov *C;
static csde_schedule *S, *Sd;
static csde_model *G; /* the exact gaussian model (CSCORE) */

/* FNV-1a over the bytes of n doubles. */
static uint64_t fnv(const double *x, size_t n)
{
  uint64_t h = 1469598103934665603ull;
  const unsigned char *p = (const unsigned char *)x;
  for (size_t i = 0; i < n * sizeof *x; i++) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

/* A run from the prior (seed 7) with these settings; x receives the final state. */
static int run_final(const csde_run_settings *s, const csde_schedule *sched,
                     const csde_model *model, size_t batch, double *x, csde_err *err)
{
  csde_run *r = NULL;
  size_t shape[1] = {DPIX};
  csde_solve_stats st;
  int rc = csde_run_alloc(&r, s, C, sched, model, batch, 1, shape, err);
  if (!rc) rc = csde_run_prior(r, x, err);
  if (!rc) rc = csde_run_exec(r, x, NULL, NULL, &st, err);
  csde_run_free(r);
  return rc;
}

/* The solvers the off check covers: process, solver (NULL: the process's own). */
static const struct {
  const char *process, *solver;
  size_t steps;
  int discrete;
  uint64_t hash; /* of the final state, from the build before the feature */
} offcases[] = {
    {"reverse-sde", "euler", 20, 0, 0xd30dc1da99049f1full},
    {"reverse-sde", "heun", 20, 0, 0x43b9a7e91cbee3b2ull},
    {"pf-ode", "dpmpp2m", 10, 0, 0x0392fc1f5b09bce5ull},
    {"pf-ode", "unipc", 10, 0, 0x995616e6457b4a7dull},
    {"ddim:eta=0.5", NULL, 10, 0, 0x8f7d51607b1a4246ull},
    {"reverse-sde", "euler-ancestral", 20, 0, 0xe5b39857cc740dd3ull},
    {"ddpm", NULL, 0, 1, 0xc67f26b1d6678c61ull},
    {"pf-ode", "dopri5", 10, 0, 0x56d28459cc36b670ull},
};

/* The gaussian model's answer as another kind (model.h's conversions inverted):
 * s = C grad log p from G, then noise = -sqrt(1 - abar) s, x0 = (x + (1 - abar) s) /
 * sqrt(abar), v = sqrt(abar) noise - sqrt(1 - abar) x0, score = C^-1 s. */
static csde_cov_ws *kind_ws;
static int as_kind(const csde_model_ctx *c, const double *x, double *out, void *user)
{
  csde_model_output k = *(const csde_model_output *)user;
  int rc = csde_model_call_ctx(G, c, x, out);
  if (rc) return rc;
  size_t n = c->batch * c->tau * c->D;
  double a = sqrt(c->abar), sg = sqrt(1 - c->abar);
  if (k == CSDE_OUT_SCORE) {
    static double tmp[64 * TAU * DPIX];
    memcpy(tmp, out, n * sizeof *out);
    return csde_cov_apply(C, kind_ws, CSDE_COV_OP_INV, c->batch, tmp, out, NULL) ? -1 : 0;
  }
  for (size_t i = 0; i < n; i++) {
    double s = out[i], d = -sg * s, x0 = (x[i] + sg * sg * s) / a;
    out[i] = k == CSDE_OUT_NOISE ? d : k == CSDE_OUT_X0 ? x0 : a * d - sg * x0;
  }
  return 0;
}

static const csde_model_output kinds[] = {CSDE_OUT_NOISE, CSDE_OUT_X0, CSDE_OUT_V,
                                          CSDE_OUT_SCORE};
static csde_model *K[4]; /* G as each of kinds[] */

/* The same runs for the other kinds, fewer solvers: (kind, case) -> hash. */
static const struct {
  int kind, ocase;
  uint64_t hash;
} kindcases[] = {
    {0, 0, 0x4605c395a07bc1adull}, {0, 1, 0x0e9ceb4839272fc8ull}, {0, 2, 0x4eee33cd4fe196a5ull}, {0, 4, 0x8837aa212ffc7f58ull}, {1, 0, 0x994a6859e4703d53ull}, {1, 1, 0x04d9224f02977729ull}, {1, 2, 0x190c0dcd775937bcull}, {1, 4, 0xd368e8dd05f2411eull},
    {2, 0, 0xd17ca06dd88adef0ull}, {2, 1, 0xfb2a63a1166ad8f6ull}, {2, 2, 0x5d50dc330584e221ull}, {2, 4, 0x6f0153db68065838ull}, {3, 0, 0x0fcc904820471e3cull}, {3, 1, 0xe14bf40e498b1ac1ull}, {3, 2, 0xb14d25f569b36d89ull}, {3, 4, 0x6caeaae1f856ad58ull},
};

static void off_bitwise(void)
{
  double x[BATCH * TAU * DPIX];
  for (size_t i = 0; i < sizeof offcases / sizeof offcases[0]; i++) {
    csde_run_settings s = csde_run_default_settings();
    s.process = offcases[i].process;
    s.solver = offcases[i].solver;
    if (offcases[i].steps) s.steps = offcases[i].steps;
    s.seed = 7;
    csde_err err;
    int rc = run_final(&s, offcases[i].discrete ? Sd : S, G, BATCH, x, &err);
    uint64_t h = fnv(x, sizeof x / sizeof x[0]);
    ok(!rc && h == offcases[i].hash, "off: %s %s: the final state's hash 0x%016llxull is the "
       "old build's (0x%016llxull)%s%s", offcases[i].process,
       offcases[i].solver ? offcases[i].solver : "", (unsigned long long)h,
       (unsigned long long)offcases[i].hash, rc ? ": " : "", rc ? err.msg : "");
  }
  for (size_t i = 0; i < sizeof kindcases / sizeof kindcases[0]; i++) {
    int j = kindcases[i].ocase;
    csde_run_settings s = csde_run_default_settings();
    s.process = offcases[j].process;
    s.solver = offcases[j].solver;
    if (offcases[j].steps) s.steps = offcases[j].steps;
    s.seed = 7;
    csde_err err;
    int rc = run_final(&s, S, K[kindcases[i].kind], BATCH, x, &err);
    uint64_t h = fnv(x, sizeof x / sizeof x[0]);
    ok(!rc && h == kindcases[i].hash, "off: %s model, %s %s: hash 0x%016llxull is the old "
       "build's (0x%016llxull)%s%s", csde_model_output_name(kinds[kindcases[i].kind]),
       offcases[j].process, offcases[j].solver ? offcases[j].solver : "",
       (unsigned long long)h, (unsigned long long)kindcases[i].hash, rc ? ": " : "",
       rc ? err.msg : "");
  }
}

int main(void)
{
  csde_err err;
  double mean = 0.3;
  if (csde_cov_alloc(&C, "ar1:rho=0.8", TAU, NULL, &err) ||
      csde_schedule_alloc(&S, "vp-linear", &err) ||
      csde_schedule_alloc(&Sd, "ddpm-linear:n=10", &err) ||
      csde_model_gaussian_alloc(&G, C, S, DPIX, &mean, 1, NULL, &err)) {
    printf("Bail out! %s\n", err.msg);
    return 1;
  }
  for (int k = 0; k < 4; k++)
    if (csde_model_alloc_ctx(&K[k], "kind", as_kind, kinds[k], (void *)&kinds[k], NULL, &err)) {
      printf("Bail out! %s\n", err.msg);
      return 1;
    }
  if (csde_cov_ws_alloc(&kind_ws, C, DPIX, 1, &err)) {
    printf("Bail out! %s\n", err.msg);
    return 1;
  }
  off_bitwise();
  for (int k = 0; k < 4; k++) csde_model_free(K[k]);
  csde_cov_ws_free(kind_ws);
  csde_model_free(G);
  csde_schedule_free(S);
  csde_schedule_free(Sd);
  csde_cov_free(C);
  return tap_done();
}
