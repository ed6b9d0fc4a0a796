"""The points table of the instructor's guide (book/instructors.md) matches the graded tests.

Each exercise's points are those of its tests' ``@pytest.mark.exercise("N.K", points=P)``
marker in ``tests/grading``; the table lists them per chapter with the chapter's and the
course's totals. The markers are read from the source (no test module is imported).
"""
import ast
import re
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GUIDE = ROOT / "book" / "instructors.md"
ROW = re.compile(r"^\| (\d+) \| `(\w+)` \| (.*?) \| (\d+) \|$", re.M)
TOTAL = re.compile(r"^\| all \| (\d+) notebooks \| (\d+) exercises \| (\d+) \|$", re.M)


def graded_points(folder=ROOT / "tests" / "grading"):
    """``{notebook stem: {exercise id: points}}`` from the exercise markers of the graded tests."""
    points = defaultdict(dict)
    for path in sorted(folder.glob("test_*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        stem = next((n.value.value for n in tree.body if isinstance(n, ast.Assign)
                     and any(getattr(t, "id", None) == "NOTEBOOK" for t in n.targets)), path.stem[5:])
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "exercise"):
                exercise = node.args[0].value
                value = next(k.value.value for k in node.keywords if k.arg == "points")
                assert points[stem].get(exercise, value) == value, \
                    f"{path.name}: exercise {exercise} has two point values"
                points[stem][exercise] = value
    return dict(points)


def table_problems(text, points):
    """What the guide's points table gets wrong about ``points``; empty when it agrees."""
    problems, seen = [], set()
    for chapter, stem, exercises, total in ROW.findall(text):
        want = points.get(stem)
        if want is None:
            problems.append(f"row {stem}: no graded tests for this notebook")
            continue
        seen.add(stem)
        listed = dict((e, int(p)) for e, p in re.findall(r"(\d+\.\d+): (\d+)", exercises))
        if listed != want:
            problems.append(f"row {stem}: lists {listed}, the markers give {want}")
        if int(total) != sum(want.values()):
            problems.append(f"row {stem}: total {total}, the markers give {sum(want.values())}")
        if not stem.startswith(f"{int(chapter):02d}_"):
            problems.append(f"row {stem}: chapter {chapter} does not match the notebook")
    for stem in sorted(set(points) - seen):
        problems.append(f"no row for {stem}")
    total = TOTAL.search(text)
    want = (len(points), sum(len(p) for p in points.values()),
            sum(sum(p.values()) for p in points.values()))
    if not total or tuple(map(int, total.groups())) != want:
        problems.append(f"the 'all' row should read {want[0]} notebooks, {want[1]} exercises, "
                        f"{want[2]} points")
    sums = [sum(p.values()) for p in points.values()]
    claim = f"Every chapter is worth {min(sums)} to {max(sums)} points, {want[2]} in all"
    if claim not in " ".join(text.split()):
        problems.append(f"the text should say: {claim}")
    return problems


def test_the_points_table_matches_the_graded_tests():
    problems = table_problems(GUIDE.read_text(encoding="utf-8"), graded_points())
    assert not problems, "book/instructors.md:\n  " + "\n  ".join(problems)


@pytest.mark.parametrize("edit", [
    ("2.4: 3 | 10 |", "2.4: 4 | 10 |"),          # one exercise's points
    ("2.4: 3 | 10 |", "2.4: 3 | 11 |"),          # a chapter's total
    ("| 114 |", "| 109 |"),                       # the course's total
    ("10 to 19 points, 114 in all", "10 to 19 points, 109 in all"),
])
def test_a_stale_table_is_caught(edit):
    text = GUIDE.read_text(encoding="utf-8")
    assert edit[0] in text
    assert table_problems(text.replace(edit[0], edit[1], 1), graded_points())


def test_a_new_exercise_is_caught():
    points = graded_points()
    points["05_composition"] = dict(points["05_composition"], **{"5.6": 2})
    assert table_problems(GUIDE.read_text(encoding="utf-8"), points)


def test_the_guide_is_a_part_of_its_own_after_the_course():
    """After the API and performance pages, unnumbered: the chapters keep their numbers."""
    toc = (ROOT / "_toc.yml").read_text(encoding="utf-8")
    assert ("- file: book/12_performance\n  - caption: For instructors\n    chapters:\n"
            "      - file: book/instructors\n") in toc
