"""Checks at the door: each public entry point validates its arrays here once, and
each value a module or loss returns to the chain rule is checked where it is used
(``returned``), so an error names the culprit instead of failing deep in numpy.
``who`` names the caller: a function's name, or the module or loss (its repr,
worked out only for an error)."""
import math
import numbers

import numpy as np

__all__ = ["ShapeError", "as_batch", "as_vector", "first_nonfinite", "finite_result",
           "generator", "number", "returned"]


class ShapeError(ValueError):
    """A module or loss method returned a value of the wrong shape or type."""


def _name(who):
    return who if isinstance(who, str) else repr(who)


def first_nonfinite(A):
    """Index (tuple) of the first NaN or infinite entry of ``A``, or None."""
    bad = np.argwhere(~np.isfinite(A))
    return None if bad.size == 0 else tuple(int(i) for i in bad[0])


def _as_array(value, who, name):
    """np.asarray(value) for a real numeric array, or a ValueError naming it
    (a ragged list, strings, objects, complex numbers, a masked array)."""
    if isinstance(value, np.ma.MaskedArray):
        raise ValueError(f"{_name(who)}: {name} is a masked array; its masked entries would be "
                         "read as they are: pass value.filled(...) or drop them")
    try:
        A = np.asarray(value)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{_name(who)}: {name} must be a rectangular numeric array ({exc})") from None
    if A.dtype.kind not in "fiub":
        raise ValueError(f"{_name(who)}: {name} must be a real numeric array, got dtype {A.dtype}")
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
    return finite_result(X.astype(np.float64, copy=False), who, name)


def as_vector(v, n, who, name="v"):
    """Return ``v`` as a finite float64 vector (n,), one entry per parameter."""
    v = _as_array(v, who, name)
    if v.shape != (n,):
        raise ValueError(f"{_name(who)}: expected {name} of shape ({n},), one entry per parameter, "
                         f"got shape {v.shape}")
    return finite_result(v.astype(np.float64, copy=False), who, name)


def finite_result(A, who, name="result"):
    """Return ``A`` unchanged when every entry is finite, else raise ValueError
    naming the first NaN or infinity. One sum (of squares, a BLAS dot) decides for a
    finite array; only a non-finite sum (a bad entry, or a mere overflow) looks entry by entry."""
    if A.size and not math.isfinite(np.vdot(A, A)):
        bad = first_nonfinite(A)
        if bad is not None:
            raise ValueError(f"{_name(who)}: {name} of shape {A.shape} has a non-finite value "
                             f"({A[bad]}) at index {bad}")
    return A


def number(value, who, name, low=0, high=math.inf, integer=False, low_in=False):
    """``value`` when it is a real number (an integer if asked) in (low, high),
    or [low, high) with ``low_in``; ValueError naming it otherwise."""
    kind = numbers.Integral if integer else numbers.Real
    if isinstance(value, kind) and not isinstance(value, bool) and \
            (low <= value if low_in else low < value) and value < high:
        return value
    raise ValueError(f"{_name(who)}: {name} must be {'an integer' if integer else 'a real number'} "
                     f"in {'[' if low_in else '('}{low}, {high}), got {value!r}")


def generator(seed, who, name="rng"):
    """A numpy Generator from None, an integer seed or a Generator (ValueError otherwise)."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None or (isinstance(seed, numbers.Integral) and not isinstance(seed, bool)):
        return np.random.default_rng(seed)
    raise ValueError(f"{_name(who)}: {name} must be None, an integer seed or a numpy Generator, "
                     f"got {seed!r}")


def _fits(value, want, who):
    """Whether value is what ``want`` describes (see ``returned``); the commonest first."""
    if want.__class__ is tuple:
        return isinstance(value, np.ndarray) and value.shape == want
    if want == "params":                             # exact arrays, shaped like the parameters
        return isinstance(value, (list, tuple)) and [P.shape for P in who.parameters()] == \
            [v.shape if v.__class__ is np.ndarray else None for v in value]
    if isinstance(want, set):
        return value is None or _fits(value, (want - {None}).pop(), who)
    return isinstance(value, tuple) and len(value) == len(want) and \
        all([_fits(v, w, who) for v, w in zip(value, want)])


def _text(want, who):
    if isinstance(want, set):
        return _text((want - {None}).pop(), who) + " or None"
    if isinstance(want, list):
        return f"a tuple ({', '.join(_text(w, who) for w in want)})"
    if want == "params":
        return f"a list of arrays of shapes {[P.shape for P in who.parameters()]}, one per parameter"
    return f"an array of shape {want}"


def _describe(value):
    if isinstance(value, (list, tuple)):
        return f"{type(value).__name__}[{', '.join(_describe(v) for v in value)}]"
    return f"shape {value.shape}" if isinstance(value, np.ndarray) else type(value).__name__


def returned(who, method, want, *args):
    """who.method(*args), checked where the chain uses it. ``want``: a shape (an
    array of exactly that shape), "params" (a list of arrays shaped like the
    parameters), a set {want, None} (None, a zero block, admitted too) or a list
    [want, ...] (a tuple of values). ShapeError naming both otherwise."""
    value = getattr(who, method)(*args)
    if value.__class__ is np.ndarray and value.shape == want or _fits(value, want, who):
        return value
    raise ShapeError(f"{_name(who)}.{method} returned {_describe(value)}, expected "
                     f"{_text(want, who)}")
