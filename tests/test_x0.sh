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

# ---- off: the bits of the build before the feature ----
# process solver sha256, recorded with the build of a913857 (before the feature) on x86-64
# with OpenBLAS's Prescott kernels: the gaussian model's products depend on the BLAS
# kernel (SkylakeX's give other bits), so these runs pin it.
arch=$(uname -m)
while read -r proc solver want; do
  sv=()
  [ "$solver" != - ] && sv=(--solver "$solver")
  what="$proc${solver/#-/}"
  for clip in "" "-1e3,1e3"; do
    cl=()
    [ -n "$clip" ] && cl=(--x0-clip "$clip")
    OPENBLAS_CORETYPE=Prescott run sample "${small[@]}" --process "$proc" "${sv[@]}" \
      "${cl[@]}" -o "$tmp/r.h5"
    label="off: $proc ${solver/#-/}${clip:+ with --x0-clip $clip (never active)}"
    if [ "$have_h5py" = 0 ] || [ "$arch" != x86_64 ]; then
      skip "$label: /trajectory/x is the old build's" "no h5py, or not x86-64 ($arch)"
      continue
    fi
    got=$([ "$rc" -eq 0 ] && xsum "$tmp/r.h5")
    [ "$rc" -eq 0 ] && [ "$got" = "$want" ]
    ok $? "$label: /trajectory/x is the old build's, bit for bit (sha256 ${got:0:12}...)"
  done
done <<'EOF'
reverse-sde em 3e2d12e5848ac65972c1bb86780025fc5b0e94c445fe622e0dde38378ba3778e
reverse-sde heun d772aa67ad2a777a36fd820d5b16482f13707ec41df3eafc2bb7cea549a1f5cc
pf-ode dpmpp2m 3d7bdf9fae7e90287a058e5821e8988fff0412ae72f9d758468b4e8d302ad6a1
pf-ode unipc f1be16301a98c639d6a8552e052cd7f24930dfadb462e703cb25819923536b9a
ddim:eta=0.5 - 022b3e1d7e8de2fb087e97f312a32d80107ad310e32010b7eba3f017074b62bd
reverse-sde euler-ancestral 544bbe4ac69579eb934b9b5c77c443c3f9c90d484ea8dc98c5473b5f2de2da95
EOF

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
