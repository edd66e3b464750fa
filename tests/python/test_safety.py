"""Issue 23: what a model may do with x after its call, arguments C must not misread, and
the context of `--model python:` models.

Run: PYTHONPATH=build/python /usr/bin/python3 -m pytest tests/python/test_safety.py.
The checks that would crash the interpreter on a regression run in a child process.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import corrsde

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CORRSDE = os.environ.get("CORRSDE", os.path.join(ROOT, "build", "corrsde"))


def child(code, *args):
    """Run code in a fresh interpreter; its stdout, after checking it exited 0 (a
    SIGSEGV shows as returncode -11)."""
    p = subprocess.run([sys.executable, "-c", code] + [str(a) for a in args],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, "exit %d\n%s%s" % (p.returncode, p.stdout, p.stderr)
    return p.stdout


# ---- item 7: x kept past its call ----

# A model that keeps x and views made from it, with a copy of what it saw; check()
# reads them all after the run, once other memory has been allocated over the solver's.
KEEPER = r'''
import numpy as np

class Keeper:
    output = "cscore"

    def __init__(self):
        self.kept, self.seen, self.flags = [], [], []

    def __call__(self, t, x, ctx):
        self.seen.append(x.copy())
        self.kept.append({"x": x, "x[0]": x[0], "x.reshape(-1)": x.reshape(-1),
                          "np.asarray(x)": np.asarray(x), "x[:, -1, ::3]": x[:, -1, ::3],
                          "x.T": (x.T,), "memoryview": memoryview(x)})
        self.flags.append(self.refusals(x))
        return -x

    @staticmethod
    def refusals(x):
        """How x and a view of it refuse writes: the exception type names, in order."""
        out = []
        for a in (x, x[0]):
            for f in (lambda: a.setflags(write=True), lambda: a.__setitem__(Ellipsis, 0.0)):
                try:
                    f()
                    out.append("accepted")
                except Exception as e:
                    out.append(type(e).__name__)
        return out

    def check(self):
        """'ok', or the first difference between a kept view and what the model saw."""
        junk = [np.full(50000, 7.0) for _ in range(400)]  # reuse of the freed memory
        for i, (k, s) in enumerate(zip(self.kept, self.seen)):
            want = {"x": s, "x[0]": s[0], "x.reshape(-1)": s.reshape(-1),
                    "np.asarray(x)": s, "x[:, -1, ::3]": s[:, -1, ::3], "x.T": s.T,
                    "memoryview": s}
            for name, w in want.items():
                got = k[name][0] if name == "x.T" else k[name]
                if not np.array_equal(np.asarray(got), w):
                    return "call %d: %s differs from what the model saw" % (i, name)
            if k["np.asarray(x)"] is not k["x"]:
                return "np.asarray(x) is not x"
        for i, f in enumerate(self.flags + [self.refusals(self.kept[-1]["x"])]):
            if f != ["ValueError"] * 4:
                return "refusals %d: %s" % (i, f)
        del junk
        return "ok %d" % len(self.kept)
'''


def test_kept_views_keep_what_the_model_saw_solve():
    """solve() at batch 256, 64x64: the model keeps x, x[0], x.reshape(-1), np.asarray(x),
    a strided slice, x.T in a tuple and a memoryview; after solve returns they all hold
    what the model saw, and none can be made writeable (before: SIGSEGV)."""
    out = child(KEEPER + r'''
import corrsde
m = Keeper()
r = corrsde.solve(m, cov=corrsde.Cov("ar1:rho=0.9", frames=2), process="pf-ode",
                  solver="heun", steps=2, batch=256, frame_shape=(64, 64), seed=1)
assert r.nfe == 4, r.nfe
print(m.check())
''')
    assert out == "ok 4\n"


def test_kept_views_keep_what_the_model_saw_converge():
    """The same for converge(), where the solver's buffers of one solve are freed before
    the next solve calls the model again."""
    out = child(KEEPER + r'''
import corrsde
m = Keeper()
c = corrsde.converge(m, cov=corrsde.Cov("ar1:rho=0.9", frames=2), frame_shape=(64, 64),
                     levels=(1, 2), paths=4, solvers="euler", boot=100)
n = c.nfe
print(m.check(), n == len(m.kept))
''')
    assert out.startswith("ok ") and out.endswith(" True\n"), out


def test_x_refuses_writes_during_the_call():
    """Inside the call: x.setflags(write=True) and x[...] = 0 raise ValueError, for x and
    for x[0] (before: setflags succeeded, and the model could overwrite the solver's
    state)."""
    seen = []

    def model(t, x, ctx):
        for a in (x, x[0]):
            for f in (lambda: a.setflags(write=True), lambda: a.__setitem__(Ellipsis, 0.0)):
                try:
                    f()
                    seen.append("accepted")
                except ValueError as e:
                    seen.append(str(e))
        return -x
    C = corrsde.Cov("ar1:rho=0.9", frames=3)
    x0 = C.sample(2, 4, seed=5)
    r = corrsde.solve(model, x0, cov=C, process="pf-ode", solver="euler", steps=1)
    assert seen == ["cannot set WRITEABLE flag to True of this array",
                    "assignment destination is read-only"] * 2
    assert not np.array_equal(r.x, 0 * x0)


# the same keeper as a `--model python:` factory: check() runs when the program frees the
# model, after the run has freed its buffers, and writes its verdict to the file ARGS
PLUGIN_KEEPER = KEEPER + r'''
class FileKeeper(Keeper):
    def __init__(self, path):
        super().__init__()
        self.path = path

    def __del__(self):
        with open(self.path, "w") as f:
            f.write(self.check())


def make(ctx, args):
    return FileKeeper(args)
'''


@pytest.mark.parametrize("cmd", [
    ["sample", "--frames", "2", "--frame-shape", "64x64", "--batch", "256", "--steps", "2",
     "--process", "pf-ode", "--solver", "heun"],
    ["converge", "--frames", "2", "--frame-shape", "64x64", "--paths", "4", "--levels", "1:2",
     "--solvers", "euler", "--bootstrap", "100"],
])
def test_kept_views_keep_what_the_model_saw_cli(tmp_path, cmd):
    """`corrsde sample|converge --model python:` (embed.c, the same adapter): the views a
    model keeps hold what it saw when the program frees the model, after the run."""
    src = tmp_path / "keeper.py"
    src.write_text(PLUGIN_KEEPER)
    verdict = tmp_path / "verdict.txt"
    p = subprocess.run([CORRSDE, cmd[0], "--model", "python:%s:make:%s" % (src, verdict)]
                       + cmd[1:] + ["-q", "-o", str(tmp_path / "out.h5")],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert verdict.read_text().startswith("ok ")


# ---- item 8: arguments C would misread ----

C4 = corrsde.Cov("ar1:rho=0.9", frames=4)


def f(t, x, c):
    return -x


def solve(**kw):
    kw = dict(dict(steps=3, batch=1), **kw)
    return corrsde.solve(f, cov=C4, **kw)


def converge(**kw):
    kw = dict(dict(levels=(1, 2), paths=4, solvers="euler", boot=100), **kw)
    return corrsde.converge(f, cov=C4, **kw)


@pytest.mark.parametrize("arg,call", [
    ("out", lambda p: solve(out=str(p / "a\0b.h5"))),
    ("solver", lambda p: solve(solver="euler\0x", process="pf-ode")),
    ("grid", lambda p: solve(grid="uniform\0x")),
    ("noise", lambda p: solve(noise="stream\0x")),
    ("save", lambda p: solve(save="every:1\0x")),
    ("process", lambda p: solve(process="ddim:eta=0.5\0x", schedule="ddpm-linear")),
    ("schedule", lambda p: solve(schedule="vp-linear\0x")),
    ("spec", lambda p: corrsde.Cov("ar1:rho=0.9\0x", frames=4)),
    ("method", lambda p: corrsde.Cov("ar1:rho=0.9", frames=4, method="dense\0x")),
    ("schedule", lambda p: corrsde.Schedule("cosine\0x")),
    ("solvers", lambda p: converge(solvers=["euler\0x"])),
    ("grid", lambda p: converge(grid="uniform\0x")),
    ("out", lambda p: converge(out=str(p / "c\0.h5"))),
    ("csv", lambda p: converge(csv=str(p / "c\0.csv"))),
])
def test_strings_with_a_nul_are_refused(tmp_path, arg, call):
    """A NUL inside a string is refused naming the argument, not cut there (before:
    "euler\\0x" ran euler, out="a\\0b.h5" wrote a.h5)."""
    with pytest.raises(ValueError, match=r"^%s: embedded null character" % arg):
        call(tmp_path)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("arg,call", [
    ("max_nfe", lambda: solve(max_nfe=-1)),
    ("seed", lambda: converge(seed=-1)),
    ("boot", lambda: converge(boot=-1)),
    ("batch", lambda: converge(batch=-1)),
    ("reference_level", lambda: converge(reference="fine", reference_level=-3)),
    ("batch", lambda: C4.sample(-1)),
    ("frame_shape", lambda: C4.sample(1, (4, -2))),
])
def test_negative_counts_are_refused(arg, call):
    """A negative count, size or seed is refused naming the argument, not wrapped to a
    huge unsigned value (before: max_nfe=-1 ran, converge(boot=-1) asked for all memory)."""
    with pytest.raises(ValueError, match=r"^%s: expected a" % arg):
        call()


@pytest.mark.parametrize("arg,call", [
    ("max_nfe", lambda: solve(max_nfe=2 ** 70)),
    ("steps", lambda: solve(steps=2 ** 70)),
    ("threads", lambda: solve(threads=2 ** 40)),
    ("paths", lambda: converge(paths=2 ** 70)),
    ("boot_seed", lambda: converge(boot_seed=2 ** 64)),
    ("frames", lambda: corrsde.Cov("ar1:rho=0.9", frames=2 ** 70)),
    ("batch", lambda: C4.sample(2 ** 70)),
])
def test_counts_beyond_their_c_type_are_refused(arg, call):
    """A count beyond its C type is refused naming the argument, not cut (before:
    max_nfe=2**70 became a limit of 0, threads=2**40 ran)."""
    with pytest.raises(OverflowError, match=r"^%s: expected an integer in \[" % arg):
        call()


@pytest.mark.parametrize("arg,call", [
    ("t_start", lambda: solve(t_start=float("nan"))),
    ("t_end", lambda: solve(t_end=float("nan"))),
    ("rtol", lambda: solve(process="pf-ode", rtol=float("nan"))),
    ("confidence", lambda: converge(confidence=float("nan"))),
])
def test_nan_settings_are_errors_not_the_default(arg, call):
    """A NaN setting is an error naming it; the default is None (before: t_start=nan
    ran from the process's own start, confidence=nan ran)."""
    with pytest.raises(ValueError, match=r"^%s: expected a number, got nan" % arg):
        call()


@pytest.mark.parametrize("conf", [-1.0, 0.0, 1.0, 1.5, float("inf")])
def test_confidence_outside_0_1_is_refused(conf):
    """converge(confidence=) is a probability in (0, 1), refused naming it otherwise
    (before: -1 ran, 1.5 was refused as 'convergence analysis: bad sizes')."""
    with pytest.raises(ValueError, match=r"^confidence: expected a number in \(0, 1\), got "):
        converge(confidence=conf)


@pytest.mark.parametrize("seed", [-1, 2 ** 64, 1.5])
def test_cov_sample_refuses_seeds_as_solve_does(seed):
    """Cov.sample refuses a seed outside [0, 2^64) as solve() does, same type and message
    (before: seed=-1 drew with seed 2^64 - 1)."""
    with pytest.raises(ValueError) as want:
        corrsde.solve(f, cov=C4, steps=3, seed=seed)
    with pytest.raises(ValueError) as got:
        C4.sample(2, 3, seed=seed)
    assert str(got.value) == str(want.value)
    assert str(got.value).startswith("seed: expected an integer in [0, 2^64), got ")


def test_plugin_output_with_a_nul_is_refused(tmp_path):
    """`--model python:`: a model whose output is "noise\\0x" is refused, not read as
    "noise"."""
    src = tmp_path / "m.py"
    src.write_text("def make(ctx, args):\n"
                   "    m = lambda t, x, c: -x\n"
                   "    m.output = 'noise\\0x'\n"
                   "    return m\n")
    p = subprocess.run([CORRSDE, "sample", "--model", "python:%s:make" % src, "--frames", "3",
                        "--steps", "2", "-q", "-o", str(tmp_path / "o.h5")],
                       capture_output=True, text=True)
    assert p.returncode != 0
    assert "ValueError: the model's output 'noise\\x00x' is not one of" in p.stderr, p.stderr


# ---- item 19: ctx.cov and ctx.schedule of `--model python:` ----

# The exact C grad log p_t of N(0, I) data under noise N(0, C) along the frames, through
# the context's objects: Sigma_t = abar I + (1 - abar) C, answer -C Sigma_t^-1 x. The
# model records what the context gave at its first call and, when freed after the run,
# what using the lent cov then does.
CTX_MODEL = r'''
import json
import numpy as np

class Exact:
    output = "cscore"

    def __init__(self, path):
        self.path, self.rec, self.ctx = path, None, None

    def __call__(self, t, x, ctx):
        C = ctx.cov.matrix
        ab = ctx.schedule.abar(t)
        S = ab * np.eye(len(C)) + (1 - ab) * C
        y = np.einsum("ij,bjd->bid", np.linalg.inv(S), x)
        if self.rec is None:
            self.ctx = ctx
            self.rec = {"cov": [ctx.cov.spec, ctx.cov.frames, ctx.cov.method, C.tolist()],
                        "schedule": [ctx.schedule.spec, ctx.schedule.nsteps],
                        "t": t, "abar": [ab, ctx.abar], "sigma": [ctx.schedule.sigma(t), ctx.sigma],
                        "apply": np.array_equal(ctx.cov.apply(y), np.einsum("ij,bjd->bid", C, y))}
        return -ctx.cov.apply(y)

    def __del__(self):
        if self.path:
            try:
                self.ctx.cov.apply(np.zeros((1, 3, 1)))
                self.rec["after"] = "no error"
            except ValueError as e:
                self.rec["after"] = str(e)
            with open(self.path, "w") as f:
                json.dump(self.rec, f)


def make(ctx, args):
    assert ctx.cov.frames == 3 and ctx.schedule.spec  # the run's, from the factory on
    return Exact(args)
'''


def test_plugin_context_has_the_runs_cov_and_schedule(tmp_path):
    """`--model python:` models see ctx.cov and ctx.schedule, the run's own (--cov,
    --schedule): the exact model written with them gives the same bits through the
    program as through corrsde.solve, and they raise once the run has ended (before:
    AttributeError: 'types.SimpleNamespace' object has no attribute 'cov')."""
    import h5py
    src = tmp_path / "exact.py"
    src.write_text(CTX_MODEL)
    rec_path, out = tmp_path / "rec.json", tmp_path / "cli.h5"
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    p = subprocess.run([CORRSDE, "sample", "--model", "python:%s:make:%s" % (src, rec_path),
                        "--cov", "ar1:rho=0.5", "--frames", "3", "--schedule", "cosine",
                        "--frame-shape", "2", "--batch", "2", "--steps", "6", "--seed", "3",
                        "-q", "-o", str(out)], capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stderr
    rec = json.loads(rec_path.read_text())
    want = corrsde.Cov("ar1:rho=0.5", frames=3)
    assert rec["cov"] == ["ar1:rho=0.5", 3, want.method, want.matrix.tolist()]
    assert rec["cov"][3] == [[1, 0.5, 0.25], [0.5, 1, 0.5], [0.25, 0.5, 1]]
    S = corrsde.Schedule("cosine")
    assert rec["schedule"] == [S.spec, 0]
    assert rec["abar"] == [S.abar(rec["t"])] * 2 and rec["sigma"] == [S.sigma(rec["t"])] * 2
    assert rec["apply"] is True
    assert rec["after"].startswith("cov: the run that lent it (ctx.cov of a `--model python:` "
                                   "model) has ended")
    with h5py.File(out, "r") as fh:
        cli = fh["trajectory/x"][-1]
    code = ("import sys, runpy, corrsde; m = runpy.run_path(sys.argv[1])['Exact'](None); "
            "r = corrsde.solve(m, cov=corrsde.Cov('ar1:rho=0.5', 3), schedule='cosine', "
            "steps=6, seed=3, batch=2, frame_shape=2); sys.stdout.buffer.write(r.x.tobytes())")
    got = subprocess.run([sys.executable, "-c", code, str(src)], env=env, capture_output=True,
                         check=True).stdout
    assert got == cli.tobytes()


# ---- items 1-2: outputs are never written through a link ----

def _zero(t, x, ctx):
    return np.zeros_like(x)


@pytest.mark.parametrize("which", ["out", "csv", "plot"])
@pytest.mark.parametrize("force", [False, True])
def test_converge_refuses_a_link_at_an_output(tmp_path, which, force):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    names = {"out": tmp_path / "c.h5", "csv": tmp_path / "c.csv", "plot": tmp_path / "c.png"}
    os.symlink(victim, names[which])
    with pytest.raises(FileExistsError, match="is a symbolic link: refused"):
        corrsde.converge(_zero, cov=corrsde.Cov("ar1:rho=0.5", 4), output="noise",
                         levels=(2, 3), paths=4, force=force,
                         **{k: str(v) for k, v in names.items()})
    assert victim.read_text() == "keep me" and os.path.islink(names[which])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["victim.txt", names[which].name])


def test_converge_plot_replaces_only_a_regular_file(tmp_path):
    out, png = tmp_path / "c.h5", tmp_path / "c.png"
    png.write_bytes(b"old")
    kw = dict(cov=corrsde.Cov("ar1:rho=0.5", 4), output="noise", levels=(2, 3), paths=4,
              out=str(out), plot=str(png))
    with pytest.raises(FileExistsError, match="exists"):
        corrsde.converge(_zero, **kw)
    assert png.read_bytes() == b"old"
    corrsde.converge(_zero, force=True, **kw)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.h5", "c.png"]  # no temporary left


@pytest.mark.parametrize("force", [False, True])
def test_solve_refuses_a_link_at_out(tmp_path, force):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    os.symlink(victim, tmp_path / "o.h5")
    with pytest.raises(Exception, match="symbolic link"):
        corrsde.solve(_zero, cov=corrsde.Cov("ar1:rho=0.5", 4), output="noise", steps=3,
                      out=str(tmp_path / "o.h5"), force=force)
    assert victim.read_text() == "keep me" and os.path.islink(tmp_path / "o.h5")
