/* Spec flags -> library objects for the solving subcommands (spec_model.h). */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/spec_model.h"
#include "corrsde/io.h"

/* ---- --cov, --schedule, --frame-shape ---- */

int cli_spec_cov(const char *cmd, const char *spec, const char *method, size_t tau,
                 csde_cov **out)
{
  csde_err err;
  csde_cov_params p = csde_cov_default_params();
  csde_err_clear(&err);
  *out = NULL;
  if (method && csde_cov_method_parse(method, &p.method, &err)) {
    char names[256];
    cli_error(cmd, "--cov-method: expected one of %s, got '%s'",
              csde_cov_method_names(names, sizeof names), method);
    return CLI_EUSAGE;
  }
  if (csde_cov_alloc(out, spec, tau, &p, &err)) {
    int explicit_method = p.method != CSDE_COV_AUTO;
    if (explicit_method && err.status == CSDE_ENOTSUP)
      return cli_lib_error(cmd, "--cov-method", method, &err);
    if (explicit_method && (err.status == CSDE_ENOTPSD || err.status == CSDE_ESING)) {
      cli_error(cmd, "--cov '%s' with --cov-method %s: %s", spec, method, err.msg);
      return CLI_EFAIL;
    }
    if (err.status == CSDE_EINVAL) { /* the only invalid argument left is tau */
      cli_error(cmd, "--frames %zu: %s", tau, err.msg);
      return CLI_EFAIL;
    }
    return cli_lib_error(cmd, "--cov", spec, &err);
  }
  return CLI_OK;
}

int cli_spec_schedule(const char *cmd, const char *spec, csde_schedule **out)
{
  csde_err err;
  csde_err_clear(&err);
  *out = NULL;
  if (csde_schedule_alloc(out, spec, &err)) {
    const char *msg = err.msg[0] ? err.msg : csde_strerror(err.status);
    char forms[512];
    cli_error(cmd, "--schedule '%s': %s (forms: %s)", spec, msg,
              csde_schedule_forms(forms, sizeof forms));
    return CLI_EFAIL;
  }
  return CLI_OK;
}

int cli_spec_shape(const char *cmd, const char *flag, const char *s, int *rank,
                   size_t dims[3], size_t *D)
{
  int r = 0, ok = s && *s;
  size_t prod = 1;
  const char *p = s;
  while (ok && *p) {
    size_t v = 0, nd = 0;
    while (*p >= '0' && *p <= '9') {
      size_t d = (size_t)(*p - '0');
      if (v > (SIZE_MAX - d) / 10) ok = 0;
      v = v * 10 + d;
      p++;
      nd++;
    }
    if (!nd || v == 0 || r == 3 || (*p && *p != 'x')) {
      ok = 0;
      break;
    }
    if (prod > SIZE_MAX / v) ok = 0;
    prod *= v;
    dims[r++] = v;
    if (*p == 'x') {
      p++;
      if (!*p) ok = 0; /* "32x" */
    }
  }
  if (!ok || r == 0) {
    cli_error(cmd, "%s: expected %s, got '%s'", flag, CLI_SHAPE_FORMS, s ? s : "");
    return CLI_EUSAGE;
  }
  *rank = r;
  *D = prod;
  return CLI_OK;
}

/* ---- --model ---- */

void cli_model_free(cli_model *m)
{
  if (!m) return;
  csde_model_free(m->model);
  free(m->spec);
  memset(m, 0, sizeof *m);
}

int cli_model_prepare_score(const char *cmd, cli_model *m)
{
  csde_err err;
  csde_err_clear(&err);
  if (m->kind != CLI_MODEL_GAUSSIAN || csde_model_gaussian_prepare(m->model, &err) == 0)
    return CLI_OK;
  cli_error(cmd, "--model '%s' with --frames %zu: %s", m->spec ? m->spec : "gaussian", m->tau,
            err.msg[0] ? err.msg : csde_strerror(err.status));
  return CLI_EFAIL;
}

int cli_model_has_data_law(const cli_model *m)
{
  return m->kind == CLI_MODEL_GAUSSIAN || m->kind == CLI_MODEL_GMM;
}

/* "<flag>: <msg> (<hint>)", with the spec quoted after flag when msg does not quote it. */
static int spec_error(const char *cmd, const char *flag, const char *spec, const char *msg,
                      const char *hint)
{
  if (strstr(msg, spec))
    cli_error(cmd, "%s: %s (%s)", flag, msg, hint);
  else
    cli_error(cmd, "%s '%s': %s (%s)", flag, spec, msg, hint);
  return CLI_EFAIL;
}

static int model_error(const char *cmd, const char *spec, const char *msg)
{
  return spec_error(cmd, "--model", spec, msg, "forms: " CLI_MODEL_FORMS);
}

/* The plugin behind python: models (meson.build): $CORRSDE_PYTHON_PLUGIN; else the one
 * installed beside this program, <its dir>/../<libdir>/corrsde/corrsde_python.so (the
 * program is <prefix>/bin/corrsde); else the build tree's; else the one installed under
 * the configured prefix. 0 with its path in buf, -1 if none is readable (buf: the first
 * tried). */
static int python_plugin(char *buf, size_t len)
{
  const char *e = getenv("CORRSDE_PYTHON_PLUGIN");
  if (e && *e) {
    snprintf(buf, len, "%s", e);
    return access(buf, R_OK) == 0 ? 0 : -1;
  }
  buf[0] = '\0';
#ifdef CSDE_PYTHON_PLUGIN_LIBDIR
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  char *slash = n > 0 ? (exe[n] = '\0', strrchr(exe, '/')) : NULL;
  if (slash && CSDE_PYTHON_PLUGIN_LIBDIR[0] != '/') {
    *slash = '\0';
    snprintf(buf, len, "%s/../%s/corrsde/corrsde_python.so", exe, CSDE_PYTHON_PLUGIN_LIBDIR);
    if (access(buf, R_OK) == 0) return 0;
  }
#endif
  static const char *const built[] = {
#ifdef CSDE_PYTHON_PLUGIN
      CSDE_PYTHON_PLUGIN,
#endif
#ifdef CSDE_PYTHON_PLUGIN_INSTALLED
      CSDE_PYTHON_PLUGIN_INSTALLED,
#endif
      NULL};
  for (int i = 0; built[i]; i++) {
    if (access(built[i], R_OK) == 0) {
      snprintf(buf, len, "%s", built[i]);
      return 0;
    }
    if (!buf[0]) snprintf(buf, len, "%s", built[i]);
  }
  return -1;
}

int cli_spec_model(const char *cmd, const char *spec, const csde_cov *C,
                   const csde_schedule *s, size_t tau, int rank, const size_t *shape,
                   size_t batch, const char *process, cli_model *m)
{
  csde_err err;
  csde_err_clear(&err);
  memset(m, 0, sizeof *m);
  csde_plugin_run run = {0, {0}, batch, C, s, process}; /* what a plugin is told */
  size_t D = 1;
  for (int i = 0; i < rank && i < CSDE_PLUGIN_MAX_RANK; i++) {
    run.frame_shape[run.rank++] = shape[i];
    D *= shape[i]; /* cli_spec_shape checked the product */
  }
  m->tau = tau;
  m->D = D;

  /* python:FILE.py:NAME[:ARGS] and python:MODULE:NAME[:ARGS]: the plugin that embeds the
   * interpreter (python/corrsde/embed.c) takes the rest as its ARGS */
  if (!strncmp(spec, "python:", 7)) {
    char lib[PATH_MAX + 64];
    if (python_plugin(lib, sizeof lib)) {
      char msg[PATH_MAX + 256];
      snprintf(msg, sizeof msg, "python: models need the Python package's plugin "
                                "corrsde_python.so, not found (%s%s; build with "
                                "-Dpython=enabled, or set CORRSDE_PYTHON_PLUGIN)",
               lib[0] ? "tried " : "none built", lib);
      return model_error(cmd, spec, msg);
    }
    int st = csde_model_plugin_load_run(&m->model, lib, spec + 7, tau, &run, &err);
    if (st) return model_error(cmd, spec, err.msg[0] ? err.msg : csde_strerror(st));
    m->kind = CLI_MODEL_PLUGIN;
    m->spec = strdup(spec);
    return CLI_OK;
  }

  /* plugin:LIB[:ARGS]: ARGS is the plugin's own business, so no key=value parsing */
  if (!strncmp(spec, "plugin", 6) && (spec[6] == ':' || spec[6] == '\0')) {
    const char *lib = spec[6] ? spec + 7 : "";
    const char *colon = strchr(lib, ':');
    size_t n = colon ? (size_t)(colon - lib) : strlen(lib);
    if (n == 0)
      return model_error(cmd, spec, "plugin needs a library path: plugin:LIB.so[:ARGS]");
    char *path = strndup(lib, n);
    if (!path) return model_error(cmd, spec, "out of memory");
    int st = csde_model_plugin_load_run(&m->model, path, colon ? colon + 1 : "", tau, &run, &err);
    free(path);
    if (st) {
      cli_model_free(m);
      return model_error(cmd, spec, err.msg[0] ? err.msg : csde_strerror(st));
    }
    m->kind = CLI_MODEL_PLUGIN;
    m->spec = strdup(spec);
    return CLI_OK;
  }

  char *canon = NULL;
  int st = csde_model_spec_alloc(&m->model, spec, C, s, D, &canon, &err);
  if (!st && csde_model_is_gmm(m->model)) { /* its factors made now: a failure is --model's */
    size_t K;
    const double *cum, *means, *fac;
    st = csde_model_gmm_law(m->model, &K, &cum, &means, &fac, &err);
  }
  if (st) {
    free(canon);
    cli_model_free(m);
    if (err.param && !strcmp(err.param, CSDE_PARAM_SCHEDULE)) { /* a path it cannot take */
      cli_error(cmd, "--schedule: %s", err.msg);
      return CLI_EFAIL;
    }
    return model_error(cmd, spec, err.msg[0] ? err.msg : csde_strerror(st));
  }
  m->kind = csde_model_is_gmm(m->model) ? CLI_MODEL_GMM : CLI_MODEL_GAUSSIAN;
  m->spec = canon;
  return CLI_OK;
}

int cli_model_sample_data(const cli_model *m, csde_rng_key key, size_t first, size_t batch,
                          double *x, csde_err *err)
{
  if (m->kind == CLI_MODEL_GAUSSIAN)
    return csde_model_gaussian_sample(m->model, 0.0, key, first, batch, x, err);
  if (m->kind == CLI_MODEL_GMM) return csde_model_gmm_sample(m->model, key, first, batch, x, err);
  return csde_err_set(err, CSDE_ENOTSUP, "model '%s' has no data law to sample", m->spec);
}

/* ---- --init ---- */

void cli_init_free(cli_init *in)
{
  if (!in) return;
  free(in->file);
  free(in->dset);
  memset(in, 0, sizeof *in);
}

static int init_error(const char *cmd, const char *spec, const char *msg)
{
  return spec_error(cmd, "--init", spec, msg, "expected " CLI_INIT_FORMS);
}

int cli_spec_init(const char *cmd, const char *spec, cli_init *in)
{
  csde_err err;
  csde_err_clear(&err);
  memset(in, 0, sizeof *in);
  size_t len = strlen(spec) + 1;
  in->file = malloc(len);
  in->dset = malloc(len > 32 ? len : 32);
  if (!in->file || !in->dset) {
    cli_init_free(in);
    return init_error(cmd, spec, "out of memory");
  }
  int explicit_dset = csde_split_h5_path(spec, in->file, len, in->dset, len > 32 ? len : 32);
  if (!explicit_dset) {
    strcpy(in->file, spec);
    strcpy(in->dset, "/x");
  }
  int rank;
  size_t dims[CSDE_H5_MAXRANK];
  int s = csde_h5_shape(in->file, in->dset, &rank, dims, &err);
  if (s && !explicit_dset) { /* a trajectory file: its last saved state */
    csde_err e2;
    if (!csde_h5_shape(in->file, "/trajectory/x", &rank, dims, &e2)) {
      strcpy(in->dset, "/trajectory/x");
      s = CSDE_SUCCESS;
    }
  }
  if (s) {
    cli_init_free(in);
    return init_error(cmd, spec, err.msg);
  }
  const char *base = in->dset;
  while (*base == '/') base++;
  in->last = !strcmp(base, "trajectory/x");
  int r = rank - in->last;
  if (in->last && dims[0] == 0) {
    cli_init_free(in);
    return init_error(cmd, spec, "/trajectory/x holds no saved state");
  }
  if (r < 3 || r > 5) {
    char shape[128], msg[320];
    csde_shape_str(dims, rank, shape, sizeof shape);
    snprintf(msg, sizeof msg, "dataset %s has shape %s, expected [B, tau, *SHAPE]%s",
             in->dset, shape, in->last ? " after its saved-states axis" : "");
    cli_init_free(in);
    return init_error(cmd, spec, msg);
  }
  in->rank = r;
  for (int i = 0; i < r; i++) in->dims[i] = dims[i + in->last];
  return CLI_OK;
}

int cli_init_read(const char *cmd, const char *spec, const cli_init *in, double **x)
{
  csde_err err;
  csde_err_clear(&err);
  if (csde_h5_read_doubles(in->file, in->dset, in->last, x, &err))
    return init_error(cmd, spec, err.msg);
  return CLI_OK;
}

/* ---- memory ---- */

int cli_check_memory(const char *cmd, const csde_run_settings *s, size_t batch, size_t tau,
                     int rank, const size_t *shape, const cli_init *init)
{
  size_t extra = 0; /* --init's states, read whole before they are copied */
  if (init && init->rank) {
    extra = sizeof(double);
    for (int i = 0; i < init->rank; i++)
      extra = init->dims[i] && extra > SIZE_MAX / init->dims[i] ? SIZE_MAX
                                                                 : extra * init->dims[i];
  }
  csde_err err;
  csde_err_clear(&err);
  if (!csde_run_check_memory(s, NULL, NULL, batch, tau, rank, shape, extra, NULL, &err))
    return CLI_OK;
  if (init && init->rank) {
    char sh[160];
    csde_shape_str(init->dims, init->rank, sh, sizeof sh);
    cli_error(cmd, "--init '%s:%s': dataset %s holds states of shape %s%s: %s", init->file,
              init->dset, init->dset, sh, init->last ? " (its last saved state)" : "",
              err.msg);
  } else {
    cli_error(cmd, "--batch/--frames/--frame-shape: %s", err.msg);
  }
  return CLI_EFAIL;
}

/* ---- --cond / --uncond ---- */

void cli_cond_free(cli_cond *c)
{
  if (!c) return;
  for (size_t i = 0; c->arrays && i < c->group.n; i++) {
    free((void *)c->arrays[i].data);
    free((void *)c->arrays[i].name);
  }
  free(c->arrays);
  memset(c, 0, sizeof *c);
}

int cli_spec_cond(const char *cmd, const char *flag, const char *spec, size_t batch,
                  cli_cond *c)
{
  memset(c, 0, sizeof *c);
  size_t len = strlen(spec) + 1;
  char *file = malloc(len), *grp = malloc(len);
  csde_err err;
  csde_err_clear(&err);
  csde_h5_member *m = NULL;
  size_t n = 0;
  int rc = CLI_EUSAGE;
  if (!file || !grp) {
    cli_error(cmd, "%s: out of memory", flag);
    goto done;
  }
  if (!csde_split_h5_path(spec, file, len, grp, len)) {
    cli_error(cmd, "%s: expected FILE.h5:/group (each dataset of the group one entry of the "
                   "model's ctx.cond), got '%s'", flag, spec);
    goto done;
  }
  if (csde_h5_group_datasets(file, grp, &m, &n, &err)) {
    cli_error(cmd, "%s '%s': %s", flag, spec, err.msg);
    goto done;
  }
  if (!(c->arrays = calloc(n, sizeof *c->arrays))) {
    cli_error(cmd, "%s: out of memory", flag);
    goto done;
  }
  c->group.magic = CSDE_COND_GROUP_MAGIC;
  c->group.arrays = c->arrays;
  for (size_t i = 0; i < n; i++, c->group.n++) {
    csde_cond_array *a = &c->arrays[i];
    char obj[1024], shape[128];
    snprintf(obj, sizeof obj, "%s/%s", strcmp(grp, "/") ? grp : "", m[i].name);
    double *v = NULL;
    int rank = 0;
    size_t dims[CSDE_H5_MAXRANK];
    a->name = m[i].name;
    m[i].name = NULL;
    a->integer = m[i].integer;
    if (csde_h5_read_array(file, obj, NULL, &v, &rank, dims, &err)) {
      cli_error(cmd, "%s '%s': %s", flag, spec, err.msg);
      goto done;
    }
    a->data = v;
    a->rank = rank;
    for (int k = 0; k < rank; k++) a->dims[k] = dims[k];
    csde_shape_str(dims, rank, shape, sizeof shape);
    if (rank < 1 || (dims[0] != batch && dims[0] != 1)) {
      cli_error(cmd, "%s '%s': dataset %s has shape %s; expected axis 0 of %zu (--batch) or 1 "
                     "(one row for every sample)", flag, spec, obj, shape, batch);
      goto done;
    }
    size_t total = 1;
    for (int k = 0; k < rank; k++) total *= dims[k];
    if (a->integer) { /* int64, exactly: the file's integers up to 2^53 */
      for (size_t k = 0; k < total; k++)
        if (!(fabs(v[k]) <= 9007199254740992.0)) {
          cli_error(cmd, "%s '%s': integer dataset %s holds %.17g, beyond 2^53", flag, spec,
                    obj, v[k]);
          goto done;
        }
      int64_t *iv = (int64_t *)(void *)v; /* in place: both 8 bytes */
      for (size_t k = 0; k < total; k++) iv[k] = (int64_t)v[k];
    }
  }
  rc = CLI_OK;
done:
  csde_h5_members_free(m, n);
  free(file);
  free(grp);
  if (rc) cli_cond_free(c);
  return rc;
}

int cli_cond_alike(const char *cmd, const cli_cond *c, const cli_cond *u, const char *cspec,
                   const char *uspec)
{
  for (size_t i = 0; i < c->group.n || i < u->group.n; i++) {
    const csde_cond_array *a = i < c->group.n ? &c->arrays[i] : NULL;
    const csde_cond_array *b = i < u->group.n ? &u->arrays[i] : NULL;
    int same = a && b && !strcmp(a->name, b->name) && a->integer == b->integer &&
               a->rank == b->rank;
    for (int k = 1; same && k < a->rank; k++) same = a->dims[k] == b->dims[k];
    if (!same) {
      char sa[128] = "(none)", sb[128] = "(none)";
      if (a) csde_shape_str(a->dims, a->rank, sa, sizeof sa);
      if (b) csde_shape_str(b->dims, b->rank, sb, sizeof sb);
      cli_error(cmd, "--uncond '%s': its datasets must match --cond '%s' by name, type and "
                     "shape past axis 0 (guidance joins them along axis 0): %s %s%s vs %s %s%s",
                uspec, cspec, a ? a->name : "-", sa, a && a->integer ? " int" : "",
                b ? b->name : "-", sb, b && b->integer ? " int" : "");
      return CLI_EUSAGE;
    }
  }
  return CLI_OK;
}
