"""Exact derivatives of a model and a loss on a batch.

n is the number of parameters of the whole model (flattened in module order,
each array row-major), o its output width, m its input width. The loss is the
mean over the batch, so every quantity below is of that mean. Each function
checks its arguments once, runs the model, and then calls only the protocol
methods of its modules, through the chain rule of ``minigrad.sequential``.
A result with a NaN or an infinity is reported, never returned.
"""
import numpy as np

from ._validate import as_vector, finite_result
from .losses import Loss
from .module import flatten, unflatten
from .sequential import gradient, hessian_blocks, hessian_vp, leaves_of, pull_params

__all__ = [
    "parameters_to_vector", "vector_to_parameters", "grad", "per_sample_grads",
    "jacobian", "input_jacobian", "hessian", "gauss_newton", "hvp", "ggn_vp",
    "DENSE_LIMIT_BYTES",
]

#: the largest dense result (hessian, gauss_newton, jacobian) computed, in bytes;
#: beyond it the functions refuse and point at the matrix-free products
DENSE_LIMIT_BYTES = 2 * 1024 ** 3


def parameters_to_vector(model):
    """All parameters as one vector w: (n,), in module order, row-major."""
    return flatten([P for mod in leaves_of(model, "parameters_to_vector")
                    for P in mod.parameters()])


def vector_to_parameters(w, model):
    """Write w (n,) into the model's parameters, in place (the inverse of
    ``parameters_to_vector``)."""
    params = [P for mod in leaves_of(model, "vector_to_parameters") for P in mod.parameters()]
    w = as_vector(w, sum(P.size for P in params), "vector_to_parameters", "w")
    for P, value in zip(params, unflatten(w, params)):
        P[...] = value


def _dense(shape, who):
    """Refuse a dense float64 result of this shape beyond DENSE_LIMIT_BYTES."""
    size = 8 * int(np.prod(shape, dtype=np.float64))
    if size > DENSE_LIMIT_BYTES:
        raise ValueError(
            f"{who}: the result of shape {shape} needs {size / 1e9:.3g} GB, above the limit of "
            f"{DENSE_LIMIT_BYTES / 1e9:.3g} GB (minigrad.derivatives.DENSE_LIMIT_BYTES); use "
            "the matrix-free products hvp / ggn_vp, or raise the limit")


def _forward(model, loss, X, T, who):
    """Run the model and the loss on a checked batch; returns the leaves."""
    leaves = leaves_of(model, who)
    if not isinstance(loss, Loss):
        raise ValueError(f"{who}: loss must be a minigrad Loss, got {type(loss).__name__}")
    loss(model(X), T)
    return leaves


def grad(model, loss, X, T):
    """Gradient of the batch loss w.r.t. all parameters: (n,). Reverse mode,
    one VJP per module; the modules' ``grads`` are left untouched."""
    leaves = _forward(model, loss, X, T, "grad")
    return finite_result(flatten(gradient(leaves, loss.backward())), "grad")


def per_sample_grads(model, loss, X, T):
    """Gradients of each sample's own loss l(y_b, t_b): (B, n), one backward
    pass for the whole batch. Their mean is ``grad``."""
    leaves = _forward(model, loss, X, T, "per_sample_grads")
    G = loss.backward() * len(loss.Y)                   # dl_b / dy_b: (B, o)
    _dense((len(G), model.num_params), "per_sample_grads")
    return finite_result(pull_params(leaves, G[:, None, :])[0][:, 0, :], "per_sample_grads")


def jacobian(model, X):
    """Per-sample Jacobian of the outputs w.r.t. the parameters: (B, o, n),
    J[b, i, q] = d y_bi / d w_q. One backward pass for the whole batch with the
    identity rows as seed; a Linear fills its columns as [a kron x^T, a]."""
    leaves = leaves_of(model, "jacobian")
    Y = model(X)
    _dense(Y.shape + (model.num_params,), "jacobian")
    eye = np.broadcast_to(np.eye(Y.shape[1]), Y.shape + Y.shape[1:])
    return finite_result(pull_params(leaves, eye)[0], "jacobian")


def input_jacobian(model, X):
    """Per-sample Jacobian of the outputs w.r.t. the inputs: (B, o, m)."""
    leaves_of(model, "input_jacobian")
    model(X)
    return finite_result(model.input_jacobian(), "input_jacobian")


def _hessian(model, loss, X, T, who, residual):
    leaves = _forward(model, loss, X, T, who)
    _dense((model.num_params,) * 2, who)
    G = loss.backward() if residual else None
    return finite_result(hessian_blocks(leaves, G, loss.hessian())[0], who)


def hessian(model, loss, X, T):
    """The full Hessian of the batch loss w.r.t. all parameters: (n, n),
    cross-layer blocks included. Exact: h = J^T h_L J + sum_k g_k h_N_k,
    assembled module by module (``minigrad.sequential.hessian_blocks``)."""
    return _hessian(model, loss, X, T, "hessian", residual=True)


def gauss_newton(model, loss, X, T):
    """The Gauss-Newton matrix (1/B) sum_b J_b^T H_L,b J_b: (n, n), where J_b is
    the per-sample Jacobian (o, n) and H_L,b the loss Hessian at y_b."""
    return _hessian(model, loss, X, T, "gauss_newton", residual=False)


def _product(model, loss, X, T, v, who, residual):
    leaves = _forward(model, loss, X, T, who)
    params = model.parameters()
    v = as_vector(v, sum(P.size for P in params), who)
    G = loss.backward() if residual else None
    Hv = hessian_vp(leaves, G, loss.hvp, None, unflatten(v, params))[1]
    return finite_result(Hv, who)


def hvp(model, loss, X, T, v):
    """Hessian-vector product H v: (n,), without forming H (Pearlmutter's R-op:
    a few gradients' work, whatever n)."""
    return _product(model, loss, X, T, v, "hvp", residual=True)


def ggn_vp(model, loss, X, T, v):
    """Gauss-Newton-vector product G v = (1/B) sum_b J_b^T H_L,b J_b v: (n,),
    without forming G or J."""
    return _product(model, loss, X, T, v, "ggn_vp", residual=False)
