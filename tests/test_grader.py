"""End-to-end tests of the grader (``python -m grader``) over real, broken and hostile notebooks.

One folder of submissions is built in a temporary directory and graded in one call (two
notebooks at a time) while a notebook that spins is graded with short time limits; then a
solution is graded alone (after a notebook planted startup files), one without the sandbox,
and one through ``make grade`` with a space in its path. The submissions:

- every solution notebook that has graded tests (must earn full marks) and every untouched
  exercise notebook (must earn zero): together they replace running ``tests/grading``
  directly, which plain ``pytest tests`` therefore does not collect;
- made from the linear algebra chapter (the fastest): one exercise solved in the untouched
  notebook (only it passes); one wrong answer; one exercise that raises (with control
  characters in its message) and one that is missing; one that kills its kernel; one that
  cheats in the kernel (patches numpy and the check function, writes ``conftest.py`` files);
- hostile notebooks, each contained: forged reports, planted modules, deleted neighbours,
  startup files, copied solutions, the network, writes outside the sandbox, ``ctypes``
  processes, 8 GB of memory, 1 GB of output, a spin that ignores SIGTERM and SIGINT;
- files that are not gradable: plain text, JSON that is not a notebook, a notebook of an
  unknown chapter, and a copy in ``.ipynb_checkpoints`` that must be skipped.

Each hostile notebook is made from a notebook whose grade is known (solved or untouched):
containment means that grade, and every honest neighbour's, is what it is without the
attack; the ones that break one exercise lose that exercise only.
"""
import copy
import csv
import hashlib
import json
import os
import resource
import socket
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import nbformat
import numpy as np
import pytest

from grader import cli, codec, outputs, sandbox
from grader.settings import Limits

ROOT = Path(__file__).resolve().parents[1]

#: every chapter that has graded tests, found as the grader finds them
CHAPTERS = sorted(c for c in cli.chapters() if (ROOT / "solutions" / f"{c}.ipynb").is_file())
BASE = "02_linear_algebra"
#: short limits for the spinning notebook, in seconds
HANG_CALL_TIMEOUT, HANG_CELL_TIMEOUT = 4, 10
#: files the cheating notebook tries to write in the repository
CHEAT_TARGETS = [ROOT / "tests" / "grading" / "conftest.py", ROOT / "conftest.py",
                 ROOT / "minigrad" / "conftest.py"]
#: a marker unique to this run, in the names of files and processes hostile notebooks make
MARK = uuid.uuid4().hex[:12]
#: a sleep that the ctypes notebook starts detached; its argument is unique to this run
SLEEP = f"4242.{int(MARK[:6], 16)}"

CHEAT = r"""
import glob, os, pathlib, subprocess, tempfile
import numpy as np
import minigrad

minigrad.check_exercise = lambda *args, **kwargs: True
np.allclose = lambda *args, **kwargs: True
np.array_equal = lambda *args, **kwargs: True
np.testing.assert_allclose = lambda *args, **kwargs: None
np.testing.assert_array_almost_equal = lambda *args, **kwargs: None

EVIL = '''
import pytest

@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    outcome.get_result().outcome = "passed"
'''
repo = pathlib.Path(minigrad.__file__).resolve().parents[1]
targets = [repo / "tests" / "grading" / "conftest.py", repo / "conftest.py",
           repo / "minigrad" / "conftest.py", pathlib.Path("conftest.py")]
targets += [pathlib.Path(d) / "conftest.py"
            for d in glob.glob(os.path.join(tempfile.gettempdir(), "minigrad-grade", "*", "grading"))]
for target in targets:
    try:
        target.write_text(EVIL)
        print("wrote", target)
    except OSError as exc:
        print("refused:", type(exc).__name__)
try:
    subprocess.run(["sh", "-c", f"echo > {repo}/conftest.py"])
except OSError as exc:
    print("refused:", type(exc).__name__)
"""

#: a C-level write (no Python audit event) into the kernel's parent's working folder
BYPASS = r"""
import ctypes, os
folder = os.readlink(f"/proc/{os.getppid()}/cwd")
libc = ctypes.CDLL(None)
fd = libc.open(os.path.join(folder, "grading", "planted.py").encode(), os.O_WRONLY | os.O_CREAT, 0o644)
libc.write(fd, b"x = 1\n", 6)
libc.close(fd)
"""

#: a detached process that, for a minute, rewrites every grading report it can find
FORGE = r"""
import glob, json, os, subprocess, sys
FORGER = '''
import glob, json, os, time
full = {"notebook": "02_linear_algebra", "tests": [{"test": "t", "exercise": e, "points": 99,
        "outcome": "passed", "reason": None} for e in ("2.1", "2.2", "2.3", "2.4")]}
end = time.time() + 60
while time.time() < end:
    for pattern in ("/tmp/minigrad-grade/*/reports/*.json", "/tmp/*/reports/*.json",
                    "/tmp/**/*.json", os.path.expanduser("~/**/*.json")):
        for path in glob.glob(pattern, recursive=True):
            try:
                open(path, "w").write(json.dumps(full))
            except OSError:
                pass
    time.sleep(0.2)
'''
for pattern in ("/tmp/minigrad-grade/*/reports", "/tmp/*/reports"):
    for folder in glob.glob(pattern):
        for k in range(40):
            try:
                open(os.path.join(folder, f"{k}.json"), "w").write("{not json")
            except OSError:
                pass
try:
    subprocess.Popen([sys.executable, "-c", FORGER], start_new_session=True,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
except OSError as exc:
    print("refused:", exc)
"""

#: modules that shadow autograd and numpy, planted wherever another kernel might look
PLANT = r"""
import glob, os, tempfile
BAD = "raise ImportError('planted by a classmate')\n"
folders = {os.getcwd(), tempfile.gettempdir(), os.path.expanduser("~")}
for pattern in ("/tmp/*", "/tmp/*/*", "/tmp/minigrad-*", "/tmp/minigrad-grade/*/*"):
    folders.update(p for p in glob.glob(pattern) if os.path.isdir(p))
for folder in folders:
    for name in ("autograd.py", "numpy.py", "minigrad.py", "sitecustomize.py"):
        try:
            open(os.path.join(folder, name), "w").write(BAD)
        except OSError:
            pass
"""

#: deletes what sits beside (and above) its working folder and in the temp folder
DELETE = r"""
import glob, os, shutil, tempfile
here = os.getcwd()
victims = set(glob.glob(os.path.join(os.path.dirname(here), "*")))
victims |= set(glob.glob(os.path.join(tempfile.gettempdir(), "*")))
victims |= set(glob.glob("/tmp/minigrad-grade/*")) | set(glob.glob("/tmp/minigrad-*"))
for victim in sorted(victims):
    if os.path.realpath(victim) == os.path.realpath(here):
        continue
    shutil.rmtree(victim, ignore_errors=True)
    try:
        os.remove(victim)
    except OSError:
        pass
"""

#: IPython startup files that would break every later kernel of the same home
STARTUP = r"""
import os
BAD = "import numpy\nnumpy.allclose = None\nraise SystemExit('startup file')\n"
for home in {os.path.expanduser("~"), "/root", os.environ.get("HOME", "")}:
    for sub in (".ipython/profile_default/startup", ".ipython/profile_default"):
        folder = os.path.join(home, sub)
        try:
            os.makedirs(folder, exist_ok=True)
            open(os.path.join(folder, "00-evil.py" if "startup" in sub else "ipython_config.py"),
                 "w").write(BAD)
        except OSError:
            pass
"""

#: finds the repository from the interpreter and runs the solution notebook's code
COPY = r"""
import glob, json, os, sys
import minigrad
candidates = {os.path.dirname(sys.prefix), os.path.dirname(os.path.dirname(minigrad.__file__)),
              os.path.dirname(os.path.dirname(os.path.realpath(sys.executable)))}
for root in candidates:
    for path in glob.glob(os.path.join(root, "solutions", "02_*.ipynb")):
        for cell in json.load(open(path))["cells"]:
            if cell["cell_type"] == "code":
                try:
                    exec("".join(cell["source"]), globals())
                except Exception:
                    pass
"""

#: connects to a server of the test on the host's 127.0.0.1 (PORT is filled in)
NETWORK = r"""
import socket
for host in ("127.0.0.1", "localhost", "::1"):
    try:
        with socket.create_connection((host, PORT), timeout=2) as s:
            s.sendall(b"escaped")
    except OSError as exc:
        print("no network:", exc)
"""

#: writes files outside its working folder (MARK is filled in)
WRITES = r"""
import os, sys, tempfile
targets = [os.path.join(tempfile.gettempdir(), "MARK"), os.path.expanduser("~/MARK"),
           "/tmp/MARK", "/root/MARK", os.path.join(os.path.dirname(sys.prefix), "MARK"),
           os.path.join(sys.prefix, "MARK")]
for target in targets:
    try:
        open(target, "w").write("escaped")
    except OSError as exc:
        print("refused:", exc)
"""

#: processes through libc, past Python's checks: a detached sleep and a forked one (SLEEP)
CTYPES = r"""
import ctypes, os
libc = ctypes.CDLL(None)
libc.system(b"setsid sleep SLEEP >/dev/null 2>&1 &")
pid = libc.fork()
if pid == 0:
    libc.setsid()
    os.execv("/bin/sleep", ["sleep", "SLEEP"])
"""


def _read(path):
    return nbformat.read(str(path), as_version=4)


def _insert_after(nb, name, source):
    """A copy of ``nb`` with a code cell ``source`` right after the cell defining ``name``."""
    nb = copy.deepcopy(nb)
    k = next(i for i, c in enumerate(nb.cells)
             if c.cell_type == "code" and f"def {name}(" in c.source)
    nb.cells.insert(k + 1, nbformat.v4.new_code_cell(source))
    return nb


def _with_cell(nb, source, at=2):
    """A copy of ``nb`` with a code cell ``source`` inserted at position ``at``."""
    nb = copy.deepcopy(nb)
    nb.cells.insert(at, nbformat.v4.new_code_cell(source))
    return nb


def _write(nb, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))
    return path


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


def _run(*args, env=None, cmd=None, tmpdir=None):
    """Start ``python -m grader *args`` (or ``cmd``); its temporary files in ``tmpdir``."""
    env = dict(env or os.environ, **({"TMPDIR": str(tmpdir)} if tmpdir else {}))
    return subprocess.Popen(cmd or [sys.executable, "-m", "grader", *map(str, args)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _finish(proc, timeout=1500):
    stdout, stderr = proc.communicate(timeout=timeout)
    return {"code": proc.returncode, "stdout": stdout, "stderr": stderr}


def _processes_with(text):
    """Command lines of the running processes that contain ``text``."""
    found = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                cmdline = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if text in cmdline:
                found.append(cmdline)
    return found


class _Server:
    """A TCP server on the host's 127.0.0.1 that counts the connections it accepts."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.5)
        self.port, self.accepted, self.stop = self.sock.getsockname()[1], 0, False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            conn.close()

    def close(self):
        self.stop = True
        self.thread.join()
        self.sock.close()


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """Build the submissions, grade them, and return what the grader wrote."""
    tmp = tmp_path_factory.mktemp("grader")
    sub = tmp / "submissions"
    solution = _read(ROOT / "solutions" / f"{BASE}.ipynb")
    exercise = _read(ROOT / "exercises" / f"{BASE}.ipynb")
    for chapter in CHAPTERS:
        _write(_read(ROOT / "solutions" / f"{chapter}.ipynb"), sub / "solutions" / f"{chapter}.ipynb")
        _write(_read(ROOT / "exercises" / f"{chapter}.ipynb"), sub / "exercises" / f"{chapter}.ipynb")

    # one wrong answer; no minigrad metadata, so the file name tells the chapter
    wrong = _insert_after(solution, "frobenius", "_right_frobenius = frobenius\n\n"
                          "def frobenius(A, B):\n    return _right_frobenius(A, B) + 1.0\n")
    del wrong.metadata["minigrad"]
    _write(wrong, sub / "wrong" / f"{BASE}.ipynb")
    # a learner who solved exercise 2.1 only: its cell taken from the solution
    solved_one = copy.deepcopy(exercise)
    k = next(i for i, c in enumerate(exercise.cells) if c.source.startswith("# Exercise 2.1:"))
    solved_one.cells[k] = copy.deepcopy(next(c for c in solution.cells
                                             if c.source.startswith("# Exercise 2.1:")))
    _write(solved_one, sub / "solved_one.ipynb")
    # one exercise raises (with terminal escapes in its message), another is missing
    broken = _insert_after(solution, "outer_gram", "def outer_gram(U, V):\n"
                           "    raise TypeError('not like this\\x1b[2J\\r')\n")
    broken.cells = [c for c in broken.cells if "def bilinear_form(" not in c.source]
    _write(broken, sub / "broken.ipynb")
    # one exercise kills the kernel (also while the notebook runs: its check cell calls it)
    crash = _insert_after(solution, "kron_matvec", "def kron_matvec(A, B, x):\n"
                          "    import os\n    os._exit(1)\n")
    _write(crash, sub / "crash.ipynb")
    # the unsolved notebook with every trick in the kernel at once
    cheat = _with_cell(exercise, CHEAT)
    cheat.cells.append(nbformat.v4.new_code_cell(CHEAT))
    _write(cheat, sub / "cheat.ipynb")
    _write(cheat, sub / ".ipynb_checkpoints" / "cheat-checkpoint.ipynb")    # skipped

    # hostile notebooks: on an unsolved notebook (must stay at zero) ...
    _write(_with_cell(exercise, FORGE), sub / "hostile" / "forge.ipynb")
    _write(_with_cell(exercise, COPY), sub / "hostile" / "copy.ipynb")
    # ... on a solved one (must keep full marks, and leave the neighbours theirs) ...
    server = _Server()
    for name, source in [("plant", PLANT), ("delete", DELETE), ("startup", STARTUP),
                         ("bypass", BYPASS), ("ctypes", CTYPES.replace("SLEEP", SLEEP)),
                         ("network", NETWORK.replace("PORT", str(server.port))),
                         ("writes", WRITES.replace("MARK", MARK))]:
        hostile = _with_cell(solution, source)
        hostile.cells.append(nbformat.v4.new_code_cell(source))     # also after the others
        _write(hostile, sub / "hostile" / f"{name}.ipynb")
    # ... or breaking one exercise, which alone loses its points
    memory = _insert_after(solution, "frobenius", "_right_frobenius = frobenius\n\n"
                           "def frobenius(A, B):\n    import numpy as np\n"
                           "    hog = np.ones(1 << 30)\n    return _right_frobenius(A, B)\n")
    _write(memory, sub / "hostile" / "memory.ipynb")
    flood = _insert_after(solution, "outer_gram", "_right_outer_gram = outer_gram\n\n"
                          "def outer_gram(U, V):\n    chunk = 'x' * (1 << 20)\n"
                          "    for _ in range(1024):\n        print(chunk)\n"
                          "    return _right_outer_gram(U, V)\n")
    _write(flood, sub / "hostile" / "flood.ipynb")

    # not gradable
    (sub / "notes.ipynb").write_text("my notes, not a notebook\n")
    (sub / "data.ipynb").write_text(json.dumps({"cells": "no", "values": [1, 2]}))
    unknown = copy.deepcopy(solution)
    unknown.metadata["minigrad"] = {"notebook": "99_unknown_chapter"}
    _write(unknown, sub / "unknown.ipynb")
    # one exercise spins and ignores SIGTERM and SIGINT: graded alone, with short limits
    spin = _insert_after(solution, "outer_gram", "def outer_gram(U, V):\n"
                         "    import signal\n"
                         "    signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                         "    signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
                         "    while True:\n        pass\n")
    spin_path = _write(spin, tmp / "spin.ipynb")

    # this module's gradings keep their folders (and their kernels' PYTHONPATH) in here
    gradetmp = tmp / "t"
    gradetmp.mkdir()
    before = {p: _digest(p) for p in CHEAT_TARGETS}
    children_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    runs = {"folder": _run(sub, "--json", tmp / "all.json", "--csv", tmp / "all.csv", "--jobs", 2,
                           tmpdir=gradetmp),
            "spin": _run(spin_path, "--json", tmp / "spin.json", "--call-timeout",
                         HANG_CALL_TIMEOUT, "--cell-timeout", HANG_CELL_TIMEOUT, tmpdir=gradetmp)}
    out = {name: _finish(proc) for name, proc in runs.items()}
    server.close()
    out["peak_rss_kb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # after the startup files: a separate grading, one without the sandbox, one by make
    spaced = _write(solution, tmp / "with space" / f"{BASE}.ipynb")
    runs = {"later": _run(ROOT / "solutions" / f"{BASE}.ipynb", "--json", tmp / "later.json",
                          tmpdir=gradetmp),
            "nosandbox": _run(ROOT / "solutions" / f"{BASE}.ipynb", "--no-sandbox",
                              "--json", tmp / "nosandbox.json", tmpdir=gradetmp),
            "make": _run(cmd=["make", "-s", "grade", f"NB={spaced}", f"JSON={tmp / 'make.json'}",
                              "JOBS=1"], tmpdir=gradetmp)}
    out.update({name: _finish(proc) for name, proc in runs.items()})
    after = {p: _digest(p) for p in CHEAT_TARGETS}
    for p, digest in before.items():              # never leave a planted file behind
        if after[p] != digest and digest is None:
            p.unlink()
    results = json.loads((tmp / "all.json").read_text())
    return {"sub": sub, "tmp": tmp, "runs": out, "before": before, "after": after,
            "by_name": {str(Path(r["notebook"]).relative_to(sub)): r for r in results},
            "results": results, "spin": json.loads((tmp / "spin.json").read_text()),
            "later": json.loads((tmp / "later.json").read_text()),
            "nosandbox": json.loads((tmp / "nosandbox.json").read_text()),
            "make": json.loads((tmp / "make.json").read_text()),
            "server": server, "children_rss_before": children_rss, "gradetmp": gradetmp}


def _exercises(result):
    return {e["id"]: e for e in result["exercises"]}


def _full_marks(result):
    assert result["max_score"] > 0 and result["score"] == result["max_score"], result
    assert all(e["passed"] for e in result["exercises"]), result


def _only_loses(result, lost, solution):
    """Every exercise but ``lost`` earns its full points, as in ``solution``."""
    got, full = _exercises(result), _exercises(solution)
    assert set(got) == set(full)
    for ex, e in got.items():
        if ex == lost:
            assert not e["passed"] and e["points"] < e["max_points"], e
        else:
            assert e["passed"] and e["points"] == full[ex]["max_points"], e


# ---------------------------------------------------------------- the real notebooks
def test_folder_run_succeeds(graded):
    run = graded["runs"]["folder"]
    # exit code 1: the folder holds files that cannot be graded (notes.ipynb, ...)
    assert run["code"] == cli.EXIT_NOT_GRADED, run["stderr"]
    assert "Traceback" not in run["stderr"] + run["stdout"]


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_solutions_earn_full_marks(graded, chapter):
    result = graded["by_name"][f"solutions/{chapter}.ipynb"]
    assert result["chapter"] == chapter
    _full_marks(result)


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_untouched_exercises_earn_zero(graded, chapter):
    result = graded["by_name"][f"exercises/{chapter}.ipynb"]
    solved = graded["by_name"][f"solutions/{chapter}.ipynb"]
    assert result["score"] == 0 and result["max_score"] == solved["max_score"]
    for e in result["exercises"]:
        assert e["points"] == 0 and not e["passed"]
        assert "not implemented yet" in e["message"], e


# ---------------------------------------------------------------- broken submissions
def test_wrong_answer_costs_only_its_exercise(graded):
    result = graded["by_name"][f"wrong/{BASE}.ipynb"]
    assert result["chapter"] == BASE                  # from the file name: no metadata
    _only_loses(result, "2.1", graded["by_name"][f"solutions/{BASE}.ipynb"])
    e = _exercises(result)["2.1"]
    assert "is not the expected" in e["message"] and e["points"] < e["max_points"]


def test_solving_one_exercise_passes_that_one_only(graded):
    result = graded["by_name"]["solved_one.ipynb"]
    for ex, e in _exercises(result).items():
        if ex == "2.1":
            assert e["passed"] and e["points"] == e["max_points"], e
        else:
            assert not e["passed"] and e["points"] == 0, e


def test_raising_and_missing_exercises_cost_only_their_points(graded):
    result = graded["by_name"]["broken.ipynb"]
    full = _exercises(graded["by_name"][f"solutions/{BASE}.ipynb"])
    got = _exercises(result)
    assert "raised TypeError: not like this" in got["2.2"]["message"]
    assert "bilinear_form" in got["2.4"]["message"] and "NameError" in got["2.4"]["message"]
    for ex in ("2.2", "2.4"):
        assert got[ex]["points"] == 0 and not got[ex]["passed"]
    for ex in ("2.1", "2.3"):
        assert got[ex]["passed"] and got[ex]["points"] == full[ex]["max_points"]


def test_control_characters_are_escaped_in_the_table(graded):
    stdout = graded["runs"]["folder"]["stdout"]
    assert "\x1b" not in stdout and "\r" not in stdout
    assert "not like this\\x1b[2J\\r" in stdout


def test_crashing_exercise_costs_only_its_points(graded):
    result = graded["by_name"]["crash.ipynb"]
    _only_loses(result, "2.3", graded["by_name"][f"solutions/{BASE}.ipynb"])
    e = _exercises(result)["2.3"]
    assert e["points"] == 0 and "kernel died" in e["message"]


def test_cheating_in_the_kernel_gains_nothing_and_changes_no_file(graded):
    result = graded["by_name"]["cheat.ipynb"]
    assert result["score"] == 0 and result["max_score"] > 0
    assert all("not implemented yet" in e["message"] for e in result["exercises"])
    assert graded["after"] == graded["before"], "the cheating notebook wrote into the repository"


# ---------------------------------------------------------------- hostile submissions
def test_forged_reports_gain_nothing(graded):
    result = graded["by_name"]["hostile/forge.ipynb"]
    assert result["score"] == 0 and "error" not in result, result
    for chapter in CHAPTERS:        # nobody else's report was rewritten either
        assert graded["by_name"][f"exercises/{chapter}.ipynb"]["score"] == 0
        _full_marks(graded["by_name"][f"solutions/{chapter}.ipynb"])


def test_copying_the_solutions_gains_nothing(graded):
    result = graded["by_name"]["hostile/copy.ipynb"]
    assert result["score"] == 0 and "error" not in result, result


@pytest.mark.parametrize("name", ["plant", "delete", "startup", "bypass", "network", "writes",
                                  "ctypes"])
def test_hostile_solution_keeps_its_grade_and_neighbours_theirs(graded, name):
    """Planted modules, deleted neighbours, startup files, C-level writes, the network,
    writes outside the sandbox, ctypes processes: the notebook (solved) keeps full marks,
    so does every solved neighbour, and no grade is void."""
    _full_marks(graded["by_name"][f"hostile/{name}.ipynb"])
    for chapter in CHAPTERS:
        _full_marks(graded["by_name"][f"solutions/{chapter}.ipynb"])
    assert not any(r.get("error", "").startswith("VOID") for r in graded["results"])


def test_startup_files_do_not_reach_a_later_grading(graded):
    assert graded["runs"]["later"]["code"] == 0, graded["runs"]["later"]["stderr"]
    _full_marks(graded["later"])
    assert not (Path.home() / ".ipython" / "profile_default" / "startup" / "00-evil.py").exists()


def test_no_connection_reaches_the_host(graded):
    assert graded["server"].accepted == 0


def test_no_file_written_outside_the_sandbox(graded):
    candidates = [Path("/tmp") / MARK, Path.home() / MARK, ROOT / MARK, ROOT / ".venv" / MARK,
                  Path(sys.prefix) / MARK]
    assert not [p for p in candidates if p.exists()]


def test_processes_end_with_their_grading(graded):
    assert _processes_with(SLEEP) == []
    if os.geteuid() == 0:           # kernels run as uids of their own: none of ours is left
        left = []
        for d in Path("/proc").iterdir():
            try:
                if d.name.isdigit() and d.stat().st_uid >= sandbox.UID_BASE and \
                        str(graded["gradetmp"]).encode() in (d / "environ").read_bytes():
                    left.append(d.name)
            except OSError:
                pass
        assert not left, f"processes of sandboxed kernels still running: {left}"


def test_memory_limit_costs_only_its_exercise(graded):
    result = graded["by_name"]["hostile/memory.ipynb"]
    _only_loses(result, "2.1", graded["by_name"][f"solutions/{BASE}.ipynb"])
    assert "memory limit 4 GB exceeded" in _exercises(result)["2.1"]["message"]


def test_output_flood_is_capped_and_costs_only_its_exercise(graded):
    result = graded["by_name"]["hostile/flood.ipynb"]
    _only_loses(result, "2.2", graded["by_name"][f"solutions/{BASE}.ipynb"])
    assert "output limit 16 MB exceeded" in _exercises(result)["2.2"]["message"]
    # 1 GB of output never sat in any process of the grading (kilobytes)
    assert graded["runs"]["peak_rss_kb"] < 1_000_000


def test_spin_that_ignores_sigterm_costs_only_its_exercise(graded):
    run = graded["runs"]["spin"]
    assert run["code"] == 0, run["stderr"]
    result = graded["spin"]
    assert isinstance(result, dict)                   # one notebook: one object, not a list
    _only_loses(result, "2.2", graded["by_name"][f"solutions/{BASE}.ipynb"])
    e = _exercises(result)["2.2"]
    assert e["points"] == 0 and f"timed out after {HANG_CALL_TIMEOUT} s" in e["message"]


# ---------------------------------------------------------------- without a sandbox
def test_no_sandbox_grades_when_asked(graded):
    assert graded["runs"]["nosandbox"]["code"] == 0
    _full_marks(graded["nosandbox"])


def test_refuses_without_bwrap(tmp_path):
    env = dict(os.environ, PATH=str(tmp_path))       # no bwrap on the PATH
    run = _finish(_run(ROOT / "solutions" / f"{BASE}.ipynb", env=env), timeout=120)
    assert run["code"] == 2 and run["stdout"] == ""
    assert "refusing to grade" in run["stderr"] and "--no-sandbox" in run["stderr"]
    assert "bwrap" in run["stderr"] and "Traceback" not in run["stderr"]


def test_make_grade_quotes_the_path(graded):
    assert graded["runs"]["make"]["code"] == 0, graded["runs"]["make"]["stderr"]
    _full_marks(graded["make"])


# ---------------------------------------------------------------- files that are not gradable
def test_files_that_are_not_gradable_get_a_clear_error(graded):
    by_name = graded["by_name"]
    assert not any(".ipynb_checkpoints" in name for name in by_name)
    assert "not JSON" in by_name["notes.ipynb"]["error"]
    assert "not a notebook" in by_name["data.ipynb"]["error"]
    assert "99_unknown_chapter" in by_name["unknown.ipynb"]["error"]
    stderr = graded["runs"]["folder"]["stderr"]
    for name in ("notes.ipynb", "data.ipynb", "unknown.ipynb"):
        assert sum(name in line for line in stderr.splitlines()) == 1


def test_a_single_file_that_is_not_a_notebook(graded):
    run = _finish(_run(graded["sub"] / "notes.ipynb"), timeout=120)
    assert run["code"] == cli.EXIT_NOT_GRADED
    assert "Traceback" not in run["stderr"] and len(run["stderr"].strip().splitlines()) == 1
    assert "not a notebook" in run["stderr"]


# ---------------------------------------------------------------- reports
def _report(tmp_path, data):
    path = tmp_path / "report.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


GOOD_TEST = {"test": "t", "exercise": "2.1", "points": 2, "outcome": "passed", "reason": None}


@pytest.mark.parametrize("data, complaint", [
    ("{not json", "not JSON"),
    ([], "no list of tests"),
    ({"tests": "all passed"}, "no list of tests"),
    ({"tests": [1]}, "not an object"),
    ({"tests": [dict(GOOD_TEST, points="99")]}, "'points'"),
    ({"tests": [dict(GOOD_TEST, points=float("inf"))]}, "invalid points"),
    ({"tests": [dict(GOOD_TEST, points=-1)]}, "invalid points"),
    ({"tests": [dict(GOOD_TEST, outcome="won")]}, "unknown outcome"),
    ({"tests": [{k: v for k, v in GOOD_TEST.items() if k != "exercise"}]}, "'exercise'"),
    ({"tests": [dict(GOOD_TEST, reason=[1])]}, "reason"),
])
def test_malformed_reports_are_refused_with_a_reason(tmp_path, data, complaint):
    text = data if isinstance(data, str) else json.dumps(data).replace("Infinity", "1e999")
    with pytest.raises(cli.ReportError, match=complaint.replace("'", ".")):
        cli.read_report(_report(tmp_path, text))


def test_a_good_report_scores(tmp_path):
    report = cli.read_report(_report(tmp_path, {"tests": [GOOD_TEST, dict(GOOD_TEST, outcome="failed",
                                                                          reason="wrong values")]}))
    [e] = cli.score(report)
    assert e["points"] == 1 and not e["passed"] and "wrong values" in e["message"]


# ---------------------------------------------------------------- outputs
def test_json_structure(graded):
    results = graded["results"]
    assert isinstance(results, list) and len(results) == len(graded["by_name"])
    for r in results:
        assert {"notebook", "score", "max_score", "exercises", "status"} <= set(r)
        if r.get("error"):          # never a score of 0 of 0
            assert r["status"] == "error" and r["score"] is None and r["max_score"] is None
            continue
        assert r["status"] == "graded"
        assert r["score"] == pytest.approx(sum(e["points"] for e in r["exercises"]))
        assert r["max_score"] == pytest.approx(sum(e["max_points"] for e in r["exercises"]))
        for e in r["exercises"]:
            assert set(e) == {"id", "points", "max_points", "passed", "message"}
            assert isinstance(e["passed"], bool) and isinstance(e["message"], str)
            assert 0 <= e["points"] <= e["max_points"] and round(e["points"], 2) == e["points"]


def test_csv_structure(graded):
    with open(graded["tmp"] / "all.csv", newline="") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    head, tail = outputs.CSV_HEAD, outputs.CSV_TAIL
    assert header[:len(head)] == head and header[len(header) - len(tail):] == tail
    ids = {e["id"] for r in graded["results"] for e in r["exercises"]}
    assert set(header[len(head):len(header) - len(tail)]) == ids
    assert len(body) == len(graded["results"])
    notebook = header.index("notebook")
    row = dict(zip(header, next(r for r in body
                                if r[notebook].endswith(f"solutions/{BASE}.ipynb"))))
    solved = _exercises(graded["by_name"][f"solutions/{BASE}.ipynb"])
    for ex, e in solved.items():
        assert float(row[ex]) == e["points"]
    assert float(row["score"]) == float(row["max_score"]) > 0


def test_stdout_table(graded):
    stdout = graded["runs"]["folder"]["stdout"]
    assert f"solutions/{BASE}.ipynb ({BASE})" in stdout
    assert "graded" in stdout.splitlines()[-1]


def test_table_escapes_control_characters():
    result = cli.result_for("a\x1b[2Jb.ipynb", "02", [{"id": "2.1", "points": 0, "max_points": 1,
                                                        "passed": False, "message": "x\r\x07y"}])
    text = cli.table(result)
    assert "\x1b" not in text and "\r" not in text and "\x07" not in text
    assert "a\\x1b[2Jb.ipynb" in text and "x\\r\\x07y" in text


def test_limits_are_options():
    args = cli.parse_args(["x.ipynb", "--memory-limit", "2G", "--cpu-limit", "30",
                           "--output-limit", "1M", "--process-limit", "64"])
    assert args.limits == Limits(memory=2 << 30, cpu_time=30, output=1 << 20, processes=64)
    assert cli.parse_args(["x.ipynb"]).limits == Limits()


# ---------------------------------------------------------------- the plain-data codec
def test_codec_round_trip():
    value = (None, np.arange(6.0).reshape(2, 3), [1, 2.5, "s", True], {"k": (np.int64(3),)},
             float("nan"), 1 + 2j, np.array([1 + 1j]), np.float64(0.5))
    got = codec.decode(codec.encode(value))
    assert got[0] is None and np.array_equal(got[1], value[1]) and got[2] == [1, 2.5, "s", True]
    assert got[3] == {"k": (3,)} and np.isnan(got[4]) and got[5] == 1 + 2j
    assert np.array_equal(got[6], value[6]) and type(got[7]) is float


def test_codec_refuses_objects():
    with pytest.raises(TypeError):
        codec.encode(np.array([object()]))
    with pytest.raises(TypeError):
        codec.encode(object())


# ---------------------------------------------------------------- limits of one kernel
@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    """The grader's and minigrad's copies a kernel imports (as a grading run makes them)."""
    import grader
    import minigrad
    from grader.kernel import make_lib
    return make_lib(tmp_path_factory.mktemp("lib") / "lib", grader, minigrad)


SPIN = "def spin():\n    while True:\n        pass\n"
FORK = ("import os, time\n"
        "def fork_many(n):\n"
        "    for _ in range(n):\n"
        "        if os.fork() == 0:\n"
        "            time.sleep(60)\n"
        "            os._exit(0)\n"
        "    return n\n"
        "def answer():\n    return 42\n")


def test_cpu_limit_is_named_and_the_kernel_restarts(lib):
    from grader.kernel import LimitExceeded, Notebook
    limits = Limits(cpu_time=4, call_timeout=60)
    with Notebook([SPIN, "def answer():\n    return 42\n"], lib=lib, limits=limits) as nb:
        with pytest.raises(LimitExceeded) as info:
            nb.call("spin")
        assert info.value.short == "CPU time limit 4 s exceeded"
        assert nb.call("answer") == 42          # a fresh kernel, the notebook run again


@pytest.mark.skipif(os.geteuid() != 0, reason="the process limit is enforced when grading as root")
def test_process_limit_is_named(lib):
    from grader.kernel import LimitExceeded, Notebook
    with Notebook([FORK], lib=lib, limits=Limits(processes=32)) as nb:
        with pytest.raises(LimitExceeded) as info:
            nb.call("fork_many", 100)
        assert info.value.short == "process limit 32 exceeded"
        assert nb.call("answer") == 42
