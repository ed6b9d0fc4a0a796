"""The benchmark's implementations agree, so `make bench` never times a wrong
result: run.py checks every task on a tiny problem (no timing is asserted)."""
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

import implementations  # noqa: E402
import run  # noqa: E402

CORE = {b: implementations.available_backends()[b] for b in ("minigrad", "numpy", "autograd")}


def test_every_task_agrees_across_implementations():
    pb = implementations.Problem(m=5, h=4, o=3, B=7, B_jac=3)
    res = run.bench_problem(pb, repeats=1, backends=CORE, verbose=False)
    for task in implementations.TASKS:
        assert set(res["errors"][task]) == set(CORE)
        assert all(e <= run.REL_TOL for e in res["errors"][task].values())


def test_a_wrong_implementation_is_caught_before_timing():
    pb = implementations.Problem(m=5, h=4, o=3, B=7, B_jac=3)

    def broken(pb):
        impls = implementations.make_numpy(pb)
        good = impls["gradient"]
        impls["gradient"] = lambda: good() * 1.001
        return impls

    with pytest.raises(AssertionError, match="gradient: results differ from autograd"):
        run.bench_problem(pb, repeats=1, backends={**CORE, "numpy": broken}, verbose=False)


def test_targets_are_read_from_medians():
    medians = {"gradient": {"minigrad": 1.1, "numpy": 1.0}}
    task, _, target = run._gradient_target(1.35)
    value, passed = target(medians)
    assert task == "gradient" and value == pytest.approx(1.1) and passed
    medians["gradient"]["minigrad"] = 1.3
    assert run._gradient_target(1.0)[2](medians)[1] is False
