"""The module protocol: either route gives every public derivative, a plain
subclass of a built-in is the same module, and check_module fails a module
with exactly one wrong derivative (the mutation table)."""
import warnings

import autograd
import autograd.numpy as anp
import numpy as np
import pytest

import minigrad as mg
from minigrad._validate import ShapeError
from minigrad.module import flatten

TOL = 1e-10
rng0 = np.random.default_rng(0)
X = rng0.standard_normal((4, 3))


# ------------------------------------------------ a learner's module, two routes
class ScaledTanhJ(mg.Module):
    """y_i = tanh(a_i x_i) with a learned a (m,), by the explicit route:
    every block of the curvature is non-zero."""

    def __init__(self, a):
        super().__init__()
        self.in_features = len(a)
        self.params["a"] = np.array(a, dtype=float)

    def forward(self, X):
        return np.tanh(X * self.params["a"])

    def _parts(self):
        a, x = self.params["a"], self.input
        t = np.tanh(a * x)
        return a, x, 1 - t ** 2, -2 * t * (1 - t ** 2)     # f'(ax), f''(ax)

    def input_jacobian(self):
        a, x, d1, _ = self._parts()
        return d1[:, :, None] * a * np.eye(len(a))

    def param_jacobian(self):
        a, x, d1, _ = self._parts()
        return (d1 * x)[:, :, None] * np.eye(len(a))

    def curvature_xx(self, G):
        a, x, _, d2 = self._parts()
        return (G * d2 * a * a)[:, :, None] * np.eye(len(a))

    def curvature_xp(self, G):
        a, x, d1, d2 = self._parts()
        return (G * (d1 + a * x * d2))[:, :, None] * np.eye(len(a))

    def curvature_pp(self, G):
        a, x, _, d2 = self._parts()
        return np.diag(np.sum(G * d2 * x * x, axis=0))


class ScaledTanhP(ScaledTanhJ):
    """The same module by the product route (its explicit methods hidden)."""
    input_jacobian, param_jacobian = mg.Module.input_jacobian, mg.Module.param_jacobian
    curvature_xx, curvature_xp = mg.Module.curvature_xx, mg.Module.curvature_xp
    curvature_pp = mg.Module.curvature_pp

    def jvp(self, dX=None, dparams=None):
        a, x, d1, _ = self._parts()
        dY = np.zeros(x.shape)
        if dX is not None:
            dY += d1 * a * dX
        if dparams is not None:
            dY += d1 * x * dparams[0]
        return dY

    def curvature_vp(self, G, dX=None, dparams=None):
        a, x, d1, d2 = self._parts()
        da = np.zeros_like(a) if dparams is None else dparams[0]
        dx = np.zeros_like(x) if dX is None else dX
        cross = G * (d1 + a * x * d2)
        sx = G * d2 * a * a * dx + cross * da
        sa = np.sum(cross * dx + G * d2 * x * x * da, axis=0)
        return sx, [sa]


def scaled_tanh_reference(Z, a):
    return anp.tanh(Z * a)


A0 = np.array([0.7, -1.3, 1.1])


def check(module):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return mg.check_module(module, X, reference=scaled_tanh_reference)


@pytest.mark.parametrize("cls", [ScaledTanhJ, ScaledTanhP])
def test_either_route_passes_every_check(cls):
    report = check(cls(A0))
    assert report.ok, str(report)


def net_reference(w, Z):
    W1, b1 = anp.reshape(w[:6], (2, 3)), w[6:8]
    a = w[8:10]
    W2, b2 = anp.reshape(w[10:16], (3, 2)), w[16:19]
    return anp.dot(anp.tanh((anp.dot(Z, W1.T) + b1) * a), W2.T) + b2


@pytest.mark.parametrize("cls", [ScaledTanhJ, ScaledTanhP])
def test_either_route_gives_every_public_derivative(cls):
    rng = np.random.default_rng(1)
    net = mg.Sequential(mg.Linear(3, 2, rng=rng), cls([0.9, -1.2]), mg.Linear(2, 3, rng=rng))
    T = rng.integers(0, 3, 4)
    loss = mg.SoftmaxCrossEntropy()
    w, v = mg.parameters_to_vector(net), rng.standard_normal(19)
    rows = np.eye(3)[T]

    def L(u):
        Z = net_reference(u, X)
        zmax = anp.max(Z, axis=1, keepdims=True)
        return anp.mean(zmax[:, 0] + anp.log(anp.sum(anp.exp(Z - zmax), axis=1)) - anp.sum(rows * Z, axis=1))

    J = autograd.jacobian(lambda u: net_reference(u, X))(w)
    H = autograd.hessian(L)(w)
    loss(net(X), T)
    GN = np.einsum("bon,bop,bpm->nm", J, loss.hessian(), J)
    Jx = np.einsum("bobm->bom", autograd.jacobian(lambda Z: net_reference(w, Z))(X))
    checks = {
        "grad": (mg.grad(net, loss, X, T), autograd.grad(L)(w)),
        "jacobian": (mg.jacobian(net, X), J),
        "input_jacobian": (mg.input_jacobian(net, X), Jx),
        "hessian": (mg.hessian(net, loss, X, T), H),
        "gauss_newton": (mg.gauss_newton(net, loss, X, T), GN),
        "hvp": (mg.hvp(net, loss, X, T, v), H @ v),
        "ggn_vp": (mg.ggn_vp(net, loss, X, T, v), GN @ v),
        "per_sample_grads mean": (mg.per_sample_grads(net, loss, X, T).mean(axis=0),
                                  autograd.grad(L)(w)),
    }
    for name, (got, want) in checks.items():
        np.testing.assert_allclose(got, want, atol=TOL, rtol=0, err_msg=name)


# --------------------------------------------------------- the mutation table
def wrong(cls, method):
    """A subclass of cls whose ``method`` returns its correct value plus a small
    error (1% of its scale plus 1e-3): exactly one derivative wrong."""
    correct = getattr(cls, method)

    def spoil(value):
        if value is None:
            return None
        if isinstance(value, tuple):
            return tuple(spoil(v) for v in value)
        if isinstance(value, list):
            return [spoil(v) for v in value]
        return value * 1.01 + 1e-3

    def mutated(self, *args, **kwargs):
        return spoil(correct(self, *args, **kwargs))
    return type(f"Wrong_{method}", (cls,), {method: mutated})


ROUTE_METHODS = {
    ScaledTanhJ: ["input_jacobian", "param_jacobian", "jvp", "vjp_input", "vjp_params",
                  "vjp_input_many", "vjp_params_many", "vjp_params_sum", "gram_params",
                  "curvature_xx", "curvature_xp", "curvature_pp", "curvature_vp",
                  "backward_second"],
    ScaledTanhP: ["jvp", "curvature_vp", "vjp_input", "vjp_params"],
}
TABLE = [(cls, m) for cls, methods in ROUTE_METHODS.items() for m in methods]


@pytest.mark.parametrize("cls,method", TABLE, ids=[f"{c.__name__}.{m}" for c, m in TABLE])
def test_one_wrong_method_fails_check_module(cls, method):
    report = check(wrong(cls, method)(A0))
    assert not report.ok
    assert method in report.failed(), str(report)


BUILTIN_METHODS = ["input_jacobian", "param_jacobian", "jvp", "vjp_input", "vjp_params",
                   "vjp_input_many", "vjp_params_many", "vjp_params_sum", "gram_params",
                   "curvature_xp", "curvature_vp"]


@pytest.mark.parametrize("method", BUILTIN_METHODS)
def test_one_wrong_method_of_linear_fails_check_module(method):
    mutant = wrong(mg.Linear, method)(3, 2, rng=0)
    report = mg.check_module(mutant, X)
    assert method in report.failed(), str(report)


@pytest.mark.parametrize("method", ["input_jacobian", "jvp", "vjp_input", "vjp_input_many",
                                    "curvature_xx", "curvature_vp"])
@pytest.mark.parametrize("cls", [mg.Tanh, mg.Softmax])
def test_one_wrong_method_of_an_activation_fails_check_module(cls, method):
    report = mg.check_module(wrong(cls, method)(), X)
    assert method in report.failed(), str(report)


# exercise 3.4's Scale layer: y = a * x, and the wrong curvatures the checker once passed
class Scale(mg.Module):
    def __init__(self, a):
        super().__init__()
        self.in_features = len(a)
        self.params["a"] = np.array(a, dtype=float)

    def forward(self, X):
        return X * self.params["a"]

    def input_jacobian(self):
        return np.broadcast_to(np.diag(self.params["a"]), (len(self.input),) + (self.in_features,) * 2)

    def param_jacobian(self):
        return self.input[:, :, None] * np.eye(self.in_features)

    def curvature_xx(self, G):
        return None

    def curvature_xp(self, G):
        return G[:, :, None] * np.eye(self.in_features)

    def curvature_pp(self, G):
        return np.zeros((self.in_features,) * 2)       # a correct zero block, as an array


def scale_reference(Z, a):
    return Z * a


class ScaleNoCurvature(Scale):
    def curvature_xp(self, G):
        return None


class ScaleHalfCross(Scale):
    def curvature_xp(self, G):
        return 0.5 * super().curvature_xp(G)


class ScaleSpuriousPP(Scale):
    def curvature_pp(self, G):
        return np.eye(self.in_features)


def test_scale_passes():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        report = mg.check_module(Scale(A0), X, reference=scale_reference)
    assert report.ok, str(report)


@pytest.mark.parametrize("cls", [ScaleNoCurvature, ScaleHalfCross, ScaleSpuriousPP])
def test_wrong_scale_curvature_fails_check_module_and_the_check_cell(cls, capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        report = mg.check_module(cls(A0), X, reference=scale_reference)
        assert not report.ok
        assert not mg.check_exercise("3.4", lambda: mg.check_module(cls(A0), X, reference=scale_reference))
    assert "not right yet" in capsys.readouterr().out


# --------------------------------------------------- neither route, or only one
class OnlyForward(mg.Module):
    def forward(self, X):
        return np.sin(X)


def test_neither_route_names_the_methods_to_write():
    mod = OnlyForward()
    mod(X)
    with pytest.raises(NotImplementedError, match="give input_jacobian and param_jacobian .* or jvp"):
        mod.vjp_input(np.ones((4, 3)))
    with pytest.raises(NotImplementedError, match="curvature_vp"):
        mod.curvature_xx(np.ones((4, 3)))
    report = mg.check_module(mod, X)
    assert not report.ok and "not implemented yet" in str(report)
    with pytest.raises(NotImplementedError, match="OnlyForward"):
        mg.grad(mg.Sequential(mg.Linear(3, 3, rng=0), mod), mg.MSELoss(), X, np.zeros((4, 3)))


def test_a_module_with_parameters_must_give_its_p_blocks():
    class NoPP(ScaledTanhJ):
        curvature_pp = mg.Module.curvature_pp
    report = check(NoPP(A0))
    assert "curvature_pp" in report.failed()
    assert "not implemented yet" in str(report)


# ------------------------------------------------ plain subclasses are the same module
class MyLinear(mg.Linear):
    pass


class MyTanh(mg.Tanh):
    pass


class MySCE(mg.SoftmaxCrossEntropy):
    pass


@pytest.mark.parametrize("fn", ["grad", "hessian", "gauss_newton", "jacobian", "hvp", "ggn_vp",
                                "per_sample_grads"])
def test_plain_subclasses_give_identical_results(fn):
    def build(lin, act, loss):
        r = np.random.default_rng(2)
        return mg.Sequential(lin(3, 5, rng=r), act(), lin(5, 3, rng=r)), loss()
    base, loss = build(mg.Linear, mg.Tanh, mg.SoftmaxCrossEntropy)
    mine, my_loss = build(MyLinear, MyTanh, MySCE)
    T = np.array([0, 2, 1, 1])
    v = np.random.default_rng(3).standard_normal(38)
    args = {"jacobian": lambda m, l: (m, X), "hvp": lambda m, l: (m, l, X, T, v),
            "ggn_vp": lambda m, l: (m, l, X, T, v)}.get(fn, lambda m, l: (m, l, X, T))
    f = getattr(mg, fn)
    np.testing.assert_array_equal(f(*args(mine, my_loss)), f(*args(base, loss)))


def test_an_overridden_derivative_changes_every_result_that_uses_it():
    class Steeper(mg.Tanh):
        def df(self, x):
            return 2 * super().df(x)
    r = np.random.default_rng(4)
    base = mg.Sequential(mg.Linear(3, 2, rng=0), mg.Tanh(), mg.Linear(2, 2, rng=1))
    other = mg.Sequential(mg.Linear(3, 2, rng=0), Steeper(), mg.Linear(2, 2, rng=1))
    T, v = r.standard_normal((4, 2)), r.standard_normal(14)
    for fn, args in [("grad", (X, T)), ("hvp", (X, T, v)), ("ggn_vp", (X, T, v)),
                     ("hessian", (X, T)), ("gauss_newton", (X, T))]:
        a = getattr(mg, fn)(base, mg.MSELoss(), *args)
        b = getattr(mg, fn)(other, mg.MSELoss(), *args)
        assert not np.allclose(a, b), fn
    assert not np.allclose(mg.jacobian(base, X)[:, :, :8], mg.jacobian(other, X)[:, :, :8])


def test_sequential_passes_check_module():
    r = np.random.default_rng(5)
    net = mg.Sequential(mg.Linear(3, 3, rng=r), mg.Sigmoid(), mg.Linear(3, 2, rng=r))

    def ref(Z, W1, b1, W2, b2):
        return anp.dot(1 / (1 + anp.exp(-(anp.dot(Z, W1.T) + b1))), W2.T) + b2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        report = mg.check_module(net, X, reference=ref)
    assert report.ok, str(report)


def test_flatten_and_unflatten_are_inverse():
    arrays = [np.arange(6.0).reshape(2, 3), np.arange(2.0)]
    back = mg.module.unflatten(flatten(arrays), arrays)
    for a, b in zip(arrays, back):
        np.testing.assert_array_equal(a, b)


class Sine(mg.Elementwise):
    """A learner's activation: three methods."""

    def f(self, x):
        return np.sin(x)

    def df(self, x):
        return np.cos(x)

    def d2f(self, x):
        return -np.sin(x)


def test_a_new_elementwise_gives_every_public_derivative():
    rng = np.random.default_rng(6)
    net = mg.Sequential(mg.Linear(3, 4, rng=rng), Sine(), mg.Linear(4, 2, rng=rng))
    T, v = rng.standard_normal((4, 2)), rng.standard_normal(26)
    w = mg.parameters_to_vector(net)

    def N(u, Z):
        W1, b1, W2, b2 = anp.reshape(u[:12], (4, 3)), u[12:16], anp.reshape(u[16:24], (2, 4)), u[24:]
        return anp.dot(anp.sin(anp.dot(Z, W1.T) + b1), W2.T) + b2

    def L(u):
        return anp.mean(0.5 * anp.sum((N(u, X) - T) ** 2, axis=1))
    J = autograd.jacobian(lambda u: N(u, X))(w)
    H, GN = autograd.hessian(L)(w), np.einsum("bon,bom->nm", J, J) / 4
    loss = mg.MSELoss()
    for got, want in [(mg.grad(net, loss, X, T), autograd.grad(L)(w)),
                      (mg.jacobian(net, X), J),
                      (mg.input_jacobian(net, X), np.einsum("bobm->bom", autograd.jacobian(lambda Z: N(w, Z))(X))),
                      (mg.hessian(net, loss, X, T), H), (mg.gauss_newton(net, loss, X, T), GN),
                      (mg.hvp(net, loss, X, T, v), H @ v), (mg.ggn_vp(net, loss, X, T, v), GN @ v),
                      (mg.per_sample_grads(net, loss, X, T).mean(axis=0), autograd.grad(L)(w))]:
        np.testing.assert_allclose(got, want, atol=TOL, rtol=0)


def test_only_a_curvature_vp_that_takes_inputs_is_spared_the_first_leafs_input_part():
    asked = []

    class Told(mg.Linear):                            # takes the keyword: told when it is not needed
        def curvature_vp(self, G, dX=None, dparams=None, inputs=True):
            asked.append(inputs)
            return super().curvature_vp(G, dX, dparams, inputs)

    class Plain(mg.Linear):                           # a learner's signature: always the whole product
        def curvature_vp(self, G, dX=None, dparams=None):
            asked.append("plain")
            return super().curvature_vp(G, dX, dparams)

    def net(first):
        return mg.Sequential(first(3, 4, rng=0), mg.Tanh(), mg.Linear(4, 2, rng=1))
    T, v = np.array([0, 1, 1, 0]), np.random.default_rng(6).standard_normal(26)
    want = mg.hvp(net(mg.Linear), mg.SoftmaxCrossEntropy(), X, T, v)
    np.testing.assert_array_equal(mg.hvp(net(Told), mg.SoftmaxCrossEntropy(), X, T, v), want)
    np.testing.assert_array_equal(mg.hvp(net(Plain), mg.SoftmaxCrossEntropy(), X, T, v), want)
    assert asked == [False, "plain"]


def test_a_wrong_input_part_is_caught_even_where_none_was_asked_for():
    class Wrong(mg.Linear):
        def curvature_vp(self, G, dX=None, dparams=None, inputs=True):
            return np.zeros((1, 1)), super().curvature_vp(G, dX, dparams)[1]
    model = mg.Sequential(Wrong(3, 4, rng=0), mg.Tanh(), mg.Linear(4, 2, rng=1))
    with pytest.raises(ShapeError, match=r"curvature_vp returned tuple\[shape \(1, 1\)"):
        mg.hvp(model, mg.SoftmaxCrossEntropy(), X, np.array([0, 1, 1, 0]), np.ones(26))


# ------------------------------------------ the per-sample Jacobian's first leaf
def last_leaf_net(cls):
    return mg.Sequential(mg.Linear(3, 2, rng=2), cls([0.9, -1.2]))


def jacobian_reference(net):                         # Linear(3, 2), then y = tanh(a * z)
    def net_fn(u):
        return anp.tanh((anp.dot(X, anp.reshape(u[:6], (2, 3)).T) + u[6:8]) * u[8:10])
    return autograd.jacobian(net_fn)(mg.parameters_to_vector(net))


def test_the_jacobian_takes_a_last_leafs_own_param_jacobian_as_it_is():
    class Own(ScaledTanhJ):                          # J_theta written: the rows are never multiplied by I
        def vjp_params_many(self, A, out=None):
            raise AssertionError("the identity rows were pulled through vjp_params_many")
    net = last_leaf_net(Own)
    np.testing.assert_allclose(mg.jacobian(net, X), jacobian_reference(net), atol=TOL, rtol=0)


def test_a_last_leaf_with_vjp_params_many_and_no_param_jacobian_pulls_the_identity_rows():
    pushed = []

    class Rows(ScaledTanhP):                         # products only: p forward products would build J_theta
        def jvp(self, dX=None, dparams=None):
            pushed.append(dparams is not None)
            return super().jvp(dX, dparams)

        def vjp_params_many(self, A, out=None):
            a, x, d1, _ = self._parts()
            return A * (d1 * x)[:, None, :]
    net = last_leaf_net(Rows)
    np.testing.assert_allclose(mg.jacobian(net, X), jacobian_reference(net), atol=TOL, rtol=0)
    assert True not in pushed


def test_a_last_leafs_param_jacobian_of_the_wrong_shape_is_named():
    class Short(ScaledTanhJ):
        def param_jacobian(self):
            return super().param_jacobian()[:, :, :1]
    with pytest.raises(ShapeError, match=r"\.param_jacobian returned shape \(4, 2, 1\), expected an "
                                         r"array of shape \(4, 2, 2\)"):
        mg.jacobian(last_leaf_net(Short), X)


# --------------------------------------------- gram_params written in place (out=)
class GramInPlace(ScaledTanhJ):                        # curvature_pp is not None: added after
    def gram_params(self, H, out=None):
        value = super().gram_params(H)
        if out is None:
            return value
        out[...] = value
        return out


class GramIgnoresOut(ScaledTanhJ):                     # takes out= but returns its own array
    def gram_params(self, H, out=None):
        return super().gram_params(H)


@pytest.mark.parametrize("cls", [GramInPlace, GramIgnoresOut])
def test_a_gram_block_written_in_place_or_not_gives_the_hessian(cls):
    rng = np.random.default_rng(1)
    T = rng.integers(0, 3, 4)

    def net(kind):
        return mg.Sequential(mg.Linear(3, 2, rng=5), kind([0.9, -1.2]), mg.Linear(2, 3, rng=6))
    for name in ("hessian", "gauss_newton"):
        want = getattr(mg, name)(net(ScaledTanhJ), mg.SoftmaxCrossEntropy(), X, T)
        got = getattr(mg, name)(net(cls), mg.SoftmaxCrossEntropy(), X, T)
        np.testing.assert_allclose(got, want, atol=1e-15, rtol=0, err_msg=name)


def test_linear_gram_params_in_place_equals_its_returned_block():
    lin, H = mg.Linear(3, 4, rng=0), np.random.default_rng(2).standard_normal((5, 4, 4))
    lin(np.random.default_rng(3).standard_normal((5, 3)))
    H = H + H.transpose(0, 2, 1)
    out = np.full((16, 16), np.nan)                      # p = o m + o
    assert lin.gram_params(H, out=out) is out
    np.testing.assert_array_equal(out, lin.gram_params(H))
