"""Checks at the door: every public entry point validates its arrays here, so a
wrong shape or a NaN is reported by name instead of deep inside numpy."""
import math

import numpy as np

from ._reduce import total

__all__ = ["as_batch", "first_nonfinite", "trusted_batch"]


def first_nonfinite(A):
    """Index (tuple) of the first NaN or infinite entry of ``A``, or None."""
    bad = np.argwhere(~np.isfinite(A))
    return None if bad.size == 0 else tuple(int(i) for i in bad[0])


def as_batch(X, who, width=None, name="input"):
    """Return ``X`` as a float64 array of shape (B, width), or raise ValueError.

    ``who`` names the module or function in the message; ``width=None`` accepts
    any number of columns.
    """
    X = np.asarray(X)
    want = f"(B, {width if width is not None else 'm'})"
    if X.dtype.kind not in "fiub":
        raise ValueError(f"{who}: {name} must be a numeric array, got dtype {X.dtype}")
    if X.ndim != 2 or (width is not None and X.shape[1] != width):
        raise ValueError(f"{who}: expected {name} of shape {want}, got shape {X.shape}")
    if X.shape[0] == 0:
        raise ValueError(f"{who}: {name} is an empty batch (shape {X.shape})")
    X = X.astype(np.float64, copy=False)
    bad = first_nonfinite(X)
    if bad is not None:
        raise ValueError(f"{who}: {name} of shape {X.shape} has a non-finite value "
                         f"({X[bad]}) at index {bad}")
    return X


def trusted_batch(X, width):
    """True when X is already a finite float64 (B, width) array, so the full
    check (and its error messages) in ``as_batch`` can be skipped: one cheap
    pass instead of several on the hot path of every derivative."""
    # a NaN or inf makes the sum non-finite; a sum that merely overflows sends
    # a finite X through the full check, which then accepts it
    return (type(X) is np.ndarray and X.dtype == np.float64 and X.ndim == 2
            and X.shape[0] > 0 and (width is None or X.shape[1] == width)
            and math.isfinite(total(X)))
