#!/usr/bin/env bash
# TAP test of corrsde-mpi (suite mpi; meson sets $CORRSDE and $CORRSDE_MPI, $MPIRUN): the
# converge table, CSV and /convergence datasets are bitwise those of `corrsde converge` for
# 1, 2 and 3 ranks (h5diff, cmp); more ranks than blocks; bad arguments give one message and
# exit 2 on every rank count; a model that fails on rank 1 only ends the job within seconds
# with rank 1's message. `sample` over 1, 2 and 3 ranks writes the serial run's datasets
# (float64 and float32+gzip, --init, more ranks than samples), stops every rank at the
# step where one fails, and leaves a readable file when killed. Ranks given different
# arguments, or equal ones that resolve differently (a directory, a file's content, the
# environment), all exit within seconds naming the difference and write nothing; two ranks
# on one core do not busy-poll. Open MPI as root on 2 cores: the variables below.
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
for kind in sde ode shared; do
  if [ $kind = sde ]; then
    args=(converge --process reverse-sde --error strong --solvers em,heun,sra1 --levels 3:6
      --paths 24 --bootstrap 300 --seed 4)
  elif [ $kind = shared ]; then # one adaptive reference for both solvers (issue 24)
    args=(converge --solvers euler,heun --levels 3:6 --paths 10 --bootstrap 300
      --reference fine:dopri5:rtol=1e-9)
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
args=(sample -b 5 --frame-shape 4 -t 5 --steps 20 --corrector langevin:snr=0.1,steps=2 --seed 3)
"$CORRSDE" "${args[@]}" -o "$tmp/spc.h5" -q
mpi 2 "${args[@]}" -o "$tmp/mpc.h5"
[ "$rc" -eq 0 ] && same_traj "$tmp/spc.h5" "$tmp/mpc.h5" &&
  [ "$(attr "$tmp/mpc.h5" /parameters corrector)" = '"langevin:snr=0.1,steps=2"' ]
ok $? "sample, 2 ranks, the Langevin corrector: the serial run's datasets (its noise keyed by the global sample)"

mpi 2 sample --rtol 1e-3 -o "$tmp/adapt.h5"
[ "$rc" -eq 2 ] && [ "$(grep -c 'corrsde sample: ' "$tmp/err")" -eq 1 ] &&
  grep -q -- '--rtol' "$tmp/err" && [ ! -e "$tmp/adapt.h5" ]
ok $? "sample, 2 ranks, adaptive steps: refused (exit 2, one message naming --rtol), no file"
mpi 2 info "$tmp/ss.h5"
[ "$rc" -eq 2 ] && [ "$(grep -c 'runs converge, sample and likelihood' "$tmp/err")" -eq 1 ]
ok $? "2 ranks, info: refused (exit 2, one message)"

# likelihood: the samples split over the ranks in contiguous blocks, each keyed by its
# global index: 1, 2 and 3 ranks give the serial run's datasets bit for bit (hutchinson
# probes, adaptive steps; 3 ranks on 2 samples: a rank with none)
PY=${PYTHON3:-/usr/bin/python3}
if "$PY" -c 'import h5py, numpy' 2>/dev/null; then
  "$PY" -c 'import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "w") as f:
    x = 0.5 * np.random.default_rng(3).standard_normal((5, 4, 3)); f["x"] = x; f["two"] = x[:2]' "$tmp/lld.h5"
  same() { "$PY" -c 'import sys, h5py
a, b = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
ks = [k for k in a if k not in ("parameters", "covariance")]
sys.exit(0 if ks and all(a[k][()].tobytes() == b[k][()].tobytes() for k in ks) else 1)' "$1" "$2"; }
  for d in x two; do
    ll=(likelihood --data "$tmp/lld.h5:/$d" --divergence hutchinson:probes=3 --seed 9 --batch 2 -q)
    "$CORRSDE" "${ll[@]}" -o "$tmp/lls_$d.h5"
    for r in 1 2 3; do
      mpi $r "${ll[@]}" -o "$tmp/llm${r}_$d.h5"
      [ "$rc" -eq 0 ] && same "$tmp/lls_$d.h5" "$tmp/llm${r}_$d.h5"
      ok $? "likelihood /$d, $r rank(s), hutchinson probes: the serial run's datasets bit for bit"
    done
  done
  mpi 2 likelihood --data "$tmp/lld.h5:/x" --divergence hutchinson:probes=2 --jvp fd:step=7 -o "$tmp/llbad.h5"
  [ "$rc" -ne 0 ] && [ "$(grep -c 'corrsde likelihood: ' "$tmp/err")" -eq 1 ] && [ ! -e "$tmp/llbad.h5" ]
  ok $? "likelihood, 2 ranks, a bad --jvp: one message, no file (exit $rc)"
else
  skip "likelihood over ranks" "h5py is needed to write the data"
fi

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
  grep -q 'faulty' "$tmp/err" && [ "$took" -lt 30 ] &&
  attr "$tmp/f.h5" /convergence status | grep -q '^"failed: .*rank 1: .*faulty'
ok $? "a model failing on rank 1 only: exit $rc after ${took} s, the message and the file's status (made before the first solve) name rank 1"
mpi 1 converge --model "$plugin" --solvers euler --levels 3:4 --paths 16 -o "$tmp/f1.h5"
[ "$rc" -eq 0 ]
ok $? "the same plugin on 1 rank (rank 0: it never fails) runs"

# ---- every rank runs rank 0's job, or none runs (issue 23, item 9) ----
# Ranks given different arguments (MPMD: mpirun -np 1 corrsde-mpi ARGS : -np 1 corrsde-mpi
# ARGS2), or equal arguments that resolve differently on some rank (its directory, the
# content of a file it reads, an environment variable that changes the arithmetic): every
# rank exits (2 for arguments, 1 for settings) within seconds, rank 0 prints one message
# naming the first difference, and no output, .partial or .lock is left. Each rank runs under
# rank.sh, which keeps its exit status in rc.RANK and exits 0 (so that mpirun, which ends a
# job at its first non-zero exit, lets every rank report its own). timeout 20: a hang fails
# the test, not the suite.
cat >"$tmp/rank.sh" <<'SH'
"$@"
echo $? >"rc.$OMPI_COMM_WORLD_RANK"
SH
mmd=0
# mm WANT_RC PATTERN DESC: run r0 (on nr0 ranks, default 1) then r1 (nr1 ranks) as one job in
# a fresh directory $d (set up by mm_dir); sets took (seconds)
mm_dir() { mmd=$((mmd + 1)); d="$tmp/mm$mmd"; mkdir -p "$d/x" "$d/y"; }
mm() {
  local want=$1 pat=$2 desc=$3 start k good=1
  local nr0=${nr0:-1} nr1=${nr1:-1}
  last_args="(mpirun -np $nr0) ${r0[*]} : (-np $nr1) ${r1[*]}"
  start=$(date +%s.%N)
  (cd "$d" && timeout -k 5 20 "$MPIRUN" --oversubscribe --bind-to none \
    -np "$nr0" sh "$tmp/rank.sh" "${r0[@]}" : -np "$nr1" sh "$tmp/rank.sh" "${r1[@]}") \
    >"$tmp/out" 2>"$tmp/err"
  rc=$?
  took=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
  for ((k = 0; k < nr0 + nr1; k++)); do
    [ "$(cat "$d/rc.$k" 2>/dev/null)" = "$want" ] || good=0
  done
  [ "$rc" -eq 0 ] && [ "$good" = 1 ] && [ "$(grep -c "differ from rank 0's" "$tmp/err")" -eq 1 ] &&
    grep -qF -- "$pat" "$tmp/err" && [ -z "$(find "$d" -name '[a-d].h5*')" ] &&
    awk -v t="$took" 'BEGIN { exit !(t < 10) }'
  ok $? "$desc: every rank exits $want after $took s with one message naming it, no output"
  sed -n "1s/^/#   /p" "$tmp/err"
}
P=$CORRSDE_MPI
base=(sample -q -b 2 --frame-shape 4 -t 4 --steps 20 -o a.h5)
variant() { # variant PATTERN DESC WORDS...: rank 1 runs WORDS (exit 2: the arguments)
  local pat=$1 desc=$2
  shift 2
  mm_dir
  r0=("$P" "${base[@]}")
  r1=("$P" "$@")
  mm 2 "$pat" "$desc"
}
variant "the value of --steps, is '30', rank 0 has '20'" "sample --steps 20 / 30" \
  sample -q -b 2 --frame-shape 4 -t 4 --steps 30 -o a.h5
variant "the value of -o, is 'b.h5', rank 0 has 'a.h5'" "sample -o a.h5 / b.h5" \
  sample -q -b 2 --frame-shape 4 -t 4 --steps 20 -o b.h5
variant "the value of -b, is '3'" "sample --batch 2 / 3" \
  sample -q -b 3 --frame-shape 4 -t 4 --steps 20 -o a.h5
variant "the value of --frame-shape, is '2x2'" "sample --frame-shape 4 / 2x2" \
  sample -q -b 2 --frame-shape 2x2 -t 4 --steps 20 -o a.h5
variant "argument 13 is '--dtype', rank 0 has only 12" "sample --dtype float32 on rank 1" \
  sample -q -b 2 --frame-shape 4 -t 4 --steps 20 -o a.h5 --dtype float32
variant "argument 13 is '--compress'" "sample --compress on rank 1" \
  sample -q -b 2 --frame-shape 4 -t 4 --steps 20 -o a.h5 --compress
variant "argument 13 is '--save'" "sample --save every:5 on rank 1" \
  sample -q -b 2 --frame-shape 4 -t 4 --steps 20 -o a.h5 --save every:5
variant "argument 13 is '--seed'" "sample --seed 2 on rank 1 (it used to mix)" \
  sample -q -b 2 --frame-shape 4 -t 4 --steps 20 -o a.h5 --seed 2
base=(sample -q -b 2 --frame-shape 4 -t 4 --steps 20 -o a.h5 --seed 1)
variant "the value of --seed, is '2', rank 0 has '1'" "sample --seed 1 / 2, both given" \
  sample -q -b 2 --frame-shape 4 -t 4 --steps 20 -o a.h5 --seed 2
base=(sample -q -b 2 --frame-shape 4 -t 4 --steps 20 -o a.h5)
variant "argument 13 is '--process'" "sample --process pf-ode on rank 1 (it used to mix)" \
  sample -q -b 2 --frame-shape 4 -t 4 --steps 20 -o a.h5 --process pf-ode
variant "argument 13 is '--grid'" "sample --grid quadratic on rank 1" \
  sample -q -b 2 --frame-shape 4 -t 4 --steps 20 -o a.h5 --grid quadratic
base=(sample -q -b 2 --frame-shape 4 -t 4 --steps 20 -o a.h5 --grid uniform)
variant "the value of --grid, is 'quadratic', rank 0 has 'uniform'" "sample --grid uniform / quadratic, both given" \
  sample -q -b 2 --frame-shape 4 -t 4 --steps 20 -o a.h5 --grid quadratic
base=(sample -q -b 2 --frame-shape 4 -t 4 --steps=20 -o a.h5)
variant "the value of --steps, is '30', rank 0 has '20'" "sample --steps=20 / --steps=30" \
  sample -q -b 2 --frame-shape 4 -t 4 --steps=30 -o a.h5
base=(sample -q -b 2 --frame-shape 4 -t 4 --steps 20 -o a.h5)
variant "the command is 'converge', rank 0 has 'sample'" "sample / converge" \
  converge -q -b 2 --frame-shape 4 -t 4 --steps 20 -o a.h5
variant "argument 13 is '--help'" "sample --help on rank 1 only" \
  sample -q -b 2 --frame-shape 4 -t 4 --steps 20 -o a.h5 --help
mm_dir # the help on rank 0, the run on rank 1: rank 1 is the one that differs from rank 0
r0=("$P" --help) r1=("$P" "${base[@]}")
mm 2 "the command is 'sample', rank 0 has '--help'" "corrsde-mpi --help on rank 0, sample on rank 1"
variant "argument 2 is '-b', rank 0 has '-q'" "the same options in another order: refused" \
  sample -b 2 -q --frame-shape 4 -t 4 --steps 20 -o a.h5
variant "argument 13 is '--force'" "sample --force on rank 1 only" \
  sample -q -b 2 --frame-shape 4 -t 4 --steps 20 -o a.h5 --force
mm_dir # 3 ranks, the third differs
nr0=2 r0=("$P" "${base[@]}") r1=("$P" sample -q -b 2 --frame-shape 4 -t 4 --steps 21 -o a.h5)
mm 2 "rank 2's arguments differ" "3 ranks, rank 2's --steps differs"
nr0=1

# converge
base=(converge -q --solvers euler --levels 3:4 --paths 4 --bootstrap 100 -o c.h5)
variant "the value of --paths, is '8', rank 0 has '4'" "converge --paths 4 / 8" \
  converge -q --solvers euler --levels 3:4 --paths 8 --bootstrap 100 -o c.h5
variant "the value of -o, is 'd.h5', rank 0 has 'c.h5'" "converge -o c.h5 / d.h5 (rank 1's was ignored)" \
  converge -q --solvers euler --levels 3:4 --paths 4 --bootstrap 100 -o d.h5
variant "the value of --solvers, is 'heun', rank 0 has 'euler'" "converge --solvers euler / heun" \
  converge -q --solvers heun --levels 3:4 --paths 4 --bootstrap 100 -o c.h5
variant "argument 13 is '--seed'" "converge --seed 5 on rank 1" \
  converge -q --solvers euler --levels 3:4 --paths 4 --bootstrap 100 -o c.h5 --seed 5
variant "argument 13 is '--help'" "converge --help on rank 1 only" \
  converge -q --solvers euler --levels 3:4 --paths 4 --bootstrap 100 -o c.h5 --help

# the same arguments, resolved differently (exit 1: the settings)
base=(sample -q -b 2 --frame-shape 4 -t 4 --steps 20)
mm_dir # -o a.h5 in two directories: two files
r0=(env -C x "$P" "${base[@]}" -o a.h5) r1=(env -C y "$P" "${base[@]}" -o a.h5)
mm 1 "-o (its absolute path) is '$d/y/a.h5', rank 0 has '$d/x/a.h5'" "sample -o a.h5 from two directories"
mm_dir # --init i.h5 from two directories, two contents
"$CORRSDE" sample -q -b 2 --frame-shape 4 -t 4 --steps 5 --seed 1 -o "$d/x/i.h5"
"$CORRSDE" sample -q -b 2 --frame-shape 4 -t 4 --steps 5 --seed 2 -o "$d/y/i.h5"
r0=(env -C x "$P" "${base[@]}" --init i.h5 -o "$d/a.h5")
r1=(env -C y "$P" "${base[@]}" --init i.h5 -o "$d/a.h5")
mm 1 "the content of --init file 'i.h5' is" "sample --init i.h5 whose content differs"
mm_dir # a covariance from a file whose content differs
printf '1\n0.5\n0.25\n' >"$d/x/col.txt"
printf '1\n0.5\n0.2\n' >"$d/y/col.txt"
r0=(env -C x "$P" "${base[@]}" --cov toeplitz:file=col.txt -o "$d/a.h5")
r1=(env -C y "$P" "${base[@]}" --cov toeplitz:file=col.txt -o "$d/a.h5")
mm 1 "the content of --cov file 'col.txt' is" "sample --cov toeplitz:file=col.txt whose content differs"
mm_dir # BLAS for the frame products on rank 1: other rounding
r0=("$P" "${base[@]}" -o a.h5) r1=(env CSDE_SMALLMM_KERNEL=blas "$P" "${base[@]}" -o a.h5)
mm 1 "the frame products (CSDE_SMALLMM_KERNEL, the CPU) is 'BLAS', rank 0 has 'the fma chain'" \
  "sample, CSDE_SMALLMM_KERNEL=blas on rank 1"
mm_dir # converge, a covariance file whose content differs
printf '1\n0.5\n0.25\n' >"$d/x/col.txt"
printf '1\n0.5\n0.2\n' >"$d/y/col.txt"
base=(converge -q --solvers euler --levels 3:4 --paths 4 --bootstrap 100 -t 3 --cov toeplitz:file=col.txt)
r0=(env -C x "$P" "${base[@]}" -o "$d/c.h5") r1=(env -C y "$P" "${base[@]}" -o "$d/c.h5")
mm 1 "the content of --cov file 'col.txt' is" "converge --cov toeplitz:file=col.txt whose content differs"

# what agrees runs: the same arguments through MPMD, and an --init copied to each directory
mm_dir
base=(sample -q -b 2 --frame-shape 4 -t 4 --steps 20)
"$CORRSDE" sample -q -b 2 --frame-shape 4 -t 4 --steps 5 --seed 1 -o "$d/x/i.h5"
cp "$d/x/i.h5" "$d/y/i.h5"
r0=(env -C x "$P" "${base[@]}" --init i.h5 -o "$d/a.h5")
r1=(env -C y "$P" "${base[@]}" --init i.h5 -o "$d/a.h5")
(cd "$d" && timeout -k 5 20 "$MPIRUN" --oversubscribe --bind-to none \
  -np 1 sh "$tmp/rank.sh" "${r0[@]}" : -np 1 sh "$tmp/rank.sh" "${r1[@]}") >"$tmp/out" 2>"$tmp/err"
rc=$?
"$CORRSDE" "${base[@]}" --init "$d/x/i.h5" -o "$d/s.h5"
[ "$rc" -eq 0 ] && [ "$(cat "$d/rc.0")" = 0 ] && [ "$(cat "$d/rc.1")" = 0 ] && [ ! -s "$tmp/err" ] &&
  same_traj "$d/s.h5" "$d/a.h5"
ok $? "the same arguments through MPMD, --init copied to two directories: runs, the serial run's datasets"

# ---- a waiting rank yields its core (issue 23, item 10) ----
# Two ranks on one core, which is what busy cores do to them: a rank that busy-polls while it
# waits for the other at a step keeps the core from the very rank it waits for, a time slice
# per step. corrsde-mpi yields by default (mpi_yield_when_idle): its solve (the seconds sample
# prints) is a small part of the busy poll's (--mca mpi_yield_when_idle 0). The best of 2.
solve_s() { sed -n 's/^nfe .*, \([0-9.]*\) s, status ok$/\1/p' "$tmp/out"; }
args=(sample -b 2 --frame-shape 8x8 -t 8 --steps 100)
yield_s=9 busy_s=0
for _ in 1 2; do
  for how in default busy; do
    mca=()
    [ $how = busy ] && mca=(--mca mpi_yield_when_idle 0)
    rm -f "$tmp/y.h5"
    env -u OMPI_MCA_mpi_yield_when_idle timeout 60 taskset -c 0 "$MPIRUN" -np 2 --oversubscribe \
      --bind-to none "${mca[@]}" "$CORRSDE_MPI" "${args[@]}" -o "$tmp/y.h5" >"$tmp/out" 2>&1
    t=$(solve_s)
    [ -n "$t" ] || t=99
    if [ $how = default ]; then
      yield_s=$(awk -v a="$yield_s" -v b="$t" 'BEGIN { print (b < a ? b : a) }')
    else
      busy_s=$(awk -v a="$busy_s" -v b="$t" 'BEGIN { print (b > a && a > 0 ? a : b) }')
    fi
  done
done
awk -v y="$yield_s" -v b="$busy_s" 'BEGIN { exit !(4 * y < b) }'
ok $? "2 ranks on one core, 100 steps: the solve takes $yield_s s by default, $busy_s s busy-polling"

echo "1..$n"
[ "$failed" -eq 0 ]
