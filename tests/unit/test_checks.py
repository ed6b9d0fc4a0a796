"""The check functions catch a wrong derivative and say where it is."""
import numpy as np

import minigrad as mg

X = np.random.default_rng(0).standard_normal((4, 3))


class WrongSlope(mg.Tanh):
    """tanh with f' off by a factor on the second column only."""

    def df(self, x):
        d = super().df(x)
        d[:, 1] *= 1.5
        return d


class WrongCurvature(mg.Tanh):
    def d2f(self, x):
        return -super().d2f(x)


class Unfinished(mg.Elementwise):
    def f(self, x):
        return np.sin(x)


def by_name(report, name, reference="finite-d"):
    return next(c for c in report.comparisons if c.name == name and c.reference == reference)


def test_correct_module_passes():
    assert mg.check_module(mg.Tanh(), X, reference=np.tanh).ok


def test_wrong_first_derivative_is_caught_and_located():
    report = mg.check_module(WrongSlope(), X)
    assert not report.ok
    c = by_name(report, "input_jacobian")
    assert not c.ok and c.where[1] == 1 and c.where[2] == 1     # column 1, diagonal
    assert "FAILED" in str(report) and "input_jacobian[" in str(report)


def test_wrong_first_derivative_is_caught_by_autograd_too():
    import autograd.numpy as anp
    report = mg.check_module(WrongSlope(), X, reference=anp.tanh)
    assert not by_name(report, "vjp_input", "autograd").ok


def test_wrong_second_derivative_is_caught_and_only_it():
    report = mg.check_module(WrongCurvature(), X)
    failed = {c.name for c in report.comparisons if not c.ok}
    # f'' enters the curvature block, its product form and the composition formula only
    assert failed == {"curvature_xx", "curvature_vp", "backward_second"}


def test_missing_derivative_is_reported_not_raised():
    report = mg.check_module(Unfinished(), X)
    assert not report.ok
    assert "not implemented yet" in str(report)


def test_wrong_loss_gradient_is_caught():
    class BadMSE(mg.MSELoss):
        def grad_per_sample(self, Y, T):
            return 2 * (Y - T)
    report = mg.check_loss(BadMSE(), X, np.zeros((4, 3)))
    assert not by_name(report, "gradient").ok
    assert by_name(report, "hessian").ok


def test_check_model_passes_on_a_correct_model():
    rng = np.random.default_rng(1)
    model = mg.Sequential(mg.Linear(3, 4, rng=rng), mg.Sigmoid(), mg.Linear(4, 2, rng=rng))
    report = mg.check_model(model, mg.SoftmaxCrossEntropy(), X, np.array([0, 1, 1, 0]))
    assert report.ok, str(report)


def test_check_exercise_messages(capsys):
    def todo():
        raise NotImplementedError("Exercise 9.9")
    assert not mg.check_exercise("9.9", todo)
    assert mg.check_exercise("9.8", lambda: (np.eye(2), np.eye(2)))
    assert not mg.check_exercise("9.7", lambda: (np.eye(2), np.ones((2, 2))))
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "Exercise 9.9: not implemented yet"
    assert out[1].startswith("Exercise 9.8: passed")
    assert out[2].startswith("Exercise 9.7: not right yet: largest error 1 at index [0, 1]")
