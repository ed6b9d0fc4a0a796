"""Curvature at scale: the Hessian and Gauss-Newton matrix as linear operators, the
empirical Fisher, K-FAC's Kronecker factors, and the stochastic estimates of a spectrum.

n is the number of parameters (module order, row-major), B the batch size, o the output
width; every quantity is that of the batch loss C(w) = (1/B) sum_b l(y_b, t_b) at the
parameters of the moment. An operator never forms an n x n matrix: a product costs a few
gradients (``minigrad.hvp``, ``minigrad.ggn_vp``), so it works where ``minigrad.hessian``
refuses. The estimators: Hutchinson (1989) for the trace, Lanczos with full
reorthogonalisation, and stochastic Lanczos quadrature (Golub and Meurant's Gauss
quadrature, as in Ghorbani et al. 2019) for the spectral density.
"""
import numpy as np
from scipy.sparse.linalg import LinearOperator, aslinearoperator

from ._validate import _as_array, generator
from .derivatives import (dense_chunk, ggn_vp, hvp, input_jacobian, model_and_loss,
                          parameters_to_vector, per_sample_grads)
from .layers import Linear
from .sequential import Sequential

__all__ = ["CurvatureOperator", "hessian_operator", "ggn_operator", "empirical_fisher",
           "kfac_factors", "kron_block", "hutchinson_trace", "lanczos", "spectral_density"]


class CurvatureOperator(LinearOperator):
    """A symmetric (n, n) float64 operator v -> product(model, loss, X, T, v): ``matvec``
    (n,) or (n, 1), ``matmat`` (n, k) column by column, real and unmasked; ``products``
    counts the vectors multiplied. X, T are copied; the parameters read at each product.
    """

    def __init__(self, product, model, loss, X, T, who):
        model_and_loss(model, loss, who, X, T)     # checks X and T now, with minigrad's errors
        X, T = model.input.copy(), np.array(T)
        n = parameters_to_vector(model).size
        if n == 0:
            raise ValueError(f"{who}: the model has no parameters")
        super().__init__(dtype=np.float64, shape=(n, n))
        self._product, self._args, self.who = product, (model, loss, X, T), who
        self.products = 0

    def matvec(self, v):
        """A v for v (n,) or (n, 1), real and unmasked (checked here, by shape)."""
        v, n = _as_array(v, self.who, "v"), self.shape[0]
        if v.shape not in ((n,), (n, 1)):
            raise ValueError(f"{self.who}: matvec expects a vector of shape ({n},) or ({n}, 1), "
                             f"one entry per parameter, got shape {v.shape}")
        return super().matvec(v)

    rmatvec = matvec                              # symmetric: A^T v = A v

    def matmat(self, V):
        """A V for V (n, k), real and unmasked: (n, k)."""
        V = _as_array(V, self.who, "V")
        if V.ndim != 2 or V.shape[0] != self.shape[0]:
            raise ValueError(f"{self.who}: matmat expects shape ({self.shape[0]}, k), got {V.shape}")
        return super().matmat(V)

    def _matvec(self, v):
        self.products += 1
        return self._product(*self._args, v.reshape(-1))

    def _matmat(self, V):
        return np.column_stack([self._matvec(V[:, j]) for j in range(V.shape[1])]) \
            if V.shape[1] else np.zeros((self.shape[0], 0))

    def _rmatvec(self, v):                         # symmetric: H^T v = H v
        return self._matvec(v)

    def _adjoint(self):
        return self

    def __repr__(self):
        return f"<{self.who}: {self.shape[0]} x {self.shape[1]} symmetric float64 operator>"


def hessian_operator(model, loss, X, T):
    """The Hessian H of the batch loss as an (n, n) LinearOperator: H v = ``minigrad.hvp``."""
    return CurvatureOperator(hvp, model, loss, X, T, "hessian_operator")


def ggn_operator(model, loss, X, T):
    """The Gauss-Newton matrix G = (1/B) sum_b J_b^T H_L,b J_b (J_b (o, n), H_L,b (o, o)) as
    an (n, n) LinearOperator, G v = ``minigrad.ggn_vp``; PSD when every H_L,b is."""
    return CurvatureOperator(ggn_vp, model, loss, X, T, "ggn_operator")


def empirical_fisher(model, loss, X, T):
    """The empirical Fisher F_emp = (1/B) sum_b g_b g_b^T: (n, n), g_b (n,) the gradient of
    sample b's own loss (``minigrad.per_sample_grads``), rank at most B. With the observed
    targets, not the model's distribution, it is neither the Fisher nor the Gauss-Newton
    matrix (Kunstner et al. 2019)."""
    n, B = parameters_to_vector(model).size, len(X) if hasattr(X, "__len__") else 1
    model_and_loss(model, loss, "empirical_fisher")
    dense_chunk((n, n), "empirical_fisher", 2 * n * B)     # the result, and S (B, n) once
    S = per_sample_grads(model, loss, X, T)                # (B, n)
    return S.T @ S / S.shape[0]


def kfac_factors(model, loss, X, T):
    """K-FAC's Kronecker factors of the Gauss-Newton matrix, one pair per Linear layer.

    For a Linear layer z = a W^T + b (W (o_l, m_l)), sample b's Jacobian for [W row-major,
    b] is [I (x) a_b^T, I], so the layer's exact Gauss-Newton block is (1/B) sum_b M_b (x)
    abar_b abar_b^T (bias entries ordered as in ``kron_block``), abar_b = [a_b; 1] and
    M_b = J_b^T H_L,b J_b (o_l, o_l), J_b the Jacobian of the output w.r.t. z_b. K-FAC
    (Martens and Grosse 2015) takes the Kronecker product of the means instead:

        S = (1/B) sum_b M_b (o_l, o_l),   A = (1/B) sum_b abar_b abar_b^T (m_l+1, m_l+1).

    Returns a list of (start, stop, A, S, a, M): the layer's slice start:stop of the
    parameter vector, the two factors, its inputs a (B, m_l) and the M_b (B, o_l, o_l).
    Every parametrised module must be a Linear (else ValueError).
    """
    leaves = model_and_loss(model, loss, "kfac_factors")
    for k, mod in enumerate(leaves):
        if mod.num_params and not isinstance(mod, Linear):
            raise ValueError(f"kfac_factors: module {k} ({type(mod).__name__}) has parameters "
                             f"but is not a Linear layer")
    model_and_loss(model, loss, "kfac_factors", X, T)      # runs the model at X (checked)
    acts, zs = [mod.input for mod in leaves], [mod.output for mod in leaves]
    B = len(acts[0])
    H_L = loss.hessian() * B                               # per-sample (B, o, o)
    out, start = [], 0
    for k, mod in enumerate(leaves):
        p = mod.num_params
        if not p:
            continue
        if k + 1 < len(leaves):
            J = input_jacobian(Sequential(*leaves[k + 1:]), zs[k])   # (B, o, o_l)
            M = J.transpose(0, 2, 1) @ (H_L @ J)                      # J^T H_L J per sample
        else:
            M = H_L
        abar = np.hstack([acts[k], np.ones((B, 1))])
        out.append((start, start + p, abar.T @ abar / B, M.mean(axis=0), acts[k], M))
        start += p
    model(acts[0])                                         # leave the model at the batch X
    return out


def kron_block(S, A):
    """The (p, p) matrix S (x) A in minigrad's parameter order of a Linear layer, p = o (m+1).

    S (o, o) acts on the output side, A (m+1, m+1) on [a; 1]. Entry (i, j), (k, l) of
    S (x) A multiplies W_ij and W_kl (j, l < m) or the bias b_i (j = m); minigrad orders W
    row-major (W_ij at i m + j) and then b (b_i at o m + i)."""
    S, A = np.asarray(S, dtype=float), np.asarray(A, dtype=float)
    if S.ndim != 2 or A.ndim != 2 or S.shape[0] != S.shape[1] or A.shape[0] != A.shape[1] \
            or A.shape[0] < 1:
        raise ValueError(f"kron_block: S must be (o, o) and A (m+1, m+1), got {S.shape} "
                         f"and {A.shape}")
    o, m = S.shape[0], A.shape[0] - 1
    dense_chunk((o * (m + 1),) * 2, "kron_block", (o * (m + 1)) ** 2)   # the result and K
    K = np.kron(S, A)                                      # index i (m+1) + j
    i, j = np.divmod(np.arange(o * (m + 1)), m + 1)
    order = np.where(j < m, i * m + j, o * m + i)          # minigrad's position of each index
    P = np.empty_like(K)
    P[np.ix_(order, order)] = K
    return P


def _as_operator(op, who):
    try:
        op = aslinearoperator(op)
    except (TypeError, ValueError):
        op = None
    if op is None or op.shape[0] != op.shape[1]:
        raise ValueError(f"{who}: expected a square LinearOperator or 2-D array, got "
                         f"{getattr(op, 'shape', None)}")
    return op


def hutchinson_trace(op, num_samples, rng=0):
    """Hutchinson's estimate of tr(A) for a square (n, n) operator A: tr(A) ~ (1/s) sum_i
    z_i^T A z_i with Rademacher z_i (entries +-1, E[z z^T] = I), s = num_samples products.
    Returns (estimate, standard error of the mean)."""
    op = _as_operator(op, "hutchinson_trace")
    if int(num_samples) != num_samples or num_samples < 2:
        raise ValueError(f"hutchinson_trace: num_samples must be an integer >= 2, got {num_samples}")
    rng = generator(rng, "hutchinson_trace")
    n = op.shape[0]
    values = np.empty(int(num_samples))
    for i in range(values.size):
        z = rng.choice([-1.0, 1.0], size=n)
        values[i] = z @ op.matvec(z)
    return float(values.mean()), float(values.std(ddof=1) / np.sqrt(values.size))


def lanczos(op, k, v0=None, rng=0):
    """k steps of Lanczos on a symmetric (n, n) operator A, fully reorthogonalised: from
    q_1 = v0 / |v0| (v0 (n,), random normal when None), orthonormal Q = [q_1 .. q_k] (n, k)
    with Q^T A Q = T tridiagonal, diagonal alpha (k,), off-diagonal beta (k-1,); shorter
    when the Krylov space is exhausted. Returns (alpha, beta, Q). T's eigenvalues approach
    A's extreme ones first; k products of A, memory n k."""
    op = _as_operator(op, "lanczos")
    n = op.shape[0]
    if int(k) != k or not 1 <= k <= n:
        raise ValueError(f"lanczos: k must be an integer in 1..{n}, got {k}")
    v = generator(rng, "lanczos").standard_normal(n) if v0 is None else np.asarray(v0, dtype=float)
    if v.shape != (n,) or not np.linalg.norm(v) > 0:
        raise ValueError(f"lanczos: v0 must be a nonzero vector of shape ({n},), got {v.shape}")
    Q = np.zeros((n, int(k)))
    alpha, beta = [], []
    Q[:, 0] = v / np.linalg.norm(v)
    for j in range(int(k)):
        w = op.matvec(Q[:, j])
        alpha.append(float(Q[:, j] @ w))
        w = w - Q[:, :j + 1] @ (Q[:, :j + 1].T @ w)        # full reorthogonalisation, twice
        w = w - Q[:, :j + 1] @ (Q[:, :j + 1].T @ w)
        if j + 1 == k:
            break
        b = np.linalg.norm(w)
        if b < 1e-12 * max(1.0, abs(alpha[0])):            # invariant subspace found
            break
        beta.append(float(b))
        Q[:, j + 1] = w / b
    m = len(alpha)
    return np.array(alpha), np.array(beta[:m - 1]), Q[:, :m]


def spectral_density(op, grid, k, num_runs, sigma, rng=0):
    """Stochastic Lanczos quadrature estimate of the spectral density of a symmetric
    (n, n) operator A on ``grid`` (g,): phi(t) = (1/n) sum_i N(t; lambda_i, sigma^2).

    Each run draws v ~ N(0, I), runs k Lanczos steps, T = U diag(theta) U^T: the nodes
    theta_j, weights U_1j^2 are a Gauss quadrature of v^T f(A) v / |v|^2 (exact for degree
    < 2k). The density, (g,), is the runs' mean of sum_j U_1j^2 N(t; theta_j, sigma^2)."""
    grid = np.asarray(grid, dtype=float)
    if grid.ndim != 1 or not sigma > 0 or int(num_runs) != num_runs or num_runs < 1:
        raise ValueError(f"spectral_density: grid must be 1-D, sigma > 0 and num_runs >= 1, got "
                         f"grid {grid.shape}, sigma {sigma}, num_runs {num_runs}")
    rng = generator(rng, "spectral_density")
    density = np.zeros_like(grid)
    for _ in range(int(num_runs)):
        alpha, beta, _ = lanczos(op, k, rng=rng)
        theta, U = np.linalg.eigh(np.diag(alpha) + np.diag(beta, 1) + np.diag(beta, -1))
        gauss = np.exp(-(grid[:, None] - theta) ** 2 / (2 * sigma ** 2)) / np.sqrt(2 * np.pi * sigma ** 2)
        density += gauss @ U[0] ** 2
    return density / num_runs
