/* `corrsde likelihood`: the PF-ODE log-likelihood (or, with --elbo, the discrete bound of
 * eq. 3) of every sample of a dataset under a model, per sample and in bits per dimension
 * (corrsde/likelihood.h), printed as a table and written to an HDF5 file.
 *
 * Order of work, so that bad input writes nothing:
 *   1. parse every flag (CLI_EUSAGE on a malformed one, naming it);
 *   2. check the output (an existing file needs --force);
 *   3. read the data's shape and check it against --frames/--frame-shape and C's tau,
 *      build C, the schedule and the model, read the data (finite numbers, or integers
 *      with --dequant);
 *   4. compute: the samples in calls of --batch (corrsde-mpi: this rank's contiguous
 *      block [n r / R, n (r + 1) / R), each call keyed by its global first sample, so the
 *      bits are those of one rank and of any --batch and --threads);
 *   5. corrsde-mpi: the ranks agree on success (one fixed-size collective) and every
 *      rank's block is broadcast in rank order (sizes from n and R alone: no collective
 *      depends on a rank's NFE or steps);
 *   6. rank 0 writes the file whole (csde_results_write: a temporary renamed into place)
 *      and prints the table.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "cli/options.h"
#include "cli/spec_model.h"
#include "corrsde/converge.h"
#include "corrsde/cov.h"
#include "corrsde/io.h"
#include "corrsde/likelihood.h"
#include "corrsde/model.h"
#include "corrsde/problem.h"
#include "corrsde/rng.h"
#include "corrsde/schedule.h"
#include "corrsde/solve.h"

#define CMD "likelihood"
#define DEFAULT_BATCH 16
/* the uniform dequantization noise u of sample j, value i: csde_rng_uniform of key
 * (--seed, this stream) at index j tau D + i (csde_dequantize) */


enum {
  OPT_DATA = 256, OPT_DIVERGENCE, OPT_JVP, OPT_GRID, OPT_RTOL, OPT_ATOL, OPT_T_START,
  OPT_T_END, OPT_CONF, OPT_DEQUANT, OPT_ELBO, OPT_MAX_NFE
};

static const cli_option ll_own[] = {
  {"data", OPT_DATA, "FILE.h5 or FILE.h5:/dataset holding [n, tau, *SHAPE] or [n, tau]"},
  {"batch", 'b', "a positive integer"},
  {"divergence", OPT_DIVERGENCE,
   "auto, exact, directional or hutchinson[:probes=K,probe=rademacher|gaussian]"},
  {"jvp", OPT_JVP, "auto, model or fd[:step=H]"},
  {"solver", 's', "an ODE solver name (corrsde likelihood --help lists them)"},
  {"steps", 'n', "a positive integer"},
  {"grid", OPT_GRID, "uniform, quadratic, karras[:rho=R], logsnr or list:t0,t1,..."},
  {"rtol", OPT_RTOL, "a number >= 0"},
  {"atol", OPT_ATOL, "a number >= 0"},
  {"t-start", OPT_T_START, "a time in (0, 1]"},
  {"t-end", OPT_T_END, "a time in (0, 1]"},
  {"conf", OPT_CONF, "a number in (0, 1)"},
  {"dequant", OPT_DEQUANT, "none or uniform[:bits=B,scale=S,shift=H]"},
  {"elbo", OPT_ELBO, NULL}, /* --elbo[:draws=R,tdraws=M]: the text after ':' is taken first */
  {"max-nfe", OPT_MAX_NFE, "a positive integer"},
  {0},
};

typedef struct {
  cli_common c;
  const char *data, *div_s, *jvp_s, *dequant_s, *elbo_s;
  size_t batch, max_nfe;
  int elbo;
  int div_set, jvp_set, solver_set, steps_set, grid_set, tol_set, conf_set;
  csde_ll_params par;
  csde_elbo_params ep;
  csde_dequant q;
  double t_start, t_end;
  int t_start_set, t_end_set;
} ll_args;

/* ---- help ---- */

static void help(void)
{
  cli_common d;
  cli_common_defaults(&d, 0, "");
  d.output_help = "the results file (required): per-sample datasets and /parameters";
  d.force_help = "replace an existing regular OUT.h5 (it is written under a temporary name "
                 "and renamed over OUT.h5 once whole: a run that fails leaves the old file)";
  d.progress_help = "print a line on stderr after each call of --batch samples";
  const csde_ll_params p = csde_ll_default_params();
  printf("Usage: corrsde likelihood --data FILE.h5[:/dataset] -o OUT.h5 [options]\n"
         "\n"
         "The log-likelihood of every sample x of a dataset under a model, by the\n"
         "probability-flow ODE from t-start to t-end (T) with the log-density carried along:\n"
         "  log p(x) = log N(x_T / p; 0, C (x) I) - tau D log p + int div f dt,\n"
         "  div f = tau D f(t) - 1/2 g(t)^2 tr(C grad^2 log p_t)  (VP: -1/2 beta (tau D + tr)),\n"
         "p the path's prior scale (VP and rf 1, edm smax, ve sigma(1)),\n"
         "in nats and bits per dimension, with a standard error and an interval where the\n"
         "divergence is estimated; or, with --elbo, the discrete bound of eq. 3.\n"
         "\n"
         "Data and problem:\n"
         "      --data FILE[:/path]  the samples: a dataset [n, tau, *SHAPE] (SHAPE: D, HxW\n"
         "                         or CxHxW) or [n, tau] (default dataset /x; a trajectory\n"
         "                         file of corrsde sample gives its last saved state of\n"
         "                         /trajectory/x); tau and the frame shape are taken from it\n");
  cli_common_help(&d, "model,cov,cov-method");
  printf("  -t, --frames TAU       check: the data's tau must be TAU\n"
         "      --frame-shape S    check: the data's frame shape must be S\n");
  cli_common_help(&d, "schedule");
  printf("      --t-start EPS      the data's time eps (default %g; edm smin)\n"
         "      --t-end T          the prior's time (default 1; cosine and rf 0.999; edm\n"
         "                         smax); both within the path's span\n",
         csde_problem_default().eps);
  printf("\nDivergence (tr(C grad^2 log p_t) at every drift evaluation):\n");
  printf("      --divergence R     one of:\n");
  for (int k = 0; csde_div_kind_name((csde_div_kind)k); k++) {
    static const char *const what[] = {
        "exact for gaussian and gmm, directional for tau D <= " CLI_STR(CSDE_LL_DIRECTIONAL_MAX)
        ", else hutchinson (default)",
        "the built-in models' closed form (gaussian, gmm)",
        "tau D Jacobian-vector products along the unit vectors (small tau D)",
        "[:probes=K,probe=rademacher|gaussian]: K probes (default 8, rademacher) fixed along "
        "the path, keyed by --seed: a standard error and a Student-t interval (K >= 2)"};
    cli_help_entry(25, 38, csde_div_kind_name((csde_div_kind)k), k < 4 ? what[k] : "");
  }
  printf("      --jvp J            how J v = d(C s)/dx v is had: auto (the model's own when\n"
         "                         it has one, else fd; default), model (plugins of ABI 5\n"
         "                         with a jvp), fd[:step=H] (central difference, relative\n"
         "                         step H, default %.3g: truncation and rounding errors\n"
         "                         both about 1e-11 |s|)\n", CSDE_LL_FD_STEP);
  printf("      --conf P           the intervals' confidence (default %g)\n", p.conf);
  cli_common_help(&d, "seed");
  printf("\nSolver (the PF-ODE, eps -> T):\n"
         "  -s, --solver S         an integrator that steps on the drift itself (default %s;\n"
         "                         the denoiser-view samplers cannot carry the log-density):\n",
         p.solver);
  for (const csde_solver_type *const *t = csde_solver_types(); *t; t++)
    if (csde_solver_type_fits(*t, CSDE_PROC_PFODE_ENCODE) && csde_solver_type_carries(*t))
      printf("      %-15s %s\n", csde_solver_type_name(*t), csde_solver_type_summary(*t));
  printf("      --rtol R, --atol A adaptive steps (default %g and %g; a missing one takes\n"
         "                         the other's value)\n"
         "  -n, --steps N          fixed steps instead (rtol = atol = 0)\n"
         "      --grid G           the fixed steps' grid (default %s)\n"
         "      --max-nfe N        fail past N model evaluations (default %zu)\n",
         p.rtol, p.atol, p.grid, p.max_nfe);
  printf("  -b, --batch B          samples per call (default %d; adaptive steps solve\n"
         "                         each sample alone, with its own steps, fixed steps the\n"
         "                         B at once); the result does not depend on B\n",
         DEFAULT_BATCH);
  cli_common_help(&d, "threads");
  printf("\nBits per dimension:\n"
         "      --dequant Q        none (default: continuous data, bpd = nll / (tau D ln 2))\n"
         "                         or uniform[:bits=B,scale=S,shift=H]: the data hold integers\n"
         "                         0 .. 2^B - 1 (default B 8), dequantized as y = S (k + u) +\n"
         "                         H, u ~ U(0, 1) keyed by --seed (defaults S 2/2^B, H -1:\n"
         "                         [-1, 1)); bpd = nll / (tau D ln 2) - log2 S\n");
  printf("\nThe discrete bound:\n"
         "      --elbo[:draws=R,tdraws=M]  eq. 3's bound L_T + sum L_{t-1} + L_0 instead of\n"
         "                         the ODE, for a discrete schedule (e.g. --schedule\n"
         "                         ddpm-linear): R noise draws per term (default 1), the sum\n"
         "                         exact over t (M = 0, default) or over M sampled timesteps\n");
  printf("\nOutput:\n");
  cli_common_help(&d, "output,force,progress,quiet,help");
  printf("\nFile layout (per-sample datasets [n]):\n"
         "  /logp /prior /delta /se /lo /hi /bpd   log p (nats), log N(x_T; 0, C), the\n"
         "                    divergence integral, its standard error, the interval, bits/dim\n"
         "  /xT               [n, tau, *SHAPE] the encoded states\n"
         "  /nll /LT /Lsum /L0 /se /lo /hi /bpd   with --elbo\n"
         "  /parameters       every setting (divergence and jvp as asked and as taken, the\n"
         "                    dequantization, the solver), the command line, the version\n"
         "  /covariance       the C used\n"
         "\nExamples:\n"
         "  corrsde likelihood --cov ar1:rho=0.9 --data x.h5:/x -o ll.h5\n"
         "  corrsde likelihood --model plugin:./net.so --divergence hutchinson:probes=16 \\\n"
         "                     --dequant uniform:bits=8 --data video.h5 -o ll.h5\n"
         "  corrsde likelihood --schedule ddpm-linear --elbo:draws=4 --data x.h5 -o elbo.h5\n"
         "  mpirun -np 4 corrsde-mpi likelihood ... (samples split over the ranks, the same\n"
         "      bits as one process)\n"
         "\nExit status: 0 on success; 1 when an input is rejected or the solve fails\n"
         "(nothing is written); 2 for a malformed command line.\n");
}

/* ---- parsing ---- */

/* "draws=R,tdraws=M" (either, both or neither) into a->ep. */
static int parse_elbo(ll_args *a, const char *spec)
{
  char buf[256];
  if (strlen(spec) >= sizeof buf) {
    cli_error(CMD, "--elbo: expected draws=R,tdraws=M, got a %zu-character spec", strlen(spec));
    return CLI_EUSAGE;
  }
  strcpy(buf, spec);
  for (char *save = NULL, *kv = strtok_r(buf, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
    char *eq = strchr(kv, '=');
    size_t v = 0;
    if (!eq) goto bad;
    *eq = '\0';
    const int draws = !strcmp(kv, "draws");
    if (!draws && strcmp(kv, "tdraws")) goto bad;
    const char *s = eq + 1;
    if (!*s || strspn(s, "0123456789") != strlen(s) || strlen(s) > 12) goto bad;
    v = (size_t)strtoull(s, NULL, 10);
    if (draws && v == 0) goto bad;
    *(draws ? &a->ep.draws : &a->ep.tdraws) = v;
  }
  return CLI_OK;
bad:
  cli_error(CMD, "--elbo: expected --elbo[:draws=R,tdraws=M] (R >= 1, M >= 0), got '%s'", spec);
  return CLI_EUSAGE;
}

static int lib_usage(const char *flag, const char *v, const csde_err *err)
{
  cli_lib_error(CMD, flag, v, err);
  return CLI_EUSAGE;
}

static int parse_args(int argc, char **argv, ll_args *a)
{
  cli_getopt g;
  const char *v;
  int c, rc;
  cli_option opts[CLI_MAXOPT];
  csde_err err;
  csde_err_clear(&err);
  memset(a, 0, sizeof *a);
  cli_common_defaults(&a->c, 0, "");
  a->batch = DEFAULT_BATCH;
  a->par = csde_ll_default_params();
  a->ep = csde_elbo_default_params();
  a->q = csde_dequant_continuous();
  a->div_s = "auto", a->jvp_s = "auto", a->dequant_s = "none";
  a->max_nfe = a->par.max_nfe;
  if (cli_options_join(opts, CLI_MAXOPT, ll_own)) return CLI_EFAIL;
  /* --elbo:SPEC is one word: its spec is taken here and the word handed on as --elbo */
  char **av = malloc((size_t)(argc + 1) * sizeof *av);
  if (!av) return CLI_EFAIL;
  for (int i = 0; i <= argc; i++) av[i] = argv[i];
  static char elbo_word[] = "--elbo";
  for (int i = 1; i < argc && strcmp(argv[i], "--"); i++)
    if (!strncmp(argv[i], "--elbo:", 7)) {
      a->elbo_s = argv[i] + 7;
      av[i] = elbo_word;
    }
  cli_getopt_init(&g, CMD, opts, argc, av);
  rc = CLI_OK;
  while (!rc && (c = cli_getopt_next(&g, &v)) != -1) {
    if ((rc = cli_common_option(CMD, c, v, &a->c)) != CLI_OPT_NOT_MINE) {
      rc = rc == CLI_OPT_HANDLED ? CLI_OK : rc;
      continue;
    }
    rc = CLI_OK;
    switch (c) {
    case OPT_DATA: a->data = v; break;
    case 'b': rc = cli_parse_size(CMD, "--batch", v, &a->batch); break;
    case OPT_DIVERGENCE:
      if (csde_div_parse(v, &a->par, &err)) rc = lib_usage("--divergence", v, &err);
      a->div_s = v, a->div_set = 1;
      break;
    case OPT_JVP:
      if (csde_jvp_parse(v, &a->par, &err)) rc = lib_usage("--jvp", v, &err);
      a->jvp_s = v, a->jvp_set = 1;
      break;
    case 's': {
      csde_solve_params scratch = csde_solve_default_params();
      char name[64];
      if (csde_solver_spec_parse(v, &scratch, name, sizeof name, &err)) {
        cli_error(CMD, "--solver: %s", err.msg);
        rc = CLI_EUSAGE;
      } else if (!csde_solver_type_carries(csde_solver_spec_lookup(v))) {
        cli_error(CMD, "--solver: '%s' steps on the denoiser view, not on the drift, so it "
                  "cannot carry the log-density (see --help for those that can)", name);
        rc = CLI_EUSAGE;
      }
      a->par.solver = v, a->solver_set = 1;
      break;
    }
    case 'n': rc = cli_parse_size(CMD, "--steps", v, &a->par.steps); a->steps_set = 1; break;
    case OPT_GRID: a->par.grid = v, a->grid_set = 1; break;
    case OPT_RTOL:
    case OPT_ATOL: {
      const int r = c == OPT_RTOL;
      double *dst = r ? &a->par.rtol : &a->par.atol;
      rc = cli_parse_nonneg(CMD, r ? "--rtol" : "--atol", v, dst);
      a->tol_set |= r ? 1 : 2;
      break;
    }
    case OPT_T_START:
    case OPT_T_END: {
      const int ts = c == OPT_T_START;
      const char *flag = ts ? "--t-start" : "--t-end";
      double *dst = ts ? &a->t_start : &a->t_end;
      /* the upper end is the schedule's span's, checked by the library */
      if (!(rc = cli_parse_double(CMD, flag, v, dst)) && !(*dst > 0 && *dst < INFINITY)) {
        cli_error(CMD, "%s: expected a time in (0, 1] (a path's span: edm [smin, smax]), "
                  "got '%s'", flag, v);
        rc = CLI_EUSAGE;
      }
      *(ts ? &a->t_start_set : &a->t_end_set) = 1;
      break;
    }
    case OPT_CONF:
      if (!(rc = cli_parse_double(CMD, "--conf", v, &a->par.conf)) &&
          !(a->par.conf > 0 && a->par.conf < 1)) {
        cli_error(CMD, "--conf: expected a number in (0, 1), got '%s'", v);
        rc = CLI_EUSAGE;
      }
      a->conf_set = 1;
      break;
    case OPT_DEQUANT:
      if (csde_dequant_parse(v, &a->q, &err)) rc = lib_usage("--dequant", v, &err);
      a->dequant_s = v;
      break;
    case OPT_ELBO: a->elbo = 1; break;
    case OPT_MAX_NFE: rc = cli_parse_size(CMD, "--max-nfe", v, &a->max_nfe); break;
    default: rc = CLI_EUSAGE; break; /* '?': the message is printed */
    }
  }
  free(av);
  if (rc || a->c.help) return rc;
  if (a->elbo_s && (rc = parse_elbo(a, a->elbo_s))) return rc;
  /* a missing tolerance takes the other's value; fixed steps without tolerances */
  if (a->tol_set == 1) a->par.atol = a->par.rtol;
  if (a->tol_set == 2) a->par.rtol = a->par.atol;
  if (a->steps_set && !a->tol_set) a->par.rtol = a->par.atol = 0;
  if (!a->data) {
    cli_error(CMD, "--data: expected %s (required)", ll_own[0].arg);
    return CLI_EUSAGE;
  }
  if (!a->c.output) {
    cli_error(CMD, "-o: expected an output file name such as ll.h5 (required)");
    return CLI_EUSAGE;
  }
  if (a->elbo) {
    const char *flag = a->div_set ? "--divergence" : a->jvp_set ? "--jvp"
                       : a->solver_set ? "--solver" : a->steps_set ? "--steps"
                       : a->grid_set ? "--grid" : a->tol_set ? "--rtol/--atol"
                       : a->t_start_set ? "--t-start" : a->t_end_set ? "--t-end" : NULL;
    if (flag) {
      cli_error(CMD, "%s: the discrete bound (--elbo) solves no ODE; leave %s out", flag, flag);
      return CLI_EUSAGE;
    }
  }
  a->par.seed = a->c.seed, a->par.threads = (int)a->c.threads;
  a->par.max_nfe = a->max_nfe;
  a->par.dequant = a->q;
  a->ep.seed = a->c.seed, a->ep.threads = (int)a->c.threads;
  a->ep.conf = a->par.conf;
  a->ep.dequant = a->q;
  return CLI_OK;
}

/* ---- the data ---- */

typedef struct {
  char file[4096], dset[1024];
  int last;                     /* /trajectory/x: its last saved state (axis 0 dropped) */
  int rank;                     /* of the samples: 2..5 */
  size_t dims[CSDE_H5_MAXRANK]; /* [n, tau, *SHAPE] */
  size_t n, tau, D;
  int shape_rank;               /* 1..3 (1 of D = 1 for [n, tau]) */
  size_t shape[3];
} ll_data;

static int data_error(const char *spec, const char *msg)
{
  cli_error(CMD, "--data '%s': %s", spec, msg);
  return CLI_EFAIL;
}

static int data_shape(const ll_args *a, ll_data *d)
{
  csde_err err;
  csde_err_clear(&err);
  char msg[1024], got[128];
  const int named = csde_split_h5_path(a->data, d->file, sizeof d->file, d->dset,
                                       sizeof d->dset);
  if (!named) {
    if (strlen(a->data) >= sizeof d->file) return data_error(a->data, "the path is too long");
    strcpy(d->file, a->data);
    strcpy(d->dset, "/x");
  }
  int s = csde_h5_shape(d->file, d->dset, &d->rank, d->dims, &err);
  if (s && !named) { /* a trajectory file (corrsde sample -o): its last saved state */
    csde_err e2;
    if (!csde_h5_shape(d->file, "/trajectory/x", &d->rank, d->dims, &e2)) {
      strcpy(d->dset, "/trajectory/x");
      s = CSDE_SUCCESS;
    }
  }
  if (s) return data_error(a->data, err.msg);
  const char *base = d->dset;
  while (*base == '/') base++;
  if ((d->last = !strcmp(base, "trajectory/x"))) { /* [n_saved, n, tau, *SHAPE] */
    if (d->dims[0] == 0) return data_error(a->data, "/trajectory/x holds no saved state");
    d->rank--;
    memmove(d->dims, d->dims + 1, (size_t)d->rank * sizeof *d->dims);
  }
  csde_shape_str(d->dims, d->rank, got, sizeof got);
  if (d->rank < 2 || d->rank > 5) {
    snprintf(msg, sizeof msg, "dataset %s has shape %s, expected [n, tau, *SHAPE] (SHAPE of "
             "1 to 3 axes) or [n, tau]", d->dset, got);
    return data_error(a->data, msg);
  }
  d->n = d->dims[0], d->tau = d->dims[1];
  d->D = 1;
  d->shape_rank = d->rank == 2 ? 1 : d->rank - 2;
  d->shape[0] = 1;
  for (int i = 2; i < d->rank; i++) d->D *= (d->shape[i - 2] = d->dims[i]);
  if (d->n == 0 || d->tau == 0 || d->D == 0) {
    snprintf(msg, sizeof msg, "dataset %s has shape %s: no samples", d->dset, got);
    return data_error(a->data, msg);
  }
  if (a->c.tau_set && a->c.tau != d->tau) {
    snprintf(msg, sizeof msg, "dataset %s has shape %s, expected [n, %zu, *SHAPE] (--frames "
             "%zu)", d->dset, got, a->c.tau, a->c.tau);
    return data_error(a->data, msg);
  }
  if (a->c.shape_set) {
    int r;
    size_t s[3], D;
    int rc = cli_spec_shape(CMD, "--frame-shape", a->c.shape_s, &r, s, &D);
    if (rc) return rc;
    int same = D == d->D && (r == d->shape_rank || (d->rank == 2 && r == 1));
    for (int i = 0; same && i < r && d->rank > 2; i++) same = s[i] == d->shape[i];
    if (!same) {
      snprintf(msg, sizeof msg, "dataset %s has shape %s, expected [n, tau, %s] (--frame-shape)",
               d->dset, got, a->c.shape_s);
      return data_error(a->data, msg);
    }
  }
  return CLI_OK;
}

/* The values, checked: finite, or (--dequant uniform) integers csde_dequantize takes. */
static int data_read(const ll_args *a, const ll_data *d, double **x)
{
  csde_err err;
  csde_err_clear(&err);
  char msg[1024];
  if (csde_h5_read_doubles(d->file, d->dset, d->last, x, &err))
    return data_error(a->data, err.msg);
  const size_t per = d->tau * d->D;
  for (size_t i = 0; i < d->n * per; i++)
    if (!isfinite((*x)[i])) {
      snprintf(msg, sizeof msg, "dataset %s holds %g in sample %zu at index %zu (frame %zu, "
               "pixel %zu): expected finite numbers", d->dset, (*x)[i], i / per, i % per,
               (i % per) / d->D, i % d->D);
      return data_error(a->data, msg);
    }
  return CLI_OK;
}

/* ---- the run ---- */

/* Per sample: the numbers the file and the table show, in one row of NF. */
enum { F_LOGP, F_PRIOR, F_DELTA, F_SE, F_LO, F_HI, F_BPD, F_NFE, NF_LL };
enum { E_NLL, E_LT, E_LSUM, E_L0, E_SE, E_LO, E_HI, E_BPD, E_NFE, NF_ELBO };
/* Per rank (and summed): nfe, jvp calls, steps, rejected, the route, the jvp taken. */
enum { S_NFE, S_JVP, S_STEPS, S_REJ, S_DIV, S_JVPK, NS };

static const char *param_flag(const char *param)
{
  static const struct {
    const char *param, *flag;
  } map[] = {{CSDE_PARAM_SOLVER, "--solver"}, {CSDE_PARAM_STEPS, "--steps"},
             {CSDE_PARAM_GRID, "--grid"}, {CSDE_PARAM_TOLERANCES, "--rtol/--atol"},
             {CSDE_PARAM_MODEL, "--model"}, {CSDE_PARAM_SPAN, "--t-start/--t-end"},
             {CSDE_PARAM_SIZE, "--batch"}, {CSDE_PARAM_SCHEDULE, "--schedule"},
             {CSDE_PARAM_DIVERGENCE, "--divergence/--jvp"}, {CSDE_PARAM_DEQUANT, "--dequant"},
             {CSDE_PARAM_DATA, "--data"}};
  for (size_t i = 0; param && i < sizeof map / sizeof map[0]; i++)
    if (!strcmp(param, map[i].param)) return map[i].flag;
  return NULL;
}

/* This process's samples [first, first + count): rows of res (NF each), the encoded
 * states xT, and the stats. 0 or an error's rc (message printed). */
static int compute(const ll_args *a, const ll_data *d, csde_problem *P, const double *x,
                   size_t first, size_t count, double *res, double *xT, double *stats)
{
  const size_t per = d->tau * d->D, nf = a->elbo ? NF_ELBO : NF_LL;
  /* B samples per call (csde_likelihood solves each alone on adaptive steps) */
  const size_t B = a->batch < count ? a->batch : count;
  csde_err err;
  csde_err_clear(&err);
  double *y = malloc((B ? B : 1) * per * sizeof *y);
  csde_ll_sample *lo = malloc((B ? B : 1) * sizeof *lo);
  csde_elbo_sample *eo = malloc((B ? B : 1) * sizeof *eo);
  int rc = CLI_OK;
  if (!y || !lo || !eo) {
    cli_error(CMD, "--batch: out of memory for %zu samples of %zu values", B, per);
    rc = CLI_EFAIL;
  }
  const csde_rng_key key = {a->c.seed, CSDE_STREAM_DEQUANT};
  for (size_t at = 0; !rc && at < count; at += B) {
    const size_t b = count - at < B ? count - at : B, g = first + at; /* global index */
    int s = csde_dequantize(&a->q, key, g, b, per, x + at * per, y, &err);
    const char *what = "--data";
    if (!s) {
      P->batch = b;
      if (a->elbo) {
        csde_elbo_params ep = a->ep;
        ep.first_sample = g;
        size_t nfe = 0;
        what = "--elbo";
        if (!(s = csde_elbo(P, &ep, y, eo, &nfe, &err))) {
          for (size_t j = 0; j < b; j++) {
            double *r = res + (at + j) * nf;
            const csde_elbo_sample *o = &eo[j];
            r[E_NLL] = o->nll, r[E_LT] = o->LT, r[E_LSUM] = o->Lsum, r[E_L0] = o->L0;
            r[E_SE] = o->se, r[E_LO] = o->lo, r[E_HI] = o->hi, r[E_BPD] = o->bpd;
            r[E_NFE] = (double)nfe; /* the evaluations each sample saw (batched calls) */
          }
          stats[S_NFE] += (double)nfe;
        }
      } else {
        csde_ll_params par = a->par;
        par.first_sample = g;
        csde_ll_stats st;
        what = "--divergence/--solver";
        if (!(s = csde_likelihood(P, &par, y, xT + at * per, lo, &st, &err))) {
          for (size_t j = 0; j < b; j++) {
            double *r = res + (at + j) * nf;
            const csde_ll_sample *o = &lo[j];
            r[F_LOGP] = o->logp, r[F_PRIOR] = o->prior, r[F_DELTA] = o->delta;
            r[F_SE] = o->se, r[F_LO] = o->lo, r[F_HI] = o->hi, r[F_BPD] = o->bpd;
            r[F_NFE] = (double)o->nfe; /* the evaluations this sample saw */
          }
          stats[S_NFE] += (double)st.nfe, stats[S_JVP] += (double)st.jvp;
          stats[S_STEPS] += (double)st.steps, stats[S_REJ] += (double)st.rejected;
          stats[S_DIV] = (double)st.div, stats[S_JVPK] = (double)st.jvp_kind;
        }
      }
    }
    if (s) {
      const char *flag = param_flag(err.param);
      cli_error(CMD, "%s: samples %zu..%zu: %s", flag ? flag : what, g, g + b - 1,
                err.msg[0] ? err.msg : csde_strerror(s));
      /* the span comes from --t-start/--t-end alone: a malformed command line, as sample's */
      rc = err.param && !strcmp(err.param, CSDE_PARAM_SPAN) ? CLI_EUSAGE : CLI_EFAIL;
    } else if (a->c.progress && cli_rank == 0) {
      fprintf(stderr, "corrsde likelihood: samples %zu..%zu of %zu done\n", g, g + b - 1,
              d->n);
    }
  }
  free(y);
  free(lo);
  free(eo);
  return rc;
}

/* corrsde-mpi: rank r's block of the n samples. */
static void block(size_t n, int r, int R, size_t *first, size_t *count)
{
  *first = n * (size_t)r / (size_t)R;
  *count = n * (size_t)(r + 1) / (size_t)R - *first;
}

/* corrsde-mpi: every rank's rows and stats to every rank, by broadcasts in rank order
 * whose sizes follow from n and the ranks alone. */
static int gather(const csde_conv_dist *dist, size_t n, size_t nf, size_t per, double *res,
                  double *xT, double *stats_all)
{
  for (int r = 0; r < dist->size; r++) {
    size_t f, c;
    block(n, r, dist->size, &f, &c);
    if ((c && dist->bcast(dist->user, res + f * nf, c * nf * sizeof *res, r)) ||
        (c && xT && dist->bcast(dist->user, xT + f * per, c * per * sizeof *xT, r)) ||
        dist->bcast(dist->user, stats_all + (size_t)r * NS, NS * sizeof *stats_all, r))
      return 1;
  }
  return 0;
}

/* The string attribute of a setting, with its canonical form where there is one. */
static void solver_text(const ll_args *a, char *buf, size_t len)
{
  if (a->par.rtol > 0 || a->par.atol > 0)
    snprintf(buf, len, "%s (adaptive, rtol %.17g, atol %.17g)", a->par.solver, a->par.rtol,
             a->par.atol);
  else
    snprintf(buf, len, "%s (%zu fixed steps, grid %s)", a->par.solver, a->par.steps,
             a->par.grid);
}

static void div_text(const ll_args *a, csde_div_kind k, char *buf, size_t len)
{
  if (k == CSDE_DIV_HUTCHINSON)
    snprintf(buf, len, "hutchinson:probes=%zu,probe=%s", a->par.probes,
             a->par.probe == CSDE_PROBE_GAUSSIAN ? "gaussian" : "rademacher");
  else
    snprintf(buf, len, "%s", csde_div_kind_name(k));
}

static void jvp_text(const ll_args *a, csde_jvp_kind k, char *buf, size_t len)
{
  if (k == CSDE_JVP_FD)
    snprintf(buf, len, "fd:step=%.17g", a->par.fd_step > 0 ? a->par.fd_step : CSDE_LL_FD_STEP);
  else
    snprintf(buf, len, "%s", k == CSDE_JVP_MODEL ? "model" : "none");
}

static int write_file(const ll_args *a, const ll_data *d, const csde_problem *P,
                      const cli_model *m, const double *res, const double *xT,
                      const double *tot, int argc, char **argv)
{
  const size_t nf = a->elbo ? NF_ELBO : NF_LL, n = d->n;
  static const char *const ll_names[] = {"/logp", "/prior", "/delta", "/se", "/lo", "/hi",
                                         "/bpd", "/nfe"};
  static const char *const e_names[] = {"/nll", "/LT", "/Lsum", "/L0", "/se", "/lo", "/hi",
                                        "/bpd", "/nfe"};
  double *cols = malloc(nf * n * sizeof *cols);
  char *cmdline = cli_command_line(argc, argv);
  if (!cols || !cmdline) {
    free(cols);
    free(cmdline);
    cli_error(CMD, "-o '%s': out of memory", a->c.output);
    return CLI_EFAIL;
  }
  csde_results_array arr[NF_ELBO + 1];
  size_t narr = 0;
  for (size_t f = 0; f < nf; f++) {
    for (size_t j = 0; j < n; j++) cols[f * n + j] = res[j * nf + f];
    arr[narr++] = (csde_results_array){(a->elbo ? e_names : ll_names)[f], cols + f * n, 1, &n};
  }
  if (xT) arr[narr++] = (csde_results_array){"/xT", xT, d->rank, d->dims};

  char solver[256], divs[128], divt[128], jvps[128], dq[160], data[5200], elbo[96];
  solver_text(a, solver, sizeof solver);
  div_text(a, a->par.div, divs, sizeof divs);
  div_text(a, (csde_div_kind)tot[S_DIV], divt, sizeof divt);
  jvp_text(a, (csde_jvp_kind)tot[S_JVPK], jvps, sizeof jvps);
  csde_dequant_spec(&a->q, dq, sizeof dq);
  snprintf(data, sizeof data, "%s:%s", d->file, d->dset);
  snprintf(elbo, sizeof elbo, "draws=%zu,tdraws=%zu", a->ep.draws, a->ep.tdraws);
  csde_results_attr at[24];
  size_t na = 0;
  at[na++] = (csde_results_attr){"bound", a->elbo ? "elbo" : "pf-ode", 0, 0};
  at[na++] = (csde_results_attr){"data", data, 0, 0};
  at[na++] = (csde_results_attr){"samples", NULL, (double)n, 1};
  at[na++] = (csde_results_attr){"dequant", dq, 0, 0};
  at[na++] = (csde_results_attr){"dequant_stream", "uniforms of (seed, 7 2^60) at index "
                                 "j tau D + i for value i of sample j", 0, 0};
  at[na++] = (csde_results_attr){"confidence", NULL, a->par.conf, 0};
  at[na++] = (csde_results_attr){"batch", NULL, (double)a->batch, 1};
  at[na++] = (csde_results_attr){"ranks", NULL, (double)cli_size, 1};
  at[na++] = (csde_results_attr){"nfe", NULL, tot[S_NFE], 1};
  if (a->elbo) {
    at[na++] = (csde_results_attr){"elbo", elbo, 0, 0};
  } else {
    at[na++] = (csde_results_attr){"solver", solver, 0, 0};
    at[na++] = (csde_results_attr){"max_nfe", NULL, (double)a->max_nfe, 1};
    at[na++] = (csde_results_attr){"divergence", divs, 0, 0};
    at[na++] = (csde_results_attr){"divergence_used", divt, 0, 0};
    at[na++] = (csde_results_attr){"jvp", a->jvp_s, 0, 0};
    at[na++] = (csde_results_attr){"jvp_used", jvps, 0, 0};
    at[na++] = (csde_results_attr){"probe_streams", "probe k of sample j: normals or uniforms "
                                   "(< 1/2: -1) of (seed, 5 2^60 + k) at j tau D .. (j + 1) "
                                   "tau D - 1", 0, 0};
    at[na++] = (csde_results_attr){"jvp_calls", NULL, tot[S_JVP], 1};
    at[na++] = (csde_results_attr){"steps", NULL, tot[S_STEPS], 1};
    at[na++] = (csde_results_attr){"rejected", NULL, tot[S_REJ], 1};
  }
  double t0, t1;
  csde_problem_span(P, &t0, &t1);
  csde_results_file rf = {P, t0, t1, CMD, a->c.cov_method, m->spec, data, cmdline,
                          d->shape_rank, d->shape, a->c.seed, (int64_t)a->c.threads,
                          at, na, arr, narr};
  csde_err err;
  csde_err_clear(&err);
  int s = csde_results_write(a->c.output, a->c.force, &rf, &err);
  free(cols);
  free(cmdline);
  if (s) {
    cli_error(CMD, "-o '%s': %s", a->c.output, err.msg);
    return CLI_EFAIL;
  }
  return CLI_OK;
}

static void print_table(const ll_args *a, const ll_data *d, const double *res,
                        const double *tot, double wall)
{
  const size_t nf = a->elbo ? NF_ELBO : NF_LL, n = d->n;
  const int pct = (int)lround(100 * a->par.conf);
  if (a->elbo)
    printf("%7s %15s %10s %10s %24s %12s %12s %12s %10s\n", "sample", "nll nats", "bits/dim",
           "se", "interval", "L_T", "L_sum", "L_0", "NFE");
  else
    printf("%7s %15s %10s %10s %24s %10s\n", "sample", "log p nats", "bits/dim", "se",
           "interval", "NFE");
  double mb = 0, mn = 0, sb = 0;
  for (size_t j = 0; j < n; j++) {
    const double *r = res + j * nf;
    const double v = a->elbo ? r[E_NLL] : r[F_LOGP], b = a->elbo ? r[E_BPD] : r[F_BPD];
    char iv[64];
    snprintf(iv, sizeof iv, "[%.6g, %.6g]", a->elbo ? r[E_LO] : r[F_LO], a->elbo ? r[E_HI] : r[F_HI]);
    if (a->elbo)
      printf("%7zu %15.8g %10.6g %10.3g %24s %12.6g %12.6g %12.6g %10.0f\n", j, v, b, r[E_SE],
             iv, r[E_LT], r[E_LSUM], r[E_L0], r[E_NFE]);
    else
      printf("%7zu %15.8g %10.6g %10.3g %24s %10.0f\n", j, v, b, r[F_SE], iv, r[F_NFE]);
    mn += v, mb += b;
  }
  mn /= (double)n, mb /= (double)n;
  for (size_t j = 0; j < n; j++) {
    const double b = res[j * nf + (a->elbo ? E_BPD : F_BPD)] - mb;
    sb += b * b;
  }
  const double se = n > 1 ? sqrt(sb / (double)(n - 1) / (double)n) : NAN;
  char route[256], jv[128];
  if (a->elbo) {
    snprintf(route, sizeof route, "the discrete bound (draws %zu, %s)", a->ep.draws,
             a->ep.tdraws ? "sampled timesteps" : "exact sum over t");
  } else {
    div_text(a, (csde_div_kind)tot[S_DIV], route, sizeof route);
    jvp_text(a, (csde_jvp_kind)tot[S_JVPK], jv, sizeof jv);
    size_t l = strlen(route);
    snprintf(route + l, sizeof route - l, " divergence, jvp %s, solver %s", jv, a->par.solver);
  }
  printf("%zu sample%s: mean %s %.10g nats, mean %.8g bits/dim (se %.3g over samples), "
         "nfe %.0f, %s (%d%% intervals), %.3f s\n", n, n == 1 ? "" : "s",
         a->elbo ? "nll" : "log p", mn, mb, se, tot[S_NFE], route, pct, wall);
}

/* Every rank's rc agreed (corrsde-mpi: rank r's held message told by rank 0). */
static int agree_rc(int rc)
{
  if (!cli_sync) return rc;
  int first = cli_sync(rc);
  if (first < 0) return CLI_OK;
  const csde_conv_dist *dist = cli_conv_dist;
  char msg[4096];
  memset(msg, 0, sizeof msg);
  if (cli_rank == first) snprintf(msg, sizeof msg, "%s", cli_held_messages());
  if (dist && first > 0 && !dist->bcast(dist->user, msg, sizeof msg, first) && cli_rank == 0)
    fputs(msg, stderr);
  return rc ? rc : CLI_EFAIL;
}

int cli_cmd_likelihood(int argc, char **argv)
{
  ll_args a;
  int rc = parse_args(argc, argv, &a);
  if (rc || a.c.help) {
    if (!rc && cli_rank == 0) help();
    return rc;
  }
  if ((rc = cli_check_output(CMD, "-o", a.c.output, a.c.force))) return rc;
  ll_data d;
  memset(&d, 0, sizeof d);
  csde_cov *C = NULL;
  csde_schedule *sched = NULL;
  cli_model m;
  memset(&m, 0, sizeof m);
  double *x = NULL, *res = NULL, *xT = NULL, *stats = NULL;
  csde_err err;
  csde_err_clear(&err);
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);

  if ((rc = data_shape(&a, &d))) goto done;
  if ((rc = cli_spec_cov(CMD, a.c.cov, a.c.cov_method, d.tau, &C))) goto done;
  if (csde_cov_tau(C) != d.tau) {
    char got[128];
    csde_shape_str(d.dims, d.rank, got, sizeof got);
    cli_error(CMD, "--data '%s': dataset %s has shape %s, but --cov '%s' has tau %zu", a.data,
              d.dset, got, a.c.cov, csde_cov_tau(C));
    rc = CLI_EFAIL;
    goto done;
  }
  if ((rc = cli_spec_schedule(CMD, a.c.schedule, &sched))) goto done;
  if (a.elbo && !csde_schedule_is_vp(sched)) {
    cli_error(CMD, "--elbo: the discrete bound is VP-only: schedule '%s' is the %s path (use "
                   "a discrete VP schedule, e.g. --schedule ddpm-linear, or leave out --elbo)",
              csde_schedule_spec(sched), csde_schedule_path_name(sched));
    rc = CLI_EUSAGE;
    goto done;
  }
  if (a.elbo && csde_schedule_nsteps(sched) == 0) {
    cli_error(CMD, "--elbo: the discrete bound needs a discrete schedule (e.g. --schedule "
                   "ddpm-linear), got --schedule '%s'", csde_schedule_spec(sched));
    rc = CLI_EUSAGE;
    goto done;
  }
  const size_t Bmax = a.batch < d.n ? a.batch : d.n;
  if ((rc = cli_spec_model(CMD, a.c.model, C, sched, d.tau, d.shape_rank, d.shape, Bmax,
                           "pf-ode-encode", &m)) ||
      (rc = cli_model_prepare_score(CMD, &m)))
    goto done;
  if (m.kind == CLI_MODEL_GAUSSIAN && a.c.threads > 1 &&
      csde_model_gaussian_set_threads(m.model, (int)a.c.threads, &err)) {
    cli_error(CMD, "--threads: %s", err.msg);
    rc = CLI_EFAIL;
    goto done;
  }
  if ((rc = data_read(&a, &d, &x))) goto done;

  csde_problem P = csde_problem_default();
  P.process = CSDE_PROC_PFODE_ENCODE;
  P.C = C, P.sched = sched, P.model = m.model;
  P.tau = d.tau, P.D = d.D;
  P.T = a.t_end_set ? a.t_end : csde_problem_t_max(sched);
  if (a.t_start_set) P.eps = a.t_start;
  else if (P.eps < csde_problem_t_min(sched)) P.eps = csde_problem_t_min(sched); /* edm */
  if (!(P.eps < P.T)) {
    cli_error(CMD, "--t-start/--t-end: expected t-start < t-end, got %g and %g", P.eps, P.T);
    rc = CLI_EUSAGE;
    goto done;
  }
  const size_t nf = a.elbo ? NF_ELBO : NF_LL, per = d.tau * d.D;
  res = calloc(d.n * nf, sizeof *res);
  xT = a.elbo ? NULL : calloc(d.n * per, sizeof *xT);
  stats = calloc((size_t)cli_size * NS + NS, sizeof *stats);
  if (!res || (!a.elbo && !xT) || !stats) {
    cli_error(CMD, "--data: out of memory for %zu samples", d.n);
    rc = CLI_EFAIL;
    goto done;
  }
  if (cli_size > 1) cli_warn_bound_threads(CMD, a.c.threads);
  if (cli_sync && (cli_sync(CLI_OK) >= 0 ||
                   cli_agree(CMD, &(cli_settings){.cov = a.c.cov, .model = a.c.model,
                                                   .init = a.data, .output = a.c.output}))) {
    rc = CLI_EFAIL;
    goto done;
  }
  size_t first = 0, count = d.n;
  if (cli_size > 1) block(d.n, cli_rank, cli_size, &first, &count);
  double *mine = stats + (size_t)cli_rank * NS;
  rc = compute(&a, &d, &P, x + first * per, first, count, res + first * nf,
               xT ? xT + first * per : NULL, mine);
  if (!count) mine[S_DIV] = -1; /* no samples: the route is another rank's */
  if ((rc = agree_rc(rc))) goto done;
  if (cli_size > 1 && gather(cli_conv_dist, d.n, nf, per, res, xT, stats)) {
    cli_error(CMD, "the gather of the ranks' results failed");
    rc = CLI_EFAIL;
    goto done;
  }
  double *tot = stats + (size_t)cli_size * NS;
  for (int r = 0; r < cli_size; r++) {
    const double *s = stats + (size_t)r * NS;
    for (int k = S_NFE; k <= S_REJ; k++) tot[k] += s[k];
    if (s[S_DIV] >= 0) tot[S_DIV] = s[S_DIV], tot[S_JVPK] = s[S_JVPK];
  }
  if (cli_rank == 0)
    rc = write_file(&a, &d, &P, &m, res, xT, tot, argc, argv);
  if (cli_sync) rc = agree_rc(rc); /* every rank exits as rank 0 wrote */
  clock_gettime(CLOCK_MONOTONIC, &t1);
  if (!rc && cli_rank == 0 && !a.c.quiet) {
    print_table(&a, &d, res, tot,
                (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
    const csde_cov_report rep = csde_cov_approx_report(C);
    if (rep.approx) /* a circulant stands for C in the noise and in the prior */
      printf("note: --cov-method %s replaces C by a circulant (KL to the Toeplitz %.3g per "
             "frame, max entry difference %.3g): the prior N(0, C) and the model's noise are "
             "the circulant's, so log p is that model's\n", csde_cov_method_name(
             csde_cov_method_of(C)), rep.kl_per_frame, rep.max_entry_diff);
    printf("wrote %s\n", a.c.output);
  }
done:
  free(x);
  free(res);
  free(xT);
  free(stats);
  cli_model_free(&m);
  csde_schedule_free(sched);
  csde_cov_free(C);
  return rc;
}
