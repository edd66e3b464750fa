#!/usr/bin/env python3
"""Baseline for `corrsde-bench sde`: one reverse-SDE Euler-Maruyama step in torch (CPU).

    sde_torch.py [--side 64] [--steps 100] [--batch 4] [--tau 16] [--threads 1]
                 [--repeats 5] [--seed 1] [--timed-steps K]

Same problem as sde_numpy.py: state x of shape (B, tau, D = side^2), float64 on CPU;
C_ij = 0.9^|i-j|, S0_ij = 0.25 * 0.95^|i-j|, vp-linear schedule (bmin 0.1, bmax 20),
N uniform steps from t = 1 down to 1e-3, score s = -M_t x with M_t = C Sigma_t^-1.
Each step: a tau x tau torch.linalg.solve, torch.matmul for the score, torch.randn
(seeded torch.Generator), torch.matmul with chol(C), the update; under
torch.inference_mode(), torch.set_num_threads(--threads). The step is written in three
forms ([B, tau, D] matmul, [tau, B*D] mm, [B, tau, D] bmm; temporaries or out= and
in-place updates): each is timed warm, the fastest is the row. The initial draw is not
timed; one untimed warm-up run, then R timed runs of the step loop. Output
(tab-separated, one per line):

    form <TAB> torch em step <TAB> median_s <TAB> min_s <TAB> max_s <TAB> form name
    row <TAB> torch em step <TAB> median_s <TAB> min_s <TAB> max_s <TAB> note
    cov <TAB> torch em step <TAB> N <TAB> v_00 ... v_(tau-1)(tau-1)
    rss <TAB> torch em step <TAB> peak_kib <TAB> base_kib
    skip <TAB> torch em step <TAB> reason

Times are seconds per step (loop time / steps run; --timed-steps K runs the first K of
the N steps only, and prints no cov line). `cov` is the uncentred frame second
moment of the last timed endpoint over the N = B*D (sample, pixel) pairs, row-major.
`rss` is ru_maxrss at exit and before any state-sized tensor was allocated.
"""
import math
import os
import sys
import time

from problem import emit, emit_cov, emit_skip, lags, measure, rss_kib, schedule, sde_args, \
    uniform_step

NAME = "torch em step"


def main():
    a = sde_args(__doc__)
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
    os.environ["OMP_NUM_THREADS"] = str(a.threads)
    try:
        import torch
    except ImportError as e:
        emit_skip(NAME, e)
        return 0
    torch.set_num_threads(a.threads)

    tau, D, B, N = a.tau, a.side * a.side, a.batch, a.steps
    K = a.run_steps  # the steps run and timed (per-step times are loop time / K)
    f64 = torch.float64
    lag = torch.tensor(lags(tau), dtype=f64)
    C = 0.9 ** lag
    S0 = 0.25 * 0.95 ** lag
    L = torch.linalg.cholesky(C)
    gen = torch.Generator().manual_seed(a.seed)
    base_kib = rss_kib()

    # The forms a competent PyTorch user would write (bench/README.md): every one is timed
    # warm, the fastest is the row. Each returns (seconds, endpoint as [B, tau, D]).
    @torch.inference_mode()
    def naive():  # [B, tau, D], broadcasting torch.matmul, new tensors
        x = torch.matmul(L, torch.randn((B, tau, D), generator=gen, dtype=f64))  # untimed
        t0 = time.perf_counter()
        for n in range(K):
            t, h = uniform_step(n, N)
            beta, abar, omab = schedule(t)
            M = torch.linalg.solve(abar * S0 + omab * C, C).T  # C Sigma_t^-1
            s = -torch.matmul(M, x)
            z = torch.randn((B, tau, D), generator=gen, dtype=f64)
            x = x + h * (-0.5 * beta * x - beta * s) + math.sqrt(beta * abs(h)) * torch.matmul(L, z)
        return time.perf_counter() - t0, x

    @torch.inference_mode()
    def in_place():  # [tau, B*D], torch.mm(out=), randn(out=), in-place updates; the
        # update's scalars folded into the tau x tau matrices (as sde_numpy.py)
        x = torch.mm(L, torch.randn((tau, B * D), generator=gen, dtype=f64))
        s, z, w = (torch.empty_like(x) for _ in range(3))
        for b in (s, z, w):  # touch the pages now: first-touch faults are not the step's
            b.zero_()
        t0 = time.perf_counter()
        for n in range(K):
            t, h = uniform_step(n, N)
            beta, abar, omab = schedule(t)
            M = torch.linalg.solve(abar * S0 + omab * C, C).T
            torch.mm((h * beta) * M, x, out=s)  # h beta M x
            torch.randn((tau, B * D), generator=gen, dtype=f64, out=z)
            torch.mm(math.sqrt(beta * abs(h)) * L, z, out=w)
            x.mul_(1 - 0.5 * h * beta).add_(s).add_(w)
        return time.perf_counter() - t0, x.reshape(tau, B, D).transpose(0, 1)

    @torch.inference_mode()
    def batched():  # [B, tau, D], torch.bmm(out=) against the expanded matrix, in place
        x = torch.matmul(L, torch.randn((B, tau, D), generator=gen, dtype=f64))
        s, z, w = (torch.empty_like(x) for _ in range(3))
        for b in (s, z, w):  # touch the pages now: first-touch faults are not the step's
            b.zero_()
        t0 = time.perf_counter()
        for n in range(K):
            t, h = uniform_step(n, N)
            beta, abar, omab = schedule(t)
            M = torch.linalg.solve(abar * S0 + omab * C, C).T
            torch.bmm(((h * beta) * M).expand(B, tau, tau), x, out=s)
            torch.randn((B, tau, D), generator=gen, dtype=f64, out=z)
            torch.bmm((math.sqrt(beta * abs(h)) * L).expand(B, tau, tau), z, out=w)
            x.mul_(1 - 0.5 * h * beta).add_(s).add_(w)
        return time.perf_counter() - t0, x

    forms = {"[B, tau, D] matmul with temporaries": naive,
             "[tau, B*D] mm(out=), in place": in_place,
             "[B, tau, D] bmm(out=), in place": batched}
    timed = {name: measure(f, a.repeats) for name, f in forms.items()}
    for name, ((fm, flo, fhi), _) in timed.items():
        emit("form", NAME, fm / K, flo / K, fhi / K, name)
    best = min(timed, key=lambda k: timed[k][0][0])
    (med, lo, hi), x = timed[best]
    worst = max(v[0][0] for v in timed.values())
    emit("row", NAME, med / K, lo / K, hi / K, "torch %s, %d thread(s), fastest form: %s "
         "(%.2fx the slowest)" % (torch.__version__, a.threads, best, worst / med))
    if K == N:  # the endpoint at t = 1e-3
        xf = x.transpose(0, 1).reshape(tau, B * D)
        emit_cov(NAME, B * D, ((xf @ xf.T) / (B * D)).flatten().tolist())
    emit("rss", NAME, rss_kib(), base_kib)
    return 0


if __name__ == "__main__":
    sys.exit(main())
