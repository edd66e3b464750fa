"""Issue 28 (Python half): the Gaussian paths on Schedule (numpy and tensors), training under a
path (add_noise, flow_matching_loss, sample_t) and TorchModel's time kinds."""
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
corrsde = pytest.importorskip("corrsde")
ct = pytest.importorskip("corrsde.torch")

PATH_NAMES = ("alpha", "sigma_path", "dalpha", "dsigma", "f", "g2", "lambda_")
ALL_SPECS = ["vp-linear", "cosine", "ddpm-linear:n=10", "edm", "edm:smin=0.01,smax=10", "ve",
             "rf", "rf:shift=3", "rf:shift=0.2"]


def grid(S, n=2001):
    lo, hi = S.span()
    return np.concatenate([np.linspace(lo, hi, n), [lo - 1, hi + 1, lo + 1e-9, hi - 1e-9]])


# ---------------------------------------------------------------- Schedule's path accessors

def closed_form(spec, t):
    """(alpha, sigma, dalpha, dsigma, f, g2, lambda) of MATH.md's table of paths."""
    kind, _, rest = spec.partition(":")
    p = dict(kv.split("=") for kv in rest.split(",")) if rest else {}
    if kind == "edm":
        return 1 + 0 * t, t, 0 * t, 1 + 0 * t, 0 * t, 2 * t, -np.log(t)
    if kind == "ve":
        smin, smax = float(p.get("smin", 0.01)), float(p.get("smax", 50))
        L = math.log(smax / smin)
        sg = smin * (smax / smin) ** t
        return 1 + 0 * t, sg, 0 * t, L * sg, 0 * t, 2 * L * sg ** 2, -np.log(sg)
    s = float(p.get("shift", 1))
    q = 1 + (s - 1) * t
    tp = s * t / q
    with np.errstate(divide="ignore", invalid="ignore"):
        return (1 - tp, tp, -s / q ** 2, s / q ** 2, -s / ((1 - t) * q),
                2 * s * s * t / ((1 - t) * q * q), np.log((1 - t) / (s * t)))


@pytest.mark.parametrize("spec", ["edm", "edm:smin=0.01,smax=10", "ve", "rf", "rf:shift=3",
                                  "rf:shift=0.2"])
def test_path_accessors_are_the_closed_forms(spec):
    """Schedule.alpha ... lambda_ (numpy, through _corrsde.sched_eval 7..13) equal MATH.md's
    formulas within 1e-13 relative (the formulas are rearranged in schedule.c); the path's
    f and g^2 satisfy f = alpha'/alpha and g^2 = (sigma^2)' - 2 f sigma^2; t_of_lambda
    inverts lambda_; span and prior_scale as schedule.h says."""
    S = corrsde.Schedule(spec)
    lo, hi = S.span()
    t = np.linspace(lo, hi, 401)[1:-1]
    got = [getattr(S, n)(t) for n in PATH_NAMES]
    for n, g, r in zip(PATH_NAMES, got, closed_form(S.spec, t)):
        np.testing.assert_allclose(g, r, rtol=1e-13, atol=1e-14, err_msg=n)  # lambda crosses 0
    a, sg, da, ds, f, g2, lam = got
    np.testing.assert_allclose(f, da / a, rtol=1e-13)
    np.testing.assert_allclose(g2, 2 * sg * ds - 2 * f * sg * sg, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(S.t_of_lambda(lam), t, rtol=1e-12, atol=1e-15)
    assert S.path == spec.split(":")[0]
    assert S.span() == ((0.01, 10.0) if spec == "edm:smin=0.01,smax=10" else
                        (0.002, 80.0) if spec == "edm" else (0.0, 1.0))
    p = S.prior_scale()
    if S.path == "rf":
        assert p == 1.0
    else:
        assert abs(p - S.sigma_path(hi)) <= 1e-15 * p and abs(p - (10 if "smax=10" in spec
                                                                  else 80 if S.path == "edm"
                                                                  else 50)) <= 1e-13 * p
    # scalars give floats; the clamp to the span; the VP view of the same SNR
    assert isinstance(S.alpha(0.5 * (lo + hi)), float)
    assert S.sigma_path(hi + 5) == S.sigma_path(hi) and S.alpha(lo - 5) == S.alpha(lo)
    np.testing.assert_allclose(S.sigma(t), sg / a, rtol=1e-12)
    np.testing.assert_allclose(S.logsnr(t), 2 * lam, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("spec", ["vp-linear", "cosine", "ddpm-linear:n=10"])
def test_vp_path_accessors(spec):
    """A VP schedule's path: alpha = sqrt(abar) and sigma_path = sqrt(1 - abar) bitwise as
    e^{-B/2}, sqrt(-expm1(-B)); lambda = logsnr / 2 bitwise; f = -beta / 2, g2 = beta bitwise;
    span (0, 1), prior scale 1."""
    S = corrsde.Schedule(spec)
    t = np.linspace(0, 1, 1001)
    B, beta = S.int_beta(t), S.beta(t)
    exp, expm1 = np.vectorize(math.exp), np.vectorize(math.expm1)  # libm's, as the library
    assert np.array_equal(S.alpha(t), exp(-0.5 * B))
    assert np.array_equal(S.sigma_path(t), np.sqrt(-expm1(-B)))
    assert np.array_equal(S.lambda_(t), 0.5 * S.logsnr(t))
    assert np.array_equal(S.f(t), -0.5 * beta) and np.array_equal(S.g2(t), beta)
    assert S.path == "vp" and S.span() == (0.0, 1.0) and S.prior_scale() == 1.0
    inner = (t > 0) & (t < 1) & np.isfinite(beta)
    np.testing.assert_allclose(S.t_of_lambda(S.lambda_(t[inner])), t[inner], rtol=1e-9,
                               atol=1e-12)


@pytest.mark.parametrize("spec", ALL_SPECS)
def test_path_accessors_on_tensors(spec):
    """A float64 tensor gives torch.py's formulas within 8 ulp (relative to max(1, |y|)) of
    the library's on the span and past its ends (clamped), with the same inf/NaN; float32 in
    gives float32 out; gradients in t flow (d sigma_path / dt = dsigma by autograd, 1e-10);
    the VP view (beta, abar, sigma, logsnr, int_beta) of the paths on tensors as well;
    t_of_lambda on a tensor is the library's value."""
    S = corrsde.Schedule(spec)
    t = grid(S)
    if S.path != "vp":
        t = np.append(t, np.nan)
    tt = torch.from_numpy(t)
    names = PATH_NAMES + ("beta", "abar", "sigma", "logsnr", "int_beta")
    for n in names:
        ref, got = getattr(S, n)(t), getattr(S, n)(tt)
        assert isinstance(got, torch.Tensor) and got.dtype == torch.float64, n
        got = got.numpy()
        fin = np.isfinite(ref)
        assert np.array_equal(np.isfinite(got), fin), (n, t[np.isfinite(got) != fin])
        assert np.array_equal(np.isnan(got), np.isnan(ref)), n
        assert np.array_equal(got[np.isinf(ref)], ref[np.isinf(ref)]), n
        err = np.abs(got[fin] - ref[fin]) / np.maximum(1, np.abs(ref[fin]))
        assert err.max() <= 8 * np.finfo(np.float64).eps, (n, err.max())
        assert getattr(S, n)(tt.float()).dtype == torch.float32
    lo, hi = S.span()
    ti = torch.linspace(lo + 0.1234 * (hi - lo), hi - 0.0987 * (hi - lo), 9,  # off the nodes
                        dtype=torch.float64).requires_grad_(True)
    d, = torch.autograd.grad(S.sigma_path(ti).sum(), ti)
    np.testing.assert_allclose(d.numpy(), S.dsigma(ti.detach().numpy()), rtol=1e-10)
    lam = S.lambda_(ti.detach())
    assert np.array_equal(S.t_of_lambda(lam).numpy(), S.t_of_lambda(lam.numpy()))
