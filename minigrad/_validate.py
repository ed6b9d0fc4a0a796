"""Checks at the door: each public entry point validates its arrays here once,
so a wrong shape or a NaN is reported by name instead of deep inside numpy.

``who`` names the caller in a message: a function's name, or the module or
loss itself (its repr, worked out only when there is an error to report)."""
import math

import numpy as np

__all__ = ["as_batch", "as_vector", "first_nonfinite", "finite_result"]


def _name(who):
    return who if isinstance(who, str) else repr(who)


def first_nonfinite(A):
    """Index (tuple) of the first NaN or infinite entry of ``A``, or None."""
    bad = np.argwhere(~np.isfinite(A))
    return None if bad.size == 0 else tuple(int(i) for i in bad[0])


def _as_array(value, who, name):
    """np.asarray(value) for a numeric array, or a ValueError naming it
    (a ragged list, strings, objects)."""
    try:
        A = np.asarray(value)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{_name(who)}: {name} must be a rectangular numeric array ({exc})") from None
    if A.dtype.kind not in "fiub":
        raise ValueError(f"{_name(who)}: {name} must be a numeric array, got dtype {A.dtype}")
    return A


def as_batch(X, who, width=None, name="input"):
    """Return ``X`` as a finite float64 array of shape (B, width), or raise
    ValueError. ``who`` names the module or function in the message;
    ``width=None`` accepts any number of columns."""
    X = _as_array(X, who, name)
    if X.ndim != 2 or (width is not None and X.shape[1] != width):
        want = f"(B, {width if width is not None else 'm'})"
        raise ValueError(f"{_name(who)}: expected {name} of shape {want}, got shape {X.shape}")
    if X.shape[0] == 0:
        raise ValueError(f"{_name(who)}: {name} is an empty batch (shape {X.shape})")
    X = X.astype(np.float64, copy=False)
    finite_result(X, who, name)
    return X


def as_vector(v, n, who, name="v"):
    """Return ``v`` as a finite float64 vector (n,), one entry per parameter."""
    v = _as_array(v, who, name)
    if v.shape != (n,):
        raise ValueError(f"{_name(who)}: expected {name} of shape ({n},), one entry per parameter, "
                         f"got shape {v.shape}")
    v = v.astype(np.float64, copy=False)
    finite_result(v, who, name)
    return v


def finite_result(A, who, name="result"):
    """Return ``A`` unchanged when every entry is finite, else raise ValueError
    naming the first NaN or infinity. One sum decides for a finite array; only
    a non-finite sum (a bad entry, or a mere overflow) looks entry by entry."""
    if A.size and not math.isfinite(np.add.reduce(A, axis=None)):
        bad = first_nonfinite(A)
        if bad is not None:
            raise ValueError(f"{_name(who)}: {name} of shape {A.shape} has a non-finite value "
                             f"({A[bad]}) at index {bad}")
    return A
