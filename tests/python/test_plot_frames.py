"""experiments/plot_frames.py (issue 24 §9): one fixed colour scale for every sample and
frame, a grid of samples x frames, an animated GIF, and outputs that are never written
through a link."""
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest

PIL = pytest.importorskip("PIL.Image")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "experiments", "plot_frames.py")


def trajectory(path, x):
    """A file in corrsde sample's layout: /trajectory/x [n, B, tau, H, W], t, step, n_saved."""
    with h5py.File(path, "w") as f:
        tr = f.create_group("trajectory")
        tr["x"] = x
        tr["t"] = np.linspace(1, 1e-3, x.shape[0])
        tr["step"] = np.arange(x.shape[0])
        tr.attrs["n_saved"] = x.shape[0]


def plot(*args):
    return subprocess.run([sys.executable, SCRIPT] + [str(a) for a in args],
                          capture_output=True, text=True, timeout=120)


def grey_count(png, level):
    """Pixels of the PNG whose RGB are all within 1 of level."""
    a = np.asarray(PIL.open(png).convert("RGB")).astype(int)
    return int(np.count_nonzero(np.all(np.abs(a - level) <= 1, axis=2)))


@pytest.fixture
def two_samples(tmp_path):
    """Sample 0 is 0.5 everywhere, sample 1 is 10 everywhere (a blown-up sample)."""
    x = np.empty((1, 2, 3, 8, 8))
    x[0, 0], x[0, 1] = 0.5, 10.0
    p = tmp_path / "two.h5"
    trajectory(p, x)
    return p


def test_one_fixed_colour_scale(tmp_path, two_samples):
    # --range -1,1: 0.5 is grey 0.75 (191 of 255), 10 saturates to white; the range of the
    # data [0.5, 10] instead: 0.5 black. A per-sample scale would draw both alike.
    r = plot(two_samples, "--samples", 2, "--range=-1,1", "-o", tmp_path / "fixed.png")
    assert r.returncode == 0, r.stderr
    assert "3 values outside" not in r.stdout
    assert grey_count(tmp_path / "fixed.png", 191) > 2000
    r = plot(two_samples, "--samples", 2, "-o", tmp_path / "data.png")
    assert r.returncode == 0, r.stderr
    assert grey_count(tmp_path / "data.png", 191) < 50
    assert grey_count(tmp_path / "data.png", 0) > 2000


def test_grid_and_gif(tmp_path, two_samples):
    r = plot(two_samples, "--samples", "0,1", "-o", tmp_path / "g.png", "--gif",
             tmp_path / "g.gif", "--fps", 5)
    assert r.returncode == 0, r.stderr
    gif = PIL.open(tmp_path / "g.gif")
    assert gif.n_frames == 3  # one image per video frame
    w, h = PIL.open(tmp_path / "g.png").size
    assert w > h  # 3 columns of frames, 2 rows of samples
    assert sorted(os.listdir(tmp_path)) == ["g.gif", "g.png", "two.h5"]  # no temporary left


def test_outputs_refused(tmp_path, two_samples):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    os.symlink(victim, tmp_path / "l.png")
    for extra in ([], ["--force"]):
        r = plot(two_samples, "-o", tmp_path / "l.png", *extra)
        assert r.returncode != 0 and "not a regular file" in r.stderr
    assert victim.read_text() == "keep me"
    (tmp_path / "old.png").write_bytes(b"old")
    r = plot(two_samples, "-o", tmp_path / "old.png")
    assert r.returncode != 0 and "exists" in r.stderr
    assert (tmp_path / "old.png").read_bytes() == b"old"
    r = plot(two_samples, "--samples", "0,5", "-o", tmp_path / "s.png")
    assert r.returncode != 0 and "sample 5 is not in the batch of 2" in r.stderr
    r = plot(two_samples, "--range=1,-1", "-o", tmp_path / "s.png")
    assert r.returncode != 0 and "LO < HI" in r.stderr
