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
from gradetools import NoAutodiff, WrongAnswer, expect, once, raises_value_error

NOTEBOOK = "03_jacobian"

#: the section of book/03_jacobian.ipynb each exercise practises, as its heading reads there
#: (the feedback pages link to it; tests/test_grader_feedback.py checks it exists)
SECTIONS = {
    "3.1": "The linear layer",
    "3.2": "Adding an activation",
    "3.3": "Adding an activation",
    "3.4": "Two Jacobians of a module",
}


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
def tied_case(seed, r, m):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((r, m)), rng.standard_normal(m)


def expect_tied(got, V, x):
    m = V.shape[1]
    want = autograd.jacobian(lambda A: anp.dot(A.T, anp.dot(A, x)))(V)
    expect(got, want, layout="(m, r, m): output i, then the two indices of V", variants={
        "keeps only the path through the decoder V^T: V is used twice, in h = V x too":
            np.eye(m)[:, None, :] * (V @ x)[None, :, None],
        "keeps only the path through the code h = V x: V is used twice, in the decoder V^T too":
            V.T[:, :, None] * x[None, None, :]})


def general_tied(nb):
    V, x = tied_case(30, 2, 4)
    expect_tied(nb.call("tied_jacobian", V, x), V, x)


@pytest.mark.exercise("3.1", points=2)
@pytest.mark.parametrize("r, m", [(2, 4), (1, 3), (3, 3), (2, 5), (4, 2), (1, 1), (3, 6), (5, 4), (2, 2)])
def test_tied_jacobian(nb, r, m):
    once(nb, general_tied)                          # beside every case: r = 1 or m = 1 alone proves little
    V, x = tied_case(31 + r + 10 * m, r, m)
    expect_tied(nb.call("tied_jacobian", V, x), V, x)


@pytest.mark.exercise("3.1", points=2)
def test_tied_jacobian_rejects_shapes_that_do_not_fit(nb):
    once(nb, general_tied)                                                          # a positive case first
    V, x = tied_case(33, 2, 4)
    raises_value_error(lambda: nb.call("tied_jacobian", V, x[:3]))


def named(check, name, *args, **kwargs):
    variants = {k: v for k, v in (kwargs.pop("variants", None) or {}).items() if v is not None}
    try:
        check(*args, variants=variants, **kwargs)
    except AssertionError as exc:
        raise type(exc)(f"{name}: {exc}") from None


# ---------------------------------------------------------------- 3.2
def gelu_variants(x):
    t = np.tanh(GELU_C * (x + GELU_A * x ** 3))
    du = GELU_C * (1.0 + 3.0 * GELU_A * x ** 2)
    return {"misses u' = c (1 + 3 a x^2), the derivative of the inner function (chain rule)":
            0.5 * (1.0 + t) + 0.5 * x * (1.0 - t ** 2),
            "misses the term (1 + tanh u) / 2 of the product rule": 0.5 * x * (1.0 - t ** 2) * du,
            "misses the term x (1 - tanh^2 u) u' / 2 of the product rule": 0.5 * (1.0 + t)}


def expect_elementwise(nb, cls, f, x):
    value, d1, _ = elementwise_derivatives(f, x)
    # under np.errstate(over, invalid, divide = "raise"), entered and left inside the one evaluation:
    # the task asks for no numpy warnings, so a warning is an error here
    quiet = (f"(lambda e: (e.__enter__(), [{cls}().f(x), {cls}().df(x)], e.__exit__(None, None, None))[1])"
             f"(np.errstate(over='raise', invalid='raise', divide='raise'))")
    try:
        got = nb.eval(quiet, x=x)
    except Exception as exc:                                            # the notebook's error, reported
        if "FloatingPointError" not in str(exc):
            raise
        warning = str(exc).split("FloatingPointError")[-1].strip(": \n").splitlines()[0][:60]
        raise WrongAnswer(f"{cls}: numpy warns ({warning}) at inputs like -800 and 800: never take exp of a "
                          f"large positive number") from None
    named(expect, f"{cls}.f", got[0], value)
    variants = {"is f itself, not its derivative": value}
    if cls == "GELU":
        variants.update(gelu_variants(x))
    named(expect, f"{cls}.df", got[1], d1, variants=variants)


def softplus_points(seed):
    x = 4.0 * np.random.default_rng(seed).standard_normal((6, 3))
    x[0, :] = [-800.0, 800.0, -40.0]                    # a stable form gets these exactly
    return x


@pytest.mark.exercise("3.2", points=3)
@pytest.mark.parametrize("seed", range(34, 43))
def test_softplus(nb, seed):
    expect_elementwise(nb, "Softplus", softplus, softplus_points(seed))


@pytest.mark.exercise("3.2", points=3)
def test_softplus_gradient_through_minigrad(nb):
    expect_elementwise(nb, "Softplus", softplus, softplus_points(43))
    X, T = batch(35)
    params, loss = reference_loss(lambda Z, e: softplus(Z))
    w = np.concatenate([P.ravel() for P in params])
    got = nb.eval("minigrad.grad(" + MODEL.format(middle="Softplus()") + ", minigrad.MSELoss(), X, T)",
                  X=X, T=T)
    expect(got, autograd.grad(loss)(w, X, T))


# ---------------------------------------------------------------- 3.3
@pytest.mark.exercise("3.3", points=3)
@pytest.mark.parametrize("seed", range(37, 46))
def test_gelu(nb, seed):
    expect_elementwise(nb, "GELU", gelu, 2.5 * np.random.default_rng(seed).standard_normal((6, 3)))


@pytest.mark.exercise("3.3", points=3)
def test_gelu_gradient_through_minigrad(nb):
    expect_elementwise(nb, "GELU", gelu, 2.5 * np.random.default_rng(46).standard_normal((4, 3)))
    X, T = batch(38)
    params, loss = reference_loss(lambda Z, e: gelu(Z))
    w = np.concatenate([P.ravel() for P in params])
    got = nb.eval("minigrad.grad(" + MODEL.format(middle="GELU()") + ", minigrad.MSELoss(), X, T)",
                  X=X, T=T)
    expect(got, autograd.grad(loss)(w, X, T))


# ---------------------------------------------------------------- 3.4
def expect_scale(nb, seed, B, m):
    rng = np.random.default_rng(seed)
    X, g = rng.standard_normal((B, m)), rng.uniform(0.5, 1.5, m)
    got = nb.eval("(lambda s: [s(X), s.input_jacobian(), s.param_jacobian()])(Scale(g))", X=X, g=g)
    named(expect, "forward", got[0], X * g)
    named(expect, "input_jacobian", got[1], np.einsum("bibj->bij", autograd.jacobian(lambda Z: Z * g)(X)),
          variants={"is diag(x), the parameter Jacobian": X[:, :, None] * np.eye(m),
                    "fills every entry with gamma: y_i depends on x_i alone, so J_x is diagonal":
                        np.broadcast_to(g, (B, m, m))})
    named(expect, "param_jacobian", got[2], autograd.jacobian(lambda v: X * v)(g),
          variants={"is diag(gamma), the input Jacobian": np.broadcast_to(np.diag(g), (B, m, m))})


@pytest.mark.exercise("3.4", points=4)
@pytest.mark.parametrize("B, m", [(4, 3), (1, 2), (5, 1), (3, 4), (2, 5), (6, 2), (4, 4), (3, 3), (7, 2)])
def test_scale(nb, B, m):
    expect_scale(nb, 39 + B + 10 * m, B, m)


@pytest.mark.exercise("3.4", points=4)
def test_scale_gradient_through_minigrad(nb):
    expect_scale(nb, 47, 4, 3)
    X, T = batch(44)
    g = np.random.default_rng(45).uniform(0.5, 1.5, 4)
    params, loss = reference_loss(lambda Z, e: anp.tanh(Z * e))
    w = np.concatenate([P.ravel() for P in params[:2]] + [g] + [P.ravel() for P in params[2:]])
    middle = "Scale(g), minigrad.Tanh()"
    got = nb.eval("minigrad.grad(" + MODEL.format(middle=middle) + ", minigrad.MSELoss(), X, T)",
                  X=X, T=T, g=g)
    expect(got, autograd.grad(loss)(w, X, T, extra=4))
