"""``from gradetools import ...`` in the graded tests: the comparisons live in
:mod:`grader.gradetools`."""
from grader.gradetools import (EXACT_TOL, NO_AUTODIFF, NoAutodiff, WrongAnswer, close, expect,
                               expect_choice, expect_choices, once, raises_value_error, too_big_to_form)

__all__ = ["EXACT_TOL", "NO_AUTODIFF", "NoAutodiff", "WrongAnswer", "close", "expect", "expect_choice",
           "expect_choices", "once", "raises_value_error", "too_big_to_form"]
