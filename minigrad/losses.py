"""Losses L(Y, T) = (1/B) sum_b l(y_b, t_b) of outputs Y (B, o) and targets T. A loss
gives ``value_per_sample`` (B,), ``grad_per_sample`` (B, o), ``hess_per_sample`` (B, o, o)
and may give ``hvp_per_sample`` for speed; the batch methods (``loss(Y, T)``, ``at``,
``backward``, ``hessian``, ``hvp``) are those of the mean, at the last call.
"""
import numpy as np

from ._arrays import Cached, diagonal
from ._validate import _as_array, as_batch, finite_result, returned
from .activations import shifted_exp, softmax

__all__ = ["Loss", "MSELoss", "SoftmaxCrossEntropy", "NLLLoss"]


class Loss(Cached):
    """Base class. Call ``loss(Y, T)`` for the batch loss; ``Y`` and ``T`` (as
    float rows (B, o)) are kept, and the derivative methods are evaluated there."""

    #: whether targets may be class indices (B,), one-hot encoded
    accepts_labels = False

    def __repr__(self):
        return f"{type(self).__name__}()"

    # ---------------------------------------------------- to be provided
    def value_per_sample(self, Y, T):
        """l(y_b, t_b): (B,)."""
        raise NotImplementedError(f"{type(self).__name__}.value_per_sample")

    def grad_per_sample(self, Y, T):
        """dl/dy per sample: (B, o)."""
        raise NotImplementedError(f"{type(self).__name__}.grad_per_sample")

    def hess_per_sample(self, Y, T):
        """d^2 l / dy dy^T per sample: (B, o, o), symmetric."""
        raise NotImplementedError(f"{type(self).__name__}.hess_per_sample")

    def hvp_per_sample(self, Y, T, dY):
        """(d^2 l / dy dy^T) dy per sample: (B, o)."""
        return np.einsum("bij,bj->bi", returned(self, "hess_per_sample", Y.shape + Y.shape[1:], Y, T), dY)

    def check_output(self, Y):
        """Extra checks on Y (for example, probabilities); raise ValueError."""

    # ------------------------------------------------------------ public
    def targets(self, T, B, o):
        """T as float rows (B, o): class indices (B,) are one-hot encoded when
        ``accepts_labels``; with one output, values (B,) become a column."""
        T = _as_array(T, self, "targets")
        if T.ndim == 1 and self.accepts_labels:
            if T.shape != (B,):
                raise ValueError(f"{self!r}: expected targets of shape ({B},) (class indices) "
                                 f"or ({B}, {o}) (rows), got shape {T.shape}")
            if T.dtype.kind == "f" and not np.all(np.isfinite(T) & (T == np.round(T))):
                raise ValueError(f"{self!r}: class indices must be integers, got {T[:5]}...")
            if T.min() < 0 or T.max() >= o:                   # before any cast: 1e20 stays 1e20
                bad = np.flatnonzero((T < 0) | (T >= o))[0]
                raise ValueError(f"{self!r}: label {T[bad]} at index {bad} is out of "
                                 f"range for {o} classes (valid: 0 to {o - 1})")
            rows = np.zeros((B, o))                            # one-hot: a 1 at (b, t_b)
            rows.ravel()[np.arange(0, B * o, o) + T.astype(np.intp, copy=False)] = 1.0
            return rows
        if T.ndim == 1 and o == 1 and T.shape == (B,):
            T = T[:, None]
        if T.shape != (B, o):
            labels = f"({B},) (class indices) or " if self.accepts_labels else ""
            raise ValueError(f"{self!r}: expected targets of shape {labels}({B}, {o}) (rows), "
                             f"got shape {T.shape}")
        return finite_result(T.astype(np.float64), self, "targets")

    def __call__(self, Y, T):
        """The batch loss (1/B) sum_b l(y_b, t_b), a float; keeps Y and T."""
        Y, T = self.at(as_batch(Y, self, name="output Y"), T)
        value = float(np.add.reduce(returned(self, "value_per_sample", Y.shape[:1], Y, T))) / len(Y)
        if not np.isfinite(value):
            raise ValueError(f"{self!r}: the loss value is not finite ({value})")
        return value

    def at(self, Y, T):
        """Keep Y (B, o), already a finite float64 batch (a model's output), and T
        as rows for the derivative methods, without computing the value."""
        self.Y, self.T = Y, self.targets(T, *Y.shape)
        self._memo = {}
        self.check_output(Y)
        return self.Y, self.T

    Y = T = None                                     # the last call's, once called

    def _at(self):
        if self.Y is None:
            raise ValueError(f"{self!r}: call the loss on (Y, T) before asking for derivatives")
        return self.Y, self.T

    def backward(self):
        """Gradient of the batch loss w.r.t. Y: (B, o)."""
        Y, T = self._at()
        return finite_result(returned(self, "grad_per_sample", Y.shape, Y, T) / len(Y), self,
                             "gradient")

    def hessian(self):
        """Per-sample Hessians of the batch loss w.r.t. y_b: (B, o, o)."""
        Y, T = self._at()
        return finite_result(returned(self, "hess_per_sample", Y.shape + Y.shape[1:], Y, T) / len(Y),
                             self, "Hessian")

    def hvp(self, dY):
        """Hessian of the batch loss times dY (B, o), per sample: (B, o)."""
        Y, T = self._at()
        return finite_result(returned(self, "hvp_per_sample", Y.shape, Y, T, dY) / len(Y), self,
                             "Hessian-vector product")


class MSELoss(Loss):
    """l(y, t) = 0.5 ||y - t||^2; gradient y - t (the matching form); Hessian I.
    Targets are real rows (B, o), or (B,) for one output."""

    def value_per_sample(self, Y, T):
        return 0.5 * np.sum((Y - T) ** 2, axis=1)

    def grad_per_sample(self, Y, T):
        return Y - T

    def hess_per_sample(self, Y, T):
        return diagonal(np.ones(Y.shape))

    def hvp_per_sample(self, Y, T, dY):
        return dY


class SoftmaxCrossEntropy(Loss):
    """Softmax and cross-entropy fused, on logits z (the matching pair).

    l(z, t) = -sum_k t_k log softmax(z)_k = s lse(z) - t . z, with s = sum_k t_k
    (1 for one-hot or probability rows) and lse the log-sum-exp. Gradient
    s p - t with p = softmax(z) = exp(z - lse(z)); Hessian s (diag(p) - p p^T),
    which does not depend on t. Stable for logits of any finite size.
    Targets: class indices (B,) or rows (B, o).
    """
    accepts_labels = True

    def _exp(self, Y):
        """(zmax, E, s) of ``shifted_exp``, once per call at the kept output."""
        return self.cached("exp", lambda: shifted_exp(Y)) if Y is self.Y else shifted_exp(Y)

    def _p(self, Y):
        """p = softmax(z) = E / s per row: (B, o), from the same exp as the log-sum-exp."""
        return self.cached("p", lambda: np.divide(*self._exp(Y)[1:])) if Y is self.Y else softmax(Y)

    def at(self, Y, T):
        Y, rows = super().at(Y, T)
        self._sum = 1.0 if np.ndim(T) == 1 else rows.sum(axis=1, keepdims=True)   # labels: 1
        return Y, rows

    def _s(self, T):
        """s = sum_k t_k per sample (B, 1), or 1.0 for class indices."""
        return self._sum if T is self.T else T.sum(axis=1, keepdims=True)

    def value_per_sample(self, Y, T):
        zmax, _, s = self._exp(Y)                          # lse(z) = zmax + log s
        return np.ravel(self._s(T)) * (zmax + np.log(s))[:, 0] - np.sum(T * Y, axis=1)

    def grad_per_sample(self, Y, T):
        return self._s(T) * self._p(Y) - T

    def hess_per_sample(self, Y, T):
        P = self._p(Y)
        return np.reshape(self._s(T), (-1, 1, 1)) * (diagonal(P) - P[:, :, None] * P[:, None, :])

    def hvp_per_sample(self, Y, T, dY):
        P = self._p(Y)
        return self._s(T) * P * (dY - (P * dY) @ np.ones((P.shape[1], 1)))


class NLLLoss(Loss):
    """Negative log-likelihood on probabilities p (for example a Softmax output):
    l(p, t) = -sum_k t_k log p_k; gradient -t / p; Hessian diag(t / p^2).

    Not a matching loss for softmax: composed with Softmax it equals
    SoftmaxCrossEntropy in value but is less stable. Probabilities must be
    positive wherever the target is not zero. Targets: class indices or rows.
    """
    accepts_labels = True

    def check_output(self, Y):
        neg = np.argwhere(Y < 0)
        if neg.size:
            raise ValueError(f"{self!r}: probabilities must be >= 0, got {Y[tuple(neg[0])]} "
                             f"at index {tuple(int(i) for i in neg[0])}")
        zero = np.argwhere((Y == 0) & (self.T != 0))
        if zero.size:
            raise ValueError(f"{self!r}: probability 0 at index {tuple(int(i) for i in zero[0])} "
                             "where the target is not 0 (log 0 = -inf); use "
                             "SoftmaxCrossEntropy on logits instead")

    @staticmethod
    def _ratio(Y, T, power):
        """t / p^power where t != 0, and 0 where t = 0 (whatever p is there)."""
        return np.where(T != 0, T / np.where(T != 0, Y, 1.0) ** power, 0.0)

    def value_per_sample(self, Y, T):
        return -np.sum(np.where(T != 0, T * np.log(np.where(T != 0, Y, 1.0)), 0.0), axis=1)

    def grad_per_sample(self, Y, T):
        return -self._ratio(Y, T, 1)

    def hess_per_sample(self, Y, T):
        return diagonal(self._ratio(Y, T, 2))

    def hvp_per_sample(self, Y, T, dY):
        return self._ratio(Y, T, 2) * dY
