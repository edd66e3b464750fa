#!/usr/bin/env python3
"""Write a small Gaussian-mixture data law for `--model gmm:file=...` (corrsde model.h).

Three components over TAU frames, means constant along each video (one value per frame, the
same for every pixel), frame covariances scaled AR(1) matrices, unequal weights. The score of
this law is nonlinear in x, so solver orders come out as theory says (linear problems can
super-converge). Usage: make_gmm.py OUT.h5 [TAU]
"""
import sys

import h5py
import numpy as np


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: make_gmm.py OUT.h5 [TAU]")
    out, tau = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 8
    k = np.arange(tau)
    lag = np.abs(k[:, None] - k[None, :])
    weights = np.array([0.5, 0.3, 0.2])
    means = np.stack([np.full(tau, -0.6), np.linspace(0.2, 0.8, tau), np.full(tau, 0.1)])
    covs = np.stack([0.16 * 0.9 ** lag, 0.25 * 0.5 ** lag, 0.09 * 0.95 ** lag])
    with h5py.File(out, "w") as f:
        f["weights"] = weights
        f["means"] = means          # [K, tau]: broadcast over pixels
        f["frame_covs"] = covs      # [K, tau, tau]
    print(f"wrote {out}: 3 components, {tau} frames")


if __name__ == "__main__":
    main()
