"""The benchmark's machinery: every implementation agrees with the reference
(so nothing wrong is ever timed), the verdict rule, the flop counts, the
exponent fit, and the committed results' schema. No timing is asserted."""
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
