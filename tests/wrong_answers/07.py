"""Plausible wrong answers of solutions/07_batch_backprop.ipynb (see README.md)."""
NOTEBOOK = "07_batch_backprop"

_RES = "    return G_S.T @ A, G_S.sum(axis=0), G_Z + G_S @ W      # the skip path adds G_Z itself"
_G = "    G = (np.exp(log_p) - np.eye(d)[labels]) / B          # the only 1/B"
_PS = "    return B * np.concatenate([outer.reshape(B, -1), G_S], axis=1)"
_NORM = "    return B * np.linalg.norm(G_S, axis=1) * np.sqrt(np.sum(A ** 2, axis=1) + 1.0)"
_GS = "    G_S = G_Z * (1.0 - np.tanh(A @ W.T + b) ** 2)"
_H = "    H[np.arange(B), :, np.arange(B), :] = h / B             # block i on the diagonal: h_i / B"

WRONG = [
    ("7.1", "the skip path forgotten", [(_RES, "    return G_S.T @ A, G_S.sum(axis=0), G_S @ W")], "skip connection"),
    ("7.1", "no tanh derivative", [("    G_S = G_Z * (1.0 - H ** 2)                            # through tanh, at the pre-activation S",
                                    "    G_S = G_Z")], "derivative of tanh"),
    ("7.1", "G_W transposed", [(_RES, "    return A.T @ G_S, G_S.sum(axis=0), G_Z + G_S @ W")], "G_W: your answer is the transpose"),
    ("7.2", "the sum over the batch", [(_G, "    G = np.exp(log_p) - np.eye(d)[labels]")], "1/B of the mean"),
    ("7.2", "tanh' at the block's output", [("        G_S = G * (1.0 - np.tanh(As[l] @ Ws[l].T + bs[l]) ** 2)   # exercise 7.1, block l",
                                              "        G_S = G * (1.0 - As[l + 1] ** 2)")], "it belongs at the pre-activation"),
    ("7.2", "the loss summed", [("    loss = float(-log_p[np.arange(B), labels].mean())", "    loss = float(-log_p[np.arange(B), labels].sum())")],
     "loss: your answer is"),
    ("7.3", "the bias forgotten", [(_PS, "    return B * outer.reshape(B, -1)"),
                                   (_NORM, "    return B * np.linalg.norm(G_S, axis=1) * np.sqrt(np.sum(A ** 2, axis=1))")],
     "misses the bias part"),
    ("7.3", "the rows of G_Z as they are", [(_PS, "    return np.concatenate([outer.reshape(B, -1), G_S], axis=1)"),
                                             (_NORM, "    return np.linalg.norm(G_S, axis=1) * np.sqrt(np.sum(A ** 2, axis=1) + 1.0)")],
     "they carry the mean's 1/B"),
    ("7.3", "tanh skipped", [(_GS + "         # the rows never mix: row i is sample i's", "    G_S = G_Z"),
                             (_GS + "\n" + _NORM, "    G_S = G_Z\n" + _NORM)],
     "the gradient passes through tanh"),
    ("7.4", "without the 1/B", [(_H, "    H[np.arange(B), :, np.arange(B), :] = h")], "without the mean's 1/B"),
    ("7.4", "a dense Kronecker product", [(_H, "    H[:] = h.mean(axis=0)[None, :, None, :] / B")], "largest error"),
    ("7.5", "all entries", [("    return B * d * d, 1.0 / B", "    return (B * d) ** 2, 1.0")], "B diagonal blocks"),
    ("7.5", "one block", [("    return B * d * d, 1.0 / B", "    return d * d, 1.0 / B")], "B d^2"),
]
