/* experiments/plugin_mlp.c: an example corrsde model plugin, a small fixed MLP noise model.
 *
 * The network is NOT trained: its weights are pseudo-random numbers fixed by `seed`. It
 * stands in for a real network (same interface, a similar cost profile) to exercise the
 * plugin path and the solvers, and is fully determined by (tau, ARGS): the same input
 * always gives the same bits.
 *
 * What it computes (output kind NOISE: out = delta_theta(x, t)). For every sample and
 * every pixel p, with v_i = x[i D + p] the pixel's values across the tau frames:
 *     a_j            = b1_j + c_j t + sum_i W1_ji v_i        j = 0 .. H-1
 *     out[i D + p]   = b2_i + sum_j W2_ij tanh(a_j)          i = 0 .. tau-1
 * Pixels are independent and share the weights (a 1x1 convolution that mixes frames).
 *
 * Weights: u_0, u_1, ... uniform in [-1, 1), u = 2 (r >> 11) 2^-53 - 1, where r runs
 * through the outputs of splitmix64 started from state = seed. They are drawn in order:
 *     W1  H x tau, row-major, times 1/sqrt(tau)
 *     b1  H,                  times 0.1
 *     c   H,                  times 1
 *     W2  tau x H, row-major, times 1/sqrt(H)
 *     b2  tau,                times 0.1
 *
 * ARGS (comma-separated key=value, each optional):
 *     hidden=H   hidden units, 1..4096 (default 16)
 *     seed=S     unsigned 64-bit integer (default 1)
 * Anything else is refused with a message.
 *
 * Build (meson does it as plugin_mlp.so), or by hand:
 *     cc -O2 -shared -fPIC -I include -o plugin_mlp.so experiments/plugin_mlp.c -lm
 * Load: csde_model_plugin_load(&M, "./plugin_mlp.so", "hidden=32,seed=7", tau, D, &err),
 * or on the command line --model plugin:./plugin_mlp.so:hidden=32,seed=7.
 *
 * Threads: the scratch (H x D doubles) belongs to the plugin instance, so one instance
 * must not be evaluated from two threads at once.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "corrsde/plugin.h"

#define MLP_HIDDEN_MAX 4096

typedef struct {
  size_t tau, D, H;
  double *W1, *b1, *c, *W2, *b2; /* one allocation, in the drawing order */
  double *A;                     /* scratch, H x D */
} mlp;

static uint64_t splitmix64(uint64_t *state)
{
  uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

/* n weights u scale, u = 2 (r >> 11) 2^-53 - 1 in [-1, 1). */
static void draw(uint64_t *state, double *w, size_t n, double scale)
{
  for (size_t i = 0; i < n; i++)
    w[i] = scale * (2.0 * (double)(splitmix64(state) >> 11) * 0x1p-53 - 1.0);
}

static void mlp_free(void *p)
{
  mlp *net = p;
  if (!net) return;
  free(net->W1);
  free(net->A);
  free(net);
}

/* delta_theta per sample: out = b2 + W2 tanh(b1 + c t + W1 v), pixels as columns. */
static int mlp_fn(double t, size_t batch, const double *x, double *out, void *user)
{
  mlp *net = user;
  size_t tau = net->tau, D = net->D, H = net->H;
  double *A = net->A;
  for (size_t b = 0; b < batch; b++) {
    const double *xb = x + b * tau * D;
    double *ob = out + b * tau * D;
    for (size_t j = 0; j < H; j++) { /* A = b1 + c t + W1 X */
      double *Aj = A + j * D, a0 = net->b1[j] + net->c[j] * t;
      for (size_t p = 0; p < D; p++) Aj[p] = a0;
      for (size_t i = 0; i < tau; i++) {
        double w = net->W1[j * tau + i];
        const double *xi = xb + i * D;
        for (size_t p = 0; p < D; p++) Aj[p] += w * xi[p];
      }
      for (size_t p = 0; p < D; p++) Aj[p] = tanh(Aj[p]);
    }
    for (size_t i = 0; i < tau; i++) { /* out = b2 + W2 tanh(A) */
      double *oi = ob + i * D;
      for (size_t p = 0; p < D; p++) oi[p] = net->b2[i];
      for (size_t j = 0; j < H; j++) {
        double w = net->W2[i * H + j];
        const double *Aj = A + j * D;
        for (size_t p = 0; p < D; p++) oi[p] += w * Aj[p];
      }
    }
  }
  return 0;
}

/* Parse "hidden=H,seed=S" (each optional). 0, or -1 with a message in info->errmsg. */
static int parse_args(const csde_plugin_info *info, size_t *H, uint64_t *seed)
{
  const char *s = info->args ? info->args : "";
  while (*s) {
    const char *end = strchr(s, ',');
    size_t len = end ? (size_t)(end - s) : strlen(s);
    char item[128];
    if (len >= sizeof item) {
      snprintf(info->errmsg, info->errlen, "plugin_mlp: argument too long: '%.40s...'", s);
      return -1;
    }
    memcpy(item, s, len);
    item[len] = '\0';
    char *eq = strchr(item, '=');
    if (len > 0) {
      if (!eq) {
        snprintf(info->errmsg, info->errlen,
                 "plugin_mlp: argument '%s' is not key=value (expected hidden=N, seed=N)", item);
        return -1;
      }
      *eq = '\0';
      const char *val = eq + 1;
      char *rest = NULL;
      errno = 0;
      unsigned long long v = strtoull(val, &rest, 10);
      int bad = !*val || *rest || errno || val[0] == '-' || val[0] == '+';
      if (!strcmp(item, "hidden")) {
        if (bad || v < 1 || v > MLP_HIDDEN_MAX) {
          snprintf(info->errmsg, info->errlen,
                   "plugin_mlp: hidden='%s' must be an integer in 1..%d", val, MLP_HIDDEN_MAX);
          return -1;
        }
        *H = (size_t)v;
      } else if (!strcmp(item, "seed")) {
        if (bad) {
          snprintf(info->errmsg, info->errlen,
                   "plugin_mlp: seed='%s' must be an unsigned 64-bit integer", val);
          return -1;
        }
        *seed = (uint64_t)v;
      } else {
        snprintf(info->errmsg, info->errlen,
                 "plugin_mlp: unknown argument '%s' (expected hidden=N, seed=N)", item);
        return -1;
      }
    }
    s += len + (end ? 1 : 0);
  }
  return 0;
}

int csde_plugin_init(const csde_plugin_info *info, csde_plugin *out)
{
  if (info->abi != CSDE_PLUGIN_ABI) {
    snprintf(info->errmsg, info->errlen, "plugin_mlp: built for plugin ABI %d, loaded by %d",
             CSDE_PLUGIN_ABI, info->abi);
    return 1;
  }
  size_t H = 16;
  uint64_t seed = 1;
  if (parse_args(info, &H, &seed)) return 1;
  size_t tau = info->tau, D = info->D;
  if (tau == 0 || D == 0 || D > SIZE_MAX / H / sizeof(double)) {
    snprintf(info->errmsg, info->errlen, "plugin_mlp: bad sizes tau = %zu, D = %zu", tau, D);
    return 1;
  }
  mlp *net = calloc(1, sizeof *net);
  size_t nw = 2 * H * tau + 2 * H + tau;
  if (net) {
    net->W1 = malloc(nw * sizeof(double));
    net->A = malloc(H * D * sizeof(double));
  }
  if (!net || !net->W1 || !net->A) {
    mlp_free(net);
    snprintf(info->errmsg, info->errlen, "plugin_mlp: out of memory (hidden = %zu, D = %zu)", H,
             D);
    return 1;
  }
  net->tau = tau;
  net->D = D;
  net->H = H;
  net->b1 = net->W1 + H * tau;
  net->c = net->b1 + H;
  net->W2 = net->c + H;
  net->b2 = net->W2 + tau * H;
  uint64_t state = seed;
  draw(&state, net->W1, H * tau, 1.0 / sqrt((double)tau));
  draw(&state, net->b1, H, 0.1);
  draw(&state, net->c, H, 1.0);
  draw(&state, net->W2, tau * H, 1.0 / sqrt((double)H));
  draw(&state, net->b2, tau, 0.1);
  out->name = "mlp";
  out->fn = mlp_fn;
  out->output = CSDE_OUT_NOISE;
  out->user = net;
  out->free = mlp_free;
  return 0;
}
