"""Which exercise each cell of a notebook belongs to, and a failed cell in words a student can
act on ("SyntaxError in the cell of exercise 5.2, line 4: '(' was never closed").

Shared by the grader (the graded message of an exercise names the failed cell it depends on)
and by :mod:`grader.selfcheck` (which runs without the graded tests), so it imports nothing
but the standard library.

The rule that gives a code cell its exercise: the exercise notebooks have a markdown heading
``## Exercise 5.2: ...`` per exercise, and the cell the student fills in opens with the comment
``# Exercise 5.2: ...``. Walking the notebook in order, either of them starts exercise 5.2;
every code cell from there to the next one belongs to it (its answer cell, its helpers, its
check cells). Code cells before the first exercise are the set-up. The *answer cell* of an
exercise is its code cell that opens with the ``# Exercise`` comment (else its first code
cell). Both marks are looked for, so a notebook whose markdown was deleted, or whose comment
was deleted, still maps.
"""
import ast
import re

__all__ = ["EXERCISE_HEADING", "EXERCISE_COMMENT", "exercise_map", "defined_names",
           "error_line", "strip_ansi", "describe_failure", "missing_name"]

#: a markdown heading line that starts an exercise: ``## Exercise 5.2: ...``
EXERCISE_HEADING = re.compile(r"^\s{0,3}#{1,6}\s*Exercise\s+(\d+(?:\.\d+)*)\b", re.IGNORECASE)
#: the first line of an answer cell: ``# Exercise 5.2: ...``
EXERCISE_COMMENT = re.compile(r"^\s*#+\s*Exercise\s+(\d+(?:\.\d+)*)\b", re.IGNORECASE)

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
#: a frame of a cell in IPython's traceback: ``Cell In[3], line 4``
_CELL_FRAME = re.compile(r"Cell In\s*\[(\d*)\],\s*line (\d+)")
#: the "(1234.py, line 4)" IPython adds to a SyntaxError's message
_SYNTAX_WHERE = re.compile(r"\s*\([^()]*, line \d+\)\s*$")


def _first_line(source):
    return next((line for line in source.splitlines() if line.strip()), "")


def exercise_map(cells):
    """``(exercises, answers)`` for ``cells``, a notebook's cells as ``(cell_type, source)``
    pairs: ``exercises`` has one entry per *code* cell (its exercise id, or None for the
    set-up), ``answers`` maps an exercise id to the index (among code cells) of its answer
    cell. See the module docstring for the rule."""
    current, exercises, answers, first = None, [], {}, {}
    for cell_type, source in cells:
        if cell_type == "markdown":
            for line in source.splitlines():
                match = EXERCISE_HEADING.match(line)
                if match:
                    current = match.group(1)
            continue
        if cell_type != "code":
            continue
        match = EXERCISE_COMMENT.match(_first_line(source))
        if match:
            current = match.group(1)
            answers.setdefault(current, len(exercises))
        if current is not None:
            first.setdefault(current, len(exercises))
        exercises.append(current)
    for exercise, index in first.items():
        answers.setdefault(exercise, index)
    return exercises, answers


_DEFINITION = re.compile(r"^(?:async\s+)?(?:def|class)\s+(\w+)|^(\w+)\s*(?::[^=]*)?=(?!=)")


def defined_names(source):
    """The names a cell binds at its top level (functions, classes, assignments, imports).
    A cell that does not parse (a SyntaxError, IPython magics) is read line by line, so the
    cell that *should* define a name is found even when it failed."""
    names = set()
    for line in source.splitlines():
        match = _DEFINITION.match(line)
        if match:
            names.add(match.group(1) or match.group(2))
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return names
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return names


def strip_ansi(text):
    """``text`` without terminal colour codes (IPython colours its tracebacks)."""
    return _ANSI.sub("", text)


def error_line(traceback_lines):
    """The line of the failed cell where its error arose, from IPython's traceback (a list of
    text, coloured or not), or None. The deepest frame in the cell that ran is taken: an error
    in a function the cell defines is shown where it happened, not where it was called."""
    frames = _CELL_FRAME.findall(strip_ansi("\n".join(str(t) for t in traceback_lines or ())))
    if not frames:
        return None
    cell = frames[0][0]
    return int([line for number, line in frames if number == cell][-1])


def _code(text, limit=60):
    text = text.strip()
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _where(index, exercises, answers, source):
    exercise = exercises[index] if index < len(exercises) else None
    if exercise is not None and answers.get(exercise) == index:
        return f"the cell of exercise {exercise}"
    start = _code(_first_line(source), 40)
    if exercise is None:
        return f"the set-up cell starting `{start}`"
    return f"the cell starting `{start}` (exercise {exercise})"


def describe_failure(index, error, line, exercises, answers, source, limit=300):
    """One line on the code cell ``index`` (among code cells) that failed with ``error``
    ("SyntaxError: '(' was never closed (1234.py, line 4)", as the kernel reports it) at
    ``line`` (or None): its exercise, the line, the error, and for a SyntaxError the line's
    code."""
    etype, _, message = str(error).partition(": ")
    message = _SYNTAX_WHERE.sub("", message) if etype.endswith("Error") else message
    where = _where(index, exercises, answers, source)
    at = f", line {line}" if line else ""
    if not _EXCEPTION_NAME.match(etype):         # "the kernel died (...)", "timed out ..."
        text = f"{where[0].upper()}{where[1:]}{at} did not run: {error}"
    else:
        text = f"{etype} in {where}{at}: {message}" if message else f"{etype} in {where}{at}"
    lines = source.splitlines()
    if line and etype in ("SyntaxError", "IndentationError", "TabError") \
            and 0 < line <= len(lines) and lines[line - 1].strip():
        text += f" (the line reads `{_code(lines[line - 1])}`)"
    return text if len(text) <= limit else text[:limit - 3] + "..."


_EXCEPTION_NAME = re.compile(r"^[A-Za-z_][\w.]*$")
_MISSING = re.compile(r"defines no '(\w+)'|name '(\w+)' is not defined")


def missing_name(reason):
    """The name a failed request found missing ("the notebook defines no 'f'", "name 'f' is
    not defined"), or None."""
    match = _MISSING.search(reason or "")
    return (match.group(1) or match.group(2)) if match else None
