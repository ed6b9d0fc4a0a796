"""Fixtures of the browser tests: the built site served on 127.0.0.1 and one browser.

Two sites are built: the full one, ``_build/html`` (``make book``), and the student edition,
``_build/student/html`` (``make student``, built from the copy ``_build/student/repo``, whose
``_toc.yml`` lists its pages); ``make test-site`` builds both first. Set SITE_HTML (and
STUDENT_HTML, STUDENT_REPO) to check other build folders. A test module that sets
``SITES = ("full", "student")`` runs its tests on both, parametrised by the ``site`` fixture (a
test that also takes ``rel`` runs once per page of each site's table of contents); any other
module checks the full site. Chromium is Debian's ``/usr/bin/chromium``
(``scripts/ensure_chromium.sh`` installs it).
"""
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from sitecheck import CHROMIUM, REPO, Server, launch, toc_pages


@dataclass(frozen=True)
class Site:
    """A built site: its name, its html folder, the folder whose ``_toc.yml`` lists its pages,
    and the command that builds it."""
    name: str
    html: Path
    source: Path
    build: str

    def pages(self):
        return toc_pages(self.source) if (self.source / "_toc.yml").is_file() else ["index.html"]


SITES = {
    "full": Site("full", Path(os.environ.get("SITE_HTML", REPO / "_build" / "html")).resolve(),
                 REPO, "make book"),
    "student": Site("student",
                    Path(os.environ.get("STUDENT_HTML", REPO / "_build" / "student" / "html")).resolve(),
                    Path(os.environ.get("STUDENT_REPO", REPO / "_build" / "student" / "repo")).resolve(),
                    "make student"),
}


def pytest_generate_tests(metafunc):
    """Parametrise ``site`` (and ``site, rel`` for per-page tests) over the module's SITES."""
    if "site" not in metafunc.fixturenames:
        return
    sites = [SITES[name] for name in getattr(metafunc.module, "SITES", ("full",))]
    if "rel" in metafunc.fixturenames:
        pairs = [(site, rel) for site in sites for rel in site.pages()]
        metafunc.parametrize(("site", "rel"), pairs, indirect=["site"], scope="session",
                             ids=[f"{site.name}:{rel}" for site, rel in pairs])
    else:
        metafunc.parametrize("site", sites, indirect=True, scope="session",
                             ids=[site.name for site in sites])


@pytest.fixture(scope="session")
def site(request):
    return request.param


@pytest.fixture(scope="session")
def site_root(site):
    root = site.html
    if not (root / "index.html").is_file():
        pytest.fail(f"no built site at {root}: run `{site.build}` first (`make test-site` does)",
                    pytrace=False)
    return root


@pytest.fixture(scope="session")
def screenshot_dir(site_root):
    return site_root.parent / "screenshots"


@pytest.fixture(scope="session")
def server(site_root):
    with Server(site_root) as srv:
        yield srv


@pytest.fixture(scope="session")
def browser():
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: run `bash scripts/ensure_chromium.sh`",
                    pytrace=False)
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = launch(p)
        yield b
        b.close()


@pytest.fixture(scope="session")
def context(browser):
    ctx = browser.new_context(viewport={"width": 1280, "height": 800}, color_scheme="light",
                              service_workers="block")
    ctx.set_default_timeout(20_000)
    yield ctx
    ctx.close()
