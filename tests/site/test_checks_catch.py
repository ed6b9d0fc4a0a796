"""The browser checks can fail: run them on a tampered copy of the built site.

The copy has MathJax pointed back at a CDN, raw TeX in a paragraph, a deleted
image, a broken link and anchor, a console error, and an opened solution cell;
each check must report its own breakage, naming what broke.
"""
import re
import shutil

import pytest

from sitecheck import (Server, check_console, check_images, check_links, check_math,
                       check_network, check_solutions_hidden, open_page, toc_pages)

CDN = "https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js"
IMG_RE = re.compile(r'<img[^>]*\bsrc="([^"]*_images/[^"]+)"')


def first_page(site_root, pages, needle):
    for rel in pages:
        if needle in (site_root / rel).read_text(encoding="utf8"):
            return rel
    return None


@pytest.fixture(scope="module")
def tampered(site_root, tmp_path_factory):
    """A copy of the site with known breakage; returns (root, what was broken where)."""
    root = tmp_path_factory.mktemp("tampered") / "html"
    shutil.copytree(site_root, root, ignore=lambda d, names:
                    ["mathjax"] if d == str(site_root) else [])
    (root / "mathjax").symlink_to(site_root / "mathjax", target_is_directory=True)
    pages = toc_pages()
    broken = {}

    math_page = first_page(root, pages, 'class="math')
    assert math_page, "no page with math to tamper with"
    html = (root / math_page).read_text(encoding="utf8")
    html, n = re.subn(r'src="[^"]*mathjax/es5/tex-mml-chtml\.js[^"]*"', f'src="{CDN}"', html)
    assert n == 1, f"{math_page}: MathJax script tag not found"
    html = html.replace("</article>", (
        '<p><a href="no-such-page.html">gone</a> <a href="#no-such-anchor">nowhere</a></p>'
        '<script>console.error("tampered page")</script></article>'), 1)
    (root / math_page).write_text(html, encoding="utf8")
    broken["math"] = math_page

    # TeX that MathJax skips (class mathjax_ignore): what a reader sees of a
    # formula that was never typeset.
    # on a page of its own: where MathJax fails to start, raw TeX is reported as such
    raw_page = next(rel for rel in pages if rel != math_page)
    p = root / raw_page
    p.write_text(p.read_text(encoding="utf8").replace("</article>", (
        '<p class="mathjax_ignore">Raw: $$\\frac{a}{b} + \\mathbb{R}$$</p></article>'), 1))
    broken["raw"] = raw_page

    img_page = first_page(root, pages, "_images/")
    if img_page:
        src = IMG_RE.search((root / img_page).read_text(encoding="utf8")).group(1)
        (root / img_page).parent.joinpath(src).resolve().unlink()
    else:  # no figure in the book yet: add one that points nowhere
        img_page = math_page
        p = root / img_page
        p.write_text(p.read_text(encoding="utf8").replace(
            "</article>", '<img src="../_images/deleted.png" alt="x"></article>', 1))
    broken["image"] = img_page

    solution = first_page(root, [p for p in pages if p.startswith("solutions/")],
                          '<details class="admonition hide above-input">')
    if solution:
        p = root / solution
        p.write_text(p.read_text(encoding="utf8").replace(
            '<details class="admonition hide above-input">',
            '<details open class="admonition hide above-input">'))
        broken["solution"] = solution
    with Server(root) as server:
        yield root, server, broken


def test_cdn_mathjax_links_and_console_are_caught(tampered, context):
    root, server, broken = tampered
    page, rec = open_page(context, server.base + broken["math"])
    try:
        network = check_network(rec)
        assert any("request to another host" in p and "cdn.jsdelivr.net" in p for p in network)
        math = check_math(page)
        assert any("MathJax did not start" in p for p in math), math
        assert any("formula not typeset" in p for p in math), math
        links = check_links(page, root)
        assert any("broken link: no-such-page.html" in p for p in links), links
        assert any("broken anchor: #no-such-anchor" in p for p in links), links
        assert any("tampered page" in p for p in check_console(rec))
    finally:
        page.close()


def test_raw_tex_is_caught(tampered, context):
    root, server, broken = tampered
    page, rec = open_page(context, server.base + broken["raw"])
    try:
        math = check_math(page)
        assert any("raw TeX" in p and "frac" in p for p in math), math
    finally:
        page.close()


def test_deleted_image_is_caught(tampered, context):
    root, server, broken = tampered
    page, rec = open_page(context, server.base + broken["image"])
    try:
        images = check_images(page)
        assert any("image not loaded" in p and "_images/" in p for p in images), images
        assert any("HTTP 404" in p for p in check_network(rec))
    finally:
        page.close()


def test_open_solution_is_caught(tampered, context):
    root, server, broken = tampered
    if "solution" not in broken:
        pytest.skip("no solution page with a hidden cell yet")
    page, rec = open_page(context, server.base + broken["solution"])
    try:
        problems = check_solutions_hidden(page)
        assert any("shows its code before it is opened" in p for p in problems), problems
    finally:
        page.close()
