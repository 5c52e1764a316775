"""
DAG integrity tests, as Astro projects have them (``astro dev pytest`` or plain ``pytest``): every DAG
file imports, every DAG has tags and retries, and every connection id the DAGs use is defined in
airflow_settings.yaml (Astro) or airflow-connections.env (compose).
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest

PROJECT = Path(__file__).resolve().parents[2]
DAGS = PROJECT / "dags"
# The ETL adds its MongoDB task only when this is set, as both stacks do.
os.environ.setdefault("MLOPS_ETL_MONGO_CONN_ID", "mlops_mongo")
# Airflow's own examples stay out (3.3's DagBag has no include_examples argument any more).
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")


@lru_cache(maxsize=1)
def _dag_bag() -> Any:
    try:  # Airflow >= 3.1
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # pragma: no cover - older Airflow
        from airflow.models import DagBag
    return DagBag(dag_folder=str(DAGS))


def _dags() -> list[Any]:
    return list(_dag_bag().dags.values())


def test_no_import_errors() -> None:
    errors = {os.path.relpath(path, PROJECT): msg.strip() for path, msg in _dag_bag().import_errors.items()}
    assert not errors, errors
    assert _dags(), f"no DAG found in {DAGS}"


@pytest.mark.parametrize("dag", _dags(), ids=lambda dag: dag.dag_id)
def test_dag_has_tags(dag: Any) -> None:
    assert dag.tags, f"{dag.dag_id} has no tags"


@pytest.mark.parametrize("dag", _dags(), ids=lambda dag: dag.dag_id)
def test_dag_retries(dag: Any) -> None:
    retries = dag.default_args.get("retries", 0)
    assert retries >= 2, f"{dag.dag_id}: retries is {retries}, want >= 2 (tasks meet flaky systems)"


def _conn_ids_of(obj: Any) -> set[str]:
    """String values of ``*conn_id`` attributes: operators, sensors and notifiers."""
    found = set()
    for name, value in vars(obj).items():
        if name.endswith("conn_id") and isinstance(value, str) and value:
            found.add(value)
    return found


def used_conn_ids() -> set[str]:
    used: set[str] = set()
    for dag in _dags():
        for task in dag.tasks:
            used |= _conn_ids_of(task)
            callbacks = task.on_failure_callback or []
            for callback in callbacks if isinstance(callbacks, list) else [callbacks]:
                used |= _conn_ids_of(callback)
            for callback in getattr(task, "on_drift", None) or []:
                used |= _conn_ids_of(callback)
    return used


def defined_conn_ids() -> set[str]:
    """Connections the project defines: airflow_settings.yaml (Astro) or AIRFLOW_CONN_* (compose)."""
    defined: set[str] = set()
    settings = PROJECT / "airflow_settings.yaml"
    if settings.exists():
        import yaml

        data = yaml.safe_load(settings.read_text()) or {}
        defined |= {c["conn_id"] for c in (data.get("airflow") or {}).get("connections") or []}
    for env_file in (PROJECT / "airflow-connections.env",):
        if env_file.exists():
            defined |= {
                m.lower() for m in re.findall(r"^AIRFLOW_CONN_([A-Z0-9_]+)=", env_file.read_text(), re.M)
            }
    return defined


def test_every_connection_the_dags_use_is_defined() -> None:
    missing = used_conn_ids() - defined_conn_ids()
    assert not missing, f"DAGs use connections the project does not define: {sorted(missing)}"
