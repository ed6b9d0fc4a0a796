"""Serve MathJax from the built site itself, so the math typesets offline.

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
"""

import importlib.util
from pathlib import Path

from sphinx.errors import ExtensionError

# The MathJax component the pages load, relative to the es5 folder.
MATHJAX_ENTRY = "tex-mml-chtml.js"


def mathjax_static_folder():
    """Return the folder that holds ``mathjax/es5`` inside the installed package."""
    spec = importlib.util.find_spec("mathjax")
    if spec is None or not spec.submodule_search_locations:
        raise ExtensionError(
            "offline_mathjax: the Python package 'mathjax' is not installed; "
            "run `make` (it installs django-static-mathjax from requirements.txt)")
    for location in spec.submodule_search_locations:
        static = Path(location) / "static"
        if (static / "mathjax" / "es5" / MATHJAX_ENTRY).is_file():
            return static
    raise ExtensionError(
        "offline_mathjax: found the 'mathjax' package but not "
        f"static/mathjax/es5/{MATHJAX_ENTRY} inside it; reinstall "
        "django-static-mathjax==3.2.2.1")


def add_mathjax_tree(app, config):
    """Copy the MathJax tree into the site and make sure pages load it locally."""
    static = mathjax_static_folder()
    if str(static) not in [str(p) for p in config.html_extra_path]:
        config.html_extra_path = list(config.html_extra_path) + [str(static)]
    if "://" in config.mathjax_path or config.mathjax_path.startswith("//"):
        raise ExtensionError(
            f"offline_mathjax: mathjax_path is a URL ({config.mathjax_path}); "
            "set it to ../mathjax/es5/" + MATHJAX_ENTRY + " in _config.yml")


def setup(app):
    app.connect("config-inited", add_mathjax_tree)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
