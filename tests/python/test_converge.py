"""corrsde.converge(): convergence orders of a Python model, against the theory and
against `corrsde converge --model python:` (the same CSV, byte for byte)."""
import os
import subprocess
import threading

import numpy as np
import pytest

import corrsde

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CORRSDE = os.environ.get("CORRSDE", os.path.join(ROOT, "build", "corrsde"))

# The noise answer of data N(0, C / 2)-like: delta = k sqrt(1 - abar) x, a smooth
# non-stationary flow (k = 1 would be the exact model of N(0, C) data, whose PF-ODE does
# not move).
MODEL_FILE = '''
import numpy as np
def make(ctx, args):
    k = float(args or 0.5)
    def model(t, x, c):
        return k * np.sqrt(1 - c.abar) * x
    model.output = "noise"
    return model
'''


def load(tmp_path):
    src = tmp_path / "m.py"
    src.write_text(MODEL_FILE)
    ns = {}
    exec(MODEL_FILE, ns)
    return src, ns["make"](None, "")


def test_ode_orders_match_theory(tmp_path):
    """pf-ode, fine references: euler 1, heun 2, rk45 5, each inside its interval."""
    _, m = load(tmp_path)
    C = corrsde.Cov("ar1:rho=0.9", frames=8)
    r = corrsde.converge(m, cov=C, levels=(3, 7), paths=16)
    assert r.error_kind == "ode" and list(r.steps) == [8, 16, 32, 64, 128]
    for name, p in (("euler", 1), ("heun", 2), ("rk45", 5)):
        order, lo, hi = r.order(name)
        assert lo <= p <= hi and abs(order - p) < 0.1, (name, order, lo, hi)
        e = r.solvers[name]
        assert e["error"].shape == (5,) and np.all(e["error_lo"] <= e["error"])
        assert list(e["nfe"]) == [s * (2 if name == "heun" else 6 if name == "rk45" else 1)
                                  for s in r.steps]
        assert np.all(e["error"] <= e["error_hi"]) and e["used"].sum() >= 3
    assert "order" in r.table and "rk45" in r.table


def test_same_csv_as_the_program(tmp_path):
    """corrsde converge --model python: (the embedded adapter, one thread) writes the same
    CSV bytes as corrsde.converge with the same settings."""
    src, _ = load(tmp_path)
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    a, b = tmp_path / "cli.csv", tmp_path / "py.csv"
    subprocess.run([CORRSDE, "converge", "--model", "python:%s:make:0.5" % src, "--process",
                    "reverse-sde", "--error", "strong", "--solvers", "em,heun", "--levels",
                    "2:5", "--paths", "24", "--seed", "4", "--csv", str(a), "-q", "-o",
                    str(tmp_path / "cli.h5")], check=True, env=env)
    code = ("import sys, runpy, corrsde; m = runpy.run_path(sys.argv[1])['make'](None, '0.5'); "
            "corrsde.converge(m, cov=corrsde.Cov('ar1:rho=0.9', 8), process='reverse-sde', "
            "error='strong', solvers='em,heun', levels=(2, 5), paths=24, seed=4, "
            "csv=sys.argv[2], out=sys.argv[3], plot=sys.argv[4])")
    subprocess.run(["/usr/bin/python3", "-c", code, str(src), str(b), str(tmp_path / "py.h5"),
                    str(tmp_path / "py.png")], env=env, check=True)
    assert a.read_bytes() == b.read_bytes()
    # the HDF5 files: /convergence and /covariance bit for bit, /parameters but the
    # front end's own attributes
    import h5py
    with h5py.File(tmp_path / "cli.h5", "r") as f, h5py.File(tmp_path / "py.h5", "r") as g:
        names = []
        f.visit(names.append)
        gnames = []
        g.visit(gnames.append)
        assert names == gnames
        for n in names:
            if isinstance(f[n], h5py.Dataset):
                u, w = f[n][...], g[n][...]
                assert u.dtype == w.dtype, n
                assert (u.tolist() == w.tolist() if u.dtype == object
                        else u.tobytes() == w.tobytes()), n
            for k, v in f[n].attrs.items():
                if n == "parameters" and k in ("model", "command_line", "created", "init",
                                               "wall_seconds", "model_name"):
                    continue
                assert np.array_equal(v, g[n].attrs[k]), (n, k)
    assert (tmp_path / "py.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(FileExistsError):
        corrsde.converge(lambda t, x, c: -x, cov=corrsde.Cov("ar1:rho=0.9", 8), csv=b)


def test_model_runs_on_the_calling_thread_and_errors_propagate(tmp_path):
    C = corrsde.Cov("ar1:rho=0.9", frames=4)
    caller = threading.get_ident()
    seen = set()
    batches = set()

    def model(t, x, ctx):
        seen.add(threading.get_ident())
        batches.add((x.shape[0], ctx.batch))
        return 0.5 * np.sqrt(1 - ctx.abar) * x
    model.output = "noise"
    corrsde.converge(model, cov=C, levels=(2, 4), paths=10, solvers=["heun"], frame_shape=3,
                     batch=4)
    assert seen == {caller}
    assert all(b == c for b, c in batches) and max(b for b, _ in batches) <= 4

    def bad(t, x, ctx):
        if ctx.step == 3:
            raise ArithmeticError("at three")
        return -x
    with pytest.raises(ArithmeticError) as e:
        corrsde.converge(bad, cov=C, levels=(2, 4), paths=4, solvers=["euler"])
    assert any("(step 3)" in n for n in e.value.__notes__)
    with pytest.raises(ValueError, match="starts from data"):
        corrsde.converge(model, cov=C, process="forward-sde")
    with pytest.raises(ValueError, match="levels"):
        corrsde.converge(model, cov=C, levels=(5, 3))


def test_readme_converge_example_runs(tmp_path):
    """The README's corrsde.converge example, run as written (in an empty directory)."""
    text = open(os.path.join(ROOT, "README.md")).read()
    sec = text.split("## Using a PyTorch model", 1)[1]
    code = sec.split("```python\nimport numpy as np, corrsde", 1)[1].split("```", 1)[0]
    out = subprocess.run(["/usr/bin/python3", "-c", "import numpy as np, corrsde" + code],
                         capture_output=True, text=True, check=True, cwd=tmp_path).stdout
    assert out.startswith("heun: order 2.02 [1.90, 2.15]\n"), out
    for f in ("conv.h5", "conv.csv", "conv.png"):
        assert (tmp_path / f).stat().st_size > 0


def test_t_end_ends_the_solves_at_eps(tmp_path):
    """t_end is eps, where pf-ode ends (as `corrsde converge --t-end`): level k steps
    h = (T - t_end) / 2^k exactly, and /parameters records t_end; a t_end outside
    [0, T) names t_end."""
    _, m = load(tmp_path)
    C = corrsde.Cov("ar1:rho=0.9", frames=4)
    out = tmp_path / "te.h5"
    r = corrsde.converge(m, cov=C, levels=(2, 5), paths=4, solvers="heun", t_end=0.1, out=out)
    assert [float(h) for h in r.h] == [(1.0 - 0.1) / 2.0 ** k for k in range(2, 6)]
    import h5py
    with h5py.File(out, "r") as f:
        p = f["parameters"].attrs
        assert (p["t_start"], p["t_end"], p["T"], p["eps"]) == (1.0, 0.1, 1.0, 0.1)
    # cosine: T = 0.999
    r = corrsde.converge(m, cov=C, schedule="cosine", levels=(2, 3), paths=4, solvers="heun",
                         t_end=0.5)
    assert [float(h) for h in r.h] == [(0.999 - 0.5) / 4, (0.999 - 0.5) / 8]
    for bad in (1.0, -0.5, float("nan"), float("inf")):
        with pytest.raises(ValueError, match=r"t_end: pf-ode runs backwards from T = 1; "
                                             r"expected 0 <= t_end < 1"):
            corrsde.converge(m, cov=C, levels=(2, 3), paths=4, t_end=bad)
    with pytest.raises(ValueError, match=r"t_end < 0\.999"):
        corrsde.converge(m, cov=C, schedule="cosine", levels=(2, 3), paths=4, t_end=0.9995)
    with pytest.raises(TypeError, match="t_end"):
        corrsde.converge(m, cov=C, levels=(2, 3), paths=4, t_end="0.1")


# ---- issue 24: progress, the file of a stopped run, the shared reference, parity ----

def cli_and_python(tmp_path, name, cli_args, kw):
    """The same study from `corrsde converge --model python:` and corrsde.converge; the
    CSV paths and the HDF5 paths."""
    src, _ = load(tmp_path)
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    a, b = tmp_path / (name + ".cli.csv"), tmp_path / (name + ".py.csv")
    ha, hb = tmp_path / (name + ".cli.h5"), tmp_path / (name + ".py.h5")
    subprocess.run([CORRSDE, "converge", "--model", "python:%s:make:0.5" % src] + cli_args +
                   ["--csv", str(a), "-o", str(ha)], check=True, env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    code = ("import sys, runpy, corrsde; m = runpy.run_path(sys.argv[1])['make'](None, '0.5'); "
            "corrsde.converge(m, cov=corrsde.Cov('ar1:rho=0.9', 8), csv=sys.argv[2], "
            "out=sys.argv[3], **%r)" % (kw,))
    subprocess.run(["/usr/bin/python3", "-c", code, str(src), str(b), str(hb)], env=env,
                   check=True, stderr=subprocess.DEVNULL)
    return a, b, ha, hb


def test_same_csv_shared_reference_progress_and_not_fitted(tmp_path):
    """Byte parity of the CSVs (and /convergence bit for bit) with a shared adaptive
    reference and the progress display on, and for a 2-level study whose rows say
    'not fitted' (README: the CSV byte for byte)."""
    import h5py
    studies = [
        ("shared", ["--solvers", "euler,heun", "--levels", "2:5", "--paths", "8",
                    "--reference", "fine:dopri5:rtol=1e-9", "--progress", "-j", "2"],
         dict(solvers="euler,heun", levels=(2, 5), paths=8, reference="fine:dopri5:rtol=1e-9",
              progress=True)),
        ("two", ["--process", "reverse-sde", "--error", "weak-cov", "--solvers", "em",
                 "--levels", "3:4", "--paths", "12", "--seed", "3"],
         dict(process="reverse-sde", error="weak-cov", solvers="em", levels=(3, 4), paths=12,
              seed=3)),
    ]
    for name, cli, kw in studies:
        a, b, ha, hb = cli_and_python(tmp_path, name, cli, kw)
        assert a.read_bytes() == b.read_bytes(), name
        with h5py.File(ha, "r") as f, h5py.File(hb, "r") as g:
            c, d = f["convergence"], g["convergence"]
            assert c.attrs["status"] == d.attrs["status"] == "ok"
            for s in c:
                for k in c[s]:
                    u, w = c[s][k][()], d[s][k][()]
                    assert (u.tolist() == w.tolist() if u.dtype == object
                            else u.tobytes() == w.tobytes()), (name, s, k)
                for k, v in c[s].attrs.items():
                    w = d[s].attrs[k]
                    assert np.array_equal(v, w, equal_nan=np.asarray(v).dtype.kind == "f"), \
                        (name, s, k)
    rows = a.read_text().splitlines()
    assert rows[0].endswith(",reference_level,reference,fit")
    assert all(r.endswith(',"not fitted: only 2 resolved levels (need 3)"') for r in rows[1:])


def test_progress_callable_in_order(tmp_path):
    """progress=callable: on this thread, the plan first (the study's model calls), the
    estimate before the first level finishes, a stage per reference and level in order,
    nfe_done ending at the run's count; progress=True draws the program's lines."""
    _, m = load(tmp_path)
    C = corrsde.Cov("ar1:rho=0.9", frames=4)
    ev, caller = [], threading.get_ident()

    def hook(d):
        assert threading.get_ident() == caller
        ev.append(dict(d))
    r = corrsde.converge(m, cov=C, levels=(2, 4), paths=6, solvers="euler,heun",
                         reference="fine", progress=hook)
    kinds = [e["event"] for e in ev if e["event"] != "working"]
    assert kinds[0] == "plan" and kinds.count("plan") == kinds.count("estimate") == 1
    assert ev[0]["nfe_total"] == r.nfe and not ev[0]["nfe_total_estimated"]
    stages = [(e["solver_name"], e["reference"], e["level"]) for e in ev if e["event"] == "stage"]
    assert stages == [("euler", True, 9), ("euler", False, 2), ("euler", False, 3),
                      ("euler", False, 4), ("heun", True, 7), ("heun", False, 2),
                      ("heun", False, 3), ("heun", False, 4)]
    assert kinds.index("estimate") < kinds.index("stage") + 1 < len(kinds)
    est = [e for e in ev if e["event"] == "estimate"][0]
    assert est["sec_per_call"] > 0 and est["seconds_total"] > 0
    done = [e["nfe_done"] for e in ev]
    assert done == sorted(done) and done[-1] == r.nfe
    with pytest.raises(TypeError, match="progress"):
        corrsde.converge(m, cov=C, levels=(2, 3), paths=4, progress="yes")


def test_progress_true_prints_the_plan_and_the_estimate(tmp_path, capfd):
    _, m = load(tmp_path)
    C = corrsde.Cov("ar1:rho=0.9", frames=4)
    r = corrsde.converge(m, cov=C, levels=(2, 4), paths=6, solvers="heun", progress=True)
    err = capfd.readouterr().err
    lines = err.splitlines()
    plan = [i for i, l in enumerate(lines) if "model calls, each on a batch" in l]
    est = [i for i, l in enumerate(lines) if l.startswith("corrsde.converge: estimated ")]
    lvl = [i for i, l in enumerate(lines) if "heun level 2 (4 steps) done" in l]
    assert plan and est and lvl and plan[0] < est[0] < lvl[0], err
    assert lines[plan[0]].startswith("corrsde.converge: %d model calls" % r.nfe)


def test_interrupt_keeps_the_finished_levels(tmp_path):
    """Ctrl-C (SIGINT) during the run: KeyboardInterrupt is raised after it, with a note
    naming the file, whose status says interrupted and which holds the finished levels
    (euler's 2 and 3, analysed); a callable's own exception stops the run the same way;
    with force, an old file stays until a stage has finished."""
    import signal
    import h5py
    _, m = load(tmp_path)
    C = corrsde.Cov("ar1:rho=0.9", frames=4)
    out = tmp_path / "int.h5"

    def ctrl_c(d):
        if d["event"] == "stage" and d["solver_name"] == "euler" and d["level"] == 3:
            os.kill(os.getpid(), signal.SIGINT)
    with pytest.raises(KeyboardInterrupt) as e:
        corrsde.converge(m, cov=C, levels=(2, 5), paths=6, solvers="euler,heun", out=out,
                         progress=ctrl_c)
    assert any("holds the stages that finished" in n for n in e.value.__notes__)
    with h5py.File(out, "r") as f:
        c = f["convergence"]
        assert c.attrs["status"] == "failed: interrupted (KeyboardInterrupt)"
        eu = c["euler"]
        assert eu.attrs["levels_done"] == 2 and eu.attrs["analysed"] == 1
        assert eu["error_ci"].shape == (2, 2) and eu["per_path"].shape == (6, 2)
        assert "not fitted" in eu.attrs["fit"] and c["heun"].attrs["levels_done"] == 0

    def bad(d):
        if d["event"] == "stage":
            raise ValueError("enough")
    with pytest.raises(ValueError, match="enough"):
        corrsde.converge(m, cov=C, levels=(2, 5), paths=6, solvers="euler", out=out,
                         force=True, progress=bad)
    with h5py.File(out, "r") as f:
        assert f["convergence"].attrs["status"] == \
            "failed: the progress callable raised ValueError: enough"
        assert f["convergence/euler"].attrs["levels_done"] == 0  # the reference only

    old = tmp_path / "old.h5"
    old.write_bytes(b"old")

    def at_plan(d):
        raise RuntimeError("no")
    with pytest.raises(RuntimeError):
        corrsde.converge(m, cov=C, levels=(2, 3), paths=4, solvers="euler", out=old,
                         force=True, progress=at_plan)
    assert old.read_bytes() == b"old"
    assert not [p for p in os.listdir(tmp_path) if ".partial." in p or p.endswith(".lock")]


def test_shared_reference_and_its_refusals(tmp_path):
    _, m = load(tmp_path)
    C = corrsde.Cov("ar1:rho=0.9", frames=4)
    r = corrsde.converge(m, cov=C, levels=(3, 6), paths=8, solvers="euler,heun",
                         reference="fine:rk8pd:rtol=1e-10")
    assert "rk8pd at rtol 1e-10 (shared)" in r.table and "shared by every solver" in r.reference
    for name, p in (("euler", 1), ("heun", 2)):
        order, lo, hi = r.order(name)
        assert lo <= p <= hi, (name, order, lo, hi)
    with pytest.raises(ValueError, match="reference fine:euler: euler cannot give pf-ode"):
        corrsde.converge(m, cov=C, levels=(2, 3), paths=4, reference="fine:em:rtol=1e-6")
    with pytest.raises(ValueError, match="reference fine:dopri5: dopri5 cannot give reverse-sde"):
        corrsde.converge(m, cov=C, levels=(2, 3), paths=4, process="reverse-sde",
                         reference="fine:dopri5:rtol=1e-6")
    with pytest.raises(ValueError, match=r"needs its tolerance: expected fine:dopri5:rtol=R"):
        corrsde.converge(m, cov=C, levels=(2, 3), paths=4, reference="fine:dopri5")
    with pytest.raises(ValueError, match="expected rtol=R with R > 0"):
        corrsde.converge(m, cov=C, levels=(2, 3), paths=4, reference="fine:dopri5:atol=1")
    with pytest.raises(TypeError, match="reference"):
        corrsde.converge(m, cov=C, levels=(2, 3), paths=4, reference=3)
