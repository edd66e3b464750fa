#!/usr/bin/python3
"""The few-step table: which sampler and grid to use at 5, 10, 20 and 40 model evaluations.

Usage: fewstep.py [--corrsde build/corrsde] [--out-dir results/fewstep] [--tau 8] [--pixels 16]
                  [--batch 8] [--seed 1] [--nfe 5,10,20,40] [--quick] [--schedule SPEC]
                  [--kdiffusion PATH]

The problem: the PF-ODE of a 4-component Gaussian mixture (`--model gmm:file=...`) with means
that change along the frames, frame covariances of other shapes and sizes than the noise's
C = ar1:rho=0.9, and unequal weights: its score is nonlinear in x. tau = 8 frames of D = 16
pixels, 8 videos from the prior (seed 1). The reference: rk8pd, adaptive, rtol = atol =
1e-12. Every solver in the registry that fits the PF-ODE, and DDIM (--process ddim), runs
with the largest number of fixed steps whose model evaluations fit each budget, on each of
the grids karras, logsnr, uniform and quadratic; the figure is the largest absolute error
of the final states. Writes fewstep.csv and fewstep.md (the tables) in --out-dir and prints
the tables. Needs h5py (Debian's python3-h5py).

--schedule SPEC runs the same table on another path (`rf:shift=3`, `edm`, ...; default: the
CLI's, vp-linear) over the span the CLI picks for it (rf: 0.999 -> 1e-3). --kdiffusion PATH
adds k-diffusion's ODE samplers (euler, heun, dpm_2, lms, dpmpp_2m) from a checkout of
github.com/crowsonkb/k-diffusion at PATH, loaded by file path with stub modules for what it
imports but these samplers do not use (experiments/fewstep_kd.py says how; needs torch and
corrsde's Python package, build/python beside --corrsde), on the same grids from the same
prior draws, each with the gmm's exact denoiser in k-diffusion's convention x_ve = x/alpha,
sigma_ve = sigma/alpha; without the option those rows are skipped with a message.
"""
import argparse
import csv
import os
import subprocess
import sys

import h5py
import numpy as np

GRIDS = ("karras", "logsnr", "uniform", "quadratic")
# (label, --process, --solver, model evaluations per step)
SAMPLERS = (
    ("ddim", "ddim", None, 1),
    ("euler", "pf-ode", "euler", 1),
    ("heun", "pf-ode", "heun", 2),
    ("edm-heun", "pf-ode", "edm-heun", 2),
    ("dpmpp2m", "pf-ode", "dpmpp2m", 1),
    ("dpmpp3m", "pf-ode", "dpmpp3m", 1),
    ("unipc", "pf-ode", "unipc", 1),
    ("unipc3", "pf-ode", "unipc3", 1),
    ("ipndm", "pf-ode", "ipndm", 1),
    ("rk45", "pf-ode", "rk45", 6),
    ("rkck", "pf-ode", "rkck", 6),
    ("dopri5", "pf-ode", "dopri5", 6),
)


def write_gmm(path, tau):
    """4 components: per-frame means, covariances unlike C (other rho, other scale)."""
    k = np.arange(tau)
    lag = np.abs(k[:, None] - k[None, :])
    weights = np.array([0.4, 0.3, 0.2, 0.1])
    means = np.stack([np.linspace(-0.8, -0.2, tau), np.linspace(0.6, 0.1, tau),
                      0.5 * np.sin(np.pi * k / max(tau - 1, 1)), np.full(tau, 1.2)])
    covs = np.stack([0.09 * 0.6 ** lag, 0.04 * 0.97 ** lag, 0.16 * 0.3 ** lag,
                     0.01 * np.eye(tau) + 0.02 * 0.8 ** lag])
    with h5py.File(path, "w") as f:
        f["weights"] = weights
        f["means"] = means
        f["frame_covs"] = covs


def run(exe, out, args):
    """corrsde sample ... -o out; the final state, and the model evaluations."""
    cmd = [exe, "sample", "-q", "--force", "-o", out] + args
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("%s: %s" % (" ".join(cmd), r.stderr.strip()))
    with h5py.File(out, "r") as f:
        return f["trajectory/x"][-1], int(f["stats"].attrs["nfe"])


def load_corrsde(exe):
    """corrsde's Python package: build/python beside the CLI, else whatever is importable."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(exe)), "python"))
    import corrsde
    return corrsde


def table(lines, rows, labels, grids, nfe):
    """One budget's table of errors (best cell in bold); returns the best row."""
    lines.append("| sampler | " + " | ".join(grids) + " |")
    lines.append("|---|" + "---:|" * len(grids))
    best = min((r for r in rows if r[2] == nfe and r[3] > 0), key=lambda r: r[5])
    for label in labels:
        cells = []
        for grid in grids:
            r = next(r for r in rows if r[0] == label and r[1] == grid and r[2] == nfe)
            cell = "-" if r[3] == 0 else "%.2g" % r[5]
            cells.append("**%s**" % cell if r is best else cell)
        lines.append("| %s | %s |" % (label, " | ".join(cells)))
    lines.append("")
    return best


def on_best_grid(rows, label, nfe):
    """(error, grid) of a sampler on its best grid at a budget, or None."""
    c = [r for r in rows if r[0] == label and r[2] == nfe and r[3] > 0]
    if not c:
        return None
    r = min(c, key=lambda r: r[5])
    return r[5], r[1]


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--corrsde", default=os.path.join(here, "..", "build", "corrsde"))
    ap.add_argument("--out-dir", default="results/fewstep")
    ap.add_argument("--tau", type=int, default=8)
    ap.add_argument("--pixels", type=int, default=16)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--nfe", default="5,10,20,40")
    ap.add_argument("--quick", action="store_true", help="two grids, budgets 5 and 20")
    ap.add_argument("--schedule", default=None,
                    help="the path (corrsde's --schedule; default: the CLI's, vp-linear)")
    ap.add_argument("--kdiffusion", default=None, metavar="PATH",
                    help="a checkout of k-diffusion: add its ODE samplers' rows")
    a = ap.parse_args(argv)
    budgets = [int(v) for v in a.nfe.split(",")]
    grids = GRIDS
    if a.quick:
        budgets, grids = [5, 20], ("logsnr", "uniform")
    os.makedirs(a.out_dir, exist_ok=True)
    gmm = os.path.join(a.out_dir, "gmm.h5")
    write_gmm(gmm, a.tau)
    base = ["--model", "gmm:file=" + gmm, "--cov", "ar1:rho=0.9", "--frames", str(a.tau),
            "--frame-shape", str(a.pixels), "--batch", str(a.batch), "--seed", str(a.seed)]
    if a.schedule is not None:
        base += ["--schedule", a.schedule]
    tmp = os.path.join(a.out_dir, "run.h5")
    ref_args = base + ["--process", "pf-ode", "--solver", "rk8pd", "--rtol", "1e-12",
                       "--atol", "1e-12"]
    ref, ref_nfe = run(a.corrsde, tmp, ref_args)
    with h5py.File(tmp, "r") as f:   # the span the CLI picked: T -> eps
        T, eps = float(f["parameters"].attrs["T"]), float(f["parameters"].attrs["eps"])
    rows, ends = [], {}
    for label, process, solver, per in SAMPLERS:
        for grid in grids:
            for nfe in budgets:
                steps = nfe // per
                if steps < 1:
                    rows.append((label, grid, nfe, 0, 0, float("nan")))
                    continue
                args = base + ["--process", process, "--steps", str(steps), "--grid", grid]
                if solver:
                    args += ["--solver", solver]
                x, used = run(a.corrsde, tmp, args)
                ends[(label, grid, nfe)] = x
                rows.append((label, grid, nfe, steps, used, float(np.abs(x - ref).max())))
    kd_rows, kd_lines = [], []
    if a.kdiffusion is None:
        print("fewstep.py: no --kdiffusion PATH: the k-diffusion rows are skipped",
              file=sys.stderr)
    else:
        import fewstep_kd
        corrsde = load_corrsde(a.corrsde)
        kd = fewstep_kd.load_sampling(a.kdiffusion)
        # the prior draws x_T of the reference run (its first saved state)
        run(a.corrsde, tmp, ref_args + ["--save", "every:1000000"])
        with h5py.File(tmp, "r") as f:
            xT = f["trajectory/x"][0]
            assert f["trajectory/t"][0] == T
        sched = corrsde.Schedule(a.schedule or "vp-linear")
        cov = corrsde.Cov("ar1:rho=0.9", frames=a.tau)
        with h5py.File(gmm, "r") as f:
            x0 = fewstep_kd.GmmX0(f["weights"][()], f["means"][()], f["frame_covs"][()],
                                  cov.matrix, sched)
        kd_lines = fewstep_kd.check(kd, x0, sched, xT, ref, T, eps, cov, ref_nfe)
        kd_rows = fewstep_kd.rows(kd, x0, sched, xT, ref, T, eps, budgets, ends)
        kd_lines += fewstep_kd.twins(ends, grids, budgets)
    os.remove(tmp)
    with open(os.path.join(a.out_dir, "fewstep.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["sampler", "grid", "nfe_budget", "steps", "nfe", "max_abs_error"])
        for r in rows + kd_rows:
            w.writerow([r[0], r[1], r[2], r[3], r[4], "%.6e" % r[5]])
    lines = ["Max abs error of the final states (gmm PF-ODE, tau %d, D %d, %d videos; reference "
             "rk8pd adaptive at 1e-12, %d evaluations). Steps = the budget / evaluations per "
             "step; '-' : not one step fits." % (a.tau, a.pixels, a.batch, ref_nfe), ""]
    if a.schedule is not None:
        lines[0:0] = ["Path: --schedule %s, from T = %g to eps = %g (the CLI's span)."
                      % (a.schedule, T, eps), ""]
    labels = [s[0] for s in SAMPLERS]
    bests = {}
    for nfe in budgets:
        lines.append("NFE %d:" % nfe)
        lines.append("")
        best = bests[nfe] = table(lines, rows, labels, grids, nfe)
        lines.append("Best at NFE %d: %s on the %s grid (%d steps), %.2g." %
                     (nfe, best[0], best[1], best[3], best[5]))
        lines.append("")
    if kd_rows:
        lines += ["k-diffusion (%s), the same problem and prior draws, its denoiser the gmm's "
                  "exact x0 at x = alpha x_ve, t = t(lambda = -log sigma_ve); errors of "
                  "alpha(eps) x_ve at sigma_ve(eps) (karras+0: of alpha(eps) x_ve at sigma = 0, "
                  "k-diffusion's default end). Steps: the budget / calls per step (karras+0: "
                  "the last step, to 0, is one call)." % a.kdiffusion, ""]
        lines += kd_lines + [""]
        kd_labels = [s[0] for s in fewstep_kd.KD_SAMPLERS]
        kd_best = {}
        for nfe in budgets:
            lines.append("k-diffusion, NFE %d:" % nfe)
            lines.append("")
            kd_best[nfe] = table(lines, kd_rows, kd_labels, fewstep_kd.KD_GRIDS, nfe)
        pick = ("dpmpp2m", "unipc", "unipc3", "dpmpp3m", "heun", "kd-dpmpp2m", "kd-heun",
                "kd-lms", "kd-euler")
        lines.append("%s: best corrsde sampler/grid against best k-diffusion sampler/grid, and "
                     "each sampler on its best grid:" % (a.schedule or "vp-linear"))
        lines.append("")
        lines.append("| NFE | best corrsde | error | best k-diffusion | error | " +
                     " | ".join(pick) + " |")
        lines.append("|---:|---|---:|---|---:|" + "---:|" * len(pick))
        for nfe in budgets:
            b, k = bests[nfe], kd_best[nfe]
            cells = []
            for p in pick:
                v = on_best_grid(rows + kd_rows, p, nfe)
                cells.append("-" if v is None else "%.2g (%s)" % v)
            lines.append("| %d | %s, %s (%d) | %.2g | %s, %s (%d) | %.2g | %s |" % (
                nfe, b[0], b[1], b[3], b[5], k[0], k[1], k[3], k[5], " | ".join(cells)))
        lines.append("")
    text = "\n".join(lines)
    with open(os.path.join(a.out_dir, "fewstep.md"), "w") as f:
        f.write(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
