"""Graded tests of the linear algebra exercises (solutions/02_linear_algebra.ipynb).

Every reference is computed here with numpy; the notebook only receives inputs
and sends back plain data.
"""
import numpy as np
import pytest

from gradetools import NoAutodiff, WrongAnswer, expect, once, raises_value_error, too_big_to_form

NOTEBOOK = "02_linear_algebra"

#: the section of book/02_linear_algebra.ipynb each exercise practises, as its heading reads there
#: (the feedback pages link to it; tests/test_grader_feedback.py checks it exists)
SECTIONS = {
    "2.1": "Frobenius inner product",
    "2.2": "Outer product",
    "2.3": "The Kronecker product",
    "2.4": "Matrix and tensor products",
}


# ---------------------------------------------------------------- no automatic differentiation
@pytest.fixture(scope="module")
def nb(nb):
    """The conftest's notebook, wrapped: automatic differentiation is unavailable in it."""
    return NoAutodiff(nb)


# A general case of each exercise, checked beside every special one (through ``once``: run once
# per notebook, its verdict repeated in every test), so that no case where a wrong answer
# coincides with the right one (one row, one output, a symmetric tensor) passes alone.
def general_frobenius(nb):
    rng = np.random.default_rng(20)
    A, B = rng.standard_normal((30, 3)), rng.standard_normal((3, 40))
    got = nb.call("frobenius", A, B)
    if np.ndim(got) != 0 or isinstance(got, (bool, np.bool_)):
        raise WrongAnswer(f"frobenius must return one number (a float), got {type(got).__name__} "
                          f"of shape {np.shape(got)}")
    expect(got, np.linalg.norm(A @ B) ** 2, variants=frobenius_variants(A, B))
    # p = r = 25,000: A B would take 5 GB, over the kernel's 4 GB memory limit; every case checks it
    A, B = rng.standard_normal((25_000, 3)), rng.standard_normal((3, 25_000))
    got = too_big_to_form(lambda: nb.call("frobenius", A, B), "A B (5 GB at p = r = 25,000)")
    expect(got, float(np.sum((A.T @ A) * (B @ B.T))))


def general_kron(nb):
    rng = np.random.default_rng(20)
    A, B, x = rng.standard_normal((2, 3)), rng.standard_normal((4, 5)), rng.standard_normal(15)
    expect(nb.call("kron_matvec", A, B, x), np.kron(A, B) @ x, variants={
        "reads x column-major: numpy's reshape (and this course) is row-major": (A @ x.reshape(5, 3).T @ B.T).ravel(),
        "is ravel((A X B^T)^T): read the result back row by row": (A @ x.reshape(3, 5) @ B.T).T.ravel()})


def general_bilinear(nb):
    rng = np.random.default_rng(20)
    H, u, v = rng.standard_normal((3, 4, 4)), rng.standard_normal(4), rng.standard_normal(4)
    expect(nb.call("bilinear_form", H, u, v), quadratic_derivative(H, u, v), variants=quadratic_variants(H, u, v))


def frobenius_variants(A, B):
    return {"is the bound ||A||_F^2 ||B||_F^2 (the norm is submultiplicative), not the norm":
            np.linalg.norm(A) ** 2 * np.linalg.norm(B) ** 2,
            "is ||A B||_F, not its square": np.linalg.norm(A @ B)}


def quadratic_derivative(H, u, v):
    return np.einsum("ijk,j,k->i", H, u, v) + np.einsum("ijk,j,k->i", H, v, u)


def quadratic_variants(H, u, v):
    return {"is H[u, v] alone: delta appears on both axes of H[delta, delta]": np.einsum("ijk,j,k->i", H, u, v),
            "is 2 H[u, v]: right only when every H_i is symmetric": 2 * np.einsum("ijk,j,k->i", H, u, v)}


# ---------------------------------------------------------------- 2.1
@pytest.mark.exercise("2.1", points=2)
@pytest.mark.parametrize("p, q, r", [(3, 4, 5), (1, 7, 2), (6, 1, 4), (5, 3, 5), (2, 2, 9), (4, 2, 3),
                                     (7, 5, 1), (1, 1, 1), (8, 3, 6)])
def test_frobenius_value(nb, p, q, r):
    once(nb, general_frobenius)
    rng = np.random.default_rng(21 + p + q + r)
    A, B = rng.standard_normal((p, q)), rng.standard_normal((q, r))
    expect(nb.call("frobenius", A, B), np.linalg.norm(A @ B) ** 2, variants=frobenius_variants(A, B))


@pytest.mark.exercise("2.1", points=2)
def test_frobenius_refuses_shapes_that_do_not_fit(nb):
    once(nb, general_frobenius)                                             # a positive case first
    raises_value_error(lambda: nb.call("frobenius", np.ones((3, 4)), np.ones((5, 2))))


# ---------------------------------------------------------------- 2.2
def gram_variants(U, V):
    return {"multiplies U U^T and V V^T as matrices: each entry is a product of two numbers": (U @ U.T) @ (V @ V.T),
            "adds U U^T and V V^T: the inner product of two outer products is a product": U @ U.T + V @ V.T}


def expect_outer_gram(nb, U, V):
    outer = np.einsum("bi,bj->bij", U, V).reshape(len(U), -1)
    expect(nb.call("outer_gram", U, V), outer @ outer.T, variants=gram_variants(U, V), layout="(B, B)")


def general_gram(nb):
    rng = np.random.default_rng(23)
    expect_outer_gram(nb, rng.standard_normal((6, 3)), rng.standard_normal((6, 5)))
    # o = m = 6,000, B = 16: the outer products would take 4.6 GB, over the kernel's memory limit
    U, V = rng.standard_normal((16, 6000)), rng.standard_normal((16, 6000))
    got = too_big_to_form(lambda: nb.call("outer_gram", U, V), "the B outer products (4.6 GB at o = m = 6,000)")
    expect(got, (U @ U.T) * (V @ V.T), variants=gram_variants(U, V))


@pytest.mark.exercise("2.2", points=2)
@pytest.mark.parametrize("B, o, m", [(4, 3, 5), (1, 2, 3), (7, 1, 4), (5, 4, 1), (3, 6, 2), (2, 2, 2),
                                     (6, 3, 3), (1, 1, 1), (8, 2, 5)])
def test_outer_gram(nb, B, o, m):
    once(nb, general_gram)
    rng = np.random.default_rng(24 + B + o + m)
    expect_outer_gram(nb, rng.standard_normal((B, o)), rng.standard_normal((B, m)))


@pytest.mark.exercise("2.2", points=2)
def test_outer_gram_refuses_batches_that_differ(nb):
    once(nb, general_gram)                                                    # a positive case first
    raises_value_error(lambda: nb.call("outer_gram", np.ones((4, 3)), np.ones((5, 2))))


# ---------------------------------------------------------------- 2.3
KRON_FORBID = ("numpy.kron",)


@pytest.mark.exercise("2.3", points=3)
@pytest.mark.parametrize("p, q, r, s", [(2, 3, 4, 5), (1, 1, 3, 2), (5, 2, 1, 4), (3, 2, 2, 3), (2, 4, 3, 2),
                                        (4, 1, 2, 3), (1, 3, 1, 4), (3, 3, 3, 3), (2, 5, 4, 1)])
def test_kron_matvec_value(nb, p, q, r, s):
    once(nb, general_kron)
    rng = np.random.default_rng(27)
    A, B, x = rng.standard_normal((p, q)), rng.standard_normal((r, s)), rng.standard_normal(q * s)
    got = nb.call("kron_matvec", A, B, x, forbid=KRON_FORBID)
    X = x.reshape(q, s)
    expect(got, np.kron(A, B) @ x, variants={
        "reads x column-major: numpy's reshape (and this course) is row-major": (A @ x.reshape(s, q).T @ B.T).ravel(),
        "is ravel((A X B^T)^T): read the result back row by row": (A @ X @ B.T).T.ravel()})


@pytest.mark.exercise("2.3", points=3)
def test_kron_matvec_linear_layer_jacobian(nb):
    once(nb, general_kron)
    # J of y = W x w.r.t. vec(W) is I_o kron x^T; applied to vec(dW) it gives dW x
    rng = np.random.default_rng(28)
    x, dW = rng.standard_normal((1, 4)), rng.standard_normal((3, 4))
    got = nb.call("kron_matvec", np.eye(3), x, dW.ravel(), forbid=KRON_FORBID)
    expect(got, dW @ x[0])


@pytest.mark.exercise("2.3", points=3)
def test_kron_matvec_refuses_a_vector_of_the_wrong_length(nb):
    once(nb, general_kron)                                           # a positive case first
    raises_value_error(lambda: nb.call("kron_matvec", np.ones((2, 3)), np.ones((4, 5)), np.ones(14),
                                       forbid=KRON_FORBID))


# ---------------------------------------------------------------- 2.4
@pytest.mark.exercise("2.4", points=3)
@pytest.mark.parametrize("o, n", [(3, 4), (1, 2), (4, 1), (2, 5), (5, 3), (1, 6), (3, 3), (6, 2)])
def test_bilinear_form_value(nb, o, n):
    once(nb, general_bilinear)
    rng = np.random.default_rng(30 + o + 10 * n)
    H, u, v = rng.standard_normal((o, n, n)), rng.standard_normal(n), rng.standard_normal(n)
    expect(nb.call("bilinear_form", H, u, v), quadratic_derivative(H, u, v), variants=quadratic_variants(H, u, v))


@pytest.mark.exercise("2.4", points=3)
def test_bilinear_form_is_a_derivative(nb):
    # against a central difference of delta -> H[delta, delta], exact for a quadratic up to rounding
    once(nb, general_bilinear)
    rng = np.random.default_rng(31)
    H, u, v = rng.standard_normal((3, 4, 4)), rng.standard_normal(4), rng.standard_normal(4)
    phi = lambda d: np.einsum("ijk,j,k->i", H, d, d)
    expect(nb.call("bilinear_form", H, u, v), (phi(u + v) - phi(u - v)) / 2)


@pytest.mark.exercise("2.4", points=3)
def test_bilinear_form_refuses_shapes_that_do_not_fit(nb):
    once(nb, general_bilinear)                                         # a positive case first
    raises_value_error(lambda: nb.call("bilinear_form", np.ones((3, 4, 4)), np.ones(4), np.ones(5)))
