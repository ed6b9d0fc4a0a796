"""Feedback pages (issue 25): one self-contained HTML page per notebook, each exercise linked
to its chapter section.

No kernel runs here: pages are rendered from fixed results, and ``cli.main`` runs with the
grading of each notebook stood in for (as in ``test_grader_reporting.py``). The browser test
of a page (it opens from ``file://`` without a console error) is ``tests/site/test_feedback_page.py``.
"""
import html
import re
from pathlib import Path

import nbformat
import pytest

from grader import cli, feedback, grading, sections

ROOT = Path(__file__).resolve().parents[1]
SITE = "https://example.org/course/"
INJECTION = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def _result(**extra):
    return {"notebook": "class/ada/05_composition.ipynb", "chapter": "05_composition",
            "score": 5.6, "max_score": 8.0, **extra,
            "exercises": [
                {"id": "5.1", "points": 4.0, "max_points": 4.0, "passed": True,
                 "message": "passed (10 tests)"},
                {"id": "5.2", "points": 1.6, "max_points": 4.0, "passed": False,
                 "message": "4 of 10 tests passed; test_dense_gauss_newton[6-3-4]: your answer "
                            "is 6 times the expected one: B = 6 here"}]}


# ---------------------------------------------------------------- the section of every exercise
def _exercise_ids(path):
    return set(re.findall(r"mark\.exercise\(\s*\"([^\"]+)\"", path.read_text()))


GRADED = sorted((ROOT / "tests" / "grading").glob("test_*.py"))


@pytest.mark.parametrize("module", GRADED, ids=lambda p: p.stem)
def test_every_exercise_declares_a_section_of_its_chapter(module):
    chapter = re.search(r'^NOTEBOOK = "([^"]+)"', module.read_text(), re.M).group(1)
    declared = sections.declared()[chapter]
    assert set(declared) == _exercise_ids(module), "SECTIONS and the exercise markers differ"
    headings = sections.chapter_headings(chapter)
    missing = {ex: h for ex, h in declared.items() if h not in headings}
    assert not missing, f"no such heading in book/{chapter}.ipynb: {missing}"


def test_a_renamed_section_is_not_a_heading_of_its_chapter():
    assert "The Gauss-Newton matrix" in sections.chapter_headings("05_composition")
    assert "The Gauss Newton matrices" not in sections.chapter_headings("05_composition")


def test_anchors_are_sphinx_section_ids():
    assert sections.anchor("The same formula, one module at a time: `backward_second`") == \
        "the-same-formula-one-module-at-a-time-backward-second"
    assert sections.anchor(r"Is $\partial \bar{\mathcal{L}} / \partial Z$ a Jacobian?") == \
        "is-partial-bar-mathcal-l-partial-z-a-jacobian"


def test_the_site_address_is_read_from_the_book_config(tmp_path):
    assert sections.site_url().startswith("https://")
    config = tmp_path / "_config.yml"
    config.write_text("html:\n  use_repository_button: true\n")
    with pytest.raises(sections.SiteUrlError, match="baseurl"):
        sections.site_url(config)


def test_links_point_at_the_chapter_page_and_section():
    links = sections.links_for(_result(), SITE)
    assert links == {"5.1": SITE + "book/05_composition.html#the-hessian-of-a-composition",
                     "5.2": SITE + "book/05_composition.html#the-gauss-newton-matrix"}


def test_an_unknown_chapter_gets_no_link():
    assert sections.links_for(_result(chapter="<b>99_x</b>"), SITE) == {}


# ---------------------------------------------------------------- one page
def test_page_shows_score_points_messages_and_links():
    page = feedback.render(_result(), SITE)
    assert "5.6 <small>/ 8 points" in page
    assert "1.6 / 4 points" in page and "4 / 4 points" in page
    assert "your answer is 6 times the expected one: B = 6 here" in page
    assert f'href="{SITE}book/05_composition.html#the-gauss-newton-matrix"' in page
    assert "Not yet: 4 of 10 tests passed" in page


def test_page_is_self_contained():
    page = feedback.render(_result(), SITE)
    assert not re.search(r"<(script|link|img|iframe|object)\b", page, re.I)
    assert not re.search(r"\bsrc\s*=|url\(|@import", page, re.I)
    assert "default-src 'none'" in page          # and nothing would load if it were not


def test_without_a_site_there_is_no_link():
    assert "href=" not in feedback.render(_result(), None)


def test_learner_text_is_escaped_everywhere():
    result = _result(notebook=f"class/{INJECTION}.ipynb", chapter=INJECTION,
                     student_id=INJECTION)
    result["exercises"][1]["message"] = f"0 of 1 tests passed; test_x: {INJECTION}\x1b[2J"
    result["exercises"][1]["id"] = INJECTION
    page = feedback.render(result, SITE)
    assert "<script" not in page and "<img" not in page
    assert html.escape(INJECTION) in page
    assert "\x1b" not in page and "\\x1b[2J" in page


def test_an_error_result_says_why_it_was_not_graded():
    page = feedback.render({"notebook": "a.ipynb", "chapter": None, "score": 0, "max_score": 0,
                            "exercises": [], "error": "not a notebook (not JSON: <x>)"}, SITE)
    assert "could not be graded" in page
    assert "not a notebook (not JSON: &lt;x&gt;)" in page


def test_extra_keys_are_accepted_and_the_learner_is_named():
    page = feedback.render(_result(student_id="s123", status="graded", late=True), SITE)
    assert "student id: s123" in page


def test_a_lone_surrogate_in_a_message_is_shown_escaped():
    result = _result()
    result["exercises"][1]["message"] = "raised ValueError: \ud800"
    page = feedback.render(result, SITE)
    page.encode("utf-8")
    assert "\\ud800" in page


# ---------------------------------------------------------------- file names and writing
def test_page_names_are_distinct_and_safe():
    results = [{"notebook": p} for p in ["c/ada/05_x.ipynb", "c/bob/05_x.ipynb", "c/ada_05_x.ipynb",
                                         "c/ada/05 x.ipynb", "c/index.ipynb",
                                         f"c/{INJECTION}.ipynb", "c/" + "n" * 300 + ".ipynb"]]
    names = feedback.page_names(results)
    assert len(set(n.lower() for n in names)) == len(names)
    assert "index.html" not in names
    assert names[:2] == ["ada__05_x.html", "bob__05_x.html"]
    for name in names:
        assert re.fullmatch(r"[A-Za-z0-9._-]+\.html", name) and len(name) <= 130, name


def test_write_pages_writes_a_page_per_result_and_an_index(tmp_path):
    results = [_result(), _result(notebook="class/bob/05_composition.ipynb")]
    written, problems = feedback.write_pages(results, tmp_path / "fb", site=SITE)
    assert not problems
    assert sorted(p.name for p in (tmp_path / "fb").iterdir()) == [
        "ada__05_composition.html", "bob__05_composition.html", "index.html"]
    index = (tmp_path / "fb" / "index.html").read_text()
    assert 'href="ada__05_composition.html"' in index and "5.6 / 8" in index


def test_a_file_not_written_by_the_grader_is_never_overwritten(tmp_path):
    folder = tmp_path / "fb"
    folder.mkdir()
    (folder / "ada__05_composition.html").write_text("my own notes")
    results = [_result(), _result(notebook="class/bob/05_composition.ipynb")]
    written, problems = feedback.write_pages(results, folder, site=SITE)
    assert (folder / "ada__05_composition.html").read_text() == "my own notes"
    assert len(problems) == 1 and "not written by the grader" in problems[0]
    assert (folder / "bob__05_composition.html").is_file()
    # a page of an earlier run is replaced
    assert not feedback.write_pages(results[1:], folder, site=SITE)[1]


# ---------------------------------------------------------------- the command line
def _stand_in_grading(submission, test_files, workspace, args, number):
    message = f"0 of 1 tests passed; test_x: {INJECTION}"
    return cli.result_for(submission.path, submission.chapter, [
        {"id": "2.1", "points": 0.0, "max_points": 2.0, "passed": False, "message": message}])


@pytest.fixture
def class_folder(tmp_path, monkeypatch):
    folder = tmp_path / "class"
    for name in ["ada", "bob"]:
        (folder / name).mkdir(parents=True)
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
        nb.metadata["minigrad"] = {"notebook": "02_linear_algebra"}
        nbformat.write(nb, str(folder / name / "02_linear_algebra.ipynb"))
    (folder / "broken.ipynb").write_text("{ not json")
    monkeypatch.setattr(grading, "grade_one", _stand_in_grading)
    return folder


def test_cli_writes_a_page_per_notebook(class_folder, tmp_path, capsys):
    code = cli.main([str(class_folder), "--no-sandbox", "--feedback", str(tmp_path / "fb")])
    assert code == cli.EXIT_NOT_GRADED                  # broken.ipynb is not a notebook
    pages = {p.name: p.read_text() for p in (tmp_path / "fb").iterdir()}
    assert set(pages) == {"ada__02_linear_algebra.html", "bob__02_linear_algebra.html",
                          "broken.html", "index.html"}
    assert "could not be graded" in pages["broken.html"]
    ada = pages["ada__02_linear_algebra.html"]
    assert "<script" not in ada and html.escape(INJECTION) in ada
    assert 'href="https://minigrad-course.github.io/derivatives-for-deep-learning/book/' \
           '02_linear_algebra.html#frobenius-inner-product"' in ada
    assert "3 feedback pages" in capsys.readouterr().err


def test_cli_site_url_overrides_the_config(class_folder, tmp_path):
    cli.main([str(class_folder), "--no-sandbox", "--feedback", str(tmp_path / "fb"),
              "--site-url", "http://127.0.0.1:8000"])
    page = (tmp_path / "fb" / "ada__02_linear_algebra.html").read_text()
    assert 'href="http://127.0.0.1:8000/book/02_linear_algebra.html#' in page


@pytest.mark.parametrize("options, phrase", [
    (["--site-url", "javascript:alert(1)"], "not an http(s) address"),
    (["--feedback", "{file}"], "not a folder"),
])
def test_bad_feedback_options_are_usage_errors(class_folder, tmp_path, capsys, options, phrase):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    options = [o.replace("{file}", str(a_file)) for o in options]
    if "--feedback" not in options:
        options += ["--feedback", str(tmp_path / "fb")]
    with pytest.raises(SystemExit) as stop:
        cli.main([str(class_folder), "--no-sandbox", *options])
    assert stop.value.code == cli.EXIT_USAGE
    assert phrase in capsys.readouterr().err
    assert not (tmp_path / "fb").exists()


def test_a_feedback_page_that_cannot_be_written_is_exit_4(class_folder, tmp_path):
    folder = tmp_path / "fb"
    folder.mkdir()
    (folder / "broken.html").write_text("someone else's file")
    code = cli.main([str(class_folder), "--no-sandbox", "--feedback", str(folder),
                     "--json", str(tmp_path / "o.json")])
    assert code == cli.EXIT_OUTPUT
    assert (tmp_path / "o.json").is_file()
    assert (folder / "broken.html").read_text() == "someone else's file"


def test_the_count_is_split_from_the_message_in_either_number():
    assert feedback._split_message("0 of 1 test passed; t: no") == ("0 of 1 test passed", "t: no")
    assert feedback._split_message("3 of 10 tests passed; t: no") == ("3 of 10 tests passed", "t: no")
    assert feedback._split_message("passed (1 test)") == ("", "passed (1 test)")
