#!/usr/bin/env bash
# Build corrsde-bench if needed, then run `corrsde-bench all`, then bench/longclip.sh: the rng table (corrsde
# against NumPy and torch, measured in the same run) and the cov table, one CSV. Then bench/python.py:
# the Python package's rows (a Python model's per-call cost, a NumPy and a torch model), added to the CSV.
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
# the noise rows (bench/noise.sh): streaming against the Brownian tree, and a converge study
echo
echo "# noise (bench/noise.sh): median of 5 runs"
BUILD_DIR=$build bash "$src/bench/noise.sh" "$build/corrsde"
# the Python package's rows (bench/python.py; --repeats passes through): it needs the package, the
# corrsde binary and the no-op model plugin tests/plugin_faulty.so of the same build
echo
repeats=()
while [ $# -gt 0 ]; do
  case $1 in
  --repeats) repeats=(--repeats "${2:-5}"); shift ;;
  --repeats=*) repeats=(--repeats "${1#--repeats=}") ;;
  esac
  shift
done
# (its medians take at least 5 repeats)
[ ${#repeats[@]} -eq 0 ] || [ "${repeats[1]}" -ge 5 ] 2>/dev/null || repeats=(--repeats 5)
targets=$(ninja -C "$build" -t targets all 2>/dev/null |
  sed -n 's#^\(tests/plugin_faulty\.so\|python/corrsde/[^:/]*\.\(so\|py\)\): .*#\1#p')
[ -z "$targets" ] || ninja -C "$build" $targets >/dev/null
PYTHONPATH=$build/python "$python" "$src/bench/python.py" --build "$build" --csv "$csv" "${repeats[@]}"
# the EM step the way a user runs it: corrsde sample and corrsde.solve() against the harness
echo
echo "# user paths (bench/user_paths.py)"
PYTHONPATH=$build/python "$python" "$src/bench/user_paths.py" --build "$build" --csv "$csv"
