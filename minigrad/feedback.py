"""Feedback that names the mistake: one comparison for the exercise notebooks'
check cells and for the graded tests.

``diagnose(got, want)`` returns None when ``got`` is right and otherwise a
sentence that says how it relates to ``want``, trying in this order:

1. nothing or an empty answer;
2. one of the exercise's known wrong answers (``variants``, computed from the
   same inputs by the check: "the Gauss-Newton part alone", "per sample instead
   of the mean", ...);
3. a wrong shape: the per-sample answers instead of their mean or sum, axes
   transposed or permuted (named), else the expected shape and the layout rule;
4. a non-finite entry;
5. zero everywhere;
6. a constant factor c (least squares, c = <got, want> / <want, want>), named
   when it is B, 1/B, 2, 1/2 or -1;
7. axes of equal length permuted (a transpose), or row-major against
   column-major order over a pair of indices (the Kronecker factors swapped);
8. a non-symmetric answer where the answer is symmetric;
9. otherwise the largest error and where (for one number: both numbers).

A check cell never raises, so an unsolved notebook runs to the end::

    check_exercise("5.2", lambda: Answer(G, G_ref, variants={...}, B=6))

prints one line: ``not implemented yet``, ``passed``, or what is wrong.
"""
from dataclasses import dataclass
from itertools import permutations

import numpy as np

from .check import CheckReport

__all__ = ["Answer", "Choice", "check_exercise", "diagnose", "judge", "EXERCISE_TOL"]

#: tolerance of a check cell: the answer is exact up to rounding
EXERCISE_TOL = 1e-8
#: a least-squares factor c explains the answer when the residual is this small, relatively
FACTOR_FIT = 1e-6


# ------------------------------------------------------------------ comparison
def _errors(got, want):
    """Entrywise |got - want| / max(1, |want|), NaN counted as infinite."""
    err = np.abs(got - want) / np.maximum(1.0, np.abs(want))
    return np.where(np.isnan(err), np.inf, err)


def _close(got, want, tol):
    return got.shape == want.shape and (got.size == 0 or float(_errors(got, want).max()) <= tol)


def _as_float_array(x):
    try:
        return np.asarray(x, dtype=float)
    except (TypeError, ValueError):
        return None


def _index(idx):
    return "[" + ", ".join(str(int(i)) for i in idx) + "]"


def _shape_message(g, w, B, tol, layout):
    """Why an answer of the wrong shape is wrong."""
    if g.ndim == w.ndim + 1 and g.shape[1:] == w.shape and g.shape[0] > 1:
        n = g.shape[0]
        if _close(g.mean(axis=0), w, tol):
            return (f"your answer has shape {g.shape}: one result per sample; the expected "
                    f"{w.shape} is their mean over the batch (B = {n})")
        if _close(g.sum(axis=0), w, tol):
            return (f"your answer has shape {g.shape}: one result per sample; the expected "
                    f"{w.shape} is their sum")
    if g.ndim == w.ndim and sorted(g.shape) == sorted(w.shape) and g.ndim >= 2:
        for p in permutations(range(g.ndim)):
            if p != tuple(range(g.ndim)) and _close(g.transpose(p), w, tol):
                if g.ndim == 2:
                    return (f"your answer is the transpose of the expected one (shape {g.shape}, "
                            f"expected {w.shape})")
                moved = ", ".join(f"axis {p[k]} of yours is axis {k}" for k in range(g.ndim) if p[k] != k)
                return (f"your answer has the right entries with the axes permuted ({moved} of the "
                        f"expected shape {w.shape})")
    if g.size == w.size and _close(g.reshape(w.shape), w, tol):
        return (f"your answer has the right entries in the right order but shape {g.shape}; "
                f"reshape it to {w.shape}")
    rule = f" ({layout})" if layout else ""
    return f"your answer has shape {g.shape}, expected {w.shape}{rule}"


def _factor_name(c, B):
    """Words for a constant factor c, or ''."""
    def near(x):
        return abs(c - x) <= 1e-6 * max(1.0, abs(x))
    if B is not None and B > 2 and near(B):
        return f": B = {B} here; is the 1/B of the mean missing (a sum over the batch)?"
    if B is not None and B > 2 and near(1.0 / B):
        return f": B = {B} here; is the mean taken twice, or a sum expected?"
    if B is not None and B > 2 and near(-B):
        return f": minus B (B = {B}); a sign and the 1/B of the mean?"
    named = {-1.0: ": the sign is wrong (a minus sign missing or extra?)",
             2.0: ": twice the answer (the 1/2 of a square forgotten, or a symmetric term counted twice?)",
             0.5: ": half the answer (the 2 from differentiating a square, or one of two symmetric terms missing?)",
             -2.0: ": a sign and a factor 2", -0.5: ": a sign and a factor 1/2"}
    for x, words in named.items():
        if near(x):
            return words
    return ""


def _factor_message(g, w, B):
    ww = float(np.vdot(w, w))
    if ww == 0.0:
        return None
    c = float(np.vdot(g, w)) / ww
    resid = np.linalg.norm(g - c * w)
    if c == 0.0 or resid > FACTOR_FIT * np.linalg.norm(g):
        return None
    name = _factor_name(c, B)
    if w.size == 1 and not name:
        return None                   # any number is some multiple of another: only a named factor says something
    return f"your answer is {c:.3g} times the expected one{name}"


def _same_shape_permutation(g, w, tol):
    """Axes permuted among axes of equal length (a per-sample matrix transposed, say)."""
    if g.ndim < 2 or g.ndim > 4:
        return None
    for p in permutations(range(g.ndim)):
        if p != tuple(range(g.ndim)) and g.transpose(p).shape == w.shape and _close(g.transpose(p), w, tol):
            swapped = [k for k in range(g.ndim) if p[k] != k]
            if g.ndim == 2:
                return "your answer is the transpose of the expected one"
            if swapped == [g.ndim - 2, g.ndim - 1]:
                return ("your answer has each matrix transposed (its last two axes swapped): rows are "
                        "outputs, columns inputs (numerator layout)")
            return f"your answer has the right entries with axes {swapped} permuted"
    return None


def _shuffle(p, q):
    """Index map of a length p*q axis read column-major: entry a*q + b -> b*p + a."""
    return np.arange(p * q).reshape(p, q).T.ravel()


def _kron_message(g, w, tol):
    """Row- against column-major order over a pair of indices on one or both axes."""
    if g.ndim not in (1, 2) or g.size > 1_000_000:
        return None
    axes = [0] if g.ndim == 1 else [0, 1]
    for axis in axes:
        n = g.shape[axis]
        for p in range(2, n // 2 + 1):
            if n % p:
                continue
            q, perm = n // p, _shuffle(p, n // p)
            rows = np.take(g, perm, axis=axis)
            hits = [_close(rows, w, tol)]
            if g.ndim == 2 and axis == 0 and g.shape[1] == n:
                hits.append(_close(rows[:, perm], w, tol))
            if any(hits):
                return (f"your answer has the right entries in another order: an index pair "
                        f"({p} x {q}) is read column-major where the course reads it row-major; "
                        f"are the Kronecker factors swapped (A kron B instead of B kron A)?")
    return None


def _symmetry_message(g, w, tol):
    if g.ndim < 2 or g.shape[-1] != g.shape[-2]:
        return None
    wt, gt = np.swapaxes(w, -1, -2), np.swapaxes(g, -1, -2)
    if not _close(w, wt, tol) or _close(g, gt, tol):
        return None
    if _close(0.5 * (g + gt), w, tol):
        return ("your answer is not symmetric, but its symmetric part (A + A^T)/2 is right: "
                "is one term missing its transpose?")
    return "your answer is not symmetric, but the expected one is"


def diagnose(got, want, variants=None, B=None, tol=EXERCISE_TOL, layout=None):
    """None when ``got`` equals ``want`` to ``tol`` (entrywise, relative to
    max(1, |want|)); else a sentence naming how it differs.

    variants: dict {message: array}, wrong answers computed from the same
    inputs; a match is reported as "your answer <message>". B: the batch size,
    so that a factor B or 1/B is named. layout: words on the shape rule, shown
    with a wrong shape (e.g. "numerator layout: (outputs, inputs)").
    """
    if got is None:
        return "your answer is None (is a `return` missing?)"
    w = np.asarray(want, dtype=float)
    g = _as_float_array(got)
    if g is None:
        return f"your answer is a {type(got).__name__} that is not an array of numbers"
    if g.size == 0 and w.size != 0:
        return f"your answer is empty (shape {g.shape}); expected shape {w.shape}"
    if g.shape == w.shape and np.all(np.isfinite(g)) and _close(g, w, tol):
        return None
    for message, v in (variants or {}).items():
        v = _as_float_array(v)
        if v is not None and v.shape == g.shape and _close(g, v, tol) and not _close(v, w, tol):
            return f"your answer {message}"
    if g.shape != w.shape:
        return _shape_message(g, w, B, tol, layout)
    bad = ~np.isfinite(g)
    if bad.any():
        idx = np.argwhere(bad)[0]
        return f"your answer has a non-finite value ({g[tuple(idx)]}) at index {_index(idx)}"
    if not g.any():
        return "your answer is zero everywhere, and the expected one is not"
    for message in (_factor_message(g, w, B), _same_shape_permutation(g, w, tol), _kron_message(g, w, tol),
                    _symmetry_message(g, w, tol)):
        if message:
            return message
    err = _errors(g, w)
    if g.ndim == 0:
        return f"your answer {float(g):.6g} is not the expected {float(w):.6g}"
    where = np.unravel_index(int(np.argmax(err)), err.shape)
    return (f"largest error {float(err[where]):.3g} at index {_index(where)}: "
            f"got {float(g[where]):.6g}, expected {float(w[where]):.6g}")


# ------------------------------------------------------------------ what a check compares
@dataclass
class Answer:
    """One array answer to compare: ``diagnose(got, want, variants, B, tol, layout)``.
    ``name`` labels it when a check compares several."""
    got: object
    want: object
    variants: dict = None
    B: int = None
    tol: float = None
    layout: str = None
    name: str = None

    def verdict(self, tol=EXERCISE_TOL):
        return diagnose(self.got, self.want, self.variants, self.B,
                        tol if self.tol is None else self.tol, self.layout)


def _same_choice(got, want, tol):
    if isinstance(want, str):
        return isinstance(got, str) and got.strip().lower() == want.strip().lower()
    if isinstance(want, (bool, np.bool_)):
        return isinstance(got, (bool, np.bool_)) and bool(got) == bool(want)
    if isinstance(want, (list, tuple)):
        return (isinstance(got, (list, tuple, np.ndarray)) and len(got) == len(want)
                and all(_same_choice(a, b, tol) for a, b in zip(got, want)))
    if isinstance(got, (bool, np.bool_, str)) or got is None:
        return False
    try:
        g, w = float(got), float(want)
    except (TypeError, ValueError):
        return False
    return abs(g - w) <= tol * max(1.0, abs(w))


@dataclass
class Choice:
    """A prediction, a choice or a read-off number: right when ``got`` equals
    ``want`` (strings without case or surrounding blanks, numbers to ``tol``
    relative, lists entry by entry). ``explain`` says why the right answer is
    right; it is shown after a wrong one."""
    got: object
    want: object
    explain: str
    tol: float = 1e-8

    def verdict(self, tol=None):
        if self.got is Ellipsis:
            raise NotImplementedError("no answer given yet")
        if self.got is None:
            return f"your answer is None (is a `return` missing?): {self.explain}"
        if _same_choice(self.got, self.want, self.tol):
            return None
        return f"your answer {_plain(self.got)!r} is not right: {self.explain}"


def _plain(got):
    """A numpy scalar as the Python number it holds (np.float64(0.2) reads 0.2)."""
    return got.item() if isinstance(got, np.generic) else got


def judge(answer, tol=EXERCISE_TOL):
    """The verdict (None or a message) of an Answer, a Choice or a (got, want) pair."""
    if isinstance(answer, (Answer, Choice)):
        return answer.verdict(tol) if isinstance(answer, Answer) else answer.verdict()
    got, want = answer
    return diagnose(got, want, tol=tol)


def check_exercise(exercise, compute, tol=EXERCISE_TOL):
    """Run ``compute()`` and print one line on how exercise ``exercise`` stands.

    ``compute`` returns an Answer, a Choice, a (got, want) pair, a list of
    these, a bool or a CheckReport. Returns True when the exercise passes; never
    raises (NotImplementedError reads "not implemented yet").
    """
    head = f"Exercise {exercise}:"
    try:
        result = compute()
        if isinstance(result, CheckReport):
            if result.ok:
                print(f"{head} passed (every derivative of {result.subject} within tolerance)")
                return True
            print(f"{head} not right yet\n{result}")
            return False
        if isinstance(result, (bool, np.bool_)):
            print(f"{head} {'passed' if result else 'not right yet'}")
            return bool(result)
        items = result if isinstance(result, list) else [result]
        for k, item in enumerate(items, 1):             # numbered from 1, as the questions are
            message = judge(item, tol)
            if message:
                label = getattr(item, "name", None) or (f"answer {k}" if len(items) > 1 else "")
                print(f"{head} not right yet: {label + ': ' if label else ''}{message}")
                return False
    except NotImplementedError:
        print(f"{head} not implemented yet")
        return False
    except Exception as exc:  # noqa: BLE001 -- the learner's code raised: report, do not stop
        print(f"{head} raised {type(exc).__name__}: {exc}")
        return False
    print(f"{head} passed")
    return True
