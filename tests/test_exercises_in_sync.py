"""exercises/ is generated from solutions/ by scripts/make_exercises.py and must stay in sync."""
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "make_exercises.py"
sys.path.insert(0, str(SCRIPT.parent))
import make_exercises  # noqa: E402

SOLUTIONS = sorted((ROOT / "solutions").glob("[0-9]*.ipynb"))


def test_exercises_are_up_to_date():
    """`make_exercises.py --check` lists every exercise notebook that differs from its source."""
    if not SOLUTIONS:
        pytest.skip("no solution notebooks yet")
    run = subprocess.run([sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True)
    assert run.returncode == 0, "exercises/ is out of date, run `make exercises`:\n" + run.stderr


def test_no_exercise_without_a_solution():
    """Every exercise notebook has its solution notebook (nothing stale is left behind)."""
    names = {p.name for p in SOLUTIONS}
    orphans = [p.name for p in (ROOT / "exercises").glob("*.ipynb") if p.name not in names]
    assert not orphans, f"exercise notebooks without a solution: {orphans}"


def test_check_cells_are_folded_in_the_exercise_notebooks():
    """A check cell computes the expected answer and names wrong ones: folded until opened."""
    nb = make_exercises.make_exercise(nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell('_ = minigrad.check_exercise("1.1", lambda: (f(2), 4))'),
        nbformat.v4.new_code_cell("x = 1")]), "01_x")
    assert nb.cells[0].metadata["jupyter"]["source_hidden"] is True
    assert "jupyter" not in nb.cells[1].metadata


@pytest.mark.parametrize("path", SOLUTIONS, ids=[p.stem for p in SOLUTIONS])
def test_solution_notebook_follows_the_protocol(path):
    nb = nbformat.read(path, as_version=4)
    where = f"solutions/{path.name}"
    ids = make_exercises.exercise_ids(nb, where)       # raises on unmatched markers, no header
    assert make_exercises.MIN_EXERCISES <= len(ids) <= make_exercises.MAX_EXERCISES, \
        f"{where}: {len(ids)} exercises {ids}, expected 3 to 6"
    chapter = path.stem.split("_")[0].lstrip("0")
    assert all(i.split(".")[0] == chapter for i in ids), f"{where}: ids {ids} not of chapter {chapter}"
    assert nb.metadata.get("minigrad", {}).get("notebook") == path.stem
    for k, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and make_exercises.solution_regions(cell.source):
            assert "hide-input" in cell.metadata.get("tags", []), \
                f"{where} cell {k}: a solution cell needs the tag hide-input"
        if cell.cell_type == "code" and "check_exercise(" in cell.source:
            assert "### BEGIN SOLUTION" not in cell.source, f"{where} cell {k}: check cell with a solution"


def _solution_cell(source, tags=("hide-input",)):
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["tags"] = list(tags)
    cell.outputs = [nbformat.v4.new_output("stream", text="hello\n")]
    cell.execution_count = 3
    return cell


def test_regions_become_stubs_at_their_indentation():
    source = ("# Exercise 9.1: a \"quoted\" title\n"
              "class A:\n"
              "    def f(self, x):\n"
              "        ### BEGIN SOLUTION\n"
              "        return x\n"
              "        ### END SOLUTION\n"
              "\n"
              "    def g(self, x):\n"
              "        '''doc'''\n"
              "        ### BEGIN SOLUTION\n"
              "        y = 2 * x\n"
              "        return y\n"
              "        ### END SOLUTION\n")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# T"), _solution_cell(source),
                                         _solution_cell("x = 1", tags=("hide-input", "other"))])
    out = make_exercises.make_exercise(nb, "09_test")
    stub = '        raise NotImplementedError("Exercise 9.1: a \\"quoted\\" title")'
    assert out.cells[1].source.split("\n") == [
        "# Exercise 9.1: a \"quoted\" title", "class A:", "    def f(self, x):", stub, "",
        "    def g(self, x):", "        '''doc'''", stub, ""]
    assert out.cells[1].outputs == [] and out.cells[1].execution_count is None
    assert "tags" not in out.cells[1].metadata and out.cells[2].metadata["tags"] == ["other"]
    assert out.metadata["minigrad"] == {"notebook": "09_test"}
    assert nb.cells[1].outputs, "the solution notebook itself is left untouched"
    namespace = {}
    exec(out.cells[1].source, namespace)
    with pytest.raises(NotImplementedError, match=r'Exercise 9.1: a "quoted" title'):
        namespace["A"]().g(1)


@pytest.mark.parametrize("source, message", [
    ("x = 1\n### BEGIN SOLUTION\nx = 2\n### END SOLUTION", "must start with"),
    ("# Exercise 9.1: t\n### BEGIN SOLUTION\nx = 2", "never closed"),
    ("# Exercise 9.1: t\nx = 2\n### END SOLUTION", "without"),
    ("# Exercise 9.1: t\n### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION", "inside"),
])
def test_malformed_regions_are_refused(source, message):
    nb = nbformat.v4.new_notebook(cells=[_solution_cell(source)])
    with pytest.raises(make_exercises.ExerciseFormatError, match=message):
        make_exercises.make_exercise(nb, "09_test")
