"""One writer of /covariance and of /parameters' shared attributes (src/io/h5meta.c):
`corrsde sample` and `corrsde converge` with the same C write the same /covariance, bit
for bit, dense (the matrix and its eigenvalues) or above 1024 frames (the text saying
why not), and the same shared /parameters attributes."""
import os
import subprocess

import numpy as np
import pytest

h5py = pytest.importorskip("h5py")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CORRSDE = os.environ.get("CORRSDE", os.path.join(ROOT, "build", "corrsde"))

SHARED = ("schedule", "covariance", "cov_method", "cov_method_used", "frames",
          "frame_shape", "pixels", "seed", "rng", "rng_kernel", "corrsde_version")


def contents(g):
    """name -> value of every attribute and dataset under g."""
    out = {("attr", k): v for k, v in g.attrs.items()}
    for n, d in g.items():
        out[("data", n)] = d[()]
        out.update({("attr", n, k): v for k, v in d.attrs.items()})
    return out


@pytest.mark.parametrize("frames,cov", [(8, "ar1:rho=0.9"), (1100, "ar1:rho=0.5")])
def test_sample_and_converge_write_one_covariance(tmp_path, frames, cov):
    common = ["--frames", str(frames), "--frame-shape", "1", "--cov", cov, "--cov-method",
              "dense" if frames <= 1024 else "circulant", "--seed", "3"]
    s, c = tmp_path / "s.h5", tmp_path / "c.h5"
    subprocess.run([CORRSDE, "sample", "--steps", "2", "-q", "-o", str(s)] + common,
                   check=True)
    subprocess.run([CORRSDE, "converge", "--levels", "1:2", "--paths", "2", "--solvers",
                    "euler", "--process", "forward-sde", "--error", "strong", "-q", "-o",
                    str(c)] + common, check=True)
    with h5py.File(s, "r") as f, h5py.File(c, "r") as g:
        a, b = contents(f["covariance"]), contents(g["covariance"])
        assert sorted(a, key=str) == sorted(b, key=str)
        for k in a:
            assert np.asarray(a[k]).dtype == np.asarray(b[k]).dtype, k
            assert np.asarray(a[k]).tobytes() == np.asarray(b[k]).tobytes() or a[k] == b[k], k
        if frames > 1024:
            assert a[("attr", "matrix")] == ("not stored: 1100 frames > 1024 (it would take "
                                             "9.68 MB; 'corrsde cov' shows it)")
        else:
            assert a[("data", "matrix")].shape == (8, 8)
        assert set(a) >= {("attr", "eigenvalue_range"), ("attr", "eigenvalue_range_exact")}
        for k in SHARED:
            u, w = f["parameters"].attrs[k], g["parameters"].attrs[k]
            assert np.asarray(u).dtype == np.asarray(w).dtype and np.array_equal(u, w), k
