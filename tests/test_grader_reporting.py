"""A submission can only ever cost its own points: reading, grading and reporting (issue 22).

Three layers, fastest first:

- units of :mod:`grader.outputs` (surrogate-safe text, printable text, CSV cells a
  spreadsheet would run, writing a file whole or not at all) and :mod:`grader.notebooks`
  (finding files without opening them, reading one without blocking);
- ``cli.main`` in this process over a class folder of small notebooks, the grading of each
  replaced by a stand-in that fails for some of them (a disk full under the temporary folder,
  a message with a lone surrogate, a report that cannot be rendered): every failure is its
  notebook's error, the others keep their grades, the outputs are written, and the exit code
  says so;
- one real grading run (sandboxed kernels) of a folder with an honest solution (of a non-UTF-8
  file name) beside the attacks of the issue: a graded function raising
  ``ValueError("\\ud800")``, ``.ipynb`` files that are a named pipe, a socket, a device or links
  out of the folder, metadata nested 100,000 deep, file names a spreadsheet would run, and
  (where a tmpfs can be mounted, as root) a disk that is full under the grader's temporary
  folder for one notebook only.
"""
import csv
import errno
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from grader import cli, grading, notebooks, outputs

ROOT = Path(__file__).resolve().parents[1]
BASE = "02_linear_algebra"
#: a file name as unzip writes it from a latin-1 archive (not UTF-8)
MUELLER = b"M\xfcller.ipynb"
#: what the outputs show for it
MUELLER_SHOWN = "M\\xfcller.ipynb"
#: file names a spreadsheet would run
FORMULA_NAMES = ['=HYPERLINK("evil.example").ipynb', "@SUM(1).ipynb", "+1.ipynb", "-1.ipynb"]


def _notebook(cells=("x = 1",), chapter=BASE):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nb.metadata["minigrad"] = {"notebook": chapter}
    return nb


def _write(nb, path):
    nbformat.write(nb, os.fsdecode(path) if isinstance(path, bytes) else str(path))
    return path


def _nested_notebook(path, depth=100_000):
    """A notebook whose metadata nests ``depth`` lists: too deep for any JSON parser."""
    text = json.dumps({"cells": [], "metadata": {"x": "NEST"}, "nbformat": 4,
                       "nbformat_minor": 5})
    Path(path).write_text(text.replace('"NEST"', "[" * depth + "]" * depth))
    return path


def _special_files(folder):
    """A named pipe, a socket, a device (as root), and links out of ``folder`` and to a pipe."""
    os.mkfifo(folder / "fifo.ipynb")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(folder / "socket.ipynb"))
    if os.geteuid() == 0:
        os.mknod(folder / "device.ipynb", stat.S_IFCHR | 0o600, os.makedev(1, 3))
    os.symlink(ROOT / "solutions" / f"{BASE}.ipynb", folder / "outside.ipynb")
    os.symlink("/dev/zero", folder / "zero.ipynb")
    os.symlink("fifo.ipynb", folder / "to_fifo.ipynb")
    return sock


#: file -> a phrase of its error, for the files above (the device only as root)
SKIPPED = {"fifo.ipynb": "not a regular file (a named pipe)",
           "socket.ipynb": "not a regular file (a socket)",
           "outside.ipynb": "outside the graded folder",
           "zero.ipynb": "outside the graded folder",
           "to_fifo.ipynb": "a symbolic link to a named pipe",
           **({"device.ipynb": "not a regular file (a character device)"}
              if os.geteuid() == 0 else {})}


def _csv_rows(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def _strict_text(path):
    """The file's text, read as strict UTF-8 (fails on any surrogate or stray byte)."""
    return Path(path).read_bytes().decode("utf-8")


# ================================================================ units: outputs
def test_undecodable_file_name_bytes_show_as_hex_escapes():
    assert outputs.safe_text(os.fsdecode(MUELLER)) == MUELLER_SHOWN


def test_lone_surrogates_show_as_unicode_escapes():
    assert outputs.safe_text("a\ud800b\udfffc") == "a\\ud800b\\udfffc"
    outputs.safe_text("a\ud800b").encode("utf-8")


def test_printable_escapes_terminal_controls_and_bidi_overrides():
    text = outputs.printable("a\x1b[2J\r\u202eb\ud800")
    assert text == "a\\x1b[2J\\r\\u202eb\\ud800"


@pytest.mark.parametrize("cell", ["=1+1", "+1", "-1", "@SUM(A1)", "  =1", "\t=1", "\r=1",
                                  '=HYPERLINK("http://x")'])
def test_csv_cells_a_spreadsheet_would_run_are_neutralised(cell):
    got = outputs.csv_cell(cell)
    assert got.startswith(("'", "\\")) and not got.lstrip().startswith(("=", "+", "-", "@"))


@pytest.mark.parametrize("cell", ["honest.ipynb", "", "not a notebook", 3.5, 0])
def test_ordinary_csv_cells_are_unchanged(cell):
    assert outputs.csv_cell(cell) == cell


def test_csv_neutralises_every_column():
    result = cli.result_for("=name.ipynb", None, error="-error")
    [header, row] = list(csv.reader(outputs.csv_text([result]).splitlines()))
    assert row[header.index("notebook")] == "'=name.ipynb" and row[-1] == "'-error"


def test_write_to_a_full_disk_names_the_file_and_the_reason():
    with pytest.raises(outputs.OutputError, match="/dev/full: No space left on device"):
        outputs.write("/dev/full", "x" * 100_000)


def test_write_into_a_missing_folder_names_the_file(tmp_path):
    with pytest.raises(outputs.OutputError, match="No such file or directory"):
        outputs.write(tmp_path / "missing" / "out.json", "{}")


def test_a_failed_write_keeps_the_previous_file_and_leaves_no_part(tmp_path, monkeypatch):
    out = tmp_path / "grades.json"
    out.write_text("previous")

    def full(*args):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(outputs.OutputError, match="No space left on device"):
        outputs.write(out, "new")
    assert out.read_text() == "previous" and os.listdir(tmp_path) == ["grades.json"]


# ================================================================ units: finding and reading
def test_find_skips_special_files_and_links_out_of_the_folder(tmp_path):
    _write(_notebook(), tmp_path / "honest.ipynb")
    (tmp_path / ".ipynb_checkpoints").mkdir()
    _write(_notebook(), tmp_path / ".ipynb_checkpoints" / "honest-checkpoint.ipynb")
    sock = _special_files(tmp_path)
    try:
        found = {f.path.name: f for f in notebooks.find(tmp_path)}
    finally:
        sock.close()
    assert found["honest.ipynb"].problem is None
    assert "honest-checkpoint.ipynb" not in found
    for name, phrase in SKIPPED.items():
        assert phrase in found[name].problem, found[name]


def test_a_link_inside_the_folder_is_followed(tmp_path):
    _write(_notebook(), tmp_path / "real.ipynb")
    os.symlink("real.ipynb", tmp_path / "link.ipynb")
    [link] = [f for f in notebooks.find(tmp_path) if f.path.name == "link.ipynb"]
    assert link.problem is None
    assert notebooks.read(link.path, link.source).chapter == BASE


def _stack_depth():
    frame, depth = sys._getframe(), 0
    while frame:
        frame, depth = frame.f_back, depth + 1
    return depth


def test_find_walks_a_folder_nested_deeper_than_the_recursion_limit(tmp_path):
    """300 levels under a recursion limit 100 frames above this test's own: a walk that
    recursed once per level (as ``os.walk`` does in Python 3.11) would fail."""
    depth, deepest = 300, tmp_path
    for _ in range(depth):
        deepest = deepest / "d"
        deepest.mkdir()
    _write(_notebook(), deepest / "deep.ipynb")
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(_stack_depth() + 100)
    try:
        [found] = notebooks.find(tmp_path)
    finally:
        sys.setrecursionlimit(limit)
    assert found.path == deepest / "deep.ipynb" and found.problem is None


@pytest.mark.timeout(30)
def test_reading_a_named_pipe_does_not_block(tmp_path):
    os.mkfifo(tmp_path / "x.ipynb")
    with pytest.raises(notebooks.NotGradable, match="named pipe"):
        notebooks.read(tmp_path / "x.ipynb")


def test_metadata_nested_too_deeply_is_not_gradable(tmp_path):
    with pytest.raises(notebooks.NotGradable, match="nested too deeply"):
        notebooks.read(_nested_notebook(tmp_path / "deep.ipynb"))


def test_a_code_cell_with_a_lone_surrogate_is_not_gradable(tmp_path):
    path = tmp_path / "s.ipynb"        # as JSON escapes: "\ud800" is valid JSON
    path.write_text(json.dumps(_notebook(["x = '\ud800'"])))
    with pytest.raises(notebooks.NotGradable, match="lone surrogate"):
        notebooks.read(path)


def test_a_huge_file_is_not_read(tmp_path, monkeypatch):
    monkeypatch.setattr(notebooks, "MAX_BYTES", 1000)
    path = _write(_notebook(["# " + "x" * 2000]), tmp_path / "big.ipynb")
    with pytest.raises(notebooks.NotGradable, match="too large"):
        notebooks.read(path)


# ================================================================ cli.main, grading stood in for
def _stand_in_grading(submission, test_files, workspace, args, number):
    """Grades a notebook by its name: ``enospc`` fails as a full disk would, ``surrogate``
    gets a message with a lone surrogate, anything else full marks."""
    name = os.fsencode(Path(submission.path).name)
    if b"enospc" in name:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(workspace / "jobs" / "0.json"))
    passed = b"surrogate" not in name
    message = "passed (1 test)" if passed else "0 of 1 test passed; t: raised ValueError: \ud800"
    return cli.result_for(submission.path, submission.chapter, [
        {"id": "2.1", "points": 2.0 if passed else 0.0, "max_points": 2.0, "passed": passed,
         "message": message}])


@pytest.fixture
def stand_in(tmp_path, monkeypatch):
    """A class folder (the working folder, graded as ``.``) and a function that runs
    ``cli.main`` on it: ``(exit code, stdout, stderr)``."""
    folder = tmp_path / "class"
    folder.mkdir()
    monkeypatch.chdir(folder)
    monkeypatch.setattr(grading, "grade_one", _stand_in_grading)

    def run(*options):
        return cli.main([".", "--no-sandbox", "--jobs", "2", *map(str, options)])
    run.folder = folder
    return run


def _class(folder):
    """Honest notebooks (one of a non-UTF-8 name, some of formula names) and the attacks."""
    _write(_notebook(), folder / "honest.ipynb")
    _write(_notebook(), os.fsencode(folder) + b"/" + MUELLER)
    for name in FORMULA_NAMES:
        _write(_notebook(), folder / name)
    _write(_notebook(), folder / "enospc.ipynb")
    _write(_notebook(), folder / "surrogate.ipynb")
    _nested_notebook(folder / "nested.ipynb")
    return _special_files(folder)


@pytest.fixture
def class_run(stand_in, tmp_path, capsys):
    sock = _class(stand_in.folder)
    try:
        code = stand_in("--json", tmp_path / "o.json", "--csv", tmp_path / "o.csv")
    finally:
        sock.close()
    out, err = capsys.readouterr()
    results = json.loads(_strict_text(tmp_path / "o.json"))
    return {"code": code, "stdout": out, "stderr": err, "tmp": tmp_path,
            "by_name": {r["notebook"]: r for r in results}}


def test_each_failure_costs_only_its_notebook(class_run):
    by_name = class_run["by_name"]
    for name in ["honest.ipynb", MUELLER_SHOWN, *FORMULA_NAMES]:
        assert by_name[name]["score"] == 2.0 and "error" not in by_name[name], name
    assert "No space left on device" in by_name["enospc.ipynb"]["error"]
    assert "nested too deeply" in by_name["nested.ipynb"]["error"]
    assert by_name["surrogate.ipynb"]["exercises"][0]["message"].endswith("ValueError: \\ud800")


def test_special_files_are_skipped_with_a_message(class_run):
    for name, phrase in SKIPPED.items():
        assert phrase in class_run["by_name"][name]["error"]
        assert f"grade: {name}: " in class_run["stderr"]


def test_exit_code_says_a_notebook_was_not_graded(class_run):
    assert class_run["code"] == cli.EXIT_NOT_GRADED


def test_outputs_are_strict_utf8_with_escaped_names(class_run):
    csv_text = _strict_text(class_run["tmp"] / "o.csv")
    for text in (csv_text, class_run["stdout"], class_run["stderr"]):
        text.encode("utf-8")                            # no surrogate left
    assert MUELLER_SHOWN in csv_text and f"{MUELLER_SHOWN} ({BASE}): 2 / 2" in class_run["stdout"]
    assert "raised ValueError: \\ud800" in class_run["stdout"]


def test_csv_file_names_a_spreadsheet_would_run_are_neutralised(class_run):
    header, *rows = _csv_rows(class_run["tmp"] / "o.csv")
    names = [row[header.index("notebook")] for row in rows]
    for name in FORMULA_NAMES:
        assert "'" + name in names
    assert not [n for n in names if n.startswith(("=", "+", "-", "@"))]


def test_all_graded_exits_0(stand_in, tmp_path):
    _write(_notebook(), stand_in.folder / "honest.ipynb")
    assert stand_in("--json", tmp_path / "o.json") == cli.EXIT_GRADED


def test_a_notebook_whose_report_cannot_be_rendered_gets_an_error(stand_in, tmp_path,
                                                                  monkeypatch):
    _write(_notebook(), stand_in.folder / "honest.ipynb")
    _write(_notebook(), stand_in.folder / "odd.ipynb")
    real_table = outputs.table

    def table(result):
        if result["notebook"] == "odd.ipynb" and not result.get("error"):
            raise KeyError("a field the table needs")
        return real_table(result)
    monkeypatch.setattr(outputs, "table", table)
    code = stand_in("--json", tmp_path / "o.json", "--csv", tmp_path / "o.csv")
    by_name = {r["notebook"]: r for r in json.loads((tmp_path / "o.json").read_text())}
    assert code == cli.EXIT_NOT_GRADED and by_name["honest.ipynb"]["score"] == 2.0
    assert "could not report this notebook (KeyError" in by_name["odd.ipynb"]["error"]
    assert len(_csv_rows(tmp_path / "o.csv")) == 3


def test_a_full_temporary_folder_before_grading_still_writes_every_result(
        stand_in, tmp_path, monkeypatch):
    def full(workspace, *options):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(grading, "_prepare", full)
    _write(_notebook(), stand_in.folder / "a.ipynb")
    _write(_notebook(), stand_in.folder / "b.ipynb")
    code = stand_in("--json", tmp_path / "o.json")
    results = json.loads((tmp_path / "o.json").read_text())
    assert code == cli.EXIT_NOT_GRADED and len(results) == 2
    assert all("could not prepare its temporary folder" in r["error"] for r in results)
    assert all("No space left on device" in r["error"] for r in results)


def test_a_full_disk_for_the_json_still_writes_the_csv(stand_in, tmp_path, capsys):
    _write(_notebook(), stand_in.folder / "honest.ipynb")
    code = stand_in("--json", "/dev/full", "--csv", tmp_path / "o.csv")
    err = capsys.readouterr().err
    assert code == cli.EXIT_OUTPUT
    assert "could not write the JSON file /dev/full: No space left on device" in err
    header, row = _csv_rows(tmp_path / "o.csv")[:2]
    row = dict(zip(header, row))
    assert (row["notebook"], row["score"], row["max_score"]) == ("honest.ipynb", "2.0", "2.0")


def test_an_unwritable_csv_path_still_writes_the_json(stand_in, tmp_path, capsys):
    _write(_notebook(), stand_in.folder / "honest.ipynb")
    code = stand_in("--json", tmp_path / "o.json", "--csv", tmp_path / "missing" / "o.csv")
    assert code == cli.EXIT_OUTPUT
    assert "could not write the CSV file" in capsys.readouterr().err
    assert json.loads((tmp_path / "o.json").read_text())[0]["score"] == 2.0


def test_usage_errors_exit_2(tmp_path, capsys):
    assert cli.main([str(tmp_path / "missing"), "--no-sandbox"]) == cli.EXIT_USAGE
    assert cli.main([str(tmp_path), "--no-sandbox"]) == cli.EXIT_USAGE     # no notebook
    err = capsys.readouterr().err
    assert "no such file or folder" in err and "no notebook" in err


def test_help_documents_the_exit_codes(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    text = capsys.readouterr().out
    for line in ["0  every notebook was graded", "1  some notebook could not be graded",
                 "2  usage error", "3  the grader's copies were modified",
                 "4  an output (--json or --csv) could not be written"]:
        assert line in text


# ================================================================ one grading process, no kernel
#: a pytest plugin (loaded through PYTEST_PLUGINS) under which starting a kernel fails as on a
#: full disk: in the grading process, where no notebook code runs
FULL_DISK_AT_KERNEL_START = """
import errno, os
from grader import kernel

def start(self):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

kernel.Notebook.start = start
"""


def test_a_grader_failure_in_the_grading_process_is_not_a_grade(tmp_path, monkeypatch):
    """A kernel that cannot start for the grader's reasons leaves the notebook ungraded
    (an error, exit code 1), not graded 0 with every test failed."""
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    grading._prepare(workspace)
    (workspace / "lib" / "full_disk_at_kernel_start.py").write_text(FULL_DISK_AT_KERNEL_START)
    monkeypatch.setenv("PYTEST_PLUGINS", "full_disk_at_kernel_start")
    path = _write(_notebook(), tmp_path / "honest.ipynb")
    args = cli.parse_args([str(path), "--no-sandbox"])
    result = grading.grade_one(notebooks.read(path), grading.chapters()[BASE], workspace, args, 0)
    assert result["exercises"] == [] and "grade it again" in result["error"]
    assert "not graded: the grader failed on this notebook (OSError: [Errno 28]" in result["error"]
    assert os.listdir(workspace / "jobs") == os.listdir(workspace / "reports") == []


# ================================================================ an interrupted run
def _processes_mentioning(text):
    """Command lines of running processes that contain ``text``."""
    found = []
    for d in Path("/proc").iterdir():
        try:
            if d.name.isdigit() and text in (d / "cmdline").read_bytes().decode(errors="replace"):
                found.append(d.name)
        except OSError:
            pass
    return found


def test_an_interrupted_run_writes_its_results_and_leaves_nothing_running(tmp_path):
    """SIGTERM while two notebooks are being graded (each sleeps in a cell): exit code 130,
    both marked not graded in the JSON, no grading process and no temporary file left."""
    sub, gradetmp = tmp_path / "class", tmp_path / "gradetmp"
    sub.mkdir()
    gradetmp.mkdir()
    for name in ("a", "b"):
        _write(_notebook(["import time\ntime.sleep(300)"]), sub / f"{name}.ipynb")
    proc = subprocess.Popen([sys.executable, "-m", "grader", str(sub), "--json",
                             str(tmp_path / "o.json"), "--jobs", "2", "--cell-timeout", "250"],
                            env=dict(os.environ, TMPDIR=str(gradetmp)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(240):                # both notebooks handed to their grading process
            if len(list(gradetmp.glob("minigrad-grade/*/jobs/*.json"))) == 2:
                break
            time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    results = json.loads((tmp_path / "o.json").read_text())
    assert proc.returncode == cli.EXIT_INTERRUPTED, err
    assert [r["error"] for r in results] == ["not graded: the run was interrupted"] * 2
    assert [p.name for p in gradetmp.rglob("*")] == ["minigrad-grade"]
    assert _processes_mentioning(str(gradetmp)) == []


# ================================================================ one real grading run
#: size of the tmpfs under the grader's temporary folder, and of the notebook that cannot fit
TMPFS_BYTES, TOO_BIG = 8 << 20, 12 << 20


def _tmpfs_possible(folder):
    """True when this process can mount a tmpfs in a mount namespace of its own (root)."""
    if os.geteuid() != 0:
        return False
    probe = subprocess.run(["unshare", "-m", "sh", "-c", f"mount -t tmpfs -o size=1M tmpfs "
                            f"'{folder}'"], capture_output=True)
    return probe.returncode == 0


def _insert_after(nb, name, source):
    k = next(i for i, c in enumerate(nb.cells)
             if c.cell_type == "code" and f"def {name}(" in c.source)
    nb.cells.insert(k + 1, nbformat.v4.new_code_cell(source))
    return nb


@pytest.fixture(scope="module")
def real_run(tmp_path_factory):
    """Grade the class folder for real (sandboxed, two at a time) from inside it, so that
    file names reach the CSV as they are; where a tmpfs can be mounted, the grader's
    temporary folder is an 8 MB one that a 12 MB notebook cannot fit into."""
    tmp = tmp_path_factory.mktemp("reporting")
    sub, gradetmp = tmp / "class", tmp / "gradetmp"
    sub.mkdir()
    gradetmp.mkdir()
    solution = nbformat.read(str(ROOT / "solutions" / f"{BASE}.ipynb"), as_version=4)
    _write(solution, os.fsencode(sub) + b"/" + MUELLER)     # the honest neighbour
    _write(_insert_after(nbformat.from_dict(solution), "outer_gram",
                         "def outer_gram(U, V):\n    raise ValueError('\\ud800')\n"),
           sub / "surrogate.ipynb")
    (sub / FORMULA_NAMES[0]).write_text("=1+1, not a notebook")
    _write(_notebook(chapter="@unknown"), sub / FORMULA_NAMES[1])
    _nested_notebook(sub / "nested.ipynb")
    sock = _special_files(sub)
    command = [sys.executable, "-m", "grader", ".", "--json", tmp / "o.json",
               "--csv", tmp / "o.csv", "--jobs", "2"]
    full_disk = _tmpfs_possible(gradetmp)
    if full_disk:
        big = nbformat.from_dict(solution)
        big.cells.insert(1, nbformat.v4.new_code_cell("#" + "x" * TOO_BIG))
        _write(big, sub / "enospc.ipynb")
        command = ["unshare", "-m", "sh", "-c",
                   'mount -t tmpfs -o size="$1" tmpfs "$2" && shift 2 && exec "$@"', "sh",
                   TMPFS_BYTES, gradetmp, *command]
    env = dict(os.environ, TMPDIR=str(gradetmp))
    try:
        run = subprocess.run([str(c) for c in command], cwd=sub, env=env, capture_output=True,
                             timeout=1200)
    finally:
        sock.close()
    results = json.loads(_strict_text(tmp / "o.json"))
    return {"code": run.returncode, "stdout": run.stdout.decode("utf-8"),
            "stderr": run.stderr.decode("utf-8"), "tmp": tmp, "full_disk": full_disk,
            "by_name": {r["notebook"]: r for r in results}}


def _full_marks(result):
    assert result["max_score"] > 0 and result["score"] == result["max_score"], result


def test_real_run_ends_with_code_1_and_no_traceback(real_run):
    assert real_run["code"] == cli.EXIT_NOT_GRADED, real_run["stderr"]
    assert "Traceback" not in real_run["stdout"] + real_run["stderr"]


def test_real_run_honest_neighbour_of_a_non_utf8_name_keeps_full_marks(real_run):
    _full_marks(real_run["by_name"][MUELLER_SHOWN])
    assert f"{MUELLER_SHOWN} ({BASE}): 10 / 10" in real_run["stdout"]


def test_real_run_lone_surrogate_costs_only_its_exercise(real_run):
    exercises = {e["id"]: e for e in real_run["by_name"]["surrogate.ipynb"]["exercises"]}
    assert [ex for ex, e in exercises.items() if not e["passed"]] == ["2.2"]
    assert exercises["2.2"]["points"] == 0
    assert "raised ValueError: \\ud800" in exercises["2.2"]["message"]
    assert "raised ValueError: \\ud800" in real_run["stdout"]


def test_real_run_skips_files_that_are_not_notebooks(real_run):
    by_name = real_run["by_name"]
    assert "nested too deeply" in by_name["nested.ipynb"]["error"]
    for name, phrase in SKIPPED.items():
        assert phrase in by_name[name]["error"] and by_name[name]["score"] is None
        assert by_name[name]["status"] == "error"


def test_real_run_csv_is_strict_utf8_and_runs_no_formula(real_run):
    rows = _csv_rows(real_run["tmp"] / "o.csv")
    assert len(rows) == len(real_run["by_name"]) + 1
    names = {row[rows[0].index("notebook")] for row in rows[1:]}
    assert {"'" + FORMULA_NAMES[0], "'" + FORMULA_NAMES[1], MUELLER_SHOWN} <= names
    assert not [cell for row in rows for cell in row if cell.startswith(("=", "+", "-", "@"))]


def test_real_run_full_disk_under_the_temporary_folder_costs_only_that_notebook(real_run):
    if not real_run["full_disk"]:
        pytest.skip("no tmpfs can be mounted here (needs root and unshare)")
    error = real_run["by_name"]["enospc.ipynb"]["error"]
    assert "No space left on device" in error and "grade it again" in error
    _full_marks(real_run["by_name"][MUELLER_SHOWN])


def test_an_exercise_message_counts_its_tests_in_the_right_number():
    from grader.reports import score

    def report(*outcomes):
        return {"tests": [{"test": f"t{i}", "exercise": "2.1", "outcome": outcome, "points": 2.0,
                           "reason": None if outcome == "passed" else "wrong values"}
                          for i, outcome in enumerate(outcomes)]}
    assert score(report("passed"))[0]["message"] == "passed (1 test)"
    assert score(report("failed"))[0]["message"] == "0 of 1 test passed; t0: wrong values"
    assert score(report("passed", "failed"))[0]["message"] == "1 of 2 tests passed; t1: wrong values"
