"""
Nothing of the source layer is left here: the specs are :mod:`airflow_provider_mlops.sources` and
each hook reads its own (``hook.read(spec, window)``).

``connection_kind`` stays importable from here only because ``operators/load.py`` (rewritten by the
Delta Lake work) imports it from this module; it belongs to
:mod:`airflow_provider_mlops.hooks.connection_types`, and this module goes with that import.
"""

from __future__ import annotations

from airflow_provider_mlops.hooks.connection_types import connection_kind

__all__ = ["connection_kind"]
