"""PyTorch helpers for corrsde: a network as a solve() model, correlated noise, the eq. 3 loss.

Importing this module needs torch; ``import corrsde`` does not import it.
"""
import collections
import warnings

import numpy as np
import torch

__all__ = ["TorchModel", "noise_like", "eq3_loss"]

OUTPUTS = ("score", "cscore", "noise", "x0", "v")
TIMES = ("t", "sigma", "index")

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


class TorchModel:
    """A torch module as a corrsde.solve model: model(t, x, ctx) = module(x, time) as float64 numpy.

    time is ctx.t ("t"), ctx.sigma ("sigma", the VE sigma) or ctx.index ("index", a long tensor),
    repeated to shape [B]. The call runs under torch.no_grad() and does not change the module's
    mode: call module.eval() yourself. For float64 on the CPU the input tensor shares memory with
    the solver's read-only state, so the module must not modify its input in place (that raises).
    ``output`` is the kind of answer ("score", "cscore", "noise", "x0", "v") solve() reads.
    ``max_batch`` (default: no limit) calls the module on slices of at most that many samples
    (for a batch that does not fit on the device at once) and joins the answers.
    """

    def __init__(self, module, output="noise", dtype=torch.float32, device="cpu", time="t",
                 max_batch=None):
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}, not {output!r}")
        if time not in TIMES:
            raise ValueError(f"time must be one of {TIMES}, not {time!r}")
        if max_batch is not None and (isinstance(max_batch, bool) or int(max_batch) != max_batch
                                      or max_batch < 1):
            raise ValueError(f"max_batch must be a positive integer or None, not {max_batch!r}")
        self.module, self.output, self.time = module, output, time
        self.dtype, self.device = dtype, torch.device(device)
        self.max_batch = None if max_batch is None else int(max_batch)

    def _time(self, t, ctx, batch):
        if self.time == "index":
            if ctx.index is None:
                raise ValueError('time="index" needs a discrete schedule (ctx.index is None '
                                 f'for schedule {getattr(ctx.schedule, "spec", ctx.schedule)!r})')
            return torch.full((batch,), int(ctx.index), dtype=torch.long, device=self.device)
        value = float(t if self.time == "t" else ctx.sigma)
        return torch.full((batch,), value, dtype=self.dtype, device=self.device)

    def __call__(self, t, x, ctx):
        x = np.asarray(x)
        if any(s < 0 for s in x.strides):
            x = np.ascontiguousarray(x)
        with warnings.catch_warnings():  # read-only x: shared only when no conversion is needed
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            base = torch.from_numpy(x)
        xt = base.to(device=self.device, dtype=self.dtype)
        shared, version = xt.data_ptr() == base.data_ptr(), xt._version
        time = self._time(t, ctx, x.shape[0])
        with torch.no_grad():
            if self.max_batch is None or x.shape[0] <= self.max_batch:
                out = torch.as_tensor(self.module(xt, time))
            else:  # slices of at most max_batch samples
                out = torch.cat([torch.as_tensor(self.module(xs, ts)) for xs, ts in
                                 zip(xt.split(self.max_batch), time.split(self.max_batch))])
        if shared and xt._version != version:
            raise RuntimeError("the module modified its input in place; the input shares memory "
                               "with the solver state (float64 on the CPU)")
        if tuple(out.shape) != x.shape:
            raise ValueError(f"module output has shape {tuple(out.shape)}, "
                             f"but x has shape {x.shape}")
        y = np.ascontiguousarray(out.detach().to(device="cpu", dtype=torch.float64).numpy())
        return y.copy() if np.may_share_memory(y, x) else y


def noise_like(x, cov, generator=None):
    """eps = V' z, z = torch.randn_like(x): N(0, C) along axis 1 of x [B, tau, *frame_shape],
    independent across pixels; V' the Cholesky factor of C (or V sqrt(S) if C is singular)."""
    f = _factor(cov, "sqrt", x.dtype, x.device)
    _blocks(x, cov)
    z = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    return torch.matmul(f, _blocks(z, cov)).reshape(x.shape)


def eq3_loss(delta_pred, delta, cov, t=None, schedule=None, weight="eq3", reduction="mean"):
    """L_b = w_b * sum_pixels (delta - delta_pred)^T C^-1 (delta - delta_pred), along axis 1.

    weight "none": w = 1. weight "eq3" (discrete schedule, integer t in 1..N):
    w = beta_t / (2 alpha_t (1 - abar_{t-1})), alpha_t = 1 - beta_t, and w = 0 at t = 1;
    (continuous schedule, times t in (0, 1]) its limit per unit time as N grows with
    beta_i = beta(i/N) / N: w(t) = beta(t) / (2 (1 - abar(t))), so that E over t uniform
    of w(t) times the C^-1 norm is the continuous ELBO up to a constant.
    reduction: "mean" or "sum" over the batch, or "none" (the [B] tensor).
    """
    if tuple(delta_pred.shape) != tuple(delta.shape):
        raise ValueError(f"delta_pred has shape {tuple(delta_pred.shape)}, "
                         f"delta has shape {tuple(delta.shape)}")
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f'reduction must be "mean", "sum" or "none", not {reduction!r}')
    r = _blocks(delta - delta_pred, cov, "delta")
    chol = _factor(cov, "chol", r.dtype, r.device)
    if chol is None:
        raise ValueError(f"C ({cov.spec!r}, {cov.frames} frames) is singular: "
                         "the C^-1 norm of eq. 3 is undefined")
    loss = (r * torch.cholesky_solve(r, chol)).sum(dim=(1, 2))
    if weight == "eq3":
        loss = loss * _eq3_weight(t, schedule, r.shape[0], r.dtype, r.device)
    elif weight != "none":
        raise ValueError(f'weight must be "eq3" or "none", not {weight!r}')
    return loss.mean() if reduction == "mean" else loss.sum() if reduction == "sum" else loss


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
        if not np.all((tt > 0) & (tt <= 1)):
            raise ValueError(f"t must lie in (0, 1] for a continuous schedule; got "
                             f"{tt[~((tt > 0) & (tt <= 1))][:5].tolist()}")
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
