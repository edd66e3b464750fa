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
