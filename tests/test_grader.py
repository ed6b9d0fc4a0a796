"""End-to-end tests of the grader: ``scripts/grade.py`` over real and broken notebooks.

One folder of submissions is built in a temporary directory and graded in one call (two
notebooks at a time), a hanging notebook in a second call with short time limits, both at
once. The submissions:

- every solution notebook that has graded tests (must earn full marks) and every untouched
  exercise notebook (must earn zero): together they replace running ``tests/grading``
  directly, which plain ``pytest tests`` therefore does not collect;
- made from the linear algebra chapter (the fastest): one exercise solved in the untouched
  notebook (only it passes); one wrong answer; one exercise that
  raises and one that is missing; one that kills its kernel (``os._exit``); one that hangs;
  one that cheats (patches numpy and the check function, writes ``conftest.py`` files);
- files that are not gradable: plain text, JSON that is not a notebook, a notebook of an
  unknown chapter, and a copy in ``.ipynb_checkpoints`` that must be skipped.
"""
import copy
import csv
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
GRADE = ROOT / "scripts" / "grade.py"
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "tests" / "grading"))

import grade  # noqa: E402
import harness  # noqa: E402

#: every chapter that has graded tests, found as the grader finds them
CHAPTERS = sorted(c for c in grade.chapters() if (ROOT / "solutions" / f"{c}.ipynb").is_file())
BASE = "02_linear_algebra"
#: short limits for the hanging notebook, in seconds
HANG_CALL_TIMEOUT, HANG_CELL_TIMEOUT = 4, 10
#: files the cheating notebook tries to write in the repository
CHEAT_TARGETS = [ROOT / "tests" / "grading" / "conftest.py", ROOT / "conftest.py",
                 ROOT / "minigrad" / "conftest.py"]

CHEAT = r'''
import glob, os, pathlib, subprocess, tempfile
import numpy as np
import minigrad

minigrad.check_exercise = lambda *args, **kwargs: True
np.allclose = lambda *args, **kwargs: True
np.array_equal = lambda *args, **kwargs: True
np.testing.assert_allclose = lambda *args, **kwargs: None
np.testing.assert_array_almost_equal = lambda *args, **kwargs: None

EVIL = """
import pytest

@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    outcome.get_result().outcome = "passed"
"""
repo = pathlib.Path(minigrad.__file__).resolve().parents[1]
targets = [repo / "tests" / "grading" / "conftest.py", repo / "conftest.py",
           repo / "minigrad" / "conftest.py", pathlib.Path("conftest.py")]
targets += [pathlib.Path(d) / "conftest.py"
            for d in glob.glob(os.path.join(tempfile.gettempdir(), "minigrad-grade", "*", "grading"))]
for target in targets:
    try:
        target.write_text(EVIL)
        print("wrote", target)
    except OSError as exc:
        print("refused:", type(exc).__name__)
try:
    subprocess.run(["sh", "-c", f"echo > {repo}/conftest.py"])
except OSError as exc:
    print("refused:", type(exc).__name__)
'''


#: bypasses the kernel's audit hook (a C-level write) to plant a file in its grader's copy
#: of the tests, found as the working folder of the kernel's parent (the pytest process)
BYPASS = r'''
import ctypes, os
folder = os.readlink(f"/proc/{os.getppid()}/cwd")
libc = ctypes.CDLL(None)
fd = libc.open(os.path.join(folder, "grading", "planted.py").encode(), os.O_WRONLY | os.O_CREAT, 0o644)
libc.write(fd, b"x = 1\\n", 6)
libc.close(fd)
'''


def _read(path):
    return nbformat.read(str(path), as_version=4)


def _insert_after(nb, name, source):
    """A copy of ``nb`` with a code cell ``source`` right after the cell defining ``name``."""
    nb = copy.deepcopy(nb)
    k = next(i for i, c in enumerate(nb.cells)
             if c.cell_type == "code" and f"def {name}(" in c.source)
    nb.cells.insert(k + 1, nbformat.v4.new_code_cell(source))
    return nb


def _write(nb, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))
    return path


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


def _run(*args):
    return subprocess.Popen([sys.executable, str(GRADE), *map(str, args)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """Build the submissions, grade them, and return what the grader wrote."""
    tmp = tmp_path_factory.mktemp("grader")
    sub = tmp / "submissions"
    solution = _read(ROOT / "solutions" / f"{BASE}.ipynb")
    exercise = _read(ROOT / "exercises" / f"{BASE}.ipynb")
    for chapter in CHAPTERS:
        _write(_read(ROOT / "solutions" / f"{chapter}.ipynb"), sub / "solutions" / f"{chapter}.ipynb")
        _write(_read(ROOT / "exercises" / f"{chapter}.ipynb"), sub / "exercises" / f"{chapter}.ipynb")

    # one wrong answer; no minigrad metadata, so the file name tells the chapter
    wrong = _insert_after(solution, "frobenius", "_right_frobenius = frobenius\n\n"
                          "def frobenius(A, B):\n    return _right_frobenius(A, B) + 1.0\n")
    del wrong.metadata["minigrad"]
    _write(wrong, sub / "wrong" / f"{BASE}.ipynb")
    # a learner who solved exercise 2.1 only: its cell taken from the solution
    solved_one = copy.deepcopy(exercise)
    k = next(i for i, c in enumerate(exercise.cells) if c.source.startswith("# Exercise 2.1:"))
    solved_one.cells[k] = copy.deepcopy(next(c for c in solution.cells
                                             if c.source.startswith("# Exercise 2.1:")))
    _write(solved_one, sub / "solved_one.ipynb")
    # one exercise raises, another is missing (its cell deleted)
    broken = _insert_after(solution, "batch_outer", "def batch_outer(U, V):\n"
                           "    raise TypeError('not like this')\n")
    broken.cells = [c for c in broken.cells if "def bilinear_form(" not in c.source]
    _write(broken, sub / "broken.ipynb")
    # one exercise kills the kernel (also while the notebook runs: its check cell calls it)
    crash = _insert_after(solution, "kron_matvec", "def kron_matvec(A, B, x):\n"
                          "    import os\n    os._exit(1)\n")
    _write(crash, sub / "crash.ipynb")
    # the unsolved notebook with every trick at once
    cheat = copy.deepcopy(exercise)
    cheat.cells.insert(2, nbformat.v4.new_code_cell(CHEAT))
    cheat.cells.append(nbformat.v4.new_code_cell(CHEAT))
    _write(cheat, sub / "cheat.ipynb")
    _write(cheat, sub / ".ipynb_checkpoints" / "cheat-checkpoint.ipynb")    # skipped
    # not gradable
    (sub / "notes.ipynb").write_text("my notes, not a notebook\n")
    (sub / "data.ipynb").write_text(json.dumps({"cells": "no", "values": [1, 2]}))
    unknown = copy.deepcopy(solution)
    unknown.metadata["minigrad"] = {"notebook": "99_unknown_chapter"}
    _write(unknown, sub / "unknown.ipynb")
    # one exercise hangs: graded alone, with short limits
    hang = _insert_after(solution, "batch_outer", "def batch_outer(U, V):\n"
                         "    while True:\n        pass\n")
    hang_path = _write(hang, tmp / "hang.ipynb")

    # writes past the audit hook: the integrity check must void the grade
    bypass = copy.deepcopy(solution)
    bypass.cells.insert(2, nbformat.v4.new_code_cell(BYPASS))
    bypass_path = _write(bypass, tmp / "bypass.ipynb")

    before = {p: _digest(p) for p in CHEAT_TARGETS}
    runs = {"folder": _run(sub, "--json", tmp / "all.json", "--csv", tmp / "all.csv", "--jobs", 2),
            "hang": _run(hang_path, "--json", tmp / "hang.json",
                         "--call-timeout", HANG_CALL_TIMEOUT, "--cell-timeout", HANG_CELL_TIMEOUT),
            "bypass": _run(bypass_path, "--json", tmp / "bypass.json")}
    out = {}
    for name, proc in runs.items():
        stdout, stderr = proc.communicate(timeout=900)
        out[name] = {"code": proc.returncode, "stdout": stdout, "stderr": stderr}
    after = {p: _digest(p) for p in CHEAT_TARGETS}
    for p, digest in before.items():              # never leave a planted file behind
        if after[p] != digest and digest is None:
            p.unlink()
    results = json.loads((tmp / "all.json").read_text())
    return {"sub": sub, "tmp": tmp, "runs": out, "before": before, "after": after,
            "by_name": {str(Path(r["notebook"]).relative_to(sub)): r for r in results},
            "results": results, "hang": json.loads((tmp / "hang.json").read_text()),
            "bypass": json.loads((tmp / "bypass.json").read_text())}


def _exercises(result):
    return {e["id"]: e for e in result["exercises"]}


def _only_loses(result, lost, solution):
    """Every exercise but ``lost`` earns its full points, as in ``solution``."""
    got, full = _exercises(result), _exercises(solution)
    assert set(got) == set(full)
    for ex, e in got.items():
        if ex == lost:
            assert not e["passed"] and e["points"] < e["max_points"], e
        else:
            assert e["passed"] and e["points"] == full[ex]["max_points"], e


# ---------------------------------------------------------------- the real notebooks
def test_folder_run_succeeds(graded):
    run = graded["runs"]["folder"]
    assert run["code"] == 0, run["stderr"]
    assert "Traceback" not in run["stderr"] + run["stdout"]


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_solutions_earn_full_marks(graded, chapter):
    result = graded["by_name"][f"solutions/{chapter}.ipynb"]
    assert result["chapter"] == chapter and result["max_score"] > 0
    failing = [f"{e['id']}: {e['message']}" for e in result["exercises"] if not e["passed"]]
    assert not failing, failing
    assert result["score"] == result["max_score"]


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_untouched_exercises_earn_zero(graded, chapter):
    result = graded["by_name"][f"exercises/{chapter}.ipynb"]
    solved = graded["by_name"][f"solutions/{chapter}.ipynb"]
    assert result["score"] == 0 and result["max_score"] == solved["max_score"]
    for e in result["exercises"]:
        assert e["points"] == 0 and not e["passed"]
        assert "not implemented yet" in e["message"], e


# ---------------------------------------------------------------- broken submissions
def test_wrong_answer_costs_only_its_exercise(graded):
    result = graded["by_name"][f"wrong/{BASE}.ipynb"]
    assert result["chapter"] == BASE                  # from the file name: no metadata
    _only_loses(result, "2.1", graded["by_name"][f"solutions/{BASE}.ipynb"])
    e = _exercises(result)["2.1"]
    assert "wrong values" in e["message"] and 0 < e["points"] < e["max_points"]


def test_solving_one_exercise_passes_that_one_only(graded):
    result = graded["by_name"]["solved_one.ipynb"]
    for ex, e in _exercises(result).items():
        if ex == "2.1":
            assert e["passed"] and e["points"] == e["max_points"], e
        else:
            assert not e["passed"] and e["points"] == 0, e


def test_raising_and_missing_exercises_cost_only_their_points(graded):
    result = graded["by_name"]["broken.ipynb"]
    full = _exercises(graded["by_name"][f"solutions/{BASE}.ipynb"])
    got = _exercises(result)
    assert "raised TypeError: not like this" in got["2.2"]["message"]
    assert "bilinear_form" in got["2.4"]["message"] and "NameError" in got["2.4"]["message"]
    for ex in ("2.2", "2.4"):
        assert got[ex]["points"] == 0 and not got[ex]["passed"]
    for ex in ("2.1", "2.3"):
        assert got[ex]["passed"] and got[ex]["points"] == full[ex]["max_points"]


def test_crashing_exercise_costs_only_its_points(graded):
    result = graded["by_name"]["crash.ipynb"]
    _only_loses(result, "2.3", graded["by_name"][f"solutions/{BASE}.ipynb"])
    e = _exercises(result)["2.3"]
    assert e["points"] == 0 and "kernel died" in e["message"]


def test_hanging_exercise_times_out_and_costs_only_its_points(graded):
    run = graded["runs"]["hang"]
    assert run["code"] == 0, run["stderr"]
    result = graded["hang"]
    assert isinstance(result, dict)                   # one notebook: one object, not a list
    _only_loses(result, "2.2", graded["by_name"][f"solutions/{BASE}.ipynb"])
    e = _exercises(result)["2.2"]
    assert e["points"] == 0 and f"timed out after {HANG_CALL_TIMEOUT} s" in e["message"]


def test_cheating_gains_nothing_and_changes_no_file(graded):
    result = graded["by_name"]["cheat.ipynb"]
    assert result["score"] == 0 and result["max_score"] > 0
    assert all("not implemented yet" in e["message"] for e in result["exercises"])
    assert graded["after"] == graded["before"], "the cheating notebook wrote into the repository"


def test_writing_past_the_audit_hook_voids_the_grade(graded):
    run, result = graded["runs"]["bypass"], graded["bypass"]
    assert run["code"] == 3 and "WARNING" in run["stderr"] and "planted.py" in run["stderr"]
    assert result["error"].startswith("VOID") and result["score"] == 0


# ---------------------------------------------------------------- files that are not gradable
def test_files_that_are_not_gradable_get_a_clear_error(graded):
    by_name = graded["by_name"]
    assert not any(".ipynb_checkpoints" in name for name in by_name)
    assert "not JSON" in by_name["notes.ipynb"]["error"]
    assert "not a notebook" in by_name["data.ipynb"]["error"]
    assert "99_unknown_chapter" in by_name["unknown.ipynb"]["error"]
    stderr = graded["runs"]["folder"]["stderr"]
    for name in ("notes.ipynb", "data.ipynb", "unknown.ipynb"):
        assert sum(name in line for line in stderr.splitlines()) == 1


def test_a_single_file_that_is_not_a_notebook(graded):
    proc = _run(graded["sub"] / "notes.ipynb")
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1
    assert "not a notebook" in stderr


# ---------------------------------------------------------------- outputs
def test_json_structure(graded):
    results = graded["results"]
    assert isinstance(results, list) and len(results) == len(graded["by_name"])
    for r in results:
        assert {"notebook", "score", "max_score", "exercises"} <= set(r)
        assert r["score"] == pytest.approx(sum(e["points"] for e in r["exercises"]))
        assert r["max_score"] == pytest.approx(sum(e["max_points"] for e in r["exercises"]))
        for e in r["exercises"]:
            assert set(e) == {"id", "points", "max_points", "passed", "message"}
            assert isinstance(e["passed"], bool) and isinstance(e["message"], str)
            assert 0 <= e["points"] <= e["max_points"] and round(e["points"], 2) == e["points"]


def test_csv_structure(graded):
    with open(graded["tmp"] / "all.csv", newline="") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    assert header[:3] == ["notebook", "score", "max_score"] and header[-1] == "error"
    ids = {e["id"] for r in graded["results"] for e in r["exercises"]}
    assert set(header[3:-1]) == ids
    assert len(body) == len(graded["results"])
    row = dict(zip(header, next(r for r in body if r[0].endswith(f"solutions/{BASE}.ipynb"))))
    solved = _exercises(graded["by_name"][f"solutions/{BASE}.ipynb"])
    for ex, e in solved.items():
        assert float(row[ex]) == e["points"]
    assert float(row["score"]) == float(row["max_score"]) > 0


def test_stdout_table(graded):
    stdout = graded["runs"]["folder"]["stdout"]
    assert f"solutions/{BASE}.ipynb ({BASE})" in stdout
    assert "graded" in stdout.splitlines()[-1]


# ---------------------------------------------------------------- the plain-data codec
def test_codec_round_trip():
    value = (None, np.arange(6.0).reshape(2, 3), [1, 2.5, "s", True], {"k": (np.int64(3),)},
             float("nan"), 1 + 2j, np.array([1 + 1j]), np.float64(0.5))
    got = harness.decode(harness.encode(value))
    assert got[0] is None and np.array_equal(got[1], value[1]) and got[2] == [1, 2.5, "s", True]
    assert got[3] == {"k": (3,)} and np.isnan(got[4]) and got[5] == 1 + 2j
    assert np.array_equal(got[6], value[6]) and type(got[7]) is float


def test_codec_refuses_objects():
    with pytest.raises(TypeError):
        harness.encode(np.array([object()]))
    with pytest.raises(TypeError):
        harness.encode(object())
