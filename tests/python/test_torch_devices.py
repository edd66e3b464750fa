"""TorchModel's dtypes and devices (issue 24, item 6): the state is converted once per call to
the module's dtype (float16, bfloat16, float32, float64) on the host and moved to its device
in that dtype; the answer comes back in the module's dtype and is made float64 on the host.

Error bounds for a convolution y = b + sum_k w_k x_k (K terms) run in a dtype of unit
roundoff u (bfloat16: 8 significant bits, u = 2^-8; float32: u = 2^-24) against float64,
with S = |b| + sum_k |w_k| |x_k| (float64) per output:
- the rounding of x and w to the dtype changes each product by at most (2u + u^2) |w_k x_k|,
  the bias by u |b|;
- bfloat16 on the CPU accumulates in float32 (the products of two 8-bit significands are
  exact there): at most gamma_(K+1) S with gamma_n = n v / (1 - n v), v = 2^-24; float32
  accumulates in float32: gamma_(K+1)(2^-24) S;
- the answer is rounded to the dtype once: u |y_lp|.
So |y_lp - y_64| <= (2u + u^2 + gamma_(K+1)(2^-24)) S + u |y_lp|, asserted per element.
"""
import types

import numpy as np
import pytest

torch = pytest.importorskip("torch")
corrsde = pytest.importorskip("corrsde")
ct = pytest.importorskip("corrsde.torch")

V32 = 2.0 ** -24
MEASURED = {}  # the differences measured (read by the report's script)


def gamma(n, v):
    return n * v / (1 - n * v)


class Conv(torch.nn.Module):
    """module(x [B, tau, H, W], time [B]) = conv3d over (frames, H, W) + time * c."""

    def __init__(self, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.conv = torch.nn.Conv3d(1, 1, 3, padding=1).double()
        with torch.no_grad():
            self.conv.weight.copy_(torch.randn(self.conv.weight.shape, generator=g,
                                               dtype=torch.float64) / 5)
            self.conv.bias.fill_(0.1)

    def forward(self, x, time):
        return self.conv(x.unsqueeze(1)).squeeze(1) + 0 * time.reshape(-1, 1, 1, 1).to(x.dtype)


def context(x, t=0.5):
    return types.SimpleNamespace(t=t, sigma=1.0, index=None, abar=0.5, batch=x.shape[0],
                                 tau=x.shape[1], frame_shape=x.shape[2:], schedule=None,
                                 cov=None)


def readonly(shape, seed=4):
    x = np.random.default_rng(seed).standard_normal(shape)
    x.flags.writeable = False
    return x


def bound_scale(net, x):
    """S = |b| + sum_k |w_k| |x_k| per output, in float64."""
    w, b = net.conv.weight.detach().abs(), net.conv.bias.detach().abs()
    xa = torch.from_numpy(np.abs(x)).unsqueeze(1)
    return (torch.nn.functional.conv3d(xa, w, padding=1).squeeze(1) + b).numpy()


def test_dtype_and_device_default_to_the_modules():
    net = Conv()
    assert ct.TorchModel(net).dtype == torch.float64
    assert ct.TorchModel(Conv().to(torch.bfloat16)).dtype == torch.bfloat16
    assert ct.TorchModel(Conv().float(), device="cpu").device == torch.device("cpu")
    m = ct.TorchModel(lambda x, t: x)  # no parameters: float32 on the cpu, as before
    assert m.dtype == torch.float32 and m.device == torch.device("cpu")
    assert ct.TorchModel(net, dtype=torch.float32).dtype == torch.float32
    for bad in (torch.int32, torch.complex64, "float32"):
        with pytest.raises(ValueError, match="dtype"):
            ct.TorchModel(net, dtype=bad)


@pytest.mark.parametrize("dtype,u", [(torch.bfloat16, 2.0 ** -8), (torch.float32, 2.0 ** -24)])
def test_low_precision_answers_against_float64(dtype, u):
    """Per element, |y_lp - y_64| <= (2u + u^2 + gamma_28(2^-24)) S + u |y_lp| (the module's
    docstring derives it)."""
    x = readonly((3, 6, 8, 8))
    net = Conv()
    lp = Conv().to(dtype)
    lp.load_state_dict({k: v.to(dtype) for k, v in net.state_dict().items()})
    calls = []
    lp.register_forward_pre_hook(lambda mod, inp: calls.append(inp[0].dtype))
    y64 = ct.TorchModel(net)(0.5, x, context(x))
    y = ct.TorchModel(lp)(0.5, x, context(x))  # the module's dtype
    assert calls == [dtype] and y.dtype == np.float64
    K = 27
    S = bound_scale(net, x)
    bound = (2 * u + u * u + gamma(K + 1, V32)) * S + u * np.abs(y)
    err = np.abs(y - y64)
    assert np.all(err <= bound), (err / bound).max()
    rel = err.max() / np.abs(y64).max()
    MEASURED[f"{dtype} answer: max |y - y64| / max |y64|"] = rel
    MEASURED[f"{dtype} answer: max |y - y64| / bound"] = (err / bound).max()
    # float32 is within ~1e-6 of float64 relative to the answer's scale
    if dtype == torch.float32:
        assert rel <= 1e-6


@pytest.mark.parametrize("dtype,tol", [(torch.bfloat16, 8 * 2.0 ** -8), (torch.float32, 1e-6)])
def test_low_precision_solve_against_float64(dtype, tol):
    """A PF-ODE solve (heun, 20 steps) with the module in dtype: the final states against the
    float64 module's (measured; asserted below tol relative to the largest entry)."""
    cov = corrsde.Cov("ar1:rho=0.9", frames=6)
    net = Conv(seed=1)
    lp = Conv(seed=1).to(dtype)
    kw = dict(cov=cov, process="pf-ode", solver="heun", steps=20, batch=2,
              frame_shape=(8, 8), seed=3)
    r64 = corrsde.solve(ct.TorchModel(net, output="noise"), **kw)
    r = corrsde.solve(ct.TorchModel(lp, output="noise"), **kw)
    rel = np.abs(r.x - r64.x).max() / np.abs(r64.x).max()
    MEASURED[f"{dtype} pf-ode heun 20 steps: final states, max rel difference"] = rel
    assert rel <= tol


def test_float64_cpu_is_unchanged():
    """float64 on the cpu: the module sees the solver's buffer (no copy) and its answer is
    returned bit for bit."""
    x = readonly((2, 6, 4, 4))
    seen = []

    class Probe(torch.nn.Module):
        def forward(self, xt, time):
            seen.append(xt.data_ptr())
            return xt * 3
    y = ct.TorchModel(Probe(), dtype=torch.float64)(0.5, x, context(x))
    assert seen == [x.ctypes.data] and np.array_equal(y, x * 3)


CUDA = torch.cuda.is_available()


@pytest.mark.skipif(not CUDA, reason="no CUDA device (torch.cuda.is_available() is False): "
                    "TorchModel's cuda path is not run here")
@pytest.mark.parametrize("dtype,u", [(torch.float16, 2.0 ** -11), (torch.bfloat16, 2.0 ** -8),
                                     (torch.float32, 2.0 ** -24)])
def test_cuda_one_transfer_no_float64_on_the_device(dtype, u):
    """On the GPU: the device memory the call allocates at its peak is the input and the answer
    in dtype (2 x the state's size in dtype, + 64 KiB for the time tensor and rounding), which
    a float64 copy of the state on the device would exceed (with the converted copy beside it:
    (8 + itemsize) x size); y = 2 x is exact but for the rounding of x (|y - 2 x| <= 2u |x|)."""
    x = readonly((4, 8, 64, 64))

    class Double(torch.nn.Module):
        def forward(self, xt, time):
            assert xt.is_cuda and xt.dtype == dtype
            return 2 * xt
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    y = ct.TorchModel(Double(), dtype=dtype, device="cuda")(0.5, x, context(x))
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() - base
    size = x.size * torch.tensor([], dtype=dtype).element_size()
    # a float64 copy on the device beside the converted one would exceed this
    assert peak <= 2 * size + 65536, (peak, size, x.nbytes)
    assert y.dtype == np.float64 and np.all(np.abs(y - 2 * x) <= 2 * u * np.abs(x))

