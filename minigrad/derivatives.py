"""Exact derivatives of a model and a loss on a batch.

n: the model's parameters (module order, row-major), o its output width, m its
input width; every quantity is of the batch mean. Each function checks its
arguments once, runs the model, then calls only its modules' protocol methods
through ``minigrad.chain``; a NaN or an infinity in a result is reported, never
returned. A dense result and its intermediates stay within DENSE_LIMIT_BYTES
(in chunks of the batch when that is enough, else a refusal).
"""
import math

import numpy as np

from ._validate import as_vector, finite_result
from .chain import gradient, hessian_blocks, hessian_vp, pull_params
from .losses import Loss
from .module import Module, flatten, unflatten
from .sequential import leaves_of

__all__ = [
    "parameters_to_vector", "vector_to_parameters", "grad", "per_sample_grads",
    "jacobian", "input_jacobian", "hessian", "gauss_newton", "hvp", "ggn_vp",
    "DENSE_LIMIT_BYTES", "dense_chunk", "model_and_loss",
]

#: the most memory (bytes) a dense function (hessian, gauss_newton, jacobian, input_jacobian,
#: per_sample_grads, the dense operators) takes for its result and intermediates
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


def dense_chunk(shape, who, per_sample=0, B=1, fixed=0):
    """How many of the B samples to take at a time so that a float64 result of this shape,
    ``fixed`` floats of intermediates and ``per_sample`` more per sample fit in
    DENSE_LIMIT_BYTES (B when all do); else a ValueError naming sizes and the way out."""
    result, one = 8.0 * math.prod(map(float, shape)), 8.0 * (per_sample + fixed)
    if result + one <= DENSE_LIMIT_BYTES:
        return int(min(B, (DENSE_LIMIT_BYTES - result - 8.0 * fixed) // (8.0 * per_sample or 1)))
    raise ValueError(
        f"{who}: the result of shape {tuple(shape)} needs {result / 1e9:.3g} GB"
        + (f" and its intermediates at least {one / 1e9:.3g} GB more" if one else "")
        + f", above the limit of {DENSE_LIMIT_BYTES / 1e9:.3g} GB "
        "(minigrad.derivatives.DENSE_LIMIT_BYTES); use the matrix-free products hvp / ggn_vp "
        "(or minigrad.operators), or raise the limit")


def model_and_loss(model, loss, who, X=None, T=None):
    """The model's leaves, after checking the model and that loss is a Loss; with a
    batch, the model is run on it and the loss set at its output (``Loss.at``: the
    derivatives need no loss value)."""
    leaves = leaves_of(model, who)
    if not isinstance(loss, Loss):
        raise ValueError(f"{who}: loss must be a minigrad Loss, got {type(loss).__name__}")
    if X is not None:
        loss.at(model(X), T)
    return leaves


def _chunks(B, who, shape, per_sample, run, fixed=0):
    """The row slices of the batch, in chunks that fit (``dense_chunk``), each
    after run(rows) has evaluated the model (and loss) there; then run(all)."""
    size = dense_chunk(shape, who, per_sample, B, fixed)
    size = -(-B // -(-B // size))                     # equal chunks: ceil(B / their number)
    for start in range(0, B, size):
        if size < B:
            run(slice(start, start + size))
        yield slice(start, start + size)
    if size < B:
        run(slice(None))


def _width(leaves):                                  # the widest input or output of a leaf
    return max(max(mod.input.shape[1], mod.output.shape[1]) for mod in leaves)


def grad(model, loss, X, T):
    """Gradient of the batch loss w.r.t. all parameters: (n,). Reverse mode,
    one VJP per module; the modules' ``grads`` are left untouched."""
    leaves = model_and_loss(model, loss, "grad", X, T)
    return finite_result(flatten(gradient(leaves, loss.backward())), "grad")


def _pulled(model, leaves, who, seed, run):
    """The rows seed() (B, k, o) pulled back through the chain, A J: (B, k, n)."""
    (B, o), n, A = model.output.shape, sum(mod.num_params for mod in leaves), seed()
    out = np.empty((B, o if A is None else A.shape[1], n))
    for rows in _chunks(B, who, out.shape, out.shape[1] * (o + 2 * n + _width(leaves)), run):
        pull_params(leaves, A if len(model.input) == B else seed(), out[rows])   # A: unchunked
    return finite_result(out, who)


def per_sample_grads(model, loss, X, T):
    """Gradients of each sample's own loss l(y_b, t_b): (B, n), one backward
    pass for the whole batch. Their mean is ``grad``."""
    leaves = model_and_loss(model, loss, "per_sample_grads", X, T)
    X, T = model.input, loss.T
    return _pulled(model, leaves, "per_sample_grads",
                   lambda: (loss.backward() * len(loss.Y))[:, None, :],
                   lambda rows: loss.at(model(X[rows]), T[rows]))[:, 0, :]


def jacobian(model, X):
    """Per-sample Jacobian of the outputs w.r.t. the parameters: (B, o, n),
    J[b, i, q] = d y_bi / d w_q. One backward pass for the whole batch from the
    identity rows, which the last leaf gives as its own Jacobians (``pull_params``)."""
    leaves, _ = leaves_of(model, "jacobian"), model(X)
    X = model.input
    return _pulled(model, leaves, "jacobian", lambda: None, lambda rows: model(X[rows]))


def input_jacobian(model, X):
    """Per-sample Jacobian of the outputs w.r.t. the inputs: (B, o, m)."""
    leaves, Y = leaves_of(model, "input_jacobian"), model(X)
    dense_chunk(Y.shape + model.input.shape[1:], "input_jacobian", 2 * Y.shape[1] * _width(leaves) * len(Y))
    return finite_result(model.input_jacobian(), "input_jacobian")


def _hessian_memory(leaves):
    """Floats of hessian_blocks' intermediates, (per sample, fixed): at a leaf (input m,
    output o, w = max(m, o), p parameters, P after it) its Gram block (2 o p through
    param_jacobian, 2 (m^2 + o^2) by structure), after the first leaf four (P + p, w)
    and four (w, w) arrays per sample; fixed, the (p, p + P) blocks."""
    most, later, fixed = 0, 0, 0
    for mod in reversed(leaves):
        p, m, o = mod.num_params, mod.input.shape[1], mod.output.shape[1]
        gram = 2 * o * p if type(mod).gram_params is Module.gram_params else 2 * (m * m + o * o)
        w = max(m, o)
        most = max(most, gram + (4 * (later + p) * w + 4 * w * w if mod is not leaves[0] else 0))
        fixed, later = max(fixed, p * (p + later)), later + p
    return most, fixed


def _hessian(model, loss, X, T, who, residual):
    leaves = model_and_loss(model, loss, who, X, T)
    n, (per_sample, fixed) = model.num_params, _hessian_memory(leaves)
    out, X, T = None, model.input, loss.T                # the first chunk writes it, the others add
    for _ in _chunks(len(X), who, (n, n), per_sample, lambda rows: loss.at(model(X[rows]), T[rows]),
                     fixed):
        share = len(loss.T) / len(X)                  # the chunk's share of the batch mean
        out = hessian_blocks(leaves, loss.backward() * share if residual else None,
                             loss.hessian() * share, out=out)[0]
    return finite_result(out, who)


def hessian(model, loss, X, T):
    """The full Hessian of the batch loss w.r.t. all parameters: (n, n),
    cross-layer blocks included. Exact: h = J^T h_L J + sum_k g_k h_N_k,
    assembled module by module (``minigrad.chain.hessian_blocks``)."""
    return _hessian(model, loss, X, T, "hessian", residual=True)


def gauss_newton(model, loss, X, T):
    """The Gauss-Newton matrix (1/B) sum_b J_b^T H_L,b J_b: (n, n), where J_b is
    the per-sample Jacobian (o, n) and H_L,b the loss Hessian at y_b."""
    return _hessian(model, loss, X, T, "gauss_newton", residual=False)


def _product(model, loss, X, T, v, who, residual):
    leaves = model_and_loss(model, loss, who, X, T)
    params = [P for mod in leaves for P in mod.parameters()]
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
