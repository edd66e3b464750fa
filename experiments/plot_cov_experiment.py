#!/usr/bin/python3
"""Plot the covariance experiment (`cov_experiment`): exact Toeplitz C vs its circulants.

    python3 experiments/plot_cov_experiment.py                      # results/cov_experiment.csv
    python3 experiments/plot_cov_experiment.py --csv R.csv -o R.png

Reads the CSV that `cov_experiment` writes (lines starting with '#' are metadata) and draws
three log-log panels against tau, one colour per kernel:
  1. KL per frame, KL(N(0, C) || N(0, circ)) / tau, for T. Chan (solid) and Strang (dashed);
  2. the effect on samples: the relative Frobenius error of the PF-ODE end state's frame
     covariance, with the floor of the exact prior N(0, C) (dotted);
  3. the end state's correlation of the first and last frames (linear axis): what the
     circulant's wrap-around does to a generated video; dotted: the exact value.
Strang circulants the library refused as indefinite are listed in the first panel.
It also prints the log-log slope between the two largest taus of each curve.
Needs python3-numpy and python3-matplotlib (Agg backend: no display needed).
"""
import argparse
import csv
import math
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
import numpy as np  # noqa: E402

METHODS = {"tchan": ("T. Chan", "-", "o"), "strang": ("Strang", "--", "s"),
           "exact": ("exact C", ":", ".")}


def read(path):
    meta = []
    with open(path, newline="") as f:
        lines = []
        for line in f:
            if line.startswith("#"):
                meta.append(line[1:].strip())
            else:
                lines.append(line)
    rows = list(csv.DictReader(lines))
    if not rows:
        sys.exit(f"plot_cov_experiment: {path} has no rows")
    for r in rows:
        r["tau"] = int(r["tau"])
        for k in ("kl_per_frame", "cov_err_fro", "cov_err_max", "corr_first_last",
                  "kl_end_per_frame"):
            r[k] = float(r[k])
    return rows, meta


def series(rows, kernel, method, key):
    pts = sorted((r["tau"], r[key]) for r in rows
                 if r["kernel"] == kernel and r["method"] == method and r["status"] == "ok"
                 and math.isfinite(r[key]))
    return np.array([p[0] for p in pts]), np.array([p[1] for p in pts])


def slope(t, v):
    if len(t) < 2 or v[-1] <= 0 or v[-2] <= 0:
        return float("nan")
    return math.log(v[-1] / v[-2]) / math.log(t[-1] / t[-2])


def guide(ax, taus, y0, p, label):
    """A reference line tau^p through (taus[0], y0)."""
    t = np.array([taus[0], taus[-1]], dtype=float)
    ax.plot(t, y0 * (t / t[0]) ** p, color="0.55", lw=1, ls=(0, (1, 2)))
    ax.text(t[-1], y0 * (t[-1] / t[0]) ** p * 1.15, label, color="0.4", fontsize=8,
            va="bottom", ha="right")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--csv", default="results/cov_experiment.csv", help="cov_experiment's CSV")
    ap.add_argument("-o", "--out", default="results/cov_experiment.png", help="the PNG to write")
    a = ap.parse_args()
    rows, meta = read(a.csv)

    kernels = list(dict.fromkeys(r["kernel"] for r in rows))
    taus = sorted({r["tau"] for r in rows})
    colors = plt.get_cmap("tab10").colors
    fig, axs = plt.subplots(1, 3, figsize=(17, 5.6), constrained_layout=True)
    ax_kl, ax_err, ax_corr = axs

    print(f"{'kernel':24s} {'method':7s} {'KL slope':>9s} {'err slope':>9s}   "
          f"(log-log, between the two largest taus)")
    refused = []
    for ki, kern in enumerate(kernels):
        c = colors[ki % len(colors)]
        for m, (mname, ls, mk) in METHODS.items():
            if m != "exact":
                t, v = series(rows, kern, m, "kl_per_frame")
                ax_kl.plot(t, v, ls=ls, marker=mk, ms=4, color=c, label=f"{kern}, {mname}")
                kls = slope(t, v)
            else:
                kls = float("nan")
            t, v = series(rows, kern, m, "cov_err_fro")
            ax_err.plot(t, v, ls=ls, marker=mk, ms=4 if m != "exact" else 6, color=c,
                        lw=1.5 if m != "exact" else 1.2)
            es = slope(t, v)
            t, v = series(rows, kern, m, "corr_first_last")
            ax_corr.plot(t, v, ls=ls, marker=mk, ms=4 if m != "exact" else 6, color=c)
            print(f"{kern:24s} {m:7s} {kls:9.2f} {es:9.2f}")
        bad = sorted(r["tau"] for r in rows
                     if r["kernel"] == kern and r["method"] == "strang" and r["status"] == "refused")
        if bad:
            refused.append(f"{kern}: tau {', '.join(map(str, bad))}")

    ax_kl.set_title("KL per frame  KL(N(0,C) || N(0,circ)) / tau")
    ax_kl.set_xscale("log", base=2)
    ax_kl.set_yscale("log")
    ax_kl.set_xlabel("tau (frames)")
    ax_kl.set_ylabel("KL / tau (nats)")
    lo_kl = min(r["kl_per_frame"] for r in rows if r["method"] == "tchan" and r["status"] == "ok")
    guide(ax_kl, [taus[len(taus) // 2], taus[-1]], lo_kl * 2 * (taus[-1] / taus[len(taus) // 2]),
          -1.0, "1/tau")
    ax_kl.legend(handles=[Line2D([], [], color="0.2", ls=ls, marker=mk, label=n)
                          for m, (n, ls, mk) in METHODS.items() if m != "exact"],
                 fontsize=8, loc="upper right", title="colour: kernel (right panel)",
                 title_fontsize=7)
    if refused:
        ax_kl.text(0.02, 0.02, "Strang refused (indefinite):\n" + "\n".join(refused),
                   transform=ax_kl.transAxes, fontsize=7.5, va="bottom", ha="left",
                   bbox=dict(boxstyle="round", fc="white", ec="0.7"))

    ax_err.set_title("effect on samples: PF-ODE end-state frame covariance\n"
                     "||Sigma_end - Sigma_eps||_F / ||Sigma_eps||_F")
    ax_err.set_xscale("log", base=2)
    ax_err.set_yscale("log")
    ax_err.set_xlabel("tau (frames)")
    ax_err.set_ylabel("relative error")
    hi = max(r["cov_err_fro"] for r in rows if r["method"] == "tchan" and r["status"] == "ok"
             and r["tau"] == taus[-1])
    guide(ax_err, [taus[len(taus) // 2], taus[-1]], hi * 1.6 * math.sqrt(taus[-1] / taus[len(taus) // 2]),
          -0.5, "tau^-1/2")
    ax_err.text(0.98, 0.22, "dotted: the exact prior N(0, C)\n(its floor: abar(T) > 0)",
                transform=ax_err.transAxes, fontsize=8, ha="right", va="bottom", color="0.3")
    ax_err.legend(handles=[Line2D([], [], color="0.2", ls=ls, marker=mk, label=n)
                           for n, ls, mk in METHODS.values()], fontsize=8, loc="center right")

    ax_corr.set_title("end state: correlation of the first and last frame\n"
                      "(the circulant wraps the video around)")
    ax_corr.set_xscale("log", base=2)
    ax_corr.set_xlabel("tau (frames)")
    ax_corr.set_ylabel("corr(frame 0, frame tau-1)")
    ax_corr.set_ylim(-0.02, 1.0)
    ax_corr.axhline(0, color="0.8", lw=0.8)
    ax_corr.legend(handles=[Line2D([], [], color=colors[i % len(colors)], lw=2, label=k)
                            for i, k in enumerate(kernels)], fontsize=8, loc="center right",
                   title="kernel (noise C)", title_fontsize=8)
    ax_corr.text(0.98, 0.09, "dotted: exact (the data's own correlation)",
                 transform=ax_corr.transAxes, fontsize=8, ha="right", va="bottom", color="0.3")

    for ax in axs:
        ax.set_xticks(taus)
        ax.set_xticklabels([str(t) for t in taus], fontsize=8)
        ax.grid(True, which="major", alpha=0.3)
    sub = next((m for m in meta if m.startswith("data")), "")
    fig.suptitle("Circulant approximations of the frame covariance C: prior N(0, circ) with "
                 "the exact model's PF-ODE   [" + sub + "]", fontsize=10)
    fig.savefig(a.out, dpi=110)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
