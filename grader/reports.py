"""The report a grading process writes, checked field by field, and the scores it gives.

A grading process (``pytest`` with :mod:`grader.plugin`) writes one JSON report per notebook:
every test's ``test``, ``exercise``, ``outcome``, ``points`` and ``reason``, and
``grader_error`` when the grader itself failed on the notebook (its kernel could not start
for the grader's reasons). :func:`read_report` refuses anything else with a
:class:`ReportError` naming what is wrong; :func:`score` turns a checked report into exercise
scores; :func:`result_for` is one notebook's result, as the outputs show it.
"""
import json
import math
from pathlib import Path

__all__ = ["ReportError", "read_report", "score", "result_for", "plural"]


class ReportError(Exception):
    """A grading report that is not what the grading process writes."""


_OUTCOMES = {"passed", "failed", "skipped", "notrun"}


def plural(count, noun):
    """'1 test', '2 tests': a count and its noun, in the number it needs."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


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
            message = (f"{len(passed)} of {plural(len(tests), 'test')} passed; "
                       f"{first['test']}: {first['reason'] or first['outcome']}")
        else:
            message = f"passed ({plural(len(tests), 'test')})"
        out.append({"id": ex, "points": round(max_points * len(passed) / len(tests), 2),
                    "max_points": max_points, "passed": not failed, "message": message})
    return out


def result_for(path, chapter, exercises=(), error=None):
    """One notebook's result: ``status`` "graded" with its ``score`` and ``max_score``, or
    "error" with its ``error`` and no score (``score`` and ``max_score`` are None: a notebook
    that was not graded never reads as 0 of 0)."""
    exercises = list(exercises)
    if error:
        return {"notebook": str(path), "chapter": chapter, "score": None, "max_score": None,
                "exercises": exercises, "status": "error", "error": error}
    return {"notebook": str(path), "chapter": chapter,
            "score": round(sum(e["points"] for e in exercises), 2),
            "max_score": round(sum(e["max_points"] for e in exercises), 2),
            "exercises": exercises, "status": "graded"}
