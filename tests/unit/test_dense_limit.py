"""Issue 24: DENSE_LIMIT_BYTES bounds the peak memory of the dense functions,
result and intermediates; the batch is taken in chunks when that is enough (same
result), and a refusal names the size and the way out."""
import tracemalloc

import numpy as np
import pytest

import minigrad as mg
import minigrad.derivatives as derivatives

rng0 = np.random.default_rng(0)


def wide_input_problem(B=400, m=200):
    """A first layer with a wide input: sum_b h x x^T pairs make (B, m(m+1)/2) temporaries
    (64 MB each here) for a result of only 2.9 MB."""
    model = mg.Sequential(mg.Linear(m, 3, rng=1), mg.Tanh(), mg.Linear(3, 1, rng=2))
    return model, mg.MSELoss(), rng0.standard_normal((B, m)), rng0.standard_normal((B, 1))


def peak_bytes(call):
    tracemalloc.start()
    try:
        result = call()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("name", ["hessian", "gauss_newton"])
def test_a_small_limit_chunks_the_batch_same_result_and_peak_within_it(name, monkeypatch):
    model, loss, X, T = wide_input_problem()
    whole = getattr(mg, name)(model, loss, X, T)
    limit = 40 * 1024 ** 2
    monkeypatch.setattr(derivatives, "DENSE_LIMIT_BYTES", limit)
    chunked, peak = peak_bytes(lambda: getattr(mg, name)(model, loss, X, T))
    assert np.allclose(chunked, whole, rtol=1e-12, atol=1e-14)
    assert peak <= limit, f"peak {peak / 2**20:.1f} MiB over the {limit / 2**20:.0f} MiB limit"
    assert np.shares_memory(model.input, X) or np.array_equal(model.input, X)   # left at the batch


@pytest.mark.parametrize("name", ["jacobian", "per_sample_grads"])
def test_per_sample_results_chunk_the_same_way(name, monkeypatch):
    model, loss, X, T = wide_input_problem(B=64)
    args = (model, X) if name == "jacobian" else (model, loss, X, T)
    whole = getattr(mg, name)(*args)
    monkeypatch.setattr(derivatives, "DENSE_LIMIT_BYTES", whole.nbytes + 100 * 2 ** 10)
    assert 1 < derivatives.dense_chunk(whole.shape, name, 2 * whole[0].size, 64) < 64
    assert np.allclose(getattr(mg, name)(*args), whole, rtol=1e-14, atol=1e-15)  # BLAS rounding


def test_a_result_beyond_the_limit_is_refused_naming_size_and_way_out():
    with pytest.raises(ValueError, match=r"input_jacobian: the result of shape \(300, 2000, 2000\) "
                                         r"needs 9.6 GB.*DENSE_LIMIT_BYTES\); use the matrix-free"):
        mg.input_jacobian(mg.Softmax(), rng0.standard_normal((300, 2000)))


def test_operators_follow_the_one_limit(monkeypatch):
    model, loss, X, T = wide_input_problem(B=8)
    monkeypatch.setattr(derivatives, "DENSE_LIMIT_BYTES", 2 ** 20)
    with pytest.raises(ValueError, match=r"empirical_fisher: the result of shape \(607, 607\)"):
        mg.empirical_fisher(model, loss, X, T)
    with pytest.raises(ValueError, match=r"kron_block: the result of shape \(603, 603\)"):
        mg.operators.kron_block(np.eye(3), np.eye(201))
