/* Internal to the `corrsde` program: turning the spec flags shared by the subcommands
 * that solve (`sample`, later `converge`) into library objects.
 *
 *   --cov SPEC [--cov-method M]  ->  csde_cov          (cli_spec_cov)
 *   --schedule SPEC              ->  csde_schedule     (cli_spec_schedule)
 *   --frame-shape SHAPE          ->  rank, dims, D     (cli_spec_shape)
 *   --model SPEC                 ->  cli_model         (cli_spec_model): the csde_model and,
 *                                    for gaussian and gmm, a sampler of its data law
 *   --init FILE[:/path]          ->  cli_init          (cli_spec_init): where the starting
 *                                    states are and their shape
 *
 * Every function prints its own one-line error, naming the flag and the expected form
 * (cli.h conventions), and returns CLI_OK, CLI_EFAIL or CLI_EUSAGE. `cmd` is the
 * subcommand's name for the messages.
 */
#ifndef CSDE_CLI_SPEC_MODEL_H
#define CSDE_CLI_SPEC_MODEL_H

#include <stddef.h>

#include "corrsde/cov.h"
#include "corrsde/model.h"
#include "corrsde/plugin.h"
#include "corrsde/rng.h"
#include "corrsde/run.h"
#include "corrsde/schedule.h"
#include "corrsde/io.h"

/* The forms each flag accepts, for help texts and messages. */
#define CLI_MODEL_FORMS \
  "gaussian[:mean=M,std=S,rho=R], gaussian:file=P.h5, gmm:file=P.h5, plugin:LIB.so[:ARGS] or " \
  "python:FILE.py:NAME[:ARGS]"
#define CLI_STR_(x) #x
#define CLI_STR(x) CLI_STR_(x)
#define CLI_SHAPE_FORMS "D, HxW or CxHxW with positive integers (e.g. 32x32)"
#define CLI_INIT_FORMS "FILE.h5 or FILE.h5:/dataset holding [B, tau, *SHAPE]"

/* Defaults of `--model gaussian` (corrsde/model.h: m = 0, S0 = 0.25 ar1(0.95)). */
#define CLI_GAUSS_MEAN CSDE_MODEL_GAUSSIAN_MEAN
#define CLI_GAUSS_STD CSDE_MODEL_GAUSSIAN_STD
#define CLI_GAUSS_RHO CSDE_MODEL_GAUSSIAN_RHO

/* --cov SPEC with method name (NULL: auto) for tau frames. */
int cli_spec_cov(const char *cmd, const char *spec, const char *method, size_t tau,
                 csde_cov **out);

/* --schedule SPEC. */
int cli_spec_schedule(const char *cmd, const char *spec, csde_schedule **out);

/* SHAPE: "D", "HxW" or "CxHxW" -> rank (1-3), dims and D = their product. */
int cli_spec_shape(const char *cmd, const char *flag, const char *s, int *rank,
                   size_t dims[3], size_t *D);

typedef enum { CLI_MODEL_GAUSSIAN = 0, CLI_MODEL_GMM, CLI_MODEL_PLUGIN } cli_model_kind;

typedef struct {
  csde_model *model;   /* owned */
  cli_model_kind kind;
  char *spec;          /* canonical: every parameter shown, e.g. gaussian:mean=0,std=0.5,rho=0.95 */
  size_t tau, D;
} cli_model;

/* --model SPEC for tau frames of the frame shape (rank sizes, D their product); C and s
 * are borrowed by the model. A plugin (plugin:, python:) is also told the shape, the
 * samples per call at most (batch), C, s and the process's name (plugin.h, ABI 3). */
int cli_spec_model(const char *cmd, const char *spec, const csde_cov *C,
                   const csde_schedule *s, size_t tau, int rank, const size_t *shape,
                   size_t batch, const char *process, cli_model *m);
void cli_model_free(cli_model *m); /* accepts a zeroed struct */

/* Before a solve that evaluates the score (every process but forward-sde/encode): make
 * the gaussian model's dense parts now, so that a long clip is refused with its own
 * message (tau and the memory it would need, naming --model and --frames) instead of a
 * callback's "returned fatal code -1" mid-solve. CLI_OK for other models. */
int cli_model_prepare_score(const char *cmd, cli_model *m);

/* 1 if the model can draw from its data law p_0 (gaussian, gmm; not plugins). */
int cli_model_has_data_law(const cli_model *m);

/* Draw batch samples of p_0 into x (batch * tau * D): csde_model_gaussian_sample(t = 0)
 * or csde_model_gmm_sample (corrsde/model.h); the same bits for any batch split. */
int cli_model_sample_data(const cli_model *m, csde_rng_key key, size_t first, size_t batch,
                          double *x, csde_err *err);

/* --init FILE[:/path]: the dataset and the shape of the states it holds. */
typedef struct {
  char *file, *dset;   /* owned */
  int last;            /* the dataset is /trajectory/x: take its last saved state */
  int rank;            /* of one set of states: 2 + SHAPE's rank (3 to 5) */
  size_t dims[CSDE_H5_MAXRANK]; /* [B, tau, *SHAPE] */
} cli_init;

/* Resolve FILE[:/path] (default dataset /x; a file without /x but with /trajectory/x
 * gives its last saved state) and read its shape. */
int cli_spec_init(const char *cmd, const char *spec, cli_init *in);
/* Read the states (prod(dims) doubles, new array). */
int cli_init_read(const char *cmd, const char *spec, const cli_init *in, double **x);
void cli_init_free(cli_init *in); /* accepts a zeroed struct */

/* --cond FILE.h5:/group (--uncond likewise): every dataset of the group, read whole, as
 * the plugin.h csde_cond_group a plugin's model finds in ctx->cond; axis 0 of each must
 * be batch (the run's whole batch) or 1. Errors (the spec, the file, the group, a member
 * that is no dataset of numbers, a shape) print one line naming flag; CLI_EUSAGE. */
typedef struct {
  csde_cond_group group;   /* what ctx->cond points to */
  csde_cond_array *arrays; /* owned: names and data */
} cli_cond;
int cli_spec_cond(const char *cmd, const char *flag, const char *spec, size_t batch,
                  cli_cond *c);
/* --uncond's datasets against --cond's: the same names, types and shapes past axis 0. */
int cli_cond_alike(const char *cmd, const cli_cond *c, const cli_cond *u, const char *cspec,
                   const char *uspec);
void cli_cond_free(cli_cond *c); /* accepts a zeroed struct */

/* Before anything large is made (the covariance, the model, the states, --init's read):
 * the run's memory estimate from its settings and sizes (csde_run_check_memory), with
 * --init's states read at once counted. Refused runs print one line naming --init (with
 * the dataset's shape) or --batch/--frames/--frame-shape, and both figures. */
int cli_check_memory(const char *cmd, const csde_run_settings *s, size_t batch, size_t tau,
                     int rank, const size_t *shape, const cli_init *init);

#endif
