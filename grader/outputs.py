"""The results of a grading run as text: the score table, the JSON and the CSV.

Learner text (messages, file names, chapters from metadata) reaches every output through
:func:`clean`, so no output can fail on it:

- a lone surrogate never reaches an encoder: an undecodable byte of a file name (Python
  reads ``M\\xfcller.ipynb`` of a latin-1 archive as ``"M\\udcfcller.ipynb"``) is shown as
  ``\\xfc``, any other surrogate (a ``ValueError("\\ud800")``) as ``\\ud800``;
- the table escapes every character that is not printable (terminal escapes, carriage
  returns, bidirectional overrides), see :func:`printable`;
- a CSV cell is printable text too, and one a spreadsheet would run as a formula (leading
  ``=``, ``+``, ``-``, ``@``, after any spaces) gets a leading ``'``, in every column.

:func:`write` writes an output file whole or not at all, and raises :class:`OutputError`
naming the file and the reason (a full disk, a missing folder, ...).
"""
import csv
import io
import json
import os
import re
import tempfile
from pathlib import Path

__all__ = ["OutputError", "safe_text", "printable", "clean", "table", "json_text",
           "csv_text", "csv_cell", "write"]


class OutputError(Exception):
    """An output file that could not be written; the message names it and says why."""


# ---------------------------------------------------------------- learner text
_SURROGATE = re.compile("[\ud800-\udfff]")


def _escape_surrogate(match):
    code = ord(match.group())
    if 0xDC80 <= code <= 0xDCFF:               # an undecodable byte (os.fsdecode)
        return f"\\x{code - 0xDC00:02x}"
    return f"\\u{code:04x}"


def safe_text(text):
    """``text`` without lone surrogates, which no strict UTF-8 write accepts: a byte of a
    file name that is not UTF-8 as ``\\xNN``, any other surrogate as ``\\uNNNN``."""
    return _SURROGATE.sub(_escape_surrogate, str(text))


def printable(text):
    """``text`` (surrogate-safe) with every character that is not printable (control
    characters, escape sequences, carriage returns, bidirectional overrides) shown as its
    escape, so a message or a file name cannot rewrite the terminal or a report."""
    text = safe_text(text)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def clean(value):
    """``value`` (a result: dicts, lists, numbers, text) with every text surrogate-safe."""
    if isinstance(value, str):
        return safe_text(value)
    if isinstance(value, dict):
        return {clean(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    return value


# ---------------------------------------------------------------- the three outputs
def table(result):
    """The score table of one result, every text printable."""
    head = printable(result["notebook"])
    if result.get("error"):
        return f"{head}: ERROR: {printable(result['error'])}"
    lines = [f"{head} ({printable(result['chapter'])}): "
             f"{result['score']:g} / {result['max_score']:g}"]
    for e in result["exercises"]:
        lines.append(f"  {printable(e['id']):<6} {e['points']:>6.2f} / {e['max_points']:<4g} "
                     f"{printable(e['message'])}")
    return "\n".join(lines)


def json_text(value):
    """A result, or a list of them, as JSON text (ASCII: every other character escaped)."""
    return json.dumps(clean(value), indent=1, allow_nan=False) + "\n"


#: what a spreadsheet reads as the start of a formula
_FORMULA_START = ("=", "+", "-", "@")


def csv_cell(value):
    """A CSV cell: numbers as they are; text printable, with a leading ``'`` when a
    spreadsheet would run it as a formula."""
    if not isinstance(value, str):
        return value
    text = printable(value)
    return "'" + text if text.lstrip().startswith(_FORMULA_START) else text


def _exercise_key(s):
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in s.split("."))


def csv_text(results):
    """One row per result and one column per exercise (its points), then the error."""
    ids = sorted({e["id"] for r in results for e in r["exercises"]}, key=_exercise_key)
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow([csv_cell(c) for c in ["notebook", "score", "max_score", *ids, "error"]])
    for r in results:
        points = {e["id"]: e["points"] for e in r["exercises"]}
        w.writerow([csv_cell(c) for c in [r["notebook"], r["score"], r["max_score"],
                                          *[points.get(i, "") for i in ids],
                                          r.get("error", "")]])
    return out.getvalue()


# ---------------------------------------------------------------- files
def _umask():
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write(path, text):
    """Write ``text`` (UTF-8) to ``path``, whole or not at all.

    A regular file (or a new one) is written beside itself and renamed into place, so a full
    disk leaves the previous file or none, never half of one; anything else that exists
    (``/dev/stdout``, a pipe) is written directly. :class:`OutputError` on failure."""
    data = text.encode("utf-8", "backslashreplace")
    target = Path(os.path.realpath(path))
    try:
        if target.exists() and not target.is_file():
            with open(target, "wb") as f:
                f.write(data)
            return
        fd, part = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.chmod(part, 0o666 & ~_umask())
            os.replace(part, target)
        except BaseException:
            try:
                os.unlink(part)
            except OSError:
                pass
            raise
    except OSError as exc:
        raise OutputError(f"{printable(path)}: {exc.strerror or exc}")
