"""Losses: value, gradient and Hessian against autograd and finite differences,
for both target forms, and their numerical stability."""
import numpy as np
import pytest

import minigrad as mg
from references import loss_fn

B, O = 5, 3


def outputs(loss, seed=0):
    Z = np.random.default_rng(seed).standard_normal((B, O))
    return mg.Softmax()(Z) if isinstance(loss, mg.NLLLoss) else Z


def targets(form, seed=1, loss=None):
    rng = np.random.default_rng(seed)
    if form == "indices" and isinstance(loss, mg.MSELoss):
        return np.eye(O)[rng.integers(0, O, B)]  # MSELoss takes real rows, not class indices
    if form == "indices":
        return rng.integers(0, O, B)
    return rng.dirichlet(np.ones(O), B)          # probability rows


LOSSES = {"MSELoss": mg.MSELoss, "SoftmaxCrossEntropy": mg.SoftmaxCrossEntropy,
          "NLLLoss": mg.NLLLoss}


@pytest.mark.parametrize("form", ["indices", "rows"])
@pytest.mark.parametrize("name", LOSSES)
def test_loss_matches_autograd_and_finite_differences(name, form):
    loss = LOSSES[name]()
    report = mg.check_loss(loss, outputs(loss), targets(form, loss=loss), reference=loss_fn(loss))
    assert report.ok, str(report)


@pytest.mark.parametrize("name", LOSSES)
def test_hvp_equals_hessian_times_vector(name):
    loss = LOSSES[name]()
    loss(outputs(loss), targets("indices", loss=loss))
    V = np.random.default_rng(3).standard_normal((B, O))
    np.testing.assert_allclose(loss.hvp(V), np.einsum("bij,bj->bi", loss.hessian(), V),
                               rtol=1e-12, atol=1e-15)


def test_mse_gradient_is_the_residual():
    Y, T = outputs(mg.MSELoss()), targets("rows")
    loss = mg.MSELoss()
    loss(Y, T)
    np.testing.assert_allclose(loss.backward() * B, Y - T)


def test_softmax_cross_entropy_gradient_is_p_minus_t():
    Z, T = outputs(mg.SoftmaxCrossEntropy()), targets("indices")
    loss = mg.SoftmaxCrossEntropy()
    loss(Z, T)
    np.testing.assert_allclose(loss.backward() * B, mg.Softmax()(Z) - np.eye(O)[T], atol=1e-15)


@pytest.mark.parametrize("scale", [1e2, 1e4, 1e300])
def test_softmax_cross_entropy_survives_huge_logits(scale):
    Z = np.array([[scale, -scale, 0.0], [-scale, scale, 0.5]])
    T = np.array([1, 0])
    loss = mg.SoftmaxCrossEntropy()
    with np.errstate(over="raise", invalid="raise"):
        value = loss(Z, T)
        G, H = loss.backward(), loss.hessian()
    assert np.isfinite(value) and np.all(np.isfinite(G)) and np.all(np.isfinite(H))
    # each sample's loss is lse(z) - z_t = scale - (-scale): the mean is 2 * scale
    assert value == pytest.approx(2 * scale, rel=1e-12)


def test_softmax_cross_entropy_value_at_1e4():
    # l = lse(z) - z_t: lse([1e4, -1e4]) = 1e4 up to exp(-2e4), so l = 2e4 for target 1
    loss = mg.SoftmaxCrossEntropy()
    assert loss(np.array([[1e4, -1e4]]), np.array([1])) == pytest.approx(2e4, rel=1e-15)
    assert loss(np.array([[1e4, -1e4]]), np.array([0])) == pytest.approx(0.0, abs=1e-300)


def test_nll_on_softmax_equals_fused_cross_entropy():
    Z, T = outputs(mg.MSELoss()), targets("indices")
    fused = mg.SoftmaxCrossEntropy()(Z, T)
    assert mg.NLLLoss()(mg.Softmax()(Z), T) == pytest.approx(fused, rel=1e-12)


def test_one_hot_indices_equal_rows():
    T = targets("indices")
    for cls in (mg.SoftmaxCrossEntropy, mg.NLLLoss):
        loss = cls()
        Y = outputs(loss)
        assert loss(Y, T) == pytest.approx(loss(Y, np.eye(O)[T]), rel=1e-15)


def test_mse_refuses_class_indices_and_reads_one_output_as_a_column():
    Y = np.random.default_rng(0).standard_normal((B, O))
    with pytest.raises(ValueError, match=r"MSELoss\(\): expected targets of shape \(5, 3\) \(rows\)"):
        mg.MSELoss()(Y, np.arange(B) % O)
    t = np.linspace(-1.0, 1.0, B)                 # real-valued regression targets (B,)
    assert mg.MSELoss()(Y[:, :1], t) == pytest.approx(0.5 * np.mean((Y[:, 0] - t) ** 2))
