"""The student edition's site and copy hold no solution: no page, no link, no line of code.

The lines looked for are those of the solution regions of ``solutions/*.ipynb`` that appear
nowhere in what students may see (``make_student.solution_lines``). The same search on the full
site must find every solution page: it shows that the search can fail. The student site's pages
themselves are checked in the browser by ``test_site.py``, like the full site's.
"""
import re
import sys

import pytest

from sitecheck import REPO

sys.path.insert(0, str(REPO / "scripts"))
import make_student  # noqa: E402

SITES = ("full", "student")
HREF = re.compile(r"""\bhref\s*=\s*["']([^"']*)["']""")


@pytest.fixture(scope="module")
def lines():
    return make_student.solution_lines()


def solution_pages():
    return sorted(f"solutions/{p.stem}.html" for p in (REPO / "solutions").glob("*.ipynb"))


def test_solution_code_is_found_exactly_where_it_may_be(site, site_root, lines):
    leaked = make_student.leaks(site_root, lines)
    if site.name == "student":
        assert leaked == {}, f"solution code in the student site: {leaked}"
        assert make_student.leaks(site.source, lines) == {}, "solution code in the student copy"
    else:
        pages = [rel for rel in leaked if rel.endswith(".html")]
        assert sorted(pages) == solution_pages(), (
            f"the full site's solution pages should hold solution code, and only they: {pages}")


def test_the_student_site_has_no_solution_page_and_no_link_to_one(site, site_root):
    if site.name != "student":
        pytest.skip("the full site has its Solutions part")
    files = [str(p.relative_to(site_root)) for p in site_root.rglob("*") if p.is_file()]
    assert not [f for f in files if "solutions" in f or "instructors" in f]
    linking = {}
    for page in site_root.rglob("*.html"):
        bad = [h for h in HREF.findall(page.read_text(encoding="utf8", errors="replace"))
               if "solutions/" in h or "instructors" in h]
        if bad:
            linking[str(page.relative_to(site_root))] = bad
    assert not linking, f"links to solution or instructor pages: {linking}"


def test_the_student_sites_buttons_open_the_student_repository(site, site_root):
    url, _ = make_student.student_repository()
    text = (site_root / "exercises" / "03_jacobian.html").read_text(encoding="utf8")
    full_url = make_student.launch_files.repository()[0]
    full_path = full_url.split("://", 1)[1].split("/", 1)[1]      # owner/name, as Binder and Colab links have it
    if site.name == "student":
        assert url in text, "the repository button does not open the student repository"
        assert f"{full_path}/" not in text and f'{full_url}"' not in text, \
            "a launch button of the student site opens the full repository"
    else:
        assert url not in text and f"{full_path}/" in text
