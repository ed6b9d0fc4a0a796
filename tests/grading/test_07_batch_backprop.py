"""Graded tests of the batch backprop exercises (solutions/07_batch_backprop.ipynb).

Every argument is plain numpy data made here; every reference is computed here with
autograd (or minigrad, for the flattened per-sample gradients).
"""
import autograd
import autograd.numpy as anp
import numpy as np
import pytest

import minigrad
from gradetools import NoAutodiff, close

NOTEBOOK = "07_batch_backprop"


# ---------------------------------------------------------------- no automatic differentiation
@pytest.fixture(scope="module")
def nb(nb):
    """The conftest's notebook, wrapped: automatic differentiation is unavailable in it."""
    return NoAutodiff(nb)


FORBID_LINEAR = ("minigrad.Linear.vjp", "minigrad.Linear.backward",
                 "minigrad.layers.Linear.vjp", "minigrad.layers.Linear.backward")
FORBID_72 = FORBID_LINEAR + ("minigrad.grad", "minigrad.derivatives.grad",
                             "minigrad.per_sample_grads", "minigrad.derivatives.per_sample_grads",
                             "minigrad.Sequential.vjp", "minigrad.Sequential.backward")
FORBID_73 = ("minigrad.per_sample_grads", "minigrad.derivatives.per_sample_grads",
             "minigrad.Linear.vjp_params_many", "minigrad.Linear.param_jacobian")


# ---------------------------------------------------------------- 7.1
def linear_setup(seed, B=5, m=4, o=3):
    rng = np.random.default_rng(seed)
    A, W, b = rng.standard_normal((B, m)), rng.standard_normal((o, m)), rng.standard_normal(o)
    return A, W, b, rng.standard_normal((B, o))


def probe_gradients(A, W, b, G_Z):
    """Gradients of <G_Z, A W^T + 1 b^T>_F w.r.t. W, b and A: exactly the backward step."""
    probe = lambda A_, W_, b_: anp.sum(G_Z * (anp.dot(A_, W_.T) + b_))
    return [autograd.grad(probe, k)(A, W, b) for k in (1, 2, 0)]


@pytest.mark.exercise("7.1", points=3)
@pytest.mark.parametrize("B, m, o", [(5, 4, 3), (1, 2, 3), (6, 1, 1)])
def test_linear_backward_matches_autograd(nb, B, m, o):
    A, W, b, G_Z = linear_setup(71, B, m, o)
    got = nb.call("linear_backward", A, W, G_Z, forbid=FORBID_LINEAR)
    assert len(got) == 3
    for g, want in zip(got, probe_gradients(A, W, b, G_Z)):
        assert close(g, want)


# ---------------------------------------------------------------- 7.2
def mlp_setup(seed, widths, B):
    rng = np.random.default_rng(seed)
    Ws = [rng.standard_normal((d_out, d_in)) / np.sqrt(d_in)
          for d_in, d_out in zip(widths[:-1], widths[1:])]
    bs = [rng.standard_normal(d) for d in widths[1:]]
    return rng.standard_normal((B, widths[0])), rng.standard_normal((B, widths[-1])), Ws, bs


def mlp_loss(params, X, T):
    """The batch MSE loss of the tanh MLP with params [W1, b1, W2, b2, ...]."""
    A, L = X, len(params) // 2
    for l in range(L):
        Z = anp.dot(A, params[2 * l].T) + params[2 * l + 1]
        A = anp.tanh(Z) if l < L - 1 else Z
    return anp.mean(0.5 * anp.sum((A - T) ** 2, axis=1))


@pytest.mark.exercise("7.2", points=4)
@pytest.mark.parametrize("widths, B", [([3, 5, 2], 6), ([4, 3, 5, 2], 7), ([3, 2], 4),
                                       ([2, 4, 3], 1)])
def test_mlp_backward_matches_autograd(nb, widths, B):
    X, T, Ws, bs = mlp_setup(73, widths, B)
    loss, G_Ws, G_bs = nb.call("mlp_backward", X, T, Ws, bs, forbid=FORBID_72)
    params = [P for W, b in zip(Ws, bs) for P in (W, b)]
    assert close(loss, mlp_loss(params, X, T))
    want = autograd.grad(mlp_loss)(params, X, T)
    assert len(G_Ws) == len(Ws) and len(G_bs) == len(bs)
    for l in range(len(Ws)):
        assert close(G_Ws[l], want[2 * l])
        assert close(G_bs[l], want[2 * l + 1])


@pytest.mark.exercise("7.2", points=4)
def test_mlp_backward_matches_minigrad(nb):
    rng = np.random.default_rng(74)
    net = minigrad.Sequential(minigrad.Linear(3, 4, rng=0), minigrad.Tanh(),
                              minigrad.Linear(4, 2, rng=1))
    X, T = rng.standard_normal((5, 3)), rng.standard_normal((5, 2))
    Ws, bs = [net.modules[0].W, net.modules[2].W], [net.modules[0].b, net.modules[2].b]
    _, G_Ws, G_bs = nb.call("mlp_backward", X, T, Ws, bs, forbid=FORBID_72)
    flat = np.concatenate([np.ravel(G_Ws[0]), G_bs[0], np.ravel(G_Ws[1]), G_bs[1]])
    assert close(flat, minigrad.grad(net, minigrad.MSELoss(), X, T))


# ---------------------------------------------------------------- 7.3
def per_sample_setup(seed, B=5, m=4, o=3):
    """A linear layer with MSE: its input, the batch loss's G_Z, and minigrad's per-sample grads."""
    rng = np.random.default_rng(seed)
    layer, loss = minigrad.Linear(m, o, rng=seed), minigrad.MSELoss()
    X, T = rng.standard_normal((B, m)), rng.standard_normal((B, o))
    loss(layer(X), T)
    return X, loss.backward(), minigrad.per_sample_grads(layer, loss, X, T)


@pytest.mark.exercise("7.3", points=3)
@pytest.mark.parametrize("B, m, o", [(5, 4, 3), (1, 3, 2), (6, 1, 4)])
def test_per_sample_grads_match_minigrad(nb, B, m, o):
    X, G_Z, want = per_sample_setup(76, B, m, o)
    assert close(nb.call("linear_per_sample_grads", X, G_Z, forbid=FORBID_73), want)


@pytest.mark.exercise("7.3", points=3)
def test_per_sample_grads_match_autograd(nb):
    # each sample's own loss, differentiated with respect to (W, b)
    rng = np.random.default_rng(77)
    X, T = rng.standard_normal((4, 3)), rng.standard_normal((4, 2))
    W, b = rng.standard_normal((2, 3)), rng.standard_normal(2)

    def losses(w):
        Y = anp.dot(X, anp.reshape(w[:6], (2, 3)).T) + w[6:]
        return 0.5 * anp.sum((Y - T) ** 2, axis=1)
    G_Z = (X @ W.T + b - T) / 4                             # gradient of the batch mean
    got = nb.call("linear_per_sample_grads", X, G_Z, forbid=FORBID_73)
    assert close(got, autograd.jacobian(losses)(np.concatenate([W.ravel(), b])))


@pytest.mark.exercise("7.3", points=3)
def test_per_sample_grad_norms(nb):
    X, G_Z, want = per_sample_setup(78)
    assert close(nb.call("per_sample_grad_norms", X, G_Z, forbid=FORBID_73),
                 np.linalg.norm(want, axis=1))


# ---------------------------------------------------------------- 7.4
def ce_per_sample(Z, T):
    zmax = anp.max(Z, axis=1, keepdims=True)
    return zmax[:, 0] + anp.log(anp.sum(anp.exp(Z - zmax), axis=1)) - anp.sum(T * Z, axis=1)


def ce_setup(seed, B=4, d=3):
    rng = np.random.default_rng(seed)
    Z, T = rng.standard_normal((B, d)), np.eye(d)[rng.integers(0, d, B)]
    J = autograd.jacobian(lambda V: ce_per_sample(V, T))(Z).reshape(B, B * d)
    rows = np.einsum("bbd->bd", J.reshape(B, B, d))              # the diagonal blocks
    return Z, T, J, rows


@pytest.mark.exercise("7.4", points=3)
@pytest.mark.parametrize("B, d", [(4, 3), (1, 5), (5, 1)])
def test_per_sample_loss_jacobian_matches_autograd(nb, B, d):
    _, _, J, rows = ce_setup(80, B, d)
    assert close(nb.call("per_sample_loss_jacobian", rows), J)


@pytest.mark.exercise("7.4", points=3)
def test_batch_gradient_matches_autograd(nb):
    Z, T, J, _ = ce_setup(81)
    want = autograd.grad(lambda V: anp.mean(ce_per_sample(V, T)))(Z)
    assert close(nb.call("batch_gradient", J), want)


@pytest.mark.exercise("7.4", points=3)
def test_batch_gradient_of_any_jacobian(nb):
    # not block diagonal: the mean of the rows, reshaped
    J = np.random.default_rng(82).standard_normal((3, 6))
    assert close(nb.call("batch_gradient", J), J.mean(axis=0).reshape(3, 2))


@pytest.mark.exercise("7.4", points=3)
def test_batch_jacobian_round_trip(nb):
    rows = np.random.default_rng(83).standard_normal((5, 2))
    got = nb.eval("batch_gradient(per_sample_loss_jacobian(rows))", rows=rows)
    assert close(got, rows / 5)