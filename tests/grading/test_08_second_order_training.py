"""Graded tests of the second-order training exercises (solutions/08_second_order_training.ipynb).

The learner's functions run in the notebook's kernel with minigrad.optim's own solvers and
every dense shortcut switched off; references are computed here with dense numpy solves and
minigrad's full Gauss-Newton matrix.
"""
import numpy as np
import pytest

import minigrad
import gradetools
from gradetools import raises_value_error

NOTEBOOK = "08_second_order_training"

#: a converged CG solve agrees with a dense solve up to rounding of a well-conditioned system
TOL = 1e-8

#: the shipped solvers and the dense shortcuts, off while the learner's code runs
FORBID_SOLVE = ("minigrad.optim.cg", "minigrad.optim.GaussNewton", "minigrad.optim.Newton",
                "minigrad.optim._Damped.step", "numpy.linalg.solve", "numpy.linalg.inv",
                "numpy.linalg.pinv", "numpy.linalg.lstsq", "scipy.linalg.solve",
                "scipy.sparse.linalg.cg")
FORBID_GN = FORBID_SOLVE + ("minigrad.gauss_newton", "minigrad.derivatives.gauss_newton",
                            "minigrad.hessian", "minigrad.derivatives.hessian",
                            "minigrad.jacobian", "minigrad.derivatives.jacobian")
FORBID_SGD = ("minigrad.optim.SGD", "minigrad.optim.SGD.step")


def close(got, want, tol=TOL):
    return gradetools.close(got, want, tol)


def spd_system(n, cond, seed, eigenvalues=None):
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    lam = np.geomspace(1.0, cond, n) if eigenvalues is None else np.asarray(eigenvalues)
    return Q @ np.diag(lam) @ Q.T, rng.standard_normal(n)


# the learner's CG with A given as a matrix; COUNTED also returns the number of products
CG = "conjugate_gradient(lambda v: A @ v, b, tol, maxiter)"
COUNTED = ("(lambda calls: (conjugate_gradient(lambda v: (calls.append(1), A @ v)[1], b, tol, "
           "maxiter), len(calls)))([])")


# ---------------------------------------------------------------- 8.1
@pytest.mark.exercise("8.1", points=4)
@pytest.mark.parametrize("n, cond", [(5, 10.0), (20, 1e3)])
def test_cg_solves_spd_systems(nb, n, cond):
    A, b = spd_system(n, cond, seed=81)
    got = nb.eval(CG, forbid=FORBID_SOLVE, A=A, b=b, tol=1e-13, maxiter=20 * n)
    assert close(got, np.linalg.solve(A, b))


@pytest.mark.exercise("8.1", points=4)
def test_cg_needs_one_product_per_distinct_eigenvalue(nb):
    A, b = spd_system(10, None, seed=82, eigenvalues=[1.0] * 4 + [3.0] * 3 + [10.0] * 3)
    x, calls = nb.eval(COUNTED, forbid=FORBID_SOLVE, A=A, b=b, tol=1e-12, maxiter=3)
    assert calls <= 4                      # three steps (one product for r = b - A x0 tolerated)
    assert close(x, np.linalg.solve(A, b))


@pytest.mark.exercise("8.1", points=4)
def test_cg_truncated_iterate_matches_the_algorithm(nb):
    # after k steps CG's iterate is fixed by the algorithm: compare with minigrad's CG
    A, b = spd_system(15, 1e4, seed=83)
    for k in (1, 4):
        x, calls = nb.eval(COUNTED, forbid=FORBID_SOLVE, A=A, b=b, tol=1e-14, maxiter=k)
        want, _ = minigrad.optim.cg(lambda v: A @ v, b, tol=1e-14, maxiter=k)
        assert calls <= k + 1
        assert close(x, want, tol=1e-7)


@pytest.mark.exercise("8.1", points=4)
def test_cg_of_zero_and_bad_input(nb):
    A, _ = spd_system(4, 10.0, seed=84)
    x, calls = nb.eval(COUNTED, forbid=FORBID_SOLVE, A=A, b=np.zeros(4), tol=1e-10, maxiter=10)
    assert calls == 0 and close(x, np.zeros(4))
    raises_value_error(lambda: nb.eval(CG, forbid=FORBID_SOLVE, A=A, b=np.ones((4, 1)),
                                       tol=1e-10, maxiter=10))


# ---------------------------------------------------------------- 8.2
@pytest.mark.exercise("8.2", points=2)
def test_reduction_ratio(nb):
    rng = np.random.default_rng(85)
    A, _ = spd_system(6, 10.0, seed=86)
    for C_old, C_new in [(2.0, 1.2), (1.0, 1.5)]:
        g, d = rng.standard_normal(6), rng.standard_normal(6)
        Gd = A @ d
        want = (C_old - C_new) / -(g @ d + 0.5 * d @ Gd)
        assert close(nb.call("reduction_ratio", C_old, C_new, g, d, Gd), want, tol=1e-12)


@pytest.mark.exercise("8.2", points=2)
@pytest.mark.parametrize("rho, factor", [(1.3, 2 / 3), (0.9, 2 / 3), (0.75, 1.0), (0.5, 1.0),
                                         (0.25, 1.0), (0.1, 1.5), (-3.0, 1.5)])
def test_update_damping(nb, rho, factor):
    assert close(nb.call("update_damping", 0.6, rho), 0.6 * factor, tol=1e-12)


# ---------------------------------------------------------------- 8.3
MLP = ("minigrad.Sequential(minigrad.Linear(4, 5, rng=0), minigrad.Tanh(), "
       "minigrad.Linear(5, 3, rng=1))")
STEP = "damped_gauss_newton_step(model, loss, X, T, damping, cg_iters)"


def mlp():
    return eval(MLP)                      # the twin of the kernel's model, built here


def classification(seed, B=25):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((B, 4)), rng.integers(0, 3, size=B)


def dense_step(model, loss, X, T, damping):
    G, g = minigrad.gauss_newton(model, loss, X, T), minigrad.grad(model, loss, X, T)
    return np.linalg.solve(G + damping * np.eye(g.size), -g)


def gn_eval(nb, model_expr, loss_expr, X, T, damping, cg_iters, returns=STEP):
    expr = f"(lambda model, loss: {returns})({model_expr}, {loss_expr})"
    return nb.eval(expr, forbid=FORBID_GN, X=X, T=T, damping=damping, cg_iters=cg_iters)


@pytest.mark.exercise("8.3", points=4)
@pytest.mark.parametrize("damping", [0.05, 1.0])
def test_damped_step_matches_dense_solve(nb, damping):
    X, t = classification(87)
    got = gn_eval(nb, MLP, "minigrad.SoftmaxCrossEntropy()", X, t, damping, 500)
    want = dense_step(mlp(), minigrad.SoftmaxCrossEntropy(), X, t, damping)
    assert close(got, want, tol=1e-7)


@pytest.mark.exercise("8.3", points=4)
def test_undamped_step_solves_linear_least_squares(nb):
    rng = np.random.default_rng(88)
    X, Y = rng.standard_normal((30, 4)), rng.standard_normal((30, 2))
    got = gn_eval(nb, "minigrad.Linear(4, 2, rng=0)", "minigrad.MSELoss()", X, Y, 0.0, 100)
    layer = minigrad.Linear(4, 2, rng=0)
    w0 = minigrad.parameters_to_vector(layer)
    Wb = np.linalg.lstsq(np.hstack([X, np.ones((30, 1))]), Y, rcond=None)[0]
    want = np.concatenate([Wb[:-1].T.ravel(), Wb[-1]]) - w0
    assert close(got, want, tol=1e-7)


@pytest.mark.exercise("8.3", points=4)
def test_large_damping_gives_a_short_gradient_step_and_the_model_is_unchanged(nb):
    X, t = classification(89)
    lam = 1e6
    d, w_after = gn_eval(nb, MLP, "minigrad.SoftmaxCrossEntropy()", X, t, lam, 20,
                         returns=f"({STEP}, minigrad.parameters_to_vector(model))")
    g = minigrad.grad(mlp(), minigrad.SoftmaxCrossEntropy(), X, t)
    assert close(np.asarray(d) * lam, -g, tol=1e-4)
    assert close(w_after, minigrad.parameters_to_vector(mlp()), tol=0.0)


@pytest.mark.exercise("8.3", points=4)
def test_truncated_step_uses_at_most_cg_iters_products(nb):
    X, t = classification(90)
    counted = ("(lambda real: (setattr(minigrad, 'ggn_vp', lambda *a: (calls.append(1), "
               "real(*a))[1]), [" + STEP + "], setattr(minigrad, 'ggn_vp', real)))"
               "(minigrad.ggn_vp)[1][0]")
    expr = f"(lambda model, loss: ({counted}, len(calls)))({MLP}, minigrad.SoftmaxCrossEntropy())"
    d, calls = nb.eval(expr, forbid=FORBID_GN, X=X, T=t, damping=0.5, cg_iters=3, calls=[])
    assert calls <= 4                  # at most cg_iters products (one more tolerated)
    assert np.all(np.isfinite(d))
    raises_value_error(lambda: gn_eval(nb, MLP, "minigrad.SoftmaxCrossEntropy()", X, t, -1.0, 5))


# ---------------------------------------------------------------- 8.4
@pytest.mark.exercise("8.4", points=2)
def test_momentum_step_formula(nb):
    rng = np.random.default_rng(91)
    w, v, g = rng.standard_normal(7), rng.standard_normal(7), rng.standard_normal(7)
    w1, v1 = nb.call("momentum_step", w, v, g, 0.3, 0.8, forbid=FORBID_SGD)
    assert close(v1, 0.8 * v + g, tol=1e-14) and close(w1, w - 0.3 * (0.8 * v + g), tol=1e-14)


@pytest.mark.exercise("8.4", points=2)
def test_momentum_steps_follow_minigrad_sgd(nb):
    # three steps on a linear least-squares problem, against minigrad.optim.SGD here
    rng = np.random.default_rng(92)
    X, Y = rng.standard_normal((10, 3)), rng.standard_normal((10, 2))
    layer, loss = minigrad.Linear(3, 2, rng=0), minigrad.MSELoss()
    twin = minigrad.Linear(3, 2, rng=0)
    sgd = minigrad.optim.SGD(twin, loss, lr=0.2, momentum=0.7)
    w, v = minigrad.parameters_to_vector(layer), np.zeros(8)
    for _ in range(3):
        minigrad.vector_to_parameters(w, layer)
        g = minigrad.grad(layer, loss, X, Y)
        w, v = nb.call("momentum_step", w, v, g, 0.2, 0.7, forbid=FORBID_SGD)
        sgd.step(X, Y)
    assert close(w, minigrad.parameters_to_vector(twin), tol=1e-12)


@pytest.mark.exercise("8.4", points=2)
def test_momentum_step_rejects_bad_input(nb):
    z = np.zeros(3)
    raises_value_error(lambda: nb.call("momentum_step", z, z, z, 0.0, 0.5, forbid=FORBID_SGD))
    raises_value_error(lambda: nb.call("momentum_step", z, z, z, 0.1, 1.0, forbid=FORBID_SGD))
    raises_value_error(lambda: nb.call("momentum_step", z, z, z, 0.1, -0.1, forbid=FORBID_SGD))
    raises_value_error(lambda: nb.call("momentum_step", z, np.zeros(2), z, 0.1, 0.5,
                                       forbid=FORBID_SGD))
