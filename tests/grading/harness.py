"""Run a learner's notebook in its own Jupyter kernel and talk to it with plain data.

The graded tests (``test_NN_*.py`` next to this file) never import the learner's code.
A :class:`Notebook` starts a kernel (the python3 kernel of this environment) in a fresh
temporary folder, runs every code cell in order (a cell that raises or hangs does not stop
the others), and then answers two requests:

``nb.call(name, *args, forbid=())``
    call the notebook's function ``name`` with ``args`` in the kernel;
``nb.eval(expr, forbid=(), **variables)``
    evaluate ``expr`` in a private namespace: a copy of the notebook's globals with
    ``variables`` added, so the learner's own names are not clobbered.

Arguments and results cross as JSON with tagged arrays (``np.save(allow_pickle=False)``,
base64): nothing the notebook produced is ever unpickled, and every comparison happens in
the test process. ``forbid`` names dotted objects ("minigrad.Linear.param_jacobian") that are
replaced in the kernel by a function that raises, for the duration of the request.

Failures in the kernel raise :class:`NotebookError` here, whose ``str`` holds the exception's
type and message; ``short`` is a few words for the score table ("not implemented yet",
"timed out after 20 s", "kernel died", "raised TypeError: ..."). A call that hangs is
interrupted (and the kernel restarted if the interrupt does not work); a kernel that dies
is restarted and the notebook run again, so a later test finds a working kernel.

Safety: before the first cell runs, the kernel installs an audit hook (PEP 578) that refuses
to write into the repository, the Python environment and the grader's folder, and refuses
to start processes. It is a barrier against accidents and plain cheating, not a sandbox:
``scripts/grade.py`` also checks the files that matter before and after each notebook.
"""
import base64
import io
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import nbformat
import numpy as np

__all__ = ["NotebookError", "NotebookTimeout", "KernelDied", "Notebook", "chapter_of",
           "notebook_id", "encode", "decode", "CELL_TIMEOUT", "CALL_TIMEOUT"]

#: seconds one notebook cell may run before it is interrupted
CELL_TIMEOUT = 60.0
#: seconds one call / eval may run before it is interrupted
CALL_TIMEOUT = 20.0
#: seconds to wait for the kernel after an interrupt before restarting it
INTERRUPT_GRACE = 5.0
#: seconds for the kernel to start and answer
STARTUP_TIMEOUT = 60.0
#: a notebook whose kernel dies this many times is given up (every later request fails)
MAX_RESTARTS = 25
#: the mime type the bridge answers with
MIME = "application/x-minigrad-grader"


class NotebookError(Exception):
    """The notebook's code failed a request. ``short`` is the score table's reason."""

    def __init__(self, message, short=None):
        super().__init__(message)
        self.short = short or message


class NotebookTimeout(NotebookError):
    """A request ran longer than its time limit."""


class KernelDied(NotebookError):
    """The kernel process ended during a request."""


# ---------------------------------------------------------------- plain data codec
# The same source runs here and in the kernel, so both sides agree by construction.
CODEC_SOURCE = r'''
import base64 as _b64, io as _io, json as _json, math as _math
import numpy as _np

class _Unsendable(TypeError):
    pass

def _enc(obj, depth=0):
    if depth > 50:
        raise _Unsendable("the value is nested too deeply to send back")
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, int):
        return obj
    if isinstance(obj, float):
        if _math.isfinite(obj):
            return obj
        return {"__float__": repr(obj)}
    if isinstance(obj, complex):
        return {"__complex__": [_enc(obj.real), _enc(obj.imag)]}
    if isinstance(obj, _np.generic) and not isinstance(obj, (_np.void, _np.object_)):
        return _enc(obj.item(), depth + 1)
    if isinstance(obj, _np.ndarray):
        if obj.dtype.hasobject:
            raise _Unsendable("an array of Python objects cannot be sent back; "
                              "return a numeric array")
        buffer = _io.BytesIO()
        _np.save(buffer, _np.ascontiguousarray(obj), allow_pickle=False)
        return {"__ndarray__": _b64.b64encode(buffer.getvalue()).decode("ascii")}
    if isinstance(obj, tuple):
        return {"__tuple__": [_enc(v, depth + 1) for v in obj]}
    if isinstance(obj, list):
        return [_enc(v, depth + 1) for v in obj]
    if isinstance(obj, dict):
        return {"__dict__": [[_enc(k, depth + 1), _enc(v, depth + 1)] for k, v in obj.items()]}
    raise _Unsendable(f"a value of type {type(obj).__name__} cannot be sent back; "
                      "return numbers, arrays, strings, None, or lists/tuples/dicts of them")

def _dec_hook(d):
    if "__ndarray__" in d:
        return _np.load(_io.BytesIO(_b64.b64decode(d["__ndarray__"])), allow_pickle=False)
    if "__tuple__" in d:
        return tuple(d["__tuple__"])
    if "__dict__" in d:
        return {(tuple(k) if isinstance(k, list) else k): v for k, v in d["__dict__"]}
    if "__complex__" in d:
        return complex(*d["__complex__"])
    if "__float__" in d:
        return float(d["__float__"])
    return d

def _dumps(obj):
    return _json.dumps(_enc(obj), allow_nan=False)

def _loads(text):
    return _json.loads(text, object_hook=_dec_hook)
'''

_codec = {}
exec(compile(CODEC_SOURCE, "<grader codec>", "exec"), _codec)


def encode(obj):
    """``obj`` (plain data) as JSON text with tagged arrays."""
    return _codec["_dumps"](obj)


def decode(text):
    """The plain data of JSON text made by :func:`encode` (never unpickles)."""
    return _codec["_loads"](text)


# ---------------------------------------------------------------- the kernel's side
BRIDGE_SOURCE = CODEC_SOURCE + r'''
import builtins as _builtins, importlib as _importlib, os as _os, sys as _sys, traceback as _tb

_PROTECTED = tuple(_os.path.realpath(p) for p in PROTECTED_ROOTS)
_ALLOWED = tuple(_os.path.realpath(p) for p in ALLOWED_ROOTS)
_WRITE_EVENTS = {"os.remove": (0,), "os.rename": (0, 1), "os.mkdir": (0,), "os.rmdir": (0,),
                 "os.symlink": (0, 1), "os.link": (0, 1), "os.chmod": (0,), "os.chown": (0,),
                 "os.truncate": (0,), "os.utime": (0,), "shutil.rmtree": (0,),
                 "shutil.copyfile": (1,), "shutil.copytree": (1,), "shutil.move": (0, 1),
                 "os.removexattr": (0,), "os.setxattr": (0,)}
_PROCESS_EVENTS = {"subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn",
                   "os.fork", "os.forkpty", "pty.spawn", "os.startfile"}

def _protected(path):
    try:
        if isinstance(path, int):
            return False
        p = _os.path.realpath(_os.fsdecode(path))
    except Exception:
        return False
    inside = lambda roots: any(p == r or p.startswith(r + _os.sep) for r in roots)
    return inside(_PROTECTED) and not inside(_ALLOWED)

def _hook(event, args, _protected=_protected, _W=_WRITE_EVENTS, _P=_PROCESS_EVENTS,
          _os_flags=(_os.O_WRONLY | _os.O_RDWR | _os.O_CREAT | _os.O_APPEND | _os.O_TRUNC)):
    if event == "open":
        path, mode, flags = (tuple(args) + (None, None, None))[:3]
        writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
            mode is None and isinstance(flags, int) and flags & _os_flags)
        if writing and _protected(path):
            raise PermissionError(f"the grader does not let a notebook write to {path}")
    elif event in _W:
        for k in _W[event]:
            if k < len(args) and _protected(args[k]):
                raise PermissionError(f"the grader does not let a notebook change {args[k]}")
    elif event in _P:
        raise PermissionError("the grader does not let a notebook start processes")

class ForbiddenError(RuntimeError):
    pass

def _forbidden(name):
    def forbidden(*args, **kwargs):
        raise ForbiddenError(f"{name} is not allowed in this exercise: write it yourself")
    forbidden.__name__ = name.rsplit(".", 1)[-1]
    return forbidden

def _resolve(name):
    parts = name.split(".")
    for i in range(len(parts) - 1, 0, -1):
        try:
            owner = _importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:-1]:
            owner = getattr(owner, attr)
        return owner, parts[-1]
    raise ValueError(f"cannot find {name}")

def _user_ns():
    return get_ipython().user_ns

_MISSING = object()

def _patch(names):
    """Replace each dotted name by a function that raises; the list that undoes it."""
    undo, ns = [], _user_ns()
    for name in names:
        try:
            owner, attr = _resolve(name)
            current = getattr(owner, attr)
        except Exception:
            continue                       # nothing by that name: nothing to forbid
        # keep the raw class attribute (a staticmethod stays one), or note its absence
        own = vars(owner) if isinstance(owner, type) else None
        stored = own.get(attr, _MISSING) if own is not None else current
        replacement = _forbidden(name)
        undo.append((owner, attr, stored))
        setattr(owner, attr, replacement)
        for key, value in list(ns.items()):   # "from minigrad import Softmax" in the notebook
            if value is current and not key.startswith("_"):
                undo.append((ns, key, current))
                ns[key] = replacement
    return undo

def _unpatch(undo):
    for owner, attr, original in reversed(undo):
        if isinstance(owner, dict):
            owner[attr] = original
        elif original is _MISSING:
            delattr(owner, attr)
        else:
            setattr(owner, attr, original)

def _reply(payload):
    from IPython.display import publish_display_data
    publish_display_data({MIME: payload})

def handle(request_text):
    undo = []
    try:
        request = _loads(request_text)
        undo = _patch(request.get("forbid", ()))
        if request["kind"] == "call":
            name = request["name"]
            ns = _user_ns()
            if name not in ns:
                raise NameError(f"the notebook defines no {name!r} (did its cell run?)")
            result = ns[name](*request["args"])
        else:
            ns = dict(_user_ns())
            ns.update(request["variables"])
            result = eval(compile(request["expr"], "<grader>", "eval"), ns)
        text = _dumps(result)
        _reply(_json.dumps({"ok": True, "value": text}))
    except BaseException as exc:
        lines = _tb.format_exception(type(exc), exc, exc.__traceback__)
        _reply(_json.dumps({"ok": False, "type": type(exc).__name__, "message": str(exc),
                            "unsendable": isinstance(exc, _Unsendable),
                            "traceback": "".join(lines[-6:])[-3000:]}))
    finally:
        _unpatch(undo)
'''


def _bridge_install_code(protected, allowed):
    """Code that makes the bridge module in the kernel and installs the audit hook."""
    return textwrap.dedent(f"""
        def _minigrad_grader_setup():
            import sys, sysconfig, types
            module = types.ModuleType("_minigrad_grader_bridge")
            module.get_ipython = get_ipython
            module.MIME = {MIME!r}
            module.PROTECTED_ROOTS = {[str(p) for p in protected]!r} + [sys.prefix] + [
                sysconfig.get_paths()[key] for key in ("purelib", "platlib")]
            module.ALLOWED_ROOTS = {[str(p) for p in allowed]!r}
            exec(compile({BRIDGE_SOURCE!r}, "<grader bridge>", "exec"), module.__dict__)
            sys.modules["_minigrad_grader_bridge"] = module
            sys.addaudithook(module._hook)
        _minigrad_grader_setup()
        del _minigrad_grader_setup
        """)


def chapter_of(nb, path):
    """The chapter the notebook ``nb`` (read from ``path``) is for:
    ``metadata["minigrad"]["notebook"]``, else the file stem."""
    meta = nb.metadata.get("minigrad", {})
    name = meta.get("notebook") if isinstance(meta, dict) else None
    return name if isinstance(name, str) and name else Path(path).stem


def notebook_id(path):
    """The chapter of the notebook file at ``path`` (see ``chapter_of``)."""
    return chapter_of(nbformat.read(str(path), as_version=4), path)


def _fmt_seconds(s):
    return f"{s:g} s"


class Notebook:
    """A notebook running in its own kernel; see the module docstring."""

    def __init__(self, path, *, cell_timeout=CELL_TIMEOUT, call_timeout=CALL_TIMEOUT,
                 protect=(), kernel_name="python3"):
        self.path = Path(path)
        self.cell_timeout = float(cell_timeout)
        self.call_timeout = float(call_timeout)
        self.protect = [Path(p).resolve() for p in protect]
        self.kernel_name = kernel_name
        self.cells = [c.source for c in nbformat.read(str(self.path), as_version=4).cells
                      if c.cell_type == "code"]
        #: cell index -> "ErrorType: message" of the cells that failed in the last run
        self.cell_errors = {}
        self.restarts = 0
        self._skip = set()          # cells that killed or hung the kernel: left out on restart
        self._km = self._kc = None
        self._workdir = None
        self._given_up = None

    # ------------------------------------------------------------ lifecycle
    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.close()

    def start(self):
        """Start a kernel in a fresh folder and run the notebook's cells."""
        from jupyter_client import KernelManager
        self._workdir = tempfile.mkdtemp(prefix="minigrad-notebook-")
        env = dict(os.environ, PYDEVD_DISABLE_FILE_VALIDATION="1")
        env.pop("PYTEST_CURRENT_TEST", None)
        self._km = KernelManager(kernel_name=self.kernel_name)
        # the kernel gets no handle on the grading process's output
        self._km.start_kernel(cwd=self._workdir, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
        self._kc = self._km.client()
        self._kc.start_channels()
        try:
            self._kc.wait_for_ready(timeout=STARTUP_TIMEOUT)
        except RuntimeError as exc:
            raise NotebookError(f"the kernel did not start: {exc}", "kernel did not start")
        allowed = [self._workdir]
        status = self._execute(_bridge_install_code(self.protect, allowed), self.cell_timeout,
                               store_history=False)
        if status["status"] != "ok":
            raise NotebookError(f"could not set up the kernel: {status}", "kernel set-up failed")
        self._run_cells()

    def _run_cells(self):
        self.cell_errors = {}
        for k, source in enumerate(self.cells):
            if k in self._skip:
                self.cell_errors[k] = "skipped (it killed or hung the kernel before)"
                continue
            status = self._execute(source, self.cell_timeout, store_history=True)
            if status["status"] == "ok":
                continue
            self.cell_errors[k] = status.get("error", "")
            if status["status"] in ("died", "stuck"):
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
            try:
                self._km.shutdown_kernel(now=True)
            except Exception:
                pass
            try:
                self._km.cleanup_resources()
            except Exception:
                pass
        if self._workdir:
            shutil.rmtree(self._workdir, ignore_errors=True)
        self._km = self._kc = self._workdir = None

    def _restart(self, rerun=True):
        self._shutdown()
        self.restarts += 1
        if self.restarts > MAX_RESTARTS:
            self._given_up = (f"the kernel died or hung {self.restarts} times; "
                              "the grader gave up on this notebook")
            raise KernelDied(self._given_up, "kernel keeps dying")
        if rerun:
            self.start()
        else:                                   # called from _run_cells: start bare
            cells, self.cells = self.cells, []
            try:
                self.start()
            finally:
                self.cells = cells

    def close(self):
        """Shut the kernel down and remove its folder."""
        self._shutdown()

    # ------------------------------------------------------------ one execution
    def _alive(self):
        try:
            return self._km is not None and self._km.is_alive()
        except Exception:
            return False

    def _execute(self, code, timeout, store_history=False):
        """Run ``code``; a dict with status "ok" / "error" / "timeout" / "died" / "stuck",
        "error" (type and message), "payloads" (the bridge's answers) and "seconds"."""
        kc = self._kc
        msg_id = kc.execute(code, silent=False, store_history=store_history,
                            allow_stdin=False, stop_on_error=False)
        start = time.monotonic()
        deadline = start + timeout
        payloads, error, reply, idle, interrupted = [], None, None, False, False
        while not (idle and reply is not None):
            now = time.monotonic()
            if now > deadline:
                if interrupted:
                    return {"status": "stuck", "error": "did not stop after an interrupt",
                            "payloads": payloads, "seconds": now - start}
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
            if msg is not None and msg.get("parent_header", {}).get("msg_id") == msg_id:
                kind, content = msg["msg_type"], msg["content"]
                if kind == "status" and content.get("execution_state") == "idle":
                    idle = True
                elif kind == "error":
                    error = f"{content.get('ename')}: {content.get('evalue')}"
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
                return {"status": "died", "error": "the kernel died",
                        "payloads": payloads, "seconds": time.monotonic() - start}
        seconds = time.monotonic() - start
        if interrupted:
            return {"status": "timeout", "error": f"timed out after {_fmt_seconds(timeout)}",
                    "payloads": payloads, "seconds": seconds}
        if reply["content"].get("status") != "ok" or error:
            c = reply["content"]
            return {"status": "error", "payloads": payloads, "seconds": seconds,
                    "error": error or f"{c.get('ename')}: {c.get('evalue')}"}
        return {"status": "ok", "payloads": payloads, "seconds": seconds}

    # ------------------------------------------------------------ requests
    def _request(self, request, what):
        if self._given_up:
            raise KernelDied(self._given_up, "kernel keeps dying")
        if not self._alive():
            self._restart()
        code = f"__import__('_minigrad_grader_bridge').handle({encode(request)!r})"
        status = self._execute(code, self.call_timeout)
        if status["status"] in ("timeout", "stuck"):
            if status["status"] == "stuck":
                self._restart()
            limit = _fmt_seconds(self.call_timeout)
            raise NotebookTimeout(f"{what} timed out after {limit}", f"timed out after {limit}")
        if status["status"] == "died":
            code_ = None
            try:
                code_ = self._km.provisioner.process.returncode if self._km else None
            except Exception:
                pass
            self._restart()
            detail = f" (exit code {code_})" if code_ is not None else ""
            raise KernelDied(f"the kernel died during {what}{detail}; it was restarted "
                             "and the notebook run again", "kernel died")
        answers = [decode_answer(p) for p in status["payloads"]]
        answers = [a for a in answers if a is not None]
        if not answers:
            raise NotebookError(f"{what} gave no answer ({status.get('error', 'no output')})",
                                "no answer from the notebook")
        answer = answers[-1]
        if answer["ok"]:
            return decode(answer["value"])
        etype, message = answer["type"], answer["message"]
        if etype == "NotImplementedError":
            raise NotebookError(f"{what}: not implemented yet (NotImplementedError: {message})",
                                "not implemented yet")
        if answer.get("unsendable"):
            raise NotebookError(f"{what}: {message}", "returned something that is not plain data")
        if etype == "KeyboardInterrupt":
            limit = _fmt_seconds(self.call_timeout)
            raise NotebookTimeout(f"{what} was interrupted", f"timed out after {limit}")
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
    """The bridge's answer dict from a display payload, or None when it is not one."""
    try:
        answer = json.loads(payload)
    except (TypeError, ValueError):
        return None
    if not isinstance(answer, dict) or "ok" not in answer:
        return None
    return answer
