#!/usr/bin/env python3
"""Baseline for `corrsde-bench sde`: one reverse-SDE Euler-Maruyama step in numpy.

    sde_numpy.py [--side 64] [--steps 100] [--batch 4] [--tau 16] [--threads 1]
                 [--repeats 5] [--seed 1]

Problem: state x of shape (B, tau, D = side^2), float64; frame covariance
C_ij = 0.9^|i-j|, data covariance S0_ij = 0.25 * 0.95^|i-j|, vp-linear schedule
(bmin 0.1, bmax 20), N uniform steps from t = 1 down to 1e-3. Score s = -M_t x with
M_t = C Sigma_t^-1, Sigma_t = abar S0 + (1 - abar) C. Each step: a tau x tau solve for
M_t, one matmul for the score, fresh normals, one matmul with chol(C), the update.
The initial draw x = chol(C) z0 is not timed; one untimed warm-up run, then R timed
runs of the whole step loop. Output (tab-separated, one per line):

    row <TAB> numpy em step <TAB> median_s <TAB> min_s <TAB> max_s <TAB> note
    cov <TAB> numpy em step <TAB> N <TAB> v_00 ... v_(tau-1)(tau-1)
    rss <TAB> numpy em step <TAB> peak_kib <TAB> base_kib
    skip <TAB> numpy em step <TAB> reason

Times are seconds per step (loop time / steps). `cov` is the uncentred frame second
moment of the last timed endpoint over the N = B*D (sample, pixel) pairs, row-major.
`rss` is ru_maxrss at exit and before any state-sized array was allocated.
"""
import argparse
import math
import os
import resource
import statistics
import sys
import time

NAME = "numpy em step"
BMIN, BMAX, T, EPS = 0.1, 20.0, 1.0, 1e-3


def measure(run, repeats):
    run()  # warm-up
    t, x = [], None
    for _ in range(repeats):
        dt, x = run()
        t.append(dt)
    return (statistics.median(t), min(t), max(t)), x


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--side", type=int, default=64)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--tau", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()

    for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[v] = str(a.threads)
    try:
        import numpy as np
    except ImportError as e:
        print("skip\t%s\t%s" % (NAME, str(e).replace("\t", " ")), flush=True)
        return 0

    tau, D, B, N = a.tau, a.side * a.side, a.batch, a.steps
    k = np.arange(tau)
    lag = np.abs(k[:, None] - k[None, :])
    C = 0.9 ** lag
    S0 = 0.25 * 0.95 ** lag
    L = np.linalg.cholesky(C)
    rng = np.random.default_rng(a.seed)
    base_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    def run():
        x = L @ rng.standard_normal((B, tau, D))  # initial state, untimed
        t0 = time.perf_counter()
        for n in range(N):
            t = T + n * (EPS - T) / N
            h = (T + (n + 1) * (EPS - T) / N) - t
            beta = BMIN + t * (BMAX - BMIN)
            Bt = BMIN * t + 0.5 * (BMAX - BMIN) * t * t
            sigma = math.exp(-Bt) * S0 - math.expm1(-Bt) * C
            M = np.linalg.solve(sigma, C).T  # C Sigma^-1
            s = -(M @ x)
            z = rng.standard_normal((B, tau, D))
            x = x + h * (-0.5 * beta * x - beta * s) + math.sqrt(beta * abs(h)) * (L @ z)
        return time.perf_counter() - t0, x

    (med, lo, hi), x = measure(run, a.repeats)
    print("row\t%s\t%.9g\t%.9g\t%.9g\tnumpy %s, %d thread(s)"
          % (NAME, med / N, lo / N, hi / N, np.__version__, a.threads), flush=True)
    xf = x.transpose(1, 0, 2).reshape(tau, B * D)
    cov = (xf @ xf.T) / (B * D)
    print("cov\t%s\t%d\t%s" % (NAME, B * D, "\t".join("%.17g" % v for v in cov.ravel())),
          flush=True)
    print("rss\t%s\t%d\t%d" % (NAME, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                               base_kib), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
