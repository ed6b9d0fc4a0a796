"""minigrad.optim.KFAC against the damped K-FAC step computed densely: the Kronecker
blocks of ``operators.kron_block`` with factored Tikhonov damping, a block-diagonal
matrix and one dense solve, on the gradient of autograd. Beside each check, the wrong
variant it must reject (plain damping S (x) A + lambda I, no pi heuristic)."""
import numpy as np
import pytest
from autograd import grad as autograd_grad
from scipy.linalg import block_diag

import minigrad as mg
from minigrad import optim
from minigrad.operators import kfac_factors, kron_block
from references import objective

#: a step from two small solves against one dense solve: rounding only
TOL = 1e-10
#: the wrong variants must differ from the step by more than this, relative to its size
DIFFERENT = 1e-3


def problem(seed=0, B=12):
    """Three Linear layers (n = 24 + 15 + 18 = 57), softmax cross-entropy, B samples."""
    rng = np.random.default_rng(seed)
    model = mg.Sequential(mg.Linear(4, 5, rng=rng), mg.Tanh(), mg.Linear(5, 3, rng=rng),
                          mg.Sigmoid(), mg.Linear(3, 4, rng=rng))
    X = rng.standard_normal((B, 4))
    return model, mg.SoftmaxCrossEntropy(), X, rng.integers(0, 4, B)


def dense_kfac_step(model, loss, X, T, lam, lr, damping="factored"):
    """-lr K^(-1) g with K block-diagonal, one block per Linear layer:
    factored:  (S + sqrt(lam)/pi I) (x) (A + pi sqrt(lam) I), pi from the traces;
    no_pi:     the same with pi = 1;
    plain:     S (x) A + lam I (the wrong inverse the old text implied)."""
    blocks = []
    for start, stop, A, S, _, _ in kfac_factors(model, loss, X, T):
        gamma = np.sqrt(lam)
        pi = np.sqrt((np.trace(A) / A.shape[0]) / (np.trace(S) / S.shape[0]))
        pi = 1.0 if damping == "no_pi" else pi
        if damping == "plain":
            blocks.append(kron_block(S, A) + lam * np.eye(stop - start))
        else:
            blocks.append(kron_block(S + gamma / pi * np.eye(len(S)),
                                     A + pi * gamma * np.eye(len(A))))
    g = autograd_grad(objective(model, loss, X, T))(mg.parameters_to_vector(model))
    return -lr * np.linalg.solve(block_diag(*blocks), g)


def relative(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


def one_step(lam=0.3, lr=0.7, **kwargs):
    model, loss, X, T = problem()
    w = mg.parameters_to_vector(model)
    want = {kind: dense_kfac_step(model, loss, X, T, lam, lr, kind)
            for kind in ("factored", "no_pi", "plain")}
    opt = optim.KFAC(model, loss, lr=lr, damping=lam, adapt=False, **kwargs)
    info = opt.step(X, T)
    return mg.parameters_to_vector(model) - w, want, info, opt


def test_step_is_the_dense_factored_damped_kfac_step():
    d, want, info, _ = one_step()
    assert info["accepted"] and info["alpha"] == 1.0
    assert relative(d, want["factored"]) < TOL
    assert relative(d, want["plain"]) > DIFFERENT        # the wrong inverse is told apart
    assert relative(d, want["no_pi"]) > DIFFERENT        # and so is the missing pi


@pytest.mark.parametrize("lam", [1e-4, 1.0, 100.0])
def test_step_matches_at_every_damping(lam):
    d, want, info, _ = one_step(lam=lam, lr=0.2, line_search=True)
    assert info["accepted"]
    assert relative(d / info["alpha"], want["factored"]) < TOL


def test_large_damping_gives_a_gradient_step():
    # (S + gamma/pi I) (x) (A + pi gamma I) -> lambda I as lambda grows, so d -> -lr g / lambda
    # (the limit Martens and Grosse state); the cross terms make the gap O(1 / gamma)
    model, loss, X, T = problem(1)
    w, g, lam = mg.parameters_to_vector(model), mg.grad(model, loss, X, T), 1e8
    info = optim.KFAC(model, loss, lr=1.0, damping=lam, adapt=False).step(X, T)
    d = mg.parameters_to_vector(model) - w
    assert info["accepted"] and relative(d, -g / lam) < 1e-3
    assert relative(d, -g / lam) > 1e-8                    # not exactly the gradient step


def test_pi_heuristic_and_its_fallback():
    # pi = sqrt((tr A / dim A) / (tr S / dim S)); 1 when a factor has zero trace (a dead layer)
    model, loss, _, _ = problem()
    opt = optim.KFAC(model, loss, damping=0.04)                   # gamma = 0.2
    A, S = np.diag([4.0, 2.0, 0.0]), np.diag([0.5, 0.5])          # tr/dim: 2 and 0.5, pi = 2
    S_d, A_d = opt.damped_factors(A, S)
    assert np.allclose(S_d, S + 0.1 * np.eye(2)) and np.allclose(A_d, A + 0.4 * np.eye(3))
    S_d, A_d = opt.damped_factors(A, np.zeros((2, 2)))
    assert np.allclose(S_d, 0.2 * np.eye(2)) and np.allclose(A_d, A + 0.2 * np.eye(3))


def test_single_linear_layer_under_mse_is_solved_in_one_step():
    # one Linear layer with the squared error: G = I (x) A exactly, so K-FAC is Newton's
    # step; the factored damping perturbs it by terms of size sqrt(lambda), not lambda
    rng = np.random.default_rng(2)
    X, Y = rng.standard_normal((30, 4)), rng.standard_normal((30, 2))
    residual = {}
    for lam in (1e-12, 1e-20):
        layer, loss = mg.Linear(4, 2, rng=3), mg.MSELoss()
        optim.KFAC(layer, loss, damping=lam, adapt=False).step(X, Y)
        residual[lam] = np.linalg.norm(mg.grad(layer, loss, X, Y))
    assert residual[1e-20] < 1e-8
    assert 1e3 < residual[1e-12] / residual[1e-20] < 1e5          # sqrt(1e8) = 1e4


def test_rho_uses_the_undamped_gauss_newton_model_and_lm_adapts():
    model, loss, X, T = problem(3)
    w, g = mg.parameters_to_vector(model), mg.grad(model, loss, X, T)
    G, C0 = mg.gauss_newton(model, loss, X, T), loss(model(X), T)
    opt = optim.KFAC(model, loss, lr=1.0, damping=0.5)
    info = opt.step(X, T)
    d = mg.parameters_to_vector(model) - w
    rho = (loss(model(X), T) - C0) / (g @ d + 0.5 * d @ G @ d)
    assert info["accepted"] and info["rho"] == pytest.approx(rho, rel=1e-9)
    assert opt.damping == pytest.approx(optim.lm_update(0.5, rho))
    assert opt.damping != 0.5                                 # the rule moved it here


def test_fixed_damping_stays():
    _, _, _, opt = one_step()
    assert opt.damping == 0.3


def test_factors_are_averaged_over_steps():
    model, loss, X, T = problem(4)
    opt = optim.KFAC(model, loss, damping=1.0, adapt=False, factor_decay=0.9)
    first = kfac_factors(model, loss, X, T)
    opt.step(X, T)                                # k = 1: e = min(0, 0.9), the fresh factors
    assert all(np.allclose(A, f[2], atol=TOL) and np.allclose(S, f[3], atol=TOL)
               for (_, _, A, S), f in zip(opt.factors, first))
    second = kfac_factors(model, loss, X, T)      # at the new weights
    opt.step(X, T)                                # k = 2: e = min(1/2, 0.9) = 1/2
    for (_, _, A, S), f1, f2 in zip(opt.factors, first, second):
        assert np.allclose(A, 0.5 * f1[2] + 0.5 * f2[2], atol=TOL)
        assert np.allclose(S, 0.5 * f1[3] + 0.5 * f2[3], atol=TOL)
        assert not np.allclose(S, f2[3], atol=1e-6)            # not the fresh factor alone


def test_curvature_batch_is_a_random_subset_and_passes_are_counted():
    model, loss, X, T = problem(5, B=40)
    w = mg.parameters_to_vector(model)
    rows = np.random.default_rng(7).choice(40, 10, replace=False)   # the optimiser's draw
    lam, lr = 0.1, 0.5
    damped = optim.KFAC(model, loss, damping=lam).damped_factors
    blocks = [kron_block(*damped(A, S)) for _, _, A, S, _, _ in
              kfac_factors(model, loss, X[rows], T[rows])]
    want = -lr * np.linalg.solve(block_diag(*blocks), mg.grad(model, loss, X, T))
    opt = optim.KFAC(model, loss, lr=lr, damping=lam, adapt=False, curvature_batch=10, seed=7)
    info = opt.step(X, T)
    assert info["accepted"] and relative(mg.parameters_to_vector(model) - w, want) < TOL
    c, o = optim.COST, 4            # C(w), C(w + d), g; on a quarter: o backward passes, G d
    assert opt.passes == pytest.approx(2 * c["value"] + c["grad"]
                                       + (o * c["grad"] + c["ggn_vp"]) * 10 / 40)


def test_trains_a_network_monotonically():
    rng = np.random.default_rng(6)
    model = mg.Sequential(mg.Linear(4, 5, rng=rng), mg.Tanh(), mg.Linear(5, 3, rng=rng))
    X, T = rng.standard_normal((40, 4)), rng.integers(0, 3, size=40)
    r = optim.run(optim.KFAC(model, mg.SoftmaxCrossEntropy(), damping=1e-2), X, T,
                  budget=300, points=300, progress=False)
    assert np.all(np.diff(r["loss"]) <= 1e-12) and r["loss"][-1] < 0.5 * r["loss"][0]


class _NotLinear(mg.Module):
    """A parametrised module that is not a Linear: K-FAC does not know its structure."""
    def __init__(self):
        super().__init__()
        self.params["W"] = np.ones((3, 4))
        self.zero_grad()


@pytest.mark.parametrize("kwargs, message", [
    ({"damping": 0.0}, "damping must be > 0"), ({"damping": -1.0}, "damping must be > 0"),
    ({"damping": np.nan}, "damping must be > 0"), ({"lr": 0.0}, "lr must be > 0"),
    ({"factor_decay": 1.0}, "factor_decay"), ({"factor_decay": -0.1}, "factor_decay"),
    ({"curvature_batch": 0}, "curvature_batch"), ({"curvature_batch": 2.5}, "curvature_batch"),
])
def test_rejects_bad_settings(kwargs, message):
    model, loss, _, _ = problem()
    with pytest.raises(ValueError, match=message):
        optim.KFAC(model, loss, **kwargs)


@pytest.mark.parametrize("make, message", [
    (lambda m, l: optim.KFAC("a model", l), "model must be a minigrad Module"),
    (lambda m, l: optim.KFAC(m, "a loss"), "loss must be a minigrad Loss"),
    (lambda m, l: optim.KFAC(mg.Sequential(m, _NotLinear()), l), r"module 5 \(_NotLinear\)"),
])
def test_rejects_what_it_cannot_factor(make, message):
    model, loss, _, _ = problem()
    with pytest.raises(ValueError, match=message):
        make(model, loss)
