"""corrsde.torch's adapters (issue 24, item 5): DiffusersModel and KDiffusionModel, each
against the exact Gaussian model written in its own convention, run through corrsde.solve
and compared with the same run of the program's built-in gaussian model; grids as arrays of
t or of sigma (Schedule.sigma_to_t).

Data N(m, S0 (x) I) with S0 = std^2 ar1(rho) (the built-in gaussian:mean=M,std=S,rho=R):
p_t = N(sqrt(abar) m, Sigma_t), Sigma_t = abar S0 + (1 - abar) C, and the posterior mean
E[x0 | x_t] = m + sqrt(abar) S0 Sigma_t^-1 (x_t - sqrt(abar) m) along the frames of each pixel.
"""
import os
import subprocess

import numpy as np
import pytest

torch = pytest.importorskip("torch")
corrsde = pytest.importorskip("corrsde")
ct = pytest.importorskip("corrsde.torch")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CORRSDE = os.environ.get("CORRSDE", os.path.join(ROOT, "build", "corrsde"))

TAU, MEAN, STD, RHO = 5, 0.3, 0.5, 0.95
COV = "ar1:rho=0.9"
GAUSSIAN = f"gaussian:mean={MEAN},std={STD},rho={RHO}"
K = np.arange(TAU)
S0 = STD ** 2 * RHO ** np.abs(K[:, None] - K[None, :])
ERRORS = {}  # what each comparison measured (read by the report's script)


def cli_final(tmp_path, schedule, frame_shape, args):
    """The built-in gaussian's final states for the same run (batch 3, seed 5)."""
    out = tmp_path / f"cli{len(list(tmp_path.iterdir()))}.h5"
    subprocess.run([CORRSDE, "sample", "--frames", str(TAU), "--frame-shape",
                    "x".join(map(str, frame_shape)), "--batch", "3", "--seed", "5",
                    "--cov", COV, "--schedule", schedule, "--model", GAUSSIAN, "-q",
                    "-o", str(out)] + args, check=True)
    import h5py
    with h5py.File(out, "r") as f:
        return f["trajectory/x"][-1], int(f["stats"].attrs["nfe"])


def frames(M, x, axis):
    """M applied along `axis` (the frames) of x."""
    return torch.movedim(torch.tensordot(M, torch.movedim(x, axis, 0), dims=1), 0, axis)


class Output:
    """diffusers' output object (UNet3DConditionOutput): the answer is .sample."""

    def __init__(self, sample):
        self.sample = sample


class ExactUNet(torch.nn.Module):
    """The exact model in diffusers' convention: forward(sample [B, C, F, H, W], timestep [B],
    0-based long) -> epsilon, v_prediction (v = alpha eps - sigma x0) or sample (x0), with
    alpha^2 = alphas_cumprod[timestep] of DDPM's linear betas (computed as diffusers does,
    in float64: cumprod(1 - linspace(b1, bN, N)))."""

    def __init__(self, cov, prediction_type, n=1000, b1=1e-4, bN=0.02, wrap=None):
        super().__init__()
        betas = torch.linspace(b1, bN, n, dtype=torch.float64)
        self.register_buffer("alphas_cumprod", torch.cumprod(1 - betas, 0))
        self.register_buffer("S0", torch.from_numpy(S0))
        self.register_buffer("C", torch.from_numpy(cov.matrix))
        self.prediction_type, self.wrap, self.timesteps = prediction_type, wrap, []

    def forward(self, sample, timestep):
        assert sample.dim() == 5 and sample.shape[2] == TAU and timestep.dtype == torch.long
        self.timesteps.append(int(timestep[0]))
        out = []
        for x, k in zip(sample, timestep):
            ac = self.alphas_cumprod[k]
            a, s = ac.sqrt(), (1 - ac).sqrt()
            gain = a * self.S0 @ torch.linalg.inv(ac * self.S0 + (1 - ac) * self.C)
            x0 = MEAN + frames(gain, x - a * MEAN, 1)  # x: [C, F, H, W], frames on axis 1
            eps = (x - a * x0) / s
            out.append({"epsilon": eps, "v_prediction": a * eps - s * x0,
                        "sample": x0}[self.prediction_type])
        y = torch.stack(out)
        return Output(y) if self.wrap == "output" else (y,) if self.wrap == "tuple" else y


class ExactDenoiser(torch.nn.Module):
    """The exact model in k-diffusion's convention: D(x_ve, sigma) = E[x0 | x_ve], x_ve = x0
    + sigma delta: m + S0 (S0 + sigma^2 C)^-1 (x_ve - m), x in corrsde's [B, F, ...]."""

    def __init__(self, cov):
        super().__init__()
        self.register_buffer("S0", torch.from_numpy(S0))
        self.register_buffer("C", torch.from_numpy(cov.matrix))
        self.sigmas = []

    def forward(self, x, sigma):
        self.sigmas.append(float(sigma[0]))
        out = [MEAN + frames(self.S0 @ torch.linalg.inv(self.S0 + s * s * self.C), xb - MEAN, 0)
               for xb, s in zip(x, sigma)]
        return torch.stack(out)


def check(name, got, want, tol=1e-10):
    err = np.abs(got - want).max() / max(1.0, np.abs(want).max())
    ERRORS[name] = err
    assert err <= tol, (name, err)


# ---------------------------------------------------------------- DiffusersModel

DDPM = "ddpm-linear"
# DDIM's 10 "leading" steps as diffusers takes them: timesteps 900, 800, ..., 0, the last
# step to abar = 1 (t = 0)
NODES = np.append(np.arange(901, 0, -100) / 1000, 0.0)
RUNS = [  # (solve kw, CLI args): every model time is a node i/N of the schedule
    (dict(process="ddpm"), ["--process", "ddpm"]),
    (dict(process="ddim", grid=NODES),
     ["--process", "ddim", "--grid", "list:" + ",".join(map(repr, NODES)),
      "--t-start", "0.901", "--t-end", "0"]),
    (dict(process="pf-ode", solver="heun", steps=37),  # t N = 1000 - 27 k
     ["--process", "pf-ode", "--solver", "heun", "--steps", "37"]),
    (dict(process="reverse-sde", solver="em", steps=111),
     ["--process", "reverse-sde", "--solver", "em", "--steps", "111"]),
]


@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction", "sample"])
@pytest.mark.parametrize("run", range(len(RUNS)), ids=["ddpm", "ddim", "pf-ode", "sde"])
def test_diffusers_exact_model_is_the_builtin(tmp_path, prediction, run):
    """[B, C, F, H, W] with C = 2 != F = 5, 0-based timesteps, the three output kinds: the
    same final states as the built-in gaussian, to 1e-10 (the same function of t and x)."""
    kw, args = RUNS[run]
    cov, shape = corrsde.Cov(COV, frames=TAU), (2, 3, 2)
    want, nfe = cli_final(tmp_path, DDPM, shape, args)
    unet = ExactUNet(cov, prediction, wrap={"epsilon": None, "v_prediction": "output",
                                            "sample": "tuple"}[prediction])
    model = ct.DiffusersModel(unet, prediction_type=prediction)
    assert model.output == {"epsilon": "noise", "v_prediction": "v", "sample": "x0"}[prediction]
    assert model.dtype == torch.float64  # the module's (its buffers)
    r = corrsde.solve(model, cov=cov, schedule=DDPM, batch=3, frame_shape=shape, seed=5, **kw)
    assert r.nfe == nfe
    if run == 0:
        assert unet.timesteps == list(range(999, -1, -1))  # DDPM's 999, ..., 0
    if run == 1:
        assert unet.timesteps == list(range(900, -1, -100))
    check(f"diffusers {prediction} {kw['process']}", r.x, want)


def test_diffusers_single_channel_and_layouts(tmp_path):
    """frame_shape (H, W) goes in as [B, 1, F, H, W]; layout "bfchw" passes corrsde's own."""
    cov, shape = corrsde.Cov(COV, frames=TAU), (3, 4)
    kw, args = RUNS[2]
    want, _ = cli_final(tmp_path, DDPM, shape, args)
    r = corrsde.solve(ct.DiffusersModel(ExactUNet(cov, "epsilon")), cov=cov, schedule=DDPM,
                      batch=3, frame_shape=shape, seed=5, **kw)
    check("diffusers epsilon pf-ode HxW", r.x, want)

    class FramesSecond(ExactUNet):  # the same model taking [B, F, C, H, W]
        def forward(self, sample, timestep):
            return super().forward(sample.transpose(1, 2), timestep).transpose(1, 2)
    r = corrsde.solve(ct.DiffusersModel(FramesSecond(cov, "sample"), "sample", layout="bfchw"),
                      cov=cov, schedule=DDPM, batch=3, frame_shape=(2, 3, 2), seed=5, **kw)
    want, _ = cli_final(tmp_path, DDPM, (2, 3, 2), args)
    check("diffusers sample pf-ode bfchw", r.x, want)


def test_diffusers_v_sign_convention():
    """v = alpha eps - sigma x0 (diffusers' get_velocity, MATH.md): the adapter's answer taken to
    corrsde's v gives back the exact x0 = alpha x - sigma v and eps = sigma x + alpha v."""
    cov = corrsde.Cov(COV, frames=TAU)
    S = corrsde.Schedule(DDPM)
    x = cov.sample(2, (2, 3, 2), seed=3)
    i = 400
    ctx = corrsde.Context(TAU, (2, 3, 2), 2, cov, S, "v", "pf-ode")
    ctx.t = i / 1000
    v = ct.DiffusersModel(ExactUNet(cov, "v_prediction"), "v_prediction")(ctx.t, x, ctx)
    x0 = ct.DiffusersModel(ExactUNet(cov, "sample"), "sample")(ctx.t, x, ctx)
    eps = ct.DiffusersModel(ExactUNet(cov, "epsilon"))(ctx.t, x, ctx)
    a, s = np.sqrt(S.abar_step(i)), np.sqrt(1 - S.abar_step(i))
    np.testing.assert_allclose(a * x - s * v, x0, rtol=0, atol=1e-12)
    np.testing.assert_allclose(s * x + a * v, eps, rtol=0, atol=1e-12)


class ContinuousUNet(ExactUNet):
    """ExactUNet for float timesteps k = N t - 1 (the continuous extension of index - 1) of the
    continuous schedule vp-linear: alpha^2 = abar((k + 1) / N) (corrsde's tensor formulas)."""

    def forward(self, sample, timestep):
        assert timestep.dtype == torch.float64
        self.alphas_cumprod = corrsde.Schedule("vp-linear").abar((timestep + 1) / 1000)
        return super().forward(sample, torch.arange(sample.shape[0]))


def test_diffusers_fine_pf_ode_is_the_exact_flow():
    """timestep=f(t, ctx) = 1000 t - 1 on vp-linear, dopri5 at rtol = atol = 1e-10 from t = 1
    to 1e-3: within 1e-9 of the exact flow z(t) = Phi(t, 1) z(1), z = x - sqrt(abar) m
    (MATH.md), relative to the largest entry."""
    cov = corrsde.Cov(COV, frames=TAU)
    S = corrsde.Schedule("vp-linear")
    x1 = cov.sample(2, (2, 2, 2), seed=2)
    model = ct.DiffusersModel(ContinuousUNet(cov, "v_prediction"), "v_prediction",
                              timestep=lambda t, ctx: 1000 * t - 1)
    r = corrsde.solve(model, x1, cov=cov, schedule=S, process="pf-ode", solver="dopri5",
                      steps=0, rtol=1e-10)
    want = exact_flow(cov, S, x1, 1.0, 1e-3)
    err = np.abs(r.x - want).max() / np.abs(want).max()
    ERRORS["diffusers vp-linear dopri5 1e-10 vs exact flow"] = err
    assert err <= 1e-9, err


def test_diffusers_errors():
    cov = corrsde.Cov(COV, frames=TAU)
    unet = ExactUNet(cov, "epsilon")
    with pytest.raises(ValueError, match="prediction_type"):
        ct.DiffusersModel(unet, "eps")
    with pytest.raises(ValueError, match="layout"):
        ct.DiffusersModel(unet, layout="bchw")
    with pytest.raises(ValueError, match="max_batch"):
        ct.DiffusersModel(unet, max_batch=2, encoder_hidden_states=torch.zeros(1))
    with pytest.raises(ValueError, match="not a step of the discrete schedule"):
        corrsde.solve(ct.DiffusersModel(unet), cov=cov, schedule=DDPM, process="pf-ode",
                      solver="heun", steps=10, batch=1, frame_shape=(1, 2, 2))
    with pytest.raises(ValueError, match="discrete schedule"):
        corrsde.solve(ct.DiffusersModel(unet), cov=cov, schedule="vp-linear", process="pf-ode",
                      solver="heun", steps=10, batch=1, frame_shape=(1, 2, 2))
    with pytest.raises(ValueError, match=r"frame_shape \(C, H, W\) or \(H, W\)"):
        corrsde.solve(ct.DiffusersModel(unet), cov=cov, schedule=DDPM, process="ddpm",
                      batch=1, frame_shape=(4,))


def test_diffusers_timestep_callable_and_kwargs():
    """timestep=f(t, ctx) gives a float tensor of f's value; kwargs reach the module."""
    seen = []

    class Net(torch.nn.Module):
        def forward(self, sample, timestep, encoder_hidden_states=None):
            seen.append((timestep.dtype, timestep.tolist(), encoder_hidden_states))
            return torch.zeros_like(sample)
    cov = corrsde.Cov(COV, frames=TAU)
    x = cov.sample(2, (1, 2, 2), seed=1)
    ctx = corrsde.Context(TAU, (1, 2, 2), 2, cov, corrsde.Schedule("vp-linear"), "noise", "pf-ode")
    ctx.t = 0.25
    cond = torch.ones(3)
    y = ct.DiffusersModel(Net(), timestep=lambda t, c: 999 * t, encoder_hidden_states=cond)(
        0.25, x, ctx)
    assert np.array_equal(y, np.zeros_like(x))
    assert seen[0][0] == torch.float32 and seen[0][1] == [249.75, 249.75] and seen[0][2] is cond


# ---------------------------------------------------------------- KDiffusionModel

VP_RUNS = [
    (dict(process="pf-ode", solver="heun", steps=30, grid="karras"),
     ["--process", "pf-ode", "--solver", "heun", "--steps", "30", "--grid", "karras"]),
    (dict(process="pf-ode", solver="dpmpp2m", steps=12, grid="logsnr"),
     ["--process", "pf-ode", "--solver", "dpmpp2m", "--steps", "12", "--grid", "logsnr"]),
    (dict(process="ddim", steps=20), ["--process", "ddim", "--steps", "20"]),
    (dict(process="reverse-sde", solver="em", steps=60),
     ["--process", "reverse-sde", "--solver", "em", "--steps", "60"]),
]


@pytest.mark.parametrize("schedule", ["vp-linear", "cosine"])
@pytest.mark.parametrize("run", range(len(VP_RUNS)), ids=["heun", "dpmpp2m", "ddim", "sde"])
def test_kdiffusion_exact_denoiser_is_the_builtin(tmp_path, schedule, run):
    """x_ve = x / alpha, sigma = sigma_t / alpha, denoised x0: the built-in's final states to
    1e-10."""
    kw, args = VP_RUNS[run]
    cov, shape = corrsde.Cov(COV, frames=TAU), (2, 3)
    want, nfe = cli_final(tmp_path, schedule, shape, args)
    den = ExactDenoiser(cov)
    model = ct.KDiffusionModel(den)
    assert model.output == "x0" and model.dtype == torch.float64
    r = corrsde.solve(model, cov=cov, schedule=schedule, batch=3, frame_shape=shape, seed=5,
                      **kw)
    assert r.nfe == nfe
    check(f"k-diffusion {schedule} {kw.get('solver', kw['process'])}", r.x, want)


def test_kdiffusion_sigma_is_the_ve_sigma():
    """The denoiser sees sigma = sqrt((1 - abar) / abar) and x / sqrt(abar)."""
    cov, S = corrsde.Cov(COV, frames=TAU), corrsde.Schedule("vp-linear")
    seen = []

    class Probe(torch.nn.Module):
        def forward(self, x, sigma):
            seen.append((x.clone(), sigma.clone()))
            return x
    x = cov.sample(2, (3,), seed=1)
    ctx = corrsde.Context(TAU, (3,), 2, cov, S, "x0", "pf-ode")
    ctx.t = 0.4
    y = ct.KDiffusionModel(Probe(), dtype=torch.float64)(0.4, x, ctx)
    a = np.sqrt(S.abar(0.4))
    assert np.array_equal(seen[0][0].numpy(), x / a) and np.array_equal(y, x / a)
    assert seen[0][1].tolist() == [S.sigma(0.4)] * 2
    np.testing.assert_allclose(S.sigma(0.4), np.sqrt((1 - a * a) / (a * a)), rtol=1e-15)


def exact_flow(cov, S, x, t1, t2):
    """z(t2) = Phi(t2, t1) z(t1), z = x - sqrt(abar) m: C = L L^T, W = L^-1 S0 L^-T = U w U^T,
    Phi = L U diag(sqrt(s(t2) / s(t1))) U^T L^-1, s(t) = 1 + abar(t) (w - 1)."""
    L = np.linalg.cholesky(cov.matrix)
    Li = np.linalg.inv(L)
    w, U = np.linalg.eigh(Li @ S0 @ Li.T)
    s = lambda t: 1 + S.abar(t) * (w - 1)
    Phi = L @ U @ np.diag(np.sqrt(s(t2) / s(t1))) @ U.T @ Li
    z = x - np.sqrt(S.abar(t1)) * MEAN
    return np.einsum("ij,bj...->bi...", Phi, z) + np.sqrt(S.abar(t2)) * MEAN


@pytest.mark.parametrize("schedule", ["vp-linear", "cosine"])
def test_kdiffusion_fine_pf_ode_is_the_exact_flow(schedule):
    """dopri5 at rtol = atol = 1e-10 from t = 1 (0.999 for cosine) to 1e-3: within 1e-9 of
    the exact flow (relative to the largest entry)."""
    cov = corrsde.Cov(COV, frames=TAU)
    S = corrsde.Schedule(schedule)
    T = 1.0 if schedule == "vp-linear" else 0.999
    x1 = cov.sample(2, (2, 2), seed=2)
    r = corrsde.solve(ct.KDiffusionModel(ExactDenoiser(cov)), x1, cov=cov, schedule=S,
                      process="pf-ode", solver="dopri5", steps=0, rtol=1e-10, t_start=T)
    want = exact_flow(cov, S, x1, T, 1e-3)
    err = np.abs(r.x - want).max() / np.abs(want).max()
    ERRORS[f"k-diffusion {schedule} dopri5 1e-10 vs exact flow"] = err
    assert err <= 1e-9, err


# ---------------------------------------------------------------- grids as arrays

@pytest.mark.parametrize("spec", ["vp-linear", "vp-linear:bmin=0.3,bmax=12", "cosine",
                                  "ddpm-linear", "discrete:betas=0.1,0.2,0.3"])
def test_sigma_to_t_inverts_sigma(spec):
    """sigma(sigma_to_t(s)) = s to 1e-12 relative over [1e-4, sigma(1)] and t(sigma(t)) = t to
    1e-12; vp-linear against its closed form t = 2B / (bmin + sqrt(bmin^2 + 2 d B)),
    B = log(1 + sigma^2), d = bmax - bmin."""
    S = corrsde.Schedule(spec)
    top = S.sigma(1.0)
    if np.isinf(top):  # cosine: abar(1) = 0
        assert S.sigma_to_t(np.inf) == 1.0
        top = S.sigma(0.999)
    s = np.concatenate([[0.0], np.geomspace(1e-4, top, 500)])
    t = S.sigma_to_t(s)
    assert t[0] == 0.0 and np.all(np.diff(t) > 0)
    np.testing.assert_allclose(S.sigma(t), s, rtol=1e-12, atol=0)
    tt = np.linspace(0.0005, 0.999, 300)
    if S.sigma(1.0) > S.sigma(0.999):
        np.testing.assert_allclose(S.sigma_to_t(S.sigma(tt)), tt, rtol=0, atol=1e-12)
    if spec.startswith("vp-linear"):
        p = dict(kv.split("=") for kv in S.spec.split(":")[1].split(","))
        bmin, d = float(p["bmin"]), float(p["bmax"]) - float(p["bmin"])
        B = np.log1p(s * s)
        np.testing.assert_allclose(t, 2 * B / (bmin + np.sqrt(bmin * bmin + 2 * d * B)),
                                   rtol=1e-14, atol=1e-16)
    assert isinstance(S.sigma_to_t(0.5), float)
    g = S.sigma_to_t(torch.tensor([0.2, 0.5], dtype=torch.float32))
    assert g.dtype == torch.float32 and np.allclose(g.numpy(), S.sigma_to_t(np.array([0.2, 0.5])))
    assert S.sigma_to_t(S.sigma(1.0) * (1 + 1e-13)) == 1.0  # sigma(1), rounded up
    for bad in [-0.1, np.nan] + ([S.sigma(1.0) * 1.001] if np.isfinite(S.sigma(1.0)) else []):
        with pytest.raises(ValueError, match="sigma"):
            S.sigma_to_t(bad)


def model_linear(t, x, ctx):
    return -0.5 * x


def test_grid_array_is_the_list_spec():
    """grid=array: the same bits as grid="list:..." with the nodes' repr; its ends set
    t_start and t_end; {"t": array} is the same."""
    cov = corrsde.Cov(COV, frames=TAU)
    nodes = np.array([1.0, 0.7, 0.4321, 0.2, 0.05, 0.01])
    kw = dict(cov=cov, process="pf-ode", solver="heun", batch=2, frame_shape=(3,), seed=1,
              save="every:1")
    ref = corrsde.solve(model_linear, grid="list:" + ",".join(map(repr, nodes)), t_end=0.01, **kw)
    for g in (nodes, list(nodes), {"t": nodes}, torch.from_numpy(nodes)):
        r = corrsde.solve(model_linear, grid=g, **kw)
        assert np.array_equal(r.x, ref.x) and np.array_equal(r.t, nodes) and r.steps == 5


def test_grid_sigma_is_karras():
    """k-diffusion's Karras sigmas (rho = 7, sigma_max = sigma(1), sigma_min = sigma(1e-3))
    given as {"sigma": ...}: the nodes are their sigma_to_t, and the solve agrees with the
    library's karras grid to 1e-12 (the same nodes, computed two ways)."""
    cov, S = corrsde.Cov(COV, frames=TAU), corrsde.Schedule("vp-linear")
    n, rho = 12, 7.0
    smax, smin = S.sigma(1.0), S.sigma(1e-3)
    ramp = np.linspace(0, 1, n + 1)
    sig = (smax ** (1 / rho) + ramp * (smin ** (1 / rho) - smax ** (1 / rho))) ** rho
    kw = dict(cov=cov, schedule=S, process="pf-ode", solver="heun", batch=2, frame_shape=(3,),
              seed=1, save="every:1")
    r = corrsde.solve(model_linear, grid={"sigma": sig}, **kw)
    np.testing.assert_allclose(S.sigma(r.t), sig, rtol=1e-12)
    k = corrsde.solve(model_linear, grid="karras", steps=n, **kw)
    np.testing.assert_allclose(r.t, k.t, rtol=1e-12, atol=0)
    np.testing.assert_allclose(r.x, k.x, rtol=1e-12, atol=0)
    ERRORS["karras grid: sigma array vs grid=karras (max |dt|)"] = np.abs(r.t - k.t).max()


def test_grid_array_errors():
    cov = corrsde.Cov(COV, frames=TAU)
    kw = dict(cov=cov, process="pf-ode", solver="heun", batch=1, frame_shape=(2,))
    cases = [([1.0, 0.5, 0.6, 0.01], "strictly monotone, but node 2"),
             ([1.0], "at least 2 nodes"), ([[1.0, 0.5]], "1-d array"),
             ([1.0, np.nan], "finite"), ([1.5, 0.5], r"\[0, 1\]"),
             ({"sigma": [200.0, 1.0]}, r"grid sigma: sigmas must lie in \[0, sigma\(1\)"),
             ({"s": [1.0, 0.5]}, "keys"), ({"t": [1.0, 0.5], "sigma": [2.0, 1.0]}, "keys")]
    for g, msg in cases:
        with pytest.raises(ValueError, match=msg):
            corrsde.solve(model_linear, grid=g, **kw)
    with pytest.raises(TypeError, match="grid"):
        corrsde.solve(model_linear, grid=object(), **kw)
    with pytest.raises(ValueError, match="must be t_start"):  # t_start given, not the first node
        corrsde.solve(model_linear, grid=[0.9, 0.5, 0.01], t_start=1.0, **kw)

