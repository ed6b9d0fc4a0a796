"""Checks of the built site as a reader's browser shows it.

Every ``check_*`` function takes an open Playwright page (and what was recorded
while it loaded) and returns a list of problems, each a short sentence; an empty
list means the check passed. They depend on nothing but the page and the site
folder, so the same functions run on the real site and on a tampered copy
(``test_checks_catch.py``), which shows that they can fail.
"""
import re
import threading
from dataclasses import dataclass, field
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import yaml

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
]
#: how long a page may take to load and typeset its math (milliseconds)
PAGE_TIMEOUT_MS = 20_000
#: schemes that never leave the machine
LOCAL_SCHEMES = {"data", "blob", "about", "file", "chrome-extension"}
LOCAL_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}
#: TeX that must not survive typesetting in the page text (outside code)
RAW_TEX = re.compile(
    r"\$\$|\\frac\b|\\mathbb\b|\\mathcal\b|\\begin\{|\\partial\b|\\operatorname\b"
    r"|\\left\b|\\right\b|\\top\b|\\sum\b|\\nabla\b|\\cdot\b|\\times\b|\\in\b"
    r"|\\\(|\\\)|\\\[|\\\]|\$[^$\s][^$\n]{0,80}[\\^_][^$\n]{0,80}\$")


# ---------------------------------------------------------------- the site

def toc_pages(repo=REPO):
    """Every page in ``_toc.yml`` as its html path relative to the site root, in order."""
    toc = yaml.safe_load((repo / "_toc.yml").read_text(encoding="utf8"))
    pages = [toc["root"]]

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                pages.append(entry["file"])
            walk(entry.get("sections"))
            walk(entry.get("chapters"))

    for part in toc.get("parts", []):
        walk(part.get("chapters"))
    walk(toc.get("chapters"))
    return [re.sub(r"\.(md|ipynb|rst)$", "", p) + ".html" for p in pages]


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@dataclass
class Server:
    """A threaded static file server for one folder on 127.0.0.1 (free port)."""
    root: Path
    httpd: ThreadingHTTPServer = None
    thread: threading.Thread = None

    def __enter__(self):
        handler = partial(QuietHandler, directory=str(self.root))
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        return self

    @property
    def base(self):
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/"

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def launch(playwright):
    """Debian's chromium, headless, without any background network use."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


# ------------------------------------------------------------ one page load

@dataclass
class Record:
    """What happened while a page loaded."""
    requests: list = field(default_factory=list)
    blocked: list = field(default_factory=list)     # requests to another host, aborted
    failed: list = field(default_factory=list)      # local requests that failed or gave >= 400
    console_errors: list = field(default_factory=list)


def is_local(url):
    parts = urlsplit(url)
    if parts.scheme in LOCAL_SCHEMES:
        return True
    return parts.scheme in ("http", "https", "ws", "wss") and parts.hostname in LOCAL_HOSTS


def open_page(context, url):
    """Open ``url`` in a new page; abort and record any request that would leave 127.0.0.1.

    Returns ``(page, record)`` once the page has loaded and MathJax (if the page
    has math) has finished typesetting or timed out.
    """
    page = context.new_page()
    rec = Record()

    def route(r):
        if is_local(r.request.url):
            r.continue_()
        else:
            rec.blocked.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    page.on("request", lambda r: rec.requests.append(r.url))
    page.on("requestfailed", lambda r: rec.failed.append(f"{r.url} ({r.failure})")
            if is_local(r.url) else None)
    page.on("response", lambda r: rec.failed.append(f"{r.url} (HTTP {r.status})")
            if r.status >= 400 else None)
    page.on("console", lambda m: rec.console_errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: rec.console_errors.append(f"uncaught: {e}"))
    page.goto(url, wait_until="load", timeout=PAGE_TIMEOUT_MS)
    wait_for_math(page)
    return page, rec


def wait_for_math(page):
    """Wait until MathJax has typeset the page; return a problem string or None.

    The MathJax script is deferred, so once the page's load event has fired it
    has either run (``MathJax.startup`` exists) or failed to load.
    """
    if not page.evaluate("() => document.querySelector('.math') !== null"):
        return None
    if not page.evaluate("() => !!(window.MathJax && MathJax.startup && MathJax.startup.promise)"):
        return "MathJax did not start: its script did not load"
    done = page.evaluate(
        """ms => Promise.race([MathJax.startup.promise.then(() => true),
                              new Promise(ok => setTimeout(() => ok(false), ms))])""",
        PAGE_TIMEOUT_MS)
    return None if done else "MathJax did not finish typesetting in time"


# ------------------------------------------------------------------ checks

def check_network(rec):
    """No request left the machine, and every local resource loaded."""
    problems = [f"request to another host: {url}" for url in rec.blocked]
    problems += [f"resource failed to load: {what}" for what in rec.failed]
    return problems


def check_console(rec):
    """The console shows no error."""
    return [f"console error: {text}" for text in rec.console_errors]


_MATH_STATE_JS = """() => {
  const root = document.querySelector('article') || document.body;
  const maths = [...root.querySelectorAll('.math')].filter(e => !e.closest('pre, code'));
  const untypeset = maths.filter(e => !e.querySelector('mjx-container'))
                         .map(e => e.textContent.trim().slice(0, 60));
  const clone = root.cloneNode(true);
  clone.querySelectorAll('pre, code, script, style, mjx-container, textarea, .highlight')
       .forEach(e => e.remove());
  return {count: maths.length, untypeset: untypeset,
          mjx: root.querySelectorAll('mjx-container').length,
          text: clone.textContent,
          mathjaxSrc: [...document.scripts].map(s => s.src).filter(s => /mathjax/i.test(s))};
}"""


def check_math(page):
    """Every formula is typeset by MathJax from the site's own copy; no raw TeX is left."""
    problem = wait_for_math(page)
    problems = [problem] if problem else []
    state = page.evaluate(_MATH_STATE_JS)
    for src in state["mathjaxSrc"]:
        if not is_local(src):
            problems.append(f"MathJax loaded from another host: {src}")
    if state["count"] and not state["mjx"]:
        problems.append(f"{state['count']} formulas but no MathJax output (mjx-container)")
    for tex in state["untypeset"][:5]:
        problems.append(f"formula not typeset: {tex!r}")
    for m in list(RAW_TEX.finditer(state["text"]))[:5]:
        context = state["text"][max(0, m.start() - 30):m.end() + 30].replace("\n", " ")
        problems.append(f"raw TeX in the page text: ...{context}...")
    return problems


_IMAGES_JS = """async () => {
  const imgs = [...document.images];
  imgs.forEach(i => { i.loading = 'eager'; });
  await Promise.all(imgs.map(i => i.complete ? null : new Promise(done => {
    i.addEventListener('load', done); i.addEventListener('error', done);
    setTimeout(done, 5000); })));
  return imgs.filter(i => !(i.complete && i.naturalWidth > 0))
             .map(i => i.getAttribute('src'));
}"""


def check_images(page):
    """Every image has loaded (naturalWidth > 0)."""
    return [f"image not loaded: {src}" for src in page.evaluate(_IMAGES_JS)]


_ID_RE = re.compile(r"""\b(?:id|name)\s*=\s*["']([^"']+)["']""")


def ids_in(path, _cache={}):
    """The ids (and anchor names) an html file defines."""
    key = (str(path), path.stat().st_mtime_ns)
    if key not in _cache:
        _cache[key] = set(_ID_RE.findall(path.read_text(encoding="utf8", errors="replace")))
    return _cache[key]


def check_links(page, site_root):
    """Every internal link points at an existing file, and every #fragment at an existing id."""
    site_root = Path(site_root).resolve()
    here = urlsplit(page.url)
    links = page.evaluate("() => [...document.querySelectorAll('a[href]')]"
                          ".map(a => [a.getAttribute('href'), a.href])")
    dom_ids = set(page.evaluate("() => [...document.querySelectorAll('[id]')].map(e => e.id)"))
    problems, seen = [], set()
    for raw, absolute in links:
        if absolute in seen or raw.startswith(("javascript:", "mailto:")):
            continue
        seen.add(absolute)
        target = urlsplit(absolute)
        if (target.scheme, target.netloc) != (here.scheme, here.netloc):
            continue  # an external link: followed only by a reader's click
        rel = unquote(target.path)
        if here.scheme == "file":
            try:
                rel = str(Path(rel).resolve().relative_to(site_root))
            except ValueError:
                problems.append(f"link outside the site: {raw}")
                continue
        rel = rel.lstrip("/")
        if rel == "" or rel.endswith("/"):
            rel += "index.html"
        path = (site_root / rel).resolve()
        if site_root not in path.parents and path != site_root:
            problems.append(f"link outside the site: {raw}")
            continue
        if not path.is_file():
            problems.append(f"broken link: {raw} (no file {rel})")
            continue
        fragment = unquote(target.fragment)
        if fragment and path.suffix == ".html":
            same_page = target.path == here.path
            known = dom_ids | ids_in(path) if same_page else ids_in(path)
            if fragment not in known:
                problems.append(f"broken anchor: {raw} (no id {fragment!r} in {rel})")
    return problems


def check_page(page, rec, site_root):
    """All the per-page checks; a list of problems."""
    return (check_network(rec) + check_console(rec) + check_math(page)
            + check_images(page) + check_links(page, site_root))


def code_cells(page):
    return page.locator("div.cell").count()


def check_exercise_stubs(page):
    """An exercise page shows its stubs (``raise NotImplementedError``)."""
    if not code_cells(page):
        return []  # a placeholder page: nothing to solve yet
    text = page.locator("article").inner_text()
    return [] if "NotImplementedError" in text else ["no NotImplementedError stub on the page"]


def check_solutions_hidden(page):
    """Solution code (cells tagged hide-input) is collapsed until its toggle is opened."""
    if not code_cells(page):
        return []  # a placeholder page
    toggles = page.locator("div.tag_hide-input details.hide")
    if toggles.count() == 0:
        return ["no collapsed (hide-input) solution cell on the page"]
    problems = []
    for i in range(toggles.count()):
        toggle = toggles.nth(i)
        code = toggle.locator("div.cell_input pre").first
        if code.is_visible():
            problems.append(f"solution cell {i + 1} shows its code before it is opened")
            continue
        toggle.locator("summary").click()
        try:
            code.wait_for(state="visible", timeout=5_000)
        except Exception:
            problems.append(f"solution cell {i + 1} does not show its code once opened")
    return problems


def screenshot(page, folder, rel):
    """A full-page screenshot under ``folder`` named after the page's path."""
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / (rel.replace("/", "__")[:-5] + ".jpg")),
                    full_page=True, type="jpeg", quality=70)
