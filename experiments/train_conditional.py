#!/usr/bin/python3
"""A class-conditional video model end to end: train a small denoiser with the eq. 3 loss and
conditioning dropout under AR(1) frame noise, sample it with corrsde's classifier-free
guidance (a scalar scale and a per-frame one), and measure the conditional accuracy and the
frame statistics of the samples against the data.

    PYTHONPATH=build/python /usr/bin/python3 experiments/train_conditional.py --out-dir results/cond
    PYTHONPATH=build/python /usr/bin/python3 experiments/train_conditional.py --quick --out-dir q

The data are videos of one Gaussian blob on a dark background (values in [-1, 1]) moving in
a straight line in one of four directions; the class is the direction (0 right, 1 left,
2 down, 3 up; "down" is increasing row index). The noise is N(0, C) along the frame axis of
every pixel, C = ar1:rho. A small (2+1)-D convolutional net predicts the noise delta from
(x_t, t, label); the label (or the null class, index 4) enters through an embedding added to
the time embedding, which modulates (FiLM) every block. Training: the eq. 3 (C^-1) loss,
t ~ U(eps, 1) on the continuous vp-linear schedule, the label replaced by the null class
with probability --p-uncond (conditioning dropout), so one net gives both the conditional
and the unconditional answer.

Sampling: corrsde.solve(TorchModel(net, output="noise"), cond={"label": labels},
uncond={"label": null labels}, guidance=w) with the PF-ODE and/or the reverse SDE, each
guidance setting from the same prior draw (and, for the SDE, the same noise). Settings
(--guidance, repeatable; the library's spec language): W (one scale; 0 is sampled as the
unconditional model alone, 1 as the conditional model alone, both without the library's
guidance since out_u + w (out_c - out_u) is then one of the two answers), w_1,...,w_tau (one
per frame) or linear:A,B (A at frame 0 to B at the last frame, as SVD).

Measured on the samples: the conditional accuracy (the direction recovered from the blob's
motion: the least-squares velocity of the brightness-weighted centroid over the frames,
argmax over the four directions; the same classifier is checked on held-out data first),
the blob's speed, and the frame statistics of experiments/train_denoiser.py (lag-1 and
lag-2 correlation, per-frame mean and std), with bootstrap standard errors over videos.
Every guided setting is checked against a reference: a Python closure that calls the net on
the 2B states [x, x] with [labels, null] and returns out_u + w (out_c - out_u) itself; the
largest difference is reported. Written to --out-dir:

  samples.h5   /data [N, tau, H, W] and /data_labels [N] (the held-out data the statistics
               and the classifier check use), /samples/<process>/<setting> [n, tau, H, W]
               (attributes guidance, nfe, solver), /labels [n], /predicted/<process>/<setting>
               [n] (the classifier's answer), /stats/..., /train/loss, /table; the settings
               as root attributes
  frames.png   a frame strip per class: a data video and one sample per setting
  samples_<class>.gif   per class: data videos and the samples of every setting, playing,
               on the fixed grey scale -1..1
  table.md     the tables printed to stdout
  model.pt     the trained weights (state_dict)

Every file is written under a temporary name and renamed into place when complete.
"""
import argparse
import inspect
import math
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_denoiser as td  # noqa: E402  (frame statistics, bootstrap, atomic files)

CLASSES = ("right", "left", "down", "up")
NULL = len(CLASSES)  # the null class: the unconditional model
# (d row, d column) per frame of each class's motion
DIRECTIONS = np.array([(0, 1), (0, -1), (1, 0), (-1, 0)], dtype=np.float64)
PROCESSES = ("pf-ode", "reverse-sde")

FULL = dict(steps=1500, batch=32, lr=2e-3, per_class=32, ode_steps=25, sde_steps=100,
            n_data=1024, bootstrap=200, check_videos=4, gif_videos=4)
QUICK = dict(steps=40, batch=16, lr=2e-3, per_class=3, ode_steps=6, sde_steps=10,
             n_data=64, bootstrap=20, check_videos=2, gif_videos=1)


# ------------------------------------------------------------------------------ options

def probability(s):
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError("expected a number, got %r" % s)
    if not 0 <= v < 1:
        raise argparse.ArgumentTypeError("expected a probability in [0, 1), got %r" % s)
    return v


def parse_guidance(spec, tau):
    """A --guidance spec -> (label, w): w a float or a list of tau floats. W; w_1,...,w_tau;
    linear:A,B (A at frame 0 to B at frame tau - 1). ValueError says what is wrong."""
    s = spec.strip()
    if s.startswith("linear:"):
        parts = s[len("linear:"):].split(",")
        if len(parts) != 2:
            raise ValueError("linear:A,B needs two numbers, got %r" % spec)
        a, b = (float(p) for p in parts)
        w = [a + (b - a) * f / (tau - 1) for f in range(tau)]
        label = "linear %g→%g" % (a, b)
    else:
        parts = s.split(",")
        vals = [float(p) for p in parts]
        if len(vals) == 1:
            w, label = vals[0], "w=%g" % vals[0]
        elif len(vals) == tau:
            w, label = vals, "per-frame " + ",".join("%g" % v for v in vals)
        else:
            raise ValueError("expected one scale or %d (one per frame), got %d in %r"
                             % (tau, len(vals), spec))
    for v in (w if isinstance(w, list) else [w]):
        if not (math.isfinite(v) and abs(v) <= 1e3):
            raise ValueError("a scale must be finite with |w| <= 1e3, got %r in %r" % (v, spec))
    return label, w


def parse_args(argv=None):
    ap = argparse.ArgumentParser(
        description="Train a small class-conditional video denoiser (a blob moving right, "
                    "left, down or up; the class is the direction) with the eq. 3 loss and "
                    "conditioning dropout under AR(1) frame noise, sample it with corrsde's "
                    "classifier-free guidance and measure the conditional accuracy and the "
                    "frame statistics of the samples.",
        epilog="Run from the build tree: PYTHONPATH=build/python /usr/bin/python3 %(prog)s. "
               "Full-run defaults: " + ", ".join("--%s %s" % (k.replace("_", "-"), v)
                                                 for k, v in FULL.items())
               + "; --quick: " + ", ".join("--%s %s" % (k.replace("_", "-"), v)
                                          for k, v in QUICK.items()) + ".")
    ap.add_argument("--out-dir", default="results/train_conditional",
                    help="directory for samples.h5, frames.png, the GIFs, table.md and "
                         "model.pt (created if missing; default %(default)s)")
    ap.add_argument("--quick", action="store_true",
                    help="a ~20 s smoke run: few training steps, few samples, coarse solvers "
                         "(the numbers mean nothing)")
    ap.add_argument("--seed", type=int, default=0,
                    help="seeds everything: the net's initialisation, the training batches, "
                         "t, noise and dropout draws, the held-out data and the samplers "
                         "(default 0)")
    ap.add_argument("--frames", type=td.positive_int, default=8,
                    help="tau, frames per video (>= 3; default 8)")
    ap.add_argument("--size", type=td.positive_int, default=16,
                    help="frames are SIZE x SIZE pixels (even, >= 8; default 16)")
    ap.add_argument("--rho", type=float, default=0.9,
                    help="the AR(1) noise correlation, C[i][j] = rho^|i-j|, |rho| < 1 "
                         "(default 0.9)")
    ap.add_argument("--p-uncond", type=probability, default=0.15,
                    help="conditioning dropout: the probability that a training video's label "
                         "is replaced by the null class (default 0.15; > 0 for guidance)")
    ap.add_argument("--guidance", action="append", metavar="SPEC",
                    help="a guidance setting to sample at, repeatable: W (0 = the "
                         "unconditional model, 1 = the conditional model), w_1,...,w_tau (one "
                         "scale per frame) or linear:A,B (from A at frame 0 to B at the last "
                         "frame); default: 0, 1, 3 and linear:1,3")
    ap.add_argument("--processes", default=",".join(PROCESSES),
                    help="comma-separated samplers, of pf-ode (the --ode-solver with "
                         "--ode-steps fixed steps) and reverse-sde (Euler-Maruyama with "
                         "--sde-steps steps); default %(default)s")
    ap.add_argument("--ode-solver", default="heun",
                    help="the PF-ODE's fixed-step solver (a name of corrsde.solvers(); "
                         "default %(default)s)")
    ap.add_argument("--steps", type=td.positive_int,
                    help="training steps (full %d, quick %d)" % (FULL["steps"], QUICK["steps"]))
    ap.add_argument("--batch", type=td.positive_int,
                    help="training batch, videos per step (full %d, quick %d)"
                         % (FULL["batch"], QUICK["batch"]))
    ap.add_argument("--lr", type=td.positive_float,
                    help="Adam's peak learning rate, cosine-decayed to 0 (default %g)"
                         % FULL["lr"])
    ap.add_argument("--channels", type=td.positive_int, default=32,
                    help="channels of the net at half resolution, a multiple of 8; half as many "
                         "at full resolution (default 32)")
    ap.add_argument("--blocks", type=td.positive_int, default=3,
                    help="residual (2+1)-D blocks of the net at half resolution (default 3)")
    ap.add_argument("--per-class", type=td.positive_int,
                    help="videos sampled per class and setting (full %d, quick %d)"
                         % (FULL["per_class"], QUICK["per_class"]))
    ap.add_argument("--ode-steps", type=td.positive_int,
                    help="steps of the PF-ODE solver (full %d, quick %d)"
                         % (FULL["ode_steps"], QUICK["ode_steps"]))
    ap.add_argument("--sde-steps", type=td.positive_int,
                    help="Euler-Maruyama steps of the reverse SDE (full %d, quick %d)"
                         % (FULL["sde_steps"], QUICK["sde_steps"]))
    ap.add_argument("--n-data", type=td.positive_int,
                    help="held-out data videos (balanced over the classes) the classifier is "
                         "checked on and the statistics compare with (>= 8; full %d, quick %d)"
                         % (FULL["n_data"], QUICK["n_data"]))
    ap.add_argument("--bootstrap", type=td.positive_int,
                    help="bootstrap resamples (over videos) for the standard errors "
                         "(full %d, quick %d)" % (FULL["bootstrap"], QUICK["bootstrap"]))
    ap.add_argument("--check-videos", type=int,
                    help="videos of the closure check: each guided setting sampled (first "
                         "process) through the library and through a Python closure that "
                         "combines the two answers itself (0: no check; full %d, quick %d)"
                         % (FULL["check_videos"], QUICK["check_videos"]))
    ap.add_argument("--eps", type=td.positive_float, default=1e-3,
                    help="the smallest t, in training and where the samplers stop "
                         "(default 1e-3)")
    ap.add_argument("--gif-videos", type=td.positive_int,
                    help="videos per row (data, and each setting) in the GIF of each class "
                         "(full %d, quick %d)" % (FULL["gif_videos"], QUICK["gif_videos"]))
    ap.add_argument("--threads", type=td.positive_int, default=2,
                    help="torch threads (default 2)")
    args = ap.parse_args(argv)
    for k, v in (QUICK if args.quick else FULL).items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    if args.seed < 0:
        ap.error("--seed: expected a non-negative integer, got %d" % args.seed)
    if args.frames < 3:
        ap.error("--frames: the lag-2 correlation needs at least 3 frames, got %d" % args.frames)
    if args.size < 8 or args.size % 2:
        ap.error("--size: expected an even number >= 8 (the net halves the resolution; the "
                 "blob needs room to move), got %d" % args.size)
    if not (math.isfinite(args.rho) and abs(args.rho) < 1):
        ap.error("--rho: expected |rho| < 1 (C must be positive definite), got %r" % args.rho)
    if args.channels % 8:
        ap.error("--channels: expected a multiple of 8 (GroupNorm with 4 groups at c/2), got %d"
                 % args.channels)
    if args.n_data < 8:
        ap.error("--n-data: expected at least 8 (2 per class), got %d" % args.n_data)
    if not args.eps < 0.5:
        ap.error("--eps: expected a small positive t (< 0.5), got %r" % args.eps)
    if args.check_videos < 0:
        ap.error("--check-videos: expected a count >= 0, got %d" % args.check_videos)
    procs = [s.strip() for s in args.processes.split(",") if s.strip()]
    bad = [s for s in procs if s not in PROCESSES]
    if not procs or bad or len(set(procs)) != len(procs):
        ap.error("--processes: expected a comma-separated list of distinct names from %s, "
                 "got %r" % (", ".join(PROCESSES), args.processes))
    args.processes = procs
    specs = args.guidance or ["0", "1", "3", "linear:1,3"]
    args.settings = []
    for spec in specs:
        try:
            label, w = parse_guidance(spec, args.frames)
        except ValueError as e:
            ap.error("--guidance %s: %s" % (spec, e))
        if any(label == s[1] for s in args.settings):
            ap.error("--guidance %s: given twice" % spec)
        args.settings.append((spec, label, w))
    args.guidance = specs
    if any(not isinstance(w, float) or w not in (0.0, 1.0) for _, _, w in args.settings) \
            and args.p_uncond == 0:
        ap.error("--p-uncond: guidance needs the unconditional model, so a dropout "
                 "probability > 0")
    return args


# ------------------------------------------------------------------------------ data

def make_videos(rng, labels, frames, size):
    """Videos [n, frames, size, size] float32 in [-1, 1] of one Gaussian blob moving in the
    direction of its label (DIRECTIONS): width 1.5..2.2 px, amplitude 0.7..1, speed
    (0.5..0.9) v_max px/frame with v_max = (size - 4) / (frames - 1) (so the blob's centre
    stays in [1.5, size - 2.5] over the clip), placed uniformly where it does; brightness b
    mapped to 2 b - 1."""
    labels = np.asarray(labels)
    n = labels.shape[0]
    i = np.arange(frames, dtype=np.float64) - (frames - 1) / 2  # frames from mid-clip
    g = np.arange(size, dtype=np.float64)
    margin = 1.5
    vmax = (size - 1 - 2 * margin) / (frames - 1)
    speed = rng.uniform(0.5, 0.9, n) * vmax
    half = speed * (frames - 1) / 2
    along = rng.uniform(margin + half, size - 1 - margin - half)
    across = rng.uniform(margin, size - 1 - margin, n)
    width = rng.uniform(1.5, 2.2, n)
    amp = rng.uniform(0.7, 1.0, n)
    d = DIRECTIONS[labels]  # [n, 2]
    vertical = d[:, 0] != 0
    c0y = np.where(vertical, along, across)
    c0x = np.where(vertical, across, along)
    cy = c0y[:, None] + (speed * d[:, 0])[:, None] * i[None]  # [n, frames]
    cx = c0x[:, None] + (speed * d[:, 1])[:, None] * i[None]
    r2 = ((g[None, None, :, None] - cy[..., None, None]) ** 2
          + (g[None, None, None, :] - cx[..., None, None]) ** 2)
    b = amp[:, None, None, None] * np.exp(-r2 / (2 * width[:, None, None, None] ** 2))
    return (2 * np.clip(b, 0, 1) - 1).astype(np.float32)


def balanced_labels(n):
    """n labels, the classes in turn in blocks: [0]*k + [1]*k + ... (k = n // 4, the
    remainder to the first classes)."""
    k, r = divmod(n, len(CLASSES))
    return np.concatenate([np.full(k + (c < r), c, dtype=np.int64) for c in range(len(CLASSES))])


# ------------------------------------------------------------------------------ the classifier

def motion(x, floor=0.1):
    """x [n, tau, H, W] -> (velocity [n, 2] in px/frame (d row, d column), the least-squares
    slope over the frames of the centroid weighted by the brightness above a floor,
    w = max((x + 1) / 2 - floor, 0); a frame without weight gets the frame centre)."""
    x = np.asarray(x, dtype=np.float64)
    n, tau, h, w = x.shape
    wt = np.clip((x + 1) / 2 - floor, 0, None)
    tot = wt.sum((2, 3))
    ys, xs = np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64)
    safe = np.where(tot > 0, tot, 1)
    cy = np.where(tot > 0, (wt.sum(3) * ys).sum(2) / safe, (h - 1) / 2)
    cx = np.where(tot > 0, (wt.sum(2) * xs).sum(2) / safe, (w - 1) / 2)
    f = np.arange(tau, dtype=np.float64) - (tau - 1) / 2
    den = (f * f).sum()
    return np.stack([(cy * f).sum(1) / den, (cx * f).sum(1) / den], 1)


def classify(x):
    """The direction of x's blob: argmax over the classes of velocity . direction; and the
    speed |velocity| (px/frame)."""
    v = motion(x)
    return np.argmax(v @ DIRECTIONS.T, 1), np.hypot(v[:, 0], v[:, 1])


def visible(x):
    """Whether every frame of each video of x has a pixel above 0 (brightness 1/2; every data
    video's blob is, its amplitude being >= 0.7 and its centre inside the frame)."""
    x = np.asarray(x)
    return (x.reshape(x.shape[0], x.shape[1], -1).max(2) > 0).all(1)


def measures(x, labels, ref_x):
    """The table's scalars for videos x with intended labels: accuracy, per-class accuracy,
    the fraction with a visible blob and the accuracy among those, mean speed, and
    td.summary's frame statistics against ref_x."""
    pred, speed = classify(x)
    vis = visible(x)
    out = {"acc": float(np.mean(pred == labels)), "speed": float(np.mean(speed)),
           "visible": float(np.mean(vis)),
           "acc_visible": float(np.mean(pred[vis] == labels[vis])) if vis.any() else np.nan}
    for c, name in enumerate(CLASSES):
        m = labels == c
        out["acc_" + name] = float(np.mean(pred[m] == c)) if m.any() else float("nan")
    out.update(td.summary(td.frame_stats(x), None if ref_x is None else td.frame_stats(ref_x)))
    return out


def bootstrap(x, labels, ref_x, reps, rng):
    """Standard errors of measures() by resampling the videos of x (stratified by label: each
    class keeps its count) and, independently, of ref_x (so differences carry both errors)."""
    groups = [np.flatnonzero(labels == c) for c in range(len(CLASSES))]
    draws = []
    for _ in range(reps):
        idx = np.concatenate([g[rng.integers(0, len(g), len(g))] for g in groups if len(g)])
        ref = None if ref_x is None else ref_x[rng.integers(0, len(ref_x), len(ref_x))]
        draws.append(measures(x[idx], labels[idx], ref))
    return {k: float(np.nanstd([d[k] for d in draws], ddof=1)) for k in draws[0]}


# ------------------------------------------------------------------------------ the net

def build_net(torch, args):
    """The conditional denoiser: train_denoiser.py's net with a class embedding of
    len(CLASSES) + 1 entries, the last (NULL) the null class."""
    return td.build_net(torch, args.channels, args.blocks, classes=NULL + 1)


# ------------------------------------------------------------------------------ sampling

def library_guidance(corrsde):
    """Whether corrsde.solve takes cond=, uncond=, guidance= (issue 25)."""
    return {"cond", "uncond", "guidance"} <= set(inspect.signature(corrsde.solve).parameters)


def closure_model(torch, net, labels, w):
    """The reference guided model: a Python closure (t, x, ctx) -> out_u + w (out_c - out_u),
    the net called once on the 2B states [x, x] with labels [labels, null] in float32, as
    TorchModel would; w a number or tau numbers (broadcast over each frame's pixels).
    w None: the conditional answer alone."""
    lab = torch.as_tensor(labels, dtype=torch.long)
    null = torch.full_like(lab, NULL)
    wf = None if w is None else np.asarray(w, dtype=np.float64)
    if wf is not None and wf.ndim == 1:
        wf = wf[:, None, None]

    def model(t, x, ctx):
        b = x.shape[0]
        first = getattr(ctx, "first", 0)
        xt = torch.from_numpy(np.asarray(x, dtype=np.float32))  # a copy, rounded
        with torch.no_grad():
            if wf is None:
                tt = torch.full((b,), float(t), dtype=torch.float32)
                return net(xt, tt, label=lab[first:first + b]).to(torch.float64).numpy()
            tt = torch.full((2 * b,), float(t), dtype=torch.float32)
            out = net(torch.cat([xt, xt]), tt,
                      label=torch.cat([lab[first:first + b], null[first:first + b]]))
        out = out.to(torch.float64).numpy()
        c, u = out[:b], out[b:]
        return u + wf * (c - u)

    model.output = "noise"
    return model


# ------------------------------------------------------------------------------ main

def main(argv=None):
    args = parse_args(argv)
    t_start = time.time()
    torch, corrsde = td.import_torch_corrsde("train_conditional")
    ct = corrsde.torch
    import h5py

    if args.ode_solver not in corrsde.solvers() or \
            "pf-ode" not in corrsde.solvers()[args.ode_solver]["processes"]:
        sys.exit("train_conditional: --ode-solver %s: not a PF-ODE solver of corrsde.solvers()"
                 % args.ode_solver)
    if corrsde.solvers()[args.ode_solver]["summary"].find("adaptive") >= 0:
        sys.exit("train_conditional: --ode-solver %s is adaptive; pick a fixed-step one "
                 "(heun, dpmpp2m, unipc, ...)" % args.ode_solver)
    td.make_out_dir("train_conditional", args.out_dir)

    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    tau, size = args.frames, args.size
    C = corrsde.Cov("ar1:rho=%r" % args.rho, frames=tau)
    S = corrsde.Schedule("vp-linear")
    if not library_guidance(corrsde):
        sys.exit("train_conditional: this corrsde's solve() has no cond=, uncond=, guidance= "
                 "(issue 25); rebuild it (ninja -C <build>)")

    def noisy(x0, t, gen):
        delta = ct.noise_like(x0, C, generator=gen)
        return ct.add_noise(x0, delta, t, S), delta

    # held-out data: the classifier check and the statistics' reference (a stream of its own)
    data_labels = balanced_labels(args.n_data)
    data = make_videos(np.random.default_rng([args.seed, 2]), data_labels, tau, size)
    data_pred, data_speed = classify(data)
    data_acc = float(np.mean(data_pred == data_labels))
    brng = np.random.default_rng([args.seed, 4])
    print("train_conditional: tau %d, %dx%d, noise ar1:rho=%g, vp-linear, eps %g, p_uncond %g, "
          "%d torch threads" % (tau, size, size, args.rho, args.eps, args.p_uncond,
                                args.threads),
          flush=True)
    print("  the direction classifier on %d held-out data videos: accuracy %.4f, speed %.2f "
          "px/frame" % (args.n_data, data_acc, float(data_speed.mean())), flush=True)

    # held-out denoising set: fixed (x0, label, t, delta), t stratified over [eps, 1]
    n_val = 256 if not args.quick else 16
    val_labels = torch.from_numpy(balanced_labels(n_val))
    val_x0 = torch.from_numpy(make_videos(np.random.default_rng([args.seed, 3]),
                                          val_labels.numpy(), tau, size))
    val_t = args.eps + (1 - args.eps) * (torch.arange(n_val, dtype=torch.float32) + 0.5) / n_val
    val_xt, val_delta = noisy(val_x0, val_t, torch.Generator().manual_seed(args.seed * 1000 + 3))

    def heldout(net, labels):
        """The held-out C^-1 loss per element with the given labels (None: the null class)."""
        net.eval()
        tot = 0.0
        with torch.no_grad():
            for lo in range(0, n_val, 64):
                sl = slice(lo, lo + 64)
                lab = None if labels is None else labels[sl]
                tot += float(ct.eq3_loss(net(val_xt[sl], val_t[sl], label=lab), val_delta[sl],
                                         C, weight="none", reduction="sum"))
        return tot / (n_val * tau * size * size)

    # --------------------------------------------------------------- training
    torch.manual_seed(args.seed)
    net = build_net(torch, args)
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
        lab = drng.integers(0, len(CLASSES), args.batch)
        x0 = torch.from_numpy(make_videos(drng, lab, tau, size))
        t = ct.sample_t(args.batch, S, eps=args.eps, generator=gen)
        xt, delta = noisy(x0, t, gen)
        drop = torch.rand(args.batch, generator=gen) < args.p_uncond  # conditioning dropout
        lab = torch.where(drop, torch.full((args.batch,), NULL, dtype=torch.long),
                          torch.from_numpy(lab))
        loss = ct.eq3_loss(net(xt, t, label=lab), delta, C, weight="none")
        if not torch.isfinite(loss):
            sys.exit("train_conditional: the loss is %s at step %d (try a smaller --lr)"
                     % (float(loss), step))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        sched.step()
        curve[step] = float(loss)
        if (step + 1) % max(1, args.steps // 6) == 0 or step + 1 == args.steps:
            print("  step %5d/%d  loss %.4f (mean of last %d)  %.0f s"
                  % (step + 1, args.steps, curve[max(0, step - 49):step + 1].mean(),
                     min(step + 1, 50), time.time() - t0), flush=True)
    train_s = time.time() - t0
    val = {"cond": heldout(net, val_labels), "null": heldout(net, None),
           "wrong": heldout(net, (val_labels + 1) % len(CLASSES))}
    print("  %d parameters, %.1f s training; held-out C^-1 loss per element: true label %.4f, "
          "null class %.4f, wrong label %.4f" % (nparam, train_s, val["cond"], val["null"],
                                                 val["wrong"]), flush=True)
    with td.Atomic(os.path.join(args.out_dir, "model.pt")) as tmp:
        torch.save(net.state_dict(), tmp)
    net.eval()

    # --------------------------------------------------------------- sampling
    n = args.per_class * len(CLASSES)
    labels = balanced_labels(n)
    null = np.full(n, NULL, dtype=np.int64)
    model = ct.TorchModel(net, output="noise")

    def solve(process, w, lab, nul, use_closure=False):
        """One sampler run at guidance w (a number or tau numbers) for the labels lab: the
        same prior draw (seed) and SDE noise for every w."""
        kw = dict(cov=C, schedule=S, batch=len(lab), frame_shape=(size, size),
                  seed=args.seed + 7, output="noise", t_end=args.eps, process=process)
        if process == "pf-ode":
            kw.update(solver=args.ode_solver, steps=args.ode_steps)
        else:
            kw.update(solver="em", steps=args.sde_steps)
        uncond_only = isinstance(w, float) and w == 0.0
        cond_only = isinstance(w, float) and w == 1.0
        if use_closure:
            if uncond_only:
                return corrsde.solve(closure_model(torch, net, nul, None), **kw)
            return corrsde.solve(closure_model(torch, net, lab, None if cond_only else w), **kw)
        if uncond_only:
            return corrsde.solve(model, cond={"label": nul}, **kw)
        if cond_only:
            return corrsde.solve(model, cond={"label": lab}, **kw)
        return corrsde.solve(model, cond={"label": lab}, uncond={"label": nul}, guidance=w, **kw)

    results = {}
    for process in args.processes:
        for spec, label, w in args.settings:
            t1 = time.time()
            try:
                r = solve(process, w, labels, null)
            except corrsde.Error as e:
                sys.exit("train_conditional: %s %s: corrsde.solve failed: %s" % (process, label, e))
            x = np.asarray(r.x, dtype=np.float64)
            if not np.all(np.isfinite(x)):
                sys.exit("train_conditional: %s %s produced non-finite samples" % (process, label))
            pred, _ = classify(x)
            results[process, spec] = {
                "x": x.astype(np.float32), "nfe": int(r.nfe), "seconds": time.time() - t1,
                "pred": pred, "stats": td.frame_stats(x), "m": measures(x, labels, data),
                "se": bootstrap(x, labels, data, args.bootstrap, brng)}
            print("  %s, %s: accuracy %.3f, %d model calls, %.1f s"
                  % (process, label, results[process, spec]["m"]["acc"], r.nfe,
                     time.time() - t1), flush=True)

    # the closure check: every guided setting through the library and through the closure
    check = None
    guided = [s for s in args.settings if not (isinstance(s[2], float) and s[2] in (0.0, 1.0))]
    if args.check_videos and guided:
        k = min(args.check_videos, n)
        pick = np.linspace(0, n - 1, k).round().astype(int)  # spread over the classes
        process = args.processes[0]
        diffs = []
        for spec, label, w in guided:
            a = np.asarray(solve(process, w, labels[pick], null[pick]).x)
            b = np.asarray(solve(process, w, labels[pick], null[pick], use_closure=True).x)
            diffs.append(float(np.max(np.abs(a - b))))
            print("  check: %s %s on %d videos, library guidance vs the closure: max |diff| "
                  "%.3g" % (process, label, k, diffs[-1]), flush=True)
        check = {"settings": ";".join(s[1] for s in guided), "process": process, "videos": k,
                 "max_abs_diff": max(diffs), "max_abs_diffs": np.asarray(diffs)}

    # --------------------------------------------------------------- tables
    ref = td.frame_stats(data)
    ref_m = measures(data, data_labels, None)
    ref_se = bootstrap(data, data_labels, None, args.bootstrap, brng)

    def pm(v, e, fmt="%.3f"):
        return (fmt + " ± " + fmt) % (v, e)

    acc_cols = ["acc"] + ["acc_" + c for c in CLASSES] + ["visible", "acc_visible", "speed"]
    stat_cols = ("lag1", "lag2", "mean", "std", "dmean", "dstd")
    lines = ["| videos | model calls | accuracy | " + " | ".join(CLASSES)
             + " | blob in every frame | accuracy there | speed px/frame |",
             "|---|---:|---:|" + "---:|" * len(CLASSES) + "---:|---:|---:|",
             "| data (%d) | | %s |" % (args.n_data, " | ".join(
                 pm(ref_m[k], ref_se[k]) for k in acc_cols))]
    for process in args.processes:
        for spec, label, w in args.settings:
            s = results[process, spec]
            lines.append("| %s, %s (%d) | %d | %s |" % (process, label, n, s["nfe"], " | ".join(
                pm(s["m"][k], s["se"][k]) for k in acc_cols)))
    lines += ["", "| videos | lag-1 corr | lag-2 corr | frame mean | frame std "
              "| mean abs Δ frame mean | mean abs Δ frame std |",
              "|---|---:|---:|---:|---:|---:|---:|",
              "| data (%d) | %s | | |" % (args.n_data, " | ".join(
                  pm(ref_m[k], ref_se[k]) for k in stat_cols[:4])),
              "| AR(1) noise prior, exact | %.3f | %.3f | 0 | 1 | | |"
              % (args.rho, args.rho ** 2)]
    for process in args.processes:
        for spec, label, w in args.settings:
            s = results[process, spec]
            lines.append("| %s, %s | %s |" % (process, label, " | ".join(
                pm(s["m"][k], s["se"][k]) for k in stat_cols)))
    total = time.time() - t_start
    note = ("tau %d, %dx%d, ar1:rho=%g, vp-linear, t ~ U(%g, 1); %d parameters, %d steps x "
            "batch %d (%.0f s), conditioning dropout %g, seed %d; held-out C^-1 loss per "
            "element %.4f with the true label, %.4f with the null class, %.4f with a wrong one. "
            "Sampling through corrsde.solve(cond=, uncond=, guidance=): PF-ODE %s %d steps, "
            "reverse SDE em %d steps, %d per class, "
            "the same prior draw (and SDE noise) for every setting; w=0 is the unconditional "
            "model alone and w=1 the conditional model alone (no guided call); accuracy: the "
            "direction of the brightness-weighted centroid's least-squares velocity "
            "(argmax over the four directions), speed its norm; a blob is in a frame when a "
            "pixel is above 0 (brightness 1/2); ± is the bootstrap standard "
            "error over videos (%d resamples, stratified by class; the data resampled as well "
            "for the Δ columns)%s; total %.0f s"
            % (tau, size, size, args.rho, args.eps, nparam, args.steps, args.batch, train_s,
               args.p_uncond, args.seed, val["cond"], val["null"], val["wrong"],
               args.ode_solver, args.ode_steps, args.sde_steps, args.per_class, args.bootstrap,
               "" if check is None else
               "; library guidance vs a closure combining the answers itself (%s; %s; %d "
               "videos each): max |diff| %.3g" % (check["process"], check["settings"],
                                              check["videos"], check["max_abs_diff"]),
               total))
    table = "\n".join(lines) + "\n\n" + note + "\n"
    print()
    print(table, flush=True)

    # --------------------------------------------------------------- files
    with td.Atomic(os.path.join(args.out_dir, "samples.h5")) as tmp:
        with h5py.File(tmp, "w") as f:
            for k, v in sorted(vars(args).items()):
                if k == "settings" or v is None:
                    continue
                f.attrs[k] = ";".join(v) if isinstance(v, list) else v
            f.attrs["classes"] = ",".join(CLASSES)
            f.attrs["null_class"] = NULL
            f.attrs["cov"] = C.spec
            f.attrs["schedule"] = S.spec
            f.attrs["cov_matrix"] = C.matrix
            f.attrs["corrsde_version"] = corrsde.__version__
            f.attrs["torch_version"] = str(torch.__version__)
            f.attrs["seconds"] = total
            if check is not None:
                for k, v in check.items():
                    f.attrs["check_" + k] = v
            d = f.create_dataset("data", data=data, compression="gzip")
            d.attrs["axes"] = "video, frame, y, x"
            f["data_labels"] = data_labels
            f["data_predicted"] = data_pred
            f["labels"] = labels
            for process in args.processes:
                for spec, label, w in args.settings:
                    s = results[process, spec]
                    d = f.create_dataset("samples/%s/%s" % (process, spec.replace("/", "_")),
                                         data=s["x"], compression="gzip")
                    d.attrs["axes"] = "video, frame, y, x"
                    d.attrs["guidance"] = np.asarray(w, dtype=np.float64)
                    d.attrs["setting"] = label
                    d.attrs["nfe"] = s["nfe"]
                    d.attrs["solver"] = ("%s, %d steps" % (args.ode_solver, args.ode_steps)
                                         if process == "pf-ode" else "em, %d steps"
                                         % args.sde_steps)
                    f["predicted/%s/%s" % (process, spec.replace("/", "_"))] = s["pred"]
                    g = f.create_group("stats/%s/%s" % (process, spec.replace("/", "_")))
                    g["frame_mean"] = s["stats"]["frame_mean"]
                    g["frame_std"] = s["stats"]["frame_std"]
                    for k, v in s["m"].items():
                        g.attrs[k] = v
                        g.attrs[k + "_se"] = s["se"][k]
            g = f.create_group("stats/data")
            g["frame_mean"], g["frame_std"] = ref["frame_mean"], ref["frame_std"]
            for k, v in ref_m.items():
                g.attrs[k] = v
                g.attrs[k + "_se"] = ref_se[k]
            g = f.create_group("train")
            g["loss"] = curve
            g.attrs["parameters"] = nparam
            g.attrs["seconds"] = train_s
            for k, v in val.items():
                g.attrs["heldout_cinv_" + k] = v
            f["table"] = table

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = []
    for c, name in enumerate(CLASSES):
        j = int(np.flatnonzero(data_labels == c)[0])
        rows.append(("%s: data" % name, data[j]))
        i = int(np.flatnonzero(labels == c)[0])
        for process in args.processes:
            for spec, label, w in args.settings:
                rows.append(("%s: %s %s" % (name, process, label),
                             results[process, spec]["x"][i]))
    # one image per row: the tau frames side by side, a 1-pixel gap (drawn mid-grey)
    gap = np.zeros((size, 1), dtype=np.float32)
    fig, axes = plt.subplots(len(rows), 1, figsize=(0.7 * tau + 2.4, 0.7 * len(rows) + 0.6),
                             squeeze=False)
    for r, (label, video) in enumerate(rows):
        ax = axes[r][0]
        strip = np.concatenate([p for i in range(tau) for p in (video[i], gap)][:-1], 1)
        ax.imshow(strip, cmap="gray", vmin=-1, vmax=1, interpolation="nearest")
        ax.set_xticks([(size + 1) * i + (size - 1) / 2 for i in range(tau)] if r == 0 else [])
        ax.set_xticklabels([str(i) for i in range(tau)] if r == 0 else [], fontsize=6)
        ax.xaxis.set_ticks_position("top")
        ax.set_yticks([])
        ax.set_ylabel(label, fontsize=7, rotation=0, ha="right", va="center")
    fig.suptitle("data and samples per class, frames 0..%d (grey scale -1..1), ar1:rho=%g "
                 "noise" % (tau - 1, args.rho), fontsize=8)
    fig.tight_layout()
    with td.Atomic(os.path.join(args.out_dir, "frames.png")) as tmp:
        fig.savefig(tmp, format="png", dpi=80)
    plt.close(fig)
    with td.Atomic(os.path.join(args.out_dir, "table.md")) as tmp:
        with open(tmp, "w") as f:
            f.write(table)
    # samples_<class>.gif: per class, a row of data videos and a row per setting (the same
    # prior draws in every row), on the data's fixed grey scale [-1, 1]
    import plot_frames
    import types
    opts = types.SimpleNamespace(channel=None, cmap="gray", dpi=60, fps=3.0)
    for c, name in enumerate(CLASSES):
        dj = np.flatnonzero(data_labels == c)[:args.gif_videos]
        sj = np.flatnonzero(labels == c)[:args.gif_videos]
        vids = [data[j] for j in dj]
        names = ["data"] * len(dj)
        for process in args.processes:
            for spec, label, w in args.settings:
                vids += [results[process, spec]["x"][j] for j in sj]
                names += ["%s %s" % ("ode" if process == "pf-ode" else "sde", label)] * len(sj)
        with td.Atomic(os.path.join(args.out_dir, "samples_%s.gif" % name)) as tmp:
            os.replace(tmp, tmp + ".gif")  # the writer picks the format by the extension
            try:
                plot_frames.draw_animation(vids, names, -1.0, 1.0, opts,
                                           "class %s: data and samples, grey scale -1..1"
                                           % name, tmp + ".gif", "pillow")
            finally:
                os.replace(tmp + ".gif", tmp)
    print("wrote %s/{samples.h5, frames.png, samples_{%s}.gif, table.md, model.pt} in %.0f s"
          % (args.out_dir, ",".join(CLASSES), time.time() - t_start), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
