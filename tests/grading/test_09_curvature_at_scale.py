"""Graded tests of the curvature-at-scale exercises (solutions/09_curvature_at_scale.ipynb).

Models are built in the kernel from an expression; every reference is computed here, with
minigrad's dense matrices (gauss_newton) or a dense numpy solve, never with the learner's code.
"""
import numpy as np
import pytest

import minigrad
from gradetools import close, raises_value_error

NOTEBOOK = "09_curvature_at_scale"

#: exact answers agree with the reference up to rounding
TOL = 1e-10
#: the Frobenius distance of 9.3 is a difference of sums of squares: relative accuracy
ERROR_RTOL = 1e-6

MLP = "minigrad.Sequential(minigrad.Linear({m}, {h}, rng={s}), minigrad.{act}(), minigrad.Linear({h}, {o}, rng={s1}))"


def mlp(m, h, o, seed, act="Tanh"):
    """The same network here (a minigrad object) and in the kernel (an expression)."""
    expr = MLP.format(m=m, h=h, o=o, s=seed, s1=seed + 1, act=act)
    model = minigrad.Sequential(minigrad.Linear(m, h, rng=seed), getattr(minigrad, act)(),
                                minigrad.Linear(h, o, rng=seed + 1))
    return model, expr


# ---------------------------------------------------------------- 9.1
FORBID_91 = ("minigrad.gauss_newton", "minigrad.derivatives.gauss_newton", "minigrad.ggn_vp",
             "minigrad.derivatives.ggn_vp", "minigrad.hessian", "minigrad.derivatives.hessian",
             "minigrad.hvp", "minigrad.derivatives.hvp", "minigrad.operators.ggn_operator",
             "minigrad.operators.hessian_operator")


@pytest.mark.exercise("9.1", points=3)
@pytest.mark.parametrize("m, h, o, B, act", [(3, 4, 3, 5, "Tanh"), (4, 3, 5, 8, "Sigmoid")])
def test_fisher_is_the_gauss_newton_matrix(nb, m, h, o, B, act):
    model, expr = mlp(m, h, o, 91 + B, act)
    rng = np.random.default_rng(91 + B)
    X, T = rng.standard_normal((B, m)), rng.integers(0, o, B)
    got = nb.eval(f"fisher_matrix({expr}, X)", X=X, forbid=FORBID_91)
    assert close(got, minigrad.gauss_newton(model, minigrad.SoftmaxCrossEntropy(), X, T))


@pytest.mark.exercise("9.1", points=3)
def test_fisher_of_one_sample_has_rank_below_classes(nb):
    # one sample, o classes: F = J^T (diag p - p p^T) J has rank at most o - 1
    model, expr = mlp(3, 6, 4, 93)
    X = np.random.default_rng(93).standard_normal((1, 3))
    F = np.asarray(nb.eval(f"fisher_matrix({expr}, X)", X=X, forbid=FORBID_91), dtype=float)
    assert F.shape == (model.num_params, model.num_params) and close(F, F.T)
    assert np.linalg.matrix_rank(F, tol=1e-9) <= 3


# ---------------------------------------------------------------- 9.2
FORBID_92 = ("minigrad.operators.kron_block",)


def layer_data(seed, B, m, o):
    rng = np.random.default_rng(seed)
    R = rng.standard_normal((B, o, o))
    return rng.standard_normal((B, m)), R @ R.transpose(0, 2, 1)


@pytest.mark.exercise("9.2", points=3)
def test_linear_block_matches_gauss_newton_of_each_layer(nb):
    model, _ = mlp(4, 5, 3, 94)
    rng = np.random.default_rng(94)
    X, T = rng.standard_normal((6, 4)), rng.integers(0, 3, 6)
    loss = minigrad.SoftmaxCrossEntropy()
    G = minigrad.gauss_newton(model, loss, X, T)
    # the pieces of each layer, computed here: its input a_b and M_b = J_z^T h_b J_z
    Z = model.modules[0](X)
    A1 = model.modules[1](Z)
    Y = model.modules[2](A1)
    loss(Y, T)
    h = loss.hessian() * len(X)                                 # per-sample (B, o, o)
    Jz = minigrad.input_jacobian(minigrad.Sequential(*model.modules[1:]), Z)
    for a, M, (start, stop) in [(X, Jz.transpose(0, 2, 1) @ h @ Jz, (0, 25)), (A1, h, (25, 43))]:
        got = nb.call("linear_gn_block", a, M, forbid=FORBID_92)
        assert close(got, G[start:stop, start:stop])


@pytest.mark.exercise("9.2", points=3)
def test_linear_block_of_one_layer_under_mse_is_its_hessian(nb):
    # a single Linear layer under MSE: M_b = I and the block is the whole Hessian
    rng = np.random.default_rng(95)
    X, T = rng.standard_normal((5, 3)), rng.standard_normal((5, 2))
    layer = minigrad.Linear(3, 2, rng=95)
    want = minigrad.hessian(layer, minigrad.MSELoss(), X, T)
    got = nb.call("linear_gn_block", X, np.broadcast_to(np.eye(2), (5, 2, 2)).copy(), forbid=FORBID_92)
    assert close(got, want)


@pytest.mark.exercise("9.2", points=3)
def test_linear_block_rejects_bad_shapes(nb):
    a, M = layer_data(96, 4, 3, 2)
    raises_value_error(lambda: nb.call("linear_gn_block", a[0], M, forbid=FORBID_92))
    raises_value_error(lambda: nb.call("linear_gn_block", a, M[:3], forbid=FORBID_92))
    raises_value_error(lambda: nb.call("linear_gn_block", a, M[:, :, :1], forbid=FORBID_92))


# ---------------------------------------------------------------- 9.3
def dense_kfac_error(a, M):
    B = a.shape[0]
    abar = np.hstack([a, np.ones((B, 1))])
    E = sum(np.kron(Mb, np.outer(ab, ab)) for Mb, ab in zip(M, abar)) / B
    return np.linalg.norm(E - np.kron(M.mean(axis=0), abar.T @ abar / B))


@pytest.mark.exercise("9.3", points=4)
@pytest.mark.parametrize("B, m, o", [(5, 3, 2), (12, 4, 3), (3, 6, 1)])
def test_kfac_error_matches_dense(nb, B, m, o):
    a, M = layer_data(97 + B, B, m, o)
    got = float(nb.call("kfac_error", a, M))
    assert np.isclose(got, dense_kfac_error(a, M), rtol=ERROR_RTOL, atol=0.0)


@pytest.mark.exercise("9.3", points=4)
def test_kfac_error_is_zero_for_one_sample_and_equal_curvatures(nb):
    a, M = layer_data(98, 1, 4, 3)
    assert abs(float(nb.call("kfac_error", a, M))) < 1e-6 * np.linalg.norm(M[0]) * (a @ a.T + 1)[0, 0]
    a, M = layer_data(99, 7, 4, 3)
    same = np.broadcast_to(M[0], M.shape).copy()              # all M_b equal: K-FAC is exact
    assert abs(float(nb.call("kfac_error", a, same))) < 1e-6 * dense_kfac_error(a, M)


@pytest.mark.exercise("9.3", points=4)
def test_kfac_error_without_forming_the_matrix(nb):
    # p = 50 * 301 = 15,050: one dense p x p matrix is 1.8 GB; the call has 20 s
    rng = np.random.default_rng(100)
    B, m, o = 64, 300, 50
    a = rng.standard_normal((B, m)) / np.sqrt(m)
    R = rng.standard_normal((B, o, 4))
    M = R @ R.transpose(0, 2, 1)
    got = float(nb.call("kfac_error", a, M))
    # reference by the Gram-matrix identity, computed here
    abar = np.hstack([a, np.ones((B, 1))])
    S, A = M.mean(axis=0), abar.T @ abar / B
    Mf = M.reshape(B, -1)
    sq = (np.sum((Mf @ Mf.T) * (abar @ abar.T) ** 2) / B ** 2
          - 2 * np.mean((Mf @ S.ravel()) * np.einsum("bi,ij,bj->b", abar, A, abar))
          + np.sum(S * S) * np.sum(A * A))
    assert np.isclose(got, np.sqrt(sq), rtol=ERROR_RTOL, atol=0.0)


@pytest.mark.exercise("9.3", points=4)
def test_kfac_error_rejects_bad_shapes(nb):
    a, M = layer_data(101, 4, 3, 2)
    raises_value_error(lambda: nb.call("kfac_error", a, M[:2]))
    raises_value_error(lambda: nb.call("kfac_error", a[0], M))


# ---------------------------------------------------------------- 9.4
def factors(seed, o, k):
    rng = np.random.default_rng(seed)
    P, Q = rng.standard_normal((o, o + 1)), rng.standard_normal((k, k + 1))
    return P @ P.T / o, Q @ Q.T / k, rng.standard_normal((o, k))


@pytest.mark.exercise("9.4", points=4)
@pytest.mark.parametrize("o, k, lam", [(3, 4, 0.1), (5, 2, 1e-3), (1, 6, 2.0)])
def test_kfac_solve_matches_dense_solve(nb, o, k, lam):
    S, A, V = factors(102 + o, o, k)
    want = np.linalg.solve(np.kron(S, A) + lam * np.eye(o * k), V.ravel()).reshape(o, k)
    assert close(nb.call("kfac_solve", S, A, V, lam), want, tol=1e-8)


@pytest.mark.exercise("9.4", points=4)
def test_kfac_solve_at_scale(nb):
    # p = 200 * 300 = 60,000: the dense matrix would be 29 GB; check the residual here
    S, A, V = factors(103, 200, 300)
    U = np.asarray(nb.call("kfac_solve", S, A, V, 0.5), dtype=float)
    assert U.shape == V.shape
    assert close(S @ U @ A.T + 0.5 * U, V, tol=1e-8)


@pytest.mark.exercise("9.4", points=4)
def test_kfac_solve_rejects_bad_input(nb):
    S, A, V = factors(104, 3, 4)
    raises_value_error(lambda: nb.call("kfac_solve", S, A, V.T, 0.1))
    raises_value_error(lambda: nb.call("kfac_solve", S[:, :2], A, V, 0.1))
    raises_value_error(lambda: nb.call("kfac_solve", S, A, V, 0.0))
