"""``from gradetools import ...`` in the graded tests: the comparisons live in
:mod:`grader.gradetools`."""
from grader.gradetools import (EXACT_TOL, NO_AUTODIFF, NoAutodiff, WrongAnswer, close, expect,
                               expect_choice, expect_choices, raises_value_error)

__all__ = ["EXACT_TOL", "NO_AUTODIFF", "NoAutodiff", "WrongAnswer", "close", "expect", "expect_choice",
           "expect_choices", "raises_value_error"]
