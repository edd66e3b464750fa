"""Issue 24, item 8: guard rails.

- corrsde.solve: batch= and frame_shape= that contradict x= are errors naming both (they
  were ignored).
- The model's first answer is checked against its declared kind (the library's run
  layer, csde_run_warning; the numbers in src/process/process.c, answer_check): an answer
  that does not look like its kind gives a RuntimeWarning (solve) or a line on stderr and
  /stats `warnings` (`corrsde sample`) naming the kind it looks like; the exact answers
  of every kind give none. The issue's case: a noise model declared a score ran to 2.4e16
  without a word.
"""
import os
import subprocess
import warnings

import numpy as np
import pytest

import corrsde

CORRSDE = os.environ.get("CORRSDE", os.path.join(os.path.dirname(__file__), "..", "..",
                                                 "build", "corrsde"))

TAU = 8
C = corrsde.Cov("ar1:rho=0.9", frames=TAU)
CM = C.matrix
# data N(0, S0 (x) I) with S0 != C, so that every kind's exact answer is not zero
S0 = 0.25 * np.array([[0.95 ** abs(i - j) for j in range(TAU)] for i in range(TAU)])


def exact(kind):
    """The exact answer of kind `kind` for N(0, S0) data under N(0, C) frame noise:
    Sigma_t = abar S0 + (1 - abar) C, C grad log p = -C Sigma_t^-1 x,
    delta = sigma C Sigma_t^-1 x, x0 = alpha S0 Sigma_t^-1 x, v = alpha delta - sigma x0,
    flow u = -1/2 beta (x + C grad log p)."""
    def model(t, x, ctx):
        ab = ctx.abar
        al, sg = np.sqrt(ab), np.sqrt(1 - ab)
        y = np.einsum("ij,bj...->bi...", np.linalg.inv(ab * S0 + (1 - ab) * CM), x)
        cy = np.einsum("ij,bj...->bi...", CM, y)
        x0 = al * np.einsum("ij,bj...->bi...", S0, y)
        if kind == "flow":  # the PF-ODE velocity u = f x - g^2/2 C grad log p (VP: f = -beta/2)
            b = ctx.schedule.beta(t)
            return -0.5 * b * x + 0.5 * b * cy
        return {"score": -y, "cscore": -cy, "noise": sg * cy, "x0": x0,
                "v": al * sg * cy - sg * x0}[kind]
    model.output = kind
    return model


def exact_path(kind):
    """exact() on any gaussian path, from the context's alpha and sigma_path:
    Sigma_t = alpha^2 S0 + sigma^2 C, delta = sigma C Sigma_t^-1 x, x0 = alpha S0 Sigma_t^-1 x,
    v = alpha delta - sigma x0, flow u = f x - g^2/2 C grad log p."""
    def model(t, x, ctx):
        al, sg = ctx.alpha, ctx.sigma_path
        y = np.einsum("ij,bj...->bi...", np.linalg.inv(al * al * S0 + sg * sg * CM), x)
        cy = np.einsum("ij,bj...->bi...", CM, y)
        x0 = al * np.einsum("ij,bj...->bi...", S0, y)
        if kind == "flow":
            return ctx.schedule.f(t) * x + 0.5 * ctx.schedule.g2(t) * cy
        return {"score": -y, "cscore": -cy, "noise": sg * cy, "x0": x0,
                "v": al * sg * cy - sg * x0}[kind]
    model.output = kind
    return model


def run(model, output=None, raise_errors=False, **kw):
    """solve() with every RuntimeWarning recorded: (result or exception, messages)."""
    args = dict(cov=C, steps=40, batch=4, frame_shape=(4, 4), seed=1)
    args.update(kw)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        try:
            res = corrsde.solve(model, output=output, **args)
        except corrsde.Error as e:  # a blow-up the run refuses
            if raise_errors:
                raise
            res = e
    return res, [str(m.message) for m in w if issubclass(m.category, RuntimeWarning)]


# (flow-shifted is rf's alone, refused on these VP schedules: tests/python/test_flow_shifted.py)
@pytest.mark.parametrize("kind", [k for k in corrsde.OUTPUTS if k != "flow-shifted"])
@pytest.mark.parametrize("process,solver,schedule", [
    ("reverse-sde", "em", "vp-linear"), ("pf-ode", "heun", "cosine"),
    ("ddim", None, "ddpm-linear"), ("ddpm", None, "ddpm-linear")])
def test_exact_answers_do_not_warn(kind, process, solver, schedule):
    """The exact answer of every kind, declared as that kind, on every sampler: no
    warning (and the sample stays on the data's scale: the answer is right)."""
    for seed in range(3):
        res, msgs = run(exact(kind), process=process, solver=solver, schedule=schedule,
                        seed=seed)
        assert msgs == [], (kind, process, msgs)
        assert np.std(res.x) < 1.0, (kind, process, np.std(res.x))


@pytest.mark.parametrize("kind", [k for k in corrsde.OUTPUTS if k != "flow-shifted"])
@pytest.mark.parametrize("schedule", ["edm", "ve", "rf:shift=3"])
def test_exact_answers_do_not_warn_on_a_path(kind, schedule):
    """The same on the gaussian paths (the PF-ODE with heun from the path's T), and every
    kind's exact answer reaches the cscore's endpoint to rounding."""
    res, msgs = run(exact_path(kind), process="pf-ode", solver="heun", schedule=schedule)
    assert msgs == [], (kind, schedule, msgs)
    ref, _ = run(exact_path("cscore"), process="pf-ode", solver="heun", schedule=schedule)
    err = np.max(np.abs(res.x - ref.x)) / np.max(np.abs(ref.x))
    assert err < 1e-9, (kind, schedule, err)


@pytest.mark.parametrize("declared", ["score", "cscore", "noise", "x0"])
def test_a_flow_declared_otherwise_warns(declared):
    """On ve (alpha = 1: the flow u = sigma' delta differs from the noise by the factor
    sigma' = sigma log(smax/smin)) a flow answer is named; on rf near t = 1 it is as mute as
    x0 and v are (its coefficient alpha is about 0), and the message says so."""
    res, msgs = run(exact_path("flow"), output=declared, process="pf-ode", solver="heun",
                    schedule="ve")
    assert len(msgs) == 1 and "it looks like flow" in msgs[0], msgs
    res, msgs = run(exact_path("flow"), output="score", process="pf-ode", solver="heun",
                    schedule="rf:shift=3")
    assert len(msgs) == 1 and "it looks like x0 or v (or flow" in msgs[0], msgs


# (the answer, the declared kind, what the warning says it looks like); the pairs a first
# answer near t = 1 can tell apart: a declared x0 or v hardly moves the drift there
MISMATCHES = [
    ("noise", "score", "it looks like noise"),          # the issue's case
    ("noise", "cscore", "it looks like noise"),
    ("cscore", "noise", "it looks like a score"),
    ("score", "noise", "it looks like a score"),
    ("cscore", "score", "it looks like cscore"),
    ("score", "cscore", "it looks like score"),
    ("x0", "noise", "it looks like x0 or v"),
    ("x0", "score", "it looks like x0 or v"),
    ("v", "noise", "it looks like x0 or v"),
    ("v", "cscore", "it looks like x0 or v"),
]


@pytest.mark.parametrize("true,declared,like", MISMATCHES)
def test_a_wrong_declaration_warns_with_the_likely_kind(true, declared, like):
    """An answer declared as another kind: one RuntimeWarning at the first call, naming
    the declared kind and the one it looks like."""
    res, msgs = run(exact(true), output=declared)
    assert len(msgs) == 1, msgs
    assert "declares its answer %s, but the first one (t = 1, step 0)" % declared in msgs[0]
    assert like in msgs[0], msgs[0]


def test_the_issues_case_warns_before_it_blows_up():
    """A noise model declared output='score' (the issue: it ran to 2.4e16 without a word):
    the run still goes (a warning is not an error), and the warning came first."""
    res, msgs = run(exact("noise"), output="score", steps=50)
    assert isinstance(res, corrsde.Error) or np.max(np.abs(res.x)) > 1e3
    assert len(msgs) == 1 and "it looks like noise" in msgs[0]


def test_scale_errors_warn():
    """A noise answer 30 times too large: no kind fits."""
    noise = exact("noise")
    res, msgs = run(lambda t, x, c: 30 * noise(t, x, c), output="noise")
    assert len(msgs) == 1 and "no kind fits it" in msgs[0], msgs


def test_the_warning_as_an_error_stops_solve():
    """With warnings made errors, solve() raises the RuntimeWarning (the run stops)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        with pytest.raises(RuntimeWarning, match="it looks like noise"):
            corrsde.solve(exact("noise"), output="score", cov=C, steps=40, batch=4,
                          frame_shape=(4, 4))


def test_too_few_values_are_not_judged():
    """One sample of 2 pixels (B D tr C / lambda_max(C) < 16): a first answer is too
    noisy to judge, so nothing is said even for a wrong kind."""
    res, msgs = run(exact("noise"), output="score", batch=1, frame_shape=(2,))
    assert msgs == []


MODEL = '''
import numpy as np
def make(ctx, args):
    def model(t, x, c):
        return np.sqrt(1 - c.abar) * x     # the noise answer of N(0, C) data
    model.output = args
    return model
'''


@pytest.mark.parametrize("quiet", [False, True])
def test_cli_warns_on_stderr_and_in_stats(tmp_path, quiet):
    """`corrsde sample` with a noise model declared a score: the warning on stderr (not
    with -q) and in /stats warnings; declared noise: neither."""
    import h5py
    src = tmp_path / "m.py"
    src.write_text(MODEL)
    for declared in ("score", "noise"):
        out = tmp_path / ("%s.h5" % declared)
        p = subprocess.run([CORRSDE, "sample", "--model", "python:%s:make:%s" % (src, declared),
                            "--frames", "8", "--frame-shape", "4x4", "--batch", "4", "--steps",
                            "40", "-o", str(out)] + (["-q"] if quiet else []),
                           capture_output=True, text=True)
        with h5py.File(out, "r") as f:
            rec = f["stats"].attrs["warnings"]
        rec = rec.decode() if isinstance(rec, bytes) else rec
        if declared == "score":
            assert "declares its answer score" in rec and "it looks like noise" in rec, rec
            line = "corrsde sample: warning: " + rec
            assert (line not in p.stderr) if quiet else (line in p.stderr), p.stderr
        else:
            assert p.returncode == 0, p.stderr
            assert rec == "" and "warning" not in p.stderr, p.stderr


# ---- batch= and frame_shape= against x= ----

def test_batch_and_frame_shape_contradicting_x_are_errors():
    x = C.sample(2, (3, 3), seed=1)
    f = exact("cscore")
    with pytest.raises(ValueError, match=r"batch: 3 contradicts x, whose 2 samples "
                                         r"\(x: shape \(2, 8, 3, 3\)\)"):
        corrsde.solve(f, x=x, cov=C, steps=4, batch=3)
    with pytest.raises(ValueError, match=r"frame_shape: \(9,\) contradicts x's frame shape "
                                         r"\(3, 3\)"):
        corrsde.solve(f, x=x, cov=C, steps=4, frame_shape=(9,))
    with pytest.raises(ValueError, match=r"frame_shape: 3 contradicts x's frame shape"):
        corrsde.solve(f, x=x, cov=C, steps=4, frame_shape=3)
    # the same sizes said twice are fine, and give the same bits as x alone
    a = corrsde.solve(f, x=x, cov=C, steps=4, batch=2, frame_shape=[3, 3]).x
    b = corrsde.solve(f, x=x, cov=C, steps=4).x
    assert a.tobytes() == b.tobytes()


@pytest.mark.parametrize("schedule", ["vp-linear", "rf:shift=3"])
@pytest.mark.parametrize("kind", ["cscore", "noise", "x0", "v", "flow"])
def test_an_answer_at_sigma_zero(schedule, kind):
    """heun to t_end = 0 evaluates the model where sigma = 0: a noise, x0 or v answer has no
    score there (its conversion divides by sigma) and the run stops naming it (it returned
    NaN states without a word); a score or a flow runs to a finite end."""
    if kind in ("noise", "x0", "v"):
        with pytest.raises(ValueError, match="answers %s, which gives C grad log p only "
                           "where sigma\\(t\\) > 0: the solver evaluates it at t = 0" % kind):
            run(exact_path(kind), process="pf-ode", solver="heun", schedule=schedule,
                t_end=0.0, raise_errors=True)
    else:
        res, msgs = run(exact_path(kind), process="pf-ode", solver="heun", schedule=schedule,
                        t_end=0.0)
        assert np.all(np.isfinite(res.x)) and np.std(res.x) < 1.0
