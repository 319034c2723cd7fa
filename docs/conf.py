"""Sphinx configuration for the install-atomic documentation.

Build: ``python3 -m sphinx -W --keep-going -b html docs docs/_build/html``
"""

from __future__ import annotations

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
# autodoc imports the package from the source tree; no install needed.
sys.path.insert(0, os.path.join(HERE, "..", "src"))

import install_atomic  # noqa: E402

project = "install-atomic"
author = "install-atomic contributors"
copyright = "install-atomic contributors"
release = install_atomic.__version__
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
]

source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build", "requirements.txt", "Thumbs.db", ".DS_Store"]

myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"show-inheritance": True}

html_theme = "furo"
html_title = f"install-atomic {release}"
# _static/ is written by the benchmarks; only use it when it is there.
html_static_path = ["_static"] if os.path.isdir(os.path.join(HERE, "_static")) else []
