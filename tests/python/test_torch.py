"""corrsde.torch: TorchModel, noise_like and eq3_loss against the maths of MATH.md."""
import types
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
corrsde = pytest.importorskip("corrsde")
ct = pytest.importorskip("corrsde.torch")

COVS = ["ar1:rho=0.9", "mixed:r=0.5", "identity"]
FRAME_SHAPES = [(), (5,), (2, 3)]
DISCRETE = "ddpm-linear:n=1000"


def numpy_quad(cov, d):
    """sum over pixels of d^T C^-1 d along axis 1, by np.linalg.solve."""
    r = d.reshape(d.shape[0], d.shape[1], -1)
    return np.einsum("bip,bip->b", r, np.linalg.solve(cov.matrix, r))


def eq3_weight(S, i):
    if i == 1:
        return 0.0
    beta = S.beta_step(i)
    return beta / (2 * (1 - beta) * (1 - S.abar_step(i - 1)))


# ---------------------------------------------------------------- eq3_loss

@pytest.mark.parametrize("spec", COVS)
@pytest.mark.parametrize("frame_shape", FRAME_SHAPES)
def test_eq3_loss_matches_numpy(spec, frame_shape):
    tau, B = 6, 5
    cov, S = corrsde.Cov(spec, frames=tau), corrsde.Schedule(DISCRETE)
    rng = np.random.default_rng(1)
    d, dp = (rng.standard_normal((B, tau) + frame_shape) for _ in range(2))
    t = np.array([1, 2, 10, 500, 1000])
    quad = numpy_quad(cov, d - dp)
    w = np.array([eq3_weight(S, i) for i in t])
    args = torch.from_numpy(dp), torch.from_numpy(d), cov
    none = ct.eq3_loss(*args, weight="none", reduction="none").numpy()
    eq3 = ct.eq3_loss(*args, t=torch.from_numpy(t), schedule=S, reduction="none").numpy()
    np.testing.assert_allclose(none, quad, rtol=1e-12, atol=0)
    np.testing.assert_allclose(eq3, w * quad, rtol=1e-12, atol=0)
    assert eq3[0] == 0.0  # t = 1 carries no weight
    mean = ct.eq3_loss(*args, t=torch.from_numpy(t), schedule=DISCRETE)  # spec string
    total = ct.eq3_loss(*args, t=torch.from_numpy(t), schedule=S, reduction="sum")
    bmean = ct.eq3_loss(*args, t=torch.from_numpy(t), schedule=S, reduction="batchmean")
    np.testing.assert_allclose(mean.item(), np.sum(w * quad) / d.size, rtol=1e-12)  # per element
    np.testing.assert_allclose(total.item(), np.sum(w * quad), rtol=1e-12)
    np.testing.assert_allclose(bmean.item(), np.mean(w * quad), rtol=1e-12)  # per sample


def test_eq3_weight_formula():
    """w_t = beta_t / (2 alpha_t (1 - abar_{t-1})): the loss of a unit error is w_t times its C^-1 norm."""
    S, cov = corrsde.Schedule(DISCRETE), corrsde.Cov("ar1:rho=0.7", frames=4)
    t = torch.arange(1, S.nsteps + 1)
    d = torch.zeros((len(t), 4, 2), dtype=torch.float64)
    d[:, 0, 0] = 1.0
    loss = ct.eq3_loss(torch.zeros_like(d), d, cov, t=t, schedule=S, reduction="none").numpy()
    c_inv00 = np.linalg.inv(cov.matrix)[0, 0]
    beta = np.array([S.beta_step(i) for i in range(2, S.nsteps + 1)])
    abar_prev = np.array([S.abar_step(i) for i in range(1, S.nsteps)])
    np.testing.assert_allclose(loss[1:], beta / (2 * (1 - beta) * (1 - abar_prev)) * c_inv00,
                               rtol=1e-12, atol=0)
    assert loss[0] == 0.0


def test_eq3_weight_continuous_limit():
    """Continuous schedule: w(t) = beta(t) / (2 (1 - abar(t))), the limit of N w_i for the
    discrete chain beta_i = beta(i/N) / N, reached at first order in 1/N."""
    S, cov = corrsde.Schedule("vp-linear"), corrsde.Cov("ar1:rho=0.7", frames=4)
    t = torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64)
    d = torch.zeros((3, 4, 2), dtype=torch.float64)
    d[:, 0, 0] = 1.0
    loss = ct.eq3_loss(torch.zeros_like(d), d, cov, t=t, schedule=S, reduction="none").numpy()
    tt = t.numpy()
    wc = S.beta(tt) / (2 * (1 - S.abar(tt)))
    np.testing.assert_allclose(loss, wc * np.linalg.inv(cov.matrix)[0, 0], rtol=1e-13)
    err = {}
    for N in (100, 250):
        D = corrsde.Schedule("discrete:betas=" + ",".join(
            "%.12g" % (S.beta(i / N) / N) for i in range(1, N + 1)))
        i = np.round(tt * N).astype(int)
        err[N] = np.array([N * eq3_weight(D, int(k)) for k in i]) / wc - 1
    order = np.log(np.abs(err[100] / err[250])) / np.log(2.5)
    assert np.all(np.abs(err[250]) < 0.1) and np.all((order > 0.9) & (order < 1.25)), order


@pytest.mark.parametrize("spec", COVS)
def test_eq3_loss_gradient(spec):
    """d L_b / d delta_pred = -2 w_b C^-1 (delta - delta_pred); gradcheck on the whole loss."""
    tau, B = 5, 3
    cov, S = corrsde.Cov(spec, frames=tau), corrsde.Schedule(DISCRETE)
    rng = np.random.default_rng(2)
    d = torch.from_numpy(rng.standard_normal((B, tau, 2, 2)))
    dp = torch.from_numpy(rng.standard_normal((B, tau, 2, 2))).requires_grad_()
    t = torch.tensor([3, 40, 999])
    ct.eq3_loss(dp, d, cov, t=t, schedule=S, reduction="sum").backward()
    w = np.array([eq3_weight(S, int(i)) for i in t])
    r = (d - dp).detach().numpy().reshape(B, tau, -1)
    grad = -2 * w[:, None, None] * np.linalg.solve(cov.matrix, r)
    np.testing.assert_allclose(dp.grad.numpy().reshape(B, tau, -1), grad, rtol=1e-10, atol=1e-14)
    for weight in ("eq3", "none"):
        f = lambda p: ct.eq3_loss(p, d, cov, t=t, schedule=S, weight=weight, reduction="none")
        assert torch.autograd.gradcheck(f, (dp.detach().clone().requires_grad_(),))


def test_eq3_loss_errors():
    cov, S = corrsde.Cov("ar1:rho=0.5", frames=3), corrsde.Schedule(DISCRETE)
    d = torch.ones((2, 3, 4), dtype=torch.float64)
    z = torch.zeros_like(d)
    with pytest.raises(ValueError, match="timesteps t"):
        ct.eq3_loss(z, d, cov, schedule=S)
    with pytest.raises(ValueError, match="discrete schedule"):
        ct.eq3_loss(z, d, cov, t=torch.tensor([2, 3]))
    for bad in ([0, 2], [2, 1001]):
        with pytest.raises(ValueError, match="1..1000"):
            ct.eq3_loss(z, d, cov, t=torch.tensor(bad), schedule=S)
    with pytest.raises(ValueError, match="integer"):
        ct.eq3_loss(z, d, cov, t=torch.tensor([2.0, 3.0]), schedule=S)
    with pytest.raises(ValueError, match="continuous"):
        ct.eq3_loss(z, d, cov, t=torch.tensor([2, 3]), schedule="vp-linear")
    with pytest.raises(ValueError, match="shape"):
        ct.eq3_loss(z[:, :2], d[:, :2], cov, weight="none")
    with pytest.raises(ValueError, match="singular"):
        ct.eq3_loss(z, d, corrsde.Cov("toeplitz:col=1,1,1", frames=3), weight="none")


# ---------------------------------------------------------------- noise_like

@pytest.mark.parametrize("spec", ["ar1:rho=0.9", "mixed:r=0.5", "toeplitz:col=1,0.5,-0.5,-1,-0.5"])
def test_noise_like_covariance(spec):
    """The sample second moment of n = 200k pixel vectors is within 6 standard errors of C
    (zero mean known: se_ij = sqrt((C_ii C_jj + C_ij^2) / n)); the toeplitz C has rank 2 (eigen factor)."""
    tau = 5
    cov = corrsde.Cov(spec, frames=tau)
    x = torch.empty((50, tau, 40, 100), dtype=torch.float64)
    eps = ct.noise_like(x, cov, generator=torch.Generator().manual_seed(3))
    assert eps.shape == x.shape and eps.dtype == torch.float64
    v = eps.transpose(0, 1).reshape(tau, -1).numpy()
    n = v.shape[1]
    assert n == 200_000
    c = cov.matrix
    se = np.sqrt((np.outer(np.diag(c), np.diag(c)) + c ** 2) / n)
    assert np.all(np.abs(v @ v.T / n - c) <= 6 * se)
    assert np.all(np.abs(v.mean(axis=1)) <= 6 * np.sqrt(np.diag(c) / n))


def test_noise_like_factor_generator_dtype():
    """eps = L z with L = chol(C) and z the generator's randn draw; same seed, same draw."""
    cov = corrsde.Cov("ar1:rho=0.8", frames=4)
    x = torch.zeros((3, 4, 2, 5), dtype=torch.float64)
    a = ct.noise_like(x, cov, torch.Generator().manual_seed(7))
    b = ct.noise_like(x, cov, torch.Generator().manual_seed(7))
    c = ct.noise_like(x, cov, torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    z = torch.randn(x.shape, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    want = np.einsum("ij,bj...->bi...", np.linalg.cholesky(cov.matrix), z.numpy())
    np.testing.assert_allclose(a.numpy(), want, rtol=1e-13, atol=1e-15)
    f = ct.noise_like(x.float(), cov, torch.Generator().manual_seed(7))
    assert f.dtype == torch.float32 and f.device == x.device
    z32 = torch.randn(x.shape, generator=torch.Generator().manual_seed(7), dtype=torch.float32)
    want32 = np.einsum("ij,bj...->bi...", np.linalg.cholesky(cov.matrix), z32.double().numpy())
    np.testing.assert_allclose(f.numpy(), want32, rtol=0, atol=1e-5)  # float32 rounding of |eps| < 10
    with pytest.raises(ValueError, match="frame axis"):
        ct.noise_like(torch.zeros((3, 5, 2)), cov)


# ---------------------------------------------------------------- TorchModel

class Affine(torch.nn.Module):
    """forward(x, time) = 2 * flip_frames(x) - 0.5 * time: elementwise-exact; records its calls."""

    def __init__(self, shape_error=False, in_place=False):
        super().__init__()
        self.calls, self.shape_error, self.in_place = [], shape_error, in_place

    def forward(self, x, time):
        self.calls.append(dict(grad=torch.is_grad_enabled(), x_ptr=x.data_ptr(), x_dtype=x.dtype,
                               time=time.clone(), training=self.training))
        if self.in_place:
            x.mul_(1.0)
        y = 2 * x.flip(1) - 0.5 * time.to(x.dtype).reshape((-1,) + (1,) * (x.dim() - 1))
        return y[:, 1:] if self.shape_error else y


def context(x, t=0.25, sigma=1.5, index=None):
    return types.SimpleNamespace(t=t, sigma=sigma, index=index, batch=x.shape[0], tau=x.shape[1],
                                 frame_shape=x.shape[2:], schedule=None, cov=None)


def readonly(shape, seed=4):
    x = np.random.default_rng(seed).standard_normal(shape)
    x.flags.writeable = False
    return x


def test_torch_model_exact_values():
    x = readonly((3, 4, 2, 3))
    m = Affine()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y64 = ct.TorchModel(m, dtype=torch.float64)(0.25, x, context(x))
        y32 = ct.TorchModel(m, dtype=torch.float32)(0.25, x, context(x))
    assert np.array_equal(y64, 2 * x[:, ::-1] - 0.5 * 0.25)  # bitwise
    x32 = x.astype(np.float32)
    assert np.array_equal(y32, (np.float32(2) * x32[:, ::-1] - np.float32(0.125)).astype(np.float64))
    for y in (y64, y32):
        assert y.dtype == np.float64 and y.flags.c_contiguous and y.shape == x.shape
        assert not np.may_share_memory(y, x)
    assert [c["x_dtype"] for c in m.calls] == [torch.float64, torch.float32]
    assert not any(c["grad"] for c in m.calls)  # under no_grad
    assert m.calls[0]["x_ptr"] == x.ctypes.data  # float64/cpu: no copy of x
    assert m.calls[1]["x_ptr"] != x.ctypes.data  # float32: one converted copy


def test_torch_model_max_batch():
    """max_batch=2 on a batch of 5: three calls of 2, 2 and 1 samples, the same bits."""
    x = readonly((5, 4, 3))
    m = Affine()
    want = ct.TorchModel(m, dtype=torch.float64)(0.25, x, context(x))
    m.calls.clear()
    got = ct.TorchModel(m, dtype=torch.float64, max_batch=2)(0.25, x, context(x))
    assert np.array_equal(got, want)
    assert [c["time"].shape[0] for c in m.calls] == [2, 2, 1]
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match="max_batch"):
            ct.TorchModel(m, max_batch=bad)


def test_torch_model_time_kinds():
    x = readonly((2, 3, 4))
    m = Affine()
    ctx = context(x, t=0.3, sigma=2.5, index=300)
    for kind in ("t", "sigma", "index"):
        ct.TorchModel(m, dtype=torch.float64, time=kind)(0.3, x, ctx)
    ct.TorchModel(m, dtype=torch.float32, time="sigma")(0.3, x, ctx)
    times = [c["time"] for c in m.calls]
    assert [tm.dtype for tm in times] == [torch.float64, torch.float64, torch.long, torch.float32]
    assert all(tm.shape == (2,) for tm in times)
    assert times[0].tolist() == [0.3, 0.3] and times[1].tolist() == [2.5, 2.5]
    assert times[2].tolist() == [300, 300] and times[3].tolist() == [2.5, 2.5]
    with pytest.raises(ValueError, match="discrete schedule"):
        ct.TorchModel(m, time="index")(0.3, x, context(x))


def test_torch_model_checks():
    x = readonly((2, 3, 4))
    with pytest.raises(ValueError, match=r"\(2, 2, 4\).*\(2, 3, 4\)"):
        ct.TorchModel(Affine(shape_error=True))(0.5, x, context(x))
    with pytest.raises(RuntimeError, match="in place"):
        ct.TorchModel(Affine(in_place=True), dtype=torch.float64)(0.5, x, context(x))
    with pytest.raises(ValueError, match="output"):
        ct.TorchModel(Affine(), output="eps")
    with pytest.raises(ValueError, match="time"):
        ct.TorchModel(Affine(), time="step")
    m = Affine().train()
    model = ct.TorchModel(m, output="x0")
    model(0.5, x, context(x))
    assert model.output == "x0" and model.module is m and m.training and m.calls[0]["training"]


# ---------------------------------------------------------------- through corrsde.solve

class GaussianCScore(torch.nn.Module):
    """C grad log p_t(x) = -C Sigma_t^-1 x, Sigma_t = abar S0 + (1 - abar) C (X0 ~ N(0, S0))."""

    def __init__(self, c, s0, schedule):
        super().__init__()
        self.c, self.s0, self.schedule, self.times = c, s0, schedule, []

    def forward(self, x, time):
        self.times.append(time[0].item())
        return torch.einsum("ij,bj...->bi...", torch.from_numpy(gaussian_map(self, time[0].item())), x)


def gaussian_map(g, t):
    abar = float(g.schedule.abar(t))
    return -g.c @ np.linalg.inv(abar * g.s0 + (1 - abar) * g.c)


@pytest.mark.parametrize("process,solver", [("reverse-sde", "em"), ("pf-ode", "heun")])
def test_solve_with_torch_model_equals_numpy(process, solver):
    if not hasattr(corrsde, "solve"):
        pytest.skip("corrsde.solve not built")
    tau = 4
    cov, S = corrsde.Cov("ar1:rho=0.9", frames=tau), corrsde.Schedule("vp-linear")
    k = np.arange(tau)
    g = GaussianCScore(cov.matrix, 0.5 * 0.6 ** np.abs(k[:, None] - k[None, :]), S)
    ts = []

    def numpy_model(t, x, ctx):
        ts.append(t)
        return np.einsum("ij,bj...->bi...", gaussian_map(g, t), x)

    x0 = cov.sample(3, (2, 5), seed=11)
    kw = dict(cov=cov, schedule=S, process=process, solver=solver, steps=20, seed=5)
    rt = corrsde.solve(ct.TorchModel(g, output="cscore", dtype=torch.float64, time="t"), x0, **kw)
    rn = corrsde.solve(numpy_model, x0, output="cscore", **kw)
    assert g.times == ts and rt.nfe == rn.nfe == len(ts) > 0
    np.testing.assert_allclose(rt.x, rn.x, rtol=1e-12, atol=1e-12)
    assert np.all(np.isfinite(rt.x)) and not np.allclose(rt.x, x0)
