"""Grade exercise notebooks with the graded tests of ``tests/grading``.

Usage::

    python -m grader PATH [--json OUT] [--csv OUT] [--jobs N] [--no-sandbox] [limits]

(also ``scripts/grade.py`` and ``make grade NB=PATH``). PATH is one notebook or a folder
(every ``*.ipynb`` under it, recursively, except in ``.ipynb_checkpoints``). A notebook's
chapter is ``metadata["minigrad"]["notebook"]``, else its file name; the test modules whose
``NOTEBOOK`` is that chapter grade it.

Each notebook is read once, here, and graded by its own ``pytest`` process (several at once
with ``--jobs``) loading only :mod:`grader.plugin` (no conftest, no configuration file of
the repository); that process runs the notebook in a kernel in its own sandbox
(:mod:`grader.sandbox`) under the limits below, and writes the report of every test's
outcome into this run's private folder, which no kernel can see. The report is checked
when read: a malformed one is that notebook's error.

Scores: an exercise's points are the ``points`` of its ``exercise`` marker; it earns them in
proportion to the tests it passes. The table on stdout shows every exercise; ``--json``
writes ``{"notebook", "chapter", "score", "max_score", "exercises": [{"id", "points",
"max_points", "passed", "message"}]}`` (a list of them for a folder) and ``--csv`` one row
per notebook with one column per exercise.

The graded tests, ``grader`` and ``minigrad`` run from copies made before any notebook runs,
hashed before grading and after each notebook: if they changed (only possible without the
sandbox), every grade from then on is void (``VOID``) and the exit code is 3.

Exit codes: 0 when grading ran (whatever the scores); 2 when nothing could be graded (a
file that is not a notebook, a notebook of no known chapter, an empty folder, no sandbox
and no ``--no-sandbox``); 3 when the grader's copies were modified during grading.
"""
import argparse
import ast
import concurrent.futures
import csv
import hashlib
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import grader
from grader import notebooks, sandbox
from grader.kernel import make_lib
from grader.settings import PYTEST_ARGS, PYTEST_INI, add_limit_options, limits_from

__all__ = ["main", "chapters", "read_report", "score", "table", "ReportError"]

REPO = Path(grader.__file__).resolve().parents[1]
GRADED_TESTS = REPO / "tests" / "grading"
#: seconds a grading process may run past the notebook's own time limit (start-up, reports)
GRACE = 120


class ReportError(Exception):
    """A grading report that is not what the grading process writes."""


# ---------------------------------------------------------------- what can be graded
def chapters(folder=GRADED_TESTS):
    """``{chapter: [test file names]}`` from the ``NOTEBOOK = "..."`` line of each test module."""
    found = {}
    for path in sorted(Path(folder).glob("test_*.py")):
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


# ---------------------------------------------------------------- reports and scores
_OUTCOMES = {"passed", "failed", "skipped", "notrun"}


def read_report(path):
    """The report a grading process wrote at ``path``, checked field by field;
    :class:`ReportError` naming what is wrong otherwise."""
    try:
        report = json.loads(Path(path).read_text())
    except OSError as exc:
        raise ReportError(f"no report ({exc.strerror})")
    except ValueError as exc:
        raise ReportError(f"the report is not JSON ({exc})")
    if not isinstance(report, dict) or not isinstance(report.get("tests"), list):
        raise ReportError("the report has no list of tests")
    for k, test in enumerate(report["tests"]):
        if not isinstance(test, dict):
            raise ReportError(f"test {k} of the report is not an object")
        for key, kind in (("test", str), ("exercise", str), ("outcome", str),
                          ("points", (int, float))):
            if not isinstance(test.get(key), kind) or isinstance(test.get(key), bool):
                raise ReportError(f"test {k} of the report has no valid {key!r}")
        if test["outcome"] not in _OUTCOMES:
            raise ReportError(f"test {k} of the report has an unknown outcome {test['outcome']!r}")
        if not (math.isfinite(test["points"]) and test["points"] >= 0):
            raise ReportError(f"test {k} of the report has invalid points {test['points']!r}")
        if test.get("reason") is not None and not isinstance(test["reason"], str):
            raise ReportError(f"test {k} of the report has a reason that is not text")
    return report


def score(report):
    """Exercise scores from a checked report (see :func:`read_report`)."""
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
def _tail(run_output):
    return " | ".join(run_output.strip().splitlines()[-3:])[-300:]


def grade_one(submission, test_files, workspace, args, number):
    """Grade one read notebook in its own pytest process; its result dict."""
    job = workspace / "jobs" / f"{number}.json"
    job.write_text(json.dumps(submission.as_json()))
    report_path = workspace / "reports" / f"{number}.json"
    cmd = [sys.executable, "-m", "pytest", *PYTEST_ARGS, "-c", str(workspace / "pytest.ini"),
           "--rootdir", str(workspace), *[str(workspace / "grading" / f) for f in test_files],
           "--grading-job", str(job), "--grade-report", str(report_path),
           "--grader-lib", str(workspace / "lib"), *args.limits.as_args(),
           *(["--no-sandbox"] if args.no_sandbox else [])]
    # the grading process imports the copies of grader and minigrad made for this run
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", PYTHONPATH=str(workspace / "lib"))
    env.pop("PYTEST_ADDOPTS", None)
    path, chapter = submission.path, submission.chapter
    try:
        run = subprocess.run(cmd, cwd=workspace, env=env, stdin=subprocess.DEVNULL,
                             capture_output=True, text=True,
                             timeout=args.limits.notebook_timeout + GRACE)
    except subprocess.TimeoutExpired:
        return result_for(path, chapter, error=f"the grading run took longer than "
                          f"{args.limits.notebook_timeout + GRACE:g} s and was stopped")
    try:
        report = read_report(report_path)
    except ReportError as exc:
        return result_for(path, chapter, error=f"the grading run failed (exit code "
                          f"{run.returncode}): {exc}: {_tail(run.stdout + run.stderr)}")
    if not report["tests"]:
        return result_for(path, chapter,
                          error=f"no graded test ran: {_tail(run.stdout + run.stderr)}")
    return result_for(path, chapter, score(report))


# ---------------------------------------------------------------- output
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def printable(text):
    """``text`` with control characters (escape sequences, carriage returns, ...) shown
    as escapes, so a message cannot rewrite the terminal."""
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], str(text))


def table(result):
    """The score table of one result, with control characters escaped."""
    head = printable(result["notebook"])
    if result.get("error"):
        return f"{head}: ERROR: {printable(result['error'])}"
    lines = [f"{head} ({printable(result['chapter'])}): "
             f"{result['score']:g} / {result['max_score']:g}"]
    for e in result["exercises"]:
        lines.append(f"  {printable(e['id']):<6} {e['points']:>6.2f} / {e['max_points']:<4g} "
                     f"{printable(e['message'])}")
    return "\n".join(lines)


def _exercise_key(s):
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in s.split("."))


def write_csv(results, out):
    ids = []
    for r in results:
        for e in r["exercises"]:
            if e["id"] not in ids:
                ids.append(e["id"])
    ids.sort(key=_exercise_key)
    with open(out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["notebook", "score", "max_score", *ids, "error"])
        for r in results:
            points = {e["id"]: e["points"] for e in r["exercises"]}
            w.writerow([r["notebook"], r["score"], r["max_score"],
                        *[points.get(i, "") for i in ids], r.get("error", "")])


# ---------------------------------------------------------------- main
def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="grade", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path", help="a notebook, or a folder of notebooks")
    parser.add_argument("--json", metavar="OUT", help="write the scores as JSON")
    parser.add_argument("--csv", metavar="OUT", help="write one row per notebook as CSV")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                        help="notebooks graded at once (default: all cores)")
    parser.add_argument("--no-sandbox", action="store_true",
                        help="run the kernels without bubblewrap, with your rights: only for "
                             "notebooks you trust")
    add_limit_options(parser.add_argument)
    args = parser.parse_args(argv)
    args.limits = limits_from(lambda dest: getattr(args, dest))
    return args


def main(argv=None):
    args = parse_args(argv)
    target = Path(args.path)
    if not target.exists():
        print(f"grade: {target}: no such file or folder", file=sys.stderr)
        return 2
    if not args.no_sandbox:
        try:
            sandbox.check()
        except sandbox.SandboxUnavailable as exc:
            print(f"grade: refusing to grade: {exc}", file=sys.stderr)
            return 2
        if sandbox.not_enforced():
            print(f"grade: WARNING: {sandbox.not_enforced()}", file=sys.stderr)
    paths = notebooks_under(target)
    if not paths:
        print(f"grade: {target}: no notebook (*.ipynb) in this folder", file=sys.stderr)
        return 2
    known = chapters()
    results, todo = {}, []
    for p in paths:
        try:
            submission = notebooks.read(p)
        except notebooks.NotGradable as exc:
            results[p] = result_for(p, None, error=str(exc))
            continue
        if submission.chapter not in known:
            results[p] = result_for(p, None, error=(
                f"no graded tests for a notebook called {submission.chapter!r} (from its "
                f"metadata or file name); graded chapters: {', '.join(sorted(known)) or 'none'}"))
            continue
        todo.append((p, submission))

    status = 0
    if todo:
        parent = Path(tempfile.gettempdir()) / "minigrad-grade"
        parent.mkdir(mode=0o700, exist_ok=True)
        workspace = Path(tempfile.mkdtemp(dir=parent))
        try:
            shutil.copytree(GRADED_TESTS, workspace / "grading",
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".*",
                                                          "conftest.py"))
            make_lib(workspace / "lib", grader, _minigrad())
            for name in ("reports", "jobs"):
                (workspace / name).mkdir()
            (workspace / "pytest.ini").write_text(PYTEST_INI)
            watched = [workspace / "grading", workspace / "lib"]
            before = fingerprint(watched)
            lock, void = threading.Lock(), []

            def job(k, p, submission):
                result = grade_one(submission, known[submission.chapter], workspace, args, k)
                with lock:
                    changed = changes(before, fingerprint(watched))
                    if changed and not void:
                        void.extend(changed)
                    if void:
                        result = result_for(p, submission.chapter, error=(
                            "VOID: files the grading relies on changed during grading: "
                            + ", ".join(void[:5])))
                return p, result

            with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
                futures = [pool.submit(job, k, p, s) for k, (p, s) in enumerate(todo)]
                for f in concurrent.futures.as_completed(futures):
                    p, result = f.result()
                    results[p] = result
            if void:
                print("grade: WARNING: the grader's copies of tests/grading, grader and minigrad "
                      "changed while grading: " + ", ".join(void) + "\nThe grades of the "
                      "notebooks graded since then are VOID: look at those notebooks, then "
                      "grade them again.", file=sys.stderr)
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
            print(f"grade: {printable(r['notebook'])}: {printable(r['error'])}", file=sys.stderr)
    if args.json:
        Path(args.json).write_text(json.dumps(ordered if target.is_dir() else ordered[0],
                                              indent=1) + "\n")
    if args.csv:
        write_csv(ordered, args.csv)
    return status


def _minigrad():
    import minigrad
    return minigrad
