#!/usr/bin/env bash
# TAP test of `corrsde sample --cond/--uncond/--guidance/--guidance-split` for python:
# models (issue 25, items 1-2; meson sets $CORRSDE to the binary):
#   - a python: model reading ctx.cond = {dataset name: array} (float64 and int64, leading
#     axis the batch or 1) gives bit for bit the states of corrsde.solve(cond=...) with
#     the same model, seed and prior; guided (--uncond, --guidance W or per frame) those of
#     solve(uncond=, guidance=), and --guidance-split the bits of the 2B call;
#   - every bad input exits 2 with one line naming the flag, and makes no file;
#   - --help documents every flag.
set -u
: "${CORRSDE:?set CORRSDE to the corrsde binary}"
PY=${PYTHON3:-/usr/bin/python3}
export PYTHONPATH="$(dirname "$CORRSDE")/python${PYTHONPATH:+:$PYTHONPATH}"
# the package does not set OpenBLAS's threads, whose count changes the dense factor's last
# bits (docs/ARCHITECTURE.md, "The Python package"): one thread, for the bits of the program
export OPENBLAS_NUM_THREADS=1

n=0
failed=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
. "$(dirname "$0")/tap.sh"

if ! "$PY" -c 'import h5py, numpy, corrsde' 2>/dev/null; then
  echo "1..0 # SKIP needs h5py, numpy and the corrsde package (build/python)"
  exit 0
fi

# the model: N(m, 0.25 C) data, m = cond["mean"] + label (per sample), as a cscore
cat >"$tmp/m.py" <<'PYEOF'
import math
import numpy as np

def make(ctx, args):
    def model(t, x, c):
        m = c.cond["mean"]
        assert c.cond["label"].dtype == np.int64, c.cond["label"].dtype
        assert m.shape[0] == x.shape[0] == c.batch, (m.shape, x.shape, c.batch)
        m = m + c.cond["label"].reshape((-1,) + (1,) * (x.ndim - 1))
        ab = c.abar
        return -(x - math.sqrt(ab) * m) / (0.25 * ab + 1 - ab)
    model.output = "cscore"
    return model
PYEOF

"$PY" - "$tmp" <<'PYEOF'
import sys, h5py, numpy as np
d = sys.argv[1]
r = np.random.default_rng(0)
with h5py.File(d + "/c.h5", "w") as f:
    f["c/mean"] = r.normal(size=(3, 4, 2, 2))
    f["c/label"] = np.array([0, 1, 2], dtype=np.int32)
    f["u/mean"] = np.zeros((1, 4, 2, 2))
    f["u/label"] = np.array([0], dtype=np.int32)
    f["bad/mean"] = np.zeros((2, 4, 2, 2))           # axis 0 neither 3 nor 1
    f["bad/label"] = np.array([0, 1, 2])
    f["v/mean2"] = np.zeros((1, 4, 2, 2))             # names unlike --cond's
    f["v/label"] = np.array([0])
    f["sub/mean"] = np.zeros((3, 4, 2, 2))
    f["sub/inner/x"] = np.zeros(3)                   # a group inside
    f["str/mean"] = np.array([b"a", b"b", b"c"])     # not numbers
    f["empty"] = np.zeros(1)
    f.create_group("none")
import corrsde   # the start states, given to both (--init, x=)
with h5py.File(d + "/x0.h5", "w") as f:
    f["x"] = corrsde.Cov("ar1:rho=0.5", frames=4).sample(3, (2, 2), seed=7)
PYEOF

common=(--model "python:$tmp/m.py:make" --frames 4 --frame-shape 2x2 --batch 3 --cov ar1:rho=0.5
        --schedule vp-linear:bmin=0.1,bmax=20 --seed 7 --init "$tmp/x0.h5:/x" -q -f)

# same CLI_OUT KWARGS...: the CLI's /trajectory/x equals solve(...)'s final state bitwise
same() {
  py '
import sys, h5py, numpy as np, corrsde, importlib.util
out, tmp, kw = sys.argv[1], sys.argv[2], eval(sys.argv[3])
spec = importlib.util.spec_from_file_location("m", tmp + "/m.py")
m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)
with h5py.File(tmp + "/c.h5", "r") as f:
    grp = lambda g: {k: (f[g][k][...].astype(np.int64) if f[g][k].dtype.kind == "i"
                         else f[g][k][...]) for k in f[g]}
    for k in ("cond", "uncond"):
        if k in kw: kw[k] = grp(kw[k])
with h5py.File(out, "r") as f:
    xc = f["trajectory/x"][-1]
with h5py.File(tmp + "/x0.h5", "r") as f:
    kw["x"] = f["x"][...]
C = corrsde.Cov("ar1:rho=0.5", frames=4)
r = corrsde.solve(m.make(None, ""), cov=C, schedule="vp-linear:bmin=0.1,bmax=20", seed=7,
                  **kw)
d = np.max(np.abs(r.x - xc))
print("max |cli - solve| =", d)
tol = float(sys.argv[4])
sys.exit(0 if (np.array_equal(r.x, xc) if tol == 0 else d <= tol * max(1, np.abs(xc).max()))
         else 1)' "$1" "$tmp" "$2" "${SAME_TOL:-0}"
}

run sample "${common[@]}" --process pf-ode --solver heun --steps 10 --cond "$tmp/c.h5:/c" -o "$tmp/a.h5"
[ "$rc" -eq 0 ] && same "$tmp/a.h5" 'dict(process="pf-ode", solver="heun", steps=10, cond="c")'
ok $? "--cond: the python: model's ctx.cond is the group's datasets; solve(cond=) bit for bit"

run sample "${common[@]}" --process pf-ode --solver heun --steps 10 --cond "$tmp/c.h5:/c" \
  --uncond "$tmp/c.h5:/u" --guidance 2.5 -o "$tmp/g.h5"
[ "$rc" -eq 0 ] && same "$tmp/g.h5" \
  'dict(process="pf-ode", solver="heun", steps=10, cond="c", uncond="u", guidance=2.5)'
ok $? "--uncond --guidance 2.5 (pf-ode heun): solve(uncond=, guidance=2.5) bit for bit"

run sample "${common[@]}" --process reverse-sde --solver em --steps 10 --cond "$tmp/c.h5:/c" \
  --uncond "$tmp/c.h5:/u" --guidance 2.5 -o "$tmp/e.h5"
rc_e=$rc
run sample "${common[@]}" --process reverse-sde --solver em --steps 10 --cond "$tmp/c.h5:/c" \
  --uncond "$tmp/c.h5:/u" --guidance 2.5 --guidance-split -o "$tmp/es.h5"
[ "$rc_e" -eq 0 ] && [ "$rc" -eq 0 ] && py '
import sys, h5py, numpy as np
a, b = (h5py.File(p, "r")["trajectory/x"][...] for p in sys.argv[1:3])
sys.exit(0 if np.array_equal(a, b) else 1)' "$tmp/e.h5" "$tmp/es.h5"
ok $? "--guidance-split (reverse-sde em): the bits of the one call of 2B"
same "$tmp/e.h5" \
  'dict(process="reverse-sde", solver="em", steps=10, cond="c", uncond="u", guidance=2.5)'
ok $? "reverse-sde em guided: solve(uncond=, guidance=2.5) bit for bit"

run sample "${common[@]}" --process pf-ode --solver dpmpp2m --steps 10 --cond "$tmp/c.h5:/c" \
  --uncond "$tmp/c.h5:/u" --guidance 1,2,3,4 -o "$tmp/gf.h5"
[ "$rc" -eq 0 ] && same "$tmp/gf.h5" \
  'dict(process="pf-ode", solver="dpmpp2m", steps=10, cond="c", uncond="u", guidance=[1,2,3,4])'
ok $? "--guidance 1,2,3,4 (per frame, dpmpp2m): solve(guidance=[1, 2, 3, 4]) bit for bit"

g="$("$CORRSDE" info "$tmp/gf.h5" 2>/dev/null | awk '$1 == "guidance" { $1 = ""; print }')"
case "$g" in *1*2*3*4*) true ;; *) false ;; esac
ok $? "/parameters records guidance (got '$g')"

# ---- bad input: exit 2, one line naming the flag, no file ----
bad() { # LABEL FLAG ARGS...
  local label=$1 flag=$2
  shift 2
  rm -f "$tmp/bad.h5"
  run sample "${common[@]}" --process pf-ode --solver heun --steps 4 "$@" -o "$tmp/bad.h5"
  [ "$rc" -eq 2 ] && [ "$(wc -l <"$tmp/err")" -eq 1 ] && grep -q -- "$flag" "$tmp/err" &&
    [ ! -e "$tmp/bad.h5" ]
  ok $? "$label: exit 2 naming $flag ($(head -c 160 "$tmp/err"))"
}
bad "axis 0 neither the batch nor 1" --cond --cond "$tmp/c.h5:/bad"
bad "no such group" --cond --cond "$tmp/c.h5:/nope"
bad "an empty group" --cond --cond "$tmp/c.h5:/none"
bad "a dataset, not a group" --cond --cond "$tmp/c.h5:/empty"
bad "a group inside the group" --cond --cond "$tmp/c.h5:/sub"
bad "strings, not numbers" --cond --cond "$tmp/c.h5:/str"
bad "no FILE:/group form" --cond --cond "$tmp/c.h5"
bad "a missing file" --cond --cond "$tmp/none.h5:/c"
bad "--uncond's names unlike --cond's" --uncond --cond "$tmp/c.h5:/c" --uncond "$tmp/c.h5:/v" \
  --guidance 2
bad "--guidance without --uncond" --guidance --cond "$tmp/c.h5:/c" --guidance 2
bad "--guidance-split without --uncond" --guidance-split --cond "$tmp/c.h5:/c" --guidance-split
bad "--uncond without --guidance" --uncond --cond "$tmp/c.h5:/c" --uncond "$tmp/c.h5:/u"
bad "--uncond without --cond" --uncond --uncond "$tmp/c.h5:/u" --guidance 2
for w in nan inf 1e4 1,2 abc linear:1; do
  bad "--guidance $w" --guidance --cond "$tmp/c.h5:/c" --uncond "$tmp/c.h5:/u" --guidance "$w"
done
rm -f "$tmp/bad.h5"
run sample --model gaussian --init "$tmp/x0.h5:/x" --cond "$tmp/c.h5:/c" -q -o "$tmp/bad.h5"
[ "$rc" -eq 2 ] && grep -q -- "--cond" "$tmp/err" && [ ! -e "$tmp/bad.h5" ]
ok $? "--cond with the built-in gaussian: exit 2 ($(head -c 120 "$tmp/err"))"

run sample --help
for f in --cond --uncond --guidance --guidance-split; do
  grep -q -- "^ *$f " "$tmp/out"
  ok $? "--help documents $f"
done

echo "1..$n"
[ "$failed" -eq 0 ]
