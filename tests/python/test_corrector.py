"""solve(corrector=): the C-preconditioned Langevin corrector from Python, as
`corrsde sample --corrector` (tests/test_corrector.c checks its law)."""
import numpy as np
import pytest

import corrsde

TAU = 5
C = corrsde.Cov("ar1:rho=0.8", frames=TAU)
S = corrsde.Schedule("vp-linear")
S0 = 0.3 * 0.9 ** np.abs(np.subtract.outer(np.arange(TAU), np.arange(TAU)))


def model(t, x, ctx):
    """C grad log p_t of N(0, S0) data: -C (abar S0 + (1 - abar) C)^-1 x."""
    ab = S.abar(t)
    return -np.einsum("ij,bj...->bi...", C.matrix @ np.linalg.inv(ab * S0 + (1 - ab) * C.matrix), x)


def run(**kw):
    x = np.random.default_rng(3).standard_normal((4, TAU, 3))
    args = dict(cov=C, schedule=S, process="reverse-sde", steps=10, seed=5)
    args.update(kw)
    return corrsde.solve(model, x, **args)


def test_off_is_the_run_without_it():
    base = run()
    for off in ("none", None):
        r = run(corrector=off)
        assert np.array_equal(r.x, base.x) and r.nfe == base.nfe == 10


def test_on_counts_its_steps_and_keeps_its_bits():
    spec = "langevin:snr=0.16,steps=2"
    a, b = run(corrector=spec), run(corrector=spec, threads=2)
    assert a.nfe == 10 * (1 + 2)
    assert np.array_equal(a.x, b.x)          # threads never change a bit
    assert not np.array_equal(a.x, run().x)  # and it does act
    assert np.array_equal(run(corrector=spec, process="pf-ode").x,
                          run(corrector=spec, process="pf-ode").x)


@pytest.mark.parametrize("kw, words", [
    (dict(corrector="langevin:snr=0"), "snr"),
    (dict(corrector="langevin:steps=0"), "steps"),
    (dict(corrector="langevin:bogus=1"), "bogus"),
    (dict(corrector="metropolis"), "langevin"),
    (dict(corrector="langevin", process="forward-sde"), "corrector"),
    (dict(corrector="langevin", process="pf-ode-encode"), "corrector"),
    (dict(corrector="langevin", steps=None, rtol=1e-3, noise="path"), "corrector"),
])
def test_refused_with_the_reason(kw, words):
    with pytest.raises(ValueError, match=words) as e:
        run(**kw)
    assert str(e.value).startswith("corrector: ")  # the keyword first, as every setting


def test_not_a_string():
    with pytest.raises(TypeError, match="corrector"):
        run(corrector=0.16)


def test_rci_loop_gives_solve_bits():
    """The loop of the user's own (corrsde.rci.Run) runs the corrector's model calls too."""
    from corrsde import rci
    spec = "langevin:snr=0.16,steps=2"
    want = run(corrector=spec)
    x = np.random.default_rng(3).standard_normal((4, TAU, 3))
    r = rci.Run(x, cov=C, schedule=S, process="reverse-sde", steps=10, seed=5, corrector=spec)
    while True:
        q = r.next()
        if q.what == "done":
            break
        if q.what == "eval":
            r.give(model(q.t, q.x, None))
    stats = r.end()
    assert stats["nfe"] == want.nfe == 30
    assert np.array_equal(q.x, want.x)
