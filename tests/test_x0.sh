#!/usr/bin/env bash
# TAP test of `corrsde sample --x0-clip / --x0-threshold` (issue 24, item 3; meson sets
# $CORRSDE to the binary):
#   - off: /trajectory/x of em, heun, dpmpp2m, unipc, ddim and euler-ancestral runs is the
#     build's before the feature, bit for bit (sha256 recorded from it; needs h5py), and so
#     is a clip never active;
#   - on: /parameters records the specs (x0_clip, x0_threshold, "none" when off), the result
#     changes, and --threads 2 gives the bits of --threads 1;
#   - each malformed spec exits 2 with one line naming the flag, and makes no file;
#   - --help documents both flags.
set -u
: "${CORRSDE:?set CORRSDE to the corrsde binary}"
PY=${PYTHON3:-/usr/bin/python3}

n=0
failed=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

have_h5py=0
"$PY" -c 'import h5py, numpy' 2>/dev/null && have_h5py=1

. "$(dirname "$0")/tap.sh"

# xsum FILE: sha256 of /trajectory/x's values (float64, C order)
xsum() {
  "$PY" -c 'import h5py, hashlib, sys
with h5py.File(sys.argv[1], "r") as f:
    print(hashlib.sha256(f["/trajectory/x"][...].tobytes()).hexdigest())' "$1"
}

# attr FILE NAME: the /parameters attribute as `corrsde info` prints it
attr() {
  "$CORRSDE" info "$1" | awk -v k="$2" '$1 == k { $1 = ""; sub(/^ +/, ""); print }'
}

small=(--frames 4 --frame-shape 4x4 --batch 3 --steps 12 --seed 3 -q -f)

# ---- off: a clip that never acts leaves every bit ----
# (the bits of the build before the feature are checked by tests/test_x0.c, where a
# canary of the floating point says they apply)
for ps in "reverse-sde em" "reverse-sde heun" "pf-ode dpmpp2m" "pf-ode unipc" "ddim:eta=0.5 -" \
          "reverse-sde euler-ancestral"; do
  read -r proc solver <<<"$ps"
  sv=()
  [ "$solver" != - ] && sv=(--solver "$solver")
  label="off and --x0-clip -1e3,1e3 (never active): $proc ${solver/#-/}"
  if [ "$have_h5py" = 0 ]; then
    skip "$label: the same bits" "no h5py"
    continue
  fi
  run sample "${small[@]}" --process "$proc" "${sv[@]}" -o "$tmp/off.h5"
  rc_off=$rc
  run sample "${small[@]}" --process "$proc" "${sv[@]}" --x0-clip -1e3,1e3 -o "$tmp/wide.h5"
  a=$([ "$rc_off" -eq 0 ] && xsum "$tmp/off.h5")
  b=$([ "$rc" -eq 0 ] && xsum "$tmp/wide.h5")
  [ -n "$a" ] && [ "$a" = "$b" ]
  ok $? "$label: /trajectory/x bit for bit the same (sha256 ${a:0:12}...)"
done

# ---- on: recorded, active, threads ----
run sample "${small[@]}" --process pf-ode --solver dpmpp2m -o "$tmp/off.h5"
[ "$rc" -eq 0 ] && [ "$(attr "$tmp/off.h5" x0_clip)" = none ] &&
  [ "$(attr "$tmp/off.h5" x0_threshold)" = none ]
ok $? "off: /parameters x0_clip and x0_threshold are 'none'"

run sample "${small[@]}" --process pf-ode --solver dpmpp2m --x0-clip -0.1,0.10 -o "$tmp/clip.h5"
[ "$rc" -eq 0 ] && [ "$(attr "$tmp/clip.h5" x0_clip)" = "-0.1,0.1" ] &&
  [ "$(attr "$tmp/clip.h5" x0_threshold)" = none ]
ok $? "--x0-clip -0.1,0.10: /parameters x0_clip '-0.1,0.1', x0_threshold 'none'"

# the gaussian model's data (std 0.5) thresholded at its median: s > 1 needs std 2
model=(--model gaussian:mean=0.3,std=2,rho=0.9)
for j in 1 2; do
  run sample "${small[@]}" "${model[@]}" --process pf-ode --solver dpmpp2m \
    --x0-threshold p=0.9,max=50 --threads "$j" -o "$tmp/thr$j.h5"
  [ "$rc" -eq 0 ] || break
done
[ "$rc" -eq 0 ] && [ "$(attr "$tmp/thr1.h5" x0_threshold)" = "p=0.9,max=50" ] &&
  [ "$(attr "$tmp/thr1.h5" x0_clip)" = none ]
ok $? "--x0-threshold p=0.9,max=50: /parameters x0_threshold 'p=0.9,max=50'"
run sample "${small[@]}" "${model[@]}" --process pf-ode --solver dpmpp2m -o "$tmp/thr0.h5"
if [ "$have_h5py" = 1 ]; then
  s1=$(xsum "$tmp/thr1.h5") s2=$(xsum "$tmp/thr2.h5") s0=$(xsum "$tmp/thr0.h5")
  c0=$(xsum "$tmp/off.h5") c1=$(xsum "$tmp/clip.h5")
  [ "$s1" = "$s2" ] && [ "$s1" != "$s0" ] && [ "$c0" != "$c1" ]
  ok $? "--x0-threshold: --threads 2 gives the bits of --threads 1; threshold and clip change the result"
else
  skip "--x0-threshold: --threads 2 gives the bits of --threads 1" "no h5py"
fi
run sample "${small[@]}" --process pf-ode --x0-threshold p=1 --x0-clip none -o "$tmp/none.h5"
[ "$rc" -eq 0 ]
ok $? "--x0-clip none beside --x0-threshold: accepted (none is off)"

# ---- bad input: exit 2, one line naming the flag, no file ----
bad() {
  local flag=$1 words=$2
  shift 2
  rm -f "$tmp/bad.h5"
  run sample "${small[@]}" "$@" -o "$tmp/bad.h5"
  [ "$rc" -eq 2 ] && [ "$(wc -l <"$tmp/err")" -eq 1 ] && [ ! -s "$tmp/out" ] &&
    grep -qF -- "$flag" "$tmp/err" && grep -qF -- "$words" "$tmp/err" && [ ! -e "$tmp/bad.h5" ]
  ok $? "$* : exit 2, '$flag', '$words'"
}
bad --x0-clip "expected LO,HI" --x0-clip 1
bad --x0-clip "expected LO,HI" --x0-clip ""
bad --x0-clip "expected LO,HI" --x0-clip 1,2,3
bad --x0-clip "expected LO,HI" --x0-clip -1,inf
bad --x0-clip "expected LO,HI" --x0-clip nan,1
bad --x0-clip "expected LO,HI" --x0-clip a,b
bad --x0-clip "LO must be below HI" --x0-clip 1,-1
bad --x0-clip "LO must be below HI" --x0-clip 0,0
bad --x0-threshold "expected p=P" --x0-threshold 0.995
bad --x0-threshold "expected p=P" --x0-threshold ""
bad --x0-threshold "expected p=P" --x0-threshold p=0.9,x=1
bad --x0-threshold "p must be in (0, 1]" --x0-threshold p=0
bad --x0-threshold "p must be in (0, 1]" --x0-threshold p=1.01
bad --x0-threshold "expected a number" --x0-threshold p=
bad --x0-threshold "max must be >= 1" --x0-threshold p=0.9,max=0.9
bad --x0-threshold "p is missing" --x0-threshold max=2
bad --x0-threshold "a key given twice" --x0-threshold p=0.9,p=0.8
bad "--x0-clip and --x0-threshold" "exclude each other" --x0-clip -1,1 --x0-threshold p=0.9
bad --x0-clip "forward-sde never calls the model" --process forward-sde --x0-clip -1,1
bad --x0-threshold "forward-sde never calls the model" --process forward-sde --x0-threshold p=0.9

# ---- help ----
run sample --help
[ "$rc" -eq 0 ] && grep -qF -- "--x0-clip LO,HI" "$tmp/out" &&
  grep -qF -- "--x0-threshold p=P[,max=M]" "$tmp/out" && grep -qF "Imagen" "$tmp/out"
ok $? "sample --help documents --x0-clip and --x0-threshold"

echo "1..$n"
[ "$failed" -eq 0 ]
