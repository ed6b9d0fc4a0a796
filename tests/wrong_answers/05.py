"""Plausible wrong answers of solutions/05_composition.ipynb (see README.md)."""
NOTEBOOK = "05_composition"

_RETURN_51 = "    return gauss_newton + middle + inner"
_WW_52 = 'G[:mo, :mo] = np.einsum("bi,bj,bkl->ikjl", X, X, h).reshape(mo, mo) / B'
_WB_52 = 'G[:mo, mo:] = np.einsum("bi,bkl->ikl", X, h).reshape(mo, o) / B'
_TERMS_54 = "    return gauss_newton.reshape(o * h, h * m), residual.reshape(o * h, h * m)"

WRONG = [
    ("5.4", "f' left out", [('    gauss_newton = np.einsum("pr,rk,k,l,q->pqkl", H, W2, fp, x, a)     # J_W2^T H J_W1',
                             '    gauss_newton = np.einsum("pr,rk,l,q->pqkl", H, W2, x, a)')], "misses f'(z_k)"),
    ("5.1", "the Gauss-Newton part alone", [(_RETURN_51, "    return gauss_newton")],
     "Gauss-Newton part J^T H J alone"),
    ("5.1", "the middle function's curvature forgotten", [(_RETURN_51, "    return gauss_newton + inner")],
     "middle function M"),
    ("5.1", "returns nothing", [(_RETURN_51, "    gauss_newton + middle + inner")], "None"),
    ("5.2", "minigrad's (out, in) order", [(_WW_52, _WW_52.replace("->ikjl", "->kilj")),
                                           (_WB_52, _WB_52.replace("->ikl", "->kil"))], "(out, in) order"),
    ("5.2", "the sum over the batch", [(_WW_52, _WW_52.replace(" / B", "")),
                                       (_WB_52, _WB_52.replace(" / B", "")),
                                       ("G[mo:, mo:] = h.mean(axis=0)", "G[mo:, mo:] = h.sum(axis=0)")],
     "1/B of the mean"),
    ("5.2", "the bias forgotten", [("    return G\n", "    return G[:mo, :mo]\n")], "expected (16, 16)"),
    ("5.3", "input Jacobian with A_i alone", [('return np.einsum("ilk,bk->bil", A + A.transpose(0, 2, 1), X)',
                                              'return np.einsum("ilk,bk->bil", 2 * A, X)')],
     "input_jacobian: your answer uses 2 A_i x"),
    ("5.3", "one term of the product rule in curvature_xp",
     [('Cxa = np.einsum("bi,lj,bk->blijk", G, eye, X) + np.einsum("bi,bj,lk->blijk", G, X, eye)',
       'Cxa = np.einsum("bi,lj,bk->blijk", G, eye, X)')], "curvature_xp: your answer keeps one of the two terms"),
    ("5.3", "curvature_xx not symmetrised", [('return np.einsum("bi,ijk->bjk", G, A + A.transpose(0, 2, 1))',
                                              'return np.einsum("bi,ijk->bjk", G, 2 * A)')],
     "curvature_xx: your answer uses 2 A_i"),
    ("5.4", "the two terms swapped", [(_TERMS_54, "    return residual.reshape(o * h, h * m), gauss_newton.reshape(o * h, h * m)")],
     "is the other term"),
    ("5.4", "the residual term left out", [(_TERMS_54, "    return gauss_newton.reshape(o * h, h * m), 0 * residual.reshape(o * h, h * m)")],
     "residual"),
    ("5.4", "the whole block as the Gauss-Newton term",
     [(_TERMS_54, "    return (gauss_newton + residual).reshape(o * h, h * m), residual.reshape(o * h, h * m)")],
     "is the whole block K"),
    ("5.5", "the same answer twice", [('return "residual", "gauss_newton"', 'return "residual", "residual"')],
     "a loss linear in y has H = 0"),
    ("5.5", "the answers swapped", [('return "residual", "gauss_newton"', 'return "gauss_newton", "residual"')],
     "g = y - t = 0"),
]
