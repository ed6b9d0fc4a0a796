#!/usr/bin/env python
"""Write what Binder and Colab need to run the notebooks, from ``repository:`` in ``_config.yml``.

The launch buttons of the site open a notebook on Binder or Colab from the repository named by
``repository: url:`` (and ``branch:``) in ``_config.yml``. There, nothing has installed
minigrad yet, so this script writes, from that one setting:

- ``binder/``: ``requirements.txt`` (the notebooks' packages, pinned as in the root
  ``requirements.txt``), ``runtime.txt`` and ``postBuild``, which installs the clone Binder
  built from (``pip install --no-deps .``: minigrad and grader);
- in every notebook of ``book/``, ``solutions/`` and ``exercises/``, a first code cell that
  installs ``minigrad[course]`` from the repository with pip when ``import minigrad`` fails
  (on Colab) and does nothing where minigrad is installed (here, on Binder, in a graded run).
  It prints nothing then, so the notebooks' stored outputs do not change. The cell is tagged
  ``remove-cell`` (the site does not show it) and marked ``"minigrad": {"role": "install"}``
  in its metadata, which is how it is found again when the URL changes.

Usage::

    python scripts/launch_files.py            # write binder/ and the install cells
    python scripts/launch_files.py --check    # write nothing; exit 1 naming what is stale
    python scripts/launch_files.py --root DIR # another copy of the course (the student edition)

Run it after changing ``repository:`` in ``_config.yml``; ``tests/test_launch_files.py``
fails while a file disagrees with the setting.
"""
import argparse
import re
import stat
import sys
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_FOLDERS = ("book", "solutions", "exercises")
#: the packages the notebooks import (and the self-check runs with), pinned in requirements.txt
BINDER_PACKAGES = ("numpy", "scipy", "matplotlib", "autograd", "scikit-learn", "threadpoolctl",
                   "nbclient", "nbformat", "ipykernel")
BINDER_PYTHON = "python-3.11"
#: the metadata that marks the install cell
ROLE = {"role": "install"}
CELL_ID = "install-minigrad"
#: a URL pip can clone: https://, http://, ssh://, git:// or file://
URL_RE = re.compile(r"^(https?|ssh|git|file)://\S+$")
BRANCH_RE = re.compile(r"^[A-Za-z0-9._/-]+$")

__all__ = ["LaunchConfigError", "repository", "install_spec", "install_cell_source",
           "binder_files", "is_install_cell", "with_install_cell", "stale_files", "main"]


class LaunchConfigError(ValueError):
    """``_config.yml`` or ``requirements.txt`` does not give what the launch files need."""


def repository(root=ROOT):
    """``(url, branch)`` of ``repository:`` in ``root/_config.yml``, checked."""
    config_path = Path(root) / "_config.yml"
    try:
        config = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise LaunchConfigError(f"{config_path}: cannot be read ({exc})") from None
    repo = config.get("repository") or {}
    url = str(repo.get("url") or "").strip().rstrip("/")
    branch = str(repo.get("branch") or "main").strip()
    if not URL_RE.match(url):
        raise LaunchConfigError(f"{config_path}: repository.url {url!r} is not a URL pip can "
                                "clone (https://host/owner/name)")
    if not BRANCH_RE.match(branch):
        raise LaunchConfigError(f"{config_path}: repository.branch {branch!r} is not a branch name")
    return url, branch


def install_spec(url, branch):
    """The pip requirement that installs the course's package from ``url`` at ``branch``."""
    return f"minigrad[course] @ git+{url}@{branch}"


def install_cell_source(spec):
    """The source of the install cell for the pip requirement ``spec``."""
    return (
        "# Set-up for Colab, or any Python where minigrad is not installed: install it from the\n"
        "# course's repository. Where minigrad is installed, this cell does nothing.\n"
        "try:\n"
        "    import minigrad\n"
        "except ModuleNotFoundError:\n"
        "    import importlib, subprocess, sys\n"
        f"    spec = \"{spec}\"\n"
        "    subprocess.run([sys.executable, \"-m\", \"pip\", \"install\", \"--quiet\", spec], check=True)\n"
        "    importlib.invalidate_caches()\n"
        "    import minigrad"
    )


def _pins(root):
    """``{name: requirement line}`` of the root requirements.txt (exact pins)."""
    path = Path(root) / "requirements.txt"
    pins = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            pins[line.split("==", 1)[0].strip().lower()] = line
    return pins


def binder_files(root=ROOT):
    """``{relative path: (text, executable)}`` of the binder/ folder for ``root``."""
    url, branch = repository(root)
    pins = _pins(root)
    missing = [p for p in BINDER_PACKAGES if p not in pins]
    if missing:
        raise LaunchConfigError(f"{Path(root) / 'requirements.txt'}: no exact pin (name==version) "
                                f"for {', '.join(missing)}")
    origin = (f"Written by scripts/launch_files.py from _config.yml (repository.url {url}, "
              f"branch {branch}): do not edit.")
    requirements = (f"# {origin}\n# The notebooks' packages, pinned as in the root requirements.txt.\n"
                    + "".join(pins[p] + "\n" for p in BINDER_PACKAGES))
    post_build = (f"#!/bin/bash\n# {origin}\n"
                  "# Binder runs this in its clone of the repository: install that clone's minigrad\n"
                  "# and grader, so that every notebook's `import minigrad` works.\n"
                  "set -euo pipefail\n"
                  "python -m pip install --no-deps --quiet .\n")
    return {"binder/requirements.txt": (requirements, False),
            "binder/runtime.txt": (BINDER_PYTHON + "\n", False),
            "binder/postBuild": (post_build, True)}


def is_install_cell(cell):
    return cell.cell_type == "code" and cell.metadata.get("minigrad") == ROLE


def with_install_cell(nb, source):
    """``nb`` with its install cell set to ``source`` (inserted before the first code cell);
    returns True when something changed. Any other cell is left as it is."""
    cells = [c for c in nb.cells if is_install_cell(c)]
    if len(cells) > 1:
        raise LaunchConfigError(f"{len(cells)} install cells in one notebook")
    if cells:
        if cells[0].source == source:
            return False
        cells[0].source = source
        return True
    cell = nbformat.v4.new_code_cell(source)
    if "id" in cell:
        cell["id"] = CELL_ID  # the same id on every run: regenerating changes nothing
    cell.metadata = {"minigrad": dict(ROLE), "tags": ["remove-cell"]}
    first_code = next((k for k, c in enumerate(nb.cells) if c.cell_type == "code"), len(nb.cells))
    nb.cells.insert(first_code, cell)
    return True


def _notebooks(root):
    return [p for folder in NOTEBOOK_FOLDERS for p in sorted((Path(root) / folder).glob("*.ipynb"))]


def _render(nb):
    return nbformat.writes(nb, version=4) + "\n"


def stale_files(root=ROOT, write=False):
    """Paths (relative to ``root``) whose launch set-up disagrees with ``_config.yml``;
    with ``write``, rewrite them. Raises LaunchConfigError on a bad setting."""
    root = Path(root)
    spec = install_spec(*repository(root))
    stale = []
    for rel, (text, executable) in binder_files(root).items():
        path = root / rel
        current = path.read_text(encoding="utf-8") if path.is_file() else None
        mode_ok = current is None or not executable or bool(path.stat().st_mode & stat.S_IXUSR)
        if current == text and mode_ok:
            continue
        stale.append(rel)
        if write:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            if executable:
                path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    source = install_cell_source(spec)
    for path in _notebooks(root):
        nb = nbformat.read(path, as_version=4)
        if with_install_cell(nb, source):
            stale.append(str(path.relative_to(root)))
            if write:
                path.write_text(_render(nb), encoding="utf-8")
    return stale


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=ROOT,
                        help="the course folder whose _config.yml to read (default: this repository)")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 naming every file that disagrees with _config.yml")
    args = parser.parse_args(argv)
    try:
        stale = stale_files(args.root, write=not args.check)
    except (LaunchConfigError, OSError) as exc:
        print(f"launch_files: {exc}", file=sys.stderr)
        return 2
    if args.check and stale:
        print("out of date with repository: in _config.yml (run `python scripts/launch_files.py`):"
              "\n  " + "\n  ".join(stale), file=sys.stderr)
        return 1
    for rel in [] if args.check else stale:
        print(f"wrote {rel}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
