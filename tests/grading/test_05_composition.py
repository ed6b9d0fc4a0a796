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
from gradetools import NoAutodiff, WrongAnswer, expect, expect_choices, raises_value_error

NOTEBOOK = "05_composition"

#: the section of book/05_composition.ipynb each exercise practises, as its heading reads there
#: (the feedback pages link to it; tests/test_grader_feedback.py checks it exists)
SECTIONS = {
    "5.1": "The Hessian of a composition",
    "5.2": "The Gauss-Newton matrix",
    "5.3": "The same formula, one module at a time: `backward_second`",
    "5.4": "The blocks between layers: the same recursion on a joint variable",
    "5.5": "The Gauss-Newton matrix",
}


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
def chain_pieces(seed, n, p, o):
    """J_N, H_N, J_M, H_M, g, H of C = L o M o N at a random point, and h_C by autograd."""
    rng = np.random.default_rng(seed)
    A_N, A_M, w = rng.standard_normal((p, n)), rng.standard_normal((o, p)), rng.standard_normal(n)
    c = rng.standard_normal(o)

    def inner(v):
        return anp.tanh(anp.dot(A_N, v)) + 0.1 * v[0] * anp.dot(A_N, v)

    def middle(u):
        return anp.sin(anp.dot(A_M, u)) + 0.5 * anp.dot(A_M, u) ** 2

    def loss(y):
        return anp.log(anp.sum(anp.exp(y))) - anp.dot(c, y) + anp.prod(y)

    u = inner(w)
    y = middle(u)
    pieces = (autograd.jacobian(inner)(w), hessian_tensor(inner, w),
              autograd.jacobian(middle)(u), hessian_tensor(middle, u),
              autograd.grad(loss)(y), autograd.hessian(loss)(y))
    return pieces, autograd.hessian(lambda v: loss(middle(inner(v))))(w)


def chain_variants(J_N, H_N, J_M, H_M, g, H):
    J = J_M @ J_N
    gn = J.T @ H @ J
    middle = J_N.T @ np.einsum("k,kij->ij", g, H_M) @ J_N
    inner = np.einsum("i,iab->ab", J_M.T @ g, H_N)
    return {"is the Gauss-Newton part J^T H J alone: both residual terms are missing": gn,
            "misses the curvature of the middle function M (the term with H_M)": gn + inner,
            "misses the curvature of the inner function N (the term with H_N)": gn + middle,
            "weights H_N by g instead of J_M^T g (the gradient at the output of N)":
                gn + middle + np.einsum("i,iab->ab", np.resize(g, J_N.shape[0]), H_N)}


@pytest.mark.exercise("5.1", points=4)
@pytest.mark.parametrize("n, p, o", [(4, 3, 2), (3, 5, 4), (2, 2, 3), (5, 3, 3), (3, 4, 2), (4, 2, 5),
                                     (2, 3, 2), (3, 3, 4)])
def test_chain_hessian_matches_autograd(nb, n, p, o):
    pieces, want = chain_pieces(51 + n, n, p, o)
    expect(nb.call("chain_hessian", *pieces), want, variants=chain_variants(*pieces))


@pytest.mark.exercise("5.1", points=4)
def test_chain_hessian_with_a_linear_middle_function(nb):
    # H_M = 0 and a general point: the two-function rule with the network M o N
    (J_N, H_N, J_M, H_M, g, H), _ = chain_pieces(55, 3, 4, 2)
    pieces = (J_N, H_N, J_M, np.zeros_like(H_M), g, H)
    J = J_M @ J_N
    want = J.T @ H @ J + np.einsum("i,iab->ab", J_M.T @ g, H_N)
    expect(nb.call("chain_hessian", *pieces), want, variants=chain_variants(*pieces))


@pytest.mark.exercise("5.1", points=4)
def test_chain_hessian_rejects_shapes_that_do_not_fit(nb):
    (J_N, H_N, J_M, H_M, g, H), want = chain_pieces(56, 3, 4, 2)
    expect(nb.call("chain_hessian", J_N, H_N, J_M, H_M, g, H), want)        # a positive case first
    raises_value_error(lambda: nb.call("chain_hessian", J_N, H_N, J_M.T, H_M, g, H))


# ---------------------------------------------------------------- 5.2
def dense_reference(X, h):
    """G of y = W^T x + b, W (m, o), from explicit per-sample Jacobians."""
    B, m = X.shape
    o = h.shape[1]
    J = np.stack([np.hstack([np.kron(x[None, :], np.eye(o)), np.eye(o)]) for x in X])
    return np.einsum("bki,bkl,blj->ij", J, h, J) / B


def dense_variants(X, h):
    B, m = X.shape
    o = h.shape[1]
    mo = m * o
    J_out_in = np.stack([np.hstack([np.kron(np.eye(o), x[None, :]), np.eye(o)]) for x in X])
    want = dense_reference(X, h)
    no_cross = want.copy()
    no_cross[:mo, mo:] = no_cross[mo:, :mo] = 0.0
    return {"is in minigrad's (out, in) order: here W is (in, out), W_ik at position i o + k":
            np.einsum("bki,bkl,blj->ij", J_out_in, h, J_out_in) / B,
            "misses the weight-bias blocks (they are x_b kron h_b, averaged)": no_cross,
            "is the sum over the batch: the 1/B of the mean is missing": B * want}


def dense_case(seed, B, m, o, kind):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((B, m))
    if kind == "cross-entropy":
        Z = rng.standard_normal((B, o))
        P = np.exp(Z - Z.max(axis=1, keepdims=True))
        P /= P.sum(axis=1, keepdims=True)
        h = np.einsum("bk,kl->bkl", P, np.eye(o)) - np.einsum("bk,bl->bkl", P, P)
    else:
        S = rng.standard_normal((B, o, o))
        h = S + S.transpose(0, 2, 1)
    return X, h


LAYOUT_52 = "(m o + o, m o + o): ravel(W) row-major with W of shape (m, o), then b"


@pytest.mark.exercise("5.2", points=4)
@pytest.mark.parametrize("B, m, o, kind", [(6, 3, 4, "cross-entropy"), (5, 2, 3, "symmetric"),
                                           (7, 4, 2, "symmetric"), (3, 2, 2, "cross-entropy"),
                                           (8, 3, 3, "symmetric"), (4, 5, 2, "cross-entropy"),
                                           (2, 2, 4, "symmetric"), (6, 4, 3, "cross-entropy")])
def test_dense_gauss_newton(nb, B, m, o, kind):
    X, h = dense_case(520 + B, B, m, o, kind)
    expect(nb.call("dense_gauss_newton", X, h), dense_reference(X, h),
           variants=dense_variants(X, h), B=B, layout=LAYOUT_52)


@pytest.mark.exercise("5.2", points=4)
def test_dense_gauss_newton_edge_cases_with_a_general_case(nb):
    # one input or one output, where the orders coincide, count only together with a general case
    for seed, (B, m, o) in enumerate([(4, 1, 3), (4, 3, 1), (6, 3, 2)]):
        X, h = dense_case(530 + seed, B, m, o, "symmetric")
        expect(nb.call("dense_gauss_newton", X, h), dense_reference(X, h),
               variants=dense_variants(X, h), B=B, layout=LAYOUT_52)


@pytest.mark.exercise("5.2", points=4)
def test_dense_gauss_newton_rejects_shapes_that_do_not_fit(nb):
    X, h = dense_case(540, 5, 3, 2, "symmetric")
    expect(nb.call("dense_gauss_newton", X, h), dense_reference(X, h))     # a positive case first
    raises_value_error(lambda: nb.call("dense_gauss_newton", X, h[:4]))


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


def quadratic_second_derivatives(X, A, G):
    """Per-sample x-x and x-A blocks of sum_i G_i d2 y_i, from autograd."""
    def weighted(Z, v):
        return anp.sum(G * quadratic(Z, anp.reshape(v, A.shape)))
    grad_x = autograd.grad(weighted, 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)      # constant derivatives
        full_xx = autograd.jacobian(grad_x, 0)(X, A.ravel())                  # (B, m, B, m)
        full_xa = autograd.jacobian(grad_x, 1)(X, A.ravel())                  # (B, m, p)
    return per_sample(full_xx), full_xa


def quadratic_methods(seed, B, m, o):
    """Inputs and, per method of QuadraticForm, (expression, reference, variants)."""
    rng = np.random.default_rng(seed)
    X, A, G = rng.standard_normal((B, m)), rng.standard_normal((o, m, m)), rng.standard_normal((B, o))
    M = rng.standard_normal((B, o, o))
    H = M @ M.transpose(0, 2, 1)
    J = per_sample(autograd.jacobian(lambda Z: quadratic(Z, A))(X))
    Cxx, Cxa = quadratic_second_derivatives(X, A, G)
    one_sided_J = 2 * np.einsum("ilk,bk->bil", A, X)
    one_term = np.einsum("bi,lj,bk->blijk", G, np.eye(m), X).reshape(B, m, o * m * m)
    methods = [
        ("forward", "QuadraticForm(A)(X)", quadratic(X, A), {}),
        ("input_jacobian", after_call("input_jacobian()"), J,
         {"uses 2 A_i x: x^T A_i x has x on both sides, and A_i need not be symmetric": one_sided_J}),
        ("param_jacobian", after_call("param_jacobian()"),
         autograd.jacobian(lambda v: quadratic(X, anp.reshape(v, A.shape)))(A.ravel()), {}),
        ("curvature_xx", after_call("curvature_xx(G)"), Cxx,
         {"uses 2 A_i: the curvature is A_i + A_i^T": 2 * np.einsum("bi,ijk->bjk", G, A)}),
        ("curvature_xp", after_call("curvature_xp(G)"), Cxa,
         {"keeps one of the two terms of the product rule (x_j x_k: both factors depend on x)": one_term,
          "keeps the other one of the two terms of the product rule (x_j x_k: both factors depend on x)":
              Cxa - one_term}),
    ]
    return X, A, G, H, J, Cxx, methods


def expect_quadratic(nb, seed, B, m, o):
    X, A, G, H, J, Cxx, methods = quadratic_methods(seed, B, m, o)
    for name, expr, want, variants in methods:
        try:
            expect(nb.eval(expr, X=X, A=A, G=G), want, variants=variants)
        except AssertionError as exc:
            raise type(exc)(f"{name}: {exc}") from None
    pp = nb.eval(after_call("curvature_pp(G)"), X=X, A=A, G=G)
    if pp is not None:
        expect(pp, np.zeros((A.size, A.size)))           # y is linear in A
    GX, HX = nb.eval(after_call("backward_second(G, H)"), X=X, A=A, G=G, H=H)
    expect(GX, np.einsum("bom,bo->bm", J, G))
    expect(HX, np.einsum("bom,bok,bkn->bmn", J, H, J) + Cxx)


@pytest.mark.exercise("5.3", points=4)
@pytest.mark.parametrize("B, m, o", [(4, 3, 2), (3, 2, 3), (5, 4, 1)])
def test_quadratic_form_every_method(nb, B, m, o):
    # one test checks every method, so that a wrong block costs the whole case
    expect_quadratic(nb, 580 + B, B, m, o)


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
    expect(nb.eval(expr, X=X, T=T, A=A), autograd.hessian(loss)(w))


# ---------------------------------------------------------------- 5.4
def cross_layer_case(seed, m, h, o, activation="tanh", loss="cross-entropy"):
    """(W2, x, a, fp, g, H) and the two terms of d2 C / d W2 d W1 from autograd's Hessian."""
    rng = np.random.default_rng(seed)
    W1, b1 = rng.standard_normal((h, m)), rng.standard_normal(h)
    W2, b2 = rng.standard_normal((o, h)), rng.standard_normal(o)
    x = rng.standard_normal(m)
    t = np.eye(o)[rng.integers(o)]
    f = {"tanh": anp.tanh, "softplus": lambda z: anp.log1p(anp.exp(z))}[activation]
    L = {"cross-entropy": lambda y: anp.log(anp.sum(anp.exp(y))) - anp.dot(t, y),
         "squared error": lambda y: 0.5 * anp.sum((y - t) ** 2)}[loss]
    k = h * m + h

    def cost(v):
        W1_, b1_ = anp.reshape(v[:h * m], (h, m)), v[h * m:k]
        W2_, b2_ = anp.reshape(v[k:k + o * h], (o, h)), v[k + o * h:]
        return L(anp.dot(W2_, f(anp.dot(W1_, x) + b1_)) + b2_)
    z = W1 @ x + b1
    a = np.asarray(f(z))
    fp = autograd.elementwise_grad(f)(z)
    y = W2 @ a + b2
    g, H = autograd.grad(L)(y), autograd.hessian(L)(y)
    K = autograd.hessian(cost)(np.concatenate([W1.ravel(), b1, W2.ravel(), b2]))[k:k + o * h, :h * m]
    gn = np.einsum("pr,rk,k,l,q->pqkl", H, W2, fp, x, a).reshape(o * h, h * m)
    return (W2, x, a, fp, g, H), gn, K - gn


def no_activation_derivative(W2, x, a, fp, g, H):
    """The Gauss-Newton term with f'(z_k) left out (a learner's slip)."""
    o, h = W2.shape
    return np.einsum("pr,rk,l,q->pqkl", H, W2, x, a).reshape(o * h, h * x.size)


SWAP_54 = "is the other term: the Gauss-Newton term holds H, the residual term holds g"


def expect_terms(got, args, gn, res):
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        raise WrongAnswer(f"cross_layer_terms must return a pair (gauss_newton, residual), got {type(got).__name__}")
    expect(got[0], gn, variants={SWAP_54: res, "is the whole block K, not its Gauss-Newton term": gn + res,
                                 "misses f'(z_k): the output's dependence on W1 goes through the activation":
                                 no_activation_derivative(*args)})
    expect(got[1], res, variants={SWAP_54: gn, "is the whole block K, not its residual term": gn + res,
                                  "is zero, but the residual term is not: g is not zero away from a "
                                  "perfect fit": np.zeros_like(res)},
           layout="(o h, h m): rows (p, q) of W2 row-major, columns (k, l) of W1 row-major")


@pytest.mark.exercise("5.4", points=3)
@pytest.mark.parametrize("m, h, o, activation, loss", [(3, 4, 2, "tanh", "cross-entropy"),
                                                      (2, 3, 3, "softplus", "squared error"),
                                                      (4, 5, 3, "softplus", "cross-entropy"),
                                                      (3, 2, 4, "tanh", "squared error"),
                                                      (5, 3, 2, "softplus", "cross-entropy"),
                                                      (2, 4, 3, "tanh", "cross-entropy"),
                                                      (3, 3, 3, "softplus", "squared error"),
                                                      (4, 2, 2, "tanh", "squared error")])
def test_cross_layer_terms(nb, m, h, o, activation, loss):
    args, gn, res = cross_layer_case(58 + m, m, h, o, activation, loss)
    expect_terms(nb.call("cross_layer_terms", *args), args, gn, res)


@pytest.mark.exercise("5.4", points=3)
def test_cross_layer_terms_edge_cases_with_a_general_case(nb):
    # one hidden unit and one output, and H = 0, each beside a general case
    for seed, (m, h, o) in enumerate([(3, 1, 1), (2, 4, 3)]):
        args, gn, res = cross_layer_case(70 + seed, m, h, o)
        expect_terms(nb.call("cross_layer_terms", *args), args, gn, res)
    (W2, x, a, fp, g, H), _, res = cross_layer_case(72, 3, 4, 2)
    args = (W2, x, a, fp, g, np.zeros_like(H))
    expect_terms(nb.call("cross_layer_terms", *args), args, np.zeros_like(res), res)


@pytest.mark.exercise("5.4", points=3)
def test_cross_layer_terms_rejects_shapes_that_do_not_fit(nb):
    args, gn, res = cross_layer_case(73, 3, 4, 2)
    expect_terms(nb.call("cross_layer_terms", *args), args, gn, res)                 # a positive case first
    W2, x, a, fp, g, H = args
    raises_value_error(lambda: nb.call("cross_layer_terms", W2, x, a[:3], fp, g, H))


# ---------------------------------------------------------------- 5.5
@pytest.mark.exercise("5.5", points=1)
def test_which_term_vanishes(nb):
    expect_choices(nb.call("which_term_vanishes"), [
        ("residual", "at a perfect fit g = y - t = 0, and the residual term is linear in g"),
        ("gauss_newton", "a loss linear in y has H = 0, and the Gauss-Newton term is linear in H")],
        "which_term_vanishes")
