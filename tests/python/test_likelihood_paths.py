"""corrsde.likelihood on the Gaussian paths (issue 28): the exact gaussian model's log p_eps(x)
on edm, ve and rf:shift=3 against the closed form log N(x; alpha m, alpha^2 S0 + sigma^2 C),
the prior N(0, p^2 C) with p = schedule.prior_scale(), the default ends of the path, a Python
flow model on rf with the directional route; corrsde.elbo refuses a path naming it."""
import math

import numpy as np
import pytest

import corrsde

TAU, D, M, STD, RHO = 4, 2, 0.3, 0.7, 0.9
SPEC = "gaussian:mean=%r,std=%r,rho=%r" % (M, STD, RHO)
C = corrsde.Cov("ar1:rho=0.6", frames=TAU)
IDX = np.arange(TAU)
S0 = STD ** 2 * RHO ** np.abs(np.subtract.outer(IDX, IDX))
X = np.random.default_rng(28).normal(0.2, 0.8, size=(3, TAU, D))


def log_normal(x, S, t, scale=None):
    """log N(x; alpha m, Sigma_t (x) I_D) on S's path, or with scale: log N(x; 0, scale^2 C)."""
    if scale is None:
        a, s = S.alpha(t), S.sigma_path(t)
        cov, mu = a * a * S0 + s * s * C.matrix, a * M
    else:
        cov, mu = scale ** 2 * C.matrix, 0.0
    L = np.linalg.cholesky(cov)
    z = np.linalg.solve(L, x - mu)
    return (-0.5 * np.sum(z ** 2, axis=(1, 2)) - D * np.sum(np.log(np.diag(L)))
            - 0.5 * TAU * D * math.log(2 * math.pi))


@pytest.mark.parametrize("spec, eps, T", [("edm", 0.002, 80.0), ("ve", 1e-3, 1.0),
                                          ("rf:shift=3", 1e-3, 0.999)])
def test_gaussian_exact_is_the_closed_form_on_the_path(spec, eps, T):
    S = corrsde.Schedule(spec)
    r = corrsde.likelihood(SPEC, X, cov=C, schedule=S, divergence="exact", rtol=1e-10,
                           atol=1e-10)
    want = log_normal(X, S, eps)  # the defaults: eps 1e-3 (edm smin), T the path's
    got = r["delta"] + log_normal(r["x_T"], S, T)
    assert np.all(np.abs(got - want) <= 1e-7), (got - want)
    prior = log_normal(r["x_T"], S, T, scale=S.prior_scale())
    assert np.allclose(r["prior"], prior, rtol=1e-12, atol=0), (r["prior"], prior)
    assert np.array_equal(r["logp"], r["prior"] + r["delta"])


def test_flow_model_on_rf_directional():
    """A Python flow model (the gaussian's exact velocity) with central differences gives the
    closed form too: the conversion s = 2 (f x - u) / g^2 is the process layer's."""
    S = corrsde.Schedule("rf:shift=3")

    def flow(t, x, ctx):  # u = f x - 1/2 g^2 C grad log p_t
        a, s = S.alpha(t), S.sigma_path(t)
        A = C.matrix @ np.linalg.inv(a * a * S0 + s * s * C.matrix)
        return S.f(t) * x + 0.5 * S.g2(t) * np.einsum("ij,bjd->bid", A, x - a * M)

    r = corrsde.likelihood(flow, X, cov=C, schedule=S, output="flow", divergence="directional",
                           jvp="fd", rtol=1e-9, atol=1e-9)
    want = log_normal(X, S, 1e-3)
    got = r["delta"] + log_normal(r["x_T"], S, 0.999)
    assert np.all(np.abs(got - want) <= 1e-6), (got - want)


def test_rf_at_t_end_one_and_elbo_on_a_path_are_refused():
    with pytest.raises(ValueError, match=r"eps/t_end.*'rf:shift=3'.*infinite at T = 1"):
        corrsde.likelihood(SPEC, X, cov=C, schedule="rf:shift=3", t_end=1.0)
    with pytest.raises(ValueError, match=r"VP-only: schedule 'edm:smin=0.002,smax=80'"):
        corrsde.elbo(SPEC, X, cov=C, schedule="edm")
