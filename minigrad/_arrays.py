"""Array helpers shared by modules and losses: flatten / unflatten (the parameter
vector's layout), per-sample diagonal matrices, and a per-call cache."""
import numpy as np

__all__ = ["Cached", "diagonal", "flatten", "unflatten"]


def flatten(arrays):
    """The arrays flattened row-major, one after another: (sum of sizes,)."""
    return np.concatenate(arrays, axis=None) if len(arrays) else np.zeros(0)


def unflatten(v, like):
    """v split into arrays shaped like those of the list ``like`` (the inverse of flatten)."""
    k = 0                                            # where the next array starts in v
    return [v[k:(k := k + P.size)].reshape(P.shape) for P in like]


def diagonal(D, add_to=None):
    """diag(d_b) per sample from D (B, o): (B, o, o), or D added in place to the
    diagonals of ``add_to`` (B, o, o); never a product with I (inf * 0 is NaN)."""
    M = np.zeros(D.shape + D.shape[1:]) if add_to is None else add_to
    i = np.arange(D.shape[1])
    M[:, i, i] += D
    return M


class Cached:
    """``cached(key, compute)`` runs compute() once per call of the module or loss."""

    def cached(self, key, compute):
        memo = self.__dict__.setdefault("_memo", {})
        if key not in memo:
            memo[key] = compute()
        return memo[key]                             # reset by ``self._memo = {}``
