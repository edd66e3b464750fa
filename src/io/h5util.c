#include "io/h5util.h"

int csde_h5_put_attr(hid_t file, const char *path, const char *obj, const char *name,
                     hid_t ftype, hid_t mtype, const void *buf, size_t n, int list,
                     csde_err *err)
{
  int s = CSDE_SUCCESS;
  hsize_t hn = n;
  hid_t sp = n == 1 && !list ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &hn, NULL), a = -1;
  if (sp < 0) goto fail;
  htri_t ex = H5Aexists_by_name(file, obj, name, H5P_DEFAULT);
  if (ex < 0) goto fail;
  if (ex > 0) {
    /* the same type and shape: its value is overwritten in place, so the object's header
     * keeps its size and place (a kill during the write cannot tear it). (Opened through
     * the object: HDF5 1.10.8 cannot write an attribute opened by H5Aopen_by_name.) */
    hid_t o = H5Oopen(file, obj, H5P_DEFAULT);
    if (o >= 0) a = H5Aopen(o, name, H5P_DEFAULT);
    hid_t ty = a >= 0 ? H5Aget_type(a) : -1, as = a >= 0 ? H5Aget_space(a) : -1;
    int same = ty >= 0 && as >= 0 && H5Tequal(ty, ftype) > 0 && H5Sextent_equal(as, sp) > 0;
    if (ty >= 0) H5Tclose(ty);
    if (as >= 0) H5Sclose(as);
    int bad = same && H5Awrite(a, mtype, buf) < 0;
    if (a >= 0) H5Aclose(a);
    if (o >= 0) H5Oclose(o);
    a = -1;
    if (bad) goto fail;
    if (same) goto done;
  }
  if (ex > 0 && H5Adelete_by_name(file, obj, name, H5P_DEFAULT) < 0) goto fail;
  a = H5Acreate_by_name(file, obj, name, ftype, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  if (a < 0 || H5Awrite(a, mtype, buf) < 0) goto fail;
  goto done;
fail:
  s = csde_err_set(err, CSDE_EIO, "'%s': cannot write attribute %s of %s", path, name, obj);
done:
  if (a >= 0) H5Aclose(a);
  if (sp >= 0) H5Sclose(sp);
  return s;
}

hid_t csde_h5_str_type(void)
{
  hid_t st = H5Tcopy(H5T_C_S1);
  if (st < 0) return -1;
  if (H5Tset_size(st, H5T_VARIABLE) < 0 || H5Tset_cset(st, H5T_CSET_UTF8) < 0) {
    H5Tclose(st);
    return -1;
  }
  return st;
}

void csde_h5_quiet_begin(csde_h5_quiet *q)
{
  q->fn = NULL;
  q->data = NULL;
  H5Eget_auto2(H5E_DEFAULT, &q->fn, &q->data);
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

void csde_h5_quiet_end(const csde_h5_quiet *q) { H5Eset_auto2(H5E_DEFAULT, q->fn, q->data); }
