"""Checks at the door: every public entry point validates its arrays here, so a
wrong shape or a NaN is reported by name instead of deep inside numpy."""
import numpy as np

__all__ = ["as_batch", "first_nonfinite"]


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
