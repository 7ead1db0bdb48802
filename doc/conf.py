"""Sphinx configuration: the Markdown pages (MyST) plus autodoc for the API.

Build with ``make docs`` (the tox env ``docs``), which runs
``sphinx-build -W -b html doc doc/_build/html``: every warning is an error.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # document the checkout, installed or not

from neoleasepool import __version__  # noqa: E402

project = "neoleasepool"
author = "the neoleasepool authors"
copyright = "neoleasepool authors, MIT licence"  # noqa: A001 - Sphinx's name
release = __version__
version = ".".join(__version__.split(".")[:2])

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]

# Markdown: heading anchors for [text](page.md#section) links.
myst_heading_anchors = 3

# Docstrings are Google style (see STYLE.md); the signature already shows
# the types.
napoleon_google_docstring = True
napoleon_numpy_docstring = False
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options = {"members": True, "show-inheritance": True}

html_theme = "alabaster"
html_title = f"neoleasepool {release}"
html_theme_options = {
    "description": "Leased executors, batching and supervision for async and sync Python",
    "fixed_sidebar": True,
}
