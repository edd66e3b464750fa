#!/usr/bin/env bash
# Build corrsde-bench if needed, then run `corrsde-bench all`, then bench/longclip.sh: the rng table (corrsde
# against NumPy and torch, measured in the same run) and the cov table, one CSV.
#
#   bench/run.sh [corrsde-bench options...]        e.g.  bench/run.sh --repeats 11
#
# Environment: BUILD_DIR (default <source>/build-bench, set up with meson if missing),
# PYTHON (default /usr/bin/python3), CSV (default $BUILD_DIR/bench-<date>.csv).
set -euo pipefail

src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${BUILD_DIR:-$src/build-bench}
python=${PYTHON:-/usr/bin/python3}
csv=${CSV:-$build/bench-$(date +%Y%m%d-%H%M%S).csv}

if [ ! -f "$build/build.ninja" ]; then
  meson setup "$build" "$src" --buildtype=release >/dev/null
fi
ninja -C "$build" bench/corrsde-bench >/dev/null

# The machine, so that a table can be read later: timings depend on the load.
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
echo "# $(uname -srm), $(nproc) CPUs: $cpu"
echo "# load average: $(cut -d' ' -f1-3 /proc/loadavg), $(date -Is)"
echo
"$build/bench/corrsde-bench" all --python "$python" --baselines "$src/bench/baselines" \
  --csv "$csv" "$@"
# the long-clip rows (corrsde sample and cov at 100000 and 20000 frames): seconds, peak RSS
echo
echo "# long clips (bench/longclip.sh): median of 3 runs"
ninja -C "$build" corrsde >/dev/null
BUILD_DIR=$build bash "$src/bench/longclip.sh" "$build/corrsde"
