#!/usr/bin/env python3
"""Baseline for `corrsde-bench sde`: one reverse-SDE Euler-Maruyama step in numpy.

    sde_numpy.py [--side 64] [--steps 100] [--batch 4] [--tau 16] [--threads 1]
                 [--repeats 5] [--seed 1] [--timed-steps K]

Problem: state x of B videos of tau frames of D = side^2 pixels, float64; frame covariance
C_ij = 0.9^|i-j|, data covariance S0_ij = 0.25 * 0.95^|i-j|, vp-linear schedule
(bmin 0.1, bmax 20), N uniform steps from t = 1 down to 1e-3. Score s = -M_t x with
M_t = C Sigma_t^-1, Sigma_t = abar S0 + (1 - abar) C. Each step: a tau x tau solve for
M_t, one matmul for the score, fresh normals, one matmul with chol(C), the update.
The step is written in three forms (the layout [B, tau, D] or [tau, B*D], temporaries
or out= buffers): each is timed warm, and the fastest is the row. The initial draw
x = chol(C) z0 is not timed; one untimed warm-up run, then R timed runs of the whole
step loop. Output (tab-separated, one per line):

    form <TAB> numpy em step <TAB> median_s <TAB> min_s <TAB> max_s <TAB> form name
    row <TAB> numpy em step <TAB> median_s <TAB> min_s <TAB> max_s <TAB> note
    cov <TAB> numpy em step <TAB> N <TAB> v_00 ... v_(tau-1)(tau-1)
    rss <TAB> numpy em step <TAB> peak_kib <TAB> base_kib
    skip <TAB> numpy em step <TAB> reason

Times are seconds per step (loop time / steps run; --timed-steps K runs the first K of
the N steps only, and prints no cov line). `cov` is the uncentred frame second
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
    K = a.run_steps  # the steps run and timed (per-step times are loop time / K)
    lag = np.array(lags(tau))
    C = 0.9 ** lag
    S0 = 0.25 * 0.95 ** lag
    L = np.linalg.cholesky(C)
    rng = np.random.default_rng(a.seed)
    base_kib = rss_kib()

    # The forms a competent NumPy user would write (bench/README.md): every one is timed
    # warm, the fastest is the row. x0 is the untimed initial draw; each returns
    # (seconds, endpoint as [B, tau, D]).
    def naive():  # [B, tau, D], broadcasting matmuls, a new array per operation
        x = L @ rng.standard_normal((B, tau, D))
        t0 = time.perf_counter()
        for n in range(K):
            t, h = uniform_step(n, N)
            beta, abar, omab = schedule(t)
            M = np.linalg.solve(abar * S0 + omab * C, C).T  # C Sigma_t^-1
            s = -(M @ x)
            z = rng.standard_normal((B, tau, D))
            x = x + h * (-0.5 * beta * x - beta * s) + math.sqrt(beta * abs(h)) * (L @ z)
        return time.perf_counter() - t0, x

    def frame_first():  # [tau, B*D]: one 2-D GEMM per product, still new arrays
        x = L @ rng.standard_normal((tau, B * D))
        t0 = time.perf_counter()
        for n in range(K):
            t, h = uniform_step(n, N)
            beta, abar, omab = schedule(t)
            M = np.linalg.solve(abar * S0 + omab * C, C).T
            s = -(M @ x)
            z = rng.standard_normal((tau, B * D))
            x = x + h * (-0.5 * beta * x - beta * s) + math.sqrt(beta * abs(h)) * (L @ z)
        return time.perf_counter() - t0, x.reshape(tau, B, D).transpose(1, 0, 2)

    def in_place():  # [tau, B*D], preallocated buffers, out= everywhere; the scalars of
        # the update folded into the tau x tau matrices: x <- (1 - h beta / 2) x
        # + h beta M x + sqrt(beta |h|) L z, two GEMMs and three passes
        x = L @ rng.standard_normal((tau, B * D))
        s, z, w = (np.empty_like(x) for _ in range(3))
        for b in (s, z, w):  # touch the pages now: first-touch faults are not the step's
            b.fill(0.0)
        t0 = time.perf_counter()
        for n in range(K):
            t, h = uniform_step(n, N)
            beta, abar, omab = schedule(t)
            M = np.linalg.solve(abar * S0 + omab * C, C).T
            np.matmul((h * beta) * M, x, out=s)  # h beta M x = -h beta s_theta
            rng.standard_normal(out=z)
            np.matmul(math.sqrt(beta * abs(h)) * L, z, out=w)
            x *= 1 - 0.5 * h * beta
            x += s
            x += w
        return time.perf_counter() - t0, x.reshape(tau, B, D).transpose(1, 0, 2)

    forms = {"[B, tau, D] with temporaries": naive, "[tau, B*D] with temporaries": frame_first,
             "[tau, B*D] in place (out=)": in_place}
    timed = {name: measure(f, a.repeats) for name, f in forms.items()}
    for name, ((fm, flo, fhi), _) in timed.items():
        emit("form", NAME, fm / K, flo / K, fhi / K, name)
    best = min(timed, key=lambda k: timed[k][0][0])
    (med, lo, hi), x = timed[best]
    worst = max(v[0][0] for v in timed.values())
    emit("row", NAME, med / K, lo / K, hi / K, "numpy %s, %d thread(s), fastest form: %s "
         "(%.2fx the slowest)" % (np.__version__, a.threads, best, worst / med))
    if K == N:  # the endpoint at t = 1e-3
        xf = x.transpose(1, 0, 2).reshape(tau, B * D)
        emit_cov(NAME, B * D, ((xf @ xf.T) / (B * D)).ravel())
    emit("rss", NAME, rss_kib(), base_kib)
    return 0


if __name__ == "__main__":
    sys.exit(main())
