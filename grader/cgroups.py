"""Control groups for a whole sandbox: one memory, process and CPU budget for everything a
kernel starts, however many processes it makes.

:func:`support` finds what this machine offers the grader: cgroup v2 with the ``memory``,
``pids`` and ``cpu`` controllers delegated to it (as root, or a user given a subtree), else
cgroup v1 hierarchies it may write (as root), else nothing. :func:`not_enforced` names the
whole-sandbox limits that are then not enforced (the per-process ``prlimit`` limits of
:mod:`grader.sandbox` hold everywhere).

:class:`Group` is one sandbox's group: made (with its limits) before the kernel starts, entered
by the sandbox's launcher (its :attr:`Group.procs` files), asked after a death whether the
memory limit killed a process (:meth:`Group.oom_kills`), and removed (every process left in it
killed first) when the kernel ends.
"""
import functools
import itertools
import os
import signal
import time
from pathlib import Path

from grader.settings import CPU_CORES, CPU_SHARES

__all__ = ["Group", "support", "not_enforced", "CONTROLLERS"]

#: the controllers a sandbox's group uses, and what each enforces
CONTROLLERS = {"memory": "memory of the whole sandbox", "pids": "processes of the whole sandbox",
               "cpu": "CPU share of the whole sandbox"}
#: the CFS period of a CPU quota, in microseconds
PERIOD = 100_000
_counter = itertools.count()


def _mounts():
    """``[(mount point, fstype, super options)]`` of this process's cgroup file systems."""
    found = []
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return found
    for line in lines:
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(fields) > 4 and len(tail) > 2 and tail[0] in ("cgroup", "cgroup2"):
            found.append((fields[4].replace("\\040", " "), tail[0], set(tail[2].split(","))))
    return found


def _own_paths():
    """``{controller or "": path}`` of this process's groups (``""`` is cgroup v2)."""
    paths = {}
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return paths
    for line in lines:
        _, controllers, path = line.split(":", 2)
        for c in controllers.split(",") if controllers else [""]:
            paths[c] = path
    return paths


def _writable_parent(folder):
    """True when a child group can be made in ``folder`` (tried, then removed)."""
    probe = Path(folder) / f"minigrad-probe-{os.getpid()}"
    try:
        probe.mkdir()
    except OSError:
        return False
    try:
        probe.rmdir()
    except OSError:
        pass
    return True


def _v2_parent(mounts, own):
    """The cgroup v2 folder whose children get every controller, or None."""
    if "" not in own:
        return None
    for point, kind, _ in mounts:
        if kind != "cgroup2":
            continue
        parent = Path(point + own[""])
        try:
            enabled = set((parent / "cgroup.subtree_control").read_text().split())
            if not set(CONTROLLERS) <= enabled:
                available = set((parent / "cgroup.controllers").read_text().split())
                if not set(CONTROLLERS) <= available:
                    continue
                # fails (EBUSY) when the grader itself lives in that group: not delegated
                (parent / "cgroup.subtree_control").write_text(
                    " ".join("+" + c for c in CONTROLLERS))
        except OSError:
            continue
        if _writable_parent(parent):
            return parent
    return None


def _v1_parents(mounts, own):
    """``{controller: folder}`` of the writable cgroup v1 hierarchies."""
    parents = {}
    for controller in CONTROLLERS:
        for point, kind, options in mounts:
            if kind == "cgroup" and controller in options and controller in own:
                parent = Path(point + own[controller])
                if _writable_parent(parent):
                    parents[controller] = parent
                    break
    return parents


def _sweep(parent):
    """Remove the empty groups left by grading processes that are gone (killed, say)."""
    for folder in Path(parent).glob("minigrad-*-*"):
        try:
            pid = int(folder.name.split("-")[1])
        except (IndexError, ValueError):
            continue
        if not Path(f"/proc/{pid}").exists():
            try:
                folder.rmdir()
            except OSError:
                pass


@functools.lru_cache(maxsize=1)
def support():
    """``("v2", {controller: parent})``, ``("v1", {controller: parent})`` or ``(None, {})``:
    where this process can make a sandbox's groups (cached)."""
    if os.environ.get("MINIGRAD_GRADER_NO_CGROUPS"):    # to test the fallback and its warning
        return None, {}
    mounts, own = _mounts(), _own_paths()
    parent = _v2_parent(mounts, own)
    if parent is not None:
        _sweep(parent)
        return "v2", {c: parent for c in CONTROLLERS}
    parents = _v1_parents(mounts, own)
    for folder in set(parents.values()):
        _sweep(folder)
    return ("v1", parents) if parents else (None, {})


def not_enforced():
    """What the grader cannot enforce here for a whole sandbox (empty when it can do all)."""
    _, parents = support()
    return [what for c, what in CONTROLLERS.items() if c not in parents]


class Group:
    """The control groups of one sandbox; see the module docstring.

    ``Group(limits)`` makes them with the limits of a :class:`grader.settings.Limits`:
    ``memory`` for the whole sandbox (no swap), ``processes`` as the number of tasks, and a CPU
    quota of :data:`~grader.settings.CPU_CORES` cores at a weight of
    :data:`~grader.settings.CPU_SHARES`. A controller that cannot be set up is left out
    (:attr:`missing` names what it would have enforced).
    """

    def __init__(self, limits):
        self.version, parents = support()
        self.folders, self.missing = {}, []
        name = f"minigrad-{os.getpid()}-{next(_counter)}"
        for controller, what in CONTROLLERS.items():
            parent = parents.get(controller)
            if parent is None:
                self.missing.append(what)
                continue
            folder = parent / name
            try:
                folder.mkdir(exist_ok=True)
                self._configure(controller, folder, limits)
            except OSError:
                self.missing.append(what)
                self._remove(folder)
                continue
            self.folders[controller] = folder

    def _configure(self, controller, folder, limits):
        write = lambda file, value: (folder / file).write_text(str(value))
        if self.version == "v2":
            if controller == "memory":
                write("memory.max", limits.memory)
                if (folder / "memory.swap.max").exists():
                    write("memory.swap.max", 0)
            elif controller == "pids":
                write("pids.max", limits.processes)
            else:
                write("cpu.max", f"{int(CPU_CORES * PERIOD)} {PERIOD}")
                write("cpu.weight", max(1, CPU_SHARES * 100 // 1024))
        elif controller == "memory":
            write("memory.limit_in_bytes", limits.memory)
            if (folder / "memory.memsw.limit_in_bytes").exists():
                write("memory.memsw.limit_in_bytes", limits.memory)
        elif controller == "pids":
            write("pids.max", limits.processes)
        else:
            write("cpu.cfs_period_us", PERIOD)
            write("cpu.cfs_quota_us", int(CPU_CORES * PERIOD))
            write("cpu.shares", CPU_SHARES)

    @property
    def procs(self):
        """The ``cgroup.procs`` files a process writes its pid to, to enter every group."""
        return sorted({str(f / "cgroup.procs") for f in self.folders.values()})

    def oom_kills(self):
        """How many processes the memory limit killed in this group (0 when unknown)."""
        folder = self.folders.get("memory")
        if folder is None:
            return 0
        name = "memory.events" if self.version == "v2" else "memory.oom_control"
        try:
            for line in (folder / name).read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
        except (OSError, ValueError):
            pass
        return 0

    def pids(self):
        """The processes still in the group."""
        found = set()
        for folder in set(self.folders.values()):
            try:
                found.update(int(p) for p in (folder / "cgroup.procs").read_text().split())
            except (OSError, ValueError):
                pass
        return found

    def close(self, timeout=5.0):
        """Kill every process left in the group, then remove it."""
        deadline = time.monotonic() + timeout
        while True:
            left = self.pids()
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            for folder in set(self.folders.values()):
                self._remove(folder)
            if not any(f.exists() for f in self.folders.values()) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        self.folders = {c: f for c, f in self.folders.items() if f.exists()}

    @staticmethod
    def _remove(folder):
        try:
            folder.rmdir()
        except OSError:
            pass
