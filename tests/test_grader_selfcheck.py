"""The student's self-check, ``python -m grader.selfcheck NOTEBOOK`` (issue 26).

It runs the exercise notebook of chapter 5 as a student would have it (answer cells copied from
the solution), without the graded tests and without a sandbox: three notebooks, each run once
by the command itself, in a folder where ``tests/`` cannot be imported.
"""
import ast
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
CHAPTER = "05_composition"
EXERCISES = ["5.1", "5.2", "5.3", "5.4", "5.5"]


def _answer_cell(nb, exercise):
    return next(c for c in nb.cells if c.cell_type == "code"
                and c.source.startswith(f"# Exercise {exercise}:"))


def _filled(exercises):
    """The exercise notebook with the answer cells of ``exercises`` copied from the solution."""
    nb = nbformat.read(ROOT / "exercises" / f"{CHAPTER}.ipynb", 4)
    solution = nbformat.read(ROOT / "solutions" / f"{CHAPTER}.ipynb", 4)
    for exercise in exercises:
        _answer_cell(nb, exercise).source = _answer_cell(solution, exercise).source
    return nb


def _selfcheck(nb, folder, name):
    path = folder / name
    nbformat.write(nb, path)
    before = path.read_bytes()
    env = dict(os.environ, PYTHONPATH=str(ROOT))    # grader and minigrad, not tests/
    proc = subprocess.run([sys.executable, "-m", "grader.selfcheck", str(path)], cwd=folder,
                          env=env, capture_output=True, text=True, timeout=600)
    assert path.read_bytes() == before, "the self-check changed the notebook"
    return proc


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("selfcheck")
    complete = _filled(EXERCISES)
    wrong = _filled(["5.1", "5.2"])
    cell = _answer_cell(wrong, "5.2")
    cell.source = cell.source.replace("    return G\n", "    return 2 * G\n")
    assert "return 2 * G" in cell.source
    broken = _filled(["5.1", "5.2"])
    cell = _answer_cell(broken, "5.2")
    lines = cell.source.splitlines()
    k = next(i for i, line in enumerate(lines) if "BEGIN SOLUTION" in line) + 1
    lines[k] = "    X, h = np.asarray(X, dtype=float), np.asarray(h dtype=float)"
    cell.source = "\n".join(lines)
    return {"complete": _selfcheck(complete, folder, "complete.ipynb"),
            "wrong": _selfcheck(wrong, folder, "wrong.ipynb"),
            "broken": _selfcheck(broken, folder, "broken.ipynb"), "broken_line": k + 1}


def test_a_complete_notebook_passes_every_exercise(runs):
    proc = runs["complete"]
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for exercise in EXERCISES:
        assert f"Exercise {exercise}: passed\n" in proc.stdout
    assert "failed" not in proc.stdout


def test_a_wrong_answer_is_reported_with_the_check_cells_diagnosis(runs):
    proc = runs["wrong"]
    assert proc.returncode == 1
    assert "Exercise 5.1: passed" in proc.stdout
    assert "Exercise 5.2: not right yet: your answer is 2 times the expected one" in proc.stdout
    assert "Exercise 5.3: not implemented yet" in proc.stdout


def test_a_failing_cell_is_reported_with_its_error_and_line(runs):
    proc, line = runs["broken"], runs["broken_line"]
    assert proc.returncode == 1
    assert f"SyntaxError in the cell of exercise 5.2, line {line}: " in proc.stdout
    assert "Exercise 5.2: raised NameError" in proc.stdout
    assert "(a cell of this exercise failed: see below)" in proc.stdout


def test_every_report_ends_by_saying_it_is_a_self_check(runs):
    for name in ("complete", "wrong", "broken"):
        assert "This is a self-check" in runs[name].stdout
        assert "hidden tests, run in a sandbox" in runs[name].stdout


def test_a_missing_notebook_is_a_clear_error(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "grader.selfcheck", str(tmp_path / "no.ipynb")],
                          capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert proc.returncode == 2 and "no.ipynb: no such file" in proc.stderr


def test_the_self_check_needs_nothing_from_tests_or_the_sandbox():
    tree = ast.parse((ROOT / "grader" / "selfcheck.py").read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not any(m.split(".")[0] in ("tests", "gradetools") for m in imported), imported
    assert not imported & {"grader.sandbox", "grader.kernel", "grader.grading", "resource",
                           "signal", "grader.notebooks"}, imported
    assert "grader.cells" in imported
    cells = ast.parse((ROOT / "grader" / "cells.py").read_text())
    assert {a.name for n in ast.walk(cells) if isinstance(n, ast.Import)
            for a in n.names} <= {"ast", "re"}


def test_a_cell_that_hangs_is_interrupted_and_the_rest_runs_in_this_python(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("## Exercise 1.1: spin"),
        nbformat.v4.new_code_cell("# Exercise 1.1: spin\nimport time\nwhile True:\n"
                                  "    time.sleep(0.05)"),
        nbformat.v4.new_code_cell("import sys\nprint('Exercise 1.2:', 'passed' if "
                                  f"sys.executable == {sys.executable!r} else sys.executable)")])
    nbformat.write(nb, tmp_path / "spin.ipynb")
    proc = subprocess.run([sys.executable, "-m", "grader.selfcheck", "spin.ipynb", "--timeout",
                           "3"], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert proc.returncode == 1
    assert "Exercise 1.1: no check ran" in proc.stdout and "Exercise 1.2: passed" in proc.stdout
    assert ("KeyboardInterrupt in the cell of exercise 1.1, line 4: it ran past the "
            "self-check's time limit") in proc.stdout
