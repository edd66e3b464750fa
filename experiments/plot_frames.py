#!/usr/bin/python3
"""Draw the videos of a `corrsde sample` file: a grid of samples x frames (PNG), and an
animated GIF (or MP4) of the batch.

    python3 experiments/plot_frames.py out.h5 -o frames.png
    python3 experiments/plot_frames.py out.h5 --samples 4 --range=-1,1 -o grid.png --gif a.gif
    python3 experiments/plot_frames.py out.h5 --samples 0,2,5 --state 0 -o start.png

Reads /trajectory/x [n_saved, B, tau, *SHAPE] with h5py. The PNG has one row per sample
(--samples N: the first N; or a list of indices; default 1) and one column per frame, at
saved state --state (default -1: the final state). Every panel of the PNG and every frame
of the animation shares ONE colour scale: --range=LO,HI (for data in [-1, 1], say) or, by
default, the range of all the samples shown. So a sample that blew up looks blown up (grey
noise under a per-sample scale would hide it); values outside the range saturate, and
the title says how many did. Frames of shape HxW are grey images; CxHxW with C = 3 are RGB;
other C show channel --channel; a flat frame of D pixels is drawn as a square if D is one,
else as a 1 x D row.

--gif FILE (matplotlib's pillow writer) or --mp4 FILE (its ffmpeg writer; needs ffmpeg)
writes an animation whose k-th image shows frame k of every shown sample side by side, at
--fps frames per second (default 4), looping. Outputs are written to a fresh temporary beside
them and renamed into place; an existing output needs --force, and a link or a device there
is refused. Needs python3-h5py, python3-numpy and python3-matplotlib (Agg: no display).
"""
import argparse
import math
import os
import secrets
import stat
import sys

import h5py
import matplotlib

matplotlib.use("Agg")
import matplotlib.animation as animation  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def fail(msg):
    sys.exit("plot_frames: " + msg)


def attr_text(v):
    return v.decode() if isinstance(v, bytes) else str(v)


def panels(frames, channel, lo, hi):
    """frames [tau, *SHAPE] -> a list of tau images: 2-D arrays (grey, drawn with vmin/vmax)
    or HxWx3 arrays scaled by the fixed range [lo, hi] to [0, 1] (RGB)."""
    tau = frames.shape[0]
    if frames.ndim == 2:  # [tau, D]
        D = frames.shape[1]
        side = math.isqrt(D)
        shape = (side, side) if side * side == D else (1, D)
        return [frames[i].reshape(shape) for i in range(tau)]
    if frames.ndim == 3:  # [tau, H, W]
        return [frames[i] for i in range(tau)]
    if frames.ndim == 4:  # [tau, C, H, W]
        C = frames.shape[1]
        if C == 3 and channel is None:
            scaled = np.clip((frames - lo) / (hi - lo), 0.0, 1.0)
            return [np.transpose(scaled[i], (1, 2, 0)) for i in range(tau)]
        c = 0 if channel is None else channel
        if not 0 <= c < C:
            fail("--channel %d: the frames have %d channels" % (c, C))
        return [frames[i, c] for i in range(tau)]
    fail("/trajectory/x has rank %d; expected [n_saved, B, tau, *SHAPE] with SHAPE = D, "
         "HxW or CxHxW" % (frames.ndim + 2))
    return []


def pick_samples(spec, batch):
    """--samples N (the first N) or I,J,K (those indices)."""
    try:
        if "," in spec:
            idx = [int(s) for s in spec.split(",")]
        else:
            n = int(spec)
            if n < 1:
                raise ValueError
            idx = list(range(min(n, batch)))
    except ValueError:
        fail("--samples '%s': expected a count N >= 1 or a list of indices I,J,..." % spec)
    for i in idx:
        if not 0 <= i < batch:
            fail("--samples: sample %d is not in the batch of %d" % (i, batch))
    return idx


def parse_range(spec):
    try:
        lo, hi = (float(v) for v in spec.split(","))
    except ValueError:
        fail("--range '%s': expected LO,HI" % spec)
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        fail("--range '%s': expected finite LO < HI" % spec)
    return lo, hi


def check_output(path, force, what):
    """Absent, or a regular file with --force; never a link, a directory or a device."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISREG(st.st_mode):
        fail("%s '%s' is not a regular file (a link, a directory or a device): refused"
             % (what, path))
    if not force:
        fail("%s '%s' exists (use --force to replace it)" % (what, path))


def write_safely(path, force, what, draw):
    """draw(name) writes the output into a fresh path.partial.XXXXXX.EXT (O_EXCL, never
    through a link; the writers pick the format by the extension), which is then renamed to
    path."""
    d = os.path.dirname(os.path.abspath(path))
    base = os.path.basename(path)
    ext = os.path.splitext(base)[1]
    fd, tmp = -1, None
    for _ in range(100):
        tmp = os.path.join(d, "%s.partial.%s%s" % (base, secrets.token_hex(3), ext))
        try:
            fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o666)
            break
        except FileExistsError:
            continue
    if fd < 0:
        fail("cannot make a temporary file beside %s '%s'" % (what, path))
    os.close(fd)
    try:
        draw(tmp)
        check_output(path, force, what)
        os.replace(tmp, path)
        tmp = None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def draw_grid(videos, labels, lo, hi, args, title, out):
    """videos: list of per-sample [tau, *SHAPE] arrays: one row each."""
    rows = [panels(v, args.channel, lo, hi) for v in videos]
    tau = len(rows[0])
    h, w = rows[0][0].shape[:2]
    aspect = min(max(w / h, 0.25), 4.0)  # panel width / height, inches of 1.4 high
    fig, axes = plt.subplots(len(rows), tau, squeeze=False,
                             figsize=(tau * 1.4 * aspect + 0.8, len(rows) * 1.4 + 0.9))
    for r, imgs in enumerate(rows):
        for k, img in enumerate(imgs):
            ax = axes[r][k]
            ax.set_xticks([])
            ax.set_yticks([])
            if img.ndim == 3:
                ax.imshow(img, interpolation="nearest")
            else:
                ax.imshow(img, cmap=args.cmap, vmin=lo, vmax=hi, interpolation="nearest",
                          aspect="auto" if h == 1 else "equal")
            if r == 0:
                ax.set_title("frame %d" % k, fontsize=8)
            if k == 0:
                ax.set_ylabel(labels[r], fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=args.dpi, format="png")
    plt.close(fig)


def draw_animation(videos, labels, lo, hi, args, title, out, writer):
    """Image k: frame k of every sample, side by side."""
    rows = [panels(v, args.channel, lo, hi) for v in videos]
    tau = len(rows[0])
    n = len(rows)
    cols = min(n, 8)
    grid_rows = math.ceil(n / cols)
    h, w = rows[0][0].shape[:2]
    aspect = min(max(w / h, 0.25), 4.0)
    fig, axes = plt.subplots(grid_rows, cols, squeeze=False,
                             figsize=(cols * 1.6 * aspect + 0.4, grid_rows * 1.6 + 0.7))
    ims = []
    for j, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        if j >= n:
            ax.axis("off")
            continue
        img = rows[j][0]
        if img.ndim == 3:
            ims.append(ax.imshow(img, interpolation="nearest"))
        else:
            ims.append(ax.imshow(img, cmap=args.cmap, vmin=lo, vmax=hi, interpolation="nearest",
                                 aspect="auto" if h == 1 else "equal"))
        ax.set_title(labels[j], fontsize=8)
    head = fig.suptitle("%s\nframe 0 of %d" % (title, tau), fontsize=9)  # tight_layout makes room

    def show(k):
        for j, im in enumerate(ims):
            im.set_data(rows[j][k])
        head.set_text("%s\nframe %d of %d" % (title, k, tau))
        return ims + [head]

    anim = animation.FuncAnimation(fig, show, frames=tau, interval=1000 / args.fps, blit=False)
    fig.tight_layout()
    if writer == "pillow":
        w_ = animation.PillowWriter(fps=args.fps)
        anim.save(out, writer=w_, dpi=args.dpi)
    else:
        anim.save(out, writer=animation.FFMpegWriter(fps=args.fps), dpi=args.dpi)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n".join(__doc__.split("\n")[1:]))
    ap.add_argument("file", help="a trajectory file written by corrsde sample")
    ap.add_argument("-o", "--output", default="frames.png",
                    help="the PNG grid to write (default frames.png)")
    ap.add_argument("--samples", default="1",
                    help="N (the first N samples) or a list I,J,... (default 1)")
    ap.add_argument("--sample", type=int, default=None,
                    help="one sample (the same as --samples I)")
    ap.add_argument("--state", type=int, default=-1,
                    help="which saved state (default -1: the final one)")
    ap.add_argument("--range", default=None,
                    help="the colour scale LO,HI (default: the range of the samples shown)")
    ap.add_argument("--channel", type=int, default=None,
                    help="channel to show for CxHxW frames (default: RGB if C = 3, else 0)")
    ap.add_argument("--gif", default=None, help="also write an animated GIF of the samples")
    ap.add_argument("--mp4", default=None, help="also write an MP4 (needs ffmpeg)")
    ap.add_argument("--fps", type=float, default=4.0, help="animation frames a second (4)")
    ap.add_argument("--cmap", default="gray", help="matplotlib colour map for grey frames")
    ap.add_argument("--dpi", type=int, default=100)
    ap.add_argument("--force", action="store_true", help="replace existing outputs")
    args = ap.parse_args()
    if not args.fps > 0:
        fail("--fps %g: expected a positive number" % args.fps)
    outs = [("-o", args.output)] + [(w, p) for w, p in (("--gif", args.gif),
                                                         ("--mp4", args.mp4)) if p]
    if len({os.path.abspath(p) for _, p in outs}) != len(outs):
        fail("-o/--gif/--mp4: two outputs name the same file")
    for what, p in outs:
        check_output(p, args.force, what)
    if args.mp4 and not animation.writers.is_available("ffmpeg"):
        fail("--mp4: matplotlib finds no ffmpeg (Debian: apt-get install ffmpeg); --gif "
             "needs nothing more")

    try:
        f = h5py.File(args.file, "r")
    except OSError as e:
        fail("cannot read '%s': %s" % (args.file, e))
    with f:
        if "trajectory/x" not in f:
            fail("%s has no /trajectory/x" % args.file)
        x = f["trajectory/x"]
        n = int(f["trajectory"].attrs.get("n_saved", x.shape[0]))
        n = min(max(n, 0), x.shape[0])
        batch = x.shape[1]
        if n == 0:
            fail("%s holds no saved state yet" % args.file)
        if not -n <= args.state < n:
            fail("--state %d: the file has %d saved states" % (args.state, n))
        state = args.state % n
        idx = pick_samples(str(args.sample) if args.sample is not None else args.samples,
                           batch)
        videos = [np.asarray(x[state, i], dtype=np.float64) for i in idx]
        t = float(f["trajectory/t"][state]) if "trajectory/t" in f else float("nan")
        params = f["parameters"].attrs if "parameters" in f else {}
        what = ", ".join(attr_text(params[k]) for k in ("process", "solver", "covariance")
                         if k in params)
    data = np.stack(videos)
    if not np.all(np.isfinite(data)):
        fail("the samples shown hold NaN or Inf values")
    if args.range:
        lo, hi = parse_range(args.range)
    else:
        lo, hi = float(data.min()), float(data.max())
        if hi <= lo:
            lo, hi = lo - 0.5, hi + 0.5
    outside = int(np.count_nonzero((data < lo) | (data > hi)))
    title = "%s, saved state %d (t = %.4g)%s\ncolour scale [%.4g, %.4g]%s" % (
        os.path.basename(args.file), state, t, ": " + what if what else "", lo, hi,
        ", %d values outside it (saturated)" % outside if outside else "")
    labels = ["sample %d" % i for i in idx]
    write_safely(args.output, args.force, "-o",
                 lambda p: draw_grid(videos, labels, lo, hi, args, title, p))
    done = ["%s (%d samples x %d frames)" % (args.output, len(idx), videos[0].shape[0])]
    if args.gif:
        write_safely(args.gif, args.force, "--gif",
                     lambda p: draw_animation(videos, labels, lo, hi, args, title, p, "pillow"))
        done.append(args.gif)
    if args.mp4:
        write_safely(args.mp4, args.force, "--mp4",
                     lambda p: draw_animation(videos, labels, lo, hi, args, title, p, "ffmpeg"))
        done.append(args.mp4)
    print("wrote %s at t = %.4g, colour scale [%.4g, %.4g]" % (", ".join(done), t, lo, hi))


if __name__ == "__main__":
    main()
