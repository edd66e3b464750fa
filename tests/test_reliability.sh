#!/usr/bin/env bash
# TAP test of what issue 10 found broken in `corrsde sample`'s output, each provoked:
#  1. a full disk (a small tmpfs, where this test may mount one): exit 1, no crash, every
#     state before the failure whole and equal to an undisturbed run's, the status kept;
#     the disk filled by another process during the run; a file-size limit (the writer
#     cannot even flush: `corrsde info` explains the file and how to read it);
#  2. SIGKILL at random moments (KILLS of them): every state /trajectory n_saved counts is
#     whole and equal to an undisturbed run's, bit for bit, and `corrsde info` counts the same;
#  3. --force keeps the old file until the new run is viable (a failure at the first steps,
#     a plugin failing on its first call, a SIGKILL), and long --save times lists;
#  4. a second writer of the same output is refused before it touches the file;
#  5. SIGHUP stops a run like SIGINT;
#  6. non-finite states fail the run (huge beta, float32 overflow, a huge model output);
#  7. --init with an empty axis; 10. adaptive --save times at the start time;
# 11. messages that named the wrong option, relative plugin paths, `info` on a FIFO.
set -u
: "${CORRSDE:?set CORRSDE to the corrsde binary}"
: "${CSDE_PLUGIN_FAULTY:?set CSDE_PLUGIN_FAULTY to tests/plugin_faulty.so}"
PY=${PYTHON3:-/usr/bin/python3}
KILLS=${CSDE_TEST_KILLS:-60}

n=0
failed=0
tmp=$(mktemp -d)
mnt=
bgpid=
cleanup() {
  [ -n "$bgpid" ] && kill -9 "$bgpid" 2>/dev/null
  [ -n "$mnt" ] && umount "$mnt" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

. "$(dirname "$0")/tap.sh"

have_h5py=0
"$PY" -c 'import h5py, numpy' 2>/dev/null && have_h5py=1
need_py() { # need_py DESCRIPTION: skip (and return 1) without h5py
  [ $have_h5py -eq 1 ] && return 0
  skip "$1" "no python3-h5py"
  return 1
}

# wait_for FILE SECONDS: until FILE exists (0) or the time is up (1)
wait_for() { # wait_for FILE|GLOB SECONDS
  local k f
  for ((k = 0; k < $2 * 50; k++)); do
    for f in $1; do [ -e "$f" ] && return 0; done
    sleep 0.02
  done
  return 1
}
partials() { # partials OUT: how many OUT.partial.XXXXXX there are
  local f n=0
  for f in "$1".partial.*; do [ -e "$f" ] && n=$((n + 1)); done
  echo $n
}

# Python helpers shared by the checks below.
PYLIB='
import sys, h5py, numpy as np
def states(path):
    """The whole states of a trajectory file: (x[:n], t[:n], step[:n], n, extent)."""
    with h5py.File(path, "r") as f:
        tr = f["trajectory"]
        n = int(tr.attrs["n_saved"]) # a missing one is a failure
        return tr["x"][:n], tr["t"][:n], tr["step"][:n], n, tr["x"].shape[0]
def same(a, b):
    return a.shape == b.shape and a.tobytes() == b.tobytes()
'

small=(--frames 4 --frame-shape 8x8 --batch 2 --seed 3)

# ---- 1. disk full ----

mnt="$tmp/small"
mkdir -p "$mnt"
if mount -t tmpfs -o size=2M tmpfs "$mnt" 2>/dev/null; then
  # the states of every:1 would fit one by one at first: refused only when the disk is full
  # (--compress, and the room check before the run is told there are only 20 steps)
  cases=("--save every:1 --compress" "--save every:1 --dtype float32 --compress"
         "--save final --frame-shape 128x128 --steps 400 --compress")
  for c in "${cases[@]}"; do
    rm -f "$mnt"/*
    # shellcheck disable=SC2086
    run sample --frames 8 --frame-shape 16x16 --batch 2 --steps 200 $c -q -o "$mnt/full.h5"
    [ "$rc" -eq 1 ] && grep -q "disk full" "$tmp/err" && [ "$(wc -l <"$tmp/err")" -eq 1 ] &&
      [ ! -e "$mnt/full.h5.lock" ] && [ "$(partials "$mnt/full.h5")" = 0 ]
    ok $? "disk full ($c): exit 1 (no crash), one line saying 'disk full', no lock left"
    # shellcheck disable=SC2086
    "$CORRSDE" sample --frames 8 --frame-shape 16x16 --batch 2 --steps 200 $c -q \
      -o "$tmp/full_ref.h5" --force 2>/dev/null
    if need_py "disk full ($c): the states before the failure equal an undisturbed run's"; then
      py "$PYLIB"'
x, t, s, n, ext = states(sys.argv[1]); rx, rt, rs, rn, _ = states(sys.argv[2])
with h5py.File(sys.argv[1], "r") as f:
    st = f["stats"].attrs["status"]; sn = int(f["stats"].attrs["n_saved"])
ok = (st.startswith("failed:") and "disk full" in st and sn == n and ext >= n
      and n < rn and same(x, rx[:n]) and same(t, rt[:n]) and same(s, rs[:n]))
print("%d whole states of %d, status %r" % (n, rn, st))
sys.exit(0 if ok else 1)
' "$mnt/full.h5" "$tmp/full_ref.h5"
      ok $? "disk full ($c): the states before the failure equal an undisturbed run's, status kept"
    fi
  done
  # a run that cannot fit is refused before it starts: nothing is written
  rm -f "$mnt"/*
  run sample --frames 8 --frame-shape 16x16 --batch 2 --steps 200 --save every:1 -o "$mnt/no.h5"
  [ "$rc" -eq 1 ] && grep -q "disk full: the run saves 201 states" "$tmp/err" &&
    [ -z "$(ls -A "$mnt")" ]
  ok $? "a run the disk cannot hold (every:1, 201 states): refused before it starts, no file"
  run sample --frames 8 --frame-shape 128x128 --batch 2 --steps 400 -o "$mnt/no.h5"
  [ "$rc" -eq 1 ] && grep -q "disk full: the run saves 1 state of" "$tmp/err" && [ -z "$(ls -A "$mnt")" ]
  ok $? "a final state the disk cannot hold: refused before the solve, no file"
  # the disk filled by another process while the run writes. An uncompressed run of
  # known length has its space from the start: it finishes. A compressed one needs more
  # as it goes: the room check or HDF5's failed write, whichever comes first, fails it,
  # and either way the file stays whole.
  for z in "" --compress; do
    umount "$mnt" && mount -t tmpfs -o size=24M tmpfs "$mnt"
    # shellcheck disable=SC2086
    "$CORRSDE" sample "${small[@]}" --steps 40000 --save every:10 $z -q -o "$mnt/race.h5" \
      2>"$tmp/race_err" &
    bgpid=$!
    for ((k = 0; k < 250; k++)); do
      [ -e "$mnt/race.h5" ] && [ "$(stat -c %s "$mnt/race.h5")" -gt 200000 ] && break
      sleep 0.02
    done
    dd if=/dev/zero of="$mnt/filler" bs=64k 2>/dev/null
    wait "$bgpid"
    rc=$?
    bgpid=
    if [ -z "$z" ]; then
      [ "$rc" -eq 0 ]
      ok $? "disk filled by another process during an uncompressed run: it finishes (got $rc)"
    else
      [ "$rc" -eq 1 ] && grep -q "disk full" "$tmp/race_err"
      ok $? "disk filled by another process during a compressed run: exit 1 (got $rc), 'disk full'"
    fi
    if need_py "disk filled during the run ($z): every counted state is whole"; then
      py "$PYLIB"'
x, t, s, n, ext = states(sys.argv[1])
# every:10 on the uniform grid from 1 to 1e-3 in 40000 steps: state k is step 10 k
want_t = 1 - 10 * np.arange(n) * (1 - 1e-3) / 40000
ok = (n > 3 and np.all(np.isfinite(x)) and np.all(np.abs(x).reshape(n, -1).sum(1) > 0)
      and np.array_equal(s, 10 * np.arange(n)) and np.allclose(t, want_t, rtol=0, atol=1e-12)
      and (sys.argv[2] == "z" or n == ext == 4001))
print("%d whole states (x has %d entries)" % (n, ext)); sys.exit(0 if ok else 1)
' "$mnt/race.h5" "${z:+z}"
      ok $? "disk filled during the ${z:-uncompressed} run: h5py reads every counted state whole"
    fi
    rm -f "$mnt/filler"
  done
  umount "$mnt"
  mnt=
else
  for what in "disk full: exit 1 without a crash" "disk full: states equal an undisturbed run's" \
              "disk filled during the run"; do
    skip "$what" "cannot mount a tmpfs here (needs root and mount)"
  done
fi

# A file-size limit. A run of known size past it is refused before it starts.
(ulimit -f 1500 && trap '' XFSZ &&
  "$CORRSDE" sample --frames 8 --frame-shape 16x16 --batch 2 --steps 200 --save every:1 -q \
    -o "$tmp/nolimit.h5" >/dev/null 2>"$tmp/limit_err")
lrc=$?
[ "$lrc" -eq 1 ] && grep -q "past the file-size limit of 1.536 MB (ulimit -f)" "$tmp/limit_err" &&
  [ -z "$(ls "$tmp"/nolimit.h5* 2>/dev/null)" ]
ok $? "file-size limit: a run of known size past it is refused at the start, no file (got $lrc)"
# A compressed run reaches it as it goes: each append checks the room left under the limit
# first (as it checks the free disk), so the run fails with its states kept and the file
# readable; SIGXFSZ is ignored, so a write past the limit would fail with EFBIG instead of
# killing the run.
lim=(--frames 8 --frame-shape 16x16 --batch 2 --steps 200 --save every:1 --compress -q)
(ulimit -f 1500 &&
  "$CORRSDE" sample "${lim[@]}" -o "$tmp/limit.h5" >/dev/null 2>"$tmp/limit_err")
lrc=$?
[ "$lrc" -eq 1 ] && grep -q "the file-size limit (ulimit -f)" "$tmp/limit_err" &&
  [ ! -e "$tmp/limit.h5.lock" ]
ok $? "file-size limit, compressed: exit 1 (got $lrc, not killed by SIGXFSZ), the failure names the limit"
if need_py "file-size limit: the counted states are whole and right, /stats says why"; then
  "$CORRSDE" sample "${lim[@]}" -o "$tmp/limit_ref.h5"
  py "$PYLIB"'
x, t, s, n, ext = states(sys.argv[1]); rx, rt, rs, rn, _ = states(sys.argv[2])
with h5py.File(sys.argv[1], "r") as f: st = f["stats"].attrs["status"]
print("%d whole states, status %r" % (n, st))
sys.exit(0 if n > 10 and same(x, rx[:n]) and same(t, rt[:n]) and "ulimit -f" in st else 1)
' "$tmp/limit.h5" "$tmp/limit_ref.h5"
  ok $? "file-size limit: the counted states are whole and right, /stats says why"
fi
# Below the lock file's disk reserve (256 KiB): posix_fallocate past the limit raises
# SIGXFSZ, which killed the run (exit 153) before the program ignored it.
(ulimit -f 200 && "$CORRSDE" sample "${small[@]}" --steps 10 --compress -q -o "$tmp/xfsz.h5" \
  2>"$tmp/limit_err")
lrc=$?
[ "$lrc" -eq 0 ] && [ ! -e "$tmp/xfsz.h5.lock" ] && "$CORRSDE" info "$tmp/xfsz.h5" | grep -q "status *ok"
ok $? "ulimit -f 200 (a write past the limit, the lock's reserve): no SIGXFSZ, exit 0 (got $lrc), status ok"
# A file shorter than its superblock says (its writer could not finish it): corrsde info
# explains it and the 'truncate -s' that makes it readable.
cp "$tmp/limit_ref.h5" "$tmp/short.h5"
full=$(stat -c %s "$tmp/short.h5")
truncate -s $((full - 100)) "$tmp/short.h5"
run info "$tmp/short.h5"
[ "$rc" -eq 1 ] && grep -q "is truncated" "$tmp/err" && grep -q "truncate -s $full " "$tmp/err"
ok $? "a truncated file: corrsde info explains it and gives the 'truncate -s $full'"

# ---- 2. SIGKILL at random moments ----

RANDOM=10 # the kill times are the same on every run of the test
killargs=("${small[@]}" --steps 20000 --save every:1 -q) # 4 KiB states, 80 MB in all
mkdir -p "$tmp/kills"
for ((k = 0; k < KILLS; k++)); do
  extra=()
  [ $((k % 6)) -eq 5 ] && extra=(--compress) # every sixth: gzip, the slower append
  "$CORRSDE" sample "${killargs[@]}" "${extra[@]}" -o "$tmp/kills/k$k.h5" 2>"$tmp/kills/k$k.err" &
  bgpid=$!
  # the file appears once whole (it is written as .partial until then): kill after that,
  # at a random moment of the appends (a loaded machine can take seconds to get there)
  wait_for "$tmp/kills/k$k.h5" 120 || echo "# k$k.h5 did not appear within 120 s"
  sleep "0.$(printf '%03d' $((RANDOM % 400 + 20)))"
  kill -9 "$bgpid" 2>/dev/null
  wait "$bgpid" 2>/dev/null
  bgpid=
done
if need_py "SIGKILL: every counted state is whole"; then
  # the undisturbed runs, as far as the longest killed one got (EM: one NFE a step)
  maxn=$(py "$PYLIB"'
import glob
m = 1
for p in glob.glob(sys.argv[1] + "/*.h5"):
    try: m = max(m, states(p)[3])
    except Exception: pass  # counted as bad below
print(m)
' "$tmp/kills" | sed -n 's/^#   py: \([0-9]*\)$/\1/p')
  "$CORRSDE" sample "${killargs[@]}" --max-nfe "$((maxn))" -o "$tmp/kill_ref.h5" 2>/dev/null
  "$CORRSDE" sample "${killargs[@]}" --compress --max-nfe "$((maxn))" -o "$tmp/kill_refz.h5" \
    2>/dev/null
  py "$PYLIB"'
import glob, re
rx, rt, rs, rn, _ = states(sys.argv[2]); zx, zt, zs, zn, _ = states(sys.argv[3])
bad, unfilled, counts = [], 0, []
for p in sorted(glob.glob(sys.argv[1] + "/*.h5")):
    k = int(re.search(r"k(\d+)\.h5", p).group(1))
    try:
        x, t, s, n, ext = states(p)
    except Exception as e:
        bad.append((p, repr(e)))
        continue
    qx, qt, qs = (zx, zt, zs) if k % 6 == 5 else (rx, rt, rs)
    if not (n <= len(qx) and same(x, qx[:n]) and same(t, qt[:n]) and same(s, qs[:n])):
        bad.append((p, n, ext))
    # past n_saved (and the entry being written): room not yet used, 0 (t NaN, step -1)
    with h5py.File(p, "r") as f:
        tr = f["trajectory"]
        ok = (tr["x"].shape[0] == 20001 and not np.any(tr["x"][-1])
              and np.all(np.isnan(tr["t"][n + 1:])) and np.all(tr["step"][n + 1:] == -1))
        unfilled += int(not ok)
    counts.append(n)
print("%d killed files, %d states each (median), from %d to %d; %d with a state not whole, "
      "%d with room past n_saved that is not 0 (t NaN, step -1)"
      % (len(counts), int(np.median(counts or [0])), min(counts or [0]), max(counts or [0]),
         len(bad), unfilled))
for b in bad[:5]: print("bad:", b)
for k in range(int(sys.argv[4])):  # a run that made no file: what it said
    p = "%s/k%d.h5" % (sys.argv[1], k)
    if not glob.glob(p): print("missing:", p, open(p[:-3] + ".err").read()[:300])
# a kill before the first append leaves n_saved = 0, a whole (empty) trajectory
sys.exit(0 if not bad and not unfilled and len(counts) == int(sys.argv[4])
         and max(counts or [0]) > 100 else 1)
' "$tmp/kills" "$tmp/kill_ref.h5" "$tmp/kill_refz.h5" "$KILLS"
  ok $? "SIGKILL at $KILLS random moments: every state n_saved counts equals the undisturbed run's"
  # corrsde info counts the same states
  agree=0
  for f in "$tmp"/kills/*.h5; do
    want=$("$PY" -c "import h5py,sys; print(int(h5py.File(sys.argv[1],'r')['trajectory'].attrs['n_saved']))" "$f")
    "$CORRSDE" info "$f" | grep -q "^ *$want saved state" && agree=$((agree + 1))
  done
  [ "$agree" -eq "$KILLS" ]
  ok $? "SIGKILL: corrsde info counts n_saved states in all $KILLS files ($agree agree)"
fi

# ---- 3. --force keeps the old file until the new run is viable ----

"$CORRSDE" sample "${small[@]}" --steps 20 --save every:5 -q -o "$tmp/good.h5"
sum0=$(sha256sum <"$tmp/good.h5")
keeps_old() { # keeps_old DESCRIPTION: good.h5 unchanged, no .partial.* and no .lock left
  [ "$(sha256sum <"$tmp/good.h5")" = "$sum0" ] && [ "$(partials "$tmp/good.h5")" = 0 ] &&
    [ ! -e "$tmp/good.h5.lock" ]
  ok $? "$1"
}
run sample "${small[@]}" --steps 20 --max-nfe 1 --force -o "$tmp/good.h5"
[ "$rc" -eq 1 ] && grep -q "kept as it was" "$tmp/err"
ok $? "--force, the run fails at its second step (--max-nfe 1): exit 1, says the old file is kept"
keeps_old "--force, --max-nfe 1: the old file is untouched, nothing left beside it"
run sample "${small[@]}" --steps 20 --save every:1 --model "plugin:$CSDE_PLUGIN_FAULTY:fail=1" \
  --force -o "$tmp/good.h5"
[ "$rc" -eq 1 ] && grep -q "kept as it was" "$tmp/err"
ok $? "--force, a plugin that fails on its first call (start state saved): exit 1, old file kept"
keeps_old "--force, failing plugin: the old file is untouched"
"$CORRSDE" sample "${small[@]}" --steps 2000000 --force -q -o "$tmp/good.h5" 2>/dev/null &
bgpid=$!
wait_for "$tmp/good.h5.partial.*" 10
sleep 0.3
kill -9 "$bgpid"
wait "$bgpid" 2>/dev/null
bgpid=
[ "$(sha256sum <"$tmp/good.h5")" = "$sum0" ] && [ "$(partials "$tmp/good.h5")" = 1 ]
ok $? "--force, SIGKILL before the new run is viable: the old file is untouched, the killed run's good.h5.partial.XXXXXX is left"
run sample "${small[@]}" --steps 20 --seed 4 --force -q -o "$tmp/good.h5"
[ "$rc" -eq 0 ] && [ "$(sha256sum <"$tmp/good.h5")" != "$sum0" ] &&
  [ "$(partials "$tmp/good.h5")" = 1 ] && [ ! -e "$tmp/good.h5.lock" ]
ok $? "--force after a killed one: the new run replaces the file, leaves nothing of its own and keeps the killed run's temporary (not its file)"
rm -f "$tmp"/good.h5.partial.*
times=$(awk 'BEGIN { for (i = 0; i <= 10000; i++) printf "%s%.6f", i ? "," : "", 1 - i * 0.999 / 10000 }')
run sample "${small[@]}" --steps 10000 --save "times:$times" -q -o "$tmp/times.h5"
if [ "$rc" -eq 0 ] && need_py "--save times: with 10001 values"; then
  py '
import sys, h5py
with h5py.File(sys.argv[1], "r") as f:
    n = f["trajectory/t"].shape[0]; m = f["parameters/save_times"].shape[0]
print(n, m); sys.exit(0 if n == 10001 and m == 10001 else 1)
' "$tmp/times.h5"
  ok $? "--save times: with 10001 values (beyond HDF5's 64 KiB attribute): all saved and recorded"
else
  ok 1 "--save times: with 10001 values runs"
fi

# ---- 4. a second writer ----

"$CORRSDE" sample "${small[@]}" --steps 300000 --save every:1000 -q -o "$tmp/w.h5" 2>"$tmp/w_err" &
bgpid=$!
wait_for "$tmp/w.h5" 10
sleep 0.2
run sample "${small[@]}" --steps 10 --force -o "$tmp/w.h5"
[ "$rc" -eq 1 ] && grep -q "another run" "$tmp/err" && grep -qF "$tmp/w.h5.lock" "$tmp/err"
ok $? "a second --force writer of a file being written: refused, naming the lock"
run sample "${small[@]}" --steps 10 --force -o "$tmp/w.h5" --save every:1
wait "$bgpid"
wrc=$?
bgpid=
[ "$wrc" -eq 0 ] && [ ! -e "$tmp/w.h5.lock" ]
ok $? "the first writer finishes with exit 0 (got $wrc) and removes its lock"
if need_py "the first writer's file is whole"; then
  py "$PYLIB"'
x, t, s, n, ext = states(sys.argv[1])
with h5py.File(sys.argv[1], "r") as f: st = f["stats"].attrs["status"]
print(n, ext, st); sys.exit(0 if st == "ok" and n == ext == 301 and s[-1] == 300000 else 1)
' "$tmp/w.h5"
  ok $? "the first writer's file is whole: 301 states, status ok"
fi

# ---- 5. SIGHUP ----

"$CORRSDE" sample "${small[@]}" --steps 2000000 --save every:1000 -q -o "$tmp/hup.h5" \
  2>"$tmp/hup_err" &
bgpid=$!
wait_for "$tmp/hup.h5" 10
sleep 0.3
kill -HUP "$bgpid"
wait "$bgpid"
hrc=$?
bgpid=
run info "$tmp/hup.h5"
[ "$hrc" -eq 1 ] && grep -q "status *failed: interrupted by signal 1 (Hangup)" "$tmp/out" &&
  [ ! -e "$tmp/hup.h5.lock" ]
ok $? "SIGHUP: exit 1 (got $hrc), status 'failed: interrupted by signal 1 (Hangup)'"

# ---- 6. non-finite states ----

nonfinite() { # nonfinite DESCRIPTION WORDS ARGS...: exit 1, stderr has WORDS, status failed
  local what=$1 words=$2
  shift 2
  rm -f "$tmp/nf.h5"
  run sample "$@" -q -o "$tmp/nf.h5"
  local st=$rc
  grep -q "$words" "$tmp/err"
  local g=$?
  run info "$tmp/nf.h5"
  [ "$st" -eq 1 ] && [ $g -eq 0 ] && grep -q "status *failed: the state at step" "$tmp/out"
  ok $? "$what: exit 1, '$words', the status says which step"
}
nonfinite "forward-sde with bmax = 1e6 overflows" "is not finite" "${small[@]}" --steps 100 \
  --process forward-sde --schedule vp-linear:bmax=1000000
if need_py "float32 overflow"; then
  "$PY" -c 'import h5py, numpy as np, sys
with h5py.File(sys.argv[1], "w") as f: f["x"] = np.full((2, 4, 8, 8), 1e41)' "$tmp/big.h5"
  nonfinite "a float32 file of values beyond float32's range" "does not fit in float32" \
    --init "$tmp/big.h5" --process forward-sde --dtype float32 --save every:1 --steps 5
  nonfinite "float32 overflow saved only at the end" "does not fit in float32" \
    --init "$tmp/big.h5" --process forward-sde --dtype float32 --steps 5
fi
nonfinite "heun, a model answering a finite 1e308 from its 30th call" "is not finite" \
  "${small[@]}" --steps 20 --process pf-ode --solver heun \
  --model "plugin:$CSDE_PLUGIN_FAULTY:value=0.1,big=1e308,big_at=30"
if need_py "the states before a non-finite one are kept"; then
  run sample "${small[@]}" --steps 100 --save every:10 --process forward-sde \
    --schedule vp-linear:bmax=1000000 -q -o "$tmp/nf2.h5"
  py "$PYLIB"'
x, t, s, n, ext = states(sys.argv[1])
print(n, list(s)); sys.exit(0 if n >= 1 and n == ext and np.all(np.isfinite(x)) else 1)
' "$tmp/nf2.h5"
  ok $? "non-finite: the finite states saved before are kept, none after"
fi

# ---- 7, 11. messages ----

# expect_error DESCRIPTION PREFIX ARGS...: exit 1 or 2, one stderr line starting with PREFIX
expect_error() {
  local what=$1 prefix=$2
  shift 2
  rm -f "$tmp/bad.h5"
  run "$@"
  [ "$rc" -ge 1 ] && [ "$rc" -le 2 ] && [ "$(wc -l <"$tmp/err")" -eq 1 ] &&
    grep -q "^corrsde [a-z]*: $prefix" "$tmp/err" && [ ! -e "$tmp/bad.h5" ]
  ok $? "$what: one line starting '$prefix'"
}
if [ $have_h5py -eq 1 ]; then
  for shape in "0, 4, 8" "2, 0, 8" "2, 4, 0"; do
    "$PY" -c "import h5py, numpy as np, sys
with h5py.File(sys.argv[1], 'w') as f: f['x'] = np.zeros(($shape,))" "$tmp/empty.h5"
    expect_error "--init of shape [$shape]" "--init .*empty axis" sample --init "$tmp/empty.h5" \
      -o "$tmp/bad.h5"
  done
fi
if [ $have_h5py -eq 1 ]; then # sizes whose product overflows size_t (no storage written)
  "$PY" -c 'import h5py, sys
with h5py.File(sys.argv[1], "w") as f:
    f.create_dataset("x", shape=(2**40, 2**40, 2**40), dtype="f8", chunks=(1, 1, 1))' "$tmp/huge.h5"
  run cov --cov "dense:file=$tmp/huge.h5:/x" --frames 4
  [ "$rc" -eq 1 ] && grep -q "too large to read" "$tmp/err"
  ok $? "a dataset of 2^120 values: 'too large to read', exit 1 (no overflowed buffer)"
fi
expect_error "--grid karras:rho=nan" "--grid" sample --grid karras:rho=nan -o "$tmp/bad.h5"
expect_error "--grid uniform:x=1" "--grid" sample --grid uniform:x=1 -o "$tmp/bad.h5"
expect_error "--batch 1000000000" "--batch" sample --batch 1000000000 -o "$tmp/bad.h5"
expect_error "ddpm-linear:n=-1" "--schedule .*positive integer" sample --process ddpm \
  --schedule ddpm-linear:n=-1 -o "$tmp/bad.h5"
expect_error "ddpm-linear:n= -1 (a blank, then a sign)" "--schedule .*positive integer" sample \
  --process ddpm --schedule "ddpm-linear:n= -1" -o "$tmp/bad.h5"
expect_error "--steps 0" "--steps" sample --steps 0 -o "$tmp/bad.h5"
mkfifo "$tmp/fifo"
timeout 20 "$CORRSDE" info "$tmp/fifo" >"$tmp/out" 2>"$tmp/err"
rc=$?
[ "$rc" -eq 1 ] && grep -q "not a regular file (a FIFO)" "$tmp/err"
ok $? "corrsde info on a FIFO: exit 1 at once (got $rc), 'not a regular file'"
if [ -n "${CSDE_PLUGIN_MLP:-}" ]; then
  cp "$CSDE_PLUGIN_MLP" "$tmp/mine.so"
  (cd "$tmp" && "$CORRSDE" sample --model plugin:mine.so --frames 4 --frame-shape 4 --steps 5 \
    -q -o rel.h5)
  ok $? "plugin:NAME.so in the current directory loads (dlopen does not search there)"
fi

# ---- 10. adaptive --save times at the start ----

if need_py "adaptive --save times:1 saves the start state"; then
  "$PY" -c 'import h5py, numpy as np, sys
with h5py.File(sys.argv[1], "w") as f: f["x"] = np.random.default_rng(1).standard_normal((2, 4, 8))' \
    "$tmp/x0.h5"
  for solver in rk45 dopri5; do
    run sample --init "$tmp/x0.h5" --process pf-ode --solver $solver --rtol 1e-6 \
      --save times:1,0.5 -q -o "$tmp/start_$solver.h5"
    py '
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r") as f, h5py.File(sys.argv[2], "r") as g:
    x, t, s = f["trajectory/x"][:], f["trajectory/t"][:], f["trajectory/step"][:]
    x0 = g["x"][:]
print(list(t), list(s))
sys.exit(0 if len(t) == 3 and t[0] == 1 and s[0] == 0 and x[0].tobytes() == x0.tobytes()
         and abs(t[1] - 0.5) < 1e-12 and s[1] > 0 else 1)
' "$tmp/start_$solver.h5" "$tmp/x0.h5"
    ok $? "adaptive $solver, --save times:1,0.5: the first saved state is the start (step 0, bitwise)"
  done
fi

# ---- plugin ABI 2: a callback with the model's context, whose failure gives its reason ----

run sample "${small[@]}" --steps 10 --model "plugin:$CSDE_PLUGIN_FAULTY:fail=3,ctx=1" -q \
  -o "$tmp/ctx.h5"
[ "$rc" -eq 1 ] && grep -q "fatal code -7 at t = .* (step 2): faulty: failing as asked at step 2 (sigma 25.15)" "$tmp/err"
ok $? "plugin ABI 2 (fn_ctx): the context's step and sigma, and the model's reason in the message"
run sample "${small[@]}" --steps 10 --model "plugin:$CSDE_PLUGIN_FAULTY:ctx=1" -q -o "$tmp/ctx2.h5"
"$CORRSDE" sample "${small[@]}" --steps 10 --model "plugin:$CSDE_PLUGIN_FAULTY" -q -o "$tmp/ctx1.h5"
[ "$rc" -eq 0 ] && cmp -s <(h5dump -d /trajectory/x "$tmp/ctx2.h5" | tail -n +3) \
  <(h5dump -d /trajectory/x "$tmp/ctx1.h5" | tail -n +3)
ok $? "plugin ABI 2: the context callback gives the ABI 1 callback's states"

# ---- a run of unknown length: adaptive --save every:K grows x, t and step by doubling ----

if need_py "adaptive every:1: the datasets grow past their first 64 entries"; then
  run sample --init "$tmp/x0.h5" --process pf-ode --solver dopri5 --rtol 1e-13 --atol 1e-13 \
    --save every:1 -q -o "$tmp/grow.h5"
  py '
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r") as f:
    tr, st = f["trajectory"], f["stats"].attrs
    n = int(tr.attrs["n_saved"]); x, t, s = tr["x"][:], tr["t"][:], tr["step"][:]
    acc = int(st["accepted"])
print(n, acc)
# every accepted step and the start, in order, finite, and nothing past them
sys.exit(0 if n == acc + 1 > 128 and len(x) == len(t) == len(s) == n
         and np.array_equal(s, np.arange(n)) and np.all(np.diff(t) < 0) and t[-1] == 1e-3
         and np.all(np.isfinite(x)) else 1)
' "$tmp/grow.h5"
  ok $? "adaptive dopri5, --save every:1 (length unknown): every accepted step saved, cut to n_saved"
fi

# ---- 7. files the run did not create (issue 23 §1-4, §17) ----

# A victim file and a fingerprint of a directory entry (its kind, inode, size, contents).
fp() { # fp PATH: what it is, never following a link
  if [ -L "$1" ]; then echo "link $(readlink "$1")"
  elif [ -f "$1" ]; then echo "file $(stat -c '%i %s' "$1") $(sha256sum <"$1")"
  elif [ -e "$1" ]; then stat -c '%F %i' "$1"
  else echo absent; fi
}
pl="$tmp/place"
mkdir -p "$pl"
echo "keep me" >"$pl/victim.txt"
mkdir -p "$pl/victim_dir"
victim=$(fp "$pl/victim.txt")
# place KIND PATH: put a hostile entry of that kind at PATH
place() {
  rm -rf "$2"
  case $1 in
    symlink) ln -s "$pl/victim.txt" "$2" ;;
    dangling) ln -s "$pl/nowhere.txt" "$2" ;;
    dirlink) ln -s "$pl/victim_dir" "$2" ;;
    hardlink) ln "$pl/victim.txt" "$2" ;;
    fifo) mkfifo "$2" ;;
    socket) "$PY" -c 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$2" ;;
    dir) mkdir "$2" ;;
    device) mknod "$2" c 1 3 ;; # the null device's numbers, in our own directory
    notlock) echo "a user's notes" >"$2" ;;
  esac
}
kinds=(symlink dangling dirlink fifo dir)
[ -n "$PY" ] && kinds+=(socket)
mknod "$pl/probe" c 1 3 2>/dev/null && kinds+=(device) && rm -f "$pl/probe"
placed=0 refused=0 untouched=0
# try KIND WHERE: a run whose OUT (where=out) or OUT.lock (where=lock) is such an entry
try() {
  local kind=$1 where=$2 force cmd
  for force in "" --force; do
    for cmd in sample converge csv plot; do
      rm -rf "$pl"/o.h5* "$pl"/o.csv* "$pl"/o.png*
      local out=$pl/o.h5 args
      case $cmd in
        sample) args=(sample "${small[@]}" --steps 3 -q -o "$out") ;;
        converge) args=(converge --levels 2:3 --paths 4 -q -o "$out") ;;
        csv) out=$pl/o.csv; args=(converge --levels 2:3 --paths 4 -q -o "$pl/o.h5" --csv "$out") ;;
        plot) [ -n "$PY" ] || continue
          out=$pl/o.png; args=(converge --levels 2:3 --paths 4 -q -o "$pl/o.h5" --plot "$out") ;;
      esac
      local at=$out
      [ "$where" = lock ] && at=$out.lock
      place "$kind" "$at"
      local before victim_dir_n
      before=$(fp "$at")
      victim_dir_n=$(ls -A "$pl/victim_dir" | wc -l)
      CSDE_RUN_TIMEOUT=${CSDE_PLACE_TIMEOUT:-30} run "${args[@]}" $force # a FIFO would block
      placed=$((placed + 1))
      [ "$rc" -ne 0 ] && refused=$((refused + 1))
      if [ "$(fp "$at")" = "$before" ] && [ "$(fp "$pl/victim.txt")" = "$victim" ] &&
         [ "$(ls -A "$pl/victim_dir" | wc -l)" = "$victim_dir_n" ]; then
        untouched=$((untouched + 1))
      else
        echo "# $kind at $(basename "$at") ($cmd $force): touched: $(fp "$at") / $(fp "$pl/victim.txt")"
      fi
      [ "$rc" -ne 0 ] || echo "# $kind at $(basename "$at") ($cmd $force): not refused"
    done
  done
  rm -rf "$at"
}
for k in "${kinds[@]}"; do try "$k" out; done
for k in "${kinds[@]}" hardlink notlock; do try "$k" lock; done
[ "$placed" -ge 50 ] && [ "$refused" -eq "$placed" ] && [ "$untouched" -eq "$placed" ]
ok $? "$placed hostile entries (symlinks, dangling and to a directory, FIFOs, sockets, directories, devices at OUT and OUT.lock; hard links and foreign files at OUT.lock) for sample, converge -o, --csv, --plot, with and without --force: $refused refused, $untouched left as they were"
run sample "${small[@]}" --steps 3 -q -o "$pl/o.h5"
rm -rf "$pl"/o.h5*
place symlink "$pl/o.h5"
run sample "${small[@]}" --steps 3 --force -o "$pl/o.h5"
[ "$rc" -eq 1 ] && grep -q "'$pl/o.h5' is a symbolic link: refused" "$tmp/err"
ok $? "a symlink at OUT with --force: exit 1, the message names it and says why"
rm -f "$pl/o.h5"
# the temporary's old fixed name: a link there is never followed (the name is fresh)
place symlink "$pl/o.h5.partial"
run sample "${small[@]}" --steps 3 --force -q -o "$pl/o.h5"
[ "$rc" -eq 0 ] && [ "$(fp "$pl/victim.txt")" = "$victim" ] && [ -L "$pl/o.h5.partial" ] &&
  [ "$(partials "$pl/o.h5")" = 0 ]
ok $? "a symlink at OUT.partial (the old temporary name): the run writes its own fresh name, the victim is untouched"
rm -rf "$pl"/o.h5*
if mknod "$pl/null" c 1 3 2>/dev/null; then
  run sample "${small[@]}" --steps 3 -q --force -o "$pl/null"
  [ "$rc" -eq 1 ] && [ -c "$pl/null" ] && grep -q "is a device: refused" "$tmp/err"
  ok $? "--force over a character device (mknod c 1 3 in a temporary directory): refused, still a device"
  rm -f "$pl/null"
else
  skip "--force over a character device" "mknod needs root"
fi

# §3: a second writer through the temporary's name or the lock's
"$CORRSDE" sample "${small[@]}" --steps 5 --save every:1 -q -o "$pl/w.h5"
"$CORRSDE" sample "${small[@]}" --steps 400000 --save every:100000 --force -q -o "$pl/w.h5" \
  2>"$tmp/w_err" &
bgpid=$!
wait_for "$pl/w.h5.partial.*" 10
tmpname=$(ls "$pl"/w.h5.partial.* | head -1)
run sample "${small[@]}" --steps 3 --force -o "$tmpname"
rc_tmp=$rc
grep -q "locked by another process" "$tmp/err"
g_tmp=$?
run sample "${small[@]}" --steps 3 --force -o "$pl/w.h5.lock"
rc_lock=$rc
grep -q "locked by another process" "$tmp/err"
g_lock=$?
run sample "${small[@]}" --steps 3 --force -q -o "$pl/w.h5.partial"
rc_old=$rc
wait "$bgpid"
wrc=$?
bgpid=
if need_py "a second writer through the temporary or the lock"; then
  py "$PYLIB"'
x, t, s, n, ext = states(sys.argv[1])
sys.exit(0 if n == 5 and s[-1] == 400000 else 1)
' "$pl/w.h5"
  got=$?
else
  got=0
fi
[ "$rc_tmp" -eq 1 ] && [ "$g_tmp" -eq 0 ] && [ "$rc_lock" -eq 1 ] && [ "$g_lock" -eq 0 ] &&
  [ "$rc_old" -eq 0 ] && [ "$wrc" -eq 0 ] && [ "$got" -eq 0 ] && [ ! -e "$pl/w.h5.lock" ] &&
  [ "$(partials "$pl/w.h5")" = 0 ]
ok $? "while a --force run writes w.h5: --force -o its temporary and -o w.h5.lock are refused (locked), -o w.h5.partial is a file of its own; the first run ends with its 5 states in w.h5 (exits $rc_tmp $rc_lock $rc_old $wrc)"
rm -rf "$pl"/w.h5*

# §4: a stop signal during the first step with --force never replaces the old file
"$CORRSDE" sample "${small[@]}" --steps 5 --save every:1 -q -o "$pl/s.h5"
old=$(fp "$pl/s.h5")
for sig in 2 15 1; do
  run sample "${small[@]}" --steps 5 --save every:1 --force -o "$pl/s.h5" \
    --model "plugin:$CSDE_PLUGIN_FAULTY:raise=$sig,raise_at=1"
  [ "$rc" -eq 1 ] && [ "$(fp "$pl/s.h5")" = "$old" ] && grep -q "kept as it was" "$tmp/err" &&
    [ "$(partials "$pl/s.h5")" = 0 ] && [ ! -e "$pl/s.h5.lock" ]
  ok $? "signal $sig raised during step 1 of a --force run: exit 1, the old file kept whole, nothing left beside it"
done
run sample "${small[@]}" --steps 5 --save every:1 --force -o "$pl/s.h5" \
  --model "plugin:$CSDE_PLUGIN_FAULTY:raise=15,raise_at=2"
run info "$pl/s.h5"
[ "$(fp "$pl/s.h5")" != "$old" ] && grep -q "failed: interrupted by signal 15" "$tmp/out"
ok $? "a signal during step 2 (after the first state past the start): the new file replaced it and records the stop"

# §17: a model that calls exit() during the run
run sample "${small[@]}" --steps 5 --save every:1 -o "$pl/x.h5" \
  --model "plugin:$CSDE_PLUGIN_FAULTY:exit_at=3"
rc_x=$rc
run info "$pl/x.h5"
[ "$rc_x" -eq 1 ] && grep -q "status *failed: the model ended the process (exit) during step 3" "$tmp/out" &&
  grep -q "3 saved states" "$tmp/out" && [ ! -e "$pl/x.h5.lock" ]
ok $? "a plugin that calls exit(0) in step 3: exit 1 (got $rc_x), /stats says the model ended the process, 3 states kept"
rm -rf "$pl"

echo "1..$n"
[ "$failed" -eq 0 ]
