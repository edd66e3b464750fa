"""experiments/likelihood_bpd.py --skip-trained --quick: part A (the exact gaussian model)
into a temporary directory, a few seconds.

Checks the run succeeds and writes likelihood.h5, table.md and bpd.png with no temporary
left; that the PF-ODE bits/dim equal the closed form to the solver's tolerance (rtol 1e-4:
within 1e-3 bits) under each noise C; and that bad options are refused with a message.
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
