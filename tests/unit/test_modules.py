"""Each module's VJP, JVP, Jacobians and curvature against autograd and
central finite differences (through minigrad.check_module)."""
import numpy as np
import pytest

import minigrad as mg
from references import module_fn

SEED = 0


def batch(B=5, m=4, seed=SEED):
    X = np.random.default_rng(seed).standard_normal((B, m))
    # keep ReLU's kink out of the finite-difference stencils
    return np.where(np.abs(X) < 0.05, 0.3, X)


MODULES = {
    "Linear": lambda: mg.Linear(4, 3, rng=1),
    "Tanh": mg.Tanh,
    "Sigmoid": mg.Sigmoid,
    "ReLU": mg.ReLU,
    "Identity": mg.Identity,
    "Softmax": mg.Softmax,
}


@pytest.mark.parametrize("name", MODULES)
def test_module_matches_autograd_and_finite_differences(name):
    mod = MODULES[name]()
    report = mg.check_module(mod, batch(), reference=module_fn(mod))
    assert report.ok, str(report)
    references = {c.reference for c in report.comparisons}
    assert {"finite-d", "autograd"} <= references


@pytest.mark.parametrize("name", MODULES)
def test_vjp_jvp_duality(name):
    """<u, J v> = <J^T u, v> on random vectors, parameters included."""
    rng = np.random.default_rng(1)
    mod = MODULES[name]()
    X = batch()
    Y = mod(X)
    U, V = rng.standard_normal(Y.shape), rng.standard_normal(X.shape)
    dtheta = [rng.standard_normal(P.shape) for P in mod.parameters()]
    left = np.sum(U * mod.jvp(V, dtheta or None))
    GX, grads = mod.vjp_input(U), mod.vjp_params(U)
    right = np.sum(GX * V) + sum(np.sum(g * d) for g, d in zip(grads, dtheta))
    assert abs(left - right) <= 1e-12 * max(1.0, abs(left))


@pytest.mark.parametrize("name", MODULES)
def test_backward_accumulates_parameter_gradients(name):
    mod = MODULES[name]()
    X = batch()
    G = np.ones_like(mod(X))
    mod.zero_grad()
    mod.backward(G)
    mod.backward(G)
    for key, g in mod.grads.items():
        np.testing.assert_allclose(g, 2 * mod.vjp_params(G)[list(mod.params).index(key)])


def test_sequential_is_a_module():
    rng = np.random.default_rng(2)
    net = mg.Sequential(mg.Linear(4, 5, rng=rng), mg.Tanh(),
                        mg.Sequential(mg.Linear(5, 3, rng=rng), mg.Softmax()))
    assert len(net.modules) == 4                      # nested Sequentials flatten
    assert mg.check_module(net, batch()).ok


def test_elementwise_subclass_needs_only_f_df_d2f():
    class Cube(mg.Elementwise):
        def f(self, x):
            return x ** 3

        def df(self, x):
            return 3 * x ** 2

        def d2f(self, x):
            return 6 * x
    report = mg.check_module(Cube(), batch(), reference=lambda X: X ** 3)
    assert report.ok, str(report)


def test_sigmoid_is_stable_for_huge_inputs():
    X = np.array([[-1e4, -800.0, 0.0, 800.0, 1e4]])
    with np.errstate(over="raise", invalid="raise"):
        Y = mg.Sigmoid()(X)
    np.testing.assert_allclose(Y, [[0.0, 0.0, 0.5, 1.0, 1.0]])


def test_softmax_is_stable_for_huge_logits():
    Y = mg.Softmax()(np.array([[1e4, -1e4, 0.0], [1e4, 1e4, 0.0]]))
    assert np.all(np.isfinite(Y))
    np.testing.assert_allclose(Y, [[1, 0, 0], [0.5, 0.5, 0]])


def test_linear_initialisation_is_seeded():
    a, b = mg.Linear(3, 2, rng=7), mg.Linear(3, 2, rng=7)
    np.testing.assert_array_equal(a.W, b.W)
    assert a.W.shape == (2, 3) and a.b.shape == (2,)


@pytest.mark.parametrize("name", ["Tanh", "Sigmoid"])
def test_derivatives_through_the_output_hold_at_any_point(name):
    # f' and f'' read y = f(x) from the kept output at the last input only
    mod, fresh = MODULES[name](), MODULES[name]()
    X, other = batch(), batch(seed=1)
    mod(X)
    for method in ("df", "d2f"):
        np.testing.assert_allclose(getattr(mod, method)(other), getattr(fresh, method)(other),
                                   rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(getattr(mod, method)(X), getattr(fresh, method)(X),
                                   rtol=1e-12, atol=1e-15)

