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

__all__ = ["OutputError", "safe_text", "printable", "clean", "table", "flags", "json_text",
           "csv_text", "csv_cell", "write", "CSV_HEAD", "CSV_TAIL"]


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
def _student(result):
    """" [12345 Lee Jun]" for a result matched to a roster row, else ""."""
    if result.get("student_id"):
        return f" [{printable(result['student_id'])} {printable(result.get('student_name') or '')}]"
    return ""


def flags(result):
    """The identical-submission flags of a result, as sentences (empty when it has none)."""
    out = []
    if result.get("identical_to"):
        out.append("byte-identical to " + ", ".join(result["identical_to"]))
    if result.get("same_code_as"):
        out.append("same code cells as " + ", ".join(result["same_code_as"]))
    return out


def table(result):
    """The score table of one result, every text printable: its head (file, student, chapter,
    score, or ERROR and the reason: never a score), one line per exercise, then a ``FLAG``
    line per identical-submission flag and a ``NOTE`` line per roster or chapter message."""
    head = printable(result["notebook"]) + _student(result)
    if result.get("error"):
        lines = [f"{head}: ERROR (not graded, no score): {printable(result['error'])}"]
    else:
        lines = [f"{head} ({printable(result['chapter'])}): "
                 f"{result['score']:g} / {result['max_score']:g}"]
        for e in result["exercises"]:
            lines.append(f"  {printable(e['id']):<6} {e['points']:>6.2f} / "
                         f"{e['max_points']:<4g} {printable(e['message'])}")
    lines += [f"  FLAG: {printable(f)}" for f in flags(result)]
    lines += [f"  NOTE: {printable(m)}" for m in result.get("messages") or ()]
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


def _lost(result):
    """"id: message" of each exercise of ``result`` that lost points and says why."""
    return [f"{e['id']}: {e['message']}" for e in result.get("exercises") or ()
            if e.get("message") and e["points"] < e["max_points"]]


#: the CSV's columns before the exercises' and after them (see :func:`csv_text`)
CSV_HEAD = ["student_id", "student_name", "notebook", "chapter", "status", "score", "max_score"]
CSV_TAIL = ["flags", "messages", "error"]


def csv_text(results, missing=()):
    """One row per result: :data:`CSV_HEAD`, one column per exercise (its points), then
    :data:`CSV_TAIL`. ``status`` is "graded" or "error"; an error row has no score and no
    points (empty cells), never 0. ``flags`` are the identical-submission flags; ``messages``
    what each exercise that lost points was told ("5.2: your answer is ..."), then the
    roster's and the chapter's notes (joined by " | "). ``missing`` are roster students
    (:class:`grader.roster.Student`) without a file: a row each, of status "missing"."""
    ids = sorted({e["id"] for r in results for e in r["exercises"]}, key=_exercise_key)
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow([csv_cell(c) for c in [*CSV_HEAD, *ids, *CSV_TAIL]])
    for r in results:
        graded = not r.get("error")
        points = {e["id"]: e["points"] for e in r["exercises"]} if graded else {}
        w.writerow([csv_cell(c) for c in [
            r.get("student_id") or "", r.get("student_name") or "", r["notebook"],
            r.get("chapter") or "", r.get("status") or ("graded" if graded else "error"),
            r["score"] if graded else "", r["max_score"] if graded else "",
            *[points.get(i, "") for i in ids],
            " | ".join(flags(r)), " | ".join([*_lost(r), *(r.get("messages") or ())]),
            r.get("error", "")]])
    for student in missing:
        w.writerow([csv_cell(c) for c in [
            student.student_id, student.name, "", "", "missing", "", "", *["" for _ in ids],
            "", "no file of this student was found", ""]])
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
