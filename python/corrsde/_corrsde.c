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

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "corrsde/corrsde.h"
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

/* ---- covariance handles ---- */

typedef struct {
  csde_cov *C;
  csde_cov_ws *ws; /* for the last D used (rebuilt when D changes) */
  size_t ws_D;
} cov_handle;

static void cov_capsule_free(PyObject *cap)
{
  cov_handle *h = PyCapsule_GetPointer(cap, "corrsde.cov");
  if (!h) return;
  csde_cov_ws_free(h->ws);
  csde_cov_free(h->C);
  PyMem_Free(h);
}

static cov_handle *cov_of(PyObject *cap)
{
  return PyCapsule_GetPointer(cap, "corrsde.cov");
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
  const char *spec, *method;
  Py_ssize_t tau;
  if (!PyArg_ParseTuple(args, "sns", &spec, &tau, &method)) return NULL;
  if (tau < 1) return PyErr_Format(PyExc_ValueError, "frames: expected a positive integer, got %zd", tau);
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

/* cov_info(cap) -> (spec, method, noise_dim, singular) */
static PyObject *py_cov_info(PyObject *self, PyObject *cap)
{
  (void)self;
  cov_handle *h = cov_of(cap);
  if (!h) return NULL;
  return Py_BuildValue("ssni", csde_cov_spec(h->C), csde_cov_method_name(csde_cov_method_of(h->C)),
                       (Py_ssize_t)csde_cov_noise_dim(h->C), csde_cov_is_singular(h->C));
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
  if (s) {
    Py_DECREF(a);
    return raise_err(s, &err);
  }
  return a;
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
  if (s) {
    Py_DECREF(y);
    return raise_err(s, &err);
  }
  return y;
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
  if (s) {
    Py_DECREF(q);
    return raise_err(s, &err);
  }
  return q;
}

/* cov_sample(cap, shape tuple [B, tau, *frame], seed) -> x: the CLI's prior draw */
static PyObject *py_cov_sample(PyObject *self, PyObject *args)
{
  (void)self;
  PyObject *cap, *shape;
  unsigned long long seed;
  if (!PyArg_ParseTuple(args, "OO!K", &cap, &PyTuple_Type, &shape, &seed)) return NULL;
  cov_handle *h = cov_of(cap);
  if (!h) return NULL;
  int nd = (int)PyTuple_GET_SIZE(shape);
  npy_intp d[MAXDIM];
  if (nd < 2 || nd > MAXDIM) return PyErr_Format(PyExc_ValueError, "sample: bad shape");
  size_t D = 1;
  for (int i = 0; i < nd; i++) {
    d[i] = PyLong_AsSsize_t(PyTuple_GET_ITEM(shape, i));
    if (d[i] < 0) return PyErr_Occurred() ? NULL : PyErr_Format(PyExc_ValueError, "sample: bad shape");
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
  if (s) {
    Py_DECREF(x);
    return raise_err(s, &err);
  }
  return x;
}

/* ---- schedules ---- */

static void sched_capsule_free(PyObject *cap)
{
  csde_schedule_free(PyCapsule_GetPointer(cap, "corrsde.schedule"));
}

static const csde_schedule *sched_of(PyObject *cap)
{
  return PyCapsule_GetPointer(cap, "corrsde.schedule");
}

static PyObject *py_sched_new(PyObject *self, PyObject *args)
{
  (void)self;
  const char *spec;
  if (!PyArg_ParseTuple(args, "s", &spec)) return NULL;
  csde_schedule *s = NULL;
  csde_err err;
  int st = csde_schedule_alloc(&s, spec, &err);
  if (st) return raise_err(st, &err);
  PyObject *cap = PyCapsule_New(s, "corrsde.schedule", sched_capsule_free);
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

/* sched_eval(cap, what, t array) -> array: what 0 beta, 1 abar, 2 sigma, 3 logsnr,
 * 4 int_beta, 5 beta_step(i), 6 abar_step(i) */
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
    case 5: yv[i] = v >= 0 ? csde_schedule_beta_step(s, (size_t)v) : NAN; break;
    default: yv[i] = v >= 0 ? csde_schedule_abar_step(s, (size_t)v) : NAN; break;
    }
  }
  return y;
}

/* ---- solve with a Python model ---- */

enum { SAVE_FINAL = 0, SAVE_EVERY, SAVE_TIMES };

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
  /* what to save */
  int kind;
  size_t every, final_step;
  double t_end;
  const unsigned char *mask; /* fixed grid, times: the nodes to save */
  size_t nmask;
  const double *times;       /* adaptive, times: sorted along the direction */
  size_t ntimes, next;
  int dir;
  double *saved;       /* nsaved states */
  double *saved_t;
  int64_t *saved_step;
  size_t nsaved, cap;
  int oom;
} pyrun;

static int py_model_fn(const csde_model_ctx *c, const double *x, double *out, void *user)
{
  pyrun *r = user;
  double t = c->t;
  r->step = c->step;
  if (!pthread_equal(pthread_self(), r->owner)) {
    snprintf(r->msg, sizeof r->msg, "the Python model was called from another thread");
    return -2;
  }
  PyEval_RestoreThread(r->ts);
  int rc = 0;
  PyObject *v = csde_py_view(&r->v, x), *tt = PyFloat_FromDouble(t), *st = PyLong_FromSize_t(r->step);
  PyObject *ans = NULL;
  if (v && tt && st && PyObject_SetAttr(r->ctx, r->t_name, tt) == 0 &&
      PyObject_SetAttr(r->ctx, r->step_name, st) == 0 && PyErr_CheckSignals() == 0)
    ans = PyObject_CallFunctionObjArgs(r->model, tt, v, r->ctx, NULL);
  if (!ans || csde_py_answer(&r->v, ans, out)) {
    PyErr_Fetch(&r->exc_type, &r->exc, &r->exc_tb);
    PyErr_NormalizeException(&r->exc_type, &r->exc, &r->exc_tb);
    if (r->exc && r->exc_tb) PyException_SetTraceback(r->exc, r->exc_tb);
    r->exc_t = t;
    rc = -1;
  }
  Py_XDECREF(ans);
  Py_XDECREF(tt);
  Py_XDECREF(st);
  r->ts = PyEval_SaveThread();
  return rc;
}

static int want_save(pyrun *r, size_t step, double t)
{
  if (r->final_step ? step == r->final_step : t == r->t_end) return 1;
  switch (r->kind) {
  case SAVE_EVERY:
    return step % r->every == 0;
  case SAVE_TIMES:
    if (r->mask) return step < r->nmask && r->mask[step];
    {
      int hit = 0; /* adaptive: the first state at or past each requested time */
      double tol = 1e-12 * fmax(1.0, fabs(t));
      while (r->next < r->ntimes && r->dir * (t - r->times[r->next]) >= -tol) {
        hit = 1;
        r->next++;
      }
      return hit;
    }
  default:
    return 0;
  }
}

/* Room for c saved states (the buffers only grow). */
static int reserve(pyrun *r, size_t c)
{
  if (c <= r->cap) return 0;
  double *s = realloc(r->saved, c * r->v.n * sizeof *s), *tt;
  if (s) r->saved = s;
  tt = s ? realloc(r->saved_t, c * sizeof *tt) : NULL;
  if (tt) r->saved_t = tt;
  int64_t *st = tt ? realloc(r->saved_step, c * sizeof *st) : NULL;
  if (!st) {
    r->oom = 1;
    return 1;
  }
  r->saved_step = st;
  r->cap = c;
  return 0;
}

/* Keep a copy of state x. A fixed grid reserved its count before the solve: no
 * allocation then; an adaptive one doubles the buffers when full. */
static int keep(pyrun *r, size_t step, double t, const double *x)
{
  if (r->nsaved && r->saved_step[r->nsaved - 1] == (int64_t)step) return 0;
  if (r->nsaved == r->cap && reserve(r, r->cap ? 2 * r->cap : 16)) return 1;
  memcpy(r->saved + r->nsaved * r->v.n, x, r->v.n * sizeof *x);
  r->saved_t[r->nsaved] = t;
  r->saved_step[r->nsaved++] = (int64_t)step;
  return 0;
}

static int observe(size_t step, double t, const double *x, void *user)
{
  pyrun *r = user;
  return want_save(r, step, t) ? keep(r, step, t, x) : 0;
}

static void pyrun_clear(pyrun *r)
{
  csde_py_views_clear(&r->v);
  Py_XDECREF(r->t_name);
  Py_XDECREF(r->step_name);
  free(r->saved);
  free(r->saved_t);
  free(r->saved_step);
}

/* solve(model, ctx, x, cov, sched, process, solver, steps, grid, rtol, atol, T, eps,
 *       seed, noise, threads, save_kind, save_every, save_times, eta, max_nfe, kind)
 * x is solved in place. Returns (nfe, steps, accepted, rejected, wall_seconds,
 * stopped, t [n], step [n], states [n, *x.shape]). process: forward-sde, reverse-sde,
 * pf-ode, pf-ode-encode, ddpm, ddim. kind: the model output (csde_model_output). */
static PyObject *py_solve(PyObject *self, PyObject *args)
{
  (void)self;
  PyObject *model, *ctx, *covcap, *schedcap, *times_obj;
  PyArrayObject *x;
  const char *process, *solver, *grid, *noise;
  Py_ssize_t steps, threads, save_every, max_nfe;
  double rtol, atol, T, eps, eta;
  unsigned long long seed;
  int save_kind, kind;
  if (!PyArg_ParseTuple(args, "OOO!OOssnsddddKsninOdni", &model, &ctx, &PyArray_Type, &x,
                        &covcap, &schedcap, &process, &solver, &steps, &grid, &rtol, &atol,
                        &T, &eps, &seed, &noise, &threads, &save_kind, &save_every,
                        &times_obj, &eta, &max_nfe, &kind))
    return NULL;
  cov_handle *ch = cov_of(covcap);
  const csde_schedule *sched = sched_of(schedcap);
  if (!ch || !sched) return NULL;
  size_t B, D;
  if (blocks_of(x, csde_cov_tau(ch->C), "x", &B, &D)) return NULL;
  if (!PyArray_ISWRITEABLE(x)) return PyErr_Format(PyExc_ValueError, "x: not writeable");

  pyrun r;
  memset(&r, 0, sizeof r);
  r.model = model;
  r.ctx = ctx;
  r.owner = pthread_self();
  r.v.nd = PyArray_NDIM(x);
  memcpy(r.v.dims, PyArray_DIMS(x), (size_t)r.v.nd * sizeof *r.v.dims);
  r.v.n = (size_t)PyArray_SIZE(x);
  r.t_name = PyUnicode_InternFromString("t");
  r.step_name = PyUnicode_InternFromString("step");
  r.kind = save_kind;
  r.every = save_every > 0 ? (size_t)save_every : 1;
  PyArrayObject *times = NULL;
  if (times_obj != Py_None) {
    times = (PyArrayObject *)PyArray_FROMANY(times_obj, NPY_DOUBLE, 1, 1, NPY_ARRAY_CARRAY);
    if (!times) goto fail_py;
  }

  csde_err err;
  csde_err_clear(&err);
  csde_model *M = NULL;
  int s = csde_model_alloc_ctx(&M, "python", py_model_fn, (csde_model_output)kind, &r, NULL,
                               &err);
  if (s) {
    raise_err(s, &err);
    goto fail_py;
  }
  csde_problem P = csde_problem_default();
  int ddpm = !strcmp(process, "ddpm"), ddim = !strcmp(process, "ddim");
  P.process = CSDE_PROC_REVERSE_SDE;
  if (!ddpm && !ddim && (s = csde_process_parse(process, &P.process, &err))) {
    raise_err(s, &err);
    goto fail_model;
  }
  P.T = T;
  P.eps = eps;
  P.tau = csde_cov_tau(ch->C);
  P.D = D;
  P.batch = B;
  P.C = ch->C;
  P.sched = sched;
  P.model = M;
  csde_solve_params par = csde_solve_default_params();
  par.solver = solver;
  par.steps = (size_t)steps;
  par.grid = grid;
  par.rtol = rtol;
  par.atol = atol;
  par.seed = seed;
  if (!strcmp(noise, "path")) par.noise = CSDE_NOISE_PATH;
  par.threads = (int)threads;
  if (max_nfe > 0) par.max_nfe = (size_t)max_nfe;
  par.observer = observe;
  par.observer_user = &r;

  double t0 = T, t1 = eps;
  if (!ddpm) csde_problem_span(&P, &t0, &t1);
  r.t_end = ddpm ? 0 : t1;
  r.dir = t1 > t0 ? 1 : -1;
  csde_solver *S = NULL;
  unsigned char *mask = NULL;
  int adaptive = !ddpm && !ddim && steps == 0;
  if (save_kind == SAVE_TIMES && times && adaptive) {
    r.times = PyArray_DATA(times);
    r.ntimes = (size_t)PyArray_SIZE(times);
    par.out_times = r.times;
    par.n_out_times = r.ntimes;
  }
  if (!ddpm && !ddim) {
    s = csde_solver_alloc(&S, &P, &par, &err);
    if (s) {
      raise_err(s, &err);
      goto fail_model;
    }
    size_t N = 0;
    const double *g = csde_solver_grid(S, &N);
    if (g) r.final_step = N;
    if (g && save_kind == SAVE_TIMES && times) { /* the nearest grid node of each time */
      mask = calloc(N + 1, 1);
      if (!mask) {
        PyErr_NoMemory();
        goto fail_solver;
      }
      const double *tv = PyArray_DATA(times);
      for (npy_intp i = 0; i < PyArray_SIZE(times); i++) {
        size_t best = 0;
        for (size_t k = 1; k <= N; k++)
          if (fabs(g[k] - tv[i]) < fabs(g[best] - tv[i])) best = k;
        mask[best] = 1;
      }
      r.mask = mask;
      r.nmask = N + 1;
    }
  } else {
    r.final_step = ddpm ? csde_schedule_nsteps(sched) : (size_t)steps;
  }
  double *xv = PyArray_DATA(x);
  /* a fixed grid's saved states, counted now (the start, the marks or every K-th, the
   * end): reserved before the solve so that saving allocates nothing */
  if (r.final_step) {
    size_t want = 2;
    if (save_kind == SAVE_EVERY) want += r.final_step / r.every;
    for (size_t k = 0; r.mask && k < r.nmask; k++) want += r.mask[k];
    if (reserve(&r, want)) {
      PyErr_NoMemory();
      goto fail_mask;
    }
  }
  /* the start state, as corrsde sample saves it */
  double start_t = ddpm ? 1.0 : t0;
  if (save_kind == SAVE_EVERY || (r.mask && r.mask[0])) keep(&r, 0, start_t, xv);
  else if (r.times && r.ntimes && fabs(r.times[0] - t0) <= 1e-12 * fmax(1.0, fabs(t0))) {
    keep(&r, 0, start_t, xv);
    r.next = 1;
  }

  csde_solve_stats st;
  memset(&st, 0, sizeof st);
  r.ts = PyEval_SaveThread();
  if (ddpm) s = csde_sample_ddpm(&P, &par, xv, &st, &err);
  else if (ddim) s = csde_sample_ddim(&P, &par, eta, xv, &st, &err);
  else s = csde_solver_run(S, xv, &st, &err);
  PyEval_RestoreThread(r.ts);
  if (!s && !st.stopped && !r.oom) keep(&r, st.steps, ddpm ? 0.0 : t1, xv);

  PyObject *res = NULL;
  if (r.exc) { /* the model's own exception, with a note naming t and the step */
    char note[128];
    snprintf(note, sizeof note, "corrsde: raised by the model at t = %.17g (step %zu)",
             r.exc_t, r.step);
    PyObject *rv = PyObject_CallMethod(r.exc, "add_note", "s", note);
    Py_XDECREF(rv);
    PyErr_Clear();
    PyErr_Restore(r.exc_type, r.exc, r.exc_tb);
    r.exc_type = r.exc = r.exc_tb = NULL;
  } else if (r.msg[0]) {
    PyErr_SetString(PyExc_RuntimeError, r.msg);
  } else if (r.oom) {
    PyErr_NoMemory();
  } else if (s) {
    raise_err(s, &err);
  } else {
    npy_intp dn = (npy_intp)r.nsaved, sd[MAXDIM + 1];
    sd[0] = dn;
    memcpy(sd + 1, r.v.dims, (size_t)r.v.nd * sizeof *sd);
    PyObject *ta = PyArray_SimpleNew(1, &dn, NPY_DOUBLE);
    PyObject *sa = PyArray_SimpleNew(1, &dn, NPY_INT64);
    PyObject *xa = PyArray_SimpleNew(r.v.nd + 1, sd, NPY_DOUBLE);
    if (ta && sa && xa) {
      if (dn) {
        memcpy(PyArray_DATA((PyArrayObject *)ta), r.saved_t, r.nsaved * sizeof(double));
        memcpy(PyArray_DATA((PyArrayObject *)sa), r.saved_step, r.nsaved * sizeof(int64_t));
        memcpy(PyArray_DATA((PyArrayObject *)xa), r.saved, r.nsaved * r.v.n * sizeof(double));
      }
      res = Py_BuildValue("nnnndiNNN", (Py_ssize_t)st.nfe, (Py_ssize_t)st.steps,
                          (Py_ssize_t)st.accepted, (Py_ssize_t)st.rejected, st.wall_seconds,
                          st.stopped, ta, sa, xa);
      ta = sa = xa = NULL;
    }
    Py_XDECREF(ta);
    Py_XDECREF(sa);
    Py_XDECREF(xa);
  }
  free(mask);
  csde_solver_free(S);
  csde_model_free(M);
  Py_XDECREF(times);
  pyrun_clear(&r);
  return res;

fail_mask:
  free(mask);
fail_solver:
  csde_solver_free(S);
fail_model:
  csde_model_free(M);
fail_py:
  Py_XDECREF(times);
  pyrun_clear(&r);
  return NULL;
}

static PyMethodDef methods[] = {
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
    {"solve", py_solve, METH_VARARGS, "solve(...): see python/corrsde/__init__.py"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_corrsde",
                                    "The C core of the corrsde package.", -1, methods,
                                    NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__corrsde(void)
{
  import_array();
  PyObject *m = PyModule_Create(&module);
  if (!m) return NULL;
  CsdeError = PyErr_NewExceptionWithDoc("corrsde.Error",
                                        "A corrsde library failure (attributes status, param).",
                                        PyExc_RuntimeError, NULL);
  if (!CsdeError || PyModule_AddObjectRef(m, "Error", CsdeError) < 0 ||
      PyModule_AddStringConstant(m, "version", csde_version()) < 0) {
    Py_DECREF(m);
    return NULL;
  }
  return m;
}
