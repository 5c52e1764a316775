"""
An empty load under a real dag.test() run (issue 28, item 8): ``on_empty='skip'`` leaves the target
untouched *and* emits no Asset event (the table's consumers must not run again on unchanged data);
a load with rows, or ``on_empty='replace'`` (which does change the target), emits one.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pytest

from airflow_provider_mlops.hooks.s3 import ObjectStorageHook
from tests.operators.dag_files import asset_events, dag_from_source, xcom_value

DAG_FILE = """
import datetime as dt
from airflow.sdk import DAG
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow_provider_mlops.operators.load import LoadOperator
from airflow_provider_mlops.sinks import LakeTable

with DAG("{dag_id}", schedule=None, start_date=dt.datetime(2026, 1, 1)) as dag:
    load = LoadOperator(task_id="load", input_uri="INPUT", sink=LakeTable("OUTPUT"), on_empty="ON_EMPTY")
    after = EmptyOperator(task_id="after", trigger_rule="none_failed")
    load >> after
"""


def _run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rows: int, on_empty: str
) -> tuple[object, object, str]:
    storage = ObjectStorageHook(aws_conn_id=None)
    data = (tmp_path / f"in_{rows}_{on_empty}").as_uri()
    schema = pa.schema([("day", pa.date32()), ("rain", pa.bool_())])
    batch = pa.RecordBatch.from_pydict(
        {"day": [dt.date(2026, 1, 1)] * rows, "rain": [True] * rows}, schema=schema
    )
    storage.write_dataset(data, [batch] if rows else [], schema=schema)
    out = (tmp_path / f"daily_weather_{rows}_{on_empty}").as_uri()
    source = DAG_FILE.replace("INPUT", data).replace("OUTPUT", out).replace("ON_EMPTY", on_empty)
    dag = dag_from_source(source, tmp_path / "dags", monkeypatch, prefix="load_empty")
    run = dag.test(logical_date=dt.datetime(2026, 1, 2, tzinfo=dt.UTC))
    return dag, run, out


def _states(run: object) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in run.get_task_instances()}  # type: ignore[attr-defined]


def test_an_empty_load_emits_no_asset_event(
    airflow_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_mlops.assets import storage_asset

    dag, run, out = _run(tmp_path, monkeypatch, rows=0, on_empty="skip")
    assert run.state == "success"  # type: ignore[attr-defined]
    assert _states(run) == {"load": "skipped", "after": "success"}, "a none_failed task downstream still runs"
    assert asset_events(storage_asset(out).uri) == [], "an untouched target is not an update"
    assert xcom_value(dag.dag_id, run.run_id, "load", "return_value") is None  # type: ignore[attr-defined]


@pytest.mark.parametrize(("rows", "on_empty"), [(3, "skip"), (0, "replace")])
def test_a_load_that_changes_the_target_emits_one_event(
    airflow_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rows: int, on_empty: str
) -> None:
    from airflow_provider_mlops.assets import storage_asset

    dag, run, out = _run(tmp_path, monkeypatch, rows=rows, on_empty=on_empty)
    assert _states(run) == {"load": "success", "after": "success"}
    events = asset_events(storage_asset(out).uri)
    assert [(e.source_dag_id, e.source_task_id) for e in events] == [(dag.dag_id, "load")]  # type: ignore[attr-defined]
    assert xcom_value(dag.dag_id, run.run_id, "load", "return_value")["rows"] == rows  # type: ignore[attr-defined]
