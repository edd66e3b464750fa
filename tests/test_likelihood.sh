#!/usr/bin/env bash
# TAP test of `corrsde likelihood` (issue 27, item 5; meson sets $CORRSDE):
#   - the exact gaussian model (tau 5, D 2, ar1 C, 4 samples written with h5py): the PF-ODE
#     with the directional divergence gives log p - prior + log N(x_T; mu_T, Sigma_T) =
#     log N(x; sqrt(abar_eps) m, Sigma_eps) (the closed form) to 1e-6 relative at rtol 1e-9,
#     for data [n, tau, D] and [n, tau];
#   - --batch and --threads never change a bit of any dataset (adaptive, fixed steps,
#     hutchinson probes);
#   - bad inputs each exit non-zero with one line naming the option and write nothing;
#   - --help documents every option.
#   - --dequant uniform: bpd of 8-bit data takes the offset 7, batch never changes a bit;
#   - --elbo: nll = L_T + L_sum + L_0 per sample, batch and threads never change a bit;
#   - issue 28: rf:shift=3 end to end against its closed form, edm's default span, the
#     refusals of rf at T = 1, edm beyond smax and --elbo on a path.
set -u
: "${CORRSDE:?set CORRSDE to the corrsde binary}"
PY=${PYTHON3:-/usr/bin/python3}

n=0
failed=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
. "$(dirname "$0")/tap.sh"

if ! "$PY" -c 'import h5py, numpy' 2>/dev/null; then
  echo "1..0 # SKIP h5py and numpy are needed to write the data"
  exit 0
fi

"$PY" - "$tmp" <<'PYEOF'
import sys, h5py, numpy as np
d = sys.argv[1]
r = np.random.default_rng(27)
x = 0.6 * r.standard_normal((4, 5, 2))
with h5py.File(d + "/data.h5", "w") as f:
    f["x"] = x
    f["x2"] = x[:, :, 0]                          # [n, tau]
    f["wrong"] = x[:, :4, :]                      # tau 4
    bad = x.copy(); bad[2, 3, 1] = np.nan
    f["nan"] = bad
    f["C3"] = np.eye(3)
    f["k"] = np.floor(r.uniform(0, 256, (3, 5, 2)))  # 8-bit integers
PYEOF

# closed OUT.h5 DATASET: max relative error of logp - prior + log N(x_T; mu_T, Sigma_T)
# against log N(x; sqrt(abar_eps) m, Sigma_eps), the gaussian model's defaults (m 0,
# S0 0.25 ar1(0.95)), C ar1(0.9), vp-linear 0.1..20
closed='
import sys, h5py, numpy as np
out, dset, data = sys.argv[1], sys.argv[2], sys.argv[3]
def ar1(t, rho): i = np.arange(t); return rho ** np.abs(i[:, None] - i[None, :])
def abar(t): return np.exp(-(0.1 * t + 19.9 * t * t / 2))
def logn(x, S):   # x [n, tau, D] columns N(0, S) per pixel
    L = np.linalg.cholesky(S); tau = S.shape[0]
    z = np.linalg.solve(L, x.transpose(1, 0, 2).reshape(tau, -1))
    D = x.shape[2]
    return (-0.5 * (z * z).reshape(tau, x.shape[0], D).sum(axis=(0, 2))
            - D * (np.log(np.diag(L)).sum() + 0.5 * tau * np.log(2 * np.pi)))
with h5py.File(out, "r") as f:
    lp, pr, xT = f["logp"][()], f["prior"][()], f["xT"][()]
    eps, T = f["parameters"].attrs["eps"], f["parameters"].attrs["T"]
with h5py.File(data, "r") as f:
    x = f[dset][()]
if x.ndim == 2: x = x[:, :, None]
if xT.ndim == 2: xT = xT[:, :, None]
tau = x.shape[1]; S0 = 0.25 * ar1(tau, 0.95); C = ar1(tau, 0.9)
Sig = lambda t: abar(t) * S0 + (1 - abar(t)) * C
want = logn(x, Sig(eps))
got = lp - pr + logn(xT, Sig(T))
e = np.max(np.abs(got - want) / np.abs(want))
print("closed form", want, "computed", got, "max rel err %.3g" % e)
sys.exit(0 if e < 1e-6 else 1)
'

same='
import sys, h5py, numpy as np
a, b = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
keys = [k for k in a if k not in ("parameters", "covariance")]
bad = [k for k in keys if a[k][()].tobytes() != b[k][()].tobytes()]
print("datasets", keys, "differ:", bad)
sys.exit(1 if bad or not keys else 0)
'

tight=(--divergence directional --rtol 1e-9 --atol 1e-9 -q)
run likelihood --data "$tmp/data.h5" "${tight[@]}" -o "$tmp/ll.h5"
ok $((rc != 0)) "likelihood runs on [4, 5, 2] data (exit $rc)"
py "$closed" "$tmp/ll.h5" x "$tmp/data.h5"
ok $? "gaussian model: log p - prior + log N(x_T; mu_T, Sigma_T) = closed form to 1e-6 (rtol 1e-9)"
run likelihood --data "$tmp/data.h5:/x2" "${tight[@]}" -o "$tmp/ll2.h5"
py "$closed" "$tmp/ll2.h5" x2 "$tmp/data.h5"
ok $? "[n, tau] data (D 1): the closed form to 1e-6 (exit $rc)"

# the table and the summary line
run likelihood --data "$tmp/data.h5" --divergence directional -o "$tmp/t.h5"
grep -q 'log p nats *bits/dim *se *interval *NFE' "$tmp/out" &&
  [ "$(grep -cE '^ +[0-3] ' "$tmp/out")" -eq 4 ] &&
  grep -q '^4 samples: mean log p .* nats, mean .* bits/dim (se .* over samples), nfe [0-9]*, directional divergence, jvp fd' "$tmp/out"
ok $? "prints a row per sample and the summary line (mean nats, bpd and its se, nfe, the route)"

# a trajectory file of corrsde sample: its last saved state, as --init takes it
run sample --frames 5 --frame-shape 2 --batch 3 --steps 6 --save every:2 -q -o "$tmp/traj.h5"
r0=$rc
"$PY" -c 'import sys, h5py
with h5py.File(sys.argv[1], "r") as f, h5py.File(sys.argv[2], "w") as g:
    g["x"] = f["trajectory/x"][f["trajectory"].attrs["n_saved"] - 1]' "$tmp/traj.h5" "$tmp/last.h5"
run likelihood --data "$tmp/traj.h5" "${tight[@]}" -o "$tmp/lt0.h5"
r1=$rc
run likelihood --data "$tmp/last.h5" "${tight[@]}" -o "$tmp/lt1.h5"
py "$same" "$tmp/lt0.h5" "$tmp/lt1.h5"
ok $((r0 != 0 || r1 != 0 || rc != 0 || $? != 0)) "--data TRAJ.h5 (corrsde sample -o): the last saved state's likelihood, bit for bit"

# --batch and --threads never change a bit
for mode in "" "--steps 40" "--divergence hutchinson:probes=3 --steps 30" "--divergence hutchinson:probes=2"; do
  run likelihood --data "$tmp/data.h5" --divergence directional $mode --seed 5 -q -o "$tmp/b0.h5" -f
  r0=$rc
  run likelihood --data "$tmp/data.h5" --divergence directional $mode --seed 5 -q --batch 3 --threads 2 -o "$tmp/b1.h5" -f
  py "$same" "$tmp/b0.h5" "$tmp/b1.h5"
  ok $((r0 != 0 || rc != 0 || $? != 0)) "--batch 3 --threads 2 gives the bits of --batch 16 --threads 1 (${mode:-adaptive})"
done

# bad inputs: a non-zero exit, one line naming the option, no file
bad() { # WHAT PATTERN ARGS...
  local what=$1 pat=$2
  shift 2
  rm -f "$tmp/bad.h5"
  run likelihood "$@" -o "$tmp/bad.h5"
  [ "$rc" -ne 0 ] && [ "$(wc -l <"$tmp/err")" -eq 1 ] && grep -q -- "$pat" "$tmp/err" &&
    [ ! -e "$tmp/bad.h5" ] && [ ! -s "$tmp/out" ] && ! ls "$tmp"/bad.h5.* >/dev/null 2>&1
  ok $? "$what: exit $rc, one line naming $pat, nothing written"
}
bad "a missing dataset" "--data '.*:/nope'" --data "$tmp/data.h5:/nope"
bad "a missing file" "--data" --data "$tmp/none.h5"
bad "a wrong tau (--frames)" "dataset /wrong has shape \[4, 4, 2\], expected \[n, 5" --data "$tmp/data.h5:/wrong" --frames 5
bad "a covariance of another tau" "--cov" --data "$tmp/data.h5" --cov "dense:file=$tmp/data.h5:/C3"
bad "NaN in the data" "dataset /nan holds nan in sample 2 at index 7" --data "$tmp/data.h5:/nan"
bad "a bad --divergence" "^corrsde likelihood: --divergence" --data "$tmp/data.h5" --divergence sometimes
bad "a bad hutchinson probe" "^corrsde likelihood: --divergence.*probe" --data "$tmp/data.h5" --divergence hutchinson:probe=cauchy
bad "a bad --jvp" "^corrsde likelihood: --jvp" --data "$tmp/data.h5" --jvp fd:step=2
bad "a bad --dequant" "^corrsde likelihood: --dequant" --data "$tmp/data.h5" --dequant gaussian
bad "a bad --elbo" "^corrsde likelihood: --elbo" --data "$tmp/data.h5" --schedule ddpm-linear:n=20 --elbo:draws=0
bad "the ddim solver" "^corrsde likelihood: --solver" --data "$tmp/data.h5" --solver ddim --steps 10 --divergence directional
bad "--elbo with a continuous schedule" "^corrsde likelihood: --elbo: .*discrete schedule" --data "$tmp/data.h5" --elbo
bad "no --data" "^corrsde likelihood: --data" --cov ar1:rho=0.5
touch "$tmp/old.h5"
run likelihood --data "$tmp/data.h5" --divergence directional -q -o "$tmp/old.h5"
[ "$rc" -ne 0 ] && grep -q -- "-o" "$tmp/err" && [ ! -s "$tmp/old.h5" ]
ok $? "an existing output without --force is refused and kept (exit $rc)"
run likelihood --data "$tmp/data.h5" --divergence directional -q -f -o "$tmp/old.h5"
[ "$rc" -eq 0 ] && [ -s "$tmp/old.h5" ]
ok $? "--force replaces it (exit $rc)"

# /parameters: the settings in canonical form, the route and the jvp taken
run likelihood --data "$tmp/data.h5" --divergence hutchinson:probes=4 --steps 20 -q -o "$tmp/p.h5"
py '
import sys, h5py
a = h5py.File(sys.argv[1], "r")["parameters"].attrs
want = {"command": "likelihood", "bound": "pf-ode", "divergence": "hutchinson:probes=4,probe=rademacher",
        "divergence_used": "hutchinson:probes=4,probe=rademacher", "jvp": "auto",
        "dequant": "none", "model": "gaussian:mean=0,std=0.5,rho=0.95", "covariance": "ar1:rho=0.9"}
bad = {k: (a.get(k), v) for k, v in want.items() if a.get(k) != v}
print("differ:", bad, "jvp_used", a.get("jvp_used"), "solver", a.get("solver"))
ok = not bad and str(a["jvp_used"]).startswith("fd:step=") and "20 fixed steps" in str(a["solver"])
f = h5py.File(sys.argv[1], "r")
ok = ok and all(f[k].shape == (4,) for k in ("logp", "prior", "delta", "se", "lo", "hi", "bpd")) and f["xT"].shape == (4, 5, 2)
sys.exit(0 if ok else 1)' "$tmp/p.h5"
ok $? "/parameters records the divergence and jvp asked and taken, the dequantization, the model; per-sample datasets [n]"

# a circulant approximation says that it changes the prior
run likelihood --data "$tmp/data.h5" --cov-method circulant --divergence directional -o "$tmp/circ.h5"
[ "$rc" -eq 0 ] && grep -q "note: --cov-method circulant.*replaces C by a circulant (KL to the Toeplitz" "$tmp/out"
ok $? "--cov-method circulant: a note says the prior and the noise are the circulant's"

# --help: every option
run likelihood --help
miss=""
for o in data model cov cov-method frames frame-shape schedule t-start t-end divergence jvp conf \
  seed solver rtol atol steps grid max-nfe batch threads dequant elbo output force progress quiet help; do
  grep -q -- "--$o" "$tmp/out" || miss="$miss $o"
done
[ "$rc" -eq 0 ] && [ -z "$miss" ]
ok $? "--help documents every option${miss:+ (missing:$miss)}"

# 8-bit data, dequantized; the discrete bound
run likelihood --data "$tmp/data.h5:/k" --dequant uniform:bits=8 --divergence hutchinson:probes=2 --steps 20 -q -o "$tmp/dq.h5"
[ "$rc" -eq 0 ]
ok $? "--dequant uniform on 8-bit data runs"
{
  run likelihood --data "$tmp/data.h5:/k" --dequant uniform:bits=8 --divergence hutchinson:probes=2 --steps 20 -q --batch 1 -o "$tmp/dq1.h5"
  py "$same" "$tmp/dq.h5" "$tmp/dq1.h5" &&
    py 'import sys, h5py, numpy as np
f = h5py.File(sys.argv[1], "r"); lp, b = f["logp"][()], f["bpd"][()]
want = -lp / (10 * np.log(2)) + 7     # -log2(scale) = 7 for 2/256
print("bpd", b, "want", want); sys.exit(0 if np.allclose(b, want, rtol=1e-12) else 1)' "$tmp/dq.h5"
  ok $? "--dequant uniform: bpd = -log p / (n ln 2) + 7 (scale 2/256), the same bits for --batch 1"
}
run likelihood --data "$tmp/data.h5" --schedule ddpm-linear:n=50 --elbo:draws=2 -q -o "$tmp/e.h5"
[ "$rc" -eq 0 ]
ok $? "--elbo on a discrete schedule runs"
{
  run likelihood --data "$tmp/data.h5" --schedule ddpm-linear:n=50 --elbo:draws=2 -q --batch 1 --threads 2 -o "$tmp/e1.h5"
  r1=$rc
  py "$same" "$tmp/e.h5" "$tmp/e1.h5" && py 'import sys, h5py, numpy as np
f = h5py.File(sys.argv[1], "r")
nll, s = f["nll"][()], f["LT"][()] + f["Lsum"][()] + f["L0"][()]
print("nll", nll); sys.exit(0 if np.allclose(nll, s, rtol=1e-12) and f["nll"].shape == (4,) else 1)' "$tmp/e.h5"
  ok $((r1 != 0 || $? != 0)) "--elbo: nll = L_T + L_sum + L_0 per sample, the same bits for --batch 1 --threads 2"
}

# issue 28: another path end to end. rf:shift=3 (alpha = 1 - t', sigma = t', t' = 3 t /
# (1 + 2 t)) from eps 1e-3 to its T 0.999: the closed form of the path's marginals (m 0,
# S0 0.25 ar1(0.95), C ar1(0.9)) with the exact divergence, to 1e-9 relative at rtol 1e-10
run likelihood --data "$tmp/data.h5" --schedule rf:shift=3 --divergence exact --rtol 1e-10 -q -o "$tmp/rf.h5"
r1=$rc
py '
import sys, h5py, numpy as np
def ar1(t, rho): i = np.arange(t); return rho ** np.abs(i[:, None] - i[None, :])
def logn(x, S):
    L = np.linalg.cholesky(S); tau = S.shape[0]
    z = np.linalg.solve(L, x.transpose(1, 0, 2).reshape(tau, -1))
    return (-0.5 * (z * z).reshape(tau, x.shape[0], x.shape[2]).sum(axis=(0, 2))
            - x.shape[2] * (np.log(np.diag(L)).sum() + 0.5 * tau * np.log(2 * np.pi)))
with h5py.File(sys.argv[1], "r") as f:
    lp, pr, xT = f["logp"][()], f["prior"][()], f["xT"][()]
    eps, T = f["parameters"].attrs["eps"], f["parameters"].attrs["T"]
x = h5py.File(sys.argv[2], "r")["x"][()]
S0, C = 0.25 * ar1(5, 0.95), ar1(5, 0.9)
def Sig(t):
    tp = 3 * t / (1 + 2 * t)
    return (1 - tp) ** 2 * S0 + tp ** 2 * C
want = logn(x, Sig(eps))
got = lp - pr + logn(xT, Sig(T))
e = np.max(np.abs(got - want) / np.abs(want))
print("eps", eps, "T", T, "closed form", want, "computed", got, "max rel err %.3g" % e)
sys.exit(0 if e < 1e-9 and eps == 1e-3 and T == 0.999 and np.allclose(pr, logn(xT, C), rtol=1e-12, atol=0) else 1)' "$tmp/rf.h5" "$tmp/data.h5"
ok $((r1 != 0 || $? != 0)) "rf:shift=3: log p - prior + log N(x_T; 0, Sigma_T) = closed form to 1e-9 over [1e-3, 0.999], prior log N(x_T; 0, C) (exit $r1)"
run likelihood --data "$tmp/data.h5" --schedule edm --divergence exact -q -o "$tmp/edm.h5"
r1=$rc
py 'import sys, h5py; a = h5py.File(sys.argv[1], "r")["parameters"].attrs
print("eps", a["eps"], "T", a["T"]); sys.exit(0 if a["eps"] == 0.002 and a["T"] == 80 else 1)' "$tmp/edm.h5"
ok $((r1 != 0 || $? != 0)) "edm runs from smin 0.002 to smax 80 by default (exit $r1)"
bad "rf:shift=3 at --t-end 1" "^corrsde likelihood: --t-start/--t-end: .*'rf:shift=3'.*infinite at T = 1" --data "$tmp/data.h5" --schedule rf:shift=3 --t-end 1
bad "edm at --t-end 100" "^corrsde likelihood: --t-start/--t-end: .*spans \[0.002, 80\]" --data "$tmp/data.h5" --schedule edm --t-end 100
[ "$rc" -eq 2 ]
ok $? "a time outside the span is a malformed command line: exit 2 (got $rc), as sample's"
bad "--elbo on rf:shift=3" "^corrsde likelihood: --elbo: .*VP-only: schedule 'rf:shift=3'" --data "$tmp/data.h5" --schedule rf:shift=3 --elbo

echo "1..$n"
[ "$failed" -eq 0 ]
