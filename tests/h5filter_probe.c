/* An HDF5 filter plugin (id 40000, an identity filter) that says when it is loaded: its
 * constructor appends "loaded" to the file named by $CSDE_PROBE_MARK. tests/test_hostile.sh
 * writes a file through it (h5py with HDF5_PLUGIN_PATH) and checks that corrsde's
 * readers refuse the file without loading it: a file must never make corrsde run code
 * from HDF5_PLUGIN_PATH. */
#include <stdio.h>
#include <stdlib.h>

#include <H5PLextern.h>

#define CSDE_PROBE_FILTER 40000

__attribute__((constructor)) static void probe_loaded(void)
{
  const char *mark = getenv("CSDE_PROBE_MARK");
  FILE *f = mark ? fopen(mark, "a") : NULL;
  if (f) {
    fputs("loaded\n", f);
    fclose(f);
  }
}

static size_t identity(unsigned flags, size_t cd_nelmts, const unsigned cd_values[],
                       size_t nbytes, size_t *buf_size, void **buf)
{
  (void)flags;
  (void)cd_nelmts;
  (void)cd_values;
  (void)buf_size;
  (void)buf;
  return nbytes;
}

static const H5Z_class2_t probe_class = {
  H5Z_CLASS_T_VERS, CSDE_PROBE_FILTER, 1, 1, "csde-probe", NULL, NULL, identity,
};

H5PL_type_t H5PLget_plugin_type(void) { return H5PL_TYPE_FILTER; }
const void *H5PLget_plugin_info(void) { return &probe_class; }
