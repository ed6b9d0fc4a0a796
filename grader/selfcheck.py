"""A student's self-check of an exercise notebook: ``python -m grader.selfcheck NOTEBOOK``.

It runs the notebook top to bottom in Jupyter's ``python3`` kernel, which is the Python it is
started with unless another ``python3`` kernel was registered by hand (the student's own
environment, on the student's own machine: no sandbox, no bubblewrap), the
notebook file left untouched, and reports per exercise what the notebook's own check cells
said (``minigrad.check_exercise`` prints "Exercise 5.2: passed" or "Exercise 5.2: not right
yet: ..."), then every cell that failed with its error and line ("SyntaxError in the cell of
exercise 5.2, line 4: ..."), and that this is a self-check: the instructor's grading runs
hidden tests in a sandbox.

It needs no graded tests (a student's copy of the course has none) and imports nothing from
``tests/``: only ``nbformat``, ``nbclient`` (both come with Jupyter) and :mod:`grader.cells`.
It is meant to be portable Python (no signals, no ``resource`` module, no ``bwrap``), but it
has been tried on Linux only: on Windows the event loop is switched to the selector loop that
Jupyter's messaging needs there.

Exit codes: 0 every exercise's checks passed and no cell failed; 1 otherwise; 2 the notebook
cannot be read or run (no such file, not a notebook, Jupyter missing, the kernel died).
"""
import argparse
import asyncio
import re
import subprocess
import sys
from pathlib import Path

from grader.cells import describe_failure, error_line, exercise_map

__all__ = ["main", "run", "verdicts", "failures", "report", "CheckError", "DEFAULT_TIMEOUT",
           "NOTE"]

#: seconds one cell may run before it is interrupted (the check cells take a few seconds)
DEFAULT_TIMEOUT = 600
#: a line a check cell prints: "Exercise 5.2: passed"
_CHECK_LINE = re.compile(r"^Exercise\s+(\d+(?:\.\d+)*):\s*(.*)$")
#: further lines of one verdict shown (a CheckReport prints one line per derivative)
_DETAIL_LINES = 3

NOTE = ("This is a self-check: your notebook's own check cells, run on your machine. Your "
        "instructor grades with hidden tests, run in a sandbox, so a check that passes here "
        "is a good sign, not a grade.")


class CheckError(Exception):
    """The notebook cannot be read or run; the message says why."""


def _read(path):
    import nbformat
    path = Path(path)
    if not path.is_file():
        raise CheckError(f"{path}: no such file" if not path.exists() else f"{path}: not a file")
    try:
        return nbformat.read(str(path), as_version=4)
    except Exception as exc:        # whatever nbformat makes of a file that is no notebook
        first = (str(exc).splitlines() or [""])[0][:200]
        raise CheckError(f"{path}: not a readable notebook ({type(exc).__name__}: {first})")


def run(path, timeout=DEFAULT_TIMEOUT):
    """The notebook at ``path`` after running every cell in the ``python3`` kernel (a cell
    that fails does not stop the others; one that runs past ``timeout`` seconds is
    interrupted). The file itself is not written."""
    nb = _read(path)
    try:
        from nbclient import NotebookClient
        from nbclient.exceptions import DeadKernelError
    except ImportError as exc:
        raise CheckError(f"Jupyter's nbclient is not installed in this Python ({exc.name}): "
                         "pip install nbclient ipykernel")
    if sys.platform.startswith("win"):      # pyzmq needs the selector loop on Windows
        try:
            asyncio.set_event_loop_policy(asyncio.WindowsSelectorEventLoopPolicy())
        except AttributeError:              # a Python without event loop policies
            pass
    client = NotebookClient(nb, timeout=timeout, allow_errors=True, interrupt_on_timeout=True,
                            kernel_name="python3", record_timing=False,
                            resources={"metadata": {"path": str(Path(path).resolve().parent)}})
    try:        # the kernel's own log lines (not the notebook's output) would only confuse
        client.execute(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except DeadKernelError as exc:
        raise CheckError(f"{path}: the kernel died while running the notebook ({exc}); a cell "
                         "used more memory than the machine has, or crashed Python")
    except Exception as exc:
        first = (str(exc).splitlines() or [""])[0][:300]
        raise CheckError(f"{path}: the notebook could not be run ({type(exc).__name__}: "
                         f"{first})")
    return nb


def _code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def _text(output):
    text = output.get("text", "")
    return "".join(text) if isinstance(text, list) else str(text)


def verdicts(nb):
    """``{exercise: [verdict lines]}``: what the check cells printed, in order."""
    found = {}
    for cell in _code_cells(nb):
        for output in cell.get("outputs", []):
            if output.get("output_type") != "stream":
                continue
            lines = _text(output).splitlines()
            for k, line in enumerate(lines):
                match = _CHECK_LINE.match(line.strip())
                if not match:
                    continue
                detail = []
                for more in lines[k + 1:k + 1 + _DETAIL_LINES]:
                    if _CHECK_LINE.match(more.strip()):
                        break
                    detail.append(more.rstrip())
                verdict = match.group(2).strip()
                if verdict.startswith("not right yet") and detail:
                    verdict += " " + " / ".join(d.strip() for d in detail if d.strip())
                found.setdefault(match.group(1), []).append(verdict)
    return found


def _failed_cells(nb):
    """``{index among code cells: its error output}`` of the cells that failed."""
    failed = {}
    for k, cell in enumerate(_code_cells(nb)):
        error = next((o for o in cell.get("outputs", []) if o.get("output_type") == "error"),
                     None)
        if error is not None:
            failed[k] = error
    return failed


def _error_text(output):
    """"Type: message" of an error output; an interrupt is the self-check's time limit."""
    if output.get("ename") == "KeyboardInterrupt":
        return ("KeyboardInterrupt: it ran past the self-check's time limit (--timeout) and "
                "was interrupted")
    return f"{output.get('ename')}: {output.get('evalue')}"


def failures(nb):
    """One line per code cell that failed: its error and line, and its exercise."""
    cells = _code_cells(nb)
    exercises, answers = exercise_map((c.cell_type, c.source) for c in nb.cells)
    return [describe_failure(k, _error_text(output),
                             error_line(output.get("traceback")), exercises, answers,
                             cells[k].source)
            for k, output in _failed_cells(nb).items()]


def _state(lines):
    if not lines:
        return "no check ran (did its check cell run?)"
    if all(line.startswith("passed") for line in lines):
        return "passed"
    wrong = next(line for line in lines if not line.startswith("passed"))
    return wrong


def report(nb):
    """``(text, ok)``: the self-check's report of a notebook that ran, and whether every
    exercise passed with no cell failing."""
    exercises, answers = exercise_map((c.cell_type, c.source) for c in nb.cells)
    said = verdicts(nb)
    order = list(answers) + [e for e in said if e not in answers]
    broken = {exercises[k] for k in _failed_cells(nb)}
    lines, ok = [], True
    for exercise in order:
        state = _state(said.get(exercise, []))
        ok = ok and state == "passed"
        hint = " (a cell of this exercise failed: see below)" if exercise in broken else ""
        lines.append(f"Exercise {exercise}: {state}{hint}")
    if not order:
        lines.append("No exercise found: this notebook has no 'Exercise N.M' heading and no "
                     "check cell printed a verdict.")
        ok = False
    failed = failures(nb)
    if failed:
        ok = False
        lines.append("")
        lines.append(f"{len(failed)} cell{'s' if len(failed) > 1 else ''} failed:")
        lines += [f"  {f}" for f in failed]
    lines += ["", NOTE]
    return "\n".join(lines), ok


def main(argv=None):
    """Run the self-check; the exit code (see the module docstring)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(errors="backslashreplace")
        except (AttributeError, ValueError, OSError):
            pass
    parser = argparse.ArgumentParser(
        prog="python -m grader.selfcheck", description=__doc__.split("\n\n")[0],
        epilog="Exit codes: 0 every check passed and no cell failed; 1 otherwise; "
               "2 the notebook cannot be read or run.")
    parser.add_argument("notebook", help="your exercise notebook (.ipynb); it is not changed")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                        help=f"interrupt a cell that runs longer (default {DEFAULT_TIMEOUT})")
    args = parser.parse_args(argv)
    print(f"Running {args.notebook} top to bottom (this takes a minute or two)...",
          flush=True)
    try:
        nb = run(args.notebook, timeout=args.timeout)
    except CheckError as exc:
        print(f"selfcheck: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("selfcheck: interrupted", file=sys.stderr)
        return 130
    text, ok = report(nb)
    print(text)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
