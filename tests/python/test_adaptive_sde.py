"""Adaptive SDE steps (em, heun, sra1: embedded pairs with a PI controller,
src/solve/sde_adapt.c) on the Brownian tree (issue 13): the error against a fine fixed-step solve of the same path falls with the
tolerance, rejected steps do not bias the law, and the run is reproducible."""
import numpy as np
import pytest

import corrsde

from test_samplers import C, S, S0, TAU, model  # the gaussian PF-ODE problem's model


def run(x, **kw):
    return corrsde.solve(model, x, cov=C, process="reverse-sde", noise="path", seed=5, **kw)


def prior(B, D, seed=3):
    ab = S.abar(1.0)
    L = np.linalg.cholesky(ab * S0 + (1 - ab) * C.matrix)
    return np.einsum("ij,bjd->bid", L, np.random.default_rng(seed).standard_normal((B, TAU, D)))


@pytest.fixture(scope="module")
def reference():
    """8192 fixed sra1 steps on the path (the tree on the uniform map): its own error is
    about 1e-6 here, below every adaptive error measured."""
    x = prior(4, 16)
    return x, run(x, solver="sra1", steps=8192).x


@pytest.mark.parametrize("solver", ["em", "heun", "sra1"])
def test_error_falls_with_the_tolerance(reference, solver):
    """Against the reference on the same path: at rtol = atol = 1e-2, 1e-3, 1e-4 the RMS
    error falls by at least 2.5x a decade (1e-4 for sra1 only: the others' 2600 steps of
    queries are slow) and the evaluations grow; an accepted step costs
    2 evaluations, a rejected one 1 (f(t0, x) is kept). Measured on the CLI's default
    problem: em 0.022, 0.0050, 0.0010 at 229, 1094, 5189 NFE; heun 0.0094, 0.0022,
    0.00043; sra1 0.00088, 3.9e-5, 1.6e-6 at 243, 1160, 5485."""
    x, ref = reference
    errs, nfes = [], []
    tols = (1e-2, 1e-3, 1e-4) if solver == "sra1" else (1e-2, 1e-3)  # 1e-4: 2600 steps
    for tol in tols:
        r = run(x, solver=solver, rtol=tol, atol=tol)
        errs.append(np.sqrt(np.mean((r.x - ref) ** 2)))
        nfes.append(r.nfe)
        assert r.nfe == 2 * r.accepted + r.rejected and r.accepted == r.steps
    print("adaptive %s: errors" % solver, errs, "nfe", nfes)
    assert all(a / b > 2.5 for a, b in zip(errs, errs[1:])), errs
    assert all(a < b for a, b in zip(nfes, nfes[1:])), nfes


def test_reproducible_and_thread_independent():
    """Bitwise the same at 1 and 2 threads (the error norm sums fixed tiles in order; the
    tree's chunks are keyed by index): 4 x 8 x 1024 values, several tiles and chunks."""
    x = prior(4, 1024)
    a = run(x, solver="heun", rtol=1e-2, atol=1e-2)
    b = run(x, solver="heun", rtol=1e-2, atol=1e-2, threads=2)
    assert np.array_equal(a.x, b.x) and a.steps == b.steps and a.rejected == b.rejected
    c = corrsde.solve(model, x, cov=C, process="reverse-sde", noise="path", seed=6, solver="heun",
                      rtol=1e-2, atol=1e-2)
    assert not np.array_equal(a.x, c.x)


def test_rejections_do_not_bias_the_law():
    """From exact p_T starts, steps chosen from the path itself (a source of bias if the
    noise were redrawn on rejection) still end at the exact p_eps: each entry of the frame
    covariance within 4.5 Monte Carlo standard deviations (Wishart: sqrt((S_ii S_jj +
    S_ij^2) / n), n pixel vectors; 36 entries)."""
    B, D = 128, 32
    x = prior(B, D)
    r = run(x, solver="heun", rtol=3e-3, atol=3e-3)
    abe = S.abar(1e-3)
    Se, n = abe * S0 + (1 - abe) * C.matrix, B * D
    v = r.x.transpose(1, 0, 2).reshape(TAU, -1)
    sd = np.sqrt((np.outer(np.diag(Se), np.diag(Se)) + Se ** 2) / n)
    z = np.max(np.abs(v @ v.T / n - Se) / sd)
    print("adaptive heun at 2e-2: %d steps, %d rejected, worst entry %.2f sd" % (r.steps, r.rejected, z))
    assert z < 4.5


def test_adaptive_sde_needs_path_noise():
    with pytest.raises(ValueError, match="need path noise"):
        corrsde.solve(model, prior(1, 4), cov=C, process="reverse-sde", solver="heun", rtol=1e-3)
    with pytest.raises(ValueError, match="no adaptive mode"):
        run(prior(1, 4), solver="euler-ancestral", rtol=1e-3)


def test_experiment_quick(tmp_path):
    """experiments/adaptive_sde.py --quick: every row measured; on one path the fixed-step
    errors fall with the steps for each solver, and sra1's finest is below em's."""
    import csv
    import os
    import subprocess
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    exe = os.environ.get("CORRSDE", os.path.join(root, "build", "corrsde"))
    subprocess.run(["/usr/bin/python3", os.path.join(root, "experiments", "adaptive_sde.py"),
                    "--quick", "--corrsde", exe, "--out-dir", str(tmp_path)], check=True,
                   capture_output=True)
    rows = list(csv.DictReader(open(tmp_path / "adaptive_sde.csv")))
    assert len(rows) == 3 * (3 + 2)
    for s in ("em", "heun", "sra1"):
        e = [float(r["rms_error"]) for r in rows if r["solver"] == s and r["run"].startswith("steps")]
        assert e[0] > e[1] > e[2] > 0, (s, e)
    fin = {r["solver"]: float(r["rms_error"]) for r in rows if r["run"] == "steps 32"}
    assert fin["sra1"] < fin["em"] / 4, fin
