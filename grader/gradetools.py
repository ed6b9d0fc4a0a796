"""Comparisons shared by the graded tests (``from gradetools import close`` in
``tests/grading``). Every check runs in the grading process, on plain data the notebook
sent back; nothing here is visible to the notebook."""
import numpy as np
import pytest

from grader.kernel import NotebookError

__all__ = ["EXACT_TOL", "close", "raises_value_error"]

#: exact answers agree with the reference up to rounding
EXACT_TOL = 1e-10


def close(got, want, tol=EXACT_TOL):
    """True when ``got`` has the shape of ``want`` and every entry is within ``tol``
    (relative and absolute)."""
    got, want = np.asarray(got, dtype=float), np.asarray(want, dtype=float)
    return got.shape == want.shape and np.allclose(got, want, rtol=tol, atol=tol)


def raises_value_error(call):
    """``call()`` must make the notebook raise a ValueError."""
    with pytest.raises(NotebookError) as info:
        call()
    assert "ValueError" in str(info.value)
