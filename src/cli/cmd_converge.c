/* `corrsde converge`: solver convergence experiments with confidence intervals
 * (issue 5; the engine is experiment/converge.h, the outputs experiment/report.h).
 *
 * Order of work, so that bad input writes nothing:
 *   1. parse every flag and check the combinations (CLI_EUSAGE);
 *   2. check the outputs (-o, --csv, --plot: an existing file needs --force, the
 *      directory must be writable) and, with --plot, that python3 can import
 *      matplotlib and h5py;
 *   3. build the covariance, schedule and model; any failure prints one line naming the
 *      flag;
 *   4. run (progress on stderr), then write the HDF5 file, the CSV and the plot, and only
 *      then print the table.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/options.h"
#include "cli/spec_model.h"
#include "corrsde/corrsde.h"
#include "corrsde/cov.h"
#include "corrsde/io.h"
#include "corrsde/model.h"
#include "corrsde/rng.h"
#include "corrsde/schedule.h"
#include "corrsde/solve.h"

extern char **environ;

#define CMD "converge"
#define DEFAULT_TAU 8
#define DEFAULT_SHAPE "4x4"
#define DEFAULT_PROCESS "pf-ode"
#define DEFAULT_PYTHON "/usr/bin/python3"
#define MAX_PER_PATH_DOUBLES ((size_t)1 << 28) /* 2 GiB of per-path values */

enum {
  OPT_SOLVERS = 256, OPT_ERROR, OPT_LEVELS, OPT_PATHS, OPT_REFERENCE, OPT_CSV, OPT_PLOT,
  OPT_BOOT, OPT_GRID, OPT_X_AXIS, OPT_T_END
};

/* converge's own options, after the shared ones (cli/options.h) */
static const cli_option converge_own[] = {
  {"process", 'p', cli_arg_process},
  {"t-end", OPT_T_END, "a time in [0, 1]"},
  {"solvers", OPT_SOLVERS, "a comma-separated list of solver names (corrsde sample --help)"},
  {"error", OPT_ERROR, cli_arg_conv_kind},
  {"levels", OPT_LEVELS, "K0:K1 with integers 0 <= K0 < K1 <= 24"},
  {"paths", OPT_PATHS, "an integer >= 2"},
  {"reference", OPT_REFERENCE, "exact, fine, fine:LEVEL or fine:SOLVER:rtol=R"},
  {"bootstrap", OPT_BOOT, "an integer >= 100"},
  {"grid", OPT_GRID, "uniform, quadratic, karras[:rho=R] or logsnr"},
  {"x-axis", OPT_X_AXIS, "h or nfe"},
  {"csv", OPT_CSV, "an output file name such as out.csv"},
  {"plot", OPT_PLOT, "an output file name such as out.png"},
  {0},
};


typedef struct {
  cli_common c; /* model, cov, cov-method, frames, frame-shape, schedule, seed, threads,
                   force, progress, quiet, output, help */
  const char *process_s, *solvers_s, *error_s;
  const char *levels_s, *reference_s, *csv, *plot, *grid, *x_axis;
  const char *t_end_s;    /* --t-end as given (NULL: the process's own end) */
  double t_end;
  size_t D, paths, boot;
  int shape_rank;
  size_t shape[3];
  int process;
  csde_conv_kind kind;     /* as parsed; the run's: converge_run.plan */
  int solvers_set, error_set;
  unsigned k0, k1;
  csde_conv_ref ref;
} converge_args;

/* ---- help ---- */

#define FORCE_HELP                                                                         \
  "overwrite existing output files (OUT.h5 is replaced once the first stage finished; a "   \
  "run stopped before keeps it)"
#define PROGRESS_HELP                                                                      \
  "show progress even when stderr is not a terminal: the model calls of the whole study, " \
  "an estimate of its time (from the first calls), then the stage in progress"

/* Usage and the problem (the shared options' lines from d). */
static void help_problem(const cli_common *d)
{
  printf(
      "Usage: corrsde converge [options] -o OUT.h5 [--csv OUT.csv] [--plot OUT.png]\n"
      "\n"
      "Measure how the error of each solver falls with the step size: level k runs 2^k\n"
      "fixed steps, every level of a path sees the same Brownian path and the same start,\n"
      "and each error comes with a bootstrap interval over whole paths; local slopes screen\n"
      "out pre-asymptotic levels and levels below the floors, and a weighted fit gives each\n"
      "solver's order with a 95%% interval. Every option has a default:\n"
      "'corrsde converge -o out.h5' measures the ODE error of euler, heun and rk45 on the\n"
      "PF-ODE of the gaussian model (exact flow as reference) in well under a second.\n"
      "\n"
      "Problem:\n");
  cli_common_help(d, "model,cov,cov-method,frames,frame-shape,schedule");
  printf(
      "  -p, --process P        pf-ode (default; T=1 -> eps=1e-3), pf-ode-encode\n"
      "                         (eps -> T), forward-sde (0 -> T), reverse-sde (T -> eps)\n"
      "      --t-end E          the end time of the solves (as in 'corrsde sample'):\n"
      "                         eps for pf-ode and reverse-sde (default 1e-3; 0 <= E < T),\n"
      "                         T for forward-sde and pf-ode-encode (default 1, 0.999\n"
      "                         with cosine; start < E <= 1 with beta(E) finite)\n"
      "\n");
}

/* The experiment's options. */
static void help_experiment(const cli_common *d)
{
  printf(
      "Experiment:\n"
      "      --solvers S1,S2    solvers that fit the process (default " CSDE_CONV_DEFAULT_ODE_SOLVERS
      " for\n"
      "                         pf-ode and pf-ode-encode, " CSDE_CONV_DEFAULT_SDE_SOLVERS
      " for the SDEs)\n"
      "      --error E          what is measured at the end time (default: ode for the\n"
      "                         ODEs, strong for forward-sde, weak-cov for reverse-sde):\n"
      "                         ode        the deterministic global error (ODEs only)\n"
      "                         strong     mean over paths of ||X_h - X_ref||, and its\n"
      "                                    RMS variant; ||.|| is the RMS over the tau x D\n"
      "                                    entries of a sample\n"
      "                         weak-mean  |E X_h - E X| (RMS over the tau x D entries)\n"
      "                         weak-cov   the error of the frame second moment\n"
      "                                    E[X X^T] along the frame axis (tau x tau, pooled\n"
      "                                    over pixels; Frobenius norm)\n"
      "      --levels K0:K1     levels K0..K1, 2^k steps each (default " CSDE_CONV_DEFAULT_LEVELS ")\n"
      "      --grid G           the time grid of every level: uniform (default),\n"
      "                         quadratic, karras[:rho=R] or logsnr (grid 2N holds grid N)\n"
      "      --paths N          paths (samples) per level, N >= 2 (default %d)\n"
      "      --reference R      exact: the gaussian model's exact PF-ODE flow (ode) or\n"
      "                                exact moments (weak-*, which still use a fine solve\n"
      "                                on the same path as control variate and check it\n"
      "                                against the moments); strong has no exact solution\n"
      "                         fine[:LEVEL]: the same solver at 2^LEVEL steps on the same\n"
      "                                path; LEVEL > K1, default per solver\n"
      "                                K1 + max(3, ceil(log2(10) / p)) (+1 when p <= 1), p\n"
      "                                its theoretical order\n"
      "                         fine:SOLVER:rtol=R[,atol=A]: one adaptive solve per path\n"
      "                                shared by every solver (dopri5, rk45, rkck, rk8pd for\n"
      "                                the ODEs; heun, em, sra1 for the SDEs, on the same\n"
      "                                Brownian path; A defaults to R); its error is the\n"
      "                                first batch's distance to a solve at R / 10\n"
      "                         default: exact where the model gives it, else fine\n",
      CSDE_CONV_DEFAULT_PATHS);
  cli_common_help(d, "seed");
  printf("      --bootstrap B      bootstrap replicates, B >= 100 (default %d)\n",
         CSDE_CONV_DEFAULT_BOOT);
  cli_common_help(d, "threads");
  printf("\n");
}

/* The outputs (the shared options' lines from d). */
static void help_output(const cli_common *d)
{
  printf("Output:\n");
  cli_common_help(d, "output");
  fputs("      --csv OUT.csv      the table's rows (one per solver and level)\n"
      "      --plot OUT.png     log-log plot of error against h (or, with --x-axis nfe,\n"
      "                         against the model evaluations of a solve) with the intervals,\n"
      "                         theoretical slopes and the Monte Carlo noise of weak\n"
      "                         errors (runs experiments/plot_convergence.py with\n"
      "                         " DEFAULT_PYTHON "; matplotlib and h5py needed;\n"
      "                         CORRSDE_PYTHON and CORRSDE_PLOT_SCRIPT override)\n",
      stdout);
  cli_common_help(d, "force,progress,quiet,help");
}

/* How the starts, errors, screening, fit and interval are made. */
static void help_method(void)
{
  /* in parts: C99 compilers need not take string literals over 4095 characters */
  fputs("\n"
      "Starts: forward-sde from the model's data law; reverse-sde and pf-ode from the exact\n"
      "p_T of a gaussian model, else from the prior N(0, C) (the p_T mismatch is reported;\n"
      "the errors compare solves from the same start and do not contain it);\n"
      "pf-ode-encode from the exact p_eps (gaussian) or the data law.\n"
      "\n"
      "Weak errors use a same-path control variate: the mean over paths of\n"
      "f(X_h) - f(X_ref), X_ref the fine solve on the same Brownian path from the same\n"
      "start, whose variance shrinks with the strong error. The reference's own error is\n"
      "estimated by Richardson from levels R-1 and R and must be 10x below the finest\n"
      "level's error (a warning otherwise).\n"
      "\n"
      "Screening: a level is dropped when its error is below a floor (float64 round-off,\n"
      "3x the reference's error, 3x the Monte Carlo noise), when its interval's half-width\n"
      "is not below a third of the error (unresolved), or when it is the finest level whose\n"
      "local slope differs from the finer levels' by more than 10%, or coarser than that\n"
      "level (pre-asymptotic).\n"
      "Fit: weighted least squares of log e on log h (weights 1/Var log e); the terms d h\n"
      "and d2 h^2 of log e = c + p log h + d h + d2 h^2 are added one at a time while\n"
      "resolved (d h from 3 levels, d2 h^2 from 5); the last model gives the order. With\n"
      "fewer than 3 levels used there is no order: the table says \"not fitted: only N\n"
      "resolved levels (need 3)\".\n"
      "Interval: the bootstrap percentile interval of p combined in quadrature with three\n"
      "systematic terms: the whole correction the extra terms made to the plain slope, the\n"
      "misfit beyond noise (in absolute units, so a deterministic ODE error gets a finite\n"
      "width), and the effect of the reference's error.\n",
      stdout);
}

/* Models, the file layout, examples, exit status. */
static void help_models_layout(void)
{
  fputs("\n"
      "Models:\n"
      "  gaussian[:mean=M,std=S,rho=R]  data N(M, S^2 ar1(R) (x) I): exact flow and moments\n"
      "  gaussian:file=P.h5             /mean and /frame_cov from a file\n"
      "  gmm:file=P.h5                  a gaussian mixture (nonlinear score; fine\n"
      "                                 reference)\n"
      "  plugin:LIB.so[:ARGS]           a model plugin (reverse-sde and pf-ode only)\n"
      "  python:FILE.py:NAME[:ARGS]     a Python model: NAME(ctx, ARGS) returns\n"
      "  python:MODULE:NAME[:ARGS]      model(t, x, ctx), x [B, tau, *SHAPE], ctx the\n"
      "                                 corrsde.Context solve() gives; its .output\n"
      "                                 (default noise); the Python package's plugin\n"
      "\n"
      "File layout (h5py):\n"
      "  /convergence/<solver>/steps [L], h [L], error [L], error_ci [L, 2],\n"
      "      local_slope [L-1], local_slope_ci [L-1, 2], used [L], decision [L],\n"
      "      error_rms (strong, ode) or mc_noise (weak) [L], per_path [N, L] (strong,\n"
      "      ode) or [N, L, Q] (weak: the per-path f(X_h) - f(X_ref)), ref_check_per_path\n"
      "      attributes order, order_ci [2], theory_order, levels_used, levels_dropped,\n"
      "      fit, reference_level, reference_error, reference_ratio, ...\n"
      "  /convergence  attributes error, estimator, reference, paths, levels, ...\n"
      "  /convergence  attribute status: running (while the run writes the file), ok,\n"
      "      or failed: REASON; the file is made before the first solve and rewritten\n"
      "      whole after every stage (a reference, or one level of one solver, for every\n"
      "      path), so a run that is interrupted (SIGINT, SIGTERM, SIGHUP: status failed,\n"
      "      exit 1), fails or is killed keeps what finished: per solver levels_done,\n"
      "      and those levels' steps, h, error and per_path (analysed 0: no intervals)\n"
      "  /parameters   every setting, the command line, the version\n"
      "  /covariance   matrix [tau, tau] and eigenvalues [tau]\n"
      "\n"
      "Examples:\n"
      "  corrsde converge -o results/converge.h5 --csv results/converge.csv \\\n"
      "                   --plot results/converge.png\n"
      "  corrsde converge --process forward-sde --error strong --levels 4:8 --paths 64 \\\n"
      "                   -j 2 -o strong.h5\n"
      "  corrsde converge --process reverse-sde --error weak-cov --solvers heun \\\n"
      "                   --frames 5 --frame-shape 8x8 --levels 3:6 --paths 1024 -j 2 -o weak.h5\n"
      "\n"
      "Exit status: 0 on success; 1 when the run or an output fails or an input is\n"
      "rejected; 2 for a malformed command line.\n",
      stdout);
}

static void help(void)
{
  cli_common d;
  cli_common_defaults(&d, DEFAULT_TAU, DEFAULT_SHAPE);
  d.output_help = "the results (required; layout below)";
  d.force_help = FORCE_HELP;
  d.progress_help = PROGRESS_HELP;
  help_problem(&d);
  help_experiment(&d);
  help_output(&d);
  help_method();
  help_models_layout();
}

/* ---- parsing ---- */


static const char *conv_flag(const char *param);

/* A settings error of the library (csde_conv_resolve and its parts): the message starts
 * with the setting's name, put back as its flag; else the flag of the blamed param. */
static void settings_error(const csde_err *err)
{
  static const struct {
    const char *name, *flag;
  } names[] = {{"solvers", "--solvers"}, {"error", "--error"},     {"levels", "--levels"},
               {"paths", "--paths"},     {"reference", "--reference"}, {"t_end", "--t-end"},
               {"threads", "--threads"}};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    size_t n = strlen(names[i].name);
    if (!strncmp(err->msg, names[i].name, n) && (err->msg[n] == ':' || err->msg[n] == ' ')) {
      cli_error(CMD, "%s%s", names[i].flag, err->msg + n);
      return;
    }
  }
  cli_error(CMD, "%s: %s", conv_flag(err->param), err->msg);
}

static int parse_levels(const char *s, converge_args *a)
{
  csde_err err;
  csde_err_clear(&err);
  if (!csde_conv_levels_parse(s, &a->k0, &a->k1, &err)) return CLI_OK;
  settings_error(&err);
  return CLI_EUSAGE;
}

/* exact, fine, fine:LEVEL or fine:SOLVER:rtol=R[,atol=A] (csde_conv_reference_parse). */
static int parse_reference(const char *s, converge_args *a)
{
  csde_conv_params p = csde_conv_default_params();
  csde_err err;
  csde_err_clear(&err);
  (void)a;
  if (!strcmp(s, "auto") || csde_conv_reference_parse(s, &p, &err)) {
    cli_error(CMD, "--reference: %s", err.msg[0] ? err.msg + (strncmp(err.msg, "reference: ", 11)
                                                                  ? 0 : 11)
                                                  : "expected exact, fine, fine:LEVEL or "
                                                    "fine:SOLVER:rtol=R[,atol=A], got 'auto'");
    return CLI_EUSAGE;
  }
  return CLI_OK;
}

/* The list checked early (whether each fits the process: csde_conv_resolve). */
static int parse_solvers(const char *s, converge_args *a)
{
  csde_conv_plan pl;
  csde_err err;
  csde_err_clear(&err);
  memset(&pl, 0, sizeof pl);
  int st = csde_conv_solvers_parse(s, -1, &pl, &err);
  csde_conv_plan_free(&pl);
  (void)a;
  if (!st) return CLI_OK;
  settings_error(&err);
  return st == CSDE_ENOMEM ? CLI_EFAIL : CLI_EUSAGE;
}

/* A positive integer in [lo, hi], else "<flag>: expected <expected>, got '<v>'". */
static int parse_count(const char *flag, const char *v, size_t lo, size_t hi,
                       const char *expected, size_t *out)
{
  int rc = cli_parse_size(CMD, flag, v, out);
  if (rc) return rc;
  if (*out < lo || *out > hi) {
    cli_error(CMD, "%s: expected %s, got '%s'", flag, expected, v);
    return CLI_EUSAGE;
  }
  return CLI_OK;
}

/* One of converge's own options (converge_own): CLI_OK or the error's rc. */
static int parse_own(int c, const char *v, converge_args *a)
{
  int rc;
  switch (c) {
  case 'p': {
    csde_process pr;
    if ((rc = cli_check_name(CMD, "--process", v, csde_process_parse(v, &pr, NULL),
                             csde_process_names)))
      return rc;
    a->process = (int)pr;
    a->process_s = v;
    break;
  }
  case OPT_T_END: /* its side of the start needs the schedule: csde_conv_resolve */
    if ((rc = cli_parse_double(CMD, "--t-end", v, &a->t_end))) return rc;
    if (!(a->t_end >= 0 && isfinite(a->t_end))) { /* the upper end: csde_conv_resolve */
      cli_error(CMD, "--t-end: expected a time in [0, 1] (the schedule's range; a path's: its "
                     "span, edm [smin, smax]), got '%s'", v);
      return CLI_EUSAGE;
    }
    a->t_end_s = v;
    break;
  case OPT_SOLVERS:
    if ((rc = parse_solvers(v, a))) return rc;
    a->solvers_s = v;
    a->solvers_set = 1;
    break;
  case OPT_ERROR:
    if ((rc = cli_check_name(CMD, "--error", v, csde_conv_kind_parse(v, &a->kind),
                             csde_conv_kind_names)))
      return rc;
    a->error_s = v;
    a->error_set = 1;
    break;
  case OPT_LEVELS:
    if ((rc = parse_levels(v, a))) return rc;
    a->levels_s = v;
    break;
  case OPT_PATHS:
    return parse_count("--paths", v, 2, SIZE_MAX,
                       "an integer >= 2 (a bootstrap needs paths to resample)", &a->paths);
  case OPT_REFERENCE:
    if ((rc = parse_reference(v, a))) return rc;
    a->reference_s = v;
    break;
  case OPT_BOOT:
    return parse_count("--bootstrap", v, 100, 1000000, "an integer from 100 to 1000000",
                       &a->boot);
  case OPT_CSV: a->csv = v; break;
  case OPT_PLOT: a->plot = v; break;
  case OPT_GRID: a->grid = v; break; /* checked by the solver: blamed on --levels */
  case OPT_X_AXIS:
    if (strcmp(v, "h") && strcmp(v, "nfe")) {
      cli_error(CMD, "--x-axis: expected h or nfe, got '%s'", v);
      return CLI_EUSAGE;
    }
    a->x_axis = v;
    break;
  default: /* '?': the error is printed */
    return CLI_EUSAGE;
  }
  return CLI_OK;
}

static int parse_args(int argc, char **argv, converge_args *a)
{
  cli_getopt g;
  cli_option opts[CLI_MAXOPT];
  const char *v;
  int c, rc;
  memset(a, 0, sizeof *a);
  cli_common_defaults(&a->c, DEFAULT_TAU, DEFAULT_SHAPE);
  a->process_s = DEFAULT_PROCESS;
  a->process = CSDE_PROC_PFODE;
  a->levels_s = CSDE_CONV_DEFAULT_LEVELS;
  a->k0 = 3;
  a->k1 = 8;
  a->paths = CSDE_CONV_DEFAULT_PATHS;
  a->ref = CSDE_CONV_REF_AUTO;
  a->reference_s = "auto";
  a->boot = CSDE_CONV_DEFAULT_BOOT;
  if (cli_options_join(opts, CLI_MAXOPT, converge_own)) return CLI_EFAIL;
  cli_getopt_init(&g, CMD, opts, argc, argv);
  while ((c = cli_getopt_next(&g, &v)) != -1) {
    if ((rc = cli_common_option(CMD, c, v, &a->c)) != CLI_OPT_NOT_MINE) {
      if (rc != CLI_OPT_HANDLED) return rc;
      continue;
    }
    if ((rc = parse_own(c, v, a))) return rc;
  }
  if (a->c.help) return CLI_OK;
  return cli_spec_shape(CMD, "--frame-shape", a->c.shape_s, &a->shape_rank, a->shape, &a->D);
}

static int same_file(const char *a, const char *b) { return a && b && !strcmp(a, b); }

/* Combinations of flags, checked once every flag is known (the settings' own:
 * csde_conv_resolve, in build). */
static int check_combinations(converge_args *a)
{
  if (!a->c.output) {
    cli_error(CMD, "-o/--output: missing (expected an output file name such as out.h5)");
    return CLI_EUSAGE;
  }
  if (a->c.progress && a->c.quiet) {
    cli_error(CMD, "--progress and --quiet exclude each other (give one)");
    return CLI_EUSAGE;
  }
  if (a->x_axis && !a->plot) {
    cli_error(CMD, "--x-axis: applies to --plot (give --plot OUT.png)");
    return CLI_EUSAGE;
  }
  if (same_file(a->c.output, a->csv) || same_file(a->c.output, a->plot) ||
      same_file(a->csv, a->plot)) {
    cli_error(CMD, "-o/--csv/--plot: two outputs name the same file");
    return CLI_EUSAGE;
  }
  return CLI_OK;
}

/* The per-path values and the reference's final states (a path's tau x D) kept. */
static int check_memory(const converge_args *a, const csde_conv_params *p)
{
  size_t Q = p->kind == CSDE_CONV_WEAK_MEAN ? a->c.tau * a->D
             : p->kind == CSDE_CONV_WEAK_COV ? a->c.tau * a->c.tau : 1;
  double total = (double)p->paths * (double)(p->k1 - p->k0 + 2) * (double)Q * (double)p->nsolvers +
                 (double)p->paths * (double)a->c.tau * (double)a->D;
  if (total > (double)MAX_PER_PATH_DOUBLES) {
    cli_error(CMD, "--paths/--frames/--frame-shape: %.3g per-path values and reference states "
                   "(%.1f GiB) are too many to keep (at most %zu; use fewer paths or a smaller "
                   "frame)",
              total, total * 8 / 1073741824.0, MAX_PER_PATH_DOUBLES);
    return CLI_EUSAGE;
  }
  return CLI_OK;
}

/* ---- the plotting script ---- */

static const char *python_path(void)
{
  const char *p = getenv("CORRSDE_PYTHON");
  return p && *p ? p : DEFAULT_PYTHON;
}

/* The script: $CORRSDE_PLOT_SCRIPT, the source tree's (build time), or
 * <prefix>/share/corrsde/ next to the installed program. */
static int plot_script(char *buf, size_t len)
{
  const char *e = getenv("CORRSDE_PLOT_SCRIPT");
  if (e && *e) {
    snprintf(buf, len, "%s", e);
    return access(buf, R_OK) == 0 ? 0 : -1;
  }
#ifdef CSDE_PLOT_SCRIPT
  snprintf(buf, len, "%s", CSDE_PLOT_SCRIPT);
  if (access(buf, R_OK) == 0) return 0;
#endif
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n > 0) {
    exe[n] = '\0';
    char *d = dirname(exe);
    snprintf(buf, len, "%s/../share/corrsde/plot_convergence.py", d);
    if (access(buf, R_OK) == 0) return 0;
    snprintf(buf, len, "%s/../experiments/plot_convergence.py", d);
    if (access(buf, R_OK) == 0) return 0;
  }
  snprintf(buf, len, "plot_convergence.py");
  return -1;
}

/* Run argv (argv[0] a path, or a name looked up in PATH) with stdout to /dev/null (quiet
 * = 1: stderr too) and, if fd >= 0, fd as its descriptor 3; the exit status, or -1 if it
 * could not start. */
static int run_program(char *const *argv, int quiet, int fd)
{
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  if (fd >= 0) posix_spawn_file_actions_adddup2(&fa, fd, 3);
  posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  if (quiet) posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
  pid_t pid;
  int rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) return -1;
  int status;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

/* Before the run: the interpreter, its modules and the script are there. */
static int check_plotting(char *script, size_t len)
{
  const char *py = python_path();
  if (strchr(py, '/') && access(py, X_OK) != 0) {
    cli_error(CMD, "--plot: %s is not there (install python3 with python3-matplotlib and "
                   "python3-h5py, or set CORRSDE_PYTHON; nothing was run)", py);
    return CLI_EFAIL;
  }
  char *argv[] = {(char *)py, "-c", "import matplotlib, h5py, numpy", NULL};
  int prc = run_program(argv, 1, -1);
  if (prc < 0) {
    cli_error(CMD, "--plot: cannot run %s (install python3 with python3-matplotlib and "
                   "python3-h5py, or set CORRSDE_PYTHON; nothing was run)", py);
    return CLI_EFAIL;
  }
  if (prc != 0) {
    cli_error(CMD, "--plot: %s cannot import matplotlib, h5py and numpy (Debian: apt-get "
                   "install python3-matplotlib python3-h5py; nothing was run)", py);
    return CLI_EFAIL;
  }
  if (plot_script(script, len)) {
    cli_error(CMD, "--plot: the plotting script %s is missing (set CORRSDE_PLOT_SCRIPT to "
                   "experiments/plot_convergence.py; nothing was run)", script);
    return CLI_EFAIL;
  }
  return CLI_OK;
}

/* ---- building ---- */

typedef struct {
  converge_args *a;
  csde_cov *C;
  csde_schedule *sched;
  cli_model model;        /* thread 0's */
  csde_conv_plan plan;     /* the settings resolved (csde_conv_resolve) */
  csde_problem P;
  double t_start, t_end;
  int start_kind;         /* START_* */
  char start_desc[512];
  double floor_mean, floor_cov; /* p_T mismatch of a prior start (NaN: unknown) */
  double *Cmat;
  char *cmdline;
  /* progress */
  int bar_on;
  csde_conv_progress_line bar;
} converge_run;

enum { START_GAUSS_T, START_GAUSS_EPS, START_DATA, START_PRIOR };


/* The command line as a shell would take it back. */

/* The mismatch between the exact p_T of a gmm and the prior N(0, C): the mean (RMS over
 * tau x D) and the frame second moment (Frobenius), p_T = sum_k w_k N(sqrt(abar) m_k,
 * abar S_k + (1 - abar) C), from the model's law (csde_model_gmm_law); NaN if that fails. */
static void gmm_mismatch(const cli_model *m, const double *Cmat, double abar, double *fm,
                         double *fc)
{
  const size_t tau = m->tau, D = m->D, n = tau * D;
  size_t K;
  const double *cum, *means, *fac; /* borrowed from the model */
  csde_err err;
  csde_err_clear(&err);
  double *mean = calloc(n, sizeof *mean), *F = calloc(tau * tau, sizeof *F);
  if (!mean || !F || csde_model_gmm_law(m->model, &K, &cum, &means, &fac, &err)) {
    *fm = *fc = NAN;
    free(mean);
    free(F);
    return;
  }
  for (size_t k = 0; k < K; k++) {
    double w = cum[k] - (k ? cum[k - 1] : 0.0);
    const double *mk = means + k * n, *Fk = fac + k * tau * tau;
    for (size_t j = 0; j < n; j++) mean[j] += w * sqrt(abar) * mk[j];
    for (size_t a = 0; a < tau; a++)
      for (size_t b = 0; b < tau; b++) {
        double s = 0, mm = 0; /* S_k = F_k F_k^T; (1/D) sum_p m_a m_b */
        for (size_t c = 0; c < tau; c++) s += Fk[a * tau + c] * Fk[b * tau + c];
        for (size_t p = 0; p < D; p++) mm += mk[a * D + p] * mk[b * D + p];
        F[a * tau + b] += w * (abar * s + (1 - abar) * Cmat[a * tau + b] + abar * mm / (double)D);
      }
  }
  double sm = 0, sc = 0;
  for (size_t j = 0; j < n; j++) sm += mean[j] * mean[j];
  for (size_t q = 0; q < tau * tau; q++) sc += (F[q] - Cmat[q]) * (F[q] - Cmat[q]);
  *fm = sqrt(sm / (double)n);
  *fc = sqrt(sc);
  free(mean);
  free(F);
}

/* The paths a model call gets at most (what a plugin is told): the experiment's batch. */
static size_t model_batch(const converge_args *a)
{
  size_t b = csde_conv_default_params().batch;
  return a->paths < b ? a->paths : b;
}

/* The flags as settings (csde_conv_settings), resolved against C and the schedule. */
static int resolve(const converge_args *a, converge_run *r)
{
  csde_conv_settings s = csde_conv_default_settings();
  s.process = a->process_s;
  s.solvers = a->solvers_set ? a->solvers_s : NULL;
  s.error = a->error_set ? a->error_s : NULL;
  s.levels = a->levels_s;
  s.paths = a->paths;
  s.reference = a->reference_s;
  s.t_end = a->t_end_s ? a->t_end : NAN;
  s.seed = a->c.seed;
  s.grid = a->grid;
  s.threads = (int)a->c.threads;
  s.boot = a->boot;
  csde_err err;
  csde_err_clear(&err);
  int st = csde_conv_resolve(&s, r->C, r->sched, a->D, &r->plan, &err);
  if (st) {
    settings_error(&err);
    return st == CSDE_ENOMEM ? CLI_EFAIL : CLI_EUSAGE;
  }
  return check_memory(a, &r->plan.params);
}

/* Where the paths start (START_*), its description and, for a gmm's prior start, its
 * mismatch with the exact p_T. */
static int choose_start(const converge_args *a, converge_run *r)
{
  int gauss = r->model.kind == CLI_MODEL_GAUSSIAN;
  r->floor_mean = r->floor_cov = NAN;
  switch (a->process) {
  case CSDE_PROC_FORWARD_SDE:
  case CSDE_PROC_PFODE_ENCODE:
    if (!cli_model_has_data_law(&r->model)) {
      cli_error(CMD, "--model: %s starts from the data law, and a plugin has none (expected a "
                     "gaussian or gmm model, or reverse-sde/pf-ode)", csde_process_name((csde_process)a->process));
      return CLI_EUSAGE;
    }
    if (gauss && a->process == CSDE_PROC_PFODE_ENCODE) {
      r->start_kind = START_GAUSS_EPS;
      snprintf(r->start_desc, sizeof r->start_desc,
               "exact p_eps of the gaussian model at t = %g (seed, stream 2^63)", r->t_start);
    } else {
      r->start_kind = START_DATA;
      snprintf(r->start_desc, sizeof r->start_desc, "data law p_0 of the model (seed, stream "
                                                    "2^63)");
    }
    break;
  default:
    if (gauss) {
      r->start_kind = START_GAUSS_T;
      snprintf(r->start_desc, sizeof r->start_desc,
               "exact p_T of the gaussian model at T = %g (seed, stream 2^63)", r->P.T);
    } else {
      r->start_kind = START_PRIOR;
      if (r->model.kind == CLI_MODEL_GMM) {
        gmm_mismatch(&r->model, r->Cmat, csde_schedule_abar(r->sched, r->P.T), &r->floor_mean,
                     &r->floor_cov);
        snprintf(r->start_desc, sizeof r->start_desc,
                 "prior N(0, C) (the model has no exact p_T sampler); its mismatch with the "
                 "exact p_T at T = %g, mean %.3g (RMS) and frame second moment %.3g "
                 "(Frobenius), floors agreement with the data law, not these errors (every "
                 "level and its reference start from the same draw)",
                 r->P.T, r->floor_mean, r->floor_cov);
      } else {
        snprintf(r->start_desc, sizeof r->start_desc,
                 "prior N(0, C) (a plugin has no exact p_T; the mismatch is unknown and not "
                 "part of these errors, which compare solves from the same start)");
      }
    }
  }
  return CLI_OK;
}

static int build(converge_args *a, converge_run *r, int argc, char **argv)
{
  int rc;
  csde_err err;
  csde_err_clear(&err);
  if ((rc = cli_spec_cov(CMD, a->c.cov, a->c.cov_method, a->c.tau, &r->C))) return rc;
  if ((rc = cli_spec_schedule(CMD, a->c.schedule, &r->sched))) return rc;
  if ((rc = resolve(a, r))) return rc;
  if ((rc = cli_spec_model(CMD, a->c.model, r->C, r->sched, a->c.tau, a->shape_rank, a->shape,
                           model_batch(a), csde_process_name((csde_process)a->process), &r->model)) ||
      (rc = cli_model_prepare_score(CMD, &r->model))) /* a clip too long: refused here */
    return rc;
  r->P = r->plan.params.P;
  r->P.batch = 1;
  r->P.model = r->model.model;
  csde_problem_span(&r->P, &r->t_start, &r->t_end);

  /* C as a matrix, for the gmm prior's mismatch (gmm models are dense anyway) */
  if (r->model.kind == CLI_MODEL_GMM) {
    r->Cmat = malloc(a->c.tau * a->c.tau * sizeof *r->Cmat);
    if (!r->Cmat) {
      cli_error(CMD, "--frames: out of memory for a %zu x %zu matrix", a->c.tau, a->c.tau);
      return CLI_EFAIL;
    }
    csde_cov_matrix(r->C, r->Cmat);
  }

  /* the reference the model can give */
  csde_conv_params cp = r->plan.params;
  cp.P = r->P;
  const char *why = NULL;
  if (cp.ref == CSDE_CONV_REF_EXACT && !csde_conv_exact_available(&cp, r->model.model, &why)) {
    cli_error(CMD, "--reference exact: %s with --model %s", why, r->model.spec);
    return CLI_EUSAGE;
  }

  if ((rc = choose_start(a, r))) return rc;
  r->cmdline = cli_command_line(argc, argv);
  return CLI_OK;
}

static void run_free(converge_run *r)
{
  cli_model_free(&r->model);
  csde_conv_plan_free(&r->plan);
  csde_schedule_free(r->sched);
  csde_cov_free(r->C);
  free(r->Cmat);
  free(r->cmdline);
}

/* ---- per-thread resources and starts (converge.h hooks) ---- */

typedef struct {
  cli_model model; /* threads > 0: their own; thread 0 borrows the run's */
  int owned;
  csde_cov_ws *ws; /* prior starts */
} thread_state;

static int hook_alloc(void *user, int t, const csde_model **model, void **state, csde_err *err)
{
  converge_run *r = user;
  thread_state *ts = calloc(1, sizeof *ts);
  if (!ts) return csde_err_set(err, CSDE_ENOMEM, "out of memory");
  if (t == 0) {
    ts->model = r->model;
  } else {
    /* the same spec again: one model object per thread (model.h) */
    if (cli_spec_model(CMD, r->a->c.model, r->C, r->sched, r->a->c.tau, r->a->shape_rank,
                       r->a->shape, model_batch(r->a), csde_process_name((csde_process)r->a->process),
                       &ts->model) ||
        cli_model_prepare_score(CMD, &ts->model)) {
      free(ts);
      return csde_err_set(err, CSDE_EFAILED, "--model '%s': cannot make a model for thread %d",
                          r->a->c.model, t);
    }
    ts->owned = 1;
  }
  int s = CSDE_SUCCESS;
  if (r->start_kind == START_PRIOR) s = csde_cov_ws_alloc(&ts->ws, r->C, r->a->D, 1, err);
  if (s) {
    if (ts->owned) cli_model_free(&ts->model);
    free(ts);
    return s;
  }
  *model = ts->model.model;
  *state = ts;
  return CSDE_SUCCESS;
}

static void hook_free(void *user, void *state)
{
  (void)user;
  thread_state *ts = state;
  if (!ts) return;
  if (ts->owned) cli_model_free(&ts->model);
  csde_cov_ws_free(ts->ws);
  free(ts);
}

static int hook_start(void *user, void *state, size_t first, size_t n, double *x,
                      csde_err *err)
{
  converge_run *r = user;
  thread_state *ts = state;
  const csde_rng_key key = csde_conv_start_key(r->a->c.seed);
  switch (r->start_kind) {
  case START_GAUSS_T:
    return csde_model_gaussian_sample(ts->model.model, r->P.T, key, first, n, x, err);
  case START_GAUSS_EPS:
    return csde_model_gaussian_sample(ts->model.model, r->t_start, key, first, n, x, err);
  case START_DATA:
    return cli_model_sample_data(&ts->model, key, first, n, x, err);
  default: { /* N(0, p^2 C), p the path's prior scale (VP: 1, the draw untouched) */
    const double p = csde_schedule_path_prior_scale(r->P.sched);
    const size_t m = n * r->P.tau * r->P.D;
    int s = csde_conv_start_prior(r->C, ts->ws, r->a->c.seed, first, n, x, err);
    if (!s && p != 1)
      for (size_t i = 0; i < m; i++) x[i] *= p;
    return s;
  }
  }
}


/* ---- progress and signals ---- */

static volatile sig_atomic_t g_signal = 0;

static void on_signal(int sig) { g_signal = sig; }

/* The progress line (when shown); a signal stops the run at the next step. */
static int hook_progress(void *user, const csde_conv_progress *p)
{
  converge_run *r = user;
  if (r->bar_on) csde_conv_progress_draw(&r->bar, p);
  return g_signal != 0;
}

/* ---- writing ---- */

#define PUT(call)                                                                          \
  do {                                                                                     \
    if ((s = (call))) return s;                                                            \
  } while (0)


static void print_header(FILE *f, const converge_args *a, const converge_run *r,
                         const csde_conv_result *res)
{
  char shape[64];
  size_t n = 0;
  shape[0] = '\0';
  for (int i = 0; i < a->shape_rank; i++)
    n += (size_t)snprintf(shape + n, sizeof shape - n, "%s%zu", i ? "x" : "", a->shape[i]);
  fprintf(f, "corrsde converge: %s, %s error, solvers %s, levels %u..%u (%zu..%zu steps), "
             "%zu paths\n",
          csde_process_name((csde_process)a->process), csde_conv_kind_name(r->plan.params.kind),
          r->plan.solvers_text, r->plan.params.k0, r->plan.params.k1, res->steps[0],
          res->steps[res->L - 1], a->paths);
  fprintf(f, "problem: model %s; C %s (%s); %zu frames of %s; schedule %s; t %g -> %g\n",
          r->model.spec, csde_cov_spec(r->C), csde_cov_method_name(csde_cov_method_of(r->C)),
          a->c.tau, shape, csde_schedule_spec(r->sched), r->t_start, r->t_end);
  fprintf(f, "start: %s\n", r->start_desc);
  fprintf(f, "reference: %s\n", res->reference);
  fprintf(f, "estimator: %s\n", res->estimator);
  fprintf(f, "intervals: 95%% bootstrap percentile over whole paths, %zu replicates\n",
          a->boot);
}

/* The option that sets what a convergence run's error blames (csde_err.param). */
static const char *conv_flag(const char *param)
{
  static const struct {
    const char *param, *flag;
  } map[] = {{CSDE_PARAM_SOLVER, "--solvers"},        {CSDE_PARAM_MODEL, "--model"},
             {CSDE_CONV_PARAM_REFERENCE, "--reference"}, {CSDE_CONV_PARAM_LEVELS, "--levels"},
             {CSDE_CONV_PARAM_PATHS, "--paths"},      {CSDE_CONV_PARAM_KIND, "--error"},
             {CSDE_PARAM_SIZE, "--frames/--frame-shape"}, {CSDE_PARAM_GRID, "--grid"},
             {CSDE_PARAM_SPAN, "--process/--t-end"}, {CSDE_CONV_PARAM_OUTPUT, "-o"},
             {CSDE_PARAM_TOLERANCES, "--reference"}, {CSDE_CONV_PARAM_T_END, "--t-end"},
             {CSDE_PARAM_PROCESS, "--process"}, {CSDE_PARAM_SCHEDULE, "--schedule"}};
  for (size_t i = 0; param && i < sizeof map / sizeof map[0]; i++)
    if (!strcmp(param, map[i].param)) return map[i].flag;
  return "--levels"; /* the rest (a step count, a grid) follows from the levels */
}

/* The CSV, the plot and (unless quiet) the table, after the HDF5 file. */
static int write_outputs(const converge_args *a, const converge_run *r,
                         const csde_conv_result *res, char *script)
{
  csde_err err;
  csde_err_clear(&err);
  if (a->csv && csde_conv_write_csv(a->csv, res, r->plan.params.kind, &err)) {
    cli_error(CMD, "--csv '%s': %s", a->csv, err.msg);
    return CLI_EFAIL;
  }
  if (a->plot) {
    /* the script draws into our temporary plot.partial.XXXXXX, its descriptor 3
     * (/dev/fd/3), renamed to the plot once whole (io/outfile.h) */
    csde_outfile po;
    if (csde_outfile_open(&po, a->plot, CSDE_OUT_LOCK | (a->c.force ? CSDE_OUT_OVERWRITE : 0),
                          &err)) {
      cli_error(CMD, "--plot %s; the results are in '%s'", err.msg, a->c.output);
      return CLI_EFAIL;
    }
    char *pargv[] = {(char *)python_path(), script, (char *)a->c.output, "/dev/fd/3",
                     a->x_axis ? "--x-axis" : NULL, (char *)a->x_axis, NULL};
    int prc = run_program(pargv, 0, csde_outfile_fd(&po));
    if (prc != 0)
      cli_error(CMD, "--plot '%s': the plotting script %s failed (exit %d); the results are "
                     "in '%s'", a->plot, script, prc, a->c.output);
    else if (csde_outfile_commit(&po, &err))
      cli_error(CMD, "--plot %s; the results are in '%s'", err.msg, a->c.output);
    int drawn = po.committed;
    csde_outfile_release(&po);
    if (!drawn) return CLI_EFAIL;
  }

  /* the table, last */
  if (!a->c.quiet) {
    print_header(stdout, a, r, res);
    csde_conv_print(stdout, res, r->plan.params.kind);
    for (size_t i = 0; i < res->nsolvers; i++)
      if (!res->s[i].fit.ref_ok)
        cli_error(CMD, "warning: %s: the reference is only %.3gx more accurate than the "
                       "finest level (want >= 10; %s)",
                  res->s[i].name, res->s[i].fit.ref_ratio,
                  res->ref_shared ? "tighten the rtol of --reference fine:SOLVER:rtol=R"
                                  : "raise --reference fine:LEVEL");
    printf("\nwrote %s", a->c.output);
    if (a->csv) printf(", %s", a->csv);
    if (a->plot) printf(", %s", a->plot);
    printf(" (%.2f s, %zu model evaluations, %zu thread%s)\n", res->wall_seconds, res->nfe,
           a->c.threads, a->c.threads == 1 ? "" : "s");
  }
  return CLI_OK;
}

/* The outputs before anything is built: an existing file needs --force, its directory
 * must be writable (rank 0's under corrsde-mpi: another rank would find the lock rank 0
 * takes as soon as it has built its objects); --plot's interpreter and script. */
static int check_outputs(const converge_args *a, char *script, size_t len)
{
  int rc = CLI_OK;
  if ((cli_rank == 0 && (rc = cli_check_output(CMD, "-o", a->c.output, a->c.force))) ||
      (cli_rank == 0 && a->csv && (rc = cli_check_output(CMD, "--csv", a->csv, a->c.force))) ||
      (cli_rank == 0 && a->plot && (rc = cli_check_output(CMD, "--plot", a->plot, a->c.force))) ||
      (a->plot && (rc = check_plotting(script, len))))
    return rc;
  return CLI_OK;
}

/* The file (rank 0): made before the first solve and rewritten after every stage, so a
 * run stopped or killed keeps what finished (csde_conv_file_open); under corrsde-mpi
 * every rank has checked its arguments and built its objects, and they agree. */
static int open_file(const converge_args *a, const converge_run *r, csde_conv_params *p,
                     csde_err *err)
{
  csde_conv_record rec = {r->plan.solvers_text, r->plan.levels_text, r->plan.reference_text,
                          a->c.cov_method, r->model.spec,
                          csde_model_name(r->model.model),
                          csde_model_output_name(csde_model_output_of(r->model.model)),
                          r->start_desc, r->cmdline ? r->cmdline : "", a->shape_rank,
                          {a->shape[0], a->shape[1], a->shape[2]}, (int)a->c.threads,
                          r->floor_mean, r->floor_cov};
  csde_conv_file *file = NULL;
  int open_rc = CLI_OK;
  if (cli_rank == 0 && csde_conv_file_open(&file, a->c.output, &rec, a->c.force, err)) {
    cli_error(CMD, "-o %s", err->msg);
    open_rc = CLI_EFAIL;
  }
  p->file = file;
  if (!cli_sync) return open_rc;
  if (cli_sync(open_rc) >= 0 ||
      cli_agree(CMD, &(cli_settings){.conv = p, .cov = a->c.cov, .model = a->c.model})) {
    csde_conv_file_close(file, NULL, p, NULL, err);
    return CLI_EFAIL;
  }
  return CLI_OK;
}

/* The file's last word (its status: ok, or failed and why), then a failed run's message
 * saying what the file holds: CLI_OK, or CLI_EFAIL when the run or the file failed. */
static int finish(const converge_args *a, csde_conv_params *p, const csde_conv_result *res,
                  int s, const csde_err *err, int existed)
{
  char status[CSDE_MSG_MAX + 96], why[96] = "";
  if (g_signal)
    snprintf(why, sizeof why, "interrupted by signal %d (%s)", (int)g_signal,
             strsignal(g_signal));
  if (!s)
    snprintf(status, sizeof status, "ok");
  else
    snprintf(status, sizeof status, "failed: %s", why[0] ? why : err->msg[0] ? err->msg
                                                                            : csde_strerror(s));
  csde_err werr;
  csde_err_clear(&werr);
  int ws = csde_conv_file_write(p->file, res, p, status, &werr);
  int written = csde_conv_file_written(p->file);
  csde_conv_file_close(p->file, NULL, p, NULL, &werr);
  if (s) {
    char where[PATH_MAX + 160] = "";
    if (cli_rank == 0 && written && !ws)
      snprintf(where, sizeof where, " ('%s' holds the stages that finished, status failed)",
               a->c.output);
    else if (cli_rank == 0 && ws)
      snprintf(where, sizeof where, " (-o '%s': %s)", a->c.output, werr.msg);
    else if (cli_rank == 0 && existed)
      snprintf(where, sizeof where, " ('%s' is kept as it was)", a->c.output);
    if (why[0])
      cli_error(CMD, "%s%s", why, where);
    else
      cli_error(CMD, "%s: %s%s", conv_flag(err->param), err->msg[0] ? err->msg : csde_strerror(s),
                where);
    return CLI_EFAIL;
  }
  if (cli_rank == 0 && ws) { /* rank 0 writes and prints */
    cli_error(CMD, "-o '%s': %s", a->c.output, werr.msg);
    return CLI_EFAIL;
  }
  return CLI_OK;
}

int cli_cmd_converge(int argc, char **argv)
{
  converge_args a;
  converge_run r;
  memset(&r, 0, sizeof r);
  int rc = parse_args(argc, argv, &a);
  if (rc || a.c.help) {
    if (!rc && cli_rank == 0) help(); /* corrsde-mpi: once */
    return rc;
  }
  r.a = &a;
  char script[PATH_MAX + 64];
  if ((rc = check_combinations(&a)) || (rc = check_outputs(&a, script, sizeof script)) ||
      (rc = build(&a, &r, argc, argv)))
    goto out;

  csde_conv_params p = r.plan.params;
  p.P = r.P;
  csde_conv_hooks hooks = {&r, hook_alloc, hook_free, hook_start, hook_progress};
  p.dist = cli_conv_dist; /* corrsde-mpi: this process's share of the paths */
  if (cli_conv_dist) cli_warn_bound_threads(CMD, a.c.threads);
  csde_err err;
  csde_err_clear(&err);
  struct stat ost;
  const int existed = lstat(a.c.output, &ost) == 0; /* for the message of a failed run */
  if ((rc = open_file(&a, &r, &p, &err))) goto out;
  r.bar_on = cli_rank == 0 && !a.c.quiet && (a.c.progress || isatty(STDERR_FILENO));
  csde_conv_progress_line_init(&r.bar, stderr, isatty(STDERR_FILENO), "corrsde " CMD);

  cli_signals sigs;
  g_signal = 0;
  cli_signals_catch(&sigs, on_signal);
  csde_conv_result res;
  int s = csde_conv_run(&p, &hooks, &res, &err);
  cli_signals_restore(&sigs);
  if (r.bar_on) csde_conv_progress_end(&r.bar);
  rc = finish(&a, &p, &res, s, &err, existed);
  if (!rc && cli_rank == 0) rc = write_outputs(&a, &r, &res, script);
  csde_conv_result_free(&res);
out:
  run_free(&r);
  return rc;
}
