"""Reading a submitted notebook, once: its chapter and its code cells."""
import json
from pathlib import Path

__all__ = ["NotGradable", "Submission", "read"]


class NotGradable(Exception):
    """A file that cannot be graded; the message is one line."""


class Submission:
    """A notebook read from ``path``: ``chapter`` (``metadata["minigrad"]["notebook"]``, else
    the file stem) and ``cells`` (the sources of its code cells)."""

    def __init__(self, path, chapter, cells):
        self.path, self.chapter, self.cells = str(path), chapter, cells

    def as_json(self):
        return {"path": self.path, "chapter": self.chapter, "cells": self.cells}

    @classmethod
    def from_json(cls, data):
        return cls(data["path"], data["chapter"], data["cells"])


def read(path):
    """The :class:`Submission` at ``path``; :class:`NotGradable` saying why it is not one."""
    import nbformat
    import nbformat.reader
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise NotGradable("not a notebook (not a text file)")
    except OSError as exc:
        raise NotGradable(f"cannot read it ({exc.strerror})")
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise NotGradable(f"not a notebook (not JSON: {exc.msg} at line {exc.lineno})")
    if not isinstance(data, dict) or not isinstance(data.get("cells"), list) or "nbformat" not in data:
        raise NotGradable("not a notebook (JSON without the 'cells' and 'nbformat' of a "
                          "Jupyter notebook)")
    try:
        major, minor = nbformat.reader.get_version(data)
        nb = nbformat.versions[major].to_notebook_json(data, minor=minor)    # no second parse
        if major != 4:
            nb = nbformat.convert(nb, 4)
        cells = [c.source for c in nb.cells if c.cell_type == "code"]
        if not all(isinstance(c, str) for c in cells):
            raise ValueError("a code cell's source is not text")
    except Exception as exc:
        first = (str(exc).splitlines() or [""])[0]
        raise NotGradable(f"not a readable notebook ({type(exc).__name__}: {first})")
    meta = nb.metadata.get("minigrad", {})
    name = meta.get("notebook") if isinstance(meta, dict) else None
    chapter = name if isinstance(name, str) and name else Path(path).stem
    return Submission(path, chapter, cells)
