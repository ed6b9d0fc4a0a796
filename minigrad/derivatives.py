"""Exact derivatives of a model and a loss on a batch.

n is the number of parameters of the whole model (flattened in module order,
each array row-major), o its output width, m its input width. The loss is the
mean over the batch, so every quantity below is of that mean.
"""
import numpy as np

from ._validate import as_batch
from .layers import Sequential
from .losses import Loss
from .module import Module

__all__ = [
    "parameters_to_vector", "vector_to_parameters", "grad", "per_sample_grads",
    "jacobian", "input_jacobian", "hessian", "gauss_newton", "hvp", "ggn_vp",
]


def _leaves(model, who):
    if isinstance(model, Sequential):
        return model.modules
    if isinstance(model, Module):
        return [model]
    raise ValueError(f"{who}: model must be a minigrad Module, got {type(model).__name__}")


def _check_loss(loss, who):
    if not isinstance(loss, Loss):
        raise ValueError(f"{who}: loss must be a minigrad Loss, got {type(loss).__name__}")


def _num_params(leaves):
    return sum(mod.num_params for mod in leaves)


def _check_vector(v, n, who, name="v"):
    v = np.asarray(v, dtype=np.float64) if np.asarray(v).dtype.kind in "fiub" else None
    if v is None or v.ndim != 1 or v.shape[0] != n:
        shape = None if v is None else v.shape
        raise ValueError(f"{who}: expected {name} of shape ({n},), one entry per parameter, "
                         f"got shape {shape}")
    if not np.all(np.isfinite(v)):
        raise ValueError(f"{who}: {name} has a non-finite value")
    return v


def parameters_to_vector(model):
    """All parameters as one vector w: (n,), in module order, row-major."""
    leaves = _leaves(model, "parameters_to_vector")
    arrays = [P.ravel() for mod in leaves for P in mod.parameters()]
    return np.concatenate(arrays) if arrays else np.zeros(0)


def vector_to_parameters(w, model):
    """Write w (n,) into the model's parameters, in place (the inverse of
    ``parameters_to_vector``)."""
    leaves = _leaves(model, "vector_to_parameters")
    w = _check_vector(w, _num_params(leaves), "vector_to_parameters", "w")
    k = 0
    for mod in leaves:
        for P in mod.parameters():
            P[...] = w[k:k + P.size].reshape(P.shape)
            k += P.size


def _split(v, leaves):
    """A flat vector (n,) as one list of parameter-shaped arrays per leaf."""
    out, k = [], 0
    for mod in leaves:
        out.append(mod._split(v[k:k + mod.num_params]))
        k += mod.num_params
    return out


def _forward(model, loss, X, T, who):
    leaves = _leaves(model, who)
    _check_loss(loss, who)
    X = as_batch(X, who, leaves[0].in_features, name="X")
    Y = model(X)
    value = loss(Y, T)
    return leaves, value


def grad(model, loss, X, T):
    """Gradient of the batch loss w.r.t. all parameters: (n,). Reverse mode,
    one VJP per module; the modules' ``grads`` are left untouched."""
    leaves, _ = _forward(model, loss, X, T, "grad")
    G = loss.backward()
    parts = []
    for mod in reversed(leaves):
        G, g = mod.vjp(G)
        parts.append(np.concatenate([a.ravel() for a in g]) if g else np.zeros(0))
    return np.concatenate(parts[::-1])


def per_sample_grads(model, loss, X, T):
    """Gradients of each sample's own loss l(y_b, t_b): (B, n).
    Their mean is ``grad``; their sum is B times ``grad``."""
    leaves, _ = _forward(model, loss, X, T, "per_sample_grads")
    A = (loss.backward() * X.shape[0])[:, :, None]           # (B, o, 1)
    parts = []
    for mod in reversed(leaves):
        parts.append(mod.vjp_params_many(A)[:, :, 0])
        A = mod.vjp_input_many(A)
    return np.concatenate(parts[::-1], axis=1)


def _backward_identity(model, X, who):
    """Backpropagate the identity from the output: returns (leaves, list of
    J_theta^T blocks (B, p_l, o) per leaf, J_x^T of the whole model (B, m, o))."""
    leaves = _leaves(model, who)
    X = as_batch(X, who, leaves[0].in_features, name="X")
    Y = model(X)
    A = np.broadcast_to(np.eye(Y.shape[1]), (Y.shape[0],) + (Y.shape[1],) * 2)
    blocks = []
    for mod in reversed(leaves):
        blocks.append(mod.vjp_params_many(A))
        A = mod.vjp_input_many(A)
    return leaves, blocks[::-1], A


def jacobian(model, X):
    """Per-sample Jacobian of the outputs w.r.t. the parameters: (B, o, n),
    J[b, i, q] = d y_bi / d w_q. One backward pass with the identity as seed."""
    _, blocks, _ = _backward_identity(model, X, "jacobian")
    return np.concatenate(blocks, axis=1).transpose(0, 2, 1)


def input_jacobian(model, X):
    """Per-sample Jacobian of the outputs w.r.t. the inputs: (B, o, m)."""
    _, _, A = _backward_identity(model, X, "input_jacobian")
    return A.transpose(0, 2, 1)


def _curvature(model, loss, X, T, who, residual):
    """The Hessian (residual=True) or Gauss-Newton matrix (False) of the batch loss.

    Walks back through the modules with the composition formula applied to the
    joint variable (module input, all later parameters). State at a module's
    output z: g = dL/dz (B, o), Hzz = d2L/dz2 (B, o, o), Hzt = d2L/(dz dw_later)
    (B, o, P) and Htt = d2L/dw_later^2 (P, P). Through y = f(x, theta):
        H_thth = sum_b J_th^T Hzz J_th + C_thth   (a diagonal block)
        H_thw  = sum_b J_th^T Hzt                 (cross-layer blocks)
        H_xx   = J_x^T Hzz J_x + C_xx,  H_xth = J_x^T Hzz J_th + C_xth,
        H_xw   = J_x^T Hzt
    where C = sum_k g_k hess(y_k) is the module's own curvature, dropped for the
    Gauss-Newton matrix.
    """
    leaves, _ = _forward(model, loss, X, T, who)
    n = _num_params(leaves)
    Hfull = np.zeros((n, n))
    G, Hzz = loss.backward(), loss.hessian()
    Hzt = np.zeros(G.shape + (0,))
    end = n
    for k in range(len(leaves) - 1, -1, -1):
        mod = leaves[k]
        p, start = mod.num_params, end - mod.num_params
        C = mod.second_contraction(G) if residual else (None, None, None)
        Cxx, Cxt, Ctt = C
        if p:
            Htt = mod.gram_params(Hzz)
            if Ctt is not None:
                Htt = Htt + Ctt
            Hfull[start:end, start:end] = Htt
            if Hzt.shape[2]:
                cross = mod.vjp_params_sum(Hzt)             # (p, P)
                Hfull[start:end, end:] = cross
                Hfull[end:, start:end] = cross.T
        if k == 0:
            break
        # carry the state to the module's input
        JxH = mod.vjp_input_many(Hzz)                          # J_x^T Hzz: (B, m, o)
        Hxx = mod.vjp_input_many(JxH.transpose(0, 2, 1))       # (B, m, m)
        if Cxx is not None:
            Hxx = Hxx + Cxx
        Hxw = mod.vjp_input_many(Hzt)                          # (B, m, P)
        if p:
            Hxt = mod.vjp_params_many(JxH.transpose(0, 2, 1)).transpose(0, 2, 1)
            if Cxt is not None:
                Hxt = Hxt + Cxt
            Hxw = np.concatenate([Hxt, Hxw], axis=2)
        G, _ = mod.vjp(G)
        Hzz, Hzt, end = Hxx, Hxw, start
    return Hfull


def hessian(model, loss, X, T):
    """The full Hessian of the batch loss w.r.t. all parameters: (n, n),
    cross-layer blocks included. Exact: h = J^T h_L J + sum_k g_k h_N_k,
    assembled module by module (see ``_curvature``)."""
    return _curvature(model, loss, X, T, "hessian", residual=True)


def gauss_newton(model, loss, X, T):
    """The Gauss-Newton matrix (1/B) sum_b J_b^T H_L,b J_b: (n, n), where J_b is
    the per-sample Jacobian (o, n) and H_L,b the loss Hessian at y_b."""
    return _curvature(model, loss, X, T, "gauss_newton", residual=False)


def _rop(model, loss, X, T, v, who, residual):
    """Hessian- (residual=True) or Gauss-Newton-vector product, by a forward
    pass of tangents (J v) and a backward pass of their derivatives."""
    leaves, _ = _forward(model, loss, X, T, who)
    v = _check_vector(v, _num_params(leaves), who)
    dtheta = _split(v, leaves)
    tangents, dZ = [], None
    for mod, dt in zip(leaves, dtheta):
        tangents.append(dZ)
        dZ = mod.jvp(dZ, dt if mod.num_params else None)
    G, dG = loss.backward(), loss.hvp(dZ)
    parts = []
    for mod, dX, dt in zip(reversed(leaves), reversed(tangents), reversed(dtheta)):
        GX, _ = mod.vjp(G)
        dGX, dg = mod.vjp(dG)
        if residual:
            sx, sg = mod.second_vjp(G, dX, dt if mod.num_params else None)
            dGX = dGX + sx
            dg = [a + b for a, b in zip(dg, sg)]
        parts.append(np.concatenate([a.ravel() for a in dg]) if dg else np.zeros(0))
        G, dG = GX, dGX
    return np.concatenate(parts[::-1])


def hvp(model, loss, X, T, v):
    """Hessian-vector product H v: (n,), without forming H (Pearlmutter's R-op)."""
    return _rop(model, loss, X, T, v, "hvp", residual=True)


def ggn_vp(model, loss, X, T, v):
    """Gauss-Newton-vector product G v = (1/B) sum_b J_b^T H_L,b J_b v: (n,),
    without forming G or J."""
    return _rop(model, loss, X, T, v, "ggn_vp", residual=False)
