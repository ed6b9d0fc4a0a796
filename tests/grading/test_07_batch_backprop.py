"""Graded tests of the batch backprop exercises (solutions/07_batch_backprop.ipynb).

Every argument is plain numpy data made here; every reference is computed here with
autograd. Each test checks every part of
an exercise's answer on one case, so that one wrong part costs the case.
"""
import autograd
import autograd.numpy as anp
import numpy as np
import pytest

from gradetools import NoAutodiff, WrongAnswer, expect, expect_choice, raises_value_error

NOTEBOOK = "07_batch_backprop"

#: the section of book/07_batch_backprop.ipynb each exercise practises, as its heading reads there
#: (the feedback pages link to it; tests/test_grader_feedback.py checks it exists)
SECTIONS = {
    "7.1": "Backprop in matrix form, with differentials",
    "7.2": "Backprop in matrix form, with differentials",
    "7.3": "Per-sample gradients",
    "7.4": r"Is $\partial \bar{\mathcal{L}} / \partial Z$ a Jacobian?",
    "7.5": "What the full batch Jacobian would cost",
}


@pytest.fixture(scope="module")
def nb(nb):
    """The conftest's notebook, wrapped: automatic differentiation is unavailable in it (advisory)."""
    return NoAutodiff(nb)


def parts(got, names, who):
    if not isinstance(got, (tuple, list)) or len(got) != len(names):
        raise WrongAnswer(f"{who} must return {len(names)} results ({', '.join(names)}), got {got!r:.80}")
    return got


def expect_named(name, got, want, **kwargs):
    try:
        expect(got, want, **kwargs)
    except AssertionError as exc:
        raise type(exc)(f"{name}: {exc}") from None


# ---------------------------------------------------------------- 7.1
def residual_case(seed, B, d):
    rng = np.random.default_rng(seed)
    A, W, b, G_Z = (rng.standard_normal((B, d)), rng.standard_normal((d, d)), rng.standard_normal(d),
                    rng.standard_normal((B, d)))
    return A, W, b, G_Z


def expect_residual(got, A, W, b, G_Z):
    def probe(A_, W_, b_):
        return anp.sum(G_Z * (A_ + anp.tanh(anp.dot(A_, W_.T) + b_)))
    G_S = G_Z * (1.0 - np.tanh(A @ W.T + b) ** 2)
    no_tanh = "misses the derivative of tanh (1 - tanh^2 at the pre-activation S)"
    G_W, G_b, G_A = parts(got, ("G_W", "G_b", "G_A"), "residual_backward")
    expect_named("G_W", G_W, autograd.grad(probe, 1)(A, W, b), variants={no_tanh: G_Z.T @ A})
    expect_named("G_b", G_b, autograd.grad(probe, 2)(A, W, b), variants={
        no_tanh: G_Z.sum(axis=0),
        "averages G_S over the batch: G_Z already holds the mean's 1/B, so G_b is the column sum of G_S":
        G_S.mean(axis=0)})
    expect_named("G_A", G_A, autograd.grad(probe, 0)(A, W, b), variants={
        "misses the skip connection: Z = A + tanh(S) passes G_Z straight to A": G_S @ W,
        no_tanh: G_Z + G_Z @ W})


@pytest.mark.exercise("7.1", points=3)
@pytest.mark.parametrize("B, d", [(5, 3), (1, 4), (6, 1), (3, 5), (4, 2), (7, 3), (2, 6), (5, 4), (3, 3)])
def test_residual_backward(nb, B, d):
    general = residual_case(70, 5, 3)                       # B = 1 or d = 1 alone would pass a wrong 1/B
    expect_residual(nb.call("residual_backward", *general), *general)
    args = residual_case(70 + 10 * B + d, B, d)
    expect_residual(nb.call("residual_backward", *args), *args)


@pytest.mark.exercise("7.1", points=3)
def test_residual_backward_rejects_shapes_that_do_not_fit(nb):
    A, W, b, G_Z = residual_case(79, 4, 3)
    expect_residual(nb.call("residual_backward", A, W, b, G_Z), A, W, b, G_Z)     # a positive case first
    raises_value_error(lambda: nb.call("residual_backward", A, W[:2], b, G_Z))


# ---------------------------------------------------------------- 7.2
def resnet_case(seed, B, d, L):
    rng = np.random.default_rng(seed)
    Ws = [0.5 * rng.standard_normal((d, d)) for _ in range(L)]
    bs = [rng.standard_normal(d) for _ in range(L)]
    return rng.standard_normal((B, d)), rng.integers(0, d, B), Ws, bs


def resnet_reference(X, labels, Ws, bs):
    d = X.shape[1]

    def loss(v, mean=True):
        A_ = X
        for l in range(len(Ws)):
            k = l * (d * d + d)
            A_ = A_ + anp.tanh(anp.dot(A_, anp.reshape(v[k:k + d * d], (d, d)).T) + v[k + d * d:k + d * d + d])
        M = anp.max(A_, axis=1, keepdims=True)
        per = M[:, 0] + anp.log(anp.sum(anp.exp(A_ - M), axis=1)) - A_[np.arange(len(X)), labels]
        return anp.mean(per) if mean else anp.sum(per)
    w = np.concatenate([part.ravel() for W, b in zip(Ws, bs) for part in (W, b)])
    return loss(w), autograd.grad(loss)(w)


def resnet_backward_at_outputs(X, labels, Ws, bs):
    """A wrong backward pass: tanh' taken at each block's output A_l instead of at its S_l."""
    B = len(X)
    As = [X]
    for W, b in zip(Ws, bs):
        As.append(As[-1] + np.tanh(As[-1] @ W.T + b))
    P = np.exp(As[-1] - As[-1].max(axis=1, keepdims=True))
    G = (P / P.sum(axis=1, keepdims=True) - np.eye(X.shape[1])[labels]) / B
    grads = []
    for l in range(len(Ws) - 1, -1, -1):
        G_S = G * (1.0 - As[l + 1] ** 2)
        grads = [G_S.T @ As[l], G_S.sum(axis=0)] + grads
        G = G + G_S @ Ws[l]
    return np.concatenate([g.ravel() for g in grads])


def expect_resnet(got, X, labels, Ws, bs):
    loss, G_Ws, G_bs = parts(got, ("loss", "G_Ws", "G_bs"), "resnet_backward")
    want_loss, want_grad = resnet_reference(X, labels, Ws, bs)
    expect_named("loss", loss, want_loss, B=len(X))
    if not isinstance(G_Ws, (list, tuple)) or not isinstance(G_bs, (list, tuple)) or len(G_Ws) != len(Ws) \
            or len(G_bs) != len(bs):
        raise WrongAnswer(f"resnet_backward must return one weight and one bias gradient per block ({len(Ws)})")
    flat = np.concatenate([np.ravel(np.asarray(p, dtype=float)) for G_W, G_b in zip(G_Ws, G_bs) for p in (G_W, G_b)])
    expect_named("gradient", flat, want_grad, B=len(X), variants={
        "takes tanh' at each block's output A_l = A_(l-1) + tanh(S_l); it belongs at the pre-activation S_l":
        resnet_backward_at_outputs(X, labels, Ws, bs)})


@pytest.mark.exercise("7.2", points=4)
@pytest.mark.parametrize("B, d, L", [(8, 3, 3), (1, 4, 2), (5, 2, 1), (6, 5, 2), (4, 3, 4), (7, 4, 1),
                                     (3, 6, 3), (9, 2, 2), (2, 3, 5)])
def test_resnet_backward(nb, B, d, L):
    general = resnet_case(80, 6, 3, 3)                      # beside every case: B = 1 or L = 1 alone proves little
    expect_resnet(nb.call("resnet_backward", *general), *general)
    args = resnet_case(80 + B + 10 * d + 100 * L, B, d, L)
    expect_resnet(nb.call("resnet_backward", *args), *args)


@pytest.mark.exercise("7.2", points=4)
def test_resnet_backward_rejects_bad_labels(nb):
    X, labels, Ws, bs = resnet_case(89, 4, 3, 2)
    expect_resnet(nb.call("resnet_backward", X, labels, Ws, bs), X, labels, Ws, bs)   # a positive case first
    raises_value_error(lambda: nb.call("resnet_backward", X, labels + 3, Ws, bs))


# ---------------------------------------------------------------- 7.3
def block_per_sample(seed, B, d):
    """A residual block's input, parameters and G_Z, and each sample's own gradient in (W, b)."""
    A, W, b, G_Z = residual_case(seed, B, d)

    def own(W_, b_, i):                    # sample i's loss has B g_i as its derivative in z_i
        return B * anp.sum(G_Z[i] * (A[i] + anp.tanh(anp.dot(W_, A[i]) + b_)))
    want = np.stack([np.concatenate([autograd.grad(own, 0)(W, b, i).ravel(), autograd.grad(own, 1)(W, b, i)])
                     for i in range(B)])
    return (A, W, b, G_Z), want


def expect_per_sample(nb, args, want):
    A, W, b, G_Z = args
    B, d = A.shape
    no_bias = "misses the bias part (the last d entries of each row)"
    rows = ("uses the rows of G_Z as they are: they carry the mean's 1/B, and sample i's own loss has "
            "B times row i as its derivative in z_i")
    no_tanh = "uses the rows of G_Z where the rows of G_S = G_Z * (1 - tanh^2(S)) belong: the gradient passes through tanh"
    through_Z = B * np.concatenate([(G_Z[:, :, None] * A[:, None, :]).reshape(B, -1), G_Z], axis=1)
    expect_named("residual_per_sample_grads", nb.call("residual_per_sample_grads", *args), want, B=B,
                 variants={no_bias: want[:, :d * d], rows: want / B, no_tanh: through_Z},
                 layout="(B, d d + d): per sample, W row-major then b")
    norms = np.linalg.norm(want, axis=1)
    expect_named("residual_grad_norms", nb.call("residual_grad_norms", *args), norms, B=B, variants={
        "misses the bias part of the gradient": np.linalg.norm(want[:, :d * d], axis=1),
        rows: norms / B, no_tanh: np.linalg.norm(through_Z, axis=1)})


@pytest.mark.exercise("7.3", points=3)
@pytest.mark.parametrize("B, d", [(5, 4), (1, 3), (6, 1), (4, 2), (3, 5), (7, 3), (2, 4), (8, 2), (5, 3)])
def test_residual_per_sample_grads_and_norms(nb, B, d):
    expect_per_sample(nb, *block_per_sample(75, 5, 4))      # beside every case: B = 1 alone passes a wrong 1/B
    expect_per_sample(nb, *block_per_sample(76 + B + 10 * d, B, d))


@pytest.mark.exercise("7.3", points=3)
def test_residual_per_sample_grads_reject_shapes_that_do_not_fit(nb):
    args, want = block_per_sample(79, 5, 3)
    expect_per_sample(nb, args, want)                                                # a positive case first
    A, W, b, G_Z = args
    raises_value_error(lambda: nb.call("residual_grad_norms", A, W, b, G_Z[:3]))


# ---------------------------------------------------------------- 7.4
def ce_hessians(seed, B, d):
    rng = np.random.default_rng(seed)
    Z, T = rng.standard_normal((B, d)), np.eye(d)[rng.integers(0, d, B)]

    def batch(v):
        V = anp.reshape(v, (B, d))
        M = anp.max(V, axis=1, keepdims=True)
        return anp.mean(M[:, 0] + anp.log(anp.sum(anp.exp(V - M), axis=1)) - anp.sum(T * V, axis=1))
    P = np.exp(Z - Z.max(axis=1, keepdims=True))
    P /= P.sum(axis=1, keepdims=True)
    h = P[:, :, None] * np.eye(d) - P[:, :, None] * P[:, None, :]
    return h, autograd.hessian(batch)(Z.ravel())


def expect_batch_hessian(got, h, want):
    B = h.shape[0]
    expect(got, want, B=B, variants={"is block diagonal without the mean's 1/B on each block": B * want},
           layout="(B d, B d): ravel(Z) row by row on both axes")


@pytest.mark.exercise("7.4", points=3)
@pytest.mark.parametrize("B, d", [(4, 3), (1, 5), (5, 2), (3, 4), (6, 3), (2, 2), (7, 4), (3, 6), (5, 5)])
def test_batch_loss_hessian(nb, B, d):
    h, want = ce_hessians(90, 4, 3)                         # beside every case: B = 1 alone passes without 1/B
    expect_batch_hessian(nb.call("batch_loss_hessian", h), h, want)
    h, want = ce_hessians(90 + B + 10 * d, B, d)
    expect_batch_hessian(nb.call("batch_loss_hessian", h), h, want)


@pytest.mark.exercise("7.4", points=3)
def test_batch_loss_hessian_of_general_symmetric_blocks_and_bad_input(nb):
    rng = np.random.default_rng(99)
    S = rng.standard_normal((3, 2, 2))
    h = S + S.transpose(0, 2, 1)
    want = np.zeros((6, 6))
    for i in range(3):
        want[2 * i:2 * i + 2, 2 * i:2 * i + 2] = h[i] / 3
    expect_batch_hessian(nb.call("batch_loss_hessian", h), h, want)
    raises_value_error(lambda: nb.call("batch_loss_hessian", h[:, :, :1]))


# ---------------------------------------------------------------- 7.5
@pytest.mark.exercise("7.5", points=1)
def test_hessian_nonzeros(nb):
    for B, d in [(32, 10), (4, 3), (100, 7)]:
        count, fraction = parts(nb.call("hessian_nonzeros", B, d), ("count", "fraction"), "hessian_nonzeros")
        expect_choice(count, B * d * d, "B diagonal blocks of d x d entries each: B d^2")
        expect_choice(fraction, 1 / B, "B d^2 of the (B d)^2 entries: the fraction 1/B")
