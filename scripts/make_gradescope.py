"""Build Gradescope's ``autograder.zip`` (``make gradescope``).

The zip holds, at its root, what Gradescope runs (``setup.sh`` and ``run_autograder`` from
``gradescope/``) and what they need, as in the repository: ``grader/``, ``minigrad/``,
``tests/grading/`` (the graded tests), ``requirements.txt``, ``pyproject.toml`` and
``_config.yml`` (the course site's address, for the links in each test's output). Nothing else
of the repository (no solution notebook) is in it. Entries are sorted and dated 1980-01-01, so
the same sources give the same zip.

Usage: ``python scripts/make_gradescope.py [OUT]`` (default ``_build/gradescope/autograder.zip``).
"""
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: (path in the repository, path in the zip)
FILES = [("gradescope/setup.sh", "setup.sh"), ("gradescope/run_autograder", "run_autograder"),
         ("requirements.txt", "requirements.txt"), ("pyproject.toml", "pyproject.toml"),
         ("_config.yml", "_config.yml")]
FOLDERS = ["grader", "minigrad", "tests/grading"]
EXECUTABLE = {"setup.sh", "run_autograder"}
SKIPPED = {"__pycache__", ".ipynb_checkpoints", ".pytest_cache"}


def entries(repo=REPO):
    """``[(source file, name in the zip)]``, sorted by name."""
    found = [(repo / src, name) for src, name in FILES]
    for folder in FOLDERS:
        for path in sorted((repo / folder).rglob("*")):
            rel = path.relative_to(repo)
            if path.is_file() and not SKIPPED & set(rel.parts) and path.suffix != ".pyc":
                found.append((path, rel.as_posix()))
    return sorted(found, key=lambda e: e[1])


def build(out, repo=REPO):
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    part = out.with_name(out.name + ".part")
    with zipfile.ZipFile(part, "w", zipfile.ZIP_DEFLATED) as zf:
        for source, name in entries(repo):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = (0o100755 if name in EXECUTABLE else 0o100644) << 16
            zf.writestr(info, source.read_bytes())
    part.replace(out)
    return out


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    out = build(argv[0] if argv else REPO / "_build" / "gradescope" / "autograder.zip")
    with zipfile.ZipFile(out) as zf:
        count = len(zf.namelist())
    print(f"{out}: {count} files; upload it as the autograder of a Gradescope programming "
          "assignment (Ubuntu 24.04 base image; README.md, Grading on Gradescope)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
