"""Graded tests of the matching-loss exercises (solutions/06_matching_losses.ipynb).

The learner's losses run in the notebook's kernel, alone or inside minigrad models built
there; every reference is computed here with autograd.
"""
import autograd
import autograd.numpy as anp
import numpy as np
import pytest

import minigrad
from gradetools import NoAutodiff, close

NOTEBOOK = "06_matching_losses"


# ---------------------------------------------------------------- no automatic differentiation
@pytest.fixture(scope="module")
def nb(nb):
    """The conftest's notebook, wrapped: automatic differentiation is unavailable in it."""
    return NoAutodiff(nb)


FORBID_SOFTMAX = ("minigrad.Softmax", "minigrad.activations.Softmax",
                  "minigrad.activations.softmax", "minigrad.SoftmaxCrossEntropy",
                  "minigrad.losses.SoftmaxCrossEntropy")


def per_sample(full):
    """(B, o, B, m) Jacobian of a row-wise map -> its per-sample blocks (B, o, m)."""
    return np.einsum("bibj->bij", full)


def softmax_rows(Z):
    E = anp.exp(Z - anp.max(Z, axis=1, keepdims=True))
    return E / anp.sum(E, axis=1, keepdims=True)


def softplus(Z):
    return anp.logaddexp(0.0, Z)


# per-sample losses l(z_b, t_b) -> (B,), written with autograd.numpy
def bce(Z, T):
    return anp.sum(softplus(Z) - T * Z, axis=1)


def poisson(Z, T):
    return anp.sum(anp.exp(Z) - T * Z, axis=1)


def derivatives(per_sample_loss, Z, T):
    """value (B,), gradient (B, o) and Hessians (B, o, o) of each sample's loss."""
    total = lambda V: anp.sum(per_sample_loss(V, T))          # samples are independent
    return per_sample_loss(Z, T), autograd.grad(total)(Z), per_sample(autograd.hessian(total)(Z))


# The model of the "plugs into minigrad" tests, built in the kernel, and its twin here.
MODEL = ("minigrad.Sequential(minigrad.Linear(3, 4, rng=0), minigrad.Tanh(), "
         "minigrad.Linear(4, 3, rng=1))")


def model_reference(X):
    first, last = minigrad.Linear(3, 4, rng=0), minigrad.Linear(4, 3, rng=1)
    w = np.concatenate([first.W.ravel(), first.b, last.W.ravel(), last.b])

    def logits(v):
        W1, b1 = anp.reshape(v[:12], (4, 3)), v[12:16]
        W2, b2 = anp.reshape(v[16:28], (3, 4)), v[28:31]
        return anp.dot(anp.tanh(anp.dot(X, W1.T) + b1), W2.T) + b2
    return w, logits


# ---------------------------------------------------------------- 6.1
@pytest.mark.exercise("6.1", points=3)
@pytest.mark.parametrize("B, o", [(4, 3), (1, 5), (3, 2)])
def test_softmax_jacobians_match_autograd(nb, B, o):
    Z = 2.0 * np.random.default_rng(61).standard_normal((B, o))
    got = nb.call("softmax_jacobians", Z, forbid=FORBID_SOFTMAX)
    assert close(got, per_sample(autograd.jacobian(softmax_rows)(Z)))


@pytest.mark.exercise("6.1", points=3)
def test_softmax_jacobians_are_symmetric_with_zero_row_sums(nb):
    Z = np.random.default_rng(62).standard_normal((5, 4))
    J = np.asarray(nb.call("softmax_jacobians", Z, forbid=FORBID_SOFTMAX), dtype=float)
    assert J.shape == (5, 4, 4)
    assert close(J, J.transpose(0, 2, 1))
    assert close(J.sum(axis=2), np.zeros((5, 4)))


@pytest.mark.exercise("6.1", points=3)
def test_softmax_jacobians_are_stable(nb):
    Z = np.random.default_rng(63).standard_normal((3, 4))
    want = per_sample(autograd.jacobian(softmax_rows)(Z))
    assert close(nb.call("softmax_jacobians", Z + 1e4, forbid=FORBID_SOFTMAX), want)
    far = np.array([[1e4, -1e4, 0.0]])
    got = np.asarray(nb.call("softmax_jacobians", far, forbid=FORBID_SOFTMAX), dtype=float)
    assert close(got, np.zeros((1, 3, 3)))                 # p = (1, 0, 0) is flat


# ---------------------------------------------------------------- 6.2
def bce_batch(seed, B=6, o=3):
    rng = np.random.default_rng(seed)
    return 3.0 * rng.standard_normal((B, o)), rng.uniform(size=(B, o))


@pytest.mark.exercise("6.2", points=4)
@pytest.mark.parametrize("k, method", [(0, "value_per_sample"), (1, "grad_per_sample"),
                                       (2, "hess_per_sample")])
def test_bce_per_sample_derivatives(nb, k, method):
    Z, T = bce_batch(64)
    got = nb.eval(f"BCEWithLogits().{method}(Z, T)", Z=Z, T=T)
    assert close(got, derivatives(bce, Z, T)[k])


@pytest.mark.exercise("6.2", points=4)
def test_bce_is_stable_for_large_logits(nb):
    Z = np.array([[-1e4, 1e4, -1e4, 1e4, 0.0]])
    T = np.array([[0.0, 1.0, 1.0, 0.0, 0.5]])
    value, g, h = nb.eval("[BCEWithLogits().value_per_sample(Z, T), "
                          "BCEWithLogits().grad_per_sample(Z, T), "
                          "BCEWithLogits().hess_per_sample(Z, T)]", Z=Z, T=T)
    assert close(value, [2e4 + np.log(2.0)])
    assert close(g, [[0.0, 0.0, -1.0, 1.0, 0.0]])
    assert close(h, np.diag([0.0, 0.0, 0.0, 0.0, 0.25])[None])


@pytest.mark.exercise("6.2", points=4)
def test_bce_batch_loss_and_gradient(nb):
    Z, T = bce_batch(65)
    value, G = nb.eval("(lambda loss: (loss(Z, T), loss.backward()))(BCEWithLogits())", Z=Z, T=T)
    total = lambda V: anp.mean(bce(V, T))
    assert close(value, total(Z))
    assert close(G, autograd.grad(total)(Z))


@pytest.mark.exercise("6.2", points=4)
def test_bce_hessian_through_minigrad(nb):
    rng = np.random.default_rng(66)
    X, T = rng.standard_normal((6, 3)), (rng.uniform(size=(6, 3)) < 0.5).astype(float)
    w, logits = model_reference(X)
    got = nb.eval(f"minigrad.hessian({MODEL}, BCEWithLogits(), X, T)", X=X, T=T)
    assert close(got, autograd.hessian(lambda v: anp.mean(bce(logits(v), T)))(w))


# ---------------------------------------------------------------- 6.3
def poisson_batch(seed, B=6, o=3):
    rng = np.random.default_rng(seed)
    Z, T = rng.standard_normal((B, o)), rng.poisson(2.0, size=(B, o)).astype(float)
    T[0, 0] = 0.0
    return Z, T


def poisson_cuts_reference(Z, T):
    """(H_match, G_rate, R_rate) per sample, each assembled from autograd's derivatives."""
    def rate_loss(lam, t):
        return anp.sum(lam - t * anp.log(lam))
    out = []
    for z, t in zip(Z, T):
        H_match = autograd.hessian(lambda v: anp.sum(anp.exp(v) - t * v))(z)
        J = autograd.jacobian(anp.exp)(z)
        G_rate = J.T @ autograd.hessian(rate_loss)(anp.exp(z), t) @ J
        g = autograd.grad(rate_loss)(anp.exp(z), t)
        R_rate = np.einsum("k,kij->ij", g, autograd.jacobian(autograd.jacobian(anp.exp))(z))
        out.append((H_match, G_rate, R_rate))
    return [np.stack(parts) for parts in zip(*out)]


@pytest.mark.exercise("6.3", points=3)
@pytest.mark.parametrize("k, name", [(0, "matching Hessian"), (1, "Gauss-Newton term of the rate cut"),
                                     (2, "residual term of the rate cut")])
def test_poisson_cuts(nb, k, name):
    Z, T = poisson_batch(67)
    got = nb.call("poisson_cuts", Z, T)
    assert close(got[k], poisson_cuts_reference(Z, T)[k]), name


@pytest.mark.exercise("6.3", points=3)
@pytest.mark.parametrize("B, o", [(1, 1), (4, 5)])
def test_poisson_cuts_other_shapes(nb, B, o):
    Z, T = poisson_batch(68, B, o)
    got = nb.call("poisson_cuts", 3.0 * Z, T)
    want = poisson_cuts_reference(3.0 * Z, T)
    assert all(close(g, w) for g, w in zip(got, want))


# ---------------------------------------------------------------- 6.4
def softmax_ce(Z, T):
    zmax = anp.max(Z, axis=1, keepdims=True)
    return zmax[:, 0] + anp.log(anp.sum(anp.exp(Z - zmax), axis=1)) - anp.sum(T * Z, axis=1)


PER_SAMPLE = {"identity": lambda Z, T: anp.sum(0.5 * Z ** 2 - T * Z, axis=1),
              "sigmoid": bce, "exp": poisson, "softmax": softmax_ce}


def matching_batch(seed, B=5, o=3):
    rng = np.random.default_rng(seed)
    Z = 2.0 * rng.standard_normal((B, o))
    return Z, np.asarray(softmax_rows(rng.standard_normal((B, o))))   # rows sum to 1


@pytest.mark.exercise("6.4", points=3)
@pytest.mark.parametrize("link", ["identity", "sigmoid", "exp", "softmax"])
def test_matching_gradient(nb, link):
    Z, T = matching_batch(70)
    G, _ = nb.call("matching_derivatives", link, Z, T, forbid=FORBID_SOFTMAX)
    assert close(G, derivatives(PER_SAMPLE[link], Z, T)[1])


@pytest.mark.exercise("6.4", points=3)
@pytest.mark.parametrize("link", ["identity", "sigmoid", "exp", "softmax"])
def test_matching_hessian(nb, link):
    Z, T = matching_batch(71)
    _, H = nb.call("matching_derivatives", link, Z, T, forbid=FORBID_SOFTMAX)
    assert close(H, derivatives(PER_SAMPLE[link], Z, T)[2])


@pytest.mark.exercise("6.4", points=3)
@pytest.mark.parametrize("link", ["sigmoid", "softmax"])
def test_matching_derivatives_are_stable(nb, link):
    Z = np.array([[1e4, -1e4, 0.0]])
    T = np.array([[0.0, 0.0, 1.0]])
    G, H = nb.call("matching_derivatives", link, Z, T, forbid=FORBID_SOFTMAX)
    if link == "sigmoid":
        want_G, want_H = [[1.0, 0.0, -0.5]], np.diag([0.0, 0.0, 0.25])[None]
    else:
        want_G, want_H = [[1.0, 0.0, -1.0]], np.zeros((1, 3, 3))
    assert close(G, want_G) and close(H, want_H)