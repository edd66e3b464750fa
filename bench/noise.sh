#!/usr/bin/env bash
# Noise rows (issue 13): the solve loop's own wall_seconds (/stats) of
#   corrsde sample --process reverse-sde --solver em --steps 256 --frames 16
#                  --frame-shape 64x64 --batch 4 --noise stream|path
# (path: the Brownian tree walked on the grid, two normals a node for W and H, against
# streaming's one a step), and the wall time of a strong convergence study
#   corrsde converge --process reverse-sde --solvers em,heun --levels 3:10 --paths 64
# each the median of REPEATS runs (default 5), as CSV on stdout:
#   case,seconds_median,ratio_to_stream,runs
#
#   bench/noise.sh [CORRSDE]   CORRSDE: the binary (default: $BUILD_DIR/corrsde, BUILD_DIR
#                              default <source>/build-bench, built if missing)
# Needs /usr/bin/python3 with h5py to read /stats.
set -euo pipefail

src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${BUILD_DIR:-$src/build-bench}
repeats=${REPEATS:-5}
bin=${1:-}
if [ -z "$bin" ]; then
  if [ ! -f "$build/build.ninja" ]; then
    meson setup "$build" "$src" --buildtype=release >/dev/null
  fi
  ninja -C "$build" corrsde >/dev/null
  bin=$build/corrsde
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
loop_seconds() {
  /usr/bin/python3 -c 'import sys, h5py; print(h5py.File(sys.argv[1], "r")["stats"].attrs["wall_seconds"])' "$1"
}

echo "case,seconds_median,ratio_to_stream,runs"
declare -A med
for kind in stream path; do
  for ((i = 0; i < repeats; i++)); do
    "$bin" sample --process reverse-sde --solver em --steps 256 --frames 16 --frame-shape 64x64 \
      --batch 4 --noise "$kind" -q --force -o "$tmp/s.h5"
    loop_seconds "$tmp/s.h5"
  done >"$tmp/$kind.txt"
  med[$kind]=$(median <"$tmp/$kind.txt")
done
for kind in stream path; do
  awk -v k="$kind" -v m="${med[$kind]}" -v b="${med[stream]}" -v n="$repeats" \
    'BEGIN { printf "sample em 256 steps 64x64x16 b4 noise %s,%.4f,%.3f,%d\n", k, m, m / b, n }'
done
for ((i = 0; i < repeats; i++)); do
  s=$(date +%s.%N)
  "$bin" converge --process reverse-sde --solvers em,heun --levels 3:10 --paths 64 -q --force \
    -o "$tmp/c.h5"
  e=$(date +%s.%N)
  awk -v s="$s" -v e="$e" 'BEGIN { print e - s }'
done >"$tmp/conv.txt"
awk -v m="$(median <"$tmp/conv.txt")" -v n="$repeats" \
  'BEGIN { printf "converge reverse-sde em,heun levels 3:10 paths 64 (path noise),%.3f,,%d\n", m, n }'
