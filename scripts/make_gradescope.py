"""Build Gradescope's ``autograder.zip`` (``make gradescope``).

The zip holds, at its root, what Gradescope runs (``setup.sh`` and ``run_autograder`` from
``gradescope/``) and what they need, as in the repository: ``grader/``, ``minigrad/``,
``tests/grading/`` (the graded tests), ``requirements.txt``, ``pyproject.toml`` and
``_config.yml`` (the course site's address, for the links in each test's output). Nothing else
of the repository (no solution notebook) is in it. Entries are sorted and dated 1980-01-01, so
the same sources give the same zip.

Options of ``run_autograder`` for every submission (``--sandbox on``, ``--call-timeout 30``,
...) are baked into the zip as ``autograder_options`` (Gradescope sets no environment for
you): they are checked here, so a typo fails the build, not every submission.

Usage: ``python scripts/make_gradescope.py [OUT] [--options "--sandbox on ..."]`` (default
``_build/gradescope/autograder.zip``; ``make gradescope GRADESCOPE_OPTS="..."``).
"""
import argparse
import shlex
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


class BadOptions(ValueError):
    """Options that ``run_autograder`` would refuse."""


def check_options(options):
    """``options`` (one string) as ``run_autograder`` reads them; :class:`BadOptions` naming
    the problem when ``python -m grader.gradescope`` would refuse them."""
    from grader import gradescope
    words = shlex.split(options)
    if any(w == "--root" or w.startswith("--root=") for w in words):
        raise BadOptions("--root is for tests: Gradescope's root is /autograder")
    try:
        gradescope.parse_args(words)
    except SystemExit:
        raise BadOptions(f"run_autograder would refuse the options {options!r} (see above)")
    return " ".join(shlex.quote(w) for w in words)


def _add(zf, name, data):
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = (0o100755 if name in EXECUTABLE else 0o100644) << 16
    zf.writestr(info, data)


def build(out, repo=REPO, options=""):
    out = Path(out)
    options = check_options(options) if options.strip() else ""
    out.parent.mkdir(parents=True, exist_ok=True)
    part = out.with_name(out.name + ".part")
    files = entries(repo)
    if options:
        files.append((None, "autograder_options"))
    with zipfile.ZipFile(part, "w", zipfile.ZIP_DEFLATED) as zf:
        for source, name in sorted(files, key=lambda e: e[1]):
            _add(zf, name, options + "\n" if source is None else source.read_bytes())
    part.replace(out)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", nargs="?", default=str(REPO / "_build" / "gradescope" / "autograder.zip"))
    parser.add_argument("--options", default="", help="options of run_autograder, one string")
    args = parser.parse_args(argv)
    try:
        out = build(args.out, options=args.options)
    except BadOptions as exc:
        print(f"make_gradescope: {exc}", file=sys.stderr)
        return 2
    with zipfile.ZipFile(out) as zf:
        count = len(zf.namelist())
    print(f"{out}: {count} files; upload it as the autograder of a Gradescope programming "
          "assignment (Ubuntu 24.04 base image; README.md, Grading on Gradescope)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
