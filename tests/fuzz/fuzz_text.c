/* Fuzz the text column reader csde_text_read (src/io/h5read.c): the input is written to
 * a file and read back. A read that succeeds gives n finite numbers. */
#include <math.h>

#include "io/h5read.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

FUZZ_INITIALIZE(atexit(fuzz_rm_input);)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  const char *path = fuzz_write_input(data, size);
  double *v = NULL;
  size_t n = 0;
  csde_err err;
  csde_err_clear(&err);
  fuzz_quiet_begin();
  int s = csde_text_read(path, &v, &n, &err);
  fuzz_quiet_end("csde_text_read");
  if (s == CSDE_SUCCESS) {
    for (size_t i = 0; i < n; i++)
      if (!isfinite(v[i])) abort();
    free(v);
  } else {
    fuzz_check_err(s, &err);
  }
  return 0;
}
