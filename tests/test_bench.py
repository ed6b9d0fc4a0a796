"""The benchmark's machinery: every implementation agrees with the reference
(so nothing wrong is ever timed), the verdict rule, the flop counts (the
dense-equivalent one and each route's own, against the libraries' counters),
the growth fits, the memory measurement, and the committed results' schema.
No timing is asserted."""
import importlib.util
import json
import os
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

import implementations  # noqa: E402
import run  # noqa: E402

import minigrad as mg  # noqa: E402

CORE = {b: implementations.ALL_BACKENDS[b] for b in ("minigrad", "numpy", "autograd")}
TINY_CONFIG = {"fast": (0.0, 1, 1), "matrix": (0.0, 1, 1)}
TINY = dict(m=5, h=4, o=3, B=7, B_jac=3)


def _bench(backends, **kw):
    pb = implementations.Problem(**TINY)
    return run.bench_problem(pb, TINY_CONFIG, backends=backends, verbose=False, **kw)


def test_every_task_and_variant_agrees_with_autograd():
    res = _bench(CORE)
    for task in implementations.TASKS:
        assert set(res["cells"][task]) == set(CORE)
        for b, cell in res["cells"][task].items():
            for v in cell["variants"].values():
                assert v["rel_error"] <= run.REL_TOL


@pytest.mark.parametrize("backend", implementations.OPTIONAL)
def test_optional_backend_agrees_with_autograd(backend):
    pytest.importorskip(backend)
    res = _bench({**CORE, backend: implementations.ALL_BACKENDS[backend]})
    for task in implementations.TASKS:
        for v in res["cells"][task][backend]["variants"].values():
            assert v["rel_error"] <= run.REL_TOL


def test_a_wrong_implementation_is_caught_before_timing():
    def broken(pb):
        impls = implementations.make_numpy(pb)
        good = impls["hvp"]["R-operator"]
        impls["hvp"]["R-operator"] = lambda: good() * (1 + 1e-6)
        return impls

    with pytest.raises(AssertionError, match="hvp: results differ from autograd"):
        _bench({**CORE, "numpy": broken})


def test_the_fastest_variant_is_the_cell():
    res = _bench(CORE)
    for row in res["cells"].values():
        for cell in row.values():
            assert cell["median"] == min(v["median"] for v in cell["variants"].values())


# ------------------------------------------------------------------ the verdicts
@pytest.mark.parametrize("q25, median, q75, op, limit, expected", [
    (1.10, 1.20, 1.30, "<=", 1.35, "met"),
    (1.30, 1.33, 1.40, "<=", 1.35, "within noise"),   # median below, spread across
    (1.36, 1.40, 1.45, "<=", 1.35, "MISSED"),
    (1.20, 1.40, 1.50, "<=", 1.35, "within noise"),   # median above, spread across
    (30.0, 35.0, 40.0, ">=", 25.0, "met"),
    (24.0, 26.0, 28.0, ">=", 25.0, "within noise"),
    (20.0, 22.0, 24.9, ">=", 25.0, "MISSED"),
])
def test_verdict_needs_the_whole_interquartile_range(q25, median, q75, op, limit, expected):
    assert run.verdict({"q25": q25, "median": median, "q75": q75}, op, limit) == expected


def test_verdict_refuses_an_unknown_operator():
    with pytest.raises(ValueError):
        run.verdict({"q25": 1, "median": 1, "q75": 1}, "<", 2)


def test_ratios_pair_round_by_round():
    # a load spike hits both cells in round 2: paired, the ratio stays 1.2
    num, den = [1.2, 12.0, 1.2, 1.2], [1.0, 10.0, 1.0, 1.0]
    st = run.paired_ratio(num, den)
    assert st["median"] == pytest.approx(1.2) and st["q75"] == pytest.approx(1.2)
    assert run.verdict(st, "<=", 1.35) == "met"


def test_samples_are_sized_on_a_warm_call():
    import time
    made = []

    def cold_then_quick():                          # the first call 5 ms (cold), then at once
        made.append(1)
        if len(made) == 1:
            time.sleep(0.005)
    samples = run.time_group({"cell": cold_then_quick}, 0.0, 1, 1)
    assert len(samples["cell"]) == 1 and len(made) > 100    # sized on the first: 2 calls a sample


def test_targets_use_the_paired_spread():
    entry = {"cells": {"gradient": {"minigrad": {"samples": [1.3, 1.4, 1.5, 1.3]},
                                    "numpy": {"samples": [1.0, 1.0, 1.0, 1.0]}}}}
    spec = [("gradient", ("gradient", "minigrad"), ("gradient", "numpy"), "<=", 1.35),
            ("hessian", ("hessian", "autograd"), ("hessian", "minigrad"), ">=", 25)]
    (g, h) = run.targets(entry, spec)
    assert g["verdict"] == "within noise" and g["median"] == pytest.approx(1.35)
    assert h["verdict"] == "not run"


# ------------------------------------------------------------- counting the work
class Counter:
    """Matrix products that count their flops (2 per multiply-add)."""

    def __init__(self):
        self.flops = 0

    def __call__(self, A, B):
        C = A @ B
        self.flops += 2 * A.shape[-1] * C.size
        return C


def _counted_products(pb):
    """Gradient, G v and H v of the benchmark MLP written with counted
    products only: returns (results, flops) per task."""
    W1, b1, W2, b2 = pb.unpack(pb.w)
    dW1, db1, dW2, db2 = pb.unpack(pb.v)
    X, T, B = pb.X, pb.T, pb.B
    out = {}
    for task in ("gradient", "ggn_vp", "hvp"):
        mm = Counter()
        A = np.tanh(mm(X, W1.T) + b1)
        Y = mm(A, W2.T) + b2
        P = np.exp(Y - Y.max(1, keepdims=True))
        P /= P.sum(1, keepdims=True)
        E = (P - T) / B
        S = 1 - A * A
        if task == "gradient":
            D = mm(E, W2) * S
            res = [mm(D.T, X), D.sum(0), mm(E.T, A), E.sum(0)]
        else:
            dZ = mm(X, dW1.T) + db1
            dA = S * dZ
            dY = mm(dA, W2.T) + mm(A, dW2.T) + db2
            dE = P * (dY - np.sum(P * dY, 1, keepdims=True)) / B
            dG = mm(dE, W2)
            gW2 = mm(dE.T, A)
            if task == "hvp":
                dG = dG + mm(E, dW2)
                gW2 = gW2 + mm(E.T, dA)
                dD = dG * S - 2 * mm(E, W2) * A * S * dZ
            else:
                dD = dG * S
            res = [mm(dD.T, X), dD.sum(0), gW2, dE.sum(0)]
        out[task] = (np.concatenate([r.ravel() for r in res]), mm.flops)
    return out


def test_flop_counts_match_counted_implementations():
    pb = implementations.Problem(m=6, h=5, o=4, B=9)
    counted = _counted_products(pb)
    reference = {"gradient": mg.grad(pb.model, pb.loss, pb.X, pb.t),
                 "ggn_vp": mg.ggn_vp(pb.model, pb.loss, pb.X, pb.t, pb.v),
                 "hvp": mg.hvp(pb.model, pb.loss, pb.X, pb.t, pb.v)}
    for task, (value, F) in counted.items():
        np.testing.assert_allclose(value, reference[task], rtol=1e-10, atol=1e-12)
        assert F == run.flops(task, **pb.sizes()), task


def test_matrix_flops_are_one_product_over_the_batch():
    # the dense sum: block (i, j) has n_i n_j entries, each a sum over the batch;
    # summed over the blocks W1, b1, W2, b2 this is 2 B n^2
    m, h, o, B = 3, 2, 2, 5
    groups = [h * m, h, o * h, o]
    counted = sum(2 * B * a * b for a in groups for b in groups)
    n = sum(groups)
    assert run.flops("hessian", m, h, o, B, 1, n) == counted == 2 * B * n * n
    assert run.flops("gauss_newton", m, h, o, B, 1, n) == counted


def test_jacobian_flops_count_one_multiply_per_entry_of_the_w1_block():
    assert run.flops("jacobian", m=2, h=3, o=4, B=100, B_jac=5, n=0) == \
        5 * (2 * 2 * 3 + 2 * 3 * 4 + 4 * 3 * 2)


# --------------------------------------------------------------- the exponent fit
def test_exponent_fit_recovers_a_power_law_past_a_fixed_cost():
    x = np.array([10, 20, 40, 80, 160, 320, 640.0])
    y = 20 + 0.5 * x ** 2                        # a fixed cost that matters at small x
    assert run.fit_exponent(x, y, last=3) == pytest.approx(2, abs=0.02)
    assert run.fit_exponent(x, y, last=7) < 1.95               # all points: bent by the fixed cost
    assert run.fit_exponent(x, 3 * x ** 1.0, last=4) == pytest.approx(1.0)
    assert run.fit_exponent(x[::-1], 3 * x[::-1] ** 1.5) == pytest.approx(1.5)  # order-free


def test_growth_fit_separates_a_fixed_cost_from_the_growth():
    x = np.array([610, 1210, 2410, 4810.0])
    y = 8e-3 + 2e-9 * x ** 2                    # per-call overhead first, n^2 at the end
    f = run.fit_growth(x, y)
    assert f["p"] == pytest.approx(2, abs=0.002) and f["t0"] == pytest.approx(8e-3, rel=1e-3)
    assert run.fit_exponent(x, y) < 1.5         # the pure power law is bent by t0
    assert f["local"] < 2 and f["local"] == pytest.approx(np.log(y[3] / y[2]) / np.log(x[3] / x[2]))
    g = run.fit_growth(x[::-1], 3 * x[::-1] ** 1.3)            # no fixed cost, any order
    assert g["p"] == pytest.approx(1.3) and g["t0"] == 0 and g["t0_share"] == 0
    assert run.fit_growth(x[:2], y[:2]) is None


# ------------------------------------------------ each route's own operation count
def test_route_counts_are_the_dense_count_where_the_algorithm_is_the_same():
    s = dict(m=64, h=32, o=10, B=256, B_jac=16, n=2410)
    for task in ("gradient", "ggn_vp", "hvp"):
        assert run.route_flops(task, "minigrad", task, **s) == run.flops(task, **s)
        assert run.route_flops(task, "numpy", "R-operator" if task != "gradient" else "backprop",
                               **s) == run.flops(task, **s)
    # minigrad's Kronecker assembly: a third of the dense sum here, tending to a
    # quarter when the W1-W1 block dominates (each distinct entry of a
    # symmetric pair of pairs once)
    mg_share = run.route_flops("hessian", "minigrad", "hessian", **s) / run.flops("hessian", **s)
    assert 0.25 < mg_share < 0.35
    big = dict(m=400, h=400, o=2, B=8, B_jac=1, n=400 * 400 + 400 + 2 * 400 + 2)
    assert run.route_flops("hessian", "minigrad", "", **big) / run.flops("hessian", **big) == \
        pytest.approx(0.25, abs=0.01)
    # n Hessian-vector products cost n tangents of the gradient, 2B(2mh + 6ho) each
    assert run.route_flops("hessian", "jax", "jit(hessian)", **s) == \
        pytest.approx(2410 * 2 * 256 * (2 * 64 * 32 + 6 * 32 * 10), rel=0.001)


@pytest.mark.parametrize("backend, tol", [("torch", 0.02), ("jax", 0.15)])
def test_route_counts_match_the_libraries_own_counters(backend, tol):
    # PyTorch's FlopCounterMode counts the matrix products it dispatches; XLA's
    # cost analysis counts the compiled program, elementwise work included
    # (hence the looser tolerance). Outer products (one multiply per entry in
    # route_flops, two in the counters) are a larger share at this small size.
    pytest.importorskip(backend)
    pb = implementations.Problem(m=32, h=24, o=10, B=128, B_jac=4)
    counted = run.library_flops(pb, {backend: implementations.ALL_BACKENDS[backend]})
    checked = 0
    for task, row in counted.items():
        for variant, lib in row[backend].items():
            derived = run.route_flops(task, backend, variant, **pb.sizes())
            if derived is None:
                continue
            assert lib == pytest.approx(derived, rel=tol), (task, variant)
            checked += 1
    assert checked >= 6                             # every route but the Jacobian


# ------------------------------------------------------------------ memory
def test_resident_memory_sees_the_result_and_agrees_with_tracemalloc():
    if not os.path.exists("/proc/self/clear_refs"):
        pytest.skip("needs Linux's /proc/self/clear_refs")
    pb = implementations.Problem(m=32, h=24, o=10, B=64, B_jac=4)
    rss = run.rss_peaks_all(pb, tasks=["hessian"], backends=CORE, verbose=False)
    impl = implementations.make_minigrad(pb)
    traced, size = run.peak_memory(impl["hessian"]["hessian"])
    for b in CORE:
        (cell,) = rss["hessian"][b].values()
        assert cell["result_bytes"] == size == 8 * pb.n ** 2
        assert size <= cell["peak_bytes"] < 20 * size, b
    (mine,) = rss["hessian"]["minigrad"].values()
    assert mine["peak_bytes"] == pytest.approx(traced, rel=0.25)   # two methods, one answer


# --------------------------------------------------------- the committed results
RESULTS = os.path.join(ROOT, "benchmarks", "results")


@pytest.mark.parametrize("name", ["results.json", "sweep.json"])
def test_committed_results_say_what_was_measured(name):
    with open(os.path.join(RESULTS, name)) as fh:
        res = json.load(fh)
    m = res["machine"]
    assert len(m["commit"]) == 40 and int(m["commit"], 16) >= 0
    assert len(m["minigrad_sha256"]) == 64
    assert m["versions"]["numpy"] and {"minigrad", "numpy", "autograd"} <= set(m["backends"])
    assert m["allocator"] == run.ALLOCATOR          # the run restarted itself with them


def test_committed_results_have_spreads_and_verdicts():
    with open(os.path.join(RESULTS, "results.json")) as fh:
        res = json.load(fh)
    small = res["problems"][0]
    for task, row in small["cells"].items():
        group = "fast" if task in run.FAST else task
        for cell in row.values():
            assert cell["q25"] <= cell["median"] <= cell["q75"]
            assert len(cell["samples"]) == small["rounds"][group] >= 3
    for tg in small["targets"]:
        expected = run.verdict(tg, tg["op"], tg["limit"]) if tg["median"] is not None else "not run"
        assert tg["verdict"] == expected
    for problem in res["problems"]:                 # every cell's memory, every route's count
        for task, row in problem["cells"].items():
            for b, cell in row.items():
                assert set(cell["variants"]) == set(problem["rss"][task][b])
                rate = problem["cost"]["tasks"][task]["rate"][b]
                assert (rate["own_flops"] is None) == (task == "jacobian")


def test_committed_sweep_has_growth_fits_with_their_checks():
    with open(os.path.join(RESULTS, "sweep.json")) as fh:
        sweep = json.load(fh)
    for key, tasks in sweep["fits"].items():
        for task, row in tasks.items():
            for b, f in row.items():
                assert {"p", "t0", "c", "local", "power_law", "theory"} <= set(f)
                assert f["t0"] >= 0 and f["points"] >= 3
    for task in run.MATRIX_TASKS:                  # the dense peers reach n = 4810
        for b in ("numpy", "jax", "torch"):
            if b in sweep["machine"]["backends"]:
                f = sweep["fits"]["width"][task][b]
                assert f["x_range"][1] == 4810 and f["points"] >= 4


def test_minigrad_hash_changes_with_the_source(tmp_path):
    (tmp_path / "minigrad").mkdir()
    (tmp_path / "minigrad" / "a.py").write_text("x = 1\n")
    h1 = run.minigrad_hash(str(tmp_path))
    (tmp_path / "minigrad" / "a.py").write_text("x = 2\n")
    assert run.minigrad_hash(str(tmp_path)) != h1
    assert len(run.minigrad_hash()) == 64


def test_optional_backends_absent_or_importable():
    for b in implementations.OPTIONAL:
        present = importlib.util.find_spec(b) is not None
        assert (b in implementations.available_backends()) == present
