"""Immediate feedback for the exercise notebooks' check cells.

A check cell never raises, so an unsolved notebook runs to the end::

    check_exercise("3.1", lambda: (linear_weight_jacobian(W, x), reference))

prints one line: not implemented yet, passed, or the largest error and where.
The printed text does not depend on rounding noise, so stored outputs reproduce.
"""
import numpy as np

from .check import CheckReport, compare

__all__ = ["check_exercise", "EXERCISE_TOL"]

#: tolerance of a check cell: the answer is exact up to rounding
EXERCISE_TOL = 1e-8


def check_exercise(exercise, compute, tol=EXERCISE_TOL):
    """Run ``compute()`` and print how exercise ``exercise`` stands.

    ``compute`` returns (got, expected) arrays, a list of such pairs, a bool,
    or a CheckReport. Returns True when the exercise passes.
    """
    head = f"Exercise {exercise}:"
    try:
        result = compute()
    except NotImplementedError:
        print(f"{head} not implemented yet")
        return False
    except Exception as exc:  # the learner's code raised: report, do not stop the notebook
        print(f"{head} raised {type(exc).__name__}: {exc}")
        return False
    if isinstance(result, CheckReport):
        if result.ok:
            print(f"{head} passed (every derivative of {result.subject} within tolerance)")
            return True
        print(f"{head} not right yet\n{result}")
        return False
    if isinstance(result, (bool, np.bool_)):
        print(f"{head} {'passed' if result else 'not right yet'}")
        return bool(result)
    pairs = result if isinstance(result, list) else [result]
    for k, (got, want) in enumerate(pairs):
        got, want = np.asarray(got), np.asarray(want)
        c = compare(f"answer {k}" if len(pairs) > 1 else "answer", got, want, tol, "reference")
        if c.missing:
            print(f"{head} not right yet: {c.missing}")
            return False
        if not c.ok:
            print(f"{head} not right yet: largest error {c.max_error:.3g} at index "
                  f"{list(c.where)}: got {c.got:.6g}, expected {c.want:.6g}")
            return False
    print(f"{head} passed (largest error below {tol:g})")
    return True
