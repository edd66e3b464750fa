"""Issue 24, item 2: `corrsde sample|converge --model python:FILE.py:NAME` gives the model
x as [B, tau, *frame_shape] and the factory and every call the same corrsde.Context as
corrsde.solve (tau, frame_shape, batch, cov, schedule, output, process, t, step, abar,
sigma, logsnr, index). Before: x was [B, tau, D], and the factory's ctx a SimpleNamespace
with frame_shape (D,), batch None, cov and schedule None."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import corrsde

CORRSDE = os.environ.get("CORRSDE", os.path.join(os.path.dirname(__file__), "..", "..",
                                                 "build", "corrsde"))

# The factory and the first call record what they saw (into the JSON file ARGS names); the
# model asserts x's shape at every call (a Conv3d net would fail on [B, tau, D]).
MODEL = r'''
import json
import numpy as np
import corrsde

def fields(ctx):
    return {"type": type(ctx).__name__, "is_context": isinstance(ctx, corrsde.Context),
            "tau": ctx.tau, "frame_shape": list(ctx.frame_shape), "D": ctx.D,
            "batch": ctx.batch, "process": ctx.process, "output": ctx.output,
            "cov": None if ctx.cov is None else [ctx.cov.spec, ctx.cov.frames],
            "schedule": None if ctx.schedule is None else ctx.schedule.spec}

def make(ctx, args):
    path, want = args.split(";")
    want = json.loads(want)
    rec = {"factory": fields(ctx), "calls": []}
    assert tuple(ctx.frame_shape) == tuple(want["shape"]), ctx.frame_shape
    assert isinstance(ctx.frame_shape, tuple)

    def model(t, x, c):
        assert x.shape == (c.batch, c.tau) + tuple(want["shape"]), (x.shape, want)
        if not rec["calls"]:
            f = fields(c)
            f.update(t=t, ct=c.t, step=c.step, abar=c.abar, sigma=c.sigma, logsnr=c.logsnr,
                     index=c.index, xshape=list(x.shape))
            rec["calls"].append(f)
            with open(path, "w") as fh:
                json.dump(rec, fh)
        return np.sqrt(1 - c.abar) * x           # the noise answer of N(0, C) data
    model.output = "noise"
    return model
'''


def run_cli(tmp_path, shape, batch, extra=(), cmd="sample"):
    src = tmp_path / "m.py"
    src.write_text(MODEL)
    rec = tmp_path / "rec.json"
    want = json.dumps({"shape": list(shape)})
    arg = "python:%s:make:%s;%s" % (src, rec, want)
    common = ["--model", arg, "--frames", "4", "--frame-shape", "x".join(map(str, shape)),
              "--cov", "ar1:rho=0.5", "--schedule", "vp-linear:bmax=10"]
    if cmd == "sample":
        argv = [CORRSDE, "sample"] + common + ["--batch", str(batch), "--steps", "20", "-q",
                                               "-o", str(tmp_path / "s.h5")] + list(extra)
    else:
        argv = [CORRSDE, "converge"] + common + ["--paths", str(batch), "--levels", "1:2",
                                                 "--solvers", "euler", "-q", "-o",
                                                 str(tmp_path / "c.h5")] + list(extra)
    p = subprocess.run(argv, capture_output=True, text=True,
                       env=dict(os.environ, OPENBLAS_NUM_THREADS="1"))
    assert p.returncode == 0, p.stderr
    return json.loads(rec.read_text())


@pytest.mark.parametrize("shape,batch", [((16, 16), 3), ((3, 8, 8), 2), ((5,), 2)])
def test_cli_python_model_sees_the_frame_shape(tmp_path, shape, batch):
    """--frame-shape 16x16 --batch 3: x is [3, 4, 16, 16] at every call; the factory's ctx
    is a corrsde.Context with frame_shape (16, 16), batch 3, the run's cov, schedule and
    process, output None (the model has not said yet), and the calls' ctx.output the
    model's declared kind."""
    rec = run_cli(tmp_path, shape, batch)
    D = int(np.prod(shape))
    assert rec["factory"] == {
        "type": "Context", "is_context": True, "tau": 4, "frame_shape": list(shape), "D": D,
        "batch": batch, "process": "reverse-sde", "output": None,
        "cov": ["ar1:rho=0.5", 4], "schedule": corrsde.Schedule("vp-linear:bmax=10").spec}
    call = rec["calls"][0]
    assert call["xshape"] == [batch, 4] + list(shape)
    assert call["output"] == "noise" and call["batch"] == batch and call["step"] == 0


def test_cli_context_is_solves_context(tmp_path):
    """The first call's context through the program equals corrsde.solve's with the same
    settings, field for field (the same Context class, the same numbers)."""
    shape, batch = (2, 3), 2
    cli = run_cli(tmp_path, shape, batch, extra=["--process", "ddim", "--steps", "10"])
    # the same model through corrsde.solve
    ns = {}
    exec(MODEL, ns)
    rec = tmp_path / "py.json"
    m = ns["make"](corrsde.Context(4, shape, batch, None, None, None, None),
                   "%s;%s" % (rec, json.dumps({"shape": list(shape)})))
    corrsde.solve(m, cov=corrsde.Cov("ar1:rho=0.5", 4), schedule="vp-linear:bmax=10", process="ddim",
                  steps=10, batch=batch, frame_shape=shape, seed=0)
    py = json.loads(rec.read_text())["calls"][0]
    assert cli["calls"][0]["process"] == "ddim"
    assert cli["calls"][0] == py


def test_cli_converge_python_model_sees_the_frame_shape(tmp_path):
    """corrsde converge --frame-shape 4x2 --paths 5: x is [b, 4, 4, 2] (b <= 5 paths, =
    ctx.batch), the factory's ctx has batch 5 (the paths of a solve at most) and process
    pf-ode (converge's default)."""
    rec = run_cli(tmp_path, (4, 2), 5, cmd="converge")
    assert rec["factory"]["frame_shape"] == [4, 2] and rec["factory"]["batch"] == 5
    assert rec["factory"]["process"] == "pf-ode"
    b = rec["calls"][0]["batch"]
    assert 1 <= b <= 5 and rec["calls"][0]["xshape"] == [b, 4, 4, 2]
