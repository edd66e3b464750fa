#!/usr/bin/env bash
# TAP test of corrsde-mpi (suite mpi; meson sets $CORRSDE and $CORRSDE_MPI, $MPIRUN): the
# converge table, CSV and /convergence datasets are bitwise those of `corrsde converge` for
# 1, 2 and 3 ranks (h5diff, cmp); more ranks than blocks; bad arguments give one message and
# exit 2 on every rank count; a model that fails on rank 1 only ends the job within seconds
# with rank 1's message. Open MPI as root on 2 cores: the variables below.
set -u
: "${CORRSDE:?set CORRSDE}" "${CORRSDE_MPI:?set CORRSDE_MPI}"
MPIRUN=${MPIRUN:-mpirun}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=self,vader \
  OMPI_MCA_pml=ob1 OMPI_MCA_rmaps_base_oversubscribe=1

n=0
failed=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
. "$(dirname "$0")/tap.sh"

mpi() { # mpi R ARGS...: run corrsde-mpi on R ranks (at most 60 s), output in $tmp/out, err
  local r=$1
  shift
  last_args="(mpirun -np $r) $*"
  timeout 60 "$MPIRUN" -np "$r" --oversubscribe --bind-to none "$CORRSDE_MPI" "$@" \
    >"$tmp/out" 2>"$tmp/err"
  rc=$?
}
table() { grep -v '^wrote ' "$1"; } # the table without the timing line
nfe() { sed -n 's/^wrote .* s, \([0-9]*\) model evaluations.*/\1/p' "$1"; }

# the serial run, then 1, 2, 3 ranks: strong (SDE, the Brownian tree) and ode (gaussian)
for kind in sde ode; do
  if [ $kind = sde ]; then
    args=(converge --process reverse-sde --error strong --solvers em,heun,sra1 --levels 3:6
      --paths 24 --bootstrap 300 --seed 4)
  else
    args=(converge --solvers euler,heun --levels 3:6 --paths 10 --bootstrap 300)
  fi
  "$CORRSDE" "${args[@]}" --force -o "$tmp/s.h5" --csv "$tmp/s.csv" >"$tmp/s.txt" 2>/dev/null
  ok $? "serial corrsde converge ($kind)"
  for r in 1 2 3; do
    mpi "$r" "${args[@]}" --force -o "$tmp/m$r.h5" --csv "$tmp/m$r.csv"
    cp "$tmp/out" "$tmp/m$r.txt"
    [ "$rc" -eq 0 ] && cmp -s "$tmp/s.csv" "$tmp/m$r.csv" &&
      h5diff -q "$tmp/s.h5" "$tmp/m$r.h5" /convergence &&
      h5diff -q "$tmp/s.h5" "$tmp/m$r.h5" /covariance &&
      diff -q <(table "$tmp/s.txt") <(table "$tmp/m$r.txt") >/dev/null &&
      [ "$(nfe "$tmp/s.txt")" = "$(nfe "$tmp/m$r.txt")" ] && [ -n "$(nfe "$tmp/m$r.txt")" ]
    ok $? "$kind: $r rank(s): table, CSV, /convergence, /covariance and the model evaluations bitwise the serial run's"
  done
done

# more ranks than blocks: 2 paths are one block per solver, 2 items on 3 ranks
args=(converge --process forward-sde --solvers em,heun --levels 3:5 --paths 2 --bootstrap 100)
"$CORRSDE" "${args[@]}" -o "$tmp/s2.h5" --csv "$tmp/s2.csv" >/dev/null 2>&1
mpi 3 "${args[@]}" -o "$tmp/items.h5" --csv "$tmp/items.csv"
[ "$rc" -eq 0 ] && cmp -s "$tmp/s2.csv" "$tmp/items.csv"
ok $? "3 ranks, 2 items (a rank with none): finishes, CSV bitwise the serial run's"

# bad arguments: one line, exit 2, for 1 and 3 ranks
for r in 1 3; do
  mpi "$r" converge --levels 9:3 -o "$tmp/bad.h5"
  [ "$rc" -eq 2 ] && [ "$(grep -c 'corrsde converge: ' "$tmp/err")" -eq 1 ] &&
    grep -q -- '--levels' "$tmp/err" && [ ! -e "$tmp/bad.h5" ]
  ok $? "$r rank(s), --levels 9:3: exit 2, one message naming --levels, no file"
done

# sample is not split yet: refused on 2 ranks, with one message
mpi 2 sample -o "$tmp/sample.h5"
[ "$rc" -eq 2 ] && [ "$(wc -l <"$tmp/err" | tr -d ' ')" -ge 1 ] &&
  [ "$(grep -c 'runs converge only' "$tmp/err")" -eq 1 ] && [ ! -e "$tmp/sample.h5" ]
ok $? "2 ranks, sample: refused (exit 2, one message), nothing written"

# a model that fails on rank 1 only: the job ends (no hang) with rank 1's message
plugin="plugin:$CSDE_PLUGIN_FAULTY:fail=3,rank=1"
start=$(date +%s)
mpi 2 converge --model "$plugin" --solvers euler --levels 3:4 --paths 16 -o "$tmp/f.h5"
took=$(($(date +%s) - start))
[ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && grep -q 'rank 1: ' "$tmp/err" &&
  grep -q 'faulty' "$tmp/err" && [ ! -e "$tmp/f.h5" ] && [ "$took" -lt 30 ]
ok $? "a model failing on rank 1 only: exit $rc after ${took} s, the message names rank 1, no file"
mpi 1 converge --model "$plugin" --solvers euler --levels 3:4 --paths 16 -o "$tmp/f1.h5"
[ "$rc" -eq 0 ]
ok $? "the same plugin on 1 rank (rank 0: it never fails) runs"

echo "1..$n"
[ "$failed" -eq 0 ]
