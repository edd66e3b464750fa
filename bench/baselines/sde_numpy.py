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
import math
import os
import sys
import time

from problem import emit, emit_cov, emit_skip, lags, measure, rss_kib, schedule, sde_args, \
    uniform_step

NAME = "numpy em step"


def main():
    a = sde_args(__doc__)
    for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[v] = str(a.threads)
    try:
        import numpy as np
    except ImportError as e:
        emit_skip(NAME, e)
        return 0
    tau, D, B, N = a.tau, a.side * a.side, a.batch, a.steps
    lag = np.array(lags(tau))
    C = 0.9 ** lag
    S0 = 0.25 * 0.95 ** lag
    L = np.linalg.cholesky(C)
    rng = np.random.default_rng(a.seed)
    base_kib = rss_kib()

    def run():
        x = L @ rng.standard_normal((B, tau, D))  # initial state, untimed
        t0 = time.perf_counter()
        for n in range(N):
            t, h = uniform_step(n, N)
            beta, abar, omab = schedule(t)
            M = np.linalg.solve(abar * S0 + omab * C, C).T  # C Sigma_t^-1
            s = -(M @ x)
            z = rng.standard_normal((B, tau, D))
            x = x + h * (-0.5 * beta * x - beta * s) + math.sqrt(beta * abs(h)) * (L @ z)
        return time.perf_counter() - t0, x

    (med, lo, hi), x = measure(run, a.repeats)
    emit("row", NAME, med / N, lo / N, hi / N, "numpy %s, %d thread(s)" % (np.__version__,
                                                                         a.threads))
    xf = x.transpose(1, 0, 2).reshape(tau, B * D)
    emit_cov(NAME, B * D, ((xf @ xf.T) / (B * D)).ravel())
    emit("rss", NAME, rss_kib(), base_kib)
    return 0


if __name__ == "__main__":
    sys.exit(main())
