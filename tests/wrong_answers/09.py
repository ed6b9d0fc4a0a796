"""Plausible wrong answers of solutions/09_curvature_at_scale.ipynb (see README.md)."""
NOTEBOOK = "09_curvature_at_scale"

_F = '    return np.einsum("bki,bk,bkj->ij", J, v, J) / len(Z)'
_D = '    return np.einsum("bik,bij,bjk->k", J, h, J) / J.shape[0]'
_K = "    return float(np.sqrt(max(exact_sq - 2 * cross + kfac_sq, 0.0)))"
_U = "    return QS @ (rotated / (np.outer(sigma, alpha) + damping)) @ QA.T"

WRONG = [
    ("9.1", "the softmax covariance", [(_F, '    p = np.exp(Z - Z.max(axis=1, keepdims=True)); p /= p.sum(axis=1, keepdims=True)\n'
                                           '    return np.einsum("bki,bkl,blj->ij", J, p[:, :, None] * np.eye(Z.shape[1]) - p[:, :, None] * p[:, None, :], J) / len(Z)')],
     "softmax covariance"),
    ("9.1", "the mean instead of the variance", [("    v = s * (1.0 - s)                                       # variance of each label: diagonal covariance",
                                                  "    v = s")], "not by its variance"),
    ("9.1", "only a ValueError", [(_F, '    raise ValueError("not done")')], "ValueError"),
    ("9.2", "J^T J without h", [(_D, '    return np.einsum("bik,bik->k", J, J) / J.shape[0]')], "misses h_b"),
    ("9.2", "the sum over the batch", [(_D, '    return np.einsum("bik,bij,bjk->k", J, h, J)')], "1/B of the mean"),
    ("9.2", "G formed", [(_D, '    G = np.einsum("bki,bkl,blj->ij", J, h, J) / J.shape[0]\n    return np.diag(G)')],
     "the n x n matrix G"),
    ("9.3", "the squared norm", [(_K, "    return float(max(exact_sq - 2 * cross + kfac_sq, 0.0))")], "squared norm"),
    ("9.3", "returns a list", [(_K, "    return []")], "one number"),
    ("9.4", "damping on each factor", [(_U, "    return QS @ (rotated / np.outer(sigma + damping, alpha + damping)) @ QA.T")],
     "damps each factor"),
    ("9.4", "a dense solve", [(_U, "    return np.linalg.solve(np.kron(S, A) + damping * np.eye(V.size), V.ravel()).reshape(V.shape)")],
     "S kron A + lam I"),
    ("9.4", "only a ValueError", [(_U, '    raise ValueError("not done")')], "ValueError"),
    ("9.5", "K-FAC exact in the limit", [('    return False, True, "no"', '    return False, True, "yes"')], "levels off"),
    ("9.5", "the Fisher depends on the labels", [('    return False, True, "no"', '    return True, True, "no"')], "answer 1"),
]
