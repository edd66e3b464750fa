#!/usr/bin/python3
"""Writes the HDF5 seeds of the fuzz_h5_raw harness into corpus/h5_raw/ (checked in; run again
only to change them). Every form corrsde reads: /x of rank 1 to 5 ([B, tau, *SHAPE] for
--init), a matrix /C, other element types, chunked and compressed data, and a
trajectory file as `corrsde sample` writes it (make it with `corrsde sample` if
CORRSDE is set, e.g. CORRSDE=build/corrsde)."""
import os
import subprocess
import sys

import h5py
import numpy as np

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "h5_raw")
os.makedirs(out, exist_ok=True)


def put(name, **dsets):
    with h5py.File(os.path.join(out, name), "w") as f:
        for k, v in dsets.items():
            if isinstance(v, dict):
                f.create_dataset(k, **v)
            else:
                f[k] = v


put("x_rank1.h5", x=np.arange(4.0))
put("x_init.h5", x=np.linspace(-1, 1, 2 * 3 * 4).reshape(2, 3, 4))
put("x_rank5.h5", x=np.zeros((1, 2, 1, 2, 2)))
put("C_4x4.h5", C=0.5 ** np.abs(np.subtract.outer(np.arange(4), np.arange(4))))
put("x_float32.h5", x=np.ones((1, 2, 3), dtype=np.float32))
put("x_int16.h5", x=np.arange(6, dtype=np.int16).reshape(1, 2, 3))
put("x_string.h5", x="not numbers")
put("x_empty.h5", x=np.zeros((0, 2, 3)))
put("x_gzip.h5", x=dict(data=np.arange(24.0).reshape(1, 4, 6), chunks=(1, 2, 3),
                        compression="gzip", shuffle=True))
with h5py.File(os.path.join(out, "traj_hand.h5"), "w") as f:
    f.create_dataset("trajectory/x", data=np.zeros((2, 1, 2, 2)), maxshape=(None, 1, 2, 2),
                     chunks=(1, 1, 2, 2))
    f["trajectory/t"] = np.array([1.0, 1e-3])
    f["trajectory/step"] = np.array([0, 2], dtype=np.int64)
    f.create_group("parameters").attrs["cov"] = "ar1:rho=0.9"
    f["parameters"].attrs["frame_shape"] = np.array([2], dtype=np.int64)
    f.create_group("stats").attrs["nfe"] = np.int64(2)
    f["stats"].attrs["status"] = np.bytes_(b"ok")
    f["covariance/matrix"] = np.eye(2)
    f["covariance/eigenvalues"] = np.ones(2)
exe = os.environ.get("CORRSDE")
if exe:
    subprocess.run([exe, "sample", "-q", "-f", "--frames", "2", "--frame-shape", "2",
                    "--batch", "1", "--steps", "2", "--save", "every:1",
                    "-o", os.path.join(out, "traj_sample.h5")], check=True)
print("\n".join(f"{n}: {os.path.getsize(os.path.join(out, n))} bytes"
                for n in sorted(os.listdir(out))), file=sys.stderr)
