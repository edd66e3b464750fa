#!/usr/bin/env bash
# Long-clip rows (issue 10, item 12): seconds and peak RSS of
#   corrsde sample --frames 100000 --frame-shape 1 --cov ar1:rho=0.9 --cov-method embed
#                  --process forward-sde -o x.h5
#   corrsde cov    --frames 20000 --cov ar1:rho=0.9 --method embed
# each the median of REPEATS runs (default 3), as CSV on stdout:
#   case,frames,seconds_median,peak_rss_mib_median,runs
#
#   bench/longclip.sh [CORRSDE]       CORRSDE: the binary (default: $BUILD_DIR/corrsde,
#                                     BUILD_DIR default <source>/build-bench, built if missing)
# Environment: REPEATS (3), FRAMES_SAMPLE (100000), FRAMES_COV (20000).
# Needs GNU time (/usr/bin/time -v) for the peak RSS.
set -euo pipefail

src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${BUILD_DIR:-$src/build-bench}
repeats=${REPEATS:-3}
fs=${FRAMES_SAMPLE:-100000}
fc=${FRAMES_COV:-20000}
bin=${1:-}
if [ -z "$bin" ]; then
  if [ ! -f "$build/build.ninja" ]; then
    meson setup "$build" "$src" --buildtype=release >/dev/null
  fi
  ninja -C "$build" corrsde >/dev/null
  bin=$build/corrsde
fi
[ -x /usr/bin/time ] || { echo "longclip.sh: needs GNU time at /usr/bin/time" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# median of the numbers on stdin
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# row NAME FRAMES ARGS...: REPEATS runs of corrsde ARGS, median wall seconds and peak RSS
row() {
  local name=$1 frames=$2
  shift 2
  : >"$tmp/s"
  : >"$tmp/r"
  for _ in $(seq "$repeats"); do
    rm -f "$tmp/x.h5"
    if ! /usr/bin/time -v -o "$tmp/time" "$bin" "$@" >/dev/null 2>"$tmp/err"; then
      echo "longclip.sh: '$name' failed:" >&2
      cat "$tmp/err" >&2
      exit 1
    fi
    # "Elapsed (wall clock) time (h:mm:ss or m:ss): 0:02.35" -> seconds
    awk -F': ' '/Elapsed \(wall clock\)/ { n = split($2, p, ":"); s = 0
                 for (i = 1; i <= n; i++) s = s * 60 + p[i]; print s }' "$tmp/time" >>"$tmp/s"
    awk -F': ' '/Maximum resident set size/ { printf "%.1f\n", $2 / 1024 }' "$tmp/time" >>"$tmp/r"
  done
  echo "$name,$frames,$(median <"$tmp/s"),$(median <"$tmp/r"),$repeats"
}

echo "# $(uname -srm), $(nproc) CPUs; load $(cut -d' ' -f1-3 /proc/loadavg); $(date -Is)"
echo "case,frames,seconds_median,peak_rss_mib_median,runs"
row "sample forward-sde ar1:rho=0.9 embed D=1" "$fs" sample --frames "$fs" --frame-shape 1 \
  --cov ar1:rho=0.9 --cov-method embed --process forward-sde -o "$tmp/x.h5"
row "cov ar1:rho=0.9 embed" "$fc" cov --frames "$fc" --cov ar1:rho=0.9 --method embed
