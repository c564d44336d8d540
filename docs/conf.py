"""Sphinx configuration for repocket's documentation.

Build it with ``tox -e docs``, or::

    sphinx-build -W --keep-going -b html docs docs/_build/html

The examples in these pages are checked by ``tests/test_docs.py``, which runs
every interpreter session (``>>>``) as a doctest on the memory backend.
"""

from __future__ import annotations

import doctest
import os
import sys

sys.path.insert(0, os.path.abspath(".."))

import repocket

project = "repocket"
author = "repocket contributors"
copyright = "repocket contributors"
release = repocket.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.doctest",
    "sphinx.ext.viewcode",
]

# Everything is local: no intersphinx inventories, no network during builds.
exclude_patterns = ["_build"]
root_doc = "index"

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {
    "members": True,
    "show-inheritance": True,
}

# ``sphinx-build -b doctest docs docs/_build/doctest`` runs the ``>>>``
# examples too, as tests/test_docs.py does: each page configures its own
# storage (the memory backend), and runs as ``__main__``, as in an interactive
# session, so that keys read ``repocket:__main__:<Model>:<id>``.
doctest_default_flags = (
    doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE | doctest.DONT_ACCEPT_TRUE_FOR_1
)
doctest_global_setup = """
__name__ = "__main__"
from repocket.connections import configure
configure.reset()
"""
doctest_global_cleanup = """
configure.reset()
"""

html_theme = "furo"
html_title = f"repocket {release}"
