"""Plausible wrong answers of solutions/03_jacobian.ipynb (see README.md)."""
NOTEBOOK = "03_jacobian"

_DF = "        return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))"

WRONG = [
    ("3.1", "the decoder's path only", [("    return decoder + encoder", "    return decoder")], "only the path through the decoder"),
    ("3.1", "the code's path only", [("    return decoder + encoder", "    return encoder")], "only the path through the code"),
    ("3.1", "the indices of V swapped", [("    return decoder + encoder", "    return (decoder + encoder).transpose(0, 2, 1)")],
     "axes"),
    ("3.3", "one product-rule term dropped", [("        return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t ** 2) * du",
                                               "        return 0.5 * (1.0 + t)")], "x (1 - tanh^2 u) u' / 2"),
    ("3.2", "the naive softplus", [("        return np.maximum(x, 0.0) + np.log1p(np.exp(-np.abs(x)))",
                                     "        return np.log(1.0 + np.exp(x))")], "Softplus: numpy warns"),
    ("3.2", "a sigmoid that overflows", [("        e = np.exp(-np.abs(x))                      # in (0, 1]: never overflows\n"
                                          "        return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))",
                                          "        return 1.0 / (1.0 + np.exp(-x))")], "numpy warns"),
    ("3.2", "f instead of f'", [(_DF, "        return self.f(x)")], "is f itself"),
    ("3.3", "the chain rule's u' forgotten", [("        return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t ** 2) * du",
                                               "        return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t ** 2)")], "GELU.df"),
    ("3.3", "the product rule's first term forgotten", [("        return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t ** 2) * du",
                                                         "        return 0.5 * x * (1.0 - t ** 2) * du")], "product rule"),
    ("3.4", "the Jacobians swapped", [('        return np.broadcast_to(np.diag(self.params["gamma"]), (X.shape[0],) + (X.shape[1],) * 2).copy()',
                                       '        return X[:, :, None] * np.eye(X.shape[1])')], "is diag(x)"),
    ("3.4", "a full matrix of gamma", [('        return np.broadcast_to(np.diag(self.params["gamma"]), (X.shape[0],) + (X.shape[1],) * 2).copy()',
                                        '        return np.broadcast_to(self.params["gamma"], (X.shape[0],) + (X.shape[1],) * 2).copy()')],
     "J_x is diagonal"),
]
