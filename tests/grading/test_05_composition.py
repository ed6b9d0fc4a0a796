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
from gradetools import NoAutodiff, close

NOTEBOOK = "05_composition"


# ---------------------------------------------------------------- no automatic differentiation
@pytest.fixture(scope="module")
def nb(nb):
    """The conftest's notebook, wrapped: automatic differentiation is unavailable in it."""
    return NoAutodiff(nb)


#: exact derivatives agree with autograd up to rounding
TOL = 1e-10


def hessian_tensor(f, w):
    return autograd.jacobian(autograd.jacobian(f))(w)


# ---------------------------------------------------------------- 5.1
def composition_pieces(seed, o, n, r):
    """J_N, J_L, H_L, H_N of N(w) = tanh(A w) + (A w)^2 / 4 and a loss with r outputs
    (a cross-entropy, then products and sines of the outputs), and H_C by autograd."""
    rng = np.random.default_rng(seed)
    A, w = rng.standard_normal((o, n)), rng.standard_normal(n)
    t = np.eye(o)[rng.integers(o)]
    C = rng.standard_normal((r, o))

    def network(v):
        z = anp.dot(A, v)
        return anp.tanh(z) + 0.25 * z ** 2

    def loss(y):
        ce = anp.log(anp.sum(anp.exp(y))) - anp.dot(t, y)
        return ce * C[:, 0] + anp.sin(anp.dot(C, y)) * anp.prod(y)

    y = network(w)
    pieces = (autograd.jacobian(network)(w), autograd.jacobian(loss)(y),
              hessian_tensor(loss, y), hessian_tensor(network, w))
    return pieces, hessian_tensor(lambda v: loss(network(v)), w)


@pytest.mark.exercise("5.1", points=4)
@pytest.mark.parametrize("o, n, r", [(3, 4, 2), (2, 3, 1), (4, 2, 3), (1, 5, 2)])
def test_composition_hessian_matches_autograd(nb, o, n, r):
    pieces, want = composition_pieces(51, o, n, r)
    assert close(nb.call("composition_hessian", *pieces), want)


@pytest.mark.exercise("5.1", points=4)
def test_composition_hessian_of_a_linear_network_is_gauss_newton(nb):
    # H_N = 0: every slice is J_N^T H_L[s] J_N
    (J_N, J_L, H_L, H_N), _ = composition_pieces(52, 3, 4, 2)
    got = nb.call("composition_hessian", J_N, J_L, H_L, np.zeros_like(H_N))
    assert close(got, np.einsum("ki,skl,lj->sij", J_N, H_L, J_N))


@pytest.mark.exercise("5.1", points=4)
def test_composition_hessian_of_a_linear_loss_is_the_residual_term(nb):
    # H_L = 0: slice s is sum_k J_L[s, k] H_N[k]
    (J_N, J_L, H_L, H_N), _ = composition_pieces(53, 3, 4, 2)
    got = nb.call("composition_hessian", J_N, J_L, np.zeros_like(H_L), H_N)
    assert close(got, np.einsum("sk,kij->sij", J_L, H_N))


# ---------------------------------------------------------------- 5.2
FORBID_52 = ("minigrad.gauss_newton", "minigrad.derivatives.gauss_newton",
             "minigrad.ggn_vp", "minigrad.derivatives.ggn_vp",
             "minigrad.jacobian", "minigrad.derivatives.jacobian",
             "minigrad.hessian", "minigrad.derivatives.hessian",
             "minigrad.Linear.param_jacobian", "minigrad.Linear.gram_params",
             "minigrad.Module.param_jacobian", "minigrad.Module.gram_params")


def linear_case(seed, B, m, o, loss):
    rng = np.random.default_rng(seed)
    layer = minigrad.Linear(m, o, rng=seed)
    X = rng.standard_normal((B, m))
    Y = layer(X)
    if isinstance(loss, minigrad.SoftmaxCrossEntropy):
        T = rng.integers(0, o, B)
        h = loss.hess_per_sample(Y, np.eye(o)[T])
    else:
        T = rng.standard_normal((B, o))
        h = loss.hess_per_sample(Y, T)
    return X, h, minigrad.gauss_newton(layer, loss, X, T)


@pytest.mark.exercise("5.2", points=4)
@pytest.mark.parametrize("B, m, o", [(6, 3, 4), (1, 2, 3), (5, 4, 1), (7, 1, 2)])
def test_linear_gauss_newton_cross_entropy(nb, B, m, o):
    X, h, want = linear_case(55, B, m, o, minigrad.SoftmaxCrossEntropy())
    assert close(nb.call("linear_gauss_newton", X, h, forbid=FORBID_52), want)


@pytest.mark.exercise("5.2", points=4)
def test_linear_gauss_newton_squared_error(nb):
    X, h, want = linear_case(56, 5, 3, 2, minigrad.MSELoss())
    assert close(nb.call("linear_gauss_newton", X, h, forbid=FORBID_52), want)


@pytest.mark.exercise("5.2", points=4)
def test_linear_gauss_newton_general_curvature(nb):
    # any symmetric h_b, not only a loss's: G = (1/B) sum_b J_b^T h_b J_b with J_b = [I kron x_b^T, I]
    rng = np.random.default_rng(57)
    B, m, o = 4, 3, 2
    X, S = rng.standard_normal((B, m)), rng.standard_normal((B, o, o))
    h = S + S.transpose(0, 2, 1)
    J = np.stack([np.hstack([np.kron(np.eye(o), x[None, :]), np.eye(o)]) for x in X])
    want = np.einsum("bki,bkl,blj->ij", J, h, J) / B
    assert close(nb.call("linear_gauss_newton", X, h, forbid=FORBID_52), want)


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


def quadratic_second_derivatives(X, A, G):
    """Per-sample x-x and summed-free x-A blocks of sum_i G_i d2 y_i, from autograd."""
    def weighted(Z, v):
        return anp.sum(G * quadratic(Z, anp.reshape(v, A.shape)))
    grad_x = autograd.grad(weighted, 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)      # constant derivatives
        full_xx = autograd.jacobian(grad_x, 0)(X, A.ravel())                  # (B, m, B, m)
        full_xa = autograd.jacobian(grad_x, 1)(X, A.ravel())                  # (B, m, p)
    return per_sample(full_xx), full_xa


@pytest.mark.exercise("5.3", points=4)
def test_quadratic_curvature_xx(nb):
    X, A, G = quadratic_setup(61)
    got = nb.eval(after_call("curvature_xx(G)"), X=X, A=A, G=G)
    assert close(got, quadratic_second_derivatives(X, A, G)[0])


@pytest.mark.exercise("5.3", points=4)
def test_quadratic_curvature_xp(nb):
    X, A, G = quadratic_setup(65)
    got = nb.eval(after_call("curvature_xp(G)"), X=X, A=A, G=G)
    assert close(got, quadratic_second_derivatives(X, A, G)[1])


@pytest.mark.exercise("5.3", points=4)
def test_quadratic_curvature_pp_is_zero(nb):
    X, A, G = quadratic_setup(66)
    got = nb.eval(after_call("curvature_pp(G)"), X=X, A=A, G=G)
    assert got is None or close(got, np.zeros((A.size, A.size)))       # y is linear in A


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
FORBID_54 = ("minigrad.hessian", "minigrad.derivatives.hessian", "minigrad.hvp",
             "minigrad.derivatives.hvp")


def two_layer_case(seed, m, h, o):
    rng = np.random.default_rng(seed)
    W1, b1 = rng.standard_normal((h, m)), rng.standard_normal(h)
    W2, b2 = rng.standard_normal((o, h)), rng.standard_normal(o)
    x, t = rng.standard_normal(m), rng.standard_normal(o)
    k = h * m + h

    def loss(v):
        W1_, b1_ = anp.reshape(v[:h * m], (h, m)), v[h * m:k]
        W2_, b2_ = anp.reshape(v[k:k + o * h], (o, h)), v[k + o * h:]
        return 0.5 * anp.sum((anp.dot(W2_, anp.tanh(anp.dot(W1_, x) + b1_)) + b2_ - t) ** 2)
    v = np.concatenate([W1.ravel(), b1, W2.ravel(), b2])
    want = autograd.hessian(loss)(v)[k:k + o * h, :h * m]
    return (W1, b1, W2, b2, x, t), want


@pytest.mark.exercise("5.4", points=3)
@pytest.mark.parametrize("m, h, o", [(3, 4, 2), (1, 3, 1), (2, 1, 3), (4, 5, 3)])
def test_cross_layer_block(nb, m, h, o):
    args, want = two_layer_case(58, m, h, o)
    assert close(nb.call("cross_layer_block", *args, forbid=FORBID_54), want)


@pytest.mark.exercise("5.4", points=3)
def test_cross_layer_block_at_a_perfect_fit_is_gauss_newton(nb):
    # with t = y the residual term vanishes and K = J_W2^T J_W1
    (W1, b1, W2, b2, x, _), _ = two_layer_case(59, 3, 4, 2)
    a = np.tanh(W1 @ x + b1)
    got = nb.call("cross_layer_block", W1, b1, W2, b2, x, W2 @ a + b2, forbid=FORBID_54)
    want = np.einsum("pk,k,l,q->pqkl", W2, 1 - a ** 2, x, a).reshape(8, 12)
    assert close(got, want)
