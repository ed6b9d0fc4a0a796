"""Grading on Gradescope: the autograder's side of Gradescope's contract.

Gradescope builds an image from ``autograder.zip`` (``make gradescope``, see
``scripts/make_gradescope.py``): it unpacks the zip into ``/autograder/source`` and runs
``setup.sh`` there once, as root and with the network. For every submission it starts a fresh
container of that image, puts the learner's files in ``/autograder/submission``, runs
``/autograder/run_autograder`` and reads ``/autograder/results/results.json``.

``run_autograder`` runs ``python -m grader.gradescope``, which grades every notebook of the
submission folder exactly as ``python -m grader`` does (:mod:`grader.grading`: the same
sandbox, limits and result dict) and writes Gradescope's format (:func:`to_gradescope`)::

    {"score": 9.6, "output": "...", "tests": [
        {"name": "Exercise 5.2", "number": "5.2", "score": 1.6, "max_score": 4.0,
         "status": "failed", "output": "<the check's message>\\n\\nRead again: <link>",
         "visibility": "visible"}, ...]}

one test per exercise, the message as its output. ``results.json`` is always written: a missing
submission folder, no notebook, a notebook that cannot be read or graded, even a failure of the
grader itself becomes a result whose ``output`` says why (0 points), never a missing file.

The root is ``--root``, else ``$AUTOGRADER_ROOT``, else ``/autograder``: a temporary folder laid
out the same way tests the whole path without Gradescope.

Isolation: ``--sandbox auto`` (the default) grades in the bubblewrap sandbox when ``bwrap`` can
make its namespaces in the container; otherwise, as root (Gradescope's case), each kernel runs
without it as an unprivileged user of its own (:func:`grader.sandbox.user_command`: it cannot
read the graded tests or the results, nor write the grader's files); otherwise with no
isolation. stdout (which only the instructor sees) says which level held. ``--sandbox on``
refuses to grade without bwrap (every submission gets 0 points and the reason), ``--sandbox
user`` asks for the user level, ``--sandbox off`` for none. README.md ("Grading on
Gradescope") says what each level does not isolate.
"""
import argparse
import json
import os
import sys
import time
import types
from pathlib import Path

from grader import grading, notebooks, outputs, sandbox, sections
from grader.outputs import printable
from grader.settings import Limits, add_limit_options, limits_from

__all__ = ["DEFAULT_ROOT", "VISIBILITIES", "to_gradescope", "validate", "grade_submission",
           "run", "main", "become_subreaper", "end_descendants", "failure"]

DEFAULT_ROOT = "/autograder"
#: Gradescope's documented visibility values
VISIBILITIES = ("hidden", "after_due_date", "after_published", "visible")


def _say(text):
    try:
        print(text, flush=True)
    except (OSError, ValueError):
        pass


# ---------------------------------------------------------------- the format
def _output(text):
    """Learner text for Gradescope's plain-text ``output``: surrogate-safe, printable except
    for line breaks."""
    return "\n".join(printable(line) for line in outputs.safe_text(text).split("\n"))


def _tests_of(result, prefix, site, headings):
    if result.get("error"):
        return [{"name": f"{prefix}not graded".strip(), "score": 0.0, "max_score": 0.0,
                 "status": "failed", "visibility": "visible",
                 "output": _output(f"This notebook could not be graded: {result['error']}")}]
    links = sections.links_for(result, site, headings) if site else {}
    tests = []
    for exercise in result.get("exercises", ()):
        text = str(exercise.get("message", ""))
        if exercise.get("id") in links:
            where = "In the course" if exercise.get("passed") else "Read again"
            text += f"\n\n{where}: {links[exercise['id']]}"
        tests.append({"name": f"{prefix}Exercise {printable(exercise.get('id', '?'))}",
                      "number": printable(exercise.get("id", "")),
                      "score": float(exercise.get("points", 0.0)),
                      "max_score": float(exercise.get("max_points", 0.0)),
                      "status": "passed" if exercise.get("passed") else "failed",
                      "visibility": "visible", "output": _output(text)})
    return tests


def to_gradescope(results, site=None, headings=None, output=""):
    """Gradescope's ``results.json`` (a dict) for the results of one submission's notebooks:
    one test per exercise (per notebook when several were submitted), the total as ``score``.
    Extra keys of the results are ignored."""
    results = [outputs.clean(r) for r in results]
    headings = sections.declared() if headings is None else headings
    several = len(results) > 1
    tests = []
    for result in results:
        prefix = f"{Path(str(result.get('notebook', '?'))).name}: " if several else ""
        tests += _tests_of(result, printable(prefix), site, headings)
    graded = [r for r in results if not r.get("error")]
    summary = [f"{printable(Path(str(r.get('notebook', '?'))).name)}: "
               + (f"{r['score']:g} / {r['max_score']:g} points" if not r.get("error")
                  else "not graded") for r in results]
    text = "\n".join(filter(None, [_output(output), *summary]))
    return {"score": round(sum(float(r.get("score", 0.0)) for r in graded), 2),
            "output": text, "visibility": "visible", "tests": tests}


def failure(reason):
    """``results.json`` of a submission that could not be graded at all: 0 points and why."""
    return {"score": 0.0, "output": _output(reason), "visibility": "visible", "tests": []}


def validate(data):
    """The problems of ``data`` as Gradescope's ``results.json`` (an empty list when it is
    valid): ``score`` (a number, needed unless every test has one), ``tests`` a list of objects
    with ``name`` (text), ``score`` and ``max_score`` (numbers), ``output`` (text), and
    ``visibility`` one of :data:`VISIBILITIES`; ``status`` when present ``passed`` or
    ``failed``."""
    problems = []
    if not isinstance(data, dict):
        return ["results.json is not an object"]

    def number(value):
        return isinstance(value, (int, float)) and not isinstance(value, bool) \
            and value == value and abs(value) != float("inf")

    tests = data.get("tests", [])
    if not isinstance(tests, list):
        return ["tests is not a list"]
    if "score" in data and not number(data["score"]):
        problems.append("score is not a number")
    if "score" not in data and not all(isinstance(t, dict) and "score" in t for t in tests):
        problems.append("no score: neither the submission's nor every test's")
    for key in ("output",):
        if key in data and not isinstance(data[key], str):
            problems.append(f"{key} is not text")
    if "visibility" in data and data["visibility"] not in VISIBILITIES:
        problems.append(f"visibility {data['visibility']!r} is not one of {VISIBILITIES}")
    for k, test in enumerate(tests):
        if not isinstance(test, dict):
            problems.append(f"test {k} is not an object")
            continue
        if not isinstance(test.get("name"), str) or not test["name"]:
            problems.append(f"test {k} has no name")
        for key in ("score", "max_score"):
            if key in test and not number(test[key]):
                problems.append(f"test {k}: {key} is not a number")
        if "output" in test and not isinstance(test["output"], str):
            problems.append(f"test {k}: output is not text")
        if test.get("visibility", "visible") not in VISIBILITIES:
            problems.append(f"test {k}: visibility {test['visibility']!r} is not documented")
        if test.get("status", "passed") not in ("passed", "failed"):
            problems.append(f"test {k}: status {test['status']!r} is not passed or failed")
    return problems


# ---------------------------------------------------------------- processes left behind
_PR_SET_CHILD_SUBREAPER = 36


def become_subreaper():
    """Make this process adopt every orphan among its descendants (Linux
    ``PR_SET_CHILD_SUBREAPER``), so that a process a kernel detached (``setsid``, a double
    fork) stays below it and :func:`end_descendants` can find it. False where that fails."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _children():
    """``{parent pid: [child pids]}`` of every process this one can see."""
    tree = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                ppid = int(f.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        tree.setdefault(ppid, []).append(int(entry))
    return tree


def end_descendants(rounds=20):
    """Kill every descendant of this process (what the grading left running, and, without the
    sandbox, whatever a learner's code detached); the number killed. With
    :func:`become_subreaper` called first, a detached process is a descendant too."""
    killed = set()
    for _ in range(rounds):
        tree, found, stack = _children(), [], [os.getpid()]
        while stack:
            for child in tree.get(stack.pop(), []):
                found.append(child)
                stack.append(child)
        if not found:
            break
        killed |= sandbox.kill(found)
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:      # reap them (we are their parent now)
            try:
                if os.waitpid(-1, os.WNOHANG) == (0, 0):
                    time.sleep(0.05)
            except ChildProcessError:
                break
    return len(killed)


# ---------------------------------------------------------------- grading one submission
def _sandbox_mode(mode):
    """``(isolation, a note for the instructor)``, the isolation "bwrap", "user" (each kernel
    an unprivileged user of its own, without bwrap) or "none": ``auto`` takes the first that
    runs here; raises :class:`~grader.sandbox.SandboxUnavailable` when ``on`` (bwrap) or
    ``user`` cannot run."""
    if mode == "off":
        return "none", "the sandbox is off (--sandbox off)"
    if mode != "user":
        try:
            sandbox.check()
            warning = sandbox.not_enforced()
            return "bwrap", f"sandboxed; {warning}" if warning else "sandboxed"
        except sandbox.SandboxUnavailable as exc:
            if mode == "on":
                raise
            why = f"bwrap cannot run: {exc}"
    try:
        sandbox.check_user_level()
        return "user", sandbox.user_level_note()
    except sandbox.SandboxUnavailable as exc:
        if mode == "user":
            raise
        return "none", (f"grading WITHOUT the sandbox: {why}; and {exc}. The submission's "
                        "code runs with the grader's rights in this container (see README.md, "
                        "Grading on Gradescope)")


def grade_submission(folder, args):
    """The results of every notebook under ``folder``, graded as ``python -m grader`` grades
    them (same code path: :func:`grader.grading.read_all` and :func:`grader.grading.grade_all`);
    each failure is its notebook's error."""
    from grader.cli import reportable
    found = notebooks.find(folder)
    known = grading.chapters()
    results, todo = grading.read_all(found, known)
    graded, void, interrupted = grading.grade_all(todo, known, args)
    results.update(graded)
    return [reportable(results[f.path]) for f in found]


def run(root, mode="auto", limits=None, site=None, jobs=None, end_processes=False):
    """Grade ``root/submission`` into ``root/results/results.json`` (always written); the dict
    written. ``end_processes`` kills every descendant of this process before the file is
    written (``run_autograder`` does; see :func:`end_descendants`)."""
    root = Path(root)
    started = time.monotonic()
    submission = root / "submission"
    try:
        if not submission.is_dir():
            data = failure(f"No submission folder ({submission}): nothing was submitted.")
        elif not [f for f in notebooks.find(submission) if f.path.suffix == ".ipynb"]:
            data = failure("No notebook (*.ipynb) in the submission: upload your exercise "
                           "notebook (for example 05_composition.ipynb).")
        else:
            try:
                isolation, note = _sandbox_mode(mode)
            except sandbox.SandboxUnavailable as exc:
                _say(f"run_autograder: refusing to grade (--sandbox {mode}): {exc}")
                data = failure("The autograder could not start its sandbox, so nothing was "
                               "graded. Your instructor can see why in the autograder output.")
            else:
                _say(f"run_autograder: isolation {isolation}: {note}")
                if isolation == "user":     # nothing of the results for the kernel's user
                    (root / "results").mkdir(mode=0o700, parents=True, exist_ok=True)
                    (root / "results").chmod(0o700)
                args = types.SimpleNamespace(limits=limits or Limits(),
                                             no_sandbox=isolation != "bwrap",
                                             kernel_user=isolation == "user",
                                             jobs=jobs or os.cpu_count() or 1)
                results = grade_submission(submission, args)
                for r in results:
                    _say(outputs.table(r))
                data = to_gradescope(results, site)
    except Exception as exc:        # the grader's own failure: still a results.json
        from grader.grading import describe
        _say(f"run_autograder: the grader failed: {describe(exc)}")
        data = failure(f"The autograder failed on this submission ({describe(exc)}); "
                       "your instructor can see the details. Nothing you submitted was graded.")
    if end_processes:   # nothing the submission started may outlive it and rewrite the file
        left = end_descendants()
        if left:
            _say(f"run_autograder: ended {left} processes left running after grading")
    data["execution_time"] = round(time.monotonic() - started, 1)
    problems = validate(data)
    if problems:                    # never expected: say so rather than upload a bad file
        _say(f"run_autograder: results.json invalid: {problems}")
        data = failure("The autograder produced invalid results; your instructor can see why.")
    results_folder = root / "results"
    results_folder.mkdir(parents=True, exist_ok=True)
    outputs.write(results_folder / "results.json",
                  json.dumps(data, indent=1, ensure_ascii=True, allow_nan=False) + "\n")
    return data


# ---------------------------------------------------------------- command line
def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="run_autograder",
                                     description="Grade a Gradescope submission into "
                                                 "results/results.json (see grader/gradescope.py).")
    parser.add_argument("--root", default=os.environ.get("AUTOGRADER_ROOT", DEFAULT_ROOT),
                        help="the folder laid out as Gradescope's /autograder (default: "
                             "$AUTOGRADER_ROOT, else /autograder)")
    parser.add_argument("--sandbox", choices=("auto", "on", "user", "off"), default="auto",
                        help="auto (default): the bwrap sandbox where it runs, else (as root) "
                             "each kernel as an unprivileged user of its own, else none; on: "
                             "refuse to grade without bwrap; user: that user level only; off: "
                             "no isolation")
    parser.add_argument("--site-url", metavar="URL", default=None,
                        help="the course site each exercise's output links to (default: "
                             "html: baseurl: of _config.yml; 'none' for no links)")
    parser.add_argument("--check", action="store_true",
                        help="only say whether the sandbox runs here (setup.sh calls this)")
    add_limit_options(parser.add_argument)
    args = parser.parse_args(argv)
    args.limits = limits_from(lambda dest: getattr(args, dest))
    return args


def _site(option):
    if option == "none":
        return None
    if option:
        return option if option.endswith("/") else option + "/"
    try:
        return sections.site_url()
    except sections.SiteUrlError as exc:
        _say(f"run_autograder: no links to the course site: {exc}")
        return None


def main(argv=None):
    args = parse_args(argv)
    if args.check:
        try:
            sandbox.check()
            _say("setup: the bubblewrap sandbox runs here: submissions are graded in it")
        except sandbox.SandboxUnavailable as exc:
            try:
                sandbox.check_user_level()
                level = "each kernel as an unprivileged user of its own, without bwrap"
            except sandbox.SandboxUnavailable as why:
                level = f"WITHOUT any isolation ({why})"
            _say(f"setup: the sandbox cannot run here ({exc}); with --sandbox auto, "
                 f"submissions are graded {level}")
        return 0
    become_subreaper()
    try:
        run(args.root, mode=args.sandbox, limits=args.limits, site=_site(args.site_url),
            end_processes=True)
    except outputs.OutputError as exc:
        print(f"run_autograder: could not write results.json: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
