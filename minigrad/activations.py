"""Activations: elementwise ones defined by f, f', f'' alone, and softmax."""
import numpy as np

from ._arrays import diagonal
from ._validate import returned
from .module import Module

__all__ = ["Elementwise", "Identity", "Tanh", "Sigmoid", "ReLU", "Softmax",
           "logsumexp", "softmax"]


class Elementwise(Module):
    """y_i = f(x_i). A subclass defines ``f``, ``df`` (f') and ``d2f`` (f''), each
    (B, m) -> (B, m). Per sample J_x = diag(f'(x)), so a VJP or a JVP scales by f';
    C_xx(g) = diag(g * f''(x)); no parameters. ``f_at(x)`` gives y = f(x) without
    a second f at the last input, for f', f'' simplest through y (tanh: 1 - y^2).
    """

    def f(self, x):                                  # y = f(x)
        raise NotImplementedError(f"{type(self).__name__}.f")

    def df(self, x):                                 # f'(x)
        raise NotImplementedError(f"{type(self).__name__}.df")

    def d2f(self, x):                                # f''(x)
        raise NotImplementedError(f"{type(self).__name__}.d2f")

    def forward(self, X):
        return self.f(X)

    def f_at(self, x):
        """f(x), read from the kept output when x is the last input (so f' and f''
        written through y = f(x), as for tanh and the sigmoid, cost no second f)."""
        return self._output if x is self._input and self._output is not None else self.f(x)

    def slope(self):
        """f'(X) at the last input, computed once per call: (B, m)."""
        return self.cached("df", lambda: returned(self, "df", self.input.shape, self.input))

    def bend(self):
        """f''(X) at the last input, computed once per call: (B, m)."""
        return self.cached("d2f", lambda: returned(self, "d2f", self.input.shape, self.input))

    def input_jacobian(self):
        return diagonal(self.slope())

    def jvp(self, dX=None, dparams=None):
        return np.zeros(self.input.shape) if dX is None else self.slope() * dX

    def vjp_input(self, G):
        return G * self.slope()

    def vjp_input_many(self, A):
        return A * self.slope()[:, None, :]

    def curvature_xx(self, G):
        return diagonal(G * self.bend())

    def curvature_vp(self, G, dX=None, dparams=None):
        return (np.zeros(self.input.shape) if dX is None else G * self.bend() * dX), []


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
        return 1.0 - self.f_at(x) ** 2

    def d2f(self, x):
        y = self.f_at(x)
        return -2.0 * y * (1.0 - y ** 2)


def _sigmoid(x):
    # exp of a non-positive number only: no overflow for |x| up to 1e308
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


class Sigmoid(Elementwise):
    """y = 1 / (1 + exp(-x)); f' = y (1 - y); f'' = y (1 - y)(1 - 2y)."""

    def f(self, x):
        return _sigmoid(x)

    def df(self, x):
        y = self.f_at(x)
        return y * (1.0 - y)

    def d2f(self, x):
        y = self.f_at(x)
        return y * (1.0 - y) * (1.0 - 2.0 * y)


class ReLU(Elementwise):
    """y = max(x, 0); f' = 1[x > 0]; f'' = 0 (the kink at 0 is given slope 0)."""

    def f(self, x):
        return np.maximum(x, 0.0)

    def df(self, x):
        return (x > 0).astype(np.float64)

    def d2f(self, x):
        return np.zeros_like(x)


def shifted_exp(Z):
    """(zmax (B, 1), E = exp(Z - zmax) (B, o), s = row sums of E (B, 1)) for Z (B, o), the one
    exp of logsumexp and softmax: shifted by the row maximum, it never overflows, s >= 1."""
    zmax = Z[np.arange(len(Z)), Z.argmax(axis=1)][:, None]      # found by argmax: quicker
    E = np.exp(Z - zmax)
    return zmax, E, E @ np.ones((Z.shape[1], 1))          # row sums as one product


def logsumexp(Z):
    """log sum_k exp(z_k) per row of Z (B, o) -> (B,): zmax + log s."""
    zmax, _, s = shifted_exp(Z)
    return (zmax + np.log(s))[:, 0]


def softmax(Z):
    """Row-wise softmax of Z (B, o): E / s, stable for any finite z."""
    _, E, s = shifted_exp(Z)
    return E / s


class Softmax(Module):
    """y = softmax(x), y_i = exp(x_i) / sum_j exp(x_j).

    J_x = diag(y) - y y^T (symmetric), the notes' N_i (delta_ij - N_j).
    Curvature weighted by g, with a = g * y and s = g . y:
    C_xx(g) = diag(a - s y) - a y^T - y a^T + 2 s y y^T.
    """

    def forward(self, X):
        return softmax(X)

    def input_jacobian(self):
        Y = self.output
        return diagonal(Y, add_to=-Y[:, :, None] * Y[:, None, :])

    def vjp_input(self, G):
        Y = self.output
        return Y * (G - np.sum(G * Y, axis=1, keepdims=True))

    def jvp(self, dX=None, dparams=None):
        return np.zeros(self.output.shape) if dX is None else self.vjp_input(dX)   # J_x symmetric

    def vjp_input_many(self, A):
        Y = self.output[:, None, :]                     # rows a J_x = y * (a - a . y)
        return Y * (A - np.sum(Y * A, axis=2, keepdims=True))

    def curvature_xx(self, G):
        Y = self.output
        a = G * Y
        s = np.sum(a, axis=1, keepdims=True)
        C = 2 * s[:, :, None] * Y[:, :, None] * Y[:, None, :]
        C -= a[:, :, None] * Y[:, None, :] + Y[:, :, None] * a[:, None, :]
        return diagonal(a - s * Y, add_to=C)

    def curvature_vp(self, G, dX=None, dparams=None):
        Y = self.output
        if dX is None:
            return np.zeros(Y.shape), []
        a = G * Y
        s = np.sum(a, axis=1, keepdims=True)
        yd = np.sum(Y * dX, axis=1, keepdims=True)
        ad = np.sum(a * dX, axis=1, keepdims=True)
        return (a - s * Y) * dX - a * yd - Y * ad + 2 * s * Y * yd, []
