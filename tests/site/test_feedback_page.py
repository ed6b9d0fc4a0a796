"""A learner's feedback page (``python -m grader --feedback DIR``) in the browser, and the
chapter sections it links to in the built site.

The page is rendered from a fixed result (no kernel): it must open from ``file://`` with no
console error and no request at all, show the score, every exercise and its message, and be
laid out (its inline style applied). Every exercise's section link must exist in the built
site: a renamed section fails here. The page's screenshot goes to ``_build/screenshots/``.
"""
import pytest

from grader import feedback, sections
from sitecheck import check_console, ids_in, open_page

RESULT = {
    "notebook": "submissions/ada/05_composition.ipynb", "chapter": "05_composition",
    "score": 9.6, "max_score": 16.0, "student_id": "s1234567",
    "exercises": [
        {"id": "5.1", "points": 4.0, "max_points": 4.0, "passed": True,
         "message": "passed (10 tests)"},
        {"id": "5.2", "points": 1.6, "max_points": 4.0, "passed": False,
         "message": "4 of 10 tests passed; test_dense_gauss_newton[6-3-4-cross-entropy]: your "
                    "answer is 6 times the expected one: B = 6 here; is the 1/B of the mean "
                    "missing?"},
        {"id": "5.3", "points": 4.0, "max_points": 4.0, "passed": True,
         "message": "passed (4 tests)"},
        {"id": "5.4", "points": 0.0, "max_points": 3.0, "passed": False,
         "message": "0 of 10 tests passed; test_cross_layer_terms[3-4-2-tanh-cross-entropy]: "
                    "your answer is the Gauss-Newton part J^T H J alone: both residual terms "
                    "are missing"},
        {"id": "5.5", "points": 0.0, "max_points": 1.0, "passed": False,
         "message": "0 of 1 tests passed; test_which_term_vanishes: not implemented yet"}]}


@pytest.fixture(scope="module")
def feedback_page(tmp_path_factory):
    folder = tmp_path_factory.mktemp("feedback")
    written, problems = feedback.write_pages([RESULT], folder, site=sections.site_url())
    assert not problems
    return written[RESULT["notebook"]]


def test_feedback_page_reads_from_file_url(feedback_page, context, screenshot_dir):
    page, rec = open_page(context, feedback_page.as_uri())
    try:
        problems = check_console(rec)
        problems += [f"request made: {url}" for url in rec.requests if url != page.url]
        text = page.locator("main").inner_text()
        for needed in ["9.6", "/ 16 points", "Exercise 5.2", "1.6 / 4 points",
                       "is the 1/B of the mean missing?", "not implemented yet",
                       "The Gauss-Newton matrix"]:
            if needed not in text:
                problems.append(f"not on the page: {needed!r}")
        # the inline style is applied: the exercises are cards, not bare paragraphs
        border = page.evaluate("() => getComputedStyle(document.querySelector('.exercise'))"
                               ".borderLeftWidth")
        if border != "6px":
            problems.append(f"page style not applied (exercise border {border})")
        screenshot_dir.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(screenshot_dir / "feedback_page.png"), full_page=True)
        assert not problems, "\n  ".join(["feedback page:", *problems])
    finally:
        page.close()


def _all_links():
    site = "https://site.invalid/"
    for chapter, declared in sorted(sections.declared().items()):
        for exercise, heading in sorted(declared.items()):
            yield exercise, sections.section_link(site, chapter, heading)[len(site):]


def missing(site_root, links):
    """The problems of ``links`` (``(exercise, page#anchor)``) in the built site."""
    problems = []
    for exercise, rel in links:
        path, _, anchor = rel.partition("#")
        if not (site_root / path).is_file():
            problems.append(f"{exercise}: no page {path}")
        elif anchor not in ids_in(site_root / path):
            problems.append(f"{exercise}: no section #{anchor} in {path}")
    return problems


def test_every_exercise_link_exists_in_the_built_site(site_root):
    links = list(_all_links())
    assert len(links) >= 30
    problems = missing(site_root, links)
    assert not problems, "\n  ".join(["exercise links:", *problems])


def test_a_renamed_section_or_chapter_is_caught(site_root):
    renamed = sections.section_link("", "05_composition", "The Gauss-Newton matrices")
    assert len(missing(site_root, [("5.2", renamed.lstrip("/")),
                                   ("5.9", "book/05_compositions.html#summary")])) == 2
