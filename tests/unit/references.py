"""autograd references for minigrad's modules, losses and whole models.

autograd traces autograd.numpy only, so every reference here is a small
function written with it, independent of minigrad's own code.
"""
import autograd.numpy as anp
import numpy as np

import minigrad as mg


def module_fn(mod):
    """y = f(X, *params) for a leaf module, in autograd.numpy."""
    if isinstance(mod, mg.Linear):
        return lambda X, W, b: anp.dot(X, W.T) + b
    if isinstance(mod, mg.Tanh):
        return lambda X: anp.tanh(X)
    if isinstance(mod, mg.Sigmoid):
        return lambda X: 1.0 / (1.0 + anp.exp(-X))
    if isinstance(mod, mg.ReLU):
        return lambda X: anp.maximum(X, 0.0)
    if isinstance(mod, mg.Identity):
        return lambda X: X
    if isinstance(mod, mg.Softmax):
        def softmax(X):
            E = anp.exp(X - anp.max(X, axis=1, keepdims=True))
            return E / anp.sum(E, axis=1, keepdims=True)
        return softmax
    raise TypeError(f"no reference for {mod!r}")


def loss_fn(loss):
    """L(Y, T) = mean_b l(y_b, t_b) with T as float rows, in autograd.numpy."""
    if isinstance(loss, mg.MSELoss):
        return lambda Y, T: anp.mean(0.5 * anp.sum((Y - T) ** 2, axis=1))
    if isinstance(loss, mg.SoftmaxCrossEntropy):
        def sce(Y, T):
            zmax = anp.max(Y, axis=1, keepdims=True)
            lse = zmax[:, 0] + anp.log(anp.sum(anp.exp(Y - zmax), axis=1))
            return anp.mean(anp.sum(T, axis=1) * lse - anp.sum(T * Y, axis=1))
        return sce
    if isinstance(loss, mg.NLLLoss):
        return lambda Y, T: anp.mean(-anp.sum(T * anp.log(Y), axis=1))
    raise TypeError(f"no reference for {loss!r}")


def model_fn(model):
    """y = N(X; w) with w the flat parameter vector, in autograd.numpy."""
    leaves = model.modules if isinstance(model, mg.Sequential) else [model]
    layout = []
    for mod in leaves:
        layout.append((module_fn(mod), [P.shape for P in mod.parameters()]))

    def f(w, X):
        k = 0
        for fn, shapes in layout:
            params = []
            for shape in shapes:
                size = int(np.prod(shape))
                params.append(anp.reshape(w[k:k + size], shape))
                k += size
            X = fn(X, *params)
        return X
    return f


def objective(model, loss, X, T):
    """w -> batch loss, for autograd.grad / autograd.hessian."""
    f, L = model_fn(model), loss_fn(loss)
    o = model(X).shape[1]
    T = np.asarray(T)
    rows = np.eye(o)[T] if T.ndim == 1 else T.astype(float)
    return lambda w: L(f(w, X), rows)


def relative_error(got, want):
    """max |got - want| / max(1, max |want|): the measure of the 1e-10 contract."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, (got.shape, want.shape)
    return float(np.max(np.abs(got - want), initial=0.0) / max(1.0, np.max(np.abs(want), initial=0.0)))
