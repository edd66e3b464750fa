"""experiments/likelihood_bpd.py --skip-trained --quick: part A (the exact gaussian model)
into a temporary directory, a few seconds.

Checks the run succeeds and writes likelihood.h5, table.md and bpd.png with no temporary
left; that the PF-ODE bits/dim equal the closed form to the solver's tolerance (rtol 1e-4:
within 1e-3 bits) under each noise C; and that bad options are refused with a message.
test_part_b_paths: part B on tiny train_denoiser.py runs off VP (rf:shift=3, edm: 3 steps,
4 frames of 8x8, 8 channels, one block): the nets load and are rebuilt as that script samples
them (its net output and time, EDM's preconditioning), their bits/dim are finite and equal
to the bit those of the net rebuilt by hand, and the run's schedule, output and time are
recorded in likelihood.h5 and the table. test_part_b_legacy_run: a run without those
attributes is read as VP noise on vp-linear.
"""
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("corrsde")
h5py = pytest.importorskip("h5py")

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, os.pardir,
                      "experiments", "likelihood_bpd.py")
TRAIN = os.path.join(os.path.dirname(SCRIPT), "train_denoiser.py")
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable


def run(*args, timeout=120):
    return subprocess.run([PYTHON, SCRIPT, *args], env=dict(os.environ), capture_output=True,
                          text=True, timeout=timeout)


def test_part_a(tmp_path):
    p = run("--skip-trained", "--quick", "--samples", "5", "--out-dir", str(tmp_path))
    assert p.returncode == 0, p.stdout + p.stderr
    assert sorted(os.listdir(tmp_path)) == ["bpd.png", "likelihood.h5", "table.md"]
    with h5py.File(tmp_path / "likelihood.h5", "r") as f:
        assert sorted(f["A"].keys()) == ["ar1:rho=0.9", "identity", "mixed:r=0.5"]
        for spec in f["A"]:
            g = f["A"][spec]
            bpd, exact = g["bpd"][()], g["closed_form_bpd"][()]
            assert bpd.shape == exact.shape == (5,) and np.all(np.isfinite(bpd))
            assert np.max(np.abs(bpd - exact)) < 1e-3, (spec, bpd - exact)
    assert "| ar1:rho=0.9 |" in (tmp_path / "table.md").read_text()


@pytest.mark.parametrize("args, word", [(["--samples", "0"], "--samples"),
                                        (["--rtol", "-1"], "--rtol"),
                                        (["--probes", "x"], "--probes")])
def test_bad_options(tmp_path, args, word):
    p = run("--skip-trained", "--out-dir", str(tmp_path), *args)
    assert p.returncode == 2 and word in p.stderr, p.stderr
    assert not os.listdir(tmp_path)


TINY = ("--quick", "--threads", "1", "--steps", "3", "--frames", "4", "--size", "8",
        "--channels", "8", "--blocks", "1", "--samples", "2", "--sde-steps", "4", "--rtol",
        "1e-1", "--bootstrap", "2", "--n-data", "8", "--strip", "1", "--gif-videos", "1")


def train_tiny(out, *args):
    p = subprocess.run([PYTHON, TRAIN, *TINY, "--out-dir", str(out), *args],
                       env=dict(os.environ), capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr


def test_part_b_legacy_run(tmp_path):
    """A run made before train_denoiser.py recorded its schedule, target and net time (those
    attributes deleted here) is taken as VP noise on vp-linear: bits/dim and the bound."""
    train = tmp_path / "train"
    train_tiny(train)
    with h5py.File(train / "samples.h5", "a") as f:
        for k in ("schedule", "path", "target", "net_output", "net_time", "t_sampling"):
            del f.attrs[k]
    out = tmp_path / "bpd"
    p = run("--quick", "--samples", "2", "--videos", "2", "--probes", "1", "--rtol", "1e-2",
            "--train-dir", str(train), "--out-dir", str(out))
    assert p.returncode == 0, p.stdout + p.stderr
    with h5py.File(out / "likelihood.h5", "r") as f:
        assert f.attrs["train_schedule"] == "vp-linear:bmin=0.1,bmax=20"
        assert f.attrs["net_output"] == "noise" and f.attrs["net_time"] == "t"
        for loss in ("eq3", "mse"):
            assert np.all(np.isfinite(f["B/%s/bpd" % loss][()]))
            assert np.all(np.isfinite(f["B/%s/elbo_bpd" % loss][()]))


@pytest.mark.parametrize("schedule, output, net_time", [
    ("rf:shift=3", "flow-shifted", "t_shifted"), ("edm", "noise", "sigma")])
def test_part_b_paths(tmp_path, schedule, output, net_time):
    train = tmp_path / "train"
    train_tiny(train, "--schedule", schedule)
    out = tmp_path / "bpd"
    p = run("--quick", "--samples", "2", "--videos", "2", "--probes", "1", "--rtol", "1e-2",
            "--train-dir", str(train), "--out-dir", str(out))
    assert p.returncode == 0, p.stdout + p.stderr
    spec = str(h5py.File(train / "samples.h5", "r").attrs["schedule"])
    with h5py.File(out / "likelihood.h5", "r") as f:
        assert f.attrs["train_schedule"] == spec and spec.startswith(schedule.split(":")[0])
        assert f.attrs["net_output"] == output and f.attrs["net_time"] == net_time
        for loss in ("eq3", "mse"):
            bpd = f["B/%s/bpd" % loss][()]
            assert bpd.shape == (2,) and np.all(np.isfinite(bpd)), bpd
            assert "elbo_bpd" not in f["B/" + loss]  # the ddpm bound is for VP noise nets
    table = (out / "table.md").read_text()
    assert "schedule %s, net output %s, net time %s" % (spec, output, net_time) in table
    # the same likelihood from the net rebuilt here by hand (EDM's preconditioning on edm,
    # TorchModel told the output and time): equal to the bit
    import torch
    import corrsde
    import corrsde.torch as ct
    sys.path.insert(0, os.path.dirname(TRAIN))
    import train_denoiser as td
    at = dict(h5py.File(train / "samples.h5", "r").attrs)
    C, S = corrsde.Cov(str(at["cov"]), frames=4), corrsde.Schedule(spec)
    x = td.make_videos(np.random.default_rng([0, 1000]), 2, 4, 8).astype(np.float64)
    k = np.clip(np.round((x + 1) / 2 * 255), 0, 255)
    with h5py.File(out / "likelihood.h5", "r") as f:
        for loss in ("eq3", "mse"):
            net = td.build_net(torch, 8, 1)
            if schedule == "edm":
                net = td.edm_precond(torch, net)
            net.load_state_dict(torch.load(train / ("model_%s.pt" % loss)))
            model = ct.TorchModel(net.double().eval(), output=output, time=net_time)
            r = corrsde.likelihood(model, k, cov=C, schedule=S, divergence="hutchinson",
                                   probes=1, seed=0, rtol=1e-2, atol=1e-2,
                                   eps=max(1e-3, S.span()[0]), dequant="uniform:bits=8")
            assert np.array_equal(r["bpd"], f["B/%s/bpd" % loss][()]), loss
