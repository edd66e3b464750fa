/* Internal to the `corrsde` program: the subcommand table and the helpers every
 * subcommand shares (option parsing, value parsing, one-line error messages).
 *
 * Conventions every subcommand follows:
 *   - a subcommand is `int fn(int argc, char **argv)` with argv[0] its own name; it
 *     returns the process exit status (CLI_OK, CLI_EFAIL or CLI_EUSAGE);
 *   - every error is ONE line on stderr, "corrsde <cmd>: <flag>: <what was expected>",
 *     and nothing is written to stdout on an error path (compute first, print last);
 *   - CLI_EUSAGE (2) is for a command line that cannot be understood (unknown option,
 *     malformed value, stray argument); CLI_EFAIL (1) for a failure the library reports
 *     (a spec it rejects, a file it cannot read, a matrix that is not PSD).
 */
#ifndef CSDE_CLI_CLI_H
#define CSDE_CLI_CLI_H

#include <getopt.h>
#include <stddef.h>
#include <stdint.h>

#include "corrsde/converge.h"
#include "corrsde/run.h"
#include "corrsde/status.h"

enum { CLI_OK = 0, CLI_EFAIL = 1, CLI_EUSAGE = 2 };

/* ---- the subcommand table (main.c) ---- */

typedef int (*cli_cmd_fn)(int argc, char **argv);

typedef struct {
  const char *name;    /* "cov" */
  cli_cmd_fn fn;       /* runs `corrsde <name> ...`; argv[0] is the name */
  const char *summary; /* one line for `corrsde --help` */
} cli_cmd;

/* One entry per subcommand; each lives in src/cli/cmd_<name>.c. */
/* The program: main() of corrsde, and of corrsde-mpi after MPI_Init (main_mpi.c). */
int cli_main(int argc, char **argv);

/* corrsde-mpi (main_mpi.c sets them; corrsde leaves them): the work split of `converge`
 * over the processes, this process's rank (0 without MPI), and the agreement before the
 * run: cli_sync(rc) returns the lowest rank whose rc is non-zero, or -1 when every rank is
 * ready (a collective call; NULL without MPI). Ranks other than 0 keep their messages
 * (cli_error) until the agreement shows they are the first to fail. */
extern const void *cli_conv_dist; /* a const csde_conv_dist * */
extern int cli_rank;
extern int cli_size;              /* the ranks (1 without MPI) */
extern int (*cli_sync)(int rc);
/* corrsde-mpi built against parallel HDF5: the MPI_Comm * whose ranks write one file
 * together (`sample`); NULL otherwise. */
extern const void *cli_mpi_comm;
/* corrsde-mpi: warn when --threads exceeds the cores this rank may run on. */
void cli_warn_bound_threads(const char *cmd, size_t threads);
/* What a rank other than 0 kept back; printed by main_mpi.c when it is the one to tell. */
const char *cli_held_messages(void);
/* corrsde-mpi: what every rank must have resolved alike before the run. The arguments are
 * already rank 0's (main_mpi.c refuses different ones before any command runs), so what
 * can still differ is what each rank resolves on its own: a relative -o against its
 * current directory, the files that --init, --model and --cov name (their content), the
 * kernel of the frame products (CSDE_SMALLMM_KERNEL, the CPU), and what follows from
 * them (sizes taken from --init, the dataset --init picks). cli_agree(cmd, s), a
 * collective call made after a cli_sync that found every rank ready and before any
 * collective I/O, compares this rank's resolved settings with rank 0's field by field
 * and returns CLI_OK, or CLI_EFAIL on every rank, rank 0 having printed "corrsde <cmd>:
 * rank r's settings differ from rank 0's: <the first field that differs>". Set with
 * cli_sync (NULL without MPI). Every pointer is borrowed; NULL where it does not apply. */
typedef struct {
  const csde_run *run;           /* sample: the run (its resolved settings and sizes) */
  const csde_conv_params *conv;  /* converge: its parameters */
  size_t batch;                  /* sample: the whole batch (the run holds this rank's share) */
  const char *cov, *model, *init; /* the specs as given: the files they name, by content */
  const char *output;            /* the one file every rank writes (sample): absolute path */
} cli_settings;
extern int (*cli_agree)(const char *cmd, const cli_settings *s);

int cli_cmd_cov(int argc, char **argv);
int cli_cmd_sample(int argc, char **argv);
int cli_cmd_info(int argc, char **argv);
int cli_cmd_converge(int argc, char **argv);
int cli_cmd_likelihood(int argc, char **argv);

/* ---- messages ---- */

/* Print "corrsde <cmd>: <message>\n" on stderr as one line (newlines in the message are
 * turned into spaces). cmd may be NULL for the top level ("corrsde: ..."). */
void cli_error(const char *cmd, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* An error the library reported for the value of one flag:
 *   "corrsde <cmd>: <flag> '<value>': <err->msg>"
 * (the quoted value is left out when the message already contains it). Returns CLI_EFAIL. */
int cli_lib_error(const char *cmd, const char *flag, const char *value, const csde_err *err);

/* ---- option parsing (a thin layer over getopt_long) ---- */

/* One option of a subcommand. A subcommand lists its options once in a table ending with
 * {0}; the long and short option arrays for getopt_long are built from it, and the error
 * messages for a missing value quote `arg`. */
typedef struct {
  const char *name; /* long name without "--" */
  int val;          /* the short letter, or a value >= 256 for a long-only option */
  const char *arg;  /* what the value must be ("a positive integer"); NULL for a flag */
} cli_option;

/* Values of cli_option.arg that name a registry: a missing value's error then lists the
 * registry's names (csde_cov_method_names, csde_schedule_names, csde_process_names,
 * csde_run_process_names, csde_conv_kind_names). */
extern const char cli_arg_cov_method[], cli_arg_schedule[], cli_arg_process[],
    cli_arg_run_process[], cli_arg_conv_kind[];

/* Help text from a registry: NAME after indent spaces, padded to column col (NAME alone
 * on its line when longer), then text wrapped at 79 columns, continuation lines indented
 * to col. cli_help_cov_methods and cli_help_schedules print the --cov-method and
 * --schedule entries of sample and converge from the registries (dflt: the default). */
void cli_help_entry(size_t indent, size_t col, const char *name, const char *text);
void cli_help_cov_methods(void);
void cli_help_schedules(const char *dflt);

#define CLI_MAXOPT 48

typedef struct {
  const char *cmd;
  const cli_option *opts;
  int argc;
  char **argv;
  struct option lo[CLI_MAXOPT + 1];
  char so[3 * CLI_MAXOPT + 3];
} cli_getopt;

/* Prepare to parse argv[1..argc-1] of subcommand `cmd` (resets getopt's state). */
void cli_getopt_init(cli_getopt *g, const char *cmd, const cli_option *opts, int argc,
                     char **argv);

/* The next option: returns its val and sets *arg to its value (NULL for a flag); -1 when
 * the options are over and no positional argument is left; '?' after printing the error
 * for an unknown option, a missing value, a value given to a flag, or a stray positional
 * argument (the caller then returns CLI_EUSAGE). */
int cli_getopt_next(cli_getopt *g, const char **arg);

/* ---- values ---- */

/* Parse a positive integer (decimal digits only, no sign, no exponent). On failure print
 * "corrsde <cmd>: <flag>: expected a positive integer, got '<s>'" and return CLI_EUSAGE. */
int cli_parse_size(const char *cmd, const char *flag, const char *s, size_t *out);
/* A non-negative integer below 2^64 (digits only), e.g. a seed. */
int cli_parse_u64(const char *cmd, const char *flag, const char *s, uint64_t *out);
/* An output file named by `flag` can be written before any work starts: refuses '', a
 * directory, an existing file without force (or an unwritable one), a missing or
 * unwritable directory. Returns CLI_OK, CLI_EUSAGE or CLI_EFAIL (message printed). */
int cli_check_output(const char *cmd, const char *flag, const char *path, int force);
/* The command line as one shell-quoted string (malloc'd; NULL when out of memory). */
char *cli_command_line(int argc, char **argv);

/* Parse a finite double (the whole string). On failure print
 * "corrsde <cmd>: <flag>: expected a number, got '<s>'" and return CLI_EUSAGE. */
int cli_parse_double(const char *cmd, const char *flag, const char *s, double *out);
/* The same, >= 0 (e.g. --rtol, --atol). */
int cli_parse_nonneg(const char *cmd, const char *flag, const char *s, double *out);

/* Match s against a NULL-terminated list of names; *idx receives its position. On failure
 * print "corrsde <cmd>: <flag>: expected one of a, b, c, got '<s>'" and return CLI_EUSAGE. */
int cli_parse_choice(const char *cmd, const char *flag, const char *s,
                     const char *const *choices, int *idx);

#endif
