"""corrsde.Model: the built-in exact models evaluated from Python, against their closed
forms, and solve() with a built-in model against `corrsde sample --model` (bitwise).

Run: PYTHONPATH=build/python /usr/bin/python3 -m pytest tests/python/test_model_builtin.py
CORRSDE names the program (default build/corrsde).
"""
import os
import subprocess

import numpy as np
import pytest

import corrsde

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CORRSDE = os.environ.get("CORRSDE", os.path.join(ROOT, "build", "corrsde"))

TAU, D = 6, 3
PATHS = ["vp-linear", "edm", "rf:shift=3"]


def frame_apply(M, x):
    """M x along axis 1 of x [B, tau, D] (M one matrix, or one per sample [B, tau, tau])."""
    return np.einsum("ij,bj...->bi...", M, x) if M.ndim == 2 else np.einsum(
        "bij,bj...->bi...", M, x)


def times(S):
    """Times inside the path's span: near each end and in the middle."""
    lo, hi = S.span()
    return [lo + 0.05 * (hi - lo), lo + 0.5 * (hi - lo), lo + 0.9 * (hi - lo)]


def states(S, t, seed):
    """States of the scale of x_t at t: alpha x0 + sigma z."""
    g = np.random.default_rng(seed)
    return S.alpha(t) * (0.3 + g.standard_normal((4, TAU, D))) + \
        S.sigma_path(t) * g.standard_normal((4, TAU, D))


def rel(a, b):
    return np.abs(a - b).max() / np.abs(b).max()


def rel_x0(got, want, x, a):
    """x0 = (x + sigma^2 s) / alpha cancels x against sigma^2 s: its rounding is
    eps |x| / alpha, so the error is taken relative to the larger of |x0| and |x| / alpha."""
    return np.abs(got - want).max() / max(np.abs(want).max(), np.abs(x).max() / a)


# ---- the gaussian model: -C Sigma_t^-1 (x - alpha m), Sigma_t = alpha^2 S0 + sigma^2 C ----

@pytest.mark.parametrize("path", PATHS)
def test_gaussian_closed_form(path):
    C = corrsde.Cov("ar1:rho=0.8", frames=TAU)
    S = corrsde.Schedule(path)
    m = corrsde.Model("gaussian:mean=0.3,std=0.7,rho=0.9", cov=C, schedule=S, frame_shape=D)
    assert m.output == "cscore" and m.spec == "gaussian:mean=0.3,std=0.7,rho=0.9"
    assert "gaussian:mean=0.3" in repr(m) and path in repr(m)
    Cm = C.matrix
    S0 = 0.49 * 0.9 ** np.abs(np.subtract.outer(np.arange(TAU), np.arange(TAU)))
    for i, t in enumerate(times(S)):
        a, s = S.alpha(t), S.sigma_path(t)
        x = states(S, t, i)
        Sig = a * a * S0 + s * s * Cm
        want = -frame_apply(Cm @ np.linalg.inv(Sig), x - a * 0.3)
        got = m(t, x)
        assert got.shape == x.shape
        assert rel(got, want) <= 1e-12, (t, rel(got, want))
        # x0: the posterior mean E[x0 | x_t] = m + alpha S0 Sigma_t^-1 (x - alpha m)
        post = 0.3 + frame_apply(a * S0 @ np.linalg.inv(Sig), x - a * 0.3)
        assert rel_x0(m.x0(t, x), post, x, a) <= 1e-12, (t, rel_x0(m.x0(t, x), post, x, a))


# ---- the gmm: the mixture's exact score and posterior mean in numpy ----

def make_gmm(path, K=3, seed=0):
    import h5py
    g = np.random.default_rng(seed)
    w = g.uniform(0.5, 2.0, K)
    mu = g.standard_normal((K, TAU, D))
    covs = []
    for _ in range(K):
        A = g.standard_normal((TAU, TAU))
        covs.append(0.2 * A @ A.T / TAU + 0.05 * np.eye(TAU))
    covs = np.array(covs)
    with h5py.File(path, "w") as f:
        f["weights"], f["means"], f["frame_covs"] = w, mu, covs
    return w / w.sum(), mu, covs


def gmm_closed_form(Cm, a, s, w, mu, covs, x):
    """(C grad log p_t, E[x0 | x_t]) of the mixture, per sample (the whole tau x D block)."""
    K = len(w)
    logr = np.empty((x.shape[0], K))
    score_k, post_k = [], []
    for k in range(K):
        Sig = a * a * covs[k] + s * s * Cm
        Si = np.linalg.inv(Sig)
        r = x - a * mu[k]
        Sir = frame_apply(Si, r)
        logr[:, k] = (np.log(w[k]) - 0.5 * np.einsum("bij,bij->b", r, Sir)
                      - 0.5 * D * np.linalg.slogdet(Sig)[1])
        score_k.append(-frame_apply(Cm, Sir))
        post_k.append(mu[k] + a * frame_apply(covs[k], Sir))
    resp = np.exp(logr - logr.max(axis=1, keepdims=True))
    resp /= resp.sum(axis=1, keepdims=True)
    score = sum(resp[:, k, None, None] * score_k[k] for k in range(K))
    post = sum(resp[:, k, None, None] * post_k[k] for k in range(K))
    return score, post


@pytest.mark.parametrize("path", PATHS)
def test_gmm_closed_form(tmp_path, path):
    w, mu, covs = make_gmm(tmp_path / "g.h5")
    C = corrsde.Cov("ar1:rho=0.8", frames=TAU)
    S = corrsde.Schedule(path)
    m = corrsde.Model("gmm:file=%s" % (tmp_path / "g.h5"), cov=C, schedule=S, frame_shape=(D,))
    assert m.output == "cscore"
    for i, t in enumerate(times(S)):
        x, a = states(S, t, 10 + i), S.alpha(t)
        score, post = gmm_closed_form(C.matrix, a, S.sigma_path(t), w, mu, covs, x)
        assert rel(m(t, x), score) <= 1e-12, (t, rel(m(t, x), score))
        assert rel_x0(m.x0(t, x), post, x, a) <= 1e-12, (t, rel_x0(m.x0(t, x), post, x, a))


def test_torch_in_torch_out(tmp_path):
    torch = pytest.importorskip("torch")
    C = corrsde.Cov("ar1:rho=0.8", frames=TAU)
    m = corrsde.Model("gaussian", cov=C, frame_shape=D)
    x = states(m.schedule, 0.4, 3)
    y = m(torch.tensor(0.4, dtype=torch.float64), torch.tensor(x, dtype=torch.float32))
    assert isinstance(y, torch.Tensor) and y.dtype == torch.float32
    assert np.array_equal(y.numpy(), m(0.4, x.astype(np.float32)).astype(np.float32))


# ---- solve() with a built-in model: the same bits as `corrsde sample --model` ----

RUNS = {
    "vp": (["--schedule", "vp-linear", "--process", "pf-ode", "--solver", "heun",
            "--steps", "20"],
           "schedule='vp-linear', process='pf-ode', solver='heun', steps=20"),
    "rf": (["--schedule", "rf:shift=3", "--process", "reverse-sde", "--solver", "em",
            "--steps", "30"],
           "schedule='rf:shift=3', process='reverse-sde', solver='em', steps=30"),
}


@pytest.mark.parametrize("run", sorted(RUNS))
def test_solve_builtin_is_the_clis(tmp_path, run):
    import h5py
    make_gmm(tmp_path / "g.h5", seed=1)
    spec = "gmm:file=%s" % (tmp_path / "g.h5")
    args, kw = RUNS[run]
    out = tmp_path / "cli.h5"
    subprocess.run([CORRSDE, "sample", "--model", spec, "--cov", "ar1:rho=0.8", "--frames",
                    str(TAU), "--frame-shape", str(D), "--batch", "5", "--seed", "7", "-q",
                    "-o", str(out)] + args, check=True)
    with h5py.File(out, "r") as f:
        want = f["trajectory/x"][-1]
        nfe = int(f["stats"].attrs["nfe"])
    # the package leaves OpenBLAS's threads alone; the program runs it on one thread (a
    # threaded OpenBLAS changes the dense factors in their last bits): so does this child
    code = ("import corrsde, sys\n"
            "C = corrsde.Cov('ar1:rho=0.8', frames=%d)\n"
            "kw = dict(cov=C, seed=7, batch=5, %s)\n"
            "a = corrsde.solve(sys.argv[1], frame_shape=%d, **kw)\n"
            "m = corrsde.Model(sys.argv[1], cov=C, schedule=kw['schedule'], frame_shape=%d)\n"
            "b = corrsde.solve(m, **kw)\n"
            "assert a.nfe == b.nfe == %d, (a.nfe, b.nfe)\n"
            "sys.stdout.buffer.write(a.x.tobytes() + b.x.tobytes())\n"
            % (TAU, kw, D, D, nfe))
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    got = subprocess.run(["/usr/bin/python3", "-c", code, spec], env=env, capture_output=True,
                         check=True).stdout
    n = want.size * 8
    assert len(got) == 2 * n
    assert got[:n] == want.tobytes() and got[n:] == want.tobytes()


def test_converge_builtin(tmp_path):
    """converge() takes a built-in model too: the gaussian's exact flow is the reference."""
    C = corrsde.Cov("ar1:rho=0.8", frames=4)
    m = corrsde.Model("gaussian", cov=C, frame_shape=2)
    res = corrsde.converge(m, cov=C, solvers="heun", levels=(3, 6), paths=4, boot=50)
    assert "exact" in res.reference
    lo, hi = res.order("heun")[1:]
    assert lo <= 2.0 <= hi or abs(res.order("heun")[0] - 2) < 0.2


# ---- bad input: a ValueError naming the argument ----

def test_bad_specs_and_shapes(tmp_path):
    make_gmm(tmp_path / "g.h5")
    C = corrsde.Cov("ar1:rho=0.8", frames=TAU)
    for spec, frag in (("nosuch", "model:"), ("gaussian:std=-1", "model:"),
                       ("gaussian:bogus=1", "model:")):
        with pytest.raises(ValueError, match="^" + frag):
            corrsde.Model(spec, cov=C)
    with pytest.raises(ValueError, match="^model:"):  # the file's D is 3
        corrsde.Model("gmm:file=%s" % (tmp_path / "g.h5"), cov=C, frame_shape=2)
    with pytest.raises(ValueError, match="^model:"):  # the file's tau is 6
        corrsde.Model("gmm:file=%s" % (tmp_path / "g.h5"), cov=corrsde.Cov("ar1:rho=0.8", 4),
                      frame_shape=3)
    with pytest.raises(ValueError, match="^frame_shape"):
        corrsde.Model("gaussian", cov=C, frame_shape=(0,))
    with pytest.raises(TypeError, match="^model"):
        corrsde.Model(3, cov=C)
    m = corrsde.Model("gaussian", cov=C, frame_shape=D)
    x = np.zeros((2, TAU, D))
    with pytest.raises(ValueError, match="^x: axis 1"):
        m(0.5, np.zeros((2, TAU + 1, D)))
    with pytest.raises(ValueError, match="^x: frame shape"):
        m(0.5, np.zeros((2, TAU, D + 1)))
    for t in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="^t:"):
            m(t, x)
    rf = corrsde.Model("gaussian", cov=C, schedule="rf", frame_shape=D)
    with pytest.raises(ValueError, match="^t: alpha"):
        rf.x0(1.0, x)
    with pytest.raises(ValueError, match="^cov:"):
        corrsde.solve(m, cov=corrsde.Cov("ar1:rho=0.5", frames=TAU), steps=2)
    with pytest.raises(ValueError, match="^schedule:"):
        corrsde.solve(m, cov=C, schedule="cosine", steps=2)
    with pytest.raises(ValueError, match="^x: frame shape"):
        corrsde.solve(m, np.zeros((2, TAU, D + 1)), cov=C, steps=2)
    with pytest.raises(ValueError, match="^output:"):
        corrsde.solve("gaussian", cov=C, output="noise", steps=2)
    with pytest.raises(ValueError, match="^model:"):
        corrsde.solve("gaussian:rho=2", cov=C, steps=2)


# ---- experiments/fewstep_kd.py's closed-form denoiser is the built-in gmm's x0 ----

@pytest.mark.parametrize("path", ["vp-linear", "rf:shift=3"])
def test_fewstep_kd_denoiser_is_the_models(tmp_path, path):
    import h5py
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        "fewstep_kd", os.path.join(ROOT, "experiments", "fewstep_kd.py"))
    kd = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(kd)
    g = np.random.default_rng(4)
    w, mu = g.uniform(0.5, 2.0, 3), g.standard_normal((3, TAU))  # fewstep's [K, tau] means
    covs = np.array([0.3 * A @ A.T / TAU + 0.05 * np.eye(TAU)
                     for A in g.standard_normal((3, TAU, TAU))])
    with h5py.File(tmp_path / "g.h5", "w") as f:
        f["weights"], f["means"], f["frame_covs"] = w, mu, covs
    C = corrsde.Cov("ar1:rho=0.9", frames=TAU)
    S = corrsde.Schedule(path)
    m = corrsde.Model("gmm:file=%s" % (tmp_path / "g.h5"), cov=C, schedule=S, frame_shape=D)
    ref = kd.GmmX0(w, mu, covs, C.matrix, S)
    for i, t in enumerate(times(S)):
        x, a = states(S, t, 20 + i), S.alpha(t)
        assert rel_x0(m.x0(t, x), ref(x, t), x, a) <= 1e-12


def test_likelihood_and_elbo_take_a_model():
    """A Model is its spec to likelihood() and elbo(): the exact divergence, the same bits."""
    C = corrsde.Cov("ar1:rho=0.8", frames=4)
    m = corrsde.Model("gaussian:std=0.7", cov=C, schedule="rf:shift=3", frame_shape=2)
    x = 0.7 * C.sample(3, 2, seed=1)
    a = corrsde.likelihood(m, x, cov=C, schedule="rf:shift=3", rtol=1e-8)
    b = corrsde.likelihood(m.spec, x, cov=C, schedule="rf:shift=3", rtol=1e-8)
    assert a["divergence"] == "exact" and a["logp"].tobytes() == b["logp"].tobytes()
    d = corrsde.Model("gaussian:std=0.7", cov=C, schedule="ddpm-linear", frame_shape=2)
    a = corrsde.elbo(d, x, cov=C, schedule="ddpm-linear", tdraws=8)
    b = corrsde.elbo(d.spec, x, cov=C, schedule="ddpm-linear", tdraws=8)
    assert a["nll"].tobytes() == b["nll"].tobytes()
    with pytest.raises(ValueError, match="^schedule:"):
        corrsde.likelihood(m, x, cov=C)
