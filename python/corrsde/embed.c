/* corrsde_python.so: the model plugin (corrsde/plugin.h, ABI 2 to 4) behind the program's
 * `--model python:FILE.py:NAME[:ARGS]` and `--model python:MODULE:NAME[:ARGS]`.
 *
 * It embeds CPython (libpython is opened RTLD_GLOBAL first, so that numpy's extension
 * modules find its symbols), imports FILE.py (or MODULE), and calls
 *     NAME(ctx, ARGS) -> model
 * once, with ctx a corrsde.Context as corrsde.solve gives its model: tau, frame_shape
 * (the run's, e.g. (16, 16) for --frame-shape 16x16), batch (the samples per call at
 * most), cov, schedule, process ("reverse-sde", ..., "ddim"), output (None until the
 * model says) and t = NaN, step = 0; ARGS is the text after the third ':' ("" if none).
 * The model is then called as model(t, x, ctx) with x a read-only view
 * [B, tau, *frame_shape] of the solver's buffer and ctx the same Context, its t, step
 * and batch set for the call (abar, sigma, logsnr, index follow from t), through the
 * adapter the extension uses (adapter.h). Its attribute `output` (default "noise") says
 * what it returns, and becomes ctx.output. A Python exception fails the call; its type
 * and text become the message. A loader of ABI 2 tells no shape: x is then [B, tau, D],
 * and batch, process, cov and schedule are None until the first call.
 *
 * `corrsde sample --cond F.h5:/g [--uncond ...]`: ctx->cond (->uncond) is a csde_cond_group
 * (corrsde/plugin.h); ctx.cond is then a dict {dataset name: read-only numpy array over the
 * program's memory} sliced to the call by corrsde._cond_call (adapter.h's csde_py_cond, as
 * solve() does), ctx.ncond and ctx.first as the library says.
 *
 * ctx.cov and ctx.schedule are a corrsde.Cov and a corrsde.Schedule over the run's own
 * objects (the plugin info's C and sched, then the model context's), as corrsde.solve
 * gives its model: the package's extension lends handles that borrow them (its C API,
 * csde_py_capi), from the factory's call on, and ends the loans when the model is freed,
 * before the run frees them; a model that keeps them past its run gets ValueError on use. The package is
 * the one built beside this plugin (build/python/corrsde) when there is one, else the
 * installed one (import_corrsde).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#include <numpy/arrayobject.h>

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "corrsde/plugin.h"
#include "adapter.h"

#ifndef CSDE_LIBPYTHON
#define CSDE_LIBPYTHON "libpython3.so"
#endif

typedef struct {
  PyObject *model, *ctx;
  csde_py_views v;
  size_t tau, D;
  const csde_py_capi *capi;     /* the package's, for the loans */
  PyObject *Cov, *Schedule;     /* corrsde.Cov._lent and corrsde.Schedule._lent */
  const csde_cov *C;            /* what is lent now (NULL: nothing) */
  const csde_schedule *sched;
  PyObject *cov_h, *sched_h;    /* the loans: handles (capsules) */
  csde_py_cond cc;              /* ctx.cond, ctx.ncond, ctx.first */
  const void *kc[2];            /* the groups (corrsde/plugin.h) behind dicts[] */
  PyObject *dicts[2];           /* {dataset name: read-only array over the group's data} */
  int abi;                      /* the loader's: ctx's conditioning fields from ABI 4 on */
} embedded;

static const char *const output_names[] = {"score", "cscore", "noise", "x0", "v"};

/* The Python error as one line "Type: text" into buf, and cleared. */
static void py_error_text(char *buf, size_t len)
{
  PyObject *type, *val, *tb;
  PyErr_Fetch(&type, &val, &tb);
  PyErr_NormalizeException(&type, &val, &tb);
  PyObject *s = val ? PyObject_Str(val) : NULL;
  const char *name = type ? ((PyTypeObject *)type)->tp_name : "error";
  const char *text = s ? PyUnicode_AsUTF8(s) : NULL;
  snprintf(buf, len, "%s%s%s", name, text && *text ? ": " : "", text ? text : "");
  PyErr_Clear();
  Py_XDECREF(s);
  Py_XDECREF(type);
  Py_XDECREF(val);
  Py_XDECREF(tb);
}

static int set_num(PyObject *o, const char *name, PyObject *v)
{
  int bad = !v || PyObject_SetAttrString(o, name, v) < 0;
  Py_XDECREF(v);
  return bad;
}

/* Loans end: the handles let go of the run's objects (later uses raise). */
static void end_loans(embedded *e)
{
  if (e->cov_h) e->capi->end_loan(e->cov_h);
  if (e->sched_h) e->capi->end_loan(e->sched_h);
  Py_CLEAR(e->cov_h);
  Py_CLEAR(e->sched_h);
  e->C = NULL;
  e->sched = NULL;
}

/* ctx.cov and ctx.schedule over C and sched (None for NULL), lent until the next change
 * or the model's end. -1 with an exception set. */
static int lend(embedded *e, const csde_cov *C, const csde_schedule *sched)
{
  end_loans(e);
  PyObject *cov = NULL, *sch = NULL;
  int bad;
  if (C && (!(e->cov_h = e->capi->lend_cov(C)) ||
            !(cov = PyObject_CallFunctionObjArgs(e->Cov, e->cov_h, NULL))))
    goto fail;
  if (sched && (!(e->sched_h = e->capi->lend_schedule(sched)) ||
                !(sch = PyObject_CallFunctionObjArgs(e->Schedule, e->sched_h, NULL))))
    goto fail;
  bad = set_num(e->ctx, "cov", cov ? cov : Py_NewRef(Py_None)); /* set_num takes them */
  cov = NULL;
  if (!bad) {
    bad = set_num(e->ctx, "schedule", sch ? sch : Py_NewRef(Py_None));
    sch = NULL;
  }
  if (bad) goto fail;
  e->C = C;
  e->sched = sched;
  return 0;
fail:
  Py_XDECREF(cov);
  Py_XDECREF(sch);
  end_loans(e);
  return -1;
}

/* The dict of a csde_cond_group (`corrsde sample --cond`): read-only numpy arrays over
 * its memory, which the program keeps for the whole run. Made once per group. NULL for
 * NULL; NULL with an exception for a pointer that is no csde_cond_group. */
static PyObject *cond_dict(embedded *e, int i, const void *p)
{
  const csde_cond_group *g = p;
  if (!g || (e->kc[i] == p && e->dicts[i])) return g ? e->dicts[i] : NULL;
  if (g->magic != CSDE_COND_GROUP_MAGIC) {
    PyErr_Format(PyExc_ValueError, "ctx->%s is not a csde_cond_group (corrsde/plugin.h): "
                 "the python: model reads the conditioning of corrsde sample --cond",
                 i ? "uncond" : "cond");
    return NULL;
  }
  PyObject *d = PyDict_New();
  for (size_t k = 0; d && k < g->n; k++) {
    const csde_cond_array *a = &g->arrays[k];
    npy_intp dims[CSDE_COND_MAX_RANK];
    for (int j = 0; j < a->rank; j++) dims[j] = (npy_intp)a->dims[j];
    PyObject *v = PyArray_New(&PyArray_Type, a->rank, dims, a->integer ? NPY_INT64 : NPY_DOUBLE,
                              NULL, (void *)a->data, 0, NPY_ARRAY_C_CONTIGUOUS |
                              NPY_ARRAY_ALIGNED, NULL);
    if (!v || PyDict_SetItemString(d, a->name, v) < 0) Py_CLEAR(d);
    Py_XDECREF(v);
  }
  Py_XSETREF(e->dicts[i], d);
  e->kc[i] = d ? p : NULL;
  return d;
}

static int embed_fn(const csde_model_ctx *c, const double *x, double *out, void *user)
{
  embedded *e = user;
  PyGILState_STATE g = PyGILState_Ensure();
  int rc = -1;
  /* the views and ctx.batch follow the batch (converge's last batch may be smaller) */
  int rebatch = csde_py_views_batch(&e->v, c->batch, e->tau * e->D);
  PyObject *ctx = e->ctx, *v = csde_py_view(&e->v, x), *t = PyFloat_FromDouble(c->t);
  int bad = !v || !t || ((c->C != e->C || c->sched != e->sched) && lend(e, c->C, c->sched)) ||
            set_num(ctx, "t", Py_NewRef(t)) ||
            set_num(ctx, "step", PyLong_FromSize_t(c->step)) ||
            (rebatch && set_num(ctx, "batch", PyLong_FromSize_t(c->batch)));
  if (!bad && e->abi >= 4) { /* ctx.cond of the call's samples */
    PyObject *cd = cond_dict(e, 0, c->cond), *ud = cd || !c->cond ? cond_dict(e, 1, c->uncond)
                                                                   : NULL;
    bad = (c->cond && !cd) || (c->uncond && !ud) || csde_py_cond_set(&e->cc, ctx, c, cd, ud);
  }
  PyObject *ans = bad ? NULL : PyObject_CallFunctionObjArgs(e->model, t, v, ctx, NULL);
  if (ans && csde_py_answer(&e->v, ans, out) == 0) rc = 0;
  if (rc) py_error_text(c->errmsg, c->errlen);
  Py_XDECREF(ans);
  Py_XDECREF(t);
  if (v && csde_py_done(&e->v, x) < 0) { /* a kept x could not get its copy */
    if (rc == 0) py_error_text(c->errmsg, c->errlen);
    PyErr_Clear();
    rc = -1;
  }
  PyGILState_Release(g);
  return rc;
}

/* Drop the references e holds and free it (the GIL held; e calloc'ed: unset ones NULL). */
static void embedded_drop(embedded *e)
{
  csde_py_cond_clear(&e->cc);
  Py_XDECREF(e->dicts[0]);
  Py_XDECREF(e->dicts[1]);
  Py_XDECREF(e->model);
  Py_XDECREF(e->ctx);
  Py_XDECREF(e->Cov);
  Py_XDECREF(e->Schedule);
  free(e);
}

static void embed_free(void *user)
{
  embedded *e = user;
  PyGILState_STATE g = PyGILState_Ensure();
  end_loans(e); /* first: the run frees them next, and the model may hold them */
  csde_py_views_clear(&e->v);
  embedded_drop(e);
  PyGILState_Release(g);
}

static int numpy_ready(void)
{
  import_array1(-1);
  return 0;
}

/* The corrsde package (for ctx.cov, ctx.schedule and its Context): the one this plugin was
 * built beside when there is one (build/python/corrsde: the same build, whatever else is
 * installed or on PYTHONPATH), its parent directory put first on sys.path; else imported
 * as usual; else from where `meson install` put it (CSDE_PY_DIR, for a prefix the
 * interpreter does not search). */
static PyObject *import_corrsde(void)
{
  static const char anchor = 0; /* an address inside this plugin */
  Dl_info dl;
  char dir[4096];
  char *slash;
  PyObject *sys_path = PySys_GetObject("path"); /* borrowed */
  if (dladdr(&anchor, &dl) && dl.dli_fname &&
      snprintf(dir, sizeof dir, "%s", dl.dli_fname) < (int)sizeof dir &&
      (slash = strrchr(dir, '/'))) {
    snprintf(slash, sizeof dir - (size_t)(slash - dir), "/__init__.py");
    if (access(dir, R_OK) == 0) { /* build/python/corrsde/__init__.py */
      *slash = '\0';
      if ((slash = strrchr(dir, '/'))) {
        *slash = '\0';
        PyObject *d = PyUnicode_FromString(dir);
        int bad = !sys_path || !d || PyList_Insert(sys_path, 0, d) < 0;
        Py_XDECREF(d);
        if (bad) return NULL;
      }
    }
  }
  PyObject *m = PyImport_ImportModule("corrsde");
#ifdef CSDE_PY_DIR
  if (!m && PyErr_ExceptionMatches(PyExc_ModuleNotFoundError)) {
    PyErr_Clear();
    PyObject *d = PyUnicode_FromString(CSDE_PY_DIR);
    int bad = !sys_path || !d || PyList_Append(sys_path, d) < 0;
    Py_XDECREF(d);
    if (bad) return NULL;
    m = PyImport_ImportModule("corrsde");
  }
#endif
  return m;
}

/* The module of "FILE.py" (imported by path) or "MODULE" (imported by name). */
static PyObject *load_module(const char *where)
{
  size_t n = strlen(where);
  if (n < 3 || strcmp(where + n - 3, ".py"))
    return PyImport_ImportModule(where);
  PyObject *util = PyImport_ImportModule("importlib.util");
  PyObject *spec = util ? PyObject_CallMethod(util, "spec_from_file_location", "ss",
                                              "corrsde_user_model", where) : NULL;
  PyObject *mod = spec && spec != Py_None
                      ? PyObject_CallMethod(util, "module_from_spec", "O", spec) : NULL;
  if (spec == Py_None)
    PyErr_Format(PyExc_ImportError, "cannot load '%s' as a Python file", where);
  PyObject *loader = mod ? PyObject_GetAttrString(spec, "loader") : NULL;
  PyObject *r = loader ? PyObject_CallMethod(loader, "exec_module", "O", mod) : NULL;
  if (!r) Py_CLEAR(mod);
  Py_XDECREF(r);
  Py_XDECREF(loader);
  Py_XDECREF(spec);
  Py_XDECREF(util);
  return mod;
}

int csde_plugin_init(const csde_plugin_info *info, csde_plugin *out)
{
  if (info->abi < 2) {
    snprintf(info->errmsg, info->errlen, "python: needs plugin ABI 2 (this corrsde has %d)",
             info->abi);
    return 1;
  }
  /* ARGS: WHERE:NAME[:ARGS] */
  const char *a = info->args, *c1 = strchr(a, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
  if (!c1 || c1 == a || c1[1] == '\0' || c2 == c1 + 1) {
    snprintf(info->errmsg, info->errlen, "python: expected python:FILE.py:NAME[:ARGS] or "
             "python:MODULE:NAME[:ARGS], got 'python:%s'", a);
    return 1;
  }
  char where[4096], name[256];
  snprintf(where, sizeof where, "%.*s", (int)(c1 - a), a);
  snprintf(name, sizeof name, "%.*s", (int)(c2 ? (size_t)(c2 - c1 - 1) : strlen(c1 + 1)), c1 + 1);
  const char *args = c2 ? c2 + 1 : "";

  if (!Py_IsInitialized()) {
    if (!dlopen(CSDE_LIBPYTHON, RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD) &&
        !dlopen(CSDE_LIBPYTHON, RTLD_NOW | RTLD_GLOBAL)) {
      snprintf(info->errmsg, info->errlen, "python: cannot load %s: %s", CSDE_LIBPYTHON,
               dlerror());
      return 1;
    }
    Py_InitializeEx(0); /* no signal handlers: the program keeps its own */
    PyEval_SaveThread(); /* the GIL is taken per call */
  }
  PyGILState_STATE g = PyGILState_Ensure();
  embedded *e = calloc(1, sizeof *e);
  int rc = 1;
  PyObject *mod = NULL, *factory = NULL, *shape = NULL, *kind = NULL, *pkg = NULL;
  /* the run: its frame shape and the rest (ABI 3), else one axis of D */
  const csde_plugin_run *run = info->abi >= 3 ? info->run : NULL;
  size_t rank = run ? run->rank : 1;
  if (!e || numpy_ready() || csde_py_adapter_ready() < 0) goto fail;
  if (rank < 1 || rank > CSDE_PY_MAXDIM - 2) {
    PyErr_Format(PyExc_ValueError, "%zu frame axes (at most %d)", rank, CSDE_PY_MAXDIM - 2);
    goto fail;
  }
  e->tau = info->tau;
  e->D = info->D;
  e->abi = info->abi;
  e->v.nd = 2 + (int)rank;
  e->v.dims[1] = (npy_intp)info->tau;
  if (!(shape = PyTuple_New((Py_ssize_t)rank))) goto fail;
  for (size_t i = 0; i < rank; i++) {
    size_t d = run ? run->frame_shape[i] : info->D;
    e->v.dims[2 + i] = (npy_intp)d;
    PyTuple_SET_ITEM(shape, (Py_ssize_t)i, PyLong_FromSize_t(d));
    if (!PyTuple_GET_ITEM(shape, (Py_ssize_t)i)) goto fail;
  }
  /* the script's directory first on sys.path, as `python FILE.py` would have it */
  PyObject *sys_path = PySys_GetObject("path"); /* borrowed */
  const char *slash = strrchr(where, '/');
  PyObject *dir = PyUnicode_FromStringAndSize(where, slash ? slash - where : 0);
  if (!sys_path || !dir || PyList_Insert(sys_path, 0, dir) < 0) {
    Py_XDECREF(dir);
    goto fail;
  }
  Py_DECREF(dir);
  if (!(pkg = import_corrsde()) ||
      !(e->capi = PyCapsule_Import(CSDE_PY_CAPI, 0)))
    goto fail;
  if (e->capi->version != CSDE_PY_CAPI_VERSION) {
    PyErr_Format(PyExc_ImportError, "the corrsde package lends handles of version %d, this "
                 "plugin takes %d (a package of another build?)", e->capi->version,
                 CSDE_PY_CAPI_VERSION);
    goto fail;
  }
  PyObject *cls;
  if (!(cls = PyObject_GetAttrString(pkg, "Cov"))) goto fail;
  e->Cov = PyObject_GetAttrString(cls, "_lent");
  Py_DECREF(cls);
  if (!e->Cov || !(cls = PyObject_GetAttrString(pkg, "Schedule"))) goto fail;
  e->Schedule = PyObject_GetAttrString(cls, "_lent");
  Py_DECREF(cls);
  if (!e->Schedule) goto fail;
  PyObject *call = PyObject_GetAttrString(pkg, "_cond_call");
  int cbad = !call || csde_py_cond_init(&e->cc, call) < 0;
  Py_XDECREF(call);
  if (cbad) goto fail;
  if (!(mod = load_module(where)) || !(factory = PyObject_GetAttrString(mod, name))) goto fail;
  /* corrsde.Context(tau, frame_shape, batch, cov, schedule, output, process), as solve()
   * makes it; cov and schedule lent next (lend) */
  PyObject *Context = PyObject_GetAttrString(pkg, "Context");
  PyObject *batch = run && run->batch ? PyLong_FromSize_t(run->batch) : Py_NewRef(Py_None);
  e->ctx = Context && batch ? PyObject_CallFunction(Context, "nOOOOOs", (Py_ssize_t)info->tau,
                                                    shape, batch, Py_None, Py_None, Py_None,
                                                    run ? run->process : NULL)
                            : NULL;
  Py_XDECREF(batch);
  Py_XDECREF(Context);
  if (!e->ctx || (run && (run->C || run->sched) && lend(e, run->C, run->sched))) goto fail;
  if (!(e->model = PyObject_CallFunction(factory, "Os", e->ctx, args))) goto fail;
  if (!PyCallable_Check(e->model)) {
    PyErr_Format(PyExc_TypeError, "%s(ctx, args) returned %R, not a callable model(t, x, ctx)",
                 name, e->model);
    goto fail;
  }
  out->output = CSDE_OUT_NOISE;
  if ((kind = PyObject_GetAttrString(e->model, "output"))) {
    const char *k = PyUnicode_Check(kind) ? csde_py_str(kind, "output") : NULL;
    PyErr_Clear(); /* a NUL inside: not one of the names, as below */
    size_t i = 0;
    while (k && i < sizeof output_names / sizeof output_names[0] && strcmp(k, output_names[i])) i++;
    if (!k || i == sizeof output_names / sizeof output_names[0]) {
      PyErr_Format(PyExc_ValueError, "the model's output %R is not one of score, cscore, "
                   "noise, x0, v", kind);
      goto fail;
    }
    out->output = (csde_model_output)i;
  } else {
    PyErr_Clear();
  }
  if (set_num(e->ctx, "output", PyUnicode_FromString(output_names[out->output]))) goto fail;
  out->name = "python";
  out->fn_ctx = embed_fn;
  out->user = e;
  out->free = embed_free;
  e = NULL;
  rc = 0;
fail:
  if (rc && PyErr_Occurred()) {
    char msg[400];
    py_error_text(msg, sizeof msg);
    snprintf(info->errmsg, info->errlen, "python:%s: %s", info->args, msg);
  }
  Py_XDECREF(kind);
  Py_XDECREF(shape);
  Py_XDECREF(factory);
  Py_XDECREF(mod);
  Py_XDECREF(pkg);
  if (e) embedded_drop(e);
  PyGILState_Release(g);
  return rc;
}
