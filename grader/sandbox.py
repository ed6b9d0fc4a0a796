"""The bubblewrap sandbox and the resource limits of a learner's kernel.

:func:`command` wraps a kernel's command line in ``bwrap`` so that the kernel

- sees a file system made of the system's programs and libraries, the Python
  environment and the grader's copy of ``grader``/``minigrad`` (all read-only), in which
  every package that differentiates (:data:`grader.settings.AUTODIFF_PACKAGES`) is replaced by
  the stand-in :mod:`grader.standin`;
- can write only to size-capped ``tmpfs`` file systems of its own mount namespace, gone with
  it whatever they hold: ``/tmp``, its home folder, ``/dev/shm`` and its socket folder
  (:data:`SOCKETS`); the root, ``/dev`` and every bind are read-only, and nothing of the
  host is writable;
- has no network (its own network namespace: not even the host's 127.0.0.1), its own PID,
  IPC, UTS and cgroup namespaces, and dies with the grading process (``--die-with-parent``;
  the PID namespace ends every process it started, however detached);
- cannot make user namespaces (``--disable-userns``), so it cannot mount a file system of its
  own;
- runs at the lowest CPU priority (nice :data:`~grader.settings.NICE`, and its autogroup too)
  under ``prlimit``: address space, file size and CPU time per process, and a number of
  processes; when the grader has control groups (:mod:`grader.cgroups`), the whole sandbox
  also has one memory, process and CPU budget.

As root, the outer ``bwrap`` sets up the namespaces and mounts, and the kernel then runs as a
user of its own (:func:`kernel_uid`) in a second, unprivileged ``bwrap`` that only makes the
user namespace that forbids more of them. Without root, one ``bwrap`` does both.

Where ``bwrap`` cannot run but the grader is root (Gradescope's containers), :func:`user_command`
is a middle level: the kernel runs as that user of its own without ``bwrap``, under the same
limits, and the grader keeps what decides a grade out of its reach by file permissions
(:func:`check_user_level`, :func:`make_standins`, :func:`end_user_processes`).

The kernel's Jupyter sockets (the ``ipc`` transport) are in :data:`SOCKETS`, inside the
sandbox; the grading process reaches them through ``/proc/<pid>/root`` (see
:mod:`grader.relay`). The connection file is bound read-only at :data:`CONNECTION_FILE`.

:func:`check` tells whether ``bwrap`` works here, with a message saying what to do when it
does not.
"""
import functools
import glob
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from grader import cgroups
from grader.settings import AUTODIFF_PACKAGES, NICE, SOCKETS_SIZE

__all__ = ["SandboxUnavailable", "check", "command", "environment", "kernel_uid", "HOME",
           "check_user_level", "user_command", "user_level_note", "make_standins",
           "readable_by_others", "end_user_processes", "kill",
           "SOCKETS", "CONNECTION_FILE", "autodiff_paths", "sandbox_root", "not_enforced"]

#: the kernel's home folder inside the sandbox (a fresh tmpfs)
HOME = "/home/learner"
#: the kernel's socket folder inside the sandbox (a small tmpfs) and its connection file
SOCKETS = "/run/kernel"
CONNECTION_FILE = "/run/kernel.json"
#: files of /etc a Python process reads (others, like shadow or the host's keys, stay out)
ETC_FILES = ["ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "nsswitch.conf",
             "passwd", "group", "fonts", "mime.types"]
#: the uids of kernels when grading as root: this base plus the grading process's pid
UID_BASE = 1_500_000_000


class SandboxUnavailable(RuntimeError):
    """``bwrap`` is missing or cannot create its namespaces here."""


def _bwrap():
    return shutil.which("bwrap")


@functools.lru_cache(maxsize=1)
def check():
    """Raise :class:`SandboxUnavailable` (saying why and what to do) unless ``bwrap`` can
    run a process in new namespaces here; the path of ``bwrap`` otherwise."""
    bwrap = _bwrap()
    if bwrap is None:
        raise SandboxUnavailable(
            "bubblewrap (bwrap) is not installed: install Debian's 'bubblewrap' package "
            "(make grade does it: scripts/ensure_bwrap.sh), or grade without a sandbox with "
            "--no-sandbox, only for notebooks you trust")
    probe = [bwrap, *_namespaces(), "--die-with-parent", "--ro-bind", "/", "/", "true"]
    try:
        run = subprocess.run(probe, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SandboxUnavailable(f"bwrap cannot run here ({exc})")
    if run.returncode != 0:
        detail = run.stderr.strip().splitlines()[-1] if run.stderr.strip() else f"exit {run.returncode}"
        raise SandboxUnavailable(
            f"bwrap cannot create its sandbox here ({detail}); user namespaces may be "
            "disabled (sysctl kernel.unprivileged_userns_clone / user.max_user_namespaces). "
            "Grade without a sandbox with --no-sandbox, only for notebooks you trust")
    return bwrap


def _root():
    return os.geteuid() == 0


def _namespaces():
    """Every namespace but the user's when root (the inner ``bwrap`` makes that one, as the
    kernel's own user); all of them otherwise."""
    if _root():
        return ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
                "--unshare-cgroup-try"]
    return ["--unshare-all"]


def _drop_to_kernel_user():
    uid = kernel_uid()
    return ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
            "--inh-caps=-all", "--bounding-set=-all"]


@functools.lru_cache(maxsize=1)
def _userns_guard():
    """How the kernel is kept from making user namespaces: "bwrap" (its own ``bwrap
    --disable-userns``), "impossible" (its user cannot make one here anyway), or "none"."""
    bwrap = _bwrap()
    if bwrap is None:
        return "none"
    drop = _drop_to_kernel_user() if _root() else []
    quiet = {"stdin": subprocess.DEVNULL, "stdout": subprocess.DEVNULL,
             "stderr": subprocess.DEVNULL, "timeout": 30}
    try:
        if subprocess.run([*drop, bwrap, "--unshare-user", "--disable-userns", "--ro-bind",
                           "/", "/", "true"], **quiet).returncode == 0:
            return "bwrap"
        if subprocess.run([*drop, "unshare", "--user", "true"], **quiet).returncode != 0:
            return "impossible"
    except (OSError, subprocess.TimeoutExpired):
        pass
    return "none"


def not_enforced():
    """A warning naming the limits of the whole sandbox this machine does not enforce, or
    None when it enforces them all (see :mod:`grader.cgroups`)."""
    missing = cgroups.not_enforced()
    if _userns_guard() == "none":
        missing = ["no user namespaces inside the sandbox", *missing]
    if not missing:
        return None
    return (f"not enforced on this machine: {', '.join(missing)} (no control group the grader "
            "may write: cgroup v2 delegated to it, or cgroup v1 as root); each kernel process "
            "still has its own limits (address space, CPU time, file size, and processes when "
            f"grading as root) and runs at nice {NICE}")


def kernel_uid():
    """The uid the kernel runs as: one of its own when grading as root, else ours."""
    return UID_BASE + os.getpid() if _root() else os.getuid()


def _dirs_to(path, made):
    """``--dir`` arguments (mode 0755) for every missing ancestor of ``path`` in the sandbox
    (bwrap would make them 0700, which a kernel of another uid cannot cross)."""
    args = []
    parts = Path(path).parts
    for k in range(2, len(parts)):
        d = str(Path(*parts[:k]))
        if d not in made:
            made.add(d)
            args += ["--perms", "0755", "--dir", d]
    return args


def _python_roots():
    """The folders the environment's Python needs: the environment and its base install."""
    roots = {os.path.realpath(sys.prefix), os.path.realpath(sys.base_prefix),
             os.path.realpath(os.path.dirname(os.path.realpath(sys.executable)) + "/..")}
    # keep only outermost folders
    return sorted(r for r in roots if not any(r != o and r.startswith(o + os.sep) for o in roots))


def python_executable():
    """The environment's Python with its folder's links resolved but not its own: a venv reached
    through a link (say under /tmp, which the sandbox hides) still runs as that venv."""
    return os.path.join(os.path.realpath(os.path.dirname(sys.executable)), os.path.basename(sys.executable))


def environment(lib, home=HOME):
    """The whole environment of a kernel: nothing of the grader's own is passed on."""
    return {"HOME": str(home), "PATH": f"{Path(python_executable()).parent}:/usr/bin:/bin",
            "PYTHONPATH": str(lib), "PYTHONDONTWRITEBYTECODE": "1", "LANG": "C.UTF-8",
            "MPLCONFIGDIR": f"{home}/.matplotlib", "PYDEVD_DISABLE_FILE_VALIDATION": "1",
            "PYTHONNOUSERSITE": "1",
            "TMPDIR": "/tmp" if home == HOME else str(home), "OPENBLAS_NUM_THREADS": "1",
            "OMP_NUM_THREADS": "1"}


def _site_folders():
    """Every folder a Python of the sandbox could import packages from (existing ones)."""
    folders = set()
    for root in [*_python_roots(), "/usr", "/usr/local"]:
        for pattern in ("lib/python3*/site-packages", "lib/python3*/dist-packages",
                        "lib/python3/dist-packages", "lib64/python3*/site-packages"):
            folders.update(os.path.realpath(p) for p in glob.glob(os.path.join(root, pattern)))
    return sorted(f for f in folders if os.path.isdir(f))


def autodiff_paths():
    """The installed modules of :data:`~grader.settings.AUTODIFF_PACKAGES`, each a folder
    (a package) or a ``.py`` file, wherever the sandbox's Python could find them."""
    found = []
    for folder in _site_folders():
        for name in AUTODIFF_PACKAGES:
            for path in (os.path.join(folder, name), os.path.join(folder, name + ".py")):
                if os.path.isdir(path) and not os.path.islink(path) or os.path.isfile(path):
                    found.append(path)
    return found


def _standin_binds(lib):
    """``--ro-bind`` arguments that put :mod:`grader.standin` over every autodiff module."""
    standin = Path(lib) / "grader" / "standin"
    args = []
    for path in autodiff_paths():
        source = standin if os.path.isdir(path) else standin / "__init__.py"
        args += ["--ro-bind", str(source), path]
    return args


def sandbox_root(pid):
    """The sandbox's root folder seen from the host: ``/proc/<pid>/root`` of the child of
    ``bwrap`` (``pid``) that lives in a mount namespace and a root of its own, or None (not
    yet)."""
    try:
        ours, host = os.readlink("/proc/self/ns/mnt"), os.stat("/")
    except OSError:
        return None
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                ppid = int(f.read().rsplit(b")", 1)[1].split()[1])
            root = f"/proc/{entry.name}/root"
            if ppid == pid and os.readlink(f"/proc/{entry.name}/ns/mnt") != ours:
                inside = os.stat(root)
                if (inside.st_dev, inside.st_ino) != (host.st_dev, host.st_ino):
                    return root
        except (OSError, ValueError, IndexError):
            continue
    return None


#: a launcher that puts itself (and so everything it starts) into the given cgroups, lowers
#: its autogroup's priority, then runs the rest of its arguments
_LAUNCHER = ('while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; shift; '
             'echo %d > /proc/$$/autogroup 2>/dev/null; exec "$@"' % NICE)


def command(argv, *, lib, connection_file, limits, cgroup_procs=()):
    """``argv`` (a kernel's command line) run in a sandbox; see the module docstring.

    ``lib`` is the folder with the grader's copies of ``grader`` and ``minigrad`` (read-only,
    first on ``PYTHONPATH``: see :func:`environment`); ``connection_file`` the kernel's
    connection file on the host (bound read-only at :data:`CONNECTION_FILE`, which ``argv``
    should name; its ``ip`` is under :data:`SOCKETS`); ``limits`` a
    :class:`grader.settings.Limits`; ``cgroup_procs`` the ``cgroup.procs`` files of the
    sandbox's control groups (see :mod:`grader.cgroups`), entered before ``bwrap`` starts.
    Returns the full command line.
    """
    bwrap = check()
    size = str(limits.file_size)
    # the kernel's parent is the sandbox's init: ipykernel's poller of its parent's pid
    # would see the grader as gone (--die-with-parent does that job)
    args = [bwrap, *_namespaces(), "--die-with-parent", "--unsetenv", "JPY_PARENT_PID",
            "--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--size", size,
            "--tmpfs", "/dev/shm", "--remount-ro", "/dev"]
    guard = _userns_guard() == "bwrap"
    if not _root():
        args[1:1] = ["--unshare-user", "--disable-userns"] if guard else []
    for name in ("bin", "lib", "lib32", "lib64", "sbin", "usr"):
        p = Path("/") / name
        if p.is_symlink():
            args += ["--symlink", os.readlink(p), str(p)]
        elif p.is_dir():
            args += ["--ro-bind", str(p), str(p)]
    for name in ETC_FILES:
        p = Path("/etc") / name
        if p.exists():
            args += ["--ro-bind", str(p), str(p)]
    args += ["--perms", "1777", "--size", size, "--tmpfs", "/tmp",
             "--perms", "0755", "--dir", "/home",
             "--perms", "1777", "--size", size, "--tmpfs", HOME, "--chdir", HOME,
             "--perms", "0755", "--dir", "/run",
             "--perms", "1777", "--size", str(SOCKETS_SIZE), "--tmpfs", SOCKETS,
             "--ro-bind", str(connection_file), CONNECTION_FILE]
    made = {"/tmp", "/home", HOME, "/run", SOCKETS}
    for root in [*_python_roots(), str(lib)]:
        args += _dirs_to(root, made) + ["--ro-bind", root, root]
    args += _standin_binds(lib)
    args += ["--remount-ro", "/"]
    inner = []
    if _root():
        args += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
        inner = _drop_to_kernel_user()
        if guard:
            inner += [bwrap, "--unshare-user", "--disable-userns", "--die-with-parent",
                      "--bind", "/", "/", "--"]
    return [*_launcher(cgroup_procs), *args, "--", *inner, *_rlimits(limits), "--", *argv]


def _rlimits(limits):
    """``prlimit`` with the per-process limits of ``limits`` (a
    :class:`grader.settings.Limits`), to put before a command."""
    rlimits = ["prlimit", f"--as={limits.memory}", f"--fsize={limits.file_size}",
               f"--cpu={limits.cpu_time}:{limits.cpu_time + 5}", "--core=0", "--nice=0"]
    if _root():     # a user of its own: RLIMIT_NPROC counts the kernel's processes only
        rlimits.append(f"--nproc={limits.processes}")
    return rlimits


def _launcher(cgroup_procs):
    """The start of a kernel's command line: enter the control groups, lower the priority."""
    return ["/bin/sh", "-c", _LAUNCHER, "launch", *map(str, cgroup_procs), "--",
            "nice", "-n", str(NICE)]


# ---------------------------------------------------------------- the "user" level
def check_user_level():
    """Raise :class:`SandboxUnavailable` (saying why) unless a kernel can run as a user of its
    own without ``bwrap`` here: the grader must be root and have ``setpriv`` and ``prlimit``."""
    if not _root():
        raise SandboxUnavailable("running each kernel as a user of its own needs the grader "
                                 "to run as root")
    missing = [tool for tool in ("setpriv", "prlimit") if shutil.which(tool) is None]
    if missing:
        raise SandboxUnavailable(f"{' and '.join(missing)} not found: install util-linux")
    hidden = [p for p in [os.path.realpath(sys.executable), *_python_roots()]
              if not readable_by_others(p)]
    if hidden:
        raise SandboxUnavailable(
            f"a user of its own cannot reach the Python environment ({hidden[0]}: it or a "
            "folder above it is not readable by others); install Python where every user "
            "can run it")


def user_command(argv, *, limits, cgroup_procs=()):
    """``argv`` (a kernel's command line) run without ``bwrap`` as a user of its own
    (:func:`kernel_uid`: no group, no capability, no new privileges), under the same
    ``prlimit`` limits, nice value and control groups as in the sandbox; see README.md, "What
    isolates a submission on Gradescope". Only for a grader running as root
    (:func:`check_user_level`)."""
    # no new privileges: a set-user-id program (su, mount, ...) would run as its kernel's user
    return [*_launcher(cgroup_procs), *_drop_to_kernel_user(), "--no-new-privs",
            *_rlimits(limits), "--", *argv]


def make_standins(folder, lib):
    """Fill ``folder`` with a copy of :mod:`grader.standin` (from ``lib``) under the name of
    every package of :data:`~grader.settings.AUTODIFF_PACKAGES`: on a kernel's ``PYTHONPATH``,
    before the installed packages, it stands in for them without a mount. Returns ``folder``."""
    folder = Path(folder)
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    for name in AUTODIFF_PACKAGES:
        shutil.copytree(Path(lib) / "grader" / "standin", folder / name,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return folder


def user_level_note():
    """What the output says when kernels run as users of their own: the level, and any
    package that differentiates their user can still import (the stand-in needs ``bwrap``)."""
    importable = sorted({Path(p).name.removesuffix(".py") for p in autodiff_paths()
                         if readable_by_others(p)})
    note = ("kernels run WITHOUT bwrap, each as an unprivileged user of its own (no network "
            "or file system isolation beyond file permissions; see README.md, What isolates a "
            "submission on Gradescope)")
    if importable:
        note += ("; packages that differentiate, behind their stand-ins, its user can still "
                 "read (make them unreadable by others, as setup.sh does): "
                 + ", ".join(importable))
    missing = cgroups.not_enforced()
    if missing:
        note += f"; not enforced on this machine: {', '.join(missing)}"
    return note


def readable_by_others(path):
    """True when a user that owns nothing and belongs to no group (the kernel's, see
    :func:`user_command`) can read ``path``: every folder above it searchable by others, and
    ``path`` readable by them (ACLs are not looked at)."""
    path = Path(os.path.realpath(path))
    try:
        for folder in path.parents:
            if not os.stat(folder).st_mode & 0o001:
                return False
        return bool(os.stat(path).st_mode & 0o004)
    except OSError:
        return False


def end_user_processes(uid, rounds=10):
    """Kill every process whose user (real, effective, saved or file system) is ``uid`` (a
    kernel's own user: what it started, detached or not); the number killed. Only meaningful
    for a uid of its own."""
    killed = set()
    for _ in range(rounds):
        found = []
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                try:        # "Uid:" real, effective, saved, file system
                    with open(f"{entry.path}/status", "rb") as f:
                        uids = next(line for line in f if line.startswith(b"Uid:")).split()[1:]
                    if str(uid).encode() in uids:
                        found.append(int(entry.name))
                except (OSError, StopIteration):
                    continue
        if not found:
            break
        killed |= kill(found)
        time.sleep(0.05)
    return len(killed)


def kill(pids):
    """Send SIGKILL to each of ``pids``; the set of those it reached (one already gone, or
    not ours to signal, is left out)."""
    reached = set()
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
            reached.add(pid)
        except OSError:
            pass
    return reached
