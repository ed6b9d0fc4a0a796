"""The pytest plugin of the graded tests: the ``exercise`` marker, the ``nb`` fixture, the
options, and the per-test report that :mod:`grader.cli` turns into scores.

Loaded by ``tests/grading/conftest.py`` (``pytest tests/grading``) and by every grading run
of :mod:`grader.cli` (``-p grader.plugin --noconftest``: no conftest file is ever read).

- ``pytest tests/grading`` grades ``solutions/<NOTEBOOK>.ipynb`` for every test module (the
  solutions must earn full marks);
- ``pytest tests/grading --notebook PATH`` grades PATH with the test modules of its chapter
  and deselects the others;
- plain ``pytest tests`` does not collect ``tests/grading``: ``tests/test_grader.py`` grades
  every solution through the grader instead, so the kernels do not run twice.
"""
import json
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

import grader
from grader import notebooks, sandbox
from grader.cells import defined_names, describe_failure, missing_name
from grader.kernel import Notebook, NotebookError, make_lib
from grader.settings import add_limit_options, limits_from

__all__ = ["GRADED_TESTS", "nb", "explain_failed_cells"]

#: the repository's graded tests (when the grader runs from the repository, not a copy)
REPO = Path(grader.__file__).resolve().parents[1]
GRADED_TESTS = REPO / "tests" / "grading"


def pytest_addoption(parser):
    group = parser.getgroup("grading", "grading of exercise notebooks")
    group.addoption("--notebook", default=None,
                    help="the notebook to grade (default: solutions/<NOTEBOOK>.ipynb per module)")
    group.addoption("--grading-job", default=None,
                    help="a JSON file with the submission, already read (written by grader.cli)")
    group.addoption("--grade-report", default=None,
                    help="write every test's outcome and exercise marker to this JSON file")
    group.addoption("--grader-lib", default=None,
                    help="the folder the kernel imports grader and minigrad from "
                         "(default: a fresh copy of the ones this process imports)")
    group.addoption("--no-sandbox", action="store_true", default=False,
                    help="run the kernels without bubblewrap (only for notebooks you trust)")
    group.addoption("--kernel-user", action="store_true", default=False,
                    help="with --no-sandbox, as root: run each kernel as a user of its own")
    add_limit_options(group.addoption)


def _opt(config, name, default=None):
    try:
        value = config.getoption(name)
    except ValueError:          # options of a conftest loaded late (plain `pytest tests`)
        return default
    return default if value is None else value


def _grading(config):
    """True when this run grades notebooks (a graded test module is among its targets)."""
    if _opt(config, "--grading-job") or _opt(config, "--notebook"):
        return True
    return any(_in_graded_tests(config.invocation_params.dir / str(a).split("::")[0])
               for a in config.args)


def _in_graded_tests(path):
    path = Path(path).resolve()
    return path == GRADED_TESTS or GRADED_TESTS in path.parents


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "exercise(id, points): the graded exercise a test belongs to and the "
                   "points of the whole exercise (every test of one exercise carries the same)")
    config._grading_records = {}
    config._grading_cells = {}
    config._grading_lines = {}
    config._grading_failure = None
    config._grading_submission = None
    if not _grading(config):
        return
    job, given = _opt(config, "--grading-job"), _opt(config, "--notebook")
    try:
        if job:
            config._grading_submission = notebooks.Submission.from_json(
                json.loads(Path(job).read_text()))
        elif given:
            config._grading_submission = notebooks.read(given)
    except (OSError, ValueError, KeyError, notebooks.NotGradable) as exc:
        raise pytest.UsageError(f"{job or given}: cannot be graded: {exc}")
    try:
        if _opt(config, "--kernel-user", False):     # as the CLI: refused where it cannot hold
            sandbox.check_user_level()
        elif not _opt(config, "--no-sandbox", False):
            sandbox.check()
    except sandbox.SandboxUnavailable as exc:
        raise pytest.UsageError(f"{exc}")


def pytest_ignore_collect(collection_path, config):
    """Collect the repository's graded tests only when they are a target."""
    if collection_path.name.startswith("test_") and collection_path.parent == GRADED_TESTS:
        return None if _grading(config) else True
    return None


def pytest_collection_modifyitems(config, items):
    submission = config._grading_submission
    if submission is not None:
        keep, drop = [], []
        for item in items:
            wanted = getattr(getattr(item, "module", None), "NOTEBOOK", None)
            (keep if wanted == submission.chapter else drop).append(item)
        if drop:
            config.hook.pytest_deselected(items=drop)
            items[:] = keep
    for item in items:
        marker = item.get_closest_marker("exercise")
        if marker is None:
            continue
        exercise = str(marker.args[0]) if marker.args else str(marker.kwargs.get("id"))
        points = marker.kwargs.get("points", marker.args[1] if len(marker.args) > 1 else 1)
        config._grading_records[item.nodeid] = {
            "nodeid": item.nodeid, "test": item.name, "exercise": exercise,
            "points": float(points), "outcome": "notrun", "reason": None}


@pytest.fixture(scope="session")
def _grader_lib(request):
    """The folder the kernels import ``grader`` and ``minigrad`` from."""
    given = _opt(request.config, "--grader-lib")
    if given:
        yield Path(given)
        return
    import minigrad
    folder = Path(tempfile.mkdtemp(prefix="minigrad-grader-lib-"))
    try:
        yield make_lib(folder / "lib", grader, minigrad)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def nb(request, _grader_lib):
    """The graded notebook of this module, running in its own kernel."""
    config = request.config
    submission = config._grading_submission
    if submission is None:
        path = REPO / "solutions" / f"{request.module.NOTEBOOK}.ipynb"
        try:
            submission = notebooks.read(path)
        except notebooks.NotGradable as exc:
            raise NotebookError(f"{path}: {exc}", "notebook not found")
    limits = limits_from(lambda dest: _opt(config, dest))
    notebook = Notebook(submission.cells, lib=_grader_lib, limits=limits,
                        use_sandbox=not _opt(config, "--no-sandbox", False),
                        kernel_user=_opt(config, "--kernel-user", False),
                        name=submission.path)
    try:
        try:
            notebook.start()
        except NotebookError:
            raise
        except Exception as exc:    # the grader's failure (a full disk, ...), not the notebook's
            first = (str(exc).splitlines() or [""])[0][:200]
            config._grading_failure = f"{type(exc).__name__}: {first}" if first else \
                type(exc).__name__
            raise
        config._grading_cells[submission.path] = {str(k): v for k, v in
                                                  notebook.cell_errors.items()}
        config._grading_lines[submission.path] = dict(notebook.cell_lines)
        yield notebook
    finally:
        notebook.close()


# ---------------------------------------------------------------- outcomes
def _reason(excinfo):
    """A few words on why a test failed, for the score table."""
    exc = excinfo.value
    if isinstance(exc, NotebookError):
        return exc.short
    text = str(exc)
    if "DID NOT RAISE" in text:
        return "an error was expected (e.g. ValueError), none was raised"
    if type(exc).__name__ == "WrongAnswer":       # gradetools.expect: the message names the mistake
        return text if len(text) <= 300 else text[:297] + "..."
    if isinstance(exc, AssertionError):
        if "'ValueError' in" in text:
            import re
            m = re.search(r"raised (\w+)", text)
            return "ValueError expected" + (f", got {m.group(1)}" if m else "")
        return "wrong values"
    short = f"wrong result ({type(exc).__name__}: {text.splitlines()[0] if text else ''})"
    return short if len(short) <= 120 else short[:117] + "..."


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    record = item.config._grading_records.get(item.nodeid)
    if record is None:
        return
    if report.failed and record["reason"] is None and call.excinfo is not None:
        record["reason"] = _reason(call.excinfo)
    if report.when == "call" or report.failed or report.skipped:
        if report.failed:
            record["outcome"] = "failed"
        elif report.skipped:
            record["outcome"] = "skipped"
            record["reason"] = record["reason"] or "skipped"
        elif record["outcome"] != "failed":
            record["outcome"] = "passed"


#: cell errors that only a graded run has (the autodiff stand-in), not the student's code
_GRADER_ONLY = ("AutodiffUnavailable:",)


def explain_failed_cells(records, submission, errors, lines):
    """Name the failed cell behind each failed test of ``records``, in its reason.

    - A test that found a name missing ("the notebook defines no 'f'", "name 'f' is not
      defined") gets the error of the failed cell that defines ``f`` (found by
      :func:`grader.cells.defined_names`, which reads a cell that does not parse too):
      "SyntaxError in the cell of exercise 5.2, line 4: ... (so 'f' is not defined)".
    - A test that called a function no cell defines says the exercise's cell must define it
      (was it renamed or deleted?).
    - Any other failed test of an exercise one of whose cells failed (or a set-up cell) gets
      that cell's error after its own reason, unless the error is the graded run's own doing
      (a check cell calling autograd, which is a stand-in there).

    ``errors`` maps a code cell's index (as text) to its error, ``lines`` an index to the
    error's line."""
    try:
        failed = {int(k): str(v) for k, v in errors.items()}
    except (TypeError, ValueError):
        failed = {}
    failed = {k: v for k, v in failed.items() if 0 <= k < len(submission.cells)}
    exercises, answers, cells = submission.exercises, submission.answers, submission.cells

    def note(k):
        return describe_failure(k, failed[k], lines.get(k), exercises, answers, cells[k])
    definers, defined = {}, set()
    for k, source in enumerate(cells):
        names = defined_names(source)
        defined |= names
        if k in failed:
            for name in names:
                definers.setdefault(name, k)
    for record in records:
        if record["outcome"] == "passed":
            continue
        reason = record["reason"] or ""
        name = missing_name(reason)
        if name in definers:
            record["reason"] = f"{note(definers[name])} (so {name!r} is not defined)"
            continue
        if name and "defines no" in reason and name not in defined \
                and record["exercise"] in answers:
            record["reason"] = (f"NameError: the notebook defines no {name!r}: the cell "
                                f"of exercise {record['exercise']} must define it (was it "
                                "renamed or deleted?)")
            continue
        own = [k for k in sorted(failed) if k < len(exercises)
               and exercises[k] in (record["exercise"], None)
               and not failed[k].startswith(_GRADER_ONLY)]
        if own:
            record["reason"] = f"{reason}; {note(own[0])}" if reason else note(own[0])


def pytest_sessionfinish(session):
    """Write the report (the grading process alone writes it, where no kernel can see)."""
    config = session.config
    out = _opt(config, "--grade-report")
    if not out:
        return
    submission = config._grading_submission
    if submission is not None:
        explain_failed_cells(config._grading_records.values(), submission,
                             config._grading_cells.get(submission.path, {}),
                             config._grading_lines.get(submission.path, {}))
    report = {"notebook": submission.chapter if submission else None,
              "path": submission.path if submission else None,
              "tests": list(config._grading_records.values()),
              "cell_errors": config._grading_cells,
              "grader_error": config._grading_failure}
    # ASCII JSON: a lone surrogate in a message is escaped, never an encoding error
    text = json.dumps(report, indent=1, ensure_ascii=True)
    try:
        Path(out).write_text(text, encoding="ascii")
    except OSError as exc:      # the grader reads no report: this line is the reason it gives
        sys.stderr.write(f"grade: could not write the grading report {out}: {exc.strerror}\n")
