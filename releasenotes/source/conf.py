"""Sphinx configuration of mgr-supervisor's release notes (`tox -e releasenotes`)."""

project = "mgr-supervisor Release Notes"
copyright = "mgr-supervisor contributors"
author = "mgr-supervisor contributors"

extensions = ["reno.sphinxext"]

root_doc = "index"
exclude_patterns = []
html_theme = "alabaster"
