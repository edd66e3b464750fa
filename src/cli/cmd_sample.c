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
#include "cli/options.h"
#include "cli/spec_model.h"
#include "corrsde/cov.h"
#include "corrsde/model.h"
#include "corrsde/rng.h"
#include "corrsde/run.h"
#include "corrsde/schedule.h"
#include "corrsde/solve.h"
#include "corrsde/io.h"

#define CMD "sample"
#define DEFAULT_TAU 16
#define DEFAULT_SHAPE "32x32"
#define DEFAULT_BATCH 4
#define DEFAULT_PROCESS "reverse-sde"
#define DEFAULT_STEPS 100
#define DEFAULT_DDPM_SCHEDULE "ddpm-linear:n=1000"
#define DEFAULT_GRID "uniform"
#define DEFAULT_SAVE "final"

enum {
  OPT_GRID = 256, OPT_RTOL, OPT_ATOL, OPT_T_START, OPT_T_END, OPT_NOISE, OPT_SAVE, OPT_DTYPE,
  OPT_COMPRESS, OPT_MAX_NFE, OPT_X0_CLIP, OPT_X0_THRESHOLD, OPT_COND, OPT_UNCOND,
  OPT_GUIDANCE, OPT_GUIDANCE_SPLIT, OPT_CORRECTOR
};

/* sample's own options, after the shared ones (options.h) */
static const cli_option sample_own[] = {
  {"batch", 'b', "a positive integer"},
  {"process", 'p', cli_arg_run_process},
  {"solver", 's', "a solver name (corrsde sample --help lists them)"},
  {"steps", 'n', "a positive integer"},
  {"grid", OPT_GRID, "uniform, quadratic, karras[:rho=R], logsnr or list:t0,t1,..."},
  {"rtol", OPT_RTOL, "a number >= 0"},
  {"atol", OPT_ATOL, "a number >= 0"},
  {"t-start", OPT_T_START, "a time in [0, 1]"},
  {"t-end", OPT_T_END, "a time in [0, 1]"},
  {"init", 'i', CLI_INIT_FORMS},
  {"noise", OPT_NOISE, "stream or path"},
  {"save", OPT_SAVE, "final, every:K or times:t1,t2,..."},
  {"dtype", OPT_DTYPE, "float32 or float64"},
  {"compress", OPT_COMPRESS, NULL},
  {"max-nfe", OPT_MAX_NFE, "a positive integer"},
  {"x0-clip", OPT_X0_CLIP, "LO,HI (two finite numbers, LO < HI)"},
  {"x0-threshold", OPT_X0_THRESHOLD, "p=P[,max=M] (0 < P <= 1, M >= 1 or inf)"},
  {"cond", OPT_COND, "FILE.h5:/group (each dataset one entry of the model's ctx.cond)"},
  {"uncond", OPT_UNCOND, "FILE.h5:/group (the unconditional conditioning)"},
  {"guidance", OPT_GUIDANCE, "W, w1,...,w_tau (one per frame) or linear:A,B"},
  {"guidance-split", OPT_GUIDANCE_SPLIT, NULL},
  {"corrector", OPT_CORRECTOR, "none or langevin[:snr=R,steps=K] (R > 0, 1 <= K <= 1000)"},
  {0},
};

static const char *noise_names[8]; /* from the noise kinds' table, on first use */
static const char *const dtype_names[] = {"float64", "float32", NULL};

typedef struct {
  cli_common c; /* model, cov, cov-method, frames, frame-shape, schedule, seed, threads,
                   force, progress, quiet, output, help */
  const char *process_s, *solver, *grid;
  const char *init, *save_s;
  const char *x0_clip, *x0_threshold; /* checked as given (csde_x0_post_parse) */
  const char *cond, *uncond, *guidance; /* --cond, --uncond: FILE.h5:/group; --guidance */
  int guidance_split;
  const char *corrector; /* --corrector: checked as given (csde_corrector_parse) */
  size_t batch, D;
  int batch_set;
  int shape_rank;
  size_t shape[3];
  csde_run_process process;
  int solver_set, grid_set;
  size_t steps;
  int steps_set;
  double rtol, atol;
  int rtol_set, atol_set;
  double t_start, t_end;
  int t_start_set, t_end_set;
  int noise_path;
  int float32, compress;
  size_t max_nfe;
  int max_nfe_set;
} sample_args;

/* ---- help ---- */

#define FORCE_HELP                                                                         \
  "replace an existing regular OUT.h5, once the new run is viable: the run writes "         \
  "OUT.h5.partial.XXXXXX and renames it over OUT.h5 at its first state past the start (or " \
  "when it ends ok). A run that fails, is stopped or is killed before that leaves the old " \
  "file as it was. A link, device, FIFO or directory at OUT.h5 is refused, with or "        \
  "without --force"

/* Usage, problem, process and solver. */
static void help_problem_solver(const cli_common *d)
{
  printf(
      "Usage: corrsde sample [options] -o OUT.h5\n"
      "\n"
      "Run a diffusion process with a solver from starting states and write every saved\n"
      "state to an HDF5 file. Every option has a default: 'corrsde sample -o out.h5'\n"
      "draws 4 videos of 16 frames of 32x32 from the gaussian model with the reverse SDE.\n"
      "\n"
      "Problem:\n");
  cli_common_help(d, "model,cov,cov-method,frames,frame-shape");
  printf("  -b, --batch B          videos per run (default %d)\n", DEFAULT_BATCH);
  cli_common_help(d, "schedule");
  printf(
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
      "  -s, --solver S         em (default; rk45 with --rtol/--atol), or one of these\n"
      "                         (fixed steps; 'adaptive' also takes --rtol/--atol):\n");
  for (const csde_solver_type *const *t = csde_solver_types(); *t; t++) { /* the registry */
    char opts[256];
    printf("      %-15s %s\n", csde_solver_type_name(*t), csde_solver_type_summary(*t));
    if (csde_solver_type_options(*t, opts, sizeof opts))
      printf("      %-15s options: %s:%s\n", "", csde_solver_type_name(*t), opts);
  }
  printf(
      "                         edm-heun's options are EDM's churn: S_churn (default 0:\n"
      "                         none), S_tmin .. S_tmax (in sigma/alpha; default 0 ..\n"
      "                         inf) and S_noise (default 1), the noise drawn as V' z\n"
      "                         With few model evaluations: --process pf-ode and\n"
      "                         --solver dpmpp2m --grid quadratic (10), --solver unipc\n"
      "                         --grid logsnr (20); better still, a grid fitted to\n"
      "                         the model: experiments/calibrate_grid.py --nfe N\n"
      "                         (README, 'Few steps')\n"
      "  -n, --steps N          fixed steps (default %d)\n"
      "      --grid G           uniform (default), quadratic, karras[:rho=7], logsnr,\n"
      "                         list:t0,t1,...\n"
      "      --rtol R, --atol A adaptive steps with these tolerances (instead of\n"
      "                         --steps; a missing one takes the other's value): rk45\n"
      "                         (default), rkck, rk8pd, dopri5 for the ODEs; heun\n"
      "                         (default), em, sra1 (embedded pairs, a PI controller)\n"
      "                         for the SDEs, with --noise path\n"
      "      --t-start T        start time (default: 1 for reverse-sde, pf-ode, ddim;\n"
      "                         1e-3 for pf-ode-encode; forward-sde starts at 0)\n"
      "      --t-end E          end time (default: 1e-3 for reverse-sde, pf-ode, ddim;\n"
      "                         1 for forward-sde and pf-ode-encode). With cosine,\n"
      "                         whose beta(1) is infinite, T defaults to 0.999.\n"
      "      --max-nfe N        stop with a failure past N model evaluations\n"
      "                         (default 10000000)\n"
      "      --x0-clip LO,HI    clip the model's x0 prediction to [LO, HI] at every model\n"
      "                         call: its answer is taken to x0 = E[x0 | x_t], clipped\n"
      "                         elementwise and taken back, for every solver and process\n"
      "                         (default: none)\n"
      "      --x0-threshold p=P[,max=M]  Imagen's dynamic thresholding of x0 instead: per\n"
      "                         sample s = min(max(q_P(|x0|), 1), M), x0 <- clip(x0, -s,\n"
      "                         s) / s, q_P the P-quantile with linear interpolation\n"
      "                         (numpy's default); 0 < P <= 1 (Imagen: 0.995), M >= 1\n"
      "                         (default inf). Not with --x0-clip, nor forward-sde\n",
      DEFAULT_STEPS);
  fputs(
      "      --corrector langevin[:snr=R,steps=K]  predictor-corrector (score_sde's PC\n"
      "                         sampler): after every step of reverse-sde or pf-ode, K\n"
      "                         Langevin steps x += e C s + sqrt(2 e) V' z at the new t\n"
      "                         (s the score, z ~ N(0, I)), e = 2 (R ||z|| / ||s||_C)^2\n"
      "                         per sample in the C^-1 norm (||s||_C^2 = s^T C s);\n"
      "                         defaults R 0.16, K 1; each step one NFE. Fixed steps\n"
      "                         only; not forward-sde, pf-ode-encode, ddpm, ddim\n"
      "                         (default: none)\n",
      stdout);
}

/* Starting states, output (the shared options' lines from d), conditioning. */
static void help_states_output(const cli_common *d)
{
  printf(
      "\n"
      "Starting states and noise:\n"
      "  -i, --init FILE[:/path]  a dataset [B, tau, *SHAPE] (default /x; a trajectory\n"
      "                         file gives its last saved state of /trajectory/x). Sizes\n"
      "                         not given on the command line are taken from it. Without\n"
      "                         --init, forward-sde and pf-ode-encode start from the\n"
      "                         model's data law, the others from the prior N(0, C).\n");
  cli_common_help(d, "seed");
  printf(
      "      --noise stream|path  stream (default): fresh noise per step, fastest;\n"
      "                         path: one Brownian path per seed (a Brownian tree):\n"
      "                         runs with the same seed, grid and any --steps see the\n"
      "                         same path (2^k steps of uniform, quadratic, karras or\n"
      "                         logsnr walk it at the cost of stream; other step counts\n"
      "                         and list: grids query it, about 40x the walk's normals)\n");
  /* in parts: C99 compilers need not take string literals over 4095 characters */
  fputs("\n"
      "Output:\n"
      "", stdout);
  cli_common_help(d, "output");
  fputs(
      "      --save WHAT        final (default): the final state only;\n"
      "                         every:K: the start, every K-th step and the end;\n"
      "                         times:t1,t2,...: the states at these times (the nearest\n"
      "                         grid nodes with fixed steps) and the end\n"
      "      --dtype T          float64 (default) or float32\n"
      "      --compress         gzip + shuffle the states\n"
      "", stdout);
  cli_common_help(d, "force,threads,progress,quiet,help");
  fputs(
      "\n"
      "Conditioning and guidance (python: and plugin: models):\n"
      "      --cond FILE.h5:/group  the model's conditioning: every dataset of the group,\n"
      "                         axis 0 of each the batch (row j: sample j's) or 1 (every\n"
      "                         sample's). A python: model finds it as ctx.cond, a dict\n"
      "                         {dataset name: numpy array} of the call's rows (integer\n"
      "                         datasets int64, the others float64); a plugin as ctx->cond,\n"
      "                         a csde_cond_group (corrsde/plugin.h)\n"
      "      --uncond FILE.h5:/group  the unconditional conditioning of classifier-free\n"
      "                         guidance: the datasets of --cond (names, types, shapes\n"
      "                         past axis 0); needs --cond and --guidance\n"
      "      --guidance SPEC    the guidance scale w: W, w1,...,w_tau (one per frame) or\n"
      "                         linear:A,B (A at frame 0 to B at the last, SVD's); each\n"
      "                         finite, |w| <= 1000. The answer is out_u + w_f (out_c -\n"
      "                         out_u) in the model's own output space, for every solver\n"
      "                         and process; one model call of 2B samples (ctx.cond: the\n"
      "                         --cond rows, then the --uncond rows; ctx.ncond = B); nfe\n"
      "                         counts 2 per guided evaluation\n"
      "      --guidance-split   two calls of B instead of one of 2B (less memory; the\n"
      "                         same states)\n"
      "  A bad --cond/--uncond/--guidance (the file, the group, a shape) exits 2.\n",
      stdout);
}

/* Models, the file layout, examples. */
static void help_models_layout(void)
{
  printf("\n"
      "Models:\n"
      "  gaussian[:mean=M,std=S,rho=R]  data N(M, S^2 ar1(R) (x) I): mean 0, std 0.5,\n"
      "                                 rho 0.95 by default; exact score\n"
      "  gaussian:file=P.h5             /mean and /frame_cov from a file\n"
      "  gmm:file=P.h5                  /weights [K], /means [K, tau(, D)], /frame_covs\n"
      "                                 [K, tau, tau]; exact score\n"
      "  plugin:LIB.so[:ARGS]           a model plugin (corrsde/plugin.h)\n"
      "  python:FILE.py:NAME[:ARGS]     a Python model: NAME(ctx, ARGS) returns\n"
      "  python:MODULE:NAME[:ARGS]      model(t, x, ctx), x [B, tau, *SHAPE], ctx the\n"
      "                                 corrsde.Context solve() gives; its .output\n"
      "                                 (default noise); the Python package's plugin\n"
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
      "OUT.h5.partial.XXXXXX until then). While a run writes OUT.h5 it holds\n"
      "OUT.h5.lock (flock): a second run on the same output is refused.\n"
      "\n"
      "Examples:\n"
      "  corrsde sample -o out.h5\n"
      "  corrsde sample --cov mixed:alpha=1 --frames 8 --frame-shape 3x64x64 --batch 16 \\\n"
      "                 --process pf-ode --solver rk45 --rtol 1e-6 -o ode.h5\n"
      "  corrsde sample --process ddim:eta=0.5 --steps 50 --save every:5 -o ddim.h5\n"
      "  corrsde sample --process forward-sde --init data.h5:/x --save every:10 -o fwd.h5\n"
      "  mpirun -np 4 --bind-to none corrsde-mpi sample --batch 4096 ... -o big.h5\n"
      "      (the batch split over 4 processes, one file through parallel HDF5, the same\n"
      "      datasets as corrsde sample; fixed steps only; docs/MPI.md)\n"
      "\n"
      "Exit status: 0 on success; 1 when the run fails (the file then keeps every state\n"
      "saved before the failure, and /stats says why; SIGINT, SIGTERM and SIGHUP stop\n"
      "the run the same way) or an input is rejected; 2 for a malformed command line.\n",
      CSDE_TRAJ_COV_MAX_TAU);
}

static void help(void)
{
  cli_common d;
  cli_common_defaults(&d, DEFAULT_TAU, DEFAULT_SHAPE);
  d.output_help = "the trajectory file (required)";
  d.schedule_help = "the noise schedule (default vp-linear; ddpm-linear for ddpm), one of:";
  d.force_help = FORCE_HELP;
  help_problem_solver(&d);
  help_states_output(&d);
  help_models_layout();
}

/* ---- parsing ---- */

static int parse_time(const char *flag, const char *s, double *out)
{
  int rc = cli_parse_double(CMD, flag, s, out);
  if (rc) return rc;
  if (!(*out >= 0 && isfinite(*out))) { /* the upper end is the schedule's: csde_run_alloc */
    cli_error(CMD, "%s: expected a time in [0, 1] (a path's span: edm [smin, smax]), got "
                   "'%s'", flag, s);
    return CLI_EUSAGE;
  }
  return CLI_OK;
}

static int parse_args(int argc, char **argv, sample_args *a)
{
  cli_getopt g;
  const char *v;
  int c, rc, idx;
  cli_option opts[CLI_MAXOPT];
  memset(a, 0, sizeof *a);
  cli_common_defaults(&a->c, DEFAULT_TAU, DEFAULT_SHAPE);
  a->batch = DEFAULT_BATCH;
  a->process_s = DEFAULT_PROCESS;
  a->process = CSDE_RUN_REVERSE_SDE;
  a->steps = DEFAULT_STEPS;
  a->grid = DEFAULT_GRID;
  a->save_s = DEFAULT_SAVE;
  a->max_nfe = csde_solve_default_params().max_nfe;
  if (cli_options_join(opts, CLI_MAXOPT, sample_own)) return CLI_EFAIL;
  cli_getopt_init(&g, CMD, opts, argc, argv);
  while ((c = cli_getopt_next(&g, &v)) != -1) {
    if ((rc = cli_common_option(CMD, c, v, &a->c)) != CLI_OPT_NOT_MINE) {
      if (rc != CLI_OPT_HANDLED) return rc;
      continue;
    }
    switch (c) {
    case 'b':
      if ((rc = cli_parse_size(CMD, "--batch", v, &a->batch))) return rc;
      a->batch_set = 1;
      break;
    case 'p': {
      csde_err err;
      if (csde_run_process_parse(v, &a->process, NULL, &err)) {
        cli_error(CMD, "--process: %s", err.msg);
        return CLI_EUSAGE;
      }
      a->process_s = v;
      break;
    }
    case 's': {
      csde_solve_params scratch = csde_solve_default_params(); /* options checked here */
      char name[64];
      csde_err err;
      if (csde_solver_spec_parse(v, &scratch, name, sizeof name, &err)) {
        cli_error(CMD, "--solver: %s", err.msg);
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
    case OPT_ATOL: { /* a number >= 0 */
      int r = c == OPT_RTOL;
      if ((rc = cli_parse_nonneg(CMD, r ? "--rtol" : "--atol", v, r ? &a->rtol : &a->atol))) return rc;
      *(r ? &a->rtol_set : &a->atol_set) = 1;
      break;
    }
    case OPT_T_START:
    case OPT_T_END: { /* a time in [0, 1] */
      int ts = c == OPT_T_START;
      if ((rc = parse_time(ts ? "--t-start" : "--t-end", v, ts ? &a->t_start : &a->t_end)))
        return rc;
      *(ts ? &a->t_start_set : &a->t_end_set) = 1;
      break;
    }
    case 'i': a->init = v; break;
    case OPT_NOISE:
      if (!noise_names[0])
        for (int k = 0; k < 7 && (noise_names[k] = csde_noise_kind_name((csde_noise_kind)k)); k++) {
        }
      if ((rc = cli_parse_choice(CMD, "--noise", v, noise_names, &idx))) return rc;
      a->noise_path = (csde_noise_kind)idx == CSDE_NOISE_PATH;
      break;
    case OPT_SAVE: a->save_s = v; break; /* checked by csde_run_alloc */
    case OPT_X0_CLIP:
    case OPT_X0_THRESHOLD: {
      csde_x0_post q;
      csde_err err;
      int clip = c == OPT_X0_CLIP;
      if (csde_x0_post_parse(clip ? v : NULL, clip ? NULL : v, &q, &err)) {
        cli_error(CMD, "%s: %s", clip ? "--x0-clip" : "--x0-threshold", err.msg);
        return CLI_EUSAGE;
      }
      *(clip ? &a->x0_clip : &a->x0_threshold) = v;
      break;
    }
    case OPT_COND: a->cond = v; break;
    case OPT_UNCOND: a->uncond = v; break;
    case OPT_GUIDANCE: a->guidance = v; break; /* checked by csde_run_alloc */
    case OPT_GUIDANCE_SPLIT: a->guidance_split = 1; break;
    case OPT_CORRECTOR: {
      size_t k;
      double snr;
      csde_err err;
      if (csde_corrector_parse(v, &k, &snr, &err)) {
        cli_error(CMD, "--corrector: %s", err.msg);
        return CLI_EUSAGE;
      }
      a->corrector = v;
      break;
    }
    case OPT_DTYPE:
      if ((rc = cli_parse_choice(CMD, "--dtype", v, dtype_names, &idx))) return rc;
      a->float32 = idx == 1;
      break;
    case OPT_COMPRESS: a->compress = 1; break;
    case OPT_MAX_NFE:
      if ((rc = cli_parse_size(CMD, "--max-nfe", v, &a->max_nfe))) return rc;
      a->max_nfe_set = 1;
      break;
    default: /* '?': the error is printed */
      return CLI_EUSAGE;
    }
  }
  if (a->c.help) return CLI_OK;
  if ((rc = cli_spec_shape(CMD, "--frame-shape", a->c.shape_s, &a->shape_rank, a->shape, &a->D)))
    return rc;
  return CLI_OK;
}

/* Combinations of flags, checked once every flag is known. */
static int check_combinations(sample_args *a)
{
  int adaptive = a->rtol_set || a->atol_set;
  int discrete = a->process >= CSDE_RUN_DDPM;
  if (!a->c.output) {
    cli_error(CMD, "-o/--output: missing (expected an output file name such as out.h5)");
    return CLI_EUSAGE;
  }
  if (a->c.progress && a->c.quiet) {
    cli_error(CMD, "--progress and --quiet exclude each other (give one)");
    return CLI_EUSAGE;
  }
  if (a->x0_clip && strcmp(a->x0_clip, "none") && a->x0_threshold &&
      strcmp(a->x0_threshold, "none")) {
    cli_error(CMD, "--x0-clip and --x0-threshold exclude each other (give one)");
    return CLI_EUSAGE;
  }
  if ((a->cond || a->uncond || a->guidance) && strncmp(a->c.model, "python:", 7) &&
      strncmp(a->c.model, "plugin:", 7)) {
    cli_error(CMD, "%s: the model '%s' takes no conditioning (--cond, --uncond and "
                   "--guidance are for python: and plugin: models)",
              a->cond ? "--cond" : a->uncond ? "--uncond" : "--guidance", a->c.model);
    return CLI_EUSAGE;
  }
  if (a->uncond && !a->cond) {
    cli_error(CMD, "--uncond: needs --cond (the conditional half of the guidance)");
    return CLI_EUSAGE;
  }
  if (a->uncond && !a->guidance) {
    cli_error(CMD, "--uncond: needs --guidance W (the guidance scale)");
    return CLI_EUSAGE;
  }
  if ((a->guidance || a->guidance_split) && !a->uncond) {
    cli_error(CMD, "%s: needs --uncond FILE.h5:/group (the unconditional conditioning) and "
                   "--cond", a->guidance ? "--guidance" : "--guidance-split");
    return CLI_EUSAGE;
  }
  if (adaptive && a->steps_set) {
    cli_error(CMD, "--steps: give either --steps N (fixed steps) or --rtol/--atol "
                   "(adaptive steps), not both");
    return CLI_EUSAGE;
  }
  if (adaptive && cli_size > 1) {
    cli_error(CMD, "--rtol/--atol: adaptive steps take one step size for the whole batch, so "
                   "they cannot be split over %d ranks (give --steps N, or run corrsde "
                   "sample)", cli_size);
    return CLI_EUSAGE;
  }
  if (cli_size > 1 && !cli_mpi_comm) {
    cli_error(CMD, "this corrsde-mpi was built without parallel HDF5 (Debian: "
                   "libhdf5-openmpi-dev), so it samples on one rank only (got %d)", cli_size);
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
  }
  if (!a->solver_set) a->solver = csde_run_default_solver(a->process, adaptive);
  if (discrete) {
    const char *name = csde_run_process_name(a->process);
    if (a->solver_set) {
      cli_error(CMD, "--solver: %s is a discrete sampler and takes no solver (remove "
                     "--solver, or use reverse-sde or pf-ode)", name);
      return CLI_EUSAGE;
    }
    if (adaptive) {
      cli_error(CMD, "--rtol/--atol: %s takes fixed steps only", name);
      return CLI_EUSAGE;
    }
    if (a->process == CSDE_RUN_DDPM && (a->steps_set || a->grid_set)) {
      cli_error(CMD, "%s: ddpm takes the N steps of its discrete schedule (set them with "
                     "--schedule ddpm-linear:n=N)", a->steps_set ? "--steps" : "--grid");
      return CLI_EUSAGE;
    }
  } else if (!csde_solver_type_fits(csde_solver_spec_lookup(a->solver), (csde_process)a->process)) {
    char list[256];
    csde_solver_names((int)a->process, list, sizeof list);
    cli_error(CMD, "--solver: '%s' does not fit %s (solvers that do: %s)", a->solver,
              csde_run_process_name(a->process), list);
    return CLI_EUSAGE;
  }
  if (a->process == CSDE_RUN_DDPM && !a->c.schedule_set) a->c.schedule = DEFAULT_DDPM_SCHEDULE;
  return CLI_OK;
}

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
  int match = (!a->batch_set || a->batch == in->dims[0]) && (!a->c.tau_set || a->c.tau == in->dims[1]);
  if (a->c.shape_set) {
    match = match && r == a->shape_rank;
    for (int i = 0; match && i < r; i++) match = a->shape[i] == in->dims[2 + i];
  }
  if (!match) {
    /* the expected shape: the file's, with the sizes the command line fixes */
    char got[128], want[128], given[160] = "";
    size_t ed[CSDE_H5_MAXRANK], o = 0;
    int er = a->c.shape_set ? 2 + a->shape_rank : in->rank;
    for (int i = 0; i < in->rank; i++) ed[i] = in->dims[i];
    if (a->batch_set) {
      ed[0] = a->batch;
      o += (size_t)snprintf(given + o, sizeof given - o, " --batch %zu", a->batch);
    }
    if (a->c.tau_set) {
      ed[1] = a->c.tau;
      o += (size_t)snprintf(given + o, sizeof given - o, " --frames %zu", a->c.tau);
    }
    if (a->c.shape_set) {
      for (int i = 0; i < a->shape_rank; i++) ed[2 + i] = a->shape[i];
      snprintf(given + o, sizeof given - o, " --frame-shape %s", a->c.shape_s);
    }
    csde_shape_str(in->dims, in->rank, got, sizeof got);
    csde_shape_str(ed, er, want, sizeof want);
    cli_error(CMD, "--init '%s': dataset %s has shape %s, expected %s ([B, tau, *SHAPE] "
                   "with%s)",
              a->init, in->dset, got, want, given);
    return CLI_EFAIL;
  }
  a->batch = in->dims[0];
  a->c.tau = in->dims[1];
  if (!a->c.shape_set) {
    a->shape_rank = r;
    a->D = 1;
    for (int i = 0; i < r; i++) {
      a->shape[i] = in->dims[2 + i];
      a->D *= a->shape[i];
    }
  }
  return CLI_OK;
}

/* ---- the step hook: progress and signals ---- */

static volatile sig_atomic_t g_signal = 0;

static void on_signal(int sig) { g_signal = sig; }

typedef struct {
  csde_run_progress bar;
  csde_traj *w;  /* several writers: every step is a sync point of the file */
  csde_err err;  /* the stop agreed on there */
  int quiet;
} step_ctx;

/* The check of the model's first answer (csde_run_warning): one line on stderr from rank
 * 0, not with -q; the file's /stats warnings has it either way. */
static int on_warn(const char *msg, void *user)
{
  step_ctx *c = user;
  if (c->quiet || cli_rank != 0) return 0;
  csde_run_progress_end(&c->bar);
  cli_error(CMD, "warning: %s", msg);
  return 0;
}

/* The run in progress, for the exit handler: a model (a plugin) that calls exit() in
 * the middle of the solve. One writer only (an MPI rank's close is collective). */
static struct {
  csde_traj *w;
  const char *output;
  size_t step;
  int registered;
} g_running;

static void on_exit_during_run(void)
{
  csde_traj *w = g_running.w;
  if (!w) return;
  g_running.w = NULL;
  char status[160];
  snprintf(status, sizeof status, "failed: the model ended the process (exit) during step %zu",
           g_running.step + 1);
  csde_solve_stats st;
  memset(&st, 0, sizeof st);
  st.steps = g_running.step;
  csde_err err;
  csde_err_clear(&err);
  int ws = csde_traj_close(w, &st, status, &err);
  cli_error(CMD, "%s ('%s' records it%s%s)", status, g_running.output, ws ? "; " : "",
            ws ? err.msg : "");
  fflush(stdout);
  fflush(stderr);
  _exit(CLI_EFAIL); /* the exit status the model asked for would say the run succeeded */
}

static int on_step(size_t step, double t, size_t saved, int final, void *user)
{
  step_ctx *c = user;
  g_running.step = step;
  csde_run_progress_step(step, t, saved, final, &c->bar);
  int sig = g_signal;
  if (!cli_mpi_comm) return sig != 0;
  if (sig)
    csde_err_set(&c->err, CSDE_EIO, "interrupted by signal %d (%s) at step %zu", sig,
                 strsignal(sig), step);
  return csde_traj_agree(c->w, sig ? CSDE_EIO : CSDE_SUCCESS, &c->err) != 0;
}

/* ---- building everything before the file exists ---- */

typedef struct {
  csde_cov *C;
  csde_schedule *sched;
  cli_model model;
  cli_init init;
  cli_cond cond, uncond; /* --cond, --uncond (ctx->cond, ctx->uncond of the model) */
  csde_run *run;
  double *x;
  char *init_text;
  char *cmdline;
  csde_traj_part part; /* corrsde-mpi: this rank's samples of the file (comm NULL: all) */
} sample_run;

static void run_free(sample_run *r)
{
  csde_run_free(r->run);
  cli_model_free(&r->model);
  cli_cond_free(&r->cond);
  cli_cond_free(&r->uncond);
  cli_init_free(&r->init);
  csde_schedule_free(r->sched);
  csde_cov_free(r->C);
  free(r->x);
  free(r->init_text);
  free(r->cmdline);
}

/* The option behind a library setting (csde_err.param), and whether a failure there is
 * a malformed command line (exit 2) rather than input the library rejects (exit 1). */
static const char *param_flag(const char *param, int *usage)
{
  static const struct {
    const char *param, *flag;
    int usage;
  } map[] = {{CSDE_PARAM_SOLVER, "--solver", 0},   {CSDE_PARAM_STEPS, "--steps", 0},
             {CSDE_PARAM_GRID, "--grid", 0},       {CSDE_PARAM_TOLERANCES, "--rtol/--atol", 0},
             {CSDE_PARAM_NOISE, "--noise", 1},     {CSDE_PARAM_MODEL, "--model", 0},
             {CSDE_PARAM_SPAN, "--t-start/--t-end", 1},
             {CSDE_PARAM_SIZE, "--batch/--frames/--frame-shape", 0},
             {CSDE_PARAM_PROCESS, "--process", 1}, {CSDE_PARAM_SAVE, "--save", 1},
             {CSDE_PARAM_SCHEDULE, "--schedule", 0}, {CSDE_PARAM_X0_CLIP, "--x0-clip", 1},
             {CSDE_PARAM_X0_THRESHOLD, "--x0-threshold", 1},
             {CSDE_PARAM_GUIDANCE, "--guidance", 1}, {CSDE_PARAM_COND, "--uncond", 1},
             {CSDE_PARAM_CORRECTOR, "--corrector", 1}};
  *usage = 0;
  for (size_t i = 0; param && i < sizeof map / sizeof map[0]; i++)
    if (!strcmp(param, map[i].param)) {
      *usage = map[i].usage;
      return map[i].flag;
    }
  return "--solver";
}

/* The run settings the flags give (the objects and the texts come later). */
static csde_run_settings run_settings(const sample_args *a)
{
  csde_run_settings s = csde_run_default_settings();
  s.process = a->process_s;
  s.solver = a->solver;
  s.steps = a->steps;
  s.grid = a->grid;
  s.rtol = a->rtol_set || a->atol_set ? a->rtol : 0;
  s.atol = a->rtol_set || a->atol_set ? a->atol : 0;
  s.t_start = a->t_start_set ? a->t_start : NAN;
  s.t_end = a->t_end_set ? a->t_end : NAN;
  s.seed = a->c.seed;
  s.noise = a->noise_path ? "path" : "stream";
  s.threads = (int)a->c.threads;
  s.max_nfe = a->max_nfe;
  s.save = a->save_s;
  s.x0_clip = a->x0_clip;
  s.x0_threshold = a->x0_threshold;
  s.guidance = a->guidance;
  s.guidance_split = a->guidance_split;
  s.corrector = a->corrector;
  return s;
}

static int build(sample_args *a, sample_run *r, int argc, char **argv)
{
  int rc;
  csde_err err;
  csde_err_clear(&err);

  if (a->init) {
    if ((rc = cli_spec_init(CMD, a->init, &r->init))) return rc;
    if ((rc = apply_init_shape(a, &r->init))) return rc;
  }
  { /* the memory the run will take, checked before anything large is made: the
     * covariance, the model, the states, --init's read (csde_run_alloc checks again) */
    csde_run_settings pre = run_settings(a);
    if ((rc = cli_check_memory(CMD, &pre, a->batch, a->c.tau, a->shape_rank, a->shape,
                               a->init ? &r->init : NULL)))
      return rc;
  }
  if (a->cond && (rc = cli_spec_cond(CMD, "--cond", a->cond, a->batch, &r->cond))) return rc;
  if (a->uncond &&
      ((rc = cli_spec_cond(CMD, "--uncond", a->uncond, a->batch, &r->uncond)) ||
       (rc = cli_cond_alike(CMD, &r->cond, &r->uncond, a->cond, a->uncond))))
    return rc;
  if ((rc = cli_spec_cov(CMD, a->c.cov, a->c.cov_method, a->c.tau, &r->C))) return rc;
  if ((rc = cli_spec_schedule(CMD, a->c.schedule, &r->sched))) return rc;
  if ((rc = cli_spec_model(CMD, a->c.model, r->C, r->sched, a->c.tau, a->shape_rank, a->shape,
                           a->batch, csde_run_process_name(a->process), &r->model)))
    return rc;
  /* every process but forward-sde asks for the score: build its dense parts now, so that
   * a clip too long for them is refused here, with its size, not mid-solve */
  if (a->process != CSDE_RUN_FORWARD_SDE && (rc = cli_model_prepare_score(CMD, &r->model)))
    return rc;
  if (r->model.kind == CLI_MODEL_GAUSSIAN && a->c.threads > 1 && /* the built-in's own tiles */
      csde_model_gaussian_set_threads(r->model.model, (int)a->c.threads, &err)) {
    cli_error(CMD, "%s", err.msg);
    return CLI_EFAIL;
  }

  r->cmdline = cli_command_line(argc, argv);
  csde_run_settings s = run_settings(a);
  size_t batch = a->batch;
  if (cli_mpi_comm) { /* corrsde-mpi: this rank's samples [B q / R, B (q + 1) / R) */
    r->part.comm = cli_mpi_comm;
    r->part.total = a->batch;
    r->part.first = a->batch * (size_t)cli_rank / (size_t)cli_size;
    r->part.count = a->batch * (size_t)(cli_rank + 1) / (size_t)cli_size - r->part.first;
    /* a rank with no samples runs a stand-in past the batch, to make every call */
    batch = r->part.count ? r->part.count : 1;
    s.first_sample = r->part.count ? r->part.first : a->batch;
  }
  s.model_spec = r->model.spec;
  s.cov_method = a->c.cov_method;
  s.cond = a->cond ? &r->cond.group : NULL;
  s.uncond = a->uncond ? &r->uncond.group : NULL;
  s.command_line = r->cmdline ? r->cmdline : "";
  if (a->init) {
    size_t len = strlen(r->init.file) + strlen(r->init.dset) + 32;
    r->init_text = malloc(len);
    if (r->init_text)
      snprintf(r->init_text, len, "%s:%s%s", r->init.file, r->init.dset,
               r->init.last ? " (last saved state)" : "");
    s.init = r->init_text ? r->init_text : a->init;
  }
  if (csde_run_alloc(&r->run, &s, r->C, r->sched, r->model.model, batch, a->shape_rank,
                     a->shape, &err)) {
    int usage;
    const char *flag = param_flag(err.param, &usage);
    cli_error(CMD, "%s: %s", flag, err.msg[0] ? err.msg : csde_strerror(err.status));
    return usage && err.status == CSDE_EINVAL ? CLI_EUSAGE : CLI_EFAIL;
  }

  /* the starting states */
  size_t n = csde_run_size(r->run);
  r->x = malloc(n * sizeof *r->x);
  if (!r->x) {
    cli_error(CMD, "--batch: out of memory for %zu values", n);
    return CLI_EFAIL;
  }
  csde_rng_key key = {a->c.seed, CSDE_STREAM_INIT};
  if (a->init) {
    double *v = NULL;
    if ((rc = cli_init_read(CMD, a->init, &r->init, &v))) return rc;
    size_t first = r->part.count ? r->part.first : 0; /* this rank's samples (a stand-in: 0) */
    memcpy(r->x, v + first * (n / batch), n * sizeof *v);
    free(v);
    for (size_t i = 0; i < n; i++)
      if (!isfinite(r->x[i])) {
        cli_error(CMD, "--init '%s': value %zu of %s is %g (expected finite numbers)", a->init,
                  i, r->init.dset, r->x[i]);
        return CLI_EFAIL;
      }
  } else if (a->process == CSDE_RUN_FORWARD_SDE || a->process == CSDE_RUN_PFODE_ENCODE) {
    if (!cli_model_has_data_law(&r->model)) {
      cli_error(CMD, "--init: %s from a plugin model needs --init (a plugin has no data law "
                     "to start from; expected %s)", csde_run_process_name(a->process),
                CLI_INIT_FORMS);
      return CLI_EUSAGE;
    }
    if (cli_model_sample_data(&r->model, key, s.first_sample, batch, r->x, &err))
      return cli_lib_error(CMD, "--model", a->c.model, &err);
  } else if (csde_run_prior(r->run, r->x, &err)) {
    return cli_lib_error(CMD, "--cov", a->c.cov, &err);
  }
  return CLI_OK;
}

/* ---- the run ---- */

static void shape_text(const sample_args *a, char *buf, size_t len)
{
  size_t d[CSDE_H5_MAXRANK];
  d[0] = a->batch;
  d[1] = a->c.tau;
  for (int i = 0; i < a->shape_rank; i++) d[2 + i] = a->shape[i];
  csde_shape_str(d, 2 + a->shape_rank, buf, len);
}

int cli_cmd_sample(int argc, char **argv)
{
  sample_args a;
  sample_run r;
  memset(&r, 0, sizeof r);
  int rc = parse_args(argc, argv, &a);
  if (rc || a.c.help) {
    if (!rc && cli_rank == 0) help(); /* corrsde-mpi: once */
    return rc;
  }
  if ((rc = check_combinations(&a)) || (rc = cli_check_output(CMD, "-o", a.c.output, a.c.force)) ||
      (rc = build(&a, &r, argc, argv))) {
    run_free(&r);
    return rc;
  }
  if (cli_size > 1) cli_warn_bound_threads(CMD, a.c.threads);
  if (cli_sync && (cli_sync(CLI_OK) >= 0 || /* every rank has built its run, or none starts */
                   cli_agree(CMD, &(cli_settings){.run = r.run, .batch = a.batch, .cov = a.c.cov,
                                 .model = a.c.model, .init = a.init, .output = a.c.output}))) {
    run_free(&r);
    return CLI_EFAIL;
  }

  /* the file, whole, before the solve (corrsde-mpi: every rank, each for its samples) */
  csde_err err;
  csde_err_clear(&err);
  csde_traj_options to = {a.float32, a.compress, a.c.force, &g_signal};
  csde_traj *w = NULL;
  if (r.part.comm ? csde_traj_create_part(&w, a.c.output, r.run, &to, &r.part, &err)
                  : csde_traj_create(&w, a.c.output, r.run, &to, &err)) {
    cli_error(CMD, "-o '%s': %s", a.c.output, err.msg);
    run_free(&r);
    return CLI_EFAIL;
  }

  size_t nsteps = csde_run_nsteps(r.run);
  step_ctx sc;
  memset(&sc, 0, sizeof sc);
  sc.w = w;
  csde_run_progress_init(&sc.bar, r.run,
                         cli_rank == 0 && !a.c.quiet && (a.c.progress || isatty(STDERR_FILENO)));
  sc.quiet = a.c.quiet;
  csde_run_hooks hooks = {NULL, on_step, &sc, on_warn, NULL};

  cli_signals sigs;
  g_signal = 0;
  cli_signals_catch(&sigs, on_signal);
  csde_solve_stats st;
  if (!r.part.comm) {
    g_running.w = w;
    g_running.output = a.c.output;
    g_running.step = 0;
    if (!g_running.registered) g_running.registered = atexit(on_exit_during_run) == 0;
  }
  int s = csde_run_exec(r.run, r.x, w, &hooks, &st, &err);
  g_running.w = NULL;
  cli_signals_restore(&sigs);
  csde_run_progress_end(&sc.bar);

  char status[CSDE_MSG_MAX + 64], why[96] = "";
  if (g_signal)
    snprintf(why, sizeof why, "interrupted by signal %d (%s)", (int)g_signal,
             strsignal(g_signal));
  csde_run_status(s, &st, &err, why[0] ? why : NULL, status, sizeof status);
  if (r.part.comm) { /* every rank stops at the same sync point, with the same status */
    if (s && csde_traj_failed_rank(w) < 0) /* its own failure, between sync points */
      s = csde_traj_agree(w, s, &err);
    int fr = csde_traj_failed_rank(w);
    if (fr >= 0)
      snprintf(status, sizeof status, "failed: rank %d: %s", fr, s ? err.msg : sc.err.msg);
  }
  int failed = strcmp(status, "ok") != 0;
  size_t saved = csde_traj_count(w);
  int kept_old = csde_traj_replaces(w); /* --force, and the run never became viable */
  csde_err werr;
  csde_err_clear(&werr);
  int ws = csde_traj_close(w, &st, status, &werr);
  kept_old = kept_old && failed;
  if (failed && kept_old) {
    cli_error(CMD, "%s (the run %s before it could replace '%s': it is kept as it was)",
              status, g_signal ? "was stopped" : "failed", a.c.output);
    rc = CLI_EFAIL;
  } else if (failed) {
    cli_error(CMD, "%s (%zu saved state%s kept in '%s')", status, saved, saved == 1 ? "" : "s",
              a.c.output);
    if (ws) cli_error(CMD, "-o '%s': %s", a.c.output, werr.msg);
    rc = CLI_EFAIL;
  } else if (ws) {
    cli_error(CMD, "-o '%s': %s", a.c.output, werr.msg);
    rc = CLI_EFAIL;
  } else {
    rc = CLI_OK;
    if (!a.c.quiet && cli_rank == 0) {
      char shape[128];
      shape_text(&a, shape, sizeof shape);
      const csde_run_settings *rs = csde_run_settings_of(r.run);
      int discrete = a.process >= CSDE_RUN_DDPM;
      printf("wrote %s: %zu saved state%s of %s (%s)", a.c.output, saved, saved == 1 ? "" : "s",
             shape, a.float32 ? "float32" : "float64");
      if (cli_size > 1) printf(", from %d ranks", cli_size);
      printf("\n");
      printf("%s, %s%s, ", csde_run_process_name(a.process), discrete ? "" : "solver ",
             discrete ? "discrete sampler" : rs->solver);
      if (nsteps)
        printf("%zu steps\n", nsteps);
      else
        printf("adaptive (rtol %g, atol %g)\n", rs->rtol, rs->atol);
      printf("nfe %zu, steps %zu (accepted %zu, rejected %zu), %.3f s, status ok\n", st.nfe,
             st.steps, st.accepted, st.rejected, st.wall_seconds);
    }
  }
  run_free(&r);
  return rc;
}
