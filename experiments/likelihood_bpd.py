#!/usr/bin/python3
"""Bits per dimension under correlated noise (issue 27, item 7): the exact gaussian model
with C = ar1 and mixed against the same model with white noise, and the trained denoisers of
train_denoiser.py (eq. 3 loss against plain MSE) by the PF-ODE likelihood and the discrete
bound.

    PYTHONPATH=build/python /usr/bin/python3 experiments/likelihood_bpd.py --out-dir results/bpd
    PYTHONPATH=build/python /usr/bin/python3 experiments/likelihood_bpd.py --quick --out-dir /tmp/b

Part A, exact: data x ~ N(0, S0 (x) I_D), S0 = 0.25 ar1(0.95), tau 8 frames, D 16 pixels;
the exact gaussian model of that law under the noise C = ar1:rho=0.9, mixed:r=0.5 and
identity (white), each with its own exact score. The PF-ODE likelihood (dopri5 at --rtol,
the exact divergence) of the same samples, against the closed form -log N(x; 0, Sigma_eps):
the data law is the same for every C, so the three must agree up to the prior mismatch at
T = 1 (the solve starts from N(0, C); the exact p_T is N(0, abar_T S0 + (1 - abar_T) C)),
and they differ in cost (NFE).

Part B, trained: the two nets of a train_denoiser.py run (--train-dir; run there with
--quick first when absent), rebuilt as that script samples them from the settings the run
recorded in samples.h5 (schedule, net_output, net_time: VP noise nets fed t, rf flow nets fed
t', edm/ve noise nets under EDM's preconditioning fed sigma; a run made before those
attributes: vp-linear, noise, t), on held-out videos quantized to 8 bits and dequantized
uniformly into [-1, 1) by the library (dequant="uniform:bits=8": y = 2 (k + u) / 256 - 1,
u keyed by --seed; the offset -log2(2/256) = 7 bits), by
  - the PF-ODE likelihood on the run's schedule, from its --eps (edm: smin) to T, with
    --probes Hutchinson probes (Rademacher, the TorchModel's JVP by autograd) and its
    standard error, and
  - for a noise net trained on vp-linear only, the eq. 3 bound on ddpm-linear:n=1000 (the
    discrete chain of vp-linear: beta_i = beta(i/N)/N), summed exactly over t with one
    draw each.
Written to --out-dir: likelihood.h5 (per-sample arrays, settings as attributes), table.md
(the tables printed to stdout) and bpd.png (per-sample bits/dim), each under a temporary name
renamed into place when complete; likelihood.h5's attributes carry the run's
train_schedule, train_path, net_output and net_time.
"""
import argparse
import os
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import train_denoiser as td  # noqa: E402  (make_videos, path_net, path_model, atomic_path)

COVS = ("ar1:rho=0.9", "mixed:r=0.5", "identity")
GAUSS = "gaussian:mean=0,std=0.5,rho=0.95"


def options(argv):
    ap = argparse.ArgumentParser(
        prog="likelihood_bpd.py", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out-dir", default="results/likelihood_bpd",
                    help="where the files go (made if absent; default %(default)s)")
    ap.add_argument("--train-dir", default=None,
                    help="a train_denoiser.py --out-dir with model_eq3.pt and model_mse.pt "
                         "(default: OUT-DIR/train, trained there with --quick when absent)")
    ap.add_argument("--quick", action="store_true",
                    help="fewer samples (part A 16, part B 2) and a looser rtol (1e-4)")
    ap.add_argument("--samples", type=td.positive_int, default=None,
                    help="part A samples (default 64; --quick 16)")
    ap.add_argument("--videos", type=td.positive_int, default=None,
                    help="part B held-out videos (default 8; --quick 2)")
    ap.add_argument("--probes", type=td.positive_int, default=4,
                    help="Hutchinson probes per video in part B (default %(default)s)")
    ap.add_argument("--rtol", type=td.positive_float, default=None,
                    help="dopri5's rtol = atol (default 1e-6 for A, 1e-5 for B; --quick 1e-4)")
    ap.add_argument("--seed", type=int, default=0, help="data, probes and draws (default 0)")
    ap.add_argument("--threads", type=td.positive_int, default=1,
                    help="torch threads in part B (default %(default)s)")
    ap.add_argument("--skip-trained", action="store_true", help="part A only")
    a = ap.parse_args(argv)
    a.samples = a.samples or (16 if a.quick else 64)
    a.videos = a.videos or (2 if a.quick else 8)
    return a


def mean_se(v):
    v = np.asarray(v, dtype=np.float64)
    return float(v.mean()), float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else 0.0


def part_a(corrsde, a, lines, out):
    tau, D = 8, 16
    rtol = a.rtol or (1e-4 if a.quick else 1e-6)
    k = np.arange(tau)
    S0 = 0.25 * 0.95 ** np.abs(np.subtract.outer(k, k))
    rng = np.random.default_rng([a.seed, 27])
    x = np.einsum("ij,bjd->bid", np.linalg.cholesky(S0), rng.standard_normal((a.samples, tau, D)))
    n = tau * D
    lines += ["## A. The exact gaussian model (S0 = 0.25 ar1(0.95), tau 8, D 16, %d samples, "
              "dopri5 at rtol = atol = %g, exact divergence)" % (a.samples, rtol), "",
              "| noise C | bits/dim (PF-ODE) | closed form -log N(x; 0, Sigma_eps) | "
              "PF-ODE - closed | prior mismatch at T (bits/dim) | NFE / sample |",
              "|---|---|---|---|---|---|"]
    for spec in COVS:
        C = corrsde.Cov(spec, frames=tau)
        S = corrsde.Schedule("vp-linear")
        r = corrsde.likelihood(GAUSS, x, cov=C, schedule=S, rtol=rtol, atol=rtol)
        ab_e, ab_T = S.abar(1e-3), S.abar(1.0)
        Cm = C.matrix

        def logn(z, Sig):  # log N(z_b; 0, Sig (x) I_D) per sample
            L = np.linalg.cholesky(Sig)
            w = np.linalg.solve(L, z)
            return (-0.5 * (w ** 2).sum((1, 2)) - D * np.log(np.diag(L)).sum()
                    - 0.5 * n * np.log(2 * np.pi))

        exact = -logn(x, ab_e * S0 + (1 - ab_e) * Cm) / (n * np.log(2))
        mism = (logn(r["x_T"], ab_T * S0 + (1 - ab_T) * Cm) - r["prior"]) / (n * np.log(2))
        m, se = mean_se(r["bpd"])
        me, see = mean_se(exact)
        md, sed = mean_se(r["bpd"] - exact)
        mm, _ = mean_se(mism)
        lines.append("| %s | %.5f ± %.5f | %.5f ± %.5f | %+.2e ± %.1e | %+.2e | %.0f |"
                     % (spec, m, se, me, see, md, sed, -mm, r["nfe"] / a.samples))
        out["A/" + spec] = {"bpd": r["bpd"], "closed_form_bpd": exact, "nfe": r["nfe"],
                            "prior_mismatch_bpd": -mism}
    lines += ["", "The data law is the same under every C, so the three bits/dim agree; the "
              "PF-ODE's difference from the closed form is the prior mismatch N(0, C) vs the "
              "exact p_T (plus the solver's tolerance); white noise costs more NFE here.", ""]


def ensure_trained(a):
    d = a.train_dir or os.path.join(a.out_dir, "train")
    if all(os.path.exists(os.path.join(d, "model_%s.pt" % k)) for k in ("eq3", "mse")):
        return d
    print("training the two nets (train_denoiser.py --quick) into %s" % d,
          flush=True)
    cmd = [sys.executable, os.path.join(HERE, "train_denoiser.py"), "--quick", "--out-dir", d,
           "--seed", str(a.seed), "--threads", str(a.threads)]
    subprocess.run(cmd, check=True)
    return d


def run_settings(corrsde, at):
    """The schedule, path, net output and net time a train_denoiser.py run recorded in its
    samples.h5 (runs made before those attributes: vp-linear, noise, t), checked against what
    train_denoiser.path_model builds for that path."""
    S = corrsde.Schedule(str(at.get("schedule", "vp-linear")))
    output = str(at.get("net_output", at.get("target", "noise")))
    net_time = str(at.get("net_time", td.NET_TIME[S.path]))
    if net_time != td.NET_TIME[S.path]:
        sys.exit("likelihood_bpd.py: --train-dir: the run fed its net time %r on %s; "
                 "train_denoiser.py now feeds %r there (retrain)"
                 % (net_time, S.spec, td.NET_TIME[S.path]))
    return S, output, net_time


def part_b(torch, corrsde, ct, a, lines, out):
    import h5py
    d = ensure_trained(a)
    with h5py.File(os.path.join(d, "samples.h5"), "r") as f:
        at = dict(f.attrs)
    tau, size = int(at["frames"]), int(at["size"])
    channels, blocks = int(at["channels"]), int(at["blocks"])
    C = corrsde.Cov(str(at["cov"]), frames=tau)
    S, output, net_time = run_settings(corrsde, at)
    a.trained = {"train_schedule": S.spec, "train_path": S.path, "net_output": output,
                 "net_time": net_time}
    # the likelihood from where the run's samplers stop (its --eps; edm's smin) to T
    eps = max(float(at.get("eps", 1e-3)), S.span()[0])
    # the eq. 3 bound is on ddpm-linear:n=1000, the discrete chain of vp-linear: for a noise
    # net trained on vp-linear only
    bound = (S.spec == corrsde.Schedule("vp-linear").spec and output == "noise"
             and net_time == "t")
    rtol = a.rtol or (1e-4 if a.quick else 1e-5)
    rng = np.random.default_rng([a.seed, 1000])
    x = td.make_videos(rng, a.videos, tau, size).astype(np.float64)
    k = np.clip(np.round((x + 1) / 2 * 255), 0, 255)  # 8-bit data; the library dequantizes
    lines += ["## B. Trained denoisers (%s, tau %d, %dx%d; %d held-out videos, 8-bit, "
              "dequantized uniformly: offset 7 bits)" % (at["cov"], tau, size, size, a.videos),
              "", "schedule %s, net output %s, net time %s, eps %g" % (S.spec, output,
                                                                     net_time, eps), "",
              "| loss | PF-ODE bits/dim (Hutchinson K = %d) | mean se | NFE + JVP / video | "
              "eq. 3 bound bits/dim (N = 1000) | seconds |" % a.probes, "|---|---|---|---|---|---|"]
    for loss in ("eq3", "mse"):
        net = td.path_net(torch, channels, blocks, S.path)  # as train_denoiser.py trains it
        net.load_state_dict(torch.load(os.path.join(d, "model_%s.pt" % loss)))
        net = net.double().eval()
        model = td.path_model(ct, net, S.path, output)  # as train_denoiser.py samples it
        t0 = time.time()
        r = corrsde.likelihood(model, k, cov=C, schedule=S, divergence="hutchinson",
                               probes=a.probes, seed=a.seed, rtol=rtol, atol=rtol, eps=eps,
                               dequant="uniform:bits=8")
        t1 = time.time()
        m, se = mean_se(r["bpd"])
        res = {"bpd": r["bpd"], "se_nats": r["se"], "nfe": r["nfe"],
               "jvp_calls": r["jvp_calls"]}
        cell = "n/a (VP noise nets on vp-linear)"
        if bound:
            e = corrsde.elbo(model, k, cov=C, schedule="ddpm-linear:n=1000", seed=a.seed,
                             dequant="uniform:bits=8")
            mb, seb = mean_se(e["bpd"])
            cell = "%.4f ± %.4f" % (mb, seb)
            res["elbo_bpd"] = e["bpd"]
        t2 = time.time()
        lines.append("| %s | %.4f ± %.4f | %.4f | %.0f + %.0f | %s | %.0f + %.0f |"
                     % (loss, m, se, float(np.mean(r["se"])) / (tau * size * size * np.log(2)),
                        r["nfe"] / a.videos, r["jvp_calls"] / a.videos, cell, t1 - t0,
                        t2 - t1))
        out["B/" + loss] = res
    lines += ["", "± is the standard error over videos; the bound sits above the PF-ODE "
              "estimate when both are right (it bounds -log p).", ""]


def write(a, lines, out):
    import h5py
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    os.makedirs(a.out_dir, exist_ok=True)
    p = os.path.join(a.out_dir, "likelihood.h5")
    tmp = td.atomic_path(p)
    with h5py.File(tmp, "w") as f:
        for g, v in out.items():
            for k, arr in v.items():
                f[g + "/" + k] = arr
        for k in ("samples", "videos", "probes", "seed", "quick"):
            f.attrs[k] = getattr(a, k)
        for k, v in getattr(a, "trained", {}).items():  # part B: the run's settings
            f.attrs[k] = v
    os.replace(tmp, p)
    p = os.path.join(a.out_dir, "table.md")
    tmp = td.atomic_path(p)
    with open(tmp, "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(tmp, p)
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.6))
    for j, (g, v) in enumerate(out.items()):  # one colour per model: PF-ODE solid, the
        i = 0 if g.startswith("A/") else 1      # bound dashed, the closed form dotted
        q = np.linspace(0, 1, len(v["bpd"]))
        line = ax[i].plot(np.sort(v["bpd"]), q, label=g[2:] + " PF-ODE",
                          lw=2.5 - 0.6 * (j % 3))[0]
        if "elbo_bpd" in v:
            ax[i].plot(np.sort(v["elbo_bpd"]), q, "--", color=line.get_color(),
                       label=g[2:] + " eq. 3 bound")
        if "closed_form_bpd" in v and j == 0:
            ax[i].plot(np.sort(v["closed_form_bpd"]), q, "k:", label="closed form (" + g[2:] + ")")
    ax[0].set_title("A: exact gaussian model under each noise C (they coincide)")
    ax[1].set_title("B: trained denoisers (8-bit, dequantized)")
    if not ax[1].lines:
        ax[1].text(0.5, 0.5, "not run (--skip-trained)", ha="center", transform=ax[1].transAxes)
    for x in ax:
        x.set_xlabel("bits / dim")
        x.set_ylabel("fraction of samples (CDF)")
        if x.lines:
            x.legend(fontsize=8)
    fig.tight_layout()
    p = os.path.join(a.out_dir, "bpd.png")
    tmp = td.atomic_path(p)
    fig.savefig(tmp, format="png", dpi=110)
    os.replace(tmp, p)


def main(argv=None):
    a = options(argv)
    torch, corrsde = td.import_torch_corrsde("likelihood_bpd.py")
    import corrsde.torch as ct
    torch.set_num_threads(a.threads)
    td.make_out_dir("likelihood_bpd.py", a.out_dir)
    lines, out = [], {}
    part_a(corrsde, a, lines, out)
    if not a.skip_trained:
        part_b(torch, corrsde, ct, a, lines, out)
    print("\n".join(lines))
    write(a, lines, out)


if __name__ == "__main__":
    main()
