#!/usr/bin/python3
"""Error against model evaluations of the SDE solvers on one Brownian path: fixed steps and
adaptive ones (--rtol), from separate `corrsde sample` runs with the same seed.

Usage: adaptive_sde.py [--corrsde build/corrsde] [--out-dir results/adaptive_sde]
                       [--frames 8] [--pixels 16] [--batch 8] [--seed 5] [--quick]

The problem: the reverse SDE of the built-in gaussian model (its default, whose frame
covariance does not commute with C = ar1:rho=0.9), from the prior, with --noise path: a
Brownian tree, so every run sees the same path whatever its steps. The reference: sra1 at
2^13 fixed steps. Rows: em, heun, sra1 at 2^3 .. 2^9 fixed steps and at rtol = atol =
1e-1 .. 1e-4 adaptive; the figure is the RMS error of the final states. Writes
adaptive_sde.csv and adaptive_sde.md in --out-dir and prints the table. Needs h5py.
"""
import argparse
import csv
import os
import subprocess
import sys

import h5py
import numpy as np


def run(exe, out, args):
    """corrsde sample ... -o out: the final state, model evaluations, accepted, rejected."""
    cmd = [exe, "sample", "-q", "--force", "-o", out] + args
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("%s: %s" % (" ".join(cmd), r.stderr.strip()))
    with h5py.File(out, "r") as f:
        a = f["stats"].attrs
        return f["trajectory/x"][-1], int(a["nfe"]), int(a["accepted"]), int(a["rejected"])


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--corrsde", default=os.path.join(here, "..", "build", "corrsde"))
    ap.add_argument("--out-dir", default="results/adaptive_sde")
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--pixels", type=int, default=16)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="levels 3..5, rtol 1e-1 and 1e-2")
    a = ap.parse_args(argv)
    levels = range(3, 6) if a.quick else range(3, 10)
    tols = (1e-1, 1e-2) if a.quick else (1e-1, 1e-2, 1e-3, 1e-4)
    os.makedirs(a.out_dir, exist_ok=True)
    tmp = os.path.join(a.out_dir, "run.h5")
    base = ["--noise", "path", "--seed", str(a.seed), "--frames", str(a.frames),
            "--frame-shape", str(a.pixels), "--batch", str(a.batch)]
    ref = run(a.corrsde, tmp, base + ["--solver", "sra1", "--steps", str(2 ** 13)])[0]
    rows = []
    for solver in ("em", "heun", "sra1"):
        for k in levels:
            x, nfe, acc, rej = run(a.corrsde, tmp, base + ["--solver", solver, "--steps", str(2 ** k)])
            rows.append((solver, "steps %d" % 2 ** k, nfe, acc, rej, float(np.sqrt(np.mean((x - ref) ** 2)))))
        for tol in tols:
            x, nfe, acc, rej = run(a.corrsde, tmp, base + ["--solver", solver, "--rtol", "%g" % tol])
            rows.append((solver, "rtol %g" % tol, nfe, acc, rej, float(np.sqrt(np.mean((x - ref) ** 2)))))
    os.remove(tmp)
    with open(os.path.join(a.out_dir, "adaptive_sde.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["solver", "run", "nfe", "accepted", "rejected", "rms_error"])
        for r in rows:
            w.writerow(list(r[:5]) + ["%.6e" % r[5]])
    lines = ["RMS error of the final states against sra1 at 8192 steps on the same Brownian "
             "path (reverse SDE, gaussian model, %d frames x %d pixels, %d videos, seed %d)."
             % (a.frames, a.pixels, a.batch, a.seed), "",
             "| solver | run | NFE | accepted | rejected | RMS error |", "|---|---|---:|---:|---:|---:|"]
    lines += ["| %s | %s | %d | %d | %d | %.3g |" % r for r in rows]
    text = "\n".join(lines)
    with open(os.path.join(a.out_dir, "adaptive_sde.md"), "w") as f:
        f.write(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
