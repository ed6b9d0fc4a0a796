"""Graded tests of the Hessian exercises (solutions/04_hessian.ipynb).

Every reference is computed here with autograd (Hessian tensors as the Jacobian
of a Jacobian) or with minigrad's exact products.
"""
import autograd
import autograd.numpy as anp
import numpy as np
import pytest

import minigrad
from gradetools import NoAutodiff, close

NOTEBOOK = "04_hessian"


# ---------------------------------------------------------------- no automatic differentiation
@pytest.fixture(scope="module")
def nb(nb):
    """The conftest's notebook, wrapped: automatic differentiation is unavailable in it."""
    return NoAutodiff(nb)


#: a central difference with eps = 1e-4 is accurate to about eps^2 ~ 1e-8 relative
FD_TOL = 1e-6


def hessian_tensor(f, w):
    return autograd.jacobian(autograd.jacobian(f))(w)


# ---------------------------------------------------------------- 4.1
@pytest.mark.exercise("4.1", points=3)
@pytest.mark.parametrize("o, m", [(3, 2), (1, 4), (4, 1)])
def test_linear_tanh_hessian_matches_autograd(nb, o, m):
    rng = np.random.default_rng(41)
    W, x = rng.standard_normal((o, m)), rng.standard_normal(m)
    got = nb.call("linear_tanh_hessian", W, x)
    want = hessian_tensor(lambda w: anp.tanh(anp.dot(anp.reshape(w, (o, m)), x)), W.ravel())
    assert close(got, want)


@pytest.mark.exercise("4.1", points=3)
def test_linear_tanh_hessian_is_symmetric(nb):
    rng = np.random.default_rng(42)
    H = np.asarray(nb.call("linear_tanh_hessian", rng.standard_normal((2, 3)), rng.standard_normal(3)))
    assert H.shape == (2, 6, 6)
    assert close(H, H.transpose(0, 2, 1))


# ---------------------------------------------------------------- 4.2
FORBID_42 = ("minigrad.Softmax", "minigrad.activations.softmax")


def softmax(z):
    e = anp.exp(z - anp.max(z))
    return e / anp.sum(e)


@pytest.mark.exercise("4.2", points=3)
@pytest.mark.parametrize("o", [2, 3, 6])
def test_softmax_hessian_matches_autograd(nb, o):
    z = 2.0 * np.random.default_rng(44).standard_normal(o)
    got = nb.call("softmax_hessian", z, forbid=FORBID_42)
    assert close(got, hessian_tensor(softmax, z))


@pytest.mark.exercise("4.2", points=3)
def test_softmax_hessian_large_inputs(nb):
    z = np.random.default_rng(45).standard_normal(4)
    got = nb.call("softmax_hessian", z + 1000.0, forbid=FORBID_42)
    assert close(got, hessian_tensor(softmax, z))


@pytest.mark.exercise("4.2", points=3)
def test_softmax_hessian_sums_to_zero_over_outputs(nb):
    # the probabilities always sum to one, so every second derivative of the sum is zero
    z = np.random.default_rng(46).standard_normal(5)
    H = np.asarray(nb.call("softmax_hessian", z, forbid=FORBID_42))
    assert H.shape == (5, 5, 5)
    assert close(H.sum(axis=0), np.zeros((5, 5)))


# ---------------------------------------------------------------- 4.3
def glu(Z):
    k = Z.shape[1] // 2
    return Z[:, :k] / (1.0 + anp.exp(-Z[:, k:]))


def glu_input(seed, B=4, k=3):
    return 2.0 * np.random.default_rng(seed).standard_normal((B, 2 * k))


@pytest.mark.exercise("4.3", points=4)
def test_glu_forward(nb):
    X = glu_input(47)
    assert close(nb.eval("GLU()(X)", X=X), glu(X))


@pytest.mark.exercise("4.3", points=4)
def test_glu_input_jacobian(nb):
    X = glu_input(48)
    got = nb.eval("(lambda g: (g(X), g.input_jacobian())[1])(GLU())", X=X)
    assert close(got, np.einsum("bibj->bij", autograd.jacobian(glu)(X)))


@pytest.mark.exercise("4.3", points=4)
def test_glu_curvature(nb):
    X = glu_input(49)
    G = np.random.default_rng(50).standard_normal((4, 3))
    got = nb.eval("(lambda g: (g(X), g.curvature_xx(G))[1])(GLU())", X=X, G=G)
    want = np.einsum("bibj->bij", autograd.hessian(lambda Z: anp.sum(G * glu(Z)))(X))
    assert close(got, want)


@pytest.mark.exercise("4.3", points=4)
def test_glu_hessian_through_minigrad(nb):
    rng = np.random.default_rng(51)
    X, T = rng.standard_normal((6, 3)), rng.standard_normal((6, 2))
    first, last = minigrad.Linear(3, 4, rng=0), minigrad.Linear(2, 2, rng=1)
    w = np.concatenate([first.W.ravel(), first.b, last.W.ravel(), last.b])

    def loss(u):
        W1, b1 = anp.reshape(u[:12], (4, 3)), u[12:16]
        W2, b2 = anp.reshape(u[16:20], (2, 2)), u[20:22]
        Y = anp.dot(glu(anp.dot(X, W1.T) + b1), W2.T) + b2
        return anp.mean(0.5 * anp.sum((Y - T) ** 2, axis=1))
    got = nb.eval("minigrad.hessian(minigrad.Sequential(minigrad.Linear(3, 4, rng=0), GLU(), "
                  "minigrad.Linear(2, 2, rng=1)), minigrad.MSELoss(), X, T)", X=X, T=T)
    assert close(got, autograd.hessian(loss)(w))


# ---------------------------------------------------------------- 4.4
QUARTIC = "hvp_central(lambda u: A @ u + u ** 3, w, v, eps)"


def quartic_setup(seed, n=6):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n, n))
    return A + A.T, rng.standard_normal(n), rng.standard_normal(n)


@pytest.mark.exercise("4.4", points=3)
@pytest.mark.parametrize("eps", [0.5, 0.1])
def test_hvp_central_is_a_central_difference(nb, eps):
    # for the gradient A u + u^3 the central difference is exactly h v + eps^2 v^3
    A, w, v = quartic_setup(52)
    got = nb.eval(QUARTIC, A=A, w=w, v=v, eps=eps)
    assert close(got, A @ v + 3 * w ** 2 * v + eps ** 2 * v ** 3)


@pytest.mark.exercise("4.4", points=3)
def test_hvp_central_exact_for_a_quadratic(nb):
    A, w, v = quartic_setup(53)
    got = nb.eval("hvp_central(lambda u: A @ u, w, v, 2.0)", A=A, w=w, v=v)
    assert close(got, A @ v)


@pytest.mark.exercise("4.4", points=3)
def test_hvp_central_on_a_network(nb):
    rng = np.random.default_rng(54)
    X, T = rng.standard_normal((8, 3)), rng.standard_normal((8, 2))
    net = minigrad.Sequential(minigrad.Linear(3, 5, rng=0), minigrad.Tanh(), minigrad.Linear(5, 2, rng=1))
    w = minigrad.parameters_to_vector(net)
    v = rng.standard_normal(w.size)
    want = minigrad.hvp(net, minigrad.MSELoss(), X, T, v)
    expr = ("(lambda net: hvp_central(lambda u: (minigrad.vector_to_parameters(u, net), "
            "minigrad.grad(net, minigrad.MSELoss(), X, T))[1], "
            "minigrad.parameters_to_vector(net), v, 1e-4))"
            "(minigrad.Sequential(minigrad.Linear(3, 5, rng=0), minigrad.Tanh(), minigrad.Linear(5, 2, rng=1)))")
    got = nb.eval(expr, X=X, T=T, v=v, forbid=("minigrad.hvp",))
    assert close(got, want, tol=FD_TOL)


# ---------------------------------------------------------------- 4.5
GELU_C, GELU_A = np.sqrt(2.0 / np.pi), 0.044715


def softplus(z):
    return anp.logaddexp(0.0, z)


def gelu(z):
    return 0.5 * z * (1.0 + anp.tanh(GELU_C * (z + GELU_A * z ** 3)))


def second_derivative(f, x):
    return autograd.elementwise_grad(autograd.elementwise_grad(f))(x)


@pytest.mark.exercise("4.5", points=3)
@pytest.mark.parametrize("cls, f, scale", [("Softplus2", softplus, 4.0), ("GELU2", gelu, 2.5)])
def test_second_derivatives(nb, cls, f, scale):
    x = scale * np.random.default_rng(56).standard_normal((6, 3))
    assert close(nb.eval(f"{cls}().d2f(x)", x=x), second_derivative(f, x))


@pytest.mark.exercise("4.5", points=3)
def test_softplus_second_derivative_is_stable(nb):
    x = np.array([[-800.0, -40.0, 0.0, 40.0, 800.0]])
    got = np.asarray(nb.eval("Softplus2().d2f(x)", x=x), dtype=float)
    e = np.exp(-np.abs(x))
    assert np.all(np.isfinite(got))
    assert np.allclose(got, e / (1.0 + e) ** 2, rtol=1e-10, atol=1e-15)   # ~1e-18 may round to 0


@pytest.mark.exercise("4.5", points=3)
@pytest.mark.parametrize("cls, f", [("Softplus2", softplus), ("GELU2", gelu)])
def test_hessian_through_minigrad(nb, cls, f):
    rng = np.random.default_rng(57)
    X, T = 2.0 * rng.standard_normal((5, 3)), rng.standard_normal((5, 2))
    first, last = minigrad.Linear(3, 4, rng=0), minigrad.Linear(4, 2, rng=1)
    w = np.concatenate([first.W.ravel(), first.b, last.W.ravel(), last.b])

    def loss(u):
        W1, b1 = anp.reshape(u[:12], (4, 3)), u[12:16]
        W2, b2 = anp.reshape(u[16:24], (2, 4)), u[24:26]
        Y = anp.dot(f(anp.dot(X, W1.T) + b1), W2.T) + b2
        return anp.mean(0.5 * anp.sum((Y - T) ** 2, axis=1))
    got = nb.eval(f"minigrad.hessian(minigrad.Sequential(minigrad.Linear(3, 4, rng=0), {cls}(), "
                  "minigrad.Linear(4, 2, rng=1)), minigrad.MSELoss(), X, T)", X=X, T=T)
    assert close(got, autograd.hessian(loss)(w))


# ---------------------------------------------------------------- 4.6
def zero_or_none(block, shape):
    """A zero block may come back as None or as an array of zeros of the right shape."""
    return block is None or close(block, np.zeros(shape))


def scale_after_call(method):
    return f"(lambda s: (s(X), s.{method})[1])(Scale2(g))"


def scale_case(seed, B=4, m=3):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((B, m)), rng.uniform(0.5, 1.5, m), rng.standard_normal((B, m))


@pytest.mark.exercise("4.6", points=3)
def test_scale_curvature_xp(nb):
    X, g, G = scale_case(60)
    got = nb.eval(scale_after_call("curvature_xp(G)"), X=X, g=g, G=G)
    # d2 (sum_i G_i g_i x_i) / (dx_j dg_l), per sample
    cross = autograd.jacobian(lambda v: autograd.grad(lambda Z: anp.sum(G * Z * v))(X))(g)
    assert close(got, cross)


@pytest.mark.exercise("4.6", points=3)
@pytest.mark.parametrize("method", ["curvature_xx", "curvature_pp"])
def test_scale_zero_blocks(nb, method):
    X, g, G = scale_case(61)
    got = nb.eval(scale_after_call(f"{method}(G)"), X=X, g=g, G=G)
    shape = (4, 3, 3) if method == "curvature_xx" else (3, 3)
    assert zero_or_none(got, shape)


@pytest.mark.exercise("4.6", points=3)
def test_scale_hessian_through_minigrad(nb):
    rng = np.random.default_rng(62)
    X, T = rng.standard_normal((5, 3)), rng.standard_normal((5, 2))
    g = rng.uniform(0.5, 1.5, 4)
    first, last = minigrad.Linear(3, 4, rng=0), minigrad.Linear(4, 2, rng=1)
    w = np.concatenate([first.W.ravel(), first.b, g, last.W.ravel(), last.b])

    def loss(u):
        W1, b1, v = anp.reshape(u[:12], (4, 3)), u[12:16], u[16:20]
        W2, b2 = anp.reshape(u[20:28], (2, 4)), u[28:30]
        Y = anp.dot(anp.tanh((anp.dot(X, W1.T) + b1) * v), W2.T) + b2
        return anp.mean(0.5 * anp.sum((Y - T) ** 2, axis=1))
    got = nb.eval("minigrad.hessian(minigrad.Sequential(minigrad.Linear(3, 4, rng=0), Scale2(g), "
                  "minigrad.Tanh(), minigrad.Linear(4, 2, rng=1)), minigrad.MSELoss(), X, T)", X=X, T=T, g=g)
    assert close(got, autograd.hessian(loss)(w))
