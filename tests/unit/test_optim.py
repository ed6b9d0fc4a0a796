"""minigrad.optim: each piece against its definition, and beside it a deliberately
wrong variant of the piece that the same check rejects (so the check tests something)."""
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
    return Q @ np.diag(np.geomspace(1.0, cond, n)) @ Q.T, rng.standard_normal(n)


def mlp(seed=2, m=4, h=5, o=3):
    rng = np.random.default_rng(seed)
    return mg.Sequential(mg.Linear(m, h, rng=rng), mg.Tanh(), mg.Linear(h, o, rng=rng))


def classification(seed=3, B=40):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((B, 4)), rng.integers(0, 3, size=B)


# ---------------------------------------------------------------- cg
def test_cg_solves_a_known_system():
    A, b = spd_system()
    x, info = optim.cg(lambda v: A @ v, b, tol=1e-12, maxiter=100)
    assert info["converged"] and np.allclose(x, np.linalg.solve(A, b), atol=TOL)
    assert np.allclose(info["Ax"], A @ x, atol=TOL)            # kept without extra products
    assert info["phi"][-1] == pytest.approx(0.5 * x @ A @ x - b @ x)


def test_cg_needs_one_step_per_distinct_eigenvalue():
    rng = np.random.default_rng(3)
    Q, _ = np.linalg.qr(rng.standard_normal((10, 10)))
    A = Q @ np.diag([1.0] * 5 + [4.0] * 3 + [9.0] * 2) @ Q.T
    _, info = optim.cg(lambda v: A @ v, rng.standard_normal(10), tol=1e-10)
    assert info["converged"] and info["iterations"] <= 3


def test_diagonal_preconditioner_solves_a_diagonal_system_in_one_step():
    # wrong variant: no preconditioner at all needs many more steps
    rng = np.random.default_rng(4)
    a, b = np.geomspace(1.0, 1e4, 30), rng.standard_normal(30)
    _, right = optim.cg(lambda v: a * v, b, precond=a, tol=1e-10)
    _, wrong = optim.cg(lambda v: a * v, b, tol=1e-10)
    assert right["iterations"] == 1 and wrong["iterations"] > 10


def test_warm_start_at_the_solution_costs_nothing():
    # wrong variant: a cold start ignores what the last step knew
    A, b = spd_system(seed=5)
    x_star = np.linalg.solve(A, b)
    _, warm = optim.cg(lambda v: A @ v, b, x0=x_star, tol=1e-8)
    _, cold = optim.cg(lambda v: A @ v, b, tol=1e-8)
    assert warm["iterations"] == 0 and cold["iterations"] >= 10


def test_cg_stops_on_negative_curvature():
    x, info = optim.cg(lambda v: np.array([1.0, -1.0]) * v, np.array([1.0, 1.0]))
    assert info["negative_curvature"] and not info["converged"] and np.all(np.isfinite(x))


@pytest.mark.parametrize("kwargs, message", [
    ({"b": np.zeros((2, 2))}, "b must be"), ({"b": np.array([1.0, np.nan])}, "b must be"),
    ({"x0": np.zeros(3)}, "x0"), ({"precond": np.array([1.0, 0.0])}, "precond"),
    ({"matvec": lambda v: np.zeros(3)}, "matvec must return"), ({"tol": -1.0}, "tol"),
])
def test_cg_rejects_bad_input(kwargs, message):
    args = {"matvec": lambda v: v, "b": np.ones(2)} | kwargs
    with pytest.raises(ValueError, match=message):
        optim.cg(args.pop("matvec"), args.pop("b"), **args)


# ---------------------------------------------------------------- stopping on progress
def wrong_progress_stalled(phi, eps=optim.PROGRESS_EPS):
    """Wrong: absolute progress, so the test depends on the scale of the loss."""
    i, k = len(phi) - 1, max(10, len(phi) // 10)
    return i > k and phi[i] < 0 and phi[i - k] - phi[i] < k * eps


def stalls_the_same_at_every_scale(stalled):
    phi = list(-1.0 + 0.8 ** np.arange(80))            # progress slows down geometrically
    first = [next((i for i in range(len(phi)) if stalled([c * p for p in phi[:i + 1]])), None)
             for c in (1e-3, 1.0, 1e3)]
    return len(set(first)) == 1


def test_progress_stop_is_scale_invariant_and_the_wrong_variant_is_not():
    assert stalls_the_same_at_every_scale(optim.progress_stalled)
    assert not stalls_the_same_at_every_scale(wrong_progress_stalled)


def test_progress_stop_waits_for_ten_iterations_and_a_negative_quadratic():
    assert not optim.progress_stalled([0.0] + [-1.0] * 10)              # i = 10, not > k
    assert optim.progress_stalled([0.0] + [-1.0] * 11)
    assert not optim.progress_stalled([0.0] + [1.0] * 20)               # phi > 0: keep going


def test_cg_with_progress_stop_saves_products_on_an_ill_conditioned_system():
    # a few large curvatures and many tiny ones, as in a network: the tiny ones
    # hardly change the quadratic, and the progress test stops before reaching them
    A, y = spd_system(n=200, seed=6, cond=1e6)
    b = A @ y
    x, stop = optim.cg(lambda v: A @ v, b, eps=optim.PROGRESS_EPS)
    exact = np.linalg.solve(A, b)
    q = lambda y: 0.5 * y @ A @ y - b @ y
    assert stop["iterations"] < 100
    assert (q(x) - q(exact)) / abs(q(exact)) < 0.05                    # most of the decrease


# ---------------------------------------------------------------- preconditioner
def wrong_preconditioner(sample_grads, damping, exponent=0.75):
    """Wrong: the sum over samples, so the preconditioner grows with the batch."""
    return (np.sum(np.asarray(sample_grads) ** 2, axis=0) + damping) ** exponent


def same_for_a_duplicated_batch(precond):
    S = np.random.default_rng(7).standard_normal((6, 4))
    return np.allclose(precond(S, 0.1), precond(np.vstack([S, S]), 0.1))


def test_preconditioner_formula_and_batch_invariance():
    S = np.random.default_rng(8).standard_normal((5, 3))
    assert np.allclose(optim.diagonal_preconditioner(S, 0.5), (np.mean(S**2, 0) + 0.5) ** 0.75)
    assert same_for_a_duplicated_batch(optim.diagonal_preconditioner)
    assert not same_for_a_duplicated_batch(wrong_preconditioner)


# ---------------------------------------------------------------- damping and line search
def test_lm_update_table_and_the_swapped_variant_fails():
    table = [(0.9, 2 / 3), (0.75, 1.0), (0.5, 1.0), (0.25, 1.0), (0.1, 1.5), (-np.inf, 1.5)]
    wrong = lambda lam, rho: optim.lm_update(lam, -rho + 1)   # inverted: damps a good model more
    assert all(optim.lm_update(2.0, r) == pytest.approx(2.0 * f) for r, f in table)
    assert not all(wrong(2.0, r) == pytest.approx(2.0 * f) for r, f in table)


def wrong_backtrack(f, C0, slope, alpha=1.0, shrink=0.8, c=1e-2, tries=20, f1=None):
    """Wrong: accepts any decrease, however small (no Armijo condition)."""
    for _ in range(tries):
        if f(alpha) < C0:
            return alpha, f(alpha), 1
        alpha *= shrink
    return 0.0, C0, tries


def sufficient_decrease(search):
    f = lambda a: -a + 0.999 * a * a             # f(1) = -0.001 < 0, far less than promised
    alpha, value, _ = search(f, 0.0, -1.0)
    return alpha > 0 and value <= 1e-2 * alpha * -1.0


def test_backtracking_demands_sufficient_decrease():
    assert sufficient_decrease(optim.backtrack)
    assert not sufficient_decrease(wrong_backtrack)
    assert optim.backtrack(lambda a: 1.0 + a, 1.0, -1.0, tries=3)[:2] == (0.0, 1.0)  # rejected


# ---------------------------------------------------------------- Adam
def wrong_adam(w, m, v, g, t, lr, beta1=0.9, beta2=0.999, eps=1e-8):
    """Wrong: no bias correction, so the first steps are far too long."""
    m, v = beta1 * m + (1 - beta1) * g, beta2 * v + (1 - beta2) * g * g
    return w - lr * m / (np.sqrt(v) + eps), m, v


def first_step_has_length_lr(update):
    g = np.array([1e-3, -5.0, 200.0])
    w, _, _ = update(np.zeros(3), np.zeros(3), np.zeros(3), g, 1, 0.01)
    return np.allclose(w, -0.01 * np.sign(g), rtol=1e-4)


def test_adam_first_step_and_the_uncorrected_variant_fails():
    assert first_step_has_length_lr(optim.adam_update)
    assert not first_step_has_length_lr(wrong_adam)


def test_adam_and_sgd_follow_their_formulas_on_a_model():
    X, t = classification()
    loss = mg.SoftmaxCrossEntropy()
    for make, expect in [
        (lambda m: optim.SGD(m, loss, lr=0.3, momentum=0.5),
         lambda w, g: w - 0.3 * g),
        (lambda m: optim.Adam(m, loss, lr=0.01),
         lambda w, g: optim.adam_update(w, 0 * w, 0 * w, g, 1, 0.01)[0])]:
        model = mlp()
        w, g = mg.parameters_to_vector(model), mg.grad(model, loss, X, t)
        opt = make(model)
        opt.step(X, t)
        assert np.allclose(mg.parameters_to_vector(model), expect(w, g), atol=1e-12)
        assert opt.passes == optim.COST["grad"]


# ---------------------------------------------------------------- Hessian-free and Newton
def test_hessian_free_step_matches_the_dense_damped_solve():
    X, t = classification()
    loss, model = mg.SoftmaxCrossEntropy(), mlp()
    w = mg.parameters_to_vector(model)
    G, g = mg.gauss_newton(model, loss, X, t), mg.grad(model, loss, X, t)
    want = np.linalg.solve(G + 0.5 * np.eye(g.size), -g)
    opt = optim.HessianFree(model, loss, damping=0.5, cg_max=500, progress_stop=False,
                            line_search=False, adapt=False)
    info = opt.step(X, t)
    assert info["accepted"] and np.allclose(mg.parameters_to_vector(model) - w, want, atol=1e-7)


def test_rho_compares_with_the_undamped_model():
    # on linear least squares the undamped quadratic model is exact, so rho = 1 whatever
    # the damping; the wrong variant, rho from the damped model, is not 1
    rng = np.random.default_rng(10)
    X, Y = rng.standard_normal((30, 4)), rng.standard_normal((30, 2))
    layer, loss, lam = mg.Linear(4, 2, rng=0), mg.MSELoss(), 3.0
    w, g = mg.parameters_to_vector(layer), mg.grad(layer, loss, X, Y)
    G = mg.gauss_newton(layer, loss, X, Y)
    info = optim.HessianFree(layer, loss, damping=lam, cg_max=100, progress_stop=False).step(X, Y)
    d = mg.parameters_to_vector(layer) - w
    wrong = (info["new_loss"] - info["loss"]) / (g @ d + 0.5 * d @ (G + lam * np.eye(10)) @ d)
    assert info["rho"] == pytest.approx(1.0, abs=1e-8) and abs(wrong - 1.0) > 0.1


def test_hessian_free_counts_its_passes():
    X, t = classification(B=40)
    opt = optim.HessianFree(mlp(), mg.SoftmaxCrossEntropy(), cg_max=4, progress_stop=False,
                            curvature_batch=10, line_search=False)
    info = opt.step(X, t)
    c = optim.COST
    want = 2 * c["value"] + c["grad"] + (c["diagonal"] + info["cg_iterations"] * c["ggn_vp"]) / 4
    assert info["cg_iterations"] == 4 and opt.passes == pytest.approx(want)


def test_hessian_free_and_newton_decrease_the_loss_monotonically():
    X, t = classification()
    loss = mg.SoftmaxCrossEntropy()
    for opt in [optim.HessianFree(mlp(), loss, curvature_batch=20),
                optim.Newton(mlp(), loss, curvature="hessian"),
                optim.Newton(mlp(), loss, curvature="gauss_newton")]:
        r = optim.run(opt, X, t, budget=opt.passes + 3000, points=1000, progress=False)
        assert np.all(np.diff(r["loss"]) <= 1e-12) and r["loss"][-1] < 0.5 * r["loss"][0]


def test_newton_with_the_hessian_solves_least_squares_in_one_step():
    rng = np.random.default_rng(9)
    X, Y = rng.standard_normal((30, 4)), rng.standard_normal((30, 2))
    layer, loss = mg.Linear(4, 2, rng=0), mg.MSELoss()
    optim.Newton(layer, loss, damping=0.0, adapt=False).step(X, Y)
    assert np.linalg.norm(mg.grad(layer, loss, X, Y)) < TOL


def test_run_stops_at_the_budget_and_records():
    X, t = classification()
    opt = optim.SGD(mlp(), mg.SoftmaxCrossEntropy(), lr=0.1)
    r = optim.run(opt, X, t, budget=25, points=5, record=lambda m: {"one": 1.0}, progress=False)
    assert r["passes"][0] == 0 and r["passes"][-1] == 25 and len(r["info"]) == 25
    assert len(r["loss"]) == len(r["one"]) == len(r["seconds"]) == 6


def test_progress_bar_is_off_under_pytest(monkeypatch):
    assert not optim.progress_default()
    monkeypatch.delenv("PYTEST_VERSION", raising=False)
    monkeypatch.setenv("MINIGRAD_PROGRESS", "0")
    assert not optim.progress_default()
    monkeypatch.setenv("MINIGRAD_PROGRESS", "1")
    assert optim.progress_default()


@pytest.mark.parametrize("make", [
    lambda m, l: optim.SGD(m, l, lr=0.0), lambda m, l: optim.SGD(m, l, lr=0.1, momentum=1.0),
    lambda m, l: optim.Adam(m, l, lr=-1.0), lambda m, l: optim.HessianFree(m, l, damping=-1.0),
    lambda m, l: optim.Newton(m, l, curvature="fisher")])
def test_optimisers_reject_bad_settings(make):
    with pytest.raises(ValueError):
        make(mlp(), mg.SoftmaxCrossEntropy())
