"""Graded tests of the curvature-at-scale exercises (solutions/09_curvature_at_scale.ipynb).

Every argument is plain numpy data made here; every reference is computed here (by enumeration,
dense matrices or a dense solve), never with the learner's code. Each positive test checks a whole
answer, so that a stub that only raises ValueError earns nothing.
"""
import numpy as np
import pytest

from gradetools import WrongAnswer, expect, expect_choices, once, raises_value_error, too_big_to_form

NOTEBOOK = "09_curvature_at_scale"

#: the section of book/09_curvature_at_scale.ipynb each exercise practises, as its heading reads there
#: (the feedback pages link to it; tests/test_grader_feedback.py checks it exists)
SECTIONS = {
    "9.1": "Fisher, Gauss-Newton and the empirical Fisher",
    "9.2": "Curvature as a linear operator",
    "9.3": "K-FAC: one Kronecker product per layer",
    "9.4": "K-FAC: one Kronecker product per layer",
    "9.5": "Fisher, Gauss-Newton and the empirical Fisher",
}

#: the Frobenius distance of 9.3 is a difference of sums of squares: relative accuracy
ERROR_RTOL = 1e-6


# ---------------------------------------------------------------- 9.1
def jacobians_and_logits(seed, B, o, n):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((B, o, n)), 2.0 * rng.standard_normal((B, o))


def fisher_by_enumeration(J, Z):
    B, o, n = J.shape
    s = 1 / (1 + np.exp(-Z))
    F = np.zeros((n, n))
    for bits in range(2 ** o):
        t = np.array([(bits >> k) & 1 for k in range(o)], dtype=float)
        prob = np.prod(np.where(t == 1, s, 1 - s), axis=1)
        g = np.einsum("bki,bk->bi", J, s - t)
        F += np.einsum("b,bi,bj->ij", prob, g, g)
    return F / B


def fisher_variants(J, Z):
    s = 1 / (1 + np.exp(-Z))
    p = np.exp(Z - Z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    h_soft = p[:, :, None] * np.eye(Z.shape[1]) - p[:, :, None] * p[:, None, :]
    return {"uses the softmax covariance diag(p) - p p^T: the outputs here are independent Bernoullis":
            np.einsum("bki,bkl,blj->ij", J, h_soft, J) / len(Z),
            "weights by sigma(z), the mean of a label, not by its variance sigma (1 - sigma)":
            np.einsum("bki,bk,bkj->ij", J, s, J) / len(Z)}


@pytest.mark.exercise("9.1", points=3)
@pytest.mark.parametrize("B, o, n", [(6, 3, 5), (1, 2, 4), (4, 1, 6), (5, 4, 3), (3, 2, 2), (7, 3, 4),
                                     (2, 5, 3), (8, 2, 6), (4, 3, 1)])
def test_bernoulli_fisher(nb, B, o, n):
    J, Z = jacobians_and_logits(91 + B + 10 * o + 100 * n, B, o, n)
    expect(nb.call("bernoulli_fisher", J, Z), fisher_by_enumeration(J, Z), variants=fisher_variants(J, Z),
           B=B, layout="(n, n)")


@pytest.mark.exercise("9.1", points=3)
def test_bernoulli_fisher_rejects_shapes_that_do_not_fit(nb):
    J, Z = jacobians_and_logits(92, 4, 3, 5)
    expect(nb.call("bernoulli_fisher", J, Z), fisher_by_enumeration(J, Z))      # a positive case first
    raises_value_error(lambda: nb.call("bernoulli_fisher", J, Z[:, :2]))


# ---------------------------------------------------------------- 9.2
def ggn_case(seed, B, o, n):
    rng = np.random.default_rng(seed)
    R = rng.standard_normal((B, o, o))
    return rng.standard_normal((B, o, n)), R @ R.transpose(0, 2, 1)


def ggn_diagonal_variants(J, h):
    return {"misses h_b: it is the diagonal of J^T J": np.einsum("bik,bik->k", J, J) / len(J)}


def ggn_at_scale(nb):
    """n = 50,000: G would take 20 GB; beside every case of 9.2, so that forming G earns nothing."""
    J, h = ggn_case(94, 4, 3, 50_000)
    want = np.einsum("bik,bij,bjk->k", J, h, J) / 4
    got = too_big_to_form(lambda: nb.call("ggn_diagonal", J, h), "the n x n matrix G (20 GB at n = 50,000)")
    expect(got, want, variants=ggn_diagonal_variants(J, h), B=4)


@pytest.mark.exercise("9.2", points=3)
@pytest.mark.parametrize("B, o, n", [(6, 3, 5), (1, 2, 4), (4, 1, 6), (5, 4, 3), (3, 2, 7), (7, 3, 4),
                                     (2, 5, 3), (8, 2, 6), (3, 3, 3)])
def test_ggn_diagonal(nb, B, o, n):
    once(nb, ggn_at_scale)
    J, h = ggn_case(93 + B + 10 * o + 100 * n, B, o, n)
    want = np.diag(np.einsum("bki,bkl,blj->ij", J, h, J) / B)
    expect(nb.call("ggn_diagonal", J, h), want, variants=ggn_diagonal_variants(J, h), B=B, layout="(n,)")


@pytest.mark.exercise("9.2", points=3)
def test_ggn_diagonal_rejects_shapes_that_do_not_fit(nb):
    once(nb, ggn_at_scale)                                                    # a positive case first
    J, h = ggn_case(95, 3, 2, 4)
    raises_value_error(lambda: nb.call("ggn_diagonal", J, h[:2]))


# ---------------------------------------------------------------- 9.3
def layer_data(seed, B, m, o):
    rng = np.random.default_rng(seed)
    R = rng.standard_normal((B, o, o))
    return rng.standard_normal((B, m)), R @ R.transpose(0, 2, 1)


def dense_kfac_error(a, M):
    B = a.shape[0]
    abar = np.hstack([a, np.ones((B, 1))])
    E = sum(np.kron(Mb, np.outer(ab, ab)) for Mb, ab in zip(M, abar)) / B
    return np.linalg.norm(E - np.kron(M.mean(axis=0), abar.T @ abar / B))


def error_terms(a, M, bias=True):
    """(|E|_F^2, <E, S kron A>_F, |S kron A|_F^2) by the Kronecker inner-product identity."""
    B = a.shape[0]
    abar = np.hstack([a, np.ones((B, 1))]) if bias else a
    S, A = M.mean(axis=0), abar.T @ abar / B
    Mf = M.reshape(B, -1)
    return (np.sum((Mf @ Mf.T) * (abar @ abar.T) ** 2) / B ** 2,
            np.mean((Mf @ S.ravel()) * np.einsum("bi,ij,bj->b", abar, A, abar)),
            np.sum(S * S) * np.sum(A * A))


def error_variants(a, M, want):
    e, c, k = error_terms(a, M)
    e0, c0, k0 = error_terms(a, M, bias=False)
    return {"is the squared norm: take the square root": want ** 2,
            "leaves out the bias: abar_b = (a_b, 1) carries a 1 for it": np.sqrt(max(e0 - 2 * c0 + k0, 0.0)),
            "takes the cross term once: |E - K|^2 = |E|^2 - 2 <E, K> + |K|^2": np.sqrt(max(e - c + k, 0.0))}


def expect_error(got, a, M, want):
    if isinstance(got, (list, tuple)) or np.ndim(got) != 0:
        raise WrongAnswer(f"kfac_error must return one number (a Frobenius norm), got {got!r:.80}")
    expect(float(got), want, tol=ERROR_RTOL, variants=error_variants(a, M, want))


def error_at_scale(nb):
    """p = 50 * 301 = 15,050: one dense p x p matrix is 1.8 GB; beside every case of 9.3."""
    rng = np.random.default_rng(100)
    B, m, o = 64, 300, 50
    a = rng.standard_normal((B, m)) / np.sqrt(m)
    R = rng.standard_normal((B, o, 4))
    M = R @ R.transpose(0, 2, 1)
    e, c, k = error_terms(a, M)
    got = too_big_to_form(lambda: nb.call("kfac_error", a, M), "a p x p matrix (1.8 GB at p = 15,050)")
    expect_error(got, a, M, np.sqrt(e - 2 * c + k))


@pytest.mark.exercise("9.3", points=4)
@pytest.mark.parametrize("B, m, o", [(5, 3, 2), (12, 4, 3), (3, 6, 1), (7, 2, 4), (9, 5, 2), (4, 4, 4),
                                     (6, 1, 3), (10, 3, 3), (8, 2, 2)])
def test_kfac_error_matches_dense(nb, B, m, o):
    once(nb, error_at_scale)
    a, M = layer_data(97 + B + m + o, B, m, o)
    expect_error(nb.call("kfac_error", a, M), a, M, dense_kfac_error(a, M))


@pytest.mark.exercise("9.3", points=4)
def test_kfac_error_rejects_bad_shapes(nb):
    once(nb, error_at_scale)                                                  # a positive case first
    a, M = layer_data(101, 4, 3, 2)
    raises_value_error(lambda: nb.call("kfac_error", a, M[:2]))


# ---------------------------------------------------------------- 9.4
def factors(seed, o, k):
    rng = np.random.default_rng(seed)
    P, Q = rng.standard_normal((o, o + 1)), rng.standard_normal((k, k + 1))
    return P @ P.T / o, Q @ Q.T / k, rng.standard_normal((o, k))


def solve_variants(S, A, V, lam, dense=True):
    o, k = V.shape
    sigma, QS = np.linalg.eigh(S)
    alpha, QA = np.linalg.eigh(A)
    factored = QS @ ((QS.T @ V @ QA) / np.outer(sigma + lam, alpha + lam)) @ QA.T
    per_factor = {"damps each factor, (sigma_i + lam)(alpha_j + lam): that solves (S + lam I) kron (A + lam I), "
                  "not S kron A + lam I": factored}
    if not dense:
        return per_factor
    return {**per_factor,
            "solves with the factors swapped (A kron S): vec(U) is row-major, so S acts on rows, A on columns":
            np.linalg.solve(np.kron(A, S) + lam * np.eye(o * k), V.ravel()).reshape(o, k),
            "ignores the damping": np.linalg.lstsq(np.kron(S, A), V.ravel(), rcond=None)[0].reshape(o, k)}


def solve_at_scale(nb):
    """p = 200 * 300 = 60,000: the dense matrix would take 29 GB; the residual is checked here.
    Beside every case of 9.4, so that a dense solve earns nothing."""
    S, A, V = factors(103, 200, 300)
    U = too_big_to_form(lambda: nb.call("kfac_solve", S, A, V, 0.5),
                        "the (o k) x (o k) matrix S kron A + lam I (29 GB at o = 200, k = 300)")
    if U is None or np.shape(U) != V.shape:
        raise WrongAnswer(f"kfac_solve must return an array shaped like V {V.shape}, got {np.shape(U)}")
    U = np.asarray(U, dtype=float)
    per_factor = solve_variants(S, A, V, 0.5, dense=False)
    expect(S @ U @ A.T + 0.5 * U, V, tol=1e-8,           # the residual, and those of the wrong answers
           variants={why: S @ W @ A.T + 0.5 * W for why, W in per_factor.items()})


@pytest.mark.exercise("9.4", points=4)
@pytest.mark.parametrize("o, k, lam", [(3, 4, 0.1), (5, 2, 1e-3), (1, 6, 2.0), (4, 4, 0.5), (2, 7, 0.05),
                                       (6, 3, 1.0), (3, 3, 0.2), (5, 5, 0.01), (2, 3, 0.3)])
def test_kfac_solve_matches_dense_solve(nb, o, k, lam):
    once(nb, solve_at_scale)
    S, A, V = factors(102 + o + 10 * k, o, k)
    want = np.linalg.solve(np.kron(S, A) + lam * np.eye(o * k), V.ravel()).reshape(o, k)
    expect(nb.call("kfac_solve", S, A, V, lam), want, tol=1e-8, variants=solve_variants(S, A, V, lam),
           layout="(o, m + 1), like V")


@pytest.mark.exercise("9.4", points=4)
def test_kfac_solve_rejects_bad_input(nb):
    once(nb, solve_at_scale)                                                  # a positive case first
    S, A, V = factors(104, 3, 4)
    raises_value_error(lambda: nb.call("kfac_solve", S, A, V, 0.0))


# ---------------------------------------------------------------- 9.5
CONCLUSIONS = [(False, "the expectation over the labels removes them: F holds J_b and sigma(z_b) only"),
               (True, "both are (1/B) sum_b J_b^T diag(sigma (1 - sigma)) J_b"),
               ("no", "it falls from 0.050 to about 0.030 and levels off")]


@pytest.mark.exercise("9.5", points=1)
def test_conclusions(nb):
    expect_choices(nb.call("conclusions"), CONCLUSIONS, "conclusions")
