"""Graded tests of the second-order training exercises (solutions/08_second_order_training.ipynb).

The learner's functions run in the notebook's kernel with minigrad.optim's own versions of
the same pieces switched off; references are computed here from minigrad.optim.
"""
import numpy as np
import pytest

import minigrad
from minigrad import optim
import gradetools
from gradetools import raises_value_error

NOTEBOOK = "08_second_order_training"

#: the shipped pieces, off while the learner's code runs
FORBID = ("minigrad.optim.progress_stalled", "minigrad.optim.diagonal_preconditioner",
          "minigrad.optim.backtrack", "minigrad.optim.adam_update", "minigrad.optim.cg")


def close(got, want, tol=1e-12):
    return gradetools.close(got, want, tol)


# ---------------------------------------------------------------- 8.1
def slowing(c=1.0, rate=0.8, length=60):
    """q-values of an iteration whose progress slows down geometrically, scaled by c."""
    return [c * (-1.0 + rate ** i) for i in range(length)]


@pytest.mark.exercise("8.1", points=3)
@pytest.mark.parametrize("c, rate", [(1.0, 0.8), (1e-4, 0.8), (1e3, 0.9)])
def test_progress_test_stops_where_martens_does(nb, c, rate):
    phi = slowing(c, rate, 80)
    got = nb.eval("[progress_stalled(phi[:i + 1]) for i in range(len(phi))]", forbid=FORBID,
                  phi=phi)
    assert list(got) == [optim.progress_stalled(phi[:i + 1]) for i in range(len(phi))]


@pytest.mark.exercise("8.1", points=3)
def test_progress_test_window_sign_and_eps(nb):
    cases = [([0.0] + [-1.0] * 10, 5e-4), ([0.0] + [-1.0] * 11, 5e-4), ([0.0] + [1.0] * 30, 5e-4),
             (slowing(length=200), 5e-4), (slowing(length=35), 1e-1), (slowing(length=35), 1e-6)]
    for phi, eps in cases:
        got = nb.call("progress_stalled", phi, eps, forbid=FORBID)
        assert bool(got) == optim.progress_stalled(phi, eps), (len(phi), eps)


# ---------------------------------------------------------------- 8.2
@pytest.mark.exercise("8.2", points=3)
@pytest.mark.parametrize("B, n, damping, exponent", [(5, 3, 0.5, 0.75), (40, 7, 0.0, 1.0),
                                                     (3, 4, 2.0, 0.5)])
def test_preconditioner_formula(nb, B, n, damping, exponent):
    S = np.random.default_rng(B).standard_normal((B, n))
    got = nb.call("diagonal_preconditioner", S, damping, exponent, forbid=FORBID)
    assert close(got, optim.diagonal_preconditioner(S, damping, exponent))


@pytest.mark.exercise("8.2", points=3)
def test_preconditioner_from_a_network_and_bad_input(nb):
    rng = np.random.default_rng(82)
    model = minigrad.Sequential(minigrad.Linear(4, 5, rng=0), minigrad.Tanh(),
                                minigrad.Linear(5, 3, rng=1))
    X, t = rng.standard_normal((25, 4)), rng.integers(0, 3, size=25)
    S = minigrad.per_sample_grads(model, minigrad.SoftmaxCrossEntropy(), X, t)
    got = nb.call("diagonal_preconditioner", S, 0.1, forbid=FORBID)
    assert close(got, optim.diagonal_preconditioner(S, 0.1))
    raises_value_error(lambda: nb.call("diagonal_preconditioner", S[0], 0.1, forbid=FORBID))
    raises_value_error(lambda: nb.call("diagonal_preconditioner", S, -1.0, forbid=FORBID))


# ---------------------------------------------------------------- 8.3
#: f(alpha) = slope * alpha + curv * alpha^2 / 2 along the line; COUNTED also counts the calls
COUNTED = ("(lambda calls: (backtrack(lambda a: (calls.append(a), slope * a + 0.5 * curv * a * a)[1],"
           " 0.0, slope, shrink, c, tries), len(calls)))([])")


def reference(slope, curv, shrink, c, tries):
    f = lambda a: slope * a + 0.5 * curv * a * a
    alpha, value, _ = optim.backtrack(f, 0.0, slope, shrink=shrink, c=c, tries=tries)
    return alpha, value


@pytest.mark.exercise("8.3", points=4)
@pytest.mark.parametrize("slope, curv, shrink, c", [(-1.0, 1.998, 0.8, 1e-2), (-2.0, 1.0, 0.5, 0.1),
                                                    (-1.0, 10.0, 0.8, 1e-2), (-0.5, 0.5, 0.9, 0.4)])
def test_backtracking_accepts_the_first_sufficient_decrease(nb, slope, curv, shrink, c):
    (alpha, value), calls = nb.eval(COUNTED, forbid=FORBID, slope=slope, curv=curv, shrink=shrink,
                                    c=c, tries=20)
    want = reference(slope, curv, shrink, c, 20)
    assert close(alpha, want[0]) and close(value, want[1])
    assert calls == round(np.log(want[0]) / np.log(shrink)) + 1      # one call per alpha tried


@pytest.mark.exercise("8.3", points=4)
def test_backtracking_gives_up_after_tries(nb):
    (alpha, value), calls = nb.eval(COUNTED, forbid=FORBID, slope=-1.0, curv=1e6, shrink=0.5,
                                    c=1e-2, tries=4)
    assert (alpha, value) == (0.0, 0.0) and calls == 4


# ---------------------------------------------------------------- 8.4
@pytest.mark.exercise("8.4", points=3)
@pytest.mark.parametrize("t, lr, betas", [(1, 0.01, (0.9, 0.999)), (7, 0.3, (0.5, 0.9)),
                                          (100, 1e-3, (0.9, 0.999))])
def test_adam_update_matches(nb, t, lr, betas):
    rng = np.random.default_rng(t)
    w, m, g = rng.standard_normal(6), rng.standard_normal(6), rng.standard_normal(6)
    v = rng.standard_normal(6) ** 2
    got = nb.call("adam_update", w, m, v, g, t, lr, *betas, 1e-8, forbid=FORBID)
    want = optim.adam_update(w, m, v, g, t, lr, *betas, 1e-8)
    assert all(close(a, b) for a, b in zip(got, want))


@pytest.mark.exercise("8.4", points=3)
def test_adam_first_step_has_length_lr_at_any_gradient_scale(nb):
    g = np.array([1e-3, -5.0, 200.0])
    w, m, v = nb.call("adam_update", np.zeros(3), np.zeros(3), np.zeros(3), g, 1, 0.01,
                      forbid=FORBID)
    assert close(w, -0.01 * np.sign(g), tol=1e-6)
    assert close(m, 0.1 * g) and close(v, 0.001 * g * g)
