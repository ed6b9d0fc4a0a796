"""The linear layer, whose Jacobian has Kronecker structure."""
import numpy as np

from ._validate import generator, number
from .module import Module

__all__ = ["Linear"]


def _pairs(n):
    """The pairs i <= k of range(n) (two index arrays) and their positions (n, n), symmetric."""
    i, k = np.triu_indices(n)
    position = np.empty((n, n), dtype=np.intp)
    position[i, k] = position[k, i] = np.arange(len(i))
    return i, k, position


class Linear(Module):
    """y = W x + b per sample, so Y = X W^T + b for a batch (as torch.nn.Linear).

    W: (o, m), b: (o,); the parameters flatten as [W row-major, b], p = o m + o.
    Per sample J_x = W and J_theta = [I_o kron x^T, I_o] (o x p), used as such by
    the products below (the Gram block's W-W part is sum_b H_b kron x_b x_b^T).
    Linear in x and in theta separately, its only curvature is the cross term
    d^2 y_i / dx_j dW_kl = delta_ik delta_jl (the block C_xp).
    """

    def __init__(self, in_features, out_features, *, rng=None):
        super().__init__()
        self.in_features = number(in_features, "Linear", "in_features", 1, integer=True, low_in=True)
        self.out_features = number(out_features, "Linear", "out_features", 1, integer=True, low_in=True)
        rng = generator(rng, "Linear")
        bound = 1.0 / np.sqrt(self.in_features)
        self.params["W"] = rng.uniform(-bound, bound, (self.out_features, self.in_features))
        self.params["b"] = rng.uniform(-bound, bound, self.out_features)
        self.zero_grad()

    def __repr__(self):
        return f"Linear({self.in_features}, {self.out_features})"

    W = property(lambda self: self.params["W"], doc="The weights (o, m): params['W'].")
    b = property(lambda self: self.params["b"], doc="The bias (o,): params['b'].")

    def forward(self, X):
        return X @ self.W.T + self.b

    # ------------------------------------------------------- first order
    def input_jacobian(self):
        return np.repeat(self.W[None], len(self.input), axis=0)       # W for each sample

    def param_jacobian(self, out=None):
        # [I_o kron x^T, I_o]: zero but for x in the W columns of row i and 1 at b_i
        (B, m), o = self.input.shape, self.out_features
        J = np.empty((B, o, o * m + o)) if out is None else out
        J[:, :, :o * m], J[:, :, o * m:] = 0.0, np.eye(o)
        for i in range(o):
            J[:, i, i * m:(i + 1) * m] = self.input
        return J

    def jvp(self, dX=None, dparams=None):
        # dY = dX W^T + (X dW^T + db), each term only when its tangent is given
        dY = None if dX is None else dX @ self.W.T
        if dparams is not None:
            dW, db = dparams
            dP = self.input @ dW.T + db
            dY = dP if dY is None else dY + dP
        return np.zeros(self.output.shape) if dY is None else dY

    def vjp_input(self, G):
        return G @ self.W

    def vjp_params(self, G):
        return [G.T @ self.input, np.ones(len(G)) @ G]

    # ------------------------------------------------- batched products
    def vjp_input_many(self, A):
        return A @ self.W

    def vjp_params_many(self, A, out=None):
        # row a of A J_theta = [a kron x^T, a]: the W columns (i, j) hold a_i x_j
        X = self.input
        (B, k, o), m = A.shape, X.shape[1]
        out = np.empty((B, k, o * m + o)) if out is None else out
        np.multiply(A[:, :, :, None], X[:, None, None, :], out=out[:, :, :o * m].reshape(B, k, o, m))
        out[:, :, o * m:] = A
        return out

    def vjp_params_sum(self, A):
        # sum_b a_bci x_bj as one product A^T (k o, B) @ X (B, m): rows c, columns (i, j)
        X = self.input
        (B, k, o), m = A.shape, X.shape[1]
        S = (A.reshape(B, k * o).T @ X).reshape(k, o * m)
        return np.concatenate([S, A.sum(axis=0)], axis=1)

    def gram_params(self, H, out=None):
        """sum_b J_theta^T H_b J_theta for symmetric H_b: (p, p), in blocks
        W-W: sum_b H_b kron x_b x_b^T, W-b: sum_b H_b kron x_b, b-b: sum_b H_b.

        The W-W entry ((i, j), (k, l)) is sum_b h_bik x_bj x_bl, symmetric in i, k
        and in j, l: it depends on the pairs {i, k} and {j, l} only. One
        (o(o+1)/2, B) @ (B, m(m+1)/2) product R computes each distinct entry once,
        a quarter of the work of the full (o^2, B) @ (B, m^2) product, and row
        block i of W-W is copied out of R's rows {i, k}. Each sample is taken as
        (h s)(x_j / s) x_l with s the power of two nearest max |x_b| from below
        (1 for |x| < 1; exact), so x_j x_l cannot overflow where h = 0 makes the
        entry 0 (a saturated tanh after a huge input)."""
        X = self.input
        (B, m), o = X.shape, self.out_features
        om = o * m
        i, k, ik = _pairs(o)
        j, l, jl = _pairs(m)
        s = np.ldexp(1.0, np.maximum(np.frexp(np.abs(X).max(axis=1))[1] - 1, 0))      # (B,)
        Z = X[:, j] / s[:, None]
        Z *= X[:, l]                                            # x_j x_l / s: (B, m(m+1)/2)
        R = (H[:, i, k] * s[:, None]).T @ Z                     # R[{i,k}, {j,l}]
        out = np.empty((om + o, om + o)) if out is None else out       # every entry written
        WW = out[:om, :om].reshape(o, m, o, m)                  # a view: [i, j, k, l]
        for a in range(o):
            WW[a] = R[ik[a]][:, jl].transpose(1, 0, 2)          # [k, j, l] -> [j, k, l]
        out[om:, :om] = self.vjp_params_sum(H)[:, :om]
        out[:om, om:] = out[om:, :om].T
        out[om:, om:] = H.sum(axis=0)
        return out

    # ------------------------------------------------------ second order
    def curvature_xx(self, G):
        return None

    def curvature_xp(self, G):
        # C_xW[b, j, (k, l)] = g_bk delta_jl: row j holds G in the columns k*m + j
        X = self.input
        (B, m), o = X.shape, self.out_features
        C = np.zeros((B, m, o * m + o))
        for j in range(m):
            C[:, j, j:o * m:m] = G
        return C

    def curvature_pp(self, G):
        return None

    def curvature_vp(self, G, dX=None, dparams=None, inputs=True):
        # C (dx, dtheta) = (G dW per sample, [G^T dX, 0]); G dW only when asked (inputs)
        sx = None if not inputs else np.zeros(self.input.shape) if dparams is None else G @ dparams[0]
        sW = np.zeros(self.W.shape) if dX is None else G.T @ dX
        return sx, [sW, np.zeros(self.b.shape)]
