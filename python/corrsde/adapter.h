/* The adapter between corrsde's model callback and a Python callable, shared by the
 * extension (_corrsde.c, corrsde.solve) and the embedded interpreter of the program's
 * `--model python:` (embed.c). The caller holds the GIL in every function here.
 *
 * x reaches Python as a read-only numpy view of the solver's buffer, made once per
 * buffer (a small cache keyed by the pointer: no allocation or copy per call); the
 * answer is converted once (np.asarray semantics), its shape checked against x's, and
 * copied into the solver's output. */
#ifndef CSDE_PY_ADAPTER_H
#define CSDE_PY_ADAPTER_H

#include <string.h>

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
  PyObject *a = PyArray_New(&PyArray_Type, v->nd, v->dims, NPY_DOUBLE, NULL, (void *)x, 0,
                            NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ALIGNED, NULL);
  if (!a) return NULL;
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

#endif
