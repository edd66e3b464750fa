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


# ---------------------------------------------------------------- training under a path

TAU, COV = 4, "ar1:rho=0.8"
M0 = np.array([0.5, -0.3, 0.2, 1.0])


def data_law():
    """x0 ~ N(M0, S0) along the frames, S0 = 0.6 I + 0.4 (all ones)."""
    S0 = 0.6 * np.eye(TAU) + 0.4
    return S0, np.linalg.cholesky(S0)


def draw(B, D, seed, cov):
    g = torch.Generator().manual_seed(seed)
    S0, L0 = data_law()
    z = torch.randn((B, TAU, D), generator=g, dtype=torch.float64)
    x0 = torch.from_numpy(M0)[None, :, None] + torch.einsum("ij,bjd->bid", torch.from_numpy(L0), z)
    delta = ct.noise_like(x0, cov, generator=g)
    return x0, delta


def frame_cov_within(x, K, n_se=4.5):
    """The sample frame covariance of x [B, TAU, D] (every pixel and sample a draw) against
    K within n_se standard errors (Wishart: var S_ij = (K_ij^2 + K_ii K_jj) / n)."""
    y = x.permute(0, 2, 1).reshape(-1, TAU).numpy()
    n = y.shape[0]
    S = np.cov(y, rowvar=False)
    se = np.sqrt((K ** 2 + np.outer(np.diag(K), np.diag(K))) / n)
    z = np.abs(S - K) / se
    assert z.max() < n_se, (z.max(), S, K)
    return y.mean(axis=0), n


@pytest.mark.parametrize("spec,t", [("rf:shift=3", 0.4), ("rf:shift=3", 0.85), ("edm", 1.7),
                                    ("ve", 0.3)])
def test_add_noise_marginal_on_paths(spec, t):
    """add_noise on a path: x_t ~ N(alpha M0, alpha^2 S0 + sigma^2 C) along the frames (the
    frame covariance within 4.5 standard errors, the mean within 4.5)."""
    S, cov = corrsde.Schedule(spec), corrsde.Cov(COV, frames=TAU)
    x0, delta = draw(2000, 16, 1, cov)
    tb = torch.full((x0.shape[0],), t, dtype=torch.float64)
    xt = ct.add_noise(x0, delta, tb, S)
    a, sg = S.alpha(t), S.sigma_path(t)
    S0, _ = data_law()
    K = a * a * S0 + sg * sg * np.asarray(cov.matrix)
    mean, n = frame_cov_within(xt, K)
    assert np.all(np.abs(mean - a * M0) < 4.5 * np.sqrt(np.diag(K) / n))
    if spec.startswith("rf"):  # rf: alpha = 1 - t', sigma = t', t' = 3t / (1 + 2t)
        tp = 3 * t / (1 + 2 * t)
        assert abs(a - (1 - tp)) < 1e-15 and abs(sg - tp) < 1e-15
    # a scalar time gives the same bits as the [B] tensor of it
    assert torch.equal(ct.add_noise(x0, delta, t, S), xt)


def test_add_noise_vp_bits_unchanged():
    """VP: add_noise is sqrt(abar) x0 + sqrt(1 - abar) delta with e^{-B/2}, sqrt(-expm1(-B))
    from the tensor B(t), bit for bit (float64 and float32), as before the paths."""
    cov = corrsde.Cov(COV, frames=TAU)
    x0, delta = draw(8, 3, 2, cov)
    for spec in ("vp-linear", "cosine", "ddpm-linear"):
        S = corrsde.Schedule(spec)
        t = torch.linspace(0, 0.999, 8, dtype=torch.float64)
        b = S.int_beta(t).reshape(-1, 1, 1)
        ref = torch.exp(-0.5 * b) * x0 + torch.sqrt(-torch.expm1(-b)) * delta
        assert torch.equal(ct.add_noise(x0, delta, t, S), ref)
        b = S.int_beta(t.float().double()).reshape(-1, 1, 1)  # float32 times, B in float64
        r32 = torch.exp(-0.5 * b).float() * x0.float() + \
            torch.sqrt(-torch.expm1(-b)).float() * delta.float()
        assert torch.equal(ct.add_noise(x0.float(), delta.float(), t.float(), S), r32)


def test_add_noise_and_flow_target_errors():
    x = torch.zeros((2, TAU, 3), dtype=torch.float64)
    with pytest.raises(ValueError, match=r"span of 'edm"):
        ct.add_noise(x, x, torch.tensor([0.001, 1.0], dtype=torch.float64), "edm")
    with pytest.raises(ValueError, match=r"span of 'rf"):
        ct.flow_target(x, x, 1.5, "rf:shift=3")
    with pytest.raises(ValueError, match="not integer steps"):
        ct.add_noise(x, x, torch.tensor([1, 2]), "rf")
    cov = corrsde.Cov(COV, frames=TAU)
    with pytest.raises(ValueError, match="metric"):
        ct.flow_matching_loss(x, x, x, 0.5, "rf", cov, metric="l2")
    with pytest.raises(ValueError, match="v_theta has shape"):
        ct.flow_matching_loss(x[:1], x, x, 0.5, "rf", cov)


def test_flow_target_is_the_path_derivative():
    """flow_target = d/dt add_noise (autograd, 1e-12), on rf:shift=3 (= (3 / q^2) (delta -
    x0)), edm (= delta) and vp-linear."""
    cov = corrsde.Cov(COV, frames=TAU)
    x0, delta = draw(5, 2, 3, cov)
    for spec, tv in (("rf:shift=3", 0.3), ("edm", 2.0), ("vp-linear", 0.4)):
        t = torch.full((5,), tv, dtype=torch.float64, requires_grad=True)
        xt = ct.add_noise(x0, delta, t, spec)
        d, = torch.autograd.grad(xt, t, grad_outputs=torch.ones_like(xt), is_grads_batched=False)
        u = ct.flow_target(x0, delta, t.detach(), spec)
        np.testing.assert_allclose(u.sum(dim=(1, 2)).numpy(), d.numpy(), rtol=1e-12, atol=1e-12)
        if spec.startswith("rf"):
            q = 1 + 2 * tv
            np.testing.assert_allclose(u.numpy(), (3 / q ** 2 * (delta - x0)).numpy(), rtol=1e-14)
        if spec == "edm":
            assert torch.equal(u, delta)


@pytest.mark.parametrize("spec,t", [("rf:shift=3", 0.35), ("edm", 1.3)])
@pytest.mark.parametrize("metric", ["cinv", "plain"])
def test_flow_matching_loss_minimiser(spec, t, metric):
    """For the gaussian data law x0 ~ N(M0, S0), eps = V' z: E[u | x_t] = alpha' M0 + M K^-1
    (x_t - alpha M0), K = alpha^2 S0 + sigma^2 C, M = alpha alpha' S0 + sigma sigma' C. At
    v_theta = E[u | x_t] + theta (x_t - alpha M0) the expected loss (reduction "none", per
    sample) exceeds the loss at theta = 0 by exactly theta^2 E|x_t - alpha M0|_W^2 = theta^2
    D tr(W K) (the cross term vanishes in expectation): checked for theta = +-0.3 within 4.5
    standard errors of the per-sample differences. A wrong target (sigma' <- sigma) breaks it."""
    S, cov = corrsde.Schedule(spec), corrsde.Cov(COV, frames=TAU)
    B, D = 3000, 8
    x0, delta = draw(B, D, 4, cov)
    tb = torch.full((B,), t, dtype=torch.float64)
    xt = ct.add_noise(x0, delta, tb, S)
    a, sg, da, ds = S.alpha(t), S.sigma_path(t), S.dalpha(t), S.dsigma(t)
    S0, _ = data_law()
    C = np.asarray(cov.matrix)
    K = a * a * S0 + sg * sg * C
    M = a * da * S0 + sg * ds * C
    G = torch.from_numpy(M @ np.linalg.inv(K))
    m = torch.from_numpy(a * M0)[None, :, None]
    v_star = torch.from_numpy(da * M0)[None, :, None] + torch.einsum("ij,bjd->bid", G, xt - m)
    W = np.linalg.inv(C) if metric == "cinv" else np.eye(TAU)
    base = ct.flow_matching_loss(v_star, x0, delta, tb, S, cov, metric=metric, reduction="none")
    assert base.shape == (B,)
    for theta in (0.3, -0.3):
        pert = ct.flow_matching_loss(v_star + theta * (xt - m), x0, delta, tb, S, cov,
                                     metric=metric, reduction="none")
        d = (pert - base).numpy()
        want = theta ** 2 * D * np.trace(W @ K)
        se = d.std(ddof=1) / math.sqrt(B)
        assert abs(d.mean() - want) < 4.5 * se, (d.mean(), want, se)
    # reductions: "mean" = sum / (B tau D); plain with C = I is mse_loss
    full = ct.flow_matching_loss(v_star, x0, delta, tb, S, cov, metric=metric)
    assert torch.allclose(full, base.sum() / (B * TAU * D), rtol=1e-13)
    if metric == "plain":
        u = ct.flow_target(x0, delta, tb, S)
        assert torch.equal(full, torch.nn.functional.mse_loss(v_star, u))


@pytest.mark.parametrize("spec", ["rf:shift=3", "vp-linear", "edm"])
def test_sample_t_logit_normal(spec):
    """kind="logit-normal": logit(u) ~ N(m, s^2) (u = t on [0, 1] spans, (t - smin) / (smax
    - smin) on edm's): its mean within 4.5 s / sqrt(n), its sd within 4.5 s / sqrt(2 n);
    the t returned is the path's own (unshifted): on rf:shift=3 the noise level is
    sigma_path(t) = 3t / (1 + 2t), not shifted twice. uniform on edm's span."""
    S = corrsde.Schedule(spec)
    lo, hi = S.span()
    n, m, s = 20000, 0.4, 1.3
    g = torch.Generator().manual_seed(7)
    t = ct.sample_t(n, S, kind="logit-normal", m=m, s=s, generator=g, dtype=torch.float64)
    assert t.shape == (n,) and t.dtype == torch.float64
    assert bool(((t > lo) & (t < hi)).all())
    u = ((t - lo) / (hi - lo)).numpy()
    lg = np.log(u / (1 - u))
    assert abs(lg.mean() - m) < 4.5 * s / math.sqrt(n), lg.mean()
    assert abs(lg.std(ddof=1) - s) < 4.5 * s / math.sqrt(2 * n), lg.std()
    if spec.startswith("rf"):
        tv = t.numpy()
        np.testing.assert_allclose(S.sigma_path(tv), 3 * tv / (1 + 2 * tv), rtol=1e-14)
    tu = ct.sample_t(n, S, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    assert bool(((tu >= lo + 1e-3 * (hi - lo) * 0.999) & (tu < hi)).all())
    assert abs(tu.mean().item() - 0.5 * (lo + hi + 1e-3 * (hi - lo))) < \
        4.5 * (hi - lo) / math.sqrt(12 * n)
    with pytest.raises(ValueError, match="kind must be one of"):
        ct.sample_t(4, S, kind="lognormal")
    with pytest.raises(ValueError, match="s > 0"):
        ct.sample_t(4, S, kind="logit-normal", s=0.0)


def test_sample_t_uniform_vp_bits_unchanged():
    """VP uniform draws: eps + (1 - eps) U, bit for bit as before."""
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    t = ct.sample_t(64, "vp-linear", generator=g1)
    u = torch.rand((64,), generator=g2, dtype=torch.float32)
    assert torch.equal(t, 1e-3 + (1 - 1e-3) * u)


def _norm_cdf(z):
    return 0.5 * math.erfc(-z / math.sqrt(2))


def _check_normal(x, m, s, what):
    """x ~ N(m, s^2): the sample mean within 4 s / sqrt(n), the sd within 4 s / sqrt(2 n)."""
    n = len(x)
    assert abs(x.mean() - m) < 4 * s / math.sqrt(n), (what, x.mean(), m)
    assert abs(x.std(ddof=1) - s) < 4 * s / math.sqrt(2 * n), (what, x.std(ddof=1), s)


LOGNORMAL_N = 1 << 16


def test_sample_t_log_normal_edm():
    """kind="log-normal" on edm: t = sigma_ve itself, ln t ~ N(m, s^2) (EDM's P_mean = -1.2,
    P_std = 1.2 by default; edm's span [0.002, 80] cuts 1.7e-5 of the mass: negligible at
    n = 2^16), t inside the open span, the same seed the same draw; m, s given override."""
    S = corrsde.Schedule("edm")
    lo, hi = S.span()
    t = ct.sample_t(LOGNORMAL_N, S, kind="log-normal", generator=torch.Generator().manual_seed(11),
                    dtype=torch.float64)
    assert t.shape == (LOGNORMAL_N,) and t.dtype == torch.float64
    assert bool(((t > lo) & (t < hi)).all())
    _check_normal(np.log(t.numpy()), -1.2, 1.2, "edm defaults")
    np.testing.assert_allclose(-S.lambda_(t.numpy()), np.log(t.numpy()), rtol=1e-14, atol=1e-14)
    again = ct.sample_t(LOGNORMAL_N, S, kind="log-normal", m=-1.2, s=1.2,
                        generator=torch.Generator().manual_seed(11), dtype=torch.float64)
    assert torch.equal(t, again)
    t2 = ct.sample_t(LOGNORMAL_N, S, kind="log-normal", m=0.5, s=0.7,
                     generator=torch.Generator().manual_seed(12), dtype=torch.float64)
    _check_normal(np.log(t2.numpy()), 0.5, 0.7, "edm m=0.5 s=0.7")
    t32 = ct.sample_t(16, S, kind="log-normal")
    assert t32.dtype == torch.float32
    t32 = t32.double()  # (float32(0.002) > 0.002: compare as eq3_loss does)
    assert bool(((t32 > lo) & (t32 < hi)).all())


@pytest.mark.parametrize("spec", ["vp-linear", "rf:shift=3"])
def test_sample_t_log_normal_other_paths(spec):
    """On any continuous path the draw is EDM's law of the VE noise level sigma_ve = sigma /
    alpha = exp(-lambda(t)): ln sigma_ve ~ N(-1.2, 1.2^2) (vp-linear's span reaches sigma_ve
    = 152, cutting 1e-7 of the mass; rf's is all of (0, inf)); t is the path's own time
    (rf: unshifted, sigma_ve = t' / (1 - t'), t' = 3t / (1 + 2t))."""
    S = corrsde.Schedule(spec)
    t = ct.sample_t(LOGNORMAL_N, S, kind="log-normal", generator=torch.Generator().manual_seed(13),
                    dtype=torch.float64)
    assert bool(((t > 0) & (t < 1)).all())
    tv = t.numpy()
    _check_normal(-S.lambda_(tv), -1.2, 1.2, spec)
    if spec.startswith("rf"):
        tp = 3 * tv / (1 + 2 * tv)
        np.testing.assert_allclose(np.log(tp / (1 - tp)), -S.lambda_(tv), rtol=1e-10, atol=1e-12)


def test_sample_t_log_normal_truncated():
    """Draws outside the span are redrawn, not clamped: with m = -5, s = 1.5 on edm (31% of
    the mass below smin = 0.002) no t sits on smin and ln t has the truncated normal's mean
    m + s (phi(a) - phi(b)) / (Phi(b) - Phi(a)) (a, b the span's standard scores; within 4
    standard errors); float32 draws stay inside the open span."""
    S = corrsde.Schedule("edm")
    lo, hi = S.span()
    m, s = -5.0, 1.5
    t = ct.sample_t(LOGNORMAL_N, S, kind="log-normal", m=m, s=s,
                    generator=torch.Generator().manual_seed(14), dtype=torch.float64)
    assert bool(((t > lo) & (t < hi)).all())
    x = np.log(t.numpy())
    a, b = (math.log(lo) - m) / s, (math.log(hi) - m) / s
    pdf = lambda z: math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)  # noqa: E731
    want = m + s * (pdf(a) - pdf(b)) / (_norm_cdf(b) - _norm_cdf(a))
    assert abs(x.mean() - want) < 4 * x.std(ddof=1) / math.sqrt(len(x)), (x.mean(), want)
    assert abs(want - m) > 40 * s / math.sqrt(len(x))  # the untruncated mean would fail
    t32 = ct.sample_t(4096, S, kind="log-normal", m=m, s=s,
                      generator=torch.Generator().manual_seed(15))
    assert t32.dtype == torch.float32
    t32 = t32.double()  # (float32(0.002) > 0.002: compare as eq3_loss does)
    assert bool(((t32 > lo) & (t32 < hi)).all())


def test_sample_t_log_normal_refusals_and_defaults():
    """log-normal: refused on a discrete schedule (and with discrete=True), s <= 0, m not
    finite, and m, s with under 1% of their mass on the span; logit-normal's defaults stay
    m = 0, s = 1 (bit for bit sigmoid(randn))."""
    with pytest.raises(ValueError, match="continuous schedule.*ddpm-linear"):
        ct.sample_t(4, "ddpm-linear:n=10", kind="log-normal")
    with pytest.raises(ValueError, match="continuous schedule.*discrete=True"):
        ct.sample_t(4, "edm", kind="log-normal", discrete=True)
    with pytest.raises(ValueError, match="log-normal: m must be finite and s > 0"):
        ct.sample_t(4, "edm", kind="log-normal", s=0.0)
    with pytest.raises(ValueError, match="log-normal: m must be finite"):
        ct.sample_t(4, "edm", kind="log-normal", m=float("nan"))
    with pytest.raises(ValueError, match="log-normal: .*mass.*edm"):
        ct.sample_t(4, "edm", kind="log-normal", m=12.0, s=1.0)
    g1, g2 = torch.Generator().manual_seed(16), torch.Generator().manual_seed(16)
    t = ct.sample_t(64, "vp-linear", kind="logit-normal", generator=g1)
    assert torch.equal(t, torch.sigmoid(torch.randn((64,), generator=g2)))


@pytest.mark.parametrize("spec", ["rf:shift=3", "edm"])
def test_eq3_loss_on_paths(spec):
    """eq3_loss's continuous weight on a path: w(t) = beta / (2 (1 - abar)) of the VP view =
    -lambda'(t) (1e-12), times in the path's span."""
    S, cov = corrsde.Schedule(spec), corrsde.Cov(COV, frames=TAU)
    lo, hi = S.span()
    t = torch.linspace(lo + 0.05 * (hi - lo), hi - 0.05 * (hi - lo), 6, dtype=torch.float64)
    r = torch.ones((6, TAU, 2), dtype=torch.float64)
    w = ct.eq3_loss(r, 0 * r, cov, t=t, schedule=S, reduction="none") / \
        ct.eq3_loss(r, 0 * r, cov, weight="none", reduction="none")
    ti = t.clone().requires_grad_(True)
    dl, = torch.autograd.grad(S.lambda_(ti).sum(), ti)
    np.testing.assert_allclose(w.numpy(), -dl.numpy(), rtol=1e-12)


# ---------------------------------------------------------------- TorchModel(time=...)

class Recorder(torch.nn.Module):
    """Records its time input; answers zeros."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros((), dtype=torch.float64))
        self.seen = []

    def forward(self, x, time):
        self.seen.append(time.clone())
        return x * self.w


def expected_times(spec, t):
    """The time kinds' values by hand (MATH.md's table of paths)."""
    if spec.startswith("rf"):
        s = float(spec.split("=")[1])
        tp = s * t / (1 + (s - 1) * t)
        return {"t": t, "sigma": tp / (1 - tp), "t_shifted": tp, "timestep1000": 1000 * tp,
                "lambda": math.log((1 - tp) / tp)}
    if spec.startswith("edm"):
        return {"t": t, "sigma": t, "t_shifted": t, "timestep1000": 1000 * t,
                "lambda": -math.log(t)}
    S = corrsde.Schedule(spec)  # VP: the library's own values
    return {"t": t, "sigma": S.sigma(t), "t_shifted": t, "timestep1000": 1000 * t,
            "lambda": 0.5 * S.logsnr(t)}


@pytest.mark.parametrize("spec,t", [("rf:shift=3", 0.4), ("rf:shift=3", 0.05), ("edm", 1.7),
                                    ("vp-linear", 0.3)])
@pytest.mark.parametrize("kind", ["t", "sigma", "t_shifted", "timestep1000", "lambda"])
def test_torchmodel_time_kinds(spec, t, kind):
    """TorchModel(time=kind) passes the module the time of its kind, repeated to [B], in the
    model's dtype (timestep1000: float32 for a float32 model), within 1e-13 relative of the
    hand-computed value: rf:shift=3 at t = 0.4 gives t' = 2/3, sigma = 2, 666.67, log(1/2)."""
    cov = corrsde.Cov(COV, frames=TAU)
    S = corrsde.Schedule(spec)
    ctx = corrsde.Context(TAU, (1, 2, 2), 3, cov, S, "noise", "pf-ode")
    ctx.t = t
    x = np.zeros((3, TAU, 1, 2, 2))
    want = expected_times(spec, t)[kind]
    rec = Recorder()
    y = ct.TorchModel(rec, time=kind)(t, x, ctx)
    assert y.shape == x.shape
    got = rec.seen[0]
    assert got.shape == (3,) and got.dtype == torch.float64
    assert np.allclose(got.numpy(), want, rtol=1e-13, atol=0), (got, want)
    rec32 = Recorder().float()
    ct.TorchModel(rec32, time=kind)(t, x, ctx)
    assert rec32.seen[0].dtype == torch.float32
    assert rec32.seen[0][0].item() == np.float32(float(got[0]))
    if spec == "rf:shift=3" and t == 0.4:
        table = {"t": 0.4, "sigma": 2.0, "t_shifted": 2 / 3, "timestep1000": 2000 / 3,
                 "lambda": math.log(0.5)}
        assert abs(got[0].item() - table[kind]) <= 1e-13 * max(1, abs(table[kind]))


def test_torchmodel_time_errors():
    with pytest.raises(ValueError, match=r"time must be one of .*timestep1000"):
        ct.TorchModel(Recorder(), time="timestep")
    with pytest.raises(ValueError, match=r"time must be one of"):
        ct.TorchModel(Recorder(), time="shifted_t")


def test_kdiffusion_model_on_a_path():
    """KDiffusionModel on rf:shift=3: the denoiser gets x_ve = x / alpha(t) (alpha = 1 - t')
    and sigma = t' / (1 - t'); on VP x / sqrt(abar) as before."""
    seen = []

    def den(x, sigma):
        seen.append((x.clone(), sigma.clone()))
        return torch.zeros_like(x)
    cov = corrsde.Cov(COV, frames=TAU)
    x = np.full((2, TAU, 1, 1, 1), 3.0)
    for spec, t, alpha, sig in (("rf:shift=3", 0.4, 1 / 3, 2.0),
                                ("vp-linear", 0.3, None, None)):
        S = corrsde.Schedule(spec)
        ctx = corrsde.Context(TAU, (1, 1, 1), 2, cov, S, "x0", "pf-ode")
        ctx.t = t
        ct.KDiffusionModel(den, dtype=torch.float64)(t, x, ctx)
        if alpha is None:
            alpha, sig = math.sqrt(S.abar(t)), S.sigma(t)
        xv, sv = seen[-1]
        np.testing.assert_allclose(xv.numpy(), 3.0 / alpha, rtol=1e-14)
        np.testing.assert_allclose(sv.numpy(), sig, rtol=1e-13)
