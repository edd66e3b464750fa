/* Fuzz the HDF5 readers with raw bytes written to a file. CI replays its seeds and
 * regressions/h5_raw/ (corrupt files that crashed libhdf5 through the old readers);
 * fuzzing it is for manual runs: it mostly fuzzes libhdf5's own parser, whose remaining
 * findings (the global heap of variable-length strings) are kept in libhdf5/
 * (README.md). fuzz_h5 is the CI fuzzer of our readers. HDF5's own error stacks must
 * stay silent (the quiet check of fuzz_common.h). */
#include "fuzz_h5_readers.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

FUZZ_INITIALIZE(atexit(fuzz_rm_input);)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  const char *path = fuzz_write_input(data, size);
  fuzz_quiet_begin();
  fuzz_read_all(path);
  fuzz_quiet_end("the HDF5 readers");
  return 0;
}
