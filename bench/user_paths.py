#!/usr/bin/env python3
"""The Euler-Maruyama step the way a user runs it, against the harness in the same run
(bench/README.md, `user paths`; issue 24 §10).

    PYTHONPATH=build/python /usr/bin/python3 bench/user_paths.py [--build DIR] [--repeats R]
        [--steps N] [--csv FILE]

The problem of `corrsde-bench sde`'s EM rows: reverse SDE, the built-in gaussian model
(S0 = 0.25 ar1(0.95)), C = ar1:rho=0.9, 16 frames of 64x64, batch 4. At 1 and 2 threads,
interleaved (so that the three see the same load), each the median of R repeats [min, max]
of milliseconds per step:

  harness   `corrsde-bench case-em 64 T R 16 N`: csde_solver_run alone (its row: the median
            of R timed runs after an untimed one)
  sample    `corrsde sample --frames 16 --frame-shape 64x64 --batch 4 --steps N -j T`, as a
            user types it: /stats wall_seconds / N (the solve's own clock: the process's
            start, the prior draw and the file are out of it)
  solve()   `corrsde.solve` with a Python model that returns a preallocated zero answer
            (the step's solver part, plus the Python call and the answer's copy into the
            solver's buffer): the solve's wall_seconds / N, and the same less the time
            inside the model (measured in it), against the harness's `part solver`

ratio = median / the harness's median (its solver part for solve()).
"""
import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np


def med(v):
    return statistics.median(v), min(v), max(v)


def harness(build, threads, steps):
    out = subprocess.run([os.path.join(build, "bench", "corrsde-bench"), "case-em", "64",
                          str(threads), "3", "16", str(steps)], capture_output=True, text=True,
                         check=True).stdout
    row = solver = None
    for line in out.splitlines():
        f = line.split("\t")
        if f[0] == "row":
            row = float(f[2])
        elif f[0] == "part" and f[1] == "solver":
            solver = float(f[2])
    return row, solver


def sample(build, threads, steps, tmp):
    import h5py
    path = os.path.join(tmp, "s.h5")
    subprocess.run([os.path.join(build, "corrsde"), "sample", "--frames", "16", "--frame-shape",
                    "64x64", "--batch", "4", "--steps", str(steps), "-j", str(threads), "-q",
                    "--force", "-o", path], check=True)
    with h5py.File(path, "r") as f:
        return float(f["stats"].attrs["wall_seconds"]) / steps


def solve(corrsde, threads, steps):
    C = corrsde.Cov("ar1:rho=0.9", 16)
    zero = np.zeros((4, 16, 64, 64))
    inside = [0.0]

    def model(t, x, ctx):
        t0 = time.perf_counter()
        out = zero
        inside[0] += time.perf_counter() - t0
        return out

    with warnings.catch_warnings():  # a zero answer is no score: the first-answer check says so
        warnings.simplefilter("ignore", RuntimeWarning)
        r = corrsde.solve(model, cov=C, output="cscore", process="reverse-sde", solver="em",
                          steps=steps, threads=threads, batch=4, frame_shape=(64, 64), seed=1)
    return r.wall_seconds / steps, (r.wall_seconds - inside[0]) / steps


def main():
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(here, "build"))
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--csv", default=None)
    a = ap.parse_args()
    import corrsde
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for threads in (1, 2):
            H, Hs, S, P, Po = [], [], [], [], []
            for _ in range(a.repeats):
                h, hs = harness(a.build, threads, a.steps)
                H.append(h)
                Hs.append(hs)
                S.append(sample(a.build, threads, a.steps, tmp))
                p, po = solve(corrsde, threads, a.steps)
                P.append(p)
                Po.append(po)
            h, hs = med(H)[0], med(Hs)[0]
            rows += [(threads, "harness (csde_solver_run)", *med(H), 1.0),
                     (threads, "corrsde sample", *med(S), med(S)[0] / h),
                     (threads, "solve(), whole step (no-op model)", *med(P), med(P)[0] / h),
                     (threads, "harness, solver part", *med(Hs), 1.0),
                     (threads, "solve(), outside the model", *med(Po), med(Po)[0] / hs)]
    print("| threads | path | ms per step, median [min, max] | ratio |")
    print("|---:|---|---|---:|")
    for th, name, m, lo, hi, ratio in rows:
        print("| %d | %s | %.3f [%.3f, %.3f] | %.2f |" % (th, name, 1e3 * m, 1e3 * lo, 1e3 * hi,
                                                          ratio))
    print("\n64x64, 16 frames, batch 4, reverse SDE, em, %d steps; %d repeats, interleaved; "
          "the ratio is against the harness's median (its solver part for 'outside the "
          "model')" % (a.steps, a.repeats))
    if a.csv:
        with open(a.csv, "a", newline="") as f:
            w = csv.writer(f)
            for th, name, m, lo, hi, ratio in rows:
                w.writerow(["user paths", name, th, m, lo, hi, ratio])
    return 0


if __name__ == "__main__":
    sys.exit(main())
