"""Losses L(Y, T): a batch of outputs Y (B, o) and targets T to a scalar, the
mean of the per-sample losses l(y_b, t_b).

Targets are class indices (B,) or rows (B, o); indices are one-hot encoded.
A subclass defines the per-sample value, gradient and Hessian w.r.t. y; the
methods without ``_per_sample`` are those of the batch mean (a factor 1/B).
"""
import functools

import numpy as np

from ._reduce import row_max, row_sums
from ._validate import as_batch, first_nonfinite, trusted_batch

__all__ = ["Loss", "MSELoss", "SoftmaxCrossEntropy", "NLLLoss", "logsumexp"]


def logsumexp(Z):
    """log sum_k exp(z_k) per row of Z (B, o) -> (B,), stable for |z| up to 1e308."""
    zmax = Z.max(axis=1)
    return zmax + np.log(np.sum(np.exp(Z - zmax[:, None]), axis=1))


@functools.lru_cache(maxsize=16)
def _eye(o):
    """The identity (o, o), read-only, shared: one-hot rows are taken from it."""
    eye = np.eye(o)
    eye.flags.writeable = False
    return eye


class Loss:
    """Base class. Call ``loss(Y, T)`` for the batch loss; the derivative
    methods are evaluated at the last call."""

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

    def check_output(self, Y):
        """Extra checks on Y (for example, probabilities); raise ValueError."""

    # ------------------------------------------------------------ public
    def targets(self, T, B, o):
        """Return T as float rows (B, o), one-hot encoding class indices."""
        who = self                          # formatted as repr(self), only in an error
        T = np.asarray(T)
        if T.dtype.kind not in "fiub":
            raise ValueError(f"{who}: targets must be numeric, got dtype {T.dtype}")
        if T.ndim == 1:
            if T.shape[0] != B:
                raise ValueError(f"{who}: expected targets of shape ({B},) (class indices) "
                                 f"or ({B}, {o}) (rows), got shape {T.shape}")
            if T.dtype.kind == "f" and (not np.all(np.isfinite(T)) or np.any(T != np.round(T))):
                raise ValueError(f"{who}: class indices must be integers, got {T[:5]}...")
            labels = T.astype(np.int64, copy=False)
            if np.minimum.reduce(labels) >= 0:          # take raises for a label >= o (and wraps < 0)
                try:
                    return _eye(o).take(labels, axis=0)          # one-hot rows (B, o)
                except IndexError:
                    pass
            bad = np.flatnonzero((labels < 0) | (labels >= o))[0]
            raise ValueError(f"{who}: label {labels[bad]} at index {bad} is out of "
                             f"range for {o} classes (valid: 0 to {o - 1})")
        if T.ndim != 2 or T.shape != (B, o):
            raise ValueError(f"{who}: expected targets of shape ({B},) (class indices) "
                             f"or ({B}, {o}) (rows), got shape {T.shape}")
        T = T.astype(np.float64)
        bad = first_nonfinite(T)
        if bad is not None:
            raise ValueError(f"{who}: targets have a non-finite value at index {bad}")
        return T

    def __call__(self, Y, T):
        """The batch loss (1/B) sum_b l(y_b, t_b), a float; caches Y and T."""
        self._prepare(Y, T)
        return float(np.mean(self.value_per_sample(self.Y, self.T)))

    def _prepare(self, Y, T, checked=False):
        """Everything ``__call__`` does but the value: check Y (B, o) and T,
        cache them for the derivatives. ``minigrad.derivatives`` calls this
        alone for minigrad's own losses, whose value raises nothing, with
        ``checked=True`` when Y is already known to be a finite float64 batch."""
        if not checked and not trusted_batch(Y, None):
            Y = as_batch(Y, repr(self), name="output Y")
        self.Y = Y
        self._memo = {}                     # values shared by the derivatives of this call
        self.T = self.targets(T, *Y.shape)
        if np.asarray(T).ndim == 1:         # one-hot rows: s = sum_k t_k = 1 per sample
            self._memo["onehot"] = self.T
        self.check_output(Y)

    def _cached(self):
        if getattr(self, "Y", None) is None:
            raise ValueError(f"{self!r}: call the loss on (Y, T) before asking for derivatives")
        return self.Y, self.T

    def backward(self):
        """Gradient of the batch loss w.r.t. Y: (B, o)."""
        Y, T = self._cached()
        return self.grad_per_sample(Y, T) / Y.shape[0]

    def hessian(self):
        """Per-sample Hessians of the batch loss w.r.t. y_b: (B, o, o)."""
        Y, T = self._cached()
        return self.hess_per_sample(Y, T) / Y.shape[0]

    def hvp(self, dY):
        """Hessian of the batch loss times dY (B, o), per sample: (B, o)."""
        return np.einsum("bij,bj->bi", self.hessian(), dY)


class MSELoss(Loss):
    """l(y, t) = 0.5 ||y - t||^2; gradient y - t (the matching form); Hessian I."""

    def value_per_sample(self, Y, T):
        return 0.5 * np.sum((Y - T) ** 2, axis=1)

    def grad_per_sample(self, Y, T):
        return Y - T

    def hess_per_sample(self, Y, T):
        return np.broadcast_to(np.eye(Y.shape[1]), (Y.shape[0],) + (Y.shape[1],) * 2).copy()

    def hvp(self, dY):
        Y, _ = self._cached()
        return dY / Y.shape[0]


class SoftmaxCrossEntropy(Loss):
    """Softmax and cross-entropy fused, on logits z (the matching pair).

    l(z, t) = -sum_k t_k log softmax(z)_k = s * lse(z) - t . z, with s = sum_k t_k
    (1 for one-hot or probability rows) and lse the log-sum-exp.
    Gradient s p - t (p = softmax(z)); Hessian s (diag(p) - p p^T), which does not
    depend on t. Stable for logits of any finite size.
    """

    def _parts(self, Y):
        """(zmax (B, 1), S (B, 1), p (B, o)) with S = sum_k exp(z_k - zmax) and
        p = softmax(z), from one exp, memoized for the Y of the current call;
        None for any other Y."""
        memo = getattr(self, "_memo", {})
        if memo.get("Y") is Y:
            return memo["parts"]
        if getattr(self, "Y", None) is not Y:
            return None
        zmax = row_max(Y)
        E = np.exp(Y - zmax)
        S = row_sums(E)
        E /= S                              # E is now p
        memo.update(Y=Y, parts=(zmax, S, E))
        return memo["parts"]

    def _lse(self, Y):
        """log-sum-exp per row (B,): zmax + log S, from the memo when it has Y."""
        parts = self._parts(Y)
        if parts is None:
            return logsumexp(Y)
        zmax, S, _ = parts
        return (zmax + np.log(S))[:, 0]

    def _s(self, T):
        """s = sum_k t_k per sample (B, 1): computed once per call."""
        memo = getattr(self, "_memo", {})
        if memo.get("T") is T:
            return memo["s"]
        s = T.sum(axis=1, keepdims=True)
        if getattr(self, "T", None) is T:
            memo.update(T=T, s=s)
        return s

    def value_per_sample(self, Y, T):
        return self._s(T)[:, 0] * self._lse(Y) - np.sum(T * Y, axis=1)

    def _p(self, Y):
        """p = softmax(z) per row: (B, o). For the Y of the current call it
        comes from the memo (see ``_parts``); otherwise exp(z - lse)."""
        parts = self._parts(Y)
        if parts is None:
            return np.exp(Y - logsumexp(Y)[:, None])
        return parts[2]

    def grad_per_sample(self, Y, T):
        if getattr(self, "_memo", {}).get("onehot") is T:
            return self._p(Y) - T           # s = 1 for one-hot rows: p - t
        return self._s(T) * self._p(Y) - T

    def backward(self):
        if type(self).grad_per_sample is not SoftmaxCrossEntropy.grad_per_sample:
            return super().backward()
        Y, T = self._cached()
        G = self.grad_per_sample(Y, T)      # a fresh array: divided in place
        G /= Y.shape[0]
        return G

    def hess_per_sample(self, Y, T):
        P = self._p(Y)
        s = T.sum(axis=1)[:, None, None]
        return s * (P[:, :, None] * np.eye(Y.shape[1]) - P[:, :, None] * P[:, None, :])

    def hvp(self, dY):
        Y, T = self._cached()
        P = self._p(Y)
        s = self._s(T)
        return s * P * (dY - np.sum(P * dY, axis=1, keepdims=True)) / Y.shape[0]


class NLLLoss(Loss):
    """Negative log-likelihood on probabilities p (for example a Softmax output):
    l(p, t) = -sum_k t_k log p_k; gradient -t / p; Hessian diag(t / p^2).

    Not a matching loss for softmax: composed with Softmax it equals
    SoftmaxCrossEntropy in value but is less stable. Probabilities must be
    positive wherever the target is not zero.
    """

    def check_output(self, Y):
        who = repr(self)
        neg = np.argwhere(Y < 0)
        if neg.size:
            raise ValueError(f"{who}: probabilities must be >= 0, got {Y[tuple(neg[0])]} "
                             f"at index {tuple(int(i) for i in neg[0])}")
        zero = np.argwhere((Y == 0) & (self.T != 0))
        if zero.size:
            raise ValueError(f"{who}: probability 0 at index {tuple(int(i) for i in zero[0])} "
                             "where the target is not 0 (log 0 = -inf); use "
                             "SoftmaxCrossEntropy on logits instead")

    def value_per_sample(self, Y, T):
        return -np.sum(np.where(T != 0, T * np.log(np.where(T != 0, Y, 1.0)), 0.0), axis=1)

    def grad_per_sample(self, Y, T):
        return np.where(T != 0, -T / np.where(T != 0, Y, 1.0), 0.0)

    def hess_per_sample(self, Y, T):
        d = np.where(T != 0, T / np.where(T != 0, Y, 1.0) ** 2, 0.0)
        return d[:, :, None] * np.eye(Y.shape[1])
