"""Row and column reductions of a batch array, for the shapes minigrad meets on
its hot paths, where numpy's own reductions are slow: sums down the columns of
a (B, k) array and sums or maxima along short rows (k = a few classes).

Sums are BLAS matrix-vector products with a vector of ones and maxima are taken
on a transposed copy; the results equal numpy's up to the order of additions.
"""
import functools

import numpy as np

__all__ = ["column_sums", "row_sums", "row_max", "total"]


@functools.lru_cache(maxsize=32)
def _ones(n):
    """A shared read-only vector of n ones."""
    ones = np.ones(n)
    ones.flags.writeable = False
    return ones


def column_sums(A, out=None):
    """sum_b A[b, :] for A (B, k): (k,), as 1^T A; written into out when given."""
    return np.matmul(_ones(A.shape[0]), A, out=out)


def row_sums(A):
    """sum_j A[:, j] for A (B, k): (B, 1), as A 1."""
    return (A @ _ones(A.shape[1]))[:, None]


def row_max(A):
    """max_j A[:, j] for A (B, k): (B, 1). numpy reduces a short contiguous row
    slowly; on the transposed copy (k, B) it is k - 1 elementwise maxima."""
    return np.maximum.reduce(np.ascontiguousarray(A.T), axis=0)[:, None]


def total(A):
    """The sum of all entries of A (B, k): the row sums A 1 (one BLAS pass over
    A), then B additions. A NaN or an infinity in A makes it non-finite."""
    return np.add.reduce(A @ _ones(A.shape[1]))
