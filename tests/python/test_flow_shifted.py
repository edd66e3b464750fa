"""Issue 28, items 3 and 5: Context's path properties (alpha, sigma_path, lambda_,
t_shifted) and output="flow-shifted" (rf:shift=S: the network answers w = dx/dt' = delta - x0,
SD3/Wan's target; the library samples with u = (dt'/dt) w, dt'/dt = S / q^2).
Run: PYTHONPATH=build/python /usr/bin/python3 -m pytest -q tests/python/test_flow_shifted.py"""
import math

import numpy as np
import pytest

import corrsde

torch = pytest.importorskip("torch")
import corrsde.torch as ct  # noqa: E402


# ---- Context's path properties

HAND = {  # t -> (alpha, sigma_path, lambda, t_shifted) from MATH.md's table
    "rf:shift=3": lambda t: ((1 - t) / (1 + 2 * t), 3 * t / (1 + 2 * t),
                             math.log((1 - t) / (3 * t)), 3 * t / (1 + 2 * t)),
    "edm": lambda t: (1.0, t, -math.log(t), t),
    "ve:smin=0.01,smax=50": lambda t: (1.0, 0.01 * 5000 ** t, -math.log(0.01 * 5000 ** t), t),
}


@pytest.mark.parametrize("spec,t", [("rf:shift=3", 0.4), ("rf:shift=3", 0.05), ("edm", 1.7),
                                    ("ve:smin=0.01,smax=50", 0.3), ("vp-linear", 0.3)])
def test_context_path_properties(spec, t):
    """ctx.alpha, .sigma_path, .lambda_, .t_shifted inside a solve are the schedule's
    accessors at ctx.t (the C context's values, csde_schedule_path_*) bit for bit, and
    the closed forms to 1e-13; VP: alpha^2 = abar, lambda = logsnr / 2."""
    C = corrsde.Cov("ar1:rho=0.5", frames=3)
    S = corrsde.Schedule(spec)
    seen = []

    def model(tt, x, ctx):
        seen.append((ctx.t, ctx.alpha, ctx.sigma_path, ctx.lambda_, ctx.t_shifted))
        return np.zeros_like(x)
    lo, hi = S.span()
    corrsde.solve(model, cov=C, schedule=S, process="pf-ode", output="cscore", solver="euler",
                  steps=3, batch=1, frame_shape=(2,), t_start=t, t_end=max(lo, 1e-3))
    tt, a, sp, lam, tsh = seen[0]
    assert tt == t
    assert (a, sp, lam) == (S.alpha(t), S.sigma_path(t), S.lambda_(t))
    assert tsh == (S.sigma_path(t) if S.path == "rf" else t)
    for k, (_, *got) in enumerate(seen):  # every call
        u = seen[k][0]
        assert got == [S.alpha(u), S.sigma_path(u), S.lambda_(u),
                       S.sigma_path(u) if S.path == "rf" else u]
    if spec in HAND:
        want = HAND[spec](t)
        for g, w in zip((a, sp, lam, tsh), want):
            assert abs(g - w) <= 1e-13 * max(1.0, abs(w)), (g, w)
    else:
        assert abs(a * a - S.abar(t)) <= 4e-16 and abs(lam - S.logsnr(t) / 2) <= 1e-15
        assert tsh == t


def test_context_properties_directly():
    """A Context made by hand (as the tests of TorchModel do) answers the same."""
    C = corrsde.Cov("ar1:rho=0.5", frames=3)
    S = corrsde.Schedule("rf:shift=3")
    ctx = corrsde.Context(3, (2,), 1, C, S, "flow-shifted", "pf-ode")
    ctx.t = 0.4
    assert ctx.t_shifted == 3 * 0.4 / (1 + 2 * 0.4) == ctx.sigma_path
    assert ctx.alpha == S.alpha(0.4) and ctx.lambda_ == S.lambda_(0.4)


# ---- flow-shifted

def frame_apply(M, x):
    return np.einsum("ij,bj...->bi...", M, x)


TAU = 5
K = np.abs(np.subtract.outer(np.arange(TAU), np.arange(TAU)))
S0 = 0.3 * 0.7 ** K + 0.1 * np.eye(TAU) + 0.05 * np.outer(np.arange(TAU), np.arange(TAU)) / TAU
M0 = 0.2  # the data mean, every entry


class ShiftedVelocity(torch.nn.Module):
    """The exact gaussian's E[delta - x0 | x_t] from t' alone (as SD3's network, which sees
    its timestep t'): alpha = 1 - t', sigma = t', Sigma = alpha^2 S0 + sigma^2 C,
    w = -m + (sigma C - alpha S0) Sigma^-1 (x - alpha m)."""

    def __init__(self, Cm):
        super().__init__()
        self.register_buffer("C", torch.tensor(Cm, dtype=torch.float64))
        self.register_buffer("S0", torch.tensor(S0, dtype=torch.float64))

    def forward(self, x, tp):
        tp = float(tp[0])
        a, s = 1 - tp, tp
        St = a * a * self.S0 + s * s * self.C
        A = (s * self.C - a * self.S0) @ torch.linalg.inv(St)
        return -M0 + torch.einsum("ij,bj...->bi...", A, x - a * M0)


def flow_model(Cm):
    """The same answer as the flow u = dx/dt = (3 / q^2) w, q = 1 + 2 t (rf:shift=3)."""
    def f(t, x, ctx):
        tp, d = 3 * t / (1 + 2 * t), 3 / (1 + 2 * t) ** 2
        a, s = 1 - tp, tp
        A = (s * Cm - a * S0) @ np.linalg.inv(a * a * S0 + s * s * Cm)
        return d * (-M0 + frame_apply(A, x - a * M0))
    return f


@pytest.mark.parametrize("solver,steps,tol", [("rk45", 0, 1e-9), ("dpmpp2m", 10, 1e-12)])
def test_flow_shifted_torch_module_samples_as_flow(solver, steps, tol):
    """TorchModel(module answering delta - x0, time="t_shifted", output="flow-shifted") on
    rf:shift=3 gives the PF-ODE endpoint of the same answer as a flow (dx/dt): rk45 at
    1e-10 within 1e-9 (both then within 1e-8 of the exact map), dpmpp2m at 10 steps within
    1e-12 (the two differ only in where dt'/dt = 3/q^2 is rounded)."""
    C = corrsde.Cov("ar1:rho=0.9", frames=TAU)
    Cm = C.matrix
    net = ShiftedVelocity(Cm).eval()
    shifted = ct.TorchModel(net, output="flow-shifted", time="t_shifted")
    xT = C.sample(3, (2,), seed=4)
    kw = dict(cov=C, schedule="rf:shift=3", process="pf-ode", solver=solver, steps=steps)
    if not steps:
        kw.update(rtol=1e-10, atol=1e-10)
    r_s = corrsde.solve(shifted, xT, **kw)
    r_f = corrsde.solve(flow_model(Cm), xT, output="flow", **kw)
    diff = np.abs(r_s.x - r_f.x).max()
    assert diff <= tol * np.abs(r_f.x).max(), diff
    if not steps:  # the exact map (tests/python/test_paths_run.py's)
        L = np.linalg.cholesky(Cm)
        Li = np.linalg.inv(L)
        w, U = np.linalg.eigh(Li @ S0 @ Li.T)
        T, eps = 0.999, 1e-3
        al = lambda u: (1 - u) / (1 + 2 * u)
        sg = lambda u: 3 * u / (1 + 2 * u)
        s = lambda u: al(u) ** 2 * w + sg(u) ** 2
        Phi = L @ U @ np.diag(np.sqrt(s(eps) / s(T))) @ U.T @ Li
        want = al(eps) * M0 + frame_apply(Phi, xT - al(T) * M0)
        assert np.abs(r_s.x - want).max() <= 1e-8 * np.abs(want).max()


def test_flow_shifted_training_target():
    """flow_target(shifted=True) = delta - x0 = d x_t / d t' (autograd through t' of
    add_noise), = flow_target / (3 / q^2); flow_matching_loss(shifted=True) regresses it;
    at shift 1 the two targets agree; on another path shifted=True is refused."""
    S = corrsde.Schedule("rf:shift=3")
    g = torch.Generator().manual_seed(3)
    x0 = torch.randn(4, 3, 2, dtype=torch.float64, generator=g)
    d = torch.randn(4, 3, 2, dtype=torch.float64, generator=g)
    t = torch.tensor([0.1, 0.35, 0.6, 0.9], dtype=torch.float64)
    w = ct.flow_target(x0, d, t, S, shifted=True)
    assert torch.equal(w, d - x0)
    u = ct.flow_target(x0, d, t, S)
    q = (1 + 2 * t).reshape(-1, 1, 1)
    assert torch.allclose(u, 3 / q ** 2 * w, rtol=1e-14, atol=1e-15)
    # d x_t / d t' by autograd: x_t = (1 - t') x0 + t' delta
    tp = (3 * t / (1 + 2 * t)).requires_grad_(True)
    tt = (tp / (3 - 2 * tp))  # t of t' (t' = 3 t / (1 + 2 t))
    xt = ct.add_noise(x0, d, tt, S)
    (gx,) = torch.autograd.grad(xt.sum(), tp)
    assert torch.allclose(gx, w.sum(dim=(1, 2)), rtol=1e-12, atol=1e-12)
    C = corrsde.Cov("ar1:rho=0.5", frames=3)
    v = torch.zeros_like(x0)
    assert torch.equal(ct.flow_matching_loss(v, x0, d, t, S, C, metric="plain", shifted=True),
                       torch.nn.functional.mse_loss(v, d - x0))
    S1 = corrsde.Schedule("rf")
    assert torch.allclose(ct.flow_target(x0, d, t, S1), ct.flow_target(x0, d, t, S1, shifted=True),
                          rtol=0, atol=1e-15)
    with pytest.raises(ValueError, match="rf schedule.*edm"):
        ct.flow_target(x0, d, t, "edm", shifted=True)


@pytest.mark.parametrize("spec", ["vp-linear", "edm", "ve"])
def test_flow_shifted_refused_off_rf(spec):
    """output="flow-shifted" on another schedule: a ValueError (the library's EINVAL) naming
    the output and the schedule, param "schedule"."""
    C = corrsde.Cov("ar1:rho=0.5", frames=3)
    zero = lambda t, x, ctx: np.zeros_like(x)
    with pytest.raises(ValueError, match="flow-shifted.*" + spec.split(":")[0]) as e:
        corrsde.solve(zero, cov=C, schedule=spec, process="pf-ode", output="flow-shifted",
                      solver="heun", steps=3, batch=1, frame_shape=(2,))
    assert getattr(e.value, "param", None) == "schedule"
