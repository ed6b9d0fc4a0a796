"""The sandbox's rules that the kernel cannot touch, and the limits of a submission as a whole
(issue 22): each attack is made by a notebook, and each is contained.

Two kinds of test:

- one kernel (a :class:`grader.kernel.Notebook` with small limits) runs every probe of the
  attacks, each a function the test calls: autodiff packages, user namespaces and mounts,
  every writable place and its size, memory of many processes, CPU of many threads, floods of
  zero-copy frames and of output across calls; the grading process (this one) must stay small;
- one ``python -m grader`` run grades hostile notebooks beside honest ones: the in-kernel
  no-autodiff patch switched off before answering with autograd (gains nothing), a flood of
  zero-copy frames in one exercise (costs that exercise only), and a notebook that tries user
  namespaces, fills every writable place and leaves 3,000 nested folders (keeps full marks,
  leaves nothing on the host); the honest neighbours keep full marks. A second run without
  control groups shows the warning that names what is not enforced.
"""
import copy
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from grader import cgroups, sandbox
from grader.kernel import LimitExceeded, Notebook, make_lib, remove_tree
from grader.settings import CPU_CORES, MB, NICE, Limits

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(sandbox._bwrap() is None, reason="bwrap is not installed")

#: kernel-side: fill one place with files until it refuses, then nest 3,000 folders in it;
#: part of both the probes and the hostile notebook below
FILL_PLACE = r'''
import os

def fill_place(point, chunk, most=1000):
    """Write files of ``chunk`` into ``point`` until it refuses (at most ``most``), then leave
    3,000 nested folders there: the bytes written."""
    total = 0
    for k in range(most):
        try:
            with open(os.path.join(point, f"fill-{k}"), "wb") as f:
                f.write(chunk)
        except OSError:
            break
        total += len(chunk)
    try:
        os.chdir(point)
        for _ in range(3000):
            os.mkdir("d")
            os.chdir("d")
    except OSError:
        pass
    os.chdir(os.path.expanduser("~"))
    return total
'''

#: the probes one kernel runs, each a function the tests call
PROBES = FILL_PLACE + r'''
import ctypes, glob, importlib.util, os, subprocess, sys, threading, time

def autodiff():
    """What importing autograd and sympy gives, and whether a real copy is anywhere."""
    import autograd, autograd.numpy as anp
    from autograd import grad
    out = {"file": autograd.__file__, "errors": []}
    sys.path += glob.glob(os.path.join(sys.base_prefix, "lib", "python3*", "site-packages"))
    for use in (lambda: grad(lambda x: x * x)(1.0), lambda: anp.sin(1.0),
                lambda: __import__("sympy").diff("x**2", "x")):
        try:
            use()
            out["errors"].append("no error")
        except Exception as exc:
            out["errors"].append(f"{type(exc).__name__}: {exc}")
    folders = sys.path + [f for root in (sys.prefix, sys.base_prefix, "/usr", "/usr/local")
                          for f in glob.glob(os.path.join(root, "lib", "python3*", "*-packages"))]
    out["real"] = [p for folder in folders
                   for p in glob.glob(os.path.join(folder, "autograd", "core.py"))]
    return out

def userns():
    """unshare -Urm, then a RAM-backed file system: every step's exit code and message."""
    run = subprocess.run(["unshare", "-Urm", "sh", "-c",
                          "mount -t tmpfs -o size=12g none /mnt && echo MOUNTED"],
                         capture_output=True, text=True)
    libc = ctypes.CDLL(None, use_errno=True)
    CLONE_NEWUSER = 0x10000000
    return {"code": run.returncode, "out": run.stdout + run.stderr,
            "unshare": libc.unshare(CLONE_NEWUSER), "errno": ctypes.get_errno()}

def writable_places():
    """Every mount point the kernel can write to: [path, fstype, size in bytes]."""
    places = []
    for line in open("/proc/self/mountinfo"):
        left, _, right = line.partition(" - ")
        point, fstype = left.split()[4], right.split()[0]
        probe = os.path.join(point, f".probe-{os.getpid()}")
        try:
            with open(probe, "w") as f:
                f.write("x")
            os.remove(probe)
        except OSError:
            continue
        st = os.statvfs(point)
        places.append([point, fstype, st.f_blocks * st.f_frsize])
    return places

def fill(chunk_mb=64):
    """Fill every writable place with files, and leave 3,000 nested folders in each: the
    bytes written, by place."""
    chunk = b"\0" * (chunk_mb << 20)
    return {point: fill_place(point, chunk) for point, _, _ in writable_places()}

CHILD = "import time; b = bytearray(MB << 20); b[::4096] = b'x' * len(b[::4096]); time.sleep(8)"

def memory(n, mb):
    """n processes holding mb MB each at once: their exit codes (-9: killed)."""
    procs = [subprocess.Popen([sys.executable, "-c", CHILD.replace("MB", str(mb))])
             for _ in range(n)]
    return [p.wait() for p in procs]

def hog(children, mb, own):
    """`children` processes of mb MB, then own MB held by the kernel itself."""
    procs = [subprocess.Popen([sys.executable, "-c", CHILD.replace("MB", str(mb))])
             for _ in range(children)]
    time.sleep(1.5)
    block = bytearray(own << 20)
    block[::4096] = b"x" * len(block[::4096])
    time.sleep(6)
    return [p.wait() for p in procs]

def priority():
    """The nice value, and whether it can be lowered back."""
    nice = os.getpriority(os.PRIO_PROCESS, 0)
    try:
        os.setpriority(os.PRIO_PROCESS, 0, 0)
        lowered = True
    except OSError:
        lowered = False
    return [nice, lowered]

def spin(threads, seconds):
    """CPU seconds that `threads` spinning threads get in `seconds` of wall time."""
    end = time.monotonic() + seconds
    def work():
        while time.monotonic() < end:
            pass
    start = time.process_time()
    pool = [threading.Thread(target=work) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return time.process_time() - start

def frames(buffers, mb):
    """One message on the kernel's output channel with `buffers` zero-copy frames of one
    buffer of mb MB."""
    kernel = get_ipython().kernel
    block = memoryview(bytearray(mb << 20))
    kernel.session.send(kernel.iopub_socket, "display_data", {"data": {}, "metadata": {}},
                        parent=kernel.get_parent(), buffers=[block] * buffers)
    time.sleep(2)
    return "sent"

def flood(mb):
    """mb MB of output past the bridge's own cap (written to the stream underneath)."""
    stream = sys.stdout
    while type(stream).__name__ == "_Capped":
        stream = stream._stream
    line = "y" * (1 << 20)
    for _ in range(mb):
        stream.write(line)
    stream.flush()
    return "flooded"

def answer():
    return 42
'''


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    import grader
    import minigrad
    return make_lib(tmp_path_factory.mktemp("lib") / "lib", grader, minigrad)


#: the probing kernel's limits: small, so the attacks stay cheap on a shared machine
PROBE_LIMITS = Limits(memory=1536 * MB, file_size=64 * MB, output=4 * MB, call_timeout=60)


@pytest.fixture(scope="module")
def probe(lib):
    with Notebook([PROBES], lib=lib, limits=PROBE_LIMITS) as nb:
        assert nb.cell_errors == {}
        yield nb


def test_autodiff_packages_are_stand_ins(probe):
    got = probe.call("autodiff")
    assert got["real"] == [], "a real autograd is in the kernel's file system"
    assert len(got["errors"]) == 3
    for error in got["errors"]:
        assert error.startswith("AutodiffUnavailable: automatic differentiation is not "
                                "available in graded runs"), error


def test_autodiff_paths_found_here_are_the_installed_ones():
    import autograd
    assert str(Path(autograd.__file__).resolve().parent) in sandbox.autodiff_paths()


def test_no_user_namespace_and_no_mount(probe):
    got = probe.call("userns")
    assert got["code"] != 0 and "MOUNTED" not in got["out"]
    assert got["unshare"] == -1


def test_every_writable_place_is_a_small_tmpfs(probe):
    places = probe.call("writable_places")
    points = {p for p, _, _ in places}
    assert {"/tmp", sandbox.HOME, sandbox.SOCKETS, "/dev/shm"} <= points
    assert "/" not in points and "/dev" not in points
    for point, fstype, size in places:
        assert fstype == "tmpfs" and size <= PROBE_LIMITS.file_size, (point, fstype, size)


def test_filling_every_writable_place_stops_at_its_size_and_leaves_nothing(lib):
    with Notebook([PROBES], lib=lib, limits=PROBE_LIMITS) as nb:
        folder = nb._folder
        written = nb.call("fill")
        assert nb.call("answer") == 42
    for point, total in written.items():
        assert total <= PROBE_LIMITS.file_size, (point, total)
    assert not folder.exists(), "the kernel's folder stayed on the host"


def test_remove_tree_survives_deep_nesting(tmp_path):
    folder = tmp_path / "deep"
    path = str(folder)
    os.mkdir(path)
    fd = os.open(path, os.O_RDONLY)
    for _ in range(3000):                 # relative to a descriptor: the path is never long
        os.mkdir("d", dir_fd=fd)
        new = os.open("d", os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = new
    os.close(fd)
    remove_tree(folder)
    assert not folder.exists()


def test_the_warning_names_each_limit_not_enforced(monkeypatch):
    monkeypatch.setattr(sandbox, "_userns_guard", lambda: "none")
    monkeypatch.setattr(cgroups, "support", lambda: (None, {}))
    text = sandbox.not_enforced()
    for what in ("no user namespaces inside the sandbox", "memory of the whole sandbox",
                 "processes of the whole sandbox", "CPU share of the whole sandbox"):
        assert what in text
    monkeypatch.setattr(sandbox, "_userns_guard", lambda: "impossible")
    monkeypatch.setattr(cgroups, "support", lambda: ("v1", dict.fromkeys(cgroups.CONTROLLERS, ROOT)))
    assert sandbox.not_enforced() is None


def _frame(size, more):
    """A ZMTP 3 frame header and body: flags (MORE, LONG), size, zero bytes."""
    flags = (0x01 if more else 0) | (0x02 if size > 255 else 0)
    head = size.to_bytes(8 if size > 255 else 1, "big")
    return bytes([flags]) + head + b"\0" * size


def test_the_relay_counts_a_message_across_its_frames():
    from grader.relay import GREETING, _Counter
    counter = _Counter()
    stream = b"\0" * GREETING + _frame(300, True) + _frame(300, False)    # 600 bytes: fits
    assert all(counter.feed(stream[k:k + 7], cap=700) for k in range(0, len(stream), 7))
    many = b"".join(_frame(100, True) for _ in range(7)) + _frame(100, False)
    assert not counter.feed(many, cap=700)                                # 800 bytes in 8 frames


needs_cgroup = pytest.mark.skipif(
    bool(cgroups.not_enforced()), reason="no writable control groups here: see "
    "test_missing_cgroups_are_named for the warning")


@needs_cgroup
def test_memory_of_the_whole_sandbox_is_limited(probe):
    """Four processes of 500 MB (each under the 1.5 GB address-space limit) cannot hold
    2 GB at once; the kernel survives or is restarted, and answers."""
    codes = probe.call("memory", 4, 500)
    assert -9 in codes, codes
    assert probe.call("answer") == 42


@needs_cgroup
def test_a_kernel_killed_by_the_memory_limit_is_named_and_restarted(probe):
    """Two processes of 450 MB and 700 MB in the kernel itself (under its 1.5 GB of address
    space): the kernel, the largest, is killed; the reason names the memory limit."""
    restarts = probe.restarts
    with pytest.raises(LimitExceeded) as info:
        probe.call("hog", 2, 450, 700)
    assert info.value.short == "memory limit 1.5 GB exceeded"
    assert probe.restarts == restarts + 1
    assert probe.call("answer") == 42


def test_priority_is_low_and_stays_low(probe):
    assert probe.call("priority") == [NICE, False]


@needs_cgroup
def test_cpu_of_the_whole_sandbox_is_a_quota(probe):
    seconds = 3.0
    used = probe.call("spin", 40, seconds)
    assert used <= CPU_CORES * seconds * 1.25 + 0.5, used


def _peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def test_zero_copy_frames_are_cut_and_the_grader_stays_small(probe):
    """200 frames of one 64 MB buffer: 12.8 GB in one message."""
    before = _peak_rss_mb()
    for _ in range(2):
        with pytest.raises(LimitExceeded) as info:
            probe.call("frames", 200, 64)
        assert "output limit 4 MB exceeded" in info.value.short
    assert probe.call("answer") == 42
    assert _peak_rss_mb() - before < 300


def test_output_across_calls_does_not_pile_up(probe):
    """100 MB of output per call (past the bridge's own cap), six calls: output that arrives
    after its call's answer would count against the next call; each flood is cut, and the
    grader stays small whatever the number of calls."""
    before, cut = _peak_rss_mb(), 0
    for _ in range(6):
        try:
            probe.call("flood", 100)
        except LimitExceeded as exc:
            assert "output limit 4 MB exceeded" in exc.short
            cut += 1
    assert cut >= 5
    assert probe.call("answer") == 42
    assert _peak_rss_mb() - before < 300


# ---------------------------------------------------------------- hostile notebooks, graded
#: switches the in-kernel no-autodiff rule off, then answers 3.1 to 3.3 with autograd
AUTODIFF_ANSWERS = r'''
import autograd, autograd.numpy as anp
import numpy as np
import minigrad

def tied_jacobian(V, x):
    V, x = np.asarray(V, dtype=float), np.asarray(x, dtype=float)
    if V.ndim != 2 or x.ndim != 1 or V.shape[1] != x.size:
        raise ValueError("tied_jacobian: shapes do not match")
    return autograd.jacobian(lambda A: anp.dot(A.T, anp.dot(A, x)))(V)

def _softplus(z):
    return anp.logaddexp(0.0, z)

def _gelu(z):
    return 0.5 * z * (1.0 + anp.tanh(np.sqrt(2.0 / np.pi) * (z + 0.044715 * z ** 3)))

class Softplus(minigrad.Elementwise):
    def f(self, x):
        return np.logaddexp(0.0, x)
    def df(self, x):
        return autograd.elementwise_grad(_softplus)(x)

class GELU(minigrad.Elementwise):
    def f(self, x):
        return _gelu(x)
    def df(self, x):
        return autograd.elementwise_grad(_gelu)(x)
'''
PATCH_OFF = "import grader.bridge\ngrader.bridge._patch = lambda names: []\n"

#: one message of 200 zero-copy frames of one 64 MB buffer, from inside 2.2's function
FRAMES = r'''
_right_outer_gram = outer_gram

def outer_gram(U, V):
    import time
    kernel = get_ipython().kernel
    block = memoryview(bytearray(64 << 20))
    kernel.session.send(kernel.iopub_socket, "display_data", {"data": {}, "metadata": {}},
                        parent=kernel.get_parent(), buffers=[block] * 200)
    time.sleep(2)
    return _right_outer_gram(U, V)
'''

#: user namespaces and a RAM file system; every writable place filled, 3,000 nested folders
ESCAPE = FILL_PLACE + r'''
import subprocess
subprocess.run(["unshare", "-Urm", "sh", "-c",
                "mount -t tmpfs -o size=12g none /mnt && head -c 2000000000 /dev/zero > /mnt/x"],
               capture_output=True)
_chunk = b"\0" * (64 << 20)
for _place in ("/tmp", os.path.expanduser("~"), "/run/kernel", "/dev/shm", "/dev", "/", os.getcwd()):
    fill_place(_place, _chunk)
del _chunk
'''

#: 40 threads that spin for 30 s, started at once
SPIN_THREADS = r'''
import threading, time
def _spin(end=time.monotonic() + 30):
    while time.monotonic() < end:
        pass
for _ in range(40):
    threading.Thread(target=_spin, daemon=True).start()
'''


def _read(path):
    return nbformat.read(str(path), as_version=4)


def _with_cells(nb, *sources, after=None):
    """A copy of ``nb`` with code cells added: after the cell defining ``after``, else at
    the end."""
    nb = copy.deepcopy(nb)
    k = len(nb.cells) if after is None else 1 + next(
        i for i, c in enumerate(nb.cells) if c.cell_type == "code" and f"def {after}(" in c.source)
    for source in reversed(sources):
        nb.cells.insert(k, nbformat.v4.new_code_cell(source))
    return nb


def _write(nb, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))


def _grade(folder, out, tmpdir, env=None, *args):
    run = subprocess.run([sys.executable, "-m", "grader", str(folder), "--json", str(out),
                          "--jobs", "2", *args], cwd=ROOT, capture_output=True, text=True,
                         timeout=1500, env=dict(env or os.environ, TMPDIR=str(tmpdir)))
    return run, json.loads(out.read_text())


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sandbox")
    sub, gradetmp = tmp / "submissions", tmp / "t"
    gradetmp.mkdir()
    sol02, sol03 = (_read(ROOT / "solutions" / f"{c}.ipynb") for c in ("02_linear_algebra", "03_jacobian"))
    ex03 = _read(ROOT / "exercises" / "03_jacobian.ipynb")
    _write(sol02, sub / "honest" / "02_linear_algebra.ipynb")
    _write(sol03, sub / "honest" / "03_jacobian.ipynb")
    _write(_with_cells(ex03, AUTODIFF_ANSWERS), sub / "autodiff_rule_on.ipynb")
    _write(_with_cells(ex03, PATCH_OFF + AUTODIFF_ANSWERS), sub / "autodiff_rule_off.ipynb")
    _write(_with_cells(sol02, FRAMES, after="outer_gram"), sub / "frames.ipynb")
    escape = _with_cells(sol02, ESCAPE)
    escape.cells.insert(2, nbformat.v4.new_code_cell(ESCAPE))
    _write(escape, sub / "escape.ipynb")
    _write(_with_cells(sol02, SPIN_THREADS, after="frobenius"), sub / "spin.ipynb")
    run, results = _grade(sub, tmp / "all.json", gradetmp)
    by_name = {str(Path(r["notebook"]).relative_to(sub)): r for r in results}
    return {"run": run, "by_name": by_name, "gradetmp": gradetmp, "tmp": tmp, "sub": sub}


def _points(result):
    return {e["id"]: e for e in result["exercises"]}


def _full_marks(result):
    assert result["max_score"] > 0 and result["score"] == result["max_score"], result


def test_hostile_run_exits_cleanly_and_honest_neighbours_keep_full_marks(graded):
    assert graded["run"].returncode == 0, graded["run"].stderr
    if not cgroups.not_enforced():
        assert "WARNING" not in graded["run"].stderr
    for name in ("honest/02_linear_algebra.ipynb", "honest/03_jacobian.ipynb"):
        _full_marks(graded["by_name"][name])


def test_switching_the_kernel_rule_off_gains_nothing(graded):
    """The in-kernel rule is advisory: with it switched off, answers through autograd earn what
    they earn with it on, because autograd is a stand-in in the kernel's file system."""
    on, off = graded["by_name"]["autodiff_rule_on.ipynb"], graded["by_name"]["autodiff_rule_off.ipynb"]
    assert off["score"] == on["score"] and off["score"] <= 0.2 * off["max_score"], off
    for ex in ("3.1", "3.2", "3.3"):
        assert not _points(off)[ex]["passed"], _points(off)[ex]
    assert any("automatic differentiation is not available" in e["message"]
               for e in off["exercises"]), off


def test_zero_copy_frames_cost_only_their_exercise(graded):
    got = _points(graded["by_name"]["frames.ipynb"])
    for ex, e in got.items():
        if ex == "2.2":
            assert e["points"] == 0 and "output limit 16 MB exceeded" in e["message"], e
        else:
            assert e["passed"], e


def test_namespaces_and_filled_disks_keep_full_marks_and_leave_nothing(graded):
    _full_marks(graded["by_name"]["escape.ipynb"])
    left = [str(p) for p in graded["gradetmp"].rglob("*")
            if p != graded["gradetmp"] / "minigrad-grade"]     # the grader's own, empty
    assert left == [], f"left on the host after grading: {left[:5]}"


def test_spinning_threads_leave_the_neighbours_their_marks(graded):
    assert "error" not in graded["by_name"]["spin.ipynb"]
    _full_marks(graded["by_name"]["honest/02_linear_algebra.ipynb"])


def test_missing_cgroups_are_named(graded, tmp_path):
    """Without control groups, the grader grades and says what it does not enforce."""
    env = dict(os.environ, MINIGRAD_GRADER_NO_CGROUPS="1")
    run, result = _grade(graded["sub"] / "honest" / "02_linear_algebra.ipynb",
                         tmp_path / "one.json", tmp_path, env)
    assert run.returncode == 0, run.stderr
    _full_marks(result)
    warning = [line for line in run.stderr.splitlines() if "WARNING" in line]
    assert len(warning) == 1, run.stderr
    for what in ("memory of the whole sandbox", "processes of the whole sandbox",
                 "CPU share of the whole sandbox"):
        assert what in warning[0]


def test_a_venv_reached_through_a_link_runs_from_its_real_folder(tmp_path, monkeypatch):
    # the sandbox hides /tmp, so a kernel started as /tmp/x/.venv/bin/python would not start
    real = tmp_path / "real" / "bin"
    real.mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "real")
    monkeypatch.setattr(sys, "executable", str(tmp_path / "link" / "bin" / "python"))
    assert sandbox.python_executable() == str(real / "python")
    assert sandbox.environment("/lib").get("PATH").startswith(f"{real}:")
