"""Sphinx configuration for the airflow-provider-mlops docs."""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.abspath(".."))

from airflow_provider_mlops import __version__

project = "airflow-provider-mlops"
author = "airflow-provider-mlops maintainers"
release = version = __version__
extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.viewcode", "myst_parser"]
html_theme = "furo"
html_static_path = ["_static"]
html_title = f"airflow-provider-mlops {__version__}"
exclude_patterns = ["_build"]
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_mock_imports: list[str] = []
nitpicky = False
suppress_warnings = ["ref.python"]
