"""Graded tests of the Jacobian exercises (solutions/03_jacobian.ipynb).

The learner's activations and layer run in the notebook's kernel, inside minigrad
models built there; every reference is computed here with autograd.
"""
import warnings

import autograd
import autograd.numpy as anp
import numpy as np
import pytest

import minigrad
from gradetools import NoAutodiff, close

NOTEBOOK = "03_jacobian"


# ---------------------------------------------------------------- no automatic differentiation
@pytest.fixture(scope="module")
def nb(nb):
    """The conftest's notebook, wrapped: automatic differentiation is unavailable in it."""
    return NoAutodiff(nb)


#: exact derivatives agree with autograd up to rounding
TOL = 1e-10

GELU_C, GELU_A = np.sqrt(2.0 / np.pi), 0.044715


def elementwise_derivatives(f, x):
    """f, f', f'' of a scalar function written with autograd.numpy, at every entry of x."""
    d1 = autograd.elementwise_grad(f)
    return f(x), d1(x), autograd.elementwise_grad(d1)(x)


def softplus(z):
    return anp.logaddexp(0.0, z)


def gelu(z):
    return 0.5 * z * (1.0 + anp.tanh(GELU_C * (z + GELU_A * z ** 3)))


# The model every "plugs into minigrad" test builds in the kernel, and its twin here.
MODEL = ("minigrad.Sequential(minigrad.Linear(3, 4, rng=0), {middle}, "
         "minigrad.Linear(4, 2, rng=1))")


def reference_loss(middle):
    """The batch MSE loss of MODEL as a function of its flat parameters
    [W1, b1, (extra), W2, b2]; ``middle(Z, extra)`` is the middle module."""
    first, last = minigrad.Linear(3, 4, rng=0), minigrad.Linear(4, 2, rng=1)
    params = [first.W, first.b, last.W, last.b]

    def loss(w, X, T, extra=0):
        W1, b1 = anp.reshape(w[:12], (4, 3)), w[12:16]
        e = w[16:16 + extra]
        W2, b2 = anp.reshape(w[16 + extra:24 + extra], (2, 4)), w[24 + extra:]
        Y = anp.dot(middle(anp.dot(X, W1.T) + b1, e), W2.T) + b2
        return anp.mean(0.5 * anp.sum((Y - T) ** 2, axis=1))
    return params, loss


def batch(seed, B=5, scale=2.0):
    rng = np.random.default_rng(seed)
    return scale * rng.standard_normal((B, 3)), rng.standard_normal((B, 2))


# ---------------------------------------------------------------- 3.1
FORBID_31 = ("minigrad.Linear.param_jacobian",)


@pytest.mark.exercise("3.1", points=2)
@pytest.mark.parametrize("o, m", [(3, 4), (1, 5), (4, 1)])
def test_weight_jacobian_matches_autograd(nb, o, m):
    rng = np.random.default_rng(31)
    W, x = rng.standard_normal((o, m)), rng.standard_normal(m)
    got = nb.call("linear_weight_jacobian", x, o, forbid=FORBID_31)
    assert close(got, autograd.jacobian(lambda V: anp.dot(V, x))(W))


@pytest.mark.exercise("3.1", points=2)
def test_weight_jacobian_flattens_to_minigrad_layout(nb):
    rng = np.random.default_rng(32)
    x = rng.standard_normal(3)
    layer = minigrad.Linear(3, 2, rng=0)
    layer(x[None])
    got = np.asarray(nb.call("linear_weight_jacobian", x, 2, forbid=FORBID_31))
    assert close(got.reshape(2, 6), layer.param_jacobian()[0, :, :6])


# ---------------------------------------------------------------- 3.2
@pytest.mark.exercise("3.2", points=3)
@pytest.mark.parametrize("k, method", [(0, "f"), (1, "df")])
def test_softplus_derivatives(nb, k, method):
    x = 4.0 * np.random.default_rng(34).standard_normal((6, 3))
    got = nb.eval(f"Softplus().{method}(x)", x=x)
    assert close(got, elementwise_derivatives(softplus, x)[k])


@pytest.mark.exercise("3.2", points=3)
def test_softplus_is_stable_for_large_inputs(nb):
    # log(1 + exp(800)) overflows, log(1 + exp(-40)) rounds to 0: a stable form gets both right
    x = np.array([[-800.0, -40.0, 0.0, 40.0, 800.0]])
    got = nb.eval("[Softplus().f(x), Softplus().df(x)]", x=x)
    e = np.exp(-np.abs(x))
    s = np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
    # f and f' to full relative precision
    wants = [(np.logaddexp(0.0, x), 0.0), (s, 0.0)]
    for g, (w, atol) in zip(got, wants):
        g = np.asarray(g, dtype=float)
        assert np.all(np.isfinite(g))
        assert np.allclose(g, w, rtol=TOL, atol=atol)


@pytest.mark.exercise("3.2", points=3)
def test_softplus_gradient_through_minigrad(nb):
    X, T = batch(35)
    params, loss = reference_loss(lambda Z, e: softplus(Z))
    w = np.concatenate([P.ravel() for P in params])
    got = nb.eval("minigrad.grad(" + MODEL.format(middle="Softplus()") + ", minigrad.MSELoss(), X, T)",
                  X=X, T=T)
    assert close(got, autograd.grad(loss)(w, X, T))


# ---------------------------------------------------------------- 3.3
@pytest.mark.exercise("3.3", points=3)
@pytest.mark.parametrize("k, method", [(0, "f"), (1, "df")])
def test_gelu_derivatives(nb, k, method):
    x = 2.5 * np.random.default_rng(37).standard_normal((6, 3))
    got = nb.eval(f"GELU().{method}(x)", x=x)
    assert close(got, elementwise_derivatives(gelu, x)[k])


@pytest.mark.exercise("3.3", points=3)
def test_gelu_gradient_through_minigrad(nb):
    X, T = batch(38)
    params, loss = reference_loss(lambda Z, e: gelu(Z))
    w = np.concatenate([P.ravel() for P in params])
    got = nb.eval("minigrad.grad(" + MODEL.format(middle="GELU()") + ", minigrad.MSELoss(), X, T)",
                  X=X, T=T)
    assert close(got, autograd.grad(loss)(w, X, T))


# ---------------------------------------------------------------- 3.4
def scale_setup(seed, B=4, m=3):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((B, m)), rng.uniform(0.5, 1.5, m)


@pytest.mark.exercise("3.4", points=4)
def test_scale_forward(nb):
    X, g = scale_setup(39)
    assert close(nb.eval("Scale(g)(X)", X=X, g=g), X * g)


@pytest.mark.exercise("3.4", points=4)
def test_scale_input_jacobian(nb):
    X, g = scale_setup(40)
    got = nb.eval("(lambda s: (s(X), s.input_jacobian())[1])(Scale(g))", X=X, g=g)
    full = autograd.jacobian(lambda Z: Z * g)(X)                    # (B, m, B, m)
    assert close(got, np.einsum("bibj->bij", full))


@pytest.mark.exercise("3.4", points=4)
def test_scale_param_jacobian(nb):
    X, g = scale_setup(41)
    got = nb.eval("(lambda s: (s(X), s.param_jacobian())[1])(Scale(g))", X=X, g=g)
    assert close(got, autograd.jacobian(lambda v: X * v)(g))


@pytest.mark.exercise("3.4", points=4)
def test_scale_gradient_through_minigrad(nb):
    X, T = batch(44)
    g = np.random.default_rng(45).uniform(0.5, 1.5, 4)
    params, loss = reference_loss(lambda Z, e: anp.tanh(Z * e))
    w = np.concatenate([P.ravel() for P in params[:2]] + [g] + [P.ravel() for P in params[2:]])
    middle = "Scale(g), minigrad.Tanh()"
    got = nb.eval("minigrad.grad(" + MODEL.format(middle=middle) + ", minigrad.MSELoss(), X, T)",
                  X=X, T=T, g=g)
    assert close(got, autograd.grad(loss)(w, X, T, extra=4))
