#!/usr/bin/env bash
# TAP test of the run layer on the gaussian paths (issue 28): `corrsde sample` on rf:shift=3
# and edm end to end (the final frame covariance and mean against the exact p_eps of the
# path, N(alpha m, alpha^2 S0 + sigma^2 C), within 4 standard errors: 4096 independent
# frame vectors, fixed seed), `corrsde converge` on rf:shift=3 (euler, heun: orders 1, 2),
# and times outside the path's span refused naming --t-end and the span.
set -u
: "${CORRSDE:?set CORRSDE to the corrsde binary}"
PY=${PYTHON3:-/usr/bin/python3}
n=0
failed=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
. "$(dirname "$0")/tap.sh"

have_h5py=0
"$PY" -c 'import h5py, numpy' 2>/dev/null && have_h5py=1

# the final state against N(alpha m, alpha^2 S0 + sigma^2 C) at eps; S0 = 0.25 ar1(0.95),
# C = ar1(0.9), m = 0.3 (tau 4; pixels independent: 64 samples x 64 pixels = 4096 vectors)
check_law='
import sys, h5py, numpy as np
f, path, eps = sys.argv[1], sys.argv[2], float(sys.argv[3])
x = h5py.File(f, "r")["trajectory/x"][-1]            # [64, 4, 64]
v = np.transpose(x, (0, 2, 1)).reshape(-1, 4)         # frame vectors
if path == "edm":
    a, s = 1.0, eps
else:                                                 # rf:shift=3: t = 3 u / (1 + 2 u)
    tp = 3 * eps / (1 + 2 * eps)
    a, s = 1 - tp, tp
k = np.abs(np.subtract.outer(np.arange(4), np.arange(4)))
S = a * a * 0.25 * 0.95 ** k + s * s * 0.9 ** k
m = a * 0.3
N = v.shape[0]
Sh = np.cov(v.T, bias=True)
se = np.sqrt((S ** 2 + np.outer(np.diag(S), np.diag(S))) / N)
dc = np.max(np.abs(Sh - S) / se)
dm = np.max(np.abs(v.mean(0) - m) / np.sqrt(np.diag(S) / N))
print("%s: max |cov - exact|/SE %.2f, max |mean - exact|/SE %.2f (N = %d)" % (path, dc, dm, N))
sys.exit(0 if dc < 4 and dm < 4 else 1)
'
law=(--model gaussian:mean=0.3 --frames 4 --frame-shape 64 --batch 64 --seed 7
     --process pf-ode --solver dopri5 --rtol 1e-8)
for sp in "rf:shift=3 rf 0.001" "edm edm 0.002"; do
  set -- $sp
  run sample --schedule "$1" "${law[@]}" -o "$tmp/$2.h5"
  if [ "$have_h5py" -eq 1 ] && [ "$rc" -eq 0 ]; then
    py "$check_law" "$tmp/$2.h5" "$2" "$3"
    ok $? "sample --schedule $1 pf-ode dopri5: final law N(alpha m, alpha^2 S0 + sigma^2 C) at eps $3"
  elif [ "$rc" -ne 0 ]; then
    ok 1 "sample --schedule $1 pf-ode dopri5 runs"
  else
    skip "sample --schedule $1: the final law" "no h5py"
  fi
done

# the default span: edm from smax to smin, rf from 0.999 to 1e-3
if [ "$have_h5py" -eq 1 ]; then
  py '
import sys, h5py
t = h5py.File(sys.argv[1], "r")["trajectory/t"][:]
print("edm t", list(t))
sys.exit(0 if t[-1] == 0.002 else 1)' "$tmp/edm.h5"
  ok $? "sample --schedule edm ends at smin 0.002 by default"
fi

# converge on rf:shift=3: euler order 1, heun order 2
run converge --schedule rf:shift=3 --process pf-ode --solvers euler,heun -o "$tmp/c.h5"
orders=$(grep -E '^  order ' "$tmp/out" | awk '{print $2}' | tr '\n' ' ')
echo "# converge rf:shift=3 orders (euler heun): $orders"
set -- $orders
[ "$rc" -eq 0 ] && awk -v a="${1:-0}" -v b="${2:-0}" \
  'BEGIN { exit !(a > 0.9 && a < 1.1 && b > 1.85 && b < 2.15) }'
ok $? "converge --schedule rf:shift=3 pf-ode: euler order near 1, heun near 2"

# a t-end outside the path's span: refused naming --t-end and the span
run sample --schedule edm --frames 4 --frame-shape 4 --batch 2 --t-end 100 -o "$tmp/bad.h5"
[ "$rc" -ne 0 ] && grep -qF -- '--t-end' "$tmp/err" && grep -qF '[0.002, 80]' "$tmp/err" &&
  [ ! -e "$tmp/bad.h5" ]
ok $? "sample --schedule edm --t-end 100: refused naming --t-end and the span [0.002, 80]"
run sample --schedule edm --frames 4 --frame-shape 4 --batch 2 --process pf-ode \
  --t-end 0.001 -o "$tmp/bad.h5"
[ "$rc" -ne 0 ] && grep -qF -- '--t-end' "$tmp/err" && grep -qF '[0.002, 80]' "$tmp/err"
ok $? "sample --schedule edm --t-end 0.001 (below smin): refused naming --t-end and the span"
run converge --schedule rf:shift=3 --process pf-ode --t-end 1.5 -o "$tmp/bad.h5"
[ "$rc" -ne 0 ] && grep -qF -- '--t-end' "$tmp/err" && grep -qF '[0, 1]' "$tmp/err"
ok $? "converge --schedule rf:shift=3 --t-end 1.5: refused naming --t-end and the span"
run converge --schedule edm --process pf-ode --t-end 0.001 -o "$tmp/bad.h5"
[ "$rc" -ne 0 ] && grep -qF -- '--t-end' "$tmp/err" && grep -qF '[0.002, 80]' "$tmp/err"
ok $? "converge --schedule edm --t-end 0.001: refused naming --t-end and the span"

echo "1..$n"
[ "$failed" -eq 0 ]
