"""Issue 25, items 1-3 in Python: solve(cond=, uncond=, guidance=, guidance_split=,
callback=), ctx.cond / ctx.ncond / ctx.first, TorchModel's conditional call.

The exact checks use Gaussian data whose frame covariance is a multiple of the noise's,
S0 = s2 C: then p_t = N(sqrt(abar) m, k C), k = abar s2 + 1 - abar, the model's
C grad log p_t = -(x - sqrt(abar) m) / k, and the PF-ODE's flow from t0 to t1 is exactly
x1 = sqrt(abar1) m + sqrt(k1 / k0) (x0 - sqrt(abar0) m) (the covariances commute)."""
import math
import os
import subprocess

import numpy as np
import pytest

import corrsde

TAU, SHAPE, B = 4, (3,), 3
S2 = 0.25
SCHED = "vp-linear:bmin=0.1,bmax=20"
CORRSDE = os.environ.get("CORRSDE", os.path.join(os.path.dirname(__file__), "..", "..",
                                                 "build", "corrsde"))


@pytest.fixture(scope="module")
def C():
    return corrsde.Cov("ar1:rho=0.6", frames=TAU)


def gauss(mean_of):
    """The cscore of N(m, S2 C) data, m = mean_of(ctx) (broadcast against x)."""
    def model(t, x, ctx):
        ab = ctx.abar
        return -(x - math.sqrt(ab) * mean_of(ctx)) / (ab * S2 + 1 - ab)
    model.output = "cscore"
    return model


def cond_gauss(key="mean"):
    return gauss(lambda ctx: ctx.cond[key])


def exact_flow(x, m, sched, t0, t1):
    a0, a1 = sched.abar(t0), sched.abar(t1)
    k0, k1 = a0 * S2 + 1 - a0, a1 * S2 + 1 - a1
    return math.sqrt(a1) * m + math.sqrt(k1 / k0) * (x - math.sqrt(a0) * m)


def means(seed, n=B):
    return np.random.default_rng(seed).normal(size=(n, TAU) + SHAPE)


# ---- 1. the conditioning channel ----

def test_conditional_gaussian_is_each_samples_own_gaussian(C):
    """Per-sample mean c_j m1 from ctx.cond: the batch's endpoint is, sample by sample,
    bit for bit the run of the unconditional Gaussian of that mean, and the exact flow
    to dopri5's tolerance."""
    m1 = np.linspace(-1, 1, TAU * 3).reshape((1, TAU) + SHAPE)
    c = np.array([-1.5, 0.5, 2.0]).reshape(B, 1, 1)
    x = C.sample(B, SHAPE, seed=3)
    run = dict(cov=C, schedule=SCHED, process="pf-ode", solver="heun", steps=16)
    r = corrsde.solve(gauss(lambda ctx: ctx.cond["c"] * m1), x, cond={"c": c}, **run)
    for j in range(B):
        rj = corrsde.solve(gauss(lambda ctx: c[j] * m1), x[j:j + 1], **run)
        assert np.array_equal(r.x[j], rj.x[0]), j
    ra = corrsde.solve(gauss(lambda ctx: ctx.cond["c"] * m1), x, cond={"c": c}, cov=C,
                       schedule=SCHED, process="pf-ode", solver="dopri5", rtol=1e-11)
    ex = exact_flow(x, c * m1, corrsde.Schedule(SCHED), 1.0, 1e-3)
    assert np.max(np.abs(ra.x - ex)) < 1e-8


def test_conditional_gaussian_equals_the_builtin_gaussian(C, tmp_path):
    """The same against the program's built-in gaussian:mean=M,std=S,rho=R (S0 = S^2
    ar1(R) = S2 C), one run per sample from the same start: equal to rounding."""
    h5py = pytest.importorskip("h5py")
    if not os.path.exists(CORRSDE):
        pytest.skip("the program is not built (%s)" % CORRSDE)
    c = np.array([-1.0, 0.25, 1.5])
    x = C.sample(B, SHAPE, seed=5)
    r = corrsde.solve(gauss(lambda ctx: ctx.cond["c"].reshape(-1, 1, 1)), x, cond={"c": c},
                      cov=C, schedule=SCHED, process="pf-ode", solver="heun", steps=20)
    for j in range(B):
        init, out = tmp_path / ("x%d.h5" % j), tmp_path / ("o%d.h5" % j)
        with h5py.File(init, "w") as f:
            f["x"] = x[j:j + 1]
        p = subprocess.run([CORRSDE, "sample", "--model", "gaussian:mean=%r,std=0.5,rho=0.6"
                            % float(c[j]), "--cov", "ar1:rho=0.6", "--schedule", SCHED,
                            "--process", "pf-ode", "--solver", "heun", "--steps", "20",
                            "--init", str(init), "-q", "-o", str(out)],
                           capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
        with h5py.File(out, "r") as f:
            xj = f["trajectory/x"][-1][0]
        assert np.max(np.abs(r.x[j] - xj)) < 1e-12, j


def test_broadcast_and_slices(C):
    """A leaf of one row is every sample's (the same bits as the row repeated); ctx.cond's
    leaves have the call's batch on axis 0 and are views of the caller's arrays; nested
    lists/tuples keep their types; ctx.ncond == batch and ctx.first == 0 unguided."""
    m = means(1, 1)
    x = C.sample(B, SHAPE, seed=2)
    seen = []

    def model(t, x, ctx):
        s = ctx.cond
        seen.append((type(s[1]).__name__, s[0]["m"].shape, np.shares_memory(s[0]["m"], m),
                     ctx.ncond, ctx.first, ctx.batch))
        return gauss(lambda _: s[0]["m"])(t, x, ctx)
    run = dict(cov=C, schedule=SCHED, process="pf-ode", solver="heun", steps=8)
    r1 = corrsde.solve(model, x, cond=[{"m": m}, (np.zeros((B, 2)),)], **run)
    r2 = corrsde.solve(model, x, cond=[{"m": np.repeat(m, B, 0)}, (np.zeros((B, 2)),)], **run)
    assert np.array_equal(r1.x, r2.x)
    assert seen[0] == ("tuple", (B, TAU) + SHAPE, True, B, 0, B)


# ---- 2. guidance ----

GUIDED_SOLVERS = [("pf-ode", "heun", 12), ("pf-ode", "dpmpp2m", 12), ("pf-ode", "unipc", 12),
                  ("pf-ode", "rk45", 0), ("reverse-sde", "euler-ancestral", 20),
                  ("reverse-sde", "em", 20), ("ddim", None, 12)]


@pytest.mark.parametrize("process,solver,steps", GUIDED_SOLVERS)
@pytest.mark.parametrize("w", [3.0, "frames"])
def test_guided_two_gaussians_is_the_gaussian_of_the_guided_mean(C, process, solver, steps, w):
    """Same covariance, means m_c and m_u, ONE model reading ctx.cond: the guided model
    is exactly the Gaussian of mean m_u + w (m_c - m_u) (per frame: w_f), so the guided
    run equals that Gaussian's run with the same solver, steps and noise to rounding."""
    mc, mu = means(7), means(8)[:1]
    wf = np.array([0.5, 1.0, 2.0, 4.0]) if w == "frames" else np.full(TAU, w)
    mg = mu + wf.reshape(1, TAU, 1) * (mc - mu)
    x = C.sample(B, SHAPE, seed=4)
    run = dict(cov=C, schedule=SCHED if process != "ddim" else "vp-linear", process=process,
               solver=solver, steps=steps, seed=9)
    if solver == "rk45":
        run.update(steps=None, rtol=1e-8)
    rg = corrsde.solve(cond_gauss(), x, cond={"mean": mc}, uncond={"mean": mu},
                       guidance=tuple(wf) if w == "frames" else w, **run)
    r = corrsde.solve(gauss(lambda ctx: mg), x, **run)
    assert np.max(np.abs(rg.x - r.x)) < 1e-11 * max(1.0, np.max(np.abs(r.x)))
    if solver != "rk45":
        assert rg.nfe == 2 * r.nfe


def test_guided_orders_against_the_exact_flow(C):
    """heun on the guided PF-ODE against the exact flow of N(m_g, S2 C): second order."""
    mc, mu, w = means(11), means(12), 2.5
    mg = mu + w * (mc - mu)
    x = C.sample(B, SHAPE, seed=6)
    sched = corrsde.Schedule(SCHED)
    ex = exact_flow(x, mg, sched, 1.0, 1e-3)
    errs = []
    for n in (16, 32, 64):
        r = corrsde.solve(cond_gauss(), x, cond={"mean": mc}, uncond={"mean": mu}, guidance=w,
                          cov=C, schedule=sched, process="pf-ode", solver="heun", steps=n,
                          grid="quadratic")
        errs.append(np.max(np.abs(r.x - ex)))
    orders = np.log2(np.array(errs[:-1]) / np.array(errs[1:]))
    assert np.all(orders > 1.8), (errs, orders)


def test_guided_call_layout_and_split(C):
    """The guided call of 2B: x's two halves equal, ctx.cond's rows cond's then uncond's,
    ncond = B; split: a call of B with cond (ncond B) then one with uncond (ncond 0);
    both give the same states bit for bit; w(t) as a callable too."""
    mc, mu = means(3), means(4)
    calls = []

    def model(t, x, ctx):
        m = ctx.cond["mean"]
        calls.append((ctx.batch, ctx.ncond, ctx.first, x.shape[0]))
        if ctx.batch == 2 * B:
            assert np.array_equal(x[:B], x[B:])
            assert np.array_equal(m[:B], mc) and np.array_equal(m[B:], mu)
        elif ctx.ncond == B:
            assert np.array_equal(m, mc)
        else:
            assert ctx.ncond == 0 and np.array_equal(m, mu)
        return gauss(lambda _: m)(t, x, ctx)
    x = C.sample(B, SHAPE, seed=8)
    run = dict(cov=C, schedule=SCHED, process="reverse-sde", solver="em", steps=6, seed=3,
               cond={"mean": mc}, uncond={"mean": mu})
    r2b = corrsde.solve(model, x, guidance=lambda t: 1 + t, **run)
    assert set(calls) == {(2 * B, B, 0, 2 * B)}
    calls.clear()
    rs = corrsde.solve(model, x, guidance=lambda t: 1 + t, guidance_split=True, **run)
    assert set(calls) == {(B, B, 0, B), (B, 0, 0, B)} and len(calls) == 12
    assert np.array_equal(r2b.x, rs.x)
    assert r2b.nfe == rs.nfe == 12


# ---- 3. the callback ----

def test_callback_x0_is_tweedie_and_stops(C):
    """callback(step, t, x, x0): x0 is Tweedie's E[x0 | x_e] = (x_e + (1 - abar) C grad
    log p(x_e)) / sqrt(abar) at the step's last evaluation (euler: the step's start), here
    exact: sqrt(abar) m + ... for the Gaussian; a truthy return stops the run."""
    mc = means(5)
    model = cond_gauss()
    x = C.sample(B, SHAPE, seed=1)
    sched = corrsde.Schedule(SCHED)
    got = []

    def cb(step, t, xs, x0):
        assert not xs.flags.writeable
        got.append((step, t, xs.copy(), None if x0 is None else x0.copy()))
    r = corrsde.solve(model, x, cov=C, schedule=sched, process="pf-ode", solver="euler",
                      steps=10, cond={"mean": mc}, callback=cb, save="every:1")
    assert [g[0] for g in got] == list(range(1, 11))
    assert np.array_equal(got[-1][2], r.x)
    prev_x, prev_t = x, 1.0
    for step, t, xs, x0 in got:
        ab = sched.abar(prev_t)
        k = ab * S2 + 1 - ab
        tw = (prev_x - (1 - ab) * (prev_x - math.sqrt(ab) * mc) / k) / math.sqrt(ab)
        assert np.max(np.abs(x0 - tw)) < 1e-12 * max(1, np.max(np.abs(tw))), step
        prev_x, prev_t = xs, t
    got.clear()
    r = corrsde.solve(model, x, cov=C, schedule=sched, process="pf-ode", solver="euler",
                      steps=10, cond={"mean": mc}, callback=lambda s, t, xs, x0: s == 3)
    assert r.stopped and r.steps == 3 and r.nfe == 3


def test_callback_exception_propagates(C):
    def cb(step, t, xs, x0):
        if step == 2:
            raise KeyError("from the callback")
    with pytest.raises(KeyError, match="from the callback") as e:
        corrsde.solve(lambda t, x, ctx: -x, C.sample(1, SHAPE), cov=C, process="pf-ode",
                      solver="euler", steps=5, callback=cb)
    assert any("the callback" in n for n in getattr(e.value, "__notes__", []))


# ---- bad input ----

def solve_with(C, **kw):
    x = C.sample(B, SHAPE, seed=0)
    return corrsde.solve(cond_gauss(), x, cov=C, process="pf-ode", solver="euler", steps=3,
                         **kw)


@pytest.mark.parametrize("kw,err,match", [
    (dict(cond={"mean": np.zeros((2, TAU, 3))}), ValueError, r"cond\['mean'\]: axis 0 has 2"),
    (dict(cond={"a": [np.zeros((B, 1)), np.zeros((5, 1))]}), ValueError,
     r"cond\['a'\]\[1\]: axis 0 has 5 entries, expected 3"),
    (dict(cond={"mean": 1.0}), ValueError, r"cond\['mean'\]: expected a numpy array"),
    (dict(cond={"mean": np.array(1.0)}), ValueError, r"cond\['mean'\]: a 0-d array"),
    (dict(cond={}), ValueError, "cond: an empty structure"),
    (dict(cond={"mean": np.zeros((B, TAU, 3))}, guidance=2.0), ValueError,
     "guidance: needs uncond"),
    (dict(cond={"mean": np.zeros((B, TAU, 3))}, uncond={"mean": np.zeros((1, TAU, 3))}),
     ValueError, "uncond: needs guidance"),
    (dict(uncond={"mean": np.zeros((1, TAU, 3))}, guidance=2.0), ValueError,
     "uncond: needs cond"),
    (dict(cond={"mean": np.zeros((B, TAU, 3))}, uncond={"m": np.zeros((1, TAU, 3))},
          guidance=2.0), ValueError, "uncond: its structure differs"),
    (dict(cond={"mean": np.zeros((B, TAU, 3))}, uncond={"mean": np.zeros((1, TAU, 2))},
          guidance=2.0), ValueError, r"uncond\['mean'\]: a array float64 of shape"),
    (dict(cond={"mean": np.zeros((B, TAU, 3))}, uncond={"mean": np.zeros((B, TAU, 3))},
          guidance=float("nan")), ValueError, "guidance: the scale of frame 0 is nan"),
    (dict(cond={"mean": np.zeros((B, TAU, 3))}, uncond={"mean": np.zeros((B, TAU, 3))},
          guidance=[1, 2, float("inf"), 3]), ValueError, "frame 2 is inf"),
    (dict(cond={"mean": np.zeros((B, TAU, 3))}, uncond={"mean": np.zeros((B, TAU, 3))},
          guidance=1e4), ValueError, r"\|w\| <= 1000"),
    (dict(cond={"mean": np.zeros((B, TAU, 3))}, uncond={"mean": np.zeros((B, TAU, 3))},
          guidance=[1, 2, 3]), ValueError, "expected one number or 4"),
    (dict(cond={"mean": np.zeros((B, TAU, 3))}, uncond={"mean": np.zeros((B, TAU, 3))},
          guidance=True), TypeError, "guidance: expected a number"),
    (dict(cond={"mean": np.zeros((B, TAU, 3))}, uncond={"mean": np.zeros((B, TAU, 3))},
          guidance="linear:1"), ValueError, "guidance"),
    (dict(cond={"mean": np.zeros((B, TAU, 3))}, uncond={"mean": np.zeros((B, TAU, 3))},
          guidance=2, guidance_split=1), TypeError, "guidance_split"),
    (dict(cond={"mean": np.zeros((B, TAU, 3))}, callback=3), TypeError, "callback"),
])
def test_bad_input(C, kw, err, match):
    with pytest.raises(err, match=match):
        solve_with(C, **kw)


@pytest.mark.parametrize("w,match", [
    (lambda t: "x", r"guidance\(1.0\): expected a number"),
    (lambda t: [1, 2], r"guidance\(1.0\): expected one number or 4"),
    (lambda t: float("nan") if t < 0.5 else 1.0, r"guidance\(0\.33.*\): the scale of frame 0 is nan"),
    (lambda t: 1 / 0, "division by zero"),
])
def test_bad_guidance_callable(C, w, match):
    """A callable w(t) that returns garbage (or raises) stops the run with its error."""
    with pytest.raises((ValueError, TypeError, ZeroDivisionError), match=match) as e:
        solve_with(C, cond={"mean": np.zeros((B, TAU, 3))}, uncond={"mean": np.zeros((1, TAU, 3))},
                   guidance=w)
    assert any("guidance(t)" in n for n in getattr(e.value, "__notes__", []))


def test_converge_takes_no_conditioning(C):
    """converge() has no cond=: its paths are draws of one law (a conditional model is
    studied at one conditioning by closing over it); its model sees ctx.cond None."""
    seen = []

    def model(t, x, ctx):
        seen.append((ctx.cond, ctx.ncond == ctx.batch))
        return -x
    with pytest.raises(TypeError, match="cond"):
        corrsde.converge(model, cov=C, cond={"m": np.zeros((1, 1))})
    corrsde.converge(model, cov=C, levels=(1, 2), paths=2, solvers="euler", frame_shape=(2,))
    assert set(seen) == {(None, True)}


# ---- torch ----

def test_torch_cond_stays_torch_and_torchmodel_passes_it(C):
    torch = pytest.importorskip("torch")
    import corrsde.torch as ct
    mc = torch.tensor(means(2))
    mu = torch.zeros((1, TAU) + SHAPE, dtype=torch.float64)
    kinds = []

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.p = torch.nn.Parameter(torch.zeros((), dtype=torch.float64))

        def forward(self, x, time, mean=None, label=None):
            kinds.append((type(mean).__name__, mean.dtype, tuple(mean.shape), label.dtype))
            ab = float(time[0])  # time="t": the test feeds abar's t; recomputed below
            return x * 0 + mean + self.p + ab * 0

    seen = []

    def model(t, x, ctx):
        seen.append(type(ctx.cond["mean"]).__name__)
        return cond_gauss()(t, x, ctx) if isinstance(ctx.cond["mean"], np.ndarray) else \
            gauss(lambda c: c.cond["mean"].numpy())(t, x, ctx)
    x = C.sample(B, SHAPE, seed=0)
    corrsde.solve(model, x, cov=C, process="pf-ode", solver="euler", steps=2,
                  cond={"mean": mc}, uncond={"mean": mu}, guidance=2.0)
    assert set(seen) == {"Tensor"}
    net = Net()
    tm = ct.TorchModel(net, output="x0", max_batch=2)
    lab = np.arange(B)
    corrsde.solve(tm, x, cov=C, process="pf-ode", solver="euler", steps=2,
                  cond={"mean": mc, "label": lab})
    assert kinds[0] == ("Tensor", torch.float64, (2, TAU) + SHAPE, torch.int64)
    assert kinds[1][2] == (1, TAU) + SHAPE  # the slice of max_batch
    got = []

    class Pos(torch.nn.Module):
        def forward(self, x, time, *rest):
            got.append(len(rest))
            return x * 0
    corrsde.solve(ct.TorchModel(Pos(), output="x0", dtype=torch.float64), x, cov=C,
                  process="pf-ode", solver="euler", steps=1, cond=(mc,))
    corrsde.solve(ct.TorchModel(Pos(), output="x0", dtype=torch.float64), x, cov=C,
                  process="pf-ode", solver="euler", steps=1)
    assert got == [1, 0]


def test_readme_conditional_examples_run():
    """The README's "Conditional models and guidance" examples, as written: the guided
    x0 model of labels +-1 at w = 3 ends at m_u + w (m_c - m_u) = +-3 with two forward passes
    a step (20 steps, nfe 40); the scheduler loop ends with the sample's shape and dtype."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    text = open(os.path.join(root, "README.md")).read()
    sec = text.split("## Conditional models and guidance", 1)[1].split("\n## ", 1)[0]
    blocks = [b.split("```", 1)[0] for b in sec.split("```python\n")[1:]]
    assert len(blocks) == 2
    out = subprocess.run(["/usr/bin/python3", "-c", blocks[0]], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert out[-1] == "[ 3. -3.] 40"
    assert out[0].startswith("10 0.5 [")  # the callback's x0 preview at step 10, t = 0.5
    out = subprocess.run(["/usr/bin/python3", "-c", blocks[1] + "\nprint(x.shape, x.dtype)"],
                         capture_output=True, text=True, check=True).stdout
    assert out == "torch.Size([2, 8, 16, 16]) torch.float32\n"
