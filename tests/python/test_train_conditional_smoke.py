"""experiments/train_conditional.py --quick: a smoke run into a temporary directory.

Checks that the run succeeds and writes samples.h5 (data, labels, samples per process and
guidance setting, the classifier's answers, statistics, table), frames.png, one GIF per
class, table.md and the weights with the expected shapes and finite numbers; that the
direction classifier is right on every held-out data video; that the library's guidance
gives the samples of a closure that combines the two answers itself; that a seed
reproduces; that no temporary file is left behind; and that bad options are refused with a
message naming the option.
"""
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("corrsde")
h5py = pytest.importorskip("h5py")

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, os.pardir, os.pardir, "experiments", "train_conditional.py")
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
FRAMES, SIZE, PER_CLASS = 6, 8, 2
CLASSES = ("right", "left", "down", "up")
SETTINGS = ("0", "1", "3", "linear:1,3")
# a tiny run: fewer frames and pixels than the default --quick, one sampler step count each
ARGS = ("--quick", "--seed", "3", "--frames", str(FRAMES), "--size", str(SIZE),
        "--per-class", str(PER_CLASS), "--steps", "8", "--ode-steps", "3", "--sde-steps", "4",
        "--n-data", "16", "--bootstrap", "5", "--threads", "1", "--channels", "16",
        "--blocks", "1")


def run(*args, timeout=180):
    return subprocess.run([PYTHON, SCRIPT, *args], env=dict(os.environ), capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("cond")
    p = run(*ARGS, "--out-dir", str(out))
    assert p.returncode == 0, p.stdout + p.stderr
    return out, p.stdout


def test_files(quick):
    out, _ = quick
    names = sorted(os.listdir(out))
    assert names == sorted(["frames.png", "model.pt", "samples.h5", "table.md"]
                           + ["samples_%s.gif" % c for c in CLASSES])
    with open(out / "frames.png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    PIL = pytest.importorskip("PIL.Image")
    for c in CLASSES:
        assert PIL.open(out / ("samples_%s.gif" % c)).n_frames == FRAMES  # the videos play


def test_hdf5(quick):
    out, _ = quick
    n = PER_CLASS * len(CLASSES)
    with h5py.File(out / "samples.h5", "r") as f:
        data, dl = f["data"][...], f["data_labels"][...]
        assert data.shape == (16, FRAMES, SIZE, SIZE) and dl.shape == (16,)
        assert np.all(np.isfinite(data)) and data.min() >= -1 and data.max() <= 1
        assert np.array_equal(np.bincount(dl), [4, 4, 4, 4])
        # the classifier recovers every held-out data video's direction
        assert np.array_equal(f["data_predicted"][...], dl)
        assert f["stats/data"].attrs["acc"] == 1.0
        assert f["stats/data"].attrs["visible"] == 1.0  # a blob in every frame of the data
        labels = f["labels"][...]
        assert np.array_equal(labels, np.repeat(np.arange(4), PER_CLASS))
        for proc in ("pf-ode", "reverse-sde"):
            for s in SETTINGS:
                d = f["samples/%s/%s" % (proc, s)]
                assert d.shape == (n, FRAMES, SIZE, SIZE)
                assert np.all(np.isfinite(d[...])) and d.attrs["nfe"] > 0
                w = d.attrs["guidance"]
                if s == "linear:1,3":  # one scale per frame, 1 at frame 0 to 3 at the last
                    assert np.allclose(w, np.linspace(1, 3, FRAMES), rtol=0, atol=1e-15)
                else:
                    assert float(w) == float(s)
                pred = f["predicted/%s/%s" % (proc, s)][...]
                assert pred.shape == (n,) and pred.min() >= 0 and pred.max() <= 3
                st = f["stats/%s/%s" % (proc, s)]
                assert st["frame_mean"].shape == (FRAMES,) and st["frame_std"].shape == (FRAMES,)
                assert st.attrs["acc"] == np.mean(pred == labels)
                for k in ("acc", "speed", "visible", "lag1", "lag2", "mean", "std", "dmean",
                          "dstd"):
                    assert np.isfinite(st.attrs[k]) and np.isfinite(st.attrs[k + "_se"])
                assert 0 <= st.attrs["visible"] <= 1
                assert np.isnan(st.attrs["acc_visible"]) or 0 <= st.attrs["acc_visible"] <= 1
            # the same prior draw for every setting: w = 0 and w = 1 differ only by the label
            assert not np.array_equal(f["samples/%s/0" % proc][...],
                                      f["samples/%s/1" % proc][...])
        curve = f["train/loss"][...]
        assert curve.shape == (8,) and np.all(np.isfinite(curve))
        assert f.attrs["seed"] == 3 and f.attrs["frames"] == FRAMES and f.attrs["quick"]
        table = f["table"][()]
        table = table.decode() if isinstance(table, bytes) else table
        check = dict(f.attrs).get("check_max_abs_diff")
    with open(out / "table.md") as fh:
        assert fh.read() == table
    assert "| data (16) |" in table and "pf-ode, w=3" in table and "reverse-sde, linear" in table
    # the library's guidance gives the samples of the closure that combines the answers itself
    assert check is not None and check <= 1e-12, check


def test_stdout(quick):
    _, stdout = quick
    assert "accuracy 1.0000" in stdout  # the classifier on the held-out data
    assert "| videos | model calls | accuracy |" in stdout and "lag-1 corr" in stdout


def test_seed_reproduces(quick, tmp_path):
    """The same seed gives the same samples (another run of the same settings)."""
    out, _ = quick
    p = run(*ARGS, "--out-dir", str(tmp_path), "--processes", "pf-ode", "--guidance", "3")
    assert p.returncode == 0, p.stdout + p.stderr
    with h5py.File(out / "samples.h5", "r") as a, h5py.File(tmp_path / "samples.h5", "r") as b:
        assert np.array_equal(a["train/loss"][...], b["train/loss"][...])
        assert np.array_equal(a["samples/pf-ode/3"][...], b["samples/pf-ode/3"][...])
        assert "reverse-sde" not in b["samples"] and list(b["samples/pf-ode"]) == ["3"]


def test_bad_options(tmp_path):
    for args, word in ((["--frames", "2"], "--frames"), (["--rho", "1"], "--rho"),
                       (["--size", "6"], "--size"), (["--p-uncond", "1"], "--p-uncond"),
                       (["--p-uncond", "0", "--guidance", "3"], "--p-uncond"),
                       (["--guidance", "nan"], "--guidance"),
                       (["--guidance", "1,2"], "--guidance"),
                       (["--guidance", "linear:1"], "--guidance"),
                       (["--guidance", "2000"], "--guidance"),
                       (["--guidance", "3", "--guidance", "3"], "--guidance"),
                       (["--processes", "ddim"], "--processes"),
                       (["--check-videos", "-1"], "--check-videos"),
                       (["--steps", "0"], "--steps")):
        p = run("--quick", "--out-dir", str(tmp_path), *args, timeout=60)
        assert p.returncode == 2 and word in p.stderr, (args, p.stderr)
    p = run("--quick", "--out-dir", str(tmp_path), "--ode-solver", "dopri5", timeout=60)
    assert p.returncode != 0 and "--ode-solver" in p.stderr, p.stderr
    assert os.listdir(tmp_path) == []


def test_help_documents_every_option():
    p = run("--help", timeout=60)
    assert p.returncode == 0
    for opt in ("--out-dir", "--quick", "--seed", "--frames", "--size", "--rho", "--p-uncond",
                "--guidance", "--processes", "--ode-solver", "--steps", "--batch", "--lr",
                "--channels", "--blocks", "--per-class", "--ode-steps", "--sde-steps",
                "--n-data", "--bootstrap", "--check-videos", "--eps", "--gif-videos",
                "--threads"):
        assert opt in p.stdout, opt
