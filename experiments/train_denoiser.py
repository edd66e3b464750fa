#!/usr/bin/python3
"""Train a small video denoiser under AR(1) frame noise with the eq. 3 loss and with plain MSE,
sample both with corrsde, and compare the samples' frame statistics with the data's.

    PYTHONPATH=build/python /usr/bin/python3 experiments/train_denoiser.py --out-dir results/train
    PYTHONPATH=build/python /usr/bin/python3 experiments/train_denoiser.py --quick --out-dir /tmp/q

The data are synthetic videos of moving, fading Gaussian blobs on a dark background
(values in [-1, 1]). The noise is N(0, C) along the frame axis of every pixel with
C = ar1:rho (MATH.md). A small (2+1)-D convolutional net with a time embedding predicts the
noise delta from (x_t, t), t ~ U(eps, 1) on the continuous vp-linear schedule, trained twice
on the same budget (same initialisation, same batches, same t and noise draws):

  eq3  the C^-1 (Mahalanobis) loss of eq. 3, sum_pixels (delta - delta_theta)^T C^-1 (...)
  mse  the plain squared error  sum_pixels |delta - delta_theta|^2

(both divided by tau * H * W; with --time-weight none, the default, no time weight: the
"simple" form; --time-weight elbo multiplies both by the continuous ELBO weight
beta(t) / (1 - abar(t)), normalised to mean 1 over U(eps, 1)). Each net then samples with
corrsde: the reverse SDE with Euler-Maruyama and the probability-flow ODE with dopri5, from
the same prior draws and Brownian path for both nets. Written to --out-dir:

  samples.h5   /data [N, tau, H, W] (the reference videos the statistics compare with),
               /samples/reverse_sde and /samples/pf_ode [n_losses, N, tau, H, W]
               (attribute losses), /stats/<loss>/<sampler>/..., /table (markdown),
               /train/<loss>/loss (the training curve); the settings as root attributes
  frames.png   a frame strip of a few data videos and samples
  table.md     the tables printed to stdout
  model_<loss>.pt  the trained weights (state_dict)

Every file is written under a temporary name and renamed into place when complete.

Other schedules and targets (issue 28; TRAINING.md "On rectified flow"): --schedule SPEC takes
any continuous VP schedule or rf[:shift=S] (rectified flow, x_t = (1 - t') x0 + t' delta,
t' = S t / (1 + (S - 1) t)); --target noise (the default on VP), flow (dx/dt, the velocity in
the schedule's t) or flow-shifted (dx/dt' = delta - x0, SD3's and Wan's target; rf only, its
default there). With a flow target the two losses are corrsde.torch.flow_matching_loss with
metric="cinv" (the eq3 rows: the C^-1 metric) and metric="plain" (mse); --t-sampling uniform
or logit-normal (SD3's, the default on rf) draws t; the net takes t' on rf (TorchModel's
time="t_shifted"). On rf a third sampler, dpmpp2m on the quadratic grid at 10 steps (README
"Other paths": the pick at 10 NFE there), joins the reverse SDE and the PF-ODE.

On edm[:smin=,smax=] and ve (TRAINING.md "On EDM"): x_t = x0 + sigma delta, the noise
target (eq3 and mse as on VP), t drawn by EDM's log-normal (ln sigma ~ N(-1.2, 1.2^2),
corrsde.torch.sample_t(kind="log-normal"), the default there), and the net wrapped in
EDM's input and time preconditioning (c_skip, c_out, c_in, c_noise with sigma_data = 0.5: the net F answers a
unit-scale target, the wrapper turns c_skip x_t + c_out F into the noise; fed the VE sigma,
TorchModel's time="sigma"). The third sampler there is dpmpp2m
on the karras grid at 10 steps (k-diffusion's "DPM++ 2M Karras"; the rf row's NFE).
"""
import argparse
import math
import os
import sys
import tempfile
import time

import numpy as np

LOSSES = ("eq3", "mse")
# each net samples with the reverse SDE (Euler-Maruyama) and the PF-ODE (dopri5), plain and
# with Imagen's dynamic thresholding of the x0 prediction (--threshold P; "+thr")
SAMPLERS = ("reverse_sde", "pf_ode", "reverse_sde+thr", "pf_ode+thr")
# on rf, also the few-step sampler README "Other paths" picks at 10 NFE there: dpmpp2m on the
# quadratic grid, 10 steps (and thresholded)
FEWSTEP = ("dpmpp2m", "dpmpp2m+thr")
FEWSTEP_STEPS = 10
ALL_SAMPLERS = ("reverse_sde", "pf_ode", "dpmpp2m", "reverse_sde+thr", "pf_ode+thr",
                "dpmpp2m+thr")
TARGETS = ("noise", "flow", "flow-shifted")
# what the net answers (TorchModel's output) and the time it is fed, per schedule family
NET_TIME = {"vp": "t", "rf": "t_shifted", "edm": "sigma", "ve": "sigma"}
# the few-step sampler's grid per path (none on VP)
FEWSTEP_GRID = {"rf": "quadratic", "edm": "karras", "ve": "karras"}
# EDM's preconditioning on edm and ve (Karras et al. 2022, table 1): sigma_data
EDM_SIGMA_DATA = 0.5


# ------------------------------------------------------------------------------ options

def positive_int(s):
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError("expected an integer, got %r" % s)
    if v < 1:
        raise argparse.ArgumentTypeError("expected an integer >= 1, got %d" % v)
    return v


def positive_float(s):
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError("expected a number, got %r" % s)
    if not (v > 0 and math.isfinite(v)):
        raise argparse.ArgumentTypeError("expected a finite number > 0, got %r" % s)
    return v


# the defaults of a full run, and of --quick (a ~20 s smoke run); None in argparse = not given
FULL = dict(steps=800, batch=32, lr=2e-3, samples=64, sde_steps=200, rtol=1e-4,
            n_data=2048, bootstrap=200, max_nfe=4000)
QUICK = dict(steps=30, batch=16, lr=2e-3, samples=8, sde_steps=20, rtol=1e-3,
             n_data=64, bootstrap=20, max_nfe=1000)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(
        description="Train a small video denoiser with the eq. 3 (C^-1) loss and with plain MSE "
                    "under AR(1) frame noise, sample both with corrsde (reverse SDE + EM, "
                    "PF-ODE + dopri5) and compare the samples' frame statistics with the data's.",
        epilog="Run from the build tree: PYTHONPATH=build/python /usr/bin/python3 %(prog)s. "
               "Full-run defaults: " + ", ".join("--%s %s" % (k.replace("_", "-"), v)
                                                 for k, v in FULL.items())
               + "; --quick: " + ", ".join("--%s %s" % (k.replace("_", "-"), v)
                                          for k, v in QUICK.items()) + ".")
    ap.add_argument("--out-dir", default="results/train_denoiser",
                    help="directory for samples.h5, frames.png, table.md and the weights "
                         "(created if missing; default %(default)s)")
    ap.add_argument("--quick", action="store_true",
                    help="a ~20 s smoke run: few training steps, few samples, coarse solvers "
                         "(the numbers mean nothing)")
    ap.add_argument("--seed", type=int, default=0,
                    help="seeds everything: the net's initialisation, the training batches, "
                         "t and noise draws, the reference data and the samplers (default 0)")
    ap.add_argument("--frames", type=positive_int, default=8,
                    help="tau, frames per video (>= 3 for the lag-2 correlation; default 8)")
    ap.add_argument("--size", type=positive_int, default=16,
                    help="frames are SIZE x SIZE pixels (even, >= 4; default 16)")
    ap.add_argument("--rho", type=float, default=0.9,
                    help="the AR(1) noise correlation, C[i][j] = rho^|i-j|, |rho| < 1 "
                         "(default 0.9)")
    ap.add_argument("--schedule", default="vp-linear", metavar="SPEC",
                    help="the noise schedule or path: a continuous VP schedule (vp-linear, "
                         "cosine, ...), rf[:shift=S] (rectified flow) or edm[:smin=,smax=] / "
                         "ve (noise target only; docs/MATH.md 'Gaussian paths'; default "
                         "%(default)s)")
    ap.add_argument("--target", choices=TARGETS,
                    help="what the net predicts: noise (delta; the default on VP), flow "
                         "(dx/dt in the schedule's time) or flow-shifted (dx/dt' = delta - x0, "
                         "SD3's and Wan's; rf only, the default there)")
    ap.add_argument("--t-sampling", choices=("uniform", "logit-normal", "log-normal"),
                    help="training times: uniform on [eps, 1) (on edm: on [smin, smax]), "
                         "logit-normal (SD3: logit t ~ N(0, 1)) or log-normal (EDM: the VE "
                         "noise level ln sigma ~ N(-1.2, 1.2^2), truncated to the span); "
                         "default logit-normal on rf, log-normal on edm and ve, uniform on VP")
    ap.add_argument("--losses", default=",".join(LOSSES),
                    help="comma-separated losses to train, of eq3, mse (default %(default)s)")
    ap.add_argument("--time-weight", choices=("none", "elbo"), default="none",
                    help="time weight of both losses: none (the simple form; default) or elbo "
                         "(beta(t) / (1 - abar(t)), normalised to mean 1 over U(eps, 1))")
    ap.add_argument("--steps", type=positive_int,
                    help="training steps per loss (full %d, quick %d)"
                         % (FULL["steps"], QUICK["steps"]))
    ap.add_argument("--batch", type=positive_int,
                    help="training batch, videos per step (full %d, quick %d)"
                         % (FULL["batch"], QUICK["batch"]))
    ap.add_argument("--lr", type=positive_float,
                    help="Adam's peak learning rate, cosine-decayed to 0 (default %g)" % FULL["lr"])
    ap.add_argument("--channels", type=positive_int, default=32,
                    help="channels of the net at half resolution, a multiple of 8; half as many at "
                         "full resolution (default 32)")
    ap.add_argument("--blocks", type=positive_int, default=3,
                    help="residual (2+1)-D blocks of the net at half resolution (default 3)")
    ap.add_argument("--samples", type=positive_int,
                    help="videos sampled per loss and sampler (>= 2; full %d, quick %d)"
                         % (FULL["samples"], QUICK["samples"]))
    ap.add_argument("--sde-steps", type=positive_int,
                    help="Euler-Maruyama steps of the reverse SDE (full %d, quick %d)"
                         % (FULL["sde_steps"], QUICK["sde_steps"]))
    ap.add_argument("--rtol", type=positive_float,
                    help="dopri5's relative (and absolute) tolerance on the PF-ODE "
                         "(full %g, quick %g)" % (FULL["rtol"], QUICK["rtol"]))
    ap.add_argument("--max-nfe", type=positive_int,
                    help="stop the PF-ODE solve past this many model calls (full %d, quick %d)"
                         % (FULL["max_nfe"], QUICK["max_nfe"]))
    ap.add_argument("--n-data", type=positive_int,
                    help="reference data videos the statistics compare with (>= 2; "
                         "full %d, quick %d)" % (FULL["n_data"], QUICK["n_data"]))
    ap.add_argument("--bootstrap", type=positive_int,
                    help="bootstrap resamples (over videos) for the standard errors "
                         "(full %d, quick %d)" % (FULL["bootstrap"], QUICK["bootstrap"]))
    ap.add_argument("--eps", type=positive_float, default=1e-3,
                    help="the smallest t, in training and where the samplers stop "
                         "(default 1e-3)")
    ap.add_argument("--threshold", type=float, default=0.995,
                    help="the percentile P of Imagen's dynamic thresholding for the '+thr' "
                         "samplers (s = max(quantile_P |x0|, 1), x0 <- clip(x0, -s, s) / s; "
                         "default 0.995; 0: sample without thresholding only)")
    ap.add_argument("--gif-videos", type=positive_int, default=4,
                    help="videos of the data and of each sampler in samples.gif (default 4)")
    ap.add_argument("--threads", type=positive_int, default=2,
                    help="torch threads (default 2)")
    ap.add_argument("--strip", type=positive_int, default=2,
                    help="videos per row group in frames.png (default 2)")
    ap.add_argument("--combine", nargs="+", metavar="DIR",
                    help="train nothing: read DIR/samples.h5 of earlier runs (e.g. other "
                         "--seed values) and print each table entry as the mean ± the standard "
                         "deviation over the runs")
    args = ap.parse_args(argv)
    if args.combine:
        return args
    for k, v in (QUICK if args.quick else FULL).items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    losses = [s.strip() for s in args.losses.split(",") if s.strip()]
    bad = [s for s in losses if s not in LOSSES]
    if not losses or bad or len(set(losses)) != len(losses):
        ap.error("--losses: expected a comma-separated list of distinct names from %s, got %r"
                 % (", ".join(LOSSES), args.losses))
    args.losses = losses
    if not (args.threshold == 0 or 0 < args.threshold <= 1):
        ap.error("--threshold: expected P in (0, 1], or 0 for none, got %r" % args.threshold)
    check_schedule(ap, args)
    args.samplers = [s for s in (ALL_SAMPLERS if args.path in FEWSTEP_GRID else SAMPLERS)
                     if args.threshold or not s.endswith("+thr")]
    if args.seed < 0:
        ap.error("--seed: expected a non-negative integer, got %d" % args.seed)
    if args.frames < 3:
        ap.error("--frames: the lag-2 correlation needs at least 3 frames, got %d" % args.frames)
    if args.size < 4 or args.size % 2:
        ap.error("--size: expected an even number >= 4 (the net halves the resolution), "
                 "got %d" % args.size)
    if not (math.isfinite(args.rho) and abs(args.rho) < 1):
        ap.error("--rho: expected |rho| < 1 (C must be positive definite), got %r" % args.rho)
    if args.samples < 2 or args.n_data < 2:
        ap.error("--samples and --n-data: the statistics need at least 2 videos")
    if not args.eps < 0.5:
        ap.error("--eps: expected a small positive t (< 0.5), got %r" % args.eps)
    if args.channels % 8:
        ap.error("--channels: expected a multiple of 8 (GroupNorm with 4 groups at c/2), got %d"
                 % args.channels)
    return args


def check_schedule(ap, args):
    """--schedule, --target, --t-sampling, --time-weight: the combinations this script trains,
    or an argparse error naming the flag. Sets args.path ("vp", "rf", "edm" or "ve"); fills
    the defaults (noise and uniform on VP, flow-shifted and logit-normal on rf, noise and
    log-normal on edm and ve)."""
    try:
        import corrsde
    except ImportError:  # main() says how to get it; check the spelling at least
        args.path = "rf" if args.schedule.split(":")[0] == "rf" else "vp"
        S = None
    else:
        try:
            S = corrsde.Schedule(args.schedule)
        except (corrsde.Error, ValueError) as e:
            ap.error("--schedule: %s" % e)
        args.path = S.path
    if args.path not in NET_TIME:
        ap.error("--schedule %s: the %s path is not supported here (use a VP schedule, "
                 "rf[:shift=S], edm or ve)" % (args.schedule, args.path))
    if S is not None and S.nsteps:
        ap.error("--schedule %s: a discrete schedule; give its continuous form (the script "
                 "draws continuous t)" % args.schedule)
    if args.target is None:
        args.target = "flow-shifted" if args.path == "rf" else "noise"
    if args.path in ("edm", "ve") and args.target != "noise":
        ap.error("--target %s: on %s the script trains the noise target only (EDM's "
                 "preconditioned net predicts delta; on edm dx/dt = delta anyway)"
                 % (args.target, args.schedule))
    if args.target == "flow-shifted" and args.path != "rf":
        ap.error("--target flow-shifted: dx/dt' = delta - x0 is the velocity in rectified "
                 "flow's shifted time t'; it needs --schedule rf[:shift=S], not %s"
                 % args.schedule)
    if args.t_sampling is None:
        args.t_sampling = {"rf": "logit-normal", "edm": "log-normal",
                           "ve": "log-normal"}.get(args.path, "uniform")
    if args.time_weight == "elbo" and (args.path != "vp" or args.target != "noise"):
        ap.error("--time-weight elbo: the VP ELBO weight beta / (1 - abar) of the noise "
                 "loss; it needs a VP schedule and --target noise (got %s, %s)"
                 % (args.schedule, args.target))


# ------------------------------------------------------------------------------ data

def make_videos(rng, n, frames, size, blobs=4):
    """n videos [n, frames, size, size] float32 in [-1, 1]: up to `blobs` Gaussian blobs each
    (the first always present, the others with probability 3/4), moving in a straight line at
    0.7..2 px/frame (centred in the frame at mid-clip) and fading linearly between two random
    amplitudes in [0, 1]; the summed brightness b is clipped to [0, 1] and mapped to 2 b - 1."""
    i = np.arange(frames, dtype=np.float64)[None, None, :, None, None] - (frames - 1) / 2
    g = np.arange(size, dtype=np.float64)
    active = rng.random((n, blobs)) < 0.75
    active[:, 0] = True
    pos = rng.uniform(0, size - 1, (n, blobs, 2))
    speed = rng.uniform(0.7, 2.0, (n, blobs))
    angle = rng.uniform(0, 2 * np.pi, (n, blobs))
    width = rng.uniform(1.2, 2.2, (n, blobs))
    f0, f1 = rng.uniform(0, 1, (n, blobs)), rng.uniform(0, 1, (n, blobs))

    def e(a):  # [n, blobs] -> [n, blobs, 1, 1, 1]
        return a[..., None, None, None]

    frac = (i + (frames - 1) / 2) / max(frames - 1, 1)
    amp = (e(f0) + e(f1 - f0) * frac) * e(active)
    cy = e(pos[..., 0]) + e(speed * np.sin(angle)) * i
    cx = e(pos[..., 1]) + e(speed * np.cos(angle)) * i
    b = amp * np.exp(-((g[:, None] - cy) ** 2 + (g[None, :] - cx) ** 2) / (2 * e(width) ** 2))
    return (2 * np.clip(b.sum(1), 0, 1) - 1).astype(np.float32)


# ------------------------------------------------------------------------------ statistics

def frame_stats(x):
    """x [n, tau, ...] -> dict of lag1, lag2 (the correlation between frames i and i+k of a
    pixel, over videos and frame pairs, averaged over pixels), frame_mean, frame_std [tau]
    (over videos and pixels)."""
    x = np.asarray(x, dtype=np.float64)
    n, tau = x.shape[:2]
    x = x.reshape(n, tau, -1)
    d = x - x.mean(0, keepdims=True)
    out = {}
    for k in (1, 2):
        a, b = d[:, :-k], d[:, k:]
        c = (a * b).sum((0, 1)) / np.sqrt((a * a).sum((0, 1)) * (b * b).sum((0, 1)))
        out["lag%d" % k] = float(np.mean(c))
    out["frame_mean"] = x.mean((0, 2))
    out["frame_std"] = x.std((0, 2))
    return out


def summary(s, ref=None):
    """Scalars of frame_stats s: lag1, lag2, mean, std (averaged over frames) and, against the
    reference stats ref, dmean, dstd (the mean over frames of |s - ref|)."""
    out = {"lag1": s["lag1"], "lag2": s["lag2"], "mean": float(np.mean(s["frame_mean"])),
           "std": float(np.mean(s["frame_std"]))}
    if ref is not None:
        out["dmean"] = float(np.mean(np.abs(s["frame_mean"] - ref["frame_mean"])))
        out["dstd"] = float(np.mean(np.abs(s["frame_std"] - ref["frame_std"])))
    return out


def bootstrap_se(x, ref_x, reps, rng):
    """Standard errors of summary(frame_stats(x), frame_stats(ref_x)) by resampling the videos
    of x (and, independently, of ref_x, so the differences carry both errors)."""
    draws = []
    for _ in range(reps):
        xs = x[rng.integers(0, len(x), len(x))]
        rs = None if ref_x is None else frame_stats(ref_x[rng.integers(0, len(ref_x),
                                                                         len(ref_x))])
        draws.append(summary(frame_stats(xs), rs))
    return {k: float(np.std([d[k] for d in draws], ddof=1)) for k in draws[0]}


# ------------------------------------------------------------------------------ files

def import_torch_corrsde(prog):
    """torch and corrsde (with corrsde.torch), or an exit that says how to get them."""
    try:
        import torch
    except ImportError as e:
        sys.exit("%s: needs torch (%s)" % (prog, e))
    try:
        import corrsde
        import corrsde.torch  # noqa: F401  (the training helpers)
    except ImportError as e:
        sys.exit("%s: cannot import corrsde (%s); run with PYTHONPATH=<build>/python (and "
                 "ninja -C <build> first)" % (prog, e))
    return torch, corrsde


def make_out_dir(prog, path):
    """--out-dir: made if absent; exits with a message naming it when it cannot be used."""
    if os.path.exists(path) and not os.path.isdir(path):
        sys.exit("%s: --out-dir %s exists and is not a directory" % (prog, path))
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        sys.exit("%s: --out-dir %s: %s" % (prog, path, e.strerror or e))
    if not os.access(path, os.W_OK):
        sys.exit("%s: --out-dir %s is not writable" % (prog, path))


def atomic_path(path):
    """A temporary name beside path (same directory, so os.replace is atomic)."""
    d, base = os.path.split(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + base + ".", suffix=".tmp", dir=d)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it 0600
    return tmp


class Atomic:
    """with Atomic(path) as tmp: write tmp; renamed to path on success, removed on error."""

    def __init__(self, path):
        self.path = path

    def __enter__(self):
        self.tmp = atomic_path(self.path)
        return self.tmp

    def __exit__(self, kind, value, tb):
        if kind is None:
            os.replace(self.tmp, self.path)
        else:
            try:
                os.unlink(self.tmp)
            except OSError:
                pass
        return False


# ------------------------------------------------------------------------------ main

def combine(dirs):
    """Mean ± standard deviation over runs of the statistics of DIR/samples.h5."""
    import h5py
    runs = []
    for d in dirs:
        path = os.path.join(d, "samples.h5")
        try:
            with h5py.File(path, "r") as f:
                st = {name: dict(f["stats"][name].attrs) for name in
                      ["data"] + ["%s/%s" % (k, s) for k in f.attrs["losses"].split(",")
                                  for s in ALL_SAMPLERS if s in f["samples"]]}
                tr = {k: {a: f["train"][k].attrs[a] for a in ("heldout_cinv", "heldout_mse")}
                      for k in f.attrs["losses"].split(",")}
                for k in tr:
                    if "heldout_mode_error" in f["train"][k]:
                        m = f["train"][k]["heldout_mode_error"][...]
                        tr[k]["rough"], tr[k]["smooth"] = m[0], m[-1]
                runs.append((st, tr, int(f.attrs["seed"])))
        except (OSError, KeyError) as e:
            sys.exit("train_denoiser: --combine: %s: %s" % (path, e))
    names = [n for n in runs[0][0] if all(n in r[0] for r in runs)]

    def ms(vals, fmt="%.3f"):
        v = np.asarray(vals, dtype=np.float64)
        return (fmt + " ± " + fmt) % (v.mean(), v.std(ddof=1) if v.size > 1 else float("nan"))

    cols = ("lag1", "lag2", "mean", "std", "dmean", "dstd")
    lines = ["| videos | lag-1 corr | lag-2 corr | frame mean | frame std "
             "| mean abs Δ frame mean | mean abs Δ frame std |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for n in names:
        lines.append("| %s | %s |" % (n.replace("/", ", ").replace("_", "-"), " | ".join(
            ms([r[0][n][c] for r in runs]) if c in runs[0][0][n] else "" for c in cols)))
    lines += ["", "| loss | held-out C^-1 loss | held-out MSE | rel. error, roughest mode "
              "| rel. error, smoothest mode |", "|---|---:|---:|---:|---:|"]
    for k in runs[0][1]:
        have = [r[1][k] for r in runs if k in r[1]]
        lines.append("| %s | %s |" % (k, " | ".join(
            ms([h[c] for h in have], "%.4f") if all(c in h for h in have) else "n/a"
            for c in ("heldout_cinv", "heldout_mse", "rough", "smooth"))))
    print("\n".join(lines))
    print("\nmean ± standard deviation over %d runs (seeds %s)"
          % (len(runs), ", ".join(str(r[2]) for r in runs)))
    return 0


# ------------------------------------------------------------------------------ the net

def build_net(torch, channels, blocks, classes=0, e=64):
    """delta_theta(x_t, t) for x [B, tau, H, W], treated as a one-channel 3-D volume: a
    3x3x3 conv to c/2 channels at full resolution, a (1, 2, 2)-strided conv down to c
    channels at half resolution, `blocks` (2+1)-D residual blocks there, a transposed conv
    back up plus the full-resolution skip, one more block at c/2 and a 3x3x3 conv to the
    output (zero-initialised: the untrained net predicts 0). A sinusoidal embedding of
    1000 t through a 2-layer MLP modulates (FiLM) every block.

    classes > 0 (train_conditional.py): a class embedding of that many entries, the last
    the null class, is added to the time embedding; forward(x, t, label=None) takes label
    as a [B] (or [1]) integer tensor or array, None for the null class (corrsde.torch's
    TorchModel passes solve()'s cond={"label": ...} as module(x, t, **cond))."""
    nn = torch.nn
    F = torch.nn.functional

    class Block(nn.Module):
        """GN-SiLU-spatial 3x3 conv, FiLM by the embedding, GN-SiLU-temporal 3 conv;
        residual."""

        def __init__(self, c, e):
            super().__init__()
            self.n1, self.n2 = nn.GroupNorm(4, c), nn.GroupNorm(4, c)
            self.spatial = nn.Conv3d(c, c, (1, 3, 3), padding=(0, 1, 1))
            self.temporal = nn.Conv3d(c, c, (3, 1, 1), padding=(1, 0, 0))
            self.film = nn.Linear(e, 2 * c)

        def forward(self, h, emb):
            scale, shift = self.film(emb)[:, :, None, None, None].chunk(2, 1)
            y = self.spatial(F.silu(self.n1(h)))
            y = self.n2(y) * (1 + scale) + shift
            return h + self.temporal(F.silu(y))

    class Denoiser(nn.Module):
        def __init__(self, c, blocks):
            super().__init__()
            c0 = c // 2
            self.register_buffer("freqs", torch.exp(-math.log(1000.0) * torch.arange(e // 2)
                                                    / (e // 2)))
            self.embed = nn.Sequential(nn.Linear(e, e), nn.SiLU(), nn.Linear(e, e))
            if classes:  # made here, so that the other layers draw the same weights
                self.classes = nn.Embedding(classes, e)
            self.inp = nn.Conv3d(1, c0, 3, padding=1)
            self.down = nn.Conv3d(c0, c, (1, 2, 2), stride=(1, 2, 2))
            self.blocks = nn.ModuleList([Block(c, e) for _ in range(blocks)])
            self.up = nn.ConvTranspose3d(c, c0, (1, 2, 2), stride=(1, 2, 2))
            self.last = Block(c0, e)
            self.norm = nn.GroupNorm(4, c0)
            self.out = nn.Conv3d(c0, 1, 3, padding=1)
            nn.init.zeros_(self.out.weight)
            nn.init.zeros_(self.out.bias)

        def label_embedding(self, x, label):
            b = x.shape[0]
            if label is None:
                label = torch.full((b,), classes - 1, dtype=torch.long, device=x.device)
            label = torch.as_tensor(label, device=x.device).long().reshape(-1)
            if label.shape[0] == 1 and b != 1:
                label = label.expand(b)
            if label.shape[0] != b:
                raise ValueError("label has %d entries for a batch of %d" % (label.shape[0], b))
            return self.classes(label).to(x.dtype)

        def forward(self, x, t, label=None):
            if label is not None and not classes:
                raise ValueError("label: this net has no classes")
            a = 1000.0 * t.to(x.dtype)[:, None] * self.freqs[None]
            emb = self.embed(torch.cat([a.sin(), a.cos()], 1))
            if classes:
                emb = emb + self.label_embedding(x, label)
            h0 = self.inp(x[:, None])
            h = self.down(h0)
            for b in self.blocks:
                h = b(h, emb)
            h = self.last(self.up(h) + h0, emb)
            return self.out(F.silu(self.norm(h)))[:, 0]

    return Denoiser(channels, blocks)


def edm_precond(torch, net, sigma_data=EDM_SIGMA_DATA):
    """EDM's preconditioning around a net (Karras et al. 2022, table 1), answering the noise:
    fed x_t = x0 + sigma delta and the VE sigma, the denoiser is D = c_skip x_t + c_out
    F(c_in x_t, c_noise), c_skip = sd^2 / (sigma^2 + sd^2), c_out = sigma sd / sqrt(sigma^2
    + sd^2), c_in = 1 / sqrt(sigma^2 + sd^2), c_noise = ln(sigma) / 4 (sd = sigma_data; F
    the net, its input unit-scale and its target unit-scale at every noise level), and the
    answer is the noise it implies, delta = (x_t - D) / sigma = sigma x_t / (sigma^2 + sd^2)
    - (sd / sqrt(sigma^2 + sd^2)) F. (A net answering delta directly must get it to ~1/sigma
    accuracy: its error is multiplied by sigma in x0 and along the PF-ODE.) The untrained
    net (F = 0) answers the optimal delta for x0 ~ N(0, sd^2). The weights are F's, under
    "net." in the state_dict."""
    class EdmPrecond(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x, sigma, label=None):
            s = sigma.to(x.dtype)[:, None, None, None]
            r = torch.rsqrt(s * s + sigma_data ** 2)  # 1 / sqrt(sigma^2 + sd^2) = c_in
            kw = {} if label is None else {"label": label}
            f = self.net(x * r, torch.log(s[:, 0, 0, 0]) / 4, **kw)
            return s * r * r * x - sigma_data * r * f

    return EdmPrecond(net)


def path_net(torch, channels, blocks, path):
    """The module the script trains and samples on a schedule family (path): build_net,
    wrapped in EDM's preconditioning (edm_precond: its state_dict under "net.") on edm and
    ve. likelihood_bpd.py rebuilds the saved nets with it."""
    net = build_net(torch, channels, blocks)
    return edm_precond(torch, net) if path in ("edm", "ve") else net


def path_model(ct, net, path, target):
    """The corrsde model the script samples that module with: TorchModel answering the
    target, fed the path's time NET_TIME[path] (t on VP, t' on rf, sigma on edm/ve)."""
    return ct.TorchModel(net, output=target, time=NET_TIME[path])


def main(argv=None):
    args = parse_args(argv)
    if args.combine:
        return combine(args.combine)
    t_start = time.time()
    torch, corrsde = import_torch_corrsde("train_denoiser")
    import h5py

    make_out_dir("train_denoiser", args.out_dir)

    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    tau, size = args.frames, args.size
    C = corrsde.Cov("ar1:rho=%r" % args.rho, frames=tau)
    S = corrsde.Schedule(args.schedule)
    target = args.target
    net_time = NET_TIME[S.path]  # TorchModel's time kind: t on VP, t' on rf, sigma on edm/ve
    lo_t = S.span()[0]  # edm: smin; 0 elsewhere

    # the training helpers: correlated noise, q_sample, the time sampler, the eq. 3 loss
    import corrsde.torch as ct
    helpers = "corrsde.torch"

    # the ELBO time weight beta / (1 - abar), normalised to mean 1 over U(eps, 1):
    # int beta / (1 - abar) dt = int beta dt + int beta abar / (1 - abar) dt
    #                          = B(t) + log(1 - abar(t))
    def elbo_norm():
        def F_(t):
            return S.int_beta(t) + math.log(-math.expm1(-S.int_beta(t)))
        return (F_(1.0) - F_(args.eps)) / (1.0 - args.eps)

    wnorm = elbo_norm() if args.time_weight == "elbo" else None

    def per_video_loss(kind, pred, delta):
        """Per video: sum over pixels of r^T C^-1 r (eq. 3) or of |r|^2 (MSE), r = delta -
        pred (delta: the target, the noise or a velocity)."""
        if kind == "eq3":
            return ct.eq3_loss(pred, delta, C, weight="none", reduction="none")
        return ((pred - delta) ** 2).sum((1, 2, 3))

    def train_loss(kind, pred, x0, delta, t):
        """Per video: the noise loss (per_video_loss) or, for a flow target,
        ct.flow_matching_loss with metric cinv (eq3) or plain (mse)."""
        if target == "noise":
            return per_video_loss(kind, pred, delta)
        return ct.flow_matching_loss(pred, x0, delta, t, S, C, reduction="none",
                                     metric="cinv" if kind == "eq3" else "plain",
                                     shifted=target == "flow-shifted")

    def regression_target(x0, delta, t):
        """What the net should answer: delta, or the velocity (ct.flow_target)."""
        if target == "noise":
            return delta
        return ct.flow_target(x0, delta, t, S, shifted=target == "flow-shifted")

    def net_t(t):
        """The time the net is fed, as TorchModel(time=net_time) feeds it when sampling:
        t (VP), rf's t' = S t / (1 + (S - 1) t) (Schedule.sigma_path) or the VE sigma =
        sigma_path / alpha (edm: t itself)."""
        if net_time == "sigma":
            return S.sigma_path(t) / S.alpha(t)
        return t if net_time == "t" else S.sigma_path(t)

    def noisy(x0, t, gen):
        """x_t = sqrt(abar) x0 + sqrt(1 - abar) delta, delta ~ N(0, C) (ct.add_noise)."""
        delta = ct.noise_like(x0, C, generator=gen)
        return ct.add_noise(x0, delta, t, S), delta

    # held-out denoising set: fixed (x0, t, delta), t stratified over [eps, 1]
    n_val = 256 if not args.quick else 16
    vrng = np.random.default_rng([args.seed, 3])
    vgen = torch.Generator().manual_seed(args.seed * 1000 + 3)
    val_x0 = torch.from_numpy(make_videos(vrng, n_val, tau, size))
    val_q = (torch.arange(n_val, dtype=torch.float32) + 0.5) / n_val
    if args.t_sampling == "log-normal":  # the training law's quantiles: sigma = e^(m + s z_q)
        val_t = S.t_of_lambda(1.2 - 1.2 * torch.special.ndtri(val_q.double())).float()
    elif lo_t > 0:  # uniform on edm's [smin, smax]
        val_t = lo_t + (S.span()[1] - lo_t) * val_q
    else:  # (the expression as before: the same bits)
        val_t = args.eps + (1 - args.eps) * (torch.arange(n_val, dtype=torch.float32) + 0.5) / n_val
    val_xt, val_delta = noisy(val_x0, val_t, vgen)
    val_target = regression_target(val_x0, val_delta, val_t)

    # C's eigenvectors (ascending eigenvalues): u_0 the roughest temporal mode of the noise
    # (alternating across frames), u_{tau-1} the smoothest (nearly constant)
    lam, U = np.linalg.eigh(np.asarray(C.matrix, dtype=np.float64))
    Ut = torch.as_tensor(U.T, dtype=torch.float32)

    def evaluate(net):
        """Held-out losses per element, and the relative error in each eigen-direction u_k of
        C: mean over pixels and videos of (u_k . (delta_theta - delta))^2 / lambda_k (1 = no
        better than predicting 0 in that direction, for the noise target; a flow target's
        error is divided by the noise's lambda_k as well). The C^-1 loss is their sum over k
        divided by tau, the MSE their lambda-weighted sum divided by tau."""
        net.eval()
        out = {"eq3": 0.0, "mse": 0.0}
        mode = np.zeros(tau)
        with torch.no_grad():
            for lo in range(0, n_val, 64):
                sl = slice(lo, lo + 64)
                pred = net(val_xt[sl], net_t(val_t[sl]))
                for k in out:
                    out[k] += float(per_video_loss(k, pred, val_target[sl]).sum())
                e = (pred - val_target[sl]).reshape(pred.shape[0], tau, -1)
                mode += torch.einsum("ki,bip->bkp", Ut, e).pow(2).sum((0, 2)).double().numpy()
        out = {k: v / (n_val * tau * size * size) for k, v in out.items()}
        out["mode"] = mode / (n_val * size * size) / lam
        return out

    # reference data for the statistics (a stream of its own)
    data = make_videos(np.random.default_rng([args.seed, 2]), args.n_data, tau, size)
    ref = frame_stats(data)
    brng = np.random.default_rng([args.seed, 4])

    print("train_denoiser: tau %d, %dx%d, noise ar1:rho=%g, %s, eps %g, helpers %s, "
          "%d torch threads" % (tau, size, size, args.rho, S.spec, args.eps, helpers,
                                args.threads), flush=True)
    if S.path != "vp" or target != "noise":
        print("  target %s, t ~ %s, net time %s" % (target, args.t_sampling, net_time),
              flush=True)

    results = {}
    for kind in args.losses:
        # same seed for every loss: same initial weights, batches, t and noise draws
        torch.manual_seed(args.seed)
        net = path_net(torch, args.channels, args.blocks, S.path)
        nparam = sum(p.numel() for p in net.parameters())
        opt = torch.optim.Adam(net.parameters(), lr=args.lr)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda i: 0.5 * (1 + math.cos(math.pi * min(i, args.steps) / args.steps)))
        drng = np.random.default_rng([args.seed, 1])
        gen = torch.Generator().manual_seed(args.seed * 1000 + 1)
        curve = np.zeros(args.steps)
        t0 = time.time()
        net.train()
        for step in range(args.steps):
            x0 = torch.from_numpy(make_videos(drng, args.batch, tau, size))
            t = ct.sample_t(args.batch, S, eps=args.eps, generator=gen, kind=args.t_sampling)
            xt, delta = noisy(x0, t, gen)
            per = train_loss(kind, net(xt, net_t(t)), x0, delta, t) / (tau * size * size)
            if wnorm is not None:
                td = t.double().numpy()
                w = S.beta(td) / -np.expm1(-S.int_beta(td)) / wnorm
                per = per * torch.as_tensor(w, dtype=per.dtype)
            loss = per.mean()
            if not torch.isfinite(loss):
                sys.exit("train_denoiser: %s loss is %s at step %d (try a smaller --lr)"
                         % (kind, float(loss), step))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
            sched.step()
            curve[step] = float(loss)
            if (step + 1) % max(1, args.steps // 6) == 0 or step + 1 == args.steps:
                print("  %s step %5d/%d  loss %.4f (mean of last %d)  %.0f s"
                      % (kind, step + 1, args.steps,
                         curve[max(0, step - 49):step + 1].mean(), min(step + 1, 50),
                         time.time() - t0), flush=True)
        train_s = time.time() - t0
        val = evaluate(net)
        print("  %s: %d parameters, %.1f s training; held-out loss per element: C^-1 %.4f, "
              "MSE %.4f" % (kind, nparam, train_s, val["eq3"], val["mse"]), flush=True)

        with Atomic(os.path.join(args.out_dir, "model_%s.pt" % kind)) as tmp:
            torch.save(net.state_dict(), tmp)

        model = path_model(ct, net, S.path, target)
        # EM's grid: the default (uniform in t) on VP and rf; karras on edm and ve, where
        # uniform steps in sigma would end with one step from sigma ~ smax / steps to smin
        sde_grid = {"grid": "karras"} if S.path in ("edm", "ve") else {}
        res = {"nparam": nparam, "train_seconds": train_s, "curve": curve, "val": val}
        for sampler in args.samplers:
            t1 = time.time()
            common = dict(cov=C, schedule=S, batch=args.samples, frame_shape=(size, size),
                          seed=args.seed + 7, output=target, t_end=max(args.eps, lo_t))
            if sampler.endswith("+thr"):
                common["x0_threshold"] = {"p": args.threshold}
            try:
                if sampler.startswith("reverse_sde"):
                    r = corrsde.solve(model, process="reverse-sde", solver="em",
                                      steps=args.sde_steps, **sde_grid, **common)
                elif sampler.startswith("dpmpp2m"):
                    r = corrsde.solve(model, process="pf-ode", solver="dpmpp2m",
                                      steps=FEWSTEP_STEPS, grid=FEWSTEP_GRID[S.path], **common)
                else:
                    r = corrsde.solve(model, process="pf-ode", solver="dopri5", steps=0,
                                      rtol=args.rtol, max_nfe=args.max_nfe, **common)
            except corrsde.Error as e:
                sys.exit("train_denoiser: %s %s: corrsde.solve failed: %s%s"
                         % (kind, sampler, e, " (raise --max-nfe or --rtol)"
                            if sampler.startswith("pf_ode") else ""))
            x = np.asarray(r.x, dtype=np.float64)
            if not np.all(np.isfinite(x)):
                sys.exit("train_denoiser: %s %s produced non-finite samples" % (kind, sampler))
            st = summary(frame_stats(x), ref)
            se = bootstrap_se(x, data, args.bootstrap, brng)
            res[sampler] = {"x": x.astype(np.float32), "nfe": int(r.nfe),
                            "seconds": time.time() - t1, "stats": frame_stats(x),
                            "summary": st, "se": se}
            print("  %s %s: %d model calls, %.1f s" % (kind, sampler, r.nfe, time.time() - t1),
                  flush=True)
        results[kind] = res

    # --------------------------------------------------------------- tables
    ref_sum = summary(ref)
    ref_se = bootstrap_se(data, None, args.bootstrap, brng)
    cols = ("lag1", "lag2", "mean", "std", "dmean", "dstd")

    def pm(v, e):
        return "%.3f ± %.3f" % (v, e)

    lines = ["schedule %s, target %s%s" % (S.spec, target, "" if S.path == "vp" and
                                              target == "noise" else
                                              ", t ~ %s, net time %s" % (args.t_sampling,
                                                                         net_time)),
             "",
             "| videos | model calls | lag-1 corr | lag-2 corr | frame mean | frame std "
             "| mean abs Δ frame mean | mean abs Δ frame std |",
             "|---|---:|---:|---:|---:|---:|---:|---:|",
             "| data (%d) | | %s | %s | %s | %s | | |"
             % (args.n_data, *(pm(ref_sum[k], ref_se[k]) for k in cols[:4])),
             "| AR(1) noise prior, exact | | %.3f | %.3f | 0 | %g | | |"
             % (args.rho, args.rho ** 2, S.prior_scale())]
    for kind in args.losses:
        for sampler in args.samplers:
            s = results[kind][sampler]
            lines.append("| %s, %s (%d) | %d | %s |"
                         % (kind, sampler.replace("_", "-"), args.samples, s["nfe"],
                            " | ".join(pm(s["summary"][k], s["se"][k]) for k in cols)))
    lines += ["", "| loss | parameters | training s | held-out C^-1 loss | held-out MSE "
              "| rel. error, roughest mode | rel. error, smoothest mode |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for kind in args.losses:
        r = results[kind]
        lines.append("| %s | %d | %.1f | %.4f | %.4f | %.4f | %.4f |"
                     % (kind, r["nparam"], r["train_seconds"], r["val"]["eq3"],
                        r["val"]["mse"], r["val"]["mode"][0], r["val"]["mode"][-1]))
    total = time.time() - t_start
    tdraw = {"uniform": "U(%g, 1)" % args.eps if lo_t == 0 else "U(%g, %g)" % S.span(),
             "logit-normal": "logit-normal (logit t ~ N(0, 1))",
             "log-normal": "log-normal (ln sigma ~ N(-1.2, 1.2^2), truncated to the span)"
             }[args.t_sampling]
    if S.path in ("edm", "ve"):
        tdraw += ", EDM preconditioning (c_skip, c_out, c_in, c_noise; sigma_data %g)" % EDM_SIGMA_DATA
    losses_are = ("" if target == "noise" else
                  "losses: flow_matching_loss, eq3 metric cinv, mse plain; ")
    few = ("dpmpp2m: pf-ode, %s grid, %d steps; " % (FEWSTEP_GRID[S.path], FEWSTEP_STEPS)
           if "dpmpp2m" in args.samplers else "")
    vt = ("t stratified over [eps, 1]" if args.t_sampling != "log-normal" and lo_t == 0
          else "t at the training law's quantiles")
    note = ("tau %d, %dx%d, ar1:rho=%g, %s, target %s, t ~ %s, time weight %s; %s%d steps x "
            "batch %d per loss, seed %d; reverse SDE: em %d steps%s; PF-ODE: dopri5 rtol %g; "
            "%s+thr: x0 thresholded (Imagen, p = %g); "
            "± is the bootstrap standard error over videos (%d resamples); Δ columns: mean "
            "over frames of |samples - data|, per frame; held-out losses per element on %d "
            "fixed (x0, t, delta), %s; rel. error of a mode: "
            "E (u . error)^2 / lambda for the eigenvector u of C with the smallest (roughest) "
            "and largest (smoothest) eigenvalue lambda, 1 = no better than 0; total %.0f s"
            % (tau, size, size, args.rho, S.spec, target, tdraw, args.time_weight, losses_are,
               args.steps, args.batch, args.seed, args.sde_steps,
               ", karras grid" if S.path in ("edm", "ve") else "", args.rtol, few,
               args.threshold, args.bootstrap, n_val, vt, total))
    table = "\n".join(lines) + "\n\n" + note + "\n"
    print()
    print(table, flush=True)

    # --------------------------------------------------------------- files

    with Atomic(os.path.join(args.out_dir, "samples.h5")) as tmp:
        with h5py.File(tmp, "w") as f:
            for k, v in sorted(vars(args).items()):
                if v is not None:
                    f.attrs[k] = ",".join(v) if isinstance(v, list) else v
            f.attrs["cov"] = C.spec
            f.attrs["schedule"] = S.spec
            f.attrs["path"] = S.path
            f.attrs["target"] = target
            f.attrs["net_output"] = target  # TorchModel's output kind
            f.attrs["net_time"] = net_time  # TorchModel's time kind
            f.attrs["cov_matrix"] = C.matrix
            f.attrs["helpers"] = helpers
            f.attrs["corrsde_version"] = corrsde.__version__
            f.attrs["torch_version"] = str(torch.__version__)
            f.attrs["seconds"] = total
            d = f.create_dataset("data", data=data, compression="gzip")
            d.attrs["axes"] = "video, frame, y, x"
            for sampler in args.samplers:
                d = f.create_dataset("samples/" + sampler, compression="gzip",
                                     data=np.stack([results[k][sampler]["x"]
                                                    for k in args.losses]))
                d.attrs["axes"] = "loss, video, frame, y, x"
                d.attrs["losses"] = ",".join(args.losses)
                d.attrs["nfe"] = [results[k][sampler]["nfe"] for k in args.losses]
                d.attrs["solver"] = ("em, %d steps%s" % (args.sde_steps, ", karras grid"
                                                         if S.path in ("edm", "ve") else "")
                                     if sampler.startswith("reverse_sde")
                                     else "dpmpp2m, %s grid, %d steps"
                                     % (FEWSTEP_GRID[S.path], FEWSTEP_STEPS)
                                     if sampler.startswith("dpmpp2m")
                                     else "dopri5, rtol %g" % args.rtol)
                d.attrs["x0_threshold"] = ("p=%g" % args.threshold if sampler.endswith("+thr")
                                           else "none")
            for name, st, sm, se in ([("data", ref, ref_sum, ref_se)]
                                     + [("%s/%s" % (k, s), results[k][s]["stats"],
                                         results[k][s]["summary"], results[k][s]["se"])
                                        for k in args.losses for s in args.samplers]):
                g = f.create_group("stats/" + name)
                g["frame_mean"], g["frame_std"] = st["frame_mean"], st["frame_std"]
                for k, v in sm.items():
                    g.attrs[k] = v
                    g.attrs[k + "_se"] = se[k]
            for k in args.losses:
                g = f.create_group("train/" + k)
                g["loss"] = results[k]["curve"]
                g.attrs["parameters"] = results[k]["nparam"]
                g.attrs["seconds"] = results[k]["train_seconds"]
                g.attrs["heldout_cinv"] = results[k]["val"]["eq3"]
                g.attrs["heldout_mse"] = results[k]["val"]["mse"]
                g["heldout_mode_error"] = results[k]["val"]["mode"]
                g["heldout_mode_error"].attrs["doc"] = (
                    "per eigenvector u_k of C (ascending eigenvalue): mean (u_k . error)^2 / "
                    "lambda_k over held-out videos and pixels")
            f["table"] = table

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    k = min(args.strip, args.samples, args.n_data)
    rows = [("data %d" % j, data[j]) for j in range(k)]
    for kind in args.losses:
        for sampler in args.samplers:
            rows += [("%s %s %d" % (kind, sampler.replace("_", "-"), j),
                      results[kind][sampler]["x"][j]) for j in range(k)]
    fig, axes = plt.subplots(len(rows), tau, figsize=(0.9 * tau + 1.6, 0.9 * len(rows) + 0.4),
                             squeeze=False)
    for r, (label, video) in enumerate(rows):
        for i in range(tau):
            ax = axes[r][i]
            ax.imshow(video[i], cmap="gray", vmin=-1, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title("frame %d" % i, fontsize=7)
        axes[r][0].set_ylabel(label, fontsize=7, rotation=0, ha="right", va="center")
    fig.suptitle("data and samples (grey scale -1..1), ar1:rho=%g noise%s" % (
        args.rho, "" if S.path == "vp" and target == "noise"
        else ", %s, target %s" % (S.spec, target)), fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.3 / fig.get_figheight()))  # room for the title
    with Atomic(os.path.join(args.out_dir, "frames.png")) as tmp:
        fig.savefig(tmp, format="png", dpi=80)
    plt.close(fig)
    with Atomic(os.path.join(args.out_dir, "table.md")) as tmp:
        with open(tmp, "w") as f:
            f.write(table)
    # samples.gif: the videos play, data and the first loss's samples side by side, on the
    # data's fixed grey scale [-1, 1] (experiments/plot_frames.py draws it)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import plot_frames
    import types
    g = min(args.gif_videos, args.samples, args.n_data)
    kind = args.losses[0]
    vids = [data[j] for j in range(g)]
    labels = ["data %d" % j for j in range(g)]
    for sampler in args.samplers:
        vids += [results[kind][sampler]["x"][j] for j in range(g)]
        labels += ["%s %s" % (kind, sampler.replace("_", "-"))] * g
    opts = types.SimpleNamespace(channel=None, cmap="gray", dpi=60, fps=3.0)
    with Atomic(os.path.join(args.out_dir, "samples.gif")) as tmp:
        os.replace(tmp, tmp + ".gif")  # the writer picks the format by the extension
        try:
            plot_frames.draw_animation(vids, labels, -1.0, 1.0, opts,
                                       "data and %s samples, grey scale -1..1" % kind,
                                       tmp + ".gif", "pillow")
        finally:
            os.replace(tmp + ".gif", tmp)
    print("wrote %s/{samples.h5, frames.png, samples.gif, table.md, model_*.pt} in %.0f s"
          % (args.out_dir, time.time() - t_start), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
