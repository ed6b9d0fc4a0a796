"""The bubblewrap sandbox and the resource limits of a learner's kernel.

:func:`command` wraps a kernel's command line in ``bwrap`` so that the kernel

- sees a file system made of the system's programs and libraries, the Python
  environment and the grader's copy of ``grader``/``minigrad`` (all read-only), a private
  ``/tmp`` and home folder (fresh ``tmpfs``, gone with the kernel) and the one folder of
  its Jupyter sockets: never the repository, the solutions, another kernel's folder or
  the grading reports;
- has no network (its own network namespace: not even the host's 127.0.0.1), its own PID,
  IPC and UTS namespaces, and dies with the grading process (``--die-with-parent``; the
  PID namespace ends every process it started, however detached);
- runs under ``prlimit``: address space, file size and CPU time per process, and (when the
  grader runs as root, which lets the kernel run as a user of its own) a number of
  processes.

The kernel talks to the grading process over Unix sockets in its socket folder (jupyter's
``ipc`` transport): TCP on 127.0.0.1 does not cross a network namespace.

:func:`check` tells whether ``bwrap`` works here, with a message saying what to do when it
does not.
"""
import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path

__all__ = ["SandboxUnavailable", "check", "command", "environment", "kernel_uid", "HOME"]

#: the kernel's home folder inside the sandbox (a fresh tmpfs)
HOME = "/home/learner"
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
    """Every namespace but the user's when root (so the kernel can become a user of its own,
    which gives the process limit a meaning); all of them otherwise."""
    if _root():
        return ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
                "--unshare-cgroup-try"]
    return ["--unshare-all"]


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


def environment(lib, home=HOME):
    """The whole environment of a kernel: nothing of the grader's own is passed on."""
    return {"HOME": str(home), "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
            "PYTHONPATH": str(lib), "PYTHONDONTWRITEBYTECODE": "1", "LANG": "C.UTF-8",
            "MPLCONFIGDIR": f"{home}/.matplotlib", "PYDEVD_DISABLE_FILE_VALIDATION": "1",
            "TMPDIR": "/tmp" if home == HOME else str(home), "OPENBLAS_NUM_THREADS": "1",
            "OMP_NUM_THREADS": "1"}


def command(argv, *, lib, sockets, limits):
    """``argv`` (a kernel's command line) run in a sandbox; see the module docstring.

    ``lib`` is the folder with the grader's copies of ``grader`` and ``minigrad`` (read-only,
    first on ``PYTHONPATH``: see :func:`environment`); ``sockets`` the kernel's socket
    folder (writable, owned by :func:`kernel_uid`); ``limits`` a
    :class:`grader.settings.Limits`. Returns the full command line.
    """
    bwrap = check()
    # the kernel's parent is the sandbox's init: ipykernel's poller of its parent's pid
    # would see the grader as gone (--die-with-parent does that job)
    args = [bwrap, *_namespaces(), "--die-with-parent", "--unsetenv", "JPY_PARENT_PID",
            "--proc", "/proc", "--dev", "/dev"]
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
    size = str(limits.file_size)
    args += ["--perms", "1777", "--size", size, "--tmpfs", "/tmp",
             "--perms", "0755", "--dir", "/home",
             "--perms", "1777", "--size", size, "--tmpfs", HOME, "--chdir", HOME]
    made = {"/tmp", "/home", HOME}
    for root in [*_python_roots(), str(lib)]:
        args += _dirs_to(root, made) + ["--ro-bind", root, root]
    args += _dirs_to(sockets, made) + ["--bind", str(sockets), str(sockets)]
    uid = kernel_uid()
    user = []
    if _root():
        args += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
        user = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
                "--inh-caps=-all", "--bounding-set=-all"]
    rlimits = ["prlimit", f"--as={limits.memory}", f"--fsize={limits.file_size}",
               f"--cpu={limits.cpu_time}:{limits.cpu_time + 5}", "--core=0"]
    if _root():
        rlimits.append(f"--nproc={limits.processes}")
    return [*args, "--", *user, *rlimits, "--", *argv]
