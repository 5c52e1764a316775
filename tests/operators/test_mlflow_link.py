"""
The *MLflow run* extra link under a real dag.test() run: a training task that fails before it logs
a run leaves no link and logs no "XCom not found" error (the same fault as the data profile link,
issue 28 item 4).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from airflow_provider_mlops.links.mlflow import MlflowRunLink
from tests.operators.dag_files import dag_from_source, xcom_value

DAG_FILE = """
import datetime as dt
from airflow.sdk import DAG
from airflow_provider_mlops.operators.train import TrainModelOperator

with DAG("{dag_id}", schedule=None, start_date=dt.datetime(2026, 1, 1)) as dag:
    TrainModelOperator(
        task_id="train",
        input_uri="INPUT",
        label_column="label",
        registered_model_name="{dag_id}",
        model_output_uri="OUTPUT",
        mlflow_conn_id="MLFLOW",
    )
"""


def test_a_failed_training_leaves_no_run_link_and_no_xcom_error(
    airflow_db: str,
    mlflow_conn: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source = (
        DAG_FILE.replace("INPUT", (tmp_path / "missing").as_uri())
        .replace("OUTPUT", (tmp_path / "models").as_uri())
        .replace("MLFLOW", mlflow_conn)
    )
    dag = dag_from_source(source, tmp_path / "dags", monkeypatch, prefix="mlflow_link")
    run = dag.test(logical_date=dt.datetime(2026, 1, 2, tzinfo=dt.UTC))
    assert run.state == "failed"
    out = capsys.readouterr()
    assert "XCom not found" not in out.out + out.err, "the link must not ask for an XCom never pushed"
    assert not xcom_value(dag.dag_id, run.run_id, "train", MlflowRunLink().xcom_key), "no link"
