"""
Airflow paths the tests need that moved between Airflow 3.0 and 3.3, found in one place so the suite
is not tied to one minor. The provider's own code goes through ``airflow.providers.common.compat.sdk``
(exceptions, ``BaseHook``, ``conf`` ...), and so do the tests for those; this module covers what that
shim does not carry: the ``DagBag`` and the UI's secret-name rule. Plain Python (no pytest): the smoke
test of an installation (tests/runtime/smoke_install.py) imports it too.
"""

from __future__ import annotations

import importlib
from typing import Any


def _first(name: str, *modules: str) -> Any:
    """``name`` from the first of ``modules`` that has it (newest Airflow first)."""
    for module in modules:
        try:
            return getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            continue
    raise ImportError(f"{name} is in none of {', '.join(modules)}: an Airflow this module does not know")


def dag_bag_class() -> Any:
    """``DagBag``: ``airflow.dag_processing.dagbag`` from Airflow 3.2, ``airflow.models.dagbag`` before."""
    return _first("DagBag", "airflow.dag_processing.dagbag", "airflow.models.dagbag")


def should_hide_value_for_key() -> Any:
    """
    The rule by which Airflow shows a field's value as ``***`` (a name containing ``password``,
    ``api_key`` ...): ``airflow._shared.secrets_masker`` from 3.2, ``airflow.utils.log`` before.
    """
    return _first(
        "should_hide_value_for_key",
        "airflow._shared.secrets_masker",
        "airflow.sdk._shared.secrets_masker",
        "airflow.sdk.execution_time.secrets_masker",
        "airflow.utils.log.secrets_masker",
    )
