"""Sphinx configuration: MyST Markdown pages, and the API reference from the docstrings (``tox -e docs``)."""

import flask_dashboard_ws

project = "flask-dashboard-ws"
copyright = "flask-dashboard-ws contributors"
version = release = flask_dashboard_ws.__version__

extensions = ["myst_parser", "sphinx.ext.autodoc"]
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build"]
myst_heading_anchors = 3  # [text](page.md#a-heading) links to a section of another page

html_theme = "alabaster"
html_title = f"flask-dashboard-ws {release}"
html_theme_options = {"description": "Real-time dashboard events for Flask apps", "fixed_sidebar": True}

autodoc_member_order = "bysource"
autodoc_inherit_docstrings = False  # the schemas and errors would otherwise show marshmallow's own docs
python_use_unqualified_type_names = True
nitpicky = True
# No intersphinx (the docs build offline): the other libraries' types are named, not linked.
nitpick_ignore_regex = [
    ("py:class", r"(flask|flask_socketio|marshmallow|typing|collections\.abc)\..*"),
    ("py:class", r"Flask|SocketIO|Any"),
    ("py:exc", r"marshmallow\.ValidationError"),
]
