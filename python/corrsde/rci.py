"""Reverse communication from Python: the caller evaluates the model (corrsde/run.h,
"reverse communication").

    run = corrsde.rci.Run(x, cov=C, process="pf-ode", solver="heun", steps=20, output="noise")
    while True:
        req = run.next()
        if req.what == "eval":            # the model at (req.t, req.x): answer with give()
            run.give(my_model(req.t, req.x))
        elif req.what == "step":          # req.x: the state after step req.step
            pass
        else:                             # "done": req.x is the final state
            break
    stats = run.end()

The solve is the library's csde_run_exec (any solver, adaptive and SDEs included), so the
states equal corrsde.solve()'s with the same settings and a model that gives the same
answers, bit for bit. req.x is a float64 numpy COPY of the run's states (nothing handed out
points into the run); the answer is copied in. numpy only: a torch or JAX model converts
on its side. corrsde.torch.Scheduler is a diffusers-style loop over this.
"""
import collections

from . import _corrsde
from . import OUTPUTS, _run_settings, _states

__all__ = ["Run", "Request"]

#: what csde_run_next asks for (csde_rci_what)
WHAT = {1: "eval", 2: "step", 3: "done"}

Request = collections.namedtuple("Request", "what step t x batch abar sigma")
Request.__doc__ = """A request of Run.next(): what ("eval", "step" or "done"), the step
(eval: the step being taken; step/done: steps done), t (eval: the time of the call; else the
state's), x (float64 [batch, tau, *frame_shape], a copy), batch, and for "eval" the
schedule's abar(t) and the VE sigma sqrt((1 - abar) / abar) (else nan)."""


class Run:
    """A run whose model the caller evaluates: next() -> Request, give(answer) after an
    "eval", end() -> dict of statistics (nfe, steps, accepted, rejected, wall_seconds,
    stopped). x: the start states [B, tau, *frame_shape] (copied; the run keeps its state
    in float64). The settings are solve()'s (cov, schedule, process, solver, steps, grid,
    rtol/atol, t_start/t_end, seed, noise, threads, max_nfe, eta, x0_clip, x0_threshold,
    corrector);
    output is the kind of the answers ("score", "cscore", "noise", "x0", "v").
    Out-of-turn calls raise ValueError with the library's message (next() with an answer
    owed, give() without a pending "eval"); a run that fails raises corrsde.Error from
    next() (and end()). end() before "done" stops the run (stopped True); a Run that is
    dropped ends itself. give(None, status=s) reports a failed evaluation as a model's
    return code (s > 0: retry a smaller step where adaptive; s < 0: fatal)."""

    def __init__(self, x, *, cov, schedule="vp-linear", process="reverse-sde", solver=None,
                 steps=100, grid="uniform", rtol=None, atol=None, output="cscore",
                 t_start=None, t_end=None, seed=0, noise="stream", threads=1, max_nfe=None,
                 eta=None, x0_clip=None, x0_threshold=None, corrector=None):
        if output not in OUTPUTS:
            raise ValueError("output: expected one of %s, got %r" % (", ".join(OUTPUTS), output))
        self.schedule, s = _run_settings(cov, schedule, process, solver, steps, grid, rtol, atol,
                                         t_start, t_end, seed, noise, threads, max_nfe, eta,
                                         x0_clip, x0_threshold, corrector)
        x = _states(x, "x", cov.frames)
        self.cov, self.output, self.shape = cov, output, x.shape
        self._h = _corrsde.rci_new(x, cov._h, self.schedule._h, OUTPUTS.index(output), s)
        self.done = False

    def next(self):
        what, step, t, x, batch, abar, sigma = _corrsde.rci_next(self._h)
        self.done = what == 3
        return Request(WHAT[what], step, t, x, batch, abar, sigma)

    def give(self, answer, status=0):
        if answer is not None and hasattr(answer, "detach"):  # a torch tensor
            answer = answer.detach().cpu().numpy()
        _corrsde.rci_give(self._h, answer, int(status))

    def end(self):
        nfe, steps, acc, rej, wall, stopped = _corrsde.rci_end(self._h)
        return {"nfe": nfe, "steps": steps, "accepted": acc, "rejected": rej,
                "wall_seconds": wall, "stopped": bool(stopped)}
