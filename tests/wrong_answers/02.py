"""Plausible wrong answers of solutions/02_linear_algebra.ipynb (see README.md)."""
NOTEBOOK = "02_linear_algebra"

_F = "    return float(np.sum(A * B))"
_K = "    return (A @ x.reshape(q, s) @ B.T).reshape(p * r)"

WRONG = [
    ("2.1", "a matrix product", [(_F, "    return float(np.sum(A.reshape(len(A), -1) @ B.reshape(len(B), -1).T))")],
     "the matrix product mixes rows and columns"),
    ("2.1", "an array, not a float", [(_F, "    return np.sum(A * B, keepdims=True)")], "Python float"),
    ("2.2", "u and v swapped", [("    return U[:, :, None] * V[:, None, :]", "    return V[:, :, None] * U[:, None, :]")],
     "shape"),
    ("2.2", "the batch summed", [("    return U[:, :, None] * V[:, None, :]", "    return (U[:, :, None] * V[:, None, :]).sum(axis=0)")],
     "shape"),
    ("2.3", "x read column-major", [(_K, "    return (A @ x.reshape(s, q).T @ B.T).reshape(p * r)")], "column-major"),
    ("2.3", "the result read back column-major", [(_K, "    return (A @ x.reshape(q, s) @ B.T).T.reshape(p * r)")],
     "read the result back row by row"),
    ("2.4", "u against the last axis", [('    return np.einsum("ijk,j,k->i", H, u, v)', '    return np.einsum("ikj,j,k->i", H, u, v)')],
     "puts u on the middle axis"),
    ("2.4", "the first output only", [('    return np.einsum("ijk,j,k->i", H, u, v)', '    return np.einsum("ijk,j,k->i", H[:1], u, v)')],
     "shape"),
]
