"""Property-based tests over random architectures: depth 1 to 4, widths 1 to
16, batch 1 to 8, mixed activations, both matching losses, both target forms.
Every derivative agrees with autograd to 1e-10 relative."""
import autograd
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minigrad as mg
from references import model_fn, objective, relative_error

TOL = 1e-10
ACTIVATIONS = [mg.Tanh, mg.Sigmoid, mg.ReLU, mg.Identity, mg.Softmax]


@st.composite
def problems(draw):
    depth = draw(st.integers(1, 4))
    widths = [draw(st.integers(1, 16)) for _ in range(depth + 1)]
    widths[-1] = max(widths[-1], 2)                     # at least two classes
    B = draw(st.integers(1, 8))
    seed = draw(st.integers(0, 2 ** 16))
    rng = np.random.default_rng(seed)
    modules = []
    for k in range(depth):
        modules.append(mg.Linear(widths[k], widths[k + 1], rng=rng))
        if k < depth - 1:
            modules.append(draw(st.sampled_from(ACTIVATIONS))())
    model = mg.Sequential(*modules)
    loss = draw(st.sampled_from([mg.SoftmaxCrossEntropy, mg.MSELoss]))()
    X = rng.standard_normal((B, widths[0]))
    o = widths[-1]
    if draw(st.booleans()):
        T = rng.integers(0, o, B) if isinstance(loss, mg.SoftmaxCrossEntropy) else np.eye(o)[rng.integers(0, o, B)]
    else:
        T = rng.dirichlet(np.ones(o), B)
    return model, loss, X, T


SETTINGS = settings(max_examples=30, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(problems())
def test_grad(problem):
    model, loss, X, T = problem
    w = mg.parameters_to_vector(model)
    assert relative_error(mg.grad(model, loss, X, T),
                          autograd.grad(objective(model, loss, X, T))(w)) < TOL


@SETTINGS
@given(problems())
def test_hessian(problem):
    model, loss, X, T = problem
    w = mg.parameters_to_vector(model)
    assert relative_error(mg.hessian(model, loss, X, T),
                          autograd.hessian(objective(model, loss, X, T))(w)) < TOL


@SETTINGS
@given(problems())
def test_jacobian_and_gauss_newton(problem):
    model, loss, X, T = problem
    w = mg.parameters_to_vector(model)
    J = autograd.jacobian(lambda v: model_fn(model)(v, X))(w)
    assert relative_error(mg.jacobian(model, X), J) < TOL
    loss(model(X), T)
    G = np.einsum("bon,bop,bpq->nq", J, loss.hessian(), J)
    assert relative_error(mg.gauss_newton(model, loss, X, T), G) < TOL


@SETTINGS
@given(problems())
def test_products(problem):
    model, loss, X, T = problem
    w = mg.parameters_to_vector(model)
    v = np.random.default_rng(0).standard_normal(w.size)
    Hv = autograd.hessian_vector_product(objective(model, loss, X, T))(w, v)
    assert relative_error(mg.hvp(model, loss, X, T, v), Hv) < TOL
    G = mg.gauss_newton(model, loss, X, T)
    assert relative_error(mg.ggn_vp(model, loss, X, T, v), G @ v) < TOL


@SETTINGS
@given(problems())
def test_input_jacobian(problem):
    model, _, X, _ = problem
    w = mg.parameters_to_vector(model)
    full = autograd.jacobian(lambda Z: model_fn(model)(w, Z))(X)
    assert relative_error(mg.input_jacobian(model, X), np.einsum("bobm->bom", full)) < TOL
