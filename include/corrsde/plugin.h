/* corrsde/plugin.h: the entry point of a model plugin (`--model plugin:lib.so[:ARGS]`).
 *
 * A plugin is a shared library that exports one function:
 *
 *     int csde_plugin_init(const csde_plugin_info *info, csde_plugin *out);
 *
 * corrsde fills `info` (sizes, the ARGS string, an error buffer) and the plugin fills
 * `out`: its callback (see corrsde/model.h for the contract), what the callback returns,
 * its user pointer and the function that frees it. Return 0 on success; on failure
 * return non-zero and write a one-line reason into info->errmsg (at most info->errlen
 * bytes, NUL included). corrsde calls out->free(out->user) (if not NULL) and then
 * dlcloses the library when the model is freed; it also calls it (and dlcloses) when it
 * rejects what init returned (fn NULL, or an output kind outside csde_model_output).
 * `name` is copied. The library is opened with RTLD_NOW | RTLD_LOCAL.
 * Errors of csde_model_plugin_load: CSDE_EIO if dlopen fails (dlerror's text in the
 * message), CSDE_EINVAL for no csde_plugin_init symbol, a failed init (its message
 * quoted), a NULL fn or a bad output kind.
 * Build: cc -shared -fPIC -I include -o my.so my.c (see experiments/README.md).
 * experiments/plugin_mlp.c is a complete example.
 */
#ifndef CORRSDE_PLUGIN_H
#define CORRSDE_PLUGIN_H

#include <stddef.h>
#include "corrsde/model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* 2: csde_plugin.fn_ctx (the model's context). A plugin built for ABI 1 leaves it NULL
 * (corrsde zeroes the struct before init) and keeps working.
 * 3: csde_plugin_info.run (the frame shape, the batch, the run's objects and process).
 * A plugin reads it only when info->abi >= 3; one built for ABI 2 never sees it.
 * 4: csde_model_ctx's conditioning fields (cond, uncond, ncond, first), appended after
 * errlen, so a plugin built for ABI 2 or 3 reads the fields it knows where they were.
 * 5: csde_plugin.abi and csde_plugin.jvp (the model's Jacobian-vector product, model.h),
 * appended at the end: a plugin built for ABI 1-4 never writes them (corrsde zeroes the
 * struct), and corrsde takes jvp only from a plugin that sets abi >= 5.
 * 6: csde_model_ctx's path fields (alpha, sigma_path, lambda, t_shifted), appended after
 * first, so a plugin built for ABI 4 or 5 reads the fields it knows where they were; and
 * the output kind flow-shifted (6, CSDE_OUT_FLOW_SHIFTED, rf schedules only). */
#define CSDE_PLUGIN_ABI 6

#define CSDE_PLUGIN_MAX_RANK 6 /* frame axes at most */

/* What the plugin is told of the run it serves (ABI 3). Borrowed for the init call; C
 * and sched outlive the model. A field the loader does not know is 0 or NULL. */
typedef struct {
  size_t rank;                              /* frame axes, 1..CSDE_PLUGIN_MAX_RANK */
  size_t frame_shape[CSDE_PLUGIN_MAX_RANK]; /* their sizes: D = their product */
  size_t batch;                             /* samples per call at most (0: not known) */
  const csde_cov *C;                        /* the run's covariance (NULL: not known) */
  const csde_schedule *sched;               /* the run's schedule (NULL: not known) */
  const char *process;                      /* "reverse-sde", "pf-ode", "ddim", ...
                                               (csde_run_process_name; NULL: not known) */
} csde_plugin_run;

typedef struct {
  int abi;            /* CSDE_PLUGIN_ABI of the corrsde that loads the plugin */
  size_t tau, D;      /* frames and pixels per frame of every sample */
  const char *args;   /* the text after the library path's ':' ("" if none) */
  char *errmsg;       /* where to write a failure reason */
  size_t errlen;
  const csde_plugin_run *run; /* ABI 3: never NULL (rank 1 of D when the loader was
                                 given no shape) */
} csde_plugin_info;

typedef struct {
  const char *name;         /* shown in files and messages (static storage) */
  csde_model_fn fn;         /* the callback; or NULL and fn_ctx (ABI 2) */
  csde_model_output output;
  void *user;
  void (*free)(void *user); /* may be NULL */
  csde_model_ctx_fn fn_ctx; /* ABI 2: a callback that takes the context (then fn NULL) */
  int abi;                  /* ABI 5: the CSDE_PLUGIN_ABI the plugin was built for */
  csde_model_jvp_fn jvp;    /* ABI 5: J v of the model's answer (model.h), or NULL; read
                               only when abi >= 5 (the likelihood's --jvp model) */
} csde_plugin;

/* The conditioning `corrsde sample --cond FILE.h5:/group` (and --uncond) gives a plugin's
 * model: csde_model_ctx.cond (and .uncond) point to a csde_cond_group, one array per
 * dataset of the group (by name). Each array's axis 0 is the run's whole batch or 1 (one
 * row for every sample): sample j of a call takes row first + j (model.h), row 0 when 1.
 * Integer datasets are int64, the others double. Valid for the whole run. (ABI 4.) */
#define CSDE_COND_GROUP_MAGIC 0x636f6e64u /* "cond" */
#define CSDE_COND_MAX_RANK 8
typedef struct {
  const char *name;  /* the dataset's name in its group */
  int integer;       /* 1: int64_t values (an integer dataset); 0: double */
  const void *data;  /* C order */
  int rank;          /* 1..CSDE_COND_MAX_RANK */
  size_t dims[CSDE_COND_MAX_RANK];
} csde_cond_array;
typedef struct {
  unsigned magic;    /* CSDE_COND_GROUP_MAGIC */
  size_t n;
  const csde_cond_array *arrays;
} csde_cond_group;

typedef int (*csde_plugin_init_fn)(const csde_plugin_info *info, csde_plugin *out);

/* csde_model_plugin_load (model.h) that tells the plugin the run (info->run, copied):
 * the model's D is the product of run->frame_shape. Errors as csde_model_plugin_load's,
 * and CSDE_EINVAL for a NULL run, a rank outside 1..CSDE_PLUGIN_MAX_RANK or a zero size
 * (csde_model_plugin_load itself tells rank 1 of D and nothing else). */
CSDE_API int csde_model_plugin_load_run(csde_model **out, const char *path, const char *args,
                                        size_t tau, const csde_plugin_run *run, csde_err *err);

/* The entry point a plugin defines (corrsde itself does not): declared here so that the
 * compiler checks a plugin's definition against it. */
CSDE_API int csde_plugin_init(const csde_plugin_info *info, csde_plugin *out);

#ifdef __cplusplus
}
#endif
#endif
