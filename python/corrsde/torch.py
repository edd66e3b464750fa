"""PyTorch helpers for corrsde: a network as a solve() model (TorchModel, and the adapters
DiffusersModel and KDiffusionModel for networks trained in those conventions), correlated
noise, the training helpers (add_noise, sample_t, eq3_loss) and the Schedule's formulas on
tensors (corrsde.Schedule's methods call them for a tensor argument).

Importing this module needs torch; ``import corrsde`` does not import it.
"""
import collections
import math
import warnings

import numpy as np
import torch

__all__ = ["TorchModel", "DiffusersModel", "KDiffusionModel", "noise_like", "add_noise",
           "sample_t", "eq3_loss", "flow_target", "flow_matching_loss"]

from . import OUTPUTS  # the library's output kinds (corrsde.OUTPUTS: flow, flow-shifted too)
TIMES = ("t", "sigma", "index", "t_shifted", "timestep1000", "lambda")
#: the dtypes a TorchModel feeds its module
DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)

_FACTORS = collections.OrderedDict()  # (id(cov), kind, dtype, device) -> (cov, tensor)
_FACTORS_MAX = 32


def _factor(cov, kind, dtype, device):
    """Cached factor of cov.matrix: kind "chol" (Cholesky, None if C is not positive definite)
    or "sqrt" (Cholesky if it exists, else V sqrt(max(S, 0)))."""
    key = (id(cov), kind, dtype, str(torch.device(device)))
    hit = _FACTORS.get(key)
    if hit is not None and hit[0] is cov:  # the cov is held, so its id cannot be reused
        _FACTORS.move_to_end(key)
        return hit[1]
    c = np.asarray(cov.matrix, dtype=np.float64)
    try:
        if getattr(cov, "singular", False):
            raise np.linalg.LinAlgError
        f = np.linalg.cholesky(c)
    except np.linalg.LinAlgError:
        f = None
        if kind == "sqrt":
            s, v = np.linalg.eigh(c)
            f = v * np.sqrt(np.clip(s, 0.0, None))
    if f is not None:
        f = torch.as_tensor(f, dtype=dtype, device=device)
    _FACTORS[key] = (cov, f)
    if len(_FACTORS) > _FACTORS_MAX:
        _FACTORS.popitem(last=False)
    return f


def _blocks(x, cov, name="x"):
    """x [B, tau, *frame_shape] viewed as [B, tau, D]."""
    if x.dim() < 2 or x.shape[1] != cov.frames:
        raise ValueError(f"{name} has shape {tuple(x.shape)}; expected [B, {cov.frames}, ...] "
                         f"(axis 1 is the frame axis of the {cov.frames}-frame cov)")
    return x.reshape(x.shape[0], x.shape[1], int(np.prod(x.shape[2:], dtype=np.int64)))


def _module_dtype_device(module):
    """The dtype and device of the module's first floating parameter or buffer
    (float32 and cpu for a module that has none)."""
    tensors = []
    if isinstance(module, torch.nn.Module):
        tensors = [p for p in module.parameters()] + [b for b in module.buffers()]
    for p in tensors:
        if p.is_floating_point():
            return p.dtype, p.device
    return torch.float32, torch.device("cpu")


class TorchModel:
    """A torch module as a corrsde.solve model: model(t, x, ctx) = module(x, time) as float64 numpy.

    time is ctx.t ("t"), ctx.sigma ("sigma", the VE sigma sigma_path / alpha: k-diffusion's
    and EDM's, on every path), ctx.index ("index", a long tensor), or from t and ctx.schedule
    (on a path, docs/MATH.md "Gaussian paths"): "t_shifted" rf's t' = S t / (1 + (S - 1) t)
    (= sigma_path, the t' of alpha = 1 - t'; t itself on another schedule), "timestep1000"
    1000 t' (the 0..1000 timesteps of diffusers' rectified-flow pipelines, SD3, Wan,
    HunyuanVideo; float32, float64 for a float64 model), "lambda" log(alpha / sigma_path) =
    logsnr / 2; repeated to shape [B]. The call runs under torch.no_grad() and does not change the module's
    mode: call module.eval() yourself. ``output`` is the kind of answer ("score", "cscore",
    "noise", "x0", "v", "flow", "flow-shifted": corrsde.OUTPUTS) solve() reads; a network
    trained on flow_target(..., shifted=True) (delta - x0, SD3/Wan's target) answers
    "flow-shifted" on rf:shift=S, one trained on flow_target(...) answers "flow".
    ``dtype`` (float16, bfloat16, float32 or float64) and ``device`` default to the module's
    (its first floating parameter or buffer; float32 on the cpu for a module without one).
    Each call makes one copy of the state: converted to dtype on the host, then moved to the
    device in that dtype (no float64 copy on the device); the answer comes back to the host
    in the module's dtype and is converted to float64 there. For float64 on the CPU the input
    tensor shares memory with the solver's read-only state (no copy), so the module must not
    modify its input in place (that raises).
    ``max_batch`` (default: no limit) calls the module on slices of at most that many samples
    (for a batch that does not fit on the device at once) and joins the answers.
    Conditioning (solve(cond=...), ctx.cond): ``module(x, time, **cond)`` for a dict,
    ``module(x, time, cond)`` for another structure, ``module(x, time)`` exactly as before
    without one. Its arrays become tensors on the device (floating ones in ``dtype``,
    others as they are; a tensor already there is not copied), sliced with x under
    max_batch.
    """

    def __init__(self, module, output="noise", dtype=None, device=None, time="t",
                 max_batch=None):
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}, not {output!r}")
        if time not in TIMES:
            raise ValueError(f"time must be one of {TIMES}, not {time!r}")
        if max_batch is not None and (isinstance(max_batch, bool) or int(max_batch) != max_batch
                                      or max_batch < 1):
            raise ValueError(f"max_batch must be a positive integer or None, not {max_batch!r}")
        mdtype, mdevice = _module_dtype_device(module)
        dtype = mdtype if dtype is None else dtype
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, not {dtype!r}")
        self.module, self.output, self.time = module, output, time
        self.dtype, self.device = dtype, torch.device(mdevice if device is None else device)
        self.max_batch = None if max_batch is None else int(max_batch)

    def _time(self, t, ctx, batch):
        if self.time == "index":
            if ctx.index is None:
                raise ValueError('time="index" needs a discrete schedule (ctx.index is None '
                                 f'for schedule {getattr(ctx.schedule, "spec", ctx.schedule)!r})')
            return torch.full((batch,), int(ctx.index), dtype=torch.long, device=self.device)
        dtype = self.dtype
        if self.time == "t":
            value = t
        elif self.time == "sigma":
            value = ctx.sigma
        else:  # from t on the schedule's path
            S = getattr(ctx, "schedule", None)
            if S is None or not hasattr(S, "lambda_"):
                raise ValueError(f'time="{self.time}" needs ctx.schedule (a corrsde.Schedule)')
            if self.time == "lambda":
                value = S.lambda_(t)
            else:
                value = S.sigma_path(t) if S.path == "rf" else t  # rf: t' = sigma
                if self.time == "timestep1000":
                    value = 1000 * value
                    dtype = torch.float64 if dtype == torch.float64 else torch.float32
        return torch.full((batch,), float(value), dtype=dtype, device=self.device)

    def _forward(self, xt, t, ctx, cond=None):
        """The module's answer for the states xt (a slice of the batch, on the device) and
        their conditioning cond (tensors on the device; None: none)."""
        if cond is None:
            return self.module(xt, self._time(t, ctx, xt.shape[0]))
        if isinstance(cond, dict):
            return self.module(xt, self._time(t, ctx, xt.shape[0]), **cond)
        return self.module(xt, self._time(t, ctx, xt.shape[0]), cond)

    def _cond_tensor(self, v):
        """A leaf of ctx.cond as a tensor on the device (floating ones in self.dtype)."""
        if not isinstance(v, torch.Tensor):
            v = torch.from_numpy(np.ascontiguousarray(v))
        if v.is_floating_point() and v.dtype != self.dtype:
            v = v.to(dtype=self.dtype)
        return v.to(device=self.device)

    def __call__(self, t, x, ctx):
        x = np.asarray(x)
        if any(s < 0 for s in x.strides):
            x = np.ascontiguousarray(x)
        with warnings.catch_warnings():  # read-only x: shared only when no conversion is needed
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            base = torch.from_numpy(x)
        # the one copy: to dtype on the host, then to the device in that dtype (a no-op on the
        # cpu; never a float64 tensor on another device)
        xt = base.to(dtype=self.dtype).to(device=self.device)
        shared, version = xt.data_ptr() == base.data_ptr(), xt._version
        from . import _cond_map
        c = getattr(ctx, "cond", None)
        c = None if c is None else _cond_map(c, self._cond_tensor)
        with torch.no_grad():
            if self.max_batch is None or x.shape[0] <= self.max_batch:
                out = torch.as_tensor(self._forward(xt, t, ctx, c))
            else:  # slices of at most max_batch samples (and of their conditioning)
                m = self.max_batch
                out = torch.cat([torch.as_tensor(self._forward(
                    xs, t, ctx, None if c is None else _cond_map(c, lambda v: v[i:i + m])))
                    for i, xs in zip(range(0, x.shape[0], m), xt.split(m))])
        if shared and xt._version != version:
            raise RuntimeError("the module modified its input in place; the input shares memory "
                               "with the solver state (float64 on the CPU)")
        if tuple(out.shape) != x.shape:
            raise ValueError(f"module output has shape {tuple(out.shape)}, "
                             f"but x has shape {x.shape}")
        out = out.detach().to(device="cpu")  # back in the module's dtype, then float64 here
        y = np.ascontiguousarray(out.to(dtype=torch.float64).numpy())
        return y.copy() if np.may_share_memory(y, x) else y

    def jvp(self, t, x, v, ctx):
        """J v, J = d module(x, time) / dx the Jacobian of the answer (in its own kind) at
        the states x, per sample, as float64 numpy: corrsde.likelihood's directional and
        Hutchinson divergences call it (registered as the model's JVP, csde_model_set_jvp).
        torch.func.jvp (forward mode) where torch has it (>= 2.0), else double backward:
        g(u) = J^T u by autograd.grad with create_graph, then J v = d<g(u), v>/du. x and v
        are cast to the model's dtype and moved to its device (CUDA included), max_batch
        and the conditioning as for a call."""
        x, v = np.asarray(x), np.asarray(v)
        if x.shape != v.shape:
            raise ValueError(f"jvp: v has shape {v.shape}, x has shape {x.shape}")
        xt = torch.from_numpy(np.array(x)).to(dtype=self.dtype).to(device=self.device)
        vt = torch.from_numpy(np.array(v)).to(dtype=self.dtype).to(device=self.device)
        from . import _cond_map
        c = getattr(ctx, "cond", None)
        c = None if c is None else _cond_map(c, self._cond_tensor)
        m = x.shape[0] if self.max_batch is None else self.max_batch
        parts = []
        for i in range(0, x.shape[0], m):
            ci = c if c is None or m >= x.shape[0] else _cond_map(c, lambda u: u[i:i + m])
            parts.append(_jvp(lambda z: torch.as_tensor(self._forward(z, t, ctx, ci)),
                              xt[i:i + m], vt[i:i + m]))
        out = torch.cat(parts) if len(parts) > 1 else parts[0]
        if tuple(out.shape) != x.shape:
            raise ValueError(f"module output has shape {tuple(out.shape)}, "
                             f"but x has shape {x.shape}")
        return np.ascontiguousarray(out.detach().to(device="cpu").to(dtype=torch.float64).numpy())


def _jvp(f, x, v):
    """J v of f at x: forward mode (torch.func.jvp, torch >= 2) or double backward."""
    func = getattr(torch, "func", None)
    if func is not None and hasattr(func, "jvp"):
        try:
            return func.jvp(f, (x,), (v,))[1]
        except NotImplementedError:  # an op without a forward-mode formula
            pass
    with torch.enable_grad():
        xg = x.detach().requires_grad_(True)
        out = f(xg)
        u = torch.zeros_like(out, requires_grad=True)
        g, = torch.autograd.grad(out, xg, grad_outputs=u, create_graph=True,
                                 allow_unused=True)  # J^T u, linear in u
        if g is None or not g.requires_grad:  # the answer does not depend on x
            return torch.zeros_like(out)
        jv, = torch.autograd.grad(g, u, grad_outputs=v, allow_unused=True)  # J v
        return torch.zeros_like(out) if jv is None else jv


def _answer(out):
    """A network's answer: a tensor, an output object's .sample (diffusers) or a tuple's first."""
    if isinstance(out, torch.Tensor):
        return out
    if hasattr(out, "sample"):
        return out.sample
    if isinstance(out, (tuple, list)) and out:
        return out[0]
    raise TypeError(f"the module returned {type(out).__name__}; expected a tensor, an object "
                    "with .sample or a tuple whose first entry is the tensor")


LAYOUTS = ("bfchw", "bcfhw")


def _cond_kwargs(model, cond):
    """The adapters' keyword arguments: their own kwargs, and a dict ctx.cond's entries
    (per-sample conditioning such as encoder_hidden_states, guided calls included)."""
    if cond is None:
        return model.kwargs
    if not isinstance(cond, dict):
        raise TypeError(f"{type(model).__name__} passes the conditioning as keyword "
                        f"arguments: ctx.cond must be a dict, not {type(cond).__name__}")
    both = sorted(set(cond) & set(model.kwargs))
    if both:
        raise ValueError(f"{type(model).__name__}: {', '.join(both)} given both as a keyword "
                         "argument and in cond")
    return {**model.kwargs, **cond}


def _to_layout(xt, layout, who):
    """corrsde's [B, F, C, H, W] (or [B, F, H, W]) in the module's layout, and back."""
    if layout == "bfchw":
        return xt, lambda y: y
    if xt.dim() == 4:  # frame_shape (H, W): one channel
        return xt.unsqueeze(1), lambda y: y.squeeze(1)
    if xt.dim() == 5:
        return (xt.permute(0, 2, 1, 3, 4).contiguous(),
                lambda y: y.permute(0, 2, 1, 3, 4))
    raise ValueError(f"{who} with layout {layout!r} needs frame_shape (C, H, W) or (H, W); "
                     f"x has shape {tuple(xt.shape)}")


class DiffusersModel(TorchModel):
    """A diffusers-style network as a solve() model: unet(sample, timestep, **kwargs).

    sample is [B, C, F, H, W] (layout "bcfhw", the default: channels first, frames second,
    from corrsde's [B, F, C, H, W] with frame_shape (C, H, W); frame_shape (H, W) is given
    one channel) or corrsde's own layout ("bfchw"). timestep is DDPM's 0-based step of a
    discrete schedule: ctx.index - 1, a long tensor [B] (abar of timestep k is corrsde's
    abar_step(k + 1), diffusers' alphas_cumprod[k]); t must be a node i/N of the schedule
    (within 1e-6 steps), else the call raises. timestep=f instead gives f(t, ctx) (a number,
    made a float32 tensor [B]; float64 for a float64 module) for networks trained on another
    time scale. prediction_type: "epsilon" (corrsde's output "noise"), "v_prediction" ("v":
    v = sqrt(abar) eps - sqrt(1 - abar) x0, diffusers' and MATH.md's sign) or "sample"
    ("x0"). The answer may be a tensor, an output object with .sample or a tuple.
    kwargs (conditioning such as encoder_hidden_states) are passed on every call as given
    (so they cannot be combined with max_batch). dtype, device, max_batch: as TorchModel.
    """

    PREDICTIONS = {"epsilon": "noise", "v_prediction": "v", "sample": "x0"}

    def __init__(self, unet, prediction_type="epsilon", timestep="index", dtype=None,
                 device=None, max_batch=None, layout="bcfhw", **kwargs):
        if prediction_type not in self.PREDICTIONS:
            raise ValueError(f"prediction_type must be one of {tuple(self.PREDICTIONS)}, "
                             f"not {prediction_type!r}")
        if timestep != "index" and not callable(timestep):
            raise ValueError(f'timestep must be "index" or a callable f(t, ctx), not {timestep!r}')
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, not {layout!r}")
        if kwargs and max_batch is not None:
            raise ValueError("max_batch cannot slice the module's keyword arguments "
                             f"({', '.join(kwargs)}); pass one or the other")
        super().__init__(unet, self.PREDICTIONS[prediction_type], dtype, device, "index",
                         max_batch)
        self.prediction_type, self.timestep, self.layout = prediction_type, timestep, layout
        self.kwargs = kwargs

    def _timestep(self, t, ctx, batch):
        if self.timestep != "index":
            dtype = torch.float64 if self.dtype == torch.float64 else torch.float32
            return torch.full((batch,), float(self.timestep(t, ctx)), dtype=dtype,
                              device=self.device)
        n = getattr(ctx.schedule, "nsteps", 0)
        if not n:
            spec = getattr(ctx.schedule, "spec", None)
            raise ValueError('DiffusersModel: timestep="index" needs a discrete schedule '
                             f"(ddpm-linear, discrete:...), not {spec!r}; pass "
                             "timestep=f(t, ctx) for a continuous one")
        i = round(t * n)
        if not abs(t * n - i) <= 1e-6:
            raise ValueError(f"DiffusersModel: t = {t!r} is not a step of the discrete schedule "
                             f"(t N = {t * n!r}, N = {n}); use a grid on the nodes i/N (or "
                             "timestep=f(t, ctx))")
        return torch.full((batch,), i - 1, dtype=torch.long, device=self.device)

    def _forward(self, xt, t, ctx, cond=None):
        x, back = _to_layout(xt, self.layout, "DiffusersModel")
        out = _answer(self.module(x, self._timestep(t, ctx, x.shape[0]),
                                  **_cond_kwargs(self, cond)))
        return back(out)


class KDiffusionModel(TorchModel):
    """A k-diffusion denoiser as a solve() model (output "x0"): denoiser(x_ve, sigma, **kwargs)
    returns the denoised x0, with x_ve = x / sqrt(abar(t)) and sigma = ctx.sigma
    = sqrt((1 - abar) / abar) (on a Gaussian path x / alpha(t) and sigma_path / alpha) repeated to [B] in the module's dtype (MATH.md, "In sigma-space
    coordinates": x_ve = x0 + sigma delta). layout "bfchw" (the default, corrsde's) or
    "bcfhw" (as DiffusersModel). kwargs are passed on every call (not with max_batch).
    dtype, device, max_batch: as TorchModel.
    """

    def __init__(self, denoiser, dtype=None, device=None, max_batch=None, layout="bfchw",
                 **kwargs):
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, not {layout!r}")
        if kwargs and max_batch is not None:
            raise ValueError("max_batch cannot slice the module's keyword arguments "
                             f"({', '.join(kwargs)}); pass one or the other")
        super().__init__(denoiser, "x0", dtype, device, "sigma", max_batch)
        self.layout, self.kwargs = layout, kwargs

    def _forward(self, xt, t, ctx, cond=None):
        x, back = _to_layout(xt, self.layout, "KDiffusionModel")
        S = ctx.schedule  # x_ve = x / alpha: VP sqrt(abar), a path's own alpha
        alpha = math.sqrt(float(ctx.abar)) if getattr(S, "path", "vp") == "vp" else S.alpha(t)
        sigma = torch.full((x.shape[0],), float(ctx.sigma), dtype=self.dtype, device=self.device)
        return back(_answer(self.module(x / alpha, sigma, **_cond_kwargs(self, cond))))


def noise_like(x, cov, generator=None):
    """eps = V' z, z = torch.randn_like(x): N(0, C) along axis 1 of x [B, tau, *frame_shape],
    independent across pixels; V' the Cholesky factor of C (or V sqrt(S) if C is singular)."""
    f = _factor(cov, "sqrt", x.dtype, x.device)
    _blocks(x, cov)
    z = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    return torch.matmul(f, _blocks(z, cov)).reshape(x.shape)


def eq3_loss(delta_pred, delta, cov, t=None, schedule=None, weight="eq3", reduction="mean"):
    """The eq. 3 loss: per sample b, L_b = w_b * sum_pixels r^T C^-1 r, r = delta - delta_pred
    along axis 1 of [B, tau, *frame_shape].

    weight "none": w = 1. weight "eq3" (discrete schedule, integer t in 1..N):
    w = beta_t / (2 alpha_t (1 - abar_{t-1})), alpha_t = 1 - beta_t, and w = 0 at t = 1;
    (continuous schedule, times t in (0, 1]) its limit per unit time as N grows with
    beta_i = beta(i/N) / N: w(t) = beta(t) / (2 (1 - abar(t))), so that E over t uniform
    of w(t) times the C^-1 norm is the continuous ELBO up to a constant. On a Gaussian path
    (edm, ve, rf) the same w through its VP view, w = -lambda'(t) (the ELBO weight of noise
    prediction on any path), for t in the path's span (edm: (smin, smax]).
    reduction: "mean" (the default) sum_b L_b / n with n = B * tau * D the number of elements
    (so with C = I and weight="none" it is torch's mse_loss(delta_pred, delta), bit for bit,
    and a learning rate tuned for an MSE keeps its scale); "sum" sum_b L_b (= "mean" * n);
    "batchmean" sum_b L_b / B (what "mean" was before issue 24); "none" the [B] tensor L_b.
    """
    if tuple(delta_pred.shape) != tuple(delta.shape):
        raise ValueError(f"delta_pred has shape {tuple(delta_pred.shape)}, "
                         f"delta has shape {tuple(delta.shape)}")
    if reduction not in ("mean", "sum", "batchmean", "none"):
        raise ValueError('reduction must be "mean", "sum", "batchmean" or "none", '
                         f'not {reduction!r}')
    r = _blocks(delta - delta_pred, cov, "delta")
    chol = _factor(cov, "chol", r.dtype, r.device)
    if chol is None:
        raise ValueError(f"C ({cov.spec!r}, {cov.frames} frames) is singular: "
                         "the C^-1 norm of eq. 3 is undefined")
    if weight == "eq3":
        w = _eq3_weight(t, schedule, r.shape[0], r.dtype, r.device)
    elif weight != "none":
        raise ValueError(f'weight must be "eq3" or "none", not {weight!r}')
    q = r * torch.cholesky_solve(r, chol)  # the terms of r^T C^-1 r, [B, tau, D]
    if weight == "eq3":
        q = q * w[:, None, None]
    if reduction == "mean":
        return q.mean()
    if reduction == "sum":
        return q.sum()
    loss = q.sum(dim=(1, 2))
    return loss.mean() if reduction == "batchmean" else loss


def _eq3_weight(t, schedule, batch, dtype, device):
    """w_b = beta_t / (2 alpha_t (1 - abar_{t-1})) for t_b >= 2, 0 for t_b = 1."""
    if schedule is None or t is None:
        raise ValueError('weight="eq3" needs the timesteps t (integers of a discrete schedule, '
                         'or times in (0, 1] of a continuous one) and the schedule (or pass '
                         'weight="none")')
    if isinstance(schedule, str):
        import corrsde
        schedule = corrsde.Schedule(schedule)
    n = schedule.nsteps
    if n <= 0:  # continuous: w(t) = beta(t) / (2 (1 - abar(t)))
        tt = torch.as_tensor(t).detach().cpu().reshape(-1).to(torch.float64).numpy()
        if tt.size != batch:
            raise ValueError(f"t has {tt.size} entries for a batch of {batch}")
        lo, hi = schedule.span()  # (0, 1]; a path's own span (edm: (smin, smax])
        if not np.all((tt > lo) & (tt <= hi)):
            raise ValueError(f"t must lie in ({lo:g}, {hi:g}] for a continuous schedule; got "
                             f"{tt[~((tt > lo) & (tt <= hi))][:5].tolist()}")
        w = schedule.beta(tt) / (2 * -np.expm1(-schedule.int_beta(tt)))
        return torch.as_tensor(w, dtype=dtype, device=device)
    steps = torch.as_tensor(t).detach().cpu().reshape(-1)
    if steps.is_floating_point() or steps.is_complex() or steps.dtype == torch.bool:
        raise ValueError(f"t must hold integer timesteps, not {steps.dtype}")
    steps = steps.tolist()
    if len(steps) != batch:
        raise ValueError(f"t has {len(steps)} entries for a batch of {batch}")
    bad = [i for i in steps if not 1 <= i <= n]
    if bad:
        raise ValueError(f"t must lie in 1..{n}; got {bad[:5]}")
    w = []
    for i in steps:
        beta = float(schedule.beta_step(i))
        w.append(0.0 if i == 1 else beta / (2 * (1 - beta) * (1 - float(schedule.abar_step(i - 1)))))
    return torch.tensor(w, dtype=dtype, device=device)


# ---------------------------------------------------------------- the schedule on tensors

def _schedule(schedule):
    if isinstance(schedule, str):
        import corrsde
        return corrsde.Schedule(schedule)
    if schedule is None or not hasattr(schedule, "spec") or not hasattr(schedule, "nsteps"):
        raise TypeError(f"schedule: expected a corrsde.Schedule or a spec str, "
                        f"got {type(schedule).__name__}")
    return schedule


def _compute_dtype(device):
    """float64 for the schedule's formulas, except on a device without it (mps)."""
    return torch.float32 if torch.device(device).type == "mps" else torch.float64


def _tables(schedule, dtype, device):
    """Per schedule, dtype and device: the kind and its constants, as schedule.c has them.
    vp-linear (bmin, bmax - bmin); cosine (a, cos u0, tan u0); a discrete kind the library's
    own node values: B(i/N) = cumB[i] (i = 0..N), beta(t) on ((i-1)/N, i/N], and
    beta_i, abar_i (i = 0..N; NaN at beta_0)."""
    cache = schedule.__dict__.setdefault("_torch_tables", {})
    key = (dtype, str(torch.device(device)))
    hit = cache.get(key)
    if hit is not None:
        return hit
    kind, _, rest = schedule.spec.partition(":")
    if kind == "vp-linear":
        p = dict(kv.split("=", 1) for kv in rest.split(","))
        bmin, bmax = float(p["bmin"]), float(p["bmax"])
        hit = (kind, bmin, bmax - bmin)
    elif kind == "cosine":
        off = float(rest.split("=", 1)[1])
        a = 0.5 * math.pi / (1 + off)
        hit = (kind, a, math.cos(a * off), math.tan(a * off))
    elif kind in ("edm", "ve", "rf"):  # the Gaussian paths: their parameters and span
        p = dict(kv.split("=", 1) for kv in rest.split(","))
        if kind == "rf":
            sh = float(p["shift"])
            hit = (kind, 0.0, 1.0, sh, math.log(sh))
        else:
            smin, smax = float(p["smin"]), float(p["smax"])
            if kind == "edm":
                hit = (kind, smin, smax)
            else:  # L = log smax - log smin, log smin (schedule.c's ve_init)
                hit = (kind, 0.0, 1.0, smin, math.log(smax) - math.log(smin), math.log(smin))
    elif schedule.nsteps:
        n = schedule.nsteps
        nodes = np.arange(n + 1, dtype=np.float64) / n
        f = lambda v: torch.as_tensor(np.asarray(v, dtype=np.float64), dtype=dtype, device=device)
        steps = np.arange(n + 1, dtype=np.float64)
        hit = ("discrete", n, f(schedule.int_beta(nodes)), f(schedule.beta(nodes[1:])),
               f(schedule.beta_step(steps)), f(schedule.abar_step(steps)))
    else:
        raise ValueError(f"schedule {schedule.spec!r}: no tensor formulas for this kind")
    cache[key] = hit
    return hit


def _int_beta(tab, t):
    """B(t) = int_0^t beta, t already clamped to [0, 1] (schedule.c's formulas)."""
    kind = tab[0]
    if kind == "vp-linear":
        bmin, d = tab[1], tab[2]
        return bmin * t + 0.5 * d * t * t  # bmin t + (bmax - bmin) t^2 / 2
    if kind == "cosine":  # B = -2 log(cos u / cos u0), u = a (t + s)
        a, cu0, tu0 = tab[1], tab[2], tab[3]
        du = a * t
        h = torch.sin(0.5 * du)
        x = 2 * h * h + tu0 * torch.sin(du)  # cos u / cos u0 = 1 - x
        small = x < 0.5
        xs, tl = torch.where(small, x, torch.zeros_like(x)), torch.where(small, 0 * t, t)
        return torch.where(small, -2 * torch.log1p(-xs),
                           -2 * torch.log(torch.sin(a * (1 - tl)) / cu0))
    n, cum = tab[1], tab[2]  # discrete: linear between the nodes B(i/N) = cumB[i]
    x = t * n
    r = torch.round(x)
    node = torch.abs(x - r) <= 4 * np.finfo(np.float64).eps * r
    k = torch.floor(x).clamp(0, n - 1).long()
    slope = cum[1:] - cum[:-1]
    lin = cum[k] + (x - k.to(x.dtype)) * slope[k]
    rk = r.clamp(0, n).long()
    at_node = cum[rk] + (x - x.detach()) * slope[rk.clamp(max=n - 1)]  # the node's value, exactly
    return torch.where(node, at_node, lin)


def _beta(tab, t):
    kind = tab[0]
    if kind == "vp-linear":
        return tab[1] + t * tab[2]  # bmin + t (bmax - bmin)
    if kind == "cosine":
        a = tab[1]
        return 2 * a / torch.tan(a * (1 - t))  # 2a / tan(a (1 - t))
    n, bt = tab[1], tab[3]  # -N log1p(-beta_i) on ((i-1)/N, i/N]
    x = t * n
    r = torch.round(x)
    node = torch.abs(x - r) <= 4 * np.finfo(np.float64).eps * r
    i = torch.where(node, r, torch.floor(x) + 1).clamp(1, n).long()
    return bt[i - 1]


PATHS = ("edm", "ve", "rf")


def _path(tab, t):
    """A Gaussian path's (alpha, sigma, dalpha, dsigma, f, g^2, lambda) at t, already
    clamped to its span (schedule.c's path_ops, formula for formula)."""
    kind = tab[0]
    zero = 0 * t  # NaN stays NaN, as in the library
    one = zero + 1
    if kind == "edm":  # alpha = 1, sigma = t
        return one, t, zero, one, zero, 2 * t, -torch.log(t)
    if kind == "ve":  # sigma = smin e^{t L}
        smin, L, lsmin = tab[3], tab[4], tab[5]
        sg = smin * torch.exp(t * L)
        return one, sg, zero, L * sg, zero, 2 * L * sg * sg, -(lsmin + t * L)
    S, logs = tab[3], tab[4]  # rf: q = 1 + (S - 1) t, t' = S t / q
    q = 1 + (S - 1) * t
    ds = S / (q * q)  # dt'/dt
    r = S / q
    return ((1 - t) / q, S * t / q, -ds, ds, -S / ((1 - t) * q), 2 * r * r * t / (1 - t),
            torch.log1p(-t) - torch.log(t) - logs)


def _vp_path(tab, t, what):
    """A VP schedule's path quantity `what` (7 alpha .. 13 lambda) at t in [0, 1], from B and
    beta as csde_schedule_path_* write it."""
    b = _int_beta(tab, t)
    if what == 7:
        return torch.exp(-0.5 * b)  # e^{-B/2}
    if what == 8:
        return torch.sqrt(-torch.expm1(-b))  # sqrt(1 - e^{-B})
    if what == 13:
        return 0.5 * _logsnr_of_B(b)
    beta = _beta(tab, t)
    if what == 9:
        return -0.5 * beta * torch.exp(-0.5 * b)  # -beta alpha / 2
    if what == 10:
        return 0.5 * beta * torch.exp(-b) / torch.sqrt(-torch.expm1(-b))  # beta abar / (2 sigma)
    return -0.5 * beta if what == 11 else beta  # f = -beta / 2, g^2 = beta


def _logsnr_of_B(b):
    """logsnr = -log(expm1(B)); -B - log1p(-e^-B) for B > 1."""
    small = b <= 1
    bs, bl = torch.where(small, b, torch.ones_like(b)), torch.where(small, 2 + 0 * b, b)
    return torch.where(small, -torch.log(torch.expm1(bs)), -bl - torch.log1p(-torch.exp(-bl)))


def _schedule_eval(schedule, what, t):
    """Schedule method `what` (0 beta, 1 abar, 2 sigma, 3 logsnr, 4 int_beta, 5 beta_step,
    6 abar_step; the path's 7 alpha, 8 sigma_path, 9 dalpha, 10 dsigma, 11 f, 12 g2,
    13 lambda) on a tensor: a tensor of t's dtype (the default dtype for integer t) and
    device, computed in float64 (float32 on mps) with schedule.c's formulas, differentiable
    in t (beta_step, abar_step: tables of the library's values, no gradient). t is clamped
    to the span ([0, 1]; edm [smin, smax]). The paths edm, ve, rf answer 0..4 with their VP
    view (abar = alpha^2 / (alpha^2 + sigma^2), beta = g^2 / (alpha^2 + sigma^2))."""
    out = t.dtype if t.is_floating_point() else torch.get_default_dtype()
    cd = _compute_dtype(t.device)
    tab = _tables(schedule, cd, t.device)
    if tab[0] in PATHS:
        tt = t.to(cd).clamp(tab[1], tab[2])
        a, sg, da, ds, f, g2, lam = _path(tab, tt)
        if what >= 7:
            return (a, sg, da, ds, f, g2, lam)[what - 7].to(out)
        if what == 0:
            return (g2 / (a * a + sg * sg)).to(out)  # beta = g^2 / (alpha^2 + sigma^2)
        y = -2 * lam  # B = softplus(y) = log(1 + e^{-2 lambda}), without overflow
        pos = y > 0
        yp, yn = torch.where(pos, y, torch.zeros_like(y)), torch.where(pos, torch.zeros_like(y), y)
        b = torch.where(pos, yp + torch.log1p(torch.exp(-yp)), torch.log1p(torch.exp(yn)))
        return _of_B(b, what).to(out)
    if what in (5, 6):
        n = schedule.nsteps
        v = t.detach().to(cd)
        ok = (v >= 0) & (v <= n)
        i = torch.where(ok, v, torch.zeros_like(v)).long()  # (size_t) v, as the library
        y = (tab[4] if what == 5 else tab[5])[i]
        return torch.where(ok, y, torch.full_like(y, math.nan)).to(out)
    tt = t.to(cd).clamp(0, 1)
    if what >= 7:
        return _vp_path(tab, tt, what).to(out)
    if what == 0:
        return _beta(tab, tt).to(out)
    return _of_B(_int_beta(tab, tt), what).to(out)


def _of_B(b, what):
    """abar (1), sigma (2), logsnr (3) or B itself (4) from B."""
    if what == 1:
        return torch.exp(-b)  # abar = e^-B
    if what == 2:
        return torch.sqrt(torch.expm1(b))  # sigma^2 = (1 - abar) / abar = e^B - 1
    if what == 3:
        return _logsnr_of_B(b)
    return b


def _schedule_index(schedule, t):
    """Schedule.index on a tensor: rint(t N) as a long tensor on t's device."""
    return torch.round(t.detach().to(torch.float64) * schedule.nsteps).long()


# ---------------------------------------------------------------- training helpers

def _coeffs(t, schedule, x, deriv=False):
    """alpha, sigma at t (deriv: alpha', sigma'): a VP schedule's sqrt(abar), sqrt(1 - abar)
    at t (times in [0, 1], or integer steps 0..N of a discrete schedule), a Gaussian path's
    alpha, sigma at times in its span, in float64 (float32 on mps), shaped to broadcast
    against x [B, ...]."""
    if not isinstance(t, torch.Tensor):  # a number or an array: float64 (int64), not float32
        t = torch.from_numpy(np.asarray(t))
    t = t.to(device=x.device)
    if t.dim() > 1 or (t.dim() == 1 and t.shape[0] != x.shape[0]):
        raise ValueError(f"t has shape {tuple(t.shape)}; expected a scalar or [B] with "
                         f"B = {x.shape[0]} (x has shape {tuple(x.shape)})")
    cd = _compute_dtype(x.device)
    if t.is_complex() or t.dtype == torch.bool:
        raise ValueError(f"t must hold times or integer steps, not {t.dtype}")
    tab = _tables(schedule, cd, x.device)
    shape = (-1,) + (1,) * (x.dim() - 1) if t.dim() == 1 else ()
    if tab[0] in PATHS or deriv:
        lo, hi = tab[1:3] if tab[0] in PATHS else (0.0, 1.0)
        if not t.is_floating_point():
            raise ValueError(f"t must hold times in [{lo!r}, {hi!r}] (the span of "
                             f"{schedule.spec!r}), not integer steps")
        ok = (t >= lo) & (t <= hi)
        if not bool(ok.all()):
            raise ValueError(f"t must lie in [{lo!r}, {hi!r}] (the span of {schedule.spec!r}); "
                             f"got {t[~ok].reshape(-1)[:5].tolist()}")
        tt = t.to(cd)
        if tab[0] in PATHS:
            c = _path(tab, tt)[2:4] if deriv else _path(tab, tt)[:2]
        else:  # VP: alpha' = -beta alpha / 2, sigma' = beta abar / (2 sigma)
            c = (_vp_path(tab, tt, 9), _vp_path(tab, tt, 10))
        return c[0].reshape(shape), c[1].reshape(shape)
    if t.is_floating_point():
        if not bool(((t >= 0) & (t <= 1)).all()):
            raise ValueError(f"t must lie in [0, 1]; got "
                             f"{t[~((t >= 0) & (t <= 1))].reshape(-1)[:5].tolist()}")
        b = _int_beta(tab, t.to(cd))
    else:  # integer steps: B = cumB[i], abar_i = e^-B
        n = schedule.nsteps
        if not n:
            raise ValueError(f"integer t needs a discrete schedule (steps 0..N), "
                             f"not {schedule.spec!r}; pass times in [0, 1]")
        if not bool(((t >= 0) & (t <= n)).all()):
            raise ValueError(f"t must lie in 0..{n}; got "
                             f"{t[~((t >= 0) & (t <= n))].reshape(-1)[:5].tolist()}")
        b = tab[2][t.long()]
    return torch.exp(-0.5 * b).reshape(shape), torch.sqrt(-torch.expm1(-b)).reshape(shape)


def add_noise(x0, delta, t, schedule):
    """q_sample (MATH.md eq. 1): x_t = sqrt(abar(t)) x0 + sqrt(1 - abar(t)) delta, with delta
    ~ N(0, C) from noise_like. t: times in [0, 1] (a float tensor [B] or a scalar; the
    continuous view, = abar_i at t = i/N of a discrete schedule) or integer steps 0..N of a
    discrete schedule (abar_i, abar_0 = 1), as sample_t draws them. schedule: a
    corrsde.Schedule or its spec. The coefficients are computed in float64 (sqrt(abar) as
    e^{-B/2}, sqrt(1 - abar) as sqrt(-expm1(-B))) and cast to x0's dtype; the result is
    differentiable in x0, delta and float t.
    On a Gaussian path (edm, ve, rf; MATH.md "Gaussian paths"): x_t = alpha(t) x0 +
    sigma(t) delta (Schedule.alpha, .sigma_path), t times in the path's span (edm: the
    noise level itself, in [smin, smax]; rf: t in [0, 1], its shift applied by the path:
    alpha = 1 - t', sigma = t')."""
    schedule = _schedule(schedule)
    if tuple(x0.shape) != tuple(delta.shape):
        raise ValueError(f"x0 has shape {tuple(x0.shape)}, delta has shape {tuple(delta.shape)}")
    a, s = _coeffs(t, schedule, x0)
    return a.to(x0.dtype) * x0 + s.to(x0.dtype) * delta


def flow_target(x0, delta, t, schedule, shifted=False):
    """The velocity u = d x_t / dt = alpha'(t) x0 + sigma'(t) delta of the path x_t = alpha x0
    + sigma delta (add_noise's), delta ~ N(0, C) from noise_like; t float times in the span
    (rf: t' = shift(t) inside alpha and sigma, so u is d x_t / dt, the velocity of the
    sampler's time t: (S / q^2) (delta - x0), q = 1 + (S - 1) t; shift 1: delta - x0).
    A network trained on it answers output="flow".
    shifted=True (rf schedules only): w = d x_t / dt' = delta - x0, the velocity in the
    shifted time t' that SD3, Wan, HunyuanVideo and LTX train on (u = (S / q^2) w); a
    network trained on it answers output="flow-shifted" (the library scales it by dt'/dt).
    At shift 1 the two are the same. Coefficients in float64, cast to x0's dtype;
    differentiable in x0, delta and t."""
    schedule = _schedule(schedule)
    if tuple(x0.shape) != tuple(delta.shape):
        raise ValueError(f"x0 has shape {tuple(x0.shape)}, delta has shape {tuple(delta.shape)}")
    if shifted:
        if schedule.path != "rf":
            raise ValueError(f"flow_target: shifted=True is the velocity in rectified flow's "
                             f"shifted time t' (output \"flow-shifted\"): it needs an rf "
                             f"schedule, not {schedule.spec!r} (the {schedule.path} path)")
        _coeffs(t, schedule, x0)  # t checked as for add_noise (the span, no integer steps)
        return delta - x0  # d/dt' of (1 - t') x0 + t' delta
    da, ds = _coeffs(t, schedule, x0, deriv=True)
    return da.to(x0.dtype) * x0 + ds.to(x0.dtype) * delta


def flow_matching_loss(v_theta, x0, delta, t, schedule, cov, metric="cinv", reduction="mean",
                       shifted=False):
    """The flow-matching loss: per sample b, L_b = sum_pixels r^T W r, r = u - v_theta along
    axis 1 of [B, tau, *frame_shape], u = flow_target(x0, delta, t, schedule) = alpha' x0 +
    sigma' delta (delta = V' z, the noise add_noise put into x_t). metric "cinv": W = C^-1
    (the eq. 3 metric, C positive definite); "plain": W = I (the usual |v_theta - u|^2). Both
    are minimised by v_theta(x_t) = E[u | x_t], the PF-ODE's drift (MATH.md, conversions):
    sample with output="flow". shifted=True (rf only): u = flow_target(..., shifted=True) =
    delta - x0 (SD3/Wan's target, d x / d t'): sample with output="flow-shifted".
    reduction as eq3_loss ("mean": sum_b L_b / (B tau D); "sum"; "batchmean"; "none": [B])."""
    if tuple(v_theta.shape) != tuple(x0.shape):
        raise ValueError(f"v_theta has shape {tuple(v_theta.shape)}, x0 has shape "
                         f"{tuple(x0.shape)}")
    if metric not in ("cinv", "plain"):
        raise ValueError(f'metric must be "cinv" or "plain", not {metric!r}')
    u = flow_target(x0, delta, t, schedule, shifted=shifted)
    return _reduce(u - v_theta, cov, metric == "cinv", reduction, "v_theta")


def _reduce(diff, cov, cinv, reduction, name):
    """sum_pixels r^T W r per sample (W = C^-1 or I), reduced as eq3_loss says."""
    if reduction not in ("mean", "sum", "batchmean", "none"):
        raise ValueError('reduction must be "mean", "sum", "batchmean" or "none", '
                         f'not {reduction!r}')
    r = _blocks(diff, cov, name)
    if cinv:
        chol = _factor(cov, "chol", r.dtype, r.device)
        if chol is None:
            raise ValueError(f"C ({cov.spec!r}, {cov.frames} frames) is singular: "
                             'the C^-1 metric is undefined (use metric="plain")')
        q = r * torch.cholesky_solve(r, chol)  # the terms of r^T C^-1 r, [B, tau, D]
    else:
        q = r * r
    if reduction == "mean":
        return q.mean()
    if reduction == "sum":
        return q.sum()
    loss = q.sum(dim=(1, 2))
    return loss.mean() if reduction == "batchmean" else loss


TIME_SAMPLING = ("uniform", "logit-normal", "log-normal")
#: the defaults of m and s per kind (m=None, s=None): logit-normal SD3's (0, 1), log-normal
#: EDM's (P_mean, P_std) = (-1.2, 1.2)
TIME_SAMPLING_MS = {"logit-normal": (0.0, 1.0), "log-normal": (-1.2, 1.2)}
_LOGNORMAL_MIN_MASS = 0.01  # log-normal: the least mass of N(m, s^2) inside the span accepted
_LOGNORMAL_ROUNDS = 5000    # redraw rounds before giving up (mass >= 0.01: never in practice)


def sample_t(batch, schedule, *, eps=1e-3, discrete=None, generator=None, device=None,
             dtype=torch.float32, kind="uniform", m=None, s=None):
    """Training times for a batch: uniform on [eps, 1) (eps + (1 - eps) U, U = torch.rand, a
    [batch] tensor of dtype), or, for a discrete schedule (discrete=None: when the schedule
    is discrete), uniform integer steps 1..N (a long tensor), the t that add_noise and
    eq3_loss take. generator: a torch.Generator (same seed, same draw); device: the
    generator's by default, else cpu.
    kind "logit-normal" (SD3, Esser et al. 2024): t = sigmoid(m + s n), n = torch.randn
    (logit(t) ~ N(m, s^2); m, s default 0, 1; eps unused). On a path whose span is not
    [0, 1] (edm: [smin, smax]) either draw u in [0, 1] is mapped to t_min + (t_max - t_min)
    u. The t returned is the path's own time, not shifted: rf:shift=S applies t' = S t / (1
    + (S - 1) t) inside alpha and sigma (add_noise, flow_target), so the noise level is t',
    once (as SD3's shift of a logit-normal t; diffusers' SD3 scripts index a descending
    timestep table with the draw, which flips the sign of m).
    kind "log-normal" (EDM, Karras et al. 2022: ln sigma ~ N(P_mean, P_std^2); m, s
    default P_mean = -1.2, P_std = 1.2; eps unused), on any continuous schedule through its
    VE noise level sigma_ve = sigma / alpha = exp(-lambda(t)): sigma_ve = exp(m + s n), n =
    torch.randn (drawn in float64), and t = schedule.t_of_lambda(-ln sigma_ve) (edm: t =
    sigma_ve; ve: sigma_ve = smin e^{t L}; VP: sigma_ve = sqrt((1 - abar) / abar); rf: t' /
    (1 - t')). Truncated, not clamped: a draw whose t (in dtype) falls outside the open
    span (t_min, t_max) is redrawn (fresh n from the same generator, for those entries
    only), so ln sigma_ve follows N(m, s^2) conditioned on the span's range [-lambda(t_min),
    -lambda(t_max)] and no t sits on an end (edm's [0.002, 80] cuts 1.5e-5 and 1.7e-6 of
    EDM's law's mass; VP and rf cut less or nothing). m, s whose normal puts under 1% of
    its mass inside that range are refused. Not for discrete schedules (refused)."""
    schedule = _schedule(schedule)
    if isinstance(batch, bool) or int(batch) != batch or batch < 1:
        raise ValueError(f"batch must be a positive integer, not {batch!r}")
    if kind not in TIME_SAMPLING:
        raise ValueError(f"kind must be one of {TIME_SAMPLING}, not {kind!r}")
    if kind in TIME_SAMPLING_MS:
        m = TIME_SAMPLING_MS[kind][0] if m is None else m
        s = TIME_SAMPLING_MS[kind][1] if s is None else s
        if not (math.isfinite(m) and math.isfinite(s) and s > 0):
            raise ValueError(f"{kind}: m must be finite and s > 0, not m={m!r}, s={s!r}")
    if kind == "log-normal" and (schedule.nsteps > 0 or discrete):
        raise ValueError(f'kind="log-normal" draws a continuous noise level: it needs a '
                         f'continuous schedule, not {schedule.spec!r}'
                         + (" (discrete=True)" if discrete and not schedule.nsteps else ""))
    if discrete is None:
        discrete = schedule.nsteps > 0
    if device is None:
        device = generator.device if generator is not None else "cpu"
    if discrete:
        if not schedule.nsteps:
            raise ValueError(f"discrete=True needs a discrete schedule, not {schedule.spec!r}")
        return torch.randint(1, schedule.nsteps + 1, (int(batch),), generator=generator,
                             device=device)
    lo, hi = schedule.span()
    if kind == "log-normal":
        return _sample_log_normal(int(batch), schedule, lo, hi, m, s, generator, device,
                                  dtype)
    if kind == "logit-normal":
        n = torch.randn((int(batch),), generator=generator, dtype=dtype, device=device)
        u = torch.sigmoid(m + s * n)
    else:
        if not 0 <= eps < 1:
            raise ValueError(f"eps must lie in [0, 1), not {eps!r}")
        u = torch.rand((int(batch),), generator=generator, dtype=dtype, device=device)
        u = eps + (1 - eps) * u
    return u if (lo, hi) == (0.0, 1.0) else lo + (hi - lo) * u


def _sample_log_normal(batch, schedule, lo, hi, m, s, generator, device, dtype):
    """ln sigma_ve ~ N(m, s^2) truncated to the span; t = t_of_lambda(-ln sigma_ve)."""
    a, b = -float(schedule.lambda_(lo)), -float(schedule.lambda_(hi))  # ln sigma_ve's range
    phi = lambda z: 0.5 * math.erfc(-z / math.sqrt(2))  # noqa: E731  the normal cdf
    mass = phi((b - m) / s) - phi((a - m) / s)  # inf - finite: the cdf is 1 or 0 there
    if not mass >= _LOGNORMAL_MIN_MASS:
        raise ValueError(f"log-normal: N(m={m!r}, s={s!r}^2) puts {mass:.3g} of its mass on "
                         f"the span of {schedule.spec!r} (ln sigma in [{a:.4g}, {b:.4g}]); "
                         f"it needs at least {_LOGNORMAL_MIN_MASS:g}: choose m inside")
    out = torch.empty((batch,), dtype=dtype)
    todo = torch.arange(batch)
    for _ in range(_LOGNORMAL_ROUNDS):
        n = torch.randn((len(todo),), generator=generator, dtype=torch.float64,
                        device=device).cpu()
        t64 = schedule.t_of_lambda(-(m + s * n))  # lambda = -ln sigma_ve (clamped to span)
        t = t64.to(dtype)
        ok = (t64 > lo) & (t64 < hi) & (t.double() > lo) & (t.double() < hi)
        out[todo[ok]] = t[ok]
        todo = todo[~ok]
        if not len(todo):
            return out.to(device)
    raise ValueError(f"log-normal: {len(todo)} draws still outside the span of "
                     f"{schedule.spec!r} after {_LOGNORMAL_ROUNDS} rounds (m={m!r}, s={s!r})")


# The diffusers-style scheduler over reverse communication (scheduler.py).
from .scheduler import Scheduler, SchedulerOutput  # noqa: E402

__all__ += ["Scheduler", "SchedulerOutput"]
