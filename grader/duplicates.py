"""Identical submissions in a class folder: byte-identical files, and files with the same code.

Two kinds of sameness are flagged, never penalised (the instructor decides):

- *byte-identical*: the same sha256 of the file's bytes (one file handed in twice, or a copy
  made with ``cp``);
- *same code*: the code cells are the same once comments, blank lines and trailing spaces are
  left out (:func:`code_key`), while the files differ (outputs run again, markdown edited,
  metadata stripped). Two notebooks whose code is the untouched exercise template are not
  flagged: that is nothing handed in, not copying; the template is the exercise notebook of
  the chapter (``exercises/<chapter>.ipynb``) when the repository has it.
"""
import hashlib
import io
import tokenize
from pathlib import Path

__all__ = ["code_key", "find_identical", "template_keys"]


def _cell_key(source):
    """A cell's code without comments, blank lines or trailing spaces."""
    try:
        tokens = [t for t in tokenize.generate_tokens(io.StringIO(source).readline)
                  if t.type not in (tokenize.COMMENT, tokenize.NL)]
        return tokenize.untokenize(
            (t.type, t.string) for t in tokens).strip()
    except Exception:           # anything tokenize makes of a cell that is not Python
        lines = [line.rstrip() for line in source.splitlines()]
        return "\n".join(line for line in lines if line and not line.lstrip().startswith("#"))


def code_key(cells):
    """The sha256 of the code cells ``cells``, comments and blank lines left out (empty cells
    left out too)."""
    keys = [k for k in map(_cell_key, cells) if k]
    return hashlib.sha256("\n\x00\n".join(keys).encode("utf-8", "backslashreplace")).hexdigest()


def template_keys(chapters, folder):
    """``{chapter: code_key}`` of the exercise notebooks ``folder/<chapter>.ipynb`` that exist
    and read; a chapter without one is left out."""
    from grader import notebooks
    keys = {}
    for chapter in chapters:
        path = Path(folder) / f"{chapter}.ipynb"
        try:
            keys[chapter] = code_key(notebooks.read(path).cells)
        except Exception:       # no template (a student's copy of the course): nothing to skip
            continue
    return keys


def find_identical(submissions, templates=None):
    """``{path: {"identical_to": [paths], "same_code_as": [paths]}}`` for every submission
    (a :class:`grader.notebooks.Submission` read from a file) that has a twin; ``templates``
    is :func:`template_keys`'s ``{chapter: code_key}`` (untouched templates are not
    flagged as the same code)."""
    templates = templates or {}
    by_digest, by_code = {}, {}
    for s in submissions:
        if s.digest:
            by_digest.setdefault(s.digest, []).append(s.path)
        key = code_key(s.cells)
        if templates.get(s.chapter) != key:
            by_code.setdefault(key, []).append(s)
    flags = {}
    for paths in by_digest.values():
        for p in paths:
            if len(paths) > 1:
                flags.setdefault(p, {"identical_to": [], "same_code_as": []})[
                    "identical_to"] = [q for q in paths if q != p]
    for group in by_code.values():
        for s in group:
            others = [t.path for t in group if t.digest != s.digest or not s.digest]
            others = [q for q in others if q != s.path]
            if others:
                flags.setdefault(s.path, {"identical_to": [], "same_code_as": []})[
                    "same_code_as"] = others
    return flags
