"""Every bad input raises a ValueError that names the module or function and
the shapes; nothing fails deep inside numpy."""
import numpy as np
import pytest

import minigrad as mg


def model():
    rng = np.random.default_rng(0)
    return mg.Sequential(mg.Linear(3, 4, rng=rng), mg.Tanh(), mg.Linear(4, 2, rng=rng))


X = np.ones((5, 3))
T = np.array([0, 1, 0, 1, 1])


def test_wrong_input_width_names_the_layer_and_shapes():
    with pytest.raises(ValueError, match=r"Sequential\(Linear\(3, 4\), Tanh\(\), Linear\(4, 2\)\): expected input of shape \(B, 3\), got shape \(5, 2\)"):
        model()(np.ones((5, 2)))


def test_one_dimensional_input_is_rejected():
    with pytest.raises(ValueError, match=r"Tanh\(\): expected input of shape \(B, m\), got shape \(3,\)"):
        mg.Tanh()(np.ones(3))


def test_nan_input_is_rejected_with_its_index():
    Xn = X.copy()
    Xn[2, 1] = np.nan
    with pytest.raises(ValueError, match=r"Sequential\(Linear\(3, 4\), Tanh\(\), Linear\(4, 2\)\): input of shape \(5, 3\) has a non-finite value \(nan\) at index \(2, 1\)"):
        model()(Xn)


def test_infinite_input_to_a_derivative_function_is_rejected():
    Xi = X.copy()
    Xi[0, 0] = np.inf
    with pytest.raises(ValueError, match=r"Sequential\(Linear\(3, 4\), Tanh\(\), Linear\(4, 2\)\): input of shape \(5, 3\) has a non-finite value \(inf\)"):
        mg.grad(model(), mg.MSELoss(), Xi, np.zeros((5, 2)))


def test_label_out_of_range():
    with pytest.raises(ValueError, match=r"SoftmaxCrossEntropy\(\): label 2 at index 3 is out of range for 2 classes"):
        mg.grad(model(), mg.SoftmaxCrossEntropy(), X, np.array([0, 1, 0, 2, 1]))


def test_negative_label():
    with pytest.raises(ValueError, match=r"label -1 at index 0 is out of range"):
        mg.SoftmaxCrossEntropy()(np.zeros((2, 3)), np.array([-1, 0]))


def test_target_shape_mismatch():
    with pytest.raises(ValueError, match=r"MSELoss\(\): expected targets of shape \(5, 2\) \(rows\), got shape \(5, 3\)"):
        mg.hessian(model(), mg.MSELoss(), X, np.zeros((5, 3)))


def test_non_integer_labels():
    with pytest.raises(ValueError, match=r"class indices must be integers"):
        mg.SoftmaxCrossEntropy()(np.zeros((2, 3)), np.array([0.5, 1.0]))


def test_parameter_vector_of_wrong_length():
    with pytest.raises(ValueError, match=r"vector_to_parameters: expected w of shape \(26,\), one entry per parameter, got shape \(21,\)"):
        mg.vector_to_parameters(np.zeros(21), model())


def test_hvp_vector_of_wrong_length():
    with pytest.raises(ValueError, match=r"hvp: expected v of shape \(26,\), one entry per parameter, got shape \(3, 2\)"):
        mg.hvp(model(), mg.MSELoss(), X, np.zeros((5, 2)), np.zeros((3, 2)))


def test_ggn_vp_vector_of_wrong_length():
    with pytest.raises(ValueError, match=r"ggn_vp: expected v of shape \(26,\)"):
        mg.ggn_vp(model(), mg.MSELoss(), X, np.zeros((5, 2)), np.zeros(23))


def test_nll_rejects_zero_probability_of_the_target():
    P = np.array([[1.0, 0.0], [0.5, 0.5]])
    with pytest.raises(ValueError, match=r"NLLLoss\(\): probability 0 at index \(0, 1\) where the target is not 0"):
        mg.NLLLoss()(P, np.array([1, 0]))


def test_nll_rejects_negative_probabilities():
    with pytest.raises(ValueError, match=r"NLLLoss\(\): probabilities must be >= 0"):
        mg.NLLLoss()(np.array([[-0.1, 1.1]]), np.array([1]))


def test_linear_rejects_bad_sizes():
    with pytest.raises(ValueError, match=r"Linear: out_features must be an integer in \[1, inf\), got 0"):
        mg.Linear(3, 0)
    with pytest.raises(ValueError, match=r"Linear: in_features must be an integer in \[1, inf\), got 2.5"):
        mg.Linear(2.5, 3)


def test_sequential_rejects_non_modules():
    with pytest.raises(ValueError, match=r"Sequential: argument 1 is not a Module, got function"):
        mg.Sequential(mg.Tanh(), lambda x: x)


def test_derivative_before_forward():
    with pytest.raises(ValueError, match=r"Linear\(3, 4\): call the module on a batch X before asking for its derivatives"):
        mg.Linear(3, 4, rng=0).input_jacobian()


def test_loss_must_be_a_loss():
    with pytest.raises(ValueError, match=r"grad: loss must be a minigrad Loss, got function"):
        mg.grad(model(), lambda Y, T: 0.0, X, T)


def test_model_must_be_a_module():
    with pytest.raises(ValueError, match=r"jacobian: model must be a minigrad Module, got list"):
        mg.jacobian([mg.Tanh()], X)


def test_loss_output_shape_is_checked():
    with pytest.raises(ValueError, match=r"SoftmaxCrossEntropy\(\): expected output Y of shape \(B, m\), got shape \(4,\)"):
        mg.SoftmaxCrossEntropy()(np.zeros(4), np.array([0]))


# ------------------------------------------------ the unchecked inner chain
class Doubler(mg.Module):
    """A learner's module: its input is checked by Module.__call__."""

    def forward(self, X):
        return 2 * X


@pytest.mark.filterwarnings("ignore::RuntimeWarning")   # numpy reports the overflow too
def test_nan_made_inside_the_chain_names_the_module_that_made_it():
    net = model()
    net.modules[2].params["W"][1, 0] = np.nan
    with pytest.raises(ValueError, match=r"Linear\(4, 2\): output of shape \(5, 2\) has a non-finite value \(nan\) at index \(0, 1\), from a finite input"):
        net(X)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")   # numpy reports the overflow too
def test_overflow_inside_a_derivative_call_names_the_layer():
    net = mg.Sequential(mg.Linear(3, 4, rng=0), mg.Linear(4, 2, rng=0))
    net.modules[0].params["W"][...] = 1e308
    with pytest.raises(ValueError, match=r"Linear\(3, 4\): output of shape \(5, 4\) has a non-finite value \(inf\)"):
        mg.grad(net, mg.MSELoss(), X, np.zeros((5, 2)))


def test_width_mismatch_in_the_middle_of_a_chain_names_the_layer():
    net = mg.Sequential(mg.Linear(3, 4, rng=0), mg.Tanh(), mg.Linear(5, 2, rng=0))
    with pytest.raises(ValueError, match=r"Linear\(5, 2\): expected input of shape \(B, 5\), got shape \(5, 4\)"):
        mg.grad(net, mg.MSELoss(), X, np.zeros((5, 2)))


def test_an_inf_before_a_learners_module_is_named_at_the_module_that_made_it():
    net = mg.Sequential(mg.Linear(3, 4, rng=0), Doubler())
    net.modules[0].params["b"][2] = np.inf
    with pytest.raises(ValueError, match=r"Linear\(3, 4\): output of shape \(5, 4\) has a non-finite value \(inf\) at index \(0, 2\)"):
        net(X)


def test_a_learners_call_override_is_used_by_the_derivatives():
    calls = []

    class Logged(mg.Sequential):
        def __call__(self, X):
            calls.append(X.shape)
            return super().__call__(X)

    net = Logged(mg.Linear(3, 2, rng=0))
    mg.grad(net, mg.MSELoss(), X, np.zeros((5, 2)))
    assert calls == [(5, 3)]


# ----------------------------------------- unusual input: a right answer or a clear error
def test_tied_weights_are_refused():
    shared = mg.Linear(3, 3, rng=0)
    with pytest.raises(ValueError, match=r"Sequential: the same module Linear\(3, 3\) is at positions 0 and 2"):
        mg.Sequential(shared, mg.Tanh(), shared)


def test_hessian_at_huge_inputs_is_finite_where_the_truth_is():
    # tanh saturates (tanh' = 0 exactly) at 1e10 and at 1e200 alike, so the Hessians agree and
    # the first layer's rows are 0; x x^T (1e400) must not overflow into them
    net = mg.Sequential(mg.Linear(3, 4, rng=0), mg.Tanh(), mg.Linear(4, 2, rng=1))
    H200 = mg.hessian(net, mg.MSELoss(), np.full((5, 3), 1e200), np.zeros((5, 2)))
    H10 = mg.hessian(net, mg.MSELoss(), np.full((5, 3), 1e10), np.zeros((5, 2)))
    assert np.array_equal(H200, H10) and not H200[:16].any() and H200[16:, 16:].any()


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_overflowing_hessian_is_reported_not_returned():
    lin, X = mg.Linear(3, 2, rng=0), np.full((5, 3), 1e200)       # the truth, x x^T, is 1e400
    with pytest.raises(ValueError, match=r"hessian: result of shape \(8, 8\) has a non-finite value"):
        mg.hessian(lin, mg.MSELoss(), X, lin(X))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_nll_hessian_at_a_tiny_probability_has_no_nan():
    loss = mg.NLLLoss()
    Y = np.array([[1e-200, 1.0 - 1e-200], [0.5, 0.5]])
    loss(Y, np.array([0, 1]))
    with pytest.raises(ValueError, match=r"NLLLoss\(\): Hessian of shape \(2, 2, 2\) has a non-finite value \(inf\)"):
        loss.hessian()
    assert not np.isnan(loss.hess_per_sample(loss.Y, loss.T)).any()


def test_a_dense_result_beyond_the_limit_is_refused_before_allocating():
    net = mg.Sequential(mg.Linear(200, 100, rng=0), mg.Tanh(), mg.Linear(100, 1, rng=0))  # n = 20,201
    with pytest.raises(ValueError, match=r"hessian: the result of shape \(20201, 20201\) needs 3.26 GB.*hvp / ggn_vp"):
        mg.hessian(net, mg.MSELoss(), np.ones((2, 200)), np.zeros((2, 1)))


def test_linear_names_a_bad_rng():
    with pytest.raises(ValueError, match=r"Linear: rng must be None, an integer seed or a numpy Generator, got 'abc'"):
        mg.Linear(3, 2, rng="abc")


def test_a_ragged_batch_is_named():
    with pytest.raises(ValueError, match=r"input must be a rectangular numeric array"):
        model()([[1.0, 2.0, 3.0], [1.0, 2.0]])


def test_per_sample_grads_takes_a_list():
    net, T = model(), np.zeros((5, 2))
    got = mg.per_sample_grads(net, mg.MSELoss(), X.tolist(), T)
    np.testing.assert_allclose(got, mg.per_sample_grads(net, mg.MSELoss(), X, T))


# ------------------------------------------ issue 24: errors that name the argument
@pytest.mark.parametrize("call, message", [
    (lambda: mg.check_module(mg.Tanh(), X, rng="abc"), "check_module: rng must be None, an integer seed"),
    (lambda: mg.operators.hutchinson_trace(np.eye(3), 4, rng="abc"), "hutchinson_trace: rng must be None"),
    (lambda: mg.operators.lanczos(np.eye(3), 2, rng="abc"), "lanczos: rng must be None"),
    (lambda: mg.optim.HessianFree(model(), mg.MSELoss(), seed="abc"), "HessianFree: seed must be None"),
    (lambda: mg.optim.SGD(model(), mg.MSELoss(), lr="abc"), r"SGD: lr must be a real number in \(0, inf\), got 'abc'"),
    (lambda: mg.optim.SGD(model(), mg.MSELoss(), lr=np.inf), r"SGD: lr must be a real number in \(0, inf\), got inf"),
    (lambda: mg.optim.Adam(model(), mg.MSELoss(), lr=0.1, beta1=1.0), r"Adam: beta1 must be a real number in \[0, 1\), got 1.0"),
    (lambda: mg.optim.Adam(model(), mg.MSELoss(), lr=0.1, beta2=1.5), r"Adam: beta2 must be a real number in \[0, 1\), got 1.5"),
    (lambda: mg.optim.HessianFree(model(), mg.MSELoss(), curvature_batch=0), r"HessianFree: curvature_batch must be an integer in \[1, inf\), got 0"),
    (lambda: mg.optim.HessianFree(model(), mg.MSELoss(), curvature_batch=-1), r"curvature_batch must be an integer in \[1, inf\), got -1"),
    (lambda: mg.optim.run(mg.optim.SGD(model(), mg.MSELoss(), lr=0.1), X, np.zeros((5, 2)), 1.0, points=0), r"run: points must be an integer in \[1, inf\), got 0"),
])
def test_optimiser_and_seed_arguments_are_named(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_a_huge_label_is_quoted_as_given():
    with pytest.raises(ValueError, match=r"SoftmaxCrossEntropy\(\): label 1e\+20 at index 2 is out of range for 2 classes"):
        mg.grad(model(), mg.SoftmaxCrossEntropy(), X, np.array([0.0, 1.0, 1e20, 0.0, 1.0]))


def test_hessian_free_with_a_curvature_batch_takes_lists():
    rng = np.random.default_rng(0)
    Xs, Ts = rng.standard_normal((20, 3)), rng.integers(0, 2, 20)
    a, b = model(), model()
    info_list = mg.optim.HessianFree(a, mg.SoftmaxCrossEntropy(), curvature_batch=8).step(Xs.tolist(), Ts.tolist())
    info_array = mg.optim.HessianFree(b, mg.SoftmaxCrossEntropy(), curvature_batch=8).step(Xs, Ts)
    assert info_list["new_loss"] == info_array["new_loss"] < info_array["loss"]


def test_an_operator_vector_of_the_wrong_length_names_the_shapes():
    op = mg.hessian_operator(model(), mg.SoftmaxCrossEntropy(), X, T)
    with pytest.raises(ValueError, match=r"hessian_operator: matvec expects a vector of shape \(26,\) or \(26, 1\), one entry per parameter, got shape \(25,\)"):
        op.matvec(np.ones(25))
    with pytest.raises(ValueError, match=r"hessian_operator: matmat expects shape \(26, k\), got \(25, 2\)"):
        op @ np.ones((25, 2))


def test_input_jacobian_takes_a_list():
    assert mg.input_jacobian(mg.Tanh(), [[0.0, 1.0]]).shape == (1, 2, 2)


def test_a_result_whose_squares_overflow_is_still_finite():
    # the check's one sum is a sum of squares: 1e200 squared overflows, yet every entry is finite
    from minigrad._validate import finite_result
    A = np.array([[1e200, -1e200], [3.0, 1e-300]])
    assert finite_result(A, "f") is A
    for bad in (np.nan, np.inf, -np.inf):
        A[1, 0] = bad
        with pytest.raises(ValueError, match=rf"f: result of shape \(2, 2\) has a non-finite value "
                                             rf"\({bad}\) at index \(1, 0\)"):
            finite_result(A, "f")
