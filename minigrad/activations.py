"""Activations: elementwise ones defined by f, f', f'' alone, and softmax."""
import numpy as np

from .module import Module

__all__ = ["Elementwise", "Identity", "Tanh", "Sigmoid", "ReLU", "Softmax"]


class Elementwise(Module):
    """y_i = f(x_i). A subclass defines ``f``, ``df`` (f') and ``d2f`` (f'').

    Per sample the Jacobian is diagonal, J_x = diag(f'(x)), so a VJP scales each
    row by f'; the curvature is diagonal too: sum_k g_k hess(y_k) = diag(g * f''(x)).
    There are no parameters.
    """

    def f(self, x):
        raise NotImplementedError(f"{type(self).__name__}.f")

    def df(self, x):
        raise NotImplementedError(f"{type(self).__name__}.df")

    def d2f(self, x):
        raise NotImplementedError(f"{type(self).__name__}.d2f")

    def forward(self, X):
        return self.f(X)

    def _df(self):
        """f'(X) at the cached input, computed once per batch: (B, m)."""
        X = self._need_input()
        return self._cached("df", lambda: self.df(X))

    def _d2f(self):
        """f''(X) at the cached input, computed once per batch: (B, m)."""
        X = self._need_input()
        return self._cached("d2f", lambda: self.d2f(X))

    def vjp(self, G):
        return G * self._df(), []

    def _vjp_input(self, G):
        return G * self._df()

    def jvp(self, dX=None, dparams=None):
        X = self._need_input()
        return np.zeros_like(X) if dX is None else self._df() * dX

    def input_jacobian(self):
        D = self._df()
        return D[:, :, None] * np.eye(D.shape[1])

    def vjp_input_many(self, A):
        return self._df()[:, :, None] * A

    def _rows_input(self, A):
        return A * self._df()[:, None, :]

    def _rows_params(self, A, out=None):
        return np.zeros(A.shape[:2] + (0,)) if out is None else out

    def _gram_params_into(self, H, out):
        pass

    def _add_curvature(self, G, Hxx, Hxt):
        # C_xx = diag(G * f''(x)) per sample: add it to the diagonal only
        if Hxx is not None:
            i = np.arange(Hxx.shape[1])
            Hxx[:, i, i] += G * self._d2f()
        return Hxx, Hxt, None

    def vjp_params_many(self, A):
        return np.zeros((A.shape[0], 0, A.shape[2]))

    def vjp_params_sum(self, A):
        return np.zeros((0, A.shape[2]))

    def gram_params(self, H):
        return np.zeros((0, 0))

    def second_contraction(self, G):
        D2 = G * self._d2f()
        return D2[:, :, None] * np.eye(D2.shape[1]), None, None

    def second_vjp(self, G, dX=None, dparams=None):
        X = self._need_input()
        return (np.zeros_like(X) if dX is None else G * self._d2f() * dX), []

    def _second_vjp(self, G, dX, dparams, need_x):
        # C dx = G * f''(x) * dx per sample (B, m); no parameters. In place on
        # the one temporary: the same products, in the same order.
        if not need_x or dX is None:
            return None, []
        s = G * self._d2f()
        s *= dX
        return s, []


class Identity(Elementwise):
    """y = x."""

    def f(self, x):
        return x.copy()

    def df(self, x):
        return np.ones_like(x)

    def d2f(self, x):
        return np.zeros_like(x)


class Tanh(Elementwise):
    """y = tanh(x); f' = 1 - y^2; f'' = -2 y (1 - y^2)."""

    def f(self, x):
        return np.tanh(x)

    def df(self, x):
        return 1.0 - np.tanh(x) ** 2

    def d2f(self, x):
        y = np.tanh(x)
        return -2.0 * y * (1.0 - y ** 2)

    # One tanh per batch: f' and f'' are computed from the output y of forward
    # (kept with the cache of this input), unless a subclass redefines f, f' or
    # f'' (then the generic path is used).
    def _own(self, name):
        return all(getattr(type(self), fn) is getattr(Tanh, fn) for fn in ("f", name))

    def forward(self, X):
        Y = self.f(X)
        if X is self.X and (type(self) is Tanh or self._own("df")):   # through __call__
            # a fresh cache for this input: y = tanh(x) for f'', and f' from
            # the output (no second tanh)
            D = Y * Y
            np.subtract(1.0, D, out=D)                  # f' = 1 - y^2, one array
            self._cache = {None: X, "y": Y, "df": D}
        return Y

    def _d2f(self):
        if not self._own("d2f") or not self._own("df"):
            return super()._d2f()
        X = self._need_input()
        y = self._cached("y", lambda: np.tanh(X))
        return self._cached("d2f", lambda: -2.0 * y * self._df())


def _sigmoid(x):
    # exp of a non-positive number only: no overflow for |x| up to 1e308
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


class Sigmoid(Elementwise):
    """y = 1 / (1 + exp(-x)); f' = y (1 - y); f'' = y (1 - y)(1 - 2y)."""

    def f(self, x):
        return _sigmoid(x)

    def df(self, x):
        s = _sigmoid(x)
        return s * (1.0 - s)

    def d2f(self, x):
        s = _sigmoid(x)
        return s * (1.0 - s) * (1.0 - 2.0 * s)


class ReLU(Elementwise):
    """y = max(x, 0); f' = 1[x > 0]; f'' = 0 (the kink at 0 is given slope 0)."""

    def f(self, x):
        return np.maximum(x, 0.0)

    def df(self, x):
        return (x > 0).astype(np.float64)

    def d2f(self, x):
        return np.zeros_like(x)


def softmax(Z):
    """Row-wise softmax of Z (B, o), shifted by the row maximum so exp never overflows."""
    E = np.exp(Z - Z.max(axis=1, keepdims=True))
    return E / E.sum(axis=1, keepdims=True)


class Softmax(Module):
    """y = softmax(x), y_i = exp(x_i) / sum_j exp(x_j).

    J_x = diag(y) - y y^T (symmetric), the notes' N_i (delta_ij - N_j).
    Curvature weighted by g, with a = g * y and s = g . y:
    sum_k g_k hess(y_k) = diag(a - s y) - a y^T - y a^T + 2 s y y^T.
    """

    def forward(self, X):
        self.Y = softmax(X)
        return self.Y

    def _y(self):
        self._need_input()
        return self.Y

    def vjp(self, G):
        Y = self._y()
        return Y * (G - np.sum(G * Y, axis=1, keepdims=True)), []

    def jvp(self, dX=None, dparams=None):
        Y = self._y()
        if dX is None:
            return np.zeros_like(Y)
        return self.vjp(dX)[0]          # J_x is symmetric

    def input_jacobian(self):
        Y = self._y()
        return Y[:, :, None] * np.eye(Y.shape[1]) - Y[:, :, None] * Y[:, None, :]

    def vjp_input_many(self, A):
        Y = self._y()[:, :, None]
        return Y * (A - np.sum(Y * A, axis=1, keepdims=True))

    def vjp_params_many(self, A):
        return np.zeros((A.shape[0], 0, A.shape[2]))

    def vjp_params_sum(self, A):
        return np.zeros((0, A.shape[2]))

    def gram_params(self, H):
        return np.zeros((0, 0))

    def second_contraction(self, G):
        Y = self._y()
        a = G * Y
        s = np.sum(a, axis=1, keepdims=True)
        C = (a - s * Y)[:, :, None] * np.eye(Y.shape[1])
        C -= a[:, :, None] * Y[:, None, :] + Y[:, :, None] * a[:, None, :]
        C += 2 * s[:, :, None] * Y[:, :, None] * Y[:, None, :]
        return C, None, None

    def second_vjp(self, G, dX=None, dparams=None):
        Y = self._y()
        if dX is None:
            return np.zeros_like(Y), []
        a = G * Y
        s = np.sum(a, axis=1, keepdims=True)
        yd = np.sum(Y * dX, axis=1, keepdims=True)
        ad = np.sum(a * dX, axis=1, keepdims=True)
        return (a - s * Y) * dX - a * yd - Y * ad + 2 * s * Y * yd, []
