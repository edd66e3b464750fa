"""corrsde.solve(x0_clip=..., x0_threshold=...) (issue 24, item 3): the model's x0 clipped
or thresholded (Imagen) in the process layer, for every solver and model kind."""
import numpy as np
import pytest

import corrsde

TAU, D, B = 4, 6, 3


@pytest.fixture(scope="module")
def cov():
    return corrsde.Cov("ar1:rho=0.8", TAU)


def const_model(c, output):
    """A model whose x0 is c everywhere, answering as `output`."""
    def m(t, x, ctx):
        a, sg = np.sqrt(ctx.abar), np.sqrt(1 - ctx.abar)
        if output == "x0":
            return np.full_like(x, c)
        if output == "noise":
            return (x - a * c) / sg
        if output == "v":
            return (a * x - c) / sg
        return (a * c - x) / (1 - ctx.abar)  # cscore
    m.output = output
    return m


def wide_model(t, x, ctx):
    """C grad log p_t for data N(0, 4 C): Sigma_t = (1 + 3 abar) C, so s = -x / (1 + 3 abar)
    (|x0| often > 1: thresholding is active)."""
    return -x / (1 + 3 * ctx.abar)


wide_model.output = "cscore"


def start(cov, seed=1):
    return cov.sample(B, (D,), seed=seed)


def test_clip_inactive_is_off(cov):
    """Bounds beyond every x0 the exact model gives: the bits of the run without."""
    x = start(cov)
    for proc, solver in [("pf-ode", "dpmpp2m"), ("pf-ode", "unipc"), ("reverse-sde", "euler"),
                         ("reverse-sde", "euler-ancestral"), ("ddim:eta=0.5", None),
                         ("pf-ode", "heun")]:
        kw = dict(cov=cov, process=proc, solver=solver, steps=12, seed=4)
        off = corrsde.solve(wide_model, x, **kw).x
        wide = corrsde.solve(wide_model, x, x0_clip=(-1e4, 1e4), **kw).x
        assert off.tobytes() == wide.tobytes(), (proc, solver)


@pytest.mark.parametrize("output", ["x0", "noise", "v", "cscore"])
def test_clip_active_is_the_clipped_model(cov, output):
    """x0 = 5 clipped to [-1, 1] is the model whose x0 is 1: ddim (eta 0) bit for bit for an
    x0 model, to 1e-14 for the others (one conversion each way)."""
    x = start(cov)
    kw = dict(cov=cov, process="ddim", steps=10)
    got = corrsde.solve(const_model(5.0, output), x, x0_clip=(-1, 1), **kw).x
    want = corrsde.solve(const_model(1.0, output), x, **kw).x
    if output == "x0":
        assert got.tobytes() == want.tobytes()
    assert np.max(np.abs(got - want)) <= 1e-14
    unclipped = corrsde.solve(const_model(5.0, output), x, **kw).x
    assert np.max(np.abs(unclipped - want)) > 1  # the clip did something


@pytest.mark.parametrize("spec", [{"p": 0.995}, {"p": 0.5}, {"p": 0.9, "max": 1.5}, 0.7,
                                  "p=1,max=inf"])
def test_threshold_is_imagen_with_numpy_quantile(cov, spec):
    """One DDIM step from a model with a known x0: the run of the model that answers
    x0' = clip(x0, -s, s) / s, s = min(max(np.quantile(|x0|, p), 1), max) per sample
    (numpy's default method, 'linear'), bit for bit; the closed form to 1e-12."""
    rng = np.random.default_rng(3)
    x0 = rng.normal(0, 2, (B, TAU, D))
    x0[1] = np.round(x0[1])  # ties
    x0[2] = np.clip(x0[2], -0.9, 0.9)  # |x0| <= 1: s = 1, nothing changes

    def fixed(v):
        def m(t, x, ctx):
            return v
        m.output = "x0"
        return m

    p, mx = (0.7, np.inf) if spec == 0.7 else (1.0, np.inf) if isinstance(spec, str) else \
        (spec["p"], spec.get("max", np.inf))
    q = np.quantile(np.abs(x0).reshape(B, -1), p, axis=1)
    s = np.minimum(np.maximum(q, 1), mx)[:, None, None]
    x0c = np.clip(x0, -s, s) / s
    x = start(cov)
    r = corrsde.solve(fixed(x0), x, cov=cov, process="ddim", steps=1, x0_threshold=spec)
    hand = corrsde.solve(fixed(x0c), x, cov=cov, process="ddim", steps=1).x
    assert r.x.tobytes() == hand.tobytes()
    sched = corrsde.Schedule("vp-linear")
    aT, ae = np.sqrt(sched.abar(1.0)), np.sqrt(sched.abar(1e-3))
    sT, se = np.sqrt(1 - aT**2), np.sqrt(1 - ae**2)
    closed = ae * x0c + se * (x - aT * x0c) / sT
    assert np.max(np.abs(r.x - closed)) <= 1e-12
    # the quantile's definition matters: numpy's 'lower' order statistic gives another s
    ql = np.quantile(np.abs(x0).reshape(B, -1), p, axis=1, method="lower")
    sl = np.minimum(np.maximum(ql, 1), mx)[:, None, None]
    if not np.array_equal(sl, s):
        lower = corrsde.solve(fixed(np.clip(x0, -sl, sl) / sl), x, cov=cov, process="ddim",
                              steps=1).x
        assert lower.tobytes() != r.x.tobytes()


def test_threshold_threads_and_batch_split(cov):
    """Thresholding is per sample: threads 1 and 2, and each sample alone, give the same
    bits; and thresholding changes the run."""
    x = start(cov)
    for proc, solver in [("pf-ode", "dpmpp2m"), ("ddim", None), ("pf-ode", "heun")]:
        kw = dict(cov=cov, process=proc, solver=solver, steps=12, x0_threshold={"p": 0.9})
        one = corrsde.solve(wide_model, x, threads=1, **kw).x
        two = corrsde.solve(wide_model, x, threads=2, **kw).x
        split = np.concatenate([corrsde.solve(wide_model, x[b:b + 1], **kw).x
                                for b in range(B)])
        assert one.tobytes() == two.tobytes() == split.tobytes(), (proc, solver)
        kw.pop("x0_threshold")
        assert np.max(np.abs(corrsde.solve(wide_model, x, **kw).x - one)) > 0.1


def test_recorded_in_parameters(cov, tmp_path):
    h5py = pytest.importorskip("h5py")
    x = start(cov)
    for kw, clip, thr in [({}, "none", "none"), ({"x0_clip": (-1, 1)}, "-1,1", "none"),
                          ({"x0_threshold": {"p": 0.995}}, "none", "p=0.995,max=inf"),
                          ({"x0_threshold": "p=0.9,max=50"}, "none", "p=0.9,max=50")]:
        out = str(tmp_path / "r.h5")
        corrsde.solve(wide_model, x, cov=cov, process="pf-ode", solver="dpmpp2m", steps=5,
                      out=out, force=True, **kw)
        with h5py.File(out, "r") as f:
            a = f["/parameters"].attrs
            got = [v.decode() if isinstance(v, bytes) else v for v in (a["x0_clip"],
                                                                       a["x0_threshold"])]
        assert got == [clip, thr]


@pytest.mark.parametrize("kw, exc, words", [
    ({"x0_clip": (1, -1)}, ValueError, "x0_clip: '1.0,-1.0': LO must be below HI"),
    ({"x0_clip": "1"}, ValueError, "x0_clip: '1': expected LO,HI"),
    ({"x0_clip": (0, np.inf)}, ValueError, "x0_clip: '0.0,inf': expected LO,HI"),
    ({"x0_clip": 3}, TypeError, "x0_clip: expected (lo, hi)"),
    ({"x0_clip": (1, 2, 3)}, TypeError, "x0_clip: expected (lo, hi)"),
    ({"x0_clip": ("a", 1)}, TypeError, "x0_clip: expected a number"),
    ({"x0_threshold": {"p": 0}}, ValueError, "x0_threshold: 'p=0.0': p must be in (0, 1]"),
    ({"x0_threshold": {"p": 0.9, "max": 0.5}}, ValueError, "max must be >= 1"),
    ({"x0_threshold": {"max": 2}}, ValueError, "p is missing"),
    ({"x0_threshold": {"q": 1}}, ValueError, "x0_threshold: expected the keys p and max"),
    ({"x0_threshold": "0.9"}, ValueError, "x0_threshold: '0.9': expected p=P"),
    ({"x0_clip": (-1, 1), "x0_threshold": 0.9}, ValueError, "exclude each other"),
])
def test_bad_specs(cov, kw, exc, words):
    with pytest.raises(exc) as e:
        corrsde.solve(wide_model, start(cov), cov=cov, process="pf-ode", steps=3, **kw)
    assert words in str(e.value)


def test_forward_sde_refused(cov):
    with pytest.raises(ValueError, match="x0_clip: forward-sde never calls the model"):
        corrsde.solve(wide_model, start(cov), cov=cov, process="forward-sde", steps=3,
                      x0_clip=(-1, 1))
