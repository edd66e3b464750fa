#!/usr/bin/python3
"""Plot a convergence file written by `corrsde converge -o FILE.h5`.

Usage: plot_convergence.py FILE.h5 OUT.png [--x-axis h|nfe]

One log-log panel: the error of every solver against the step size h, with the 95%
bootstrap intervals as error bars (filled markers: levels used in the fit; hollow:
dropped), a dashed reference line of the theoretical slope through each solver's finest
used level, and for weak errors the Monte Carlo noise level of each solver (dotted) under
which a level cannot be resolved. The legend gives each fitted order with its interval.
Needs matplotlib and h5py (Debian: python3-matplotlib python3-h5py); runs headless (Agg).
"""
import sys


def main(argv):
    xaxis = "h"
    if len(argv) == 5 and argv[3] == "--x-axis" and argv[4] in ("h", "nfe"):
        xaxis, argv = argv[4], argv[:3]
    if len(argv) != 3 or argv[1] in ("-h", "--help"):
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    src, out = argv[1], argv[2]
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import h5py
        import numpy as np
    except ImportError as e:
        print(f"plot_convergence.py: {e} (install python3-matplotlib and python3-h5py)",
              file=sys.stderr)
        return 1
    try:
        f = h5py.File(src, "r")
    except OSError as e:
        print(f"plot_convergence.py: cannot open '{src}': {e}", file=sys.stderr)
        return 1
    with f:
        if "convergence" not in f:
            print(f"plot_convergence.py: '{src}' has no /convergence (not written by "
                  "corrsde converge?)", file=sys.stderr)
            return 1
        conv = f["convergence"]
        kind = conv.attrs.get("error", "")
        kind = kind.decode() if isinstance(kind, bytes) else str(kind)
        names = conv.attrs.get("solvers", "")
        names = names.decode() if isinstance(names, bytes) else str(names)
        names = [n for n in names.split(",") if n in conv] or sorted(conv.keys())
        par = f["parameters"].attrs if "parameters" in f else {}

        def attr(key, default=""):
            v = par.get(key, default)
            return v.decode() if isinstance(v, bytes) else v

        fig, ax = plt.subplots(figsize=(7.5, 5.5), dpi=110)
        colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        for i, name in enumerate(names):
            g = conv[name]
            c = colors[i % len(colors)]
            # x: the step size, or the model evaluations of a solve (error ~ nfe^-p)
            if xaxis == "nfe" and "nfe" in g:
                h, sign = np.asarray(g["nfe"], dtype=float), -1.0
            else:
                h, sign = np.asarray(g["h"]), 1.0
            e = np.asarray(g["error"])
            ci = np.asarray(g["error_ci"])
            used = np.asarray(g["used"]).astype(bool)
            ok = np.isfinite(e) & (e > 0)
            lo = np.clip(e - ci[:, 0], 0, None)
            hi = np.clip(ci[:, 1] - e, 0, None)
            order = float(g.attrs["order"])
            oci = np.asarray(g.attrs["order_ci"], dtype=float)
            theory = float(g.attrs["theory_order"])
            label = (f"{name}: order {order:.2f} [{oci[0]:.2f}, {oci[1]:.2f}] "
                     f"(theory {theory:g})") if np.isfinite(order) else f"{name}: no fit"
            m = ok & used
            ax.errorbar(h[m], e[m], yerr=[lo[m], hi[m]], fmt="o-", color=c, ms=5,
                        capsize=3, label=label)
            m = ok & ~used
            if m.any():
                ax.errorbar(h[m], e[m], yerr=[lo[m], hi[m]], fmt="o", color=c, ms=5,
                            mfc="none", capsize=3)
            # the theoretical slope through the finest used level
            if used.any() and theory > 0:
                k = np.where(used)[0][-1]
                hh = np.array([h.min(), h.max()])
                ax.plot(hh, e[k] * (hh / h[k]) ** (sign * theory), "--", color=c, lw=1,
                        alpha=0.7)
            if "mc_noise" in g:
                ax.plot(h, np.asarray(g["mc_noise"]), ":", color=c, lw=1.2,
                        label=f"{name}: Monte Carlo noise")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("model evaluations per solve (NFE)" if xaxis == "nfe" else "step size h")
        ax.set_ylabel(f"{kind} error")
        title = f"{attr('process')}, {kind} error, {attr('model')}, {attr('covariance')}"
        ax.set_title(title, fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
        # errors fall from the upper right to the lower left: the other corners are free
        ax.legend(fontsize=8, loc="upper right" if xaxis == "nfe" else "upper left")
        ax.text(0.99, 0.01, "filled: used in the fit; hollow: dropped\n"
                "dashed: theoretical slope; error bars: 95% bootstrap intervals",
                transform=ax.transAxes, ha="right", va="bottom", fontsize=7, alpha=0.7)
        fig.tight_layout()
        try:
            fig.savefig(out, format="png")
        except OSError as e:
            print(f"plot_convergence.py: cannot write '{out}': {e}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
