"""Make the built site work offline: local MathJax, no dormant thebe loader.

MathJax
-------

Sphinx loads MathJax from a CDN by default; without a network the formulas
stay raw TeX. MathJax 3.2.2 ships on PyPI inside ``django-static-mathjax``
(pinned in requirements.txt) as the tree ``mathjax/static/mathjax/es5``. This
extension finds that tree through the import system and adds its parent
folder to ``html_extra_path``, so every build copies it to
``_build/html/mathjax/es5/``. ``mathjax_path`` in ``_config.yml`` points at it
with a relative path, which Sphinx rewrites per page, so the site also reads
from ``file://``.

The tree is not put under ``html_static_path``: the book theme would inject
every ``.js`` file found there into every page.

thebe
-----
``sphinx_thebe`` (a default extension of Jupyter Book) adds to every page an
inline script naming thebe's CDN URL and a loader script; with Sphinx 7 both are
written twice per page, and the second copy throws "Identifier 'THEBE_JS_URL'
has already been declared" in the console. The book has no thebe (live code)
button (``launch_buttons.thebe`` is off), so the scripts can never be used: when
that button is off this extension removes them.
"""

import importlib.util
import os
from pathlib import Path

from sphinx.errors import ExtensionError

# The MathJax component the pages load, relative to the es5 folder.
MATHJAX_ENTRY = "tex-mml-chtml.js"


def mathjax_static_folder():
    """Return the folder that holds ``mathjax/es5`` inside the installed package."""
    spec = importlib.util.find_spec("mathjax")
    if spec is None or not spec.submodule_search_locations:
        raise ExtensionError(
            "offline_site: the Python package 'mathjax' is not installed; "
            "run `make` (it installs django-static-mathjax from requirements.txt)")
    for location in spec.submodule_search_locations:
        static = Path(location) / "static"
        if (static / "mathjax" / "es5" / MATHJAX_ENTRY).is_file():
            return static
    raise ExtensionError(
        "offline_site: found the 'mathjax' package but not "
        f"static/mathjax/es5/{MATHJAX_ENTRY} inside it; reinstall "
        "django-static-mathjax==3.2.2.1")


def add_mathjax_tree(app, config):
    """Copy the MathJax tree into the site and make sure pages load it locally."""
    static = mathjax_static_folder()
    if str(static) not in [str(p) for p in config.html_extra_path]:
        config.html_extra_path = list(config.html_extra_path) + [str(static)]
    if "://" in config.mathjax_path or config.mathjax_path.startswith("//"):
        raise ExtensionError(
            f"offline_site: mathjax_path is a URL ({config.mathjax_path}); "
            "set it to ../mathjax/es5/" + MATHJAX_ENTRY + " in _config.yml")


def _is_thebe_script(filename, body):
    return os.path.basename(filename or "") == "sphinx-thebe.js" or "THEBE_JS_URL" in (body or "")


def drop_thebe_scripts(app, env, docnames):
    """Remove sphinx_thebe's scripts when the book shows no thebe button."""
    launch = (app.config.html_theme_options or {}).get("launch_buttons", {}) or {}
    if launch.get("thebe"):
        return
    app.registry.js_files[:] = [
        (filename, attrs) for filename, attrs in app.registry.js_files
        if not _is_thebe_script(filename, attrs.get("body"))]
    builder_js = getattr(app.builder, "_js_files", None)
    if builder_js is not None:
        builder_js[:] = [
            js for js in builder_js
            if not _is_thebe_script(getattr(js, "filename", js),
                                    getattr(js, "attributes", {}).get("body"))]


def setup(app):
    app.connect("config-inited", add_mathjax_tree)
    # after sphinx_thebe's own env-before-read-docs handler (default priority 500)
    app.connect("env-before-read-docs", drop_thebe_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
