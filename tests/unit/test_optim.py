"""minigrad.optim: conjugate gradients, SGD with momentum, damped Gauss-Newton and Newton."""
import numpy as np
import pytest

import minigrad as mg
from minigrad import optim

#: a converged CG solve or an exact step agrees with a dense solve up to rounding
TOL = 1e-8


def spd_system(n=12, seed=0, cond=100.0):
    """A symmetric positive definite A (n, n) with eigenvalues in [1, cond], and b (n,)."""
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    A = Q @ np.diag(np.geomspace(1.0, cond, n)) @ Q.T
    return A, rng.standard_normal(n)


def least_squares(seed=1, B=30, m=4, o=2):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((B, m)), rng.standard_normal((B, o))


def mlp(seed=2, m=4, h=5, o=3):
    rng = np.random.default_rng(seed)
    return mg.Sequential(mg.Linear(m, h, rng=rng), mg.Tanh(), mg.Linear(h, o, rng=rng))


# ---------------------------------------------------------------- cg
def test_cg_solves_a_known_system_to_tolerance():
    A, b = spd_system()
    x, info = optim.cg(lambda v: A @ v, b, tol=1e-12, maxiter=100)
    assert info["converged"] and info["residual"] <= 1e-12
    assert np.linalg.norm(A @ x - b) <= 1e-10 * np.linalg.norm(b)
    assert np.allclose(x, np.linalg.solve(A, b), rtol=TOL, atol=TOL)


def test_cg_needs_at_most_one_step_per_distinct_eigenvalue():
    rng = np.random.default_rng(3)
    Q, _ = np.linalg.qr(rng.standard_normal((10, 10)))
    A = Q @ np.diag([1.0] * 5 + [4.0] * 3 + [9.0] * 2) @ Q.T       # 3 distinct eigenvalues
    x, info = optim.cg(lambda v: A @ v, rng.standard_normal(10), tol=1e-10)
    assert info["converged"] and info["iterations"] <= 3


def test_cg_respects_maxiter_and_reports_it():
    A, b = spd_system(cond=1e4)
    x, info = optim.cg(lambda v: A @ v, b, maxiter=2)
    assert info["iterations"] == 2 and not info["converged"]
    assert info["residual"] == pytest.approx(np.linalg.norm(A @ x - b) / np.linalg.norm(b))


def test_cg_decreases_the_quadratic_from_a_warm_start():
    A, b = spd_system(seed=4, cond=1e3)
    q = lambda x: 0.5 * x @ A @ x - b @ x
    x0 = np.ones(b.size)
    x, _ = optim.cg(lambda v: A @ v, b, x0=x0, maxiter=3)
    assert q(x) < q(x0)


def test_cg_stops_on_negative_curvature():
    A = np.diag([1.0, -1.0])
    x, info = optim.cg(lambda v: A @ v, np.array([1.0, 1.0]))
    assert info["negative_curvature"] and not info["converged"]
    assert np.all(np.isfinite(x))


def test_cg_of_zero_right_hand_side_is_zero():
    x, info = optim.cg(lambda v: 2.0 * v, np.zeros(3))
    assert np.all(x == 0.0) and info["converged"] and info["iterations"] == 0


@pytest.mark.parametrize("kwargs, message", [
    ({"matvec": "not a function"}, "matvec"),
    ({"b": np.zeros((2, 2))}, "b must be"),
    ({"b": np.array([1.0, np.nan])}, "non-finite"),
    ({"tol": -1.0}, "tol"),
    ({"maxiter": 0}, "maxiter"),
    ({"x0": np.zeros(3)}, "x0"),
    ({"matvec": lambda v: np.zeros(3)}, "matvec must return"),
])
def test_cg_rejects_bad_input(kwargs, message):
    args = {"matvec": lambda v: v, "b": np.ones(2)}
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        optim.cg(args.pop("matvec"), args.pop("b"), **args)


# ---------------------------------------------------------------- Gauss-Newton
def test_gauss_newton_solves_linear_least_squares_in_one_undamped_step():
    X, Y = least_squares()
    model = mg.Linear(4, 2, rng=0)
    opt = optim.GaussNewton(model, mg.MSELoss(), damping=0.0, adapt=False, cg_iters=100)
    info = opt.step(X, Y)
    assert info["accepted"] and info["rho"] == pytest.approx(1.0, abs=1e-8)
    # the least-squares solution of [X 1] [W b]^T = Y
    A = np.hstack([X, np.ones((X.shape[0], 1))])
    Wb = np.linalg.lstsq(A, Y, rcond=None)[0]
    assert np.allclose(model.W, Wb[:-1].T, atol=TOL) and np.allclose(model.b, Wb[-1], atol=TOL)
    assert np.linalg.norm(mg.grad(model, mg.MSELoss(), X, Y)) < TOL


def test_gauss_newton_step_matches_the_dense_damped_solve():
    X, Y = least_squares(seed=5, m=4, o=3)
    model, twin = mlp(), mlp()
    loss = mg.MSELoss()
    w0 = mg.parameters_to_vector(model)
    G, g = mg.gauss_newton(model, loss, X, Y), mg.grad(model, loss, X, Y)
    d = np.linalg.solve(G + 0.5 * np.eye(g.size), -g)
    optim.GaussNewton(model, loss, damping=0.5, adapt=False, cg_iters=500).step(X, Y)
    optim.Newton(twin, loss, damping=0.5).step(X, Y)
    assert np.allclose(mg.parameters_to_vector(model) - w0, d, atol=1e-7)
    assert np.allclose(mg.parameters_to_vector(twin) - w0, d, atol=TOL)


@pytest.mark.parametrize("make", [
    lambda model, loss: optim.GaussNewton(model, loss, damping=1.0, cg_iters=20),
    lambda model, loss: optim.SGD(model, loss, lr=0.3, momentum=0.0),
    lambda model, loss: optim.Newton(model, loss, damping=1e-3),
])
def test_loss_decreases_monotonically_on_a_convex_problem(make):
    # softmax regression: a linear model with cross-entropy is convex in (W, b)
    rng = np.random.default_rng(6)
    X, labels = rng.standard_normal((40, 3)), rng.integers(0, 3, 40)
    model, loss = mg.Linear(3, 3, rng=0), mg.SoftmaxCrossEntropy()
    history = optim.train(make(model, loss), X, labels, 15)
    assert np.all(np.diff(history["loss"]) <= 0)          # never up ...
    assert np.all(np.diff(history["loss"][:4]) < 0)       # ... and down while far away
    assert history["loss"][-1] < history["loss"][0] - 0.1


def test_damping_shrinks_when_the_quadratic_model_is_exact():
    # a linear model with MSE: the loss is its own quadratic model, rho = 1
    X, Y = least_squares(seed=7, m=4, o=3)
    opt = optim.GaussNewton(mg.Linear(4, 3, rng=0), mg.MSELoss(), damping=1.0, cg_iters=50)
    info = opt.step(X, Y)
    assert info["accepted"] and info["rho"] == pytest.approx(1.0)
    assert info["damping"] == 1.0 and opt.damping == pytest.approx(optim.DAMPING_DOWN)


class Overshooting(optim.GaussNewton):
    """A Gauss-Newton whose step is 100 times too long."""

    def _solve(self, X, T, g):
        d, info = super()._solve(X, T, g)
        return 100.0 * d, info


def test_a_step_that_raises_the_loss_is_rejected_and_the_damping_grows():
    X, Y = least_squares(seed=12)
    model, loss = mg.Linear(4, 2, rng=0), mg.MSELoss()
    w0 = mg.parameters_to_vector(model)
    opt = Overshooting(model, loss, damping=0.1, cg_iters=50)
    info = opt.step(X, Y)
    assert not info["accepted"] and info["rho"] < 0
    assert info["new_loss"] == info["loss"] == pytest.approx(loss(model(X), Y))
    assert np.array_equal(mg.parameters_to_vector(model), w0)
    assert opt.damping == pytest.approx(0.1 * optim.DAMPING_UP)


def test_damping_is_fixed_without_adapt():
    X, Y = least_squares(seed=13)
    opt = Overshooting(mg.Linear(4, 2, rng=0), mg.MSELoss(), damping=0.1, adapt=False)
    opt.step(X, Y)
    assert opt.damping == 0.1


def test_newton_with_the_hessian_equals_gauss_newton_for_a_linear_model():
    # a linear model has no curvature of its own: H = G
    rng = np.random.default_rng(14)
    X, labels = rng.standard_normal((20, 3)), rng.integers(0, 4, 20)
    loss = mg.SoftmaxCrossEntropy()
    a, b = mg.Linear(3, 4, rng=0), mg.Linear(3, 4, rng=0)
    optim.Newton(a, loss, damping=0.1, curvature="hessian").step(X, labels)
    optim.Newton(b, loss, damping=0.1, curvature="gauss_newton").step(X, labels)
    assert np.allclose(mg.parameters_to_vector(a), mg.parameters_to_vector(b), atol=TOL)


def test_gauss_newton_trains_a_small_network_faster_than_gradient_descent():
    rng = np.random.default_rng(8)
    X = rng.standard_normal((50, 4))
    Y = np.sin(X @ rng.standard_normal((4, 3)))
    loss = mg.MSELoss()
    gn = optim.train(optim.GaussNewton(mlp(), loss, damping=1.0, cg_iters=30), X, Y, 20)
    sgd = optim.train(optim.SGD(mlp(), loss, lr=0.05, momentum=0.9), X, Y, 20)
    assert gn["loss"][-1] < 0.5 * sgd["loss"][-1]
    assert all(i["cg_iterations"] <= 30 for i in gn["info"])


# ---------------------------------------------------------------- SGD
def test_sgd_momentum_update_rule():
    X, Y = least_squares(seed=9)
    model, loss = mg.Linear(4, 2, rng=0), mg.MSELoss()
    opt = optim.SGD(model, loss, lr=0.1, momentum=0.5)
    w0 = mg.parameters_to_vector(model)
    g0 = mg.grad(model, loss, X, Y)
    info = opt.step(X, Y)
    w1 = mg.parameters_to_vector(model)
    assert np.allclose(w1, w0 - 0.1 * g0, atol=1e-14)
    assert info["loss"] == pytest.approx(loss(X @ w0[:8].reshape(2, 4).T + w0[8:], Y))
    g1 = mg.grad(model, loss, X, Y)
    opt.step(X, Y)
    assert np.allclose(mg.parameters_to_vector(model), w1 - 0.1 * (0.5 * g0 + g1), atol=1e-14)


# ---------------------------------------------------------------- train
def test_train_history_shapes_and_times():
    X, Y = least_squares(seed=10)
    model, loss = mg.Linear(4, 2, rng=0), mg.MSELoss()
    history = optim.train(optim.SGD(model, loss, lr=0.1), X, Y, 7)
    assert history["loss"].shape == (8,) and history["time"].shape == (8,)
    assert len(history["info"]) == 7 and history["time"][0] == 0.0
    assert np.all(np.diff(history["time"]) >= 0)
    assert history["loss"][-1] == pytest.approx(loss(model(X), Y))


def test_train_progress_bar_goes_to_stderr(capsys):
    X, Y = least_squares(seed=11)
    optim.train(optim.SGD(mg.Linear(4, 2, rng=0), mg.MSELoss(), lr=0.1), X, Y, 3,
                progress=True, desc="sgd")
    out, err = capsys.readouterr()
    assert out == "" and "sgd" in err
    optim.train(optim.SGD(mg.Linear(4, 2, rng=0), mg.MSELoss(), lr=0.1), X, Y, 3)
    assert capsys.readouterr() == ("", "")


# ---------------------------------------------------------------- errors
@pytest.mark.parametrize("make, message", [
    (lambda m, l: optim.SGD("model", l, lr=0.1), "model must be a minigrad Module"),
    (lambda m, l: optim.SGD(m, "loss", lr=0.1), "loss must be a minigrad Loss"),
    (lambda m, l: optim.SGD(m, l, lr=0.0), "lr must be > 0"),
    (lambda m, l: optim.SGD(m, l, lr=0.1, momentum=1.0), "momentum must be < 1"),
    (lambda m, l: optim.SGD(m, l, lr=np.nan), "finite"),
    (lambda m, l: optim.GaussNewton(m, l, damping=-1.0), "damping must be > 0"),
    (lambda m, l: optim.GaussNewton(m, l, damping=0.0), "damping must be > 0"),
    (lambda m, l: optim.GaussNewton(m, l, damping=-1.0, adapt=False), "damping must be >= 0"),
    (lambda m, l: optim.GaussNewton(m, l, cg_iters=0), "cg_iters"),
    (lambda m, l: optim.Newton(m, l, curvature="fisher"), "curvature must be one of"),
    (lambda m, l: optim.SGD(mg.Tanh(), l, lr=0.1), "no parameters"),
])
def test_constructors_reject_bad_input(make, message):
    with pytest.raises(ValueError, match=message):
        make(mg.Linear(2, 2, rng=0), mg.MSELoss())


def test_step_rejects_a_wrong_batch_shape():
    opt = optim.GaussNewton(mg.Linear(2, 2, rng=0), mg.MSELoss())
    with pytest.raises(ValueError, match=r"expected X of shape \(B, 2\)"):
        opt.step(np.ones((3, 5)), np.ones((3, 2)))


def test_singular_newton_system_says_use_damping():
    X = np.zeros((3, 2))                    # zero inputs: the rows of G for W are zero
    opt = optim.Newton(mg.Linear(2, 1, rng=0), mg.MSELoss(), damping=0.0)
    with pytest.raises(ValueError, match="positive damping"):
        opt.step(X, np.ones((3, 1)))


def test_train_rejects_bad_input():
    X, Y = least_squares()
    with pytest.raises(ValueError, match="optimizer must be"):
        optim.train("sgd", X, Y, 3)
    with pytest.raises(ValueError, match="iterations"):
        optim.train(optim.SGD(mg.Linear(4, 2, rng=0), mg.MSELoss(), lr=0.1), X, Y, 0)
