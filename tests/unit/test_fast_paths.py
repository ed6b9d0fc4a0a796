"""The fast paths of minigrad.derivatives (Kronecker blocks, batched Jacobian
rows, cached activation derivatives) equal the references: autograd, and the
generic path built from each module's public methods only."""
import autograd
import autograd.numpy as anp
import numpy as np
import pytest

import minigrad as mg
from minigrad.module import Module
from references import model_fn

TOL = 1e-10          # relative to the largest entry


class Softsign(mg.Elementwise):
    """A learner's activation: only f, f', f''. y = x / (1 + |x|)."""

    def f(self, x):
        return x / (1 + np.abs(x))

    def df(self, x):
        return 1 / (1 + np.abs(x)) ** 2

    def d2f(self, x):
        return -2 * np.sign(x) / (1 + np.abs(x)) ** 3


class Generic(Module):
    """Wraps a module and exposes only the public protocol, so every internal
    fast path falls back to its generic default (the einsum reference)."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.params = inner.params
        self.in_features = inner.in_features

    def __call__(self, X):
        self.X = X
        return self.inner(X)

    def out_features(self, m):
        return self.inner.out_features(m)

    def forward(self, X):
        return self.inner.forward(X)

    def input_jacobian(self):
        return self.inner.input_jacobian()

    def param_jacobian(self):
        return self.inner.param_jacobian()

    def second_contraction(self, G):
        return self.inner.second_contraction(G)


def close(a, b):
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape
    assert np.max(np.abs(a - b)) <= TOL * max(np.max(np.abs(b)), 1.0)


def build(arch, seed=0):
    rng = np.random.default_rng(seed)
    if arch == "mlp":
        mods = [mg.Linear(5, 4, rng=rng), mg.Tanh(), mg.Linear(4, 3, rng=rng)]
    elif arch == "deep":
        mods = [mg.Linear(5, 4, rng=rng), mg.Sigmoid(), mg.Linear(4, 4, rng=rng), Softsign(),
                mg.Linear(4, 3, rng=rng)]
    elif arch == "softmax_head":
        mods = [mg.Linear(5, 4, rng=rng), mg.Tanh(), mg.Linear(4, 3, rng=rng), mg.Softmax()]
    elif arch == "activation_first":
        mods = [Softsign(), mg.Linear(5, 3, rng=rng), mg.Tanh()]
    else:
        raise ValueError(arch)
    return mods


ARCHS = ["mlp", "deep", "softmax_head", "activation_first"]


def loss_for(arch):
    return mg.NLLLoss() if arch == "softmax_head" else mg.SoftmaxCrossEntropy()


def data(seed=1, B=6):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((B, 5)), rng.integers(0, 3, B), rng.standard_normal


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("fn", ["grad", "hessian", "gauss_newton", "hvp", "ggn_vp",
                                "jacobian", "per_sample_grads", "input_jacobian"])
def test_fast_path_equals_generic_path(arch, fn):
    X, T, _ = data()
    fast = mg.Sequential(*build(arch))
    slow = mg.Sequential(*[Generic(m) for m in build(arch)])
    v = np.random.default_rng(2).standard_normal(fast.num_params)
    if fn in ("jacobian", "input_jacobian"):
        args = (X,)
    elif fn in ("hvp", "ggn_vp"):
        args = (loss_for(arch), X, T, v)
    else:
        args = (loss_for(arch), X, T)
    close(getattr(mg, fn)(fast, *args), getattr(mg, fn)(slow, *args))


def _softsign_np(x):
    return x / (1 + anp.abs(x))


@pytest.mark.parametrize("arch", ["mlp", "deep"])
def test_hessian_and_jacobian_equal_autograd(arch):
    X, T, _ = data(B=7)
    model = mg.Sequential(*build(arch))
    w = mg.parameters_to_vector(model)
    Tm = np.eye(3)[T]
    if arch == "mlp":
        f = model_fn(model)
    else:
        leaves = model.modules

        def f(w, X):
            k, Z = 0, X
            for mod in leaves:
                if isinstance(mod, mg.Linear):
                    o, m = mod.W.shape
                    W = anp.reshape(w[k:k + o * m], (o, m))
                    Z = anp.dot(Z, W.T) + w[k + o * m:k + o * m + o]
                    k += o * m + o
                elif isinstance(mod, mg.Sigmoid):
                    Z = 1 / (1 + anp.exp(-Z))
                else:
                    Z = _softsign_np(Z)
            return Z

    def L(w):
        Y = f(w, X)
        zmax = anp.max(Y, axis=1, keepdims=True)
        lse = zmax[:, 0] + anp.log(anp.sum(anp.exp(Y - zmax), axis=1))
        return anp.mean(lse - anp.sum(Tm * Y, axis=1))

    loss = mg.SoftmaxCrossEntropy()
    close(mg.hessian(model, loss, X, T), autograd.hessian(L)(w))
    close(mg.jacobian(model, X), autograd.jacobian(lambda w: f(w, X))(w))
    v = np.random.default_rng(3).standard_normal(w.size)
    close(mg.hvp(model, loss, X, T, v), autograd.hessian_vector_product(L)(w, v))


def test_linear_blocks_equal_their_dense_formulas():
    """gram_params, second_contraction and vjp_params_sum of Linear against
    the explicit J_theta (B, o, p) and the einsum definitions."""
    rng = np.random.default_rng(4)
    lin = mg.Linear(3, 2, rng=rng)
    X = rng.standard_normal((5, 3))
    lin(X)
    J = lin.param_jacobian()
    A = rng.standard_normal((5, 2, 2))
    H = A @ A.transpose(0, 2, 1)
    close(lin.gram_params(H), np.einsum("bop,boq,bqr->pr", J, H, J))
    K = rng.standard_normal((5, 2, 7))
    close(lin.vjp_params_sum(K), np.einsum("bop,bok->pk", J, K))
    G = rng.standard_normal((5, 2))
    Cxt = lin.second_contraction(G)[1]
    ref = np.einsum("bk,jl->bjkl", G, np.eye(3)).reshape(5, 3, 6)
    close(Cxt, np.concatenate([ref, np.zeros((5, 3, 2))], axis=2))


def test_cached_derivatives_follow_a_new_input_and_an_in_place_change():
    """The per-batch cache of f' must never serve a stale input."""
    act = mg.Tanh()
    X = np.random.default_rng(5).standard_normal((4, 3))
    act(X)
    G = np.ones((4, 3))
    first = act.vjp(G)[0]
    X2 = X.copy()
    X2[0, 0] += 1.0
    act(X2)
    close(act.vjp(G)[0], G * (1 - np.tanh(X2) ** 2))
    X2[1, 1] += 1.0                  # the same array, changed in place, called again
    act(X2)
    close(act.vjp(G)[0], G * (1 - np.tanh(X2) ** 2))
    assert not np.allclose(first, act.vjp(G)[0])
