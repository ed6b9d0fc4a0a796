"""Grade exercise notebooks with the graded tests of ``tests/grading``.

Usage::

    python -m grader PATH [--json OUT] [--csv OUT] [--jobs N] [--no-sandbox | --kernel-user]
                     [--roster CSV] [--chapter NAME] [limits]

(also ``scripts/grade.py`` and ``make grade NB=PATH``). PATH is one notebook or a folder
(every ``*.ipynb`` under it, recursively, except in ``.ipynb_checkpoints``). A notebook's
chapter is ``metadata["minigrad"]["notebook"]``, else ``--chapter NAME``, else its file
name; the test modules whose ``NOTEBOOK`` is that chapter grade it (a notebook whose
metadata names another chapter than ``--chapter`` is an error). ``--roster CSV`` matches
each file to a student (columns student_id, name, login, pattern: :mod:`grader.roster`).

Each notebook is read once and graded by its own ``pytest`` process (several at once with
``--jobs``), its kernel in its own sandbox under the limits below (:mod:`grader.grading`).

Scores: an exercise's points are the ``points`` of its ``exercise`` marker; it earns them in
proportion to the tests it passes. The table on stdout shows every exercise; ``--json``
writes ``{"notebook", "chapter", "score", "max_score", "exercises": [{"id", "points",
"max_points", "passed", "message"}], "status", "student_id", "student_name", "messages",
"identical_to", "same_code_as"}`` (a list of them for a folder) and ``--csv`` one row per
notebook: student_id, student_name, notebook, chapter, status, score, max_score, one column
per exercise, flags, messages, error (and a row of status ``missing`` per roster student
without a file). The keys:

- ``status``: "graded", or "error" with ``error`` (one line): then ``score`` and
  ``max_score`` are None (empty in the CSV): an error never reads as 0 of 0;
- ``student_id``, ``student_name``: the one roster row matching the file, else None;
- ``messages``: the roster's notes (no row matches, several rows match, one of several
  files of a student) and where the chapter came from when the metadata names none;
- ``identical_to``, ``same_code_as``: the other files (paths below the graded folder)
  that are byte-identical, or have the same code cells (:mod:`grader.duplicates`).

An exercise's ``message`` names a failed cell it depends on, with its error and line
(:func:`grader.plugin.explain_failed_cells`).

``--feedback DIR`` writes one self-contained HTML page per notebook for its learner
(:mod:`grader.feedback`). ``--scheduler tcp://host:8786`` grades on the workers of a
dask.distributed pool instead of this machine (:mod:`grader.distributed`).

The graded tests, ``grader`` and ``minigrad`` run from copies made before any notebook runs;
if they changed during grading (only possible without the sandbox), every grade from then on
is void (``VOID``) and the exit code is 3.

A submission can only cost its own points: whatever goes wrong while one notebook is read,
graded or reported (it is not a notebook, it is nested too deeply to parse, the disk under
the temporary folder is full, its messages hold text no encoder takes, ...) becomes that
notebook's one-line error, and the table, ``--json`` and ``--csv`` are still written for
every notebook. Files that are not regular files (a named pipe, a device, a socket) and
symbolic links to a file outside the graded folder are skipped with a message, never opened
(:mod:`grader.notebooks`); text in the outputs is made safe by :mod:`grader.outputs`. A
run interrupted by Ctrl-C or SIGTERM stops its grading processes and writes what it has.

Exit codes:
  0  every notebook was graded (whatever the scores)
  1  some notebook could not be graded (its row says why); the results are written
  2  usage error: no such file or folder, no notebook in the folder, no sandbox
     (bwrap) and no --no-sandbox, --kernel-user not as root, a bad option, a --roster
     that cannot be used (the row and column are named), an unknown --chapter; nothing
     is graded or written
  3  the grader's copies were modified during grading: grades from then on are VOID
  4  an output (--json or --csv) could not be written; the others were (likewise
     a --feedback page)
  130  interrupted (Ctrl-C, SIGTERM): the grades so far are written, the other
     notebooks are marked not graded
"""
import argparse
import contextlib
import os
import signal
import sys
import threading
from pathlib import Path

from grader import distributed, feedback, grading, identity, notebooks, outputs, sandbox
from grader import roster as rosters
from grader.duplicates import template_keys
from grader.grading import REPO, chapters, describe
from grader.outputs import printable, table
from grader.reports import ReportError, plural, read_report, result_for, score
from grader.settings import add_limit_options, limits_from

__all__ = ["main", "parse_args", "chapters", "read_report", "score", "result_for", "table",
           "printable", "ReportError", "EXIT_GRADED", "EXIT_NOT_GRADED", "EXIT_USAGE",
           "EXIT_VOID", "EXIT_OUTPUT", "EXIT_INTERRUPTED"]

#: the exercise notebooks: an untouched one is not flagged as the same code as another
EXERCISES = REPO / "exercises"

#: exit codes (see the module docstring)
EXIT_GRADED, EXIT_NOT_GRADED, EXIT_USAGE, EXIT_VOID, EXIT_OUTPUT = 0, 1, 2, 3, 4
EXIT_INTERRUPTED = 130


# ---------------------------------------------------------------- reporting
def reportable(result):
    """``result`` made surrogate-safe and checked to render in the table, the JSON and the
    CSV; if it does not, an error result for its notebook (its reporting failed, not the
    run's)."""
    try:
        result = outputs.clean(result)
        outputs.table(result)
        outputs.json_text(result)
        outputs.csv_text([result])
        return result
    except Exception as exc:
        return outputs.clean(result_for(result.get("notebook", "?"), None, error=(
            f"not graded: the grader could not report this notebook ({describe(exc)})")))


def _say(text, stream=None):
    """Print ``text``; a closed terminal or pipe does not stop the run."""
    try:
        print(text, file=stream or sys.stdout)
    except (OSError, ValueError):
        pass


def _safe_streams():
    """Make stdout and stderr write any text (a surrogate shows as an escape)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(errors="backslashreplace")
        except (AttributeError, ValueError, OSError):
            pass


def write_outputs(results, args, single, missing=()):
    """Write ``--json`` and ``--csv``; each one that fails is reported and does not keep the
    other from being written. True when every asked-for output was written."""
    wanted = [("JSON", args.json, lambda: outputs.json_text(results[0] if single else results)),
              ("CSV", args.csv, lambda: outputs.csv_text(results, missing))]
    ok = True
    for kind, path, render in wanted:
        if not path:
            continue
        try:
            outputs.write(path, render())
        except outputs.OutputError as exc:
            ok = False
            _say(f"grade: could not write the {kind} file {exc}", sys.stderr)
    return ok


def show(results, total):
    """The score table of every graded notebook, a summary, and every error on stderr."""
    graded = [r for r in results if not r.get("error")]
    for r in graded:
        _say(table(r))
    if total > 1:
        _say(f"graded {len(graded)} of {total} notebooks; total "
             f"{sum(r['score'] for r in graded):g} / {sum(r['max_score'] for r in graded):g}")
    for r in results:
        if r.get("error"):
            _say(f"grade: {table(r)}", sys.stderr)


# ---------------------------------------------------------------- main
def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="grade", description=__doc__.split("\n\n")[0],
                                     epilog=__doc__[__doc__.index("Exit codes:"):],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path", help="a notebook, or a folder of notebooks")
    parser.add_argument("--json", metavar="OUT", help="write the scores as JSON")
    parser.add_argument("--csv", metavar="OUT", help="write one row per notebook as CSV")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                        help="notebooks graded at once (default: all cores)")
    parser.add_argument("--no-sandbox", action="store_true",
                        help="run the kernels without bubblewrap, with your rights: only for "
                             "notebooks you trust")
    parser.add_argument("--kernel-user", action="store_true",
                        help="as root where bwrap cannot run: no bubblewrap, but each kernel "
                             "runs as an unprivileged user of its own that cannot read the "
                             "graded tests nor write the grader's files (Gradescope's level; "
                             "README.md says what it does not isolate)")
    parser.add_argument("--roster", metavar="CSV",
                        help="match the files to students: a CSV with the columns student_id, "
                             "name and optionally login, pattern (see README, 'Grading a class')")
    parser.add_argument("--chapter", metavar="NAME",
                        help="the chapter (e.g. 05_composition) of notebooks whose metadata "
                             "names none, whatever their file name")
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="grade on the workers of this dask.distributed scheduler "
                             "(tcp://host:8786) instead of this machine's cores")
    feedback.add_options(parser.add_argument)
    add_limit_options(parser.add_argument)
    args = parser.parse_args(argv)
    args.limits = limits_from(lambda dest: getattr(args, dest))
    feedback.resolve_options(parser, args)
    return args


def main(argv=None):
    """Grade, write the outputs, print the table; the exit code (see the module docstring)."""
    _safe_streams()
    args = parse_args(argv)
    target = Path(args.path)
    if not target.exists():
        _say(f"grade: {printable(target)}: no such file or folder", sys.stderr)
        return EXIT_USAGE
    if args.kernel_user:
        try:
            if args.scheduler:
                raise sandbox.SandboxUnavailable("--kernel-user cannot be used with --scheduler")
            sandbox.check_user_level()
        except sandbox.SandboxUnavailable as exc:
            _say(f"grade: refusing to grade with --kernel-user: {exc}", sys.stderr)
            return EXIT_USAGE
        args.no_sandbox = True
        _say(f"grade: {sandbox.user_level_note()}", sys.stderr)
    elif not args.no_sandbox and not args.scheduler:   # with a pool, each worker checks its own
        try:
            sandbox.check()
        except sandbox.SandboxUnavailable as exc:
            _say(f"grade: refusing to grade: {exc}", sys.stderr)
            return EXIT_USAGE
        warning = sandbox.not_enforced()
        if warning:
            _say(f"grade: WARNING: {warning}", sys.stderr)
    found = notebooks.find(target)
    if not found:
        _say(f"grade: {printable(target)}: no notebook (*.ipynb) in this folder", sys.stderr)
        return EXIT_USAGE
    known = chapters()
    try:
        roster = rosters.load(args.roster) if args.roster else None
    except rosters.RosterError as exc:
        _say(f"grade: --roster {printable(exc)}", sys.stderr)
        return EXIT_USAGE
    if args.chapter is not None and args.chapter not in known:
        _say(f"grade: --chapter {printable(args.chapter)}: no graded tests for this chapter; "
             f"graded chapters: {', '.join(sorted(known))}", sys.stderr)
        return EXIT_USAGE
    read = {}
    results, todo = grading.read_all(found, known, args.chapter, read)
    with _sigterm_as_interrupt():
        graded, void, interrupted = (distributed if args.scheduler else grading).grade_all(
            todo, known, args)
    results.update(graded)
    ordered, missing = [results[f.path] for f in found], []
    try:
        ordered, missing = identity.annotate(ordered, read, target, roster, args.chapter,
                                             template_keys(known, EXERCISES))
    except Exception as exc:            # the grades are written whatever happens here
        _say(f"grade: WARNING: the files could not be matched to students or compared "
             f"({describe(exc)}); the grades are written without that", sys.stderr)
    ordered = [reportable(r) for r in ordered]
    written = write_outputs(ordered, args, single=not target.is_dir(), missing=missing)
    written = feedback.write_for_cli(ordered, args, lambda t: _say(t, sys.stderr)) and written
    show(ordered, len(found))
    if missing:
        _say(f"grade: {plural(len(missing), 'student')} of the roster "
             f"{'has' if len(missing) == 1 else 'have'} no file: " + printable(
            "; ".join(f"{s.student_id} {s.name}" for s in missing)), sys.stderr)
    if void:
        _say("grade: WARNING: the grader's copies of tests/grading, grader and minigrad "
             "changed while grading: " + printable(", ".join(void)) + "\nThe grades of the "
             "notebooks graded since then are VOID: look at those notebooks, then "
             "grade them again.", sys.stderr)
        return EXIT_VOID
    if not written:
        return EXIT_OUTPUT
    if interrupted:
        _say("grade: interrupted: the notebooks not graded by then are marked so",
             sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_NOT_GRADED if any(r.get("error") for r in ordered) else EXIT_GRADED


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """While grading, SIGTERM interrupts as Ctrl-C does (the results so far are written)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt
    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
