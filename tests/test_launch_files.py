"""Binder and Colab get what they need to import minigrad, derived from repository.url.

``scripts/launch_files.py`` writes ``binder/`` and one install cell per notebook from
``repository:`` in ``_config.yml``. These tests check that the files agree with the setting
(and that a changed setting is caught), and that the install cell really installs the package:
in a fresh virtual environment, from a git clone, offline (the dependencies come from this
environment, minigrad itself does not).
"""
import io
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from contextlib import redirect_stdout
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import launch_files  # noqa: E402

NOTEBOOKS = launch_files._notebooks(ROOT)


def test_binder_and_install_cells_agree_with_config():
    stale = launch_files.stale_files(ROOT)
    assert not stale, ("out of date with repository: in _config.yml, run "
                       f"`python scripts/launch_files.py`: {stale}")


def test_binder_post_build_is_executable_and_installs_the_clone():
    post_build = ROOT / "binder" / "postBuild"
    assert os.access(post_build, os.X_OK), "binder/postBuild must be executable"
    assert "pip install --no-deps --quiet ." in post_build.read_text()


def _course_copy(tmp_path, url):
    """A minimal course folder (config, requirements, one notebook) with ``url`` set."""
    root = tmp_path / "course"
    (root / "book").mkdir(parents=True)
    config = (ROOT / "_config.yml").read_text()
    url_now, _ = launch_files.repository(ROOT)
    (root / "_config.yml").write_text(config.replace(url_now, url))
    shutil.copy(ROOT / "requirements.txt", root)
    shutil.copytree(ROOT / "binder", root / "binder")
    shutil.copy(ROOT / "book" / "03_jacobian.ipynb", root / "book")
    return root


def test_a_changed_url_makes_every_launch_file_stale(tmp_path):
    root = _course_copy(tmp_path, "https://example.org/someone/fork")
    assert sorted(launch_files.stale_files(root)) == [
        "binder/postBuild", "binder/requirements.txt", "book/03_jacobian.ipynb"]
    launch_files.stale_files(root, write=True)
    assert launch_files.stale_files(root) == []
    nb = nbformat.read(root / "book" / "03_jacobian.ipynb", as_version=4)
    cells = [c for c in nb.cells if launch_files.is_install_cell(c)]
    assert len(cells) == 1 and "git+https://example.org/someone/fork@main" in cells[0].source


def test_a_bad_url_is_named(tmp_path):
    root = _course_copy(tmp_path, "not a url")
    with pytest.raises(launch_files.LaunchConfigError, match=r"repository.url 'not a url'"):
        launch_files.stale_files(root)
    assert launch_files.main(["--root", str(root), "--check"]) == 2


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[f"{p.parent.name}/{p.stem}" for p in NOTEBOOKS])
def test_the_install_cell_is_the_first_code_cell(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert launch_files.is_install_cell(code[0]), f"{path.name}: the first code cell is not the install cell"
    assert sum(launch_files.is_install_cell(c) for c in code) == 1
    assert not code[0].outputs, f"{path.name}: the install cell has stored output"


def test_the_install_cell_does_nothing_where_minigrad_is_installed(monkeypatch):
    def no_pip(*args, **kwargs):
        raise AssertionError(f"the install cell ran {args}")
    monkeypatch.setattr(subprocess, "run", no_pip)
    out = io.StringIO()
    with redirect_stdout(out):
        exec(launch_files.install_cell_source(launch_files.install_spec(*launch_files.repository())), {})
    assert out.getvalue() == ""


def _git(*args, cwd):
    subprocess.run(["git", "-c", "user.name=test", "-c", "user.email=test@localhost", *args],
                   cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def clone_url(tmp_path_factory):
    """A git repository of the package (pyproject, minigrad, grader) on branch main."""
    repo = tmp_path_factory.mktemp("clone") / "course"
    repo.mkdir()
    shutil.copy(ROOT / "pyproject.toml", repo)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in ("minigrad", "grader"):
        shutil.copytree(ROOT / package, repo / package, ignore=ignore)
    _git("init", "--quiet", "--initial-branch=main", cwd=repo)
    _git("add", "-A", cwd=repo)
    _git("commit", "--quiet", "-m", "course", cwd=repo)
    return f"file://localhost{repo}"  # with a host: older pips refuse git+file:///


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory):
    """A new virtual environment that sees this one's packages but not minigrad or grader.

    The dependencies come through a .pth file naming a folder of links to this
    environment's site-packages, minigrad's own entries left out, so pip needs no index."""
    tmp = tmp_path_factory.mktemp("venv")
    env = tmp / "env"
    venv.EnvBuilder(with_pip=True).create(env)
    python = env / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                               capture_output=True, text=True, check=True).stdout.strip())
    view = tmp / "dependencies"
    view.mkdir()
    ours = Path(sysconfig.get_path("purelib"))
    for entry in ours.iterdir():
        name = entry.name.lower()
        if name.startswith(("minigrad", "__editable__", "grader", "pip", "_distutils_hack",
                            "distutils-precedence")):
            continue
        (view / entry.name).symlink_to(entry)
    (site / "course-dependencies.pth").write_text(f"{view}\n")
    return python


def _run(python, code, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PIP_"))}
    env.update(PIP_NO_INDEX="1", PIP_NO_BUILD_ISOLATION="0", PIP_DISABLE_PIP_VERSION_CHECK="1")
    return subprocess.run([str(python), "-c", code], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)


def test_the_install_cell_installs_minigrad_in_a_fresh_environment(fresh_venv, clone_url, tmp_path):
    before = _run(fresh_venv, "import minigrad", tmp_path)
    assert before.returncode != 0 and "No module named 'minigrad'" in before.stderr, \
        "the fresh environment must not see minigrad before the install cell runs"
    cell = launch_files.install_cell_source(launch_files.install_spec(clone_url, "main"))
    run = _run(fresh_venv, cell, tmp_path)
    assert run.returncode == 0, f"the install cell failed:\n{run.stdout}\n{run.stderr}"
    where = _run(fresh_venv, "import minigrad, grader, autograd; print(minigrad.__file__)", tmp_path)
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()).is_relative_to(fresh_venv.parent.parent), (
        f"minigrad imported from {where.stdout.strip()}, not from the fresh environment")
    again = _run(fresh_venv, cell, tmp_path)
    assert again.returncode == 0 and again.stdout == "" and again.stderr == ""
