"""Issue 24: one home per formula. The composition step (``compose``) serves both
``backward_second`` and the whole-model Hessian; a Sequential's three curvature
blocks come from one pass; the derivative functions need no loss value."""
import numpy as np

import minigrad as mg
import minigrad.chain as chain
import minigrad.module as module
import minigrad.sequential as sequential

rng0 = np.random.default_rng(0)
X, T = rng0.standard_normal((5, 3)), rng0.integers(0, 2, 5)


def net():
    return mg.Sequential(mg.Linear(3, 4, rng=1), mg.Tanh(), mg.Linear(4, 2, rng=2))


def test_backward_second_and_the_hessian_take_the_same_composition_step(monkeypatch):
    calls = []

    def counted(mod, G, H):
        calls.append(type(mod).__name__)
        return compose(mod, G, H)
    compose = module.compose
    monkeypatch.setattr(module, "compose", counted)
    monkeypatch.setattr(chain, "compose", counted)
    model, loss = net(), mg.SoftmaxCrossEntropy()
    mg.hessian(model, loss, X, T)
    assert calls == ["Linear", "Tanh"]                      # every leaf but the first
    calls.clear()
    loss(model(X), T)
    model.backward_second(loss.backward(), loss.hessian())
    assert calls == ["Linear", "Tanh", "Linear"]


def test_a_sequentials_curvature_blocks_come_from_one_pass(monkeypatch):
    passes = []
    blocks = sequential.hessian_blocks
    monkeypatch.setattr(sequential, "hessian_blocks", lambda *a, **k: passes.append(1) or blocks(*a, **k))
    model = net()
    model(X)
    G = rng0.standard_normal((5, 2))
    Cxx, Cxp, Cpp = model.curvature_xx(G), model.curvature_xp(G), model.curvature_pp(G)
    assert len(passes) == 1 and Cxx.shape == (5, 3, 3) and Cxp.shape == (5, 3, 26)
    model.curvature_pp(G + 1.0)                             # another G: computed again
    model(X)
    model.curvature_pp(G)                                   # another input: computed again
    assert len(passes) == 3


def test_a_gradient_is_returned_where_only_the_loss_value_overflows():
    lin = mg.Linear(1, 1, rng=0)
    lin.params["W"][...], lin.params["b"][...] = 0.0, 1e155   # y = 1e155: l = y^2 / 2 is inf
    g = mg.grad(lin, mg.MSELoss(), np.ones((2, 1)), np.zeros(2))
    assert np.array_equal(g, [1e155, 1e155])                  # dl/dW = y x, dl/db = y
