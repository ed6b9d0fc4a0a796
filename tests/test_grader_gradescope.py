"""Gradescope's autograder (issue 25): ``make gradescope``'s zip, and ``run_autograder`` run
against a temporary folder laid out like ``/autograder`` (``AUTOGRADER_ROOT``), its
``results.json`` checked against the fields Gradescope documents.

One real grading run (a sandboxed kernel per notebook): a submission of a solved and an
unsolved notebook, unpacked from the zip as Gradescope unpacks it. The wrong inputs (no
submission folder, no notebook, a file that is not a notebook, no sandbox with ``--sandbox on``,
no Python, the grader failing) need no kernel: each still writes a valid ``results.json`` whose
output says why.
"""
import json
import os
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from grader import gradescope

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import make_gradescope  # noqa: E402

PYTHON = sys.executable


@pytest.fixture(scope="module")
def autograder_zip(tmp_path_factory):
    return make_gradescope.build(tmp_path_factory.mktemp("zip") / "autograder.zip")


def _unpack(zip_path, root):
    """A folder laid out like Gradescope's /autograder after the image was built."""
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(root / "source")
        for info in zf.infolist():      # zipfile does not restore modes
            os.chmod(root / "source" / info.filename, (info.external_attr >> 16) & 0o777)
    shutil.copy2(root / "source" / "run_autograder", root / "run_autograder")
    (root / "submission").mkdir()
    return root


def _run_autograder(root, *options, python=PYTHON, timeout=600):
    env = dict(os.environ, AUTOGRADER_ROOT=str(root), AUTOGRADER_PYTHON=python,
               AUTOGRADER_OPTIONS=" ".join(options))
    env.pop("PYTHONPATH", None)
    run = subprocess.run([str(root / "run_autograder")], env=env, capture_output=True,
                         text=True, timeout=timeout, cwd="/")
    results = json.loads((root / "results" / "results.json").read_text())
    return run, results


def _valid(results):
    problems = gradescope.validate(results)
    assert not problems, problems
    return results


# ---------------------------------------------------------------- the zip
def test_zip_has_gradescope_files_at_its_root_and_no_solution(autograder_zip):
    with zipfile.ZipFile(autograder_zip) as zf:
        names = zf.namelist()
        modes = {i.filename: (i.external_attr >> 16) for i in zf.infolist()}
    assert {"setup.sh", "run_autograder", "requirements.txt", "grader/gradescope.py",
            "minigrad/__init__.py", "tests/grading/test_05_composition.py"} <= set(names)
    assert modes["run_autograder"] & stat.S_IXUSR and modes["setup.sh"] & stat.S_IXUSR
    assert not [n for n in names if n.startswith(("solutions/", "exercises/", "book/"))
                or "__pycache__" in n]


def test_the_same_sources_give_the_same_zip(autograder_zip, tmp_path):
    again = make_gradescope.build(tmp_path / "again.zip")
    assert again.read_bytes() == autograder_zip.read_bytes()


@pytest.mark.parametrize("script", ["setup.sh", "run_autograder"])
def test_scripts_are_valid_bash(script):
    assert subprocess.run(["bash", "-n", str(ROOT / "gradescope" / script)]).returncode == 0


def test_setup_installs_the_pinned_requirements_and_the_sandbox():
    text = (ROOT / "gradescope" / "setup.sh").read_text()
    assert "pip install --quiet -r requirements.txt" in text
    assert "bubblewrap" in text and "(3, 11)" in text


# ---------------------------------------------------------------- a real submission
@pytest.fixture(scope="module")
def graded(autograder_zip, tmp_path_factory):
    root = _unpack(autograder_zip, tmp_path_factory.mktemp("autograder"))
    shutil.copy(ROOT / "solutions" / "02_linear_algebra.ipynb", root / "submission")
    (root / "submission" / "unsolved").mkdir()
    shutil.copy(ROOT / "exercises" / "03_jacobian.ipynb", root / "submission" / "unsolved")
    run, results = _run_autograder(root)
    return run, results


def test_results_follow_gradescopes_format(graded):
    run, results = graded
    assert run.returncode == 0, run.stderr
    _valid(results)
    for test in results["tests"]:
        assert set(test) >= {"name", "score", "max_score", "output", "visibility"}


def test_one_test_per_exercise_with_the_points(graded):
    tests = graded[1]["tests"]
    solved = [t for t in tests if t["name"].startswith("02_linear_algebra.ipynb: ")]
    unsolved = [t for t in tests if t["name"].startswith("03_jacobian.ipynb: ")]
    assert [t["number"] for t in solved] == ["2.1", "2.2", "2.3", "2.4"]
    assert [t["number"] for t in unsolved] == ["3.1", "3.2", "3.3", "3.4"]
    assert all(t["score"] == t["max_score"] > 0 and t["status"] == "passed" for t in solved)
    assert all(t["score"] == 0 < t["max_score"] and t["status"] == "failed" for t in unsolved)
    assert graded[1]["score"] == sum(t["score"] for t in tests) == 10


def test_the_message_is_the_output_with_the_section_link(graded):
    unsolved = [t for t in graded[1]["tests"] if t["number"] == "3.2"][0]
    assert "not implemented yet" in unsolved["output"]
    assert "Read again: https://" in unsolved["output"]
    assert "book/03_jacobian.html#adding-an-activation" in unsolved["output"]


def test_the_instructor_sees_how_it_was_isolated(graded):
    assert "run_autograder: sandboxed" in graded[0].stdout


# ---------------------------------------------------------------- wrong inputs
@pytest.fixture
def root(autograder_zip, tmp_path):
    return _unpack(autograder_zip, tmp_path / "autograder")


def test_a_missing_submission_folder_is_reported(root):
    root.joinpath("submission").rmdir()
    run, results = _run_autograder(root)
    assert _valid(results)["score"] == 0 and results["tests"] == []
    assert "No submission folder" in results["output"]


def test_a_submission_without_a_notebook_is_reported(root):
    (root / "submission" / "answers.py").write_text("x = 1\n")
    results = _valid(_run_autograder(root)[1])
    assert results["score"] == 0 and "No notebook" in results["output"]


def test_a_file_that_is_not_a_notebook_gets_a_test_saying_why(root):
    (root / "submission" / "05_composition.ipynb").write_text("{ this is not json")
    results = _valid(_run_autograder(root)[1])
    assert results["score"] == 0 and len(results["tests"]) == 1
    assert results["tests"][0]["name"] == "not graded"
    assert "could not be graded: not a notebook (not JSON" in results["tests"][0]["output"]


def test_options_baked_into_the_zip_are_checked_when_it_is_built(tmp_path):
    with pytest.raises(make_gradescope.BadOptions):
        make_gradescope.build(tmp_path / "a.zip", options="--sandbox maybe")
    with pytest.raises(make_gradescope.BadOptions, match="--root is for tests"):
        make_gradescope.build(tmp_path / "a.zip", options="--root /tmp")
    assert not (tmp_path / "a.zip").exists()


def test_sandbox_on_refuses_without_bwrap_and_still_writes_results(tmp_path):
    built = make_gradescope.build(tmp_path / "on.zip", options="--sandbox on")
    root = _unpack(built, tmp_path / "autograder")
    shutil.copy(ROOT / "solutions" / "02_linear_algebra.ipynb", root / "submission")
    no_bwrap = tmp_path / "bin"                 # a PATH on which bwrap cannot be found
    no_bwrap.mkdir()
    env = dict(os.environ, AUTOGRADER_ROOT=str(root), AUTOGRADER_PYTHON=PYTHON,
               PATH=str(no_bwrap))
    run = subprocess.run(["/bin/bash", str(root / "run_autograder")], env=env,
                         capture_output=True, text=True, timeout=120)
    results = _valid(json.loads((root / "results" / "results.json").read_text()))
    assert results["score"] == 0 and "could not start its sandbox" in results["output"]
    assert "bubblewrap (bwrap) is not installed" in run.stdout


def test_without_the_graders_python_results_are_still_written(root):
    run, results = _run_autograder(root, python="/nonexistent/python")
    assert run.returncode == 1
    assert _valid(results)["score"] == 0 and "not installed" in results["output"]


def test_a_failure_of_the_grader_is_a_result_not_a_missing_file(root, monkeypatch):
    (root / "submission" / "02_linear_algebra.ipynb").write_text("{}")

    def broken(folder, args):
        raise RuntimeError("disk on fire")
    monkeypatch.setattr(gradescope, "grade_submission", broken)
    monkeypatch.setattr(gradescope, "_sandbox_mode", lambda mode: (False, "test"))
    results = _valid(gradescope.run(root))
    assert results == json.loads((root / "results" / "results.json").read_text())
    assert "autograder failed" in results["output"] and "disk on fire" in results["output"]


# ---------------------------------------------------------------- the format, without a kernel
def _result(**extra):
    return {"notebook": "sub/05_composition.ipynb", "chapter": "05_composition",
            "score": 1.6, "max_score": 8.0, **extra, "exercises": [
                {"id": "5.1", "points": 0.0, "max_points": 4.0, "passed": False,
                 "message": "0 of 2 tests passed; t: raised ValueError: \ud800\x1b[2J"},
                {"id": "5.2", "points": 1.6, "max_points": 4.0, "passed": False,
                 "message": "4 of 10 tests passed; t: wrong values"}]}


def test_one_notebook_names_tests_by_exercise_and_accepts_extra_keys():
    data = gradescope.to_gradescope([_result(student_id="s1", status="graded")])
    assert [t["name"] for t in data["tests"]] == ["Exercise 5.1", "Exercise 5.2"]
    assert data["score"] == 1.6 and not gradescope.validate(data)


def test_learner_text_is_made_safe_in_outputs():
    data = gradescope.to_gradescope([_result()])
    text = json.dumps(data, ensure_ascii=False)
    text.encode("utf-8")                                # no lone surrogate
    assert "\\ud800" in data["tests"][0]["output"] and "\x1b" not in text


@pytest.mark.parametrize("bad, phrase", [
    ({"tests": [{"name": "a", "score": "1", "max_score": 1}]}, "score is not a number"),
    ({"score": 1, "tests": [{"score": 1, "max_score": 1}]}, "has no name"),
    ({"score": 1, "tests": [{"name": "a", "visibility": "public"}]}, "not documented"),
    ({"score": float("nan"), "tests": []}, "score is not a number"),
    ({"tests": [{"name": "a"}]}, "no score"),
    ({"score": 1, "tests": [{"name": "a", "output": ["x"]}]}, "output is not text"),
    ({"score": 1, "tests": [{"name": "a", "status": "ok"}]}, "status"),
])
def test_validate_catches_what_gradescope_would_reject(bad, phrase):
    assert any(phrase in p for p in gradescope.validate(bad)), gradescope.validate(bad)


def test_sandbox_auto_grades_without_bwrap_and_tells_the_instructor(root, tmp_path):
    shutil.copy(ROOT / "exercises" / "02_linear_algebra.ipynb", root / "submission")
    no_bwrap = tmp_path / "bin"
    no_bwrap.mkdir()
    env = dict(os.environ, AUTOGRADER_ROOT=str(root), AUTOGRADER_PYTHON=PYTHON,
               PATH=str(no_bwrap))
    run = subprocess.run(["/bin/bash", str(root / "run_autograder")], env=env,
                         capture_output=True, text=True, timeout=600)
    results = _valid(json.loads((root / "results" / "results.json").read_text()))
    assert "grading WITHOUT the sandbox" in run.stdout
    assert "WITHOUT" not in json.dumps(results)          # the learner is not told
    assert [t["number"] for t in results["tests"]] == ["2.1", "2.2", "2.3", "2.4"]


DETACHED = r"""
import os, subprocess, sys, time
from grader import gradescope
gradescope.become_subreaper()
# a process that detaches itself (new session, double fork), as a learner's code could
subprocess.run(["/bin/sh", "-c", "setsid sh -c 'sleep 300 & echo $! > %(pidfile)s' &"])
for _ in range(100):
    if os.path.exists("%(pidfile)s") and open("%(pidfile)s").read().strip():
        break
    time.sleep(0.05)
print(gradescope.end_descendants())
"""


def test_processes_a_submission_detached_are_ended_before_results_are_written(tmp_path):
    pidfile = tmp_path / "pid"
    run = subprocess.run([PYTHON, "-c", DETACHED % {"pidfile": pidfile}], capture_output=True,
                         text=True, timeout=60, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    pid = int(pidfile.read_text())
    assert int(run.stdout.split()[-1]) >= 1
    assert not Path(f"/proc/{pid}").exists() or \
        Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] in "ZX"
