#!/usr/bin/env python3
"""corrsde's Python package against the C library and plain PyTorch (bench/README.md, `python`).

    PYTHONPATH=build/python /usr/bin/python3 bench/python.py [--quick] [--rows 1,2,3]
        [--repeats R] [--threads T] [--build DIR] [--csv FILE] [--seed K]

Three tables, every number the median of R repeats [min, max] after one untimed warm-up,
the baseline measured in the same run, interleaved with the case (same machine load):

  1. the per-call cost of a Python model that does nothing (returns a preallocated zero
     array), against a C model that does nothing (the model plugin tests/plugin_faulty.so
     with value=0, run by `corrsde sample`); and, for reference, the built-in C gaussian
     model. pf-ode, euler: one model call per step. us per call = the slope
     (wall(2N) - wall(N)) / N, wall the solver's own clock (Result.wall_seconds, /stats
     wall_seconds), so that start-up, the prior draw and the file are out of it;
     overhead = python - C no-op, per repeat. At 12288 (1 x 16 x 3x16x16) and 196608
     (1 x 16 x 3x64x64) doubles per state.
  2. a NumPy gaussian model (cscore = -C Sigma_t^-1 x, one 16 x 16 solve per call) through
     corrsde.solve against the built-in C gaussian model through `corrsde sample` on the
     same problem: reverse-sde, em, 64x64, tau 16, batch 4, 100 steps, the same seed (the
     endpoints must agree: max |dx| is printed).
  3. a small float32 Conv3d network (output "noise") through corrsde.solve
     (corrsde.torch.TorchModel when present) against the same Euler-Maruyama loop written
     in torch around the same module (float64 state, MATH.md's reverse SDE), 32x32,
     tau 16, batch 4, 100 steps. The module's time is accumulated inside both; the figure
     is corrsde's time outside the module over the torch loop's whole time.

The C side runs `corrsde` from the build directory (--build, default: the one that holds
the imported corrsde package, <build>/python/corrsde). A missing piece (corrsde, torch,
h5py, the binary, the plugin) or a failed run skips its rows with the reason; it is never
an error.
Threads: --threads for corrsde (solve threads=, sample -j), OPENBLAS_NUM_THREADS and
OMP_NUM_THREADS (set before NumPy is imported) and torch.set_num_threads.
"""
import argparse
import csv
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "baselines"))
from problem import lags, schedule, uniform_step  # noqa: E402  (standard library only)

TAU = 16
COV = "ar1:rho=0.9"
CSV_HEADER = ["bench", "case", "param", "threads", "n", "repeats", "median_s", "min_s",
              "max_s", "rate_per_s", "ratio", "ratio_to", "note"]


def parse():
    ap = argparse.ArgumentParser(
        description="corrsde's Python package against the C library and plain PyTorch: "
                    "model-call overhead, a NumPy model, a torch model (bench/README.md).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run from the source tree: PYTHONPATH=build/python /usr/bin/python3 "
               "bench/python.py --quick")
    ap.add_argument("--quick", action="store_true",
                    help="a smoke run: 5 repeats, a quarter of the steps in row 1, "
                         "20 steps in rows 2 and 3 (their targets then do not apply)")
    ap.add_argument("--rows", default="1,2,3", help="which tables, e.g. 1,3 (default 1,2,3)")
    ap.add_argument("--repeats", type=int, default=None,
                    help="timed repeats per case, at least 5 (default 7; 5 with --quick)")
    ap.add_argument("--threads", type=int, default=1, help="threads everywhere (default 1)")
    ap.add_argument("--build", default=None,
                    help="the meson build directory with corrsde and tests/plugin_faulty.so "
                         "(default: the one holding the imported corrsde package)")
    ap.add_argument("--csv", default=None,
                    help="append every row to FILE (corrsde-bench's columns; a header line "
                         "when the file is new or empty)")
    ap.add_argument("--seed", type=int, default=1, help="noise seed (default 1)")
    a = ap.parse_args()
    a.repeats = a.repeats or (5 if a.quick else 7)
    if a.repeats < 5:
        ap.error("--repeats: at least 5")
    try:
        a.rows = sorted({int(r) for r in a.rows.split(",") if r.strip()})
    except ValueError:
        ap.error("--rows: a comma-separated list of 1, 2, 3")
    if not a.rows or any(r not in (1, 2, 3) for r in a.rows):
        ap.error("--rows: a comma-separated list of 1, 2, 3")
    return a


def med(v):
    """(median, min, max)."""
    return statistics.median(v), min(v), max(v)


class Out:
    """The printed tables and the CSV rows."""

    def __init__(self, a):
        self.a, self.f, self.w = a, None, None
        if a.csv:
            new = not os.path.exists(a.csv) or os.path.getsize(a.csv) == 0
            self.f = open(a.csv, "a", newline="")
            self.w = csv.writer(self.f, lineterminator="\n")
            if new:
                self.w.writerow(CSV_HEADER)

    def csv(self, case, param, n, s, ratio=None, ratio_to="", note=""):
        if not self.w:
            return
        num = lambda x: "" if x is None or not math.isfinite(x) else "%.6g" % x  # noqa: E731
        self.w.writerow(["python", case, param, self.a.threads, "" if n is None else n,
                         self.a.repeats, num(s[0]), num(s[1]), num(s[2]), "", num(ratio),
                         ratio_to, note])
        self.f.flush()

    def skip(self, case, param, why):
        print("  %-34s %-8s %3d  skipped: %s" % (case, param, self.a.threads, why), flush=True)
        if self.w:
            self.w.writerow(["python", case, param, self.a.threads, "", self.a.repeats, "", "",
                             "", "", "", "", "skipped: " + why])
            self.f.flush()


# ---- the C side: corrsde sample ----

class Cli:
    def __init__(self, binary, threads, tmp):
        self.bin, self.threads, self.tmp = binary, threads, tmp

    def run(self, model, process, solver, steps, frame_shape, batch, seed, want_x=False):
        """One `corrsde sample` run: (the solver's wall_seconds, the final state or None)."""
        import h5py
        out = os.path.join(self.tmp, "c.h5")
        cmd = [self.bin, "sample", "--model", model, "--cov", COV, "--frames", str(TAU),
               "--frame-shape", frame_shape, "--batch", str(batch), "--process", process,
               "--solver", solver, "--steps", str(steps), "--seed", str(seed),
               "-j", str(self.threads), "-q", "-f", "-o", out]
        with tempfile.TemporaryFile("w+") as err:
            p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
            _, status, ru = os.wait4(p.pid, 0)
            p.returncode = os.waitstatus_to_exitcode(status)
            if p.returncode:
                err.seek(0)
                raise RuntimeError("%s failed: %s" % (" ".join(cmd), err.read().strip()))
        with h5py.File(out, "r") as f:
            wall = float(f["stats"].attrs["wall_seconds"])
            x = f["trajectory/x"][-1] if want_x else None
        return wall, ru.ru_utime + ru.ru_stime, x


def find_build(a, corrsde):
    if a.build:
        return os.path.abspath(a.build)
    # <build>/python/corrsde/__init__.py
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(corrsde.__file__))))


# ---- row 1: the per-call overhead of a Python model ----

def row1(a, out, np, corrsde, cli, plugin):
    quick = 4 if a.quick else 1
    sizes = [(12288, (3, 16, 16), 2000 // quick), (196608, (3, 64, 64), 200 // quick)]
    print("Python model per call against a C model: pf-ode, euler (1 model call a step), "
          "batch 1, tau %d" % TAU)
    print("(us per call = (wall(2N) - wall(N)) / N on the solver's own clock, median of %d "
          "repeats [min, max];\n cpu us = the same slope in CPU time (the solving thread's; "
          "the whole process for `corrsde sample`),\n the less load-sensitive figure;\n"
          " python: corrsde.solve, a model returning a preallocated zero array (output noise);"
          "\n C no-op: `corrsde sample --model plugin:tests/plugin_faulty.so:value=0` (writes "
          "zeros, noise);\n C gaussian: the built-in gaussian model (a real model, for "
          "reference);\n overhead = python - C no-op, per repeat)" % a.repeats)
    print()
    print("  %-34s %-8s %3s %10s %10s %10s %8s %8s  %s" % (
        "case", "doubles", "thr", "median us", "min us", "max us", "x C", "cpu us", "N, 2N"))
    for n, fs, N in sizes:
        C = corrsde.Cov(COV, frames=TAU)
        x0 = C.sample(1, fs, seed=0)
        z = np.zeros_like(x0)

        def noop(t, x, ctx):
            return z

        fss = "x".join(map(str, fs))

        def py(steps):
            c0 = time.thread_time()
            r = corrsde.solve(noop, x0, cov=C, process="pf-ode", solver="euler", steps=steps,
                              output="noise", threads=a.threads)
            return r.wall_seconds, time.thread_time() - c0

        def cw(model):
            return lambda steps: cli.run(model, "pf-ode", "euler", steps, fss, 1, 0)[:2]

        cases = {"python": py}
        if cli:
            if plugin:
                cases["cnoop"] = cw("plugin:%s:value=0" % plugin)
            cases["cgauss"] = cw("gaussian")
        wall = {k: [] for k in cases}
        cpu = {k: [] for k in cases}
        for rep in range(a.repeats + 1):  # the first is the warm-up
            w = {}
            for steps in (N, 2 * N):  # interleaved: every case at N, then every case at 2N
                for k, f in cases.items():
                    w[k, steps] = f(steps)
            if rep:
                for k in cases:
                    wall[k].append((w[k, 2 * N][0] - w[k, N][0]) / N)
                    cpu[k].append((w[k, 2 * N][1] - w[k, N][1]) / N)
        ns = "%d, %d" % (N, 2 * N)
        have = "cnoop" in wall
        base = med(wall["cnoop"]) if have else None

        def line(name, csvname, k, note=""):
            s = med(wall[k])
            c = statistics.median(cpu[k])
            ratio = s[0] / base[0] if base else None
            print("  %-34s %-8d %3d %10.2f %10.2f %10.2f %8s %8.2f  %s" % (
                name, n, a.threads, 1e6 * s[0], 1e6 * s[1], 1e6 * s[2],
                "%.2f" % ratio if ratio is not None else "", 1e6 * c, note or ns), flush=True)
            out.csv(csvname, fss, n, s, ratio, "C no-op" if base else "",
                    "N %s; cpu %.6g s" % (ns, c))

        if have:
            line("C no-op model (plugin)", "C no-op model per call", "cnoop")
        elif not cli:
            out.skip("C no-op model (plugin)", str(n), "no corrsde binary in the build")
        else:
            out.skip("C no-op model (plugin)", str(n), "no tests/plugin_faulty.so in the build")
        if "cgauss" in wall:
            line("C gaussian model (built-in)", "C gaussian model per call", "cgauss")
        line("python no-op model", "python no-op model per call", "python")
        if have:
            d = med([p - c for p, c in zip(wall["python"], wall["cnoop"])])
            dc = statistics.median(p - c for p, c in zip(cpu["python"], cpu["cnoop"]))
            note = ""
            if n == 12288 and not a.quick:
                note = "target <= 5 us: %s (cpu: %s)" % ("met" if d[0] <= 5e-6 else "NOT met",
                                                         "met" if dc <= 5e-6 else "NOT met")
            print("  %-34s %-8d %3d %10.2f %10.2f %10.2f %8s %8.2f  %s" % (
                "python overhead (python - C no-op)", n, a.threads, 1e6 * d[0], 1e6 * d[1],
                1e6 * d[2], "", 1e6 * dc, note), flush=True)
            out.csv("python model overhead per call", fss, n, d, None, "",
                    "cpu %.6g s%s" % (dc, "; " + note if note else ""))
    print()


# ---- row 2: a NumPy gaussian model against the C one ----

def row2(a, out, np, corrsde, cli):
    steps = 20 if a.quick else 100
    B, side = 4, 64
    print("NumPy model through corrsde.solve against the built-in C gaussian model: "
          "reverse-sde, em, %s, tau %d, batch %d, %d steps" % (COV, TAU, B, steps))
    print("(seconds per solve on the solver's own clock, median of %d repeats [min, max], "
          "interleaved;\n numpy: cscore = -(C Sigma_t^-1) x, Sigma_t = abar S0 + (1 - abar) C, "
          "S0 = 0.25 ar1(0.95), one 16x16 solve a call;\n C: `corrsde sample --model "
          "gaussian` (/stats wall_seconds; includes writing the final state);\n"
          " x C = its median / C's; max |dx| = the endpoints' largest difference, same seed)"
          % a.repeats)
    print()
    print("  %-34s %-8s %3s %10s %10s %10s %8s  %s" % ("case", "frames", "thr", "median ms",
                                                     "min ms", "max ms", "x C", "max |dx|"))
    fs = "%dx%d" % (side, side)
    C = corrsde.Cov(COV, frames=TAU)
    lag = np.array(lags(TAU), dtype=np.float64)
    Cm = 0.9 ** lag
    S0 = 0.25 * 0.95 ** lag
    sched = corrsde.Schedule("vp-linear")

    def model(t, x, ctx):
        abar = ctx.abar
        om = -math.expm1(-sched.int_beta(t))
        M = np.linalg.solve(abar * S0 + om * Cm, Cm).T  # C Sigma_t^-1 (both symmetric)
        y = M @ x.reshape(B, TAU, side * side)
        np.negative(y, out=y)
        return y.reshape(x.shape)

    def py():
        r = corrsde.solve(model, None, cov=C, process="reverse-sde", solver="em", steps=steps,
                          seed=a.seed, batch=B, frame_shape=(side, side), threads=a.threads)
        return r.wall_seconds, r.x

    tp, tc, x_c, x_p = [], [], None, None
    for rep in range(a.repeats + 1):  # the first is the warm-up, and gives the endpoints
        wp, xp = py()
        wc, _, xc = cli.run("gaussian", "reverse-sde", "em", steps, fs, B, a.seed, want_x=not rep)
        if rep:
            tp.append(wp)
            tc.append(wc)
        else:
            x_c, x_p = xc, xp
    dx = float(np.max(np.abs(x_p - x_c)))
    sc, sp = med(tc), med(tp)
    n = B * TAU * side * side
    print("  %-34s %-8s %3d %10.3f %10.3f %10.3f %8.2f" % ("C gaussian (corrsde sample)", fs,
          a.threads, 1e3 * sc[0], 1e3 * sc[1], 1e3 * sc[2], 1.0))
    print("  %-34s %-8s %3d %10.3f %10.3f %10.3f %8.2f  %.2e" % (
        "numpy gaussian (corrsde.solve)", fs, a.threads, 1e3 * sp[0], 1e3 * sp[1], 1e3 * sp[2],
        sp[0] / sc[0], dx), flush=True)
    out.csv("C gaussian sample", fs, n, sc, 1.0, "C gaussian", "%d steps" % steps)
    out.csv("numpy gaussian solve", fs, n, sp, sp[0] / sc[0], "C gaussian",
            "%d steps; max |dx| %.3g" % (steps, dx))
    print()


# ---- row 3: a torch model through corrsde.solve against a torch loop ----

def row3(a, out, np, corrsde):
    steps = 20 if a.quick else 100
    B, side = 4, 32
    fs = "%dx%d" % (side, side)
    print("Torch model through corrsde.solve against the same Euler-Maruyama loop in torch: "
          "reverse-sde, %s, tau %d, batch %d, %d steps" % (COV, TAU, B, steps))
    try:
        import torch
        import torch.nn as nn
    except ImportError as e:
        print()
        out.skip("torch rows", fs, "torch is not installed (%s)" % e)
        print()
        return
    torch.set_num_threads(a.threads)
    try:
        from corrsde.torch import TorchModel
        wrap = "corrsde.torch.TorchModel(module, output='noise', dtype=float32, time='t')"
    except ImportError:
        TorchModel = None
        wrap = "model(t, x, ctx): torch.from_numpy(x) -> float32 -> module -> float64 .numpy()"
    print("(ms per solve on perf_counter around the whole call, median of %d repeats [min, "
          "max], interleaved;\n model = time inside the module, accumulated around its calls "
          "in both; outside = total - model;\n cpu out = the same in CPU time of the calling "
          "thread (less load-sensitive);\n corrsde: %s;\n torch: x += h (-beta x / 2 + "
          "beta delta / sigma) + sqrt(beta |h|) chol(C) z, float64 state,\n torch.randn, "
          "the same module on x.float(); fraction = corrsde's outside / the torch loop's total)"
          % (a.repeats, wrap))
    print()

    class Net(nn.Module):
        """Conv3d 1 -> 16 -> 1 over (frames, H, W) with a time shift: 913 parameters."""

        def __init__(self):
            super().__init__()
            self.c1 = nn.Conv3d(1, 16, 3, padding=1)
            self.tp = nn.Linear(1, 16)
            self.c2 = nn.Conv3d(16, 1, 3, padding=1)

        def forward(self, x, t):
            h = self.c1(x.unsqueeze(1)) + self.tp(t[:, None]).view(-1, 16, 1, 1, 1)
            return self.c2(torch.nn.functional.silu(h)).squeeze(1)

    torch.manual_seed(0)
    net = Net().eval()
    nparam = sum(p.numel() for p in net.parameters())

    class Timed:
        """The module, with the time spent in its calls accumulated."""

        def __init__(self, m):
            self.m, self.total, self.cpu, self.calls = m, 0.0, 0.0, 0

        def __call__(self, x, t):
            t0, c0 = time.perf_counter(), time.thread_time()
            y = self.m(x, t)
            self.total += time.perf_counter() - t0
            self.cpu += time.thread_time() - c0
            self.calls += 1
            return y

    timed = Timed(net)
    if TorchModel is not None:
        model = TorchModel(timed, output="noise", dtype=torch.float32, time="t")
    else:
        def model(t, x, ctx):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                xt = torch.from_numpy(x).to(torch.float32)
            with torch.no_grad():
                y = timed(xt, torch.full((x.shape[0],), t, dtype=torch.float32))
            return y.to(torch.float64).numpy()
        model.output = "noise"

    inner = model

    def model(t, x, ctx):  # the callback's own time: the wrapper's share of "outside"
        t0 = time.perf_counter()
        y = inner(t, x, ctx)
        model.total += time.perf_counter() - t0
        return y
    model.output, model.total = "noise", 0.0

    C = corrsde.Cov(COV, frames=TAU)
    x0 = C.sample(B, (side, side), seed=a.seed)
    f64, f32 = torch.float64, torch.float32
    L = torch.linalg.cholesky(torch.tensor(0.9 ** np.array(lags(TAU), dtype=np.float64)))
    gen = torch.Generator().manual_seed(a.seed)
    x0t = torch.from_numpy(x0.copy())
    D = side * side

    def run_corrsde():
        timed.total = timed.cpu = model.total = 0.0
        t0, c0 = time.perf_counter(), time.thread_time()
        r = corrsde.solve(model, x0, cov=C, process="reverse-sde", solver="em", steps=steps,
                          seed=a.seed, threads=a.threads)
        return (time.perf_counter() - t0, timed.total, r.x, model.total - timed.total,
                time.thread_time() - c0, timed.cpu)

    def run_torch():
        timed.total = timed.cpu = 0.0
        t0, c0 = time.perf_counter(), time.thread_time()
        with torch.no_grad():
            x = x0t.clone()
            for k in range(steps):
                t, h = uniform_step(k, steps)
                beta, abar, omab = schedule(t)
                d = timed(x.to(f32), torch.full((B,), t, dtype=f32)).to(f64)
                z = torch.randn(x.shape, generator=gen, dtype=f64)
                x = (x + h * (-0.5 * beta * x + beta / math.sqrt(omab) * d)
                     + math.sqrt(beta * abs(h)) * torch.matmul(L, z.view(B, TAU, D)).view(x.shape))
        return (time.perf_counter() - t0, timed.total, x.numpy(), 0.0,
                time.thread_time() - c0, timed.cpu)

    rc, rt, frac, fcpu = [], [], [], []
    for rep in range(a.repeats + 1):  # the first is the warm-up; the two interleaved
        c = run_corrsde()
        t = run_torch()
        if rep:
            rc.append(c)
            rt.append(t)
            frac.append((c[0] - c[1]) / t[0])
            fcpu.append((c[4] - c[5]) / t[4])
    xc, xt = rc[-1][2], rt[-1][2]
    n = B * TAU * D
    print("  %-34s %-8s %3s %10s %10s %10s %10s %10s %10s" % (
        "case", "frames", "thr", "total ms", "min ms", "max ms", "model ms", "outside ms",
        "cpu out ms"))
    for name, r in (("torch EM loop", rt), ("corrsde.solve (torch model)", rc)):
        s = med([v[0] for v in r])
        m = statistics.median(v[1] for v in r)
        o = statistics.median(v[0] - v[1] for v in r)
        oc = statistics.median(v[4] - v[5] for v in r)
        print("  %-34s %-8s %3d %10.2f %10.2f %10.2f %10.2f %10.2f %10.2f" % (
            name, fs, a.threads, 1e3 * s[0], 1e3 * s[1], 1e3 * s[2], 1e3 * m, 1e3 * o, 1e3 * oc))
        out.csv(name, fs, n, s, None, "", "model %.6g s, outside %.6g s (cpu %.6g s), %d steps, "
                "%d params" % (m, o, oc, steps, nparam))
    f, fc = med(frac), statistics.median(fcpu)
    note = "" if a.quick else "target <= 10%%: %s" % ("met" if f[0] <= 0.10 else "NOT met")
    print("  %-34s %-8s %3d %9.2f%% %9.2f%% %9.2f%% %10s %10s %9.2f%%  %s" % (
        "corrsde outside / torch total", fs, a.threads, 100 * f[0], 100 * f[1], 100 * f[2],
        "", "", 100 * fc, note))
    wr = statistics.median(v[3] for v in rc)
    so = statistics.median(v[0] - v[1] - v[3] for v in rc)
    print("  (corrsde's outside: %.2f ms in the wrapper around the module (%s), %.2f ms in "
          "solve and the solver;\n  endpoint std: corrsde %.4g, torch %.4g; the module has %d "
          "parameters)" % (1e3 * wr, "TorchModel" if TorchModel else "its conversions",
                           1e3 * so, float(np.std(xc)), float(np.std(xt)), nparam), flush=True)
    out.csv("corrsde outside / torch total", fs, n, f, f[0], "torch EM loop",
            "cpu %.4g%s" % (fc, "; " + note if note else ""))
    print()


def main():
    a = parse()
    for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[v] = str(a.threads)
    import numpy as np
    out = Out(a)
    print("# corrsde Python package (bench/python.py): %d repeats, %d thread(s)%s"
          % (a.repeats, a.threads, ", --quick" if a.quick else ""))
    try:
        import corrsde
    except ImportError as e:
        out.skip("python rows", "-", "cannot import corrsde (%s); run with "
                 "PYTHONPATH=<build>/python" % e)
        return 0
    build = find_build(a, corrsde)
    binary = os.path.join(build, "corrsde")
    plugin = os.path.join(build, "tests", "plugin_faulty.so")
    plugin = plugin if os.path.isfile(plugin) else None
    try:
        import h5py  # noqa: F401  (the C side's wall_seconds)
        have_cli = os.access(binary, os.X_OK)
        why = "no corrsde binary at %s" % binary
    except ImportError as e:
        have_cli, why = False, "h5py is not installed (%s)" % e
    print("# corrsde %s from %s; C side: %s" % (
        corrsde.__version__, os.path.dirname(corrsde.__file__), binary if have_cli else why))
    print()
    with tempfile.TemporaryDirectory() as tmp:
        cli = Cli(binary, a.threads, tmp) if have_cli else None
        rows = {1: ("python model per call", "-", lambda: row1(a, out, np, corrsde, cli, plugin)),
                2: ("numpy gaussian against C", "64x64",
                    lambda: row2(a, out, np, corrsde, cli) if cli else
                    out.skip("numpy gaussian against C", "64x64", why)),
                3: ("torch model against torch", "32x32", lambda: row3(a, out, np, corrsde))}
        for r in a.rows:
            name, param, run = rows[r]
            try:
                run()
            except Exception as e:  # a failed run (e.g. the build being relinked): say why
                print()
                out.skip(name, param, "failed: %s: %s" % (type(e).__name__, e))
                print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
