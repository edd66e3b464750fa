"""experiments/train_denoiser.py --quick: a smoke run into a temporary directory.

Checks that the run succeeds and writes samples.h5 (data, samples, statistics, table),
frames.png, table.md and the weights with the expected shapes and finite numbers, that no
temporary file is left behind, and that bad options are refused with a clear message.
test_rf: the same on rectified flow (--schedule rf:shift=3: the flow-shifted target, the
dpmpp2m sampler at 10 steps), with the schedule and target in the file's attributes.
test_edm: the same on EDM (--schedule edm: the noise target, EDM's log-normal t, the
preconditioned net fed sigma, dpmpp2m on the karras grid).
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
                      "experiments", "train_denoiser.py")
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
FRAMES, SIZE, SAMPLES = 8, 16, 6


def run(*args, timeout=120):
    env = dict(os.environ)
    return subprocess.run([PYTHON, SCRIPT, *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("train")
    p = run("--quick", "--out-dir", str(out), "--seed", "3", "--samples", str(SAMPLES),
            "--threads", "1")
    assert p.returncode == 0, p.stdout + p.stderr
    return out, p.stdout


SAMPLERS = ("reverse_sde", "pf_ode", "reverse_sde+thr", "pf_ode+thr")


def test_files(quick):
    out, _ = quick
    names = sorted(os.listdir(out))
    assert names == ["frames.png", "model_eq3.pt", "model_mse.pt", "samples.gif", "samples.h5",
                     "table.md"]
    with open(out / "frames.png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    PIL = pytest.importorskip("PIL.Image")
    assert PIL.open(out / "samples.gif").n_frames == FRAMES  # the videos play


def test_hdf5(quick):
    out, _ = quick
    with h5py.File(out / "samples.h5", "r") as f:
        data = f["data"][...]
        assert data.shape[1:] == (FRAMES, SIZE, SIZE) and data.shape[0] >= 2
        assert np.all(np.isfinite(data)) and data.min() >= -1 and data.max() <= 1
        for s in SAMPLERS:
            d = f["samples/" + s]
            assert d.shape == (2, SAMPLES, FRAMES, SIZE, SIZE)
            assert d.attrs["losses"] == "eq3,mse"
            assert np.all(np.isfinite(d[...]))
            assert all(n > 0 for n in d.attrs["nfe"])
            # thresholding keeps x0 in [-1, 1]: the last state at t = eps adds only
            # sqrt(1 - abar(eps)) = 0.045 of noise (the 30-step nets' plain samples blow up)
            if s.endswith("+thr"):
                assert d.attrs["x0_threshold"] == "p=0.995" and np.abs(d[...]).max() < 1.5
        for g in ["data"] + ["%s/%s" % (k, s) for k in ("eq3", "mse") for s in SAMPLERS]:
            st = f["stats/" + g]
            assert st["frame_mean"].shape == (FRAMES,) and st["frame_std"].shape == (FRAMES,)
            for k in ("lag1", "lag2", "mean", "std"):
                assert np.isfinite(st.attrs[k]) and np.isfinite(st.attrs[k + "_se"])
            assert -1 <= st.attrs["lag1"] <= 1 and -1 <= st.attrs["lag2"] <= 1
        for k in ("eq3", "mse"):
            curve = f["train/%s/loss" % k][...]
            assert curve.ndim == 1 and curve.size > 0 and np.all(np.isfinite(curve))
            assert np.isfinite(f["train/" + k].attrs["heldout_cinv"])
        assert f.attrs["seed"] == 3 and f.attrs["frames"] == FRAMES and f.attrs["quick"]
        table = f["table"][()]
        table = table.decode() if isinstance(table, bytes) else table
    with open(out / "table.md") as fh:
        assert fh.read() == table
    assert "lag-1 corr" in table and "eq3, pf-ode" in table and "mse, reverse-sde" in table


def test_stdout_table(quick):
    _, stdout = quick
    assert "| data (" in stdout and "eq3, reverse-sde" in stdout and "held-out C^-1" in stdout


def test_bad_options(tmp_path):
    for args, word in ((["--frames", "2"], "--frames"), (["--rho", "1"], "--rho"),
                       (["--losses", "l1"], "--losses"), (["--steps", "0"], "--steps"),
                       (["--target", "flow-shifted"], "--target flow-shifted: dx/dt'"),
                       (["--schedule", "edm", "--target", "flow"],
                        "--target flow: on edm the script trains the noise target only"),
                       (["--schedule", "ve", "--time-weight", "elbo"], "--time-weight elbo: "),
                       (["--schedule", "ddpm-linear"], "ddpm-linear: a discrete schedule"),
                       (["--schedule", "rf:shift=0"], "--schedule: rf: shift"),
                       (["--schedule", "rf", "--time-weight", "elbo"], "--time-weight elbo: ")):
        p = run("--quick", "--out-dir", str(tmp_path), *args, timeout=60)
        assert p.returncode == 2 and word in p.stderr, (args, p.stderr)
    assert os.listdir(tmp_path) == []


def test_combine(quick):
    out, _ = quick
    p = run("--combine", str(out), str(out), timeout=60)
    assert p.returncode == 0, p.stderr
    assert "eq3, reverse-sde" in p.stdout and "over 2 runs (seeds 3, 3)" in p.stdout
    assert "± 0.000" in p.stdout  # the same run twice: no spread


RF_SAMPLERS = ("reverse_sde", "pf_ode", "dpmpp2m", "reverse_sde+thr", "pf_ode+thr",
               "dpmpp2m+thr")


def test_rf(tmp_path):
    """--quick on rf:shift=3: SD3's target and time sampling by default, the few-step sampler
    beside the two of VP, finite statistics, the schedule and target recorded."""
    p = run("--quick", "--schedule", "rf:shift=3", "--out-dir", str(tmp_path), "--seed", "3",
            "--samples", str(SAMPLES), "--threads", "1", "--sde-steps", "10", "--rtol", "1e-2",
            "--bootstrap", "5", "--steps", "10", "--strip", "1", "--gif-videos", "1")
    # (coarser than --quick, to keep it short: ~15 s on an idle core)
    assert p.returncode == 0, p.stdout + p.stderr
    assert sorted(os.listdir(tmp_path)) == ["frames.png", "model_eq3.pt", "model_mse.pt",
                                            "samples.gif", "samples.h5", "table.md"]
    with h5py.File(tmp_path / "samples.h5", "r") as f:
        assert f.attrs["schedule"] == "rf:shift=3" and f.attrs["path"] == "rf"
        assert f.attrs["target"] == "flow-shifted" and f.attrs["net_output"] == "flow-shifted"
        assert f.attrs["net_time"] == "t_shifted" and f.attrs["t_sampling"] == "logit-normal"
        assert sorted(f["samples"]) == sorted(RF_SAMPLERS)
        for s in RF_SAMPLERS:
            d = f["samples/" + s]
            assert d.shape == (2, SAMPLES, FRAMES, SIZE, SIZE)
            assert np.all(np.isfinite(d[...]))
            if s.startswith("dpmpp2m"):
                assert list(d.attrs["nfe"]) == [10, 10]
                assert d.attrs["solver"] == "dpmpp2m, quadratic grid, 10 steps"
        for g in ["%s/%s" % (k, s) for k in ("eq3", "mse") for s in RF_SAMPLERS]:
            st = f["stats/" + g]
            assert np.all(np.isfinite(st["frame_mean"][...]))
            assert np.all(np.isfinite(st["frame_std"][...]))
            for k in ("lag1", "lag2", "mean", "std", "dmean", "dstd"):
                assert np.isfinite(st.attrs[k]) and np.isfinite(st.attrs[k + "_se"])
        for k in ("eq3", "mse"):
            assert np.all(np.isfinite(f["train/%s/loss" % k][...]))
        table = f["table"][()]
        table = table.decode() if isinstance(table, bytes) else table
    assert table.startswith("schedule rf:shift=3, target flow-shifted, t ~ logit-normal")
    assert "eq3, dpmpp2m (%d) | 10 |" % SAMPLES in table and "losses: flow_matching_loss" in table


def test_edm(tmp_path):
    """--quick on edm: the noise target, log-normal t and the net time sigma by default, the
    karras-grid dpmpp2m beside the reverse SDE and the PF-ODE, sampling down to smin; finite
    statistics, the settings recorded. Shortened as test_rf (~10 s)."""
    p = run("--quick", "--schedule", "edm", "--out-dir", str(tmp_path), "--seed", "3",
            "--samples", str(SAMPLES), "--threads", "1", "--sde-steps", "10", "--rtol", "1e-2",
            "--bootstrap", "5", "--steps", "10", "--strip", "1", "--gif-videos", "1",
            "--threshold", "0")
    assert p.returncode == 0, p.stdout + p.stderr
    samplers = ("reverse_sde", "pf_ode", "dpmpp2m")
    with h5py.File(tmp_path / "samples.h5", "r") as f:
        assert f.attrs["schedule"] == "edm:smin=0.002,smax=80" and f.attrs["path"] == "edm"
        assert f.attrs["target"] == "noise" and f.attrs["net_output"] == "noise"
        assert f.attrs["net_time"] == "sigma" and f.attrs["t_sampling"] == "log-normal"
        assert sorted(f["samples"]) == sorted(samplers)
        for s in samplers:
            d = f["samples/" + s]
            assert d.shape == (2, SAMPLES, FRAMES, SIZE, SIZE)
            assert np.all(np.isfinite(d[...]))
        assert list(f["samples/dpmpp2m"].attrs["nfe"]) == [10, 10]
        assert f["samples/dpmpp2m"].attrs["solver"] == "dpmpp2m, karras grid, 10 steps"
        for g in ["%s/%s" % (k, s) for k in ("eq3", "mse") for s in samplers]:
            st = f["stats/" + g]
            for k in ("lag1", "lag2", "mean", "std", "dmean", "dstd"):
                assert np.isfinite(st.attrs[k]) and np.isfinite(st.attrs[k + "_se"])
        for k in ("eq3", "mse"):
            assert np.all(np.isfinite(f["train/%s/loss" % k][...]))
            assert np.isfinite(f["train/" + k].attrs["heldout_cinv"])
        table = f["table"][()]
        table = table.decode() if isinstance(table, bytes) else table
    assert table.startswith("schedule edm:smin=0.002,smax=80, target noise, t ~ log-normal, "
                            "net time sigma")
    assert "| AR(1) noise prior, exact | | 0.900 | 0.810 | 0 | 80 |" in table
    assert "log-normal (ln sigma ~ N(-1.2, 1.2^2)" in table and "karras grid, 10 steps" in table
