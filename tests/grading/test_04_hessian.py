"""Graded tests of the Hessian exercises (solutions/04_hessian.ipynb).

Every reference is computed here with autograd (Hessian tensors as the Jacobian
of a Jacobian) or with minigrad's exact products.
"""
import autograd
import autograd.numpy as anp
import numpy as np
import pytest

import minigrad
from gradetools import NoAutodiff, WrongAnswer, expect, raises_value_error

NOTEBOOK = "04_hessian"

#: the section of book/04_hessian.ipynb each exercise practises, as its heading reads there
#: (the feedback pages link to it; tests/test_grader_feedback.py checks it exists)
SECTIONS = {
    "4.1": "The linear layer: zero blocks and one that is not",
    "4.2": "Softmax: a full tensor",
    "4.3": "A vector function: a 3-D tensor",
    "4.4": "Hessian-vector products",
    "4.5": "Elementwise activations: a diagonal tensor",
    "4.6": "The linear layer: zero blocks and one that is not",
}


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
def linear_tanh_variants(W, x):
    o, m = W.shape
    t = np.tanh(W @ x)
    H = np.zeros((o, o, m, o, m))
    Hf1 = np.zeros((o, o, m, o, m))
    for i in range(o):
        H[i, i, :, i, :] = -2 * t[i] * (1 - t[i] ** 2) * np.outer(x, x)
        Hf1[i, i, :, i, :] = (1 - t[i] ** 2) * np.outer(x, x)
    every = np.einsum("i,kl,ab->ikalb", -2 * t * (1 - t ** 2), np.eye(o), np.outer(x, x))
    return {"puts output i's curvature in every row of W: y_i depends on row i of W only": every.reshape(o, o * m, o * m),
            "uses f'(z) where the second derivative f''(z) = -2 tanh z (1 - tanh^2 z) belongs":
            Hf1.reshape(o, o * m, o * m)}


@pytest.mark.exercise("4.1", points=3)
@pytest.mark.parametrize("o, m", [(3, 2), (1, 4), (4, 1), (2, 3), (3, 3), (2, 2), (5, 2), (1, 1), (2, 4)])
def test_linear_tanh_hessian_matches_autograd(nb, o, m):
    expect_linear_tanh(nb, 41, 3, 2)                # beside every case: o = 1 or m = 1 alone hides the layout
    expect_linear_tanh(nb, 41 + o + 10 * m, o, m)


def expect_linear_tanh(nb, seed, o, m):
    rng = np.random.default_rng(seed)
    W, x = rng.standard_normal((o, m)), rng.standard_normal(m)
    got = nb.call("linear_tanh_hessian", W, x)
    want = hessian_tensor(lambda w: anp.tanh(anp.dot(anp.reshape(w, (o, m)), x)), W.ravel())
    expect(got, want, variants=linear_tanh_variants(W, x), layout="(o, o m, o m): output i, then ravel(W) twice")


@pytest.mark.exercise("4.1", points=3)
def test_linear_tanh_hessian_rejects_shapes_that_do_not_fit(nb):
    rng = np.random.default_rng(42)
    W, x = rng.standard_normal((2, 3)), rng.standard_normal(3)
    want = hessian_tensor(lambda w: anp.tanh(anp.dot(anp.reshape(w, (2, 3)), x)), W.ravel())
    expect(nb.call("linear_tanh_hessian", W, x), want)                              # a positive case first
    raises_value_error(lambda: nb.call("linear_tanh_hessian", W, x[:2]))


# ---------------------------------------------------------------- 4.2
def log_softmax(z):
    m = anp.max(z)
    return z - m - anp.log(anp.sum(anp.exp(z - m)))


def log_softmax_variants(z):
    p = np.exp(z - z.max())
    p /= p.sum()
    D = np.eye(z.size) - p[None, :]
    softmax_H = p[:, None, None] * D[:, :, None] * D[:, None, :] - p[:, None, None] * p[None, :, None] * D[None, :, :]
    return {"is the Hessian tensor of softmax, not of log p = z - log sum exp z": softmax_H}


@pytest.mark.exercise("4.2", points=3)
@pytest.mark.parametrize("o", [2, 3, 4, 5, 6, 7, 8, 9, 10])
def test_log_softmax_hessian(nb, o):
    z = 2.0 * np.random.default_rng(44 + o).standard_normal(o)
    shifted = z + (1000.0 if o % 2 else -1000.0)           # log-softmax ignores a shift: stay exact
    expect(nb.call("log_softmax_hessian", shifted), hessian_tensor(log_softmax, z), variants=log_softmax_variants(z))


@pytest.mark.exercise("4.2", points=3)
def test_log_softmax_hessian_rejects_a_matrix(nb):
    z = np.random.default_rng(46).standard_normal(4)
    expect(nb.call("log_softmax_hessian", z), hessian_tensor(log_softmax, z))      # a positive case first
    raises_value_error(lambda: nb.call("log_softmax_hessian", z[None, :]))


# ---------------------------------------------------------------- 4.3
def glu(Z):
    k = Z.shape[1] // 2
    return Z[:, :k] / (1.0 + anp.exp(-Z[:, k:]))


def glu_input(seed, B=4, k=3):
    return 2.0 * np.random.default_rng(seed).standard_normal((B, 2 * k))


def expect_glu(nb, X, G):
    k = X.shape[1] // 2
    got = nb.eval("(lambda g: [g(X), g.input_jacobian(), g.curvature_xx(G)])(GLU())", X=X, G=G)
    s = 1 / (1 + np.exp(-X[:, k:]))
    wants = [glu(X), np.einsum("bibj->bij", autograd.jacobian(glu)(X)),
             np.einsum("bibj->bij", autograd.hessian(lambda Z: anp.sum(G * glu(Z)))(X))]
    C_half = np.zeros_like(wants[2])
    idx = np.arange(k)
    C_half[:, idx, k + idx] = G * s * (1 - s)
    C_half[:, k + idx, k + idx] = G * X[:, :k] * s * (1 - s) * (1 - 2 * s)
    variants = [{}, {}, {"fills only one of the two mixed entries d2 y_i / da_i db_i: the curvature is symmetric":
                         C_half}]
    for name, g, w, v in zip(("forward", "input_jacobian", "curvature_xx"), got, wants, variants):
        try:
            expect(g, w, variants=v)
        except AssertionError as exc:
            raise type(exc)(f"{name}: {exc}") from None


@pytest.mark.exercise("4.3", points=4)
@pytest.mark.parametrize("B, k", [(4, 3), (1, 2), (5, 1), (3, 4), (2, 5), (6, 2), (4, 4), (3, 3), (7, 1)])
def test_glu_every_method(nb, B, k):
    rng = np.random.default_rng(47 + B + 10 * k)
    expect_glu(nb, 2.0 * rng.standard_normal((B, 2 * k)), rng.standard_normal((B, k)))


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
    expect(got, autograd.hessian(loss)(w))


# ---------------------------------------------------------------- 4.4
def quartic_setup(seed, n=6):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n, n))
    return A + A.T, rng.standard_normal(n), rng.standard_normal(n)


QUARTIC = "hvp_fourth_order(lambda u: A @ u + u ** 3, w, v, eps)"


def expect_fourth_order(nb, seed, eps):
    # the gradient A u + u^3 is cubic along v: the four-point combination is exact for every eps
    A, w, v = quartic_setup(seed)
    hv = A @ v + 3 * w ** 2 * v
    expect(nb.eval(QUARTIC, A=A, w=w, v=v, eps=eps), hv, variants={
        "is the two-point central difference: its eps^2 term is still there": hv + eps ** 2 * v ** 3,
        "is a forward difference (from w to w + eps v): its error is of order eps":
            hv + 3 * eps * w * v ** 2 + eps ** 2 * v ** 3})


@pytest.mark.exercise("4.4", points=3)
@pytest.mark.parametrize("eps", [0.5, 0.1, 0.3, 0.05, 1.0, 0.2, 0.7, 2.0])
def test_hvp_fourth_order_is_exact_for_a_cubic_gradient(nb, eps):
    expect_fourth_order(nb, 52, eps)


@pytest.mark.exercise("4.4", points=3)
def test_hvp_fourth_order_on_a_network(nb):
    expect_fourth_order(nb, 53, 0.3)
    rng = np.random.default_rng(54)
    X, T = rng.standard_normal((8, 3)), rng.standard_normal((8, 2))
    net = minigrad.Sequential(minigrad.Linear(3, 5, rng=0), minigrad.Tanh(), minigrad.Linear(5, 2, rng=1))
    w = minigrad.parameters_to_vector(net)
    v = rng.standard_normal(w.size)
    want = minigrad.hvp(net, minigrad.MSELoss(), X, T, v)
    expr = ("(lambda net: hvp_fourth_order(lambda u: (minigrad.vector_to_parameters(u, net), "
            "minigrad.grad(net, minigrad.MSELoss(), X, T))[1], "
            "minigrad.parameters_to_vector(net), v, 1e-3))"
            "(minigrad.Sequential(minigrad.Linear(3, 5, rng=0), minigrad.Tanh(), minigrad.Linear(5, 2, rng=1)))")
    expect(nb.eval(expr, X=X, T=T, v=v), want, tol=FD_TOL)


@pytest.mark.exercise("4.4", points=3)
def test_hvp_fourth_order_refuses_a_step_that_is_not_positive(nb):
    expect_fourth_order(nb, 55, 0.1)                                                 # a positive case first
    raises_value_error(lambda: nb.eval("hvp_fourth_order(lambda u: u, w, w, 0.0)", w=np.ones(3)))


# ---------------------------------------------------------------- 4.5
GELU_C, GELU_A = np.sqrt(2.0 / np.pi), 0.044715


def softplus(z):
    return anp.logaddexp(0.0, z)


def gelu(z):
    return 0.5 * z * (1.0 + anp.tanh(GELU_C * (z + GELU_A * z ** 3)))


def second_derivative(f, x):
    return autograd.elementwise_grad(autograd.elementwise_grad(f))(x)


def gelu_variants(x):
    t = np.tanh(GELU_C * (x + GELU_A * x ** 3))
    s = 1.0 - t ** 2
    du = GELU_C * (1.0 + 3.0 * GELU_A * x ** 2)
    return {"misses u'' = 6 a c x, the second derivative of the inner function": s * du - x * t * s * du ** 2}


def expect_second_derivatives(nb, x):
    got = nb.eval("[Softplus2().d2f(x), GELU2().d2f(x)]", x=x)
    xs = x.copy()
    xs[0, :2] = [-800.0, 800.0]                          # softplus only: a stable form gets these
    got_s = nb.eval("Softplus2().d2f(x)", x=xs)
    s = 1 / (1 + np.exp(-np.clip(xs, -700, 700)))
    checks = [("Softplus2.d2f", got_s, second_derivative(softplus, xs),
               {"is f'(x) = sigma(x), not f''": s}),
              ("GELU2.d2f", got[1], second_derivative(gelu, x), gelu_variants(x))]
    for name, g, w, v in checks:
        try:
            expect(g, w, variants=v)
        except AssertionError as exc:
            raise type(exc)(f"{name}: {exc}") from None


@pytest.mark.exercise("4.5", points=3)
@pytest.mark.parametrize("seed", range(56, 64))
def test_second_derivatives(nb, seed):
    expect_second_derivatives(nb, 2.5 * np.random.default_rng(seed).standard_normal((6, 3)))


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
    expect(got, autograd.hessian(loss)(w))


# ---------------------------------------------------------------- 4.6
def expect_scale_blocks(nb, X, g, G):
    B, m = X.shape
    got = nb.eval("(lambda s: (s(X), [s.curvature_xx(G), s.curvature_xp(G), s.curvature_pp(G)])[1])(Scale2(g))",
                  X=X, g=g, G=G)
    cross = autograd.jacobian(lambda v: autograd.grad(lambda Z: anp.sum(G * Z * v))(X))(g)   # (B, m, m)
    if got[1] is None:
        raise WrongAnswer("curvature_xp: your answer is None (a zero block), but y_i = gamma_i x_i has a "
                          "mixed second derivative in x_i and gamma_i")
    try:
        expect(got[1], cross, variants={"is diag(gamma): the mixed derivative of sum_i g_i gamma_i x_i in x_j and "
                                        "gamma_j is g_j, the output gradient": np.broadcast_to(np.diag(g), (B, m, m))})
    except AssertionError as exc:
        raise type(exc)(f"curvature_xp: {exc}") from None
    for name, block, shape in (("curvature_xx", got[0], (B, m, m)), ("curvature_pp", got[2], (m, m))):
        if block is not None:
            try:
                expect(block, np.zeros(shape))
            except AssertionError as exc:
                raise type(exc)(f"{name}: {exc}; y is linear in each variable alone") from None


@pytest.mark.exercise("4.6", points=3)
@pytest.mark.parametrize("B, m", [(4, 3), (1, 2), (5, 1), (3, 4), (2, 5), (6, 2), (4, 4), (3, 3), (7, 2)])
def test_scale_curvature_blocks(nb, B, m):
    rng = np.random.default_rng(60 + B + 10 * m)
    expect_scale_blocks(nb, rng.standard_normal((B, m)), rng.uniform(0.5, 1.5, m), rng.standard_normal((B, m)))


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
    expect(got, autograd.hessian(loss)(w))
