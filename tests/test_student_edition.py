"""The student edition (scripts/make_student.py): a working copy of the course without solutions.

One copy is written into a temporary folder (a few seconds; its site is built and checked in
the browser by ``make test-site``). It must hold what a student needs, in working order, and
nothing of ``solutions/`` or the graded tests: no solution line may appear in any of its files.
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import launch_files  # noqa: E402
import make_student  # noqa: E402

SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))


@pytest.fixture(scope="module")
def copy(tmp_path_factory):
    return make_student.make_student_copy(tmp_path_factory.mktemp("student") / "repo")


@pytest.fixture(scope="module")
def lines():
    return make_student.solution_lines()


def test_no_solutions_and_no_tests(copy):
    files = [str(p.relative_to(copy)) for p in copy.rglob("*") if p.is_file()]
    assert not (copy / "solutions").exists() and not (copy / "tests").exists()
    assert not [f for f in files if "wrong_answers" in f or "grading/" in f or f.startswith("tests")]
    assert not (copy / "book" / "instructors.md").exists()


def test_the_table_of_contents_lists_no_solution_or_instructor_page(copy):
    text = (copy / "_toc.yml").read_text()
    assert "solutions/" not in text and "instructors" not in text and "Solutions" not in text
    assert "exercises/03_jacobian" in text and "book/11_api" in text


def test_every_solution_notebook_gives_lines_to_look_for(lines):
    """The leak check knows lines of every solution notebook, so any of them leaking is caught."""
    for path in SOLUTIONS:
        own = set()
        for cell in nbformat.read(path, as_version=4).cells:
            own |= {" ".join(line.split()) for line in cell.source.splitlines()}
        assert len(own & lines) >= 5, f"{path.name}: fewer than 5 distinctive solution lines"


def test_no_solution_line_is_in_the_copy(copy, lines):
    assert make_student.leaks(copy, lines) == {}


def test_a_leaked_solution_is_caught(tmp_path, lines):
    shutil.copy(SOLUTIONS[0], tmp_path / "exercise.ipynb")
    assert list(make_student.leaks(tmp_path, lines)) == ["exercise.ipynb"]


def test_the_script_refuses_a_copy_with_a_solution(tmp_path, monkeypatch):
    monkeypatch.setattr(make_student, "COPIED", make_student.COPIED + ("solutions",))
    with pytest.raises(make_student.StudentEditionError, match="solution code in the student copy"):
        make_student.make_student_copy(tmp_path / "repo")
    assert "INCOMPLETE" in (tmp_path / "repo" / make_student.MARKER).read_text()


def test_full_edition_blocks_are_dropped(copy):
    index = (copy / "book" / "index.md").read_text()
    assert "full-edition" not in index and "make grade" not in index and "Solutions" not in index
    assert "grader.selfcheck" in index
    intro = (copy / "book" / "01_introduction.ipynb").read_text()
    assert "make grade" not in intro and "grader.selfcheck" in intro


def test_an_unpaired_marker_is_an_error():
    with pytest.raises(make_student.StudentEditionError, match="without its pair"):
        make_student.strip_full_edition("a\n<!-- full-edition -->\nb\n", "x.md")


def test_the_exercise_notebooks_are_there_with_their_stubs(copy):
    names = sorted(p.name for p in (copy / "exercises").glob("*.ipynb"))
    assert names == sorted(p.name for p in (ROOT / "exercises").glob("*.ipynb"))
    for name in names:
        nb = nbformat.read(copy / "exercises" / name, as_version=4)
        assert nb.metadata["minigrad"]["notebook"] == name[:-6]
        assert any("raise NotImplementedError" in c.source for c in nb.cells), name


def test_launch_files_point_at_the_student_repository(copy):
    url, branch = make_student.student_repository()
    assert launch_files.repository(copy) == (url, branch)
    assert launch_files.stale_files(copy) == []
    nb = nbformat.read(copy / "exercises" / "03_jacobian.ipynb", as_version=4)
    install = next(c for c in nb.cells if launch_files.is_install_cell(c))
    assert f"git+{url}@{branch}" in install.source
    full_url, _ = launch_files.repository(ROOT)
    assert not [str(p) for p in copy.rglob("*") if p.is_file() and p.suffix in (".ipynb", ".yml", ".txt")
                and f"{full_url}@" in p.read_text(errors="replace")]


def _python(copy, code):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, "-c", code], cwd=copy, env=env,
                          capture_output=True, text=True, timeout=120)


def test_minigrad_and_grader_import_from_the_copy(copy):
    run = _python(copy, "import minigrad, grader; print(minigrad.__file__); print(grader.__file__)")
    assert run.returncode == 0, run.stderr
    for path in run.stdout.split():
        assert Path(path).resolve().is_relative_to(copy.resolve()), f"imported {path}, not from the copy"


def test_the_self_check_is_in_the_copy(copy):
    if not (ROOT / "grader" / "selfcheck.py").is_file():
        pytest.skip("grader/selfcheck.py is not in this tree yet (another branch adds it)")
    run = subprocess.run([sys.executable, "-m", "grader.selfcheck", "--help"], cwd=copy,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr


def test_the_students_makefile_runs_the_self_check(copy):
    run = subprocess.run(["make", "-n", "check", "NB=exercises/03_jacobian.ipynb"], cwd=copy,
                         capture_output=True, text=True)
    assert run.returncode == 0 and "-m grader.selfcheck \"exercises/03_jacobian.ipynb\"" in run.stdout
    assert "playwright" not in (copy / "requirements.txt").read_text()
    makefile = (copy / "Makefile").read_text()
    assert "\ngrade:" not in makefile and "tests/" not in makefile


def _config_with(tmp_path, student_url):
    root = tmp_path / "course"
    root.mkdir()
    text = (ROOT / "_config.yml").read_text()
    url, _ = make_student.student_repository()
    (root / "_config.yml").write_text(text.replace(url, student_url))
    return root


def test_the_full_repositorys_url_is_refused(tmp_path):
    full_url, _ = launch_files.repository(ROOT)
    root = _config_with(tmp_path, full_url)
    with pytest.raises(make_student.StudentEditionError, match="would open the repository with the solutions"):
        make_student.student_repository(root)


def test_a_folder_that_is_not_a_student_copy_is_not_overwritten(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("my work")
    with pytest.raises(make_student.StudentEditionError, match="is not a student copy"):
        make_student.make_student_copy(out)
    assert (out / "notes.txt").read_text() == "my work"


def test_the_copys_config_has_no_student_edition_block(copy):
    config = yaml.safe_load((copy / "_config.yml").read_text())
    assert "student_edition" not in config
    assert config["launch_buttons"] and config["repository"]["url"].endswith("-student")


def test_the_copys_site_does_not_name_the_full_site_as_canonical(copy):
    full = yaml.safe_load((ROOT / "_config.yml").read_text())["html"]
    config = yaml.safe_load((copy / "_config.yml").read_text())
    assert full.get("baseurl"), "the full edition's _config.yml names its site (html.baseurl)"
    assert "baseurl" not in config["html"] and config["html"]["use_repository_button"]
