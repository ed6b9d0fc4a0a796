"""Array helpers shared by modules and losses: flatten / unflatten (the parameter
vector's layout), per-sample diagonal matrices, and a per-call cache."""
import numpy as np

__all__ = ["Cached", "diagonal", "flatten", "unflatten"]


def flatten(arrays):
    """The arrays, each flattened row-major, one after another: (sum of sizes,)."""
    return np.concatenate([np.ravel(a) for a in arrays]) if arrays else np.zeros(0)


def unflatten(v, like):
    """Split the vector v into arrays shaped like the arrays ``like`` (the inverse
    of ``flatten``)."""
    out, k = [], 0
    for P in like:
        out.append(v[k:k + P.size].reshape(P.shape))
        k += P.size
    return out


def diagonal(D, add_to=None):
    """Per-sample diagonal matrices diag(d_b) from D (B, o): (B, o, o), or D added
    to the diagonals of ``add_to`` (B, o, o) in place. The diagonal is set, never
    multiplied by an identity (inf * 0 would be NaN)."""
    M = np.zeros(D.shape + D.shape[1:]) if add_to is None else add_to
    i = np.arange(D.shape[1])
    M[:, i, i] += D
    return M


class Cached:
    """One cache for modules and losses: ``cached(key, compute)`` runs compute()
    once per call of the object; each call starts with an empty cache."""

    def cached(self, key, compute):
        memo = self.__dict__.setdefault("_memo", {})
        if key not in memo:
            memo[key] = compute()
        return memo[key]

    def _forget(self):
        self._memo = {}
