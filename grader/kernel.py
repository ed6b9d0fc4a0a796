"""One learner's notebook in its own Jupyter kernel, and plain-data requests to it.

A :class:`Notebook` starts a kernel (in a :mod:`grader.sandbox` unless told not to),
runs every code cell in order (a cell that raises or hangs does not stop the others), and
answers two requests:

``nb.call(name, *args, forbid=())``
    call the notebook's function ``name`` with ``args`` in the kernel;
``nb.eval(expr, forbid=(), **variables)``
    evaluate ``expr`` over a copy of the notebook's globals with ``variables`` added.

Arguments and results cross as plain data (:mod:`grader.codec`): nothing the notebook
produced is unpickled, and every comparison happens in the grading process.

Failures raise :class:`NotebookError`, whose ``short`` is a few words for the score table
("not implemented yet", "timed out after 20 s", "kernel died", "memory limit 4 GB
exceeded", "raised TypeError: ..."). A request that hangs is interrupted, and the kernel
killed and started again if the interrupt does not work; a kernel that dies is started
again and the notebook run again (without the cells that killed or hung it), so a later
test finds a working kernel. Every wait is also bounded by the notebook's whole time limit.

In the sandbox, each kernel start gets its own control groups (:mod:`grader.cgroups`, where
the grader has them: the memory limit's kills are named as such) and its sockets are reached
through a :class:`grader.relay.Relay`, which cuts the kernel off when one message or one
execution sends more than :class:`~grader.settings.Limits` allows (named as the output
limit). The kernel's host folder holds only its connection file (read-only inside) and the
relay's sockets, and is removed with :func:`remove_tree`.
"""
import errno
import os
import sys
import queue
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import zmq
from jupyter_client import KernelManager

from grader import sandbox
from grader.cells import error_line
from grader.cgroups import Group
from grader.codec import decode, encode
from grader.relay import Relay
from grader.settings import (INTERRUPT_GRACE, MAX_RESTARTS, MIME, STARTUP_TIMEOUT, Limits,
                             format_bytes)

__all__ = ["NotebookError", "NotebookTimeout", "KernelDied", "LimitExceeded", "Notebook",
           "make_lib", "decode_answer", "remove_tree"]


class NotebookError(Exception):
    """The notebook's code failed a request. ``short`` is the score table's reason."""

    def __init__(self, message, short=None):
        super().__init__(message)
        self.short = short or message


class NotebookTimeout(NotebookError):
    """A request ran longer than its time limit."""


class KernelDied(NotebookError):
    """The kernel process ended during a request."""


class LimitExceeded(NotebookError):
    """The notebook went over one of its resource limits (memory, output, ...)."""


def make_lib(dest, *packages):
    """Copy the packages (imported modules, e.g. ``grader``, ``minigrad``) into ``dest``:
    the folder a kernel and a grading run import them from. Returns ``dest``."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    dest.chmod(0o755)           # a kernel runs as a user of its own: it must read this
    for package in packages:
        source = Path(package.__file__).resolve().parent
        shutil.copytree(source, dest / source.name,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".*"))
    return dest


def _seconds(s):
    return f"{s:g} s"


def remove_tree(path):
    """Remove ``path`` and everything under it, however deep, ignoring errors.

    ``rm -rf`` walks a tree of any depth relative to open folders; Python's ``shutil.rmtree``
    recurses and its paths grow, so 3,000 nested folders raise RecursionError (or
    ENAMETOOLONG) there. It is only the fallback where ``rm`` is missing."""
    rm = shutil.which("rm")
    if rm:
        subprocess.run([rm, "-rf", "--one-file-system", "--", str(path)],
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    if os.path.lexists(path):
        shutil.rmtree(path, ignore_errors=True)


class _SandboxedKernelManager(KernelManager):
    """A kernel manager whose kernel runs in the sandbox, its sockets inside it, reached
    through a :class:`grader.relay.Relay` that caps what the kernel sends."""

    sandbox_options = None      # set per instance: dict(lib=, limits=, cgroup_procs=)
    user_options = None         # or, without bwrap, dict(limits=, cgroup_procs=)
    relay = None
    relay_prefix = None         # where the relay listens (a folder only the grader sees)

    def format_kernel_cmd(self, extra_arguments=None):
        argv = super().format_kernel_cmd(extra_arguments)
        if self.sandbox_options is None and self.user_options is None:
            return argv
        uid = sandbox.kernel_uid()
        if uid != os.getuid():              # the kernel's user must read its connection file
            os.chown(self.connection_file, uid, uid)
        if self.user_options is not None:
            return sandbox.user_command(argv, **self.user_options)
        argv = [sandbox.CONNECTION_FILE if a == self.connection_file else a for a in argv]
        if argv and argv[0] == sys.executable:      # a venv reached through a link: its real folder
            argv[0] = sandbox.python_executable()
        return sandbox.command(argv, connection_file=self.connection_file,
                               **self.sandbox_options)

    async def _async_post_start_kernel(self, **kw):
        if self.sandbox_options is not None:
            pid, inside, found = self.provisioner.process.pid, self.ip, []

            def target():
                if not found:
                    root = sandbox.sandbox_root(pid)
                    if root is None:
                        return None
                    found.append(f"{root}{inside}")
                return found[0]

            limits = self.sandbox_options["limits"]
            self.relay = Relay(self.relay_prefix, target, self.ports,
                               message_bytes=limits.message_bytes,
                               execution_bytes=limits.execution_bytes)
            self.ip = self.relay_prefix         # the grading process connects to the relay
        await super()._async_post_start_kernel(**kw)


class Notebook:
    """A notebook running in its own kernel; see the module docstring.

    ``cells`` are the sources of its code cells, ``lib`` the folder the kernel imports
    ``grader`` and ``minigrad`` from (see :func:`make_lib`), ``limits`` a
    :class:`grader.settings.Limits`; ``use_sandbox=False`` runs the kernel with the
    grader's own rights (only for notebooks one trusts), unless ``kernel_user`` (the grader
    being root) runs it as a user of its own (:func:`grader.sandbox.user_command`): its
    connection file, home and socket folders are then its own, the rest of this kernel's
    folder not even listable, and the packages that differentiate are stand-ins found first on
    its ``PYTHONPATH`` (:func:`grader.sandbox.make_standins`).
    """

    def __init__(self, cells, *, lib, limits=Limits(), use_sandbox=True, kernel_user=False,
                 name="notebook"):
        self.cells = list(cells)
        self.lib = Path(lib)
        self.limits = limits
        self.use_sandbox = use_sandbox
        self.kernel_user = kernel_user and not use_sandbox
        self.name = name
        #: cell index -> "ErrorType: message" of the cells that failed in the last run
        self.cell_errors = {}
        #: cell index -> the line of the cell where its error arose (from the kernel's
        #: traceback), for the failed cells that have one
        self.cell_lines = {}
        self.restarts = 0
        self._skip = set()          # cells that killed or hung the kernel: left out on restart
        self._km = self._kc = None
        self._folder = None
        self._group = None
        self._given_up = None
        self._deadline = None

    # ------------------------------------------------------------ lifecycle
    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.close()

    def start(self):
        """Start a kernel and run the notebook's cells."""
        if self._deadline is None:
            self._deadline = time.monotonic() + self.limits.notebook_timeout
        self._folder = Path(tempfile.mkdtemp(prefix="minigrad-kernel-"))
        context = zmq.Context()
        # a single frame over the message cap is dropped by zmq, never held here (a message of
        # many frames is cut by the relay)
        context.setsockopt(zmq.MAXMSGSIZE, self.limits.message_bytes)
        context.setsockopt(zmq.RCVHWM, 64)
        km = _SandboxedKernelManager(kernel_name="python3", transport="ipc", context=context,
                                     connection_file=str(self._folder / "kernel.json"))
        km.kernel_spec.interrupt_mode = "message"      # a signal would reach bwrap, not Python
        if self.use_sandbox:
            self._group = Group(self.limits)
            km.ip = f"{sandbox.SOCKETS}/kernel"        # inside the sandbox
            km.relay_prefix = str(self._folder / "relay")
            km.sandbox_options = {"lib": self.lib, "limits": self.limits,
                                  "cgroup_procs": self._group.procs}
            env, cwd = sandbox.environment(self.lib), str(self._folder)
        elif self.kernel_user:
            uid = sandbox.kernel_uid()
            self._folder.chmod(0o711)       # its user reaches its own folders and file only
            home, sockets = self._folder / "home", self._folder / "sockets"
            for folder in (home, sockets):
                folder.mkdir(mode=0o700)
                os.chown(folder, uid, uid)
            self._group = Group(self.limits)
            km.ip = str(sockets / "kernel")
            km.user_options = {"limits": self.limits, "cgroup_procs": self._group.procs}
            env, cwd = sandbox.environment(self.lib, home=home), str(home)
            standins = sandbox.make_standins(self._folder / "standins", self.lib)
            env["PYTHONPATH"] += f"{os.pathsep}{standins}"     # before the installed packages
        else:
            home = self._folder / "home"
            home.mkdir()
            km.ip = str(self._folder / "kernel")
            env, cwd = sandbox.environment(self.lib, home=home), str(home)
        self._km = km
        # the kernel gets no handle on the grading process's output
        km.start_kernel(cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._kc = km.client()
        self._kc.start_channels()
        try:
            self._kc.wait_for_ready(timeout=min(STARTUP_TIMEOUT, self._left()))
        except RuntimeError as exc:
            raise NotebookError(f"the kernel did not start: {exc}", "kernel did not start")
        status = self._execute("import grader.bridge", self.limits.cell_timeout)
        if status["status"] != "ok":
            raise NotebookError(f"could not set up the kernel: {status.get('error')}",
                                "kernel set-up failed")
        self._run_cells()

    def _left(self):
        """Seconds left of the notebook's whole time limit."""
        return max(0.0, self._deadline - time.monotonic())

    def _run_cells(self):
        self.cell_errors, self.cell_lines = {}, {}
        for k, source in enumerate(self.cells):
            if k in self._skip:
                self.cell_errors[k] = "skipped (it killed or hung the kernel before)"
                continue
            status = self._execute(source, self.limits.cell_timeout, store_history=True)
            if status["status"] == "ok":
                continue
            self.cell_errors[k] = status.get("error", "")
            if status.get("line"):
                self.cell_lines[k] = status["line"]
            if status["status"] in ("died", "stuck", "output"):
                self._skip.add(k)
                self._restart(rerun=False)
                return self._run_cells()

    def _shutdown(self):
        if self._kc is not None:
            try:
                self._kc.stop_channels()
            except Exception:
                pass
        if self._km is not None:
            try:    # SIGKILL to bwrap: its PID namespace, and every process in it, ends
                self._km.shutdown_kernel(now=True)
            except Exception:
                pass
            try:
                self._km.cleanup_resources()
            except Exception:
                pass
            try:
                self._km.context.destroy(linger=0)
            except Exception:
                pass
            if self._km.relay is not None:
                self._km.relay.close()
            if self._km.user_options is not None:   # whatever its user left running
                sandbox.end_user_processes(sandbox.kernel_uid())
        if self._group is not None:
            self._group.close()
        if self._folder:
            remove_tree(self._folder)
        self._km = self._kc = self._folder = self._group = None

    def _restart(self, rerun=True):
        self._shutdown()
        self.restarts += 1
        if self.restarts > MAX_RESTARTS:
            self._given_up = (f"the kernel died or hung {self.restarts} times; "
                              "the grader gave up on this notebook")
            raise KernelDied(self._given_up, "kernel keeps dying")
        if self._left() <= 0:
            self._given_up = self._out_of_time()
            raise NotebookTimeout(self._given_up, self._given_up)
        if rerun:
            self.start()
        else:                                   # called from _run_cells: start bare
            cells, self.cells = self.cells, []
            try:
                self.start()
            finally:
                self.cells = cells

    def _out_of_time(self):
        return f"time limit of {_seconds(self.limits.notebook_timeout)} for the notebook exceeded"

    def close(self):
        """Shut the kernel down (and every process it started) and remove its folder."""
        self._shutdown()

    # ------------------------------------------------------------ one execution
    def _alive(self):
        try:
            return self._km is not None and self._km.is_alive()
        except Exception:
            return False

    def _exit_reason(self):
        """Why the kernel ended, from the sandbox's exit status, or None."""
        try:
            code = self._km.provisioner.process.poll()
        except Exception:
            return None
        if code is None:
            return None
        if self._group is not None and self._group.oom_kills():
            return f"memory limit {format_bytes(self.limits.memory)} exceeded"
        signum = code - 128 if code > 128 else -code if code < 0 else None
        if signum == signal.SIGXCPU:
            return f"CPU time limit {self.limits.cpu_time} s exceeded"
        if signum == signal.SIGXFSZ:
            return f"file size limit {format_bytes(self.limits.file_size)} exceeded"
        if signum:
            return f"killed by {signal.Signals(signum).name}" if signum in signal.valid_signals() \
                else f"exit code {code}"
        return f"exit code {code}"

    def _execute(self, code, timeout, store_history=False):
        """Run ``code``; a dict with status "ok" / "error" / "timeout" / "died" / "stuck" /
        "output", "error" (type and message), "payloads" (the bridge's answers), "seconds"."""
        kc, relay = self._kc, self._km.relay
        if relay is not None:
            relay.reset()
        msg_id = kc.execute(code, silent=False, store_history=store_history,
                            allow_stdin=False, stop_on_error=False)
        start = time.monotonic()
        deadline = start + min(timeout, self._left())
        timed_out_by_notebook = timeout > self._left()
        payloads, error, reply, idle, interrupted, received = [], None, None, False, False, 0
        line = None
        while not (idle and reply is not None):
            now = time.monotonic()
            if now > deadline:
                if interrupted:
                    limit = self._out_of_time() if timed_out_by_notebook else \
                        f"timed out after {_seconds(timeout)} (did not stop when interrupted)"
                    return {"status": "stuck", "error": limit, "payloads": payloads,
                            "seconds": now - start}
                interrupted = True
                try:
                    self._km.interrupt_kernel()
                except Exception:
                    pass
                deadline = now + INTERRUPT_GRACE
            try:
                msg = kc.get_iopub_msg(timeout=0.2)
            except queue.Empty:
                msg = None
            if relay is not None and relay.overflow:
                return {"status": "output", "payloads": [], "seconds": now - start,
                        "error": f"output limit {format_bytes(self.limits.output)} exceeded "
                                 f"({relay.overflow})"}
            if msg is not None and msg.get("parent_header", {}).get("msg_id") == msg_id:
                kind, content = msg["msg_type"], msg["content"]
                received += len(str(content)) if kind != "status" else 0
                if received > self.limits.output:
                    return {"status": "output", "payloads": [], "seconds": now - start,
                            "error": f"output limit {format_bytes(self.limits.output)} exceeded"}
                if kind == "status" and content.get("execution_state") == "idle":
                    idle = True
                elif kind == "error":
                    error = f"{content.get('ename')}: {content.get('evalue')}"
                    try:
                        line = error_line(content.get("traceback"))
                    except Exception:       # a traceback of the kernel's making: no line
                        line = None
                elif kind == "display_data" and MIME in content.get("data", {}):
                    payloads.append(content["data"][MIME])
            if reply is None:
                try:
                    r = kc.get_shell_msg(timeout=0)
                    if r.get("parent_header", {}).get("msg_id") == msg_id:
                        reply = r
                except queue.Empty:
                    pass
            if msg is None and not self._alive():
                reason = self._exit_reason()
                return {"status": "died", "payloads": payloads, "reason": reason,
                        "error": "the kernel died" + (f" ({reason})" if reason else ""),
                        "seconds": time.monotonic() - start}
        seconds = time.monotonic() - start
        if interrupted:
            limit = self._out_of_time() if timed_out_by_notebook else \
                f"timed out after {_seconds(timeout)}"
            return {"status": "timeout", "error": limit, "payloads": payloads, "seconds": seconds}
        if reply["content"].get("status") != "ok" or error:
            c = reply["content"]
            return {"status": "error", "payloads": payloads, "seconds": seconds, "line": line,
                    "error": error or f"{c.get('ename')}: {c.get('evalue')}"}
        return {"status": "ok", "payloads": payloads, "seconds": seconds}

    # ------------------------------------------------------------ requests
    def _limit_message(self, etype, message):
        """The limit a kernel-side exception reports hitting, or None."""
        if etype == "MemoryError":
            return f"memory limit {format_bytes(self.limits.memory)} exceeded"
        if f"[Errno {errno.EFBIG}]" in message:
            return f"file size limit {format_bytes(self.limits.file_size)} exceeded"
        if f"[Errno {errno.ENOSPC}]" in message:
            return (f"disk space limit exceeded (temp and home folders of "
                    f"{format_bytes(self.limits.file_size)} each)")
        if f"[Errno {errno.EAGAIN}]" in message and etype in ("BlockingIOError", "OSError",
                                                                "RuntimeError"):
            return f"process limit {self.limits.processes} exceeded"
        return None

    def _request(self, request, what):
        if self._given_up:
            raise NotebookError(self._given_up, self._given_up if "time limit" in
                                self._given_up else "kernel keeps dying")
        if not self._alive():
            self._restart()
        request = dict(request, output_limit=self.limits.output)
        code = f"__import__('grader.bridge').bridge.handle({encode(request)!r})"
        status = self._execute(code, self.limits.call_timeout)
        if status["status"] in ("timeout", "stuck"):
            if status["status"] == "stuck":
                self._restart()
            raise NotebookTimeout(f"{what}: {status['error']}", status["error"])
        if status["status"] == "output":
            self._restart()
            raise LimitExceeded(f"{what}: {status['error']}", status["error"])
        if status["status"] == "died":
            reason = status.get("reason")
            self._restart()
            detail = f" ({reason})" if reason else ""
            limit = reason if reason and "limit" in reason else None
            raise (LimitExceeded if limit else KernelDied)(
                f"the kernel died during {what}{detail}; it was restarted and the notebook "
                "run again", limit or "kernel died")
        answers = [a for a in map(decode_answer, status["payloads"]) if a is not None]
        if not answers:
            raise NotebookError(f"{what} gave no answer ({status.get('error', 'no output')})",
                                "no answer from the notebook")
        answer = answers[-1]
        if answer["ok"]:
            try:
                return decode(answer["value"])
            except Exception as exc:
                raise NotebookError(f"{what}: the answer is not plain data ({exc})",
                                    "returned something that is not plain data")
        etype, message = str(answer.get("type")), str(answer.get("message"))
        if etype == "NotImplementedError":
            raise NotebookError(f"{what}: not implemented yet (NotImplementedError: {message})",
                                "not implemented yet")
        if answer.get("unsendable"):
            raise NotebookError(f"{what}: {message}", "returned something that is not plain data")
        if etype == "OutputLimitExceeded":
            raise LimitExceeded(f"{what}: {message}", message)
        if etype == "KeyboardInterrupt":
            limit = f"timed out after {_seconds(self.limits.call_timeout)}"
            raise NotebookTimeout(f"{what} was interrupted", limit)
        limit = self._limit_message(etype, message)
        if limit:
            raise LimitExceeded(f"{what}: {limit} ({etype}: {message})", limit)
        short = f"raised {etype}: {message}"
        if len(short) > 120:
            short = short[:117] + "..."
        raise NotebookError(f"{what} raised {etype}: {message}\n{answer.get('traceback', '')}",
                            short)

    def call(self, name, *args, forbid=()):
        """``name(*args)`` in the notebook's kernel, as plain data."""
        return self._request({"kind": "call", "name": name, "args": list(args),
                              "forbid": list(forbid)}, f"{name}(...)")

    def eval(self, expr, forbid=(), **variables):
        """``expr`` evaluated over the notebook's globals plus ``variables``, as plain data."""
        what = expr if len(expr) <= 60 else expr[:57] + "..."
        return self._request({"kind": "eval", "expr": expr, "variables": variables,
                              "forbid": list(forbid)}, f"evaluating {what}")


def decode_answer(payload):
    """The bridge's answer (a dict with "ok") from a display payload, or None."""
    import json
    try:
        answer = json.loads(payload)
    except (TypeError, ValueError):
        return None
    if not isinstance(answer, dict) or "ok" not in answer:
        return None
    return answer
