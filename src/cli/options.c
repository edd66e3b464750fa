/* The options `sample` and `converge` share (options.h). */
#include <stdio.h>
#include <string.h>

#include "cli/options.h"
#include "cli/spec_model.h"
#include "corrsde/cov.h"

#define DEFAULT_MODEL "gaussian"
#define DEFAULT_COV "ar1:rho=0.9"
#define DEFAULT_SCHEDULE "vp-linear:bmin=0.1,bmax=20"
#define MAX_THREADS 4096

/* The table, each entry with its help: the flags' column and the text (a "%s" in it
 * takes the default, help_default). */
typedef struct {
  cli_option opt;
  const char *flags, *text;
} common_entry;

static const common_entry table[] = {
    {{"model", 'm', CLI_MODEL_FORMS}, "-m, --model SPEC", "the model (default %s; forms below)"},
    {{"cov", 'c', "a covariance spec such as ar1:rho=0.9"}, "-c, --cov SPEC",
     "noise covariance C along the frame axis (default %s; see 'corrsde cov --help' for "
     "the forms)"},
    {{"cov-method", CLI_OPT_COV_METHOD, cli_arg_cov_method}, "--cov-method M", NULL},
    {{"frames", 't', "a positive integer"}, "-t, --frames TAU", "frames per video (default %s)"},
    {{"frame-shape", CLI_OPT_FRAME_SHAPE, CLI_SHAPE_FORMS}, "--frame-shape S",
     "D, HxW or CxHxW (default %s)"},
    {{"schedule", CLI_OPT_SCHEDULE, cli_arg_schedule}, "--schedule SPEC", NULL},
    {{"seed", CLI_OPT_SEED, "a non-negative integer"}, "--seed K",
     "noise seed, a non-negative integer (default %s)"},
    {{"threads", 'j', "a positive integer"}, "-j, --threads N",
     "OpenMP threads (default %s); the result does not depend on N"},
    {{"force", 'f', NULL}, "-f, --force", NULL},
    {{"progress", CLI_OPT_PROGRESS, NULL}, "--progress", "%s"},
    {{"quiet", 'q', NULL}, "-q, --quiet", "print nothing but errors"},
    {{"output", 'o', "an output file name such as out.h5"}, "-o, --output OUT.h5", "%s"},
    {{"help", 'h', NULL}, "-h, --help", "show this help and exit"},
};
enum { NCOMMON = sizeof table / sizeof table[0] };

void cli_common_defaults(cli_common *c, size_t tau, const char *shape)
{
  memset(c, 0, sizeof *c);
  c->model = DEFAULT_MODEL;
  c->cov = DEFAULT_COV;
  c->cov_method = "auto";
  c->tau = tau;
  c->shape_s = shape;
  c->schedule = DEFAULT_SCHEDULE;
  c->threads = 1;
  c->output_help = "the output file (required)";
  c->schedule_help = "the noise schedule (default vp-linear), one of:";
  c->progress_help = "show the progress bar even when stderr is not a terminal";
}

int cli_options_join(cli_option *out, size_t cap, const cli_option *own)
{
  size_t n = 0;
  for (size_t i = 0; i < NCOMMON; i++) {
    if (n + 1 >= cap) return CLI_EFAIL;
    out[n++] = table[i].opt;
  }
  for (; own->name; own++) {
    if (n + 1 >= cap) return CLI_EFAIL;
    out[n++] = *own;
  }
  memset(&out[n], 0, sizeof out[n]);
  return CLI_OK;
}

int cli_check_name(const char *cmd, const char *flag, const char *v, int bad,
                   char *(*names)(char *, size_t))
{
  char buf[256];
  if (!bad) return CLI_OK;
  cli_error(cmd, "%s: expected one of %s, got '%s'", flag, names(buf, sizeof buf), v);
  return CLI_EUSAGE;
}

int cli_common_option(const char *cmd, int c, const char *v, cli_common *o)
{
  int rc;
  switch (c) {
  case 'm': o->model = v; break;
  case 'c': o->cov = v; break;
  case CLI_OPT_COV_METHOD: {
    csde_cov_method m;
    if ((rc = cli_check_name(cmd, "--cov-method", v, csde_cov_method_parse(v, &m, NULL),
                             csde_cov_method_names)))
      return rc;
    o->cov_method = v;
    break;
  }
  case 't':
    if ((rc = cli_parse_size(cmd, "--frames", v, &o->tau))) return rc;
    o->tau_set = 1;
    break;
  case CLI_OPT_FRAME_SHAPE: o->shape_s = v; o->shape_set = 1; break;
  case CLI_OPT_SCHEDULE: o->schedule = v; o->schedule_set = 1; break;
  case CLI_OPT_SEED:
    if ((rc = cli_parse_u64(cmd, "--seed", v, &o->seed))) return rc;
    break;
  case 'j':
    if ((rc = cli_parse_size(cmd, "--threads", v, &o->threads))) return rc;
    if (o->threads > MAX_THREADS) {
      cli_error(cmd, "--threads: expected a positive integer up to %d, got '%s'", MAX_THREADS, v);
      return CLI_EUSAGE;
    }
    break;
  case 'f': o->force = 1; break;
  case CLI_OPT_PROGRESS: o->progress = 1; break;
  case 'q': o->quiet = 1; break;
  case 'o': o->output = v; break;
  case 'h': o->help = 1; break;
  default: return CLI_OPT_NOT_MINE;
  }
  return CLI_OPT_HANDLED;
}

/* The default shown for entry i. */
static const char *help_default(const cli_common *d, size_t i, char *buf, size_t len)
{
  switch (table[i].opt.val) {
  case 'm': return d->model;
  case 'c': return d->cov;
  case 't': snprintf(buf, len, "%zu", d->tau); return buf;
  case CLI_OPT_FRAME_SHAPE: return d->shape_s;
  case CLI_OPT_SEED: snprintf(buf, len, "%llu", (unsigned long long)d->seed); return buf;
  case 'j': snprintf(buf, len, "%zu", d->threads); return buf;
  case 'o': return d->output_help;
  case CLI_OPT_PROGRESS: return d->progress_help;
  default: return "";
  }
}

void cli_common_help(const cli_common *d, const char *names)
{
  char name[32], buf[32], text[512];
  for (const char *p = names; *p;) {
    size_t n = strcspn(p, ",");
    snprintf(name, sizeof name, "%.*s", (int)n, p);
    p += n + (p[n] == ',');
    for (size_t i = 0; i < NCOMMON; i++) {
      const common_entry *e = &table[i];
      if (strcmp(e->opt.name, name)) continue;
      if (e->opt.val == CLI_OPT_COV_METHOD) {
        cli_help_cov_methods();
      } else if (e->opt.val == CLI_OPT_SCHEDULE) {
        cli_help_schedules(d->schedule_help);
      } else if (e->opt.val == 'f') {
        cli_help_entry(2, 25, e->flags, d->force_help);
      } else {
        snprintf(text, sizeof text, e->text, help_default(d, i, buf, sizeof buf));
        cli_help_entry(e->flags[0] == '-' && e->flags[1] != '-' ? 2 : 6, 25, e->flags, text);
      }
    }
  }
}

void cli_signals_catch(cli_signals *s, void (*handler)(int))
{
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = handler;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, &s->old_int);
  sigaction(SIGTERM, &sa, &s->old_term);
  sigaction(SIGHUP, &sa, &s->old_hup);
}

void cli_signals_restore(const cli_signals *s)
{
  sigaction(SIGINT, &s->old_int, NULL);
  sigaction(SIGTERM, &s->old_term, NULL);
  sigaction(SIGHUP, &s->old_hup, NULL);
}
