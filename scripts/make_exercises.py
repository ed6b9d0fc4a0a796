#!/usr/bin/env python
"""Write the exercise notebooks in ``exercises/`` from the solved ones in ``solutions/``.

``solutions/`` is the single source. In a solution notebook, every code cell that holds
solution code starts with the line ``# Exercise N.K: <short title>``, and the solution code
sits between the lines ``### BEGIN SOLUTION`` and ``### END SOLUTION`` (indented as the code
around it, e.g. inside a method). In the exercise notebook each such region, markers
included, becomes one line at the same indentation::

    raise NotImplementedError("Exercise N.K: <short title>")

and, in every code cell, the outputs and execution counts are cleared and the ``hide-input``
tag is dropped. A check cell (one that calls ``check_exercise``) is collapsed in JupyterLab
(``"jupyter": {"source_hidden": true}``): the check computes the expected answer and names known
wrong ones, which a learner should meet as feedback after trying, not read before. Both notebooks carry ``"minigrad": {"notebook": "<file stem>"}`` in their
metadata, which is how the grader picks the graded tests.

Usage::

    python scripts/make_exercises.py                 # regenerate every exercise notebook
    python scripts/make_exercises.py solutions/03_jacobian.ipynb   # only these
    python scripts/make_exercises.py --check         # exit 1 listing out-of-date notebooks

Learners: this script writes only into the repository's own ``exercises/`` folder. Work in
a copy of an exercise notebook (or work in ``exercises/`` and never run ``make exercises``).
As a safety net, the script refuses to overwrite an exercise notebook that has stored
outputs or execution counts (the trace of someone having run and maybe solved it, since
generated notebooks have none); ``--force`` overwrites anyway.
"""
import argparse
import copy
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = ROOT / "solutions"
EXERCISES = ROOT / "exercises"

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
HIDE_TAG = "hide-input"
#: a check cell calls this; its source is collapsed in the exercise notebook
CHECK_CALL = "check_exercise("
#: the first line of an exercise cell: "# Exercise 3.2: the softplus activation"
HEADER = re.compile(r"^#\s*Exercise\s+(\d+\.\d+)\s*:\s*(\S.*?)\s*$")
#: how many graded exercises a notebook should hold (the design's rule)
MIN_EXERCISES, MAX_EXERCISES = 3, 6

__all__ = ["ExerciseFormatError", "exercise_header", "solution_regions", "make_exercise",
           "exercise_ids", "render", "target_for", "main"]


class ExerciseFormatError(ValueError):
    """A solution notebook breaks the marking protocol (unmatched markers, missing header)."""


def exercise_header(source):
    """``(id, title)`` from a cell's first line ``# Exercise N.K: title``, else None."""
    first = source.lstrip("\n").split("\n", 1)[0]
    m = HEADER.match(first.strip())
    return (m.group(1), m.group(2)) if m else None


def solution_regions(source, where=""):
    """List of ``(begin_line, end_line, indent)`` (0-based, inclusive) of the solution
    regions of a cell's source. Raises ExerciseFormatError on unmatched or nested markers."""
    regions, start = [], None
    for k, line in enumerate(source.split("\n")):
        marker = line.strip()
        if marker == BEGIN:
            if start is not None:
                raise ExerciseFormatError(f"{where}: line {k + 1}: '{BEGIN}' inside another region")
            start, indent = k, line[: len(line) - len(line.lstrip())]
        elif marker == END:
            if start is None:
                raise ExerciseFormatError(f"{where}: line {k + 1}: '{END}' without '{BEGIN}'")
            regions.append((start, k, indent))
            start = None
    if start is not None:
        raise ExerciseFormatError(f"{where}: line {start + 1}: '{BEGIN}' is never closed")
    return regions


def _quoted(text):
    """``text`` as a double-quoted Python string literal."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _stub_source(source, where):
    """The cell source with each solution region replaced by its stub (or unchanged)."""
    regions = solution_regions(source, where)
    if not regions:
        return source
    header = exercise_header(source)
    if header is None:
        raise ExerciseFormatError(
            f"{where}: a cell with solution regions must start with '# Exercise N.K: <title>'")
    message = f"Exercise {header[0]}: {header[1]}"
    lines = source.split("\n")
    out, pos = [], 0
    for begin, end, indent in regions:
        out.extend(lines[pos:begin])
        out.append(f"{indent}raise NotImplementedError({_quoted(message)})")
        pos = end + 1
    out.extend(lines[pos:])
    return "\n".join(out)


def exercise_ids(nb, where=""):
    """The exercise ids of a solution notebook's cells with solution regions, in order, unique."""
    ids = []
    for k, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        cell_where = f"{where} cell {k}"
        if solution_regions(cell.source, cell_where):
            header = exercise_header(cell.source)
            if header is None:
                raise ExerciseFormatError(
                    f"{cell_where}: a cell with solution regions must start with "
                    "'# Exercise N.K: <title>'")
            if header[0] not in ids:
                ids.append(header[0])
    return ids


def make_exercise(solution, stem, where=""):
    """The exercise notebook (a new NotebookNode) made from the solution notebook ``solution``."""
    nb = copy.deepcopy(solution)
    for k, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        cell.source = _stub_source(cell.source, f"{where} cell {k}")
        cell.outputs = []
        cell.execution_count = None
        cell.metadata.pop("execution", None)          # run timestamps say nothing to a learner
        if CHECK_CALL in cell.source:
            cell.metadata.setdefault("jupyter", {})["source_hidden"] = True
        tags = [t for t in cell.metadata.get("tags", []) if t != HIDE_TAG]
        if tags:
            cell.metadata["tags"] = tags
        else:
            cell.metadata.pop("tags", None)
    nb.metadata["minigrad"] = {"notebook": stem}
    return nb


def render(nb):
    """The exact text a notebook is written as (what ``--check`` compares)."""
    return nbformat.writes(nb, version=4) + "\n"


def target_for(solution_path):
    return EXERCISES / Path(solution_path).name


def _looks_worked_on(path):
    """True when the exercise notebook at ``path`` has outputs or execution counts."""
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception:
        return False
    return any(c.cell_type == "code" and (c.get("outputs") or c.get("execution_count") is not None)
               for c in nb.cells)


def _expected(solution_path):
    """(text of the exercise notebook, list of problems with the solution notebook)."""
    solution_path = Path(solution_path)
    where = str(solution_path.relative_to(ROOT) if solution_path.is_relative_to(ROOT)
                else solution_path)
    solution = nbformat.read(solution_path, as_version=4)
    problems = []
    ids = exercise_ids(solution, where)
    if not MIN_EXERCISES <= len(ids) <= MAX_EXERCISES:
        problems.append(f"{where}: {len(ids)} exercises, expected {MIN_EXERCISES} to "
                        f"{MAX_EXERCISES}")
    stem = solution_path.stem
    if solution.metadata.get("minigrad", {}).get("notebook") != stem:
        problems.append(f"{where}: metadata 'minigrad': {{'notebook': {stem!r}}} is missing")
    return render(make_exercise(solution, stem, where)), problems


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("solutions", nargs="*", type=Path,
                        help="solution notebooks to convert (default: every solutions/0*.ipynb)")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 listing exercise notebooks that are out of date")
    parser.add_argument("--force", action="store_true",
                        help="overwrite exercise notebooks even when they have outputs")
    args = parser.parse_args(argv)

    paths = [p.resolve() for p in args.solutions] or sorted(SOLUTIONS.glob("[0-9]*.ipynb"))
    if not paths:
        print(f"make_exercises: no solution notebooks in {SOLUTIONS}", file=sys.stderr)
        return 2
    stale, refused, problems = [], [], []
    for path in paths:
        if not path.is_file():
            print(f"make_exercises: {path} is not a file", file=sys.stderr)
            return 2
        try:
            text, warnings = _expected(path)
        except (ExerciseFormatError, nbformat.reader.NotJSONError, ValueError) as exc:
            print(f"make_exercises: {exc}", file=sys.stderr)
            return 1
        problems += warnings
        target = target_for(path)
        current = target.read_text(encoding="utf-8") if target.exists() else None
        if current == text:
            continue
        rel = target.relative_to(ROOT)
        if args.check:
            stale.append(f"{rel} ({'missing' if current is None else 'out of date'})")
        elif current is not None and not args.force and _looks_worked_on(target):
            refused.append(str(rel))
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
            print(f"wrote {rel}")
    for p in problems:
        print(f"make_exercises: warning: {p}", file=sys.stderr)
    if stale:
        print("out of date (run `make exercises`):\n  " + "\n  ".join(stale), file=sys.stderr)
        return 1
    if refused:
        print("refused to overwrite (they have outputs, maybe a learner's work; copy them "
              "elsewhere or pass --force):\n  " + "\n  ".join(refused), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
