"""A feedback page per learner: one self-contained HTML file for each graded notebook.

``python -m grader FOLDER --feedback DIR`` writes, for every notebook, a page with its score,
each exercise's points and the check's message (which names the mistake), and a link to the
section of the chapter the exercise belongs to on the course site (:mod:`grader.sections`).
A notebook that could not be graded gets a page saying why. ``DIR/index.html`` lists the
pages, for the instructor (it holds every learner's score: hand out the pages, not the folder).

A page needs nothing but itself: its style is inline, it has no script, no font, no image and
no request; it opens from ``file://`` as well as from a web server or an e-mail attachment.

Everything the learner controls (the file name, the chapter of its metadata, every message,
extra keys such as a student id) is made printable (:func:`grader.outputs.printable`) and then
HTML-escaped, so a file named ``<script>...`` shows as text. A page is only ever written over a
page this module wrote (it carries :data:`GENERATOR`); any other file in its place is left
alone and reported.
"""
import hashlib
import html
import os
import re
from pathlib import Path

from grader import outputs, sections
from grader.outputs import OutputError, printable

__all__ = ["GENERATOR", "render", "render_index", "page_names", "write_pages",
           "add_options", "resolve_options", "write_for_cli"]

#: the mark of a page written here (only such a file is ever replaced)
GENERATOR = "minigrad-grader feedback"
#: the longest page name (a file system takes 255 bytes)
MAX_NAME = 120
#: result keys that name the learner, shown on the page when present (other tools add them)
IDENTITY_KEYS = ("student_name", "student_id", "name", "email")

_STYLE = """
:root { color-scheme: light; --ok: #1b7f3b; --todo: #a33a1a; --ink: #1d2430; --muted: #5b6472;
        --line: #d9dee5; --card: #ffffff; --page: #f4f6f9; --accent: #2458b3; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--page); color: var(--ink);
       font: 16px/1.55 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; }
main { max-width: 52rem; margin: 0 auto; padding: 2rem 1.25rem 3rem; }
header { margin-bottom: 1.5rem; }
.course { color: var(--muted); font-size: .9rem; letter-spacing: .02em; text-transform: uppercase; }
h1 { font-size: 1.6rem; margin: .2rem 0 .4rem; line-height: 1.25; overflow-wrap: anywhere; }
.meta { color: var(--muted); margin: 0; overflow-wrap: anywhere; }
.score { display: flex; align-items: center; gap: 1.25rem; background: var(--card);
         border: 1px solid var(--line); border-radius: 12px; padding: 1.1rem 1.4rem; margin: 1.25rem 0; }
.score .total { font-size: 2.2rem; font-weight: 700; white-space: nowrap; }
.score .total small { font-size: 1.1rem; color: var(--muted); font-weight: 500; }
.bar { flex: 1; height: .7rem; background: #e6e9ef; border-radius: 1rem; overflow: hidden; }
.bar span { display: block; height: 100%; background: var(--accent); border-radius: 1rem; }
.exercise { background: var(--card); border: 1px solid var(--line); border-left: 6px solid var(--todo);
            border-radius: 10px; padding: .9rem 1.2rem; margin: .8rem 0; }
.exercise.passed { border-left-color: var(--ok); }
.exercise h2 { display: flex; justify-content: space-between; gap: 1rem; font-size: 1.1rem; margin: 0 0 .35rem; }
.points { white-space: nowrap; font-variant-numeric: tabular-nums; }
.test { color: var(--muted); font-size: .85rem; margin: 0; overflow-wrap: anywhere; }
.status { font-weight: 600; color: var(--todo); margin: 0 0 .3rem; }
.passed .status { color: var(--ok); }
.message { margin: .3rem 0 .5rem; white-space: pre-wrap; overflow-wrap: anywhere;
           font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: .9rem;
           background: #f7f8fa; border-radius: 6px; padding: .55rem .75rem; }
a { color: var(--accent); }
.error { background: #fff4f1; border: 1px solid #f0c4b8; border-radius: 10px; padding: 1rem 1.2rem; }
.error h2 { font-size: 1.2rem; margin: 0 0 .5rem; }
footer { color: var(--muted); font-size: .85rem; margin-top: 2rem; }
table { border-collapse: collapse; width: 100%; background: var(--card); }
th, td { text-align: left; padding: .45rem .7rem; border-bottom: 1px solid var(--line); overflow-wrap: anywhere; }
@media print { body { background: #fff; } .exercise, .score { break-inside: avoid; } }
"""


def _text(value):
    """Learner text, printable and escaped for HTML (element content and attributes)."""
    return html.escape(printable(value), quote=True)


def _number(value):
    return f"{value:g}" if isinstance(value, (int, float)) else _text(value)


def _head(title):
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<meta name=\"generator\" content=\"{GENERATOR}\">\n"
            # nothing on the page may load or run anything: a page opened from an e-mail
            # cannot reach the network, even if some learner text escaped the escaping
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
            "style-src 'unsafe-inline'\">\n"
            f"<title>{title}</title>\n<style>{_STYLE}</style>\n</head>\n")


def _split_message(message):
    """``(summary, detail)`` of an exercise message: ``"2 of 5 tests passed"`` and the rest."""
    summary, sep, detail = str(message).partition("; ")
    if sep and re.fullmatch(r"\d+ of \d+ tests? passed", summary):
        return summary, detail
    return "", str(message)


def _exercise(exercise, link, heading):
    passed = bool(exercise.get("passed"))
    summary, detail = _split_message(exercise.get("message", ""))
    status = "Passed" if passed else "Not yet" + (f": {summary}" if summary else "")
    parts = [f"<section class=\"exercise{' passed' if passed else ''}\">",
             f"<h2><span>Exercise {_text(exercise.get('id', '?'))}</span>"
             f"<span class=\"points\">{_number(exercise.get('points', 0))} / "
             f"{_number(exercise.get('max_points', 0))} points</span></h2>",
             f"<p class=\"status\">{_text(status)}</p>"]
    test, sep, reason = detail.partition(": ")
    if sep and re.fullmatch(r"test_\S*", test):
        parts.append(f"<p class=\"test\">First failing test: <code>{_text(test)}</code></p>")
        detail = reason
    if not passed and detail:
        parts.append(f"<p class=\"message\">{_text(detail)}</p>")
    if link:
        parts.append(f"<p class=\"section\">{'In the course' if passed else 'Read again'}: <a href=\"{html.escape(link, quote=True)}\">"
                     f"{_text(_plain_heading(heading))}</a> (the course site)</p>")
    parts.append("</section>")
    return "\n".join(parts)


def _plain_heading(heading):
    """A heading as plain text: inline code and math marks dropped."""
    return re.sub(r"[`$]", "", heading or "section") if heading else "the chapter section"


def _chapter_label(chapter):
    """``"05_composition"`` -> ``"Chapter 5, composition"`` (any other text as it is)."""
    if not isinstance(chapter, str) or not chapter:
        return "Chapter unknown"
    match = re.fullmatch(r"(\d+)_(\w+)", chapter)
    if match:
        return f"Chapter {int(match.group(1))}, {_text(match.group(2).replace('_', ' '))}"
    return f"Chapter {_text(chapter)}"


def render(result, site=None, headings=None):
    """The feedback page (HTML text) of one result.

    ``site`` is the course site's address (no links without it); ``headings`` the declared
    sections ``{chapter: {exercise id: heading}}`` (default: :func:`grader.sections.declared`).
    Extra keys of ``result`` are ignored, except those naming the learner
    (:data:`IDENTITY_KEYS`), which are shown."""
    result = outputs.clean(result)
    headings = sections.declared() if headings is None else headings
    notebook = Path(str(result.get("notebook", "?"))).name
    chapter = result.get("chapter")
    known = headings.get(chapter, {}) if isinstance(chapter, str) else {}
    links = sections.links_for(result, site, headings) if site else {}
    who = [f"{_text(k.replace('_', ' '))}: {_text(result[k])}" for k in IDENTITY_KEYS
           if isinstance(result.get(k), (str, int)) and str(result.get(k))]
    body = ["<body>\n<main>", "<header>",
            "<p class=\"course\">Derivatives for deep learning: feedback on your notebook</p>",
            f"<h1>{_text(notebook)}</h1>",
            f"<p class=\"meta\">{_chapter_label(chapter)}",
            *([" &middot; " + " &middot; ".join(who)] if who else []), "</p>", "</header>"]
    if result.get("error"):
        body.append("<section class=\"error\"><h2>This notebook could not be graded</h2>"
                    f"<p class=\"message\">{_text(result['error'])}</p>"
                    "<p>It earned no points. Fix what the message names (or ask your "
                    "instructor) and submit it again.</p></section>")
    else:
        score, total = result.get("score", 0), result.get("max_score", 0)
        share = max(0.0, min(1.0, score / total)) if total else 0.0
        passed = sum(1 for e in result.get("exercises", ()) if e.get("passed"))
        body.append(f"<section class=\"score\" aria-label=\"score\"><div class=\"total\">"
                    f"{_number(score)} <small>/ {_number(total)} points</small></div>"
                    f"<div class=\"bar\" role=\"img\" aria-label=\"{share:.0%} of the points\">"
                    f"<span style=\"width: {share * 100:.1f}%\"></span></div>"
                    f"<div>{passed} of {len(result.get('exercises', ()))} exercises passed</div>"
                    "</section>")
        for exercise in result.get("exercises", ()):
            ex_id = exercise.get("id")
            body.append(_exercise(exercise, links.get(ex_id), known.get(ex_id)))
    body.append("<footer>Each message is what the graded tests found; the check cell under the "
                "exercise in your notebook gives the same sentence. Points are earned in "
                "proportion to the tests an exercise passes.</footer>\n</main>\n</body>\n</html>\n")
    return _head(f"Feedback: {_text(notebook)}") + "\n".join(body)


def render_index(rows):
    """The instructor's index page: ``rows`` of ``(result, page name)``."""
    lines = [_head("Feedback pages"), "<body>\n<main>\n<header><p class=\"course\">Derivatives "
             "for deep learning</p><h1>Feedback pages</h1><p class=\"meta\">One page per "
             "notebook, for its learner (this index holds every score: keep it).</p></header>",
             "<table><thead><tr><th>notebook</th><th>score</th><th>page</th></tr></thead><tbody>"]
    for result, name in rows:
        score = ("not graded" if result.get("error")
                 else f"{_number(result.get('score', 0))} / {_number(result.get('max_score', 0))}")
        lines.append(f"<tr><td>{_text(result.get('notebook', '?'))}</td><td>{score}</td>"
                     f"<td><a href=\"{html.escape(name, quote=True)}\">{_text(name)}</a></td></tr>")
    lines.append("</tbody></table>\n</main>\n</body>\n</html>\n")
    return "\n".join(lines)


# ---------------------------------------------------------------- file names
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _name_for(relative):
    stem = relative[:-len(".ipynb")] if relative.endswith(".ipynb") else relative
    name = _UNSAFE.sub("_", stem.replace(os.sep, "__")).strip("._") or "notebook"
    if len(name) > MAX_NAME:
        digest = hashlib.sha256(relative.encode("utf-8", "surrogateescape")).hexdigest()[:10]
        name = f"{name[:MAX_NAME - 11]}-{digest}"
    return name


def page_names(results):
    """A distinct, safe file name for each result's page, from its notebook's path below the
    folder the notebooks share (``alice/05_composition.ipynb`` -> ``alice__05_composition.html``)."""
    paths = [os.path.normpath(outputs.safe_text(r.get("notebook", "notebook"))) for r in results]
    parents = [os.path.dirname(p) for p in paths]
    try:
        common = os.path.commonpath(parents) if all(parents) else ""
    except ValueError:          # absolute and relative paths mixed
        common = ""
    names, taken = [], {"index"}
    for path in paths:
        base = _name_for(os.path.relpath(path, common) if common else path.lstrip(os.sep))
        name, k = base, 1
        while name.lower() in taken:
            k += 1
            name = f"{base}-{k}"
        taken.add(name.lower())
        names.append(name + ".html")
    return names


# ---------------------------------------------------------------- writing
def _ours_or_absent(path):
    """True when ``path`` does not exist or is a page written here (safe to replace)."""
    try:
        with open(path, "rb") as f:
            return GENERATOR.encode() in f.read(4096)
    except FileNotFoundError:
        return True
    except OSError:
        return False


def write_pages(results, folder, site=None, headings=None):
    """Write a page per result and ``index.html`` into ``folder`` (made when missing).

    Returns ``(written, problems)``: the page path of each notebook written, and one line per
    page that could not be written (a file of someone else's in its place, a full disk): the
    other pages are still written."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{printable(folder)}: {exc.strerror or exc}")
    headings = sections.declared() if headings is None else headings
    written, problems, rows = {}, [], []
    for result, name in zip(results, page_names(results)):
        target = folder / name
        if not _ours_or_absent(target):
            problems.append(f"{printable(target)}: a file not written by the grader is there; "
                            "left alone")
            continue
        try:
            outputs.write(target, render(result, site, headings))
        except OutputError as exc:
            problems.append(str(exc))
            continue
        except Exception as exc:       # one page's failure is that page's, never the run's
            problems.append(f"{printable(target)}: could not be rendered "
                            f"({type(exc).__name__}: {printable(exc)})")
            continue
        written[result.get("notebook")] = target
        rows.append((outputs.clean(result), name))
    index = folder / "index.html"
    if _ours_or_absent(index):
        try:
            outputs.write(index, render_index(rows))
        except OutputError as exc:
            problems.append(str(exc))
    else:
        problems.append(f"{printable(index)}: a file not written by the grader is there; left alone")
    return written, problems


# ---------------------------------------------------------------- the command line
def add_options(add):
    """``--feedback DIR`` and ``--site-url URL`` for ``python -m grader``."""
    add("--feedback", metavar="DIR",
        help="write one self-contained HTML feedback page per notebook into DIR")
    add("--site-url", metavar="URL",
        help="the course site the feedback pages link to (default: html: baseurl: of "
             "_config.yml)")


def resolve_options(parser, args):
    """Check ``--feedback`` and ``--site-url`` before anything is graded (a usage error
    otherwise); sets ``args.site`` to the site's address."""
    args.site = None
    if getattr(args, "feedback", None) is None:
        return
    target = Path(args.feedback)
    if target.exists() and not target.is_dir():
        parser.error(f"--feedback {printable(target)}: not a folder")
    if args.site_url is not None:
        if not re.match(r"https?://[^\s\"'<>]+$", args.site_url):
            parser.error(f"--site-url {printable(args.site_url)}: not an http(s) address")
        args.site = args.site_url if args.site_url.endswith("/") else args.site_url + "/"
        return
    try:
        args.site = sections.site_url()
    except sections.SiteUrlError as exc:
        parser.error(f"--feedback: {exc}")


def write_for_cli(results, args, say):
    """Write the pages ``--feedback`` asks for; ``say(text)`` reports on stderr. True when
    every page was written (or none was asked for)."""
    if not getattr(args, "feedback", None):
        return True
    try:
        written, problems = write_pages(results, args.feedback, site=args.site)
    except OutputError as exc:
        say(f"grade: could not write the feedback pages: {exc}")
        return False
    for problem in problems:
        say(f"grade: feedback page: {problem}")
    say(f"grade: {len(written)} feedback pages in {printable(args.feedback)} "
        f"(index.html lists them)")
    return not problems
