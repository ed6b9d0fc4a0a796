"""Finding submitted notebooks, and reading each one once: its chapter and its code cells.

:func:`find` lists the ``*.ipynb`` of a folder (any depth, ``.ipynb_checkpoints`` left out)
without opening any of them, and says which ones are skipped and why:

- a file that is not a regular file (a named pipe, a device, a socket, or a symbolic link
  to one) is skipped: opening a named pipe would block the run forever;
- a symbolic link is followed only when its target, every link resolved, is inside the
  graded folder: a submission is what the folder holds, so a link to a file elsewhere (a
  solution notebook, a file of the grader's machine) is skipped and never read;
- a link to a folder is not entered; a sub-folder that cannot be listed is reported.

:func:`read` gives each code cell its exercise (:func:`grader.cells.exercise_map`) and
keeps the sha256 of the file (for :mod:`grader.duplicates`). It opens a file without
blocking, checks again that it is a regular file of at most :data:`MAX_BYTES`, and turns
anything that goes wrong while reading it (not UTF-8, not JSON, nested too deeply for the
parser, a lone surrogate in a code cell, ...) into :class:`NotGradable` with a one-line
reason: one file's error, never the run's.
"""
import dataclasses
import hashlib
import json
import os
import stat
from pathlib import Path

from grader.cells import exercise_map

__all__ = ["NotGradable", "Submission", "Found", "find", "read", "MAX_BYTES"]

#: the largest notebook read (an exercise notebook is far smaller, even with its outputs)
MAX_BYTES = 64 << 20
#: folders whose notebooks are Jupyter's automatic copies, never submissions
SKIPPED_FOLDERS = {".ipynb_checkpoints"}


class NotGradable(Exception):
    """A file that cannot be graded; the message is one line."""


class Submission:
    """A notebook read from ``path``: ``chapter`` (``metadata["minigrad"]["notebook"]``, else
    the file stem), ``cells`` (the sources of its code cells), ``exercises`` (the exercise of
    each code cell, None for the set-up) and ``answers`` (exercise id -> index of its answer
    cell), by the rule of :mod:`grader.cells`.

    Read from a file (:func:`read`), it also has ``metadata_chapter`` (the chapter its
    metadata names, or None when the metadata is gone) and ``digest`` (the sha256 of its
    bytes); neither crosses to the grading process."""

    def __init__(self, path, chapter, cells, exercises=None, answers=None):
        self.path, self.chapter, self.cells = str(path), chapter, cells
        self.exercises = list(exercises) if exercises is not None else [None] * len(cells)
        self.answers = dict(answers or {})
        self.metadata_chapter, self.digest = chapter, None

    def as_json(self):
        return {"path": self.path, "chapter": self.chapter, "cells": self.cells,
                "exercises": self.exercises, "answers": self.answers}

    @classmethod
    def from_json(cls, data):
        return cls(data["path"], data["chapter"], data["cells"], data.get("exercises"),
                   data.get("answers"))


@dataclasses.dataclass(frozen=True)
class Found:
    """One entry of :func:`find`: the ``path`` as it is in the folder, the ``source`` to read
    (the resolved target of a symbolic link), or the one-line ``problem`` that skips it."""

    path: Path
    source: Path = None
    problem: str = None


# ---------------------------------------------------------------- finding
_KINDS = [(stat.S_ISFIFO, "a named pipe"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISDIR, "a folder")]


def _kind(mode):
    """What a file of this ``st_mode`` is, in words."""
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def _inside(path, folder):
    return path == folder or folder in path.parents


def _check(path, root):
    """The :class:`Found` for ``path``, a file listed under the real folder ``root``."""
    try:
        mode = os.lstat(path).st_mode
    except OSError as exc:
        return Found(path, problem=f"cannot read it ({exc.strerror}): skipped")
    source = path
    if stat.S_ISLNK(mode):
        source = Path(os.path.realpath(path))
        if not _inside(source, root):
            return Found(path, problem=f"a symbolic link to {source}, outside the graded "
                                       "folder: skipped (only links inside it are followed)")
        try:
            mode = os.stat(source).st_mode
        except OSError:
            return Found(path, problem="a broken symbolic link: skipped")
        if not stat.S_ISREG(mode):
            return Found(path, problem=f"a symbolic link to {_kind(mode)}, not to a regular "
                                       "file: skipped")
    elif not stat.S_ISREG(mode):
        return Found(path, problem=f"not a regular file ({_kind(mode)}): skipped")
    return Found(path, source=source)


def _walk(top, unreadable):
    """The ``*.ipynb`` paths under the folder ``top``, depth first without recursion (a
    folder nested thousands deep is no problem); links to folders are not entered, and a
    folder that cannot be listed is added to ``unreadable`` with its problem."""
    stack = [Path(top)]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as listing:
                entries = list(listing)
        except OSError as exc:
            unreadable.append(Found(folder, problem=f"a folder that cannot be read "
                                                    f"({exc.strerror})"))
            continue
        for entry in entries:
            try:
                is_folder = entry.is_dir(follow_symlinks=False)
            except OSError:
                is_folder = False
            if is_folder:
                if entry.name not in SKIPPED_FOLDERS:
                    stack.append(folder / entry.name)
            elif entry.name.endswith(".ipynb"):
                yield folder / entry.name


def find(target):
    """The notebooks to grade at ``target``, a notebook or a folder, sorted by path.

    A folder gives every ``*.ipynb`` under it (see the module docstring for what is skipped;
    a skipped file or unreadable sub-folder is a :class:`Found` with a ``problem``); a file
    named on the command line is always taken, and :func:`read` checks it."""
    target = Path(target)
    if not target.is_dir():
        return [Found(target, source=target)]
    root = Path(os.path.realpath(target))
    unreadable = []
    found = [_check(path, root) for path in _walk(target, unreadable)]
    return sorted(found + unreadable, key=lambda f: f.path)


# ---------------------------------------------------------------- reading
def _read_bytes(path):
    """The bytes of the regular file at ``path``, opened without blocking (a named pipe
    swapped in after :func:`find` cannot hang the run); :class:`NotGradable` otherwise."""
    try:
        mode = os.stat(path).st_mode        # a device is never opened
        if not stat.S_ISREG(mode):
            raise NotGradable(f"not a regular file ({_kind(mode)}): skipped")
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except OSError as exc:
        raise NotGradable(f"cannot read it ({exc.strerror})")
    with os.fdopen(fd, "rb") as f:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotGradable(f"not a regular file ({_kind(mode)}): skipped")
        data = f.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise NotGradable(f"too large to be a notebook (over {MAX_BYTES >> 20} MB)")
    return data


def _parse(data):
    """The notebook (nbformat 4) in the bytes ``data``; :class:`NotGradable` saying why not."""
    import nbformat
    import nbformat.reader
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise NotGradable("not a notebook (not a text file)")
    try:
        parsed = json.loads(text)
    except RecursionError:
        raise NotGradable("not a readable notebook (its JSON is nested too deeply)")
    except ValueError as exc:
        raise NotGradable(f"not a notebook (not JSON: {exc.msg} at line {exc.lineno})")
    if not isinstance(parsed, dict) or not isinstance(parsed.get("cells"), list) \
            or "nbformat" not in parsed:
        raise NotGradable("not a notebook (JSON without the 'cells' and 'nbformat' of a "
                          "Jupyter notebook)")
    major, minor = nbformat.reader.get_version(parsed)
    nb = nbformat.versions[major].to_notebook_json(parsed, minor=minor)    # no second parse
    return nb if major == 4 else nbformat.convert(nb, 4)


def _code_cells(nb):
    """The sources of the code cells, each text that a kernel can be sent (UTF-8)."""
    cells = [c.source for c in nb.cells if c.cell_type == "code"]
    for k, source in enumerate(cells):
        if not isinstance(source, str):
            raise ValueError("a code cell's source is not text")
        try:
            source.encode("utf-8")
        except UnicodeEncodeError:
            raise NotGradable(f"not a readable notebook (code cell {k + 1} holds a lone "
                              "surrogate, \\u escape of no character)")
    return cells


def _metadata_chapter(nb):
    """The chapter the notebook's ``minigrad`` metadata names, or None."""
    meta = nb.metadata.get("minigrad", {})
    name = meta.get("notebook") if isinstance(meta, dict) else None
    return name if isinstance(name, str) and name else None


def _submission(nb, path, data):
    named = _metadata_chapter(nb)
    cells = _code_cells(nb)
    exercises, answers = exercise_map(
        (c.cell_type, c.source if isinstance(c.source, str) else "") for c in nb.cells)
    submission = Submission(path, named or Path(path).stem, cells, exercises, answers)
    submission.metadata_chapter = named
    submission.digest = hashlib.sha256(data).hexdigest()
    return submission


def read(path, source=None):
    """The :class:`Submission` at ``path`` (read from ``source``, by default ``path``);
    :class:`NotGradable` with a one-line reason for anything that keeps it from being one."""
    data = _read_bytes(source or path)
    try:
        nb = _parse(data)
        return _submission(nb, path, data)
    except NotGradable:
        raise
    except RecursionError:
        raise NotGradable("not a readable notebook (nested too deeply)")
    except Exception as exc:        # whatever nbformat makes of a malformed notebook
        first = (str(exc).splitlines() or [""])[0][:200]
        raise NotGradable(f"not a readable notebook ({type(exc).__name__}: {first})")
