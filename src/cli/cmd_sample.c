/* `corrsde sample`: run a process with a solver and keep the saved states in an HDF5
 * trajectory file (layout in io/h5traj.h).
 *
 * Order of work, so that nothing is lost and bad input writes nothing:
 *   1. parse every flag (CLI_EUSAGE on a malformed one);
 *   2. check the output: an existing file needs --force, its directory must be
 *      writable;
 *   3. build every object (covariance, schedule, model, grid, solver) and the starting
 *      states; any failure here prints one line naming the flag and writes nothing;
 *   4. create the file whole (parameters, covariance, empty trajectory, /stats
 *      "running") and flush it;
 *   5. solve; the observer appends and flushes each saved state and draws the progress
 *      bar;
 *   6. write /stats ("ok" or "failed: <reason>") and exit 0, or 1 after a failure.
 */
#include <errno.h>
#include <libgen.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/spec_model.h"
#include "core/spec.h"
#include "corrsde/cov.h"
#include "corrsde/model.h"
#include "corrsde/rng.h"
#include "corrsde/schedule.h"
#include "corrsde/solve.h"
#include "io/h5read.h"
#include "io/h5traj.h"
#include "noise/noise.h"

#define CMD "sample"
#define DEFAULT_MODEL "gaussian"
#define DEFAULT_COV "ar1:rho=0.9"
#define DEFAULT_TAU 16
#define DEFAULT_SHAPE "32x32"
#define DEFAULT_BATCH 4
#define DEFAULT_PROCESS "reverse-sde"
#define DEFAULT_SOLVER "em"
#define DEFAULT_ADAPTIVE_SOLVER "rk45"
#define DEFAULT_STEPS 100
#define DEFAULT_SCHEDULE "vp-linear:bmin=0.1,bmax=20"
#define DEFAULT_DDPM_SCHEDULE "ddpm-linear:n=1000"
#define DEFAULT_GRID "uniform"
#define DEFAULT_SAVE "final"
#define DEFAULT_T_COSINE 0.999 /* cosine: beta(1) = inf */

enum {
  OPT_COV_METHOD = 256, OPT_FRAME_SHAPE, OPT_GRID, OPT_RTOL, OPT_ATOL, OPT_SCHEDULE,
  OPT_T_START, OPT_T_END, OPT_SEED, OPT_NOISE, OPT_SAVE, OPT_DTYPE, OPT_COMPRESS,
  OPT_PROGRESS, OPT_MAX_NFE
};

static const cli_option sample_options[] = {
  {"model", 'm', CLI_MODEL_FORMS},
  {"cov", 'c', "a covariance spec such as ar1:rho=0.9"},
  {"cov-method", OPT_COV_METHOD, "auto, dense, dense-cholesky, circulant, circulant-tchan, "
                                  "circulant-strang or embed"},
  {"frames", 't', "a positive integer"},
  {"frame-shape", OPT_FRAME_SHAPE, CLI_SHAPE_FORMS},
  {"batch", 'b', "a positive integer"},
  {"process", 'p', "forward-sde, reverse-sde, pf-ode, pf-ode-encode, ddpm or ddim[:eta=E]"},
  {"solver", 's', "em, euler, heun, rk45, rkck, rk8pd or dopri5"},
  {"steps", 'n', "a positive integer"},
  {"grid", OPT_GRID, "uniform, quadratic, karras[:rho=R], logsnr or list:t0,t1,..."},
  {"rtol", OPT_RTOL, "a number >= 0"},
  {"atol", OPT_ATOL, "a number >= 0"},
  {"schedule", OPT_SCHEDULE, CLI_SCHEDULE_FORMS},
  {"t-start", OPT_T_START, "a time in [0, 1]"},
  {"t-end", OPT_T_END, "a time in [0, 1]"},
  {"seed", OPT_SEED, "a non-negative integer"},
  {"init", 'i', CLI_INIT_FORMS},
  {"noise", OPT_NOISE, "stream or path"},
  {"save", OPT_SAVE, "final, every:K or times:t1,t2,..."},
  {"dtype", OPT_DTYPE, "float32 or float64"},
  {"compress", OPT_COMPRESS, NULL},
  {"threads", 'j', "a positive integer"},
  {"max-nfe", OPT_MAX_NFE, "a positive integer"},
  {"force", 'f', NULL},
  {"progress", OPT_PROGRESS, NULL},
  {"quiet", 'q', NULL},
  {"output", 'o', "an output file name such as out.h5"},
  {"help", 'h', NULL},
  {0},
};

/* The processes of the command line: the four continuous ones (csde_process order),
 * then the discrete samplers. */
enum { P_FORWARD = 0, P_REVERSE, P_PFODE, P_ENCODE, P_DDPM, P_DDIM };
static const char *const process_names[] = {"forward-sde", "reverse-sde", "pf-ode",
                                            "pf-ode-encode", "ddpm", "ddim", NULL};
#define PROCESS_FORMS "forward-sde, reverse-sde, pf-ode, pf-ode-encode, ddpm or ddim[:eta=E]"

static const char *const noise_names[] = {"stream", "path", NULL};
static const char *const dtype_names[] = {"float64", "float32", NULL};

enum { SAVE_FINAL = 0, SAVE_EVERY, SAVE_TIMES };
#define SAVE_FORMS "final, every:K (K a positive integer) or times:t1,t2,... (times in [0, 1])"

typedef struct {
  const char *model, *cov, *cov_method, *shape_s, *process_s, *solver, *grid, *schedule;
  const char *init, *save_s, *output;
  size_t tau, batch, D;
  int tau_set, batch_set, shape_set;
  int shape_rank;
  size_t shape[3];
  int process;
  double eta;
  int solver_set, grid_set, schedule_set;
  size_t steps;
  int steps_set;
  double rtol, atol;
  int rtol_set, atol_set;
  double t_start, t_end;
  int t_start_set, t_end_set;
  uint64_t seed;
  int noise_path;
  int save_kind;
  size_t save_every;
  double *save_times;
  size_t n_save_times;
  int float32, compress, force, progress, quiet, help;
  size_t threads;
  size_t max_nfe;
  int max_nfe_set;
} sample_args;

/* ---- help ---- */

static void help(void)
{
  printf(
      "Usage: corrsde sample [options] -o OUT.h5\n"
      "\n"
      "Run a diffusion process with a solver from starting states and write every saved\n"
      "state to an HDF5 file. Every option has a default: 'corrsde sample -o out.h5'\n"
      "draws 4 videos of 16 frames of 32x32 from the gaussian model with the reverse SDE.\n"
      "\n"
      "Problem:\n"
      "  -m, --model SPEC       the model (default " DEFAULT_MODEL "; forms below)\n"
      "  -c, --cov SPEC         noise covariance C along the frame axis (default "
      DEFAULT_COV ";\n"
      "                         see 'corrsde cov --help' for the forms)\n"
      "      --cov-method M     auto (default), dense, dense-cholesky, circulant,\n"
      "                         circulant-tchan, circulant-strang or embed\n"
      "  -t, --frames TAU       frames per video (default %d)\n"
      "      --frame-shape S    D, HxW or CxHxW (default " DEFAULT_SHAPE ")\n"
      "  -b, --batch B          videos per run (default %d)\n"
      "      --schedule SPEC    vp-linear[:bmin=0.1,bmax=20] (default), cosine[:s=0.008],\n"
      "                         ddpm-linear[:n=1000,b1=1e-4,bN=0.02] (the default for ddpm)\n"
      "\n"
      "Process and solver:\n"
      "  -p, --process P        forward-sde       0 -> T, from the data\n"
      "                         reverse-sde       T -> t-end, from the prior (default)\n"
      "                         pf-ode            T -> t-end, deterministic decode\n"
      "                         pf-ode-encode     t-start -> T, deterministic encode\n"
      "                         ddpm              ancestral sampling over the N steps of a\n"
      "                                           discrete schedule\n"
      "                         ddim[:eta=E]      DDIM on --steps steps, 0 <= E <= 1\n"
      "                                           (default 0: deterministic)\n"
      "  -s, --solver S         em (default), euler, heun: fixed steps, SDEs and ODEs;\n"
      "                         rk45, rkck, rk8pd (GSL), dopri5 (Dormand-Prince 5(4), as\n"
      "                         scipy's RK45): ODEs (pf-ode, pf-ode-encode), fixed or\n"
      "                         adaptive (default rk45 with --rtol/--atol)\n"
      "  -n, --steps N          fixed steps (default %d)\n"
      "      --grid G           uniform (default), quadratic, karras[:rho=7], logsnr,\n"
      "                         list:t0,t1,...\n"
      "      --rtol R, --atol A adaptive steps with these tolerances (instead of\n"
      "                         --steps; a missing one takes the other's value)\n"
      "      --t-start T        start time (default: 1 for reverse-sde, pf-ode, ddim;\n"
      "                         1e-3 for pf-ode-encode; forward-sde starts at 0)\n"
      "      --t-end E          end time (default: 1e-3 for reverse-sde, pf-ode, ddim;\n"
      "                         1 for forward-sde and pf-ode-encode). With cosine,\n"
      "                         whose beta(1) is infinite, T defaults to 0.999.\n"
      "      --max-nfe N        stop with a failure past N model evaluations\n"
      "                         (default 10000000)\n"
      "\n"
      "Starting states and noise:\n"
      "  -i, --init FILE[:/path]  a dataset [B, tau, *SHAPE] (default /x; a trajectory\n"
      "                         file gives its last saved state of /trajectory/x). Sizes\n"
      "                         not given on the command line are taken from it. Without\n"
      "                         --init, forward-sde and pf-ode-encode start from the\n"
      "                         model's data law, the others from the prior N(0, C).\n"
      "      --seed K           noise seed, a non-negative integer (default 0)\n"
      "      --noise stream|path  stream (default): fresh noise per step, fastest;\n"
      "                         path: runs with the same seed and different --steps\n"
      "                         (powers of two) share one Brownian path\n",
      DEFAULT_TAU, DEFAULT_BATCH, DEFAULT_STEPS);
  /* in parts: C99 compilers need not take string literals over 4095 characters */
  fputs("\n"
      "Output:\n"
      "  -o, --output OUT.h5    the trajectory file (required)\n"
      "      --save WHAT        final (default): the final state only;\n"
      "                         every:K: the start, every K-th step and the end;\n"
      "                         times:t1,t2,...: the states at these times (the nearest\n"
      "                         grid nodes with fixed steps) and the end\n"
      "      --dtype T          float64 (default) or float32\n"
      "      --compress         gzip + shuffle the states\n"
      "  -f, --force            replace an existing OUT.h5, once the new run is viable:\n"
      "                         the run writes OUT.h5.partial and renames it over\n"
      "                         OUT.h5 at its first state past the start (or when it\n"
      "                         ends ok). A run that fails or is killed before that\n"
      "                         leaves the old file as it was\n"
      "  -j, --threads N        OpenMP threads (default 1); the result does not depend\n"
      "                         on N\n"
      "      --progress         show the progress bar even when stderr is not a terminal\n"
      "  -q, --quiet            print nothing but errors\n"
      "  -h, --help             show this help and exit\n",
      stdout);
  printf("\n"
      "Models:\n"
      "  gaussian[:mean=M,std=S,rho=R]  data N(M, S^2 ar1(R) (x) I): mean 0, std 0.5,\n"
      "                                 rho 0.95 by default; exact score\n"
      "  gaussian:file=P.h5             /mean and /frame_cov from a file\n"
      "  gmm:file=P.h5                  /weights [K], /means [K, tau(, D)], /frame_covs\n"
      "                                 [K, tau, tau]; exact score\n"
      "  plugin:LIB.so[:ARGS]           a model plugin (corrsde/plugin.h)\n"
      "  python:FILE.py:NAME[:ARGS]     a Python model: NAME(ctx, ARGS) returns\n"
      "  python:MODULE:NAME[:ARGS]      model(t, x, ctx) (x [B, tau, D]; its .output,\n"
      "                                 default noise); the Python package's plugin\n"
      "\n"
      "File layout (h5py: f['trajectory/x'][-1] is the final state):\n"
      "  /trajectory/x     [n_saved, B, tau, *SHAPE], chunked along axis 0\n"
      "  /trajectory/t     [n_saved] model time;  /trajectory/step  [n_saved] step\n"
      "  /trajectory       attribute n_saved: entries 0 .. n_saved-1 are saved states.\n"
      "                    The datasets are made with room for every state the run\n"
      "                    saves (x 0, t NaN, step -1 until saved) and cut to n_saved\n"
      "                    when it ends; a killed run leaves them long (x[:n_saved])\n"
      "  /parameters       attributes: every setting, the command line, the version\n"
      "  /covariance       matrix [tau, tau] (the C used) and eigenvalues [tau], up to\n"
      "                    %d frames (above, an attribute says why not)\n"
      "  /stats            attributes nfe, steps, accepted, rejected, wall_seconds,\n"
      "                    status ('ok', 'failed: <reason>', or 'running' if killed)\n"
      "Each saved state is flushed to the file as it is produced, and checked first: a\n"
      "state with a NaN or an Inf (or beyond float32's range with --dtype float32) fails\n"
      "the run, naming the step and the index. The disk for an uncompressed run of\n"
      "known length is allocated at the start: a run the disk or 'ulimit -f' cannot\n"
      "hold is refused before it starts. Otherwise a full disk fails the run before the\n"
      "state that would not fit, keeping the states before and the status. The file\n"
      "appears under its name only once it opens whole (it is written as\n"
      "OUT.h5.partial until then). While a run writes OUT.h5 it holds OUT.h5.lock\n"
      "(flock): a second run on the same output is refused.\n"
      "\n"
      "Examples:\n"
      "  corrsde sample -o out.h5\n"
      "  corrsde sample --cov mixed:alpha=1 --frames 8 --frame-shape 3x64x64 --batch 16 \\\n"
      "                 --process pf-ode --solver rk45 --rtol 1e-6 -o ode.h5\n"
      "  corrsde sample --process ddim:eta=0.5 --steps 50 --save every:5 -o ddim.h5\n"
      "  corrsde sample --process forward-sde --init data.h5:/x --save every:10 -o fwd.h5\n"
      "\n"
      "Exit status: 0 on success; 1 when the run fails (the file then keeps every state\n"
      "saved before the failure, and /stats says why; SIGINT, SIGTERM and SIGHUP stop\n"
      "the run the same way) or an input is rejected; 2 for a malformed command line.\n",
      CLI_COV_STORE_MAX_TAU);
}

/* ---- parsing ---- */


static int parse_nonneg(const char *flag, const char *s, double *out)
{
  int rc = cli_parse_double(CMD, flag, s, out);
  if (rc) return rc;
  if (*out < 0) {
    cli_error(CMD, "%s: expected a number >= 0, got '%s'", flag, s);
    return CLI_EUSAGE;
  }
  return CLI_OK;
}

static int parse_time(const char *flag, const char *s, double *out)
{
  int rc = cli_parse_double(CMD, flag, s, out);
  if (rc) return rc;
  if (!(*out >= 0 && *out <= 1)) {
    cli_error(CMD, "%s: expected a time in [0, 1], got '%s'", flag, s);
    return CLI_EUSAGE;
  }
  return CLI_OK;
}

static int parse_process(const char *s, sample_args *a)
{
  a->eta = 0;
  for (int i = 0; process_names[i]; i++)
    if (!strcmp(s, process_names[i])) {
      a->process = i;
      return CLI_OK;
    }
  if (!strncmp(s, "ddim:", 5)) {
    csde_spec sp;
    csde_err err;
    static const char *const keys[] = {"eta", NULL};
    if (csde_spec_parse(s, "process", &sp, &err) || csde_spec_check_keys(&sp, keys, &err) ||
        csde_spec_double(&sp, "eta", 0.0, &a->eta, &err)) {
      cli_error(CMD, "--process '%s': %s (expected ddim[:eta=E], 0 <= E <= 1)", s, err.msg);
      return CLI_EUSAGE;
    }
    if (!(a->eta >= 0 && a->eta <= 1)) {
      cli_error(CMD, "--process '%s': eta must be in [0, 1] (expected ddim[:eta=E])", s);
      return CLI_EUSAGE;
    }
    a->process = P_DDIM;
    return CLI_OK;
  }
  cli_error(CMD, "--process: expected one of %s, got '%s'", PROCESS_FORMS, s);
  return CLI_EUSAGE;
}

static int parse_save(const char *s, sample_args *a)
{
  csde_err err;
  if (!strcmp(s, "final")) {
    a->save_kind = SAVE_FINAL;
    return CLI_OK;
  }
  if (!strncmp(s, "every:", 6)) {
    const char *k = s + 6;
    size_t v = 0;
    int ok = *k != '\0';
    for (const char *p = k; ok && *p; p++) {
      if (*p < '0' || *p > '9' || v > (SIZE_MAX - 9) / 10) ok = 0;
      else v = v * 10 + (size_t)(*p - '0');
    }
    if (ok && v > 0) {
      a->save_kind = SAVE_EVERY;
      a->save_every = v;
      return CLI_OK;
    }
  } else if (!strncmp(s, "times:", 6)) {
    free(a->save_times);
    a->save_times = NULL;
    if (csde_parse_double_list(s + 6, &a->save_times, &a->n_save_times, &err) == 0) {
      for (size_t i = 0; i < a->n_save_times; i++)
        if (!(a->save_times[i] >= 0 && a->save_times[i] <= 1)) {
          cli_error(CMD, "--save '%s': time %g is outside [0, 1] (expected %s)", s,
                    a->save_times[i], SAVE_FORMS);
          return CLI_EUSAGE;
        }
      a->save_kind = SAVE_TIMES;
      return CLI_OK;
    }
    cli_error(CMD, "--save '%s': %s (expected %s)", s, err.msg, SAVE_FORMS);
    return CLI_EUSAGE;
  }
  cli_error(CMD, "--save: expected %s, got '%s'", SAVE_FORMS, s);
  return CLI_EUSAGE;
}

static int parse_args(int argc, char **argv, sample_args *a)
{
  cli_getopt g;
  const char *v;
  int c, rc, idx;
  memset(a, 0, sizeof *a);
  a->model = DEFAULT_MODEL;
  a->cov = DEFAULT_COV;
  a->cov_method = "auto";
  a->tau = DEFAULT_TAU;
  a->shape_s = DEFAULT_SHAPE;
  a->batch = DEFAULT_BATCH;
  a->process_s = DEFAULT_PROCESS;
  a->process = P_REVERSE;
  a->solver = DEFAULT_SOLVER;
  a->steps = DEFAULT_STEPS;
  a->grid = DEFAULT_GRID;
  a->schedule = DEFAULT_SCHEDULE;
  a->save_s = DEFAULT_SAVE;
  a->save_kind = SAVE_FINAL;
  a->threads = 1;
  a->max_nfe = csde_solve_default_params().max_nfe;
  cli_getopt_init(&g, CMD, sample_options, argc, argv);
  while ((c = cli_getopt_next(&g, &v)) != -1) {
    switch (c) {
    case 'm': a->model = v; break;
    case 'c': a->cov = v; break;
    case OPT_COV_METHOD: {
      csde_cov_method m;
      if (csde_cov_method_parse(v, &m, NULL)) {
        cli_error(CMD, "--cov-method: expected one of auto, dense, dense-cholesky, "
                       "circulant, circulant-tchan, circulant-strang, embed, got '%s'", v);
        return CLI_EUSAGE;
      }
      a->cov_method = v;
      break;
    }
    case 't':
      if ((rc = cli_parse_size(CMD, "--frames", v, &a->tau))) return rc;
      a->tau_set = 1;
      break;
    case OPT_FRAME_SHAPE: a->shape_s = v; a->shape_set = 1; break;
    case 'b':
      if ((rc = cli_parse_size(CMD, "--batch", v, &a->batch))) return rc;
      a->batch_set = 1;
      break;
    case 'p':
      if ((rc = parse_process(v, a))) return rc;
      a->process_s = v;
      break;
    case 's': {
      if (!csde_solver_lookup(v)) {
        cli_error(CMD, "--solver: expected one of em, euler, heun, rk45, rkck, rk8pd, dopri5, got '%s'",
                  v);
        return CLI_EUSAGE;
      }
      a->solver = v;
      a->solver_set = 1;
      break;
    }
    case 'n':
      if ((rc = cli_parse_size(CMD, "--steps", v, &a->steps))) return rc;
      a->steps_set = 1;
      break;
    case OPT_GRID: a->grid = v; a->grid_set = 1; break;
    case OPT_RTOL:
      if ((rc = parse_nonneg("--rtol", v, &a->rtol))) return rc;
      a->rtol_set = 1;
      break;
    case OPT_ATOL:
      if ((rc = parse_nonneg("--atol", v, &a->atol))) return rc;
      a->atol_set = 1;
      break;
    case OPT_SCHEDULE: a->schedule = v; a->schedule_set = 1; break;
    case OPT_T_START:
      if ((rc = parse_time("--t-start", v, &a->t_start))) return rc;
      a->t_start_set = 1;
      break;
    case OPT_T_END:
      if ((rc = parse_time("--t-end", v, &a->t_end))) return rc;
      a->t_end_set = 1;
      break;
    case OPT_SEED:
      if ((rc = cli_parse_u64(CMD, "--seed", v, &a->seed))) return rc;
      break;
    case 'i': a->init = v; break;
    case OPT_NOISE:
      if ((rc = cli_parse_choice(CMD, "--noise", v, noise_names, &idx))) return rc;
      a->noise_path = idx == 1;
      break;
    case OPT_SAVE:
      if ((rc = parse_save(v, a))) return rc;
      a->save_s = v;
      break;
    case OPT_DTYPE:
      if ((rc = cli_parse_choice(CMD, "--dtype", v, dtype_names, &idx))) return rc;
      a->float32 = idx == 1;
      break;
    case OPT_COMPRESS: a->compress = 1; break;
    case 'j':
      if ((rc = cli_parse_size(CMD, "--threads", v, &a->threads))) return rc;
      if (a->threads > 4096) {
        cli_error(CMD, "--threads: expected a positive integer up to 4096, got '%s'", v);
        return CLI_EUSAGE;
      }
      break;
    case OPT_MAX_NFE:
      if ((rc = cli_parse_size(CMD, "--max-nfe", v, &a->max_nfe))) return rc;
      a->max_nfe_set = 1;
      break;
    case 'f': a->force = 1; break;
    case OPT_PROGRESS: a->progress = 1; break;
    case 'q': a->quiet = 1; break;
    case 'o': a->output = v; break;
    case 'h': a->help = 1; break;
    default: /* '?': the error is printed */
      return CLI_EUSAGE;
    }
  }
  if (a->help) return CLI_OK;
  if ((rc = cli_spec_shape(CMD, "--frame-shape", a->shape_s, &a->shape_rank, a->shape, &a->D)))
    return rc;
  return CLI_OK;
}

/* Combinations of flags, checked once every flag is known. */
static int check_combinations(sample_args *a)
{
  int adaptive = a->rtol_set || a->atol_set;
  int discrete = a->process == P_DDPM || a->process == P_DDIM;
  if (!a->output) {
    cli_error(CMD, "-o/--output: missing (expected an output file name such as out.h5)");
    return CLI_EUSAGE;
  }
  if (a->progress && a->quiet) {
    cli_error(CMD, "--progress and --quiet exclude each other (give one)");
    return CLI_EUSAGE;
  }
  if (adaptive && a->steps_set) {
    cli_error(CMD, "--steps: give either --steps N (fixed steps) or --rtol/--atol "
                   "(adaptive steps), not both");
    return CLI_EUSAGE;
  }
  if (adaptive && a->grid_set) {
    cli_error(CMD, "--grid: applies to fixed steps (--steps), not to adaptive ones "
                   "(--rtol/--atol)");
    return CLI_EUSAGE;
  }
  if (adaptive) {
    if (!a->rtol_set) a->rtol = a->atol;
    if (!a->atol_set) a->atol = a->rtol;
    if (!(a->rtol > 0 || a->atol > 0)) {
      cli_error(CMD, "--rtol/--atol: expected tolerances > 0, got rtol %g, atol %g", a->rtol,
                a->atol);
      return CLI_EUSAGE;
    }
    if (!a->solver_set) a->solver = DEFAULT_ADAPTIVE_SOLVER;
  }
  if (discrete) {
    const char *name = process_names[a->process];
    if (a->solver_set) {
      cli_error(CMD, "--solver: %s is a discrete sampler and takes no solver (remove "
                     "--solver, or use reverse-sde or pf-ode)", name);
      return CLI_EUSAGE;
    }
    if (adaptive) {
      cli_error(CMD, "--rtol/--atol: %s takes fixed steps only", name);
      return CLI_EUSAGE;
    }
    if (a->process == P_DDPM && (a->steps_set || a->grid_set)) {
      cli_error(CMD, "%s: ddpm takes the N steps of its discrete schedule (set them with "
                     "--schedule ddpm-linear:n=N)", a->steps_set ? "--steps" : "--grid");
      return CLI_EUSAGE;
    }
    if (a->process == P_DDPM && (a->t_start_set || a->t_end_set)) {
      cli_error(CMD, "%s: ddpm runs its schedule from t = 1 to t = 0 (remove the flag, or use "
                     "ddim)", a->t_start_set ? "--t-start" : "--t-end");
      return CLI_EUSAGE;
    }
  } else if (!csde_solver_type_fits(csde_solver_lookup(a->solver), (csde_process)a->process)) {
    char list[256] = "";
    size_t len = 0;
    for (const csde_solver_type *const *t = csde_solver_types(); *t; t++)
      if (csde_solver_type_fits(*t, (csde_process)a->process) && len < sizeof list - 32)
        len += (size_t)snprintf(list + len, sizeof list - len, "%s%s", len ? ", " : "",
                                !strcmp(csde_solver_type_name(*t), "euler")
                                    ? "em, euler" : csde_solver_type_name(*t));
    cli_error(CMD, "--solver: '%s' does not fit %s (solvers that do: %s)", a->solver,
              process_names[a->process], list);
    return CLI_EUSAGE;
  }
  if (a->noise_path) {
    if (a->process != P_FORWARD && a->process != P_REVERSE) {
      cli_error(CMD, "--noise: path applies to forward-sde and reverse-sde (%s draws no "
                     "Brownian path)", process_names[a->process]);
      return CLI_EUSAGE;
    }
    if (a->steps & (a->steps - 1)) {
      cli_error(CMD, "--noise path: --steps must be a power of two (2, 4, ..., 1024, ...), "
                     "got %zu", a->steps);
      return CLI_EUSAGE;
    }
  }
  if (a->process == P_FORWARD && a->t_start_set && a->t_start != 0) {
    cli_error(CMD, "--t-start: forward-sde starts at t = 0 (expected 0, got %g)", a->t_start);
    return CLI_EUSAGE;
  }
  if (a->process == P_DDPM && !a->schedule_set) a->schedule = DEFAULT_DDPM_SCHEDULE;
  return CLI_OK;
}

/* Fill T and eps of the problem from --t-start/--t-end and the process. */
static int set_span(sample_args *a, const csde_schedule *s, csde_problem *P)
{
  csde_problem d = csde_problem_default();
  double T = d.T, eps = d.eps;
  if (!isfinite(csde_schedule_beta(s, T))) T = DEFAULT_T_COSINE; /* cosine: beta(1) = inf */
  switch (a->process) {
  case P_FORWARD:
    if (a->t_end_set) T = a->t_end;
    if (!(T > 0)) {
      cli_error(CMD, "--t-end: forward-sde runs from 0 to t-end; expected 0 < t-end <= 1, "
                     "got %g", T);
      return CLI_EUSAGE;
    }
    a->t_start = 0;
    a->t_end = T;
    eps = 0; /* unused by the forward SDE; the library wants eps < T */
    break;
  case P_ENCODE:
    if (a->t_start_set) eps = a->t_start;
    if (a->t_end_set) T = a->t_end;
    if (!(eps < T)) {
      cli_error(CMD, "--t-start/--t-end: pf-ode-encode runs forwards; expected t-start < "
                     "t-end, got %g and %g", eps, T);
      return CLI_EUSAGE;
    }
    a->t_start = eps;
    a->t_end = T;
    break;
  case P_DDPM:
    a->t_start = 1;
    a->t_end = 0;
    break;
  default: /* reverse-sde, pf-ode, ddim: T -> eps */
    if (a->t_start_set) T = a->t_start;
    if (a->t_end_set) eps = a->t_end;
    if (!(eps < T)) {
      cli_error(CMD, "--t-start/--t-end: %s runs backwards; expected t-end < t-start, got "
                     "t-start %g and t-end %g", process_names[a->process], T, eps);
      return CLI_EUSAGE;
    }
    a->t_start = T;
    a->t_end = eps;
  }
  P->T = T;
  P->eps = eps;
  return CLI_OK;
}

/* An existing file needs --force; the file (or its directory) must be writable. */

/* Sizes from --init where the command line leaves them open; a mismatch is an error. */
static int apply_init_shape(sample_args *a, const cli_init *in)
{
  int r = in->rank - 2;
  for (int i = 0; i < in->rank; i++)
    if (in->dims[i] == 0) {
      char got[128];
      csde_shape_str(in->dims, in->rank, got, sizeof got);
      cli_error(CMD, "--init '%s': dataset %s has shape %s, with an empty axis %d (expected "
                     "[B, tau, *SHAPE], every size >= 1)", a->init, in->dset, got, i);
      return CLI_EFAIL;
    }
  int match = (!a->batch_set || a->batch == in->dims[0]) && (!a->tau_set || a->tau == in->dims[1]);
  if (a->shape_set) {
    match = match && r == a->shape_rank;
    for (int i = 0; match && i < r; i++) match = a->shape[i] == in->dims[2 + i];
  }
  if (!match) {
    /* the expected shape: the file's, with the sizes the command line fixes */
    char got[128], want[128], given[160] = "";
    size_t ed[CSDE_H5_MAXRANK], o = 0;
    int er = a->shape_set ? 2 + a->shape_rank : in->rank;
    for (int i = 0; i < in->rank; i++) ed[i] = in->dims[i];
    if (a->batch_set) {
      ed[0] = a->batch;
      o += (size_t)snprintf(given + o, sizeof given - o, " --batch %zu", a->batch);
    }
    if (a->tau_set) {
      ed[1] = a->tau;
      o += (size_t)snprintf(given + o, sizeof given - o, " --frames %zu", a->tau);
    }
    if (a->shape_set) {
      for (int i = 0; i < a->shape_rank; i++) ed[2 + i] = a->shape[i];
      snprintf(given + o, sizeof given - o, " --frame-shape %s", a->shape_s);
    }
    csde_shape_str(in->dims, in->rank, got, sizeof got);
    csde_shape_str(ed, er, want, sizeof want);
    cli_error(CMD, "--init '%s': dataset %s has shape %s, expected %s ([B, tau, *SHAPE] "
                   "with%s)",
              a->init, in->dset, got, want, given);
    return CLI_EFAIL;
  }
  a->batch = in->dims[0];
  a->tau = in->dims[1];
  if (!a->shape_set) {
    a->shape_rank = r;
    a->D = 1;
    for (int i = 0; i < r; i++) {
      a->shape[i] = in->dims[2 + i];
      a->D *= a->shape[i];
    }
  }
  return CLI_OK;
}

/* ---- the progress bar ---- */

typedef struct {
  int on, tty;
  double t0, t1;
  size_t total;  /* steps, 0 if adaptive */
  double start, last;
  int drawn;
} progress;



static void progress_draw(progress *p, size_t step, double t, size_t saved, int force)
{
  if (!p->on) return;
  double tn = cli_now();
  if (!force && tn - p->last < (p->tty ? 0.1 : 1.0)) return;
  p->last = tn;
  double frac = p->total ? (double)step / (double)p->total
                         : fabs(t - p->t0) / fmax(fabs(p->t1 - p->t0), 1e-300);
  frac = fmin(fmax(frac, 0.0), 1.0);
  double el = tn - p->start, eta = frac > 0 ? el * (1 - frac) / frac : NAN;
  char bar[32], es[32], steps[48];
  int w = 20, k = (int)(frac * w + 0.5);
  for (int i = 0; i < w; i++) bar[i] = i < k ? '#' : '.';
  bar[w] = '\0';
  cli_fmt_eta(frac >= 1 ? el : eta, es, sizeof es);
  if (p->total)
    snprintf(steps, sizeof steps, "step %zu/%zu", step, p->total);
  else
    snprintf(steps, sizeof steps, "step %zu", step);
  fprintf(stderr, "%s%s  t = %-10.6g [%s] %3.0f%%  %s %s  saved %zu%s", p->tty ? "\r" : "",
          steps, t, bar, 100 * frac, frac >= 1 ? "took" : "ETA", es, saved,
          p->tty ? "\033[K" : "\n");
  fflush(stderr);
  p->drawn = 1;
}

static void progress_end(progress *p)
{
  if (p->on && p->tty && p->drawn) fputc('\n', stderr);
  p->drawn = 0;
}

/* ---- the observer: saving and progress ---- */

static volatile sig_atomic_t g_signal = 0;

static void on_signal(int sig) { g_signal = sig; }

typedef struct {
  csde_h5traj *w;
  int kind;               /* SAVE_* */
  size_t every;
  const unsigned char *mask; /* fixed grids, SAVE_TIMES: mask[step] = 1 to save */
  size_t nmask;
  const double *times;    /* adaptive, SAVE_TIMES: sorted along the solve */
  size_t ntimes, next;
  double dir;             /* +1 forwards in t, -1 backwards */
  size_t final_step;      /* fixed grids; 0 for adaptive */
  double t_end;
  progress bar;
  int write_failed;
  csde_err err;
} observer_ctx;

static int is_final(const observer_ctx *o, size_t step, double t)
{
  return o->final_step ? step == o->final_step : t == o->t_end;
}

static int want_save(observer_ctx *o, size_t step, double t)
{
  if (is_final(o, step, t)) return 1;
  switch (o->kind) {
  case SAVE_EVERY:
    return step % o->every == 0;
  case SAVE_TIMES:
    if (o->mask) return step < o->nmask && o->mask[step];
    {
      int hit = 0; /* adaptive: the first state at or past each requested time */
      double tol = 1e-12 * fmax(1.0, fabs(t));
      while (o->next < o->ntimes && o->dir * (t - o->times[o->next]) >= -tol) {
        hit = 1;
        o->next++;
      }
      return hit;
    }
  default:
    return 0;
  }
}

static int observe(size_t step, double t, const double *x, void *user)
{
  observer_ctx *o = user;
  if (want_save(o, step, t) &&
      (csde_h5traj_count(o->w) == 0 || csde_h5traj_last_step(o->w) != (int64_t)step)) {
    if (csde_h5traj_append(o->w, (int64_t)step, t, x, &o->err)) {
      o->write_failed = 1;
      return 1;
    }
  }
  progress_draw(&o->bar, step, t, csde_h5traj_count(o->w), is_final(o, step, t));
  return g_signal != 0;
}

/* ---- parameters ---- */

/* The command line as a shell would take it back. */

typedef struct {
  csde_cov *C;
  csde_schedule *sched;
  cli_model model;
  cli_init init;
  csde_problem P;
  csde_solve_params par;
  csde_solver *solver;
  double *grid;           /* the fixed-step nodes, nsteps + 1 (owned copy) */
  size_t nsteps;          /* 0: adaptive */
  unsigned char *mask;    /* SAVE_TIMES on a fixed grid */
  int save_start;         /* SAVE_TIMES, adaptive: a time at the start */
  double *out_times;      /* SAVE_TIMES, adaptive */
  size_t n_out;
  double *x;
  size_t n;
  double *Cmat, *eig;
  const char *init_desc;
  char *init_text;
  char *cmdline;
} sample_run;

static void run_free(sample_run *r)
{
  csde_solver_free(r->solver);
  cli_model_free(&r->model);
  cli_init_free(&r->init);
  csde_schedule_free(r->sched);
  csde_cov_free(r->C);
  free(r->grid);
  free(r->mask);
  free(r->out_times);
  free(r->x);
  free(r->Cmat);
  free(r->eig);
  free(r->init_text);
  free(r->cmdline);
}

#define PUT(call)                                                                          \
  do {                                                                                     \
    if ((s = (call))) return s;                                                            \
  } while (0)

static int write_parameters(csde_h5traj *w, const sample_args *a, const sample_run *r,
                            csde_err *err)
{
  int s;
  const char *g = "/parameters";
  int adaptive = r->nsteps == 0 && a->process != P_DDPM;
  char buf[64];
  int64_t i64;
  double f64;
  uint64_t u64;
  PUT(csde_h5traj_attr_str(w, g, "process", process_names[a->process], err));
  PUT(csde_h5traj_attr_str(w, g, "process_spec", a->process_s, err));
  if (a->process == P_DDIM) PUT(csde_h5traj_attr_f64(w, g, "eta", &a->eta, 1, err));
  PUT(csde_h5traj_attr_str(w, g, "solver",
                           a->process == P_DDPM || a->process == P_DDIM ? "none" : a->solver,
                           err));
  PUT(csde_h5traj_attr_str(w, g, "stepping", adaptive ? "adaptive" : "fixed", err));
  i64 = (int64_t)(a->process == P_DDPM ? r->nsteps : adaptive ? 0 : a->steps);
  PUT(csde_h5traj_attr_i64(w, g, "steps", &i64, 1, err));
  PUT(csde_h5traj_attr_f64(w, g, "rtol", adaptive ? &a->rtol : &(double){0}, 1, err));
  PUT(csde_h5traj_attr_f64(w, g, "atol", adaptive ? &a->atol : &(double){0}, 1, err));
  PUT(csde_h5traj_attr_str(w, g, "grid",
                           adaptive ? "adaptive" : a->process == P_DDPM ? "ddpm" : a->grid,
                           err));
  i64 = (int64_t)a->max_nfe;
  PUT(csde_h5traj_attr_i64(w, g, "max_nfe", &i64, 1, err));
  PUT(csde_h5traj_attr_str(w, g, "schedule", csde_schedule_spec(r->sched), err));
  PUT(csde_h5traj_attr_f64(w, g, "t_start", &a->t_start, 1, err));
  PUT(csde_h5traj_attr_f64(w, g, "t_end", &a->t_end, 1, err));
  PUT(csde_h5traj_attr_f64(w, g, "T", &r->P.T, 1, err));
  PUT(csde_h5traj_attr_f64(w, g, "eps", &r->P.eps, 1, err));
  PUT(csde_h5traj_attr_str(w, g, "covariance", csde_cov_spec(r->C), err));
  PUT(csde_h5traj_attr_str(w, g, "cov_method", a->cov_method, err));
  PUT(csde_h5traj_attr_str(w, g, "cov_method_used",
                           csde_cov_method_name(csde_cov_method_of(r->C)), err));
  PUT(csde_h5traj_attr_str(w, g, "model", r->model.spec, err));
  PUT(csde_h5traj_attr_str(w, g, "model_name", csde_model_name(r->model.model), err));
  PUT(csde_h5traj_attr_str(w, g, "model_output",
                           csde_model_output_name(csde_model_output_of(r->model.model)), err));
  i64 = (int64_t)a->tau;
  PUT(csde_h5traj_attr_i64(w, g, "frames", &i64, 1, err));
  int64_t shape[3];
  for (int i = 0; i < a->shape_rank; i++) shape[i] = (int64_t)a->shape[i];
  PUT(csde_h5traj_attr_i64_list(w, g, "frame_shape", shape, (size_t)a->shape_rank, err));
  i64 = (int64_t)a->D;
  PUT(csde_h5traj_attr_i64(w, g, "pixels", &i64, 1, err));
  i64 = (int64_t)a->batch;
  PUT(csde_h5traj_attr_i64(w, g, "batch", &i64, 1, err));
  PUT(csde_h5traj_attr_u64(w, g, "seed", &a->seed, 1, err));
  PUT(csde_h5traj_attr_str(w, g, "init", r->init_desc, err));
  PUT(csde_h5traj_attr_str(w, g, "noise", a->noise_path ? "path" : "stream", err));
  if (a->noise_path) {
    i64 = (int64_t)r->par.path_level;
    PUT(csde_h5traj_attr_i64(w, g, "path_level", &i64, 1, err));
  }
  PUT(csde_h5traj_attr_str(w, g, "rng", csde_rng_name(), err));
  PUT(csde_h5traj_attr_str(w, g, "rng_kernel", csde_rng_kernel_name(), err));
  PUT(csde_h5traj_attr_str(w, g, "noise_streams",
                           "step n: stream n; path noise, fine step i: stream 2^62 + i; "
                           "initial states: stream 2^63; sample j, row r, pixel p: index "
                           "(j * noise_dim + r) * D + p",
                           err));
  u64 = CSDE_STREAM_INIT;
  PUT(csde_h5traj_attr_u64(w, g, "init_stream", &u64, 1, err));
  PUT(csde_h5traj_attr_str(w, g, "save", a->save_s, err));
  if (a->save_kind == SAVE_TIMES) { /* a dataset: an attribute is limited to 64 KiB */
    size_t nt = a->n_save_times;
    PUT(csde_h5traj_write_array(w, "/parameters/save_times", a->save_times, 1, &nt, err));
  }
  PUT(csde_h5traj_attr_str(w, g, "dtype", a->float32 ? "float32" : "float64", err));
  i64 = a->compress;
  PUT(csde_h5traj_attr_i64(w, g, "compress", &i64, 1, err));
  PUT(csde_h5traj_attr_str(w, g, "compression", a->compress ? "gzip(4)+shuffle" : "none", err));
  i64 = (int64_t)a->threads;
  PUT(csde_h5traj_attr_i64(w, g, "threads", &i64, 1, err));
  PUT(csde_h5traj_attr_str(w, g, "command_line", r->cmdline ? r->cmdline : "", err));
  PUT(csde_h5traj_attr_str(w, g, "corrsde_version", csde_version(), err));
  time_t now_t = time(NULL);
  struct tm tmv;
  gmtime_r(&now_t, &tmv);
  strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tmv);
  PUT(csde_h5traj_attr_str(w, g, "created", buf, err));

  /* the covariance actually used */
  const char *c = "/covariance";
  if (r->Cmat) {
    size_t d2[2] = {a->tau, a->tau};
    PUT(csde_h5traj_write_array(w, "/covariance/matrix", r->Cmat, 2, d2, err));
    PUT(csde_h5traj_write_array(w, "/covariance/eigenvalues", r->eig, 1, d2, err));
  } else {
    char why[160];
    snprintf(why, sizeof why, "not stored: %zu frames > %d (it would take %.3g MB; "
             "'corrsde cov' shows it)", a->tau, CLI_COV_STORE_MAX_TAU,
             (double)a->tau * (double)a->tau * 8e-6);
    PUT(csde_h5traj_attr_str(w, c, "matrix", why, err));
  }
  csde_cov_method m = csde_cov_method_of(r->C);
  PUT(csde_h5traj_attr_str(w, c, "spec", csde_cov_spec(r->C), err));
  PUT(csde_h5traj_attr_str(w, c, "method", csde_cov_method_name(m), err));
  csde_cov_report rep = csde_cov_approx_report(r->C);
  i64 = !rep.approx;
  PUT(csde_h5traj_attr_i64(w, c, "exact", &i64, 1, err));
  i64 = (int64_t)csde_cov_noise_dim(r->C);
  PUT(csde_h5traj_attr_i64(w, c, "noise_dim", &i64, 1, err));
  if (r->Cmat || csde_cov_logdet_cheap(r->C)) { /* else a Levinson pass, O(tau^2) */
    f64 = csde_cov_logdet(r->C);
    PUT(csde_h5traj_attr_f64(w, c, "logdet", &f64, 1, err));
  }
  double eb[2];
  i64 = csde_cov_eig_bounds(r->C, &eb[0], &eb[1]);
  PUT(csde_h5traj_attr_f64_list(w, c, "eigenvalue_range", eb, 2, err));
  PUT(csde_h5traj_attr_i64(w, c, "eigenvalue_range_exact", &i64, 1, err));
  if (rep.approx) {
    PUT(csde_h5traj_attr_f64(w, c, "kl_per_frame", &rep.kl_per_frame, 1, err));
    PUT(csde_h5traj_attr_f64(w, c, "max_entry_diff", &rep.max_entry_diff, 1, err));
  }
  return csde_h5traj_flush(w, err);
}

/* ---- building everything before the file exists ---- */

/* The option behind a library setting (csde_err.param). */
static const char *param_flag(const char *param)
{
  static const struct {
    const char *param, *flag;
  } map[] = {{CSDE_PARAM_SOLVER, "--solver"},       {CSDE_PARAM_STEPS, "--steps"},
             {CSDE_PARAM_GRID, "--grid"},           {CSDE_PARAM_TOLERANCES, "--rtol/--atol"},
             {CSDE_PARAM_NOISE, "--noise"},         {CSDE_PARAM_MODEL, "--model"},
             {CSDE_PARAM_SPAN, "--t-start/--t-end"},
             {CSDE_PARAM_SIZE, "--batch/--frames/--frame-shape"}};
  for (size_t i = 0; param && i < sizeof map / sizeof map[0]; i++)
    if (!strcmp(param, map[i].param)) return map[i].flag;
  return "--solver";
}

static int build(sample_args *a, sample_run *r, observer_ctx *o, int argc, char **argv)
{
  int rc;
  csde_err err;
  csde_err_clear(&err);

  if (a->init) {
    if ((rc = cli_spec_init(CMD, a->init, &r->init))) return rc;
    if ((rc = apply_init_shape(a, &r->init))) return rc;
  }
  size_t n = a->batch;
  if (n > SIZE_MAX / a->tau || (n *= a->tau) > SIZE_MAX / a->D ||
      (n *= a->D) > SIZE_MAX / 8 / sizeof(double)) {
    cli_error(CMD, "--batch/--frames/--frame-shape: %zu x %zu x %zu values do not fit in "
                   "memory", a->batch, a->tau, a->D);
    return CLI_EFAIL;
  }
  r->n = n;

  if ((rc = cli_spec_cov(CMD, a->cov, a->cov_method, a->tau, &r->C))) return rc;
  if ((rc = cli_spec_schedule(CMD, a->schedule, &r->sched))) return rc;
  if (a->process == P_DDPM && csde_schedule_nsteps(r->sched) == 0) {
    cli_error(CMD, "--schedule '%s': ddpm needs a discrete schedule (expected "
                   "ddpm-linear[:n=N] or discrete:betas=...)", a->schedule);
    return CLI_EFAIL;
  }
  if ((rc = cli_spec_model(CMD, a->model, r->C, r->sched, a->tau, a->D, &r->model))) return rc;
  /* every process but forward-sde asks for the score: build its dense parts now, so that
   * a clip too long for them is refused here, with its size, not mid-solve */
  if (a->process != P_FORWARD && (rc = cli_model_prepare_score(CMD, &r->model))) return rc;
  if (r->model.kind == CLI_MODEL_GAUSSIAN && a->threads > 1) { /* the built-in's own tiles */
    csde_err err;
    if (csde_model_gaussian_set_threads(r->model.model, (int)a->threads, &err)) {
      cli_error(CMD, "%s", err.msg);
      return CLI_EFAIL;
    }
  }

  r->P = csde_problem_default();
  r->P.process = a->process <= P_ENCODE ? (csde_process)a->process : CSDE_PROC_REVERSE_SDE;
  r->P.tau = a->tau;
  r->P.D = a->D;
  r->P.batch = a->batch;
  r->P.C = r->C;
  r->P.sched = r->sched;
  r->P.model = r->model.model;
  if ((rc = set_span(a, r->sched, &r->P))) return rc;

  int adaptive = a->rtol_set || a->atol_set;
  r->par = csde_solve_default_params();
  r->par.solver = a->solver;
  r->par.steps = adaptive ? 0 : a->steps;
  r->par.grid = a->grid;
  r->par.rtol = adaptive ? a->rtol : 0;
  r->par.atol = adaptive ? a->atol : 0;
  r->par.max_nfe = a->max_nfe;
  r->par.seed = a->seed;
  r->par.first_sample = 0;
  r->par.threads = (int)a->threads;
  r->par.observer = observe;
  r->par.observer_user = o;
  if (a->noise_path) {
    unsigned k = 0;
    while (((size_t)1 << k) < a->steps) k++; /* log2(steps), rounded up */
    r->par.noise = CSDE_NOISE_PATH;
    r->par.path_level = k;
  }

  /* --save times: inside the span; an adaptive solve lands on them exactly (sorted
   * along the solve), a fixed grid saves the nearest node (mask, below) */
  double t0 = a->t_start, t1 = a->t_end;
  if (a->save_kind == SAVE_TIMES) {
    double lo = fmin(t0, t1), hi = fmax(t0, t1), tol = 1e-12;
    for (size_t i = 0; i < a->n_save_times; i++)
      if (a->save_times[i] < lo - tol || a->save_times[i] > hi + tol) {
        cli_error(CMD, "--save '%s': time %g is outside the run's span [%g, %g] (expected "
                       "times between --t-start and --t-end)",
                  a->save_s, a->save_times[i], lo, hi);
        return CLI_EUSAGE;
      }
    if (adaptive) {
      r->out_times = malloc(a->n_save_times * sizeof *r->out_times);
      if (!r->out_times) {
        cli_error(CMD, "--save: out of memory");
        return CLI_EFAIL;
      }
      memcpy(r->out_times, a->save_times, a->n_save_times * sizeof *r->out_times);
      double dir = t1 > t0 ? 1 : -1;
      for (size_t i = 1; i < a->n_save_times; i++) /* insertion sort: few values */
        for (size_t j = i; j > 0 && dir * (r->out_times[j - 1] - r->out_times[j]) > 0; j--) {
          double tmp = r->out_times[j];
          r->out_times[j] = r->out_times[j - 1];
          r->out_times[j - 1] = tmp;
        }
      r->n_out = a->n_save_times;
      /* times at the start are the starting state (step 0), not a state of the solve */
      size_t k0 = 0;
      while (k0 < r->n_out && fabs(r->out_times[k0] - t0) <= 1e-12 * fmax(1.0, fabs(t0))) k0++;
      r->save_start = k0 > 0;
      memmove(r->out_times, r->out_times + k0, (r->n_out - k0) * sizeof *r->out_times);
      r->n_out -= k0;
      r->par.out_times = r->n_out ? r->out_times : NULL;
      r->par.n_out_times = r->n_out;
    }
  }

  /* The grid: where the fixed-step states fall (save times, the final step). */
  if (a->process == P_DDPM) {
    size_t N = csde_schedule_nsteps(r->sched);
    r->grid = malloc((N + 1) * sizeof *r->grid);
    if (!r->grid) {
      cli_error(CMD, "--schedule: out of memory for %zu steps", N);
      return CLI_EFAIL;
    }
    for (size_t k = 0; k <= N; k++) r->grid[k] = (double)(N - k) / (double)N;
    r->nsteps = N;
  } else if (a->process == P_DDIM) {
    if (csde_grid_make(a->grid, r->sched, t0, t1, a->steps, &r->grid, &r->nsteps, &err))
      return cli_lib_error(CMD, "--grid", a->grid, &err);
  } else {
    if (csde_solver_alloc(&r->solver, &r->P, &r->par, &err)) {
      cli_error(CMD, "%s: %s", param_flag(err.param),
                err.msg[0] ? err.msg : csde_strerror(err.status));
      return CLI_EFAIL;
    }
    if (!adaptive) {
      size_t ns;
      const double *g = csde_solver_grid(r->solver, &ns);
      r->grid = malloc((ns + 1) * sizeof *r->grid);
      if (!r->grid) {
        cli_error(CMD, "--steps: out of memory for %zu steps", ns);
        return CLI_EFAIL;
      }
      memcpy(r->grid, g, (ns + 1) * sizeof *g);
      r->nsteps = ns;
    }
  }

  if (a->save_kind == SAVE_TIMES && r->grid) {
    r->mask = calloc(r->nsteps + 1, 1);
    if (!r->mask) {
      cli_error(CMD, "--save: out of memory");
      return CLI_EFAIL;
    }
    for (size_t i = 0; i < a->n_save_times; i++) {
      size_t best = 0; /* the nearest node */
      for (size_t k = 1; k <= r->nsteps; k++)
        if (fabs(r->grid[k] - a->save_times[i]) < fabs(r->grid[best] - a->save_times[i]))
          best = k;
      r->mask[best] = 1;
    }
  }

  /* the starting states */
  r->x = malloc(r->n * sizeof *r->x);
  if (!r->x) {
    cli_error(CMD, "--batch: out of memory for %zu values", r->n);
    return CLI_EFAIL;
  }
  csde_rng_key key = {a->seed, CSDE_STREAM_INIT};
  int forward = a->process == P_FORWARD || a->process == P_ENCODE;
  if (a->init) {
    double *v = NULL;
    if ((rc = cli_init_read(CMD, a->init, &r->init, &v))) return rc;
    memcpy(r->x, v, r->n * sizeof *v);
    free(v);
    for (size_t i = 0; i < r->n; i++)
      if (!isfinite(r->x[i])) {
        cli_error(CMD, "--init '%s': value %zu of %s is %g (expected finite numbers)", a->init,
                  i, r->init.dset, r->x[i]);
        return CLI_EFAIL;
      }
    size_t len = strlen(r->init.file) + strlen(r->init.dset) + 32;
    r->init_text = malloc(len);
    if (r->init_text)
      snprintf(r->init_text, len, "%s:%s%s", r->init.file, r->init.dset,
               r->init.last ? " (last saved state)" : "");
    r->init_desc = r->init_text ? r->init_text : a->init;
  } else if (forward) {
    if (!cli_model_has_data_law(&r->model)) {
      cli_error(CMD, "--init: %s from a plugin model needs --init (a plugin has no data law "
                     "to start from; expected %s)", process_names[a->process], CLI_INIT_FORMS);
      return CLI_EUSAGE;
    }
    if (cli_model_sample_data(&r->model, key, 0, a->batch, r->x, &err))
      return cli_lib_error(CMD, "--model", a->model, &err);
    r->init_desc = "data law p_0 of the model (seed, stream 2^63)";
  } else {
    csde_cov_ws *ws = NULL;
    int s = csde_cov_ws_alloc(&ws, r->C, a->D, (int)a->threads, &err);
    if (!s) s = csde_cov_sample(r->C, ws, key, 0, a->batch, r->x, &err);
    csde_cov_ws_free(ws);
    if (s) return cli_lib_error(CMD, "--cov", a->cov, &err);
    r->init_desc = "prior N(0, C) (seed, stream 2^63)";
  }

  /* what /covariance shows: the matrix and its eigenvalues up to CLI_COV_STORE_MAX_TAU
   * frames (a dense eigensolve, O(tau^3)); above, nothing of size tau^2 is formed */
  r->cmdline = cli_command_line(argc, argv);
  if (a->tau > CLI_COV_STORE_MAX_TAU) return CLI_OK;
  r->Cmat = malloc(a->tau * a->tau * sizeof *r->Cmat);
  r->eig = malloc(a->tau * sizeof *r->eig);
  if (!r->Cmat || !r->eig) {
    cli_error(CMD, "--frames: out of memory for a %zu x %zu matrix", a->tau, a->tau);
    return CLI_EFAIL;
  }
  csde_cov_matrix(r->C, r->Cmat);
  if (csde_cov_eigenvalues(r->C, r->eig, &err)) return cli_lib_error(CMD, "--cov", a->cov, &err);
  return CLI_OK;
}

/* ---- the run ---- */

static void shape_text(const sample_args *a, char *buf, size_t len)
{
  size_t d[CSDE_H5_MAXRANK];
  d[0] = a->batch;
  d[1] = a->tau;
  for (int i = 0; i < a->shape_rank; i++) d[2 + i] = a->shape[i];
  csde_shape_str(d, 2 + a->shape_rank, buf, len);
}

int cli_cmd_sample(int argc, char **argv)
{
  sample_args a;
  sample_run r;
  memset(&r, 0, sizeof r);
  int rc = parse_args(argc, argv, &a);
  if (rc || a.help) {
    if (!rc) help();
    free(a.save_times);
    return rc;
  }
  observer_ctx o;
  memset(&o, 0, sizeof o);
  if ((rc = check_combinations(&a)) || (rc = cli_check_output(CMD, "-o", a.output, a.force)) ||
      (rc = build(&a, &r, &o, argc, argv))) {
    run_free(&r);
    free(a.save_times);
    return rc;
  }

  /* the file, whole, before the solve */
  csde_err err;
  csde_err_clear(&err);
  csde_h5traj_params hp;
  memset(&hp, 0, sizeof hp);
  hp.batch = a.batch;
  hp.tau = a.tau;
  hp.shape_rank = a.shape_rank;
  for (int i = 0; i < a.shape_rank; i++) hp.shape[i] = a.shape[i];
  hp.float32 = a.float32;
  hp.compress = a.compress;
  hp.overwrite = a.force;
  csde_h5traj *w = NULL;
  /* the states the run saves, at most, if known: the file makes room for them at once
   * (and refuses a run the disk cannot hold) */
  hp.capacity = 1; /* final: the end */
  if (a.save_kind == SAVE_EVERY) /* steps 0, K, 2K, ... and the end */
    hp.capacity = r.nsteps ? r.nsteps / a.save_every + 1 + (r.nsteps % a.save_every != 0) : 0;
  else if (r.mask) /* the marked nodes before the end, and the end */
    for (size_t k = 0; k < r.nsteps; k++) hp.capacity += r.mask[k];
  else if (a.save_kind == SAVE_TIMES) /* adaptive: the first state past each time */
    hp.capacity = r.n_out + 1 + (size_t)r.save_start;
  if (csde_h5traj_create(&w, a.output, &hp, &err) || write_parameters(w, &a, &r, &err) ||
      csde_h5traj_ready(w, &err)) {
    csde_h5traj_discard(w);
    cli_error(CMD, "-o '%s': %s", a.output, err.msg);
    run_free(&r);
    free(a.save_times);
    return CLI_EFAIL;
  }

  o.w = w;
  o.kind = a.save_kind;
  o.every = a.save_every;
  o.mask = r.mask;
  o.nmask = r.mask ? r.nsteps + 1 : 0;
  o.times = r.out_times;
  o.ntimes = r.n_out;
  o.dir = a.t_end > a.t_start ? 1 : -1;
  o.final_step = r.nsteps;
  o.t_end = a.t_end;
  o.bar.on = !a.quiet && (a.progress || isatty(STDERR_FILENO));
  o.bar.tty = isatty(STDERR_FILENO);
  o.bar.t0 = a.t_start;
  o.bar.t1 = a.t_end;
  o.bar.total = r.nsteps;
  o.bar.start = o.bar.last = cli_now();

  csde_solve_stats st;
  memset(&st, 0, sizeof st);
  int s = CSDE_SUCCESS;
  /* the starting state (step 0) */
  int save0 = a.save_kind == SAVE_EVERY || (r.mask && r.mask[0]) || r.save_start;
  if (save0 && csde_h5traj_append(w, 0, a.t_start, r.x, &o.err)) {
    o.write_failed = 1;
    s = o.err.status;
  }

  struct sigaction sa, old_int, old_term, old_hup;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  g_signal = 0;
  sigaction(SIGINT, &sa, &old_int);
  sigaction(SIGTERM, &sa, &old_term);
  sigaction(SIGHUP, &sa, &old_hup);
  if (!s) {
    if (a.process == P_DDPM) {
      s = csde_sample_ddpm(&r.P, &r.par, r.x, &st, &err);
    } else if (a.process == P_DDIM) {
      s = csde_sample_ddim(&r.P, &r.par, a.eta, r.x, &st, &err);
    } else {
      s = csde_solver_run(r.solver, r.x, &st, &err);
    }
  }
  sigaction(SIGINT, &old_int, NULL);
  sigaction(SIGTERM, &old_term, NULL);
  sigaction(SIGHUP, &old_hup, NULL);

  /* the final state, if the observer could not tell it was the last */
  if (!s && !o.write_failed && !g_signal && !st.stopped &&
      (csde_h5traj_count(w) == 0 || csde_h5traj_last_step(w) != (int64_t)st.steps)) {
    if (csde_h5traj_append(w, (int64_t)st.steps, a.t_end, r.x, &o.err)) o.write_failed = 1;
  }
  progress_end(&o.bar);

  char status[CSDE_MSG_MAX + 64];
  int failed = 1;
  if (o.write_failed)
    snprintf(status, sizeof status, "failed: %s", o.err.msg);
  else if (g_signal)
    snprintf(status, sizeof status, "failed: interrupted by signal %d (%s) at step %zu",
             (int)g_signal, strsignal(g_signal), st.steps);
  else if (s)
    snprintf(status, sizeof status, "failed: %s", err.msg[0] ? err.msg : csde_strerror(s));
  else if (st.stopped)
    snprintf(status, sizeof status, "failed: the solve stopped early at step %zu", st.steps);
  else {
    snprintf(status, sizeof status, "ok");
    failed = 0;
  }
  size_t saved = csde_h5traj_count(w);
  csde_err werr;
  csde_err_clear(&werr);
  int ws = csde_h5traj_stats(w, &st, status, &werr);
  int kept_old = csde_h5traj_replaces(w); /* --force, and the run never became viable */
  int cs = csde_h5traj_close(w, ws ? NULL : &werr);
  if (failed && kept_old) {
    cli_error(CMD, "%s (the run saved nothing past its start: '%s' is kept as it was)",
              status, a.output);
    rc = CLI_EFAIL;
  } else if (failed) {
    cli_error(CMD, "%s (%zu saved state%s kept in '%s')", status, saved, saved == 1 ? "" : "s",
              a.output);
    if (ws) cli_error(CMD, "-o '%s': %s", a.output, werr.msg);
    rc = CLI_EFAIL;
  } else if (ws || cs) {
    cli_error(CMD, "-o '%s': %s", a.output, werr.msg);
    rc = CLI_EFAIL;
  } else {
    rc = CLI_OK;
    if (!a.quiet) {
      char shape[128];
      shape_text(&a, shape, sizeof shape);
      printf("wrote %s: %zu saved state%s of %s (%s)\n", a.output, saved, saved == 1 ? "" : "s",
             shape, a.float32 ? "float32" : "float64");
      printf("%s, %s%s, ", process_names[a.process],
             a.process >= P_DDPM ? "" : "solver ", a.process >= P_DDPM ? "discrete sampler"
                                                                     : a.solver);
      if (r.nsteps)
        printf("%zu steps\n", r.nsteps);
      else
        printf("adaptive (rtol %g, atol %g)\n", a.rtol, a.atol);
      printf("nfe %zu, steps %zu (accepted %zu, rejected %zu), %.3f s, status ok\n", st.nfe,
             st.steps, st.accepted, st.rejected, st.wall_seconds);
    }
  }
  run_free(&r);
  free(a.save_times);
  return rc;
}
