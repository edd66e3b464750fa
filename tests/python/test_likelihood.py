"""corrsde.likelihood: the PF-ODE log-likelihood from Python (corrsde/likelihood.h) against
the exact gaussian density, through the built-in model, a TorchModel's autograd JVP and a
Python jvp callable; Hutchinson's interval and width; bits; the refusals."""
import math

import numpy as np
import pytest

import corrsde

TAU, D, M, STD, RHO = 5, 2, 0.3, 0.7, 0.9
SPEC = "gaussian:mean=%r,std=%r,rho=%r" % (M, STD, RHO)
C = corrsde.Cov("ar1:rho=0.6", frames=TAU)
S = corrsde.Schedule("vp-linear")
IDX = np.arange(TAU)
S0 = STD ** 2 * RHO ** np.abs(np.subtract.outer(IDX, IDX))
EPS, T = 1e-3, 1.0
X = np.random.default_rng(11).normal(0.2, 0.8, size=(4, TAU, D))


def log_normal(x, t):
    """log p_t(x) per sample: N(sqrt(abar) m, Sigma_t (x) I_D), Sigma_t = abar S0 + (1 - abar) C."""
    ab = S.abar(t)
    L = np.linalg.cholesky(ab * S0 + (1 - ab) * C.matrix)
    z = np.linalg.solve(L, x - math.sqrt(ab) * M)  # [B, tau, D] (solve broadcasts)
    return (-0.5 * np.sum(z ** 2, axis=(1, 2)) - D * np.sum(np.log(np.diag(L)))
            - 0.5 * TAU * D * math.log(2 * math.pi))


def exact_logp(r, x):
    """The exact log p_eps(x) implied by a run's x_T: logp - prior + log p_T(x_T) is the
    closed form; here the other way round, the value logp should have."""
    return log_normal(x, EPS) - log_normal(r["x_T"], T) + r["prior"]


def A(t):
    """C Sigma_t^-1: the exact C score is -A (x - sqrt(abar) m)."""
    ab = S.abar(t)
    return C.matrix @ np.linalg.inv(ab * S0 + (1 - ab) * C.matrix)


def test_s0_and_c_do_not_commute():
    assert np.abs(S0 @ C.matrix - C.matrix @ S0).max() > 1e-2


def test_gaussian_directional_fd_is_the_closed_form():
    r = corrsde.likelihood(SPEC, X, cov=C, schedule=S, divergence="directional", jvp="fd",
                           rtol=1e-9, atol=1e-9)
    assert r["divergence"] == "directional" and r["jvp"] == "fd"
    want = log_normal(X, EPS)
    got = r["logp"] - r["prior"] + log_normal(r["x_T"], T)
    assert np.all(np.abs(got - want) <= 1e-6 * np.abs(want)), (got, want)
    assert np.array_equal(r["se"], np.zeros(4)) and np.array_equal(r["lo"], r["logp"])
    assert np.allclose(r["bpd"], -r["logp"] / (TAU * D * math.log(2)), rtol=1e-15)
    # the PF-ODE's prior is N(0, C), not the model's p_T: the mismatch is the model's own
    assert np.all(np.abs(r["prior"] - log_normal(r["x_T"], T)) > 1e-3)


def python_model(t, x, ctx):
    return -np.einsum("ij,bjd->bid", A(t), x - math.sqrt(S.abar(t)) * M)


def python_jvp(t, x, v, ctx):
    return -np.einsum("ij,bjd->bid", A(t), v)


def test_python_jvp_callable_is_the_models():
    kw = dict(cov=C, schedule=S, divergence="directional", rtol=1e-9, atol=1e-9)
    r = corrsde.likelihood(python_model, X, jvp=python_jvp, **kw)
    assert r["jvp"] == "model" and r["jvp_calls"] == r["nfe"] * TAU * D
    want = exact_logp(r, X)
    assert np.all(np.abs(r["logp"] - want) <= 1e-6 * np.abs(want))
    f = corrsde.likelihood(python_model, X, jvp="fd", **kw)
    assert f["jvp"] == "fd" and f["jvp_calls"] == 0
    assert np.allclose(f["logp"], r["logp"], rtol=1e-7, atol=0)


torch = pytest.importorskip("torch")
import corrsde.torch as ct  # noqa: E402


class GaussScore(torch.nn.Module):
    """The gaussian model's exact C score -C Sigma_t^-1 (x - sqrt(abar) m), float64 torch."""

    def __init__(self):
        super().__init__()
        self.register_buffer("S0", torch.tensor(S0))
        self.register_buffer("C", torch.tensor(C.matrix))

    def forward(self, x, t):
        ab = S.abar(t[:1].double()).to(x)  # the schedule's torch formulas
        sig = ab * self.S0 + (1 - ab) * self.C
        a = self.C @ torch.linalg.inv(sig)
        return -torch.einsum("ij,bjd->bid", a, x - torch.sqrt(ab) * M)


def test_torch_jvp_is_the_jacobian(monkeypatch):
    tm = ct.TorchModel(GaussScore(), output="cscore", dtype=torch.float64)
    v = np.random.default_rng(2).normal(size=X.shape)
    want = -np.einsum("ij,bjd->bid", A(0.4), v)
    assert np.allclose(tm.jvp(0.4, X, v, None), want, rtol=1e-12, atol=1e-12)
    monkeypatch.setattr(torch, "func", None, raising=False)  # the double-backward route
    assert np.allclose(tm.jvp(0.4, X, v, None), want, rtol=1e-12, atol=1e-12)
    small = ct.TorchModel(GaussScore(), output="cscore", dtype=torch.float64, max_batch=3)
    assert np.allclose(small.jvp(0.4, X, v, None), want, rtol=1e-12, atol=1e-12)


def test_torch_model_directional_jvp_model():
    tm = ct.TorchModel(GaussScore(), output="cscore", dtype=torch.float64)
    r = corrsde.likelihood(tm, X, cov=C, schedule=S, divergence="directional", jvp="model",
                           rtol=1e-9, atol=1e-9)
    want = exact_logp(r, X)
    assert np.all(np.abs(r["logp"] - want) <= 1e-6 * np.abs(want)), (r["logp"], want)
    # no central differences: every forward pass is a drift evaluation, each with tau D JVPs
    assert r["jvp"] == "model" and r["jvp_calls"] > 0
    assert r["jvp_calls"] == r["nfe"] * TAU * D
    a = corrsde.likelihood(tm, X, cov=C, schedule=S, divergence="directional",
                           rtol=1e-9, atol=1e-9)
    assert a["jvp"] == "model" and np.array_equal(a["logp"], r["logp"])  # auto: the model's


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device "
                    "(torch.cuda.is_available() is False): TorchModel's JVP on cuda not run")
def test_torch_jvp_on_cuda():
    tm = ct.TorchModel(GaussScore(), output="cscore", dtype=torch.float64, device="cuda")
    r = corrsde.likelihood(tm, X, cov=C, schedule=S, divergence="directional", jvp="model",
                           rtol=1e-9, atol=1e-9)
    want = exact_logp(r, X)
    assert np.all(np.abs(r["logp"] - want) <= 1e-6 * np.abs(want))


def hutchinson(K, seed, probe="rademacher"):
    return corrsde.likelihood(SPEC, X, cov=C, schedule=S, divergence="hutchinson", probes=K,
                              probe=probe, jvp="fd", seed=seed, rtol=1e-8, atol=1e-8)


def test_hutchinson_interval_covers_and_narrows_like_one_over_sqrt_k():
    seeds, n = range(40), 40 * len(X)
    hit, se2 = 0, {4: [], 16: []}
    for s in seeds:
        for K in (4, 16):
            r = hutchinson(K, s)
            assert r["divergence"] == "hutchinson" and np.all(r["se"] > 0)
            se2[K] += list(r["se"] ** 2)
            if K == 4:
                want = exact_logp(r, X)
                hit += int(np.sum((r["lo"] <= want) & (want <= r["hi"])))
    # 95% nominal over n independent intervals: within 4 binomial standard deviations
    sd = math.sqrt(n * 0.95 * 0.05)
    assert abs(hit - 0.95 * n) <= 4 * sd, (hit, n)
    # E se^2 = var / K: the widths' ratio is sqrt(16 / 4) = 2, to the sample's error
    a, b = np.array(se2[4]), np.array(se2[16])
    ratio = math.sqrt(a.mean() / b.mean())
    rel = math.sqrt(a.var() / a.mean() ** 2 / n + b.var() / b.mean() ** 2 / n) / 2
    assert abs(ratio - 2) <= 4 * rel * 2, (ratio, rel)


def test_hutchinson_gaussian_probes_and_seed():
    a, b = hutchinson(4, 1, "gaussian"), hutchinson(4, 1, "gaussian")
    assert np.array_equal(a["logp"], b["logp"])
    assert not np.array_equal(a["logp"], hutchinson(4, 1)["logp"])
    assert not np.array_equal(a["logp"], hutchinson(4, 2, "gaussian")["logp"])


@pytest.mark.parametrize("div", ["directional", "hutchinson:probes=3"])
@pytest.mark.parametrize("fixed", [True, False])
def test_batch_and_threads_never_change_a_bit(div, fixed):
    kw = dict(cov=C, schedule=S, divergence=div, jvp="fd", seed=4)
    kw.update(dict(solver="heun", steps=12) if fixed else dict(rtol=1e-5))
    base = corrsde.likelihood(SPEC, X, **kw)
    for extra in (dict(batch=1), dict(batch=3), dict(threads=2), dict(batch=1, threads=2)):
        r = corrsde.likelihood(SPEC, X, **kw, **extra)
        for k in ("logp", "prior", "delta", "se", "lo", "hi", "bpd", "x_T"):
            assert np.array_equal(r[k], base[k]), (k, extra)
        assert r["nfe"] == base["nfe"] or not fixed or "batch" in extra
    one = corrsde.likelihood(SPEC, X[2:3], first_sample=2, **kw)  # a sample alone
    assert np.array_equal(one["logp"], base["logp"][2:3])


def test_cond_rows_follow_batches_and_first_sample():
    """The model's ctx.cond rows are x's, whatever the batch and first_sample (the
    central differences' calls included)."""
    w = np.array([0.5, 1.0, 1.5, 2.0])

    def model(t, x, ctx):
        return -x * ctx.cond[:, None, None]

    kw = dict(cov=C, schedule=S, divergence="directional", jvp="fd", solver="heun", steps=8,
              cond=w)
    a = corrsde.likelihood(model, X, **kw)
    for extra in (dict(batch=1), dict(batch=3, first_sample=7), dict(first_sample=5)):
        assert np.array_equal(corrsde.likelihood(model, X, **kw, **extra)["logp"], a["logp"])
    # div f = -1/2 beta (tau D - w tau D): the weight reaches each sample's divergence
    assert len(set(np.round(a["delta"], 9))) == 4


@pytest.mark.parametrize("kw, word", [
    (dict(solver="ddim", steps=10), "solver"),
    (dict(divergence="bogus"), "divergence"),
    (dict(divergence="hutchinson:probes=0"), "divergence"),
    (dict(divergence="hutchinson:probe=cauchy"), "divergence"),
    (dict(divergence="exact", probes=4), "probes"),
    (dict(jvp="model"), "jvp"),
    (dict(jvp="fd:step=2"), "jvp"),
    (dict(jvp="nope"), "jvp"),
    (dict(conf=1.5), "conf"),
    (dict(steps=10, rtol=1e-6), "steps"),
    (dict(dequant="uniform:bits=99"), "dequant"),
])
def test_refusals_name_the_keyword(kw, word):
    with pytest.raises(ValueError) as e:
        corrsde.likelihood(SPEC, X, cov=C, schedule=S, **{"divergence": "directional", **kw})
    assert str(e.value).startswith(word + ":"), str(e.value)


def test_nan_in_x_is_refused_naming_x():
    x = X.copy()
    x[1, 2, 1] = np.nan
    with pytest.raises(ValueError) as e:
        corrsde.likelihood(SPEC, x, cov=C, schedule=S, jvp="fd", divergence="directional")
    assert str(e.value).startswith("x:") and "sample 1 " in str(e.value)  # the global index


def test_jvp_model_needs_one():
    with pytest.raises(ValueError, match=r"^jvp: 'model'"):
        corrsde.likelihood(python_model, X, cov=C, schedule=S, divergence="directional",
                           jvp="model")
