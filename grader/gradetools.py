"""Comparisons shared by the graded tests (``from gradetools import close`` in
``tests/grading``). Every check runs in the grading process, on plain data the notebook
sent back; nothing here is visible to the notebook."""
import weakref

import numpy as np
import pytest

from grader.kernel import NotebookError
from minigrad.feedback import Choice, diagnose

__all__ = ["EXACT_TOL", "NO_AUTODIFF", "NoAutodiff", "WrongAnswer", "close", "expect",
           "expect_choice", "expect_choices", "raises_value_error", "once", "too_big_to_form"]

#: exact answers agree with the reference up to rounding
EXACT_TOL = 1e-10


def close(got, want, tol=EXACT_TOL):
    """True when ``got`` has the shape of ``want`` and every entry is within ``tol``
    (relative and absolute)."""
    got, want = np.asarray(got, dtype=float), np.asarray(want, dtype=float)
    return got.shape == want.shape and np.allclose(got, want, rtol=tol, atol=tol)


class WrongAnswer(AssertionError):
    """A graded answer is wrong; the message (``minigrad.feedback.diagnose``'s) names the
    mistake and is what the score table shows."""


def expect(got, want, variants=None, B=None, tol=EXACT_TOL, layout=None):
    """Pass when ``got`` equals ``want`` to ``tol``; else raise WrongAnswer with the same
    message a check cell prints (the comparison is :func:`minigrad.feedback.diagnose`)."""
    message = diagnose(got, want, variants=variants, B=B, tol=tol, layout=layout)
    if message:
        raise WrongAnswer(message)


def expect_choice(got, want, explain, tol=1e-8):
    """Pass when a prediction, choice or read-off number ``got`` equals ``want``
    (:class:`minigrad.feedback.Choice`); else raise WrongAnswer explaining the answer."""
    try:
        message = Choice(got, want, explain, tol).verdict()
    except NotImplementedError:
        message = "no answer given"
    if message:
        raise WrongAnswer(message)


def expect_choices(got, answers, who):
    """``got`` must be a tuple or list of ``len(answers)`` answers, each right by
    :func:`expect_choice` against ``answers[k] = (want, explain)``; the first wrong one is
    named ("answer 2: ...")."""
    if not isinstance(got, (tuple, list)) or len(got) != len(answers):
        raise WrongAnswer(f"{who} must return {len(answers)} answers, got {got!r:.80}")
    for k, (answer, (want, why)) in enumerate(zip(got, answers), 1):
        try:
            expect_choice(answer, want, why)
        except WrongAnswer as exc:
            raise WrongAnswer(f"answer {k}: {exc}") from None


def raises_value_error(call):
    """``call()`` must make the notebook raise a ValueError."""
    with pytest.raises(NotebookError) as info:
        call()
    assert "ValueError" in str(info.value)


#: Every call into the notebook runs with these names replaced by functions that raise, so an
#: answer that hands a derivation to automatic differentiation earns nothing, however it was
#: imported. Every autograd operator (grad, jacobian, hessian, elementwise_grad, make_vjp,
#: make_jvp, ...) traces through ``autograd.core.trace``, which covers them all; JAX and
#: PyTorch are listed for environments that have them (a name that does not resolve is skipped).
NO_AUTODIFF = (
    "autograd.core.trace", "autograd.tracer.trace", "autograd.core.make_vjp", "autograd.core.make_jvp",
    "jax.grad", "jax.value_and_grad", "jax.jacfwd", "jax.jacrev", "jax.hessian", "jax.vjp", "jax.jvp",
    "jax.linearize", "torch.autograd.grad", "torch.autograd.backward", "torch.Tensor.backward",
    "torch.autograd.functional.jacobian", "torch.autograd.functional.hessian",
    "torch.autograd.functional.vjp", "torch.autograd.functional.jvp", "torch.autograd.functional.hvp",
    "torch.func.grad", "torch.func.jacrev", "torch.func.jacfwd", "torch.func.hessian",
    "torch.func.vjp", "torch.func.jvp",
)


class NoAutodiff:
    """The notebook of the ``nb`` fixture, with NO_AUTODIFF forbidden in every call."""

    def __init__(self, notebook):
        self._notebook = notebook

    def call(self, name, *args, forbid=()):
        return self._notebook.call(name, *args, forbid=NO_AUTODIFF + tuple(forbid))

    def eval(self, expr, forbid=(), **variables):
        return self._notebook.eval(expr, forbid=NO_AUTODIFF + tuple(forbid), **variables)


_VERDICTS = weakref.WeakKeyDictionary()


def once(nb, check):
    """Run ``check(nb)`` once per graded notebook and repeat its verdict (its AssertionError, or
    nothing) in every later test that asks: a general or at-scale case then decides every test of
    an exercise at the cost of one run, so that no special case earns points on its own."""
    verdicts = _VERDICTS.setdefault(nb, {})
    if check not in verdicts:
        try:
            check(nb)
            verdicts[check] = None
        except AssertionError as exc:
            verdicts[check] = exc
    if verdicts[check] is not None:
        raise verdicts[check].with_traceback(None)


def too_big_to_form(call, what):
    """``call()``, where the notebook's memory limit exceeded means it formed ``what``."""
    try:
        return call()
    except NotebookError as exc:
        if "memory limit" in str(exc):
            raise WrongAnswer(f"{exc}: {what} is far larger than that; derive the answer without it") from None
        raise
