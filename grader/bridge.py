"""The kernel's side: answers the grading process's requests (imported in the kernel).

The grading process sends ``grader.bridge.handle(request_text)`` as an execution; the
request is JSON (see :mod:`grader.codec`):

- ``{"kind": "call", "name", "args", "forbid"}``: ``name(*args)`` from the notebook's globals;
- ``{"kind": "eval", "expr", "variables", "forbid"}``: ``expr`` over a copy of the
  notebook's globals with ``variables`` added.

``output_limit`` caps what the request may print (see :class:`_Capped`). ``forbid`` names
dotted objects ("minigrad.Linear.param_jacobian") replaced, for the
duration of the request, by a function that raises. The answer is published as display data
of type :data:`grader.settings.MIME`: ``{"ok": true, "value"}`` or ``{"ok": false, "type",
"message", "unsendable", "traceback"}``.

Nothing here is trusted by the grading process: the notebook can replace this module, and
all it gains is control over its own answers, which are compared there.
"""
import contextlib
import importlib
import json
import sys
import traceback

from grader.codec import Unsendable, decode, encode
from grader.settings import MIME, format_bytes

__all__ = ["ForbiddenError", "OutputLimitExceeded", "handle"]

_MISSING = object()


class ForbiddenError(RuntimeError):
    """A function the exercise must not use was called."""


class OutputLimitExceeded(RuntimeError):
    """A graded call printed more than the output limit."""


class _Capped:
    """A text stream that raises :class:`OutputLimitExceeded` past ``limit`` characters.

    This names the limit in the score table for an honest notebook that prints too much;
    the grading process enforces the limit itself (it stops reading past it, and drops
    any single message much larger), so a notebook that gets around this gains nothing."""

    def __init__(self, stream, limit, used):
        self._stream, self._limit, self._used = stream, limit, used

    def write(self, text):
        self._used[0] += len(text)
        if self._used[0] > self._limit:
            raise OutputLimitExceeded(f"output limit {format_bytes(self._limit)} exceeded")
        return self._stream.write(text)

    def __getattr__(self, name):
        return getattr(self._stream, name)


@contextlib.contextmanager
def _capped_output(limit):
    if not limit:
        yield
        return
    used = [0]
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _Capped(sys.stdout, limit, used), _Capped(sys.stderr, limit, used)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved


def _forbidden(name):
    def forbidden(*args, **kwargs):
        raise ForbiddenError(f"{name} is not allowed in this exercise: write it yourself")
    forbidden.__name__ = name.rsplit(".", 1)[-1]
    return forbidden


def _resolve(name):
    """The object that owns the dotted ``name``, and the attribute's name."""
    parts = name.split(".")
    for i in range(len(parts) - 1, 0, -1):
        try:
            owner = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:-1]:
            owner = getattr(owner, attr)
        return owner, parts[-1]
    raise ValueError(f"cannot find {name}")


def _user_ns():
    from IPython import get_ipython
    return get_ipython().user_ns


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


def _reply(answer):
    from IPython.display import publish_display_data
    publish_display_data({MIME: json.dumps(answer)})


def handle(request_text):
    """Answer one request (see the module docstring); never raises."""
    undo = []
    try:
        request = decode(request_text)
        undo = _patch(request.get("forbid", ()))
        with _capped_output(request.get("output_limit")):
            if request["kind"] == "call":
                name, ns = request["name"], _user_ns()
                if name not in ns:
                    raise NameError(f"the notebook defines no {name!r} (did its cell run?)")
                result = ns[name](*request["args"])
            else:
                ns = dict(_user_ns())
                ns.update(request["variables"])
                result = eval(compile(request["expr"], "<grader>", "eval"), ns)
        _reply({"ok": True, "value": encode(result)})
    except BaseException as exc:
        lines = traceback.format_exception(type(exc), exc, exc.__traceback__)
        _reply({"ok": False, "type": type(exc).__name__, "message": str(exc),
                "unsendable": isinstance(exc, Unsendable),
                "traceback": "".join(lines[-6:])[-3000:]})
    finally:
        _unpatch(undo)
