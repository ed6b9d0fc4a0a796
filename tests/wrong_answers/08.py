"""Plausible wrong answers of solutions/08_second_order_training.ipynb (see README.md)."""
NOTEBOOK = "08_second_order_training"

WRONG = [
    ("8.1", "the sign of the residual", [("    alpha = d @ (b - A @ x) / curvature", "    alpha = d @ (A @ x - b) / curvature")],
     "wrong sign"),
    ("8.1", "d^T d in the denominator", [("    alpha = d @ (b - A @ x) / curvature", "    alpha = d @ (b - A @ x) / (d @ d)")],
     "d^T d"),
    ("8.1", "returns an empty tuple", [("    return float(alpha), float(0.5 * y @ A @ y - b @ y)", "    return ()")],
     "must return a pair"),
    ("8.2", "radius squared", [("        return np.sqrt(np.sum((c / (sigma + lam)) ** 2))", "        return np.sum((c / (sigma + lam)) ** 2)"),
                               ("    low, high = 0.0, np.linalg.norm(g) / radius                # length(high) <= radius",
                                "    low, high = 0.0, np.linalg.norm(g) / radius ** 2 + np.linalg.norm(g) / radius")],
     "sqrt(radius)"),
    ("8.2", "no search", [("    for _ in range(200):", "    return float(high)\n    for _ in range(200):")], "upper end"),
    ("8.3", "the factor 2 forgotten", [("    return float(-slope / (2.0 * curvature))", "    return float(-slope / curvature)")],
     "twice the step"),
    ("8.3", "the sign", [("    return float(-slope / (2.0 * curvature))", "    return float(slope / (2.0 * curvature))")],
     "wrong sign"),
    ("8.4", "Adam's correction", [("    return (m_t - beta ** t * c) / (1.0 - beta ** t)", "    return m_t / (1.0 - beta ** t)")],
     "assumes m_0 = 0"),
    ("8.4", "an empty tuple", [("    return (m_t - beta ** t * c) / (1.0 - beta ** t)", "    return ()")], "empty"),
    ("8.5", "damping grows", [('    return "shrink", 1, True', '    return "grow", 1, True')], "decreases with lambda"),
    ("8.5", "two values", [('    return "shrink", 1, True', '    return "shrink", 2, True')], "answer 2"),
]
