"""Plausible wrong answers of solutions/06_matching_losses.ipynb (see README.md)."""
NOTEBOOK = "06_matching_losses"

_LS = "    return np.eye(Z.shape[1]) - P[:, None, :]             # delta_ij - p_j"
_CUTS = "    return H_match, G_rate, R_rate\n    ### END"
_TM = "    return value, Y - T, (1.0 - Y ** 2)[:, :, None] * np.eye(Z.shape[1])"

WRONG = [
    ("6.1", "the softmax Jacobian", [(_LS, "    return P[:, :, None] * np.eye(Z.shape[1]) - P[:, :, None] * P[:, None, :]")],
     "Jacobian of softmax"),
    ("6.1", "transposed", [(_LS, "    return np.eye(Z.shape[1]) - P[:, :, None]")], "transpose"),
    ("6.1", "unstable exponentials", [("    E = np.exp(Z - Z.max(axis=1, keepdims=True))          # every exponent <= 0: no overflow",
                                       "    E = np.exp(Z)")], "non-finite"),
    ("6.2", "log of a sigmoid", [("        softplus = np.maximum(Z, 0.0) + np.log1p(np.exp(-np.abs(Z)))",
                                   "        softplus = -np.log(1.0 / (1.0 + np.exp(Z)))")], "value_per_sample"),
    ("6.2", "gradient sign reversed", [("        return (self.w * T + 1.0 - T) * minigrad.Sigmoid().f(Z) - self.w * T",
                                        "        return self.w * T - (self.w * T + 1.0 - T) * minigrad.Sigmoid().f(Z)")],
     "sign of the gradient reversed"),
    ("6.2", "the weight forgotten in the gradient", [("        return (self.w * T + 1.0 - T) * minigrad.Sigmoid().f(Z) - self.w * T",
                                                      "        return minigrad.Sigmoid().f(Z) - T")],
     "the unweighted gradient"),
    ("6.2", "w on both terms", [("        return (self.w * T + 1.0 - T) * minigrad.Sigmoid().f(Z) - self.w * T",
                                 "        return self.w * (minigrad.Sigmoid().f(Z) - T)")],
     "positives' term only"),
    ("6.2", "sigma on the Hessian's diagonal", [("        return ((self.w * T + 1.0 - T) * s * (1.0 - s))[:, :, None] * np.eye(Z.shape[1])",
                                                 "        return ((self.w * T + 1.0 - T) * s)[:, :, None] * np.eye(Z.shape[1])")],
     "the derivative of sigma is sigma (1 - sigma)"),
    ("6.3", "h_rate without the Jacobians", [(_CUTS, "    return H_match, (T / rate ** 2)[:, :, None] * eye, R_rate\n    ### END")],
     "G_rate: your answer is h_rate alone"),
    ("6.3", "an empty list", [(_CUTS, "    return []\n    ### END")], "must return three arrays"),
    ("6.3", "the gradient in lambda as the residual", [(_CUTS, "    return H_match, G_rate, (1 - T / rate)[:, :, None] * eye\n    ### END")],
     "R_rate: your answer is the gradient in lambda alone"),
    ("6.4", "log cosh that overflows", [("    log_cosh = a + np.log1p(np.exp(-2.0 * a)) - np.log(2.0)        # log cosh z, exact for every finite z",
                                         "    log_cosh = np.log(np.cosh(Z))")], "non-finite"),
    ("6.4", "F(0) not zero", [("    log_cosh = a + np.log1p(np.exp(-2.0 * a)) - np.log(2.0)        # log cosh z, exact for every finite z",
                               "    log_cosh = a + np.log1p(np.exp(-2.0 * a))")], "F(0) = 0"),
    ("6.4", "gradient sign reversed", [(_TM, "    return value, T - Y, (1.0 - Y ** 2)[:, :, None] * np.eye(Z.shape[1])")],
     "gradient: your answer has the sign reversed"),
    ("6.4", "tanh on the Hessian's diagonal", [(_TM, "    return value, Y - T, Y[:, :, None] * np.eye(Z.shape[1])")],
     "derivative of tanh is 1 - tanh^2"),
    ("6.5", "the softmax facts", [('    return False, 0.0, "rate", 0.0', '    return True, 0.0, "rate", 0.0')],
     "answer 1"),
    ("6.5", "the wrong cut", [('    return False, 0.0, "rate", 0.0', '    return False, 0.0, "match", 0.0')],
     "G_rate = diag(t)"),
]
