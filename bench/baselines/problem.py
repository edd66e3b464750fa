"""What the corrsde-bench baselines share: the benchmark's problem, the timing and the
tab-separated output lines that corrsde-bench parses (bench/README.md).

The problem: C_ij = 0.9^|i-j|, data covariance S0_ij = 0.25 * 0.95^|i-j| (mean 0), the
vp-linear schedule (bmin 0.1, bmax 20), time from T = 1 down to EPS = 1e-3. Standard library
only, so that a script can import it before setting its thread variables and importing
NumPy or PyTorch.
"""
import argparse
import math
import resource
import statistics

BMIN, BMAX, T, EPS = 0.1, 20.0, 1.0, 1e-3


def lags(tau):
    """|i - j| for i, j < tau, as nested lists (C = 0.9 ** lags, S0 = 0.25 * 0.95 ** lags)."""
    return [[abs(i - j) for j in range(tau)] for i in range(tau)]


def schedule(t):
    """beta(t), abar(t) = exp(-B(t)) and 1 - abar(t) = -expm1(-B(t)) of vp-linear."""
    Bt = BMIN * t + 0.5 * (BMAX - BMIN) * t * t
    return BMIN + t * (BMAX - BMIN), math.exp(-Bt), -math.expm1(-Bt)


def uniform_step(n, N):
    """Time t_n and signed step h = t_(n+1) - t_n of the uniform N-step grid, T to EPS."""
    t = T + n * (EPS - T) / N
    return t, (T + (n + 1) * (EPS - T) / N) - t


def sde_args(doc):
    """The SDE scripts' options."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--side", type=int, default=64)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--tau", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--timed-steps", type=int, default=0,
                    help="run (and time) only the first K of the N steps (default: all; "
                         "then no endpoint moments are printed)")
    a = ap.parse_args()
    a.run_steps = a.timed_steps if 0 < a.timed_steps < a.steps else a.steps
    return a


def measure(run, repeats):
    """One untimed warm-up, then `repeats` calls of run() -> (seconds, result):
    ((median, min, max), the last result)."""
    run()
    t, x = [], None
    for _ in range(repeats):
        dt, x = run()
        t.append(dt)
    return (statistics.median(t), min(t), max(t)), x


def rss_kib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def emit(kind, name, *fields):
    """One tab-separated line: kind, name, fields (floats with %.9g)."""
    out = [kind, name] + [("%.9g" % f) if isinstance(f, float) else str(f) for f in fields]
    print("\t".join(out), flush=True)


def emit_skip(name, reason):
    emit("skip", name, str(reason).replace("\t", " ").replace("\n", " "))


def emit_cov(name, n, values):
    """The endpoint's frame second moment, row-major, full precision."""
    print("cov\t%s\t%d\t%s" % (name, n, "\t".join("%.17g" % v for v in values)), flush=True)
