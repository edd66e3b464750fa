"""experiments/calibrate_grid.py (issue 12): the density grid is exactly the logsnr grid at
theta = 0, its nodes equidistribute the density's mass, a fit reproduces bit for bit and
the grid it writes gives the objective it reports; bad input exits 2 and writes nothing."""
import importlib.util
import json
import math
import os
import subprocess

import h5py
import numpy as np
import pytest

import corrsde

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "experiments", "calibrate_grid.py")
EXE = os.environ.get("CORRSDE", os.path.join(ROOT, "build", "corrsde"))


def load():
    spec = importlib.util.spec_from_file_location("calibrate_grid", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def sample_times(tmp_path, args):
    out = str(tmp_path / "t.h5")
    subprocess.run([EXE, "sample", "-q", "--force", "-o", out, "--frames", "4",
                    "--frame-shape", "2", "--batch", "1", "--process", "pf-ode", "--save",
                    "every:1"] + args, check=True)
    with h5py.File(out, "r") as f:
        return f["trajectory/t"][:]


@pytest.mark.parametrize("schedule", ["vp-linear", "cosine"])
def test_zero_theta_is_logsnr(tmp_path, schedule):
    """theta = 0 gives corrsde's logsnr grid (grid.c) to 1e-13 in t."""
    cg = load()
    want = sample_times(tmp_path, ["--schedule", schedule, "--steps", "12", "--grid",
                                   "logsnr", "--solver", "unipc"])
    d = cg.Density(corrsde.Schedule(schedule), float(want[0]), float(want[-1]), 5)
    got = np.array(d.times(np.zeros(4), 12))
    assert got[0] == want[0] and got[-1] == want[-1]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-13)


def test_nodes_equidistribute_mass():
    """For any theta, each step holds 1/N of the mass of rho = exp(p): checked with a
    trapezoid rule on 2e5 points per segment (its error ~ 1e-10 here)."""
    cg = load()
    d = cg.Density(corrsde.Schedule("vp-linear"), 1.0, 1e-3, 6)
    theta = np.array([1.3, -0.7, 2.1, 0.0, -1.9])
    lam = d.lambdas(theta, 9)
    assert np.all(np.diff(lam) > 0) and lam[0] == d.l0 and lam[-1] == d.l1
    p = np.concatenate([[0.0], theta])

    def mass(a, b):
        x = np.linspace(a, b, 200001)
        y = np.exp(np.interp(x, d.knots, p))
        return float(np.sum(0.5 * (y[1:] + y[:-1]) * np.diff(x)))

    m = np.array([mass(lam[i], lam[i + 1]) for i in range(9)])
    np.testing.assert_allclose(m / m.sum(), np.full(9, 1 / 9), rtol=1e-8)
    ts = d.times(theta, 9)
    assert all(t0 > t1 for t0, t1 in zip(ts, ts[1:]))


def small_fit(tmp_path, name, extra=(), problem=()):
    gmm = str(tmp_path / "gmm.h5")
    if not os.path.exists(gmm):
        subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "experiments", "make_gmm.py"),
                        gmm, "4"], check=True, capture_output=True)
    out = str(tmp_path / name)
    r = subprocess.run(["/usr/bin/python3", SCRIPT, "--nfe", "4", "--solvers", "unipc,dpmpp2m",
                        "--pilot", "8", "--check", "4", "--knots", "3", "--iters", "12",
                        "--corrsde", EXE, "--out", out] + list(extra) +
                       ["--", "--model", "gmm:file=" + gmm, "--cov", "ar1:rho=0.9",
                        "--frames", "4", "--frame-shape", "3"] + list(problem),
                       capture_output=True, text=True)
    return r, out, gmm


def test_fit_reproduces_and_reports_its_objective(tmp_path):
    r, out, gmm = small_fit(tmp_path, "a.json")
    assert r.returncode == 0, r.stderr
    a = json.load(open(out))
    r2, out2, _ = small_fit(tmp_path, "b.json")
    assert r2.returncode == 0 and open(out2).read() == open(out).read()   # bit for bit
    assert a["solver"] in ("unipc", "dpmpp2m") and a["nfe"] == 4
    for f in a["fits"]:
        assert f["pilot_fitted"] <= f["pilot_logsnr"]
    best = min(a["fits"], key=lambda f: f["pilot_fitted"])
    assert best["solver"] == a["solver"]
    ts = [float(v) for v in a["grid"][len("list:"):].split(",")]
    assert len(ts) == 5 and ts[0] == 1.0 and ts[-1] == 1e-3
    assert all(t0 > t1 for t0, t1 in zip(ts, ts[1:]))
    # the written grid, run by hand on the pilot videos, gives the reported objective
    base = ["--model", "gmm:file=" + gmm, "--cov", "ar1:rho=0.9", "--frames", "4",
            "--frame-shape", "3", "--batch", "8", "--seed", "1000", "--process", "pf-ode"]

    def final(args):
        o = str(tmp_path / "x.h5")
        subprocess.run([EXE, "sample", "-q", "--force", "-o", o] + base + args, check=True)
        with h5py.File(o, "r") as f:
            return f["trajectory/x"][-1]

    ref = final(["--solver", "rk8pd", "--rtol", "1e-12", "--atol", "1e-12"])
    x = final(["--solver", a["solver"], "--steps", "4", "--grid", a["grid"]])
    e = np.abs(x - ref).reshape(8, -1).max(axis=1).mean()
    assert math.isclose(e, best["pilot_fitted"], rel_tol=1e-12)
    assert "Sample with: --process pf-ode --solver %s --steps 4 --grid list:" % a["solver"] \
        in r.stdout


@pytest.mark.parametrize("extra, msg", [
    (["--nfe", "1"], "--nfe"),
    (["--knots", "1"], "--knots"),
    (["--quantile", "1.5"], "--quantile"),
    (["--solvers", "euler-ancestral"], "not a PF-ODE solver"),
    (["--solvers", "nosuch"], "not a PF-ODE solver"),
    (["--solvers", "heun"], "one a step"),
])
def test_bad_input(tmp_path, extra, msg):
    """A specific message, a non-zero exit, and no --out file."""
    r, out, _ = small_fit(tmp_path, "bad.json", extra)
    assert r.returncode != 0 and msg in r.stderr, r.stderr
    assert not os.path.exists(out)
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".calibrate_grid.")]


@pytest.mark.parametrize("problem", [["--seed", "3"], ["--batch=2"], ["--grid", "karras"],
                                     ["-o", "x.h5"], ["--process", "reverse-sde"]])
def test_refuses_options_it_sets(tmp_path, problem):
    r, out, _ = small_fit(tmp_path, "own.json", (), problem)
    assert r.returncode == 2 and "calibrate_grid's to set" in r.stderr, r.stderr
    assert not os.path.exists(out)


def test_failed_run_names_the_command(tmp_path):
    r = subprocess.run(["/usr/bin/python3", SCRIPT, "--nfe", "4", "--corrsde", EXE, "--out",
                        str(tmp_path / "o.json"), "--", "--model", "gmm:file=/nonexistent.h5"],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "corrsde" in r.stderr and "nonexistent" in r.stderr
    assert not os.path.exists(tmp_path / "o.json")
