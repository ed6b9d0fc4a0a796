"""Plausible wrong answers of solutions/04_hessian.ipynb (see README.md)."""
NOTEBOOK = "04_hessian"

_D2 = "    d2 = -2.0 * t * (1.0 - t ** 2)                       # f''(z_i), (o,)"
_LS = "    return -np.broadcast_to(H_lse, (z.size,) + H_lse.shape).copy()   # the same for every output i"
_CXX = "        C[:, k + idx, idx] = G * ds\n"
_D2S = "        return s * (1.0 - s)\n"
_XP = "        return G[:, :, None] * np.eye(G.shape[1])     # diag(g) per sample"

WRONG = [
    ("4.1", "f' for f''", [(_D2, "    d2 = 1.0 - t ** 2")], "uses f'(z)"),
    ("4.1", "the block on every output", [("        H[i, i, :, i, :] = d2[i] * np.outer(x, x)         # the only non-zero block of output i",
                                            "        H[i, :, :, :, :] = d2[i] * np.einsum('kl,ab->kalb', np.eye(o), np.outer(x, x))")],
     "depends on row i of W only"),
    ("4.2", "the softmax Hessian", [(_LS, "    D = np.eye(z.size) - p[None, :]\n    return p[:, None, None] * D[:, :, None] * D[:, None, :] - p[:, None, None] * p[None, :, None] * D[None, :, :]")],
     "Hessian tensor of softmax"),
    ("4.2", "the sign", [(_LS, "    return np.broadcast_to(H_lse, (z.size,) + H_lse.shape).copy()")], "sign"),
    ("4.3", "one mixed entry", [(_CXX, "")], "one of the two mixed entries"),
    ("4.3", "no curvature", [("        return C\n", "        return None\n")], "curvature_xx"),
    ("4.4", "the two-point difference", [("    return (-g[0] + 8.0 * g[1] - 8.0 * g[2] + g[3]) / (12.0 * eps)",
                                           "    return (g[1] - g[2]) / (2.0 * eps)")], "eps^2 term is still there"),
    ("4.4", "a forward difference", [("    return (-g[0] + 8.0 * g[1] - 8.0 * g[2] + g[3]) / (12.0 * eps)",
                                      "    return (g[1] - np.asarray(f_grad(w), dtype=float)) / eps")], "forward difference"),
    ("4.5", "softplus's f' for f''", [(_D2S, "        return s\n")], "is f'(x)"),
    ("4.5", "GELU without u''", [("        return s * du + 0.5 * x * (-2.0 * t * s * du ** 2 + s * d2u)",
                                  "        return s * du + 0.5 * x * (-2.0 * t * s * du ** 2)")], "misses u''"),
    ("4.6", "every block None", [(_XP, "        return None")], "mixed second derivative"),
    ("4.6", "gamma on the diagonal", [(_XP, "        return np.broadcast_to(np.diag(self.params['gamma']), G.shape + G.shape[1:]).copy()")],
     "is diag(gamma)"),
]
