/* Model plugins (corrsde/plugin.h): a shared library opened with dlopen, whose
 * csde_plugin_init fills a csde_plugin. The model keeps the handle; csde_model_free calls
 * the plugin's free(user) and then dlcloses it (model.c). */
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/util.h"
#include "corrsde/plugin.h"
#include "model/model_internal.h"

/* The last path component, for a model name. */
static const char *base_name(const char *path)
{
  const char *b = strrchr(path, '/');
  return b ? b + 1 : path;
}

int csde_model_plugin_load(csde_model **out, const char *path, const char *args, size_t tau,
                           size_t D, csde_err *err)
{
  csde_plugin_run run = {1, {D}, 0, NULL, NULL, NULL};
  return csde_model_plugin_load_run(out, path, args, tau, &run, err);
}

int csde_model_plugin_load_run(csde_model **out, const char *path, const char *args,
                               size_t tau, const csde_plugin_run *run_in, csde_err *err)
{
  if (!out) return csde_err_set(err, CSDE_EINVAL, "plugin: output pointer is NULL");
  *out = NULL;
  if (!path || !*path) return csde_err_set(err, CSDE_EINVAL, "plugin: empty library path");
  if (!run_in) return csde_err_set(err, CSDE_EINVAL, "plugin '%s': run is NULL", path);
  csde_plugin_run run = *run_in;
  if (run.rank < 1 || run.rank > CSDE_PLUGIN_MAX_RANK)
    return csde_err_set(err, CSDE_EINVAL, "plugin '%s': %zu frame axes (expected 1 to %d)",
                        path, run.rank, CSDE_PLUGIN_MAX_RANK);
  size_t D = 1;
  for (size_t i = 0; i < run.rank; i++)
    if (run.frame_shape[i] == 0 || csde_mul_size(D, run.frame_shape[i], &D)) D = 0;
  if (tau == 0 || D == 0)
    return csde_err_set(err, CSDE_EINVAL, "plugin '%s': tau = %zu and D = %zu must be positive",
                        path, tau, D);
  /* dlopen searches the library path for a name without a '/', not the current
   * directory: a file there is meant, so open it as ./NAME */
  char local[4096];
  const char *file = path;
  if (!strchr(path, '/') && access(path, F_OK) == 0 &&
      (size_t)snprintf(local, sizeof local, "./%s", path) < sizeof local)
    file = local;
  dlerror(); /* clear a stale message */
  void *h = dlopen(file, RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    const char *why = dlerror();
    return csde_err_set(err, CSDE_EIO, "cannot load plugin '%s': %s", path,
                        why ? why : "unknown dlopen error");
  }
  dlerror();
  void *sym = dlsym(h, "csde_plugin_init");
  if (!sym) {
    const char *why = dlerror();
    csde_err_set(err, CSDE_EINVAL,
                 "'%s' is not a corrsde plugin: no csde_plugin_init symbol (%s)", path,
                 why ? why : "NULL symbol");
    dlclose(h);
    return CSDE_EINVAL;
  }
  csde_plugin_init_fn init;
  memcpy(&init, &sym, sizeof init); /* object to function pointer, as POSIX allows */
  char msg[CSDE_MSG_MAX] = "";
  csde_plugin_info info = {CSDE_PLUGIN_ABI, tau, D, args ? args : "", msg, sizeof msg, &run};
  csde_plugin p;
  memset(&p, 0, sizeof p);
  int rc = init(&info, &p);
  msg[sizeof msg - 1] = '\0';
  int st = CSDE_SUCCESS;
  if (rc) {
    st = csde_err_set(err, CSDE_EINVAL, "plugin '%s' failed to initialise (code %d): %s", path,
                      rc, msg[0] ? msg : "no reason given");
  } else if (!p.fn == !p.fn_ctx) {
    st = csde_err_set(err, CSDE_EINVAL, "plugin '%s' returned %s", path,
                      p.fn ? "two callbacks (set fn or fn_ctx, not both)"
                           : "no callback (fn and fn_ctx are NULL)");
  } else if ((unsigned)p.output > (unsigned)CSDE_OUT_FLOW_SHIFTED) {
    st = csde_err_set(err, CSDE_EINVAL,
                      "plugin '%s' declares output kind %d; expected score (0), cscore (1), "
                      "noise (2), x0 (3), v (4), flow (5) or flow-shifted (6)",
                      path, (int)p.output);
  }
  if (st) {
    if (!rc && p.free && p.user) p.free(p.user);
    dlclose(h);
    return st;
  }
  /* the name is copied before the library can be closed */
  st = csde_model_wrap(out, p.name && *p.name ? p.name : base_name(path), p.fn ? p.fn : csde_model_ctx_placeholder, p.output, p.user,
                       p.free, CSDE_MODEL_PLUGIN, tau, D, err);
  if (st) {
    dlclose(h); /* wrap has already freed the user data */
    return st;
  }
  (*out)->dl = h;
  if (p.abi >= 5 && p.jvp) /* ABI 5: an older plugin's struct ends before abi (zeroed) */
    csde_model_set_jvp(*out, p.jvp, NULL);
  if (p.fn_ctx) {
    (*out)->fn = NULL;
    (*out)->fn_ctx = p.fn_ctx;
  }
  return CSDE_SUCCESS;
}
