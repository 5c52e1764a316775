"""
The *Data profile* extra link under a real dag.test() run (issue 28, item 4): a failed profile task
leaves no link and logs no "XCom not found" error; a successful one stores the report's URI.
"""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from airflow_provider_mlops.hooks.s3 import S3Hook
from airflow_provider_mlops.links.profile import ProfileReportLink


def _link_xcom(dag_id: str, run_id: str) -> Any:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.execute(
            XComModel.get_many(
                key=ProfileReportLink().xcom_key, run_id=run_id, dag_ids=dag_id, task_ids="profile"
            ).with_only_columns(XComModel.value)
        ).first()
    return None if row is None else XComModel.deserialize_value(row)


DAG_FILE = """
import datetime as dt
from airflow.sdk import DAG
from airflow_provider_mlops.operators.profile import ProfileDataOperator

with DAG("{dag_id}", schedule=None, start_date=dt.datetime(2026, 1, 1)) as dag:
    ProfileDataOperator(task_id="profile", input_uri="{input_uri}", output_uri="{output_uri}")
"""


def _dag(input_uri: str, output_uri: str, folder: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A one-task DAG in its own DAG folder (dag.test() runs what the bundle serialized)."""
    import importlib.util

    dag_id = f"profile_link_{uuid.uuid4().hex[:8]}"
    folder.mkdir()
    path = folder / f"{dag_id}.py"
    path.write_text(DAG_FILE.format(dag_id=dag_id, input_uri=input_uri, output_uri=output_uri))
    from airflow import settings

    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(folder))
    monkeypatch.setattr(settings, "DAGS_FOLDER", str(folder))
    spec = importlib.util.spec_from_file_location(dag_id, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.dag


def test_a_failed_profile_leaves_no_link_and_no_xcom_error(
    airflow_db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    dag = _dag((tmp_path / "missing").as_uri(), (tmp_path / "out").as_uri(), tmp_path / "dags", monkeypatch)
    run = dag.test(logical_date=dt.datetime(2026, 1, 2, tzinfo=dt.UTC))
    assert run.state == "failed"
    out = capsys.readouterr()
    logged = out.out + out.err
    assert "XCom not found" not in logged, "the link must not ask for an XCom the task never pushed"
    assert not _link_xcom(dag.dag_id, run.run_id), "no link for a report that does not exist"


def test_a_profile_of_a_date_column_links_its_report(
    airflow_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = (tmp_path / "weather").as_uri()
    days = [dt.date(2025, 1, 1) + dt.timedelta(days=i) for i in range(20)]
    S3Hook(aws_conn_id=None).write_dataset(
        data,
        pa.table(
            {"observed_on": pa.array(days, pa.date32()), "rain": [i % 2 == 0 for i in range(20)]}
        ).to_batches(),
    )
    dag = _dag(data, (tmp_path / "out").as_uri(), tmp_path / "dags", monkeypatch)
    run = dag.test(logical_date=dt.datetime(2026, 1, 2, tzinfo=dt.UTC))
    assert run.state == "success"
    assert _link_xcom(dag.dag_id, run.run_id) == (tmp_path / "out").as_uri() + "/report.html"
