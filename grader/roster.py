"""A class roster: which student each submitted file belongs to (``--roster roster.csv``).

The roster is a CSV file (UTF-8, a spreadsheet's byte-order mark allowed) with a header row.
Its columns, in any order, the header's case and spaces ignored:

``student_id`` (required)
    the id the gradebook knows the student by; unique, never empty.
``name`` (required)
    the student's name, as the outputs show it.
``login`` (optional)
    what the LMS puts in the student's file names (``lee-jun``); several, separated by
    ``|``. Matched as a whole word of the file's path below the graded folder, ignoring case:
    ``lee-jun`` matches ``lee-jun (1).ipynb``, ``lee-jun_late.ipynb``,
    ``12345_lee-jun_05_composition.ipynb`` and ``lee-jun/05_composition.ipynb``, but not
    ``lee-junior.ipynb`` (letters, digits and ``-`` continue a word; ``_``, spaces, brackets,
    dots and ``/`` end it).
``pattern`` (optional)
    glob patterns (``*``, ``?``, ``[...]``; several, separated by ``|``) matched, ignoring
    case, against the file's path below the graded folder and against its file name alone.

The student id is matched as a whole word too (``12345_lee-jun_05_composition.ipynb``) when
it has at least :data:`MIN_ID_LENGTH` characters (an id ``5`` would match ``hw_5.ipynb``
or a chapter's number: give such students a login). A browser's copy number (`` (1)``) is
removed from a file name before matching, so it never matches an id. Other columns (an LMS
export's e-mail, section, ...) are ignored.

Matching a class folder against the roster:

- a file one row matches gets that row's ``student_id`` and ``student_name``;
- a file no row matches is graded all the same, with an empty student id and the message
  "no roster row matches this file name";
- a file several rows match is graded, with an empty student id and a message naming the
  rows (add a ``pattern`` to tell them apart): it is never given to a student by a guess;
- a row that matches several files (a resubmission: ``lee-jun.ipynb`` and
  ``lee-jun (1).ipynb``) gives each of them the student, and each gets the message that it is
  one of several files of that student: which one counts is the instructor's decision;
- a row that matches no file is a student without a submission: listed on stderr and as a
  row of status ``missing`` in the CSV.

A roster that cannot be read raises :class:`RosterError` naming the row and the column: a
missing required column (with the columns found), an empty student id, a duplicate student
id or login (with both rows), a malformed pattern, a file that is not UTF-8 CSV. Rows are
numbered as a spreadsheet shows them (the header is row 1).
"""
import csv
import fnmatch
import io
import re
from dataclasses import dataclass
from pathlib import Path, PurePath

__all__ = ["RosterError", "Student", "Roster", "load", "parse", "assign", "REQUIRED", "OPTIONAL"]

REQUIRED = ("student_id", "name")
OPTIONAL = ("login", "pattern")
#: a student id shorter than this is not looked for in file names (only its login, pattern)
MIN_ID_LENGTH = 4
#: the largest roster read (a class of thousands is far smaller)
MAX_BYTES = 16 << 20
#: a browser's number for a second download of a file: "lee-jun (1).ipynb"
_COPY_NUMBER = re.compile(r"\s*\(\d+\)(?=\.|$|\s|_)")


class RosterError(Exception):
    """A roster that cannot be used; the message names the file, the row and the column."""


@dataclass(frozen=True)
class Student:
    """One roster row: ``row`` is its number as a spreadsheet shows it (the header is 1)."""

    row: int
    student_id: str
    name: str
    logins: tuple = ()
    patterns: tuple = ()

    def label(self):
        return f"row {self.row} ({self.student_id}, {self.name})"


def _word(key):
    """A regex matching ``key`` as a whole word (letters, digits and '-' continue one)."""
    return re.compile(r"(?<![^\W_])(?<!-)" + re.escape(key.casefold()) + r"(?![^\W_])(?!-)")


def _split(cell):
    return tuple(part.strip() for part in (cell or "").split("|") if part.strip())


class Roster:
    """The rows of a roster, and which of them match a file (see the module docstring)."""

    def __init__(self, students, source="roster"):
        self.students, self.source = list(students), str(source)
        self._words = [(s, [_word(k) for k in (*self._id_key(s), *s.logins)])
                       for s in self.students]

    @staticmethod
    def _id_key(student):
        """The student id as a key, when it is long enough not to be a chapter's number."""
        return (student.student_id,) if len(student.student_id) >= MIN_ID_LENGTH else ()

    def matches(self, relative):
        """The rows that match the file at ``relative`` (its path below the graded folder)."""
        path = PurePath(relative)
        text = _COPY_NUMBER.sub("", path.with_suffix("").as_posix()).casefold()
        whole, name = path.as_posix().casefold(), path.name.casefold()
        found = []
        for student, words in self._words:
            if any(w.search(text) for w in words) or any(
                    fnmatch.fnmatchcase(whole, p.casefold()) or fnmatch.fnmatchcase(
                        name, p.casefold()) for p in student.patterns):
                found.append(student)
        return found


def _header(fields, source):
    """``{column: index}`` of the header row, every required column present."""
    names = [(f or "").strip().lower().replace(" ", "_") for f in fields]
    missing = [c for c in REQUIRED if c not in names]
    if missing:
        shown = ", ".join(repr(f) for f in fields) or "none"
        raise RosterError(f"{source}: row 1 (the header) has no column "
                          f"{' and no column '.join(repr(m) for m in missing)} (columns found: "
                          f"{shown}; required: {', '.join(REQUIRED)}; optional: "
                          f"{', '.join(OPTIONAL)})")
    columns = {}
    for k, name in enumerate(names):
        if name in REQUIRED + OPTIONAL:
            if name in columns:
                raise RosterError(f"{source}: row 1 (the header) has the column {name!r} twice "
                                  f"(columns {columns[name] + 1} and {k + 1})")
            columns[name] = k
    return columns


def parse(text, source="roster"):
    """The :class:`Roster` in the CSV ``text``; :class:`RosterError` naming what is wrong."""
    try:
        rows = list(csv.reader(io.StringIO(text)))
    except csv.Error as exc:
        raise RosterError(f"{source}: not a CSV file ({exc})")
    if not rows:
        raise RosterError(f"{source}: empty: the header row ({', '.join(REQUIRED)}) is missing")
    columns = _header(rows[0], source)
    students, ids, logins = [], {}, {}

    def claim(seen, key, shown, number, what, why):      # a value one row only may have
        if key in seen:
            raise RosterError(f"{source}: row {number} has the {what} {shown!r} of row "
                              f"{seen[key]}: {why}")
        seen[key] = number
    for number, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue                                # a blank line of a spreadsheet export

        def cell(column):
            k = columns.get(column)
            return row[k].strip() if k is not None and k < len(row) else ""
        student_id, name = cell("student_id"), cell("name")
        if not student_id:
            raise RosterError(f"{source}: row {number} has no student_id")
        if not name:
            raise RosterError(f"{source}: row {number} ({student_id}) has no name")
        claim(ids, student_id, student_id, number, "student_id", "each student must be on one row")
        row_logins = _split(cell("login"))
        for login in row_logins:
            claim(logins, login.casefold(), login, number, "login", "a login must name one student")
        patterns = _split(cell("pattern"))
        for pattern in patterns:
            if pattern.count("[") != pattern.count("]"):
                raise RosterError(f"{source}: row {number}, column 'pattern': {pattern!r} "
                                  "has an unclosed '['")
        students.append(Student(number, student_id, name, row_logins, patterns))
    return Roster(students, source)


def load(path):
    """The :class:`Roster` in the file ``path``; :class:`RosterError` naming what is wrong."""
    path = Path(path)
    try:
        if not path.is_file():
            raise RosterError(f"{path}: no such file" if not path.exists()
                              else f"{path}: not a regular file")
        data = path.open("rb").read(MAX_BYTES + 1)
    except OSError as exc:
        raise RosterError(f"{path}: cannot be read ({exc.strerror})")
    if len(data) > MAX_BYTES:
        raise RosterError(f"{path}: too large for a roster (over {MAX_BYTES >> 20} MB)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise RosterError(f"{path}: not UTF-8 text (byte {exc.start}); save it as "
                          "'CSV UTF-8' from the spreadsheet")
    return parse(text, path)


def assign(roster, paths):
    """Match ``paths`` (each a file's path below the graded folder) against ``roster``:
    ``({path: (student or None, [messages])}, [students no file matched])``, by the rules
    of the module docstring."""
    matched = {p: roster.matches(p) for p in paths}
    files_of = {}
    for p, students in matched.items():
        if len(students) == 1:
            files_of.setdefault(students[0], []).append(p)
    out = {}
    for p, students in matched.items():
        if not students:
            out[p] = (None, [f"no row of the roster {Path(roster.source).name} matches this "
                             "file name: match it by hand, or add a login or pattern"])
        elif len(students) > 1:
            rows = "; ".join(s.label() for s in students)
            out[p] = (None, [f"several roster rows match this file name ({rows}): not given "
                             "to any of them; add a pattern to tell them apart"])
        else:
            student, messages = students[0], []
            others = [str(q) for q in files_of[student] if q != p]
            if others:
                messages.append(f"one of {len(others) + 1} files of student "
                                f"{student.student_id} (also: {', '.join(others)}): decide "
                                "which one counts")
            out[p] = (student, messages)
    missing = [s for s in roster.students if s not in files_of]
    return out, missing
