#!/usr/bin/env bash
# The theory table for correlated noise, reproduced with `corrsde converge`.
# Each experiment writes results/<name>.h5, .csv and .png and prints its table.
#   bash experiments/convergence.sh            all of them (about 5 minutes on 2 cores)
#   bash experiments/convergence.sh ode weak   only those
# Expected (experiments/README.md): strong EM ~1, Heun ~1; weak EM ~1, Heun ~2;
# ODE Euler ~1, Heun ~2, RK45 (fixed step) >= 4; gmm (nonlinear) the same orders.
set -euo pipefail
cd "$(dirname "$0")/.."
C=./build/corrsde
[ -x "$C" ] || bash scripts/build.sh
mkdir -p results
J=${THREADS:-2}

run() { # name, then converge's flags
  local name=$1
  shift
  echo "== $name"
  "$C" converge "$@" --threads "$J" --force -o "results/$name.h5" \
    --csv "results/$name.csv" --plot "results/$name.png"
  echo
}

want=${*:-strong weak ode gmm}
for e in $want; do
  case $e in
  strong)
    run strong_ar1 --process forward-sde --error strong --cov ar1:rho=0.9 --solvers em,heun,sra1 \
      --frames 8 --frame-shape 4x4 --levels 3:8 --paths 64
    run strong_mixed --process forward-sde --error strong --cov mixed:alpha=1 --solvers em,heun,sra1 \
      --frames 8 --frame-shape 4x4 --levels 3:8 --paths 64
    ;;
  weak) # from the exact p_T, non-constant beta (vp-linear)
    run weak_cov --process reverse-sde --error weak-cov --cov ar1:rho=0.9 --solvers em,heun \
      --frames 5 --frame-shape 8x8 --levels 3:6 --paths 2048
    ;;
  ode)
    run ode --process pf-ode --error ode --cov ar1:rho=0.9 --solvers euler,heun,rk45 \
      --frames 8 --frame-shape 4x4 --levels 3:8 --paths 16
    ;;
  gmm) # a nonlinear score: no super-convergence
    /usr/bin/python3 experiments/make_gmm.py results/gmm.h5 8 >/dev/null
    run ode_gmm --model gmm:file=results/gmm.h5 --process pf-ode --error ode \
      --cov ar1:rho=0.9 --solvers euler,heun,rk45 --frames 8 --frame-shape 4x4 --levels 3:7 \
      --paths 256
    ;;
  *)
    echo "unknown experiment '$e' (strong, weak, ode, gmm)" >&2
    exit 2
    ;;
  esac
done
