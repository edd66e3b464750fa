"""solve() on the gaussian paths (issue 28): rectified flow with a flow (velocity) model
against the exact PF-ODE map, and the prior N(0, p^2 C) with the path's span on edm.
Run: PYTHONPATH=build/python /usr/bin/python3 -m pytest -q tests/python/test_paths_run.py"""
import numpy as np
import pytest

import corrsde


def frame_apply(M, x):
    return np.einsum("ij,bj...->bi...", M, x)


def rf_shift3(u):
    """rf:shift=3: t' = 3 u / (1 + 2 u); alpha = 1 - t', sigma = t' and their derivatives."""
    tp = 3 * u / (1 + 2 * u)
    dtp = 3 / (1 + 2 * u) ** 2
    return 1 - tp, tp, -dtp, dtp


TAU = 6
K = np.abs(np.subtract.outer(np.arange(TAU), np.arange(TAU)))
S0 = 0.3 * 0.7 ** K + 0.1 * np.eye(TAU) + 0.05 * np.outer(np.arange(TAU), np.arange(TAU)) / TAU
M0 = 0.2  # the data mean, every entry


def gaussian_flow(C):
    """The gaussian's exact velocity E[alpha' x0 + sigma' V'z | x_t]
    = alpha' m + (alpha alpha' S0 + sigma sigma' C) Sigma_t^-1 (x - alpha m),
    Sigma_t = alpha^2 S0 + sigma^2 C."""
    Cm = C.matrix

    def f(t, x, ctx):
        a, s, da, ds = rf_shift3(t)
        St = a * a * S0 + s * s * Cm
        A = (a * da * S0 + s * ds * Cm) @ np.linalg.inv(St)
        return da * M0 + frame_apply(A, x - a * M0)
    return f


def test_rf_flow_model_matches_exact_pf_ode_map():
    """pf-ode on rf:shift=3 with output="flow" from its default span (0.999 -> 1e-3):
    x_eps = alpha_eps m + Phi (x_T - alpha_T m), Phi = L U diag(sqrt(s(eps)/s(T))) U^T L^-1
    (C = L L^T, L^-1 S0 L^-T = U diag(w) U^T, s_i(t) = alpha^2 w_i + sigma^2)."""
    C = corrsde.Cov("ar1:rho=0.9", frames=TAU)
    L = np.linalg.cholesky(C.matrix)
    Li = np.linalg.inv(L)
    w, U = np.linalg.eigh(Li @ S0 @ Li.T)
    T, eps = 0.999, 1e-3
    s = lambda t: rf_shift3(t)[0] ** 2 * w + rf_shift3(t)[1] ** 2
    Phi = L @ U @ np.diag(np.sqrt(s(eps) / s(T))) @ U.T @ Li
    xT = C.sample(3, (2,), seed=4)
    r = corrsde.solve(gaussian_flow(C), xT, cov=C, schedule="rf:shift=3", process="pf-ode",
                      output="flow", solver="dopri5", steps=0, rtol=1e-10, atol=1e-10)
    want = rf_shift3(eps)[0] * M0 + frame_apply(Phi, xT - rf_shift3(T)[0] * M0)
    err = np.abs(r.x - want).max()
    assert err <= 1e-8 * np.abs(want).max(), err


def test_edm_prior_is_scaled_and_span_is_the_paths():
    """edm (smin 0.002, smax 80): x=None draws N(0, 80^2 C) (the VP draw times 80), and the
    reverse run goes 80 -> 0.002; a t_end below smin is refused naming the span."""
    C = corrsde.Cov("ar1:rho=0.9", frames=4)
    zero = lambda t, x, ctx: np.zeros_like(x)
    r = corrsde.solve(zero, cov=C, schedule="edm", process="pf-ode", output="cscore",
                      solver="euler", steps=3, batch=2, frame_shape=(3,), seed=9,
                      save="every:1")
    x0 = C.sample(2, (3,), seed=9)
    assert np.array_equal(r.states[0], 80.0 * x0)
    assert r.t[0] == 80.0 and r.t[-1] == 0.002
    with pytest.raises(ValueError, match=r"\[0\.002, 80\]"):
        corrsde.solve(zero, cov=C, schedule="edm", process="pf-ode", output="cscore",
                      solver="euler", steps=3, t_end=0.001)
