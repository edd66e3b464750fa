#!/bin/bash
# Times two builds of `corrsde` on the same runs, interleaved, and prints the median wall
# time of each and the ratio new/old (1.00: no change). For a refactor that must not slow
# anything down.
#
#   bench/compare_builds.sh OLD_CORRSDE NEW_CORRSDE [REPEATS [PATTERN]]
#
# PATTERN (an extended regex) keeps only the runs whose command line matches it.
#
# The runs: `sample` with every fixed-step solver on the process it fits (gaussian model,
# ar1:rho=0.9, 16 frames of 128x128, batch 8, 100 steps, 2 threads), and a `converge` of
# euler,heun,rk45 on the PF-ODE (levels 3:9, 256 paths). Each repeat runs old then new (or
# new then old, alternating), so drift in the machine's load falls on both alike.
set -eu
old=$1 new=$2 reps=${3:-5} pattern=${4:-}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
common="--model gaussian --cov ar1:rho=0.9 --frames 16 --frame-shape 128x128 --batch 8 -j 2 --seed 1"
runs=(
  "sample $common -p reverse-sde -s em -n 100"
  "sample $common -p reverse-sde -s heun -n 100"
  "sample $common -p reverse-sde -s sra1 -n 100"
  "sample $common -p reverse-sde -s euler-ancestral -n 100"
  "sample $common -p reverse-sde -s dpmpp2m-sde -n 100"
  "sample $common -p pf-ode -s euler -n 100"
  "sample $common -p pf-ode -s dpmpp2m -n 100"
  "sample $common -p pf-ode -s dpmpp3m -n 100"
  "sample $common -p pf-ode -s unipc -n 100"
  "sample $common -p pf-ode -s ipndm -n 100"
  "sample $common -p pf-ode -s edm-heun -n 100"
  "sample $common -p ddim -n 100"
  "converge --process pf-ode --solvers euler,heun,rk45 --levels 3:9 --paths 256 -j 2 -q"
)
now() { date +%s.%N; }
median() { sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
printf '%-64s %9s %9s %6s\n' run "old (s)" "new (s)" new/old
for r in "${runs[@]}"; do
  [ -n "$pattern" ] && ! [[ $r =~ $pattern ]] && continue
  : >"$dir/old" ; : >"$dir/new"
  for ((i = 0; i < reps; i++)); do
    order="old new"; ((i % 2)) && order="new old"
    for w in $order; do
      exe=$old; [ "$w" = new ] && exe=$new
      t0=$(now)
      # shellcheck disable=SC2086
      "$exe" $r -o "$dir/out.h5" --force >/dev/null 2>"$dir/err" || { cat "$dir/err" >&2; exit 1; }
      t1=$(now)
      awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}' >>"$dir/$w"
    done
  done
  mo=$(median <"$dir/old"); mn=$(median <"$dir/new")
  printf '%-64s %9.3f %9.3f %6.2f\n' "${r/$common/...}" "$mo" "$mn" "$(awk -v a="$mn" -v b="$mo" 'BEGIN {print a / b}')"
done
