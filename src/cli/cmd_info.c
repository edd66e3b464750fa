/* `corrsde info FILE.h5`: a readable summary of a trajectory file: the shapes, the
 * status and statistics of the run, the covariance and every parameter. It reads any
 * file with the layout of io/h5traj.h, whoever wrote it. Everything is read before
 * anything is printed, so an error leaves stdout empty. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "io/h5read.h"
#include "io/h5traj.h"

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
         "steps, the status and statistics of the run (/stats), the covariance and every\n"
         "parameter (/parameters).\n"
         "\n"
         "A status of 'running' means the writer never finished: the run was killed (the\n"
         "file still holds every state saved before that) or is still going.\n"
         "The attribute /trajectory n_saved counts the saved states. x, t and step are\n"
         "made with room for every state of the run, NaN (step -1) until it is saved; a\n"
         "finished run (ok or failed) cuts them to n_saved, a killed one leaves them as\n"
         "they were (info says so; read x[:n_saved]). A file its writer could not finish\n"
         "(disk full, a size limit) is\n"
         "explained, with the command that makes it readable.\n"
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

static void print_attrs(const char *title, const csde_h5attr *a, size_t n)
{
  if (!n) return;
  size_t w = 0;
  for (size_t i = 0; i < n; i++)
    if (strlen(a[i].name) > w) w = strlen(a[i].name);
  printf("\n%s:\n", title);
  for (size_t i = 0; i < n; i++) printf("  %-*s  %s\n", (int)w, a[i].name, a[i].text);
}

static void print_info(const char *path, const csde_h5traj_info *f)
{
  const csde_h5dset_info *x = &f->x;
  const char *status = csde_h5attr_get(f->stats, f->nstats, "status");
  printf("%-12s%s\n", "file", path);
  if (!status)
    printf("%-12s%s\n", "status", "unknown (no /stats status attribute)");
  else if (!strcmp(status, "running"))
    printf("%-12s%s\n", "status",
           "running (not finished: the run was killed, or is still writing)");
  else
    printf("%-12s%s\n", "status", status);

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
  if (x->rank >= 3) {
    printf("%-12s%zu saved state%s of %zu sample%s x %zu frames x ", "", nsaved,
           nsaved == 1 ? "" : "s", x->dims[1], x->dims[1] == 1 ? "" : "s", x->dims[2]);
    for (int i = 3; i < x->rank; i++) printf("%s%zu", i > 3 ? "x" : "", x->dims[i]);
    printf("%s\n", x->rank == 3 ? "(no pixel axis)" : "");
  }
  if (extent > nsaved)
    printf("%-12s(x holds %zu entr%s more: room for states the run did not save, or one it "
           "was writing when it stopped; read x[:%zu])\n", "", extent - nsaved,
           extent - nsaved == 1 ? "y" : "ies", nsaved);
  size_t nt = f->t.present && f->t.rank == 1 ? csde_h5traj_info_saved(f, f->t.dims[0]) : 0;
  size_t ns = f->step.present && f->step.rank == 1 ? csde_h5traj_info_saved(f, f->step.dims[0]) : 0;
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
  } else if (!f->t.present) {
    printf("%-12s(no /trajectory/t)\n", "");
  }

  if (f->cov.present) {
    printf("%-12s/covariance/matrix ", "covariance");
    print_dims(f->cov.dims, f->cov.rank);
    const char *spec = csde_h5attr_get(f->cov_attrs, f->ncov_attrs, "spec");
    const char *method = csde_h5attr_get(f->cov_attrs, f->ncov_attrs, "method");
    if (spec || method)
      printf(" (%s%s%s)", spec ? spec : "", spec && method ? ", " : "", method ? method : "");
    printf("\n");
    if (f->eig.present && f->eig.rank == 1 && f->eig.dims[0] > 0)
      printf("%-12seigenvalues from %.6g to %.6g\n", "", f->eig_min, f->eig_max);
  }

  static const char *const keys[] = {"nfe", "steps", "accepted", "rejected", NULL};
  int any = 0;
  for (int i = 0; keys[i]; i++) {
    const char *v = csde_h5attr_get(f->stats, f->nstats, keys[i]);
    if (v) {
      printf("%s%s %s", any ? ", " : "stats       ", keys[i], v);
      any = 1;
    }
  }
  const char *wall = csde_h5attr_get(f->stats, f->nstats, "wall_seconds");
  if (wall) {
    printf("%s%.3g s", any ? ", " : "stats       ", strtod(wall, NULL));
    any = 1;
  }
  if (any) printf("\n");

  print_attrs("parameters", f->params, f->nparams);
  print_attrs("stats", f->stats, f->nstats);
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
  int nopt = 0, dashdash = 0, rc = CLI_OK;
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
  csde_h5traj_info info;
  csde_err err;
  csde_err_clear(&err);
  if (csde_h5traj_info_read(file, &info, &err)) {
    cli_error(CMD, "%s", err.msg);
    return CLI_EFAIL;
  }
  print_info(file, &info);
  csde_h5traj_info_free(&info);
  return rc;
}
