"""Grading over a pool of machines with dask.distributed (issue 25).

A local dask cluster of two worker processes grades a class folder (a solved notebook, an
unsolved one, a file that is not a notebook) with ``python -m grader --scheduler``: the
results are those of a local run, sandbox and all. A worker that dies on a notebook costs only
that notebook; a scheduler that cannot be reached, or has no worker, still writes every
result; a worker with other grader code, or without a sandbox, grades nothing.
"""
import json
import os
import shutil
from pathlib import Path

import dask
import pytest
from distributed import LocalCluster

from grader import cli, distributed, grading, notebooks, sandbox
from grader.reports import result_for
from grader.settings import Limits


ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cluster():
    # a task whose worker dies is given up at once (the default retries it on 3 workers)
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                          host="127.0.0.1", dashboard_address=":0") as c:
            yield c


@pytest.fixture(scope="module")
def class_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("class")
    shutil.copy(ROOT / "solutions" / "02_linear_algebra.ipynb", folder / "ada.ipynb")
    shutil.copy(ROOT / "exercises" / "03_jacobian.ipynb", folder / "bob.ipynb")
    (folder / "broken.ipynb").write_text("{ not json")
    return folder


def _grade(folder, out, *options):
    code = cli.main([str(folder), "--json", str(out), *options])
    return code, json.loads(Path(out).read_text())


@pytest.fixture(scope="module")
def both_runs(cluster, class_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    local = _grade(class_folder, out / "local.json", "--jobs", "2")
    pooled = _grade(class_folder, out / "pool.json", "--scheduler", cluster.scheduler_address)
    return local, pooled


def test_a_pool_gives_the_results_of_a_local_run(both_runs):
    (local_code, local), (pool_code, pooled) = both_runs
    assert pooled == local
    assert local_code == pool_code == cli.EXIT_NOT_GRADED        # broken.ipynb


def test_the_pool_graded_for_real(both_runs):
    by_name = {Path(r["notebook"]).name: r for r in both_runs[1][1]}
    assert by_name["ada.ipynb"]["score"] == by_name["ada.ipynb"]["max_score"] == 10
    assert by_name["bob.ipynb"]["score"] == 0 and by_name["bob.ipynb"]["max_score"] == 12
    assert "not a notebook" in by_name["broken.ipynb"]["error"]


# ---------------------------------------------------------------- failures
def dying_task(submission, digest, limits, no_sandbox):
    """A worker's task that kills its worker for ``dies.ipynb`` and passes the others."""
    if submission["path"].endswith("dies.ipynb"):
        os._exit(1)
    return result_for(submission["path"], submission["chapter"], [
        {"id": "2.1", "points": 2.0, "max_points": 2.0, "passed": True,
         "message": "passed (1 test)"}]), [], None


def _todo(folder, names):
    todo = []
    for name in names:
        shutil.copy(ROOT / "exercises" / "02_linear_algebra.ipynb", folder / name)
        todo.append((folder / name, notebooks.read(folder / name)))
    return todo


def _args(scheduler):
    import types
    return types.SimpleNamespace(scheduler=scheduler, limits=Limits(), no_sandbox=False, jobs=1)


def test_a_dying_worker_costs_only_its_notebook(cluster, tmp_path):
    todo = _todo(tmp_path, ["dies.ipynb", "lives.ipynb"])
    results, void, interrupted = distributed.grade_all(
        todo, grading.chapters(), _args(cluster.scheduler_address), task=dying_task)
    assert "worker died" in results[tmp_path / "dies.ipynb"]["error"]
    assert results[tmp_path / "lives.ipynb"]["score"] == 2.0
    assert not void and not interrupted


def test_an_unreachable_scheduler_still_writes_every_result(class_folder, tmp_path,
                                                            monkeypatch, capsys):
    monkeypatch.setattr(distributed, "CONNECT_TIMEOUT", 2)
    code, results = _grade(class_folder, tmp_path / "o.json", "--scheduler",
                           "tcp://127.0.0.1:9")
    assert code == cli.EXIT_NOT_GRADED and len(results) == 3
    for r in results:
        assert r["error"].startswith(("not graded: the dask scheduler at tcp://127.0.0.1:9",
                                      "not a notebook"))
    assert "cannot reach the dask scheduler" in capsys.readouterr().err


def test_a_scheduler_without_workers_still_writes_every_result(tmp_path, monkeypatch):
    monkeypatch.setattr(distributed, "WORKER_WAIT", 2)
    todo = _todo(tmp_path, ["a.ipynb"])
    with LocalCluster(n_workers=0, host="127.0.0.1", dashboard_address=":0") as empty:
        results, _, _ = distributed.grade_all(todo, grading.chapters(),
                                              _args(empty.scheduler_address))
    assert "no dask worker joined" in results[tmp_path / "a.ipynb"]["error"]


def test_a_worker_with_other_grader_code_grades_nothing(tmp_path):
    (path, submission), = _todo(tmp_path, ["a.ipynb"])
    result, void, note = distributed.grade_on_worker(submission.as_json(), "0" * 64,
                                                     Limits(), False)
    assert "runs other grader code than the coordinator" in result["error"]


def test_a_worker_that_cannot_sandbox_grades_nothing(tmp_path, monkeypatch):
    (path, submission), = _todo(tmp_path, ["a.ipynb"])

    def no_bwrap():
        raise sandbox.SandboxUnavailable("bubblewrap (bwrap) is not installed")
    monkeypatch.setattr(sandbox, "check", no_bwrap)
    result, _, _ = distributed.grade_on_worker(submission.as_json(),
                                               distributed.code_digest(), Limits(), False)
    assert "cannot sandbox (bubblewrap (bwrap) is not installed)" in result["error"]


def test_the_coordinator_needs_no_sandbox_of_its_own(class_folder, tmp_path, monkeypatch):
    """With --scheduler the workers sandbox; a coordinator without bwrap must not have to
    pass --no-sandbox (which would turn the sandbox off on every worker)."""
    def no_bwrap():
        raise sandbox.SandboxUnavailable("bubblewrap (bwrap) is not installed")
    seen = {}

    def pool(todo, known, args):
        seen["no_sandbox"] = args.no_sandbox
        return {p: result_for(p, s.chapter, []) for p, s in todo}, [], False
    monkeypatch.setattr(sandbox, "check", no_bwrap)
    monkeypatch.setattr(distributed, "grade_all", pool)
    code, results = _grade(class_folder, tmp_path / "o.json", "--scheduler", "tcp://pool:8786")
    assert seen == {"no_sandbox": False} and len(results) == 3
    assert cli.main([str(class_folder)]) == cli.EXIT_USAGE        # a local run still refuses
