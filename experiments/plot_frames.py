#!/usr/bin/python3
"""Plot the frames of one sample of a `corrsde sample` file as an image strip (PNG).

    python3 experiments/plot_frames.py out.h5 -o frames.png
    python3 experiments/plot_frames.py out.h5 --sample 2 --state 0 --cols 8 -o start.png

Reads /trajectory/x [n_saved, B, tau, *SHAPE] with h5py and draws the tau frames of
sample --sample at saved state --state (default -1: the final state) side by side, all
on one colour scale so that the correlation across frames shows. Frames of shape HxW are
grey images; CxHxW with C = 3 are RGB (scaled to [0, 1] over the sample), other C show
channel --channel; a flat frame of D pixels is drawn as a square if D is one, else as a
1 x D row. Needs python3-h5py, python3-numpy and python3-matplotlib (Agg backend: no
display needed).
"""
import argparse
import math
import sys

import h5py
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def attr_text(v):
    return v.decode() if isinstance(v, bytes) else str(v)


def frame_images(frames, channel):
    """frames: [tau, *SHAPE] -> (list of 2-D or HxWx3 arrays, is_rgb)."""
    tau = frames.shape[0]
    if frames.ndim == 2:  # [tau, D]
        D = frames.shape[1]
        side = int(math.isqrt(D))
        shape = (side, side) if side * side == D else (1, D)
        return [frames[i].reshape(shape) for i in range(tau)], False
    if frames.ndim == 3:  # [tau, H, W]
        return [frames[i] for i in range(tau)], False
    if frames.ndim == 4:  # [tau, C, H, W]
        C = frames.shape[1]
        if C == 3 and channel is None:
            lo, hi = frames.min(), frames.max()
            scaled = (frames - lo) / (hi - lo) if hi > lo else np.zeros_like(frames)
            return [np.transpose(scaled[i], (1, 2, 0)) for i in range(tau)], True
        c = channel or 0
        if not 0 <= c < C:
            sys.exit("plot_frames: --channel %d: the frames have %d channels" % (c, C))
        return [frames[i, c] for i in range(tau)], False
    sys.exit("plot_frames: /trajectory/x has rank %d; expected [n_saved, B, tau, *SHAPE] "
             "with SHAPE = D, HxW or CxHxW" % (frames.ndim + 2))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("file", help="a trajectory file written by corrsde sample")
    ap.add_argument("-o", "--output", default="frames.png", help="the PNG to write")
    ap.add_argument("--sample", type=int, default=0, help="which sample of the batch (0)")
    ap.add_argument("--state", type=int, default=-1,
                    help="which saved state (default -1: the final one)")
    ap.add_argument("--channel", type=int, default=None,
                    help="channel to show for CxHxW frames (default: RGB if C = 3, else 0)")
    ap.add_argument("--cols", type=int, default=None,
                    help="frames per row (default: all in one row, up to 16)")
    ap.add_argument("--cmap", default="gray", help="matplotlib colour map for grey frames")
    ap.add_argument("--dpi", type=int, default=120)
    args = ap.parse_args()

    with h5py.File(args.file, "r") as f:
        if "trajectory/x" not in f:
            sys.exit("plot_frames: %s has no /trajectory/x" % args.file)
        x = f["trajectory/x"]
        n_saved, batch = x.shape[0], x.shape[1]
        if n_saved == 0:
            sys.exit("plot_frames: %s holds no saved state yet" % args.file)
        if not -n_saved <= args.state < n_saved:
            sys.exit("plot_frames: --state %d: the file has %d saved states"
                     % (args.state, n_saved))
        if not 0 <= args.sample < batch:
            sys.exit("plot_frames: --sample %d: the batch has %d samples"
                     % (args.sample, batch))
        frames = np.asarray(x[args.state, args.sample], dtype=np.float64)
        state = args.state % n_saved
        t = f["trajectory/t"][state] if "trajectory/t" in f else float("nan")
        step = f["trajectory/step"][state] if "trajectory/step" in f else -1
        params = f["parameters"].attrs if "parameters" in f else {}
        what = ", ".join(attr_text(params[k]) for k in ("process", "solver", "covariance")
                         if k in params)

    images, rgb = frame_images(frames, args.channel)
    tau = len(images)
    cols = args.cols or min(tau, 16)
    rows = math.ceil(tau / cols)
    h, w = images[0].shape[:2]
    aspect = min(max(w / h, 0.25), 4.0)  # panel width / height, inches of 1.6 high
    fig, axes = plt.subplots(rows, cols, squeeze=False,
                             figsize=(cols * 1.6 * aspect + 0.4, rows * 1.6 + 0.9))
    vmin, vmax = float(frames.min()), float(frames.max())
    for k, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        if k >= tau:
            ax.axis("off")
            continue
        if rgb:
            ax.imshow(images[k], interpolation="nearest")
        else:
            ax.imshow(images[k], cmap=args.cmap, vmin=vmin, vmax=vmax, interpolation="nearest",
                      aspect="auto" if h == 1 else "equal")
        ax.set_title("frame %d" % k, fontsize=8)
    fig.suptitle("%s: sample %d, saved state %d (t = %.4g, step %d)%s"
                 % (args.file, args.sample, state, t, step, "\n" + what if what else ""),
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(args.output, dpi=args.dpi)
    print("wrote %s: %d frames of sample %d at t = %.4g" % (args.output, tau, args.sample, t))


if __name__ == "__main__":
    main()
