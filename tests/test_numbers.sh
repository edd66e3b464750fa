#!/usr/bin/env bash
# TAP test of issue 23, items 12, 15, 16, 17: numbers the command line must refuse or
# report, each with its message (meson sets $CORRSDE to the binary):
#   - lists with an empty entry (--save times:, --grid list:);
#   - schedule parameters outside their consistent range (cosine:s);
#   - covariances whose entries or eigenvalues reach the double range (cov);
#   - spans a solver divides by zero on (log-SNR or sigma/alpha steps at t = 0);
#   - an explicit solver that blows up (the state beyond the process's scale);
#   - runs larger than the memory available, refused before anything large is made.
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

# refused DESCRIPTION STATUS WORDS ARGS...: exit STATUS, one stderr line containing WORDS
# (a fixed string), nothing on stdout, no output file.
refused() {
  local what=$1 want=$2 words=$3
  shift 3
  rm -f "$tmp/bad.h5"
  run "$@"
  [ "$rc" -eq "$want" ] && [ "$(wc -l <"$tmp/err")" -eq 1 ] && [ ! -s "$tmp/out" ] &&
    grep -qF -- "$words" "$tmp/err" && [ ! -e "$tmp/bad.h5" ]
  ok $? "$what: exit $want, '$words'"
}

small=(--frames 4 --frame-shape 8 --batch 2 --steps 10 -q)
B="$tmp/bad.h5"

# ---- 17c: lists with an empty entry ----

refused "--save times:0.5,,0.4" 2 "--save: 'times:0.5,,0.4': entry 2 is empty" \
  sample "${small[@]}" --save times:0.5,,0.4 -o "$B"
refused "--save times:0.5, (a trailing comma)" 2 "entry 2 is empty (a trailing comma)" \
  sample "${small[@]}" --save times:0.5, -o "$B"
for g in "list:1,,0.5,0.001 2" "list:,1,0.001 1" "list:1,0.001, 3"; do
  set -- $g
  refused "--grid $1" 1 "--grid: list grid: entry $2 is empty" \
    sample "${small[@]}" --process pf-ode --grid "$1" -o "$B"
done
run sample "${small[@]}" --process pf-ode --grid "list:1, 0.5 ,0.001" -o "$tmp/ok.h5"
[ "$rc" -eq 0 ]
ok $? "--grid list:1, 0.5 ,0.001 (blanks around the commas) still runs"

# ---- 16: schedule parameters outside their consistent range ----

for s in 1e17 1e308; do
  refused "--schedule cosine:s=$s" 1 "--schedule 'cosine:s=$s': cosine: s = ${s/e/e+} is outside [0, 1e4]" \
    sample "${small[@]}" --schedule "cosine:s=$s" -o "$B"
done
run sample "${small[@]}" --schedule cosine:s=1e4 -o "$tmp/ok16.h5"
[ "$rc" -eq 0 ]
ok $? "--schedule cosine:s=1e4 (the largest s) runs"
run sample --help
# the schedule registry's entry: the form, then its summary with the range of s
grep -A2 -F "cosine[:s=0.008]" "$tmp/out" | tr -s ' \n' ' ' | grep -qF "0 <= s <= 1e4"
ok $? "sample --help gives the range of cosine's s"
refused "--schedule vp-linear:bmin=-1" 1 "bmin = -1 must be >= 0" \
  sample "${small[@]}" --schedule vp-linear:bmin=-1 -o "$B"
refused "--schedule vp-linear:bmax=inf" 1 "'vp-linear:bmax=inf': expected a finite number" \
  sample "${small[@]}" --schedule vp-linear:bmax=inf -o "$B"

# ---- 15: covariances at the double range ----

for m in embed dense circulant auto; do
  refused "cov toeplitz:col=1e308,1e308 --method $m" 1 \
    "is not positive semi-definite: most negative eigenvalue -9.65946e+307" \
    cov --cov toeplitz:col=1e308,1e308 --method $m
  refused "cov toeplitz:col=1e308,1e308 --frames 2 --method $m" 1 "beyond the double range" \
    cov --cov toeplitz:col=1e308,1e308 --frames 2 --method $m
done
run cov --cov toeplitz:col=8e307,4e307 --method embed --format csv
[ "$rc" -eq 0 ] && grep -q "^# eig_min = 1.36215" "$tmp/out" &&
  grep -q "^# eig_max = 1.58637" "$tmp/out"
ok $? "cov toeplitz:col=8e307,4e307: the eigenvalues 8e307 (1 + cos(k pi / 17)), 1.3621e306 .. 1.5864e308"

# ---- 17b: spans a solver divides by zero on ----

refused "pf-ode-encode --solver dpmpp2m --t-start 0" 2 \
  "--t-start/--t-end: solver 'dpmpp2m' steps on the denoiser view and divides by sigma(t) = sqrt(1 - abar(t)) at a step's start, which is 0 at the span's start t_start = 0" \
  sample "${small[@]}" --process pf-ode-encode --solver dpmpp2m --t-start 0 -o "$B"
for s in dpmpp2m unipc; do
  refused "pf-ode --solver $s --t-end 0 --steps 20" 2 "which is 0 at the span's end t_end = 0" \
    sample "${small[@]}" --steps 20 --process pf-ode --solver $s --t-end 0 -o "$B"
done
refused "ddim on vp-linear:bmax=1e6 (abar(1) = 0)" 2 \
  "divides by alpha(t) = sqrt(abar(t)), which is 0 at the span's start t_start = 1" \
  sample "${small[@]}" --process ddim --schedule vp-linear:bmax=1e6 -o "$B"
rm -f "$tmp/edm.h5"
run sample "${small[@]}" --steps 20 --process pf-ode --solver edm-heun --t-end 0 -o "$tmp/edm.h5"
st=$rc
if [ $have_h5py -eq 1 ]; then
  "$PY" -c 'import h5py, numpy as np, sys
f = h5py.File(sys.argv[1], "r")
sys.exit(0 if f["stats"].attrs["status"] in (b"ok", "ok") and np.isfinite(f["trajectory/x"][-1]).all() else 1)' "$tmp/edm.h5"
  st=$((st + $?))
fi
ok $st "pf-ode --solver edm-heun --t-end 0: ends with EDM's Euler step to sigma = 0, finite"

# ---- 17a: an explicit solver that blows up ----

rm -f "$B"
run sample --process forward-sde --schedule vp-linear:bmax=1e6 --steps 20 -q -o "$B"
[ "$rc" -eq 1 ] && grep -q "failed: the state at step 20 (t = 1) grew to max |x| = .*e+7[0-9], beyond 1000 times the process's scale" "$tmp/err" &&
  grep -qF "|h| beta(t) reaches 5e+04 on its grid; explicit steps need it below about 2): use more steps" "$tmp/err"
st=$?
run info "$B"
grep -q "status *failed: the state at step 20 (t = 1) grew to max |x|" "$tmp/out"
ok $((st + $?)) "forward-sde, vp-linear:bmax=1e6, 20 steps: exit 1, the growth and |h| beta named, /stats says so"
run sample "${small[@]}" --steps 1000000 --process forward-sde --schedule vp-linear:bmax=1e6 -o "$tmp/stable.h5"
[ "$rc" -eq 0 ]
ok $? "... the same with 1000000 steps (h beta = 1) passes"

# ---- 12: runs above the memory available, refused before anything large is made ----

start=$(date +%s%N)
refused "--frames 100000000 --frame-shape 100000000" 1 \
  "--batch/--frames/--frame-shape: the run needs 800 PB (states 640 PB, writer 160 PB), but " \
  sample --frames 100000000 --frame-shape 100000000 -o "$B"
grep -q "are available (MemAvailable)" "$tmp/err"
ok $? "... naming MemAvailable"
ms=$((($(date +%s%N) - start) / 1000000))
[ "$ms" -lt 1000 ]
ok $? "... within 1 s (${ms} ms)"
rm -f "$B"
(ulimit -v 400000 && exec timeout 60 "$CORRSDE" sample --batch 16 --frames 16 --frame-shape 512x512 -q -o "$B") \
  >"$tmp/out" 2>"$tmp/err"
rc=$?
[ "$rc" -eq 1 ] && grep -q "the run needs 1.3 GB (states 1.1 GB, writer 268 MB), but .* available (RLIMIT_AS: a soft limit of 410 MB, .* of it in use)" "$tmp/err" &&
  [ ! -e "$B" ]
ok $? "under ulimit -v 400000: 16 x 16 x 512x512 refused, naming RLIMIT_AS and both figures"
if [ $have_h5py -eq 1 ]; then
  # a dataset declared huge, with nothing written (no disk used): refused from its shape
  "$PY" -c 'import h5py, sys
with h5py.File(sys.argv[1], "w") as f:
    f.create_dataset("x", shape=(100000, 100000, 8, 8), dtype="f8", chunks=(1, 1, 8, 8))' "$tmp/huge.h5"
  start=$(date +%s%N)
  refused "--init with a declared shape [100000, 100000, 8, 8]" 1 \
    "--init '$tmp/huge.h5:/x': dataset /x holds states of shape [100000, 100000, 8, 8]: the run needs 13 TB (states 5.1 TB, writer 2.6 TB, other 5.1 TB), but" \
    sample --init "$tmp/huge.h5" --process forward-sde --steps 2 -o "$B"
  ms=$((($(date +%s%N) - start) / 1000000))
  [ "$ms" -lt 1000 ]
  ok $? "... before reading it: within 1 s (${ms} ms)"
else
  skip "--init with a huge declared shape" "no h5py"
  skip "--init with a huge declared shape: time" "no h5py"
fi

echo "1..$n"
[ "$failed" -eq 0 ]
