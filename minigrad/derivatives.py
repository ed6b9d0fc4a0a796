"""Exact derivatives of a model and a loss on a batch.

n is the number of parameters of the whole model (flattened in module order,
each array row-major), o its output width, m its input width. The loss is the
mean over the batch, so every quantity below is of that mean.
"""
import math

import numpy as np

from ._validate import as_batch, trusted_batch
from .layers import Sequential, _call_checked
from .losses import Loss, MSELoss, NLLLoss, SoftmaxCrossEntropy
from .module import Module, _flatten_into

__all__ = [
    "parameters_to_vector", "vector_to_parameters", "grad", "per_sample_grads",
    "jacobian", "input_jacobian", "hessian", "gauss_newton", "hvp", "ggn_vp",
]


#: minigrad's own losses, whose checks are all in ``Loss._prepare``
_OWN_LOSSES = (MSELoss, SoftmaxCrossEntropy, NLLLoss)


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
    if not math.isfinite(np.add.reduce(v)) and not np.all(np.isfinite(v)):
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
    """A flat vector (n,) as one list of parameter-shaped arrays per leaf, or
    None for a leaf without parameters."""
    out, k = [], 0
    for mod in leaves:
        p = mod.num_params
        out.append(mod._split(v[k:k + p]) if p else None)
        k += p
    return out


def _checked_input(X, leaves, who):
    """X as a float64 (B, m) batch for the first leaf, or a ValueError naming ``who``."""
    if trusted_batch(X, leaves[0].in_features):
        return X
    return as_batch(X, who, leaves[0].in_features, name="X")


def _forward(model, loss, X, T, who):
    leaves = _leaves(model, who)
    _check_loss(loss, who)
    X = _checked_input(X, leaves, who)
    Y, checked = _call_checked(model, X)
    if type(loss) in _OWN_LOSSES:     # their value raises nothing: checks and cache only
        loss._prepare(Y, T, checked)
    else:                             # a learner's loss may check in value_per_sample
        loss(Y, T)
    return leaves


def grad(model, loss, X, T):
    """Gradient of the batch loss w.r.t. all parameters: (n,). Reverse mode,
    one VJP per module; the modules' ``grads`` are left untouched."""
    leaves = _forward(model, loss, X, T, "grad")
    G = loss.backward()                                      # dL/dy (B, o)
    sizes = [mod.num_params for mod in leaves]
    g = np.empty(sum(sizes))
    end = g.size
    for k in range(len(leaves) - 1, -1, -1):
        mod = leaves[k]
        if sizes[k]:
            mod._param_grads_into(G, g[end - sizes[k]:end])   # J_theta^T G
            end -= sizes[k]
        if k:
            G = mod._vjp_input(G)                            # J_x^T G
    return g


def _backward_rows(leaves, A, out=None):
    """Pull the rows A (B, k, o) of a Jacobian back through every leaf, in one
    pass for the whole batch: returns (A J_N (B, k, n) written into ``out``,
    A J_x of the whole model (B, k, m)). With A the identity the first is the
    per-sample Jacobian; with A a loss gradient row it is per-sample gradients."""
    n = _num_params(leaves)
    if out is None:
        out = np.empty(A.shape[:2] + (n,))
    end = n
    for mod in reversed(leaves):
        p = mod.num_params
        if p:
            mod._rows_params(A, out=out[:, :, end - p:end])     # A J_theta (B, k, p)
            end -= p
        A = mod._rows_input(A)                                  # A J_x (B, k, m)
    return out, A


def per_sample_grads(model, loss, X, T):
    """Gradients of each sample's own loss l(y_b, t_b): (B, n).
    Their mean is ``grad``; their sum is B times ``grad``."""
    leaves = _forward(model, loss, X, T, "per_sample_grads")
    A = (loss.backward() * X.shape[0])[:, None, :]              # (B, 1, o)
    return _backward_rows(leaves, A)[0][:, 0, :]


def _backward_identity(model, X, who):
    """Backpropagate the identity rows from the output: returns (leaves,
    J_N (B, o, n), J_x of the whole model (B, o, m))."""
    leaves = _leaves(model, who)
    X = _checked_input(X, leaves, who)
    Y = _call_checked(model, X)[0]
    B, o = Y.shape
    A = np.broadcast_to(np.eye(o), (B, o, o))
    J, Jx = _backward_rows(leaves, A)
    return leaves, J, Jx


def jacobian(model, X):
    """Per-sample Jacobian of the outputs w.r.t. the parameters: (B, o, n),
    J[b, i, q] = d y_bi / d w_q. One backward pass for the whole batch with the
    identity rows as seed; each Linear fills its columns as [a (x) x^T, a]."""
    _, J, _ = _backward_identity(model, X, "jacobian")
    return J


def input_jacobian(model, X):
    """Per-sample Jacobian of the outputs w.r.t. the inputs: (B, o, m)."""
    _, _, Jx = _backward_identity(model, X, "input_jacobian")
    return np.ascontiguousarray(Jx)


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
    Gauss-Newton matrix. Never n Hessian-vector products, never a dense
    J^T H J: for a Linear layer J_th = [I (x) x^T, I], so its diagonal block is
    sum_b H_b (x) x_b x_b^T, one (o^2, B) @ (B, m^2) matrix product, written
    straight into the (n, n) result; every sum over the batch is a matrix
    product, and the o x o loss Hessians are carried, never an n-wide Jacobian.
    """
    leaves = _forward(model, loss, X, T, who)
    n = _num_params(leaves)
    Hfull = np.zeros((n, n))
    G, Hzz = loss.backward(), loss.hessian()
    Hzt = np.zeros(G.shape + (0,))
    end = n
    for k in range(len(leaves) - 1, -1, -1):
        mod = leaves[k]
        p, start = mod.num_params, end - mod.num_params
        Hxx = Hxt = None
        if k:                                                  # carried to the input
            JxH = mod.vjp_input_many(Hzz)                      # J_x^T Hzz: (B, m, o)
            Hxx = mod._rows_input(JxH)                         # J_x^T Hzz J_x: (B, m, m)
            if p:
                Hxt = mod._rows_params(JxH)                    # J_x^T Hzz J_th: (B, m, p)
        Ctt = None
        if residual:
            Hxx, Hxt, Ctt = mod._add_curvature(G, Hxx, Hxt)
        if p:
            block = Hfull[start:end, start:end]
            mod._gram_params_into(Hzz, block)
            if Ctt is not None:
                block += Ctt
            if Hzt.shape[2]:
                cross = mod.vjp_params_sum(Hzt)                # (p, P)
                Hfull[start:end, end:] = cross
                Hfull[end:, start:end] = cross.T
        if k == 0:
            break
        Hxw = mod.vjp_input_many(Hzt)                          # J_x^T Hzt: (B, m, P)
        if p:
            Hxw = np.concatenate([Hxt, Hxw], axis=2)
        if residual:
            G = mod._vjp_input(G)
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
    pass of tangents (J v) and a backward pass of their derivatives:
        GN v = J^T (H_L (J v)),   H v = GN v + sum_modules C (dx, dtheta),
    where the second term needs the gradient g carried alongside (Pearlmutter's
    R-op). Costs a few gradients, whatever n; no matrix is formed."""
    leaves = _forward(model, loss, X, T, who)
    v = _check_vector(v, _num_params(leaves), who)
    dtheta = _split(v, leaves)
    tangents, dZ = [], None
    for mod, dt in zip(leaves, dtheta):
        tangents.append(dZ)
        dZ = mod.jvp(dZ, dt)
    G = loss.backward() if residual else None
    dG = loss.hvp(dZ)
    out = np.empty(v.size)
    end = out.size
    for k in range(len(leaves) - 1, -1, -1):
        mod, dX, dt = leaves[k], tangents[k], dtheta[k]
        dg = [] if dt is None else mod._param_grads(dG)
        dGX = mod._vjp_input(dG) if k else None
        if residual:
            sx, sg = mod._second_vjp(G, dX, dt, bool(k))
            if k:
                if sx is not None:
                    dGX = dGX + sx
                G = mod._vjp_input(G)
            dg = [a if b is None else a + b for a, b in zip(dg, sg)]
        if dt is not None:
            p = mod.num_params
            _flatten_into(dg, out[end - p:end])
            end -= p
        dG = dGX
    return out


def hvp(model, loss, X, T, v):
    """Hessian-vector product H v: (n,), without forming H (Pearlmutter's R-op)."""
    return _rop(model, loss, X, T, v, "hvp", residual=True)


def ggn_vp(model, loss, X, T, v):
    """Gauss-Newton-vector product G v = (1/B) sum_b J_b^T H_L,b J_b v: (n,),
    without forming G or J."""
    return _rop(model, loss, X, T, v, "ggn_vp", residual=False)
