"""Plausible wrong answers of solutions/02_linear_algebra.ipynb (see README.md)."""
NOTEBOOK = "02_linear_algebra"

_F = "    return float(np.sum((A.T @ A) * (B @ B.T)))       # <A^T A, B B^T>_F, two q x q matrices"
_K = "    return (A @ x.reshape(q, s) @ B.T).reshape(p * r)"

WRONG = [
    ("2.1", "the product formed", [(_F, "    return float(np.linalg.norm(A @ B) ** 2)")], "memory limit"),
    ("2.1", "the submultiplicative bound", [(_F, "    return float(np.sum(A * A) * np.sum(B * B))")], "submultiplicative"),
    ("2.1", "the norm, not its square", [(_F, "    return float(np.sqrt(np.sum((A.T @ A) * (B @ B.T))))")], "not its square"),
    ("2.1", "an array, not a number", [(_F, "    return np.sum((A.T @ A) * (B @ B.T), keepdims=True)")], "one number"),
    ("2.2", "the outer products formed", [("    return (U @ U.T) * (V @ V.T)                          # <u u'> <v v'>, entry by entry",
                                            "    R = (U[:, :, None] * V[:, None, :]).reshape(len(U), -1)\n    return R @ R.T")],
     "memory limit"),
    ("2.2", "a matrix product", [("    return (U @ U.T) * (V @ V.T)                          # <u u'> <v v'>, entry by entry",
                                  "    return (U @ U.T) @ (V @ V.T)")], "as matrices"),
    ("2.2", "a sum", [("    return (U @ U.T) * (V @ V.T)                          # <u u'> <v v'>, entry by entry",
                       "    return U @ U.T + V @ V.T")], "is a product"),
    ("2.3", "x read column-major", [(_K, "    return (A @ x.reshape(s, q).T @ B.T).reshape(p * r)")], "column-major"),
    ("2.3", "the result read back column-major", [(_K, "    return (A @ x.reshape(q, s) @ B.T).T.reshape(p * r)")],
     "read the result back row by row"),
    ("2.4", "H[u, v] alone", [('    return np.einsum("ijk,j,k->i", H, u, v) + np.einsum("ijk,j,k->i", H, v, u)     # H[u, v] + H[v, u]',
                               '    return np.einsum("ijk,j,k->i", H, u, v)')], "delta appears on both axes"),
    ("2.4", "2 H[u, v]", [('    return np.einsum("ijk,j,k->i", H, u, v) + np.einsum("ijk,j,k->i", H, v, u)     # H[u, v] + H[v, u]',
                           '    return 2 * np.einsum("ijk,j,k->i", H, u, v)')], "right only when every H_i is symmetric"),
]
