#!/usr/bin/env python3
"""Baseline for `corrsde-bench sde`: the PF-ODE solved with scipy.integrate.solve_ivp (RK45).

    ode_scipy.py --x0 FILE --exact FILE [--batch 4] [--tau 16] [--D 4096]
                 [--rtol 1e-5] [--atol 1e-5] [--threads 1] [--repeats 3]

FILEs hold B*tau*D raw little-endian float64 values: the state at t = 1 and the exact
PF-ODE endpoint at t = 1e-3. Drift f(t, x) = -0.5 beta(t) (x - M_t x), M_t = C Sigma_t^-1,
C_ij = 0.9^|i-j|, Sigma_t = abar S0 + (1 - abar) C, S0_ij = 0.25 * 0.95^|i-j|, vp-linear
schedule (bmin 0.1, bmax 20); one matmul per evaluation on the (B, tau, D) view of the
flattened state, as score_sde's ODE sampler wraps its drift, and, the second form, on a
frame-first [tau, B*D] state with one GEMM; the faster form is the row. For each, one
untimed warm-up solve, then R timed solves. Output (tab-separated, one per line):

    form <TAB> scipy solve_ivp RK45 <TAB> median_s <TAB> min_s <TAB> max_s <TAB> form name
    ode <TAB> scipy solve_ivp RK45 <TAB> median_s <TAB> min_s <TAB> max_s <TAB> nfev
        <TAB> max_abs_err <TAB> rms_err <TAB> note
    rss <TAB> scipy solve_ivp RK45 <TAB> peak_kib <TAB> base_kib
    skip <TAB> scipy solve_ivp RK45 <TAB> reason

Times are seconds per whole solve; errors are of the endpoint against --exact. `rss` is
ru_maxrss at exit and before the arrays were loaded. Missing numpy/scipy: `skip`, exit 0;
unreadable or wrong-sized FILE: `skip` plus a message on stderr, exit 2.
"""
import argparse
import math
import os
import statistics
import sys
import time

from problem import EPS, T, emit, emit_skip, lags, rss_kib, schedule

NAME = "scipy solve_ivp RK45"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--x0", required=True, help="initial state at t = 1 (raw float64)")
    ap.add_argument("--exact", required=True, help="exact endpoint at t = 1e-3 (raw float64)")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--tau", type=int, default=16)
    ap.add_argument("--D", type=int, default=4096)
    ap.add_argument("--rtol", type=float, default=1e-5)
    ap.add_argument("--atol", type=float, default=1e-5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()

    for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[v] = str(a.threads)
    try:
        import numpy as np
        import scipy
        from scipy.integrate import solve_ivp
    except ImportError as e:
        emit_skip(NAME, e)
        return 0

    B, tau, D = a.batch, a.tau, a.D
    lag = np.array(lags(tau))
    C = 0.9 ** lag
    S0 = 0.25 * 0.95 ** lag
    base_kib = rss_kib()

    arrays = []
    for path in (a.x0, a.exact):
        try:
            v = np.fromfile(path, dtype="<f8")
            if v.size != B * tau * D:
                raise ValueError("%d values, expected B*tau*D = %d" % (v.size, B * tau * D))
        except (OSError, ValueError) as e:
            emit_skip(NAME, "cannot read %s: %s" % (path, e))
            print("ode_scipy.py: cannot read %s: %s" % (path, e), file=sys.stderr)
            return 2
        arrays.append(v)
    y0, exact = arrays

    def drift(t, y):  # -1/2 beta (x + s), s = -C Sigma_t^-1 x, on the [B, tau, D] view
        x = y.reshape(B, tau, D)
        beta, abar, omab = schedule(t)
        M = np.linalg.solve(abar * S0 + omab * C, C).T  # C Sigma_t^-1
        return (-0.5 * beta * (x - M @ x)).ravel()

    def drift_ff(t, y):  # the same on a frame-first state [tau, B*D]: one 2-D GEMM,
        # -1/2 beta (I - M) folded into one tau x tau matrix
        beta, abar, omab = schedule(t)
        M = np.linalg.solve(abar * S0 + omab * C, C).T
        return ((-0.5 * beta) * (np.eye(tau) - M) @ y.reshape(tau, B * D)).ravel()

    ff = lambda v: v.reshape(B, tau, D).transpose(1, 0, 2).ravel()  # to frame-first
    forms = {"[B, tau, D] view": (drift, y0, exact),
             "[tau, B*D] view, one GEMM": (drift_ff, ff(y0), ff(exact))}
    res = {}
    for name, (f, y, ex) in forms.items():
        solve = lambda: solve_ivp(f, (T, EPS), y, method="RK45", rtol=a.rtol, atol=a.atol)
        solve()  # warm-up
        times = []
        for _ in range(a.repeats):
            t0 = time.perf_counter()
            sol = solve()
            times.append(time.perf_counter() - t0)
        if not sol.success:
            print("ode_scipy.py: solve_ivp: %s" % sol.message, file=sys.stderr)
        res[name] = (statistics.median(times), min(times), max(times), sol, ex)
        emit("form", NAME, res[name][0], res[name][1], res[name][2], name)
    best = min(res, key=lambda k: res[k][0])
    med, lo, hi, sol, ex = res[best]
    worst = max(v[0] for v in res.values())
    err = sol.y[:, -1] - ex
    emit("ode", NAME, med, lo, hi, sol.nfev,
         float(np.abs(err).max()), math.sqrt(float(np.mean(err * err))),
         "scipy %s, numpy %s, rtol %g atol %g, %d thread(s), fastest form: %s (%.2fx the "
         "slowest)" % (scipy.__version__, np.__version__, a.rtol, a.atol, a.threads, best,
                       worst / med))
    emit("rss", NAME, rss_kib(), base_kib)
    return 0


if __name__ == "__main__":
    sys.exit(main())
