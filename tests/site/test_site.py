"""The built site in a real browser, offline: every page of the table of contents.

Per page: it loads; its math is typeset by the site's own MathJax; no request
leaves 127.0.0.1; every image loads; every internal link and anchor resolves; the
console has no error. A full-page screenshot of each page goes to
``_build/screenshots/``. Plus: search finds a chapter term, exercise pages show
their stubs, solution pages hide solution code until opened, and the site also
reads from ``file://``. Every test runs on both sites, the full one and the student
edition (``conftest.py``: the ``site`` fixture, pages from each one's ``_toc.yml``).
"""
import pytest

from sitecheck import (check_exercise_stubs, check_images, check_math, check_network,
                       check_page, check_solutions_hidden, open_page, screenshot)

SITES = ("full", "student")


def report(rel, problems):
    return f"{rel}:\n  " + "\n  ".join(problems)


def test_page(site, rel, site_root, server, context, screenshot_dir):
    assert (site_root / rel).is_file(), f"{rel}: listed in the {site.name} site's _toc.yml but not built"
    page, rec = open_page(context, server.base + rel)
    try:
        problems = check_page(page, rec, site_root)
        screenshot(page, screenshot_dir, rel)
        if rel.startswith("exercises/"):
            problems += check_exercise_stubs(page)
        if rel.startswith("solutions/"):
            problems += check_solutions_hidden(page)
        assert not problems, report(rel, problems)
    finally:
        page.close()


def test_search_finds_a_chapter_term(site, server, context):
    page, rec = open_page(context, server.base + "search.html?q=Jacobian")
    try:
        results = page.locator("#search-results ul.search li")
        try:
            results.first.wait_for(timeout=20_000)
        except Exception:
            pytest.fail("search.html?q=Jacobian: no result listed")
        hrefs = results.locator("a").evaluate_all("as => as.map(a => a.getAttribute('href'))")
        chapters = [p for p in site.pages() if p.startswith("book/")]
        assert any(h.split("?")[0].split("#")[0] in chapters for h in hrefs), (
            f"search.html?q=Jacobian: no chapter among the results {hrefs}")
        problems = check_network(rec) + [f"console error: {e}" for e in rec.console_errors]
        assert not problems, report("search.html", problems)
    finally:
        page.close()


def first_page_with_math(site, site_root):
    for rel in site.pages():
        if 'class="math' in (site_root / rel).read_text(encoding="utf8"):
            return rel
    pytest.fail("no page of the table of contents has any math")


def test_site_reads_from_file_urls(site, site_root, context):
    rel = first_page_with_math(site, site_root)
    page, rec = open_page(context, (site_root / rel).as_uri())
    try:
        problems = check_network(rec) + check_math(page) + check_images(page)
        unstyled = page.evaluate("""() => [...document.querySelectorAll('link[rel=stylesheet]')]
                                       .filter(l => !l.sheet).map(l => l.getAttribute('href'))""")
        problems += [f"stylesheet not loaded: {href}" for href in unstyled]
        if page.evaluate("() => document.querySelectorAll('link[rel=stylesheet]').length") == 0:
            problems.append("no stylesheet on the page")
        # The theme's CSS places the primary sidebar beside the article, not above it.
        layout = page.evaluate("""() => {
            const side = document.querySelector('.bd-sidebar-primary');
            const art = document.querySelector('article');
            if (!side || !art) return 'missing';
            return side.getBoundingClientRect().right <= art.getBoundingClientRect().left + 1
                   ? 'ok' : 'unstyled'; }""")
        if layout != "ok":
            problems.append(f"theme layout not applied from file:// ({layout})")
        assert not problems, report(f"file://{rel}", problems)
    finally:
        page.close()
