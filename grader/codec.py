"""The plain data that crosses between the grading process and a kernel.

Values travel as JSON; arrays as ``np.save(allow_pickle=False)`` bytes in base64, tuples,
dicts, complex numbers and non-finite floats as tagged objects. Nothing is ever unpickled.
The same module runs on both sides (the kernel imports it from the grader's copy), so both
agree by construction.
"""
import base64
import io
import json
import math

import numpy as np

__all__ = ["Unsendable", "encode", "decode", "MAX_DEPTH"]

#: deeper nesting than this is refused (a cycle, or a value no test needs)
MAX_DEPTH = 50


class Unsendable(TypeError):
    """A value that is not plain data (numbers, arrays, strings, None, containers)."""


def _enc(obj, depth=0):
    if depth > MAX_DEPTH:
        raise Unsendable("the value is nested too deeply to send back")
    if obj is None or isinstance(obj, (bool, str, int)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else {"__float__": repr(obj)}
    if isinstance(obj, complex):
        return {"__complex__": [_enc(obj.real), _enc(obj.imag)]}
    if isinstance(obj, np.generic) and not isinstance(obj, (np.void, np.object_)):
        return _enc(obj.item(), depth + 1)
    if isinstance(obj, np.ndarray):
        if obj.dtype.hasobject:
            raise Unsendable("an array of Python objects cannot be sent back; "
                             "return a numeric array")
        buffer = io.BytesIO()
        np.save(buffer, np.ascontiguousarray(obj), allow_pickle=False)
        return {"__ndarray__": base64.b64encode(buffer.getvalue()).decode("ascii")}
    if isinstance(obj, tuple):
        return {"__tuple__": [_enc(v, depth + 1) for v in obj]}
    if isinstance(obj, list):
        return [_enc(v, depth + 1) for v in obj]
    if isinstance(obj, dict):
        return {"__dict__": [[_enc(k, depth + 1), _enc(v, depth + 1)] for k, v in obj.items()]}
    raise Unsendable(f"a value of type {type(obj).__name__} cannot be sent back; "
                     "return numbers, arrays, strings, None, or lists/tuples/dicts of them")


def _dec_hook(d):
    if "__ndarray__" in d:
        return np.load(io.BytesIO(base64.b64decode(d["__ndarray__"])), allow_pickle=False)
    if "__tuple__" in d:
        return tuple(d["__tuple__"])
    if "__dict__" in d:
        return {(tuple(k) if isinstance(k, list) else k): v for k, v in d["__dict__"]}
    if "__complex__" in d:
        return complex(*d["__complex__"])
    if "__float__" in d:
        return float(d["__float__"])
    return d


def encode(obj):
    """``obj`` (plain data) as JSON text with tagged arrays; :class:`Unsendable` otherwise."""
    return json.dumps(_enc(obj), allow_nan=False)


def decode(text):
    """The plain data of JSON text made by :func:`encode` (never unpickles)."""
    return json.loads(text, object_hook=_dec_hook)
