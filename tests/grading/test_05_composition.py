"""Graded tests of the composition exercises (solutions/05_composition.ipynb).

Pieces (Jacobians, Hessians) are made here and sent to the notebook as plain data; the
learner's layer and backprop run in the kernel on minigrad models built there, and every
reference is computed here with autograd or minigrad.
"""
import warnings

import autograd
import autograd.numpy as anp
import numpy as np
import pytest

import minigrad
from gradetools import close, raises_value_error

NOTEBOOK = "05_composition"

#: exact derivatives agree with autograd up to rounding
TOL = 1e-10


def hessian_tensor(f, w):
    return autograd.jacobian(autograd.jacobian(f))(w)


# ---------------------------------------------------------------- 5.1
def composition_pieces(seed, o, n):
    """J, h, g, H of N(w) = tanh(A w) + (A w)^2 / 4 and a cross-entropy on logits, and the
    Hessian of the composition by autograd."""
    rng = np.random.default_rng(seed)
    A, w = rng.standard_normal((o, n)), rng.standard_normal(n)
    t = np.eye(o)[rng.integers(o)]

    def network(v):
        z = anp.dot(A, v)
        return anp.tanh(z) + 0.25 * z ** 2

    def loss(u):
        return anp.log(anp.sum(anp.exp(u))) - anp.dot(t, u)

    u = network(w)
    pieces = (autograd.jacobian(network)(w), autograd.hessian(loss)(u),
              autograd.grad(loss)(u), hessian_tensor(network, w))
    return pieces, autograd.hessian(lambda v: loss(network(v)))(w)


@pytest.mark.exercise("5.1", points=3)
@pytest.mark.parametrize("o, n", [(3, 4), (1, 3), (4, 2)])
def test_composition_hessian_matches_autograd(nb, o, n):
    pieces, want = composition_pieces(51, o, n)
    assert close(nb.call("composition_hessian", *pieces), want)


@pytest.mark.exercise("5.1", points=3)
def test_composition_hessian_without_gradient_is_gauss_newton(nb):
    (J, h, g, H), _ = composition_pieces(52, 3, 4)
    got = nb.call("composition_hessian", J, h, np.zeros_like(g), H)
    assert close(got, J.T @ h @ J)


@pytest.mark.exercise("5.1", points=3)
def test_composition_hessian_rejects_bad_shapes(nb):
    (J, h, g, H), _ = composition_pieces(53, 3, 4)
    raises_value_error(lambda: nb.call("composition_hessian", J, h, g, H[:, :3, :3]))
    raises_value_error(lambda: nb.call("composition_hessian", J, h, g[:2], H))
    raises_value_error(lambda: nb.call("composition_hessian", J[0], h, g, H))


# ---------------------------------------------------------------- 5.2
FORBID_52 = ("minigrad.gauss_newton", "minigrad.derivatives.gauss_newton",
             "minigrad.ggn_vp", "minigrad.derivatives.ggn_vp")


@pytest.mark.exercise("5.2", points=3)
def test_gauss_newton_matches_minigrad(nb):
    rng = np.random.default_rng(54)
    net = minigrad.Sequential(minigrad.Linear(3, 4, rng=0), minigrad.Tanh(),
                              minigrad.Linear(4, 3, rng=1))
    loss = minigrad.SoftmaxCrossEntropy()
    X, labels = rng.standard_normal((6, 3)), rng.integers(0, 3, 6)
    J = minigrad.jacobian(net, X)
    loss(net(X), labels)
    h = loss.hess_per_sample(loss.Y, loss.T)
    got = nb.call("gauss_newton_matrix", J, h, forbid=FORBID_52)
    assert close(got, minigrad.gauss_newton(net, loss, X, labels))


@pytest.mark.exercise("5.2", points=3)
def test_gauss_newton_is_the_hessian_of_a_linear_model(nb):
    # y = W x + b is linear in its parameters: the second term vanishes
    rng = np.random.default_rng(55)
    X, T = rng.standard_normal((5, 3)), rng.standard_normal((5, 2))
    layer = minigrad.Linear(3, 2, rng=2)
    w = minigrad.parameters_to_vector(layer)
    J = minigrad.jacobian(layer, X)
    h = np.broadcast_to(np.eye(2), (5, 2, 2)).copy()

    def loss(v):
        Y = anp.dot(X, anp.reshape(v[:6], (2, 3)).T) + v[6:]
        return anp.mean(0.5 * anp.sum((Y - T) ** 2, axis=1))
    got = nb.call("gauss_newton_matrix", J, h, forbid=FORBID_52)
    assert close(got, autograd.hessian(loss)(w))


@pytest.mark.exercise("5.2", points=3)
def test_gauss_newton_is_positive_semidefinite(nb):
    rng = np.random.default_rng(56)
    J = rng.standard_normal((4, 3, 6))
    M = rng.standard_normal((4, 3, 3))
    h = M @ M.transpose(0, 2, 1)                          # positive semi-definite per sample
    G = np.asarray(nb.call("gauss_newton_matrix", J, h, forbid=FORBID_52), dtype=float)
    assert G.shape == (6, 6)
    assert close(G, G.T)
    assert np.linalg.eigvalsh(G).min() > -TOL


@pytest.mark.exercise("5.2", points=3)
def test_gauss_newton_rejects_bad_shapes(nb):
    rng = np.random.default_rng(57)
    J = rng.standard_normal((4, 3, 6))
    raises_value_error(lambda: nb.call("gauss_newton_matrix", J, np.zeros((3, 3, 3)),
                                       forbid=FORBID_52))
    raises_value_error(lambda: nb.call("gauss_newton_matrix", J, np.zeros((4, 2, 2)),
                                       forbid=FORBID_52))
    raises_value_error(lambda: nb.call("gauss_newton_matrix", J[0], np.zeros((3, 3)),
                                       forbid=FORBID_52))


# ---------------------------------------------------------------- 5.3
def quadratic(Z, A):
    return anp.einsum("bj,ijk,bk->bi", Z, A, Z)


def quadratic_setup(seed, B=4, m=3, o=2):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((B, m)), rng.standard_normal((o, m, m)), rng.standard_normal((B, o))


def per_sample(full):
    """(B, o, B, m) Jacobian of a row-wise map -> its per-sample blocks (B, o, m)."""
    return np.einsum("bibj->bij", full)


def after_call(method):
    """An expression that calls QuadraticForm(A) on X, then ``method``."""
    return f"(lambda q: (q(X), q.{method})[1])(QuadraticForm(A))"


@pytest.mark.exercise("5.3", points=4)
def test_quadratic_forward(nb):
    X, A, _ = quadratic_setup(58)
    assert close(nb.eval("QuadraticForm(A)(X)", X=X, A=A), quadratic(X, A))


@pytest.mark.exercise("5.3", points=4)
def test_quadratic_input_jacobian(nb):
    X, A, _ = quadratic_setup(59)
    got = nb.eval(after_call("input_jacobian()"), X=X, A=A)
    assert close(got, per_sample(autograd.jacobian(lambda Z: quadratic(Z, A))(X)))


@pytest.mark.exercise("5.3", points=4)
def test_quadratic_param_jacobian(nb):
    X, A, _ = quadratic_setup(60)
    got = nb.eval(after_call("param_jacobian()"), X=X, A=A)
    want = autograd.jacobian(lambda v: quadratic(X, anp.reshape(v, A.shape)))(A.ravel())
    assert close(got, want)


@pytest.mark.exercise("5.3", points=4)
def test_quadratic_second_contraction(nb):
    X, A, G = quadratic_setup(61)
    Cxx, Cxa, Caa = nb.eval(after_call("second_contraction(G)"), X=X, A=A, G=G)
    p = A.size
    assert Caa is None or close(Caa, np.zeros((p, p)))     # y is linear in A

    def weighted(Z, v):
        return anp.sum(G * quadratic(Z, anp.reshape(v, A.shape)))
    grad_x = autograd.grad(weighted, 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)      # constant derivatives
        full_xx = autograd.jacobian(grad_x, 0)(X, A.ravel())                  # (B, m, B, m)
        full_xa = autograd.jacobian(grad_x, 1)(X, A.ravel())                  # (B, m, p)
    assert close(Cxx, per_sample(full_xx))
    assert close(Cxa, full_xa)


@pytest.mark.exercise("5.3", points=4)
def test_quadratic_backward_second(nb):
    X, A, G = quadratic_setup(62)
    rng = np.random.default_rng(63)
    M = rng.standard_normal((4, 2, 2))
    H = M @ M.transpose(0, 2, 1)
    GX, HX = nb.eval(after_call("backward_second(G, H)"), X=X, A=A, G=G, H=H)
    J = per_sample(autograd.jacobian(lambda Z: quadratic(Z, A))(X))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        C = per_sample(autograd.hessian(lambda Z: anp.sum(G * quadratic(Z, A)))(X))
    assert close(GX, np.einsum("bom,bo->bm", J, G))
    assert close(HX, np.einsum("bom,bok,bkn->bmn", J, H, J) + C)


@pytest.mark.exercise("5.3", points=4)
def test_quadratic_hessian_through_minigrad(nb):
    rng = np.random.default_rng(64)
    X, T = rng.standard_normal((5, 3)), rng.standard_normal((5, 2))
    A = 0.5 * rng.standard_normal((2, 4, 4))
    first, last = minigrad.Linear(3, 4, rng=0), minigrad.Linear(2, 2, rng=1)
    w = np.concatenate([first.W.ravel(), first.b, A.ravel(), last.W.ravel(), last.b])

    def loss(v):
        W1, b1 = anp.reshape(v[:12], (4, 3)), v[12:16]
        W2, b2 = anp.reshape(v[48:52], (2, 2)), v[52:54]
        Y = anp.dot(quadratic(anp.dot(X, W1.T) + b1, anp.reshape(v[16:48], A.shape)), W2.T) + b2
        return anp.mean(0.5 * anp.sum((Y - T) ** 2, axis=1))
    expr = ("minigrad.hessian(minigrad.Sequential(minigrad.Linear(3, 4, rng=0), QuadraticForm(A), "
            "minigrad.Linear(2, 2, rng=1)), minigrad.MSELoss(), X, T)")
    assert close(nb.eval(expr, X=X, T=T, A=A), autograd.hessian(loss)(w))


# ---------------------------------------------------------------- 5.4
FORBID_54 = ("minigrad.grad", "minigrad.derivatives.grad", "minigrad.per_sample_grads",
             "minigrad.derivatives.per_sample_grads", "minigrad.Sequential.vjp",
             "minigrad.Sequential.backward")

MLP = "[minigrad.Linear(3, 4, rng=0), minigrad.{act}(), minigrad.Linear(4, 3, rng=1)]"


def mlp_reference(act, X, loss_of_logits):
    """The flat parameters of MLP and its batch loss as a function of them."""
    first, last = minigrad.Linear(3, 4, rng=0), minigrad.Linear(4, 3, rng=1)
    w = np.concatenate([first.W.ravel(), first.b, last.W.ravel(), last.b])

    def loss(v):
        W1, b1 = anp.reshape(v[:12], (4, 3)), v[12:16]
        W2, b2 = anp.reshape(v[16:28], (3, 4)), v[28:31]
        return loss_of_logits(anp.dot(act(anp.dot(X, W1.T) + b1), W2.T) + b2)
    return w, loss


@pytest.mark.exercise("5.4", points=3)
def test_backprop_mse(nb):
    rng = np.random.default_rng(65)
    X, T = rng.standard_normal((6, 3)), rng.standard_normal((6, 3))
    w, loss = mlp_reference(anp.tanh, X, lambda Y: anp.mean(0.5 * anp.sum((Y - T) ** 2, axis=1)))
    value, g = nb.eval(f"backprop({MLP.format(act='Tanh')}, minigrad.MSELoss(), X, T)",
                       forbid=FORBID_54, X=X, T=T)
    assert close(value, loss(w))
    assert close(g, autograd.grad(loss)(w))


@pytest.mark.exercise("5.4", points=3)
def test_backprop_cross_entropy_with_labels(nb):
    rng = np.random.default_rng(66)
    X, labels = rng.standard_normal((7, 3)), rng.integers(0, 3, 7)

    def ce(Z):
        zmax = anp.max(Z, axis=1, keepdims=True)
        lse = zmax[:, 0] + anp.log(anp.sum(anp.exp(Z - zmax), axis=1))
        return anp.mean(lse - Z[np.arange(7), labels])
    w, loss = mlp_reference(lambda Z: 1.0 / (1.0 + anp.exp(-Z)), X, ce)
    value, g = nb.eval(f"backprop({MLP.format(act='Sigmoid')}, minigrad.SoftmaxCrossEntropy(), X, T)",
                       forbid=FORBID_54, X=X, T=labels)
    assert close(value, loss(w))
    assert close(g, autograd.grad(loss)(w))


@pytest.mark.exercise("5.4", points=3)
def test_backprop_single_layer(nb):
    rng = np.random.default_rng(67)
    X, T = rng.standard_normal((4, 3)), rng.standard_normal((4, 2))
    layer = minigrad.Linear(3, 2, rng=3)
    W, b = layer.W, layer.b
    value, g = nb.eval("backprop([minigrad.Linear(3, 2, rng=3)], minigrad.MSELoss(), X, T)",
                       forbid=FORBID_54, X=X, T=T)
    G = (X @ W.T + b - T) / 4                                # dL/dY of the mean loss
    assert close(g, np.concatenate([(G.T @ X).ravel(), G.sum(axis=0)]))


@pytest.mark.exercise("5.4", points=3)
def test_backprop_rejects_no_modules(nb):
    X, T = np.ones((2, 3)), np.ones((2, 3))
    raises_value_error(lambda: nb.eval("backprop([], minigrad.MSELoss(), X, T)",
                                       forbid=FORBID_54, X=X, T=T))
