"""The k-diffusion rows of experiments/fewstep.py (its --kdiffusion PATH).

k-diffusion (Katherine Crowson's sampler library, github.com/crowsonkb/k-diffusion) is not a
dependency: it is loaded from the checkout given on the command line, and only its
k_diffusion/sampling.py, by file path (importlib), under the package name k_diffusion. That
file imports torchdiffeq, torchsde and tqdm, and `from . import utils` (whose own imports
need torchvision and safetensors); where those are not installed, small stub modules go
into sys.modules first: tqdm.auto.trange/tqdm as plain ranges, k_diffusion.utils with only
append_dims (the samplers' one use of utils), and torchdiffeq/torchsde whose functions
raise (log_likelihood and the Brownian-tree noise sampler, which these ODE samplers never
call). No k-diffusion code is copied here.

The convention: k-diffusion integrates the EDM/VE ODE dx/dsigma = (x - D(x, sigma)) / sigma
in x_ve = x / alpha, sigma_ve = sigma / alpha = exp(-lambda), on any Gaussian path. The gmm's
exact denoiser D(x_ve, sigma_ve) = E[x0 | x_t] is taken at t = t_of_lambda(-log sigma_ve)
and x = alpha(t) x_ve, with the path's alpha, sigma and t(lambda) from corrsde.Schedule and
the posterior mean in closed form (numpy), the formula of src/model/gmm.c written again
here (fewstep.py hands GmmX0 the mixture's arrays; corrsde.Model("gmm:file=P.h5", cov=C,
schedule=S, frame_shape=D).x0(t, x) is the library's own, and
tests/python/test_model_builtin.py::test_fewstep_kd_denoiser_is_the_models holds the two
equal to 1e-12),

    x0_hat = sum_k r_k (m_k + alpha S_k Sigma_k^-1 (x - alpha m_k)),
    Sigma_k = alpha^2 S_k + sigma^2 C,  r_k ~ w_k N(x; alpha m_k, Sigma_k (x) I_D)

(per sample: the components are of whole tau x D videos). check_denoiser() compares it with
the built-in model through corrsde: the PF-ODE solved by corrsde with this x0 as a Python
model against the CLI's gmm reference.
"""
import importlib.util
import math
import os
import sys
import types

import numpy as np

# (label, k-diffusion function, denoiser calls per step on a grid without the final 0)
KD_SAMPLERS = (
    ("kd-euler", "sample_euler", 1),
    ("kd-heun", "sample_heun", 2),
    ("kd-dpm2", "sample_dpm_2", 2),
    ("kd-lms", "sample_lms", 1),
    ("kd-dpmpp2m", "sample_dpmpp_2m", 1),
)
# the grids of corrsde (nodes from T to eps) and k-diffusion's default: karras with the 0
# appended (the last step goes to sigma = 0, one denoiser call for every sampler)
KD_GRIDS = ("karras", "logsnr", "uniform", "quadratic", "karras+0")
# the same method in both libraries: DDIM is Euler in (x / alpha, sigma / alpha); edm-heun is
# Karras' Heun; dpmpp2m is DPM-Solver++(2M)
TWINS = (("ddim", "kd-euler"), ("edm-heun", "kd-heun"), ("dpmpp2m", "kd-dpmpp2m"))


def twins(ends, grids, budgets):
    """Text lines: per budget, the largest endpoint difference of each pair of TWINS over the
    grids both ran. corrsde's dpmpp2m takes its last step first order below 15 steps
    (DPM-Solver's lower_order_final, solvers/dpmpp2m.c), k-diffusion's does not: they agree
    from 15 steps on."""
    lines = []
    for a, b in TWINS:
        cells = []
        for n in budgets:
            d = [np.abs(ends[(a, g, n)] - ends[(b, g, n)]).max() for g in grids
                 if (a, g, n) in ends and (b, g, n) in ends]
            if d:
                cells.append("%.2g at %d" % (max(d), n))
        lines.append("Same method in both libraries: corrsde %s against k-diffusion %s, the "
                     "largest endpoint difference over the grids: %s NFE." %
                     (a, b[3:], ", ".join(cells)))
    return lines


def _missing(name):
    def f(*args, **kwargs):
        raise RuntimeError("%s is a stub (not installed): fewstep_kd.py calls only the ODE "
                           "samplers of k-diffusion" % name)
    return f


def load_sampling(root):
    """k_diffusion/sampling.py of the checkout at root, as a module (see the docstring)."""
    importlib.import_module("torch")  # sampling.py needs it: fail here, before the stubs
    path = os.path.join(root, "k_diffusion", "sampling.py")
    if not os.path.isfile(path):
        raise SystemExit("--kdiffusion %s: no k_diffusion/sampling.py there" % root)
    for name in ("torchdiffeq", "torchsde", "tqdm"):
        try:
            importlib.import_module(name)
        except ImportError:
            m = types.ModuleType(name)
            if name == "torchdiffeq":
                m.odeint = _missing("torchdiffeq.odeint")
            elif name == "torchsde":
                m.BrownianTree = _missing("torchsde.BrownianTree")
            else:
                auto = types.ModuleType("tqdm.auto")
                auto.trange = lambda n, disable=None, **kw: range(n)
                auto.tqdm = _missing("tqdm.auto.tqdm")
                m.auto = auto
                sys.modules["tqdm.auto"] = auto
            sys.modules[name] = m
    if "k_diffusion" not in sys.modules:
        pkg = types.ModuleType("k_diffusion")
        pkg.__path__ = []
        utils = types.ModuleType("k_diffusion.utils")
        utils.append_dims = lambda x, n: x[(...,) + (None,) * (n - x.ndim)]
        pkg.utils = utils
        sys.modules["k_diffusion"] = pkg
        sys.modules["k_diffusion.utils"] = utils
    spec = importlib.util.spec_from_file_location("k_diffusion.sampling", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["k_diffusion.sampling"] = mod
    spec.loader.exec_module(mod)
    return mod


class GmmX0:
    """E[x0 | x_t] of fewstep.py's mixture on a corrsde.Schedule's path (closed form)."""

    def __init__(self, weights, means, covs, Cm, sched):
        self.logw = np.log(np.asarray(weights) / np.sum(weights))
        self.m = np.asarray(means)      # K x tau (the same for every pixel)
        self.S = np.asarray(covs)       # K x tau x tau
        self.C = np.asarray(Cm)
        self.sched = sched

    def __call__(self, x, t):
        """x: [B, tau, D] at time t."""
        a, s = self.sched.alpha(t), self.sched.sigma_path(t)
        D = x.shape[2]
        lr, post = [], []
        for k in range(len(self.logw)):
            Sig = a * a * self.S[k] + s * s * self.C
            L = np.linalg.cholesky(Sig)
            z = x - a * self.m[k][None, :, None]
            sol = np.linalg.solve(Sig, z)                      # Sigma_k^-1 z, per sample
            q = np.einsum("bij,bij->b", z, sol)
            ldet = 2 * np.sum(np.log(np.diag(L)))
            lr.append(self.logw[k] - 0.5 * (q + D * ldet))
            post.append(self.m[k][None, :, None] + a * np.einsum("ij,bjd->bid", self.S[k], sol))
        lr = np.array(lr)                                      # K x B
        r = np.exp(lr - lr.max(axis=0))
        r /= r.sum(axis=0)
        return np.einsum("kb,kbid->bid", r, np.array(post))


class Denoiser:
    """k-diffusion's model(x_ve, sigma_ve) -> x0_hat; counts its calls."""

    def __init__(self, x0, sched):
        self.x0, self.sched, self.calls = x0, sched, 0

    def __call__(self, x_ve, sigma_ve):
        import torch
        self.calls += 1
        sv = float(sigma_ve.reshape(-1)[0])
        t = self.sched.t_of_lambda(-math.log(sv))
        a = self.sched.alpha(t)
        return torch.from_numpy(self.x0(a * x_ve.double().numpy(), t))


def sigma_ve(sched, t):
    return np.asarray(sched.sigma_path(t)) / np.asarray(sched.alpha(t))


def grid_sigmas(kd, sched, grid, n, T, eps):
    """n steps from T to eps as k-diffusion sigmas (n + 1 nodes, no 0 appended); karras+0:
    get_sigmas_karras as k-diffusion is used, n nodes and the 0 (n steps, the last to 0)."""
    import torch
    smax, smin = float(sigma_ve(sched, T)), float(sigma_ve(sched, eps))
    u = np.arange(n + 1) / n
    if grid == "karras":
        s = kd.get_sigmas_karras(n + 1, smin, smax, rho=7.0)[:-1]
    elif grid == "karras+0":
        s = kd.get_sigmas_karras(n, smin, smax, rho=7.0)
    elif grid == "logsnr":
        s = kd.get_sigmas_exponential(n + 1, smin, smax)[:-1]
    elif grid == "uniform":   # rf: the shifted uniform grid, sigma_ve = t'/(1 - t') (diffusers)
        s = torch.from_numpy(sigma_ve(sched, T + u * (eps - T)))
    elif grid == "quadratic":
        s = torch.from_numpy(sigma_ve(sched, eps + (T - eps) * (1 - u) ** 2))
    else:
        raise ValueError(grid)
    s = s.double()
    if grid != "karras+0":
        s[0], s[-1] = smax, smin
    return s


def kd_run(kd, fn, den, x_ve, sigmas):
    import torch
    den.calls = 0
    with torch.no_grad():
        y = getattr(kd, fn)(den, torch.from_numpy(x_ve.copy()), sigmas, disable=True)
    return y.numpy(), den.calls


def rows(kd, x0, sched, xT, ref, T, eps, budgets, ends):
    """The k-diffusion cells: (label, grid, budget, steps, nfe, max abs error of x(eps));
    ends[(label, grid, budget)] = the final states alpha(eps) x_ve."""
    import torch
    torch.set_default_dtype(torch.float64)
    den = Denoiser(x0, sched)
    aT, ae = sched.alpha(T), sched.alpha(eps)
    x_ve = xT / aT                       # the same prior draw: x_ve(T) = x_T / alpha(T)
    out = []
    for label, fn, per in KD_SAMPLERS:
        for grid in KD_GRIDS:
            for nfe in budgets:
                # karras+0: the last step (to 0) is one call for every sampler
                steps = nfe // per if grid != "karras+0" else (nfe - 1) // per + 1
                if steps < 1:
                    out.append((label, grid, nfe, 0, 0, float("nan")))
                    continue
                y, used = kd_run(kd, fn, den, x_ve, grid_sigmas(kd, sched, grid, steps, T, eps))
                ends[(label, grid, nfe)] = ae * y
                out.append((label, grid, nfe, steps, used, float(np.abs(ae * y - ref).max())))
    return out


def check(kd, x0, sched, xT, ref, T, eps, cov, ref_nfe):
    """The wrapper's checks, as text lines: (1) corrsde's PF-ODE with this x0 as a Python
    model (rk8pd at 1e-12) against the CLI's built-in gmm; (2) k-diffusion's Euler and Heun
    on karras grids of 2^k steps converge to the reference at orders 1 and 2; (3) the gap
    between x(eps) and k-diffusion's end at sigma = 0 (karras+0): one Euler step from
    sigma_ve(eps) to 0 of the exact endpoint, alpha(eps) |x_ve - D(x_ve, sigma_ve(eps))|."""
    import corrsde
    lines = []
    model = lambda t, x, ctx: x0(np.asarray(x), t)  # noqa: E731
    r = corrsde.solve(model, xT, cov=cov, schedule=sched.spec, process="pf-ode",
                      solver="rk8pd", rtol=1e-12, atol=1e-12, output="x0", t_start=T, t_end=eps)
    lines.append("Denoiser check 1: corrsde's rk8pd at 1e-12 with this closed-form x0 as a "
                 "Python model (%d evaluations) against the built-in gmm's reference (%d): "
                 "max abs difference %.2g." % (r.nfe, ref_nfe, np.abs(r.x - ref).max()))
    den = Denoiser(x0, sched)
    aT, ae = sched.alpha(T), sched.alpha(eps)
    for label, fn in (("Euler", "sample_euler"), ("Heun", "sample_heun")):
        errs, ns = [], (32, 64, 128, 256, 512)
        for n in ns:
            y, _ = kd_run(kd, fn, den, xT / aT, grid_sigmas(kd, sched, "karras", n, T, eps))
            errs.append(np.abs(ae * y - ref).max())
        slopes = [math.log2(errs[i] / errs[i + 1]) for i in range(len(errs) - 1)]
        lines.append("Denoiser check 2: k-diffusion sample_%s, karras grid, %s steps: errors %s; "
                     "observed orders %s." % (
                         fn[7:], "/".join(str(n) for n in ns),
                         " ".join("%.2g" % e for e in errs),
                         " ".join("%.2f" % s for s in slopes)))
    sv = float(sigma_ve(sched, eps))
    import torch
    gap = ae * np.abs(ref / ae - den(torch.from_numpy(ref / ae), torch.tensor([sv])).numpy())
    lines.append("End at sigma = 0 (k-diffusion's appended 0, grid karras+0) against x(eps): "
                 "the exact endpoint's own step from sigma_ve(eps) = %.4g to 0 moves it by up to "
                 "%.2g (max abs), a floor for the karras+0 errors." % (sv, gap.max()))
    return lines
