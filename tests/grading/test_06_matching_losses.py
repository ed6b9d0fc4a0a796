"""Graded tests of the matching-loss exercises (solutions/06_matching_losses.ipynb).

The learner's losses run in the notebook's kernel, alone or inside minigrad models built
there; every reference is computed here with autograd.
"""
import autograd
import autograd.numpy as anp
import numpy as np
import pytest

import minigrad
from gradetools import NoAutodiff, WrongAnswer, expect, expect_choices, raises_value_error

NOTEBOOK = "06_matching_losses"

#: the section of book/06_matching_losses.ipynb each exercise practises, as its heading reads there
#: (the feedback pages link to it; tests/test_grader_feedback.py checks it exists)
SECTIONS = {
    "6.1": "The softmax Jacobian",
    "6.2": "Why the pairs are called matching",
    "6.3": "At the output, Gauss-Newton equals the Hessian",
    "6.4": "Why the pairs are called matching",
    "6.5": "The Hessian does not depend on the target",
}


# ---------------------------------------------------------------- no automatic differentiation
@pytest.fixture(scope="module")
def nb(nb):
    """The conftest's notebook, wrapped: automatic differentiation is unavailable in it."""
    return NoAutodiff(nb)


def per_sample(full):
    """(B, o, B, m) Jacobian of a row-wise map -> its per-sample blocks (B, o, m)."""
    return np.einsum("bibj->bij", full)


def softmax_rows(Z):
    E = anp.exp(Z - anp.max(Z, axis=1, keepdims=True))
    return E / anp.sum(E, axis=1, keepdims=True)


def softplus(Z):
    return anp.logaddexp(0.0, Z)


# per-sample losses l(z_b, t_b) -> (B,), written with autograd.numpy
def bce(Z, T, w=1.0):
    """-sum_k [w t log sigma(z) + (1 - t) log(1 - sigma(z))] = sum_k (w t + 1 - t) softplus(z) - w t z."""
    return anp.sum((w * T + 1.0 - T) * softplus(Z) - w * T * Z, axis=1)


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
def log_softmax_reference(Z):
    def rows(V):
        M = anp.max(V, axis=1, keepdims=True)
        return V - M - anp.log(anp.sum(anp.exp(V - M), axis=1, keepdims=True))
    return per_sample(autograd.jacobian(rows)(Z))


def log_softmax_variants(Z):
    P = softmax_rows(Z)
    o = Z.shape[1]
    return {"is the Jacobian of softmax, not of log p = z - log sum exp z":
                P[:, :, None] * np.eye(o) - P[:, :, None] * P[:, None, :],
            "misses the identity: d z_i / d z_j = delta_ij": -np.broadcast_to(P[:, None, :], (len(Z), o, o))}


LAYOUT_61 = "(B, o, o): per sample, row i holds the derivatives of log p_i (numerator layout)"


@pytest.mark.exercise("6.1", points=3)
@pytest.mark.parametrize("B, o", [(4, 3), (1, 5), (3, 2), (5, 4), (2, 6), (6, 3), (3, 5), (4, 2)])
def test_log_softmax_jacobians(nb, B, o):
    Z = 2.0 * np.random.default_rng(61 + 7 * B + o).standard_normal((B, o))
    shifted = Z.copy()
    shifted[0] += 1e4                                   # log-softmax ignores a shift: it must stay exact
    expect(nb.call("log_softmax_jacobians", shifted), log_softmax_reference(Z),
           variants=log_softmax_variants(Z), layout=LAYOUT_61)


@pytest.mark.exercise("6.1", points=3)
def test_log_softmax_jacobians_are_stable(nb):
    Z = 2.0 * np.random.default_rng(62).standard_normal((3, 4))
    want = log_softmax_reference(Z)
    expect(nb.call("log_softmax_jacobians", Z + 1e4), want, variants=log_softmax_variants(Z))
    expect(nb.call("log_softmax_jacobians", Z - 1e4), want, variants=log_softmax_variants(Z))
    far = np.array([[0.0, 800.0, -800.0]])
    expect(nb.call("log_softmax_jacobians", far), np.array([[[1, -1, 0], [0, 0, 0], [0, -1, 1]]], float))


@pytest.mark.exercise("6.1", points=3)
def test_log_softmax_jacobians_reject_a_vector(nb):
    Z = np.random.default_rng(63).standard_normal((2, 3))
    expect(nb.call("log_softmax_jacobians", Z), log_softmax_reference(Z))        # a positive case first
    raises_value_error(lambda: nb.call("log_softmax_jacobians", Z[0]))


# ---------------------------------------------------------------- 6.2
BCE_METHODS = ("value_per_sample", "grad_per_sample", "hess_per_sample")
W_POS = 3.0                                              # a weight on the positives, as pos_weight


def expect_bce(nb, Z, T, w=W_POS, want=None):
    """Every method of the learner's WeightedBCEWithLogits(w) on (Z, T): one wrong method fails the case."""
    got = nb.eval("(lambda f: [f.value_per_sample(Z, T), f.grad_per_sample(Z, T), f.hess_per_sample(Z, T)])"
                  "(WeightedBCEWithLogits(w))", Z=Z, T=T, w=w)
    want = derivatives(lambda V, T_: bce(V, T_, w), Z, T) if want is None else want
    sig = 1 / (1 + np.exp(-np.clip(Z, -700, 700)))
    c = w * T + 1.0 - T
    unweighted = derivatives(bce, Z, T) if w != 1.0 else None
    variants = [{}, {"has the sign of the gradient reversed": -(c * sig - w * T),
                     "is w (sigma(z) - t): the weight multiplies the positives' term only": w * (sig - T)},
                {"is sigma(z) on the diagonal: the derivative of sigma is sigma (1 - sigma)":
                     (c * sig)[:, :, None] * np.eye(Z.shape[1])}]
    if unweighted is not None:
        for k, message in enumerate(["is the unweighted loss: w multiplies the t log p term",
                                     "is the unweighted gradient sigma(z) - t: w multiplies the t log p term",
                                     "is the unweighted Hessian: the weight changes it too"]):
            variants[k][message] = unweighted[k]
    for name, g, wt, v in zip(BCE_METHODS, got, want, variants):
        try:
            expect(g, wt, variants=v)
        except AssertionError as exc:
            raise type(exc)(f"{name}: {exc}") from None


@pytest.mark.exercise("6.2", points=4)
@pytest.mark.parametrize("seed, B, o, w", [(64, 6, 3, 3.0), (65, 1, 4, 0.5), (66, 4, 1, 2.0), (67, 5, 5, 10.0),
                                           (68, 3, 2, 1.0), (69, 2, 6, 4.0), (70, 7, 3, 0.2)])
def test_bce_every_method(nb, seed, B, o, w):
    expect_bce(nb, *bce_case(63, 5, 3))                  # beside every case: w = 1 or o = 1 alone proves little
    rng = np.random.default_rng(seed)
    Z = 3.0 * rng.standard_normal((B, o))
    Z[0, 0], Z[-1, -1] = 1e4, -1e4                      # logits far out: the loss must stay exact
    expect_bce(nb, Z, rng.uniform(size=(B, o)), w)


def bce_case(seed, B, o):
    rng = np.random.default_rng(seed)
    return 3.0 * rng.standard_normal((B, o)), (rng.uniform(size=(B, o)) < 0.4).astype(float)


@pytest.mark.exercise("6.2", points=4)
def test_bce_is_stable_for_large_logits(nb):
    Z = np.array([[-1e4, 1e4, -1e4, 1e4, 0.0]])
    T = np.array([[0.0, 1.0, 1.0, 0.0, 0.5]])
    w = W_POS                                           # c = w t + 1 - t: 1, 3, 3, 1, 2
    expect_bce(nb, Z, T, w, want=([(w + 1) * 1e4 + 2 * np.log(2.0) ], [[0.0, 0.0, -w, 1.0, 2 * 0.5 - 0.5 * w]],
                                  np.diag([0.0, 0.0, 0.0, 0.0, 2 * 0.25])[None]))


@pytest.mark.exercise("6.2", points=4)
def test_bce_hessian_through_minigrad(nb):
    rng = np.random.default_rng(71)
    X, T = rng.standard_normal((6, 3)), (rng.uniform(size=(6, 3)) < 0.5).astype(float)
    expect_bce(nb, 3.0 * rng.standard_normal((6, 3)), T)
    w, logits = model_reference(X)
    got = nb.eval(f"minigrad.hessian({MODEL}, WeightedBCEWithLogits(w), X, T)", X=X, T=T, w=W_POS)
    expect(got, autograd.hessian(lambda v: anp.mean(bce(logits(v), T, W_POS)))(w))


@pytest.mark.exercise("6.2", points=4)
def test_bce_rejects_targets_outside_0_1(nb):
    rng = np.random.default_rng(72)
    Z, T = rng.standard_normal((4, 3)), rng.uniform(size=(4, 3))
    expect_bce(nb, Z, T)                                                           # a positive case first
    raises_value_error(lambda: nb.eval("WeightedBCEWithLogits(2.0)(Z, T)", Z=Z, T=T + 1.5))


# ---------------------------------------------------------------- 6.3
def poisson_cuts_reference(Z, T):
    eye = np.eye(Z.shape[1])
    rate = np.exp(Z)
    return rate[:, :, None] * eye, T[:, :, None] * eye, (rate - T)[:, :, None] * eye


def expect_cuts(got, Z, T):
    if not isinstance(got, (tuple, list)) or len(got) != 3:
        raise WrongAnswer(f"poisson_cuts must return three arrays (H_match, G_rate, R_rate), got {got!r:.80}")
    eye = np.eye(Z.shape[1])
    want = poisson_cuts_reference(Z, T)
    variants = [{}, {"is h_rate alone: carry it to z with J_lambda = diag(e^z) on both sides":
                     (T / np.exp(2 * Z))[:, :, None] * eye},
                {"is the gradient in lambda alone: weight the second derivative of lambda by it":
                     (1 - T / np.exp(Z))[:, :, None] * eye}]
    for name, g, w, v in zip(("H_match", "G_rate", "R_rate"), got, want, variants):
        try:
            expect(g, w, variants=v)
        except AssertionError as exc:
            raise type(exc)(f"{name}: {exc}") from None


def poisson_check_with_autograd():
    """The closed forms above against autograd on one case (run once, at import)."""
    rng = np.random.default_rng(0)
    z, t = rng.standard_normal(3), np.array([0.0, 2.0, 5.0])

    def rate_loss(lam):
        return anp.sum(lam - t * anp.log(lam))
    J = autograd.jacobian(anp.exp)(z)
    G = J.T @ autograd.hessian(rate_loss)(anp.exp(z)) @ J
    R = np.einsum("k,kij->ij", autograd.grad(rate_loss)(anp.exp(z)), autograd.jacobian(autograd.jacobian(anp.exp))(z))
    H = autograd.hessian(lambda v: anp.sum(anp.exp(v) - t * v))(z)
    ref = poisson_cuts_reference(z[None], t[None])
    assert all(np.allclose(a, b[0]) for a, b in zip((H, G, R), ref))


poisson_check_with_autograd()


@pytest.mark.exercise("6.3", points=3)
@pytest.mark.parametrize("B, o", [(6, 3), (1, 4), (4, 5), (3, 1), (5, 2), (2, 6), (7, 3), (3, 3), (4, 4)])
def test_poisson_cuts(nb, B, o):
    rng = np.random.default_rng(73 + 10 * B + o)
    Z, T = rng.standard_normal((B, o)), rng.poisson(2.0, size=(B, o)).astype(float)
    T[0, 0], T[-1, -1] = 0.0, 3.0                            # a zero count beside non-zero ones
    expect_cuts(nb.call("poisson_cuts", Z, T), Z, T)


@pytest.mark.exercise("6.3", points=3)
def test_poisson_cuts_reject_shapes_that_do_not_fit(nb):
    rng = np.random.default_rng(74)
    Z, T = rng.standard_normal((3, 2)), rng.poisson(2.0, size=(3, 2)).astype(float)
    expect_cuts(nb.call("poisson_cuts", Z, T), Z, T)                                # a positive case first
    raises_value_error(lambda: nb.call("poisson_cuts", Z, T[:2]))


# ---------------------------------------------------------------- 6.4
def tanh_matching_reference(Z, T):
    total = lambda V: anp.sum(anp.logaddexp(V, -V) - anp.log(2.0) - T * V)
    value = np.sum(np.logaddexp(Z, -Z) - np.log(2.0) - T * Z, axis=1)
    return value, autograd.grad(total)(Z), per_sample(autograd.hessian(total)(Z))


def expect_tanh_matching(got, Z, T):
    if not isinstance(got, (tuple, list)) or len(got) != 3:
        raise WrongAnswer(f"tanh_matching must return three arrays (value, G, H), got {got!r:.80}")
    want = tanh_matching_reference(Z, T)
    Y = np.tanh(Z)
    variants = [{"is off by log 2 per output: F(0) = 0 fixes the constant": want[0] + Z.shape[1] * np.log(2.0)},
                {"has the sign reversed: the matching gradient is f(z) - t": T - Y,
                 "is f(z) alone: the - t.z term of the loss has gradient -t": Y},
                {"is tanh(z) on the diagonal: the derivative of tanh is 1 - tanh^2": Y[:, :, None] * np.eye(Z.shape[1])}]
    for name, g, w, v in zip(("value", "gradient", "Hessian"), got, want, variants):
        try:
            expect(g, w, variants=v)
        except AssertionError as exc:
            raise type(exc)(f"{name}: {exc}") from None


@pytest.mark.exercise("6.4", points=3)
@pytest.mark.parametrize("B, o", [(5, 3), (1, 4), (4, 1), (3, 5), (6, 2), (2, 2), (7, 3), (3, 6)])
def test_tanh_matching(nb, B, o):
    rng = np.random.default_rng(80 + 10 * B + o)
    Z, T = 2.0 * rng.standard_normal((B, o)), np.tanh(rng.standard_normal((B, o)))
    Z[0, 0], Z[-1, -1] = 1e4, -1e4                      # pre-activations far out: still exact
    expect_tanh_matching(nb.call("tanh_matching", Z, T), Z, T)


@pytest.mark.exercise("6.4", points=3)
def test_tanh_matching_is_stable(nb):
    Z, T = np.array([[1e4, -1e4, 40.0, -40.0, 0.0]]), np.array([[0.5, -0.25, 1.0, 0.0, 0.3]])
    expect_tanh_matching(nb.call("tanh_matching", Z, T), Z, T)


@pytest.mark.exercise("6.4", points=3)
def test_tanh_matching_rejects_shapes_that_do_not_fit(nb):
    rng = np.random.default_rng(90)
    Z, T = rng.standard_normal((3, 2)), np.tanh(rng.standard_normal((3, 2)))
    expect_tanh_matching(nb.call("tanh_matching", Z, T), Z, T)                      # a positive case first
    raises_value_error(lambda: nb.call("tanh_matching", Z, T[:, :1]))


# ---------------------------------------------------------------- 6.5
READ_OFF = [(False, "row i is e_i - p: its (i, j) entry is delta_ij - p_j, and (j, i) is delta_ij - p_i"),
            (0.0, "row i sums to 1 - sum_j p_j = 0: adding a constant to every logit leaves log p unchanged"),
            ("rate", "G_rate = diag(t), while H_match = diag(e^z) holds no target"),
            (0.0, "G_rate = diag(t): at t_k = 0 the Gauss-Newton term of the rate cut sees no curvature")]


@pytest.mark.exercise("6.5", points=1)
def test_read_off(nb):
    expect_choices(nb.call("read_off"), READ_OFF, "read_off")
