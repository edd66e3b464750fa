#!/usr/bin/env bash
# TAP test of corrsde-mpi (suite mpi; meson sets $CORRSDE and $CORRSDE_MPI, $MPIRUN): the
# converge table, CSV and /convergence datasets are bitwise those of `corrsde converge` for
# 1, 2 and 3 ranks (h5diff, cmp); more ranks than blocks; bad arguments give one message and
# exit 2 on every rank count; a model that fails on rank 1 only ends the job within seconds
# with rank 1's message. `sample` over 1, 2 and 3 ranks writes the serial run's datasets
# (float64 and float32+gzip, --init, more ranks than samples), stops every rank at the
# step where one fails, and leaves a readable file when killed. Open MPI as root on 2
# cores: the variables below.
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

# sample: the batch split over the ranks, one file through parallel HDF5; its datasets
# are bitwise the serial run's
same_traj() { # same_traj A.h5 B.h5: x, t, step and the covariance equal (h5diff)
  h5diff -q "$1" "$2" /trajectory/x && h5diff -q "$1" "$2" /trajectory/t &&
    h5diff -q "$1" "$2" /trajectory/step && h5diff -q "$1" "$2" /covariance
}
attr() { # attr FILE OBJ NAME: an attribute's value, as h5dump prints it
  h5dump -a "$2/$3" "$1" 2>/dev/null | sed -n 's/^ *(0): *//p'
}
args=(sample -b 5 --frame-shape 4x4 -t 8 --steps 20 --save every:5 --seed 3)
"$CORRSDE" "${args[@]}" -o "$tmp/ss.h5" -q
ok $? "serial corrsde sample"
for r in 1 2 3; do
  mpi "$r" "${args[@]}" -o "$tmp/ms$r.h5"
  [ "$rc" -eq 0 ] && same_traj "$tmp/ss.h5" "$tmp/ms$r.h5" &&
    [ "$(attr "$tmp/ms$r.h5" /parameters batch)" = 5 ] &&
    [ "$(attr "$tmp/ms$r.h5" /parameters first_sample)" = 0 ] &&
    [ "$(attr "$tmp/ms$r.h5" /stats status)" = '"ok"' ] &&
    [ "$(grep -c '^wrote ' "$tmp/out")" -eq 1 ]
  ok $? "sample, $r rank(s): x, t, step and /covariance bitwise the serial run's; batch 5, status ok, one report"
done
args=(sample -b 5 --frame-shape 8x8 -t 8 --steps 30 --save every:10 --process pf-ode --solver heun
  --dtype float32 --compress)
"$CORRSDE" "${args[@]}" -o "$tmp/sc.h5" -q
mpi 2 "${args[@]}" -o "$tmp/mc.h5"
[ "$rc" -eq 0 ] && same_traj "$tmp/sc.h5" "$tmp/mc.h5"
ok $? "sample, 2 ranks, float32 and gzip: the serial run's datasets"
args=(sample --init "$tmp/sc.h5" --process forward-sde --noise path --steps 10 --save every:5)
"$CORRSDE" "${args[@]}" -o "$tmp/si.h5" -q
mpi 3 "${args[@]}" -o "$tmp/mi.h5"
[ "$rc" -eq 0 ] && same_traj "$tmp/si.h5" "$tmp/mi.h5"
ok $? "sample, 3 ranks, --init from a file, path noise: the serial run's datasets"
args=(sample -b 2 --frame-shape 3 -t 4 --steps 10 --save every:2)
"$CORRSDE" "${args[@]}" -o "$tmp/s2s.h5" -q
mpi 3 "${args[@]}" -o "$tmp/m2s.h5"
[ "$rc" -eq 0 ] && same_traj "$tmp/s2s.h5" "$tmp/m2s.h5"
ok $? "sample, 3 ranks, 2 samples (a rank with none): finishes, the serial run's datasets"

mpi 2 sample --rtol 1e-3 -o "$tmp/adapt.h5"
[ "$rc" -eq 2 ] && [ "$(grep -c 'corrsde sample: ' "$tmp/err")" -eq 1 ] &&
  grep -q -- '--rtol' "$tmp/err" && [ ! -e "$tmp/adapt.h5" ]
ok $? "sample, 2 ranks, adaptive steps: refused (exit 2, one message naming --rtol), no file"
mpi 2 info "$tmp/ss.h5"
[ "$rc" -eq 2 ] && [ "$(grep -c 'runs converge and sample' "$tmp/err")" -eq 1 ]
ok $? "2 ranks, info: refused (exit 2, one message)"

# a model failing on rank 1 at its 4th call: every rank stops at the same step, the file
# keeps the states saved before (the serial run's) and says which rank failed
plugin="plugin:$CSDE_PLUGIN_FAULTY:fail=4,rank=1"
args=(sample --model "$plugin" -b 4 --frame-shape 3 -t 4 --steps 10 --save every:1)
"$CORRSDE" "${args[@]}" -o "$tmp/fs.h5" -q # rank 0 of a serial run: it never fails
start=$(date +%s)
mpi 2 "${args[@]}" -o "$tmp/fm.h5"
took=$(($(date +%s) - start))
nsaved=$(attr "$tmp/fm.h5" /trajectory n_saved)
[ "$rc" -eq 1 ] && [ "$took" -lt 30 ] && grep -q 'failed: rank 1: .*faulty' "$tmp/err" &&
  attr "$tmp/fm.h5" /stats status | grep -q '^"failed: rank 1: ' && [ "$nsaved" = 4 ] &&
  /usr/bin/python3 - "$tmp/fs.h5" "$tmp/fm.h5" <<'PY'
import sys, h5py, numpy as np
a, b = (h5py.File(p, "r") for p in sys.argv[1:])
n = int(b["trajectory"].attrs["n_saved"])
sys.exit(0 if np.array_equal(a["trajectory/x"][:n], b["trajectory/x"][:n]) else 1)
PY
ok $? "sample, a model failing on rank 1: exit $rc after ${took} s, /stats names rank 1, its ${nsaved} saved states are the serial run's"

# SIGKILL of every rank mid-run: the file opens, and its saved states are the serial run's
args=(sample -b 4 --frame-shape 8x8 -t 8 --steps 600 --save every:1)
"$CORRSDE" "${args[@]}" -o "$tmp/ks.h5" -q
timeout 60 "$MPIRUN" -np 2 --oversubscribe --bind-to none "$CORRSDE_MPI" "${args[@]}" \
  -o "$tmp/km.h5" -q >/dev/null 2>&1 &
job=$!
for _ in $(seq 100); do # until a few states are saved
  [ -n "$(attr "$tmp/km.h5" /trajectory n_saved 2>/dev/null | grep -v '^[0-4]$')" ] && break
  sleep 0.1
done
pkill -KILL -f "$CORRSDE_MPI sample" ; wait $job 2>/dev/null
/usr/bin/python3 - "$tmp/ks.h5" "$tmp/km.h5" <<'PY'
import sys, h5py, numpy as np
a, b = (h5py.File(p, "r") for p in sys.argv[1:])
n = int(b["trajectory"].attrs["n_saved"])
print("# killed after", n, "saved states; status", b["stats"].attrs["status"])
ok = 0 < n < 601 and b["stats"].attrs["status"] == "running" and \
    np.array_equal(a["trajectory/x"][:n], b["trajectory/x"][:n]) and \
    np.array_equal(a["trajectory/t"][:n], b["trajectory/t"][:n])
sys.exit(0 if ok else 1)
PY
ok $? "sample, 2 ranks killed (SIGKILL) mid-run: the file opens, its saved states are the serial run's"

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
