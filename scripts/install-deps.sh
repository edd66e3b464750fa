#!/usr/bin/env bash
# Installs the Debian 12 packages that corrsde's build, tests, benchmarks and plots need
# (scripts/install-deps.sh; --bench is accepted and installs nothing more). The tests (scripts/test.sh) include the fuzz
# harnesses: clang with libclang-rt-14-dev (libFuzzer and the sanitizer runtimes for
# clang; gcc's ASan/UBSan runtimes come with build-essential).
# Safe to run again: apt-get skips what is already there. Needs root (or sudo).
set -euo pipefail

pkgs=(
  build-essential meson ninja-build pkg-config
  libgsl-dev libopenblas-dev libopenblas0-pthread
  libfftw3-dev libhdf5-dev hdf5-tools librandom123-dev
  valgrind
  clang libclang-rt-14-dev
  python3 python3-numpy python3-h5py python3-matplotlib python3-scipy
  # the Python package (python/corrsde) and its tests: the C API headers, pytest, PyTorch
  # (corrsde.torch, and the benchmark's baselines), xarray over h5netcdf
  python3-dev python3-pytest python3-torch python3-xarray python3-h5netcdf
  # corrsde-mpi and its suite (tests/test_mpi.sh): Open MPI
  openmpi-bin libopenmpi-dev libhdf5-openmpi-dev
)

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all packages present"
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
