"""corrsde.elbo (issue 27, item 3): the discrete bound from Python equals the C library's
bit for bit (tests/test_elbo.c print), a callable model and a TorchModel give it too,
dequantized integer data take the bpd offset, and bad settings raise naming them."""
import os
import subprocess

import numpy as np
import pytest

import corrsde

TAU, D = 5, 2
KEYS = ("nll", "LT", "Lsum", "L0", "se", "lo", "hi", "bpd")
SPEC = "gaussian:mean=0.3,std=0.5,rho=0.6"


def _test_elbo():
    """The test_elbo program of this build (beside the corrsde executable)."""
    exe = os.environ.get("CORRSDE")
    here = os.path.dirname(exe) if exe else os.path.join(
        os.path.dirname(__file__), "..", "..", "build")
    path = os.path.join(here, "tests", "test_elbo")
    if not os.path.exists(path):
        pytest.skip("tests/test_elbo is not built (%s)" % path)
    return path


def _c_case():
    """The C library's bound of test_elbo.c's print case: schedule, x0, and per mode
    (exact sum, tdraws 4) the rows [nll LT Lsum L0 se lo hi bpd] and nfe."""
    lines = subprocess.run([_test_elbo(), "print"], check=True, capture_output=True,
                           text=True).stdout.split("\n")
    x0 = np.array([float.fromhex(v) for v in lines[1].split()]).reshape(3, TAU, D)
    cases = []
    for k in range(2):
        rows = [[float.fromhex(v) for v in lines[2 + 4 * k + b].split()] for b in range(3)]
        cases.append((np.array(rows), int(lines[5 + 4 * k])))
    return lines[0], x0, cases


def test_bits_equal_c():
    sched, x0, cases = _c_case()
    cov = corrsde.Cov("ar1:rho=0.8", TAU, "dense")
    for (want, nfe), tdraws in zip(cases, (0, 4)):
        r = corrsde.elbo(SPEC, x0, cov=cov, schedule=sched, draws=2, tdraws=tdraws, seed=9)
        got = np.stack([r[k] for k in KEYS], axis=1)
        assert got.tobytes() == want.tobytes(), (tdraws, got - want)
        assert r["nfe"] == nfe
        assert np.all(r["se"] > 0) and np.all(r["lo"] < r["nll"]) and np.all(r["nll"] < r["hi"])


def _exact_cscore(cov, sched, S0, m):
    """C grad log p_t of the gaussian data N(m, S0) in numpy (a callable model)."""
    C = np.array(cov.matrix)

    def model(t, x, ctx):
        ab = float(sched.abar(t))
        Sig = ab * S0 + (1 - ab) * C
        z = x - np.sqrt(ab) * m
        return -np.einsum("ij,bj...->bi...", C @ np.linalg.inv(Sig), z)
    return model


def test_callable_and_torch_model():
    sched, x0, _ = _c_case()
    cov = corrsde.Cov("ar1:rho=0.8", TAU, "dense")
    s = corrsde.Schedule(sched)
    idx = np.arange(TAU)
    S0 = 0.25 * 0.6 ** np.abs(idx[:, None] - idx[None, :])
    ref = corrsde.elbo(SPEC, x0, cov=cov, schedule=s, draws=2, seed=9)
    f = _exact_cscore(cov, s, S0, 0.3)
    r = corrsde.elbo(f, x0, cov=cov, schedule=s, draws=2, seed=9)
    for k in KEYS:
        np.testing.assert_allclose(r[k], ref[k], rtol=1e-9, atol=1e-9, err_msg=k)
    assert r["nfe"] == 100
    torch = pytest.importorskip("torch")
    from corrsde.torch import TorchModel

    class Exact(torch.nn.Module):
        def forward(self, x, t):
            return torch.from_numpy(np.ascontiguousarray(f(float(t[0]), x.numpy(), None)))
    tm = TorchModel(Exact(), output="cscore", dtype=torch.float64, device="cpu")
    r = corrsde.elbo(tm, x0, cov=cov, schedule=s, draws=2, seed=9)
    for k in KEYS:
        np.testing.assert_allclose(r[k], ref[k], rtol=1e-9, atol=1e-9, err_msg=k)


def test_dequant_offset():
    cov = corrsde.Cov("ar1:rho=0.8", TAU, "dense")
    rng = np.random.default_rng(0)
    k = rng.integers(0, 256, size=(4, TAU, D)).astype(np.float64)
    sched = "ddpm-linear:n=20,b1=0.005,bN=0.9"
    r = corrsde.elbo(SPEC, k, cov=cov, schedule=sched, seed=3, dequant="uniform")
    n = TAU * D
    np.testing.assert_allclose(r["bpd"], r["nll"] / (n * np.log(2)) + 7, rtol=1e-15)
    r2 = corrsde.elbo(SPEC, k, cov=cov, schedule=sched, seed=3,
                      dequant="uniform:bits=8,scale=0.0078125,shift=-1")
    assert r2["nll"].tobytes() == r["nll"].tobytes()
    r3 = corrsde.elbo(SPEC, k, cov=cov, schedule=sched, seed=4, dequant="uniform")
    assert not np.array_equal(r3["LT"], r["LT"])  # another seed, another y


def test_bad_settings():
    cov = corrsde.Cov("ar1:rho=0.8", TAU, "dense")
    x = np.zeros((2, TAU, D))
    sched = "ddpm-linear:n=10,b1=0.01,bN=0.5"
    for bad in ("uniform:bits=17", "uniform:scale=-1", "uniform:bits=x", "gauss",
                "uniform:offset=2"):
        with pytest.raises(ValueError, match="dequant"):
            corrsde.elbo(SPEC, x, cov=cov, schedule=sched, dequant=bad)
    y = np.zeros((2, TAU, D))
    y[1, 1, 1] = 256
    with pytest.raises(ValueError, match="dequant: sample 1, index 3"):
        corrsde.elbo(SPEC, y, cov=cov, schedule=sched, dequant="uniform")
    with pytest.raises(ValueError, match="discrete schedule"):
        corrsde.elbo(SPEC, x, cov=cov, schedule="vp-linear")
    with pytest.raises(ValueError, match="draws"):
        corrsde.elbo(SPEC, x, cov=cov, schedule=sched, draws=0)
