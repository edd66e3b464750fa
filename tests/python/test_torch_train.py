"""corrsde.torch's training helpers (issue 24, item 4): the Schedule's methods on tensors,
add_noise (q_sample), sample_t, and eq3_loss's reductions."""
import math
import os
import subprocess

import numpy as np
import pytest

torch = pytest.importorskip("torch")
corrsde = pytest.importorskip("corrsde")
ct = pytest.importorskip("corrsde.torch")

SPECS = ["vp-linear", "vp-linear:bmin=0.3,bmax=12", "cosine", "cosine:s=0.5",
         "ddpm-linear", "ddpm-linear:n=10", "discrete:betas=0.1,0.2,0.3"]
TIMES = np.concatenate([np.linspace(0, 1, 20001), [1e-12, 1e-9, 1e-6, 5e-4, 0.999, 1 - 1e-12]])


# ---------------------------------------------------------------- Schedule on tensors

def close(ref, got, scale):
    """|got - ref| <= 1e-15 scale where ref is finite; the same inf/NaN elsewhere."""
    fin = np.isfinite(ref)
    assert np.array_equal(np.isfinite(got), fin)
    assert np.array_equal(got[~fin], ref[~fin])
    err = np.abs(got[fin] - ref[fin])
    assert np.all(err <= 1e-15 * scale[fin]), (err / scale[fin]).max()


@pytest.mark.parametrize("spec", SPECS)
def test_schedule_tensor_methods_equal_numpy(spec):
    """float64 tensors: beta, int_beta and sigma within 1e-15 relative of the library's
    (numpy) values; abar = e^-B within 1e-15 max(1, B) relative (an absolute error e of B is a
    relative e of abar; B is bitwise the library's for vp-linear and the discrete kinds);
    logsnr within 1e-15 max(1, |logsnr|) (it crosses 0)."""
    S = corrsde.Schedule(spec)
    tt = torch.from_numpy(TIMES)
    B = S.int_beta(TIMES)
    scale = {"beta": None, "int_beta": None, "sigma": None,
             "abar": S.abar(TIMES) * np.maximum(1, np.where(np.isinf(B), 0, B)),
             "logsnr": np.maximum(1, np.abs(S.logsnr(TIMES)))}
    for name, sc in scale.items():
        ref = getattr(S, name)(TIMES)
        got = getattr(S, name)(tt)
        assert isinstance(got, torch.Tensor) and got.dtype == torch.float64
        close(ref, got.numpy(), np.abs(ref) if sc is None else sc)
    if not spec.startswith("cosine"):
        assert np.array_equal(S.int_beta(tt).numpy(), B)  # the same formula, bit for bit
    # float32 in, float32 out (computed in float64, rounded once)
    t32 = tt.float()
    for name in scale:
        got = getattr(S, name)(t32)
        assert got.dtype == torch.float32 and got.device == t32.device
        ref = getattr(S, name)(t32.double().numpy())
        fin = np.isfinite(ref)
        assert np.array_equal(got.numpy()[fin], ref[fin].astype(np.float32)), name
    # a scalar tensor gives a 0-d tensor; the numpy path is unchanged
    assert S.abar(torch.tensor(0.5, dtype=torch.float64)).shape == ()
    assert isinstance(S.abar(0.5), float)


@pytest.mark.parametrize("spec", ["ddpm-linear", "ddpm-linear:n=10", "discrete:betas=0.1,0.2,0.3"])
def test_schedule_tensor_steps_and_index(spec):
    S = corrsde.Schedule(spec)
    n = S.nsteps
    i = torch.arange(-1, n + 2)
    for name in ("beta_step", "abar_step"):
        got = getattr(S, name)(i)
        ref = getattr(S, name)(i.numpy().astype(np.float64))
        assert got.dtype == torch.get_default_dtype()
        np.testing.assert_array_equal(got.double().numpy(), ref.astype(np.float32))
        got64 = getattr(S, name)(i.double())
        np.testing.assert_array_equal(got64.numpy(), ref)  # NaN outside 0..N (1..N for beta)
    t = torch.from_numpy(TIMES)
    idx = S.index(t)
    assert idx.dtype == torch.long and np.array_equal(idx.numpy(), S.index(TIMES))
    # at the nodes the continuous view is the discrete chain: abar(i/N) = abar_i
    nodes = torch.arange(0, n + 1, dtype=torch.float64) / n
    np.testing.assert_allclose(S.abar(nodes).numpy(), S.abar_step(np.arange(n + 1.0)),
                               rtol=4e-16, atol=0)  # torch's exp and libm's: within an ulp


@pytest.mark.parametrize("spec", ["vp-linear", "cosine", "ddpm-linear:n=10"])
def test_schedule_tensor_gradients(spec):
    """gradcheck of every continuous method (finite differences against autograd), and
    d abar / dt = -beta abar, d B / dt = beta (between the nodes of a discrete schedule)."""
    S = corrsde.Schedule(spec)
    t = torch.tensor([0.013, 0.27, 0.55, 0.86], dtype=torch.float64, requires_grad=True)
    for name in ("abar", "sigma", "logsnr", "int_beta", "beta"):
        if name == "beta" and spec.startswith("ddpm"):
            continue  # piecewise constant
        assert torch.autograd.gradcheck(getattr(S, name), (t,)), name
    (g,) = torch.autograd.grad(S.abar(t).sum(), t)
    want = -S.beta(t.detach().numpy()) * S.abar(t.detach().numpy())
    np.testing.assert_allclose(g.numpy(), want, rtol=1e-12)
    (g,) = torch.autograd.grad(S.int_beta(t).sum(), t)
    np.testing.assert_allclose(g.numpy(), S.beta(t.detach().numpy()), rtol=1e-12)


# ---------------------------------------------------------------- add_noise

@pytest.mark.parametrize("spec,t", [("vp-linear", 0.3), ("cosine", 0.8),
                                    ("ddpm-linear", torch.tensor(600))])
def test_add_noise_moments(spec, t):
    """x_t for one x0 repeated n = 100k times (delta from noise_like): per pixel the sample
    mean is within 6 standard errors of sqrt(abar) x0 (se = sqrt((1 - abar) C_ii / n)) and the
    sample covariance of x_t - sqrt(abar) x0 (the known mean) within 6 se of (1 - abar) C
    (se_ij = (1 - abar) sqrt((C_ii C_jj + C_ij^2) / n))."""
    tau, D, n = 5, 4, 100_000
    cov, S = corrsde.Cov("ar1:rho=0.8", frames=tau), corrsde.Schedule(spec)
    gen = torch.Generator().manual_seed(11)
    one = torch.randn((1, tau, D), generator=gen, dtype=torch.float64) * 2
    x0 = one.expand(n, tau, D)
    delta = ct.noise_like(torch.empty((n, tau, D), dtype=torch.float64), cov, generator=gen)
    xt = ct.add_noise(x0, delta, t, S)
    abar = S.abar_step(int(t)) if isinstance(t, torch.Tensor) else S.abar(t)
    c = cov.matrix
    mean = xt.mean(dim=0).numpy()
    se = np.sqrt((1 - abar) * np.diag(c) / n)[:, None]
    assert np.all(np.abs(mean - math.sqrt(abar) * one[0].numpy()) <= 6 * se)
    r = (xt - math.sqrt(abar) * x0).numpy()
    for p in range(D):
        m2 = r[:, :, p].T @ r[:, :, p] / n
        se2 = (1 - abar) * np.sqrt((np.outer(np.diag(c), np.diag(c)) + c ** 2) / n)
        assert np.all(np.abs(m2 - (1 - abar) * c) <= 6 * se2)


def test_add_noise_values_per_sample():
    """t of shape [B] applies per sample: x_t[b] = sqrt(abar(t_b)) x0[b] + sqrt(1 - abar(t_b))
    delta[b] (to 1e-15); integer steps i give abar_i, the same bits as the times i/N."""
    rng = np.random.default_rng(3)
    x0, delta = (torch.from_numpy(rng.standard_normal((4, 3, 2, 2))) for _ in range(2))
    S = corrsde.Schedule("cosine")
    t = torch.tensor([0.0, 0.1, 0.5, 0.97], dtype=torch.float64)
    got = ct.add_noise(x0, delta, t, S).numpy()
    ab = S.abar(t.numpy())[:, None, None, None]
    want = np.sqrt(ab) * x0.numpy() + np.sqrt(1 - ab) * delta.numpy()
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-15 * np.abs(want).max() * 4)
    assert torch.equal(ct.add_noise(x0, delta, 0.0, S), x0)  # t = 0: the data
    for tb in (0.3, np.float64(0.3), np.array(0.3), torch.tensor(0.3, dtype=torch.float64)):
        got = ct.add_noise(x0, delta, tb, S).numpy()  # a number is a float64 time
        ab = S.abar(0.3)
        want = np.sqrt(ab) * x0.numpy() + np.sqrt(1 - ab) * delta.numpy()
        np.testing.assert_allclose(got, want, rtol=0, atol=4e-15 * np.abs(want).max())
    D = corrsde.Schedule("ddpm-linear")
    i = torch.tensor([1, 10, 500, 1000])
    xi = ct.add_noise(x0, delta, i, D)
    assert torch.equal(xi, ct.add_noise(x0, delta, i.double() / 1000, "ddpm-linear"))
    ab = D.abar_step(i.numpy().astype(float))[:, None, None, None]
    want = np.sqrt(ab) * x0.numpy() + np.sqrt(1 - ab) * delta.numpy()
    np.testing.assert_allclose(xi.numpy(), want, rtol=0, atol=4e-15 * np.abs(want).max())
    x32 = ct.add_noise(x0.float(), delta.float(), t.float(), S)
    assert x32.dtype == torch.float32


def test_add_noise_gradients():
    """gradcheck in x0, delta and t (float64), through the tensor formulas of B(t)."""
    rng = np.random.default_rng(4)
    x0, delta = (torch.from_numpy(rng.standard_normal((3, 4, 2))).requires_grad_()
                 for _ in range(2))
    t = torch.tensor([0.05, 0.4, 0.9], dtype=torch.float64, requires_grad=True)
    for spec in ("vp-linear", "cosine"):
        S = corrsde.Schedule(spec)
        assert torch.autograd.gradcheck(lambda a, b, u: ct.add_noise(a, b, u, S), (x0, delta, t))


def test_add_noise_errors():
    x = torch.zeros((2, 3, 4), dtype=torch.float64)
    with pytest.raises(ValueError, match=r"t must lie in \[0, 1\]"):
        ct.add_noise(x, x, torch.tensor([0.5, 1.5]), "vp-linear")
    with pytest.raises(ValueError, match="discrete schedule"):
        ct.add_noise(x, x, torch.tensor([3, 4]), "vp-linear")
    with pytest.raises(ValueError, match=r"0\.\.1000"):
        ct.add_noise(x, x, torch.tensor([3, 1001]), "ddpm-linear")
    with pytest.raises(ValueError, match="t has shape"):
        ct.add_noise(x, x, torch.tensor([0.1, 0.2, 0.3]), "vp-linear")
    with pytest.raises(ValueError, match="delta has shape"):
        ct.add_noise(x, x[:, :2], 0.5, "vp-linear")
    with pytest.raises(TypeError, match="schedule"):
        ct.add_noise(x, x, 0.5, None)


# ---------------------------------------------------------------- sample_t

def test_sample_t_uniform_and_reproducible():
    """n = 200k draws: within [eps, 1), mean (1 + eps) / 2 and variance (1 - eps)^2 / 12 within 6
    standard errors (se of the variance: sqrt((m4 - s^4) / n), m4 = (1 - eps)^4 / 80); the same
    generator seed, the same draw."""
    S, eps, n = corrsde.Schedule("vp-linear"), 1e-3, 200_000
    t = ct.sample_t(n, S, eps=eps, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    assert t.dtype == torch.float64 and t.shape == (n,)
    assert t.min() >= eps and t.max() < 1
    w = 1 - eps
    assert abs(t.mean().item() - (1 + eps) / 2) <= 6 * w / math.sqrt(12 * n)
    assert abs(t.var().item() - w * w / 12) <= 6 * math.sqrt((w ** 4 / 80 - w ** 4 / 144) / n)
    again = ct.sample_t(n, S, eps=eps, generator=torch.Generator().manual_seed(5),
                        dtype=torch.float64)
    assert torch.equal(t, again)
    assert ct.sample_t(4, S).dtype == torch.float32


def test_sample_t_discrete_steps():
    """A discrete schedule: integer steps 1..N, each count within 6 se of n / N."""
    S, n = corrsde.Schedule("ddpm-linear:n=10"), 100_000
    i = ct.sample_t(n, S, generator=torch.Generator().manual_seed(6))
    assert i.dtype == torch.long and i.min() == 1 and i.max() == 10
    counts = torch.bincount(i, minlength=11).numpy()[1:]
    assert np.all(np.abs(counts - n / 10) <= 6 * math.sqrt(n * 0.1 * 0.9))
    assert torch.equal(i, ct.sample_t(n, S, generator=torch.Generator().manual_seed(6)))
    t = ct.sample_t(8, S, discrete=False)
    assert t.is_floating_point()
    with pytest.raises(ValueError, match="discrete schedule"):
        ct.sample_t(8, "vp-linear", discrete=True)
    with pytest.raises(ValueError, match="eps"):
        ct.sample_t(8, "vp-linear", eps=1.0)
    with pytest.raises(ValueError, match="batch"):
        ct.sample_t(0, "vp-linear")


# ---------------------------------------------------------------- eq3_loss reductions

@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_eq3_loss_mean_is_mse(dtype):
    """C = I, weight "none": "mean" is torch's mse_loss bit for bit (the sum of the C^-1 terms
    over the n = B tau D elements, / n); "sum" = "mean" n (to rounding); "none" is the [B]
    per-sample sums, "batchmean" their mean."""
    cov = corrsde.Cov("identity", frames=6)
    gen = torch.Generator().manual_seed(7)
    d, dp = (torch.randn((5, 6, 3, 4), generator=gen, dtype=dtype) for _ in range(2))
    mean = ct.eq3_loss(dp, d, cov, weight="none")
    assert torch.equal(mean, torch.nn.functional.mse_loss(dp, d))
    total = ct.eq3_loss(dp, d, cov, weight="none", reduction="sum")
    eps = torch.finfo(dtype).eps
    assert abs(total.item() - mean.item() * d.numel()) <= 4 * eps * total.item()
    none = ct.eq3_loss(dp, d, cov, weight="none", reduction="none")
    assert none.shape == (5,)
    assert torch.allclose(none, ((d - dp) ** 2).sum(dim=(1, 2, 3)), rtol=4 * eps, atol=0)
    bmean = ct.eq3_loss(dp, d, cov, weight="none", reduction="batchmean")
    assert torch.allclose(bmean, none.mean(), rtol=4 * eps, atol=0)
    with pytest.raises(ValueError, match="batchmean"):
        ct.eq3_loss(dp, d, cov, weight="none", reduction="avg")


def test_eq3_loss_sum_is_mean_times_count_weighted():
    """With a correlated C and eq. 3's weights: "sum" = "mean" n, and "mean" = sum_b w_b
    d_b^T C^-1 d_b / n from numpy."""
    tau = 5
    cov, S = corrsde.Cov("ar1:rho=0.9", frames=tau), corrsde.Schedule("vp-linear")
    rng = np.random.default_rng(8)
    d, dp = (torch.from_numpy(rng.standard_normal((4, tau, 7))) for _ in range(2))
    t = torch.tensor([0.1, 0.3, 0.6, 0.95], dtype=torch.float64)
    mean = ct.eq3_loss(dp, d, cov, t=t, schedule=S)
    total = ct.eq3_loss(dp, d, cov, t=t, schedule=S, reduction="sum")
    assert abs(total.item() - mean.item() * d.numel()) <= 4e-16 * abs(total.item())
    r = (d - dp).numpy()
    w = S.beta(t.numpy()) / (2 * (1 - S.abar(t.numpy())))
    quad = np.einsum("bip,bip->b", r, np.linalg.solve(cov.matrix, r))
    np.testing.assert_allclose(mean.item(), np.sum(w * quad) / d.numel(), rtol=1e-13)


def test_training_step_end_to_end():
    """sample_t -> noise_like -> add_noise -> a network -> eq3_loss: finite gradients on the
    network's parameters, for a continuous and a discrete schedule."""
    cov = corrsde.Cov("ar1:rho=0.9", frames=4)
    net = torch.nn.Conv3d(1, 1, 3, padding=1)
    gen = torch.Generator().manual_seed(9)
    for spec in ("vp-linear", "ddpm-linear"):
        S = corrsde.Schedule(spec)
        x0 = torch.randn((3, 4, 6, 6), generator=gen)
        t = ct.sample_t(3, S, generator=gen)
        delta = ct.noise_like(x0, cov, generator=gen)
        xt = ct.add_noise(x0, delta, t, S)
        pred = net(xt.unsqueeze(1)).squeeze(1)
        net.zero_grad()
        ct.eq3_loss(pred, delta, cov, t=t, schedule=S).backward()
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())


def test_readme_training_example_runs():
    """The README's "Training, and networks trained in other conventions" example, as written."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    text = open(os.path.join(root, "README.md")).read()
    sec = text.split("### Training, and networks trained in other conventions", 1)[1]
    code = sec.split("```python\n", 1)[1].split("```", 1)[0]
    out = subprocess.run(["/usr/bin/python3", "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out == "torch.float32 0.5\n20\n"
