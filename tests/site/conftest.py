"""Fixtures of the browser tests: the built site served on 127.0.0.1 and one browser.

The site is ``_build/html`` (``make test`` builds it first with ``make book``);
set SITE_HTML to check another build folder. Chromium is Debian's
``/usr/bin/chromium`` (``scripts/ensure_chromium.sh`` installs it).
"""
import os
from pathlib import Path

import pytest

from sitecheck import CHROMIUM, REPO, Server, launch


@pytest.fixture(scope="session")
def site_root():
    root = Path(os.environ.get("SITE_HTML", REPO / "_build" / "html")).resolve()
    if not (root / "index.html").is_file():
        pytest.fail(f"no built site at {root}: run `make book` first (`make test` does)",
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
