"""A diffusers-style scheduler over reverse communication (corrsde.rci): the caller's loop
calls the network, corrsde's solver takes the step. Re-exported as corrsde.torch.Scheduler.

    sched = corrsde.torch.Scheduler(cov, "vp-linear", solver="dpmpp2m", process="pf-ode",
                                    output="noise")
    sched.set_timesteps(25)
    x = corrsde.torch.noise_like(torch.empty(B, tau, C, H, W, device="cuda"), cov)
    x = x * sched.init_noise_sigma
    for t in sched.timesteps:
        eps = unet(sched.scale_model_input(x, t), t)
        x = sched.step(eps, t, x).prev_sample

One step() per model evaluation: step(model_output, timestep, sample) answers the pending
evaluation (the model at `sample`, the state step() returned last) and runs the solver to
its next evaluation, whose state it returns as prev_sample (the final state after the last
one). For the one-evaluation-a-step samplers (ddim, dpmpp2m, dpmpp3m, unipc, ipndm, euler,
euler-ancestral, dpmpp2m-sde, ddpm) that is one step() per step, and prev_sample is the
state after it; a multi-evaluation solver takes several (heun: two per step, at t_n and
t_{n+1}, so its timesteps repeat like diffusers' HeunDiscreteScheduler's; rk45 six), and
prev_sample is then the state of its next stage. Every fixed-step solver works so, and the
loop gives what corrsde.solve() gives with the same settings and model (to rounding of the
answers' float64 conversion; bit for bit in float64). Adaptive steps (rtol) have no
timesteps in advance: use corrsde.rci.Run.
"""
import math
import numbers

import numpy as np
import torch

from . import Cov, OUTPUTS, Schedule
from . import rci

__all__ = ["Scheduler", "SchedulerOutput"]


class SchedulerOutput:
    """What step() returns: prev_sample (the state to evaluate the model at next, or the
    final one) and pred_original_sample (the x0 prediction of the answer just given), both
    on the sample's device and dtype. Also a tuple (prev_sample, pred_original_sample)."""

    __slots__ = ("prev_sample", "pred_original_sample")

    def __init__(self, prev_sample, pred_original_sample):
        self.prev_sample, self.pred_original_sample = prev_sample, pred_original_sample

    def __iter__(self):
        return iter((self.prev_sample, self.pred_original_sample))

    def __getitem__(self, i):
        return (self.prev_sample, self.pred_original_sample)[i]


class Scheduler:
    """A diffusers-style scheduler running a corrsde solver or sampler.

    cov (corrsde.Cov), schedule (a corrsde.Schedule or spec), solver, process, grid, seed,
    eta, t_start/t_end, threads: as corrsde.solve() (process "pf-ode" by default; "ddim",
    "ddpm" and "reverse-sde" with its ancestral/SDE samplers too). output: what the network
    returns ("noise" = diffusers' epsilon, "v", "x0", "score", "cscore").
    set_timesteps(n, device=None): n steps (ddpm: its schedule's N; n is then ignored).
    timesteps: one entry per step() call: for a discrete schedule whose evaluation times
    are all nodes i/N, diffusers' 0-based timesteps i - 1 (long; alphas_cumprod[i - 1] =
    corrsde's abar_step(i)), else the times t (float64). times: the times t, always.
    init_noise_sigma: 1 (a VP prior N(0, C): draw it with corrsde.torch.noise_like, not
    torch.randn). scale_model_input(sample, timestep): sample (VP: no scaling).
    step(model_output, timestep, sample, return_dict=True) -> SchedulerOutput (or the
    tuple): the batch and frame shape are taken from the first sample; the solver's state
    and history stay float64 on the host, and the tensors returned are on the sample's
    device and dtype. Refused with ValueError: a timestep that is not the pending one, a
    sample whose shape changed or that is not the prev_sample returned last (the state is
    the scheduler's: a changed sample would not be seen), a model_output of another shape;
    RuntimeError: step() after the last evaluation, or before set_timesteps.
    add_noise(original_samples, noise, timesteps): sqrt(abar) x0 + sqrt(1 - abar) noise at
    the scheduler's timesteps (discrete: abar of diffusers' step k is abar_step(k + 1)); the
    noise must already be N(0, C) (corrsde.torch.noise_like), as every corrsde noise is.
    """

    def __init__(self, cov, schedule="vp-linear", *, solver=None, process="pf-ode",
                 output="noise", grid="uniform", seed=0, eta=None, t_start=None, t_end=None,
                 threads=1):
        if not isinstance(cov, Cov):
            raise TypeError("cov: expected a corrsde.Cov, got %s" % type(cov).__name__)
        if output not in OUTPUTS:
            raise ValueError("output: expected one of %s, got %r" % (", ".join(OUTPUTS), output))
        self.cov, self.output = cov, output
        self.schedule = schedule if isinstance(schedule, Schedule) else Schedule(schedule)
        self._kw = dict(solver=solver, process=process, grid=grid, seed=seed, eta=eta,
                        t_start=t_start, t_end=t_end, threads=threads)
        self.init_noise_sigma = 1.0
        self.order = 1
        self.num_inference_steps = None
        self.timesteps = None
        self.times = None
        self._run = None
        self._k = 0

    def _settings(self, steps):
        return dict(self._kw, steps=steps, schedule=self.schedule, output=self.output,
                    cov=self.cov)

    def set_timesteps(self, num_inference_steps, device=None):
        """Plan num_inference_steps steps: the evaluation times come from a dry run of the
        solver on a one-value state (the times of a fixed grid do not depend on the
        state)."""
        n = num_inference_steps
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
            raise ValueError("num_inference_steps: expected a positive integer, got %r" % (n,))
        self._close()
        kw = self._settings(int(n))
        dry = rci.Run(np.zeros((1, self.cov.frames, 1)), **kw)
        ts, steps = [], 0
        try:
            while True:
                q = dry.next()
                if q.what == "eval":
                    ts.append(q.t)
                    dry.give(np.zeros_like(q.x))
                elif q.what == "step":
                    steps += 1
                else:
                    break
        finally:
            dry.end()
        self.times = np.array(ts, dtype=np.float64)
        self.num_inference_steps = steps
        self.order = max(1, round(len(ts) / max(steps, 1)))
        N = self.schedule.nsteps
        idx = np.rint(self.times * N) if N else None
        if N and len(ts) and np.all(np.abs(self.times * N - idx) <= 1e-6) and np.all(idx >= 1):
            self.timesteps = torch.as_tensor(idx.astype(np.int64) - 1, device=device)
            self._discrete = True
        else:
            self.timesteps = torch.as_tensor(self.times, dtype=torch.float64, device=device)
            self._discrete = False
        self._n = int(n)
        self._k = 0
        self._last = None
        self._shape = None

    def scale_model_input(self, sample, timestep=None):
        """VP: the network takes x_t as it is."""
        return sample

    def _close(self):
        if self._run is not None:
            self._run.end()
            self._run = None

    def _check_timestep(self, timestep):
        if self._k >= len(self.times):
            raise RuntimeError("step() after the end: the %d evaluations of the %d steps are "
                               "done; call set_timesteps() to start again"
                               % (len(self.times), self.num_inference_steps))
        v = timestep.item() if torch.is_tensor(timestep) else timestep
        want = self.timesteps[self._k].item()
        ok = v == want if self._discrete else abs(float(v) - want) <= 1e-6 * max(1.0, abs(want))
        if not ok:
            raise ValueError("timestep: %r is not the pending one, %r (evaluation %d of %d, "
                             "t = %r)" % (v, want, self._k, len(self.times), self.times[self._k]))

    def _x0(self, q, ans):
        """The x0 prediction of the answer at the request's state (problem.h, Tweedie):
        x0 = (x + (1 - abar) C grad log p) / alpha; a noise answer (x - sqrt(1 - abar)
        delta) / alpha, x0 itself, v: alpha x - sqrt(1 - abar) v. alpha = sqrt(abar);
        sqrt(1 - abar) = alpha sigma with the VE sigma of the request."""
        alpha, sv = math.sqrt(q.abar), q.sigma
        x = q.x
        if self.output == "x0":
            return ans
        if self.output == "noise":
            return x / alpha - sv * ans
        if self.output == "v":
            return alpha * x - alpha * sv * ans
        s = self.cov.apply(ans) if self.output == "score" else ans
        return x / alpha + sv * sv * alpha * s

    def step(self, model_output, timestep, sample, return_dict=True):
        if self.times is None:
            raise RuntimeError("step() before set_timesteps()")
        self._check_timestep(timestep)
        shape = tuple(sample.shape)
        if self._shape is not None and shape != self._shape:
            raise ValueError("sample: shape %s, but the run's states are %s (the batch and "
                             "frame shape of the first sample)" % (shape, self._shape))
        if tuple(model_output.shape) != shape:
            raise ValueError("model_output: shape %s, expected the sample's %s"
                             % (tuple(model_output.shape), shape))
        if self._run is None:  # the first step: the run starts from this sample
            x = sample.detach().to("cpu", torch.float64).numpy()
            self._run = rci.Run(x, **self._settings(self._n))
            self._shape = shape
            self._q = self._run.next()
            if self._q.what != "eval" or not np.array_equal(self._q.x, x):
                self._close()
                raise ValueError("solver %r evaluates its first step at a state other than "
                                 "the start (e.g. edm-heun's churn): use corrsde.rci.Run"
                                 % (self._kw["solver"],))
        elif sample is not self._last and not torch.equal(sample, self._last):
            raise ValueError("sample: not the prev_sample that step() returned last (the "
                             "state is the scheduler's, float64 on the host; a changed sample "
                             "would not be seen)")
        q = self._q
        ans = np.ascontiguousarray(model_output.detach().to("cpu", torch.float64).numpy())
        x0 = self._x0(q, ans)
        self._run.give(ans)
        while True:
            nq = self._run.next()
            if nq.what != "step":
                break
        self._k += 1
        if nq.what == "done":
            self._run.end()
            self._run = None
        else:
            self._q = nq
        prev = torch.from_numpy(nq.x).to(device=sample.device, dtype=sample.dtype)
        pred = torch.from_numpy(np.ascontiguousarray(x0)).to(device=sample.device,
                                                             dtype=sample.dtype)
        self._last = prev
        out = SchedulerOutput(prev, pred)
        return out if return_dict else (prev, pred)

    def add_noise(self, original_samples, noise, timesteps):
        from .torch import add_noise
        if timesteps is None:
            raise ValueError("timesteps: expected the scheduler's timesteps")
        t = torch.as_tensor(timesteps, device=original_samples.device)
        if self._discrete_schedule_steps(t):
            t = t.long() + 1  # diffusers' step k is corrsde's abar_step(k + 1)
        return add_noise(original_samples, noise, t, self.schedule)

    def _discrete_schedule_steps(self, t):
        return self.schedule.nsteps > 0 and not torch.is_floating_point(t)
