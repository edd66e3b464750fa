/* Internal to the `corrsde` program: the options `sample` and `converge` share, in one
 * table with their help texts (options.c).
 *
 *   -m --model, -c --cov, --cov-method, -t --frames, --frame-shape, --schedule, --seed,
 *   -j --threads, -f --force, --progress, -q --quiet, -o --output, -h --help
 *
 * A command lists its own options after these (cli_options_join), sets the defaults it
 * differs in (tau, the frame shape, the output's name in the help), hands every option
 * getopt returns to cli_common_option first, and prints the shared help lines with
 * cli_common_help. */
#ifndef CSDE_CLI_OPTIONS_H
#define CSDE_CLI_OPTIONS_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "cli/cli.h"

/* The long-only options' values: above any command's own (which count from 256). */
enum {
  CLI_OPT_COV_METHOD = 0x1000, CLI_OPT_FRAME_SHAPE, CLI_OPT_SCHEDULE, CLI_OPT_SEED,
  CLI_OPT_PROGRESS
};

/* The shared options' values, with their defaults (cli_common_defaults). */
typedef struct {
  const char *model, *cov, *cov_method, *shape_s, *schedule, *output;
  size_t tau, threads;
  uint64_t seed;
  int tau_set, shape_set, schedule_set;
  int force, progress, quiet, help;
  /* for the help text */
  const char *output_help;   /* -o's text: "the trajectory file (required)" */
  const char *schedule_help; /* --schedule's first line */
  const char *force_help;    /* -f's text */
  const char *progress_help; /* --progress's text */
} cli_common;

/* The defaults: model gaussian, cov ar1:rho=0.9, method auto, the given tau and frame
 * shape, schedule vp-linear:bmin=0.1,bmax=20, seed 0, 1 thread, no output. */
void cli_common_defaults(cli_common *c, size_t tau, const char *shape);

/* The shared table followed by own (each ending with {0}) into out (cap entries):
 * CLI_OK, or CLI_EFAIL when it does not fit. */
int cli_options_join(cli_option *out, size_t cap, const cli_option *own);

/* What cli_common_option made of one option. */
enum { CLI_OPT_MINE = 0, CLI_OPT_HANDLED = -1, CLI_OPT_NOT_MINE = -2 };

/* Handle option c (getopt's value) with value v for command cmd: CLI_OPT_HANDLED, an
 * error's rc (CLI_EUSAGE, message printed), or CLI_OPT_NOT_MINE for the command's own. */
int cli_common_option(const char *cmd, int c, const char *v, cli_common *o);

/* A registry name checked: CLI_OK when bad is 0, else print "<flag>: expected one of
 * <names()>, got '<v>'" and return CLI_EUSAGE. */
int cli_check_name(const char *cmd, const char *flag, const char *v, int bad,
                   char *(*names)(char *, size_t));

/* Print the help lines of the shared options named in `names` (comma separated, in that
 * order: "model,cov,cov-method,frames,frame-shape"), with the defaults of d. */
void cli_common_help(const cli_common *d, const char *names);

/* SIGINT, SIGTERM and SIGHUP to handler for the span of a run (sa_flags 0), and the
 * caller's handlers back after: both commands stop a run cleanly on these. */
typedef struct {
  struct sigaction old_int, old_term, old_hup;
} cli_signals;
void cli_signals_catch(cli_signals *s, void (*handler)(int));
void cli_signals_restore(const cli_signals *s);

#endif
