#!/usr/bin/python3
"""Calibrate a few-step grid to a model: fit the step density in log-SNR on pilot videos.

Usage: calibrate_grid.py --nfe N [--solvers unipc,unipc3,dpmpp2m,dpmpp3m] [--pilot 256]
                         [--pilot-seed 1000] [--check 64] [--check-seed 2000] [--knots 7]
                         [--objective mean|quantile] [--quantile 0.9]
                         [--iters 400] [--out grid.json]
                         [--corrsde build/corrsde] -- PROBLEM OPTIONS OF corrsde sample

The grid of N steps puts its nodes at the quantiles of a density in lambda = logsnr/2,
  rho(lambda) = exp(p(lambda)),  p piecewise linear through (lambda_j, theta_j),
  lambda_j = K equally spaced knots from lambda(t_start) to lambda(t_end), theta_0 = 0,
  node i: integral_{lambda(t_start)}^{lambda_i} rho = (i / N) integral rho,
so theta = 0 is the logsnr grid. For each solver, theta is fitted by Nelder-Mead (SciPy,
from theta = 0 with a simplex of side 1) to the PILOT videos (the prior with --pilot-seed):
the error is against adaptive rk8pd at rtol = atol = 1e-12. The objective is the mean
(default) or a --quantile of the videos' max abs errors at the end of the PF-ODE. The
solver with the smallest fitted objective wins. The CHECK videos (another seed) then
measure the logsnr and the fitted grid on samples the fit never saw. The cost, in model evaluations of the pilot batch, is printed.

The problem options (--model, --cov, --frames, --frame-shape, --schedule, --t-start,
--t-end) follow '--' and are passed to every `corrsde sample` run. Prints the table and the
options to sample with; --out writes them as JSON (atomically). Needs SciPy and h5py
(Debian's python3-scipy, python3-h5py) and the corrsde Python package (build/python).
"""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def import_corrsde():
    try:
        import corrsde
    except ImportError:
        sys.path.insert(0, os.path.join(HERE, "..", "build", "python"))
        import corrsde
    return corrsde


class Problem:
    """corrsde sample runs on one problem, in a private scratch directory."""

    def __init__(self, exe, options, scratch):
        self.exe, self.options, self.out = exe, options, os.path.join(scratch, "run.h5")

    def run(self, seed, batch, args, fatal=True):
        """The start, the final states and the model evaluations of one run (None for a run
        that fails, unless fatal)."""
        cmd = ([self.exe, "sample", "-q", "--force", "-o", self.out, "--process", "pf-ode",
                "--seed", str(seed), "--batch", str(batch), "--save", "every:1000000"]
               + self.options + args)
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            if not fatal:
                return None
            raise SystemExit("calibrate_grid: %s\n%s" % (" ".join(cmd), r.stderr.strip()))
        with h5py.File(self.out, "r") as f:
            return (f["trajectory/t"][0], f["trajectory/t"][-1], f["trajectory/x"][-1],
                    int(f["stats"].attrs["nfe"]))

    def reference(self, seed, batch):
        return self.run(seed, batch, ["--solver", "rk8pd", "--rtol", "1e-12", "--atol", "1e-12"])


# sample options that the runs set themselves, and why
OWN = {o: "every run is a PF-ODE solve" for o in ("-p", "--process", "-s", "--solver", "-n",
                                                  "--steps", "--grid", "--rtol", "--atol")}
OWN.update({o: "--pilot-seed and --check-seed" for o in ("--seed",)})
OWN.update({o: "--pilot and --check" for o in ("-b", "--batch")})
OWN.update({o: "the runs start from the prior" for o in ("-i", "--init")})
OWN.update({o: "the runs write to a scratch directory" for o in
            ("-o", "--output", "--save", "-f", "--force", "--dtype", "--compress")})


def option(options, name, default):
    """The value of --name V or --name=V among the passed options."""
    for i, o in enumerate(options):
        if o == name and i + 1 < len(options):
            return options[i + 1]
        if o.startswith(name + "="):
            return o.split("=", 1)[1]
    return default


class Density:
    """The nodes t_0 = t_start .. t_N = t_end of the grid theta on a schedule."""

    def __init__(self, schedule, t0, t1, knots):
        from scipy.optimize import brentq
        self.s, self.t0, self.t1, self.brentq = schedule, t0, t1, brentq
        self.l0, self.l1 = 0.5 * schedule.logsnr(t0), 0.5 * schedule.logsnr(t1)
        self.knots = np.linspace(self.l0, self.l1, knots)

    def lambdas(self, theta, n):
        """Exact quantiles of the piecewise-exponential density."""
        p = np.concatenate([[0.0], np.asarray(theta, dtype=float)])
        h = np.diff(self.knots)
        dp = np.diff(p)
        # mass of segment j: int_0^h exp(p_j + dp_j x / h) dx = h e^{p_j} (e^{dp} - 1) / dp
        g = np.where(np.abs(dp) > 1e-12, np.expm1(dp) / np.where(dp == 0, 1, dp), 1 + dp / 2)
        mass = h * np.exp(p[:-1]) * g
        cum = np.concatenate([[0.0], np.cumsum(mass)])
        out = [self.l0]
        for i in range(1, n):
            m = cum[-1] * i / n
            j = min(np.searchsorted(cum, m, side="right") - 1, len(h) - 1)
            r = (m - cum[j]) / (h[j] * np.exp(p[j]))   # int_0^x e^{dp x/h} dx / h = r
            x = math.log1p(r * dp[j]) / dp[j] if abs(dp[j]) > 1e-12 else r
            out.append(self.knots[j] + x * h[j])
        out.append(self.l1)
        return np.array(out)

    def times(self, theta, n):
        lam = self.lambdas(theta, n)
        lo, hi = min(self.t0, self.t1), max(self.t0, self.t1)
        ts = [self.t0]
        for v in lam[1:-1]:
            ts.append(self.brentq(lambda t: 0.5 * self.s.logsnr(t) - v, lo, hi, xtol=1e-16,
                                  rtol=4 * np.finfo(float).eps, maxiter=200))
        ts.append(self.t1)
        return ts


def grid_spec(ts):
    return "list:" + ",".join(repr(float(t)) for t in ts)


def per_video(x, ref):
    return np.abs(x - ref).reshape(x.shape[0], -1).max(axis=1)


def main(argv):
    if "--" in argv:
        k = argv.index("--")
        argv, options = argv[:k], argv[k + 1:]
    else:
        options = []
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nfe", type=int, required=True, help="model evaluations (steps)")
    ap.add_argument("--solvers", default="unipc,unipc3,dpmpp2m,dpmpp3m",
                    help="one-evaluation-a-step PF-ODE solvers to fit (default %(default)s)")
    ap.add_argument("--pilot", type=int, default=256, help="pilot videos (default 256)")
    ap.add_argument("--pilot-seed", type=int, default=1000, help="their seed (default 1000)")
    ap.add_argument("--check", type=int, default=64, help="check videos (default 64; 0: none)")
    ap.add_argument("--check-seed", type=int, default=2000, help="their seed (default 2000)")
    ap.add_argument("--knots", type=int, default=7, help="density knots, >= 2 (default 7)")
    ap.add_argument("--objective", choices=("mean", "quantile"), default="mean",
                    help="the videos' max abs errors: their mean (default) or --quantile")
    ap.add_argument("--quantile", type=float, default=0.9,
                    help="with --objective quantile: this quantile (default 0.9)")
    ap.add_argument("--iters", type=int, default=400,
                    help="Nelder-Mead evaluations per solver (default 400)")
    ap.add_argument("--corrsde", default=os.path.join(HERE, "..", "build", "corrsde"))
    ap.add_argument("--out", help="write the result as JSON here")
    a = ap.parse_args(argv)
    if a.nfe < 2:
        ap.error("--nfe: needs at least 2 steps, got %d" % a.nfe)
    if a.knots < 2:
        ap.error("--knots: needs at least 2, got %d" % a.knots)
    if a.pilot < 1 or a.check < 0 or a.iters < 1:
        ap.error("--pilot and --iters must be >= 1 and --check >= 0")
    if not 0 < a.quantile <= 1:
        ap.error("--quantile: must be in (0, 1], got %g" % a.quantile)
    for o in options:
        name = o.split("=", 1)[0]
        if name in OWN:
            ap.error("the problem options: %s is calibrate_grid's to set (%s)"
                     % (name, OWN[name]))
    solvers = [s for s in a.solvers.split(",") if s]
    corrsde = import_corrsde()
    known = corrsde.solvers()
    for s in solvers:
        if s not in known or "pf-ode" not in known[s]["processes"]:
            ap.error("--solvers: %r is not a PF-ODE solver (corrsde sample --help lists them)"
                     % s)
    from scipy.optimize import minimize
    sched = corrsde.Schedule(option(options, "--schedule", "vp-linear"))

    with tempfile.TemporaryDirectory(prefix="calibrate_grid.") as scratch:
        prob = Problem(a.corrsde, options, scratch)
        t0, t1, pref, pcost = prob.reference(a.pilot_seed, a.pilot)
        dens = Density(sched, float(t0), float(t1), a.knots)
        evals = [0]

        def objective(theta, solver):
            # a density whose nodes collide or overflow, or a run that fails: +inf
            fatal = not np.any(theta)
            with np.errstate(all="ignore"):
                lam = dens.lambdas(theta, a.nfe)
            if not (np.all(np.isfinite(lam)) and np.all(np.diff(lam) > 0)):
                return math.inf
            ts = dens.times(theta, a.nfe)
            if not all(t0 > t1 for t0, t1 in zip(ts, ts[1:])):
                return math.inf
            got = prob.run(a.pilot_seed, a.pilot, ["--solver", solver, "--steps", str(a.nfe),
                                                   "--grid", grid_spec(ts)], fatal)
            if got is None:
                return math.inf
            _, _, x, nfe = got
            evals[0] += nfe
            if nfe != a.nfe:
                raise SystemExit("calibrate_grid: --solvers: %s took %d model evaluations for "
                                 "%d steps; the fit needs one a step (unipc, unipc3, dpmpp2m, "
                                 "dpmpp3m, ipndm)" % (solver, nfe, a.nfe))
            e = per_video(x, pref)
            v = e.mean() if a.objective == "mean" else np.quantile(e, a.quantile)
            return math.log(v) if np.isfinite(v) and v > 0 else math.inf

        fits = []
        zero = np.zeros(a.knots - 1)
        simplex = np.vstack([zero, np.eye(a.knots - 1)])
        for s in solvers:
            f0 = objective(zero, s)
            r = minimize(objective, zero, args=(s,), method="Nelder-Mead",
                         options=dict(maxfev=a.iters, initial_simplex=simplex, xatol=1e-3,
                                      fatol=1e-4))
            th, f = (r.x, r.fun) if r.fun <= f0 else (zero, f0)
            fits.append(dict(solver=s, theta=[float(v) for v in th], pilot_logsnr=math.exp(f0),
                             pilot_fitted=math.exp(f)))
        best = min(fits, key=lambda d: d["pilot_fitted"])
        if a.check:
            _, _, cref, ccost = prob.reference(a.check_seed, a.check)
            for d in fits:
                for key, th in (("check_logsnr", zero), ("check_fitted", d["theta"])):
                    ts = dens.times(th, a.nfe)
                    _, _, x, _ = prob.run(a.check_seed, a.check, ["--solver", d["solver"],
                                          "--steps", str(a.nfe), "--grid", grid_spec(ts)])
                    d[key] = float(per_video(x, cref).max())
    ts = dens.times(best["theta"], a.nfe)
    what = "mean" if a.objective == "mean" else "quantile %g" % a.quantile
    result = dict(nfe=a.nfe, solver=best["solver"], grid=grid_spec(ts), theta=best["theta"],
                  knots=a.knots, objective=what, pilot=a.pilot, pilot_seed=a.pilot_seed,
                  cost_reference_nfe=pcost, cost_fit_nfe=evals[0], fits=fits,
                  options=options)
    print("Fitted %d-step grids (objective: the %s of the max abs errors of %d pilot "
          "videos, seed %d; %s):" % (a.nfe, what, a.pilot, a.pilot_seed,
                                     "max over %d check videos, seed %d" % (a.check, a.check_seed)
                                     if a.check else "no check videos"))
    print()
    print("| solver | pilot, logsnr | pilot, fitted | check, logsnr | check, fitted |")
    print("|---|---:|---:|---:|---:|")
    for d in fits:
        print("| %s | %.3g | %.3g | %s | %s |" % (
            d["solver"], d["pilot_logsnr"], d["pilot_fitted"],
            "%.3g" % d["check_logsnr"] if "check_logsnr" in d else "-",
            "%.3g" % d["check_fitted"] if "check_fitted" in d else "-"))
    print()
    print("Cost: %d model evaluations for the pilot reference, %d for the fit (each on %d "
          "videos)." % (pcost, evals[0], a.pilot))
    print("Sample with: --process pf-ode --solver %s --steps %d --grid %s" %
          (best["solver"], a.nfe, result["grid"]))
    if a.out:
        d = os.path.dirname(os.path.abspath(a.out))
        fd, tmp = tempfile.mkstemp(dir=d, prefix=".calibrate_grid.")
        with os.fdopen(fd, "w") as f:
            json.dump(result, f, indent=1)
        os.replace(tmp, a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
