"""corrsde's Python package against the mathematics and against `corrsde sample`.

Run: PYTHONPATH=build/python /usr/bin/python3 -m pytest tests/python (meson test --suite
python). CORRSDE names the program (default build/corrsde).
"""
import os
import subprocess
import threading
import time

import numpy as np
import pytest

import corrsde

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CORRSDE = os.environ.get("CORRSDE", os.path.join(ROOT, "build", "corrsde"))

METHODS = ["dense", "dense-cholesky", "circulant", "circulant-strang", "embed"]


def frame_apply(M, x):
    """M x along axis 1 of x [B, tau, *shape], in numpy."""
    return np.einsum("ij,bj...->bi...", M, x)


# ---- Cov against dense numpy algebra, every method ----

@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("spec", ["ar1:rho=0.9", "toeplitz:col=1,0.5,0.2", "mixed:r=0.4"])
def test_cov_methods_match_dense_algebra(spec, method):
    tau = 12
    C = corrsde.Cov(spec, frames=tau, method=method)
    M = C.matrix  # what the operator applies (a circulant method: its circulant)
    assert C.method.startswith(method.split("-")[0])
    assert np.allclose(M, M.T, rtol=0, atol=1e-15)
    x = np.random.default_rng(1).standard_normal((3, tau, 2, 5))
    scale = np.abs(x).max() * np.abs(M).sum(1).max()
    assert np.abs(C.apply(x) - frame_apply(M, x)).max() <= 1e-13 * scale
    y = np.linalg.solve(M, x.reshape(3, tau, -1)).reshape(x.shape)
    assert np.abs(C.solve(x) - y).max() <= 1e-9 * np.abs(y).max()
    q = np.einsum("bip,bip->b", x.reshape(3, tau, -1), y.reshape(3, tau, -1))
    assert np.allclose(C.mahalanobis(x), q, rtol=1e-9, atol=0)
    # V' V'^T = C: V' from its action on the unit vectors of the noise space
    m = C.noise_dim
    V = C.sqrt(np.eye(m).reshape(m, m, 1).transpose(1, 0, 2).copy())  # [m, tau, 1]
    V = V[:, :, 0].T  # tau x m
    assert np.abs(V @ V.T - M).max() <= 1e-12 * np.abs(M).max()
    ev = C.eigenvalues
    assert np.allclose(ev, np.linalg.eigvalsh(M), rtol=0, atol=1e-12 * ev.max())
    assert C.logdet == pytest.approx(np.linalg.slogdet(M)[1], rel=1e-11) or method != "dense"


def test_registries_and_powerexp():
    """The name lists come from the library's registries; powerexp (added there only) is a
    family Python accepts, with C_ij = exp(-(|i-j|/L)^p), PSD, and errors naming p."""
    assert "powerexp" in corrsde.COV_FAMILIES and "rbf" in corrsde.COV_FAMILIES
    assert corrsde.COV_METHODS[:2] == ("auto", "dense") and "embed" in corrsde.COV_METHODS
    assert corrsde.SCHEDULES == ("vp-linear", "cosine", "ddpm-linear", "discrete", "edm", "ve",
                                 "rf")
    assert corrsde.PROCESSES == ("forward-sde", "reverse-sde", "pf-ode", "pf-ode-encode",
                                 "ddpm", "ddim")
    tau, ell, p = 10, 3.0, 1.5
    k = np.abs(np.subtract.outer(np.arange(tau), np.arange(tau)))
    M = np.exp(-(k / ell) ** p)
    for method in ("dense", "embed"):
        C = corrsde.Cov("powerexp:ell=3,p=1.5", frames=tau, method=method)
        assert np.abs(C.matrix - M).max() <= 1e-15
        assert np.allclose(C.eigenvalues, np.linalg.eigvalsh(M), rtol=0, atol=1e-12)
    assert np.linalg.eigvalsh(M).min() > 0
    for bad, word in (("powerexp:ell=3,p=2.5", "p = 2.5"), ("powerexp:ell=0,p=1", "ell"),
                      ("powerexp:ell=3", "power")):
        with pytest.raises(ValueError, match=word):
            corrsde.Cov(bad, frames=8)


def test_cov_sample_moments():
    """The sample covariance along the frame axis, within 6 standard errors."""
    tau, n = 6, 200000
    C = corrsde.Cov("ar1:rho=0.8", frames=tau)
    x = C.sample(n // 100, 100, seed=3)  # n pixel vectors
    v = x.transpose(0, 2, 1).reshape(-1, tau)
    S = v.T @ v / len(v)
    M = C.matrix
    se = np.sqrt((np.outer(np.diag(M), np.diag(M)) + M ** 2) / len(v))
    assert np.all(np.abs(S - M) <= 6 * se)


def test_cov_bad_input_messages():
    with pytest.raises(ValueError, match="rho"):
        corrsde.Cov("ar1:rho=1.5", frames=8)
    with pytest.raises(ValueError):
        corrsde.Cov("nonsense", frames=8)
    with pytest.raises(TypeError):
        corrsde.Cov("ar1:rho=0.5", frames=8.5)
    C = corrsde.Cov("ar1:rho=0.5", frames=8)
    with pytest.raises(ValueError, match="axis 1 has 7 entries, expected 8"):
        C.apply(np.zeros((2, 7, 3)))


# ---- Schedule ----

def test_schedule_closed_forms():
    S = corrsde.Schedule("vp-linear")
    t = np.linspace(0.01, 1, 7)
    B = 0.1 * t + 19.9 * t ** 2 / 2
    assert np.allclose(S.abar(t), np.exp(-B), rtol=1e-15, atol=0)
    assert np.allclose(S.beta(t), 0.1 + 19.9 * t, rtol=1e-15, atol=0)
    assert np.allclose(S.sigma(t), np.sqrt(np.expm1(B)), rtol=1e-14, atol=0)
    assert np.allclose(S.logsnr(t), -np.log(np.expm1(B)), rtol=1e-13, atol=0)
    assert S.nsteps == 0
    with pytest.raises(ValueError, match="continuous"):
        S.index(0.5)
    D = corrsde.Schedule("ddpm-linear:n=10")
    assert D.nsteps == 10 and D.index(0.3) == 3
    betas = np.linspace(1e-4, 0.02, 10)
    assert np.allclose([D.beta_step(i) for i in range(1, 11)], betas, rtol=1e-15)
    assert D.abar_step(0) == 1.0
    assert D.abar_step(10) == pytest.approx(np.prod(1 - betas), rel=1e-14)


# ---- solve: the exact Gaussian score in numpy against the built-in gaussian model ----

S0 = 0.25 * 0.95 ** np.abs(np.subtract.outer(np.arange(8), np.arange(8)))


def gaussian_cscore(C, S):
    """C grad log p_t(x) = -C Sigma_t^-1 x, Sigma_t = abar S0 + (1 - abar) C (model.h)."""
    M = C.matrix

    def model(t, x, ctx):
        ab = S.abar(t)
        sig = ab * S0 + (-np.expm1(-S.int_beta(t))) * M
        return -frame_apply(M @ np.linalg.inv(sig), x)
    return model


def cli_final(tmp_path, args):
    out = tmp_path / "cli.h5"
    subprocess.run([CORRSDE, "sample", "--frames", "8", "--frame-shape", "3x2", "--batch", "3",
                    "--seed", "5", "-q", "-o", str(out)] + args, check=True)
    import h5py
    with h5py.File(out, "r") as f:
        return f["trajectory/x"][-1], int(f["stats"].attrs["nfe"])


@pytest.mark.parametrize("args,kw", [
    (["--process", "reverse-sde", "--solver", "em", "--steps", "60"],
     dict(process="reverse-sde", solver="em", steps=60)),
    (["--process", "reverse-sde", "--solver", "heun", "--steps", "40"],
     dict(process="reverse-sde", solver="heun", steps=40)),
    (["--process", "pf-ode", "--solver", "rk45", "--rtol", "1e-6", "--atol", "1e-6"],
     dict(process="pf-ode", solver="rk45", steps=0, rtol=1e-6, atol=1e-6)),
    (["--process", "pf-ode", "--solver", "dopri5", "--rtol", "1e-7"],
     dict(process="pf-ode", solver="dopri5", steps=0, rtol=1e-7)),
    (["--process", "ddim", "--steps", "30"], dict(process="ddim", steps=30)),
    (["--process", "ddim:eta=1", "--steps", "30"], dict(process="ddim", steps=30, eta=1.0)),
])
def test_numpy_gaussian_matches_builtin(tmp_path, args, kw):
    C = corrsde.Cov("ar1:rho=0.9", frames=8)
    S = corrsde.Schedule("vp-linear")
    want, nfe = cli_final(tmp_path, args)
    r = corrsde.solve(gaussian_cscore(C, S), cov=C, schedule=S, seed=5, batch=3,
                      frame_shape=(3, 2), **kw)
    assert r.nfe == nfe
    assert np.abs(r.x - want).max() <= 1e-12 * max(1.0, np.abs(want).max())


def test_pf_ode_matches_exact_flow():
    """The Gaussian PF-ODE's exact solution: x(t) = Phi(t) x(T) with, per eigen
    direction of the whitened S0, u(t) = u(T) sqrt(s(t) / s(T)) (C = L L^T,
    W = L^-1 S0 L^-T = U diag(w) U^T, s_i(t) = 1 + abar(t) (w_i - 1))."""
    C = corrsde.Cov("ar1:rho=0.9", frames=8)
    S = corrsde.Schedule("vp-linear")
    L = np.linalg.cholesky(C.matrix)
    Li = np.linalg.inv(L)
    w, U = np.linalg.eigh(Li @ S0 @ Li.T)
    T, eps = 1.0, 1e-3
    s = lambda t: 1 + S.abar(t) * (w - 1)
    Phi = L @ U @ np.diag(np.sqrt(s(eps) / s(T))) @ U.T @ Li
    x0 = C.sample(2, 4, seed=2)
    r = corrsde.solve(gaussian_cscore(C, S), x0, cov=C, schedule=S, process="pf-ode",
                      solver="dopri5", steps=0, rtol=1e-10, atol=1e-10)
    want = frame_apply(Phi, x0)
    assert np.abs(r.x - want).max() <= 1e-6 * np.abs(want).max()


def test_prior_draw_is_the_clis(tmp_path):
    out = tmp_path / "p.h5"
    subprocess.run([CORRSDE, "sample", "--frames", "8", "--frame-shape", "4x4", "--batch", "3",
                    "--seed", "7", "--steps", "2", "--save", "every:1", "-q", "-o", str(out)],
                   check=True)
    import h5py
    with h5py.File(out, "r") as f:
        x0 = f["trajectory/x"][0]
    # corrsde (the program) runs OpenBLAS on one thread; the package leaves the process's
    # setting alone, and a threaded OpenBLAS changes the dense factor in its last bits
    # (a known defect: the library's results should not depend on BLAS threads)
    code = ("import corrsde, sys; sys.stdout.buffer.write(corrsde.Cov('ar1:rho=0.9', "
            "frames=8).sample(3, (4, 4), seed=7).tobytes())")
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    got = subprocess.run(["/usr/bin/python3", "-c", code], env=env, capture_output=True,
                         check=True).stdout
    assert got == x0.tobytes()


def test_save_every_and_times():
    C = corrsde.Cov("ar1:rho=0.9", frames=4)
    f = lambda t, x, ctx: -x
    r = corrsde.solve(f, cov=C, process="pf-ode", solver="euler", steps=10, batch=2,
                      frame_shape=3, save="every:4")
    assert list(r.step) == [0, 4, 8, 10] and r.states.shape == (4, 2, 4, 3)
    assert r.states[-1].tobytes() == r.x.tobytes()
    grid = 1 + np.arange(11) * (1e-3 - 1) / 10
    assert np.allclose(r.t, grid[[0, 4, 8, 10]], rtol=0, atol=1e-15)
    r = corrsde.solve(f, cov=C, process="pf-ode", solver="euler", steps=10, batch=2,
                      frame_shape=3, save={"times": [0.5, 0.21]})
    assert list(r.step) == [5, 8, 10]


# ---- the model contract: context, views, errors ----

def test_context_and_no_copy_per_call():
    C = corrsde.Cov("ar1:rho=0.9", frames=4)
    S = corrsde.Schedule("vp-linear")
    seen = []

    def model(t, x, ctx):
        assert not x.flags.writeable
        seen.append((x.__array_interface__["data"][0], t, ctx.t, ctx.step, ctx.abar,
                     ctx.sigma, ctx.tau, ctx.frame_shape, ctx.batch, ctx.index))
        return -x
    corrsde.solve(model, cov=C, schedule=S, process="pf-ode", solver="euler", steps=7,
                  batch=2, frame_shape=(3, 2))
    assert len(seen) == 7
    assert len({s[0] for s in seen}) == 1  # one buffer, never copied
    for k, (_, t, ct, step, ab, sg, tau, fs, b, idx) in enumerate(seen):
        assert t == ct and step == k and ab == S.abar(t) and sg == S.sigma(t)
        assert (tau, fs, b, idx) == (4, (3, 2), 2, None)


def test_model_exception_propagates_with_its_type():
    C = corrsde.Cov("ar1:rho=0.9", frames=4)

    class Boom(Exception):
        pass

    def model(t, x, ctx):
        if ctx.step == 5:
            raise Boom("no")
        return -x
    with pytest.raises(Boom) as e:
        corrsde.solve(model, cov=C, process="pf-ode", solver="euler", steps=10, batch=1)
    assert any("step 5" in n and "t = " in n for n in e.value.__notes__)


def test_nan_and_wrong_shape_are_refused():
    C = corrsde.Cov("ar1:rho=0.9", frames=4)
    with pytest.raises(corrsde.Error, match="NaN|not finite"):
        corrsde.solve(lambda t, x, c: np.full(x.shape, np.nan), cov=C, process="pf-ode",
                      solver="euler", steps=3)
    with pytest.raises(ValueError, match=r"shape \(1, 4\), expected \(1, 4, 1\)|expected"):
        corrsde.solve(lambda t, x, c: np.zeros((1, 4)), cov=C, process="pf-ode",
                      solver="euler", steps=3, frame_shape=1)


def test_bad_arguments():
    C = corrsde.Cov("ar1:rho=0.9", frames=4)
    f = lambda t, x, c: -x
    with pytest.raises(ValueError, match="process"):
        corrsde.solve(f, cov=C, process="backwards")
    with pytest.raises(ValueError, match="output"):
        corrsde.solve(f, cov=C, output="eps")
    with pytest.raises(ValueError, match="frames"):
        corrsde.solve(f, np.zeros((1, 5, 2)), cov=C)
    with pytest.raises(ValueError):
        corrsde.solve(f, cov=C, solver="nope")
    with pytest.raises(TypeError):
        corrsde.solve(f, cov="ar1:rho=0.9")


def test_output_kinds_agree():
    """noise, x0, v and score answers of one exact model give the same solve."""
    C = corrsde.Cov("ar1:rho=0.9", frames=8)
    S = corrsde.Schedule("vp-linear")
    cs = gaussian_cscore(C, S)
    Minv = np.linalg.inv(C.matrix)

    def sig(t):
        return np.sqrt(-np.expm1(-S.int_beta(t)))
    forms = {
        "cscore": cs,
        "score": lambda t, x, c: frame_apply(Minv, cs(t, x, c)),
        "noise": lambda t, x, c: -sig(t) * cs(t, x, c),
        "x0": lambda t, x, c: (x + sig(t) ** 2 * cs(t, x, c)) / np.sqrt(S.abar(t)),
        "v": lambda t, x, c: (np.sqrt(S.abar(t)) * -sig(t) * cs(t, x, c)
                              - sig(t) * (x + sig(t) ** 2 * cs(t, x, c)) / np.sqrt(S.abar(t))),
    }
    x0 = C.sample(2, 3, seed=4)
    ref = corrsde.solve(cs, x0, cov=C, schedule=S, process="pf-ode", solver="heun", steps=30).x
    for out, f in forms.items():
        r = corrsde.solve(f, x0, cov=C, schedule=S, process="pf-ode", solver="heun",
                          steps=30, output=out)
        assert np.abs(r.x - ref).max() <= 1e-9 * np.abs(ref).max(), out


def test_gil_is_released_during_a_solve():
    """Another Python thread makes progress while the solve runs C code."""
    C = corrsde.Cov("ar1:rho=0.9", frames=64)
    ticks = []
    stop = threading.Event()

    def ticker():
        while not stop.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.001)

    def model(t, x, ctx):  # C code between the calls: the covariance work of the SDE
        return -x
    th = threading.Thread(target=ticker)
    th.start()
    t0 = time.perf_counter()
    corrsde.solve(model, cov=C, process="reverse-sde", solver="heun", steps=400, batch=8,
                  frame_shape=(32, 32))
    t1 = time.perf_counter()
    stop.set()
    th.join()
    inside = [t for t in ticks if t0 < t < t1]
    # the ticker sleeps 1 ms: held GIL would leave it a handful of ticks at most
    assert t1 - t0 > 0.05 and len(inside) >= 0.2 * (t1 - t0) / 0.0015


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one core: OpenBLAS runs one thread")
def test_thread_counts_unchanged():
    """Importing corrsde and solving leave numpy's BLAS and torch's threads alone."""
    code = r"""
import os, sys
import numpy as np
import ctypes
openblas = ctypes.CDLL("libopenblas.so.0")  # the BLAS numpy and corrsde share
def blas_threads():
    return openblas.openblas_get_num_threads()
b0 = blas_threads()
assert b0 > 1, b0  # two cores: OpenBLAS starts threaded, so a change would show
try:
    import torch; t0 = torch.get_num_threads()
except ImportError:
    torch = None; t0 = None
import corrsde
C = corrsde.Cov("ar1:rho=0.9", frames=8)
corrsde.solve(lambda t, x, c: -x, cov=C, steps=5, batch=2, frame_shape=4)
t1 = torch.get_num_threads() if torch else None
print(b0 == blas_threads(), t0 == t1)
"""
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_NUM_THREADS",
                                                             "OMP_NUM_THREADS")}
    out = subprocess.run(["/usr/bin/python3", "-c", code], env=env, capture_output=True,
                         text=True, check=True).stdout.split()
    assert out == ["True", "True"]


# ---- the trajectory file is self-describing: xarray opens it with its axis names ----

def test_xarray_reads_the_trajectory_file(tmp_path):
    xr = pytest.importorskip("xarray")
    pytest.importorskip("h5netcdf")
    out = tmp_path / "x.h5"
    subprocess.run([CORRSDE, "sample", "--frames", "4", "--frame-shape", "2x3x5", "--batch", "2",
                    "--steps", "20", "--save", "every:5", "-q", "-o", str(out)], check=True)
    ds = xr.open_dataset(out, engine="h5netcdf", group="trajectory")
    assert ds["x"].dims == ("t", "sample", "frame", "channel", "height", "width")
    assert ds["x"].shape == (5, 2, 4, 2, 3, 5) and ds["step"].dims == ("t",)
    grid = 1 + np.arange(21) * (1e-3 - 1) / 20
    assert np.allclose(ds["t"].values, grid[::5], rtol=0, atol=1e-15)
    assert list(ds["frame"].values) == [0, 1, 2, 3] and ds["t"].attrs["units"] == "1"
    import h5py
    with h5py.File(out, "r") as f:
        assert ds["x"].values.tobytes() == f["trajectory/x"][...].tobytes()
    root = xr.open_dataset(out, engine="h5netcdf")
    assert root.attrs["format"] == "corrsde-trajectory" and root.attrs["format_version"] == "2"


def test_readme_pytorch_example_runs():
    """The README's "Using a PyTorch model" example, run as written."""
    pytest.importorskip("torch")
    text = open(os.path.join(ROOT, "README.md")).read()
    sec = text.split("## Using a PyTorch model", 1)[1]
    code = sec.split("```python\n", 1)[1].split("```", 1)[0]
    out = subprocess.run(["/usr/bin/python3", "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.startswith("(2, 8, 16, 16) [1.     0.8002 0.6004 0.4006 0.2008 0.001 ] 50")


# ---- --model python: in the program: the same adapter, the same bits ----

MODEL_FILE = '''
import numpy as np
def make(ctx, args):
    scale = float(args or 1)
    def model(t, x, c):
        if scale < 0:
            raise KeyError("negative scale at step %d" % c.step)
        return -scale * np.sqrt(1 - c.abar) * x  # the noise answer of N(0, C) data
    model.output = "noise"
    return model
'''


def test_cli_python_model_same_bits_as_solve(tmp_path):
    import h5py
    src = tmp_path / "mymodel.py"
    src.write_text(MODEL_FILE)
    out = tmp_path / "py.h5"
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    subprocess.run([CORRSDE, "sample", "--model", "python:%s:make:0.9" % src, "--frames", "6",
                    "--frame-shape", "3x2", "--batch", "2", "--steps", "25", "--seed", "3",
                    "--save", "every:5", "-q", "-o", str(out)], check=True, env=env)
    with h5py.File(out, "r") as f:
        want = f["trajectory/x"][...]
    code = ("import sys, runpy, corrsde; m = runpy.run_path(sys.argv[1])['make'](None, '0.9'); "
            "r = corrsde.solve(m, cov=corrsde.Cov('ar1:rho=0.9', 6), steps=25, seed=3, "
            "batch=2, frame_shape=(3, 2), save='every:5'); "
            "sys.stdout.buffer.write(r.states.tobytes())")
    got = subprocess.run(["/usr/bin/python3", "-c", code, str(src)], env=env,
                         capture_output=True, check=True).stdout
    assert len(got) == want.nbytes and got == want.tobytes()
    # an exception in the model: exit 1, its type and text in the message
    bad = subprocess.run([CORRSDE, "sample", "--model", "python:%s:make:-1" % src, "--frames",
                          "6", "--steps", "5", "-q", "-o", str(tmp_path / "bad.h5")],
                         capture_output=True, text=True)
    assert bad.returncode == 1
    assert "KeyError: 'negative scale at step 0'" in bad.stderr, bad.stderr
    # a factory that does not exist
    bad = subprocess.run([CORRSDE, "sample", "--model", "python:%s:nosuch" % src, "-q", "-o",
                          str(tmp_path / "bad2.h5")], capture_output=True, text=True)
    assert bad.returncode != 0 and "has no attribute 'nosuch'" in bad.stderr


def h5_contents(path):
    """Every dataset (bytes, dtype, shape) and every attribute of a file, by path."""
    import h5py
    data, attrs = {}, {}
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                a = obj[...]
                data[name] = (a.dtype.str, a.shape, a.tobytes())
            for k, v in obj.attrs.items():
                if k in ("DIMENSION_LIST", "REFERENCE_LIST"):  # object references
                    v = len(v)
                attrs[(name, k)] = v.tolist() if hasattr(v, "tolist") else v
        for k, v in f.attrs.items():
            attrs[("/", k)] = v
        f.visititems(visit)
    return data, attrs


@pytest.mark.parametrize("cli,kw", [
    (["--steps", "25", "--save", "every:5"], dict(steps=25, save="every:5")),
    (["--process", "pf-ode", "--solver", "dopri5", "--rtol", "1e-6", "--save",
      "times:0.5,0.1", "--dtype", "float32"],
     dict(process="pf-ode", solver="dopri5", rtol=1e-6, save={"times": [0.5, 0.1]},
          dtype="float32")),
    (["--process", "ddim:eta=0.5", "--steps", "12", "--save", "every:4", "--compress"],
     dict(process="ddim", eta=0.5, steps=12, save="every:4", compress=True)),
])
def test_out_writes_the_clis_file(tmp_path, cli, kw):
    """solve(out=) and `corrsde sample -o` with the same settings and the same Python
    model write the same file: every dataset bit for bit, every attribute but the ones
    naming the front end (command line, model spec, the time of creation)."""
    src = tmp_path / "mymodel.py"
    src.write_text(MODEL_FILE)
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    a, b = tmp_path / "cli.h5", tmp_path / "py.h5"
    subprocess.run([CORRSDE, "sample", "--model", "python:%s:make:0.9" % src, "--frames", "6",
                    "--frame-shape", "3x2", "--batch", "2", "--seed", "3", "-q", "-o", str(a)]
                   + cli, check=True, env=env)
    code = ("import sys, runpy, corrsde; m = runpy.run_path(sys.argv[1])['make'](None, '0.9'); "
            "corrsde.solve(m, cov=corrsde.Cov('ar1:rho=0.9', 6), seed=3, batch=2, "
            "frame_shape=(3, 2), out=sys.argv[2], **%r)" % (kw,))
    subprocess.run(["/usr/bin/python3", "-c", code, str(src), str(b)], env=env, check=True)
    da, aa = h5_contents(a)
    db, ab = h5_contents(b)
    assert sorted(da) == sorted(db)
    for k in da:
        assert da[k] == db[k], k
    differ = {("parameters", "command_line"), ("parameters", "created"),
              ("parameters", "model"), ("parameters", "model_name"),
              ("stats", "wall_seconds")}
    assert sorted(aa) == sorted(ab)
    for k in aa:
        if k not in differ:
            assert np.array_equal(aa[k], ab[k]) if isinstance(aa[k], list) else aa[k] == ab[k], k
    assert ab[("stats", "status")] == "ok"
    assert ab[("parameters", "model")] == "python:make.<locals>.model"


def test_out_records_a_failed_run(tmp_path):
    """A model raising at step 5 with out=: the exception propagates, and the file keeps
    the states saved before it with status 'failed: ...' naming the exception."""
    import h5py
    C = corrsde.Cov("ar1:rho=0.9", frames=4)

    def model(t, x, ctx):
        if ctx.step == 5:
            raise ZeroDivisionError("step five")
        return -x
    out = tmp_path / "f.h5"
    with pytest.raises(ZeroDivisionError):
        corrsde.solve(model, cov=C, steps=10, save="every:1", batch=2, out=out)
    with h5py.File(out, "r") as f:
        status = f["stats"].attrs["status"]
        assert status.startswith("failed: ") and "ZeroDivisionError: step five" in status
        assert f["trajectory"].attrs["n_saved"] == 6  # the start and steps 1..5
        assert list(f["trajectory/step"][...]) == [0, 1, 2, 3, 4, 5]
    # the existing file is refused without force, replaced with it
    with pytest.raises(OSError, match="exists"):
        corrsde.solve(lambda t, x, c: -x, cov=C, steps=3, batch=2, out=out)
    r = corrsde.solve(lambda t, x, c: -x, cov=C, steps=3, batch=2, out=out, force=True)
    with h5py.File(out, "r") as f:
        assert f["stats"].attrs["status"] == "ok"
        assert np.array_equal(f["trajectory/x"][-1].reshape(r.x.shape), r.x)  # [B, tau, 1]


def test_run_setting_errors_name_the_argument():
    C = corrsde.Cov("ar1:rho=0.9", frames=4)
    cases = [
        (dict(save="every:0"), "save: 'every:0'"),
        (dict(save="times:0.5,2"), "outside [0, 1]"),
        (dict(process="forward-sde", t_start=0.5), "t_start/t_end: forward-sde starts at t = 0"),
        (dict(t_start=0.1, t_end=0.5), "t_start/t_end: reverse-sde runs backwards"),
        (dict(process="ddpm"), "schedule: ddpm needs a discrete schedule"),
    ]
    x = np.zeros((1, 4, 2))
    for kw, msg in cases:
        with pytest.raises(ValueError, match=msg.replace("(", r"\(").replace("[", r"\[")):
            corrsde.solve(lambda t, x, c: -x, x, cov=C, **kw)


def test_keyboard_interrupt_stops_the_solve(tmp_path):
    """SIGINT during a long solve: KeyboardInterrupt out of solve, with the step noted."""
    code = r"""
import os, signal, sys, threading, corrsde
C = corrsde.Cov("ar1:rho=0.9", frames=8)
def model(t, x, ctx):
    if ctx.step == 50:
        os.kill(os.getpid(), signal.SIGINT)  # as a user's Ctrl-C
    return -x
try:
    corrsde.solve(model, cov=C, process="pf-ode", solver="euler", steps=1000000, batch=2,
                  save="every:10", out=sys.argv[1])
except KeyboardInterrupt as e:
    print("interrupted", [n for n in getattr(e, "__notes__", [])])
    sys.exit(0)
sys.exit(3)
"""
    import h5py
    out = tmp_path / "int.h5"
    r = subprocess.run(["/usr/bin/python3", "-c", code, str(out)], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "interrupted" in r.stdout and "(step 5" in r.stdout
    with h5py.File(out, "r") as f:  # the file keeps steps 0..50 and says why it stopped
        assert "KeyboardInterrupt" in f["stats"].attrs["status"]
        assert list(f["trajectory/step"][...]) == list(range(0, 51, 10))


def test_progress_line_on_stderr():
    """progress=True: the run's progress line (the CLI's), ending at the last step."""
    code = ("import corrsde; C = corrsde.Cov('ar1:rho=0.9', 4); "
            "corrsde.solve(lambda t, x, c: -x, cov=C, steps=7, progress=True, batch=2)")
    r = subprocess.run(["/usr/bin/python3", "-c", code], capture_output=True, text=True,
                       check=True)
    assert "step 7/7" in r.stderr and "100%" in r.stderr and "saved 1" in r.stderr, r.stderr
    r = subprocess.run(["/usr/bin/python3", "-c", code.replace("True", "False")],
                       capture_output=True, text=True, check=True)
    assert r.stderr == ""


@pytest.mark.parametrize("spec", ["edm", "ve:smin=0.01,smax=50", "rf:shift=3"])
def test_paths_run_the_denoiser_view_solvers(spec):
    """Issue 28: the Gaussian paths are schedules (their VP view evaluates); the
    denoiser-view solvers run on them (orders: tests/test_paths_proc.c; here on rf, whose
    span the Python layer takes as it is); the discrete VP chain (ddpm) is refused with an
    error naming the schedule (edm: the Python layer's [0, 1] span check comes first)."""
    S = corrsde.Schedule(spec)
    assert np.isfinite(S.abar(np.array([0.5]))).all()
    C = corrsde.Cov("ar1:rho=0.5", frames=3)
    f = lambda t, x, ctx: -x
    if spec == "edm":
        return
    if spec.startswith("rf"):
        r = corrsde.solve(f, np.ones((1, 3, 2)), cov=C, schedule=S, process="pf-ode",
                          solver="dpmpp2m", steps=4, grid="logsnr")
        assert np.isfinite(r.x).all() and r.nfe == 4
    with pytest.raises(ValueError, match=r"schedule.*\(the (edm|ve|rf) path\)") as e:
        corrsde.solve(f, np.zeros((1, 3, 2)), cov=C, schedule=S, process="pf-ode",
                      solver="ddpm", steps=4)
    assert S.spec in str(e.value) and "discrete VP chain" in str(e.value)
