/* `corrsde info FILE.h5`: a readable summary of a trajectory file: the shapes, the
 * status and statistics of the run, the covariance and the parameters. It reads any
 * file with the layout of io/h5traj.h, whoever wrote it, and only the attributes
 * corrsde writes (io/h5traj_read.h: a hostile file is refused, never read blindly).
 * Everything is read before anything is printed, so an error leaves stdout empty; every
 * string from the file is printed escaped (put). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "corrsde/io.h"

#define CMD "info"

static const cli_option info_options[] = {
  {"help", 'h', NULL},
  {0},
};

static void help(void)
{
  printf("Usage: corrsde info FILE.h5\n"
         "\n"
         "Summarise a trajectory file written by 'corrsde sample' (or by any program that\n"
         "uses the same layout): the shape and type of /trajectory/x, the saved times and\n"
         "steps, the status and statistics of the run (/stats), the covariance and the\n"
         "parameters (/parameters). Only the attributes corrsde writes are read, each\n"
         "checked for its type and size first; others are counted, not shown. Control\n"
         "characters in the file's strings are shown escaped (\\x1b). A file that keeps\n"
         "data outside itself (external storage, external links, virtual datasets) or\n"
         "uses a filter other than gzip, shuffle and fletcher32 is refused.\n"
         "\n"
         "A status of 'running' means the writer never finished: the run was killed (the\n"
         "file still holds every state saved before that) or is still going.\n"
         "The attribute /trajectory n_saved counts the saved states. x, t and step are\n"
         "made with room for every state of the run (x 0, t NaN, step -1 until it is\n"
         "saved); a finished run (ok or failed) cuts them to n_saved, a killed one leaves\n"
         "them as they were (info says so; read x[:n_saved]). A file its writer could not\n"
         "finish (disk full, a size limit) is explained, with the command that makes it\n"
         "readable.\n"
         "\n"
         "The file is read in a child process: a corrupt file on which the HDF5 library\n"
         "itself crashes, or loops for CORRSDE_INFO_TIMEOUT seconds (default 120), gives\n"
         "one error line.\n"
         "\n"
         "Options:\n"
         "  -h, --help   show this help and exit\n"
         "\n"
         "Exit status: 0 on success, 1 when the file cannot be read as a trajectory,\n"
         "2 for a malformed command line.\n");
}

static void print_dims(const size_t *d, int rank)
{
  char buf[256];
  csde_shape_str(d, rank, buf, sizeof buf);
  fputs(buf, stdout);
}

/* Every string from the file (and the path) goes out through here: control characters,
 * invalid UTF-8 and C1 controls escaped (csde_h5_escape), never raw to a terminal. */
static void put(const char *s)
{
  char small[512];
  size_t need = csde_h5_escape(s, small, sizeof small);
  if (need < sizeof small) {
    fputs(small, stdout);
    return;
  }
  char *big = malloc(need + 1);
  if (!big) {
    fputs(small, stdout); /* cut short rather than raw */
    return;
  }
  csde_h5_escape(s, big, need + 1);
  fputs(big, stdout);
  free(big);
}

/* "label       text\n" with text from the file */
static void put_line(const char *label, const char *text)
{
  printf("%-12s", label);
  put(text);
  putchar('\n');
}

static void print_attrs(const char *title, const csde_h5attrs *g)
{
  if (!g->n && !g->other && !g->unreadable && !g->lookup_failed) return;
  size_t w = 0;
  for (size_t i = 0; i < g->n; i++)
    if (strlen(g->a[i].name) > w) w = strlen(g->a[i].name);
  printf("\n%s:\n", title);
  if (g->lookup_failed)
    printf("  (/%s could not be looked up or opened: a corrupt file?)\n", title);
  for (size_t i = 0; i < g->n; i++) {
    printf("  %-*s  ", (int)w, g->a[i].name); /* names from info's table */
    if (!g->a[i].ok) printf("(not shown: ");
    put(g->a[i].text);
    printf("%s\n", g->a[i].ok ? "" : ")");
  }
  if (g->other)
    printf("  (%zu other attribute%s not shown: info reads only the attributes corrsde "
           "writes)\n", g->other, g->other == 1 ? "" : "s");
  if (g->unreadable)
    printf("  (%zu attribute%s could not be looked up: a corrupt attribute table)\n",
           g->unreadable, g->unreadable == 1 ? "" : "s");
}

/* "            (/trajectory/t: not read: ...)" */
static void print_note(const char *name, const csde_h5dset_info *d)
{
  if (d->note[0]) printf("%-12s(%s: %s)\n", "", name, d->note);
}

static void print_info(const char *path, const csde_h5traj_info *f)
{
  const csde_h5dset_info *x = &f->x;
  const char *status = csde_h5attr_get(&f->stats, "status");
  put_line("file", path);
  const char *why = NULL; /* a status attribute info could not take */
  for (size_t i = 0; i < f->stats.n; i++)
    if (!strcmp(f->stats.a[i].name, "status") && !f->stats.a[i].ok) why = f->stats.a[i].text;
  if (why) {
    printf("%-12sunknown (/stats status not shown: ", "status");
    put(why);
    printf(")\n");
  } else if (!status)
    printf("%-12s%s\n", "status", "unknown (no /stats status attribute)");
  else if (!strcmp(status, "running"))
    printf("%-12s%s\n", "status",
           "running (not finished: the run was killed, or is still writing)");
  else
    put_line("status", status);

  /* the whole states: /trajectory n_saved where the writer recorded it (a run killed
   * while appending may leave x, t and step one entry longer), else the extent of x */
  size_t extent = x->rank > 0 ? x->dims[0] : 0;
  size_t nsaved = f->n_saved >= 0 ? (size_t)f->n_saved : extent;
  printf("%-12s/trajectory/x ", "trajectory");
  print_dims(x->dims, x->rank);
  printf(" %s", x->type);
  if (x->chunked) {
    printf(", chunks ");
    print_dims(x->chunk, x->rank);
  }
  printf(", %s\n", x->filters[0] ? x->filters : "uncompressed");
  print_note("/trajectory/x", x);
  if (x->rank >= 3) {
    printf("%-12s%zu saved state%s of %zu sample%s x %zu frames x ", "", nsaved,
           nsaved == 1 ? "" : "s", x->dims[1], x->dims[1] == 1 ? "" : "s", x->dims[2]);
    for (int i = 3; i < x->rank; i++) printf("%s%zu", i > 3 ? "x" : "", x->dims[i]);
    printf("%s\n", x->rank == 3 ? "(no pixel axis)" : "");
  }
  if (f->n_saved_note[0]) printf("%-12s(%s)\n", "", f->n_saved_note);
  if (extent > nsaved)
    printf("%-12s(x holds %zu entr%s more: room for states the run did not save, or one it "
           "was writing when it stopped; read x[:%zu])\n", "", extent - nsaved,
           extent - nsaved == 1 ? "y" : "ies", nsaved);
  size_t nt = f->t.present && f->t.rank == 1 && !f->t.note[0]
                  ? csde_h5traj_info_saved(f, f->t.dims[0]) : 0;
  size_t ns = f->step.present && f->step.rank == 1 && !f->step.note[0]
                  ? csde_h5traj_info_saved(f, f->step.dims[0]) : 0;
  if (nt > 0) {
    if (nt == 1)
      printf("%-12st = %.10g", "", f->t_first);
    else
      printf("%-12st from %.10g to %.10g", "", f->t_first, f->t_last);
    if (ns > 0) {
      if (ns == 1)
        printf(", step %lld", (long long)f->step_first);
      else
        printf(", steps %lld to %lld", (long long)f->step_first, (long long)f->step_last);
    }
    printf("\n");
    if (f->t.dims[0] != nsaved && f->t.dims[0] != extent)
      printf("%-12s(/trajectory/t has %zu values for %zu states)\n", "", f->t.dims[0], nsaved);
  } else if (!f->t.present && !f->t.note[0]) {
    printf("%-12s(no /trajectory/t)\n", "");
  }
  print_note("/trajectory/t", &f->t);
  print_note("/trajectory/step", &f->step);

  if (f->cov_attrs.lookup_failed)
    printf("%-12s(/covariance could not be looked up or opened: a corrupt file?)\n",
           "covariance");
  else if (!f->cov.present)
    print_note("/covariance/matrix", &f->cov);
  if (f->cov.present) {
    printf("%-12s/covariance/matrix ", "covariance");
    print_dims(f->cov.dims, f->cov.rank);
    const char *spec = csde_h5attr_get(&f->cov_attrs, "spec");
    const char *method = csde_h5attr_get(&f->cov_attrs, "method");
    if (spec || method) {
      printf(" (");
      put(spec ? spec : "");
      printf("%s", spec && method ? ", " : "");
      put(method ? method : "");
      printf(")");
    }
    printf("\n");
    print_note("/covariance/matrix", &f->cov);
    if (f->eig.present && f->eig.rank == 1 && f->eig.dims[0] > 0 && !f->eig.note[0])
      printf("%-12seigenvalues from %.6g to %.6g\n", "", f->eig_min, f->eig_max);
    print_note("/covariance/eigenvalues", &f->eig);
  }

  static const char *const keys[] = {"nfe", "steps", "accepted", "rejected", NULL};
  int any = 0;
  for (int i = 0; keys[i]; i++) {
    const char *v = csde_h5attr_get(&f->stats, keys[i]);
    if (v) {
      printf("%s%s ", any ? ", " : "stats       ", keys[i]);
      put(v);
      any = 1;
    }
  }
  const char *wall = csde_h5attr_get(&f->stats, "wall_seconds");
  if (wall) {
    printf("%s%.3g s", any ? ", " : "stats       ", strtod(wall, NULL));
    any = 1;
  }
  if (any) printf("\n");

  print_attrs("parameters", &f->params);
  print_attrs("stats", &f->stats);
}

/* Read and print the file. */
static int show(const char *file)
{
  csde_h5traj_info info;
  csde_err err;
  csde_err_clear(&err);
  if (csde_h5traj_info_read(file, &info, &err)) {
    cli_error(CMD, "%s", err.msg);
    return CLI_EFAIL;
  }
  print_info(file, &info);
  csde_h5traj_info_free(&info);
  return CLI_OK;
}

/* A child reading one file's metadata takes well under a second; CORRSDE_INFO_TIMEOUT
 * (seconds) changes the limit. */
#define INFO_SECONDS 120

/* libhdf5 1.10.8 can crash or loop on a corrupt file in ways no check before a read can
 * see (a variable-length string whose global heap is broken: H5HG_read; the files in
 * tests/fuzz/libhdf5/). So the file is read in a child process, and a crash or a hang
 * there becomes one error line here. Without fork, it is read here. */
static int read_isolated(const char *file)
{
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid < 0) return show(file);
  if (pid == 0) {
    int rc = show(file);
    fflush(stdout);
    fflush(stderr);
    _exit(rc);
  }
  int status = 0;
  struct timespec tick = {0, 10 * 1000 * 1000};
  const char *e = getenv("CORRSDE_INFO_TIMEOUT");
  long limit = e && atol(e) > 0 ? atol(e) : INFO_SECONDS;
  for (long k = 0;; k++) {
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) break;
    if (r < 0 && errno != EINTR) return CLI_EFAIL;
    if (k >= limit * 100) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      cli_error(CMD, "'%s': reading it did not end in %ld s: the file is corrupt (the HDF5 "
                     "library loops on it)", file, limit);
      return CLI_EFAIL;
    }
    nanosleep(&tick, NULL);
  }
  if (WIFSIGNALED(status)) {
    cli_error(CMD, "'%s': the HDF5 library crashed reading it (signal %d, %s): the file is "
                   "corrupt", file, WTERMSIG(status), strsignal(WTERMSIG(status)));
    return CLI_EFAIL;
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : CLI_EFAIL;
}

int cli_cmd_info(int argc, char **argv)
{
  /* cli_getopt takes options only: pull the file name out first */
  char **opts = malloc((size_t)(argc + 1) * sizeof *opts);
  if (!opts) {
    cli_error(CMD, "out of memory");
    return CLI_EFAIL;
  }
  const char *file = NULL;
  int nopt = 0, dashdash = 0;
  opts[nopt++] = argv[0];
  for (int i = 1; i < argc; i++) {
    const char *s = argv[i];
    if (!dashdash && !strcmp(s, "--")) {
      dashdash = 1;
    } else if (dashdash || s[0] != '-' || s[1] == '\0') {
      if (file) {
        cli_error(CMD, "unexpected argument '%s' (usage: corrsde info FILE.h5)", s);
        free(opts);
        return CLI_EUSAGE;
      }
      file = s;
    } else {
      opts[nopt++] = argv[i];
    }
  }
  opts[nopt] = NULL;
  cli_getopt g;
  const char *v;
  int c, want_help = 0;
  cli_getopt_init(&g, CMD, info_options, nopt, opts);
  while ((c = cli_getopt_next(&g, &v)) != -1) {
    if (c == 'h') {
      want_help = 1;
    } else {
      free(opts);
      return CLI_EUSAGE;
    }
  }
  free(opts);
  if (want_help) {
    help();
    return CLI_OK;
  }
  if (!file) {
    cli_error(CMD, "FILE: missing (usage: corrsde info FILE.h5)");
    return CLI_EUSAGE;
  }
  return read_isolated(file);
}
