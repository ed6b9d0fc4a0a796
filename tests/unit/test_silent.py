"""Issue 24: each silent wrong answer (a number returned, no error) now computes
the right thing or raises an error that names what was wrong."""
import numpy as np
import pytest

import minigrad as mg
from minigrad import operators, optim
from minigrad.check import check_module

rng0 = np.random.default_rng(0)
X, T = rng0.standard_normal((6, 3)), rng0.integers(0, 2, 6)


class Scale(mg.Module):
    """y = a * x (a (m,)), by products: the curvature C_xp is g delta; a learner's layer."""

    def __init__(self, m=3, bad=None):
        super().__init__()
        self.in_features, self.bad = m, bad
        self.params["a"] = np.linspace(0.5, 1.5, m)

    def forward(self, X):
        return X * self.params["a"]

    def jvp(self, dX=None, dparams=None):
        dY = np.zeros(self.input.shape) if dX is None else dX * self.params["a"]
        dY = dY if dparams is None else dY + self.input * dparams[0]
        return dY[:, 0] if self.bad == "jvp" else dY

    def curvature_vp(self, G, dX=None, dparams=None):
        sx = np.zeros(self.input.shape) if dparams is None else G * dparams[0]
        sa = np.zeros(3) if dX is None else np.sum(G * dX, axis=0)
        return (sx, sa) if self.bad == "array" else (sx, [sa])


def net(bad=None):
    return mg.Sequential(Scale(bad=bad), mg.Tanh(), mg.Linear(3, 2, rng=0))


def test_the_good_learner_layer_matches_autograd_free_references():
    model, loss = net(), mg.SoftmaxCrossEntropy()
    v = np.random.default_rng(1).standard_normal(model.num_params)
    H = mg.hessian(model, loss, X, T)
    assert np.allclose(mg.hvp(model, loss, X, T, v), H @ v, atol=1e-13)
    assert check_module(Scale(), X).ok


@pytest.mark.parametrize("call", ["hvp", "hessian"])
def test_curvature_vp_returning_its_parameter_part_as_one_array_is_named(call):
    model, loss = net("array"), mg.SoftmaxCrossEntropy()
    args = (np.ones(model.num_params),) if call == "hvp" else ()
    with pytest.raises(ValueError, match=r"Scale\(\)\.curvature_vp returned tuple\[shape \(6, 3\), "
                       r"shape \(3,\)\], expected a tuple \(an array of shape \(6, 3\), a list of "
                       r"arrays of shapes \[\(3,\)\], one per parameter\)"):
        getattr(mg, call)(model, loss, X, T, *args)


def test_jvp_of_the_wrong_shape_is_named():
    model, loss = net("jvp"), mg.SoftmaxCrossEntropy()
    with pytest.raises(ValueError, match=r"Scale\(\)\.jvp returned shape \(6,\), expected an "
                                         r"array of shape \(6, 3\)"):
        mg.ggn_vp(model, loss, X, T, np.ones(model.num_params))


def test_a_loss_hessian_of_the_wrong_shape_is_named():
    class Flat(mg.MSELoss):
        def hess_per_sample(self, Y, T):
            return np.ones(Y.shape)
    with pytest.raises(ValueError, match=r"Flat\(\)\.hess_per_sample returned shape \(6, 2\), "
                                         r"expected an array of shape \(6, 2, 2\)"):
        mg.gauss_newton(mg.Linear(3, 2, rng=0), Flat(), X, np.zeros((6, 2)))


def test_check_module_tells_wrong_shape_and_raised_from_not_implemented():
    class Raises(Scale):
        def curvature_vp(self, G, dX=None, dparams=None):
            raise RuntimeError("oops")
    wrong, raised = str(check_module(Scale(bad="jvp"), X)), str(check_module(Raises(), X))
    assert "jvp                vs finite-d  wrong shape (" in wrong and "not implemented" not in wrong
    array = str(check_module(Scale(bad="array"), X))        # same numbers, but not a list
    assert "curvature_vp       vs finite-d  wrong shape (ShapeError: Scale().curvature_vp" in array
    assert "curvature_vp       vs finite-d  raised (RuntimeError: oops)" in raised
    assert "not implemented" not in raised


def _newton_step_after(change):
    """The loss Newton reports for a step after `change` (same X object) and the truth."""
    rng = np.random.default_rng(3)
    model, loss = mg.Sequential(mg.Linear(3, 4, rng=1), mg.Tanh(), mg.Linear(4, 2, rng=2)), mg.MSELoss()
    Xs, Ts = rng.standard_normal((8, 3)), rng.standard_normal((8, 2))
    opt = optim.Newton(model, loss, damping=1.0)
    opt.step(Xs, Ts)
    Ts = change(Xs, Ts)
    truth = loss(model(Xs), Ts)
    return opt.step(Xs, Ts)["loss"], truth


def test_damped_step_does_not_reuse_the_loss_for_new_targets_or_an_x_changed_in_place():
    new_targets = _newton_step_after(lambda Xs, Ts: Ts + 1.0)
    in_place = _newton_step_after(lambda Xs, Ts: (Xs.__imul__(0.5), Ts)[1])
    same = _newton_step_after(lambda Xs, Ts: Ts)
    for reported, truth in (new_targets, in_place, same):
        assert reported == pytest.approx(truth, rel=1e-12)
    assert abs(new_targets[1] - same[1]) > 0.1            # the change matters


def test_two_modules_sharing_one_parameter_array_are_refused():
    l1, l2 = mg.Linear(3, 3, rng=0), mg.Linear(3, 2, rng=1)
    l2.params["W"] = l1.params["W"][:2]                    # a view: shares memory
    model = mg.Sequential(l1, mg.Tanh(), l2)
    with pytest.raises(ValueError, match=r"grad: parameter 'W' of Linear\(3, 2\) \(module 2\) shares "
                                         r"memory with parameter 'W' of Linear\(3, 3\) \(module 0\)"):
        mg.grad(model, mg.MSELoss(), X, np.zeros((6, 2)))
    with pytest.raises(ValueError, match="shared weights are not supported"):
        optim.SGD(model, mg.MSELoss(), lr=0.1).step(X, np.zeros((6, 2)))


def test_parameters_from_one_buffer_that_do_not_overlap_are_fine():
    lin = mg.Linear(3, 2, rng=0)
    buffer = mg.parameters_to_vector(lin)
    lin.params["W"], lin.params["b"] = buffer[:6].reshape(2, 3), buffer[6:]
    assert mg.grad(lin, mg.MSELoss(), X, np.zeros((6, 2))).shape == (8,)


def test_an_integer_parameter_array_is_refused_not_truncated():
    lin = mg.Linear(3, 2, rng=0)
    lin.params["W"] = np.ones((2, 3), dtype=int)
    with pytest.raises(ValueError, match=r"vector_to_parameters: parameter 'W' of Linear\(3, 2\) "
                                         r"\(module 0\) must be a float64 array, got int64"):
        mg.vector_to_parameters(np.full(8, 0.5), lin)


@pytest.mark.parametrize("bad, message", [
    (np.ones(35) + 1j, "v must be a real numeric array, got dtype complex128"),
    (np.ma.masked_array(np.ones(35), mask=np.eye(35)[0]), "v is a masked array"),
])
def test_operators_refuse_complex_and_masked_vectors(bad, message):
    model = mg.Sequential(mg.Linear(3, 5, rng=0), mg.Tanh(), mg.Linear(5, 2, rng=1))
    op = operators.hessian_operator(model, mg.SoftmaxCrossEntropy(), X, T)
    with pytest.raises(ValueError, match=f"hessian_operator: {message}"):
        op.matvec(bad)
    with pytest.raises(ValueError, match="hessian_operator: "):
        op.matmat(bad[:, None])


def test_adam_step_zero_cg_nan_and_preconditioner_nan_are_refused():
    with pytest.raises(ValueError, match=r"adam_update: t \(the step, counted from 1\) must be"):
        optim.adam_update(np.ones(2), np.zeros(2), np.zeros(2), np.ones(2), 0, 0.1)
    with pytest.raises(ValueError, match=r"cg: matvec\(v\) of shape \(2,\) has a non-finite value"):
        optim.cg(lambda v: v * np.nan, np.ones(2))
    with pytest.raises(ValueError, match="cg: tol must be a real number in"):
        optim.cg(lambda v: v, np.ones(2), tol=np.nan)
    with pytest.raises(ValueError, match=r"diagonal_preconditioner: sample_grads of shape \(2, 2\) "
                                         "has a non-finite value"):
        optim.diagonal_preconditioner(np.array([[1.0, np.nan], [0.0, 1.0]]), 1e-3)
