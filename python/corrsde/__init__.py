"""corrsde: diffusion models whose noise is correlated across video frames.

The Python front end of the corrsde C library. Arrays are numpy float64, C-contiguous,
shaped ``[B, tau, *frame_shape]`` (batch, frames, pixels); anything else (lists, other
dtypes, CPU torch tensors) is converted once. Noise is N(0, C) along the frame axis of
every pixel.

    import numpy as np, corrsde
    C = corrsde.Cov("ar1:rho=0.9", frames=8)
    S = corrsde.Schedule("vp-linear")
    def model(t, x, ctx):              # the exact C grad log p_t of N(0, C) data
        return -x
    r = corrsde.solve(model, cov=C, process="pf-ode", solver="heun", steps=50,
                      x=C.sample(4, (16, 16), seed=1))

Importing corrsde changes nothing process-wide (no BLAS thread counts, no error
handlers).
"""
import math
import numbers

import numpy as np

from . import _corrsde
from ._corrsde import Error

__all__ = ["Cov", "Schedule", "Context", "Result", "Model", "solve", "Convergence", "converge",
           "Error", "OUTPUTS", "PROCESSES", "COV_FAMILIES", "COV_METHODS", "SCHEDULES", "solvers",
           "elbo", "__version__"]
__version__ = _corrsde.version

#: what a model's answer is (corrsde/model.h), in the library's order
OUTPUTS = _corrsde.registry("output")
#: the processes and samplers solve() runs, the covariance families and methods, the schedule
#: forms: the library's registries (corrsde cov/sample --help list them)
PROCESSES = _corrsde.registry("process")
COV_FAMILIES = _corrsde.registry("cov")
COV_METHODS = _corrsde.registry("cov-method")
SCHEDULES = _corrsde.registry("schedule")


def solvers():
    """The solver registry (as `corrsde sample --help` lists it): a dict name -> dict with
    alias, summary, processes (those it fits) and options ("churn=S,..." or None), in the
    registry's order."""
    return {n: {"alias": a, "summary": s, "processes": p, "options": o}
            for n, a, s, p, o in _corrsde.solvers()}


def _states(x, what, frames=None):
    """x as float64 C-contiguous [B, tau, *frame_shape] (one conversion when needed)."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # a torch tensor
        x = x.detach().cpu().numpy()
    a = np.ascontiguousarray(x, dtype=np.float64)
    if a.ndim < 2:
        raise ValueError("%s: expected an array [B, frames, *frame_shape], got shape %s"
                         % (what, a.shape))
    if frames is not None and a.shape[1] != frames:
        raise ValueError("%s: axis 1 has %d entries, expected %d (the frames)"
                         % (what, a.shape[1], frames))
    return a


class Cov:
    """The frame covariance C (tau x tau) as an operator: dense factors for short clips,
    FFT circulant and embedding methods for long ones (corrsde/cov.h).

    spec: a family of corrsde.COV_FAMILIES with its parameters (ar1:rho=R, mixed:r=R,
    powerexp:ell=L,p=P, ...: `corrsde cov --help` gives each form); method: one of
    corrsde.COV_METHODS.
    """

    def __init__(self, spec, frames, method="auto"):
        if not isinstance(frames, numbers.Integral) or isinstance(frames, bool):
            raise TypeError("frames: expected an integer, got %r" % (frames,))
        self._h = _corrsde.cov_new(str(spec), int(frames), str(method))
        self.method_asked = str(method)
        self._info()

    def _info(self):
        self.spec, self.method, self.noise_dim, singular, self.frames = _corrsde.cov_info(self._h)
        self.singular = bool(singular)

    @classmethod
    def _lent(cls, handle):
        """A Cov over a handle that a run lends (`--model python:`'s ctx.cov): usable
        during the run; once it ended, every operation raises ValueError."""
        self = cls.__new__(cls)
        self._h = handle
        self._info()
        self.method_asked = self.method
        return self

    def __repr__(self):
        return "corrsde.Cov(%r, frames=%d, method=%r)" % (self.spec, self.frames, self.method)

    @property
    def matrix(self):
        """The tau x tau matrix applied (a circulant method's circulant)."""
        return _corrsde.cov_matrix(self._h)

    @property
    def eigenvalues(self):
        """Eigenvalues of C, ascending."""
        return _corrsde.cov_eigenvalues(self._h)

    @property
    def logdet(self):
        """log det C (-inf when singular)."""
        return _corrsde.cov_logdet(self._h)

    def _op(self, op, x, what, rows):
        a = _states(x, what, rows)
        y = _corrsde.cov_apply(self._h, op, a)
        return _like(y, x)

    def apply(self, x):
        """C x along the frame axis (axis 1)."""
        return self._op(0, x, "apply(x)", self.frames)

    def solve(self, x):
        """C^-1 x along the frame axis."""
        return self._op(2, x, "solve(x)", self.frames)

    def sqrt(self, z):
        """V' z: white noise z ([B, noise_dim, *frame_shape]) made N(0, C)."""
        return self._op(1, z, "sqrt(z)", self.noise_dim)

    def mahalanobis(self, x):
        """Per sample: the sum over pixels of x^T C^-1 x along the frame axis ([B])."""
        return _corrsde.cov_mahalanobis(self._h, _states(x, "mahalanobis(x)", self.frames))

    def sample(self, batch, frame_shape=(), seed=0):
        """batch draws of N(0, C (x) I), [batch, tau, *frame_shape]: the prior draw of
        `corrsde sample --seed SEED`, bit for bit."""
        shape = (int(batch), self.frames) + _shape(frame_shape)
        return _corrsde.cov_sample(self._h, shape, _seed(seed))


def _seed(seed):
    """A seed: an integer in [0, 2^64), as the program's --seed."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed < 2**64:
        raise ValueError("seed: expected an integer in [0, 2^64), got %r" % (seed,))
    return int(seed)


def _shape(frame_shape):
    if isinstance(frame_shape, numbers.Integral):
        return (int(frame_shape),)
    return tuple(int(d) for d in frame_shape)


def _is_tensor(x):
    return hasattr(x, "detach") and hasattr(x, "device")


def _like(y, x):
    """y as a torch tensor when x was one (same dtype and device), else y."""
    if hasattr(x, "detach") and hasattr(x, "device"):
        import torch
        return torch.from_numpy(y).to(dtype=x.dtype, device=x.device)
    return y


class Schedule:
    """A noise schedule (corrsde/schedule.h): vp-linear[:bmin,bmax], cosine[:s],
    ddpm-linear[:n,b1,bN], discrete:betas=... (variance-preserving: abar(t) =
    exp(-int_0^t beta)) and the Gaussian paths edm[:smin,smax], ve[:smin,smax], rf[:shift]
    (x_t = alpha x0 + sigma V' z: alpha, sigma_path, ... below; their beta, abar, sigma,
    logsnr are the VP view of the same SNR, docs/MATH.md "Gaussian paths").
    The methods take a float, an array or a torch tensor; a tensor gives a tensor of its
    dtype and device, differentiable in t (corrsde.torch computes it)."""

    def __init__(self, spec="vp-linear"):
        self._h = _corrsde.sched_new(str(spec))
        self.spec, self.nsteps = _corrsde.sched_info(self._h)

    @classmethod
    def _lent(cls, handle):
        """A Schedule over a handle that a run lends (see Cov._lent)."""
        self = cls.__new__(cls)
        self._h = handle
        self.spec, self.nsteps = _corrsde.sched_info(handle)
        return self

    def __repr__(self):
        return "corrsde.Schedule(%r)" % self.spec

    def _eval(self, what, t):
        if _is_tensor(t):  # a torch tensor: corrsde.torch's formulas, same dtype and device
            from . import torch as _ct
            return _ct._schedule_eval(self, what, t)
        a = np.ascontiguousarray(t, dtype=np.float64)
        y = _corrsde.sched_eval(self._h, what, a)
        return float(y) if np.ndim(t) == 0 else y

    def beta(self, t):
        """beta(t)."""
        return self._eval(0, t)

    def abar(self, t):
        """abar(t) = exp(-B(t))."""
        return self._eval(1, t)

    def sigma(self, t):
        """The VE sigma sqrt((1 - abar) / abar) that k-diffusion networks take."""
        return self._eval(2, t)

    def logsnr(self, t):
        """log(abar / (1 - abar))."""
        return self._eval(3, t)

    def int_beta(self, t):
        """B(t) = int_0^t beta = -log abar(t)."""
        return self._eval(4, t)

    def sigma_to_t(self, sigma):
        """The t with sigma(t) = sigma, the VE sigma_ve = sqrt((1 - abar) / abar) of
        k-diffusion: B(t) = log(1 + sigma^2) inverted by bisection on the library's B(t)
        (monotone), to the last bit of t. sigma must lie in [0, sigma(1)]. A tensor gives a
        tensor of its dtype and device (computed in float64 numpy: not differentiable)."""
        like = sigma
        if _is_tensor(sigma):
            sigma = sigma.detach().cpu().double().numpy()
        s = np.asarray(sigma, dtype=np.float64)
        top = self.sigma(1.0)
        bad = ~((s >= 0) & (s <= top * (1 + 1e-12)))
        if np.any(bad):
            raise ValueError("sigma: expected values in [0, sigma(1) = %r] of %s, got %r"
                             % (top, self.spec, s[bad].ravel()[:5].tolist()))
        top_t = s >= top  # sigma(1), or above it by rounding (1e-12): t = 1
        b = np.where(top_t, 0.0, np.log1p(s * s))  # B(t) = log(1 + sigma^2)
        lo, hi = np.zeros_like(b), np.ones_like(b)
        for _ in range(1100):  # B(lo) <= b <= B(hi); halves until lo, hi are adjacent doubles
            mid = 0.5 * (lo + hi)
            if not np.any((mid > lo) & (mid < hi)):
                break
            up = self._eval(4, mid) < b
            lo, hi = np.where(up, mid, lo), np.where(up, hi, mid)
        t = np.where(np.abs(self._eval(4, lo) - b) <= np.abs(self._eval(4, hi) - b), lo, hi)
        t = np.where(s == 0, 0.0, np.where(top_t, 1.0, t))
        if _is_tensor(like):
            return _like(np.ascontiguousarray(t), like)
        return float(t) if np.ndim(sigma) == 0 else t

    def _discrete(self, what):
        if not self.nsteps:
            raise ValueError("%s: the schedule %r is continuous (no timestep index)"
                             % (what, self.spec))

    def index(self, t):
        """Discrete schedules: the step i with t = i / N."""
        self._discrete("index")
        if _is_tensor(t):
            from . import torch as _ct
            return _ct._schedule_index(self, t)
        i = np.rint(np.asarray(t, dtype=np.float64) * self.nsteps).astype(np.int64)
        return int(i) if np.ndim(t) == 0 else i

    def beta_step(self, i):
        """Discrete schedules: beta_i, i in 1..N."""
        self._discrete("beta_step")
        return self._eval(5, i)

    def abar_step(self, i):
        """Discrete schedules: abar_i = prod_{s<=i} (1 - beta_s), abar_0 = 1."""
        self._discrete("abar_step")
        return self._eval(6, i)

    # the Gaussian path x_t = alpha(t) x0 + sigma_path(t) V' z (csde_schedule_path_*; t is
    # clamped to span())
    def alpha(self, t):
        """The path's alpha(t) (VP: sqrt(abar) = e^{-B/2}; rf: 1 - t')."""
        return self._eval(7, t)

    def sigma_path(self, t):
        """The path's sigma(t) (VP: sqrt(1 - abar); edm: t; rf: t'). Not sigma(t), the VE
        sigma sigma_path / alpha."""
        return self._eval(8, t)

    def dalpha(self, t):
        """d alpha / dt."""
        return self._eval(9, t)

    def dsigma(self, t):
        """d sigma_path / dt."""
        return self._eval(10, t)

    def f(self, t):
        """The forward SDE's drift coefficient f = alpha' / alpha."""
        return self._eval(11, t)

    def g2(self, t):
        """The forward SDE's g^2 = (sigma^2)' - 2 f sigma^2."""
        return self._eval(12, t)

    def lambda_(self, t):
        """lambda = log(alpha / sigma_path) = logsnr / 2 (decreasing in t)."""
        return self._eval(13, t)

    def t_of_lambda(self, lam):
        """The t of a lambda: the exact inverse, clamped to span(). A tensor gives a tensor
        of its dtype and device (the library's value: not differentiable)."""
        if _is_tensor(lam):
            y = _corrsde.sched_eval(self._h, 14, np.ascontiguousarray(
                lam.detach().cpu().double().numpy()))
            return _like(np.ascontiguousarray(y), lam)
        return self._eval(14, lam)

    @property
    def path(self):
        """The path's family: "vp", "edm", "ve" or "rf"."""
        return _corrsde.sched_path(self._h)[0]

    def span(self):
        """(t_min, t_max): VP, ve, rf (0, 1); edm (smin, smax)."""
        return _corrsde.sched_path(self._h)[1:3]

    def prior_scale(self):
        """p: the reverse processes start from N(0, p^2 C) (VP, rf 1; edm, ve smax)."""
        return _corrsde.sched_path(self._h)[3]


# ---- conditioning: nested structures of arrays/tensors whose leading axis is the batch ----

def _cond_path(path):
    return "".join("[%r]" % (k,) for k in path)


def _cond_leaves(s, what, path=()):
    """(path, leaf) for every leaf of the nested dict/list/tuple s, in order."""
    if isinstance(s, dict):
        for k, v in s.items():
            yield from _cond_leaves(v, what, path + (k,))
    elif isinstance(s, (list, tuple)):
        for i, v in enumerate(s):
            yield from _cond_leaves(v, what, path + (i,))
    else:
        yield path, s


def _cond_check(s, batch, what):
    """s: a nested dict/list/tuple of numpy arrays or torch tensors whose leading axis
    (axis 0) is the batch or 1 (broadcast); anything else a ValueError naming the path
    in the structure and the axis. Returns s (nothing is copied)."""
    n = 0
    for path, v in _cond_leaves(s, what):
        n += 1
        where = what + _cond_path(path)
        if not isinstance(v, np.ndarray) and not _is_tensor(v):
            raise ValueError("%s: expected a numpy array or a torch tensor whose axis 0 is the "
                             "batch (%d) or 1, got %s" % (where, batch, type(v).__name__))
        shape = tuple(v.shape)
        if len(shape) == 0:
            raise ValueError("%s: a 0-d array has no axis 0; expected axis 0 of %d (the batch) "
                             "or 1 (give it shape (1,) or (%d,))" % (where, batch, batch))
        if shape[0] not in (batch, 1):
            raise ValueError("%s: axis 0 has %d entries, expected %d (the batch) or 1 "
                             "(broadcast); shape %s" % (where, shape[0], batch, shape))
    if n == 0:
        raise ValueError("%s: an empty structure (no array in it); pass None for no "
                         "conditioning" % what)
    return s


def _cond_alike(c, u):
    """uncond u must have cond c's structure: the same keys and lengths, and at every
    leaf the same kind (numpy or torch), dtype and shape past axis 0 (the guided call
    joins them along axis 0)."""
    lc = list(_cond_leaves(c, "cond"))
    lu = list(_cond_leaves(u, "uncond"))
    if [p for p, _ in lc] != [p for p, _ in lu]:
        pc, pu = set(p for p, _ in lc), set(p for p, _ in lu)
        odd = sorted(pc ^ pu, key=repr)[:3]
        where = ", ".join(("uncond" if p in pu else "cond") + _cond_path(p) + " only"
                          for p in odd) or "the order of its entries"
        raise ValueError("uncond: its structure differs from cond's (%s); guidance joins "
                         "them leaf by leaf" % where)
    for (p, a), (_, b) in zip(lc, lu):
        if _is_tensor(a) != _is_tensor(b) or a.dtype != b.dtype or \
                tuple(a.shape[1:]) != tuple(b.shape[1:]):
            def desc(v):
                return "%s %s of shape %s" % ("tensor" if _is_tensor(v) else "array", v.dtype,
                                              tuple(v.shape))
            raise ValueError("uncond%s: a %s, but cond%s is a %s; guidance joins them along "
                             "axis 0 (same kind, dtype and shape past axis 0)"
                             % (_cond_path(p), desc(b), _cond_path(p), desc(a)))


def _cond_map(s, f):
    if isinstance(s, dict):
        return {k: _cond_map(v, f) for k, v in s.items()}
    if isinstance(s, (list, tuple)):
        r = [_cond_map(v, f) for v in s]
        return r if isinstance(s, list) else type(s)(r) if type(s) is tuple else type(s)(*r)
    return f(s)


def _cond_map2(a, b, f):
    if isinstance(a, dict):
        return {k: _cond_map2(v, b[k], f) for k, v in a.items()}
    if isinstance(a, (list, tuple)):
        r = [_cond_map2(v, w, f) for v, w in zip(a, b)]
        return r if isinstance(a, list) else type(a)(r) if type(a) is tuple else type(a)(*r)
    return f(a, b)


def _cond_take(s, lo, n):
    """Rows [lo, lo + n) of every leaf (views); a leaf of one row is broadcast to n rows
    (np.broadcast_to / Tensor.expand: views too)."""
    def take(v):
        if v.shape[0] == 1:
            shape = (n,) + tuple(v.shape[1:])
            return v.expand(*shape) if _is_tensor(v) else np.broadcast_to(v, shape)
        return v[lo:lo + n]
    return _cond_map(s, take)


def _cond_join(a, b):
    """Leaf by leaf, a's rows then b's (one copy: np.concatenate / torch.cat)."""
    def join(u, v):
        if _is_tensor(u):
            import torch
            return torch.cat([u, v])
        return np.concatenate([u, v])
    return _cond_map2(a, b, join)


def _cond_call(cond, uncond, first, ncond, batch):
    """ctx.cond of a model call of `batch` samples: samples [0, ncond) are the
    conditional ones, global indices first .. first + ncond - 1 (cond's rows), samples
    [ncond, batch) the unconditional ones of a guided call, global indices first ..
    first + batch - ncond - 1 (uncond's rows); joined along axis 0 when both are there.
    Every leaf's axis 0 is then the call's batch."""
    c = _cond_take(cond, first, ncond) if ncond and cond is not None else None
    u = _cond_take(uncond, first, batch - ncond) if batch > ncond and uncond is not None \
        else None
    if c is None:
        return u
    if u is None:
        return c
    return _cond_join(c, u)


class Context:
    """What a model sees beside (t, x): sizes, the time in every parametrisation the
    common networks use, and the problem's objects. `t` and `step` (steps completed)
    are set before every call; the rest is computed from them on access.

    Conditioning (solve(cond=, uncond=), `corrsde sample --cond`): `cond` is the
    conditioning of the call's samples (None: none), the caller's structure sliced to
    them, every leaf's axis 0 the call's batch (a leaf of one row broadcast: a view);
    numpy stays numpy, torch torch. Samples [0, ncond) are conditional, [ncond, batch)
    unconditional: a guided call of 2B states has cond's B rows then uncond's B rows
    (joined along axis 0) and ncond = B; ncond == batch when not guided. `first` is
    the global index of sample 0 (and of sample ncond) of the call."""

    __slots__ = ("t", "step", "tau", "frame_shape", "batch", "cov", "schedule", "output",
                 "process", "cond", "ncond", "first")

    def __init__(self, tau, frame_shape, batch, cov, schedule, output, process, cond=None):
        self.t, self.step = math.nan, 0
        self.tau, self.frame_shape, self.batch = tau, frame_shape, batch
        self.cov, self.schedule, self.output, self.process = cov, schedule, output, process
        self.cond, self.ncond, self.first = cond, batch, 0

    @property
    def D(self):
        """Pixels per frame: the product of frame_shape."""
        return math.prod(self.frame_shape)

    @property
    def abar(self):
        return self.schedule.abar(self.t)

    @property
    def sigma(self):
        """sqrt((1 - abar) / abar)."""
        return self.schedule.sigma(self.t)

    @property
    def logsnr(self):
        return self.schedule.logsnr(self.t)

    # the path at t (model.h's csde_model_ctx.alpha, .sigma_path, .lambda, .t_shifted: the
    # same values)
    @property
    def alpha(self):
        """The path's alpha(t) (x_t = alpha x0 + sigma_path V'z; VP: sqrt(abar))."""
        return self.schedule.alpha(self.t)

    @property
    def sigma_path(self):
        """The path's sigma(t) (sigma above is the VE sigma sigma_path / alpha)."""
        return self.schedule.sigma_path(self.t)

    @property
    def lambda_(self):
        """log(alpha / sigma_path) = logsnr / 2."""
        return self.schedule.lambda_(self.t)

    @property
    def t_shifted(self):
        """rf:shift=S: t' = S t / (1 + (S - 1) t) (= sigma_path); t on other schedules."""
        return self.schedule.sigma_path(self.t) if self.schedule.path == "rf" else self.t

    @property
    def index(self):
        """The discrete timestep of t (discrete schedules), else None."""
        return self.schedule.index(self.t) if self.schedule.nsteps else None

    def __repr__(self):
        return ("corrsde.Context(t=%r, step=%d, tau=%d, frame_shape=%r, batch=%r%s)"
                % (self.t, self.step, self.tau, self.frame_shape, self.batch,
                   "" if self.cond is None else ", ncond=%r, first=%r, cond=<%s>"
                   % (self.ncond, self.first, type(self.cond).__name__)))


class Result:
    """What solve() returns: the final state x, the saved states with their times and
    steps, and the solver's counts. stopped is True when the solve ended early (a
    max_nfe guard raises instead)."""

    def __init__(self, x, t, step, states, nfe, steps, accepted, rejected, wall_seconds,
                 stopped=False, out=None):
        self.x, self.t, self.step, self.states = x, t, step, states
        self.nfe, self.steps, self.accepted, self.rejected = nfe, steps, accepted, rejected
        self.wall_seconds, self.stopped, self.out = wall_seconds, bool(stopped), out

    def __repr__(self):
        return ("corrsde.Result(x %s, %d saved, nfe %d, steps %d)"
                % (self.x.shape, len(self.t), self.nfe, self.steps))


def _save(save):
    """save -> the run's save spec: None/"final", "every:K", {"every": K},
    "times:t1,t2", {"times": [...]} (checked by the library, as for the CLI)."""
    if save is None:
        return "final"
    if isinstance(save, str):
        return save
    if not isinstance(save, dict) or len(save) != 1:
        raise ValueError("save: expected 'final', 'every:K', 'times:t1,t2,...', {'every': K} "
                         "or {'times': [...]}, got %r" % (save,))
    if "every" in save:
        k = save["every"]
        if not isinstance(k, numbers.Integral) or isinstance(k, bool):
            raise TypeError("save: every needs an integer K, got %r" % (k,))
        return "every:%d" % k
    if "times" in save:
        ts = np.asarray(save["times"], dtype=np.float64).ravel()
        if ts.size == 0:
            raise ValueError("save: times must not be empty")
        return "times:" + ",".join(repr(float(v)) for v in ts)
    raise ValueError("save: unknown kind %r (expected every or times)" % (next(iter(save)),))


def _grid(grid, schedule, t_start, t_end):
    """grid -> (the run's grid spec, t_start, t_end): a str as it is; an array of times,
    {"t": times} or {"sigma": VE sigmas} (Schedule.sigma_to_t) -> "list:" with every node
    in full precision (repr), the ends t_start/t_end defaulting to the first/last node."""
    if isinstance(grid, str):
        return grid, t_start, t_end
    what = "grid"
    if isinstance(grid, dict):
        if len(grid) != 1 or next(iter(grid)) not in ("t", "sigma"):
            raise ValueError("grid: expected a str, an array of times, {'t': times} or "
                             "{'sigma': sigmas}, got a dict with keys %r" % (sorted(grid),))
        (what, v), = grid.items()
        what, grid = "grid %s" % what, v
    if _is_tensor(grid):
        grid = grid.detach().cpu().double().numpy()
    try:
        v = np.array(grid, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError("grid: expected a str or an array of numbers, got %s"
                        % type(grid).__name__) from None
    if v.ndim != 1 or v.size < 2:
        raise ValueError("%s: expected a 1-d array of at least 2 nodes, got shape %s"
                         % (what, v.shape))
    if not np.all(np.isfinite(v)):
        raise ValueError("%s: nodes must be finite, got %r"
                         % (what, v[~np.isfinite(v)][:5].tolist()))
    d = np.diff(v)
    if not (np.all(d > 0) or np.all(d < 0)):
        k = int(np.argmax(d * np.sign(v[-1] - v[0]) <= 0))
        raise ValueError("%s: nodes must be strictly monotone, but node %d (%r) does not "
                         "follow node %d (%r)" % (what, k + 1, float(v[k + 1]), k, float(v[k])))
    if what == "grid sigma":
        top = schedule.sigma(1.0)
        bad = (v < 0) | (v > top * (1 + 1e-12))  # above sigma(1) by rounding: t = 1
        if np.any(bad):
            raise ValueError("grid sigma: sigmas must lie in [0, sigma(1) = %r] of %s, got %r"
                             % (top, schedule.spec, v[bad][:5].tolist()))
        v = schedule.sigma_to_t(v)
    elif np.any((v < 0) | (v > 1)):
        raise ValueError("grid: times must lie in [0, 1], got %r"
                         % v[(v < 0) | (v > 1)][:5].tolist())
    return ("list:" + ",".join(repr(float(u)) for u in v),
            float(v[0]) if t_start is None else t_start, float(v[-1]) if t_end is None else t_end)


def _model_output(model, output):
    """The kind of the model's answer: output, else model.output, else cscore."""
    if not callable(model):
        raise TypeError("model: expected a callable model(t, x, ctx), got %s"
                        % type(model).__name__)
    if output is None:
        output = getattr(model, "output", "cscore")
    if output not in OUTPUTS:
        raise ValueError("output: expected one of %s, got %r" % (", ".join(OUTPUTS), output))
    return output


class Model:
    """A built-in exact model (corrsde/model.h), evaluated by the library.

    spec: "gaussian[:mean=M,std=S,rho=R]" (X_0 ~ N(m, S0 (x) I_D), S0 = S^2 ar1(R)),
    "gaussian:file=P.h5" (/mean, /frame_cov) or "gmm:file=P.h5" (/weights, /means,
    /frame_covs): the forms of `corrsde sample --model`, built by the same library call
    (csde_model_spec_alloc). cov: the noise covariance C (a Cov), schedule: the path (any:
    VP, edm, ve, rf[:shift=S]), frame_shape: the pixels of a frame (() or (D,) or (H, W),
    ...). The model answers C grad log p_t(x) exactly (output "cscore"): the gaussian
    -C Sigma_t^-1 (x - alpha m), Sigma_t = alpha^2 S0 + sigma^2 C; the gmm the mixture's,
    with responsibilities per sample. spec is the canonical spec (every parameter shown).

    m(t, x) -> the answer at time t for x [B, tau, *frame_shape] (numpy, or a torch tensor
    -> a tensor of its dtype and device; computed in float64 by the library, no autograd);
    m.x0(t, x) the data prediction E[x0 | x_t = x]. Pass m (or the spec str) as solve()'s
    or converge()'s model to run it inside the library (no Python call per evaluation):
    the same bits as `corrsde sample --model SPEC` with the same settings. One Model is
    not for two threads at once (the library's rule for its built-ins).
    """

    def __init__(self, spec, *, cov, schedule="vp-linear", frame_shape=()):
        if not isinstance(spec, str):
            raise TypeError("model: expected a spec str such as 'gmm:file=P.h5', got %s"
                            % type(spec).__name__)
        if not isinstance(cov, Cov):
            raise TypeError("cov: expected a corrsde.Cov, got %s" % type(cov).__name__)
        if not isinstance(schedule, Schedule):
            schedule = Schedule(schedule)
        try:
            shape = _shape(frame_shape)
        except (TypeError, ValueError):
            raise ValueError("frame_shape: expected an integer or a tuple of integers, got %r"
                             % (frame_shape,)) from None
        if len(shape) > 3 or any(d < 1 for d in shape):
            raise ValueError("frame_shape: expected 0 to 3 sizes, each >= 1, got %r"
                             % (frame_shape,))
        self.cov, self.schedule, self.frame_shape = cov, schedule, shape
        self._h, self.spec, kind = _corrsde.model_new(spec, cov._h, schedule._h,
                                                      int(np.prod(shape, dtype=np.int64)))
        self.output = OUTPUTS[kind]

    def __repr__(self):
        return "corrsde.Model(%r, cov=%r, schedule=%r, frame_shape=%r) [output %s]" % (
            self.spec, self.cov, self.schedule.spec, self.frame_shape, self.output)

    def _time(self, t):
        if _is_tensor(t):
            t = t.detach().cpu().double().numpy()
        try:
            v = float(t)
        except (TypeError, ValueError):
            raise TypeError("t: expected a number, got %s" % type(t).__name__) from None
        lo, hi = self.schedule.span()
        if not lo <= v <= hi:
            raise ValueError("t: expected a time in the span [%r, %r] of %s, got %r"
                             % (lo, hi, self.schedule.spec, v))
        return v

    def _x(self, x):
        a = _states(x, "x", self.cov.frames)
        if a.shape[2:] != self.frame_shape and (int(np.prod(a.shape[2:], dtype=np.int64)) !=
                                                int(np.prod(self.frame_shape, dtype=np.int64))):
            raise ValueError("x: frame shape %s (x: shape %s), the model's frame_shape is %s"
                             % (a.shape[2:], a.shape, self.frame_shape))
        return a

    def __call__(self, t, x, ctx=None):
        """The model's answer (self.output: C grad log p_t) at time t for x [B, tau,
        *frame_shape]; ctx is accepted (and ignored) so that m is also a model(t, x, ctx)."""
        return _like(_corrsde.model_call(self._h, self._time(t), self._x(x)), x)

    def x0(self, t, x):
        """E[x0 | x_t = x] = (x + sigma^2 s) / alpha, s = C grad log p_t(x) (Tweedie's
        formula for the noise covariance sigma^2 C; alpha, sigma the path's at t: the
        process layer's denoiser view, src/process/process.c, which the library does not
        export). t with alpha(t) = 0 (rf at t = 1) is refused."""
        v, a = self._time(t), self._x(x)
        al, sg = self.schedule.alpha(v), self.schedule.sigma_path(v)
        if not al > 0:
            raise ValueError("t: alpha(%r) = %r on %s: x0 is not defined there"
                             % (v, al, self.schedule.spec))
        s = _corrsde.model_call(self._h, v, a)
        return _like((a + sg * sg * s) / al, x)


def _builtin(model, cov, schedule, output, shape, what="frame_shape"):
    """solve()'s and converge()'s model when it is a built-in (a spec str or a Model):
    its spec, checked against the run's cov, schedule and frame shape (None: not given);
    None for a Python callable."""
    if not isinstance(model, (str, Model)):
        return None
    if output is not None and output != "cscore":
        raise ValueError("output: a built-in model (%r) answers C grad log p itself"
                         % (model if isinstance(model, str) else model.spec))
    if isinstance(model, str):
        return model
    if model.cov is not cov and (model.cov.spec, model.cov.frames, model.cov.method) != (
            cov.spec, cov.frames, cov.method):
        raise ValueError("cov: %r, but the model was built on %r" % (cov, model.cov))
    if model.schedule.spec != schedule.spec:
        raise ValueError("schedule: %r, but the model was built on %r"
                         % (schedule.spec, model.schedule.spec))
    if shape is not None and (int(np.prod(shape, dtype=np.int64)) !=
                              int(np.prod(model.frame_shape, dtype=np.int64))):
        raise ValueError("%s: frame shape %s, but the model was built for frame_shape %s"
                         % (what, tuple(_shape(shape)), model.frame_shape))
    return model.spec


def _builtin_of(model, cov, schedule, output, x, what="x"):
    """likelihood()'s and elbo()'s model: a Model as its spec (checked against the call's
    cov, schedule and x's frame shape), anything else as it is."""
    if not isinstance(model, Model) or not isinstance(cov, Cov):
        return model
    if not isinstance(schedule, Schedule):
        schedule = Schedule(schedule)
    shape = tuple(x.shape[2:]) if getattr(x, "ndim", 0) >= 2 else None
    return _builtin(model, cov, schedule, output, shape, what)


def _opt_num(v, what):
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise TypeError("%s: expected a number, got %s" % (what, type(v).__name__))
    return float(v)


def _x0_specs(clip, threshold):
    """x0_clip (lo, hi) or "LO,HI", x0_threshold {"p": P, "max": M}, P or "p=P,max=M" ->
    the run's spec strings (checked by the library, as for --x0-clip/--x0-threshold)."""
    if clip is not None and not isinstance(clip, str):
        try:
            lo, hi = clip
        except (TypeError, ValueError):
            raise TypeError("x0_clip: expected (lo, hi) or 'LO,HI', got %r" % (clip,)) from None
        clip = "%r,%r" % (_opt_num(lo, "x0_clip"), _opt_num(hi, "x0_clip"))
    if isinstance(threshold, dict):
        if not threshold.keys() <= {"p", "max"}:
            raise ValueError("x0_threshold: expected the keys p and max, got %r"
                             % sorted(threshold))
        threshold = ",".join("%s=%r" % (k, _opt_num(threshold[k], "x0_threshold"))
                             for k in ("p", "max") if k in threshold)
    elif threshold is not None and not isinstance(threshold, str):
        threshold = "p=%r" % _opt_num(threshold, "x0_threshold")
    return clip, threshold


#: the largest |w| guidance takes (the library's bound, corrsde/run.h)
GUIDANCE_MAX = 1e3


def _guidance_values(w, tau, what):
    """w: a number or tau numbers -> a tuple of tau floats, each finite with |w| <= 1e3."""
    if _is_tensor(w):
        w = w.detach().cpu().double().numpy()
    if isinstance(w, bool) or isinstance(w, (str, bytes)):
        raise TypeError("%s: expected a number or %d numbers (one per frame), got %r"
                        % (what, tau, w))
    try:
        v = np.array(w, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError("%s: expected a number or %d numbers (one per frame), got %s"
                        % (what, tau, type(w).__name__)) from None
    if v.ndim == 0:
        v = np.full(tau, float(v))
    elif v.ndim != 1 or v.size != tau:
        raise ValueError("%s: expected one number or %d (one per frame), got %d (shape %s)"
                         % (what, tau, v.size, v.shape))
    bad = ~np.isfinite(v) | (np.abs(v) > GUIDANCE_MAX)
    if np.any(bad):
        f = int(np.argmax(bad))
        raise ValueError("%s: the scale of frame %d is %r; expected a finite number with "
                         "|w| <= %g" % (what, f, float(v[f]), GUIDANCE_MAX))
    return tuple(float(u) for u in v)


def _guidance(guidance, tau):
    """guidance -> (the run's spec, the callable or None): a number W, tau numbers (one
    per frame), a spec string ("W", "w1,...,w_tau", "linear:A,B": the library checks it)
    or a callable w(t) returning a number or tau numbers (checked at every new t)."""
    if isinstance(guidance, str):
        return guidance, None
    if callable(guidance) and not _is_tensor(guidance):
        def w_of_t(t):
            return _guidance_values(guidance(t), tau, "guidance(%r)" % t)
        return None, w_of_t
    v = _guidance_values(guidance, tau, "guidance")
    if all(u == v[0] for u in v):
        return repr(v[0]), None
    return ",".join(repr(u) for u in v), None


def _conditioning(settings, batch, tau, cond, uncond, guidance, split, callback):
    """solve()'s cond, uncond, guidance, guidance_split and callback checked (settings
    gains guidance and guidance_split); returns guidance's callable w(t) or None."""
    if cond is not None:
        _cond_check(cond, batch, "cond")
    if uncond is not None:
        if cond is None:
            raise ValueError("uncond: needs cond= (the conditional half of the guidance)")
        _cond_check(uncond, batch, "uncond")
        _cond_alike(cond, uncond)
        if guidance is None:
            raise ValueError("uncond: needs guidance= (the scale w: a number, %d numbers or "
                             "a callable w(t))" % tau)
    if guidance is not None and uncond is None:
        raise ValueError("guidance: needs uncond= (the unconditional conditioning, cond's "
                         "structure)")
    if not isinstance(split, bool):
        raise TypeError("guidance_split: expected True or False, got %r" % (split,))
    if callback is not None and not callable(callback):
        raise TypeError("callback: expected a callable callback(step, t, x, x0), got %s"
                        % type(callback).__name__)
    spec, gfn = (None, None) if guidance is None else _guidance(guidance, tau)
    settings["guidance"], settings["guidance_split"] = spec, split
    return gfn


def _run_settings(cov, schedule, process, solver, steps, grid, rtol, atol, t_start, t_end,
                  seed, noise, threads, max_nfe, eta, x0_clip, x0_threshold, corrector):
    """The settings dict of _corrsde's run (solve() and rci.Run), each argument checked
    and named in its error; returns (schedule, settings)."""
    if not isinstance(cov, Cov):
        raise TypeError("cov: expected a corrsde.Cov, got %s" % type(cov).__name__)
    if not isinstance(schedule, Schedule):
        schedule = Schedule(schedule)
    if not isinstance(process, str):
        raise TypeError("process: expected a str, got %s" % type(process).__name__)
    if eta is not None:
        if process != "ddim":
            raise ValueError("eta: applies to process='ddim' only, got process %r" % process)
        process = "ddim:eta=%r" % float(eta)
    if process.partition(":")[0] not in PROCESSES:
        raise ValueError("process: expected one of %s, got %r" % (", ".join(PROCESSES), process))
    rtol, atol = _opt_num(rtol, "rtol"), _opt_num(atol, "atol")
    if rtol is not None and atol is None:   # a missing tolerance takes the other's value
        atol = rtol
    if atol is not None and rtol is None:
        rtol = atol
    if steps is None:
        steps = 0
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 0:
        raise ValueError("steps: expected a non-negative integer, got %r" % (steps,))
    if steps == 0 and rtol is None and process != "ddpm":
        raise ValueError("steps: 0 (adaptive) needs rtol")
    seed = _seed(seed)
    grid, t_start, t_end = _grid(grid, schedule, t_start, t_end)
    if isinstance(threads, bool) or not isinstance(threads, numbers.Integral) or threads < 1:
        raise ValueError("threads: expected a positive integer, got %r" % (threads,))
    clip, threshold = _x0_specs(x0_clip, x0_threshold)
    if corrector is not None and not isinstance(corrector, str):
        raise TypeError("corrector: expected a str such as 'langevin:snr=0.16,steps=1', got %s"
                        % type(corrector).__name__)
    return schedule, {
        "process": process, "solver": None if solver is None else str(solver),
        "steps": int(steps), "grid": str(grid), "rtol": rtol, "atol": atol,
        "t_start": _opt_num(t_start, "t_start"), "t_end": _opt_num(t_end, "t_end"),
        "seed": int(seed), "noise": str(noise), "threads": int(threads),
        "max_nfe": None if max_nfe is None else int(max_nfe),
        "x0_clip": clip, "x0_threshold": threshold, "corrector": corrector}


def solve(model, x=None, *, cov, schedule="vp-linear", process="reverse-sde", solver=None,
          steps=100, grid="uniform", rtol=None, atol=None, output=None, t_start=None,
          t_end=None, seed=0, noise="stream", threads=1, save=None, out=None, force=False,
          dtype="float64", compress=False, progress=False, eta=None, max_nfe=None,
          batch=None, frame_shape=None,
          x0_clip=None, x0_threshold=None,
          cond=None, uncond=None, guidance=None, guidance_split=False, callback=None,
          corrector=None):
    """Run a process or sampler with a Python model or a built-in one; returns a Result.

    The run is the library's (corrsde/run.h), the same as `corrsde sample`'s: the same
    settings give the same bits, and out= the same file.

    model may be a built-in exact model: its spec ("gaussian[:mean=M,std=S,rho=R]",
    "gaussian:file=P.h5", "gmm:file=P.h5", as `corrsde sample --model`) or a Model (its
    cov and schedule must be the run's; its frame_shape the default one). It runs inside
    the library, with no Python call per evaluation (output: none, or "cscore").

    model(t, x, ctx) -> array of x's shape: x is a read-only view of the solver's
    buffer (a model that keeps x or views of it past the call gets them repointed to
    one copy of what it saw), ctx a Context. output (default: model.output if it
    has one, else "cscore") says what it returns: "score" (grad log p), "cscore"
    (C grad log p), "noise" (delta), "x0", "v", "flow" (dx/dt) or "flow-shifted" (rf
    only: dx/dt' = delta - x0, the velocity in the shifted time t' of SD3/Wan pipelines).
    x: the start states [B, tau, *frame_shape] (copied); None draws the prior N(0, C)
    with seed (as `corrsde sample`), sized by batch and frame_shape (with x, a batch or
    frame_shape that differs from x's is a ValueError naming both).
    The model's first answer is checked against its declared kind (csde_run_warning:
    the noise prediction it implies, by Stein's identity): a RuntimeWarning names the
    kind it looks like ("...declares its answer score... it looks like noise").
    process: forward-sde, reverse-sde, pf-ode, pf-ode-encode, ddpm, ddim or
    ddim:eta=E (or eta=E). solver: em (default; rk45 when adaptive) or a name of
    solvers() that fits the process, with its options as "name:key=value,..."
    ("edm-heun:churn=40"); rtol/atol (a missing one takes the other's value) run
    adaptive steps instead of steps (ODEs: rk45, rkck, rk8pd, dopri5; SDEs: heun, em,
    sra1, with noise="path"). noise: "stream" (fresh per step) or "path" (one Brownian path per
    seed, the same for any steps). t_start/t_end: the process's own ends by default
    (reverse: 1 -> 1e-3; a path's span where that falls outside it: edm smax -> smin,
    rf 0.999 -> 1e-3; the prior then N(0, p^2 C), p = schedule.prior_scale()). grid: uniform, quadratic, karras[:rho=R], logsnr, list:t0,t1,...,
    or the nodes as an array of times, {"t": times} or {"sigma": sigmas} (the VE sigma of
    Schedule.sigma_to_t), strictly monotone, its ends the default t_start/t_end.
    save: "final", "every:K", "times:t1,..." (or a dict).
    out: also write the trajectory file (as `corrsde sample -o`), with force
    (replace an existing file once the run is viable), dtype ("float64"/"float32")
    and compress; the file records how the run ended ("ok" or "failed: ...").
    progress: draw a progress line on stderr.
    x0_clip=(lo, hi) or "LO,HI": the model's x0 prediction clipped to [lo, hi] at every
    call; x0_threshold={"p": 0.995, "max": M} (or P, or "p=P,max=M"): Imagen's dynamic
    thresholding instead, per sample s = min(max(quantile_p(|x0|), 1), M) (numpy's
    default linear quantile), x0 <- clip(x0, -s, s) / s. The answer is taken to x0,
    changed and taken back for every solver and process (corrsde/problem.h); as
    `corrsde sample --x0-clip/--x0-threshold`.
    cond: the model's conditioning, any nested dict/list/tuple of numpy arrays or torch
    tensors whose axis 0 is the batch (row j: sample j's) or 1 (every sample's); the
    model sees it as ctx.cond, sliced to the call's samples (views; see Context).
    guidance=w with uncond= (the unconditional conditioning, cond's structure):
    classifier-free guidance for every solver and process, the answer
    out_u + w_f (out_c - out_u) in the model's own output space (frame f's scale w_f),
    before any conversion; w a number, tau numbers (one per frame), a spec string
    ("W", "w1,...,w_tau", "linear:A,B": A at frame 0 to B at the last, SVD's) or a
    callable w(t) returning a number or tau numbers (a dynamic schedule); each finite,
    |w| <= 1e3. The guided evaluation of B states is one model call of 2B (ctx.cond:
    cond's rows then uncond's, ctx.ncond = B), or with guidance_split=True two calls
    of B (ctx.ncond = B, then 0): the same states bit for bit. nfe counts forward passes
    (2 per guided evaluation).
    callback(step, t, x, x0): after every step, with the state x and the x0 prediction
    (Tweedie: the denoiser view) of the step's last model evaluation (None where there
    was none, e.g. forward-sde), as read-only numpy views valid during the call; no
    extra model call. A truthy return stops the run (Result.stopped).
    corrector="langevin:snr=0.16,steps=1" (None or "none": off): the predictor-corrector
    sampler (score_sde's PC), as `corrsde sample --corrector`: after every fixed step of
    reverse-sde or pf-ode, K Langevin steps x += e C s + sqrt(2 e) V' z at the new t (s
    the score, z ~ N(0, I) from its own keyed stream), e = 2 (snr ||z|| / ||s||_C)^2 per
    sample in the C^-1 norm (||s||_C^2 = s^T C s); each one NFE. Not with rtol/atol,
    forward-sde, pf-ode-encode, ddpm or ddim (ValueError naming corrector).
    The GIL is released during the solve and taken back only to call the model, on the
    calling thread. An exception in the model (in the callback, in a guidance callable)
    propagates with a note giving t and the step; KeyboardInterrupt stops the solve.
    """
    schedule, settings = _run_settings(cov, schedule, process, solver, steps, grid, rtol, atol,
                                       t_start, t_end, seed, noise, threads, max_nfe, eta,
                                       x0_clip, x0_threshold, corrector)
    base, seed = settings["process"].partition(":")[0], settings["seed"]
    spec = _builtin(model, cov, schedule, output, None)
    if spec is None:
        output = _model_output(model, output)
    else:  # a built-in: run inside the library, as `corrsde sample --model SPEC`
        output = "cscore"
        if isinstance(model, Model) and x is None and frame_shape is None:
            frame_shape = model.frame_shape
    if dtype not in ("float64", "float32"):
        raise ValueError("dtype: expected 'float64' or 'float32', got %r" % (dtype,))
    if out is not None:
        import os
        out = os.fspath(out)
        if not isinstance(out, str):
            raise TypeError("out: expected a str path, got %s" % type(out).__name__)
    init = None
    if x is None:
        if base in ("forward-sde", "pf-ode-encode"):
            raise ValueError("x: %s starts from data; pass x (solve() draws no model's "
                             "data law; `corrsde sample --model SPEC` does)" % base)
        x = cov.sample(1 if batch is None else batch,
                       () if frame_shape is None else frame_shape, seed)
        p = schedule.prior_scale()  # the prior N(0, p^2 C) (VP: 1, x untouched)
        if p != 1:
            x = x * p
    else:
        x = _states(x, "x", cov.frames).copy()
        init = "the caller's states (corrsde.solve x=)"
        # batch= and frame_shape= with x= must say what x says
        if batch is not None and batch != x.shape[0]:
            raise ValueError("batch: %r contradicts x, whose %d samples (x: shape %s) are "
                             "the batch" % (batch, x.shape[0], x.shape))
        if frame_shape is not None and _shape(frame_shape) != x.shape[2:]:
            raise ValueError("frame_shape: %r contradicts x's frame shape %s (x: shape %s)"
                             % (frame_shape, x.shape[2:], x.shape))
    if spec is not None:
        _builtin(model, cov, schedule, None, x.shape[2:], "x")
    settings.update({
        "save": _save(save),
        "model_spec": spec if spec is not None else
        "python:" + getattr(model, "__qualname__", type(model).__qualname__),
        "cov_method": cov.method_asked, "init": init,
        "command_line": "corrsde.solve(...) from Python",
        "progress": bool(progress),
    })
    gfn = _conditioning(settings, x.shape[0], cov.frames, cond, uncond, guidance,
                        guidance_split, callback)
    ctx = Context(cov.frames, tuple(x.shape[2:]), x.shape[0], cov, schedule, output, base)
    res = _corrsde.solve(model if spec is None else spec, ctx, x, cov._h, schedule._h,
                         OUTPUTS.index(output), settings,
                         out, dtype == "float32", bool(compress), bool(force),
                         (cond, uncond, gfn, callback, _cond_call))
    nfe, nsteps, acc, rej, wall, stopped, ts, st, states = res
    return Result(x, ts, st, states, nfe, nsteps, acc, rej, wall, stopped, out)


class Convergence:
    """What converge() returns: the levels (level k: 2^k steps of size h) and, per
    solver, the error at every level with its bootstrap interval, the local slopes, which
    levels the fit used and why, and the fitted order with its interval (the table of
    `corrsde converge`). Arrays are numpy; `table` is the program's text table."""

    def __init__(self, d, table):
        self.error_kind = d["error_kind"]
        self.level = d["level"].astype(np.int64)
        self.steps = d["steps"].astype(np.int64)
        self.h = d["h"]
        self.paths, self.nfe, self.wall_seconds = d["paths"], d["nfe"], d["wall_seconds"]
        self.reference, self.estimator = d["reference"], d["estimator"]
        self.solvers = {}
        for e in d["solvers"]:
            e["used"] = e["used"].astype(bool)
            e["nfe"] = e["nfe"].astype(np.int64)
            self.solvers[e["name"]] = e
        self.table = table

    def order(self, solver):
        """(order, lo, hi) of a solver."""
        e = self.solvers[solver]
        return e["order"], e["order_lo"], e["order_hi"]

    def __repr__(self):
        return "corrsde.Convergence(%s, levels %d..%d, %s)" % (
            self.error_kind, self.level[0], self.level[-1],
            ", ".join("%s %.3f" % (k, v["order"]) for k, v in self.solvers.items()))


def _check_output(path, force):
    """An output may be absent or a regular file (replaced only with force); a symbolic
    link, a device, a FIFO, a socket or a directory is refused either way (the library's
    rule, io/outfile.h)."""
    import os
    import stat
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISREG(st.st_mode):
        kind = ("a symbolic link" if stat.S_ISLNK(st.st_mode) else
                "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file")
        raise FileExistsError("'%s' is %s: refused (only a regular file is ever replaced)"
                              % (path, kind))
    if not force:
        raise FileExistsError("'%s' exists (pass force=True to replace it)" % path)


def _write_output(path, force, write, failure):
    """write(name) draws into a fresh path.partial.XXXXXX (made with O_EXCL | O_NOFOLLOW in
    path's directory, named to write() as /proc/self/fd/N), which is then renamed to path:
    over nothing, or over a regular file with force. Nothing else is ever written."""
    import os
    import secrets
    d = os.path.dirname(os.path.abspath(path))
    base = os.path.basename(path)
    dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    fd, tmp = -1, None
    try:
        for _ in range(100):
            tmp = "%s.partial.%s" % (base, secrets.token_hex(3))
            try:
                fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW |
                             os.O_CLOEXEC, 0o666, dir_fd=dfd)
                break
            except FileExistsError:
                continue
        if fd < 0:
            raise FileExistsError("cannot make a temporary name beside '%s'" % path)
        if not write("/proc/self/fd/%d" % fd):
            raise RuntimeError(failure)
        _check_output(os.path.join(d, base), force)
        if force and os.path.lexists(os.path.join(d, base)):
            os.rename(tmp, base, src_dir_fd=dfd, dst_dir_fd=dfd)
        else:  # never over a file that appeared meanwhile
            os.link(tmp, base, src_dir_fd=dfd, dst_dir_fd=dfd)
            os.unlink(tmp, dir_fd=dfd)
        tmp = None
    finally:
        if fd >= 0:
            os.close(fd)
        if tmp is not None:
            try:
                os.unlink(tmp, dir_fd=dfd)
            except FileNotFoundError:
                pass
        os.close(dfd)


def converge(model, *, cov, schedule="vp-linear", process="pf-ode", solvers=None,
             error=None, levels=(3, 8), paths=16, reference="auto", reference_level=None,
             t_end=None, seed=0, frame_shape=None, batch=None, boot=1000, boot_seed=None,
             confidence=0.95, grid="uniform", output=None, out=None, csv=None, plot=None,
             x_axis="h", force=False, print_table=False, progress=False):
    """Convergence orders of solvers with a Python model, as `corrsde converge`.

    model: a callable model(t, x, ctx) as solve()'s, or a built-in (a spec str or a
    Model, run inside the library, as solve() takes them; the gaussian gives the exact
    reference). frame_shape: default a Model's, else (4, 4).

    For each solver and each level k in levels (K0, K1), the paths are solved with 2^k
    fixed steps on one Brownian path each (path noise) from the prior N(0, p^2 C) (seed;
    p = schedule.prior_scale(), VP 1),
    against a reference on the same path: reference "auto" (exact where the model gives
    it: the built-in gaussian's flow; never for a Python model), "fine" (each solver at
    reference_level, default the
    program's K1 + 3 or more; "fine:LEVEL" the same) or "fine:SOLVER:rtol=R[,atol=A]"
    (one adaptive solve per path shared by every solver: dopri5, rk45, rkck, rk8pd for
    pf-ode; heun, em, sra1 for reverse-sde, on the same Brownian path; its error is
    estimated from the first batch at R / 10). error: "strong", "weak-mean", "weak-cov" (SDEs) or
    "ode" (pf-ode, pf-ode-encode; the default there); solvers: default em,heun for SDEs,
    euler,heun,rk45 for ODEs. t_end: where the solves end, eps (as `corrsde converge
    --t-end`; default 1e-3, 0 <= t_end < T, T = 1 or 0.999 with cosine; a path: its span,
    edm smin <= t_end < smax). The model is
    called on this thread (converge runs one thread, with the GIL released between
    calls), with x of [b, tau, *frame_shape], b up to batch paths (default 64). Returns
    a Convergence. The program's outputs: out (the HDF5 file of `corrsde converge -o`),
    csv (its CSV rows), plot (its PNG, drawn from out, against the step size h or, with
    x_axis="nfe", the model evaluations of a solve); an existing file needs force. out is
    made before the first solve and rewritten after every stage (a reference, or a level
    of one solver, for every path), with /convergence's status "running": a run that is
    interrupted (Ctrl-C: status "failed: interrupted (KeyboardInterrupt)", and the
    exception raised), fails or is killed keeps what finished. print_table prints its
    table. progress: True draws the program's display on stderr (the model calls of the
    whole study, then an estimate of its time from the first calls, then a line for the
    stage in progress); a callable is called with a dict (event "plan", "estimate",
    "working" or "stage", solver, solver_name, reference, level, paths_done, paths,
    nfe_done, nfe_total, nfe_total_estimated, batch, batches, threads, fraction, elapsed,
    sec_per_call, seconds_total, t) on this thread, and an exception it raises stops the run
    (raised after it, the file keeping what finished).
    """
    if not isinstance(cov, Cov):
        raise TypeError("cov: expected a corrsde.Cov, got %s" % type(cov).__name__)
    if not isinstance(schedule, Schedule):
        schedule = Schedule(schedule)
    if process not in PROCESSES[:4]:
        raise ValueError("process: expected forward-sde, reverse-sde, pf-ode or pf-ode-encode, "
                         "got %r" % (process,))
    if process in ("forward-sde", "pf-ode-encode"):
        raise ValueError("process: %s starts from data, which a Python model does not give "
                         "(use reverse-sde or pf-ode)" % process)
    spec = _builtin(model, cov, schedule, output, frame_shape)
    if spec is None:
        output = _model_output(model, output)
    else:  # a built-in: run inside the library, as `corrsde converge --model SPEC`
        output = "cscore"
        if frame_shape is None and isinstance(model, Model):
            frame_shape = model.frame_shape or (1,)
    if frame_shape is None:
        frame_shape = (4, 4)
    # solvers, error: None gives the library's default for the process (csde_conv_settings),
    # but for reverse-sde the error is strong here (the program's: weak-cov; the README)
    if isinstance(solvers, str):
        solvers = ",".join(s for s in solvers.split(",") if s)
    elif solvers is not None:
        solvers = ",".join(str(s) for s in solvers)
    if error is None and process == "reverse-sde":
        error = "strong"
    k0, k1 = (int(v) for v in levels)
    if not isinstance(reference, str):
        raise TypeError("reference: expected a string such as 'fine' or "
                        "'fine:dopri5:rtol=1e-8', got %s" % type(reference).__name__)
    if progress is not None and not isinstance(progress, bool) and not callable(progress):
        raise TypeError("progress: expected True, False or a callable, got %s"
                        % type(progress).__name__)
    import os
    outs = [os.fspath(v) for v in (out, csv, plot) if v is not None]
    if x_axis not in ("h", "nfe"):
        raise ValueError("x_axis: expected 'h' or 'nfe', got %r" % (x_axis,))
    if plot is not None and out is None:
        raise ValueError("plot: needs out= (the plot is drawn from the HDF5 file)")
    if len(set(outs)) != len(outs):
        raise ValueError("out/csv/plot: two outputs name the same file")
    for name, v in (("out", out), ("csv", csv), ("plot", plot)):
        if v is not None:
            if "\0" in os.fspath(v):
                raise ValueError("%s: embedded null character in %r" % (name, os.fspath(v)))
            _check_output(os.fspath(v), force)
    shape = _shape(frame_shape)
    if not 1 <= len(shape) <= 3:
        raise ValueError("frame_shape: expected 1 to 3 sizes, got %r" % (frame_shape,))
    b = 64 if batch is None else batch
    if isinstance(b, bool) or not isinstance(b, numbers.Integral) or b < 1:
        raise ValueError("batch: expected a positive integer, got %r" % (batch,))
    b = int(b)
    nb = max(1, min(int(paths), b))  # paths < 2: refused by the library, naming paths
    ctx = Context(cov.frames, shape, nb, cov, schedule, output, process)
    settings = {"process": process, "solvers": solvers,
                "error": None if error is None else str(error),
                "levels": "%d:%d" % (k0, k1), "paths": int(paths), "reference": reference,
                "ref_level": reference_level, "t_end": _opt_num(t_end, "t_end"),
                "seed": int(seed), "batch": b,
                "boot": int(boot),
                "boot_seed": None if boot_seed is None else int(boot_seed), "conf": float(confidence),
                "grid": str(grid), "csv": None if csv is None else os.fspath(csv),
                "output": None if out is None else os.fspath(out), "force": bool(force),
                "progress": progress,
                "cov_method": cov.method_asked,
                "model_spec": spec if spec is not None else
                "python:" + getattr(model, "__qualname__", type(model).__qualname__)}
    d, table = _corrsde.converge(model if spec is None else spec, ctx, cov._h, schedule._h,
                                 OUTPUTS.index(output),
                                 (nb, cov.frames) + shape, settings)
    if plot is not None:
        from . import _plot_convergence
        src = os.fspath(out)
        _write_output(os.fspath(plot), force, lambda name: _plot_convergence.main(
            ["plot_convergence.py", src, name, "--x-axis", x_axis]) == 0,
                      "plot: drawing '%s' from '%s' failed (see above)" % (plot, out))
    if print_table:
        print(table, end="")
    return Convergence(d, table)


# ---------------------------------------------------------------- the PF-ODE likelihood

#: the divergence routes and JVP routes of likelihood() (corrsde/likelihood.h)
DIVERGENCES = ("auto", "exact", "directional", "hutchinson")
JVPS = ("auto", "model", "fd")
__all__ += ["likelihood", "DIVERGENCES", "JVPS"]


def _spec_name(v, what, names, example):
    if not isinstance(v, str):
        raise TypeError("%s: expected a str such as %r, got %s" % (what, example, type(v).__name__))
    if v.partition(":")[0] not in names:
        raise ValueError("%s: expected one of %s (with options, e.g. %r), got %r"
                         % (what, ", ".join(names), example, v))
    return v


def likelihood(model, x, *, cov, schedule="vp-linear", divergence="auto", probes=None,
               probe=None, jvp="auto", solver="dopri5", rtol=None, atol=None, steps=None,
               grid="uniform", eps=None, t_end=None, seed=None, first_sample=0, conf=0.95,
               threads=1, batch=None, dequant=None, cond=None, output=None, max_nfe=None):
    """The PF-ODE log-likelihood log p_eps(x) per sample (corrsde/likelihood.h):
    log p_eps(x) = log p_T(x_T) + int_eps^T div f dt, x encoded by the probability-flow ODE
    (pf-ode-encode) from eps to T with the log-density carried by the same solve, the prior
    N(0, p^2 C) per pixel from cov (any method: a circulant approximation changes the prior),
    p = schedule.prior_scale(). Any schedule: the VP ones and the paths edm, ve, rf[:shift=S]
    (div f = tau D f(t) - 1/2 g(t)^2 tr(C grad^2 log p_t)).

    model: a built-in spec ("gaussian[:mean=M,std=S,rho=R]", "gaussian:file=P.h5",
    "gmm:file=P.h5": exact models with exact scores) or a Model, a TorchModel (its
    Jacobian-vector product from autograd: torch.func.jvp, or double backward on
    torch < 2) or a callable model(t, x, ctx) as solve() takes (output= or model.output: its kind).
    x: the data [B, tau, *frame_shape] at t = eps.
    divergence: "auto" (exact for the built-ins, directional for tau D <= 64, else
    hutchinson), "exact", "directional" (tau D JVPs per evaluation) or
    "hutchinson[:probes=K,probe=rademacher|gaussian,seed=S]" (or probes=K, probe=...):
    K probes fixed along the trajectory, the mean with its standard error se and a
    Student-t interval [lo, hi] at conf; keyed by seed and first_sample + the sample's
    index, so batch and threads never change a bit.
    jvp: "auto" (the model's when it has one, else a central difference), "model", "fd" or
    "fd:step=H" (relative step, default cbrt(eps_machine)), or a callable
    jvp(t, x, v, ctx) -> J v, J the Jacobian of the model's answer in its declared kind
    (per sample); a model with a callable attribute `jvp` (TorchModel) gives it itself.
    solver: an ODE integrator that steps on the drift (euler, heun, rk45, rkck, rk8pd,
    dopri5); rtol/atol (default 1e-6) adaptive, or steps= fixed steps on grid. Adaptive
    steps control each sample's error alone (the library solves each sample alone, as
    csde_likelihood does); fixed steps solve `batch` samples per call (default all).
    eps (default 1e-3; edm smin) and t_end (default T = 1; 0.999 for cosine and rf; edm
    smax): the ends, within schedule.span().
    dequant: None (continuous data, taken as they are) or "uniform[:bits=8,scale=S,
    shift=H]": x holds integers k in [0, 2^bits), dequantized as elbo() does,
    y = S (k + u) + H (default S = 2 / 2^bits, H = -1) with u keyed by the seed and the
    sample's global index, and bpd takes -log2(S) more (7 bits for 8-bit data in
    [-1, 1)). cond: the model's conditioning as solve() takes it.

    Returns a dict of arrays [B]: logp (nats), prior (log p_T(x_T)), delta (the integral),
    se, lo, hi, bpd, and x_T (the encoded states, x's shape); and nfe (forward passes:
    drift evaluations + central differences), jvp_calls, steps, rejected, wall_seconds,
    divergence (the route taken), jvp (taken: "model", "fd", or None for exact).
    A bad setting is a ValueError naming its keyword first.
    """
    model = _builtin_of(model, cov, schedule, output, x)
    if isinstance(model, str):
        kind, jfn = 1, None
        if output is not None:
            raise ValueError("output: a built-in model (%r) answers C grad log p itself" % model)
    else:
        kind = OUTPUTS.index(_model_output(model, output))
        jfn = getattr(model, "jvp", None)
        jfn = jfn if callable(jfn) else None
    if callable(jvp) and not isinstance(jvp, str):
        if isinstance(model, str):
            raise ValueError("jvp: a built-in model's Jacobian is the library's own: give no "
                             "jvp callable")
        jfn, jvp = jvp, "model"
    jvp = _spec_name(jvp, "jvp", JVPS, "fd:step=1e-5")
    divergence = _spec_name(divergence, "divergence", DIVERGENCES, "hutchinson:probes=8")
    for name, v in (("probes", probes), ("probe", probe), ("seed", seed)):
        if v is not None and name + "=" in divergence:
            raise ValueError("%s: given twice, as %s= and in divergence %r" % (name, name,
                                                                             divergence))
    if probe is not None and not isinstance(probe, str):
        raise TypeError("probe: expected 'rademacher' or 'gaussian', got %s"
                        % type(probe).__name__)
    if dequant is not None and not isinstance(dequant, str):
        raise TypeError("dequant: expected None or a str such as 'uniform:bits=8', got %s"
                        % type(dequant).__name__)
    seed = 0 if seed is None else seed  # the probes' seed (a spec's seed=S when not given)
    eps = _opt_num(eps, "eps")
    if steps is None and rtol is None and atol is None:
        rtol = atol = 1e-6
    if steps is not None and (rtol is not None or atol is not None):
        raise ValueError("steps: fixed steps exclude rtol/atol (give one or the other)")
    schedule, s = _run_settings(cov, schedule, "pf-ode-encode", solver, steps, grid, rtol, atol,
                                eps, t_end, seed, "stream", threads, max_nfe, None, None, None,
                                None)
    if s["t_start"] is None:  # the default eps 1e-3, or the path's t_min above it (edm)
        s["t_start"] = max(1e-3, schedule.span()[0])
    for name, v in (("first_sample", first_sample), ("probes", probes)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, numbers.Integral)
                              or v < (1 if name == "probes" else 0)):
            raise ValueError("%s: expected a %s integer, got %r"
                             % (name, "positive" if name == "probes" else "non-negative", v))
    conf = _opt_num(conf, "conf")
    if not 0 < conf < 1:
        raise ValueError("conf: expected 0 < conf < 1, got %r" % conf)
    x = _states(x, "x", cov.frames)
    B = x.shape[0]
    if batch is not None and (isinstance(batch, bool) or not isinstance(batch, numbers.Integral)
                              or batch < 1):
        raise ValueError("batch: expected a positive integer, got %r" % (batch,))
    per_call = max(1, B if batch is None else int(batch))
    if cond is not None:
        _cond_check(cond, B, "cond")
    first0 = int(first_sample)
    settings = {"divergence": divergence, "jvp_spec": jvp, "probes": probes, "probe": probe,
                "solver": s["solver"], "rtol": s["rtol"] or 0.0, "atol": s["atol"] or 0.0,
                "steps": s["steps"], "grid": s["grid"], "max_nfe": s["max_nfe"],
                "eps": s["t_start"], "t_end": s["t_end"], "seed": s["seed"], "conf": conf,
                "threads": s["threads"], "dequant": dequant}
    keys = ("logp", "prior", "delta", "se", "lo", "hi", "bpd")
    res = {k: np.empty(B) for k in keys}
    res["x_T"] = np.empty_like(x)
    tot = {"nfe": 0, "jvp_calls": 0, "steps": 0, "rejected": 0, "wall_seconds": 0.0}
    route = taken = None
    ctx = None
    if not isinstance(model, str):
        ctx = Context(cov.frames, tuple(x.shape[2:]), per_call, cov, schedule,
                      OUTPUTS[kind], "pf-ode-encode")
    # ctx.cond: rows of the caller's cond (ctx.first is global: first_sample + index)
    cnd = None if cond is None else (cond, lambda c, u, first, ncond, b:
                                     _cond_call(c, u, first - first0, ncond, b))
    for lo in range(0, max(B, 1), per_call):
        xs = x[lo:lo + per_call]
        settings["first_sample"] = first0 + lo
        r = _corrsde.likelihood(model, ctx, xs, cov._h, schedule._h, kind, settings, cnd, jfn)
        for i, k in enumerate(keys):
            res[k][lo:lo + per_call] = r[i]
        res["x_T"][lo:lo + per_call] = r[7]
        for i, k in enumerate(("nfe", "jvp_calls", "steps", "rejected", "wall_seconds")):
            tot[k] += r[8 + i]
        route, taken = r[13], r[14]
    res.update(tot)
    res["divergence"], res["jvp"] = route, None if taken == "none" else taken
    return res


def elbo(model, x0, *, cov, schedule="ddpm-linear", draws=1, tdraws=0, seed=0, dequant=None,
         output=None, confidence=0.95, threads=1):
    """The discrete bound on -log p(x0) (MATH.md eq. 3 in full; csde_elbo), per sample.

    -log p(x0) <= L_T + sum_{t=2}^N L_{t-1} + L_0 for a discrete schedule of N steps
    (ddpm-linear[:n,b1,bN] or discrete:betas=...): L_T the KL of q(x_N | x0) to N(0, C),
    L_{t-1} = w_t E|delta - delta_theta(x_t)|^2 in the C^-1 norm (exact over every t
    with draws noise draws each, or tdraws sampled t ~ U{2..N} times (N - 1)), L_0 the
    Gaussian decoder -log N(x0; mu_theta(x_1), beta_1 C). model: a callable
    model(t, x, ctx) as solve's (a TorchModel too; output as solve's), or the spec of
    a built-in model ("gaussian:mean=M,std=S,rho=R", "gmm:file=P.h5", ...) or a Model.
    x0: the data [B, tau, *frame_shape]. dequant: None/"none" (continuous data, bpd =
    nll / (n ln 2)) or "uniform[:bits=B,scale=S,shift=H]" (x0 holds integers in [0, 2^B),
    dequantized y = S (k + u) + H with u keyed by the seed; bpd takes -log2(S) more:
    7 for 8-bit data in [-1, 1), the default). Every draw is keyed by seed and the
    sample's index: threads and batch never change a bit.
    Returns a dict of arrays [B]: nll, LT, Lsum, L0 (nats), se (the standard error of
    nll, NaN with one draw per term), lo, hi (its confidence interval, Student t),
    bpd; and nfe (model evaluations per sample).
    """
    if not isinstance(cov, Cov):
        raise TypeError("cov: expected a corrsde.Cov, got %s" % type(cov).__name__)
    if not isinstance(schedule, Schedule):
        schedule = Schedule(schedule)
    model = _builtin_of(model, cov, schedule, output, x0, "x0")
    if isinstance(model, str):
        output = "cscore"
    else:
        output = _model_output(model, output)
    if dequant is not None and not isinstance(dequant, str):
        raise TypeError("dequant: expected None or a spec str, got %s" % type(dequant).__name__)
    for name, v, lo in (("draws", draws, 1), ("tdraws", tdraws, 0), ("seed", seed, 0),
                        ("threads", threads, 1)):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < lo:
            raise ValueError("%s: expected an integer >= %d, got %r" % (name, lo, v))
    x = _states(x0, "x0", cov.frames)
    ctx = Context(cov.frames, tuple(x.shape[2:]), x.shape[0], cov, schedule, output, "elbo")
    res = _corrsde.elbo(model, ctx, x, cov._h, schedule._h, OUTPUTS.index(output),
                        (int(draws), int(tdraws), int(seed), float(confidence), int(threads),
                         dequant or "none"))
    keys = ("nll", "LT", "Lsum", "L0", "se", "lo", "hi", "bpd")
    out = dict(zip(keys, res[:8]))
    out["nfe"] = res[8]
    return out
