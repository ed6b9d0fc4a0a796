"""Grading a class: every notebook read, graded in its own process, and every failure
kept to its notebook.

Each notebook is read once (:mod:`grader.notebooks`) and graded by its own ``pytest`` process
(several at once with ``--jobs``) loading only :mod:`grader.plugin` (no conftest, no
configuration file of the repository); that process runs the notebook in a kernel in its own
sandbox (:mod:`grader.sandbox`), and writes the report of every test's outcome into this
run's private folder, which no kernel can see. The report is checked when read
(:mod:`grader.reports`): a malformed one is that notebook's error.

The graded tests, ``grader`` and ``minigrad`` run from copies made before any notebook runs,
hashed before grading and after each notebook: if they changed (only possible without the
sandbox), every grade from then on is void (``VOID``).

A submission can only cost its own points: whatever goes wrong while one notebook is read or
graded (it is not a notebook, it is nested too deeply to parse, the disk under the temporary
folder is full, ...) becomes that notebook's one-line error; a run that is interrupted stops
its grading processes and marks the notebooks not graded by then.
"""
import ast
import concurrent.futures
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import grader
from grader import notebooks
from grader.kernel import make_lib
from grader.reports import ReportError, read_report, result_for, score
from grader.settings import PYTEST_ARGS, PYTEST_INI

__all__ = ["GRADED_TESTS", "chapters", "read_all", "grade_all", "grade_one", "describe",
           "fingerprint", "changes"]

REPO = Path(grader.__file__).resolve().parents[1]
GRADED_TESTS = REPO / "tests" / "grading"
#: seconds a grading process may run past the notebook's own time limit (start-up, reports)
GRACE = 120
#: seconds an interrupted grading process has to close its kernel before it is killed
STOP_GRACE = 10


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
           *(["--no-sandbox"] if args.no_sandbox else []),
           *(["--kernel-user"] if getattr(args, "kernel_user", False) else [])]
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


def describe(exc):
    """An unexpected exception, in one line."""
    text = (str(exc).splitlines() or [""])[0][:300]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# ---------------------------------------------------------------- reading every notebook
def _short(text, limit=80):
    return text if len(text) <= limit else text[:limit - 3] + "..."


def read_all(found, known, chapter=None, read=None):
    """``(results, todo)``: a result with an error for every file that cannot be graded (skipped,
    unreadable, of no known chapter), and ``(path, submission)`` for the others.

    ``chapter`` (``--chapter``) is the chapter of a notebook whose metadata names none (the
    file name is not looked at then); a notebook whose metadata names another chapter is an
    error, never graded against the wrong tests. ``read``, a dict, receives every submission
    that could be read (``path -> Submission``), graded or not."""
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
            results[path] = result_for(path, None, error=f"could not be read ({describe(exc)})")
            continue
        if read is not None:
            read[path] = submission
        named = submission.metadata_chapter
        if chapter is not None:
            if named is not None and named != chapter:
                results[path] = result_for(path, named, error=(
                    f"its metadata names the chapter {_short(repr(named))}, not "
                    f"{_short(repr(chapter))} (--chapter): not graded; grade it without "
                    "--chapter or with its own chapter"))
                continue
            submission.chapter = chapter
        if submission.chapter not in known:
            results[path] = result_for(path, None, error=(
                f"no graded tests for a notebook called {_short(repr(submission.chapter))} "
                f"(from its {'metadata' if named else 'file name: its metadata names none'});"
                f" graded chapters: {', '.join(sorted(known)) or 'none'}"
                + ("" if named else "; name its chapter with --chapter")))
            continue
        todo.append((path, submission))
    return results, todo


# ---------------------------------------------------------------- grading every notebook
def _workspace():
    """A fresh private folder of this run under the temporary folder."""
    parent = Path(tempfile.gettempdir()) / "minigrad-grade"
    parent.mkdir(mode=0o700, exist_ok=True)
    return Path(tempfile.mkdtemp(dir=parent))


def _prepare(workspace, kernel_user=False):
    """Copy the graded tests, ``grader`` and ``minigrad`` into ``workspace``.

    The graded tests, reports and jobs are the grader's only (0700). With ``kernel_user`` (a
    kernel runs as a user of its own, without bwrap), the workspace and its parent are made
    searchable but not listable (0711) so that that user reaches ``lib`` (read-only) and
    nothing else of the run."""
    shutil.copytree(GRADED_TESTS, workspace / "grading",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".*", "conftest.py"))
    make_lib(workspace / "lib", grader, _minigrad())
    for name in ("reports", "jobs"):
        (workspace / name).mkdir()
    for name in ("grading", "reports", "jobs"):
        (workspace / name).chmod(0o700)
    if kernel_user:
        for folder in (workspace.parent, workspace):
            folder.chmod(0o711)
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
        _prepare(workspace, getattr(args, "kernel_user", False))
    except Exception as exc:
        where = workspace or Path(tempfile.gettempdir()) / "minigrad-grade"
        error = (f"not graded: the grader could not prepare its temporary folder "
                 f"{where} ({describe(exc)})")
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
                    f"not graded: the grader failed on this notebook ({describe(exc)}); "
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
        try:
            print(f"grade: warning: could not remove the temporary folder {folder} "
                  f"({describe(exc)})", file=sys.stderr)
        except (OSError, ValueError):
            pass


def _minigrad():
    import minigrad
    return minigrad
