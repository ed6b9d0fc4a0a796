"""Where on the course site each exercise is taught: a link per exercise for its feedback.

Each graded test module declares, beside its ``NOTEBOOK``, the chapter section every exercise
practises, by the heading as it reads in ``book/<NOTEBOOK>.ipynb``::

    SECTIONS = {"5.2": "The Gauss-Newton matrix", ...}

The link is ``<site>book/<NOTEBOOK>.html#<anchor>``, the anchor made from the heading as
Sphinx makes a section's id (:func:`anchor`). The site is ``html: baseurl:`` of the course's
``_config.yml`` (:func:`site_url`), or whatever the caller passes. A heading renamed in a
chapter, or an exercise without a section, fails ``tests/test_grader_feedback.py`` and the
browser test that every link target exists in the built site.

The declarations are read from the modules' source (never imported: no test code runs).
"""
import ast
from pathlib import Path

import grader

__all__ = ["GRADED_TESTS", "CONFIG", "declared", "anchor", "site_url", "section_link",
           "links_for", "chapter_headings", "SiteUrlError"]

REPO = Path(grader.__file__).resolve().parents[1]
GRADED_TESTS = REPO / "tests" / "grading"
CONFIG = REPO / "_config.yml"


class SiteUrlError(ValueError):
    """The course site's address cannot be read; the message says where and why."""


def _literal_dict(node):
    try:
        value = ast.literal_eval(node)
    except ValueError:
        return None
    if isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str)
                                       for k, v in value.items()):
        return value
    return None


def declared(folder=GRADED_TESTS):
    """``{chapter: {exercise id: section heading}}`` from the ``NOTEBOOK`` and ``SECTIONS`` of
    every ``test_*.py`` of ``folder``."""
    found = {}
    for path in sorted(Path(folder).glob("test_*.py")):
        try:
            tree = ast.parse(path.read_text())
        except (SyntaxError, UnicodeDecodeError, OSError):
            continue
        names = {}
        for node in tree.body:
            if (isinstance(node, ast.Assign) and len(node.targets) == 1
                    and isinstance(node.targets[0], ast.Name)):
                names[node.targets[0].id] = node.value
        chapter = names.get("NOTEBOOK")
        if not (isinstance(chapter, ast.Constant) and isinstance(chapter.value, str)):
            continue
        sections = _literal_dict(names["SECTIONS"]) if "SECTIONS" in names else None
        found.setdefault(chapter.value, {}).update(sections or {})
    return found


def anchor(heading):
    """The id Sphinx gives the section of ``heading`` (docutils' ``make_id`` of its text:
    lower case, every run of other characters one ``-``)."""
    from docutils.nodes import make_id
    return make_id(heading)


def site_url(config=CONFIG):
    """``html: baseurl:`` of the course's ``_config.yml``, ending in ``/``;
    :class:`SiteUrlError` when it is missing or not an http(s) address."""
    import yaml
    try:
        settings = yaml.safe_load(Path(config).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise SiteUrlError(f"{config}: cannot be read ({exc})")
    url = ((settings or {}).get("html") or {}).get("baseurl") if isinstance(settings, dict) else None
    if not isinstance(url, str) or not url.startswith(("https://", "http://")):
        raise SiteUrlError(f"{config}: no html: baseurl: (the course site's address); "
                           "set it there or pass --site-url")
    return url if url.endswith("/") else url + "/"


def section_link(site, chapter, heading):
    """The address of ``heading``'s section in ``chapter``'s page of the site ``site``."""
    site = site if site.endswith("/") else site + "/"
    return f"{site}book/{chapter}.html#{anchor(heading)}"


def links_for(result, site, sections=None):
    """``{exercise id: link}`` for the exercises of ``result`` whose section is declared
    (none for a result without a known chapter)."""
    sections = declared() if sections is None else sections
    chapter = result.get("chapter")
    known = sections.get(chapter, {}) if isinstance(chapter, str) else {}
    return {e["id"]: section_link(site, chapter, known[e["id"]])
            for e in result.get("exercises", ()) if e.get("id") in known}


def chapter_headings(chapter, book=REPO / "book"):
    """Every heading text (``#`` to ``######``) of the markdown cells of ``book/<chapter>.ipynb``."""
    import json
    nb = json.loads((Path(book) / f"{chapter}.ipynb").read_text(encoding="utf-8"))
    headings = []
    for cell in nb["cells"]:
        if cell["cell_type"] != "markdown":
            continue
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        fenced = False
        for line in source.splitlines():
            if line.lstrip().startswith(("```", "~~~")):
                fenced = not fenced
            elif not fenced and line.startswith("#"):
                marks, _, text = line.partition(" ")
                if set(marks) == {"#"} and len(marks) <= 6 and text.strip():
                    headings.append(text.strip())
    return headings
