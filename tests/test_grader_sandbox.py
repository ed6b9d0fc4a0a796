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
import tempfile
import time
from pathlib import Path

import nbformat
import pytest

from grader import cgroups, sandbox
from grader.kernel import LimitExceeded, Notebook, make_lib, remove_tree
from grader.settings import CPU_CORES, MB, NICE, Limits

ROOT = Path(__file__).resolve().parents[1]
ROOTED = os.geteuid() == 0

pytestmark = pytest.mark.skipif(sandbox._bwrap() is None, reason="bwrap is not installed")

#: the probes one kernel runs, each a function the tests call
PROBES = r'''
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
    written = {}
    chunk = b"\0" * (chunk_mb << 20)
    for point, _, _ in writable_places():
        total, k = 0, 0
        while True:
            try:
                with open(os.path.join(point, f"fill-{k}"), "wb") as f:
                    f.write(chunk)
                total += len(chunk)
                k += 1
            except OSError:
                break
        try:
            os.chdir(point)
            for _ in range(3000):
                os.mkdir("d")
                os.chdir("d")
        except OSError:
            pass
        os.chdir(os.path.expanduser("~"))
        written[point] = total
    return written

CHILD = "import time; b = bytearray(MB << 20); b[::4096] = b'x' * len(b[::4096]); time.sleep(8)"

def memory(n, mb):
    """n processes holding mb MB each at once: their exit codes (-9: killed)."""
    procs = [subprocess.Popen([sys.executable, "-c", CHILD.replace("MB", str(mb))])
             for _ in range(n)]
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
