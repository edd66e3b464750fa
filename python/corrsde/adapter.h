/* The adapter between corrsde's model callback and a Python callable, shared by the
 * extension (_corrsde.c, corrsde.solve) and the embedded interpreter of the program's
 * `--model python:` (embed.c). The caller holds the GIL in every function here.
 *
 * x reaches Python as a read-only numpy view of the solver's buffer, made once per
 * buffer (a small cache keyed by the pointer: no allocation or copy per call); the
 * answer is converted once (np.asarray semantics), its shape checked against x's, and
 * copied into the solver's output.
 *
 * x after its call (csde_py_done). The solver overwrites its buffer S at a later stage
 * and frees it when the run ends, and every numpy view made from x (x[0],
 * x.reshape(-1), ...) holds its own pointer into S, so a model that keeps x or a view
 * of it would read other values, freed memory or another object's. The designs that
 * do not work: a copy of S per call (safe, but a copy per call); keeping S alive (the
 * solver owns it); repointing x alone when the run ends (x[0] still points into S).
 * So after every call the view's reference count is checked: above the cache's one,
 * the model kept x or something made from it (a numpy view of x holds x as its base;
 * so does a traceback that holds the model's frame). Then, and only then, S is copied
 * once into memory owned by x's base object (csde_py_owner), and x, and every array
 * and memoryview that the garbage collector can reach whose memory lies in S and whose
 * base chain leads to x, are repointed to the same offset in the copy (the array's
 * data field: numpy has no call for it, but nothing else in the array depends on the
 * address). They keep exactly what the model saw, for as long as they live; the cache
 * forgets x, and the next call on S makes a new view. A call that keeps nothing costs
 * one reference count test. Not covered: addresses that leave numpy's objects (a torch
 * tensor made by torch.from_numpy(x), ctypes pointers) and views held only by objects
 * that the collector cannot traverse.
 * x's base, the owner, is no array and exports no buffer, so numpy refuses
 * setflags(write=True) on x and on every view of it. */
#ifndef CSDE_PY_ADAPTER_H
#define CSDE_PY_ADAPTER_H

#include <string.h>

/* What the extension lends to embed.c (a capsule, its attribute _C_API): handles of a
 * run's own covariance and schedule, the `--model python:` ctx.cov and ctx.schedule. */
#define CSDE_PY_CAPI "corrsde._corrsde._C_API"
#define CSDE_PY_CAPI_VERSION 1
typedef struct {
  int version;
  PyObject *(*lend_cov)(const csde_cov *C); /* a new "corrsde.cov" handle borrowing C */
  PyObject *(*lend_schedule)(const csde_schedule *s);
  void (*end_loan)(PyObject *handle); /* before C or s is freed: later uses raise */
} csde_py_capi;

#define CSDE_PY_MAXDIM 8  /* B, tau and up to 6 frame axes */
#define CSDE_PY_NVIEW 16  /* buffers a solver hands to the model (its stages) */

typedef struct {
  int nd;
  npy_intp dims[CSDE_PY_MAXDIM];
  size_t n; /* doubles per state */
  const double *vptr[CSDE_PY_NVIEW];
  PyObject *view[CSDE_PY_NVIEW];
  int nview;
} csde_py_views;

/* The base object of a view: holds the view's memory once the view outlived its call. */
typedef struct {
  PyObject_HEAD
  double *copy; /* NULL while the view shows the solver's buffer */
} csde_py_owner;

static void csde_py_owner_dealloc(PyObject *o)
{
  PyMem_Free(((csde_py_owner *)o)->copy);
  Py_TYPE(o)->tp_free(o);
}

static PyTypeObject csde_py_owner_type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "corrsde.ViewOwner",
    .tp_basicsize = sizeof(csde_py_owner),
    .tp_dealloc = csde_py_owner_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The base of a model's x: the copy x shows once it outlived its call.",
};

/* Once per interpreter, before the first view. */
static int csde_py_adapter_ready(void)
{
  return PyType_Ready(&csde_py_owner_type);
}

/* The UTF-8 text of the str o for C, or NULL with an exception naming `what`:
 * TypeError for another type, ValueError for a NUL inside (C would read the text cut
 * there, and take "euler\0x" for "euler"). */
static const char *csde_py_str(PyObject *o, const char *what)
{
  if (!PyUnicode_Check(o)) {
    PyErr_Format(PyExc_TypeError, "%s: expected a str, got %s", what, Py_TYPE(o)->tp_name);
    return NULL;
  }
  Py_ssize_t n;
  const char *s = PyUnicode_AsUTF8AndSize(o, &n);
  if (s && memchr(s, '\0', (size_t)n)) {
    PyErr_Format(PyExc_ValueError, "%s: embedded null character in %R", what, o);
    return NULL;
  }
  return s;
}

/* A read-only view of the solver buffer x (borrowed: the cache keeps it). */
static PyObject *csde_py_view(csde_py_views *v, const double *x)
{
  for (int i = 0; i < v->nview; i++)
    if (v->vptr[i] == x) return v->view[i];
  csde_py_owner *o = PyObject_New(csde_py_owner, &csde_py_owner_type);
  if (!o) return NULL;
  o->copy = NULL;
  PyObject *a = PyArray_New(&PyArray_Type, v->nd, v->dims, NPY_DOUBLE, NULL, (void *)x, 0,
                            NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ALIGNED, NULL);
  if (!a) {
    Py_DECREF(o);
    return NULL;
  }
  if (PyArray_SetBaseObject((PyArrayObject *)a, (PyObject *)o) < 0) { /* o stolen */
    Py_DECREF(a);
    return NULL;
  }
  if (v->nview == CSDE_PY_NVIEW) { /* more buffers than expected: recycle the oldest */
    Py_DECREF(v->view[0]);
    memmove(v->view, v->view + 1, (CSDE_PY_NVIEW - 1) * sizeof *v->view);
    memmove(v->vptr, v->vptr + 1, (CSDE_PY_NVIEW - 1) * sizeof *v->vptr);
    v->nview--;
  }
  v->vptr[v->nview] = x;
  v->view[v->nview++] = a;
  return a;
}

/* ---- a kept view gets a copy (see the top of this file) ---- */

typedef struct {
  PyObject *view;      /* the kept x */
  const char *lo, *hi; /* the solver's buffer S */
  char *copy;          /* S's copy: an address p in S moves to copy + (p - lo) */
  int depth;
} csde_py_walk;

/* Whether o's memory came from the view: its chain of bases (arrays, memoryviews'
 * exporters) leads to it. */
static int csde_py_from_view(PyObject *o, const PyObject *view)
{
  for (int i = 0; o && i < 4096; i++) {
    if (o == view) return 1;
    if (PyArray_Check(o))
      o = PyArray_BASE((PyArrayObject *)o);
    else if (PyMemoryView_Check(o))
      o = PyMemoryView_GET_BUFFER(o)->obj;
    else
      return 0;
  }
  return 0;
}

/* The address p in S moved to the copy, or NULL when p is not in S. */
static char *csde_py_moved(const csde_py_walk *w, void *p)
{
  const char *c = p;
  return c >= w->lo && c < w->hi ? w->copy + (c - w->lo) : NULL;
}

/* tp_traverse's visitor: repoint an array or memoryview of the view; look into the
 * containers that the collector does not track (a dict or tuple holding only arrays is
 * untracked, so gc.get_objects() misses it) and into object arrays. */
static int csde_py_visit(PyObject *o, void *arg)
{
  csde_py_walk *w = arg;
  if (PyArray_Check(o)) {
    PyArrayObject *a = (PyArrayObject *)o;
    char *p = csde_py_moved(w, PyArray_BYTES(a));
    if (p && csde_py_from_view(o, w->view)) ((PyArrayObject_fields *)a)->data = p;
    if (PyArray_TYPE(a) == NPY_OBJECT && PyArray_SIZE(a) > 0 && w->depth < 32) {
      PyArrayIterObject *it = (PyArrayIterObject *)PyArray_IterNew(o);
      if (!it) return -1;
      w->depth++;
      while (it->index < it->size) {
        PyObject *e = *(PyObject **)it->dataptr;
        if (e && csde_py_visit(e, w)) break;
        PyArray_ITER_NEXT(it);
      }
      w->depth--;
      Py_DECREF(it);
    }
  } else if (PyMemoryView_Check(o)) {
    PyMemoryViewObject *m = (PyMemoryViewObject *)o;
    char *p = csde_py_moved(w, m->view.buf);
    if (p && csde_py_from_view(m->view.obj, w->view)) {
      m->view.buf = p;
      if (m->mbuf && (p = csde_py_moved(w, m->mbuf->master.buf))) m->mbuf->master.buf = p;
    }
  }
  if (PyObject_IS_GC(o) && !PyObject_GC_IsTracked(o) && Py_TYPE(o)->tp_traverse &&
      w->depth < 32) {
    w->depth++;
    int rc = Py_TYPE(o)->tp_traverse(o, csde_py_visit, w);
    w->depth--;
    return rc;
  }
  return 0;
}

/* S (n doubles) copied into the view's owner; the view and what the collector reaches
 * of it repointed there. -1 with an exception set when the copy cannot be made. */
static int csde_py_detach(PyObject *view, const double *S, size_t n)
{
  csde_py_owner *o = (csde_py_owner *)PyArray_BASE((PyArrayObject *)view);
  double *copy = PyMem_Malloc(n ? n * sizeof *copy : 1);
  if (!copy) {
    PyErr_NoMemory();
    return -1;
  }
  memcpy(copy, S, n * sizeof *copy);
  o->copy = copy;
  csde_py_walk w = {view, (const char *)S, (const char *)(S + n), (char *)copy, 0};
  csde_py_visit(view, &w);
  PyObject *gc = PyImport_ImportModule("gc");
  PyObject *all = gc ? PyObject_CallMethod(gc, "get_objects", NULL) : NULL;
  Py_XDECREF(gc);
  if (!all || !PyList_Check(all)) {
    Py_XDECREF(all);
    return -1;
  }
  int rc = 0;
  for (Py_ssize_t i = 0; !rc && i < PyList_GET_SIZE(all); i++) {
    PyObject *e = PyList_GET_ITEM(all, i);
    rc = csde_py_visit(e, &w);
    if (!rc && Py_TYPE(e)->tp_traverse) rc = Py_TYPE(e)->tp_traverse(e, csde_py_visit, &w);
  }
  Py_DECREF(all);
  return rc ? -1 : 0;
}

/* After a call on x: if the model kept x's view or something made from it, that gets a
 * copy of what the model saw, and the cache forgets the view. 0, or -1 with an
 * exception set (the copy could not be made). */
static int csde_py_done(csde_py_views *v, const double *x)
{
  int i = 0;
  while (i < v->nview && v->vptr[i] != x) i++;
  if (i == v->nview || Py_REFCNT(v->view[i]) == 1) return 0;
  PyObject *view = v->view[i];
  int rc = csde_py_detach(view, x, v->n);
  Py_DECREF(view); /* its holders keep it */
  memmove(v->view + i, v->view + i + 1, (size_t)(v->nview - i - 1) * sizeof *v->view);
  memmove(v->vptr + i, v->vptr + i + 1, (size_t)(v->nview - i - 1) * sizeof *v->vptr);
  v->nview--;
  return rc;
}

static void csde_py_views_clear(csde_py_views *v)
{
  for (int i = 0; i < v->nview; i++) Py_DECREF(v->view[i]);
  v->nview = 0;
}

/* A call with another batch size (converge's last batch of paths may be smaller): the
 * views are made anew with that size, per_sample doubles a sample. Returns 1 when the
 * size changed. */
static int csde_py_views_batch(csde_py_views *v, size_t batch, size_t per_sample)
{
  if ((size_t)v->dims[0] == batch) return 0;
  csde_py_views_clear(v);
  v->n = batch * per_sample;
  v->dims[0] = (npy_intp)batch;
  return 1;
}

/* The model's answer into out: any array-like of x's shape, converted to float64.
 * -1 with a Python exception set (ValueError naming both shapes) otherwise. */
static int csde_py_answer(const csde_py_views *v, PyObject *ans, double *out)
{
  PyArrayObject *a = (PyArrayObject *)PyArray_FROMANY(ans, NPY_DOUBLE, 0, 0,
                                                      NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ALIGNED);
  if (!a) return -1;
  int same = PyArray_NDIM(a) == v->nd;
  for (int i = 0; same && i < v->nd; i++) same = PyArray_DIMS(a)[i] == v->dims[i];
  if (!same) {
    PyObject *got = PyObject_GetAttrString((PyObject *)a, "shape");
    PyObject *want = PyArray_IntTupleFromIntp(v->nd, v->dims);
    PyErr_Format(PyExc_ValueError, "the model returned an array of shape %R, expected %R "
                 "(x's shape)", got, want);
    Py_XDECREF(got);
    Py_XDECREF(want);
    Py_DECREF(a);
    return -1;
  }
  memcpy(out, PyArray_DATA(a), v->n * sizeof *out);
  Py_DECREF(a);
  return 0;
}

/* ---- conditioning: ctx.cond, ctx.ncond, ctx.first of a call (corrsde/model.h) ----
 *
 * cond and uncond are the Python structures the call's c->cond and c->uncond stand for
 * (solve(): the objects themselves; the program's --cond: dicts of arrays made once).
 * ctx.cond is corrsde._cond_call(cond, uncond, first, ncond, batch): the rows of the
 * call's samples (views), joined along axis 0 for a guided call of 2B. It is made again
 * only when the call's samples change (a guided run makes its join once, not per call). */
typedef struct {
  PyObject *call;          /* corrsde._cond_call (owned) */
  PyObject *names[3];      /* "cond", "ncond", "first" (owned) */
  const void *kc, *ku;     /* the key of what ctx.cond holds now */
  size_t first, ncond, batch;
  int valid;
} csde_py_cond;

static int csde_py_cond_init(csde_py_cond *k, PyObject *call)
{
  memset(k, 0, sizeof *k);
  k->call = call;
  Py_XINCREF(call);
  static const char *const n[3] = {"cond", "ncond", "first"};
  for (int i = 0; i < 3; i++)
    if (!(k->names[i] = PyUnicode_InternFromString(n[i]))) return -1;
  return 0;
}

static void csde_py_cond_clear(csde_py_cond *k)
{
  Py_CLEAR(k->call);
  for (int i = 0; i < 3; i++) Py_CLEAR(k->names[i]);
  k->valid = 0;
}

/* Set ctx.cond, ctx.ncond and ctx.first for the call c, whose c->cond and c->uncond
 * mean the structures cond and uncond (NULL: none). -1 with an exception set. */
static int csde_py_cond_set(csde_py_cond *k, PyObject *ctx, const csde_model_ctx *c,
                            PyObject *cond, PyObject *uncond)
{
  if (k->valid && k->kc == c->cond && k->ku == c->uncond && k->first == c->first &&
      k->ncond == c->ncond && k->batch == c->batch)
    return 0;
  k->valid = 0;
  PyObject *v;
  if (!cond && !uncond)
    v = Py_NewRef(Py_None);
  else
    v = PyObject_CallFunction(k->call, "OOnnn", cond ? cond : Py_None,
                              uncond ? uncond : Py_None, (Py_ssize_t)c->first,
                              (Py_ssize_t)c->ncond, (Py_ssize_t)c->batch);
  PyObject *nc = v ? PyLong_FromSize_t(c->ncond) : NULL;
  PyObject *fi = nc ? PyLong_FromSize_t(c->first) : NULL;
  int bad = !fi || PyObject_SetAttr(ctx, k->names[0], v) < 0 ||
            PyObject_SetAttr(ctx, k->names[1], nc) < 0 ||
            PyObject_SetAttr(ctx, k->names[2], fi) < 0;
  Py_XDECREF(v);
  Py_XDECREF(nc);
  Py_XDECREF(fi);
  if (bad) return -1;
  k->kc = c->cond;
  k->ku = c->uncond;
  k->first = c->first;
  k->ncond = c->ncond;
  k->batch = c->batch;
  k->valid = 1;
  return 0;
}

#endif
