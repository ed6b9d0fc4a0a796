"""minigrad._reduce: the BLAS / transposed-copy reductions equal numpy's."""
import numpy as np
import pytest

from minigrad._reduce import column_sums, row_max, row_sums, total

rng = np.random.default_rng(0)
SHAPES = [(1, 1), (7, 3), (256, 10), (5, 200)]


@pytest.mark.parametrize("shape", SHAPES)
def test_column_sums_equal_numpy(shape):
    A = rng.standard_normal(shape)
    np.testing.assert_allclose(column_sums(A), A.sum(axis=0), rtol=1e-13, atol=1e-13)


def test_column_sums_write_into_out():
    A, out = rng.standard_normal((9, 4)), np.zeros(10)
    column_sums(A, out=out[3:7])
    np.testing.assert_allclose(out[3:7], A.sum(axis=0), rtol=1e-13)
    assert not out[:3].any() and not out[7:].any()


@pytest.mark.parametrize("shape", SHAPES)
def test_row_sums_equal_numpy(shape):
    A = rng.standard_normal(shape)
    np.testing.assert_allclose(row_sums(A), A.sum(axis=1, keepdims=True), rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("shape", SHAPES)
def test_row_max_is_exactly_numpys(shape):
    A = 1e4 * rng.standard_normal(shape)
    assert np.array_equal(row_max(A), A.max(axis=1, keepdims=True))


def test_row_max_of_a_non_contiguous_view():
    A = rng.standard_normal((6, 8))[::2, 1::3]
    assert np.array_equal(row_max(A), A.max(axis=1, keepdims=True))


def test_nan_propagates_like_numpy():
    A = rng.standard_normal((4, 3))
    A[2, 1] = np.nan
    assert np.isnan(row_max(A)[2, 0]) and np.isnan(row_sums(A)[2, 0])
    assert np.isnan(column_sums(A)[1])
    assert np.isfinite(np.delete(row_max(A), 2)).all()


@pytest.mark.parametrize("shape", SHAPES + [(3, 0)])
def test_total_equals_numpy(shape):
    A = rng.standard_normal(shape)
    assert total(A) == pytest.approx(A.sum(), rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_total_is_not_finite_when_an_entry_is_not(bad):
    A = np.zeros((5, 4))
    A[3, 2] = bad
    assert not np.isfinite(total(A))
