"""The identities the course teaches, checked on concrete models."""
import numpy as np
import pytest

import minigrad as mg

SYM_TOL = 1e-12


def mlp(seed=0, out=3):
    rng = np.random.default_rng(seed)
    model = mg.Sequential(mg.Linear(4, 6, rng=rng), mg.Tanh(), mg.Linear(6, out, rng=rng))
    X = rng.standard_normal((7, 4))
    T = np.eye(out)[rng.integers(0, out, 7)]      # one-hot rows: a target for every loss
    return model, X, T


@pytest.mark.parametrize("loss_cls", [mg.SoftmaxCrossEntropy, mg.MSELoss])
def test_hessian_is_symmetric(loss_cls):
    model, X, T = mlp()
    H = mg.hessian(model, loss_cls(), X, T)
    assert np.abs(H - H.T).max() <= SYM_TOL * np.abs(H).max()


@pytest.mark.parametrize("loss_cls", [mg.SoftmaxCrossEntropy, mg.MSELoss])
def test_gauss_newton_is_psd_with_a_convex_loss(loss_cls):
    model, X, T = mlp()
    G = mg.gauss_newton(model, loss_cls(), X, T)
    eig = np.linalg.eigvalsh(G)
    assert eig.min() >= -1e-12 * eig.max()


def test_hessian_of_a_tanh_network_is_indefinite():
    """The residual term makes the Hessian indefinite where GN is not: the
    difference is what the composition formula predicts."""
    model, X, T = mlp()
    eig = np.linalg.eigvalsh(mg.hessian(model, mg.SoftmaxCrossEntropy(), X, T))
    assert eig.min() < -1e-6


@pytest.mark.parametrize("loss_cls", [mg.SoftmaxCrossEntropy, mg.MSELoss])
def test_hessian_equals_gauss_newton_for_a_linear_model(loss_cls):
    rng = np.random.default_rng(3)
    model = mg.Linear(5, 3, rng=rng)
    X, T = rng.standard_normal((8, 5)), np.eye(3)[rng.integers(0, 3, 8)]
    H = mg.hessian(model, loss_cls(), X, T)
    np.testing.assert_allclose(H, mg.gauss_newton(model, loss_cls(), X, T), atol=1e-14)


@pytest.mark.parametrize("loss_cls", [mg.SoftmaxCrossEntropy, mg.MSELoss])
def test_hvp_equals_hessian_times_v(loss_cls):
    model, X, T = mlp()
    v = np.random.default_rng(4).standard_normal(model.num_params)
    H = mg.hessian(model, loss_cls(), X, T)
    np.testing.assert_allclose(mg.hvp(model, loss_cls(), X, T, v), H @ v, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("loss_cls", [mg.SoftmaxCrossEntropy, mg.MSELoss])
def test_ggn_vp_equals_gauss_newton_times_v(loss_cls):
    model, X, T = mlp()
    v = np.random.default_rng(4).standard_normal(model.num_params)
    G = mg.gauss_newton(model, loss_cls(), X, T)
    np.testing.assert_allclose(mg.ggn_vp(model, loss_cls(), X, T, v), G @ v, rtol=1e-10, atol=1e-13)


def test_per_sample_gradients_sum_to_batch_size_times_gradient():
    model, X, T = mlp()
    loss = mg.SoftmaxCrossEntropy()
    P = mg.per_sample_grads(model, loss, X, T)
    assert P.shape == (7, model.num_params)
    np.testing.assert_allclose(P.sum(axis=0), 7 * mg.grad(model, loss, X, T), atol=1e-13)


def test_per_sample_gradient_is_the_gradient_of_that_sample_alone():
    model, X, T = mlp()
    loss = mg.SoftmaxCrossEntropy()
    P = mg.per_sample_grads(model, loss, X, T)
    np.testing.assert_allclose(P[2], mg.grad(model, loss, X[2:3], T[2:3]), atol=1e-14)


def test_gauss_newton_is_mean_of_per_sample_jt_h_j():
    model, X, T = mlp()
    loss = mg.MSELoss()
    J = mg.jacobian(model, X)
    G = mg.gauss_newton(model, loss, X, T)
    np.testing.assert_allclose(G, np.einsum("bon,boq->nq", J, J) / 7, atol=1e-14)


def test_backward_second_is_the_composition_formula():
    """The input Hessian of C = L o N, carried back module by module by
    J^T H J + sum_k g_k hess(y_k), equals autograd's Hessian w.r.t. X."""
    import autograd
    from references import loss_fn, model_fn
    model, X, T = mlp()
    loss = mg.SoftmaxCrossEntropy()
    loss(model(X), T)
    G, H = model.backward_second(loss.backward(), loss.hessian())
    w = mg.parameters_to_vector(model)
    f = lambda Z: loss_fn(loss)(model_fn(model)(w, Z), T)
    np.testing.assert_allclose(G, autograd.grad(f)(X), atol=1e-15)
    full = autograd.hessian(f)(X)                                  # (B, m, B, m)
    np.testing.assert_allclose(H, np.einsum("bibj->bij", full), atol=1e-14)
