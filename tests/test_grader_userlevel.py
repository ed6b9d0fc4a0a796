"""The "user" isolation level: no bwrap, each kernel an unprivileged user of its own (what
Gradescope's containers allow; ``--kernel-user``, ``run_autograder --sandbox auto``).

One ``python -m grader --kernel-user`` run grades two honest solutions (one importing autograd,
a stand-in there) beside a hostile one whose
``frobenius`` reports, through its failure message, its uid and what it could reach: the
graded tests, the grader's copy of minigrad (writing), the run's workspace (listing), autograd.
The honest ones keep full marks; the hostile one is refused everything and leaves no process (no
control groups in that run, as Gradescope may have none: the grader ends its user's processes
itself). One
``run_autograder`` run without bwrap on its PATH shows ``--sandbox auto`` falling back to this
level. The wrong inputs (not root, a Python its user cannot reach, a folder others cannot read)
need no kernel.

Grading as root is needed. Where the Python of this environment is under a folder other users
cannot search (``/root/.pyenv`` on the development machine, a fresh clone under a ``mktemp -d``
folder), the runs happen in a private mount namespace where those folders are searchable
(:func:`_reachable`): Gradescope's Python is in ``/usr``.
"""
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat
import pytest

from grader import sandbox

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the user level needs root")

def _reopen_script(targets):
    """A shell script that, in a private mount namespace, makes every folder above
    ``targets`` searchable by others: each folder that is not (``/root``, a ``mktemp -d``
    folder holding a fresh clone) is covered by a 0711 tmpfs into which only the child on the
    way to a target is bound back. Top down, so a deeper folder is reached through the binds
    made above it. ``$0`` is a scratch folder; nothing outside the namespace changes."""
    needs = {}                                          # folder -> children on the way
    for target in targets:
        path = Path(os.path.realpath(target))
        for folder in reversed(path.parents):
            if not os.stat(folder).st_mode & 0o001:
                child = path.relative_to(folder).parts[0]
                needs.setdefault(folder, set()).add(child)
    lines = []
    for k, folder in enumerate(sorted(needs, key=lambda f: len(f.parts))):
        keep, d = f'"$0/keep{k}"', shlex.quote(str(folder))
        lines += [f"mkdir -p {keep}", f"mount --bind {d} {keep}",
                  f"mount -t tmpfs -o mode=0711 tmpfs {d}"]
        for child in sorted(needs[folder]):
            c = shlex.quote(child)
            make = "mkdir" if (folder / child).is_dir() else "touch"
            lines += [f"{make} {d}/{c}", f"mount --bind {keep}/{c} {d}/{c}"]
    return " && ".join([*lines, 'exec "$@"'])


def _reachable(cmd):
    """``cmd``, in a private mount namespace if this Python is hidden from other users."""
    try:
        sandbox.check_user_level()
        return cmd
    except sandbox.SandboxUnavailable:
        pass
    if shutil.which("unshare") is None:
        pytest.skip("this Python is not reachable by other users, and no unshare")
    script = _reopen_script([os.path.realpath(sys.executable), *sandbox._python_roots()])
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script,
            tempfile.mkdtemp(), *cmd]


#: a cell redefining frobenius: it raises what the kernel could reach, as its message
PROBE = r'''
import os, subprocess

def _try(action):
    try:
        action()
        return "OPEN"
    except PermissionError:
        return "no"
    except Exception as exc:
        return type(exc).__name__

_ws = os.path.dirname(os.environ["PYTHONPATH"].split(os.pathsep)[0])    # its lib's folder
subprocess.Popen(["sleep", "3141"], start_new_session=True)     # detached: must not outlive it
_report = " ".join([
    f"uid={os.getuid()}",
    "nnp=" + next(l.split()[1] for l in open("/proc/self/status") if l.startswith("NoNewPrivs")),
    "tests=" + _try(lambda: open(os.path.join(_ws, "grading", "test_02_linear_algebra.py")).read()),
    "lib=" + _try(lambda: open(os.path.join(_ws, "lib", "minigrad", "__init__.py"), "a")),
    "new=" + _try(lambda: open(os.path.join(_ws, "lib", "minigrad", "forged.py"), "w").close()),
    "ws=" + _try(lambda: os.listdir(_ws)),
    "ad=" + _try(lambda: __import__("autograd").grad(lambda x: x * x)(1.0)),
])

def frobenius(A, B):
    raise RuntimeError(_report)
'''


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("userlevel")
    sub = tmp / "sub"
    sub.mkdir()
    solution = nbformat.read(str(ROOT / "solutions" / "02_linear_algebra.ipynb"), as_version=4)
    nbformat.write(solution, str(sub / "honest.ipynb"))
    shutil.copy(ROOT / "solutions" / "03_jacobian.ipynb", sub / "jacobian.ipynb")
    solution.cells.append(nbformat.v4.new_code_cell(PROBE))
    nbformat.write(solution, str(sub / "hostile.ipynb"))
    out = tmp / "all.json"
    run = subprocess.run(_reachable([PYTHON, "-m", "grader", str(sub), "--kernel-user", "--jobs",
                                     "2", "--json", str(out)]),
                         cwd=ROOT, capture_output=True, text=True, timeout=600,
                         env=dict(os.environ, MINIGRAD_GRADER_NO_CGROUPS="1"))
    assert out.exists(), run.stderr
    results = {Path(r["notebook"]).stem: r for r in json.loads(out.read_text())}
    return run, results


def _sleepers():
    found = []
    for entry in os.scandir("/proc"):
        try:
            cmdline = Path(entry.path, "cmdline").read_bytes() if entry.name.isdigit() else b""
            if cmdline == b"sleep\x003141\x00":
                found.append(entry.name)
        except OSError:
            pass
    return found


def test_an_honest_solution_keeps_full_marks_and_the_level_is_named(graded):
    run, results = graded
    assert run.returncode == 0, run.stderr
    assert "unprivileged user of its own" in run.stderr
    assert "not enforced on this machine: memory of the whole sandbox" in run.stderr
    for name in ("honest", "jacobian"):      # the latter imports autograd: a stand-in here
        assert results[name]["score"] == results[name]["max_score"] > 0, results[name]


def test_the_kernel_runs_as_a_user_that_reaches_nothing_of_the_grade(graded):
    hostile = {e["id"]: e for e in graded[1]["hostile"]["exercises"]}
    message = hostile["2.1"]["message"]
    assert "tests=no lib=no new=no ws=no ad=AutodiffUnavailable" in message, message
    assert "nnp=1" in message, message             # no set-user-id way back to root
    uid = int(message.split("uid=")[1].split()[0])
    assert uid != 0 and uid >= sandbox.UID_BASE, message
    assert all(hostile[ex]["passed"] for ex in ("2.2", "2.3", "2.4")), hostile
    assert "VOID" not in json.dumps(graded[1]) and graded[0].returncode != 3


def test_what_the_kernel_detached_is_ended(graded):
    assert _sleepers() == []


def test_run_autograder_falls_back_to_the_user_level_without_bwrap(tmp_path):
    root = tmp_path / "ag"
    sys.path.insert(0, str(ROOT / "scripts"))
    import make_gradescope
    from test_grader_gradescope import _unpack, _valid
    _unpack(make_gradescope.build(tmp_path / "autograder.zip"), root)
    shutil.copy(ROOT / "solutions" / "02_linear_algebra.ipynb", root / "submission")
    tools = tmp_path / "bin"                # util-linux's tools, no bwrap
    tools.mkdir()
    for tool in ("setpriv", "prlimit", "unshare", "sh", "mount", "mkdir"):
        (tools / tool).symlink_to(shutil.which(tool))
    env = dict(os.environ, AUTOGRADER_ROOT=str(root), AUTOGRADER_PYTHON=PYTHON, PATH=str(tools))
    env.pop("PYTHONPATH", None)
    run = subprocess.run(_reachable(["/bin/bash", str(root / "run_autograder")]), env=env,
                         capture_output=True, text=True, timeout=600, cwd="/")
    assert "isolation user: kernels run WITHOUT bwrap" in run.stdout, run.stdout + run.stderr
    results = _valid(json.loads((root / "results" / "results.json").read_text()))
    assert results["score"] == 10, results
    assert (root / "results").stat().st_mode & 0o077 == 0


# ---------------------------------------------------------------- wrong inputs, no kernel
def test_the_user_level_refuses_without_root(monkeypatch):
    monkeypatch.setattr(sandbox, "_root", lambda: False)
    with pytest.raises(sandbox.SandboxUnavailable, match="needs the grader to run as root"):
        sandbox.check_user_level()


def test_the_user_level_refuses_a_python_its_user_cannot_reach(monkeypatch, tmp_path):
    hidden = tmp_path / "hidden"
    (hidden / "bin").mkdir(parents=True)
    hidden.chmod(0o700)
    monkeypatch.setattr(sys, "executable", str(hidden / "bin" / "python"))
    with pytest.raises(sandbox.SandboxUnavailable, match="cannot reach the Python"):
        sandbox.check_user_level()


@pytest.fixture
def open_folder():
    """A folder under /tmp that others can search (pytest's own folders are 0700)."""
    folder = Path(tempfile.mkdtemp())
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder)


def test_only_packages_others_can_read_are_named_importable(monkeypatch, open_folder):
    tmp_path = open_folder
    for name, mode in (("autograd", 0o700), ("sympy", 0o755)):
        (tmp_path / name).mkdir(mode=mode)
        (tmp_path / name).chmod(mode)
    monkeypatch.setattr(sandbox, "autodiff_paths", lambda: [str(tmp_path / "autograd"),
                                                            str(tmp_path / "sympy")])
    assert sandbox.readable_by_others(tmp_path / "sympy")
    assert not sandbox.readable_by_others(tmp_path / "autograd")
    note = sandbox.user_level_note()
    assert note.endswith("its user can still read (make them unreadable by others, as "
                         "setup.sh does): sympy"), note


def test_the_cli_refuses_kernel_user_where_it_cannot_hold(monkeypatch, capsys):
    from grader import cli
    monkeypatch.setattr(sandbox, "_root", lambda: False)
    notebook = str(ROOT / "solutions" / "02_linear_algebra.ipynb")
    assert cli.main([notebook, "--kernel-user"]) == cli.EXIT_USAGE
    assert "refusing to grade with --kernel-user" in capsys.readouterr().err


def test_the_plugin_run_directly_refuses_kernel_user_where_it_cannot_hold(monkeypatch):
    from grader import plugin

    class Config:                                  # what pytest_configure reads of a pytest config
        def __init__(self, options):
            self.options = options

        def addinivalue_line(self, *args):
            pass

        def getoption(self, name):
            return self.options.get(name)
    monkeypatch.setattr(sandbox, "_root", lambda: False)
    notebook = str(ROOT / "solutions" / "02_linear_algebra.ipynb")
    with pytest.raises(pytest.UsageError, match="needs the grader to run as root"):
        plugin.pytest_configure(Config({"--notebook": notebook, "--kernel-user": True,
                                        "--no-sandbox": True}))
