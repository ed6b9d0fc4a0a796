"""minigrad.operators against the dense matrices of minigrad (hessian, gauss_newton)."""
import numpy as np
import pytest
from scipy.sparse.linalg import LinearOperator, eigsh

import minigrad as mg
from minigrad.operators import (empirical_fisher, ggn_operator, hessian_operator,
                                hutchinson_trace, kfac_factors, kron_block, lanczos,
                                spectral_density)

#: operator products against dense matrix products: rounding only
TOL = 1e-10
#: eigsh's Ritz values against eigvalsh
EIG_TOL = 1e-8


def problem(seed=0, loss="ce"):
    rng = np.random.default_rng(seed)
    model = mg.Sequential(mg.Linear(4, 6, rng=rng), mg.Tanh(), mg.Linear(6, 5, rng=rng),
                          mg.Sigmoid(), mg.Linear(5, 3, rng=rng))
    X = rng.standard_normal((7, 4))
    if loss == "ce":
        return model, mg.SoftmaxCrossEntropy(), X, rng.integers(0, 3, 7)
    return model, mg.MSELoss(), X, rng.standard_normal((7, 3))


def operator_pairs():
    for kind in ("ce", "mse"):
        model, loss, X, T = problem(1, kind)
        yield (hessian_operator(model, loss, X, T), mg.hessian(model, loss, X, T))
        yield (ggn_operator(model, loss, X, T), mg.gauss_newton(model, loss, X, T))


@pytest.mark.parametrize("pair", list(operator_pairs()), ids=["H-ce", "G-ce", "H-mse", "G-mse"])
def test_matvec_and_matmat_agree_with_dense(pair):
    op, dense = pair
    rng = np.random.default_rng(2)
    n = dense.shape[0]
    assert isinstance(op, LinearOperator) and op.shape == (n, n) and op.dtype == np.float64
    v, V = rng.standard_normal(n), rng.standard_normal((n, 3))
    assert np.allclose(op @ v, dense @ v, rtol=TOL, atol=TOL)
    assert np.allclose(op.matvec(v[:, None]).ravel(), dense @ v, rtol=TOL, atol=TOL)
    assert np.allclose(op @ V, dense @ V, rtol=TOL, atol=TOL)
    assert np.allclose(op.rmatvec(v), dense @ v, rtol=TOL, atol=TOL)
    assert np.allclose(op.T @ v, dense @ v, rtol=TOL, atol=TOL)


def test_operators_are_symmetric():
    model, loss, X, T = problem(3)
    rng = np.random.default_rng(3)
    for op in (hessian_operator(model, loss, X, T), ggn_operator(model, loss, X, T)):
        u, v = rng.standard_normal((2, op.shape[0]))
        assert abs(u @ (op @ v) - v @ (op @ u)) < TOL


def test_products_are_counted():
    model, loss, X, T = problem(4)
    op = ggn_operator(model, loss, X, T)
    op @ np.ones((op.shape[0], 3))
    assert op.products == 3


def test_eigsh_finds_the_dense_top_eigenvalues():
    model, loss, X, T = problem(5)
    for op, dense in ((hessian_operator(model, loss, X, T), mg.hessian(model, loss, X, T)),
                      (ggn_operator(model, loss, X, T), mg.gauss_newton(model, loss, X, T))):
        want = np.linalg.eigvalsh(dense)[-3:]
        got = np.sort(eigsh(op, k=3, which="LA", v0=np.ones(op.shape[0]),
                            return_eigenvectors=False))
        assert np.allclose(got, want, rtol=EIG_TOL, atol=EIG_TOL)


def test_a_wrong_operator_is_caught():
    """A product with the loss Hessian scaled by 1.01 (a typical slip) fails the check."""
    model, loss, X, T = problem(6)
    wrong = LinearOperator((mg.parameters_to_vector(model).size,) * 2, dtype=np.float64,
                           matvec=lambda v: 1.01 * mg.ggn_vp(model, loss, X, T, v.ravel()))
    v = np.random.default_rng(6).standard_normal(wrong.shape[0])
    assert not np.allclose(wrong @ v, mg.gauss_newton(model, loss, X, T) @ v, rtol=TOL, atol=TOL)
    # and the Gauss-Newton operator is not the Hessian: the check tells them apart
    ggn = ggn_operator(model, loss, X, T)
    assert not np.allclose(ggn @ v, mg.hessian(model, loss, X, T) @ v, rtol=TOL, atol=TOL)


def test_empirical_fisher_is_mean_outer_product_of_per_sample_gradients():
    model, loss, X, T = problem(7)
    S = mg.per_sample_grads(model, loss, X, T)
    F = empirical_fisher(model, loss, X, T)
    want = sum(np.outer(s, s) for s in S) / S.shape[0]
    assert F.shape == want.shape and np.allclose(F, want, rtol=TOL, atol=TOL)
    assert np.linalg.matrix_rank(F) <= X.shape[0]


def test_gauss_newton_of_cross_entropy_is_the_fisher():
    """For the softmax cross-entropy, E_{y ~ p}[g_y g_y^T] = G (the matching loss)."""
    model, loss, X, T = problem(8)
    Z = model(X)
    P = np.exp(Z - Z.max(axis=1, keepdims=True))
    P /= P.sum(axis=1, keepdims=True)                  # the model's class probabilities
    F = 0.0
    for c in range(P.shape[1]):
        S = mg.per_sample_grads(model, loss, X, np.full(X.shape[0], c))
        F = F + np.einsum("b,bi,bj->ij", P[:, c], S, S) / X.shape[0]
    assert np.allclose(F, mg.gauss_newton(model, loss, X, T), rtol=TOL, atol=TOL)


def test_kfac_is_exact_for_one_sample_and_blocks_match_gauss_newton():
    model, loss, X, T = problem(9)
    G = mg.gauss_newton(model, loss, X, T)
    for start, stop, A, S, a, M in kfac_factors(model, loss, X, T):
        abar = np.hstack([a, np.ones((a.shape[0], 1))])
        exact = sum(kron_block(Mb, np.outer(ab, ab)) for Mb, ab in zip(M, abar)) / a.shape[0]
        assert np.allclose(exact, G[start:stop, start:stop], rtol=TOL, atol=TOL)
    one = kfac_factors(model, loss, X[:1], T[:1])
    G1 = mg.gauss_newton(model, loss, X[:1], T[:1])
    for start, stop, A, S, _, _ in one:
        assert np.allclose(kron_block(S, A), G1[start:stop, start:stop], rtol=TOL, atol=TOL)


def test_kron_block_of_a_single_linear_layer_is_its_hessian_under_mse():
    rng = np.random.default_rng(10)
    layer = mg.Linear(3, 2, rng=rng)
    X, T = rng.standard_normal((1, 3)), rng.standard_normal((1, 2))
    (start, stop, A, S, _, _), = kfac_factors(layer, mg.MSELoss(), X, T)
    assert np.allclose(kron_block(S, A), mg.hessian(layer, mg.MSELoss(), X, T), atol=TOL)


def test_hutchinson_and_lanczos_against_dense():
    model, loss, X, T = problem(11)
    op, H = hessian_operator(model, loss, X, T), mg.hessian(model, loss, X, T)
    est, err = hutchinson_trace(op, 400, rng=0)
    assert abs(est - np.trace(H)) < 5 * err
    n = H.shape[0]
    alpha, beta, Q = lanczos(op, n, rng=1)
    Tk = np.diag(alpha) + np.diag(beta, 1) + np.diag(beta, -1)
    assert np.allclose(Q.T @ Q, np.eye(alpha.size), atol=1e-8)
    ritz, eig = np.linalg.eigvalsh(Tk), np.linalg.eigvalsh(H)
    # every Ritz value is an eigenvalue, the extreme ones included (the Krylov space may
    # end early: equal eigenvalues count once)
    assert np.abs(ritz[:, None] - eig[None, :]).min(axis=1).max() < 1e-8
    assert abs(ritz[-1] - eig[-1]) < 1e-8 and abs(ritz[0] - eig[0]) < 1e-8


def test_spectral_density_quadrature_and_mass():
    rng = np.random.default_rng(12)
    D = np.diag(np.linspace(-1.0, 3.0, 60))
    grid = np.linspace(-3, 5, 2001)
    phi = spectral_density(D, grid, k=60, num_runs=3, sigma=0.05, rng=rng)
    assert abs(np.trapezoid(phi, grid) - 1.0) < 1e-3
    # mean of the density is tr(D)/n in expectation: close for 3 runs
    assert abs(np.trapezoid(grid * phi, grid) - 1.0) < 0.3


@pytest.mark.parametrize("call", [
    lambda m, l, X, T: hessian_operator("not a model", l, X, T),
    lambda m, l, X, T: ggn_operator(m, "not a loss", X, T),
    lambda m, l, X, T: ggn_operator(m, l, X[:, :3], T),
    lambda m, l, X, T: hessian_operator(m, l, X, T[:3]),
    lambda m, l, X, T: ggn_operator(m, l, X, T).matvec(np.ones(5)),
    lambda m, l, X, T: hutchinson_trace(np.eye(3), 1),
    lambda m, l, X, T: lanczos(np.ones((2, 3)), 1),
    lambda m, l, X, T: kron_block(np.eye(2), np.ones(3)),
    lambda m, l, X, T: empirical_fisher(mg.Linear(200, 100, rng=0), l, X, T),   # 3.2 GB
    lambda m, l, X, T: kfac_factors(mg.Sequential(m, mg.Tanh()), l, X, T) and
    kfac_factors(_NotLinear(), l, X, T),
])
def test_clear_value_errors(call):
    model, loss, X, T = problem(13)
    with pytest.raises(ValueError):
        call(model, loss, X, T)


class _NotLinear(mg.Module):
    """A parametrised module that is not a Linear: K-FAC does not know its structure."""
    def __init__(self):
        super().__init__()
        self.params["W"] = np.ones((3, 4))
        self.zero_grad()
