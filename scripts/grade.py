#!/usr/bin/env python
"""Grade exercise notebooks with the graded tests of ``tests/grading``.

Usage::

    python scripts/grade.py PATH [--json OUT] [--csv OUT] [--jobs N]

PATH is one notebook or a folder (every ``*.ipynb`` under it, recursively, except in
``.ipynb_checkpoints``). A notebook's chapter is ``metadata["minigrad"]["notebook"]`` (set in
every exercise notebook), else its file name; the test modules whose ``NOTEBOOK`` is that
chapter grade it. Each notebook is graded by its own ``pytest`` process (several at once
with ``--jobs``), which runs the notebook in its own kernel (see ``tests/grading/harness.py``)
and writes every test's outcome and exercise marker to a JSON report.

Scores: an exercise's points are the ``points`` of its ``exercise`` marker; it earns them in
proportion to the tests it passes. The table on stdout shows every exercise; ``--json``
writes ``{"notebook", "chapter", "score", "max_score", "exercises": [{"id", "points",
"max_points", "passed", "message"}]}`` (a list of them for a folder) and ``--csv`` one row
per notebook with one column per exercise.

Integrity: the graded tests and minigrad run from copies of ``tests/grading`` and
``minigrad`` made before any notebook runs (so editing the repository meanwhile changes
nothing), with pytest's configuration and conftest search confined to the copy, so files a
notebook writes (a ``conftest.py`` anywhere, say) are never loaded. The kernel refuses to
write into the repository, the environment and the grader's folders. As a last line, the
copies are hashed before grading and after each notebook: if they changed, every grade from
then on is void (marked ``VOID``) and the exit code is 3.

Exit codes: 0 when grading ran (whatever the scores); 2 when nothing could be graded (a
file that is not a notebook, a notebook of no known chapter, an empty folder); 3 when the
grader's copies were modified during grading.
"""
import argparse
import ast
import concurrent.futures
import csv
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GRADING = ROOT / "tests" / "grading"
sys.path.insert(0, str(GRADING))
from harness import chapter_of  # noqa: E402  (one rule for the grader and the tests)
#: what the grader copies before any notebook runs, and grades with
COPIED = {"grading": ROOT / "tests" / "grading", "lib/minigrad": ROOT / "minigrad"}

PYTEST_INI = """\
[pytest]
addopts = -p no:cacheprovider
filterwarnings =
    ignore:Output seems independent of input:UserWarning
"""


class GradeError(Exception):
    """A file that cannot be graded; the message is one line."""


# ---------------------------------------------------------------- what can be graded
def chapters(grading=GRADING):
    """``{chapter: [test file names]}`` from the ``NOTEBOOK = "..."`` line of each test module."""
    found = {}
    for path in sorted(grading.glob("test_*.py")):
        try:
            tree = ast.parse(path.read_text())
        except (SyntaxError, UnicodeDecodeError):
            continue
        for node in tree.body:
            if (isinstance(node, ast.Assign) and len(node.targets) == 1
                    and isinstance(node.targets[0], ast.Name) and node.targets[0].id == "NOTEBOOK"
                    and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)):
                found.setdefault(node.value.value, []).append(path.name)
    return found


def identify(path, known):
    """The chapter of the notebook at ``path``; GradeError when it cannot be graded."""
    import nbformat
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise GradeError("not a notebook (not a text file)")
    except OSError as exc:
        raise GradeError(f"cannot read it ({exc.strerror})")
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise GradeError(f"not a notebook (not JSON: {exc.msg} at line {exc.lineno})")
    if not isinstance(data, dict) or not isinstance(data.get("cells"), list) or "nbformat" not in data:
        raise GradeError("not a notebook (JSON without the 'cells' and 'nbformat' of a Jupyter notebook)")
    try:
        nb = nbformat.reads(text, as_version=4)
    except Exception as exc:
        raise GradeError(f"not a readable notebook ({type(exc).__name__}: {str(exc).splitlines()[0]})")
    chapter = chapter_of(nb, path)
    if chapter not in known:
        raise GradeError(f"no graded tests for a notebook called {chapter!r} (from its metadata "
                         f"or file name); graded chapters: {', '.join(sorted(known)) or 'none'}")
    return chapter


def notebooks_under(path):
    path = Path(path)
    if path.is_dir():
        return sorted(p for p in path.rglob("*.ipynb")
                      if ".ipynb_checkpoints" not in p.relative_to(path).parts)
    return [path]


# ---------------------------------------------------------------- integrity
def fingerprint(roots):
    """sha256 of every file under ``roots`` (caches left out), by path."""
    digest = {}
    for root in roots:
        for p in sorted(Path(root).rglob("*")):
            if "__pycache__" in p.parts or p.suffix == ".pyc" or not p.is_file():
                continue
            digest[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return digest


def changes(before, after):
    return sorted(set(before) ^ set(after) | {k for k in before if k in after and before[k] != after[k]})


# ---------------------------------------------------------------- scores
def score(report):
    """Exercise scores from a test report (see tests/grading/conftest.py)."""
    exercises = {}
    for test in report["tests"]:
        exercises.setdefault(test["exercise"], []).append(test)
    out = []
    for ex, tests in exercises.items():
        max_points = max(t["points"] for t in tests)
        passed = [t for t in tests if t["outcome"] == "passed"]
        failed = [t for t in tests if t["outcome"] != "passed"]
        if failed:
            first = failed[0]
            message = (f"{len(passed)} of {len(tests)} tests passed; "
                       f"{first['test']}: {first['reason'] or first['outcome']}")
        else:
            message = f"passed ({len(tests)} tests)"
        out.append({"id": ex, "points": round(max_points * len(passed) / len(tests), 2),
                    "max_points": max_points, "passed": not failed, "message": message})
    return out


def result_for(path, chapter, exercises=(), error=None):
    exercises = list(exercises)
    return {"notebook": str(path), "chapter": chapter,
            "score": round(sum(e["points"] for e in exercises), 2),
            "max_score": round(sum(e["max_points"] for e in exercises), 2),
            "exercises": exercises, **({"error": error} if error else {})}


# ---------------------------------------------------------------- one notebook
def grade_one(path, chapter, test_files, workspace, args, number):
    copy = workspace / "grading"
    report_path = workspace / "reports" / f"{number}.json"
    cmd = [sys.executable, "-m", "pytest", "-q", "-c", str(workspace / "pytest.ini"),
           "--rootdir", str(workspace), "--confcutdir", str(copy),
           *[str(copy / f) for f in test_files],
           "--notebook", str(Path(path).resolve()), "--grade-report", str(report_path),
           "--repo-root", str(ROOT), "--protect", str(workspace.parent),
           "--cell-timeout", str(args.cell_timeout),
           "--call-timeout", str(args.call_timeout)]
    # the test process and the kernel import the copy of minigrad made for this run
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(workspace / "lib"),
                                                        os.environ.get("PYTHONPATH")])))
    env.pop("PYTEST_ADDOPTS", None)
    run = subprocess.run(cmd, cwd=workspace, env=env, stdin=subprocess.DEVNULL,
                         capture_output=True, text=True)
    try:
        report = json.loads(report_path.read_text())
    except (OSError, ValueError):
        tail = " | ".join((run.stdout + run.stderr).strip().splitlines()[-3:])
        return result_for(path, chapter, error=f"the grading run failed (exit code "
                                                f"{run.returncode}): {tail[-300:]}")
    if not report["tests"]:
        tail = " | ".join((run.stdout + run.stderr).strip().splitlines()[-3:])
        return result_for(path, chapter, error=f"no graded test ran: {tail[-300:]}")
    return result_for(path, chapter, score(report))


# ---------------------------------------------------------------- output
def table(result):
    lines = []
    head = f"{result['notebook']}"
    if result.get("error"):
        return f"{head}: ERROR: {result['error']}"
    lines.append(f"{head} ({result['chapter']}): {result['score']:g} / {result['max_score']:g}")
    for e in result["exercises"]:
        lines.append(f"  {e['id']:<6} {e['points']:>6.2f} / {e['max_points']:<4g} {e['message']}")
    return "\n".join(lines)


def write_csv(results, out):
    ids = []
    for r in results:
        for e in r["exercises"]:
            if e["id"] not in ids:
                ids.append(e["id"])
    ids.sort(key=lambda s: tuple(int(p) if p.isdigit() else p for p in s.split(".")))
    with open(out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["notebook", "score", "max_score", *ids, "error"])
        for r in results:
            points = {e["id"]: e["points"] for e in r["exercises"]}
            w.writerow([r["notebook"], r["score"], r["max_score"],
                        *[points.get(i, "") for i in ids], r.get("error", "")])


# ---------------------------------------------------------------- main
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path", help="a notebook, or a folder of notebooks")
    parser.add_argument("--json", metavar="OUT", help="write the scores as JSON")
    parser.add_argument("--csv", metavar="OUT", help="write one row per notebook as CSV")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                        help="notebooks graded at once (default: all cores)")
    parser.add_argument("--cell-timeout", type=float, default=60.0,
                        help="seconds a notebook cell may run (default 60)")
    parser.add_argument("--call-timeout", type=float, default=20.0,
                        help="seconds one graded call may run (default 20)")
    args = parser.parse_args(argv)

    target = Path(args.path)
    if not target.exists():
        print(f"grade.py: {target}: no such file or folder", file=sys.stderr)
        return 2
    paths = notebooks_under(target)
    if not paths:
        print(f"grade.py: {target}: no notebook (*.ipynb) in this folder", file=sys.stderr)
        return 2
    known = chapters()
    results, todo = {}, []
    for p in paths:
        try:
            todo.append((p, identify(p, known)))
        except GradeError as exc:
            results[p] = result_for(p, None, error=str(exc))

    status = 0
    if todo:
        # every grader's folder sits in one parent, which no kernel may write into: a
        # notebook cannot plant files in another grading run going on at the same time
        parent = Path(tempfile.gettempdir()) / "minigrad-grade"
        parent.mkdir(mode=0o700, exist_ok=True)
        workspace = Path(tempfile.mkdtemp(dir=parent))
        try:
            for name, source in COPIED.items():
                shutil.copytree(source, workspace / name,
                                ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".*"))
            (workspace / "reports").mkdir()
            (workspace / "pytest.ini").write_text(PYTEST_INI)
            watched = [workspace / name for name in COPIED]
            before = fingerprint(watched)
            lock, void = threading.Lock(), []

            def job(k, p, chapter):
                result = grade_one(p, chapter, known[chapter], workspace, args, k)
                with lock:
                    changed = changes(before, fingerprint(watched))
                    if changed and not void:
                        void.extend(changed)
                    if void:
                        result = result_for(p, chapter, error=(
                            "VOID: files the grading relies on changed during grading: "
                            + ", ".join(void[:5])))
                return p, result

            with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
                futures = [pool.submit(job, k, p, c) for k, (p, c) in enumerate(todo)]
                for f in concurrent.futures.as_completed(futures):
                    p, result = f.result()
                    results[p] = result
            if void:
                print("grade.py: WARNING: the grader's copies of tests/grading and minigrad changed "
                      "while grading (a notebook wrote past the kernel's guard): " + ", ".join(void)
                      + "\nThe grades of the notebooks graded since then are VOID: look at those "
                      "notebooks, then grade them again.", file=sys.stderr)
                status = 3
        finally:
            shutil.rmtree(workspace, ignore_errors=True)

    ordered = [results[p] for p in paths]
    graded = [r for r in ordered if not r.get("error")]
    if status == 0 and not graded:
        status = 2                       # nothing could be graded
    for r in graded:
        print(table(r))
    if len(paths) > 1:
        print(f"graded {len(graded)} of {len(paths)} notebooks; total "
              f"{sum(r['score'] for r in graded):g} / {sum(r['max_score'] for r in graded):g}")
    for r in ordered:
        if r.get("error"):
            print(f"grade.py: {r['notebook']}: {r['error']}", file=sys.stderr)
    if args.json:
        Path(args.json).write_text(json.dumps(ordered if target.is_dir() else ordered[0], indent=1) + "\n")
    if args.csv:
        write_csv(ordered, args.csv)
    return status


if __name__ == "__main__":
    sys.exit(main())
