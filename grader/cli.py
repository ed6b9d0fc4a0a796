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

A submission can only cost its own points: whatever goes wrong while one notebook is read,
graded or reported (it is not a notebook, it is nested too deeply to parse, the disk under
the temporary folder is full, its messages hold text no encoder takes, ...) becomes that
notebook's one-line error, and the table, ``--json`` and ``--csv`` are still written for
every notebook. Files that are not regular files (a named pipe, a device, a socket) and
symbolic links to a file outside the graded folder are skipped with a message, never opened
(:mod:`grader.notebooks`); text in the outputs is made safe by :mod:`grader.outputs`.

Exit codes:
  0  every notebook was graded (whatever the scores)
  1  some notebook could not be graded (its row says why); the results are written
  2  usage error: no such file or folder, no notebook in the folder, no sandbox
     (bwrap) and no --no-sandbox, a bad option; nothing is graded or written
  3  the grader's copies were modified during grading: grades from then on are VOID
  4  an output (--json or --csv) could not be written; the others were
  130  interrupted (Ctrl-C, SIGTERM): the grades so far are written, the other
     notebooks are marked not graded
"""
import argparse
import ast
import concurrent.futures
import contextlib
import hashlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import grader
from grader import notebooks, outputs, sandbox
from grader.kernel import make_lib
from grader.outputs import printable, table
from grader.settings import PYTEST_ARGS, PYTEST_INI, add_limit_options, limits_from

__all__ = ["main", "chapters", "read_report", "score", "table", "printable", "ReportError",
           "EXIT_GRADED", "EXIT_NOT_GRADED", "EXIT_USAGE", "EXIT_VOID", "EXIT_OUTPUT",
           "EXIT_INTERRUPTED"]

REPO = Path(grader.__file__).resolve().parents[1]
GRADED_TESTS = REPO / "tests" / "grading"
#: seconds a grading process may run past the notebook's own time limit (start-up, reports)
GRACE = 120
#: exit codes (see the module docstring)
EXIT_GRADED, EXIT_NOT_GRADED, EXIT_USAGE, EXIT_VOID, EXIT_OUTPUT = 0, 1, 2, 3, 4
EXIT_INTERRUPTED = 130
#: seconds an interrupted grading process has to close its kernel before it is killed
STOP_GRACE = 10


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


# ---------------------------------------------------------------- integrity
def fingerprint(roots):
    """sha256 of every file under ``roots`` (caches left out), by path."""
    digest = {}
    for root in roots:
        for p in sorted(Path(root).rglob("*")):
            if "__pycache__" in p.parts or p.suffix == ".pyc" or not p.is_file():
                continue
            try:
                digest[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
            except OSError as exc:          # gone or unreadable: a change like any other
                digest[str(p)] = f"unreadable ({exc.strerror})"
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
    if report.get("grader_error") is not None and not isinstance(report["grader_error"], str):
        raise ReportError("the report's grader_error is not text")
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


class _GradingProcesses:
    """The grading processes running now, so that an interrupted run can stop them all."""

    def __init__(self):
        self._lock, self._running, self._stopped = threading.Lock(), set(), False

    def reset(self):
        with self._lock:
            self._running, self._stopped = set(), False

    def run(self, cmd, timeout, **options):
        """``(exit code, stdout + stderr)`` of ``cmd``; ``subprocess.TimeoutExpired`` (the
        process killed) after ``timeout`` seconds."""
        with self._lock:
            if self._stopped:
                return -signal.SIGINT, "not started: the run was interrupted"
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True, encoding="utf-8",
                                    errors="backslashreplace", **options)
            self._running.add(proc)
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise
        finally:
            with self._lock:
                self._running.discard(proc)
        return proc.returncode, stdout + stderr

    def stop_all(self):
        """Interrupt every grading process (each closes its kernel), kill any that is still
        running after :data:`STOP_GRACE` seconds, and start no other."""
        with self._lock:
            self._stopped = True
            running = list(self._running)
        for proc in running:
            proc.send_signal(signal.SIGINT)
        for proc in running:
            try:
                proc.wait(timeout=STOP_GRACE)
            except subprocess.TimeoutExpired:
                proc.kill()


_PROCESSES = _GradingProcesses()


def grade_one(submission, test_files, workspace, args, number):
    """Grade one read notebook in its own pytest process; its result dict. Its job and
    report files are removed when it is done, so they never fill the temporary folder."""
    job = workspace / "jobs" / f"{number}.json"
    report_path = workspace / "reports" / f"{number}.json"
    try:
        job.write_text(json.dumps(submission.as_json()))
        return _run_grading(submission, test_files, workspace, args, job, report_path)
    finally:
        for leftover in (job, report_path):
            try:
                leftover.unlink(missing_ok=True)
            except OSError:
                pass


def _run_grading(submission, test_files, workspace, args, job, report_path):
    cmd = [sys.executable, "-m", "pytest", *PYTEST_ARGS, "-c", str(workspace / "pytest.ini"),
           "--rootdir", str(workspace), *[str(workspace / "grading" / f) for f in test_files],
           "--grading-job", str(job), "--grade-report", str(report_path),
           "--grader-lib", str(workspace / "lib"), *args.limits.as_args(),
           *(["--no-sandbox"] if args.no_sandbox else [])]
    # the grading process imports the copies of grader and minigrad made for this run, and
    # prints any text (a lone surrogate in a message included) without failing
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", PYTHONPATH=str(workspace / "lib"),
               PYTHONIOENCODING="utf-8:backslashreplace")
    env.pop("PYTEST_ADDOPTS", None)
    path, chapter = submission.path, submission.chapter
    try:
        code, output = _PROCESSES.run(cmd, args.limits.notebook_timeout + GRACE,
                                      cwd=workspace, env=env)
    except subprocess.TimeoutExpired:
        return result_for(path, chapter, error=f"the grading run took longer than "
                          f"{args.limits.notebook_timeout + GRACE:g} s and was stopped")
    try:
        report = read_report(report_path)
    except ReportError as exc:
        return result_for(path, chapter, error=f"the grading run failed (exit code "
                          f"{code}): {exc}: {_tail(output)}")
    if report.get("grader_error"):
        return result_for(path, chapter, error=(
            f"not graded: the grader failed on this notebook ({report['grader_error']}); "
            "grade it again"))
    if not report["tests"]:
        return result_for(path, chapter, error=f"no graded test ran: {_tail(output)}")
    return result_for(path, chapter, score(report))


def _failure(exc):
    """An unexpected exception, in one line."""
    text = (str(exc).splitlines() or [""])[0][:300]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# ---------------------------------------------------------------- reading every notebook
def _short(text, limit=80):
    return text if len(text) <= limit else text[:limit - 3] + "..."


def read_all(found, known):
    """``(results, todo)``: a result with an error for every file that cannot be graded (skipped,
    unreadable, of no known chapter), and ``(path, submission)`` for the others."""
    results, todo = {}, []
    for entry in found:
        path = entry.path
        if entry.problem:
            results[path] = result_for(path, None, error=entry.problem)
            continue
        try:
            submission = notebooks.read(path, entry.source)
        except notebooks.NotGradable as exc:
            results[path] = result_for(path, None, error=str(exc))
            continue
        except Exception as exc:        # whatever else reading one file raises is its error
            results[path] = result_for(path, None, error=f"could not be read ({_failure(exc)})")
            continue
        if submission.chapter not in known:
            results[path] = result_for(path, None, error=(
                f"no graded tests for a notebook called {_short(repr(submission.chapter))} "
                f"(from its metadata or file name); graded chapters: "
                f"{', '.join(sorted(known)) or 'none'}"))
            continue
        todo.append((path, submission))
    return results, todo


# ---------------------------------------------------------------- grading every notebook
def _workspace():
    """A fresh private folder of this run under the temporary folder."""
    parent = Path(tempfile.gettempdir()) / "minigrad-grade"
    parent.mkdir(mode=0o700, exist_ok=True)
    return Path(tempfile.mkdtemp(dir=parent))


def _prepare(workspace):
    """Copy the graded tests, ``grader`` and ``minigrad`` into ``workspace``."""
    shutil.copytree(GRADED_TESTS, workspace / "grading",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".*", "conftest.py"))
    make_lib(workspace / "lib", grader, _minigrad())
    for name in ("reports", "jobs"):
        (workspace / name).mkdir()
    (workspace / "pytest.ini").write_text(PYTEST_INI)


def grade_all(todo, known, args):
    """``(results, void, interrupted)``: a result for every ``(path, submission)`` of ``todo``
    (an error for one that could not be graded, whatever went wrong), the grader's files
    that changed during grading (then every grade from that moment on is VOID), and whether
    the run was interrupted (Ctrl-C, SIGTERM: the notebooks not graded by then are errors)."""
    results, void = {}, []
    if not todo:
        return results, void, False
    workspace = None
    try:
        workspace = _workspace()
        _prepare(workspace)
    except Exception as exc:
        where = workspace or Path(tempfile.gettempdir()) / "minigrad-grade"
        error = (f"not graded: the grader could not prepare its temporary folder "
                 f"{where} ({_failure(exc)})")
        _remove(workspace)
        return {p: result_for(p, s.chapter, error=error) for p, s in todo}, void, False
    _PROCESSES.reset()
    interrupted = False
    try:
        watched = [workspace / "grading", workspace / "lib"]
        before = fingerprint(watched)
        lock = threading.Lock()

        def job(k, p, submission):
            try:
                result = grade_one(submission, known[submission.chapter], workspace, args, k)
            except Exception as exc:    # the grader's own failure on this notebook only
                result = result_for(p, submission.chapter, error=(
                    f"not graded: the grader failed on this notebook ({_failure(exc)}); "
                    "grade it again"))
            with lock:
                changed = changes(before, fingerprint(watched))
                if changed and not void:
                    void.extend(changed)
                if void:
                    result = result_for(p, submission.chapter, error=(
                        "VOID: files the grading relies on changed during grading: "
                        + ", ".join(void[:5])))
            return p, result

        pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs))
        try:
            futures = [pool.submit(job, k, p, s) for k, (p, s) in enumerate(todo)]
            for f in concurrent.futures.as_completed(futures):
                p, result = f.result()
                results[p] = result
        except KeyboardInterrupt:
            interrupted = True
            pool.shutdown(wait=False, cancel_futures=True)
            _PROCESSES.stop_all()
        finally:
            pool.shutdown(wait=True)
    finally:
        _remove(workspace)
    for p, s in todo:
        if p not in results:
            results[p] = result_for(p, s.chapter, error="not graded: the run was interrupted")
    return results, void, interrupted


def _remove(folder):
    """Remove this run's temporary folder; a warning, never an error, if that fails."""
    if folder is None:
        return
    try:
        shutil.rmtree(folder)
    except FileNotFoundError:
        pass
    except Exception as exc:            # e.g. RecursionError on a very deep tree
        _say(f"grade: warning: could not remove the temporary folder {folder} "
             f"({_failure(exc)})", sys.stderr)


# ---------------------------------------------------------------- reporting
def reportable(result):
    """``result`` made surrogate-safe and checked to render in the table, the JSON and the
    CSV; if it does not, an error result for its notebook (its reporting failed, not the
    run's)."""
    try:
        result = outputs.clean(result)
        outputs.table(result)
        outputs.json_text(result)
        outputs.csv_text([result])
        return result
    except Exception as exc:
        return outputs.clean(result_for(result.get("notebook", "?"), None, error=(
            f"not graded: the grader could not report this notebook ({_failure(exc)})")))


def _say(text, stream=None):
    """Print ``text``; a closed terminal or pipe does not stop the run."""
    try:
        print(text, file=stream or sys.stdout)
    except (OSError, ValueError):
        pass


def _safe_streams():
    """Make stdout and stderr write any text (a surrogate shows as an escape)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(errors="backslashreplace")
        except (AttributeError, ValueError, OSError):
            pass


def write_outputs(results, args, single):
    """Write ``--json`` and ``--csv``; each one that fails is reported and does not keep the
    other from being written. True when every asked-for output was written."""
    wanted = [("JSON", args.json, lambda: outputs.json_text(results[0] if single else results)),
              ("CSV", args.csv, lambda: outputs.csv_text(results))]
    ok = True
    for kind, path, render in wanted:
        if not path:
            continue
        try:
            outputs.write(path, render())
        except outputs.OutputError as exc:
            ok = False
            _say(f"grade: could not write the {kind} file {exc}", sys.stderr)
    return ok


def show(results, total):
    """The score table of every graded notebook, a summary, and every error on stderr."""
    graded = [r for r in results if not r.get("error")]
    for r in graded:
        _say(table(r))
    if total > 1:
        _say(f"graded {len(graded)} of {total} notebooks; total "
             f"{sum(r['score'] for r in graded):g} / {sum(r['max_score'] for r in graded):g}")
    for r in results:
        if r.get("error"):
            _say(f"grade: {printable(r['notebook'])}: {printable(r['error'])}", sys.stderr)


# ---------------------------------------------------------------- main
def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="grade", description=__doc__.split("\n\n")[0],
                                     epilog=__doc__[__doc__.index("Exit codes:"):],
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
    """Grade, write the outputs, print the table; the exit code (see the module docstring)."""
    _safe_streams()
    args = parse_args(argv)
    target = Path(args.path)
    if not target.exists():
        _say(f"grade: {printable(target)}: no such file or folder", sys.stderr)
        return EXIT_USAGE
    if not args.no_sandbox:
        try:
            sandbox.check()
        except sandbox.SandboxUnavailable as exc:
            _say(f"grade: refusing to grade: {exc}", sys.stderr)
            return EXIT_USAGE
    found = notebooks.find(target)
    if not found:
        _say(f"grade: {printable(target)}: no notebook (*.ipynb) in this folder", sys.stderr)
        return EXIT_USAGE
    known = chapters()
    results, todo = read_all(found, known)
    with _sigterm_as_interrupt():
        graded, void, interrupted = grade_all(todo, known, args)
    results.update(graded)
    ordered = [reportable(results[f.path]) for f in found]
    written = write_outputs(ordered, args, single=not target.is_dir())
    show(ordered, len(found))
    if void:
        _say("grade: WARNING: the grader's copies of tests/grading, grader and minigrad "
             "changed while grading: " + printable(", ".join(void)) + "\nThe grades of the "
             "notebooks graded since then are VOID: look at those notebooks, then "
             "grade them again.", sys.stderr)
        return EXIT_VOID
    if not written:
        return EXIT_OUTPUT
    if interrupted:
        _say("grade: interrupted: the notebooks not graded by then are marked so",
             sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_NOT_GRADED if any(r.get("error") for r in ordered) else EXIT_GRADED


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """While grading, SIGTERM interrupts as Ctrl-C does (the results so far are written)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt
    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _minigrad():
    import minigrad
    return minigrad
