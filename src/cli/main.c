/* The `corrsde` program: subcommand dispatch and the helpers every subcommand shares
 * (see cli.h for the conventions). Adding a subcommand is adding a row to `commands`. */
#include <errno.h>
#include <math.h>
#include <sched.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <libgen.h>

#include "cli/cli.h"
#include "corrsde/cov.h"
#include "corrsde/problem.h"
#include "corrsde/run.h"
#include "corrsde/schedule.h"
#include "corrsde/status.h"
#include "corrsde/io.h"

static int cmd_help(int argc, char **argv);

static const cli_cmd commands[] = {
  {"cov", cli_cmd_cov, "build a frame covariance C: its method, matrix, spectrum, log det"},
  {"sample", cli_cmd_sample, "run a process with a solver and write the saved states to HDF5"},
  {"info", cli_cmd_info, "summarise a trajectory file written by sample"},
  {"converge", cli_cmd_converge, "measure solver convergence orders with confidence intervals"},
  {"likelihood", cli_cmd_likelihood, "log-likelihood (nats, bits/dim) of data by the PF-ODE, or the ELBO"},
  {"help", cmd_help, "show the help of a command ('corrsde help cov')"},
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

/* ---- messages ---- */

static void vline(FILE *f, const char *cmd, const char *fmt, va_list ap)
{
  char buf[2048];
  vsnprintf(buf, sizeof buf, fmt, ap);
  for (char *p = buf; *p; p++)
    if (*p == '\n' || *p == '\r') *p = ' ';
  fprintf(f, "corrsde%s%s: %s\n", cmd ? " " : "", cmd ? cmd : "", buf);
}

const void *cli_conv_dist = NULL;
int cli_rank = 0;
int cli_size = 1;
int (*cli_sync)(int rc) = NULL;
int (*cli_agree)(const char *cmd, const cli_settings *s) = NULL;
const void *cli_mpi_comm = NULL;
static char held[4096]; /* a rank other than 0: its messages, until it is to tell them */

const char *cli_held_messages(void) { return held; }

void cli_warn_bound_threads(const char *cmd, size_t threads)
{
  cpu_set_t set; /* threads beyond the cores this rank may run on only wait */
  if (sched_getaffinity(0, sizeof set, &set) == 0 && (size_t)CPU_COUNT(&set) < threads)
    cli_error(cmd, "warning: --threads %zu, but this rank may run on %d core%s (mpirun binds "
                   "ranks to cores: use --bind-to none on one node, --map-by slot:PE=%zu on "
                   "a cluster)",
              threads, CPU_COUNT(&set), CPU_COUNT(&set) == 1 ? "" : "s", threads);
}

void cli_error(const char *cmd, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  if (cli_rank == 0) {
    vline(stderr, cmd, fmt, ap);
  } else {
    size_t o = strlen(held);
    char line[1024];
    vsnprintf(line, sizeof line, fmt, ap);
    for (char *q = line; *q; q++)
      if (*q == '\n' || *q == '\r') *q = ' ';
    snprintf(held + o, sizeof held - o, "corrsde%s%s: rank %d: %s\n", cmd ? " " : "",
             cmd ? cmd : "", cli_rank, line);
  }
  va_end(ap);
}

int cli_lib_error(const char *cmd, const char *flag, const char *value, const csde_err *err)
{
  const char *msg = err && err->msg[0] ? err->msg : csde_strerror(err ? err->status : -1);
  if (value && !strstr(msg, value))
    cli_error(cmd, "%s '%s': %s", flag, value, msg);
  else
    cli_error(cmd, "%s: %s", flag, msg);
  return CLI_EFAIL;
}

/* ---- option parsing ---- */

void cli_getopt_init(cli_getopt *g, const char *cmd, const cli_option *opts, int argc,
                     char **argv)
{
  size_t n = 0, s = 0;
  memset(g, 0, sizeof *g);
  g->cmd = cmd;
  g->opts = opts;
  g->argc = argc;
  g->argv = argv;
  /* '-': positional arguments come back in order as 1 (so a stray one is reported where
   * it stands); ':': a missing value returns ':' rather than '?', and getopt is silent. */
  g->so[s++] = '-';
  g->so[s++] = ':';
  for (; opts[n].name && n < CLI_MAXOPT; n++) {
    g->lo[n].name = opts[n].name;
    g->lo[n].has_arg = opts[n].arg ? required_argument : no_argument;
    g->lo[n].flag = NULL;
    g->lo[n].val = opts[n].val;
    if (opts[n].val > 0 && opts[n].val < 128) {
      g->so[s++] = (char)opts[n].val;
      if (opts[n].arg) g->so[s++] = ':';
    }
  }
  g->so[s] = '\0';
  /* lo[n] stays all zero: the terminator. */
  opterr = 0;
  optind = 0; /* 0, not 1: glibc re-initialises its state for the new argv */
}

static const cli_option *find_by_val(const cli_getopt *g, int val)
{
  for (const cli_option *o = g->opts; o->name; o++)
    if (o->val == val) return o;
  return NULL;
}

/* The error for an option getopt did not recognise: unknown or ambiguous. */
static void unknown_option(const cli_getopt *g, const char *word)
{
  char name[128];
  size_t len = strcspn(word, "=");
  if (len >= sizeof name) len = sizeof name - 1;
  memcpy(name, word, len);
  name[len] = '\0';
  if (strncmp(name, "--", 2) == 0 && name[2]) {
    char list[512] = "";
    size_t used = 0, matches = 0;
    for (const cli_option *o = g->opts; o->name; o++)
      if (strncmp(o->name, name + 2, strlen(name + 2)) == 0 && used < sizeof list - 64) {
        used += (size_t)snprintf(list + used, sizeof list - used, "%s--%s",
                                 matches ? ", " : "", o->name);
        matches++;
      }
    if (matches > 1) {
      cli_error(g->cmd, "ambiguous option '%s' (could be %s)", name, list);
      return;
    }
  }
  cli_error(g->cmd, "unknown option '%s' (see 'corrsde %s --help')", name, g->cmd);
}

const char cli_arg_cov_method[] = "a covariance method", cli_arg_schedule[] = "a schedule",
           cli_arg_process[] = "a process", cli_arg_run_process[] = "a process",
           cli_arg_conv_kind[] = "an error kind";

/* The names function of a registry an option's arg names, or NULL. */
static char *(*registry_of(const char *arg))(char *, size_t)
{
  if (arg == cli_arg_cov_method) return csde_cov_method_names;
  if (arg == cli_arg_schedule) return csde_schedule_names;
  if (arg == cli_arg_process) return csde_process_names;
  if (arg == cli_arg_run_process) return csde_run_process_names;
  if (arg == cli_arg_conv_kind) return csde_conv_kind_names;
  return NULL;
}

void cli_help_entry(size_t indent, size_t col, const char *name, const char *text)
{
  size_t at = (size_t)printf("%*s%s", (int)indent, "", name);
  if (at + 1 > col) at = (size_t)printf("\n%*s", (int)col, "") - 1;
  else at += (size_t)printf("%*s", (int)(col - at), "");
  while (*text) {
    size_t w = strcspn(text, " ");
    if (at > col && at + 1 + w > 79) at = (size_t)printf("\n%*s", (int)col, "") - 1;
    else if (at > col) at += (size_t)printf(" ");
    at += (size_t)printf("%.*s", (int)w, text);
    text += w;
    while (*text == ' ') text++;
  }
  printf("\n");
}

void cli_help_cov_methods(void)
{
  char names[256], text[300];
  snprintf(text, sizeof text, "one of %s (default auto)",
           csde_cov_method_names(names, sizeof names));
  cli_help_entry(6, 25, "--cov-method M", text);
}

void cli_help_schedules(const char *dflt)
{
  const char *name, *form, *what;
  cli_help_entry(6, 25, "--schedule SPEC", dflt);
  for (size_t i = 0; (name = csde_schedule_entry(i, &form, &what)); i++)
    cli_help_entry(25, 27, form, what);
}

int cli_getopt_next(cli_getopt *g, const char **arg)
{
  int c = getopt_long(g->argc, g->argv, g->so, g->lo, NULL);
  *arg = optarg;
  if (c == -1) {
    if (optind < g->argc) { /* after "--" */
      cli_error(g->cmd, "unexpected argument '%s' (see 'corrsde %s --help')",
                g->argv[optind], g->cmd);
      return '?';
    }
    return -1;
  }
  if (c == 1) {
    cli_error(g->cmd, "unexpected argument '%s' (see 'corrsde %s --help')", optarg, g->cmd);
    return '?';
  }
  if (c == ':') {
    const cli_option *o = find_by_val(g, optopt);
    char *(*names)(char *, size_t) = o ? registry_of(o->arg) : NULL;
    char buf[1024];
    if (names)
      cli_error(g->cmd, "--%s: missing value (expected one of %s)", o->name,
                names(buf, sizeof buf));
    else if (o)
      cli_error(g->cmd, "--%s: missing value (expected %s)", o->name, o->arg);
    else
      cli_error(g->cmd, "option '%s' needs a value", g->argv[optind - 1]);
    return '?';
  }
  if (c == '?') {
    const char *word = optind > 0 && optind <= g->argc ? g->argv[optind - 1] : "";
    const cli_option *o = optopt ? find_by_val(g, optopt) : NULL;
    if (o && strncmp(word, "--", 2) == 0 && strchr(word, '=')) {
      cli_error(g->cmd, "--%s takes no value, got '%s'", o->name, word);
    } else if (optopt && !o) {
      char shortname[3] = {'-', (char)optopt, '\0'};
      unknown_option(g, shortname);
    } else {
      unknown_option(g, word);
    }
    return '?';
  }
  return c;
}

/* ---- values ---- */

int cli_parse_size(const char *cmd, const char *flag, const char *s, size_t *out)
{
  size_t v = 0;
  int ok = s && *s, big = 0;
  for (const char *p = s; ok && *p; p++) {
    if (*p < '0' || *p > '9') {
      ok = 0;
    } else {
      size_t d = (size_t)(*p - '0');
      if (v > ((size_t)-1 - d) / 10) big = 1; /* overflow: keep checking the digits */
      else v = v * 10 + d;
    }
  }
  if (ok && big) {
    cli_error(cmd, "%s: '%s' is too large", flag, s);
    return CLI_EUSAGE;
  }
  if (!ok || v == 0) {
    cli_error(cmd, "%s: expected a positive integer, got '%s'", flag, s ? s : "");
    return CLI_EUSAGE;
  }
  *out = v;
  return CLI_OK;
}

int cli_parse_double(const char *cmd, const char *flag, const char *s, double *out)
{
  char *end = NULL;
  double v = 0;
  if (s && *s) {
    errno = 0;
    v = strtod(s, &end);
  }
  if (!s || !*s || end == s || *end || errno == ERANGE || !isfinite(v)) {
    cli_error(cmd, "%s: expected a number, got '%s'", flag, s ? s : "");
    return CLI_EUSAGE;
  }
  *out = v;
  return CLI_OK;
}

int cli_parse_nonneg(const char *cmd, const char *flag, const char *s, double *out)
{
  int rc = cli_parse_double(cmd, flag, s, out);
  if (rc) return rc;
  if (*out < 0) {
    cli_error(cmd, "%s: expected a number >= 0, got '%s'", flag, s);
    return CLI_EUSAGE;
  }
  return CLI_OK;
}

int cli_parse_choice(const char *cmd, const char *flag, const char *s,
                     const char *const *choices, int *idx)
{
  char list[512] = "";
  size_t used = 0;
  for (int i = 0; choices[i]; i++) {
    if (s && strcmp(s, choices[i]) == 0) {
      *idx = i;
      return CLI_OK;
    }
    if (used < sizeof list - 64)
      used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "",
                               choices[i]);
  }
  cli_error(cmd, "%s: expected one of %s, got '%s'", flag, list, s ? s : "");
  return CLI_EUSAGE;
}

/* ---- the top level ---- */

static void usage(FILE *f)
{
  fprintf(f,
          "corrsde %s: diffusion models with noise correlated across video frames\n"
          "\n"
          "Usage: corrsde <command> [options]\n"
          "       corrsde <command> --help\n"
          "       corrsde --help | --version\n"
          "\n"
          "Commands:\n",
          csde_version());
  int w = 0;
  for (size_t i = 0; i < NCOMMANDS; i++)
    if ((int)strlen(commands[i].name) > w) w = (int)strlen(commands[i].name);
  for (size_t i = 0; i < NCOMMANDS; i++)
    fprintf(f, "  %-*s  %s\n", w, commands[i].name, commands[i].summary);
  fprintf(f,
          "\n"
          "Options:\n"
          "  -h, --help     show this help and exit\n"
          "  -V, --version  print the version and exit\n"
          "\n"
          "Exit status: 0 on success, 1 when the computation fails (the library reports\n"
          "why), 2 for a command line that cannot be understood.\n");
}

static const cli_cmd *find_command(const char *name)
{
  for (size_t i = 0; i < NCOMMANDS; i++)
    if (strcmp(commands[i].name, name) == 0) return &commands[i];
  return NULL;
}

static const char *command_list(void)
{
  static char list[256];
  size_t used = 0;
  for (size_t i = 0; i < NCOMMANDS && used < sizeof list - 32; i++)
    used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "",
                             commands[i].name);
  return list;
}

/* `corrsde help [command]` */
static int cmd_help(int argc, char **argv)
{
  if (argc < 2) {
    usage(stdout);
    return CLI_OK;
  }
  if (argc > 2) {
    cli_error("help", "unexpected argument '%s' (usage: corrsde help [command])", argv[2]);
    return CLI_EUSAGE;
  }
  const cli_cmd *c = find_command(argv[1]);
  if (!c) {
    cli_error("help", "unknown command '%s' (commands: %s)", argv[1], command_list());
    return CLI_EUSAGE;
  }
  if (c->fn == cmd_help) {
    usage(stdout);
    return CLI_OK;
  }
  static char help_flag[] = "--help";
  char *sub[] = {argv[1], help_flag, NULL};
  return c->fn(2, sub);
}

int cli_main(int argc, char **argv)
{
  int rc;
  csde_init();
  csde_h5_program_init();
  /* a write past the file-size limit (ulimit -f) fails with EFBIG, which the writers
   * treat as a full disk (the states saved so far are kept), instead of killing us */
  signal(SIGXFSZ, SIG_IGN);
  if (argc < 2) {
    cli_error(NULL, "no command given (commands: %s; try 'corrsde --help')", command_list());
    return CLI_EUSAGE;
  }
  const char *a = argv[1];
  if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
    usage(stdout);
    rc = CLI_OK;
  } else if (strcmp(a, "-V") == 0 || strcmp(a, "--version") == 0) {
    printf("corrsde %s\n", csde_version());
    rc = CLI_OK;
  } else if (a[0] == '-') {
    cli_error(NULL, "unknown option '%s' (try 'corrsde --help')", a);
    return CLI_EUSAGE;
  } else {
    const cli_cmd *c = find_command(a);
    if (!c) {
      cli_error(NULL, "unknown command '%s' (commands: %s; try 'corrsde --help')", a,
                command_list());
      return CLI_EUSAGE;
    }
    rc = c->fn(argc - 1, argv + 1);
  }
  if (fflush(stdout) != 0 || ferror(stdout)) {
    cli_error(NULL, "cannot write the output: %s", strerror(errno));
    return CLI_EFAIL;
  }
  return rc;
}

int cli_parse_u64(const char *cmd, const char *flag, const char *s, uint64_t *out)
{
  uint64_t v = 0;
  int ok = s && *s;
  for (const char *p = s; ok && *p; p++) {
    if (*p < '0' || *p > '9') {
      ok = 0;
      break;
    }
    uint64_t d = (uint64_t)(*p - '0');
    if (v > (UINT64_MAX - d) / 10) ok = 0;
    v = v * 10 + d;
  }
  if (!ok) {
    cli_error(cmd, "%s: expected a non-negative integer below 2^64, got '%s'", flag,
              s ? s : "");
    return CLI_EUSAGE;
  }
  *out = v;
  return CLI_OK;
}

char *cli_command_line(int argc, char **argv)
{
  size_t len = 16;
  for (int i = 0; i < argc; i++) len += 4 * strlen(argv[i]) + 3;
  char *s = malloc(len), *p = s;
  if (!s) return NULL;
  p += sprintf(p, "corrsde");
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    int plain = *a != '\0';
    for (const char *q = a; *q; q++)
      if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                  "-_./:=,+@%^", *q))
        plain = 0;
    *p++ = ' ';
    if (plain) {
      p += sprintf(p, "%s", a);
    } else {
      *p++ = '\'';
      for (const char *q = a; *q; q++) {
        if (*q == '\'') p += sprintf(p, "'\\''");
        else *p++ = *q;
      }
      *p++ = '\'';
    }
  }
  *p = '\0';
  return s;
}

int cli_check_output(const char *cmd, const char *flag, const char *path, int force)
{
  if (!*path) {
    cli_error(cmd, "%s: expected a file name, got ''", flag);
    return CLI_EUSAGE;
  }
  /* the library's rules (io/outfile.h): absent or a regular file, never a link, a
   * device or a FIFO, not locked by a writer; its directory writable */
  csde_err err;
  csde_err_clear(&err);
  if (csde_outfile_check(path, force, &err) == CSDE_SUCCESS) return CLI_OK;
  struct stat st;
  if (!force && lstat(path, &st) == 0 && S_ISREG(st.st_mode))
    cli_error(cmd, "%s '%s': the file exists (use --force to overwrite it)", flag, path);
  else
    cli_error(cmd, "%s %s", flag, err.msg);
  return CLI_EFAIL;
}

#ifndef CSDE_CLI_MPI
int main(int argc, char **argv) { return cli_main(argc, argv); }
#endif
