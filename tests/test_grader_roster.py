"""Grading a class's hand-in (issue 26): a roster, ``--chapter``, identical submissions, errors
that never read as 0 of 0, and a failed cell named with its error and line.

Units first (no kernel): the roster's columns and matching rules and its wrong inputs, the
identical-code key, the exercise of each cell. Then ONE grading run (sandboxed kernels,
``--jobs 2``) of a hw05 collection as an LMS hands it out, built from the solution and the
exercise notebook of chapter 5: two complete submissions, an untouched one, a partly done one,
one with a SyntaxError in the 5.2 cell, a copy of the partly done one with its metadata
stripped named ``homework.ipynb``, a byte-identical resubmission, and a file that is no
notebook, graded with a roster and ``--chapter``.
"""
import csv
import json
import shutil
from pathlib import Path

import nbformat
import pytest

from grader import cells, cli, duplicates, outputs, roster

ROOT = Path(__file__).resolve().parents[1]
CHAPTER = "05_composition"

ROSTER = """student_id,name,login,pattern,email
12345,Lee Jun,lee-jun,,lee@example.edu
12346,Kim Ana,kim-ana,,
12347,Park Min,park-min,,
12348,Chen Li,chen-li,,
12349,Garcia Sol,garcia-sol,,
12350,Okafor Ada,okafor-ada,homework.ipynb,
12351,Novak Eva,novak-eva,,
"""
#: the line of the 5.2 answer cell broken in garcia-sol's submission, and what it becomes
BROKEN_LINE = "    X, h = np.asarray(X, dtype=float), np.asarray(h dtype=float)"


# ================================================================ units: the roster
def _roster(text=ROSTER):
    return roster.parse(text, "roster.csv")


@pytest.mark.parametrize("name", ["lee-jun (1).ipynb", "lee-jun_late.ipynb",
                                  "12345_lee-jun_05_composition.ipynb", "LEE-JUN.ipynb",
                                  "lee-jun/05_composition.ipynb"])
def test_lms_file_names_match_their_student(name):
    assert [s.student_id for s in _roster().matches(name)] == ["12345"]


@pytest.mark.parametrize("name", ["lee-junior.ipynb", "flee-jun.ipynb", "05_composition.ipynb"])
def test_a_login_matches_only_as_a_whole_word(name):
    assert _roster().matches(name) == []


def test_a_pattern_matches_a_file_name():
    assert [s.name for s in _roster().matches("homework.ipynb")] == ["Okafor Ada"]


def test_a_browser_copy_number_never_matches_a_student_id():
    r = _roster("student_id,name,login\n1234,One,one\n2,Two,two\n")
    assert [s.name for s in r.matches("two (1234).ipynb")] == ["Two"]


def test_a_short_student_id_is_not_looked_for_in_file_names():
    r = _roster("student_id,name,login\n5,Five,five\n12345,Lee,lee-jun\n")
    assert r.matches("lee-jun_hw_5.ipynb") == r.matches("12345_x.ipynb")
    assert [s.name for s in r.matches("lee-jun_hw_5.ipynb")] == ["Lee"]


def test_unmatched_ambiguous_and_resubmitted_files_are_named():
    r = _roster("student_id,name,login\n1,Lee Jun,lee-jun\n2,Kim Ana,kim-ana\n3,Park Min,park\n")
    paths = ["lee-jun.ipynb", "lee-jun (1).ipynb", "stranger.ipynb", "kim-ana_park.ipynb"]
    assigned, missing = roster.assign(r, paths)
    assert assigned["lee-jun.ipynb"][0].student_id == "1"
    [message] = assigned["lee-jun.ipynb"][1]
    assert "one of 2 files of student 1 (also: lee-jun (1).ipynb)" in message
    assert assigned["stranger.ipynb"][0] is None
    assert "no row of the roster" in assigned["stranger.ipynb"][1][0]
    student, [message] = assigned["kim-ana_park.ipynb"]
    assert student is None and "row 3 (2, Kim Ana)" in message and "row 4 (3, Park Min)" in message
    assert [s.student_id for s in missing] == ["2", "3"]


def test_a_roster_without_a_required_column_names_it_and_the_columns_found():
    with pytest.raises(roster.RosterError, match=r"roster.csv: row 1 \(the header\) has no "
                                                 r"column 'name' \(columns found: 'student_id', "
                                                 r"'login'"):
        _roster("student_id,login\n1,lee\n")


def test_a_duplicate_student_id_names_both_rows():
    with pytest.raises(roster.RosterError, match="row 3 has the student_id '7' of row 2"):
        _roster("student_id,name\n7,Ann\n7,Bo\n")


def test_a_duplicate_login_names_both_rows():
    with pytest.raises(roster.RosterError, match="row 3 has the login 'LEE' of row 2"):
        _roster("student_id,name,login\n1,Ann,lee\n2,Bo,LEE\n")


def test_a_row_without_a_student_id_is_named():
    with pytest.raises(roster.RosterError, match="row 3 has no student_id"):
        _roster("student_id,name\n1,Ann\n,Bo\n")


def test_a_roster_that_is_not_utf8_says_so(tmp_path):
    path = tmp_path / "r.csv"
    path.write_bytes("student_id,name\n1,M\u00fcller\n".encode("latin-1"))
    with pytest.raises(roster.RosterError, match="not UTF-8"):
        roster.load(path)


def test_a_spreadsheet_byte_order_mark_is_read(tmp_path):
    path = tmp_path / "r.csv"
    path.write_bytes("\ufeffStudent ID,Name\n1,Ann\n".encode("utf-8"))
    assert [s.name for s in roster.load(path).students] == ["Ann"]


# ================================================================ units: cells and twins
def test_every_exercise_cell_of_chapter_5_maps_to_its_exercise():
    nb = nbformat.read(ROOT / "exercises" / f"{CHAPTER}.ipynb", 4)
    exercises, answers = cells.exercise_map((c.cell_type, c.source) for c in nb.cells)
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    assert exercises[0] is None                                  # the set-up cell
    for exercise, k in answers.items():
        assert code[k].startswith(f"# Exercise {exercise}:") and exercises[k] == exercise
    assert sorted(answers) == ["5.1", "5.2", "5.3", "5.4", "5.5"]


def test_the_comment_alone_maps_a_notebook_without_its_markdown():
    exercises, answers = cells.exercise_map([("code", "import numpy"),
                                             ("code", "# Exercise 1.2: x\ndef f(): pass"),
                                             ("code", "check(f)")])
    assert exercises == [None, "1.2", "1.2"] and answers == {"1.2": 1}


def test_the_deepest_line_of_the_cell_is_taken_from_a_coloured_traceback():
    tb = ["\x1b[31m----\x1b[39m", "\x1b[36mCell\x1b[39m \x1b[32mIn[2]\x1b[39m\x1b[32m, line 5"
          "\x1b[39m\n f()", "\x1b[36mCell\x1b[39m \x1b[32mIn[2]\x1b[39m\x1b[32m, line 2\x1b[39m, "
          "in f\n", "ZeroDivisionError: division by zero"]
    assert cells.error_line(tb) == 2
    assert cells.error_line(["no frame here"]) is None


def test_a_syntax_error_is_described_with_its_exercise_line_and_code():
    source = "# Exercise 5.2: x\ndef f(X):\n    return (X.T @\n"
    text = cells.describe_failure(1, "SyntaxError: '(' was never closed (123.py, line 3)", 3,
                                  [None, "5.2"], {"5.2": 1}, source)
    assert text == ("SyntaxError in the cell of exercise 5.2, line 3: '(' was never closed "
                    "(the line reads `return (X.T @`)")


def test_a_cell_that_only_defines_a_name_is_found_even_if_it_does_not_parse():
    assert "f" in cells.defined_names("def f(X):\n    return (X.T @\n")
    assert {"g", "np", "A"} <= cells.defined_names("import numpy as np\nA = 1\nclass g: pass")


def test_comments_and_blank_lines_do_not_hide_identical_code():
    a = ["import numpy as np", "def f(x):\n    return x + 1\n"]
    b = ["import numpy as np  # numbers", "\n# my answer\ndef f(x):\n\n    return x + 1"]
    assert duplicates.code_key(a) == duplicates.code_key(b)
    assert duplicates.code_key(a) != duplicates.code_key(["import numpy as np",
                                                          "def f(x):\n    return x + 2"])


# ================================================================ wrong command lines
def test_a_broken_roster_stops_the_run_before_any_grading(tmp_path, capsys):
    (tmp_path / "r.csv").write_text("student_id,login\n1,lee\n")
    (tmp_path / "a.ipynb").write_text("{}")
    code = cli.main([str(tmp_path / "a.ipynb"), "--roster", str(tmp_path / "r.csv"),
                     "--csv", str(tmp_path / "o.csv"), "--no-sandbox"])
    assert code == cli.EXIT_USAGE and not (tmp_path / "o.csv").exists()
    assert "has no column 'name'" in capsys.readouterr().err


def test_an_unknown_chapter_option_is_a_usage_error(tmp_path, capsys):
    (tmp_path / "a.ipynb").write_text("{}")
    code = cli.main([str(tmp_path / "a.ipynb"), "--chapter", "05_compostion", "--no-sandbox"])
    assert code == cli.EXIT_USAGE and "graded chapters: " in capsys.readouterr().err


# ================================================================ one grading run
def _answer_cell(nb, exercise):
    return next(c for c in nb.cells if c.cell_type == "code"
                and c.source.startswith(f"# Exercise {exercise}:"))


def _hw05(folder):
    """The hand-in, LMS-style names; returns the roster's path."""
    read = lambda kind: nbformat.read(ROOT / kind / f"{CHAPTER}.ipynb", 4)     # noqa: E731
    solution = read("solutions")
    nbformat.write(solution, folder / f"12345_lee-jun_{CHAPTER}.ipynb")
    shutil.copyfile(folder / f"12345_lee-jun_{CHAPTER}.ipynb", folder / "lee-jun (1).ipynb")
    own = read("solutions")
    own.cells.append(nbformat.v4.new_code_cell("checked_everything = True"))
    nbformat.write(own, folder / f"kim-ana_{CHAPTER}.ipynb")
    nbformat.write(read("exercises"), folder / "park-min.ipynb")
    partial = read("exercises")
    for exercise in ("5.1", "5.5"):
        _answer_cell(partial, exercise).source = _answer_cell(solution, exercise).source
    nbformat.write(partial, folder / "chen-li_late.ipynb")
    broken = read("solutions")
    cell = _answer_cell(broken, "5.2")
    lines = cell.source.splitlines()
    k = next(i for i, line in enumerate(lines) if "BEGIN SOLUTION" in line) + 1
    lines[k] = BROKEN_LINE
    cell.source = "\n".join(lines)
    nbformat.write(broken, folder / "garcia-sol (1).ipynb")
    partial.metadata = {}
    nbformat.write(partial, folder / "homework.ipynb")
    (folder / "notes.ipynb").write_text("these are my notes, not a notebook")
    (folder.parent / "roster.csv").write_text(ROSTER)
    return folder.parent / "roster.csv", k + 1


@pytest.fixture(scope="module")
def hw05(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hw05")
    folder = tmp / "hw05"
    folder.mkdir()
    roster_path, broken_line = _hw05(folder)
    code = cli.main([str(folder), "--roster", str(roster_path), "--chapter", CHAPTER,
                     "--csv", str(tmp / "o.csv"), "--json", str(tmp / "o.json"), "--jobs", "2"])
    with open(tmp / "o.csv", newline="", encoding="utf-8") as f:
        header, *rows = list(csv.reader(f))
    by_file = {Path(r[header.index("notebook")]).name: dict(zip(header, r)) for r in rows}
    results = {Path(r["notebook"]).name: r for r in json.loads((tmp / "o.json").read_text())}
    return {"code": code, "header": header, "rows": by_file, "json": results,
            "broken_line": broken_line}


def test_the_csv_has_the_class_columns(hw05):
    exercises = ["5.1", "5.2", "5.3", "5.4", "5.5"]
    assert hw05["header"] == [*outputs.CSV_HEAD, *exercises, *outputs.CSV_TAIL]
    assert outputs.CSV_HEAD[:5] == ["student_id", "student_name", "notebook", "chapter", "status"]
    assert outputs.CSV_TAIL == ["flags", "messages", "error"]


@pytest.mark.parametrize("name, student, score", [
    (f"12345_lee-jun_{CHAPTER}.ipynb", ("12345", "Lee Jun"), "16.0"),
    ("lee-jun (1).ipynb", ("12345", "Lee Jun"), "16.0"),
    (f"kim-ana_{CHAPTER}.ipynb", ("12346", "Kim Ana"), "16.0"),
    ("park-min.ipynb", ("12347", "Park Min"), "0.0"),
    ("chen-li_late.ipynb", ("12348", "Chen Li"), "5.0"),
    ("garcia-sol (1).ipynb", ("12349", "Garcia Sol"), "12.0"),
    ("homework.ipynb", ("12350", "Okafor Ada"), "5.0")])
def test_every_submission_is_graded_for_its_student(hw05, name, student, score):
    row = hw05["rows"][name]
    assert (row["student_id"], row["student_name"]) == student
    assert (row["chapter"], row["status"], row["score"], row["max_score"]) == \
        (CHAPTER, "graded", score, "16.0")


def test_a_notebook_without_metadata_is_graded_with_the_chapter_option(hw05):
    row = hw05["rows"]["homework.ipynb"]
    assert "chapter 05_composition from --chapter" in row["messages"]
    assert (row["5.1"], row["5.2"], row["5.5"]) == ("4.0", "0.0", "1.0")


def test_an_error_never_reads_as_a_score(hw05):
    row, result = hw05["rows"]["notes.ipynb"], hw05["json"]["notes.ipynb"]
    assert row["status"] == "error" and "not a notebook" in row["error"]
    assert row["score"] == row["max_score"] == row["5.1"] == ""
    assert result["status"] == "error" and result["score"] is None and result["max_score"] is None
    assert hw05["code"] == cli.EXIT_NOT_GRADED


def test_a_file_no_roster_row_matches_is_said_so(hw05):
    row = hw05["rows"]["notes.ipynb"]
    assert row["student_id"] == "" and "no row of the roster roster.csv matches" in row["messages"]


def test_a_student_without_a_file_has_a_missing_row(hw05):
    [row] = [r for r in hw05["rows"].values() if r["student_id"] == "12351"]
    assert row["status"] == "missing" and row["score"] == "" and row["notebook"] == ""


def test_a_resubmission_is_flagged_byte_identical_and_one_of_two_files(hw05):
    first, again = hw05["rows"][f"12345_lee-jun_{CHAPTER}.ipynb"], hw05["rows"]["lee-jun (1).ipynb"]
    assert first["flags"] == "byte-identical to lee-jun (1).ipynb"
    assert again["flags"] == f"byte-identical to 12345_lee-jun_{CHAPTER}.ipynb"
    assert "one of 2 files of student 12345" in again["messages"]
    assert hw05["json"]["lee-jun (1).ipynb"]["identical_to"] == [f"12345_lee-jun_{CHAPTER}.ipynb"]


def test_the_same_code_in_another_file_is_flagged(hw05):
    assert hw05["rows"]["homework.ipynb"]["flags"] == "same code cells as chen-li_late.ipynb"
    assert hw05["json"]["chen-li_late.ipynb"]["same_code_as"] == ["homework.ipynb"]


def test_distinct_and_untouched_submissions_are_not_flagged(hw05):
    for name in (f"kim-ana_{CHAPTER}.ipynb", "park-min.ipynb", "garcia-sol (1).ipynb"):
        assert hw05["rows"][name]["flags"] == "", name


def test_a_syntax_error_is_reported_with_its_line_in_the_exercise_it_breaks(hw05):
    [e52] = [e for e in hw05["json"]["garcia-sol (1).ipynb"]["exercises"] if e["id"] == "5.2"]
    line = hw05["broken_line"]
    assert f"SyntaxError in the cell of exercise 5.2, line {line}: " in e52["message"]
    assert "the line reads `X, h = np.asarray(X, dtype=float), np.asarray(h dtype=float)`" \
        in e52["message"]
    others = [e for e in hw05["json"]["garcia-sol (1).ipynb"]["exercises"] if e["id"] != "5.2"]
    assert all(e["passed"] and "SyntaxError" not in e["message"] for e in others)


def test_the_csv_says_what_each_exercise_that_lost_points_was_told(hw05):
    messages = hw05["rows"]["garcia-sol (1).ipynb"]["messages"].split(" | ")
    [lost] = [m for m in messages if m.startswith("5.")]            # only 5.2 lost points
    assert lost.startswith("5.2: ") and "SyntaxError in the cell of exercise 5.2" in lost
    assert hw05["rows"][f"kim-ana_{CHAPTER}.ipynb"]["messages"] == ""


def test_the_autodiff_stand_in_of_a_graded_run_is_not_blamed_on_the_student(hw05):
    for e in hw05["json"]["park-min.ipynb"]["exercises"]:
        assert "AutodiffUnavailable" not in e["message"], e


# ================================================================ units: graded messages
def _records(*reasons, exercise="5.2"):
    return [{"test": f"t{k}", "exercise": exercise, "outcome": "failed", "reason": r}
            for k, r in enumerate(reasons)]


def _submission(*sources):
    from grader import notebooks
    exercises, answers = cells.exercise_map(("code", s) for s in sources)
    return notebooks.Submission("x.ipynb", CHAPTER, list(sources), exercises, answers)


def test_a_renamed_function_is_named_in_its_exercise():
    from grader.plugin import explain_failed_cells
    records = _records("raised NameError: the notebook defines no 'f' (did its cell run?)")
    explain_failed_cells(records, _submission("import numpy", "# Exercise 5.2: x\ndef g(): pass"),
                         {}, {})
    assert records[0]["reason"] == ("NameError: the notebook defines no 'f': the cell of "
                                    "exercise 5.2 must define it (was it renamed or deleted?)")


def test_a_failed_set_up_cell_is_added_to_a_wrong_answer():
    from grader.plugin import explain_failed_cells
    records = _records("wrong values")
    explain_failed_cells(records, _submission("import numpy\nimport nope",
                                              "# Exercise 5.2: x\ndef f(): pass"),
                         {"0": "ModuleNotFoundError: No module named 'nope'"}, {0: 2})
    assert records[0]["reason"] == ("wrong values; ModuleNotFoundError in the set-up cell "
                                    "starting `import numpy`, line 2: No module named 'nope'")


def test_a_failed_cell_of_another_exercise_is_not_blamed():
    from grader.plugin import explain_failed_cells
    records = _records("wrong values")
    explain_failed_cells(records, _submission("import numpy", "# Exercise 5.1: x\n1/0",
                                              "# Exercise 5.2: x\ndef f(): pass"),
                         {"1": "ZeroDivisionError: division by zero"}, {1: 2})
    assert records[0]["reason"] == "wrong values"


# ================================================================ units: results annotated
def _class_folder(tmp_path):
    from grader import notebooks
    from grader.reports import result_for
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    for name in ("lee-jun.ipynb", "kim-ana.ipynb"):
        nbformat.write(nb, tmp_path / name)
    read = {tmp_path / n: notebooks.read(tmp_path / n) for n in ("lee-jun.ipynb", "kim-ana.ipynb")}
    return [result_for(p, "x", []) for p in read], read


def test_a_student_without_a_file_is_missing_only_when_a_folder_is_graded(tmp_path):
    from grader import identity
    results, read = _class_folder(tmp_path)
    r = _roster("student_id,name,login\n12345,Lee Jun,lee-jun\n12346,Kim Ana,kim-ana\n"
                "12347,Park Min,park-min\n")
    out, missing = identity.annotate(results, read, tmp_path, r)
    assert [s.student_id for s in missing] == ["12347"]
    assert [o["student_id"] for o in out] == ["12345", "12346"]
    _, missing = identity.annotate(results[:1], read, tmp_path / "lee-jun.ipynb", r)
    assert missing == []


def test_files_with_the_same_bytes_are_flagged_byte_identical_not_same_code(tmp_path):
    from grader import identity
    results, read = _class_folder(tmp_path)
    out, _ = identity.annotate(results, read, tmp_path)
    assert [o["identical_to"] for o in out] == [["kim-ana.ipynb"], ["lee-jun.ipynb"]]
    assert [o["same_code_as"] for o in out] == [[], []]
    assert [o["student_id"] for o in out] == [None, None]


# ================================================================ units: --chapter
def _chapter_folder(tmp_path):
    from grader import notebooks
    named = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    named.metadata["minigrad"] = {"notebook": "02_linear_algebra"}
    nbformat.write(named, tmp_path / "named.ipynb")
    nbformat.write(nbformat.v4.new_notebook(), tmp_path / "homework.ipynb")
    return notebooks.find(tmp_path)


def test_the_chapter_option_names_a_notebook_without_metadata_but_never_overrides_it(tmp_path):
    from grader import grading
    known = {CHAPTER: ["test_05.py"], "02_linear_algebra": ["test_02.py"]}
    results, todo = grading.read_all(_chapter_folder(tmp_path), known, CHAPTER)
    assert [(Path(p).name, s.chapter) for p, s in todo] == [("homework.ipynb", CHAPTER)]
    [error] = results.values()
    assert "its metadata names the chapter '02_linear_algebra', not '05_composition'" in \
        error["error"] and error["score"] is None


def test_without_the_chapter_option_the_error_suggests_it(tmp_path):
    from grader import grading
    results, todo = grading.read_all(_chapter_folder(tmp_path), {"02_linear_algebra": ["t.py"]})
    [(_, submission)] = todo
    assert submission.chapter == "02_linear_algebra"
    [error] = results.values()
    assert "no graded tests for a notebook called 'homework'" in error["error"]
    assert "name its chapter with --chapter" in error["error"]
