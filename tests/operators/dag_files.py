"""Run a DAG written as a file with dag.test() (dag.test() runs what the DAG bundle serialized)."""

from __future__ import annotations

import importlib.util
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pytest


def dag_from_source(source: str, folder: Path, monkeypatch: pytest.MonkeyPatch, prefix: str = "t") -> Any:
    """
    The DAG of ``source`` (its ``{dag_id}`` placeholder filled with a fresh id), written to ``folder``
    which becomes the DAG folder for the test.
    """
    from airflow import settings

    dag_id = f"{prefix}_{uuid.uuid4().hex[:8]}"
    folder.mkdir(exist_ok=True)
    path = folder / f"{dag_id}.py"
    path.write_text(textwrap.dedent(source).replace("{dag_id}", dag_id))
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(folder))
    monkeypatch.setattr(settings, "DAGS_FOLDER", str(folder))
    spec = importlib.util.spec_from_file_location(dag_id, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.dag


def asset_events(uri: str) -> list[Any]:
    """The asset events recorded for the Asset ``uri``."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        return list(
            session.scalars(
                select(AssetEvent)
                .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
                .where(AssetModel.uri == uri)
            )
        )


def xcom_value(dag_id: str, run_id: str, task_id: str, key: str) -> Any:
    """The XCom ``key`` a task pushed in a run, None when it pushed none."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.execute(
            XComModel.get_many(key=key, run_id=run_id, dag_ids=dag_id, task_ids=task_id).with_only_columns(
                XComModel.value
            )
        ).first()
    return None if row is None else XComModel.deserialize_value(row)
