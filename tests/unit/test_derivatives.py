"""The model-level derivatives against autograd (1e-10 relative) and against
central finite differences of the loss."""
import autograd
import numpy as np
import pytest

import minigrad as mg
from references import model_fn, objective, relative_error

AUTOGRAD_TOL = 1e-10
FD_TOL = 1e-6
EPS = 1e-5


def setup(loss=None, seed=0):
    rng = np.random.default_rng(seed)
    model = mg.Sequential(mg.Linear(3, 5, rng=rng), mg.Tanh(), mg.Linear(5, 4, rng=rng),
                          mg.Sigmoid(), mg.Linear(4, 3, rng=rng))
    X = rng.standard_normal((6, 3))
    T = np.eye(3)[rng.integers(0, 3, 6)]          # one-hot rows: a target for every loss
    return model, loss or mg.SoftmaxCrossEntropy(), X, T


LOSSES = [mg.SoftmaxCrossEntropy, mg.MSELoss]


@pytest.mark.parametrize("loss_cls", LOSSES)
def test_grad_matches_autograd(loss_cls):
    model, loss, X, T = setup(loss_cls())
    w = mg.parameters_to_vector(model)
    want = autograd.grad(objective(model, loss, X, T))(w)
    assert relative_error(mg.grad(model, loss, X, T), want) < AUTOGRAD_TOL


def test_grad_matches_finite_differences():
    model, loss, X, T = setup()
    w = mg.parameters_to_vector(model)
    f = objective(model, loss, X, T)
    fd = np.array([(f(w + EPS * e) - f(w - EPS * e)) / (2 * EPS) for e in np.eye(w.size)])
    assert relative_error(mg.grad(model, loss, X, T), fd) < FD_TOL


def test_grad_leaves_module_gradients_alone():
    model, loss, X, T = setup()
    model.zero_grad()
    mg.grad(model, loss, X, T)
    assert all(np.all(g == 0) for mod in model.modules for g in mod.grads.values())


def test_jacobian_matches_autograd():
    model, _, X, _ = setup()
    w = mg.parameters_to_vector(model)
    f = model_fn(model)
    full = autograd.jacobian(lambda v: f(v, X))(w)              # (B, o, n)
    J = mg.jacobian(model, X)
    assert J.shape == (6, 3, w.size)
    assert relative_error(J, full) < AUTOGRAD_TOL


def test_input_jacobian_matches_autograd():
    model, _, X, _ = setup()
    w = mg.parameters_to_vector(model)
    full = autograd.jacobian(lambda Z: model_fn(model)(w, Z))(X)  # (B, o, B, m)
    Jx = mg.input_jacobian(model, X)
    assert Jx.shape == (6, 3, 3)
    assert relative_error(Jx, np.einsum("bobm->bom", full)) < AUTOGRAD_TOL


@pytest.mark.parametrize("loss_cls", LOSSES)
def test_hessian_matches_autograd(loss_cls):
    model, loss, X, T = setup(loss_cls())
    w = mg.parameters_to_vector(model)
    want = autograd.hessian(objective(model, loss, X, T))(w)
    assert relative_error(mg.hessian(model, loss, X, T), want) < AUTOGRAD_TOL


def test_hessian_cross_layer_blocks_are_nonzero_and_exact():
    model, loss, X, T = setup()
    w = mg.parameters_to_vector(model)
    H = mg.hessian(model, loss, X, T)
    want = autograd.hessian(objective(model, loss, X, T))(w)
    first, last = slice(0, 20), slice(w.size - 15, w.size)
    assert np.abs(H[first, last]).max() > 1e-3
    assert relative_error(H[first, last], want[first, last]) < AUTOGRAD_TOL


def test_hessian_matches_finite_differences_of_grad():
    model, loss, X, T = setup()
    w = mg.parameters_to_vector(model)
    cols = []
    for e in np.eye(w.size):
        mg.vector_to_parameters(w + EPS * e, model)
        up = mg.grad(model, loss, X, T)
        mg.vector_to_parameters(w - EPS * e, model)
        cols.append((up - mg.grad(model, loss, X, T)) / (2 * EPS))
    mg.vector_to_parameters(w, model)
    assert relative_error(mg.hessian(model, loss, X, T), np.array(cols).T) < FD_TOL


@pytest.mark.parametrize("loss_cls", LOSSES)
def test_gauss_newton_matches_autograd_jacobians(loss_cls):
    model, loss, X, T = setup(loss_cls())
    w = mg.parameters_to_vector(model)
    J = autograd.jacobian(lambda v: model_fn(model)(v, X))(w)
    loss(model(X), T)
    want = np.einsum("bon,bop,bpq->nq", J, loss.hessian(), J)
    assert relative_error(mg.gauss_newton(model, loss, X, T), want) < AUTOGRAD_TOL


@pytest.mark.parametrize("loss_cls", LOSSES)
def test_hvp_matches_autograd(loss_cls):
    model, loss, X, T = setup(loss_cls())
    w = mg.parameters_to_vector(model)
    v = np.random.default_rng(5).standard_normal(w.size)
    want = autograd.hessian_vector_product(objective(model, loss, X, T))(w, v)
    assert relative_error(mg.hvp(model, loss, X, T, v), want) < AUTOGRAD_TOL


def test_parameters_round_trip_in_module_order():
    model, *_ = setup()
    w = mg.parameters_to_vector(model)
    first = model.modules[0]
    np.testing.assert_array_equal(w[:15], first.W.ravel())      # row-major W first
    np.testing.assert_array_equal(w[15:20], first.b)
    mg.vector_to_parameters(2 * w, model)
    np.testing.assert_array_equal(mg.parameters_to_vector(model), 2 * w)


def test_a_single_module_is_a_model():
    lin = mg.Linear(3, 2, rng=0)
    X, T = np.random.default_rng(1).standard_normal((4, 3)), np.array([0, 1, 1, 0])
    want = autograd.hessian(objective(lin, mg.SoftmaxCrossEntropy(), X, T))(
        mg.parameters_to_vector(lin))
    assert relative_error(mg.hessian(lin, mg.SoftmaxCrossEntropy(), X, T), want) < AUTOGRAD_TOL
