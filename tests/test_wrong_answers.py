"""The graded tests against plausible wrong answers (``tests/wrong_answers/NN.py``).

A wrong answer is a few edits of a solution notebook that make one exercise wrong the way
a learner would. Each generated notebook carries one wrong answer per exercise (exercises
are graded independently), so a handful of kernels covers every wrong answer. The real
grader grades them all in one call; each wrong answer must earn at most a third of its
exercise's points, and its message must contain the list's substring.
"""
import importlib.util
import json
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
LISTS = ROOT / "tests" / "wrong_answers"
SOLUTIONS = ROOT / "solutions"
#: a wrong answer keeps at most this fraction of its exercise's points
MAX_SHARE = 1 / 3


def load_lists():
    """{notebook: [(exercise, name, edits, message), ...]} from tests/wrong_answers/*.py."""
    lists = {}
    for path in sorted(LISTS.glob("[0-9]*.py")):
        spec = importlib.util.spec_from_file_location(f"wrong_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        lists[module.NOTEBOOK] = list(module.WRONG)
    return lists


WRONG = load_lists()
CASES = [(notebook, *entry) for notebook, entries in WRONG.items() for entry in entries]


def apply_edits(nb, edits, where):
    """Replace each ``old`` (exactly one occurrence in the code cells) by ``new``."""
    for old, new in edits:
        hits = [(k, c) for k, c in enumerate(nb.cells) if c.cell_type == "code" and old in c.source]
        count = sum(c.source.count(old) for _, c in hits)
        if count != 1:
            raise ValueError(f"{where}: {old!r} occurs {count} times in the code cells, not once")
        cell = hits[0][1]
        cell.source = cell.source.replace(old, new)


def rounds(entries):
    """Round k holds the k-th wrong answer of every exercise that has one."""
    by_exercise = defaultdict(list)
    for entry in entries:
        by_exercise[entry[0]].append(entry)
    depth = max((len(v) for v in by_exercise.values()), default=0)
    return [[v[k] for v in by_exercise.values() if k < len(v)] for k in range(depth)]


@pytest.fixture(scope="session")
def graded(tmp_path_factory):
    """{(notebook, exercise, name): the exercise's row of the grader's JSON}."""
    folder = tmp_path_factory.mktemp("wrong")
    made = {}
    for notebook, entries in WRONG.items():
        source = nbformat.read(SOLUTIONS / f"{notebook}.ipynb", as_version=4)
        for k, entries_k in enumerate(rounds(entries)):
            nb = nbformat.from_dict(json.loads(json.dumps(source)))
            for exercise, name, edits, _ in entries_k:
                apply_edits(nb, edits, f"{notebook} {exercise} '{name}'")
            path = folder / f"{notebook}__wrong{k}.ipynb"
            nbformat.write(nb, path)
            made[path.name] = [(notebook, e[0], e[1]) for e in entries_k]
    out = folder / "scores.json"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    run = subprocess.run([sys.executable, "-m", "grader", str(folder), "--json", str(out),
                          "--jobs", str(os.cpu_count() or 2)], cwd=ROOT, env=env,
                         capture_output=True, text=True)
    assert out.exists(), f"the grader wrote no scores (exit {run.returncode}):\n{run.stdout}\n{run.stderr}"
    results = {}
    for row in json.loads(out.read_text()):
        for key in made[Path(row["notebook"]).name]:
            match = [e for e in row.get("exercises", []) if e["id"] == key[1]]
            results[key] = match[0] if match else {"error": row.get("error", "no such exercise")}
    write_table(results)
    return results


def write_table(results):
    """The table of wrong answers, points and messages (for the notes): _build/wrong_answers.md."""
    lines = ["| exercise | wrong answer | points | message |", "|---|---|---|---|"]
    for notebook, exercise, name, _, _ in CASES:
        row = results.get((notebook, exercise, name), {})
        points = f"{row.get('points', '?')}/{row.get('max_points', '?')}"
        message = str(row.get("message", row.get("error", ""))).replace("|", "/")
        lines.append(f"| {exercise} | {name} | {points} | {message} |")
    out = ROOT / "_build"
    out.mkdir(exist_ok=True)
    (out / "wrong_answers.md").write_text("\n".join(lines) + "\n", errors="backslashreplace")


@pytest.mark.parametrize("solution", sorted(SOLUTIONS.glob("[0-9]*.ipynb")), ids=lambda p: p.stem)
def test_every_exercise_has_two_wrong_answers(solution):
    sys.path.insert(0, str(ROOT / "scripts"))
    import make_exercises
    ids = make_exercises.exercise_ids(nbformat.read(solution, as_version=4), solution.name)
    listed = defaultdict(int)
    for exercise, *_ in WRONG.get(solution.stem, []):
        listed[exercise] += 1
    short = [e for e in ids if listed[e] < 2]
    assert not short, f"{solution.name}: fewer than two wrong answers listed for {short}"
    unknown = sorted(set(listed) - set(ids))
    assert not unknown, f"tests/wrong_answers lists exercises {solution.stem} does not have: {unknown}"


@pytest.mark.parametrize("notebook, exercise, name, edits, message", CASES,
                         ids=[f"{c[1]}-{c[2]}" for c in CASES])
def test_wrong_answer_loses_its_points_and_is_named(graded, notebook, exercise, name, edits, message):
    row = graded[(notebook, exercise, name)]
    assert "error" not in row, f"{exercise} '{name}': {row['error']}"
    assert row["points"] <= MAX_SHARE * row["max_points"] + 1e-9, (
        f"{exercise} '{name}' earns {row['points']} of {row['max_points']}: {row['message']}")
    assert message in row["message"], (
        f"{exercise} '{name}': the message does not name the mistake ({message!r} not in "
        f"{row['message']!r})")
