"""TrainModelOperator logs a data profile of its training data to the MLflow run."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pyarrow as pa

from airflow_provider_mlops.hooks.s3 import ObjectStorageHook
from airflow_provider_mlops.ml.eda import SCHEMA
from airflow_provider_mlops.ml.specs import Model, TrainingData
from airflow_provider_mlops.operators.train import TrainModelOperator
from tests.operators.helpers import task_context


def _train(dataset: str, mlflow_conn: str, tmp_path: Path, **kwargs: object) -> dict:
    return TrainModelOperator(
        task_id="train",
        input_uri=dataset,
        label_column="churned",
        registered_model_name="churn_profiled",
        mlflow_conn_id=mlflow_conn,
        model_output_uri=(tmp_path / "model").as_uri(),
        **kwargs,
        model=Model(estimator="sklearn.linear_model.LogisticRegression"),
    ).execute(task_context(tmp_path))


def test_the_training_data_profile_is_logged_to_the_run(
    dataset: str, mlflow_conn: str, mlflow_tracking: dict[str, str], tmp_path: Path
) -> None:
    out = _train(dataset, mlflow_conn, tmp_path)
    mlflow.set_tracking_uri(mlflow_tracking["tracking_uri"])
    client = mlflow.MlflowClient()
    assert {"data_profile.html", "data_profile.json"} <= {
        a.path for a in client.list_artifacts(out["run_id"])
    }
    summary = json.loads(mlflow.artifacts.load_text(f"runs:/{out['run_id']}/data_profile.json"))
    frame = pa.Table.from_batches(list(ObjectStorageHook(aws_conn_id=None).iter_batches(dataset))).to_pandas()
    assert summary["schema"] == SCHEMA and summary["rows"] == len(frame) and summary["target"] == "churned"
    minutes = next(c for c in summary["column_summaries"] if c["name"] == "minutes")
    assert minutes["missing"] == int(frame.minutes.isna().sum())
    assert {e["feature"] for e in summary["target_relations"]["features"]} == {
        "minutes",
        "tickets",
        "plan",
        "region",
    }
    page = mlflow.artifacts.load_text(f"runs:/{out['run_id']}/data_profile.html")
    assert page.startswith("<!doctype html>") and "Training data profile" in page

    off = _train(dataset, mlflow_conn, tmp_path, data=TrainingData(profile=False))
    assert "data_profile.html" not in {a.path for a in client.list_artifacts(off["run_id"])}
