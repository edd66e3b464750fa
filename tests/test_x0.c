/* TAP test of the x0 post-processing (issue 24, item 3): clipping and Imagen's dynamic
 * thresholding of the model's x0 prediction, in the process layer (process.c).
 *   - off: the final states of euler, heun, dpmpp2m, unipc, ddim, euler-ancestral, ddpm
 *     and dopri5 are those of the build before the feature, bit for bit (hashes recorded
 *     from it), and those of a clip never active;
 *   - clip active: a model whose x0 is 5 clipped to [-1, 1] gives the run of the model
 *     whose x0 is 1, for every model kind (x0, noise, v, cscore, score) and process: bit
 *     for bit for the x0 kind, to 1e-14 (1e-12 for stiff explicit steps) for the others;
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
#include "process/process.h"
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
  uint64_t hash; /* of the final state, from the build before the feature (a913857) */
} offcases[] = {
    {"reverse-sde", "euler", 20, 0, 0x27c32fa28a5e1054ull},
    {"reverse-sde", "heun", 20, 0, 0xb9c273100f104f78ull},
    {"pf-ode", "dpmpp2m", 10, 0, 0xd289814608cf4f24ull},
    {"pf-ode", "unipc", 10, 0, 0x65c36ffaaf0099ceull},
    {"ddim:eta=0.5", NULL, 10, 0, 0x2518524d41f3040aull},
    {"reverse-sde", "euler-ancestral", 20, 0, 0xb462c982438dd3b1ull},
    {"ddpm", NULL, 0, 1, 0x103042f4f6e552acull},
    {"pf-ode", "dopri5", 10, 0, 0x12c1b08c0b96bc6full},
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
    {0, 0, 0xa407ef51d26a2b38ull}, {0, 1, 0x404652307f42fc3cull}, {0, 2, 0x6e69c0f5fd9d03feull}, {0, 4, 0xab8ab76f41781f88ull}, {1, 0, 0xa661671930eab94cull}, {1, 1, 0xc597488c803a631dull}, {1, 2, 0xda7d018d82c88588ull}, {1, 4, 0x744c985bdb0eb208ull},
    {2, 0, 0x473bc233341e5318ull}, {2, 1, 0xc97acb2faf07b6d3ull}, {2, 2, 0xc067ecbe047c3752ull}, {2, 4, 0x9fe3b2289e6ea0c7ull}, {3, 0, 0xf9c7a0a1e0379a8bull}, {3, 1, 0x7f31d0d1b58043a1ull}, {3, 2, 0x9939555f4befcfe7ull}, {3, 4, 0x71d0deb1a0f6fa96ull},
};

/* The recorded hashes hold where the floating point gives the recording machine's bits
 * (x86-64 with AVX-512, glibc 2.36, OpenBLAS 0.3.21; OPENBLAS_CORETYPE is left as the
 * environment has it): a canary of what the runs call (exp, expm1, log,
 * log1p, sqrt, pow, the schedule, the normals of every rng kernel, the covariance's
 * products and solves, the gaussian model's BLAS calls) tells whether it does here. Where
 * it does not (another BLAS kernel, valgrind's emulated FMA), the off runs are checked
 * against this build's clip-free runs only (clip_inactive). */
#define LIBM_CANARY 0x58dbebfd5c1975efull
static uint64_t libm_canary(void)
{
  double v[6 * 512];
  for (int i = 0; i < 512; i++) {
    double t = (i + 0.5) / 512, B = csde_schedule_int_beta(S, t);
    v[6 * i] = exp(-0.5 * B);
    v[6 * i + 1] = sqrt(-expm1(-B));
    v[6 * i + 2] = log(expm1(B));
    v[6 * i + 3] = log1p(t) + pow(t, 1.0 / 3.0);
    v[6 * i + 4] = csde_schedule_abar(S, t) + csde_schedule_beta(S, t);
    v[6 * i + 5] = exp(20 * t - 10) + log(t);
  }
  uint64_t h = fnv(v, sizeof v / sizeof v[0]);
  /* the normals: the first kernel's in the hash, every other kernel this CPU runs equal */
  double z[1024];
  int first = 1, same = 1;
  for (const char *const *k = csde_rng_kernel_names(); *k; k++)
    if (!csde_rng_kernel_select(*k)) {
      csde_rng_key key = {7, 3};
      csde_rng_normal(key, 0, 1024, first ? z : v);
      same &= first || !memcmp(z, v, sizeof z);
      first = 0;
    }
  csde_rng_kernel_select("auto");
  /* BLAS: C x, V' z, C^-1 x and the gaussian model's answer on a fixed state */
  double x[BATCH * TAU * DPIX], y[4][BATCH * TAU * DPIX];
  for (size_t i = 0; i < sizeof x / sizeof x[0]; i++) x[i] = sin(1.0 + (double)i);
  csde_model_ctx c = {.t = 0.5, .batch = BATCH, .tau = TAU, .D = DPIX,
                      .abar = csde_schedule_abar(S, 0.5), .sigma = NAN, .logsnr = NAN,
                      .index = -1, .C = C, .sched = S, .ncond = BATCH};
  same &= !csde_cov_apply(C, kind_ws, CSDE_COV_OP_C, BATCH, x, y[0], NULL) &&
          !csde_cov_apply(C, kind_ws, CSDE_COV_OP_SQRT, BATCH, x, y[1], NULL) &&
          !csde_cov_apply(C, kind_ws, CSDE_COV_OP_INV, BATCH, x, y[2], NULL) &&
          !csde_model_call_ctx(G, &c, x, y[3]);
  return same ? h ^ fnv(z, 1024) ^ fnv(y[0], 4 * BATCH * TAU * DPIX) : 0;
}

static void off_bitwise(void)
{
  double x[BATCH * TAU * DPIX];
  uint64_t canary = libm_canary();
  if (canary != LIBM_CANARY) {
    printf("ok %d - off: the recorded hashes # SKIP this platform's floating point differs from the "
           "recording machine's (canary 0x%016llxull, recorded 0x%016llxull)\n", ++tap_n,
           (unsigned long long)canary, (unsigned long long)LIBM_CANARY);
    return;
  }
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

/* The clip never active (bounds far beyond every x0 the exact model gives): the bits of
 * the run without it (this build's, and so the recorded ones where those hold). */
static void clip_inactive(void)
{
  double x[BATCH * TAU * DPIX], y[BATCH * TAU * DPIX];
  for (size_t i = 0; i < sizeof offcases / sizeof offcases[0]; i++) {
    csde_run_settings s = csde_run_default_settings();
    s.process = offcases[i].process;
    s.solver = offcases[i].solver;
    if (offcases[i].steps) s.steps = offcases[i].steps;
    s.seed = 7;
    csde_err err;
    int rc = run_final(&s, offcases[i].discrete ? Sd : S, G, BATCH, y, &err);
    s.x0_clip = "-1e3,1e3";
    rc |= run_final(&s, offcases[i].discrete ? Sd : S, G, BATCH, x, &err);
    ok(!rc && !memcmp(x, y, sizeof x), "clip [-1e3, 1e3] never active: %s %s gives off's bits",
       offcases[i].process, offcases[i].solver ? offcases[i].solver : "");
  }
}

/* A model whose x0 is the constant *user (x0_const) everywhere, answering as kind k: */
typedef struct {
  csde_model_output kind;
  double c;
} const_x0;

static int const_model(const csde_model_ctx *ctx, const double *x, double *out, void *user)
{
  const const_x0 *m = user;
  size_t n = ctx->batch * ctx->tau * ctx->D;
  double ab = ctx->abar, om = 1 - ab, a = sqrt(ab), sg = sqrt(om);
  for (size_t i = 0; i < n; i++) {
    double c = m->c;
    switch (m->kind) {
    case CSDE_OUT_X0: out[i] = c; break;
    case CSDE_OUT_NOISE: out[i] = (x[i] - a * c) / sg; break;   /* delta */
    case CSDE_OUT_V: out[i] = (a * x[i] - c) / sg; break;       /* v */
    default: out[i] = (a * c - x[i]) / om;                      /* C grad log p */
    }
  }
  if (m->kind == CSDE_OUT_SCORE) { /* grad log p = C^-1 (C grad log p) */
    static double tmp[64 * TAU * DPIX];
    memcpy(tmp, out, n * sizeof *out);
    return csde_cov_apply(C, kind_ws, CSDE_COV_OP_INV, ctx->batch, tmp, out, NULL) ? -1 : 0;
  }
  return 0;
}

static double max_diff(const double *a, const double *b, size_t n)
{
  double m = 0;
  for (size_t i = 0; i < n; i++) m = fmax(m, fabs(a[i] - b[i]));
  return m;
}

/* Clip active: x0 = +-5 clipped to [-1, 1] is the run of x0 = +-1, for every kind and
 * process: bit for bit for an x0 model (the clipped answer is 1 itself), within 1e-14
 * for the others (one conversion each way). */
static void clip_active(void)
{
  /* stiff: explicit steps of the drift near eps, where |h| / (1 - abar) ~ 1e3 multiplies
   * the conversions' last-bit differences (the run of x0 = 1 alone differs as much
   * between kinds) */
  static const struct {
    const char *process, *solver;
    int discrete, stiff;
  } runs[] = {{"ddim", NULL, 0, 0},         {"pf-ode", "euler", 0, 0},
              {"pf-ode", "dpmpp2m", 0, 0},  {"pf-ode", "unipc", 0, 0},
              {"pf-ode", "heun", 0, 1},     {"reverse-sde", "euler", 0, 0},
              {"reverse-sde", "euler-ancestral", 0, 0}, {"ddpm", NULL, 1, 0},
              {"pf-ode-encode", "euler", 0, 1}};
  static const csde_model_output ks[] = {CSDE_OUT_X0, CSDE_OUT_NOISE, CSDE_OUT_V,
                                         CSDE_OUT_CSCORE, CSDE_OUT_SCORE};
  double x[BATCH * TAU * DPIX], y[BATCH * TAU * DPIX];
  const size_t n = sizeof x / sizeof x[0];
  double worst = 0;
  for (size_t k = 0; k < sizeof ks / sizeof ks[0]; k++)
    for (int sign = -1; sign <= 1; sign += 2)
      for (size_t i = 0; i < sizeof runs / sizeof runs[0]; i++) {
        const_x0 m5 = {ks[k], 5.0 * sign}, m1 = {ks[k], 1.0 * sign};
        csde_model *M5 = NULL, *M1 = NULL;
        csde_err err;
        csde_model_alloc_ctx(&M5, "x0=5", const_model, ks[k], &m5, NULL, &err);
        csde_model_alloc_ctx(&M1, "x0=1", const_model, ks[k], &m1, NULL, &err);
        csde_run_settings s = csde_run_default_settings();
        s.process = runs[i].process;
        s.solver = runs[i].solver;
        s.steps = 10;
        s.seed = 3;
        int rc1 = run_final(&s, runs[i].discrete ? Sd : S, M1, BATCH, y, &err);
        s.x0_clip = "-1,1";
        int rc5 = run_final(&s, runs[i].discrete ? Sd : S, M5, BATCH, x, &err);
        double d = max_diff(x, y, n), ym = 0;
        for (size_t j = 0; j < n; j++) ym = fmax(ym, fabs(y[j]));
        double rel = d / fmax(1.0, ym), tol = 1e-14 * (runs[i].stiff ? 100 : 1);
        int bitwise = !memcmp(x, y, sizeof x);
        int want_bits = ks[k] == CSDE_OUT_X0;
        if (!want_bits) worst = fmax(worst, rel);
        ok(!rc1 && !rc5 && (want_bits ? bitwise : rel <= tol),
           "clip active, %s model, x0 = %+g clipped to [-1, 1], %s %s: the run of x0 = %+g "
           "(max |diff| / max(1, max |x|) = %.3g <= %g%s)", csde_model_output_name(ks[k]),
           m5.c, runs[i].process, runs[i].solver ? runs[i].solver : "", m1.c, rel, tol,
           bitwise ? ", bitwise" : "");
        csde_model_free(M5);
        csde_model_free(M1);
      }
  printf("# clip active: largest relative |diff| over the non-x0 kinds %.3g\n", worst);
}

/* The quantile against a sort and numpy's formula, on values with ties. */
static int cmp_d(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double ref_quantile(const double *v, size_t n, double p)
{
  double *w = malloc(n * sizeof *w);
  memcpy(w, v, n * sizeof *v);
  qsort(w, n, sizeof *w, cmp_d);
  double h = (double)(n - 1) * p, g = h - floor(h);
  size_t k = (size_t)floor(h), k1 = k + 1 < n ? k + 1 : k;
  double a = w[k], b = w[k1], d = b - a;
  free(w);
  return g >= 0.5 ? b - d * (1 - g) : a + d * g;
}

static void quantile(void)
{
  static const double ps[] = {1e-9, 0.1, 0.25, 0.5, 0.75, 0.9, 0.995, 0.999, 1.0};
  /* above 601 values the selection first selects within a sample (Floyd-Rivest) */
  static const size_t ns[] = {1, 2, 3, 7, 12, 100, 511, 601, 602, 1000, 5000, 70001};
  double *v = malloc(70001 * sizeof *v), *w = malloc(70001 * sizeof *w);
  int bad = 0, tried = 0;
  uint64_t u = 12345;
  for (size_t a = 0; a < sizeof ns / sizeof ns[0]; a++)
    for (int ties = 0; ties < 2; ties++) {
      size_t n = ns[a];
      for (size_t i = 0; i < n; i++) {
        u = u * 6364136223846793005ull + 1442695040888963407ull;
        double r = (double)(u >> 11) / 9007199254740992.0;
        v[i] = ties ? floor(4 * r) : 3 * r; /* ties: values 0, 1, 2, 3 */
        if (ties && a % 2) v[i] = i % 3 ? 1.0 : v[i]; /* mostly one value */
      }
      for (size_t j = 0; j < sizeof ps / sizeof ps[0]; j++) {
        memcpy(w, v, n * sizeof *v);
        double q = csde_proc_quantile(w, n, ps[j]), r = ref_quantile(v, n, ps[j]);
        tried++;
        if (q != r) {
          bad++;
          printf("# n %zu p %g ties %d: %.17g, sorted %.17g\n", n, ps[j], ties, q, r);
        }
      }
    }
  free(v);
  free(w);
  ok(!bad, "selection quantile = sort + numpy's linear formula, bit for bit (%d cases, n up "
     "to 70001, with ties)", tried);
}

/* A model whose x0 is a fixed array (per sample), whatever x. */
static double fixed_x0[BATCH * TAU * DPIX];
static int fixed_model(const csde_model_ctx *ctx, const double *x, double *out, void *user)
{
  (void)x, (void)user;
  memcpy(out, fixed_x0, ctx->batch * ctx->tau * ctx->D * sizeof *out);
  return 0;
}

/* Thresholding against the hand computation x0' = clip(x0, -s, s) / s, s = min(max(q_p(|x0|),
 * 1), max) per sample (q_p by a sort): one DDIM step (eta 0) from T = 1 to eps is, bit for
 * bit, the step of the model that answers x0' itself, and to 1e-12 the closed form
 * alpha_e x0' + sigma_e (x_T - alpha_T x0') / sigma_T (DDIM's step multiplies x_T by
 * 1 / alpha_T = 150 before the cancellation: its own rounding is 5e-14). */
static void threshold_exact(void)
{
  static const struct {
    const char *spec;
    double p, max;
  } specs[] = {{"p=0.995", 0.995, INFINITY}, {"p=0.5", 0.5, INFINITY},
               {"p=0.9,max=1.5", 0.9, 1.5},   {"p=1", 1.0, INFINITY},
               {"max=inf,p=0.7", 0.7, INFINITY}};
  const size_t per = TAU * DPIX, n = BATCH * per;
  /* sample 0: |x0| up to 3 (s > 1), sample 1: ties, sample 2: inside [-1, 1] (s = 1) */
  for (size_t i = 0; i < per; i++) {
    fixed_x0[i] = 3.0 * sin(1.0 + 2.3 * (double)i);
    fixed_x0[per + i] = (double)((int)(i % 4) - 2) * 0.75;
    fixed_x0[2 * per + i] = 0.9 * cos(0.7 * (double)i);
  }
  csde_model *F = NULL;
  csde_err err;
  csde_model_alloc_ctx(&F, "fixed x0", fixed_model, CSDE_OUT_X0, NULL, NULL, &err);
  double x[BATCH * TAU * DPIX], xT[BATCH * TAU * DPIX], want[BATCH * TAU * DPIX],
      off[BATCH * TAU * DPIX];
  double worst = 0;
  for (size_t j = 0; j < sizeof specs / sizeof specs[0]; j++) {
    csde_run_settings s = csde_run_default_settings();
    s.process = "ddim";
    s.steps = 1;
    s.seed = 5;
    int rc0 = run_final(&s, S, F, BATCH, off, &err);
    s.x0_threshold = specs[j].spec;
    csde_run *r = NULL;
    size_t shape[1] = {DPIX};
    csde_solve_stats st;
    int rc = csde_run_alloc(&r, &s, C, S, F, BATCH, 1, shape, &err);
    if (!rc) rc = csde_run_prior(r, x, &err);
    memcpy(xT, x, sizeof x);
    if (!rc) rc = csde_run_exec(r, x, NULL, NULL, &st, &err);
    double t0, t1;
    if (r) csde_run_span(r, &t0, &t1);
    csde_run_free(r);
    double aT = sqrt(csde_schedule_abar(S, t0)), sT = sqrt(1 - aT * aT);
    double ae = sqrt(csde_schedule_abar(S, t1)), se = sqrt(1 - ae * ae);
    double sv[BATCH];
    for (size_t b = 0; b < BATCH; b++) {
      double w[TAU * DPIX];
      for (size_t i = 0; i < per; i++) w[i] = fabs(fixed_x0[b * per + i]);
      double q = ref_quantile(w, per, specs[j].p);
      sv[b] = fmin(fmax(q, 1.0), specs[j].max);
      for (size_t i = 0; i < per; i++) {
        double x0 = fixed_x0[b * per + i], c = fmin(fmax(x0, -sv[b]), sv[b]) / sv[b];
        want[b * per + i] = ae * c + se * (xT[b * per + i] - aT * c) / sT;
      }
    }
    /* the model that answers x0' */
    double keep[BATCH * TAU * DPIX], hand[BATCH * TAU * DPIX];
    memcpy(keep, fixed_x0, sizeof keep);
    for (size_t i = 0; i < n; i++)
      fixed_x0[i] = fmin(fmax(keep[i], -sv[i / per]), sv[i / per]) / sv[i / per];
    s.x0_threshold = NULL;
    int rc1 = run_final(&s, S, F, BATCH, hand, &err);
    memcpy(fixed_x0, keep, sizeof keep);
    double d = max_diff(x, want, n);
    worst = fmax(worst, d);
    ok(!rc && !rc0 && !rc1 && !memcmp(x, hand, sizeof x) && d <= 1e-12 &&
           !memcmp(x + 2 * per, off + 2 * per, per * sizeof *x),
       "threshold %s: s = %.6g, %.6g, %.6g; one DDIM step is the model answering x0' bit for "
       "bit, the closed form to %.3g <= 1e-12; sample 2 (|x0| <= 1, s = 1) keeps off's bits",
       specs[j].spec, sv[0], sv[1], sv[2], d);
  }
  printf("# thresholding: largest |diff| from the hand computation %.3g\n", worst);
  csde_model_free(F);
}

/* Threads and the batch split do not change the bits with thresholding on: the exact
 * gaussian model with data of std 2 (so that s > 1). */
static void threshold_threads(void)
{
  double S0[TAU * TAU], mean = 0.3;
  for (size_t i = 0; i < TAU; i++)
    for (size_t j = 0; j < TAU; j++) S0[i * TAU + j] = 4.0 * pow(0.9, fabs((double)i - (double)j));
  csde_model *W = NULL;
  csde_err err;
  if (csde_model_gaussian_alloc(&W, C, S, DPIX, &mean, 1, S0, &err)) {
    ok(0, "gaussian model: %s", err.msg);
    return;
  }
  static const struct {
    const char *process, *solver;
  } runs[] = {{"pf-ode", "dpmpp2m"}, {"reverse-sde", "euler"}, {"ddim:eta=0.5", NULL},
              {"pf-ode", "heun"}};
  const size_t per = TAU * DPIX;
  for (size_t i = 0; i < sizeof runs / sizeof runs[0]; i++) {
    double x1[BATCH * TAU * DPIX], x2[BATCH * TAU * DPIX], xs[BATCH * TAU * DPIX],
        xo[BATCH * TAU * DPIX];
    csde_run_settings s = csde_run_default_settings();
    s.process = runs[i].process;
    s.solver = runs[i].solver;
    s.steps = 12;
    s.seed = 11;
    int rc = run_final(&s, S, W, BATCH, xo, &err);
    s.x0_threshold = "p=0.9";
    rc |= run_final(&s, S, W, BATCH, x1, &err);
    s.threads = 2;
    rc |= run_final(&s, S, W, BATCH, x2, &err);
    s.threads = 1;
    for (size_t b = 0; b < BATCH; b++) { /* each sample alone, as sample b of the run */
      s.first_sample = b;
      rc |= run_final(&s, S, W, 1, xs + b * per, &err);
    }
    ok(!rc && !memcmp(x1, x2, sizeof x1) && !memcmp(x1, xs, sizeof x1) &&
           memcmp(x1, xo, sizeof x1),
       "threshold p=0.9, %s %s: threads 1 and 2 and the batch split one by one give the same "
       "bits (and not off's: max |diff| %.3g)", runs[i].process,
       runs[i].solver ? runs[i].solver : "", max_diff(x1, xo, BATCH * per));
  }
  csde_model_free(W);
}

/* At sigma = 0 (t = 0) x0 is x: nothing is clipped; at t > 0 the same clip is active. */
static void sigma_zero(void)
{
  csde_problem P = csde_problem_default();
  P.process = CSDE_PROC_PFODE;
  P.tau = TAU, P.D = DPIX, P.batch = BATCH;
  P.C = C, P.sched = S, P.model = G;
  double x[BATCH * TAU * DPIX], a[BATCH * TAU * DPIX], b[BATCH * TAU * DPIX];
  const size_t n = sizeof x / sizeof x[0];
  for (size_t i = 0; i < n; i++) x[i] = 0.3 + 0.5 * sin((double)i);
  int same0 = 0, diff5 = 0, rc = 0;
  for (int k = 0; k < 2; k++) {
    double t = k ? 0.5 : 0.0;
    csde_proc pr;
    csde_err err;
    P.x0.kind = CSDE_X0_NONE;
    rc |= csde_proc_init(&pr, &P, 1, 0, &err) || csde_proc_cscore(&pr, t, 0, x, a, &err);
    csde_proc_free(&pr);
    P.x0 = (csde_x0_post){CSDE_X0_CLIP, -0.1, 0.1, 0, 0};
    rc |= csde_proc_init(&pr, &P, 1, 0, &err) || csde_proc_cscore(&pr, t, 0, x, b, &err);
    csde_proc_free(&pr);
    if (k) diff5 = memcmp(a, b, sizeof a) != 0;
    else same0 = !memcmp(a, b, sizeof a);
  }
  ok(!rc && same0 && diff5, "clip [-0.1, 0.1]: at t = 0 (sigma = 0) the answer keeps its "
     "bits, at t = 0.5 it changes");
}

/* Malformed specs: CSDE_EINVAL naming the setting, no front end's option in the message. */
static void spec_errors(void)
{
  static const struct {
    const char *clip, *threshold, *process, *param, *msg;
  } cases[] = {
      {"1", NULL, NULL, CSDE_PARAM_X0_CLIP, "expected LO,HI"},
      {"", NULL, NULL, CSDE_PARAM_X0_CLIP, "expected LO,HI"},
      {"1,-1", NULL, NULL, CSDE_PARAM_X0_CLIP, "LO must be below HI"},
      {"1,1", NULL, NULL, CSDE_PARAM_X0_CLIP, "LO must be below HI"},
      {"-1,1,2", NULL, NULL, CSDE_PARAM_X0_CLIP, "expected LO,HI"},
      {"-1,inf", NULL, NULL, CSDE_PARAM_X0_CLIP, "expected LO,HI"},
      {"nan,1", NULL, NULL, CSDE_PARAM_X0_CLIP, "expected LO,HI"},
      {"a,1", NULL, NULL, CSDE_PARAM_X0_CLIP, "expected LO,HI"},
      {",1", NULL, NULL, CSDE_PARAM_X0_CLIP, "expected LO,HI"},
      {NULL, "", NULL, CSDE_PARAM_X0_THRESHOLD, "expected p=P"},
      {NULL, "0.995", NULL, CSDE_PARAM_X0_THRESHOLD, "expected p=P"},
      {NULL, "p=0", NULL, CSDE_PARAM_X0_THRESHOLD, "p must be in (0, 1]"},
      {NULL, "p=1.5", NULL, CSDE_PARAM_X0_THRESHOLD, "p must be in (0, 1]"},
      {NULL, "p=inf", NULL, CSDE_PARAM_X0_THRESHOLD, "expected a number"},
      {NULL, "p=0.9,max=0.5", NULL, CSDE_PARAM_X0_THRESHOLD, "max must be >= 1"},
      {NULL, "p=0.9,max=nan", NULL, CSDE_PARAM_X0_THRESHOLD, "expected a number"},
      {NULL, "max=2", NULL, CSDE_PARAM_X0_THRESHOLD, "p is missing"},
      {NULL, "p=0.9,p=0.8", NULL, CSDE_PARAM_X0_THRESHOLD, "a key given twice"},
      {NULL, "p=0.9,q=2", NULL, CSDE_PARAM_X0_THRESHOLD, "expected p=P"},
      {NULL, "p=0.9,", NULL, CSDE_PARAM_X0_THRESHOLD, "expected p=P"},
      {"-1,1", "p=0.9", NULL, CSDE_PARAM_X0_THRESHOLD, "exclude each other"},
      {"-1,1", NULL, "forward-sde", CSDE_PARAM_X0_CLIP, "forward-sde never calls the model"},
      {NULL, "p=0.9", "forward-sde", CSDE_PARAM_X0_THRESHOLD, "never calls the model"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    csde_run_settings s = csde_run_default_settings();
    s.x0_clip = cases[i].clip;
    s.x0_threshold = cases[i].threshold;
    if (cases[i].process) s.process = cases[i].process;
    csde_run *r = NULL;
    size_t shape[1] = {DPIX};
    csde_err err;
    csde_err_clear(&err);
    int st = csde_run_alloc(&r, &s, C, S, G, BATCH, 1, shape, &err);
    csde_run_free(r);
    ok(st == CSDE_EINVAL && err.param && !strcmp(err.param, cases[i].param) &&
           strstr(err.msg, cases[i].msg) && !strstr(err.msg, "--"),
       "clip '%s', threshold '%s'%s%s: CSDE_EINVAL, param %s, \"%s\" (got %d, %s, \"%s\")",
       cases[i].clip ? cases[i].clip : "(none)",
       cases[i].threshold ? cases[i].threshold : "(none)", cases[i].process ? ", " : "",
       cases[i].process ? cases[i].process : "", cases[i].param, cases[i].msg, st,
       err.param ? err.param : "NULL", err.msg);
  }
  /* a problem filled by hand is checked by the solver */
  csde_problem P = csde_problem_default();
  P.process = CSDE_PROC_PFODE;
  P.tau = TAU, P.D = DPIX, P.batch = BATCH;
  P.C = C, P.sched = S, P.model = G;
  P.x0 = (csde_x0_post){CSDE_X0_THRESHOLD, 0, 0, 2.0, INFINITY};
  csde_solve_params par = csde_solve_default_params();
  csde_solver *sv = NULL;
  csde_err err;
  int st = csde_solver_alloc(&sv, &P, &par, &err);
  csde_solver_free(sv);
  ok(st == CSDE_EINVAL && err.param && !strcmp(err.param, CSDE_PARAM_X0_THRESHOLD),
     "csde_solver_alloc with threshold p = 2: CSDE_EINVAL, param x0_threshold (%s)", err.msg);
  /* the specs back in their shortest form */
  csde_x0_post q;
  char c1[64], t1[64];
  int okp = !csde_x0_post_parse("-1,1", NULL, &q, NULL);
  csde_x0_post_specs(&q, c1, sizeof c1, t1, sizeof t1);
  int ok1 = okp && !strcmp(c1, "-1,1") && !strcmp(t1, "none");
  okp = !csde_x0_post_parse("none", "p=0.995", &q, NULL);
  csde_x0_post_specs(&q, c1, sizeof c1, t1, sizeof t1);
  ok(ok1 && okp && !strcmp(c1, "none") && !strcmp(t1, "p=0.995,max=inf"),
     "specs back: '-1,1' and 'p=0.995,max=inf' (got '%s')", t1);
}

int main(void)
{
  csde_init();
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
  clip_inactive();
  clip_active();
  quantile();
  threshold_exact();
  threshold_threads();
  sigma_zero();
  spec_errors();
  for (int k = 0; k < 4; k++) csde_model_free(K[k]);
  csde_cov_ws_free(kind_ws);
  csde_model_free(G);
  csde_schedule_free(S);
  csde_schedule_free(Sd);
  csde_cov_free(C);
  return tap_done();
}
