/* corrsde._corrsde: the CPython extension under the Python package (python/corrsde).
 *
 * A thin layer over the public C API: covariance and schedule handles (capsules), their
 * operations on float64 C-contiguous arrays [B, tau, *frame_shape], and solve(), which
 * runs a corrsde solver or sampler with a Python callable as the model.
 *
 * Threads and the GIL: solve() releases the GIL for the whole solve and takes it back
 * only inside the model callback, which the solvers call on the thread that called
 * solve() (checked; any other thread is refused). The model sees x as a read-only
 * numpy view of the solver's own buffer (cached per buffer: no copy, no allocation per
 * call); its answer is converted once (np.asarray semantics) and copied into the
 * solver's output. A Python exception in the model (KeyboardInterrupt included: signals
 * are checked at every call) stops the solve with a fatal code; solve() then raises it
 * again with a note naming t and the step.
 *
 * Nothing process-wide is changed: no csde_init() (OpenBLAS threads, GSL's handler).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#include <numpy/arrayobject.h>

#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "corrsde/corrsde.h"
#include "corrsde/likelihood.h"
#include "adapter.h"

#define MAXDIM CSDE_PY_MAXDIM
/* initial states: the stream corrsde sample draws them from (src/noise/noise.h) */
#define STREAM_INIT ((uint64_t)1 << 63)

static PyObject *CsdeError; /* corrsde.Error: a library failure with .status, .param */

/* Raise the exception a status calls for, with the library's message. */
static PyObject *raise_err(int status, const csde_err *err)
{
  const char *msg = err && err->msg[0] ? err->msg : csde_strerror(status);
  PyObject *type = CsdeError;
  switch (status) {
  case CSDE_EDOM: case CSDE_EINVAL: case CSDE_ESPEC: case CSDE_EBADLEN: case CSDE_ENOTSQR:
  case CSDE_ENOTPSD: case CSDE_ENOTSYM: case CSDE_ESING: case CSDE_ENOTSUP:
    type = PyExc_ValueError;
    break;
  case CSDE_ENOMEM:
    type = PyExc_MemoryError;
    break;
  case CSDE_EIO:
    type = PyExc_OSError;
    break;
  default:
    break;
  }
  PyObject *e = PyObject_CallFunction(type, "s", msg);
  if (!e) return NULL;
  PyObject *st = PyLong_FromLong(status);
  PyObject *pa = err && err->param ? PyUnicode_FromString(err->param) : Py_NewRef(Py_None);
  if (st && pa) {
    PyObject_SetAttrString(e, "status", st);
    PyObject_SetAttrString(e, "param", pa);
  }
  Py_XDECREF(st);
  Py_XDECREF(pa);
  PyErr_SetObject(type, e);
  Py_DECREF(e);
  return NULL;
}

/* o (a new reference) where status is 0; else o released and the error raised */
static PyObject *owned_or_raise(PyObject *o, int status, const csde_err *err)
{
  if (!status) return o;
  Py_DECREF(o);
  return raise_err(status, err);
}

/* The integer o in [lo, hi] (a count, size or seed: C's unsigned types), or -1 with an
 * exception naming `what`: TypeError for a non-integer, ValueError below lo (a negative
 * number is never wrapped), OverflowError above hi (a large one is never cut). */
static int arg_uint(PyObject *o, const char *what, unsigned long long lo,
                    unsigned long long hi, unsigned long long *out)
{
  PyObject *i = PyNumber_Index(o);
  if (!i) {
    if (!PyErr_ExceptionMatches(PyExc_TypeError)) return -1;
    PyErr_Clear();
    PyErr_Format(PyExc_TypeError, "%s: expected an integer, got %s", what, Py_TYPE(o)->tp_name);
    return -1;
  }
  int ovf, below = 0, above = 0;
  long long v = PyLong_AsLongLongAndOverflow(i, &ovf);
  unsigned long long u = 0;
  if (ovf > 0) {
    u = PyLong_AsUnsignedLongLong(i);
    above = u == (unsigned long long)-1 && PyErr_Occurred();
    PyErr_Clear();
  } else if (ovf < 0 || v < 0) {
    below = 1;
  } else {
    u = (unsigned long long)v;
  }
  Py_DECREF(i);
  below = below || u < lo;
  above = above || u > hi;
  if (below || above) {
    char range[64];
    if (hi == (unsigned long long)-1)
      snprintf(range, sizeof range, "[%llu, 2^64)", lo);
    else
      snprintf(range, sizeof range, "[%llu, %llu]", lo, hi);
    PyErr_Format(below ? PyExc_ValueError : PyExc_OverflowError,
                 "%s: expected an integer in %s, got %R", what, range, o);
    return -1;
  }
  *out = u;
  return 0;
}

/* ---- covariance handles ---- */

/* A handle owns its operator, or borrows one that a run lends (`--model python:`'s
 * ctx.cov, see lend_cov): then C is NULL once the loan ended, and every use raises. */
typedef struct {
  csde_cov *C;
  csde_cov_ws *ws; /* for the last D used (rebuilt when D changes) */
  size_t ws_D;
  int lent;
} cov_handle;

static void cov_capsule_free(PyObject *cap)
{
  cov_handle *h = PyCapsule_GetPointer(cap, "corrsde.cov");
  if (!h) return;
  csde_cov_ws_free(h->ws);
  if (!h->lent) csde_cov_free(h->C);
  PyMem_Free(h);
}

static const char ended[] = "%s: the run that lent it (ctx.%s of a `--model python:` model) "
                            "has ended; it is valid during the run only";

static cov_handle *cov_of(PyObject *cap)
{
  cov_handle *h = PyCapsule_GetPointer(cap, "corrsde.cov");
  if (h && !h->C) {
    PyErr_Format(PyExc_ValueError, ended, "cov", "cov");
    return NULL;
  }
  return h;
}

static csde_cov_ws *cov_ws(cov_handle *h, size_t D)
{
  if (h->ws && h->ws_D == D) return h->ws;
  csde_cov_ws_free(h->ws);
  h->ws = NULL;
  csde_err err;
  int s = csde_cov_ws_alloc(&h->ws, h->C, D, 1, &err);
  if (s) {
    raise_err(s, &err);
    return NULL;
  }
  h->ws_D = D;
  return h->ws;
}

/* cov_new(spec, tau, method) */
static PyObject *py_cov_new(PyObject *self, PyObject *args)
{
  (void)self;
  PyObject *spec_obj, *tau_obj, *method_obj;
  unsigned long long tau;
  if (!PyArg_ParseTuple(args, "OOO", &spec_obj, &tau_obj, &method_obj)) return NULL;
  const char *spec = csde_py_str(spec_obj, "spec"), *method;
  if (!spec || arg_uint(tau_obj, "frames", 1, PY_SSIZE_T_MAX, &tau) ||
      !(method = csde_py_str(method_obj, "method")))
    return NULL;
  csde_err err;
  csde_cov_params p = csde_cov_default_params();
  int s = csde_cov_method_parse(method, &p.method, &err);
  cov_handle *h = PyMem_Calloc(1, sizeof *h);
  if (!h) return PyErr_NoMemory();
  if (!s) {
    Py_BEGIN_ALLOW_THREADS
    s = csde_cov_alloc(&h->C, spec, (size_t)tau, &p, &err);
    Py_END_ALLOW_THREADS
  }
  if (s) {
    PyMem_Free(h);
    return raise_err(s, &err);
  }
  PyObject *cap = PyCapsule_New(h, "corrsde.cov", cov_capsule_free);
  if (!cap) {
    csde_cov_free(h->C);
    PyMem_Free(h);
  }
  return cap;
}

/* cov_info(cap) -> (spec, method, noise_dim, singular, frames) */
static PyObject *py_cov_info(PyObject *self, PyObject *cap)
{
  (void)self;
  cov_handle *h = cov_of(cap);
  if (!h) return NULL;
  return Py_BuildValue("ssnin", csde_cov_spec(h->C), csde_cov_method_name(csde_cov_method_of(h->C)),
                       (Py_ssize_t)csde_cov_noise_dim(h->C), csde_cov_is_singular(h->C),
                       (Py_ssize_t)csde_cov_tau(h->C));
}

static PyObject *py_cov_logdet(PyObject *self, PyObject *cap)
{
  (void)self;
  cov_handle *h = cov_of(cap);
  if (!h) return NULL;
  double v;
  Py_BEGIN_ALLOW_THREADS
  v = csde_cov_logdet(h->C);
  Py_END_ALLOW_THREADS
  return PyFloat_FromDouble(v);
}

static PyObject *py_cov_matrix(PyObject *self, PyObject *cap)
{
  (void)self;
  cov_handle *h = cov_of(cap);
  if (!h) return NULL;
  npy_intp d[2] = {(npy_intp)csde_cov_tau(h->C), (npy_intp)csde_cov_tau(h->C)};
  PyObject *a = PyArray_SimpleNew(2, d, NPY_DOUBLE);
  if (a) csde_cov_matrix(h->C, PyArray_DATA((PyArrayObject *)a));
  return a;
}

static PyObject *py_cov_eigenvalues(PyObject *self, PyObject *cap)
{
  (void)self;
  cov_handle *h = cov_of(cap);
  if (!h) return NULL;
  npy_intp d = (npy_intp)csde_cov_tau(h->C);
  PyObject *a = PyArray_SimpleNew(1, &d, NPY_DOUBLE);
  if (!a) return NULL;
  csde_err err;
  int s;
  double *v = PyArray_DATA((PyArrayObject *)a);
  Py_BEGIN_ALLOW_THREADS
  s = csde_cov_eigenvalues(h->C, v, &err);
  Py_END_ALLOW_THREADS
  return owned_or_raise(a, s, &err);
}

/* A float64 C-contiguous array of rank >= 2 whose axis 1 has `rows` entries, as
 * (B, D): the blocks and the pixels per frame. x is already such an array (the Python
 * layer converts). */
static int blocks_of(PyArrayObject *x, size_t rows, const char *what, size_t *B, size_t *D)
{
  int nd = PyArray_NDIM(x);
  if (PyArray_TYPE(x) != NPY_DOUBLE || !PyArray_IS_C_CONTIGUOUS(x) || nd < 2 || nd > MAXDIM) {
    PyErr_Format(PyExc_ValueError, "%s: expected a float64 C-contiguous array "
                 "[B, frames, *frame_shape] of rank 2 to %d", what, MAXDIM);
    return -1;
  }
  npy_intp *d = PyArray_DIMS(x);
  if ((size_t)d[1] != rows) {
    PyErr_Format(PyExc_ValueError, "%s: axis 1 has %zd entries, expected %zu (the frames)",
                 what, (Py_ssize_t)d[1], rows);
    return -1;
  }
  *B = (size_t)d[0];
  *D = 1;
  for (int i = 2; i < nd; i++) *D *= (size_t)d[i];
  return 0;
}

/* cov_apply(cap, op, x) -> y; op 0: C x, 1: V' z, 2: C^-1 x */
static PyObject *py_cov_apply(PyObject *self, PyObject *args)
{
  (void)self;
  PyObject *cap;
  PyArrayObject *x;
  int op;
  if (!PyArg_ParseTuple(args, "OiO!", &cap, &op, &PyArray_Type, &x)) return NULL;
  cov_handle *h = cov_of(cap);
  if (!h) return NULL;
  size_t tau = csde_cov_tau(h->C), rows = op == CSDE_COV_OP_SQRT ? csde_cov_noise_dim(h->C) : tau;
  size_t B, D;
  if (blocks_of(x, rows, op == CSDE_COV_OP_SQRT ? "sqrt(z)" : op ? "solve(x)" : "apply(x)", &B, &D))
    return NULL;
  csde_cov_ws *ws = cov_ws(h, D);
  if (!ws) return NULL;
  npy_intp d[MAXDIM];
  int nd = PyArray_NDIM(x);
  memcpy(d, PyArray_DIMS(x), (size_t)nd * sizeof *d);
  d[1] = (npy_intp)tau;
  PyObject *y = PyArray_SimpleNew(nd, d, NPY_DOUBLE);
  if (!y) return NULL;
  csde_err err;
  int s;
  const double *xv = PyArray_DATA(x);
  double *yv = PyArray_DATA((PyArrayObject *)y);
  Py_BEGIN_ALLOW_THREADS
  s = B ? csde_cov_apply(h->C, ws, (csde_cov_op)op, B, xv, yv, &err) : 0;
  Py_END_ALLOW_THREADS
  return owned_or_raise(y, s, &err);
}

/* cov_mahalanobis(cap, x) -> q [B]: per block, the sum over pixels of x^T C^-1 x */
static PyObject *py_cov_mahalanobis(PyObject *self, PyObject *args)
{
  (void)self;
  PyObject *cap;
  PyArrayObject *x;
  if (!PyArg_ParseTuple(args, "OO!", &cap, &PyArray_Type, &x)) return NULL;
  cov_handle *h = cov_of(cap);
  if (!h) return NULL;
  size_t B, D;
  if (blocks_of(x, csde_cov_tau(h->C), "mahalanobis(x)", &B, &D)) return NULL;
  csde_cov_ws *ws = cov_ws(h, D);
  if (!ws) return NULL;
  npy_intp nb = (npy_intp)B;
  PyObject *q = PyArray_SimpleNew(1, &nb, NPY_DOUBLE);
  double *qp = B && D ? PyMem_Malloc(B * D * sizeof *qp) : NULL;
  if (!q || (B && D && !qp)) {
    Py_XDECREF(q);
    PyMem_Free(qp);
    return PyErr_NoMemory();
  }
  csde_err err;
  int s = 0;
  const double *xv = PyArray_DATA(x);
  double *out = PyArray_DATA((PyArrayObject *)q);
  Py_BEGIN_ALLOW_THREADS
  if (B && D) s = csde_cov_mahalanobis(h->C, ws, B, xv, NULL, qp, NULL, &err);
  for (size_t b = 0; b < B && !s; b++) { /* sum over the pixels of block b, in order */
    double acc = 0;
    for (size_t p = 0; p < D; p++) acc += qp[b * D + p];
    out[b] = acc;
  }
  Py_END_ALLOW_THREADS
  PyMem_Free(qp);
  return owned_or_raise(q, s, &err);
}

/* cov_sample(cap, shape tuple [B, tau, *frame], seed) -> x: the CLI's prior draw */
static PyObject *py_cov_sample(PyObject *self, PyObject *args)
{
  (void)self;
  PyObject *cap, *shape, *seed_obj;
  unsigned long long seed;
  if (!PyArg_ParseTuple(args, "OO!O", &cap, &PyTuple_Type, &shape, &seed_obj)) return NULL;
  cov_handle *h = cov_of(cap);
  if (!h || arg_uint(seed_obj, "seed", 0, UINT64_MAX, &seed)) return NULL;
  int nd = (int)PyTuple_GET_SIZE(shape);
  npy_intp d[MAXDIM];
  if (nd < 2 || nd > MAXDIM)
    return PyErr_Format(PyExc_ValueError, "frame_shape: expected 0 to %d sizes, got %d",
                        MAXDIM - 2, nd - 2);
  size_t D = 1;
  for (int i = 0; i < nd; i++) {
    unsigned long long di;
    if (arg_uint(PyTuple_GET_ITEM(shape, i), i ? "frame_shape" : "batch", 0, PY_SSIZE_T_MAX, &di))
      return NULL;
    d[i] = (npy_intp)di;
    if (i >= 2) D *= (size_t)d[i];
  }
  csde_cov_ws *ws = cov_ws(h, D);
  if (!ws) return NULL;
  PyObject *x = PyArray_SimpleNew(nd, d, NPY_DOUBLE);
  if (!x) return NULL;
  csde_rng_key key = {seed, STREAM_INIT};
  csde_err err;
  int s = 0;
  double *xv = PyArray_DATA((PyArrayObject *)x);
  Py_BEGIN_ALLOW_THREADS
  if (d[0]) s = csde_cov_sample(h->C, ws, key, 0, (size_t)d[0], xv, &err);
  Py_END_ALLOW_THREADS
  return owned_or_raise(x, s, &err);
}

/* ---- schedules ---- */

/* Owned, or lent as a cov_handle is. */
typedef struct {
  csde_schedule *s;
  int lent;
} sched_handle;

static void sched_capsule_free(PyObject *cap)
{
  sched_handle *h = PyCapsule_GetPointer(cap, "corrsde.schedule");
  if (!h) return;
  if (!h->lent) csde_schedule_free(h->s);
  PyMem_Free(h);
}

static const csde_schedule *sched_of(PyObject *cap)
{
  sched_handle *h = PyCapsule_GetPointer(cap, "corrsde.schedule");
  if (h && !h->s) {
    PyErr_Format(PyExc_ValueError, ended, "schedule", "schedule");
    return NULL;
  }
  return h ? h->s : NULL;
}

static PyObject *sched_capsule(csde_schedule *s, int lent)
{
  sched_handle *h = PyMem_Calloc(1, sizeof *h);
  if (!h) return PyErr_NoMemory();
  h->s = s;
  h->lent = lent;
  PyObject *cap = PyCapsule_New(h, "corrsde.schedule", sched_capsule_free);
  if (!cap) PyMem_Free(h);
  return cap;
}

static PyObject *py_sched_new(PyObject *self, PyObject *args)
{
  (void)self;
  PyObject *spec_obj;
  if (!PyArg_ParseTuple(args, "O", &spec_obj)) return NULL;
  const char *spec = csde_py_str(spec_obj, "schedule");
  if (!spec) return NULL;
  csde_schedule *s = NULL;
  csde_err err;
  int st = csde_schedule_alloc(&s, spec, &err);
  if (st) return raise_err(st, &err);
  PyObject *cap = sched_capsule(s, 0);
  if (!cap) csde_schedule_free(s);
  return cap;
}

static PyObject *py_sched_info(PyObject *self, PyObject *cap)
{
  (void)self;
  const csde_schedule *s = sched_of(cap);
  if (!s) return NULL;
  return Py_BuildValue("sn", csde_schedule_spec(s), (Py_ssize_t)csde_schedule_nsteps(s));
}

/* sched_path(cap) -> (path name, t_min, t_max, prior scale) */
static PyObject *py_sched_path(PyObject *self, PyObject *cap)
{
  (void)self;
  const csde_schedule *s = sched_of(cap);
  if (!s) return NULL;
  double lo, hi;
  csde_schedule_path_span(s, &lo, &hi);
  return Py_BuildValue("sddd", csde_schedule_path_name(s), lo, hi,
                       csde_schedule_path_prior_scale(s));
}

/* sched_eval(cap, what, t array) -> array: what 0 beta, 1 abar, 2 sigma, 3 logsnr,
 * 4 int_beta, 5 beta_step(i), 6 abar_step(i); the path (schedule.h): 7 alpha, 8 sigma_path,
 * 9 dalpha, 10 dsigma, 11 f, 12 g2, 13 lambda, 14 t_of_lambda (the array holds lambdas) */
static PyObject *py_sched_eval(PyObject *self, PyObject *args)
{
  (void)self;
  PyObject *cap;
  int what;
  PyArrayObject *t;
  if (!PyArg_ParseTuple(args, "OiO!", &cap, &what, &PyArray_Type, &t)) return NULL;
  const csde_schedule *s = sched_of(cap);
  if (!s) return NULL;
  if (PyArray_TYPE(t) != NPY_DOUBLE || !PyArray_IS_C_CONTIGUOUS(t))
    return PyErr_Format(PyExc_ValueError, "schedule: expected float64 times");
  PyObject *y = PyArray_SimpleNew(PyArray_NDIM(t), PyArray_DIMS(t), NPY_DOUBLE);
  if (!y) return NULL;
  const double *tv = PyArray_DATA(t);
  double *yv = PyArray_DATA((PyArrayObject *)y);
  npy_intp n = PyArray_SIZE(t);
  for (npy_intp i = 0; i < n; i++) {
    double v = tv[i];
    switch (what) {
    case 0: yv[i] = csde_schedule_beta(s, v); break;
    case 1: yv[i] = csde_schedule_abar(s, v); break;
    case 2: yv[i] = csde_schedule_sigma(s, v); break;
    case 3: yv[i] = csde_schedule_logsnr(s, v); break;
    case 4: yv[i] = csde_schedule_int_beta(s, v); break;
    case 5: yv[i] = v >= 0 && v < 0x1p62 ? csde_schedule_beta_step(s, (size_t)v) : NAN; break;
    case 7: yv[i] = csde_schedule_path_alpha(s, v); break;
    case 8: yv[i] = csde_schedule_path_sigma(s, v); break;
    case 9: yv[i] = csde_schedule_path_dalpha(s, v); break;
    case 10: yv[i] = csde_schedule_path_dsigma(s, v); break;
    case 11: yv[i] = csde_schedule_path_f(s, v); break;
    case 12: yv[i] = csde_schedule_path_g2(s, v); break;
    case 13: yv[i] = csde_schedule_path_lambda(s, v); break;
    case 14: yv[i] = csde_schedule_path_t_of_lambda(s, v); break;
    default: yv[i] = v >= 0 && v < 0x1p62 ? csde_schedule_abar_step(s, (size_t)v) : NAN; break;
    }
  }
  return y;
}

/* ---- solve with a Python model ---- */

typedef struct {
  /* the model */
  PyObject *model, *ctx, *t_name, *step_name; /* borrowed, except the names */
  PyThreadState *ts;   /* the caller's thread state while the GIL is released */
  pthread_t owner;     /* the thread that called solve() */
  csde_py_views v;     /* x's shape and the views of the solver's buffers */
  PyObject *exc_type, *exc, *exc_tb; /* the model's exception, raised again after the solve */
  double exc_t;
  size_t step;         /* the step being taken (the model's context) */
  char msg[256];
  /* the saved states, as the run's plan picks them */
  double *saved;
  double *saved_t;
  int64_t *saved_step;
  size_t nsaved, cap;
  csde_run_progress bar; /* progress=True */
  /* conditioning (solve's cond, uncond, guidance callable, callback; borrowed, or NULL) */
  PyObject *cond, *uncond, *gfn, *callback;
  csde_py_cond cc;     /* ctx.cond, ctx.ncond, ctx.first */
  const char *exc_who; /* who raised exc: NULL the model, else "the callback", ... */
  double g_t, *g_w;    /* gfn's scales at g_t (tau of them) */
  int g_ok;
  csde_py_views pv;    /* the callback's views of x and x0; its nd, dims, n: the state
                          (v follows the call's batch: 2B when guided) */
} pyrun;

/* "Type: message" of the pending exception, for the file's status (the GIL is held). */
static void exc_text(PyObject *exc, char *buf, size_t len)
{
  PyObject *s = exc ? PyObject_Str(exc) : NULL;
  const char *m = s ? PyUnicode_AsUTF8(s) : NULL;
  snprintf(buf, len, "%s%s%s", exc ? Py_TYPE(exc)->tp_name : "exception", m && *m ? ": " : "",
           m ? m : "");
  Py_XDECREF(s);
  PyErr_Clear();
}

static int py_model_fn(const csde_model_ctx *c, const double *x, double *out, void *user)
{
  pyrun *r = user;
  double t = c->t;
  r->step = c->step;
  if (!pthread_equal(pthread_self(), r->owner)) {
    snprintf(r->msg, sizeof r->msg, "the Python model was called from another thread");
    if (c->errmsg && c->errlen) snprintf(c->errmsg, c->errlen, "%s", r->msg);
    return -2;
  }
  PyEval_RestoreThread(r->ts);
  int rc = 0;
  if (csde_py_views_batch(&r->v, c->batch, c->tau * c->D)) { /* ctx.batch follows */
    PyObject *b = PyLong_FromSize_t(c->batch);
    if (!b || PyObject_SetAttrString(r->ctx, "batch", b)) PyErr_Clear();
    Py_XDECREF(b);
  }
  /* ctx.cond of the call's samples (c->cond, c->uncond: r->cond, r->uncond) */
  int cbad = r->exc || csde_py_cond_set(&r->cc, r->ctx, c, c->cond ? r->cond : NULL,
                                         c->uncond ? r->uncond : NULL);
  PyObject *v = cbad ? NULL : csde_py_view(&r->v, x), *tt = PyFloat_FromDouble(t), *st = PyLong_FromSize_t(r->step);
  PyObject *ans = NULL;
  if (v && tt && st && PyObject_SetAttr(r->ctx, r->t_name, tt) == 0 &&
      PyObject_SetAttr(r->ctx, r->step_name, st) == 0 && PyErr_CheckSignals() == 0)
    ans = PyObject_CallFunctionObjArgs(r->model, tt, v, r->ctx, NULL);
  if (cbad && r->exc) { /* a guidance callable or the callback failed before */
    if (c->errmsg && c->errlen) exc_text(r->exc, c->errmsg, c->errlen);
    Py_XDECREF(tt);
    Py_XDECREF(st);
    r->ts = PyEval_SaveThread();
    return -1;
  }
  if (!ans || csde_py_answer(&r->v, ans, out)) {
    PyErr_Fetch(&r->exc_type, &r->exc, &r->exc_tb);
    PyErr_NormalizeException(&r->exc_type, &r->exc, &r->exc_tb);
    if (r->exc && r->exc_tb) PyException_SetTraceback(r->exc, r->exc_tb);
    r->exc_t = t;
    if (c->errmsg && c->errlen) exc_text(r->exc, c->errmsg, c->errlen);
    rc = -1;
  }
  Py_XDECREF(ans);
  Py_XDECREF(tt);
  Py_XDECREF(st);
  if (v && csde_py_done(&r->v, x) < 0) { /* a kept x could not get its copy */
    if (rc == 0) {
      PyErr_Fetch(&r->exc_type, &r->exc, &r->exc_tb);
      PyErr_NormalizeException(&r->exc_type, &r->exc, &r->exc_tb);
      r->exc_t = t;
      if (c->errmsg && c->errlen) exc_text(r->exc, c->errmsg, c->errlen);
      rc = -1;
    }
    PyErr_Clear();
  }
  r->ts = PyEval_SaveThread();
  return rc;
}

/* Room for c saved states (the buffers only grow). */
static int reserve(pyrun *r, size_t c)
{
  if (c <= r->cap) return 0;
  double *s = realloc(r->saved, c * r->pv.n * sizeof *s), *tt;
  if (s) r->saved = s;
  tt = s ? realloc(r->saved_t, c * sizeof *tt) : NULL;
  if (tt) r->saved_t = tt;
  int64_t *st = tt ? realloc(r->saved_step, c * sizeof *st) : NULL;
  if (!st) return 1;
  r->saved_step = st;
  r->cap = c;
  return 0;
}

/* The run's save hook: keep a copy of state x. A plan of known length reserved its
 * count before the solve (no allocation then); an adaptive one doubles when full. */
static int keep(size_t step, double t, const double *x, void *user)
{
  pyrun *r = user;
  if (r->nsaved == r->cap && reserve(r, r->cap ? 2 * r->cap : 16)) return CSDE_ENOMEM;
  memcpy(r->saved + r->nsaved * r->pv.n, x, r->pv.n * sizeof *x);
  r->saved_t[r->nsaved] = t;
  r->saved_step[r->nsaved++] = (int64_t)step;
  return 0;
}

static int on_step(size_t step, double t, size_t saved, int final, void *user)
{
  pyrun *r = user;
  return csde_run_progress_step(step, t, saved, final, &r->bar);
}

/* The check of the model's first answer (csde_run_warning): warnings.warn(msg,
 * RuntimeWarning) at the caller of solve(), on the calling thread with the GIL taken
 * back. A warning made an error stops the run, and solve() raises it. */
static int on_warn(const char *msg, void *user)
{
  pyrun *r = user;
  PyEval_RestoreThread(r->ts);
  int bad = PyErr_WarnEx(PyExc_RuntimeWarning, msg, 2) < 0;
  if (bad && !r->exc) {
    PyErr_Fetch(&r->exc_type, &r->exc, &r->exc_tb);
    PyErr_NormalizeException(&r->exc_type, &r->exc, &r->exc_tb);
    r->exc_t = NAN; /* not the model's: no note */
  }
  PyErr_Clear();
  r->ts = PyEval_SaveThread();
  return bad;
}

/* The failure of a guidance callable or the callback at t, kept to be raised after the
 * solve (the GIL is held). */
static void keep_exc(pyrun *r, double t, const char *who)
{
  if (!r->exc) {
    r->exc_who = who;
    PyErr_Fetch(&r->exc_type, &r->exc, &r->exc_tb);
    PyErr_NormalizeException(&r->exc_type, &r->exc, &r->exc_tb);
    if (r->exc && r->exc_tb) PyException_SetTraceback(r->exc, r->exc_tb);
    r->exc_t = t;
  }
  PyErr_Clear();
}

/* guidance=callable: w(t, frame) of corrsde/problem.h. The Python w(t) is called once per
 * new t (corrsde._guidance's wrapper: tau checked floats); NaN after a failure (the
 * library then stops the run, and solve() raises the callable's exception). */
static double py_guidance_fn(double t, size_t frame, void *user)
{
  pyrun *r = user;
  if (r->g_ok && t == r->g_t) return r->g_w[frame];
  if (r->exc || !pthread_equal(pthread_self(), r->owner)) return NAN;
  PyEval_RestoreThread(r->ts);
  r->g_ok = 0;
  PyObject *v = PyObject_CallFunction(r->gfn, "d", t);
  Py_ssize_t n = v && PyTuple_Check(v) ? PyTuple_GET_SIZE(v) : -1;
  for (Py_ssize_t i = 0; i < n && !PyErr_Occurred(); i++)
    r->g_w[i] = PyFloat_AsDouble(PyTuple_GET_ITEM(v, i));
  if (v && !PyErr_Occurred() && n == r->v.dims[1]) {
    r->g_ok = 1;
    r->g_t = t;
  } else {
    if (!PyErr_Occurred())
      PyErr_Format(PyExc_RuntimeError, "guidance: the scales of w(t) came back malformed");
    keep_exc(r, t, "guidance(t)");
  }
  Py_XDECREF(v);
  r->ts = PyEval_SaveThread();
  return r->g_ok ? r->g_w[frame] : NAN;
}

/* callback=: callback(step, t, x, x0) after every step, x and x0 read-only views (x0
 * None where the step had no model evaluation); truthy stops the run. */
static int py_preview(size_t step, double t, const double *x, const double *x0, void *user)
{
  pyrun *r = user;
  PyEval_RestoreThread(r->ts);
  int stop = 1;
  PyObject *xv = csde_py_view(&r->pv, x);
  PyObject *x0v = !xv ? NULL : x0 ? csde_py_view(&r->pv, x0) : Py_None;
  PyObject *rv = x0v && PyErr_CheckSignals() == 0
                     ? PyObject_CallFunction(r->callback, "ndOO", (Py_ssize_t)step, t, xv, x0v)
                     : NULL;
  if (rv) {
    stop = PyObject_IsTrue(rv);
    Py_DECREF(rv);
  }
  if (stop < 0 || (!rv && PyErr_Occurred())) {
    r->step = step;
    keep_exc(r, t, "the callback");
    stop = 1;
  }
  /* views kept past the call get their copy (adapter.h) */
  if ((xv && csde_py_done(&r->pv, x) < 0) || (x0 && x0v && csde_py_done(&r->pv, x0) < 0)) {
    keep_exc(r, t, "the callback");
    stop = 1;
  }
  r->ts = PyEval_SaveThread();
  return stop;
}

/* The model's state of a solve: x is [dims[0], ..., dims[nd - 1]]. */
static void pyrun_init(pyrun *r, PyObject *model, PyObject *ctx, int nd, const npy_intp *dims)
{
  memset(r, 0, sizeof *r);
  r->model = model;
  r->ctx = ctx;
  r->owner = pthread_self();
  r->v.nd = nd;
  r->v.n = 1;
  for (int i = 0; i < nd; i++) {
    r->v.dims[i] = dims[i];
    r->v.n *= (size_t)dims[i];
  }
  r->t_name = PyUnicode_InternFromString("t");
  r->step_name = PyUnicode_InternFromString("step");
  r->pv = r->v;
  csde_py_cond_init(&r->cc, NULL);
}

static void pyrun_clear(pyrun *r)
{
  csde_py_views_clear(&r->v);
  csde_py_views_clear(&r->pv);
  csde_py_cond_clear(&r->cc);
  free(r->g_w);
  Py_XDECREF(r->t_name);
  Py_XDECREF(r->step_name);
  free(r->saved);
  free(r->saved_t);
  free(r->saved_step);
}

/* After a solve: raise the model's own exception again, with a note naming t and the
 * step, or the callback's own failure. Returns 1 if it raised. */
static int raise_model_error(pyrun *r)
{
  if (r->exc) {
    char note[128];
    snprintf(note, sizeof note, "corrsde: raised by %s at t = %.17g (step %zu)",
             r->exc_who ? r->exc_who : "the model", r->exc_t, r->step);
    PyObject *rv = isnan(r->exc_t) ? NULL : PyObject_CallMethod(r->exc, "add_note", "s", note);
    Py_XDECREF(rv);
    PyErr_Clear();
    PyErr_Restore(r->exc_type, r->exc, r->exc_tb);
    r->exc_type = r->exc = r->exc_tb = NULL;
    return 1;
  }
  if (r->msg[0]) {
    PyErr_SetString(PyExc_RuntimeError, r->msg);
    return 1;
  }
  return 0;
}

/* The Python argument behind a run setting (csde_err.param). */
static const char *param_arg(const char *param)
{
  static const char *const map[][2] = {
      {CSDE_PARAM_SOLVER, "solver"},   {CSDE_PARAM_STEPS, "steps"},
      {CSDE_PARAM_GRID, "grid"},       {CSDE_PARAM_TOLERANCES, "rtol/atol"},
      {CSDE_PARAM_NOISE, "noise"},     {CSDE_PARAM_MODEL, "model"},
      {CSDE_PARAM_SPAN, "t_start/t_end"}, {CSDE_PARAM_SIZE, "x"},
      {CSDE_PARAM_PROCESS, "process"}, {CSDE_PARAM_SAVE, "save"},
      {CSDE_PARAM_SCHEDULE, "schedule"}, {CSDE_PARAM_X0_CLIP, "x0_clip"},
      {CSDE_PARAM_X0_THRESHOLD, "x0_threshold"}, {CSDE_PARAM_GUIDANCE, "guidance"},
      {CSDE_PARAM_COND, "cond/uncond"}, {CSDE_PARAM_CORRECTOR, "corrector"}};
  for (size_t i = 0; param && i < sizeof map / sizeof map[0]; i++)
    if (!strcmp(param, map[i][0])) return map[i][1];
  return NULL;
}

/* The Python argument behind a settings key, for messages. */
static const char *key_arg(const char *key)
{
  static const char *const map[][2] = {
      {"output", "out"},          {"model_spec", "model"}, {"solvers_text", "solvers"},
      {"levels_text", "levels"},  {"k0", "levels"},        {"k1", "levels"},
      {"cov_method", "method"},   {"conf", "confidence"},  {"ref_level", "reference_level"}};
  for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
    if (!strcmp(key, map[i][0])) return map[i][1];
  return key;
}

/* A string setting of dict d (None, or absent: NULL); a NUL inside is refused. */
static int dict_str(PyObject *d, const char *key, const char **out)
{
  PyObject *v = PyDict_GetItemString(d, key);
  *out = NULL;
  if (!v || v == Py_None) return 0;
  *out = csde_py_str(v, key_arg(key));
  return *out ? 0 : -1;
}

/* A number setting of dict d (None, or absent: dflt). */
static int dict_num(PyObject *d, const char *key, double dflt, double *out)
{
  PyObject *v = PyDict_GetItemString(d, key);
  *out = dflt;
  if (!v || v == Py_None) return 0;
  *out = PyFloat_AsDouble(v);
  return *out == -1.0 && PyErr_Occurred() ? -1 : 0;
}

/* The same, NaN refused: where the library reads NaN as "not given" (t_start, t_end),
 * a NaN given is not the default but an error; "not given" is None. */
static int dict_real(PyObject *d, const char *key, double dflt, double *out)
{
  if (dict_num(d, key, dflt, out)) return -1;
  PyObject *v = PyDict_GetItemString(d, key);
  if (isnan(*out) && v && v != Py_None) {
    PyErr_Format(PyExc_ValueError, "%s: expected a number, got nan%s", key_arg(key),
                 strcmp(key, "conf") ? " (None gives the default)" : "");
    return -1;
  }
  return 0;
}

/* An integer setting of dict d in [lo, hi] (None, or absent: dflt); see arg_uint. */
static int dict_uint(PyObject *d, const char *key, unsigned long long dflt,
                     unsigned long long lo, unsigned long long hi, unsigned long long *out)
{
  PyObject *v = PyDict_GetItemString(d, key);
  *out = dflt;
  if (!v || v == Py_None) return 0;
  return arg_uint(v, key_arg(key), lo, hi, out);
}

/* ---- the built-in exact models (model.h's csde_model_spec_alloc) ---- */

/* The error of argument `what` (its name first, "model: ..."), or of the schedule where
 * the library blames it (a path the model cannot take). */
static PyObject *raise_arg(int st, csde_err *err, const char *what)
{
  if (err->param && !strcmp(err->param, CSDE_PARAM_SCHEDULE)) what = "schedule";
  char m[CSDE_MSG_MAX + 32];
  snprintf(m, sizeof m, "%s: %s", what, err->msg[0] ? err->msg : csde_strerror(st));
  memcpy(err->msg, m, sizeof err->msg - 1); /* cut to the record's size */
  err->msg[sizeof err->msg - 1] = '\0';
  return raise_err(st, err);
}

/* A built-in model from its spec, as `corrsde sample --model SPEC` builds it
 * (src/cli/spec_model.c): csde_model_spec_alloc, the gmm's factors made now, and the
 * gaussian's dense parts when the score will be asked for (score != 0), so that their
 * failures are the model's, here; threads > 1 the gaussian's own tiles (no change of a
 * bit). canon: the spec with every parameter shown (free()). -1 with the exception set. */
static int builtin_model(const char *spec, const csde_cov *C, const csde_schedule *s,
                         size_t D, int score, int threads, csde_model **M, char **canon)
{
  csde_err err;
  csde_err_clear(&err);
  *M = NULL;
  *canon = NULL;
  int st = csde_model_spec_alloc(M, spec, C, s, D, canon, &err);
  if (!st && csde_model_is_gmm(*M)) {
    size_t K;
    const double *cum, *means, *fac;
    st = csde_model_gmm_law(*M, &K, &cum, &means, &fac, &err);
  }
  if (!st && score && csde_model_is_gaussian(*M)) st = csde_model_gaussian_prepare(*M, &err);
  if (!st && threads > 1 && csde_model_is_gaussian(*M))
    st = csde_model_gaussian_set_threads(*M, threads, &err);
  if (st) {
    csde_model_free(*M);
    free(*canon);
    *M = NULL;
    *canon = NULL;
    raise_arg(st, &err, "model");
    return -1;
  }
  return 0;
}

/* corrsde.Model's handle: the model, and the cov and schedule capsules it borrows from
 * (held, so they outlive it). */
typedef struct {
  csde_model *M;
  PyObject *cov, *sched;
  size_t tau, D;
} model_handle;

static void model_capsule_free(PyObject *cap)
{
  model_handle *h = PyCapsule_GetPointer(cap, "corrsde.model");
  if (!h) return;
  csde_model_free(h->M);
  Py_XDECREF(h->cov);
  Py_XDECREF(h->sched);
  PyMem_Free(h);
}

/* model_new(spec, cov, sched, D) -> (handle, canonical spec, output kind) */
static PyObject *py_model_new(PyObject *self, PyObject *args)
{
  (void)self;
  PyObject *spec_obj, *covcap, *schedcap;
  Py_ssize_t D;
  if (!PyArg_ParseTuple(args, "OOOn", &spec_obj, &covcap, &schedcap, &D)) return NULL;
  const char *spec = csde_py_str(spec_obj, "model");
  cov_handle *ch = spec ? cov_of(covcap) : NULL;
  sched_handle *sh = ch ? PyCapsule_GetPointer(schedcap, "corrsde.schedule") : NULL;
  if (!sh || !sched_of(schedcap)) return NULL;
  if (ch->lent || sh->lent)
    return PyErr_Format(PyExc_ValueError, "%s: lent by a run (ctx.%s), valid during its "
                        "call only; a Model needs its own", ch->lent ? "cov" : "schedule",
                        ch->lent ? "cov" : "schedule");
  if (D < 1) return PyErr_Format(PyExc_ValueError, "frame_shape: expected sizes >= 1");
  csde_model *M;
  char *canon;
  if (builtin_model(spec, ch->C, sh->s, (size_t)D, 1, 1, &M, &canon)) return NULL;
  model_handle *h = PyMem_Calloc(1, sizeof *h);
  PyObject *cap = h ? PyCapsule_New(h, "corrsde.model", model_capsule_free) : NULL;
  if (!cap) {
    PyMem_Free(h);
    csde_model_free(M);
    free(canon);
    return h ? NULL : PyErr_NoMemory();
  }
  h->M = M;
  h->cov = Py_NewRef(covcap);
  h->sched = Py_NewRef(schedcap);
  h->tau = csde_cov_tau(ch->C);
  h->D = (size_t)D;
  PyObject *res = Py_BuildValue("Nsi", cap, canon, (int)csde_model_output_of(M));
  free(canon);
  return res;
}

/* model_call(handle, t, x) -> the model's answer at (t, x), x float64 C-contiguous
 * [B, tau, *frame_shape] of the model's tau and D. Holds the GIL (one model object is
 * never evaluated from two threads at once: model.h). */
static PyObject *py_model_call(PyObject *self, PyObject *args)
{
  (void)self;
  PyObject *cap;
  double t;
  PyArrayObject *x;
  if (!PyArg_ParseTuple(args, "OdO!", &cap, &t, &PyArray_Type, &x)) return NULL;
  model_handle *h = PyCapsule_GetPointer(cap, "corrsde.model");
  if (!h) return NULL;
  size_t B, D;
  if (blocks_of(x, h->tau, "x", &B, &D)) return NULL;
  if (D != h->D)
    return PyErr_Format(PyExc_ValueError, "x: its frames hold %zu values, the model's "
                        "frame_shape %zu", D, h->D);
  PyObject *y = PyArray_NewLikeArray(x, NPY_CORDER, NULL, 0);
  if (!y || !B) return y;
  int rc = csde_model_call(h->M, t, B, PyArray_DATA(x), PyArray_DATA((PyArrayObject *)y));
  if (rc) {
    Py_DECREF(y);
    return PyErr_Format(PyExc_ValueError, "t: the model %s failed at t = %.17g (code %d: "
                        "Sigma_t singular, or the dense parts refused)",
                        csde_model_name(h->M), t, rc);
  }
  return y;
}

/* solve(model, ctx, x, cov, sched, kind, settings, out, float32, compress, force[, cnd])
 * x is solved in place. cnd: (cond, uncond, guidance callable, callback, _cond_call),
 * each None or the object (settings' guidance and guidance_split the spec and the flag). settings: a dict of csde_run_settings (str and numbers; None:
 * the default). kind: the model output (csde_model_output). out: None, or the path of
 * the trajectory file to write (as `corrsde sample`). Returns (nfe, steps, accepted,
 * rejected, wall_seconds, stopped, t [n], step [n], states [n, *x.shape]). */
/* The run settings of solve()'s and rci's dict (every key optional; strings borrowed
 * from the dict), with solve()'s defaults. -1 with a Python exception set. */
static int run_settings_of(PyObject *sd, csde_run_settings *s)
{
  *s = csde_run_default_settings();
  unsigned long long steps, seed, threads, max_nfe;
  if (dict_str(sd, "process", &s->process) || dict_str(sd, "solver", &s->solver) ||
      dict_str(sd, "grid", &s->grid) || dict_str(sd, "noise", &s->noise) ||
      dict_str(sd, "save", &s->save) || dict_str(sd, "model_spec", &s->model_spec) ||
      dict_str(sd, "init", &s->init) || dict_str(sd, "command_line", &s->command_line) ||
      dict_str(sd, "cov_method", &s->cov_method) || dict_str(sd, "x0_clip", &s->x0_clip) ||
      dict_str(sd, "x0_threshold", &s->x0_threshold) ||
      dict_str(sd, "guidance", &s->guidance) || dict_str(sd, "corrector", &s->corrector) ||
      dict_uint(sd, "steps", s->steps, 0, SIZE_MAX, &steps) ||
      dict_real(sd, "rtol", 0, &s->rtol) || dict_real(sd, "atol", 0, &s->atol) ||
      dict_real(sd, "t_start", NAN, &s->t_start) || dict_real(sd, "t_end", NAN, &s->t_end) ||
      dict_uint(sd, "seed", 0, 0, UINT64_MAX, &seed) ||
      dict_uint(sd, "threads", 1, 1, INT_MAX, &threads) ||
      dict_uint(sd, "max_nfe", s->max_nfe, 0, SIZE_MAX, &max_nfe))
    return -1;
  if (!s->process) s->process = "reverse-sde";
  if (!s->grid) s->grid = "uniform";
  if (!s->noise) s->noise = "stream";
  s->steps = (size_t)steps;
  s->seed = (uint64_t)seed;
  s->threads = (int)threads;
  s->max_nfe = (size_t)max_nfe;
  return 0;
}

/* The frame shape of x [B, tau, ...] as the file records it, into shape[3]; returns its
 * rank: 1 to 3 axes ([B, tau]: one pixel; more axes are one axis of their product D). */
static int frame_shape_of(PyArrayObject *x, size_t D, size_t shape[3])
{
  int nd = PyArray_NDIM(x), rank = nd - 2 < 1 ? 1 : nd - 2 > 3 ? 1 : nd - 2;
  shape[0] = D;
  shape[1] = shape[2] = 1;
  if (nd >= 3 && nd <= 5)
    for (int i = 0; i < rank; i++) shape[i] = (size_t)PyArray_DIM(x, 2 + i);
  return rank;
}

static PyObject *py_solve(PyObject *self, PyObject *args)
{
  (void)self;
  PyObject *model, *ctx, *covcap, *schedcap, *sd, *out_obj, *cnd = NULL;
  PyObject *co[5] = {NULL, NULL, NULL, NULL, NULL}; /* cond, uncond, gfn, callback, call */
  PyArrayObject *x;
  int kind, float32, compress, force;
  if (!PyArg_ParseTuple(args, "OOO!OOiO!Oppp|O!", &model, &ctx, &PyArray_Type, &x, &covcap,
                        &schedcap, &kind, &PyDict_Type, &sd, &out_obj, &float32, &compress,
                        &force, &PyTuple_Type, &cnd))
    return NULL;
  if (cnd && !PyArg_ParseTuple(cnd, "OOOOO", co, co + 1, co + 2, co + 3, co + 4)) return NULL;
  for (int i = 0; i < 5; i++)
    if (co[i] == Py_None) co[i] = NULL;
  cov_handle *ch = cov_of(covcap);
  const csde_schedule *sched = sched_of(schedcap);
  if (!ch || !sched) return NULL;
  size_t B, D;
  if (blocks_of(x, csde_cov_tau(ch->C), "x", &B, &D)) return NULL;
  if (!PyArray_ISWRITEABLE(x)) return PyErr_Format(PyExc_ValueError, "x: not writeable");
  const char *out = NULL;
  if (out_obj != Py_None && !PyUnicode_Check(out_obj))
    return PyErr_Format(PyExc_TypeError, "out: expected a str path");
  if (out_obj != Py_None && !(out = csde_py_str(out_obj, "out"))) return NULL;

  csde_run_settings s;
  if (run_settings_of(sd, &s)) return NULL;
  if (!s.save) s.save = "final";
  s.keep_saved = 1; /* the Result holds every saved state: the memory check counts them */
  size_t shape[3];
  int nd = PyArray_NDIM(x), rank = frame_shape_of(x, D, shape);
  if (out && nd > 5)
    return PyErr_Format(PyExc_ValueError, "out: the trajectory file takes frame shapes of 1 "
                                          "to 3 axes, got %d", nd - 2);

  pyrun r;
  const char *spec = NULL; /* model: a built-in's spec str, or a Python callable */
  char *canon = NULL;
  if (PyUnicode_Check(model) && !(spec = csde_py_str(model, "model"))) return NULL;
  pyrun_init(&r, spec ? NULL : model, ctx, nd, PyArray_DIMS(x));

  csde_err err;
  csde_err_clear(&err);
  csde_model *M = NULL;
  csde_run *run = NULL;
  csde_traj *w = NULL;
  PyObject *res = NULL;
  /* conditioning: the library passes cond and uncond through as ctx->cond, ->uncond */
  PyObject *gsplit = PyDict_GetItemString(sd, "guidance_split");
  s.guidance_split = gsplit && PyObject_IsTrue(gsplit) == 1;
  r.cond = co[0];
  r.uncond = co[1];
  r.gfn = co[2];
  r.callback = co[3];
  s.cond = r.cond;
  s.uncond = r.uncond;
  r.cc.call = co[4] ? Py_NewRef(co[4]) : NULL;
  if (r.gfn) {
    if (!(r.g_w = malloc(csde_cov_tau(ch->C) * sizeof *r.g_w))) {
      PyErr_NoMemory();
      goto done;
    }
    s.guidance_fn = py_guidance_fn;
    s.guidance_user = &r;
    if (!s.guidance) s.guidance = "python:w(t)";
  }
  s.preview = r.callback != NULL;
  int st = 0;
  if (spec) { /* a built-in model, run inside the library (no Python call) */
    if (builtin_model(spec, ch->C, sched, D, strncmp(s.process, "forward-sde", 11) != 0,
                      s.threads, &M, &canon))
      goto done;
    s.model_spec = canon;
  } else if ((st = csde_model_alloc_ctx(&M, "python", py_model_fn, (csde_model_output)kind,
                                        &r, NULL, &err))) {
    raise_err(st, &err);
    goto done;
  }
  if ((st = csde_run_alloc(&run, &s, ch->C, sched, M, B, rank, shape, &err))) {
    const char *arg = param_arg(err.param);
    if (arg && st == CSDE_EINVAL) {
      char m[CSDE_MSG_MAX + 32];
      snprintf(m, sizeof m, "%s: %s", arg, err.msg);
      memcpy(err.msg, m, sizeof err.msg - 1); /* cut to the record's size */
      err.msg[sizeof err.msg - 1] = '\0';
    }
    raise_err(st, &err);
    goto done;
  }
  /* a plan of known length: its states reserved now, so that saving allocates nothing */
  if (csde_run_capacity(run) && reserve(&r, csde_run_capacity(run))) {
    PyErr_NoMemory();
    goto done;
  }
  if (out) {
    csde_traj_options o = {float32, compress, force, NULL};
    if ((st = csde_traj_create(&w, out, run, &o, &err))) {
      raise_err(st, &err);
      goto done;
    }
  }

  PyObject *prog = PyDict_GetItemString(sd, "progress");
  csde_run_progress_init(&r.bar, run, prog && PyObject_IsTrue(prog) == 1);
  csde_solve_stats stats;
  csde_run_hooks hooks = {keep, on_step, &r, on_warn, r.callback ? py_preview : NULL};
  double *xv = PyArray_DATA(x);
  r.ts = PyEval_SaveThread();
  st = csde_run_exec(run, xv, w, &hooks, &stats, &err);
  csde_run_progress_end(&r.bar);
  PyEval_RestoreThread(r.ts);

  if (w) { /* the file records how the run ended, whatever it was */
    char status[CSDE_MSG_MAX + 64];
    csde_run_status(st, &stats, &err, NULL, status, sizeof status);
    csde_err werr;
    csde_err_clear(&werr);
    int ws = csde_traj_close(w, &stats, status, &werr);
    w = NULL;
    if (ws && !st && !r.exc) {
      raise_err(ws, &werr);
      goto done;
    }
  }
  if (raise_model_error(&r)) {
  } else if (st) {
    raise_err(st, &err);
  } else {
    npy_intp dn = (npy_intp)r.nsaved, sdim[MAXDIM + 1];
    sdim[0] = dn;
    memcpy(sdim + 1, r.pv.dims, (size_t)r.pv.nd * sizeof *sdim);
    PyObject *ta = PyArray_SimpleNew(1, &dn, NPY_DOUBLE);
    PyObject *sa = PyArray_SimpleNew(1, &dn, NPY_INT64);
    PyObject *xa = PyArray_SimpleNew(r.pv.nd + 1, sdim, NPY_DOUBLE);
    if (ta && sa && xa) {
      if (dn) {
        memcpy(PyArray_DATA((PyArrayObject *)ta), r.saved_t, r.nsaved * sizeof(double));
        memcpy(PyArray_DATA((PyArrayObject *)sa), r.saved_step, r.nsaved * sizeof(int64_t));
        memcpy(PyArray_DATA((PyArrayObject *)xa), r.saved, r.nsaved * r.pv.n * sizeof(double));
      }
      res = Py_BuildValue("nnnndiNNN", (Py_ssize_t)stats.nfe, (Py_ssize_t)stats.steps,
                          (Py_ssize_t)stats.accepted, (Py_ssize_t)stats.rejected,
                          stats.wall_seconds, stats.stopped, ta, sa, xa);
      ta = sa = xa = NULL;
    }
    Py_XDECREF(ta);
    Py_XDECREF(sa);
    Py_XDECREF(xa);
  }
done:
  csde_traj_discard(w);
  csde_run_free(run);
  csde_model_free(M);
  free(canon);
  Py_XDECREF(r.exc_type);
  Py_XDECREF(r.exc);
  Py_XDECREF(r.exc_tb);
  pyrun_clear(&r);
  return res;
}

/* ---- convergence experiments with a Python model ---- */

typedef struct {
  pyrun *r;
  const csde_model *M;
  const csde_cov *C;
  size_t D;
  uint64_t seed;
  double prior_scale; /* the path's: the prior is N(0, p^2 C) (VP: 1) */
  size_t per;         /* values per sample: tau D */
  csde_cov_ws *ws;
  /* progress: the program's display (progress=True) or a callable's */
  int draw;
  csde_conv_progress_line line;
  PyObject *cb;                      /* borrowed */
  PyObject *exc_type, *exc, *exc_tb; /* what stopped the run from the hook */
} pyconv;

static const char *const conv_events[] = {"plan", "estimate", "working", "stage"};

/* The progress hook, on this thread: the GIL taken back for the display or the callable
 * (a dict of the csde_conv_progress fields), and for Ctrl-C; an exception stops the run
 * and is raised after it. */
static int conv_progress(void *user, const csde_conv_progress *p)
{
  pyconv *c = user;
  PyEval_RestoreThread(c->r->ts);
  int stop = 0;
  if (c->draw) csde_conv_progress_draw(&c->line, p);
  if (PyErr_CheckSignals() < 0) {
    stop = 1;
  } else if (c->cb) {
    PyObject *so = p->solver == SIZE_MAX ? Py_NewRef(Py_None) : PyLong_FromSize_t(p->solver);
    PyObject *d = !so ? NULL : Py_BuildValue(
        "{s:s,s:N,s:s,s:O,s:I,s:n,s:n,s:n,s:n,s:O,s:n,s:n,s:i,s:d,s:d,s:d,s:d,s:d}", "event",
        conv_events[p->event], "solver", so,
        "solver_name", p->solver_name, "reference", p->reference ? Py_True : Py_False, "level",
        p->level, "paths_done", (Py_ssize_t)p->paths_done, "paths", (Py_ssize_t)p->paths,
        "nfe_done", (Py_ssize_t)p->nfe_done, "nfe_total", (Py_ssize_t)p->nfe_total,
        "nfe_total_estimated", p->nfe_total_estimated ? Py_True : Py_False, "batch",
        (Py_ssize_t)p->batch, "batches", (Py_ssize_t)p->batches, "threads", p->threads,
        "fraction", p->fraction, "elapsed", p->elapsed, "sec_per_call", p->sec_per_call,
        "seconds_total", p->seconds_total, "t", p->t);
    PyObject *rv = d ? PyObject_CallOneArg(c->cb, d) : NULL;
    if (!rv) stop = 1;
    Py_XDECREF(rv);
    Py_XDECREF(d);
  }
  if (stop && !c->exc) {
    PyErr_Fetch(&c->exc_type, &c->exc, &c->exc_tb);
    PyErr_NormalizeException(&c->exc_type, &c->exc, &c->exc_tb);
    if (c->exc && c->exc_tb) PyException_SetTraceback(c->exc, c->exc_tb);
  }
  PyErr_Clear();
  c->r->ts = PyEval_SaveThread();
  return stop;
}

/* One thread only (the caller's: threads = 1), so one model and one workspace. */
static int conv_alloc(void *user, int thread, const csde_model **model, void **state,
                      csde_err *err)
{
  pyconv *c = user;
  (void)thread;
  *model = c->M;
  *state = NULL;
  return c->ws ? 0 : csde_cov_ws_alloc(&c->ws, c->C, c->D, 1, err);
}

static void conv_free(void *user, void *state)
{
  (void)user;
  (void)state;
}

/* The starts: the prior draw of `corrsde converge` for a model without a data law
 * (seed, the initial-state stream, path index = sample index). */
static int conv_start(void *user, void *state, size_t first, size_t n, double *x,
                      csde_err *err)
{
  pyconv *c = user;
  (void)state;
  int s = csde_conv_start_prior(c->C, c->ws, c->seed, first, n, x, err);
  if (!s && c->prior_scale != 1)
    for (size_t i = 0; i < n * c->per; i++) x[i] *= c->prior_scale;
  return s;
}

/* A list of n doubles as a new 1-D array. */
static PyObject *darray(const double *v, size_t n)
{
  npy_intp d = (npy_intp)n;
  PyObject *a = PyArray_SimpleNew(1, &d, NPY_DOUBLE);
  if (a && n) memcpy(PyArray_DATA((PyArrayObject *)a), v, n * sizeof *v);
  return a;
}

/* The result as a dict: levels, steps, h, and per solver a dict of the fit. */
static PyObject *conv_result(const csde_conv_result *res, csde_conv_kind kind)
{
  PyObject *d = PyDict_New(), *sl = PyList_New(0);
  if (!d || !sl) goto fail;
  double lev[CSDE_CONV_MAXLEVEL + 1], st[CSDE_CONV_MAXLEVEL + 1];
  for (size_t k = 0; k < res->L; k++) {
    lev[k] = res->level[k];
    st[k] = (double)res->steps[k];
  }
  PyObject *v;
#define PUT(dict, key, val)                                                                \
  do {                                                                                     \
    if (!(v = (val)) || PyDict_SetItemString(dict, key, v)) {                              \
      Py_XDECREF(v);                                                                       \
      goto fail;                                                                           \
    }                                                                                      \
    Py_DECREF(v);                                                                          \
  } while (0)
  PUT(d, "level", darray(lev, res->L));
  PUT(d, "steps", darray(st, res->L));
  PUT(d, "h", darray(res->h, res->L));
  PUT(d, "paths", PyLong_FromSize_t(res->N));
  PUT(d, "reference", PyUnicode_FromString(res->reference));
  PUT(d, "estimator", PyUnicode_FromString(res->estimator));
  PUT(d, "wall_seconds", PyFloat_FromDouble(res->wall_seconds));
  PUT(d, "nfe", PyLong_FromSize_t(res->nfe));
  PUT(d, "error_kind", PyUnicode_FromString(csde_conv_kind_name(kind)));
  for (size_t i = 0; i < res->nsolvers; i++) {
    const csde_conv_solver_result *s = &res->s[i];
    const csde_conv_fit *f = &s->fit;
    PyObject *e = PyDict_New();
    if (!e || PyList_Append(sl, e)) {
      Py_XDECREF(e);
      goto fail;
    }
    Py_DECREF(e); /* the list holds it */
    double used[CSDE_CONV_MAXLEVEL + 1];
    PyObject *dec = PyList_New((Py_ssize_t)res->L);
    if (!dec) goto fail;
    for (size_t k = 0; k < res->L; k++) {
      used[k] = f->decision[k] == CSDE_CONV_USED;
      PyList_SET_ITEM(dec, (Py_ssize_t)k, PyUnicode_FromString(f->reason[k]));
    }
    PUT(e, "decision", dec);
    PUT(e, "name", PyUnicode_FromString(s->name));
    PUT(e, "theory", PyFloat_FromDouble(s->theory));
    PUT(e, "reference", PyUnicode_FromString(s->reference));
    PUT(e, "error", darray(f->err, res->L));
    PUT(e, "error_lo", darray(f->err_lo, res->L));
    PUT(e, "error_hi", darray(f->err_hi, res->L));
    PUT(e, "slope", darray(f->slope, res->L - 1));
    PUT(e, "slope_lo", darray(f->slope_lo, res->L - 1));
    PUT(e, "slope_hi", darray(f->slope_hi, res->L - 1));
    PUT(e, "used", darray(used, res->L));
    double nfe[CSDE_CONV_MAXLEVEL + 1];
    for (size_t k = 0; k < res->L; k++)
      nfe[k] = (double)(res->steps[k] * csde_solver_type_nfe_per_step(csde_solver_lookup(s->name)));
    PUT(e, "nfe", darray(nfe, res->L));
    PUT(e, "order", PyFloat_FromDouble(f->order));
    PUT(e, "order_lo", PyFloat_FromDouble(f->order_lo));
    PUT(e, "order_hi", PyFloat_FromDouble(f->order_hi));
    PUT(e, "fit", PyUnicode_FromString(f->fit));
    PUT(e, "reference_ok", PyBool_FromLong(f->ref_ok));
    PUT(e, "reference_ratio", PyFloat_FromDouble(f->ref_ratio));
  }
  PUT(d, "solvers", Py_NewRef(sl));
#undef PUT
  Py_DECREF(sl);
  return d;
fail:
  Py_XDECREF(sl);
  Py_XDECREF(d);
  return NULL;
}

/* converge(model, ctx, cov, sched, kind, shape, settings) -> (result dict, table str)
 * shape: [batch, tau, *frame_shape] of the model's x (batch the largest). settings: a
 * dict of csde_conv_settings (None or absent: the library's default): process, solvers
 * (a comma list), error, levels ("K0:K1"), paths, reference, ref_level, t_end, seed,
 * batch, boot, boot_seed, conf; and csv, output, force, progress, model_spec,
 * cov_method.
 * The model is called on this thread (threads = 1), with the GIL taken back only for
 * the call. */
static PyObject *py_converge(PyObject *self, PyObject *args)
{
  (void)self;
  PyObject *model, *ctx, *covcap, *schedcap, *shape, *sd;
  int kind;
  if (!PyArg_ParseTuple(args, "OOOOiO!O!", &model, &ctx, &covcap, &schedcap, &kind,
                        &PyTuple_Type, &shape, &PyDict_Type, &sd))
    return NULL;
  cov_handle *ch = cov_of(covcap);
  const csde_schedule *sched = sched_of(schedcap);
  if (!ch || !sched) return NULL;
  int nd = (int)PyTuple_GET_SIZE(shape);
  if (nd < 2 || nd > MAXDIM) return PyErr_Format(PyExc_ValueError, "frame_shape: too many axes");
  npy_intp dims[MAXDIM];
  for (int i = 0; i < nd; i++) {
    unsigned long long di;
    if (arg_uint(PyTuple_GET_ITEM(shape, i), i ? "frame_shape" : "batch", 1, PY_SSIZE_T_MAX, &di))
      return NULL;
    dims[i] = (npy_intp)di;
  }
  pyrun r;
  const char *spec = NULL; /* model: a built-in's spec str, or a Python callable */
  char *canon = NULL;
  if (PyUnicode_Check(model) && !(spec = csde_py_str(model, "model"))) return NULL;
  pyrun_init(&r, spec ? NULL : model, ctx, nd, dims);

  /* the settings (csde_conv_settings; None or absent: the library's default) */
  csde_conv_settings cs = csde_conv_default_settings();
  const char *csv, *output, *model_spec, *cov_method;
  int force = 0;
  unsigned long long paths, ref_level, seed, batch, boot, boot_seed;
  PyObject *fo = PyDict_GetItemString(sd, "force"), *te = PyDict_GetItemString(sd, "t_end");
  if (fo) force = PyObject_IsTrue(fo) == 1;
  if (dict_str(sd, "process", &cs.process) || dict_str(sd, "error", &cs.error) ||
      dict_str(sd, "reference", &cs.reference) || dict_str(sd, "grid", &cs.grid) ||
      dict_str(sd, "csv", &csv) || dict_str(sd, "output", &output) ||
      dict_str(sd, "levels", &cs.levels) || dict_str(sd, "solvers", &cs.solvers) ||
      dict_str(sd, "model_spec", &model_spec) || dict_str(sd, "cov_method", &cov_method) ||
      dict_uint(sd, "paths", cs.paths, 0, SIZE_MAX, &paths) ||
      dict_uint(sd, "ref_level", 0, 0, UINT_MAX, &ref_level) ||
      dict_num(sd, "t_end", cs.t_end, &cs.t_end) ||
      dict_uint(sd, "seed", 0, 0, UINT64_MAX, &seed) ||
      dict_uint(sd, "batch", cs.batch, 0, SIZE_MAX, &batch) ||
      dict_uint(sd, "boot", cs.boot, 0, SIZE_MAX, &boot) ||
      dict_uint(sd, "boot_seed", cs.boot_seed, 0, UINT64_MAX, &boot_seed) ||
      dict_real(sd, "conf", cs.conf, &cs.conf)) {
    pyrun_clear(&r);
    return NULL;
  }
  /* a NaN given is not "the process's own end" (None) but a time outside the span */
  if (isnan(cs.t_end) && te && te != Py_None) cs.t_end = INFINITY;
  cs.paths = (size_t)paths;
  cs.ref_level = (unsigned)ref_level;
  cs.seed = (uint64_t)seed;
  cs.threads = 1; /* the model runs on this thread */
  cs.batch = (size_t)batch;
  cs.boot = (size_t)boot;
  cs.boot_seed = (uint64_t)boot_seed;
  csde_err err;
  csde_err_clear(&err);
  PyObject *res = NULL;
  csde_model *M = NULL;
  csde_conv_plan plan;
  int s = csde_conv_resolve(&cs, ch->C, sched, r.v.n / ((size_t)r.v.dims[0] * csde_cov_tau(ch->C)),
                            &plan, &err);
  csde_conv_params p = plan.params;
  if (s) {
    raise_err(s, &err);
    goto done;
  }
  if (spec) { /* a built-in model, run inside the library */
    int score = !cs.process || strcmp(cs.process, "forward-sde");
    if (builtin_model(spec, ch->C, sched, p.P.D, score, 1, &M, &canon))
      goto done;
    model_spec = canon;
  } else if ((s = csde_model_alloc_ctx(&M, "python", py_model_fn, (csde_model_output)kind, &r,
                                       NULL, &err))) {
    raise_err(s, &err);
    goto done;
  }
  pyconv pc;
  memset(&pc, 0, sizeof pc);
  pc.r = &r;
  pc.M = M;
  pc.C = ch->C;
  pc.D = p.P.D;
  pc.seed = p.seed;
  pc.prior_scale = csde_schedule_path_prior_scale(p.P.sched);
  pc.per = p.P.tau * p.P.D;
  PyObject *prog = PyDict_GetItemString(sd, "progress");
  if (prog && PyCallable_Check(prog))
    pc.cb = prog;
  else
    pc.draw = prog && PyObject_IsTrue(prog) == 1;
  csde_conv_progress_line_init(&pc.line, stderr, isatty(STDERR_FILENO), "corrsde.converge");
  csde_conv_hooks hooks = {&pc, conv_alloc, conv_free, conv_start, conv_progress};
  csde_conv_record rec = {plan.solvers_text, plan.levels_text, plan.reference_text, cov_method,
                          model_spec, csde_model_name(M),
                          csde_model_output_name(csde_model_output_of(M)),
                          "prior N(0, C) (seed, stream 2^63)", "corrsde.converge(...) from Python",
                          nd - 2 < 1 ? 1 : nd - 2 > 3 ? 1 : nd - 2,
                          {nd == 2 ? 1 : (size_t)r.v.dims[2], nd > 3 ? (size_t)r.v.dims[3] : 0,
                           nd > 4 ? (size_t)r.v.dims[4] : 0},
                          1, NAN, NAN};
  csde_conv_file *file = NULL; /* made before the run, rewritten after every stage */
  if (output && (s = csde_conv_file_open(&file, output, &rec, force, &err))) {
    raise_err(s, &err);
    goto done;
  }
  p.file = file;
  csde_conv_result cr;
  memset(&cr, 0, sizeof cr);
  r.ts = PyEval_SaveThread();
  s = csde_conv_run(&p, &hooks, &cr, &err);
  PyEval_RestoreThread(r.ts);
  if (pc.draw) csde_conv_progress_end(&pc.line);
  csde_cov_ws_free(pc.ws);
  /* the file's status: ok, or why the run ended */
  char status[CSDE_MSG_MAX + 96];
  int interrupted = (r.exc_type && PyErr_GivenExceptionMatches(r.exc_type, PyExc_KeyboardInterrupt)) ||
                    (pc.exc_type && PyErr_GivenExceptionMatches(pc.exc_type, PyExc_KeyboardInterrupt));
  if (!s)
    snprintf(status, sizeof status, "ok");
  else if (interrupted)
    snprintf(status, sizeof status, "failed: interrupted (KeyboardInterrupt)");
  else if (pc.exc) {
    char t[CSDE_MSG_MAX];
    exc_text(pc.exc, t, sizeof t);
    snprintf(status, sizeof status, "failed: the progress callable raised %s", t);
  } else
    snprintf(status, sizeof status, "failed: %s", err.msg[0] ? err.msg : csde_strerror(s));
  csde_err werr;
  csde_err_clear(&werr);
  int ws = csde_conv_file_write(file, &cr, &p, status, &werr);
  int written = csde_conv_file_written(file);
  csde_conv_file_close(file, NULL, &p, NULL, &werr);
  if (s && raise_model_error(&r)) { /* the model's exception */
  } else if (pc.exc) {              /* the hook's: Ctrl-C, or the callable's own */
    PyErr_Restore(pc.exc_type, pc.exc, pc.exc_tb);
    pc.exc_type = pc.exc = pc.exc_tb = NULL;
  } else if (s) {
    raise_err(s, &err);
  } else if (ws) {
    raise_err(ws, &werr);
  } else if (csv && (s = csde_conv_write_csv(csv, &cr, p.kind, &err))) {
    raise_err(s, &err);
  } else {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (f) {
      csde_conv_print(f, &cr, p.kind);
      fclose(f);
    }
    PyObject *d = conv_result(&cr, p.kind);
    if (d) res = Py_BuildValue("Ns", d, text ? text : "");
    free(text);
  }
  if (output && written && PyErr_Occurred()) { /* say where the finished stages are */
    PyObject *et, *ev, *tb;
    PyErr_Fetch(&et, &ev, &tb);
    PyErr_NormalizeException(&et, &ev, &tb);
    char note[PATH_MAX + 96];
    snprintf(note, sizeof note, "corrsde: '%s' holds the stages that finished (status: %s)",
             output, ws ? "not written" : status);
    PyObject *rv = ev ? PyObject_CallMethod(ev, "add_note", "s", note) : NULL;
    Py_XDECREF(rv);
    PyErr_Clear();
    PyErr_Restore(et, ev, tb);
  }
  Py_XDECREF(pc.exc_type);
  Py_XDECREF(pc.exc);
  Py_XDECREF(pc.exc_tb);
  csde_conv_result_free(&cr);
done:
  csde_conv_plan_free(&plan);
  csde_model_free(M);
  free(canon);
  Py_XDECREF(r.exc_type);
  Py_XDECREF(r.exc);
  Py_XDECREF(r.exc_tb);
  pyrun_clear(&r);
  return res;
}

/* solvers() -> [(name, alias, summary, processes, options)] from the registry */
/* registry(kind) -> the names of a registry, in its order: "cov" (covariance families),
 * "cov-method", "process" (what solve() runs: csde_run_process_names), "schedule". */
/* ---- the discrete bound (issue 27, item 3; corrsde/likelihood.h) ---- */

/* elbo(model, ctx, x0, cov, sched, kind, (draws, tdraws, seed, conf, threads, dequant))
 * -> (nll, LT, Lsum, L0, se, lo, hi, bpd, nfe, y): model a spec str of the built-in
 * models (csde_model_spec_alloc) or a callable (as solve's); integer data (dequant
 * bits > 0) dequantized first with the key (seed, CSDE_STREAM_DEQUANT), y the states the
 * bound was taken on. */
static PyObject *py_elbo(PyObject *self, PyObject *args)
{
  (void)self;
  PyObject *model, *ctx, *covcap, *schedcap;
  PyArrayObject *x;
  int kind, threads;
  unsigned long long draws, tdraws, seed;
  double conf;
  const char *dq;
  if (!PyArg_ParseTuple(args, "OOO!OOi(KKKdis)", &model, &ctx, &PyArray_Type, &x, &covcap,
                        &schedcap, &kind, &draws, &tdraws, &seed, &conf, &threads, &dq))
    return NULL;
  cov_handle *ch = cov_of(covcap);
  const csde_schedule *sched = sched_of(schedcap);
  if (!ch || !sched) return NULL;
  size_t B, D;
  if (blocks_of(x, csde_cov_tau(ch->C), "x0", &B, &D)) return NULL;
  csde_err err;
  csde_err_clear(&err);
  csde_elbo_params par = csde_elbo_default_params();
  par.draws = (size_t)draws;
  par.tdraws = (size_t)tdraws;
  par.seed = seed;
  par.conf = conf;
  par.threads = threads;
  int st = csde_dequant_parse(dq, &par.dequant, &err);
  if (st) return raise_err(st, &err);
  npy_intp dn = (npy_intp)B;
  PyObject *arr[8] = {NULL}, *y = PyArray_NewLikeArray(x, NPY_CORDER, NULL, 0), *res = NULL;
  csde_elbo_sample *o = PyMem_Calloc(B ? B : 1, sizeof *o);
  csde_model *M = NULL;
  pyrun r;
  pyrun_init(&r, model, ctx, PyArray_NDIM(x), PyArray_DIMS(x));
  if (!y || !o) {
    PyErr_NoMemory();
    goto done;
  }
  csde_rng_key key = {seed, CSDE_STREAM_DEQUANT};
  if ((st = csde_dequantize(&par.dequant, key, 0, B, csde_cov_tau(ch->C) * D, PyArray_DATA(x),
                            PyArray_DATA((PyArrayObject *)y), &err))) {
    raise_err(st, &err);
    goto done;
  }
  if (PyUnicode_Check(model)) {
    const char *spec = csde_py_str(model, "model");
    if (!spec) goto done;
    char *canon = NULL;
    st = csde_model_spec_alloc(&M, spec, ch->C, sched, D, &canon, &err);
    free(canon);
  } else {
    st = csde_model_alloc_ctx(&M, "python", py_model_fn, (csde_model_output)kind, &r, NULL,
                              &err);
  }
  if (st) {
    raise_err(st, &err);
    goto done;
  }
  csde_problem P = csde_problem_default();
  P.tau = csde_cov_tau(ch->C);
  P.D = D;
  P.batch = B;
  P.C = ch->C;
  P.sched = sched;
  P.model = M;
  size_t nfe = 0;
  r.ts = PyEval_SaveThread();
  st = B ? csde_elbo(&P, &par, PyArray_DATA((PyArrayObject *)y), o, &nfe, &err) : 0;
  PyEval_RestoreThread(r.ts);
  if (raise_model_error(&r)) goto done;
  if (st) {
    raise_err(st, &err);
    goto done;
  }
  for (int i = 0; i < 8; i++) {
    if (!(arr[i] = PyArray_SimpleNew(1, &dn, NPY_DOUBLE))) goto done;
    double *a = PyArray_DATA((PyArrayObject *)arr[i]);
    for (size_t b = 0; b < B; b++) {
      const double v[8] = {o[b].nll, o[b].LT, o[b].Lsum, o[b].L0, o[b].se, o[b].lo, o[b].hi,
                           o[b].bpd};
      a[b] = v[i];
    }
  }
  res = Py_BuildValue("NNNNNNNNnN", arr[0], arr[1], arr[2], arr[3], arr[4], arr[5], arr[6],
                      arr[7], (Py_ssize_t)nfe, y);
  memset(arr, 0, sizeof arr);
  y = NULL;
done:
  for (int i = 0; i < 8; i++) Py_XDECREF(arr[i]);
  Py_XDECREF(y);
  PyMem_Free(o);
  csde_model_free(M);
  Py_XDECREF(r.exc_type);
  Py_XDECREF(r.exc);
  Py_XDECREF(r.exc_tb);
  pyrun_clear(&r);
  return res;
}

static PyObject *py_registry(PyObject *self, PyObject *args)
{
  const char *kind;
  char buf[1024];
  (void)self;
  if (!PyArg_ParseTuple(args, "s", &kind)) return NULL;
  if (!strcmp(kind, "cov")) csde_cov_family_names(buf, sizeof buf);
  else if (!strcmp(kind, "cov-method")) csde_cov_method_names(buf, sizeof buf);
  else if (!strcmp(kind, "process")) csde_run_process_names(buf, sizeof buf);
  else if (!strcmp(kind, "schedule")) csde_schedule_names(buf, sizeof buf);
  else if (!strcmp(kind, "output")) { /* model.h's csde_model_output, in its order */
    size_t o = 0;
    const char *nm;
    buf[0] = '\0';
    for (int k = 0; strcmp(nm = csde_model_output_name((csde_model_output)k), "unknown"); k++)
      o += (size_t)snprintf(buf + o, o < sizeof buf ? sizeof buf - o : 0, "%s%s",
                            k ? ", " : "", nm);
  } else
    return PyErr_Format(PyExc_ValueError, "registry: expected cov, cov-method, process, "
                        "schedule or output, got '%s'", kind);
  PyObject *l = PyList_New(0);
  for (char *w = buf; l && *w;) { /* "a, b[:k=V], c" -> ("a", "b", "c") */
    size_t n = strcspn(w, ",[:");
    PyObject *o = PyUnicode_FromStringAndSize(w, (Py_ssize_t)n);
    if (!o || PyList_Append(l, o)) Py_CLEAR(l);
    Py_XDECREF(o);
    w += strcspn(w, ",");
    w += strspn(w, ", ");
  }
  PyObject *t = l ? PyList_AsTuple(l) : NULL;
  Py_XDECREF(l);
  return t;
}

static PyObject *py_solvers(PyObject *self, PyObject *args)
{
  (void)self;
  (void)args;
  static const char *const procs[] = {"forward-sde", "reverse-sde", "pf-ode", "pf-ode-encode"};
  static const csde_process pk[] = {CSDE_PROC_FORWARD_SDE, CSDE_PROC_REVERSE_SDE, CSDE_PROC_PFODE,
                                    CSDE_PROC_PFODE_ENCODE};
  PyObject *out = PyList_New(0);
  for (const csde_solver_type *const *t = csde_solver_types(); out && *t; t++) {
    char opts[256];
    const char *o = csde_solver_type_options(*t, opts, sizeof opts);
    const char *alias = csde_solver_type_alias(*t);
    PyObject *fits = PyList_New(0);
    for (size_t i = 0; fits && i < sizeof pk / sizeof pk[0]; i++)
      if (csde_solver_type_fits(*t, pk[i])) {
        PyObject *name = PyUnicode_FromString(procs[i]);
        if (!name || PyList_Append(fits, name)) Py_CLEAR(fits);
        Py_XDECREF(name);
      }
    PyObject *e = fits ? Py_BuildValue("(szsNz)", csde_solver_type_name(*t), alias,
                                       csde_solver_type_summary(*t), PyList_AsTuple(fits), o)
                       : NULL;
    Py_XDECREF(fits);
    if (!e || PyList_Append(out, e)) Py_CLEAR(out);
    Py_XDECREF(e);
  }
  return out;
}

/* ---- reverse communication (corrsde/run.h): the caller evaluates the model ----
 * rci_new(x, cov, sched, kind, settings) -> handle: a run of an external model begun from
 * a copy of x (the state lives here, float64); rci_next(h) -> (what, step, t, x, batch,
 * abar, sigma): what 1 EVAL (x: a copy of the states to evaluate at, [batch, tau, ...]),
 * 2 STEP (the state after the step), 3 DONE (the final state); the GIL is released while
 * the solve runs. rci_give(h, answer, status): answer (None when status != 0) copied into
 * the request's out. rci_end(h) -> (nfe, steps, accepted, rejected, wall_seconds,
 * stopped). Copies, not views: nothing handed out points into the run. The handle's
 * destructor ends a run still going. */
typedef struct {
  csde_model *M;
  csde_run *run;
  double *x;          /* the state: csde_run_size doubles */
  int nd;             /* x's axes; dims[0] is the batch */
  npy_intp dims[MAXDIM];
  int begun;
  csde_rci q;         /* the last request */
  int owed;           /* q is an EVAL not yet answered */
  PyObject *cov, *sched; /* the capsules the run borrows from */
} pyrci;

static void rci_capsule_free(PyObject *cap)
{
  pyrci *h = PyCapsule_GetPointer(cap, "corrsde.rci");
  if (!h) return;
  if (h->begun) {
    csde_solve_stats st;
    csde_err err;
    Py_BEGIN_ALLOW_THREADS
    csde_run_end(h->run, &st, &err);
    Py_END_ALLOW_THREADS
  }
  csde_run_free(h->run);
  csde_model_free(h->M);
  free(h->x);
  Py_XDECREF(h->cov);
  Py_XDECREF(h->sched);
  PyMem_Free(h);
}

static pyrci *rci_of(PyObject *cap)
{
  pyrci *h = PyCapsule_GetPointer(cap, "corrsde.rci");
  if (h && !h->begun)
    PyErr_SetString(PyExc_RuntimeError, "the reverse-communication run has ended");
  return h && h->begun ? h : NULL;
}

static PyObject *py_rci_new(PyObject *self, PyObject *args)
{
  (void)self;
  PyObject *covcap, *schedcap, *sd;
  PyArrayObject *x;
  int kind;
  if (!PyArg_ParseTuple(args, "O!OOiO!", &PyArray_Type, &x, &covcap, &schedcap, &kind,
                        &PyDict_Type, &sd))
    return NULL;
  cov_handle *ch = cov_of(covcap);
  const csde_schedule *sched = sched_of(schedcap);
  if (!ch || !sched) return NULL;
  size_t B, D;
  if (blocks_of(x, csde_cov_tau(ch->C), "x", &B, &D)) return NULL;
  if (PyArray_NDIM(x) > MAXDIM)
    return PyErr_Format(PyExc_ValueError, "x: at most %d axes, got %d", MAXDIM, PyArray_NDIM(x));
  csde_run_settings s;
  if (run_settings_of(sd, &s)) return NULL;
  size_t shape[3];
  int nd = PyArray_NDIM(x), rank = frame_shape_of(x, D, shape);

  pyrci *h = PyMem_Calloc(1, sizeof *h);
  if (!h) return PyErr_NoMemory();
  csde_err err;
  csde_err_clear(&err);
  int st = csde_model_alloc_external(&h->M, "python-rci", (csde_model_output)kind, &err);
  if (!st) st = csde_run_alloc(&h->run, &s, ch->C, sched, h->M, B, rank, shape, &err);
  if (st) {
    const char *arg = param_arg(err.param);
    if (arg && st == CSDE_EINVAL) {
      char m[CSDE_MSG_MAX + 32];
      snprintf(m, sizeof m, "%s: %s", arg, err.msg);
      memcpy(err.msg, m, sizeof err.msg - 1);
      err.msg[sizeof err.msg - 1] = '\0';
    }
    csde_run_free(h->run);
    csde_model_free(h->M);
    PyMem_Free(h);
    return raise_err(st, &err);
  }
  size_t n = csde_run_size(h->run);
  h->x = malloc(n * sizeof *h->x);
  if (!h->x) {
    csde_run_free(h->run);
    csde_model_free(h->M);
    PyMem_Free(h);
    return PyErr_NoMemory();
  }
  memcpy(h->x, PyArray_DATA(x), n * sizeof *h->x);
  h->nd = nd;
  memcpy(h->dims, PyArray_DIMS(x), (size_t)nd * sizeof *h->dims);
  if ((st = csde_run_begin(h->run, h->x, NULL, &err))) {
    csde_run_free(h->run);
    csde_model_free(h->M);
    free(h->x);
    PyMem_Free(h);
    return raise_err(st, &err);
  }
  h->begun = 1;
  Py_INCREF(covcap);
  Py_INCREF(schedcap);
  h->cov = covcap;
  h->sched = schedcap;
  PyObject *cap = PyCapsule_New(h, "corrsde.rci", rci_capsule_free);
  if (!cap) { /* end it here: no capsule will */
    csde_solve_stats sst;
    csde_run_end(h->run, &sst, &err);
    h->begun = 0;
    csde_run_free(h->run);
    csde_model_free(h->M);
    free(h->x);
    Py_DECREF(covcap);
    Py_DECREF(schedcap);
    PyMem_Free(h);
  }
  return cap;
}

/* A float64 copy of `batch` states of the run's layout. */
static PyObject *rci_copy(const pyrci *h, const double *v, size_t batch)
{
  npy_intp dims[MAXDIM];
  memcpy(dims, h->dims, (size_t)h->nd * sizeof *dims);
  dims[0] = (npy_intp)batch;
  PyObject *a = PyArray_SimpleNew(h->nd, dims, NPY_DOUBLE);
  if (a) memcpy(PyArray_DATA((PyArrayObject *)a), v, (size_t)PyArray_SIZE((PyArrayObject *)a) * sizeof *v);
  return a;
}

static PyObject *py_rci_next(PyObject *self, PyObject *cap)
{
  (void)self;
  pyrci *h = rci_of(cap);
  if (!h) return NULL;
  csde_err err;
  csde_err_clear(&err);
  int st;
  Py_BEGIN_ALLOW_THREADS
  st = csde_run_next(h->run, &h->q, &err);
  Py_END_ALLOW_THREADS
  if (st) return raise_err(st, &err); /* misuse, or the run failed (rci_end says it again) */
  const int eval = h->q.what == CSDE_RCI_EVAL;
  h->owed = eval;
  size_t batch = eval ? h->q.ctx->batch : (size_t)h->dims[0];
  PyObject *xa = rci_copy(h, h->q.x, batch);
  if (!xa) return NULL;
  return Py_BuildValue("indNndd", (int)h->q.what, (Py_ssize_t)h->q.step, h->q.t, xa,
                       (Py_ssize_t)batch, eval ? h->q.ctx->abar : NAN,
                       eval ? h->q.ctx->sigma : NAN);
}

static PyObject *py_rci_give(PyObject *self, PyObject *args)
{
  (void)self;
  PyObject *cap, *ans;
  int status;
  if (!PyArg_ParseTuple(args, "OOi", &cap, &ans, &status)) return NULL;
  pyrci *h = rci_of(cap);
  if (!h) return NULL;
  if (!h->owed) { /* the library's error for a give out of turn */
    csde_err err;
    int st = csde_run_give(h->run, status, &err);
    return raise_err(st ? st : CSDE_EFAILED, &err);
  }
  if (ans != Py_None) {
    PyArrayObject *a = (PyArrayObject *)PyArray_FROMANY(ans, NPY_DOUBLE, 0, 0,
                                                        NPY_ARRAY_IN_ARRAY);
    if (!a) return NULL;
    size_t want = h->q.ctx->batch * h->q.ctx->tau * h->q.ctx->D;
    if ((size_t)PyArray_SIZE(a) != want || PyArray_NDIM(a) < 1 || PyArray_DIM(a, 0) != (npy_intp)h->q.ctx->batch) {
      PyErr_Format(PyExc_ValueError, "answer: expected the shape of the request's x (%zu "
                   "states of %zu values), got %zd values with %zd along axis 0",
                   h->q.ctx->batch, h->q.ctx->tau * h->q.ctx->D, (Py_ssize_t)PyArray_SIZE(a),
                   PyArray_NDIM(a) ? (Py_ssize_t)PyArray_DIM(a, 0) : (Py_ssize_t)0);
      Py_DECREF(a);
      return NULL;
    }
    memcpy(h->q.out, PyArray_DATA(a), want * sizeof(double));
    Py_DECREF(a);
  } else if (status == 0) {
    return PyErr_Format(PyExc_ValueError, "answer: None needs a status != 0 (a failed "
                                          "evaluation)");
  }
  csde_err err;
  int st = csde_run_give(h->run, status, &err);
  if (st) return raise_err(st, &err);
  h->owed = 0;
  Py_RETURN_NONE;
}

static PyObject *py_rci_end(PyObject *self, PyObject *cap)
{
  (void)self;
  pyrci *h = rci_of(cap);
  if (!h) return NULL;
  csde_err err;
  csde_err_clear(&err);
  csde_solve_stats stats;
  int st;
  Py_BEGIN_ALLOW_THREADS
  st = csde_run_end(h->run, &stats, &err);
  Py_END_ALLOW_THREADS
  h->begun = 0;
  if (st) return raise_err(st, &err);
  return Py_BuildValue("nnnndi", (Py_ssize_t)stats.nfe, (Py_ssize_t)stats.steps,
                       (Py_ssize_t)stats.accepted, (Py_ssize_t)stats.rejected,
                       stats.wall_seconds, stats.stopped);
}

/* ---- the PF-ODE log-likelihood (corrsde/likelihood.h) ---- */

/* The model's Jacobian-vector product from the Python callable jvp(t, x, v, ctx) -> J v
 * (of its answer in its declared kind; the library converts), called as the model is:
 * on the calling thread with the GIL taken back, x and v read-only views. */
typedef struct {
  pyrun r;           /* first: the model's callback (py_model_fn) reads it as its user */
  PyObject *fn;      /* borrowed */
  csde_py_views vv;  /* the views of v (the probes, the unit vectors) */
} pyjvp;

static int py_jvp_fn(const csde_model_ctx *c, const double *x, const double *v, double *jv,
                     void *user)
{
  pyjvp *j = user;
  pyrun *r = &j->r;
  r->step = c->step;
  if (!pthread_equal(pthread_self(), r->owner)) {
    snprintf(r->msg, sizeof r->msg, "the Python JVP was called from another thread");
    return -2;
  }
  PyEval_RestoreThread(r->ts);
  int rc = 0;
  if (csde_py_views_batch(&r->v, c->batch, c->tau * c->D)) { /* ctx.batch follows */
    PyObject *b = PyLong_FromSize_t(c->batch);
    if (!b || PyObject_SetAttrString(r->ctx, "batch", b)) PyErr_Clear();
    Py_XDECREF(b);
  }
  csde_py_views_batch(&j->vv, c->batch, c->tau * c->D);
  int cbad = r->exc || csde_py_cond_set(&r->cc, r->ctx, c, c->cond ? r->cond : NULL, NULL);
  PyObject *xv = cbad ? NULL : csde_py_view(&r->v, x);
  PyObject *vv = xv ? csde_py_view(&j->vv, v) : NULL;
  PyObject *tt = PyFloat_FromDouble(c->t), *st = PyLong_FromSize_t(c->step), *ans = NULL;
  if (vv && tt && st && PyObject_SetAttr(r->ctx, r->t_name, tt) == 0 &&
      PyObject_SetAttr(r->ctx, r->step_name, st) == 0 && PyErr_CheckSignals() == 0)
    ans = PyObject_CallFunctionObjArgs(j->fn, tt, xv, vv, r->ctx, NULL);
  if (!ans || csde_py_answer(&r->v, ans, jv)) {
    if (!r->exc) {
      PyErr_Fetch(&r->exc_type, &r->exc, &r->exc_tb);
      PyErr_NormalizeException(&r->exc_type, &r->exc, &r->exc_tb);
      if (r->exc && r->exc_tb) PyException_SetTraceback(r->exc, r->exc_tb);
      r->exc_who = "the model's jvp";
      r->exc_t = c->t;
    }
    PyErr_Clear();
    if (c->errmsg && c->errlen) snprintf(c->errmsg, c->errlen, "the Python JVP raised");
    rc = -1;
  }
  Py_XDECREF(ans);
  Py_XDECREF(tt);
  Py_XDECREF(st);
  if ((xv && csde_py_done(&r->v, x) < 0) || (vv && csde_py_done(&j->vv, v) < 0)) {
    if (!r->exc) keep_exc(r, c->t, "the model's jvp");
    PyErr_Clear();
    rc = -1;
  }
  r->ts = PyEval_SaveThread();
  return rc;
}

/* The Python keyword behind a setting the likelihood blames (csde_err.param). */
static const char *ll_arg(const char *param)
{
  static const char *const map[][2] = {
      {CSDE_PARAM_DIVERGENCE, "divergence"}, {CSDE_PARAM_DEQUANT, "dequant"},
      {CSDE_PARAM_DATA, "x"},                {CSDE_PARAM_SPAN, "eps/t_end"},
      {CSDE_PARAM_TOLERANCES, "rtol/atol"},  {CSDE_PARAM_COND, "cond"}};
  for (size_t i = 0; param && i < sizeof map / sizeof map[0]; i++)
    if (!strcmp(param, map[i][0])) return map[i][1];
  return param_arg(param);
}

/* A library error as ValueError "keyword: message" where the setting at fault is known
 * (a NaN in x included), else as raise_err does. */
static PyObject *ll_raise(int st, csde_err *err, const char *arg)
{
  if (!arg) arg = ll_arg(err->param);
  int bad_input = st == CSDE_EINVAL || st == CSDE_ESPEC || st == CSDE_EDOM ||
                  st == CSDE_ENOTSUP || (st == CSDE_ENAN && err->param &&
                                         !strcmp(err->param, CSDE_PARAM_DATA));
  if (!arg || !bad_input) return raise_err(st, err);
  char m[CSDE_MSG_MAX + 32];
  snprintf(m, sizeof m, "%s: %s", arg, err->msg);
  memcpy(err->msg, m, sizeof err->msg - 1);
  err->msg[sizeof err->msg - 1] = '\0';
  return raise_err(st == CSDE_ENAN ? CSDE_EDOM : st, err);
}

/* likelihood(model, ctx, x, cov, sched, kind, settings, cond, jvp) -> (logp, prior, delta,
 * se, lo, hi, bpd, x_T, nfe, jvp_calls, steps, rejected, wall, divergence, jvp taken).
 * model: a built-in spec str (csde_model_spec_alloc) or a callable model(t, x, ctx) of
 * output kind `kind`; jvp: None or a callable jvp(t, x, v, ctx) -> J v (registered with
 * csde_model_set_jvp); cond: None or (cond, the ctx.cond maker). One library call over the
 * whole batch x (the Python layer cuts batches). settings: divergence, jvp_spec (str),
 * probes, probe, solver, rtol, atol, steps, grid, max_nfe, eps, t_end, seed,
 * first_sample, conf, threads, dequant. */
static PyObject *py_likelihood(PyObject *self, PyObject *args)
{
  (void)self;
  PyObject *model, *ctx, *covcap, *schedcap, *sd, *cnd, *jfn;
  PyArrayObject *x;
  int kind;
  if (!PyArg_ParseTuple(args, "OOO!OOiO!OO", &model, &ctx, &PyArray_Type, &x, &covcap,
                        &schedcap, &kind, &PyDict_Type, &sd, &cnd, &jfn))
    return NULL;
  cov_handle *ch = cov_of(covcap);
  const csde_schedule *sched = sched_of(schedcap);
  if (!ch || !sched) return NULL;
  size_t B, D;
  if (blocks_of(x, csde_cov_tau(ch->C), "x", &B, &D)) return NULL;
  const char *spec = NULL, *div = NULL, *jsp = NULL, *probe = NULL, *deq = NULL;
  if (PyUnicode_Check(model) && !(spec = csde_py_str(model, "model"))) return NULL;
  csde_ll_params par = csde_ll_default_params();
  unsigned long long steps, seed, first, threads, max_nfe, probes;
  double T = csde_problem_t_max(sched), eps = csde_problem_default().eps;
  if (dict_str(sd, "divergence", &div) || dict_str(sd, "jvp_spec", &jsp) ||
      dict_str(sd, "probe", &probe) || dict_str(sd, "solver", &par.solver) ||
      dict_str(sd, "grid", &par.grid) || dict_str(sd, "dequant", &deq) ||
      dict_uint(sd, "steps", 0, 0, SIZE_MAX, &steps) ||
      dict_uint(sd, "probes", 0, 1, SIZE_MAX, &probes) ||
      dict_uint(sd, "seed", 0, 0, UINT64_MAX, &seed) ||
      dict_uint(sd, "first_sample", 0, 0, SIZE_MAX, &first) ||
      dict_uint(sd, "threads", 1, 1, INT_MAX, &threads) ||
      dict_uint(sd, "max_nfe", par.max_nfe, 1, SIZE_MAX, &max_nfe) ||
      dict_real(sd, "rtol", par.rtol, &par.rtol) || dict_real(sd, "atol", par.atol, &par.atol) ||
      dict_real(sd, "eps", eps, &eps) || dict_real(sd, "t_end", T, &T) ||
      dict_real(sd, "conf", par.conf, &par.conf))
    return NULL;
  par.steps = (size_t)steps, par.seed = (uint64_t)seed, par.first_sample = (size_t)first;
  par.threads = (int)threads, par.max_nfe = (size_t)max_nfe;
  csde_err err;
  csde_err_clear(&err);
  int st;
  if ((st = csde_div_parse(div, &par, &err))) return ll_raise(st, &err, "divergence");
  if (probes) {
    if (par.div != CSDE_DIV_AUTO && par.div != CSDE_DIV_HUTCHINSON)
      return PyErr_Format(PyExc_ValueError, "probes: apply to divergence 'hutchinson' (or "
                          "'auto'), not '%s'", csde_div_kind_name(par.div));
    par.probes = (size_t)probes;
  }
  if (probe) {
    if (par.div != CSDE_DIV_AUTO && par.div != CSDE_DIV_HUTCHINSON)
      return PyErr_Format(PyExc_ValueError, "probe: applies to divergence 'hutchinson' (or "
                          "'auto'), not '%s'", csde_div_kind_name(par.div));
    if (strcmp(probe, "rademacher") && strcmp(probe, "gaussian"))
      return PyErr_Format(PyExc_ValueError, "probe: expected 'rademacher' or 'gaussian', "
                          "got '%s'", probe);
    par.probe = strcmp(probe, "gaussian") ? CSDE_PROBE_RADEMACHER : CSDE_PROBE_GAUSSIAN;
  }
  if ((st = csde_jvp_parse(jsp, &par, &err))) return ll_raise(st, &err, "jvp");
  if (deq && (st = csde_dequant_parse(deq, &par.dequant, &err)))
    return ll_raise(st, &err, "dequant");
  if (!(par.conf > 0 && par.conf < 1))
    return PyErr_Format(PyExc_ValueError, "conf: expected 0 < conf < 1, got %R",
                        PyDict_GetItemString(sd, "conf"));

  pyjvp j;
  memset(&j, 0, sizeof j);
  pyrun_init(&j.r, spec ? NULL : model, ctx, PyArray_NDIM(x), PyArray_DIMS(x));
  pyrun *r = &j.r;
  j.fn = jfn == Py_None ? NULL : jfn;
  j.vv = r->v;
  PyObject *res = NULL, *o[8] = {NULL};
  PyArrayObject *y = NULL; /* the dequantized data */
  csde_model *M = NULL;
  csde_ll_sample *out = NULL;
  if (cnd != Py_None && !PyArg_ParseTuple(cnd, "OO", &r->cond, &r->cc.call)) goto done;
  Py_XINCREF(r->cc.call);
  if (spec) {
    char *canon = NULL;
    st = csde_model_spec_alloc(&M, spec, ch->C, sched, D, &canon, &err);
    free(canon);
    if (st) {
      ll_raise(st, &err, "model");
      goto done;
    }
    if (j.fn) {
      PyErr_SetString(PyExc_ValueError, "jvp: a built-in model's Jacobian is the library's "
                      "own: give no jvp callable");
      goto done;
    }
  } else if ((st = csde_model_alloc_ctx(&M, "python", py_model_fn, (csde_model_output)kind,
                                        &j, NULL, &err)) ||
             (j.fn && (st = csde_model_set_jvp(M, py_jvp_fn, &err)))) {
    raise_err(st, &err);
    goto done;
  }
  if (par.jvp == CSDE_JVP_MODEL && !csde_model_has_jvp(M) && par.div != CSDE_DIV_EXACT) {
    PyErr_Format(PyExc_ValueError, "jvp: 'model', but the model (%s) has no Jacobian-vector "
                 "product (give jvp='fd' or 'auto'%s)", spec ? spec : "a Python callable",
                 spec ? "" : ", a jvp callable, or a TorchModel");
    goto done;
  }
  csde_problem P = csde_problem_default();
  P.tau = csde_cov_tau(ch->C), P.D = D, P.batch = B;
  P.C = ch->C, P.sched = sched, P.model = M, P.T = T, P.eps = eps;
  P.cond = r->cond;
  npy_intp nb = (npy_intp)B;
  for (int i = 0; i < 7; i++)
    if (!(o[i] = PyArray_SimpleNew(1, &nb, NPY_DOUBLE))) goto done;
  if (!(o[7] = PyArray_SimpleNew(PyArray_NDIM(x), PyArray_DIMS(x), NPY_DOUBLE))) goto done;
  if (!(out = PyMem_Calloc(B ? B : 1, sizeof *out))) {
    PyErr_NoMemory();
    goto done;
  }
  csde_ll_stats stats;
  memset(&stats, 0, sizeof stats);
  const double *xd = PyArray_DATA(x);
  if (par.dequant.bits && B) { /* integer data: y = scale (k + u) + shift, as elbo's */
    if (!(y = (PyArrayObject *)PyArray_SimpleNew(PyArray_NDIM(x), PyArray_DIMS(x),
                                                 NPY_DOUBLE)))
      goto done;
    const csde_rng_key key = {par.seed, CSDE_STREAM_DEQUANT};
    if ((st = csde_dequantize(&par.dequant, key, par.first_sample, B, P.tau * D, xd,
                              PyArray_DATA(y), &err))) {
      ll_raise(st, &err, "x");
      goto done;
    }
    xd = PyArray_DATA(y);
  }
  r->ts = PyEval_SaveThread();
  st = B ? csde_likelihood(&P, &par, xd, PyArray_DATA((PyArrayObject *)o[7]), out, &stats,
                           &err)
         : 0;
  PyEval_RestoreThread(r->ts);
  if (raise_model_error(r)) goto done;
  if (st) {
    ll_raise(st, &err, NULL);
    goto done;
  }
  for (size_t b = 0; b < B; b++) {
    const double v[7] = {out[b].logp, out[b].prior, out[b].delta, out[b].se,
                         out[b].lo,   out[b].hi,    out[b].bpd};
    for (int i = 0; i < 7; i++) ((double *)PyArray_DATA((PyArrayObject *)o[i]))[b] = v[i];
  }
  res = Py_BuildValue("NNNNNNNNnnnndss", o[0], o[1], o[2], o[3], o[4], o[5], o[6], o[7],
                      (Py_ssize_t)stats.nfe, (Py_ssize_t)stats.jvp, (Py_ssize_t)stats.steps,
                      (Py_ssize_t)stats.rejected, stats.wall_seconds,
                      B ? csde_div_kind_name(stats.div) : "none",
                      !B || stats.jvp_kind == CSDE_JVP_AUTO ? "none"
                      : stats.jvp_kind == CSDE_JVP_MODEL    ? "model" : "fd");
  memset(o, 0, sizeof o);
done:
  for (int i = 0; i < 8; i++) Py_XDECREF(o[i]);
  Py_XDECREF(y);
  PyMem_Free(out);
  csde_model_free(M);
  Py_XDECREF(r->exc_type);
  Py_XDECREF(r->exc);
  Py_XDECREF(r->exc_tb);
  csde_py_views_clear(&j.vv);
  pyrun_clear(r);
  return res;
}

/* ---- handles lent by a run (the C API of embed.c, adapter.h's csde_py_capi) ---- */

static PyObject *lend_cov(const csde_cov *C)
{
  cov_handle *h = PyMem_Calloc(1, sizeof *h);
  if (!h) return PyErr_NoMemory();
  h->C = (csde_cov *)C; /* const: the handle only reads it, and never frees it */
  h->lent = 1;
  PyObject *cap = PyCapsule_New(h, "corrsde.cov", cov_capsule_free);
  if (!cap) PyMem_Free(h);
  return cap;
}

static PyObject *lend_schedule(const csde_schedule *s)
{
  return sched_capsule((csde_schedule *)s, 1);
}

/* The loan ends (the run frees its objects after this): the handle lets go of them, and
 * later uses raise ValueError. */
static void end_loan(PyObject *cap)
{
  if (PyCapsule_IsValid(cap, "corrsde.cov")) {
    cov_handle *h = PyCapsule_GetPointer(cap, "corrsde.cov");
    if (!h->lent) return;
    csde_cov_ws_free(h->ws);
    h->ws = NULL;
    h->C = NULL;
  } else if (PyCapsule_IsValid(cap, "corrsde.schedule")) {
    sched_handle *h = PyCapsule_GetPointer(cap, "corrsde.schedule");
    if (h->lent) h->s = NULL;
  }
}

static const csde_py_capi capi = {CSDE_PY_CAPI_VERSION, lend_cov, lend_schedule, end_loan};

static PyMethodDef methods[] = {
    {"registry", py_registry, METH_VARARGS, "registry(kind) -> (name, ...): cov, cov-method, process, schedule"},
    {"solvers", py_solvers, METH_NOARGS, "solvers() -> [(name, alias, summary, processes, options)]"},
    {"cov_new", py_cov_new, METH_VARARGS, "cov_new(spec, tau, method) -> handle"},
    {"cov_info", py_cov_info, METH_O, "cov_info(h) -> (spec, method, noise_dim, singular)"},
    {"cov_logdet", py_cov_logdet, METH_O, "log det C"},
    {"cov_matrix", py_cov_matrix, METH_O, "the tau x tau matrix"},
    {"cov_eigenvalues", py_cov_eigenvalues, METH_O, "eigenvalues, ascending"},
    {"cov_apply", py_cov_apply, METH_VARARGS, "cov_apply(h, op, x): op 0 C x, 1 V' z, 2 C^-1 x"},
    {"cov_mahalanobis", py_cov_mahalanobis, METH_VARARGS, "per block sum of x^T C^-1 x"},
    {"cov_sample", py_cov_sample, METH_VARARGS, "cov_sample(h, shape, seed): the prior draw"},
    {"sched_new", py_sched_new, METH_VARARGS, "sched_new(spec) -> handle"},
    {"sched_info", py_sched_info, METH_O, "sched_info(h) -> (spec, nsteps)"},
    {"sched_eval", py_sched_eval, METH_VARARGS, "sched_eval(h, what, t)"},
    {"sched_path", py_sched_path, METH_O, "sched_path(h) -> (path, t_min, t_max, prior_scale)"},
    {"model_new", py_model_new, METH_VARARGS, "model_new(spec, cov, sched, D) -> (h, spec, kind)"},
    {"model_call", py_model_call, METH_VARARGS, "model_call(h, t, x) -> the model's answer"},
    {"solve", py_solve, METH_VARARGS, "solve(...): see python/corrsde/__init__.py"},
    {"converge", py_converge, METH_VARARGS, "converge(...): see python/corrsde/__init__.py"},
    {"elbo", py_elbo, METH_VARARGS, "elbo(...): see python/corrsde/__init__.py"},
    {"rci_new", py_rci_new, METH_VARARGS, "rci_new(x, cov, sched, kind, settings) -> handle"},
    {"rci_next", py_rci_next, METH_O, "rci_next(h) -> (what, step, t, x, batch, abar, sigma)"},
    {"rci_give", py_rci_give, METH_VARARGS, "rci_give(h, answer, status)"},
    {"rci_end", py_rci_end, METH_O, "rci_end(h) -> (nfe, steps, accepted, rejected, wall, stopped)"},
    {"likelihood", py_likelihood, METH_VARARGS, "likelihood(...): see python/corrsde/__init__.py"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_corrsde",
                                    "The C core of the corrsde package.", -1, methods,
                                    NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__corrsde(void)
{
  import_array();
  if (csde_py_adapter_ready() < 0) return NULL;
  PyObject *m = PyModule_Create(&module);
  if (!m) return NULL;
  CsdeError = PyErr_NewExceptionWithDoc("corrsde.Error",
                                        "A corrsde library failure (attributes status, param).",
                                        PyExc_RuntimeError, NULL);
  PyObject *api = PyCapsule_New((void *)&capi, CSDE_PY_CAPI, NULL);
  if (!api || PyModule_AddObject(m, "_C_API", api) < 0) {
    Py_XDECREF(api);
    Py_DECREF(m);
    return NULL;
  }
  if (!CsdeError || PyModule_AddObjectRef(m, "Error", CsdeError) < 0 ||
      PyModule_AddStringConstant(m, "version", csde_version()) < 0) {
    Py_DECREF(m);
    return NULL;
  }
  return m;
}
