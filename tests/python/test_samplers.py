"""The exponential integrators (solvers/dpmpp2m.c, dpmpp3m.c) against independent numpy
implementations of their formulas, on the gaussian PF-ODE with S0 not commuting with C, and
their first-order steps against DDIM (issue 12)."""
import numpy as np
import pytest

import corrsde

TAU = 8
C = corrsde.Cov("ar1:rho=0.9", frames=TAU)
S = corrsde.Schedule("vp-linear")
S0 = 0.25 * 0.95 ** np.abs(np.subtract.outer(np.arange(TAU), np.arange(TAU)))


def model(t, x, ctx):
    """C grad log p_t of N(0, S0) data: -C (abar S0 + (1 - abar) C)^-1 x."""
    ab = S.abar(t)
    return -np.einsum("ij,bj...->bi...", C.matrix @ np.linalg.inv(ab * S0 + (1 - ab) * C.matrix), x)


def view(t):
    B = S.int_beta(t)
    a, s = np.exp(-B / 2), np.sqrt(-np.expm1(-B))
    return a, s, np.log(a / s)


def denoise(t, x):
    """x0 = (x + sigma^2 C grad log p) / alpha (Tweedie with noise covariance sigma^2 C)."""
    a, s, _ = view(t)
    return (x + s * s * model(t, x, None)) / a


def numpy_dpmpp(ts, x, order):
    """DPM-Solver++(2M) / (3M) in data prediction on the nodes ts, with the first steps and,
    below 15 steps, the last ones of lower order."""
    n = len(ts) - 1
    y, D, H = x.copy(), [], []
    for k in range(n):
        a0, s0, l0 = view(ts[k])
        a1, s1, l1 = view(ts[k + 1])
        h = l1 - l0
        d0 = denoise(ts[k], y)
        q = min(order, k + 1, n - k) if n < 15 else min(order, k + 1)
        p1 = -np.expm1(-h)
        if q == 1:
            upd = p1 * d0
        elif order == 2:  # (1 + 1/(2r)) d0 - 1/(2r) d1
            r = H[-1] / h
            upd = p1 * ((1 + 0.5 / r) * d0 - 0.5 / r * D[-1])
        else:
            p2 = 1 - p1 / h
            r0 = H[-1] / h
            dd0 = (d0 - D[-1]) / r0
            if q == 2:
                upd = p1 * d0 + p2 * dd0
            else:
                p3 = p2 / h - 0.5
                r1 = H[-2] / h
                dd1 = (D[-1] - D[-2]) / r1
                upd = (p1 * d0 + p2 * (dd0 + (dd0 - dd1) * r0 / (r0 + r1))
                       - p3 * 2 * (dd0 - dd1) / (r0 + r1))
        y = s1 / s0 * y + a1 * upd
        D.append(d0)
        H.append(h)
    return y


def numpy_unipc(ts, x, pmax):
    """UniPC-bh2 in data prediction (Zhao et al. 2023): predictor of order p from the last p
    predictions, corrector with the prediction at the predicted state (reused by the next
    step), none on the last step; p = min(pmax, k + 1), and the steps left below 15."""
    n = len(ts) - 1
    lam = [view(t)[2] for t in ts]
    y, D = x.copy(), [denoise(ts[0], x)]
    for k in range(n):
        p = min(pmax, k + 1)
        if n < 15:
            p = min(p, n - k)
        a0, s0, _ = view(ts[k])
        a1, s1, _ = view(ts[k + 1])
        h = lam[k + 1] - lam[k]
        hh = -h
        rks = [(lam[k - i] - lam[k]) / h for i in range(1, p)] + [1.0]
        dD = [(D[-1 - i] - D[-1]) / rks[i - 1] for i in range(1, p)]
        B = np.expm1(hh)
        phi, fac, R, b = np.expm1(hh) / hh - 1, 1, [], []
        for m in range(1, p + 1):
            R.append(np.array(rks) ** (m - 1))
            b.append(phi * fac / B)
            fac *= m + 1
            phi = phi / hh - 1 / fac
        R, b = np.array(R), np.array(b)
        base = s1 / s0 * y - a1 * np.expm1(hh) * D[-1]
        rho = [] if p == 1 else [0.5] if p == 2 else np.linalg.solve(R[:-1, :-1], b[:-1])
        yp = base - a1 * B * sum(r * d for r, d in zip(rho, dD))
        if k == n - 1:
            return yp
        c = [0.5] if p == 1 else np.linalg.solve(R, b)
        d1 = denoise(ts[k + 1], yp)
        y = base - a1 * B * (sum(ci * d for ci, d in zip(c[:-1], dD)) + c[-1] * (d1 - D[-1]))
        D.append(d1)
    return y


def numpy_edm_heun(ts, x):
    """Heun on dx_ve/ds = (x_ve - D) / s, x_ve = x / alpha, s = sigma / alpha (EDM)."""
    y = x / view(ts[0])[0]
    for t0, t1 in zip(ts[:-1], ts[1:]):
        (a0, g0, _), (a1, g1, _) = view(t0), view(t1)
        s0, s1 = g0 / a0, g1 / a1
        d0 = (y - denoise(t0, a0 * y)) / s0
        yt = y + (s1 - s0) * d0
        d1 = (yt - denoise(t1, a1 * yt)) / s1
        y = y + (s1 - s0) * (d0 + d1) / 2
    return view(ts[-1])[0] * y


@pytest.mark.parametrize("steps", [1, 4, 16])
@pytest.mark.parametrize("grid", ["karras", "uniform"])
def test_edm_heun_against_numpy(x0, steps, grid):
    got = corrsde.solve(model, x0, cov=C, schedule=S, process="pf-ode", solver="edm-heun",
                        steps=steps, grid=grid)
    want = numpy_edm_heun(nodes(steps, grid), x0)
    assert got.nfe == 2 * steps
    assert np.abs(got.x - want).max() <= 1e-12 * max(1.0, np.abs(want).max())


@pytest.fixture(scope="module")
def x0():
    return C.sample(3, (4,), seed=2)


def nodes(steps, grid):
    r = corrsde.solve(lambda t, x, c: np.zeros_like(x), np.zeros((1, TAU, 1)), cov=C,
                      process="pf-ode", solver="euler", steps=steps, grid=grid, save="every:1")
    return r.t


@pytest.mark.parametrize("solver,order", [("dpmpp2m", 2), ("dpmpp3m", 3)])
@pytest.mark.parametrize("steps", [2, 5, 8, 20])
@pytest.mark.parametrize("grid", ["logsnr", "karras", "uniform"])
def test_against_numpy(x0, solver, order, steps, grid):
    got = corrsde.solve(model, x0, cov=C, schedule=S, process="pf-ode", solver=solver,
                        steps=steps, grid=grid)
    want = numpy_dpmpp(nodes(steps, grid), x0, order)
    assert got.nfe == steps
    assert np.abs(got.x - want).max() <= 1e-12 * max(1.0, np.abs(want).max())


@pytest.mark.parametrize("solver,pmax", [("unipc", 2), ("unipc3", 3)])
@pytest.mark.parametrize("steps", [1, 3, 6, 20])
@pytest.mark.parametrize("grid", ["logsnr", "quadratic"])
def test_unipc_against_numpy(x0, solver, pmax, steps, grid):
    got = corrsde.solve(model, x0, cov=C, schedule=S, process="pf-ode", solver=solver,
                        steps=steps, grid=grid)
    want = numpy_unipc(nodes(steps, grid), x0, pmax)
    assert got.nfe == steps
    assert np.abs(got.x - want).max() <= 1e-12 * max(1.0, np.abs(want).max())


def test_first_order_steps_are_ddim(x0):
    """Two steps are first order in both (the start, and the end below 15 steps): DDIM's
    update, the same to round-off."""
    for solver in ("dpmpp2m", "dpmpp3m"):
        a = corrsde.solve(model, x0, cov=C, process="pf-ode", solver=solver, steps=2,
                          grid="logsnr").x
        b = corrsde.solve(model, x0, cov=C, process="ddim", steps=2, grid="logsnr").x
        assert np.abs(a - b).max() < 1e-12
    with pytest.raises(ValueError, match="does not fit"):
        corrsde.solve(model, x0, cov=C, process="reverse-sde", solver="dpmpp2m", steps=4)


def test_fewstep_experiment_quick(tmp_path):
    """experiments/fewstep.py --quick: every cell measured, finite, and the best error at
    20 evaluations below the best at 5 (the samplers converge)."""
    import csv
    import os
    import subprocess
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    exe = os.environ.get("CORRSDE", os.path.join(root, "build", "corrsde"))
    subprocess.run(["/usr/bin/python3", os.path.join(root, "experiments", "fewstep.py"),
                    "--quick", "--corrsde", exe, "--out-dir", str(tmp_path)], check=True,
                   capture_output=True)
    rows = list(csv.DictReader(open(tmp_path / "fewstep.csv")))
    ran = [r for r in rows if int(r["steps"]) > 0]
    assert len(rows) == 12 * 2 * 2 and all(np.isfinite(float(r["max_abs_error"])) for r in ran)
    assert all(int(r["nfe"]) <= int(r["nfe_budget"]) for r in ran)
    best = {n: min(float(r["max_abs_error"]) for r in ran if int(r["nfe_budget"]) == n)
            for n in (5, 20)}
    assert best[20] < best[5] / 10, best
    assert "Best at NFE 20" in (tmp_path / "fewstep.md").read_text()


def test_fewstep_experiment_rf(tmp_path):
    """experiments/fewstep.py --schedule rf:shift=3 --quick: the table on rectified flow over
    the CLI's span (0.999 -> 1e-3), every cell measured and converging; no k-diffusion."""
    import csv
    import os
    import subprocess
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    exe = os.environ.get("CORRSDE", os.path.join(root, "build", "corrsde"))
    r = subprocess.run(["/usr/bin/python3", os.path.join(root, "experiments", "fewstep.py"),
                        "--quick", "--schedule", "rf:shift=3", "--corrsde", exe, "--out-dir",
                        str(tmp_path)], check=True, capture_output=True, text=True)
    assert "k-diffusion rows are skipped" in r.stderr
    rows = list(csv.DictReader(open(tmp_path / "fewstep.csv")))
    ran = [r for r in rows if int(r["steps"]) > 0]
    assert len(rows) == 12 * 2 * 2 and all(np.isfinite(float(r["max_abs_error"])) for r in ran)
    best = {n: min(float(r["max_abs_error"]) for r in ran if int(r["nfe_budget"]) == n)
            for n in (5, 20)}
    assert best[20] < best[5] / 10, best
    md = (tmp_path / "fewstep.md").read_text()
    assert "--schedule rf:shift=3, from T = 0.999 to eps = 0.001" in md


def test_edm_churn():
    """EDM's churn (edm-heun:churn=S): churn=0 is plain edm-heun bit for bit; churn=40
    re-randomises the paths (each start ends elsewhere) and keeps the law: from exact p_T
    starts, the frame covariance of the final states is the exact abar S0 + (1 - abar) C
    at eps within 4 Monte Carlo standard deviations per entry (Wishart: sd_ij =
    sqrt((S_ii S_jj + S_ij^2) / n), n pixel vectors). Measured at 256 karras steps: 1.5
    sd (the bias of the churned steps is 3.3 sd at 128, 6.6 at 64)."""
    B, D, N = 500, 32, 256
    ab, abe = S.abar(1.0), S.abar(1e-3)
    L = np.linalg.cholesky(ab * S0 + (1 - ab) * C.matrix)
    x = np.einsum("ij,bjd->bid", L, np.random.default_rng(3).standard_normal((B, TAU, D)))
    run = lambda solver, seed=5: corrsde.solve(model, x, cov=C, process="pf-ode", solver=solver,
                                               steps=N, grid="karras", seed=seed).x
    plain = run("edm-heun")
    assert np.array_equal(run("edm-heun:churn=0"), plain)
    y = run("edm-heun:churn=40")
    assert np.array_equal(run("edm-heun:churn=40"), y)
    assert not np.array_equal(run("edm-heun:churn=40", seed=6), y)
    assert np.sqrt(np.mean((y - plain) ** 2)) > 0.3
    Se, n = abe * S0 + (1 - abe) * C.matrix, B * D
    v = y.transpose(1, 0, 2).reshape(TAU, -1)
    sd = np.sqrt((np.outer(np.diag(Se), np.diag(Se)) + Se ** 2) / n)
    assert np.max(np.abs(v @ v.T / n - Se) / sd) < 4
    # a noise level range that holds no step: no churn
    assert np.array_equal(run("edm-heun:churn=40,tmin=1e6,tmax=inf"), plain)
    with pytest.raises(ValueError, match="churn = -1 outside"):
        run("edm-heun:churn=-1")
    with pytest.raises(ValueError, match="heun takes no options"):
        run("heun:churn=1")


def test_solvers_registry():
    """corrsde.solvers() is the C registry: every few-step sampler with the processes it
    fits and its options."""
    reg = corrsde.solvers()
    for name in ("dpmpp2m", "dpmpp3m", "unipc", "unipc3", "ipndm", "edm-heun", "ddim"):
        assert reg[name]["processes"] == ("pf-ode", "pf-ode-encode"), (name, reg[name])
    assert reg["euler-ancestral"]["processes"] == ("reverse-sde",)
    assert reg["euler"]["alias"] == "em" and "forward-sde" in reg["euler"]["processes"]
    assert reg["edm-heun"]["options"] == "churn=S,tmin=A,tmax=B,noise=N"
    assert reg["ddim"]["options"] == "eta=E" and reg["heun"]["options"] is None
    assert reg["ddpm"]["processes"] == ()  # through process="ddpm" only
