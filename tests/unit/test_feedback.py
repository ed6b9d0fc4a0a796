"""minigrad.feedback.diagnose names the mistake: one test per kind of wrong answer."""
import numpy as np
import pytest

from minigrad.feedback import Answer, Choice, check_exercise, diagnose

rng = np.random.default_rng(0)
W = rng.standard_normal((4, 6))
S = W @ W.T                                   # symmetric (4, 4)


def test_right_answer_is_none():
    assert diagnose(W + 1e-12, W) is None


def test_none_and_empty():
    assert "None" in diagnose(None, W)
    assert "empty" in diagnose([], W)
    assert "not an array" in diagnose({"a": 1}, W)


def test_mean_missing_names_B():
    msg = diagnose(6 * W, W, B=6)
    assert "6 times the expected" in msg and "1/B of the mean" in msg


def test_factor_one_over_B_sign_two_half():
    assert "mean taken twice" in diagnose(W / 6, W, B=6)
    assert "sign" in diagnose(-W, W)
    assert "1/2 of a square" in diagnose(2 * W, W)
    assert "half the answer" in diagnose(W / 2, W)
    assert "3 times the expected one" in diagnose(3 * W, W)


def test_transpose_and_permuted_axes():
    assert "transpose" in diagnose(W.T, W)
    A = rng.standard_normal((2, 3, 4))
    msg = diagnose(A.transpose(2, 0, 1), A)
    assert "axes permuted" in msg


def test_per_sample_instead_of_mean():
    per = rng.standard_normal((5, 4, 6))
    assert "mean over the batch (B = 5)" in diagnose(per, per.mean(0))
    assert "their sum" in diagnose(per, per.sum(0))


def test_wrong_shape_names_layout():
    msg = diagnose(np.zeros((3, 3)), W, layout="numerator layout: (outputs, inputs)")
    assert "shape (3, 3), expected (4, 6) (numerator layout" in msg


def test_reshape_only():
    assert "reshape it to (4, 6)" in diagnose(W.ravel(), W)


def test_kronecker_factors_swapped():
    A, Bm = rng.standard_normal((2, 2)), rng.standard_normal((3, 3))
    A, Bm = A @ A.T, Bm @ Bm.T
    msg = diagnose(np.kron(A, Bm), np.kron(Bm, A))
    assert "Kronecker factors swapped" in msg
    v = rng.standard_normal((2, 3))
    assert "column-major" in diagnose(v.T.ravel(), v.ravel())


def test_not_symmetric():
    U = np.triu(S)
    assert "not symmetric" in diagnose(U + np.triu(S, 1).T * 0 + 0.3 * np.triu(np.ones((4, 4)), 1), S)
    assert "symmetric part" in diagnose(S + np.triu(np.ones((4, 4)), 1) - np.tril(np.ones((4, 4)), -1), S)


def test_variant_is_named_before_anything_else():
    GN = 0.5 * S
    msg = diagnose(GN, S, variants={"is the Gauss-Newton part alone: the residual term is missing": GN})
    assert msg.startswith("your answer is the Gauss-Newton part alone")


def test_variant_equal_to_the_answer_is_not_reported():
    assert diagnose(S, S, variants={"is wrong": S}) is None


def test_non_finite():
    X = W.copy()
    X[1, 2] = np.nan
    assert "non-finite value (nan) at index [1, 2]" in diagnose(X, W)


def test_otherwise_largest_error():
    X = W.copy()
    X[2, 3] += 1.0
    assert diagnose(X, W).startswith("largest error")


def test_choice():
    assert Choice("Gauss-Newton ", "gauss-newton", "why").verdict() is None
    assert "why" in Choice("residual", "gauss-newton", "why").verdict()
    assert Choice(0.25, 0.25 + 1e-12, "").verdict() is None
    assert Choice([1, 2], [1, 2], "").verdict() is None
    assert Choice([], [1, 2], "need two").verdict()
    assert Choice(True, 1, "").verdict() is not None
    with pytest.raises(NotImplementedError):               # `...`: the answer is still to be given
        Choice(..., 1, "").verdict()
    assert "None" in Choice(None, 1, "").verdict()


def test_check_exercise_prints_the_verdict(capsys):
    assert not check_exercise("5.2", lambda: Answer(6 * W, W, B=6))
    assert not check_exercise("6.1", lambda: Choice(..., "a", "b"))
    assert check_exercise("6.1", lambda: [Answer(W, W), Choice("a", "a", "b")])
    assert not check_exercise("6.2", lambda: 1 / 0)
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("Exercise 5.2: not right yet: your answer is 6 times")
    assert out[1] == "Exercise 6.1: not implemented yet"
    assert out[2] == "Exercise 6.1: passed"
    assert out[3] == "Exercise 6.2: raised ZeroDivisionError: division by zero"


def test_zero_everywhere():
    assert "zero everywhere" in diagnose(np.zeros_like(W), W)


def test_square_transposed_per_sample():
    A = rng.standard_normal((3, 4, 4))
    assert "each matrix transposed" in diagnose(A.transpose(0, 2, 1), A)
    assert "transpose of the expected" in diagnose(S.T + np.triu(np.ones((4, 4)), 1), (S.T + np.triu(np.ones((4, 4)), 1)).T)


def test_a_number_is_a_factor_only_when_the_factor_is_named():
    assert diagnose(3.04, 1.0) == "your answer 3.04 is not the expected 1"
    assert "B = 6" in diagnose(6.0, 1.0, B=6)


def test_a_wrong_number_is_quoted_with_the_expected_one():
    message = diagnose(4183.11, 5906.61)
    assert message == "your answer 4183.11 is not the expected 5906.61"
    assert "index" not in message


def test_answers_are_numbered_from_one_and_none_is_named(capsys):
    check_exercise("8.5", lambda: [Choice("shrink", "shrink", "why"), Choice(None, 2, "two evaluations")])
    assert capsys.readouterr().out.strip() == ("Exercise 8.5: not right yet: answer 2: your answer is None "
                                               "(is a `return` missing?): two evaluations")
    assert Choice(np.float64(0.25), 0.5, "half").verdict() == "your answer 0.25 is not right: half"
