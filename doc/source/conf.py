"""Sphinx configuration of mgr-supervisor's documentation (`tox -e docs`)."""

project = "mgr-supervisor"
copyright = "mgr-supervisor contributors"
author = "mgr-supervisor contributors"

extensions = [
    "myst_parser",
    "oslo_config.sphinxext",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = []

# Markdown pages: ``{directive}`` fences and definition lists; headings get anchors so
# pages can link to a section as ``page.md#anchor``.
myst_heading_anchors = 3

html_theme = "alabaster"
html_title = "mgr-supervisor"
