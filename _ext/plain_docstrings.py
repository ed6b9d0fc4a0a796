"""Let autodoc render minigrad's plain-text docstrings without reST surprises.

minigrad's docstrings are written for ``help()``: formulas in plain text such as
``|z|`` or ``||y - t||^2``, and ``#:`` comments on constants that read
``Topic: explanation``. Read as reST (the API reference page, book/11_api.md):

- ``|z|`` is a substitution reference, an error under ``-W``: every ``|``
  outside an inline literal is escaped;
- napoleon takes the first line of a constant's or a property's docstring as
  ``type: text``, so "Levenberg-Marquardt" (a constant) and "The weights (o, m)"
  (``Linear.W``) became unresolved types under ``-n``: for constants and
  properties the docstring as it was before napoleon is put back after napoleon ran.

Changes nothing in the library.
"""
import re

#: an inline literal ``...`` (left as it is) or anything else
_LITERAL = re.compile(r"(``.+?``)")


def escape_bars(line):
    """Escape ``|`` outside inline literals, so docutils shows it as written."""
    parts = _LITERAL.split(line)
    return "".join(p if p.startswith("``") and p.endswith("``") and len(p) > 4
                   else p.replace("|", "\\|") for p in parts)


#: the kinds of object whose docstrings napoleon would read as "type: text"
_AS_WRITTEN = ("data", "attribute", "property")
#: docstrings of constants and properties before napoleon saw them, by full name
_BEFORE_NAPOLEON = {}


def before_napoleon(app, what, name, obj, options, lines):
    if not name.startswith("minigrad"):
        return
    lines[:] = [escape_bars(line) for line in lines]
    if what in _AS_WRITTEN:
        _BEFORE_NAPOLEON[name] = list(lines)


def after_napoleon(app, what, name, obj, options, lines):
    if what in _AS_WRITTEN and name in _BEFORE_NAPOLEON:
        lines[:] = _BEFORE_NAPOLEON.pop(name)


def setup(app):
    app.setup_extension("sphinx.ext.autodoc")
    # napoleon's own handler has the default priority, 500
    app.connect("autodoc-process-docstring", before_napoleon, priority=400)
    app.connect("autodoc-process-docstring", after_napoleon, priority=600)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
