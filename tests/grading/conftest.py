"""pytest set-up of the graded tests: the ``exercise`` marker, the ``nb`` fixture, the
options, and the per-test report that ``scripts/grade.py`` turns into scores.

- ``pytest tests/grading`` grades ``solutions/<NOTEBOOK>.ipynb`` for every test module (the
  solutions must earn full marks);
- ``pytest tests/grading --notebook PATH`` grades PATH with the test modules of its chapter
  (``metadata["minigrad"]["notebook"]``, else the file name) and deselects the others;
- plain ``pytest tests`` does not collect this folder: ``tests/test_grader.py`` grades every
  solution through ``scripts/grade.py`` instead, so the kernels do not run twice.

Options (given on the command line of a run inside this folder): ``--notebook``,
``--cell-timeout``, ``--call-timeout``, ``--repo-root`` and ``--protect`` (what the kernel may not
write into) and ``--grade-report`` (a JSON file of every test's outcome and exercise marker).
"""
import json
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import harness  # noqa: E402

#: the repository this folder belongs to, when it is not a grader's copy
DEFAULT_REPO = HERE.parents[1]


def pytest_addoption(parser):
    group = parser.getgroup("grading", "grading of exercise notebooks")
    group.addoption("--notebook", default=None,
                    help="the notebook to grade (default: solutions/<NOTEBOOK>.ipynb per module)")
    group.addoption("--cell-timeout", type=float, default=harness.CELL_TIMEOUT,
                    help="seconds a notebook cell may run (default %(default)s)")
    group.addoption("--call-timeout", type=float, default=harness.CALL_TIMEOUT,
                    help="seconds a graded call may run (default %(default)s)")
    group.addoption("--repo-root", default=None,
                    help="the repository the notebook's kernel may not write into")
    group.addoption("--protect", action="append", default=[],
                    help="one more folder the kernel may not write into (repeatable)")
    group.addoption("--grade-report", default=None,
                    help="write every test's outcome and exercise marker to this JSON file")


def _opt(config, name, default=None):
    try:
        value = config.getoption(name)
    except ValueError:          # the options are only known when this folder is a target
        return default
    return default if value is None else value


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "exercise(id, points): the graded exercise a test belongs to and the "
                   "points of the whole exercise (every test of one exercise carries the same)")
    config._grading_records = {}
    config._grading_cells = {}


def _targets_this_folder(config):
    """True when one of the run's test paths (``config.args``) lies in this folder."""
    for arg in config.args:
        path = (config.invocation_params.dir / str(arg).split("::")[0]).resolve()
        if path == HERE or HERE in path.parents:
            return True
    return False


def pytest_ignore_collect(collection_path, config):
    """Collect the graded tests only when this folder (or a file in it) is a target."""
    if collection_path.name.startswith("test_") and collection_path.parent == HERE:
        return None if _targets_this_folder(config) else True
    return None


# ---------------------------------------------------------------- which notebook
def _graded_path(config, module):
    given = _opt(config, "--notebook")
    if given:
        return Path(given).resolve()
    return DEFAULT_REPO / "solutions" / f"{module.NOTEBOOK}.ipynb"


def pytest_collection_modifyitems(config, items):
    given = _opt(config, "--notebook")
    if given:
        try:
            target = harness.notebook_id(given)
        except Exception as exc:
            raise pytest.UsageError(f"--notebook {given}: not a readable notebook ({exc})")
        keep, drop = [], []
        for item in items:
            wanted = getattr(getattr(item, "module", None), "NOTEBOOK", None)
            (keep if wanted == target else drop).append(item)
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


@pytest.fixture(scope="module")
def nb(request):
    """The graded notebook of this module, running in its own kernel."""
    config = request.config
    path = _graded_path(config, request.module)
    if not path.is_file():
        raise harness.NotebookError(f"no notebook at {path}", "notebook not found")
    repo = Path(_opt(config, "--repo-root", DEFAULT_REPO)).resolve()
    notebook = harness.Notebook(path, cell_timeout=_opt(config, "--cell-timeout", harness.CELL_TIMEOUT),
                                call_timeout=_opt(config, "--call-timeout", harness.CALL_TIMEOUT),
                                protect=[repo, HERE.parent, *_opt(config, "--protect", [])])
    try:
        notebook.start()
        config._grading_cells[str(path)] = {str(k): v for k, v in notebook.cell_errors.items()}
        yield notebook
    finally:
        notebook.close()


# ---------------------------------------------------------------- outcomes
def _reason(excinfo):
    """A few words on why a test failed, for the score table."""
    exc = excinfo.value
    if isinstance(exc, harness.NotebookError):
        return exc.short
    text = str(exc)
    if "DID NOT RAISE" in text:
        return "an error was expected (e.g. ValueError), none was raised"
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


def pytest_sessionfinish(session):
    config = session.config
    out = _opt(config, "--grade-report")
    if not out:
        return
    given = _opt(config, "--notebook")
    report = {"notebook": harness.notebook_id(given) if given else None,
              "path": str(Path(given).resolve()) if given else None,
              "tests": list(config._grading_records.values()),
              "cell_errors": config._grading_cells}
    Path(out).write_text(json.dumps(report, indent=1))
