#!/usr/bin/env python
"""Write the student edition of the course: the repository without its solutions.

The full repository holds ``solutions/`` and the graded tests (``tests/grading``, whose
references are solutions too). An instructor hands students a copy without them. This
script writes that copy (``make student`` also builds its site):

- what students need: ``book/``, ``exercises/``, ``minigrad/``, ``grader/`` (for the
  self-check, ``python -m grader.selfcheck NOTEBOOK``), ``benchmarks/`` (chapter 12 reads
  its results), ``_ext/``, ``pyproject.toml``, ``.gitignore``, ``scripts/launch_files.py``
  (to point the copy's launch files at another repository);
- adapted: ``README.md`` and ``Makefile`` from ``student/`` (for students: install, lab,
  self-check, build the site), ``requirements.txt`` without the packages only the
  maintainers' tests use, ``_toc.yml`` without the Solutions part and the instructor's
  guide, ``_config.yml`` with ``repository:`` set to ``student_edition: repository:``
  (where the copy is published), and ``binder/`` and every notebook's install cell written
  from that setting (``scripts/launch_files.py``);
- left out: ``solutions/``, ``tests/`` (graded tests, wrong answers, the maintainers'
  tests), the other ``scripts/``, ``docs/``, the instructor's guide, CI;
- in Markdown files and notebook Markdown cells, the text between the lines
  ``<!-- full-edition -->`` and ``<!-- end full-edition -->`` (what only the full
  repository can do, such as the Solutions part or ``make grade``) is dropped.

Usage::

    python scripts/make_student.py [OUT]     # default: _build/student/repo

OUT is replaced when it holds an earlier student copy (the file ``.student-edition``);
any other existing folder is refused, never overwritten. Last, the copy is searched for
every line of the solutions that students may not see (``solution_lines``): one found there
stops the script with an error naming the file, and the copy is not marked finished.
"""
import argparse
import html
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import launch_files  # noqa: E402
import make_exercises  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "_build" / "student" / "repo"
MARKER = ".student-edition"
#: copied as they are (folders without caches)
COPIED = ("book", "exercises", "minigrad", "grader", "benchmarks", "_ext", "pyproject.toml",
          ".gitignore", "scripts/launch_files.py")
#: the student's README and Makefile
TEMPLATES = ROOT / "student"
#: pages of the full edition only (besides the Solutions part)
FULL_ONLY_PAGES = ("book/instructors",)
#: packages of requirements.txt that only the maintainers' tests use
TEST_ONLY_PACKAGES = ("playwright", "nbval", "hypothesis", "pytest-timeout")
BLOCK = re.compile(r"^[ \t]*<!-- full-edition -->[ \t]*\n.*?^[ \t]*<!-- end full-edition -->[ \t]*\n?",
                   re.S | re.M)
BLOCK_MARK = re.compile(r"<!-- (end )?full-edition -->")

__all__ = ["StudentEditionError", "student_repository", "student_toc", "strip_full_edition",
           "student_requirements", "student_config", "solution_lines", "file_lines", "leaks",
           "make_student_copy", "main"]

#: a solution line shorter than this (``return out``) says too little to be a leak
MIN_LEAK_CHARS = 16
#: files read when looking for leaks (others, such as images, cannot hold code as text)
TEXT_SUFFIXES = {".py", ".ipynb", ".md", ".txt", ".html", ".js", ".json", ".yml", ".yaml",
                 ".cfg", ".toml", ".rst", ""}
TAG = re.compile(r"<[^>]*>")


class StudentEditionError(ValueError):
    """The student edition cannot be written as configured (named in the message)."""


def student_repository(root=ROOT):
    """``(url, branch)`` of ``student_edition: repository:`` in ``_config.yml``, checked."""
    path = Path(root) / "_config.yml"
    config = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    repo = (config.get("student_edition") or {}).get("repository") or {}
    url = str(repo.get("url") or "").strip().rstrip("/")
    branch = str(repo.get("branch") or "main").strip()
    if not launch_files.URL_RE.match(url):
        raise StudentEditionError(f"{path}: student_edition.repository.url {url!r} is not a URL "
                                  "(the repository the student copy is published from)")
    if not launch_files.BRANCH_RE.match(branch):
        raise StudentEditionError(f"{path}: student_edition.repository.branch {branch!r} is not "
                                  "a branch name")
    full_url, _ = launch_files.repository(root)
    if url == full_url:
        raise StudentEditionError(
            f"{path}: student_edition.repository.url is the full repository's URL {url}: the "
            "student site's launch buttons would open the repository with the solutions")
    return url, branch


def _is_full_only(file):
    file = re.sub(r"\.(md|ipynb)$", "", str(file))
    return file.startswith("solutions/") or file in FULL_ONLY_PAGES


def student_toc(toc):
    """The table of contents ``toc`` (a dict) without solution pages and full-edition pages;
    a part left empty is dropped."""
    def keep(entries):
        out = []
        for entry in entries or []:
            if "file" in entry and _is_full_only(entry["file"]):
                continue
            entry = dict(entry)
            for key in ("sections", "chapters"):
                if key in entry:
                    entry[key] = keep(entry[key])
            out.append(entry)
        return out

    toc = dict(toc)
    if "parts" in toc:
        parts = [dict(part, chapters=keep(part.get("chapters"))) for part in toc["parts"]]
        toc["parts"] = [part for part in parts if part["chapters"]]
    if "chapters" in toc:
        toc["chapters"] = keep(toc["chapters"])
    return toc


def strip_full_edition(text, where=""):
    """``text`` without its full-edition blocks; an unmatched marker is an error."""
    out = BLOCK.sub("", text)
    if BLOCK_MARK.search(out):
        raise StudentEditionError(f"{where}: a '<!-- full-edition -->' marker without its pair "
                                  "(each block starts and ends on lines of their own)")
    return out


def student_requirements(text):
    """requirements.txt without the maintainers' test packages."""
    keep = []
    for line in text.splitlines(keepends=True):
        name = re.split(r"[=<>\[ ;]", line.strip(), maxsplit=1)[0].lower()
        if name not in TEST_ONLY_PACKAGES:
            keep.append(line)
    return "".join(keep)


def student_config(text, full_repo, student_repo):
    """``_config.yml`` text with ``repository:`` set to ``student_repo``, and the
    ``student_edition:`` block and ``html: baseurl:`` (the full site's address) removed
    (other comments kept)."""
    (full_url, full_branch), (url, branch) = full_repo, student_repo
    # the student_edition: block, with the comment lines right above it
    text = re.sub(r"(?m)^(?:#.*\n)*student_edition:\n(?:[ \t]+.*\n)*\n?", "", text)
    # html.baseurl is the full site's address: every page would name it as its canonical URL
    text = re.sub(r"(?m)^(?:[ \t]+#.*\n)*[ \t]+baseurl:.*\n", "", text)
    block = re.search(r"(?ms)^repository:\n(?:[ \t]+.*\n)*", text)
    if not block or f"url: {full_url}" not in block.group(0):
        raise StudentEditionError("_config.yml: no 'repository:' block with 'url:' to rewrite")
    new = block.group(0).replace(f"url: {full_url}", f"url: {url}")
    new = re.sub(r"(?m)^([ \t]+branch:).*$", rf"\g<1> {branch}", new)
    return text[:block.start()] + new + text[block.end():]


def _normal(line):
    return " ".join(line.split())


def file_lines(path):
    """The whitespace-normalised text lines of a file as a reader gets them: a notebook's
    cell sources, an HTML page's text (tags removed, entities decoded), else the raw text."""
    path = Path(path)
    text = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix == ".ipynb":
        try:
            cells = json.loads(text).get("cells", [])
            text = "\n".join("".join(c.get("source", "")) for c in cells)
        except (ValueError, AttributeError):
            pass
    elif path.suffix == ".html":
        text = html.unescape(TAG.sub("", text))
    return {_normal(line) for line in text.splitlines()} - {""}


def _notebook_code_lines(path):
    nb = nbformat.read(path, as_version=4)
    return [line for c in nb.cells if c.cell_type == "code" for line in c.source.splitlines()]


def solution_lines(root=ROOT):
    """The lines of the solution regions of ``solutions/*.ipynb`` that appear nowhere in what
    students may see (the exercise notebooks, the chapters, minigrad): a copy or a site that
    holds one of them holds a solution. Normalised as :func:`file_lines` does."""
    root = Path(root)
    allowed = set()
    for pattern in ("exercises/*.ipynb", "book/*", "minigrad/*.py"):
        for path in root.glob(pattern):
            if path.is_file():
                allowed |= file_lines(path)
    found = set()
    for path in sorted((root / "solutions").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type != "code":
                continue
            lines = cell.source.split("\n")
            for begin, end, _ in make_exercises.solution_regions(cell.source, str(path)):
                found |= {_normal(line) for line in lines[begin + 1:end]}
    return {line for line in found - allowed if len(line) >= MIN_LEAK_CHARS}


def leaks(folder, lines):
    """``{relative path: sorted leaked lines}`` of the text files under ``folder``."""
    folder = Path(folder)
    found = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.suffix in TEXT_SUFFIXES and path.stat().st_size < 50_000_000:
            hit = file_lines(path) & lines
            if hit:
                found[str(path.relative_to(folder))] = sorted(hit)
    return found


def _commit(root):
    run = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True)
    return run.stdout.strip() if run.returncode == 0 else "unknown"


def _strip_notebook(path, where):
    nb = nbformat.read(path, as_version=4)
    changed = False
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            new = strip_full_edition(cell.source, where)
            changed |= new != cell.source
            cell.source = new
    if changed:
        path.write_text(nbformat.writes(nb, version=4) + "\n", encoding="utf-8")


def make_student_copy(out=DEFAULT_OUT, root=ROOT):
    """Write the student copy of ``root`` into ``out``; returns ``out``."""
    root, out = Path(root).resolve(), Path(out).resolve()
    student_repo = student_repository(root)
    full_repo = launch_files.repository(root)
    if out == root or out in root.parents:
        raise StudentEditionError(f"{out}: refusing to write the student copy over the repository")
    if out.exists():
        if not (out / MARKER).is_file():
            raise StudentEditionError(f"{out} exists and is not a student copy (no {MARKER}): "
                                      "choose another folder or remove it yourself")
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / MARKER).write_text("INCOMPLETE: scripts/make_student.py did not finish; do not publish.\n",
                              encoding="utf-8")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".ipynb_checkpoints", "*.egg-info")
    for name in COPIED:
        src = root / name
        if src.is_dir():
            shutil.copytree(src, out / name, ignore=ignore)
        elif src.is_file():
            (out / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, out / name)
    for page in FULL_ONLY_PAGES:
        for found in (out / Path(page).parent).glob(Path(page).name + ".*"):
            found.unlink()
    for name in ("README.md", "Makefile"):
        shutil.copy2(TEMPLATES / name, out / name)
    (out / "requirements.txt").write_text(
        student_requirements((root / "requirements.txt").read_text(encoding="utf-8")), encoding="utf-8")
    toc = yaml.safe_load((root / "_toc.yml").read_text(encoding="utf-8"))
    (out / "_toc.yml").write_text(yaml.safe_dump(student_toc(toc), sort_keys=False), encoding="utf-8")
    (out / "_config.yml").write_text(
        student_config((root / "_config.yml").read_text(encoding="utf-8"), full_repo, student_repo),
        encoding="utf-8")
    for folder in ("book", "exercises"):
        for path in sorted((out / folder).glob("*.md")):
            path.write_text(strip_full_edition(path.read_text(encoding="utf-8"), str(path)),
                            encoding="utf-8")
        for path in sorted((out / folder).glob("*.ipynb")):
            _strip_notebook(path, str(path))
    launch_files.stale_files(out, write=True)
    leaked = leaks(out, solution_lines(root))
    if leaked:
        raise StudentEditionError(f"{out}: solution code in the student copy: " + "; ".join(
            f"{path}: {lines[0]!r}" for path, lines in leaked.items()))
    (out / MARKER).write_text(
        f"Student edition of the course, written by scripts/make_student.py from commit "
        f"{_commit(root)} of {full_repo[0]}.\nPublished at {student_repo[0]} "
        f"(branch {student_repo[1]}).\n", encoding="utf-8")
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", nargs="?", type=Path, default=DEFAULT_OUT,
                        help=f"folder of the student copy (default: {DEFAULT_OUT.relative_to(ROOT)})")
    args = parser.parse_args(argv)
    try:
        out = make_student_copy(args.out)
    except (StudentEditionError, launch_files.LaunchConfigError, OSError, yaml.YAMLError) as exc:
        print(f"make_student: {exc}", file=sys.stderr)
        return 2
    print(f"wrote the student copy into {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
