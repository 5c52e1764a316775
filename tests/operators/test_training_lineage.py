"""
Time travel in the ML lifecycle (issue #23, Deliver 3), from the user's side: a model records the
Delta version of the rows it learned from; after the day's partition is replaced, training again on
the recorded version reads exactly those rows (same digest, same metrics), the latest version other
rows; a version that does not exist fails naming the table and the versions it has.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pyarrow as pa
import pytest
from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_mlops.hooks.mlflow import MlflowHook
from airflow_provider_mlops.hooks.s3 import ObjectStorageHook
from airflow_provider_mlops.ml.specs import Model, TrainingData
from airflow_provider_mlops.operators.deploy import DeployModelOperator
from airflow_provider_mlops.operators.train import TrainModelOperator
from tests.operators.helpers import task_context

STORAGE = ObjectStorageHook(aws_conn_id=None)


def orders(day: str, rows: int, seed: int) -> pa.Table:
    """One day of orders: two numeric features, the label follows them (with noise)."""
    rng = np.random.default_rng(seed)
    amount = rng.normal(50, 20, rows)
    items = rng.integers(1, 10, rows)
    returned = (amount / 20 + items / 3 + rng.normal(0, 1, rows)) > 5
    return pa.table(
        {"day": [day] * rows, "amount": amount, "items": items, "returned": pa.array(returned.tolist())}
    )


def lake(tmp_path: Path) -> str:
    """A lake table partitioned by day, two days written (versions 0 and 1)."""
    uri = (tmp_path / "lake" / "orders").as_uri()
    STORAGE.write_dataset(uri, orders("2026-01-01", 200, 1).to_batches(), partition_by=["day"])
    STORAGE.write_dataset(uri, orders("2026-01-02", 200, 2).to_batches(), mode="append", partition_by=["day"])
    return uri


def replace_day(uri: str, day: str, seed: int) -> int:
    """Re-run a day: its partition replaced by predicate (one commit); the new version."""
    out = STORAGE.write_dataset(
        uri, orders(day, 150, seed).to_batches(), mode="overwrite", predicate=f"day = '{day}'"
    )
    return int(out["version"])


def train(uri: Any, name: str, mlflow_conn: str, tmp_path: Path) -> dict[str, Any]:
    return TrainModelOperator(
        task_id="train",
        input_uri=uri,
        label_column="returned",
        registered_model_name=name,
        features={"drop": ["day"]},
        mlflow_conn_id=mlflow_conn,
        model_output_uri=(tmp_path / "models").as_uri(),
        model=Model(estimator="sklearn.linear_model.LogisticRegression", params={"max_iter": 500}),
        data=TrainingData(split="random", seed=3, profile=False),
    ).execute(task_context(tmp_path))


def test_retraining_on_the_recorded_version_reads_the_same_rows_after_the_day_was_replaced(
    mlflow_conn: str, mlflow_tracking: dict[str, str], tmp_path: Path
) -> None:
    uri, name = lake(tmp_path), "orders_time_travel"
    first = train(uri, name, mlflow_conn, tmp_path)

    # What the model learned from, on the run and on the version, in the registry's vocabulary.
    client = mlflow.MlflowClient(tracking_uri=mlflow_tracking["tracking_uri"])
    tags = client.get_model_version(name, first["version"]).tags
    assert tags["mlops.training_data.uri"] == uri and tags["mlops.training_data.version"] == "1"
    assert tags["mlops.training_data.digest"].startswith("sha256:")
    run_tags = client.get_run(first["run_id"]).data.tags
    assert run_tags["mlops.training_data.version"] == "1"
    assert run_tags["mlops.training_data.digest"] == tags["mlops.training_data.digest"]
    assert first["training_data"] == [{"uri": uri, "version": 1}]
    lineage = MlflowHook(mlflow_conn).version_lineage(name, first["version"])
    assert lineage["training_data"] == {
        "data": [{"uri": uri, "version": 1}],
        "uris": [f"{uri}@v1"],
        "digest": tags["mlops.training_data.digest"],
    }

    # The day is re-run: 200 rows replaced by 150 others (version 2).
    assert replace_day(uri, "2026-01-02", seed=9) == 2
    assert STORAGE.dataset_info(uri)["rows"] == 350

    again = train(lineage["training_data"]["uris"], name, mlflow_conn, tmp_path)
    assert again["version"] != first["version"]
    assert again["training_data"] == [{"uri": uri, "version": 1}]
    assert again["training_data_digest"] == first["training_data_digest"]
    assert again["metrics"] == first["metrics"] and again["best_params"] == first["best_params"]

    latest = train(uri, name, mlflow_conn, tmp_path)
    assert latest["training_data"] == [{"uri": uri, "version": 2}]
    assert latest["training_data_digest"] != first["training_data_digest"]
    assert latest["metrics"] != first["metrics"]


def test_several_inputs_are_recorded_as_json_lists_in_order(
    mlflow_conn: str, mlflow_tracking: dict[str, str], tmp_path: Path
) -> None:
    a = (tmp_path / "a").as_uri()
    b = (tmp_path / "b").as_uri()
    STORAGE.write_dataset(a, orders("2026-01-01", 120, 4).to_batches())
    STORAGE.write_dataset(b, orders("2026-01-02", 100, 5).to_batches())
    STORAGE.write_dataset(b, orders("2026-01-03", 100, 6).to_batches(), mode="append")
    out = train([a, {"uri": b}], "orders_two_inputs", mlflow_conn, tmp_path)

    client = mlflow.MlflowClient(tracking_uri=mlflow_tracking["tracking_uri"])
    tags = client.get_model_version("orders_two_inputs", out["version"]).tags
    assert tags["mlops.training_data.uri"] == f'["{a}", "{b}"]'
    assert tags["mlops.training_data.version"] == "[0, 1]"
    lineage = MlflowHook(mlflow_conn).version_lineage("orders_two_inputs", out["version"])
    assert lineage["training_data"]["uris"] == [f"{a}@v0", f"{b}@v1"]


def test_a_version_that_does_not_exist_fails_naming_the_table_and_its_versions(
    mlflow_conn: str, mlflow_tracking: dict[str, str], tmp_path: Path
) -> None:
    uri = lake(tmp_path)
    with pytest.raises(AirflowFailException) as failed:
        train(f"{uri}@v7", "orders_no_such_version", mlflow_conn, tmp_path)
    message = str(failed.value)
    assert f"{uri} has no version 7; its versions are 0-1" in message
    client = mlflow.MlflowClient(tracking_uri=mlflow_tracking["tracking_uri"])
    assert not client.search_registered_models(filter_string="name = 'orders_no_such_version'")


def test_deploy_records_the_evaluation_rows_and_re_evaluates_on_a_recorded_version(
    mlflow_conn: str, mlflow_tracking: dict[str, str], tmp_path: Path
) -> None:
    uri, name = lake(tmp_path), "orders_evaluated"
    trained = train(uri, name, mlflow_conn, tmp_path)
    fresh = (tmp_path / "fresh").as_uri()
    STORAGE.write_dataset(fresh, orders("2026-01-05", 120, 11).to_batches())
    STORAGE.write_dataset(fresh, orders("2026-01-06", 90, 12).to_batches(), mode="overwrite")

    def deploy(evaluation_uri: str) -> dict[str, Any]:
        return DeployModelOperator(
            task_id="deploy",
            registered_model_name=name,
            candidate_version=trained["version"],
            evaluation_uri=evaluation_uri,
            label_column="returned",
            mlflow_conn_id=mlflow_conn,
        ).execute(task_context(tmp_path))

    first = deploy(f"{fresh}@v0")
    client = mlflow.MlflowClient(tracking_uri=mlflow_tracking["tracking_uri"])
    tags = client.get_model_version(name, trained["version"]).tags
    assert tags["mlops.evaluation_data.uri"] == fresh and tags["mlops.evaluation_data.version"] == "0"
    lineage = MlflowHook(mlflow_conn).version_lineage(name, trained["version"])
    assert lineage["evaluation_data"]["uris"] == [f"{fresh}@v0"]
    assert lineage["evaluation_data"]["digest"].startswith("sha256:")
    assert first["promoted"] and first["candidate_score"] > 0
    # judged on version 0's 120 rows, not the latest version's 90
    assert "on 120 fresh rows" in client.get_model_version(name, trained["version"]).description


def test_the_drift_report_names_the_reference_rows_and_the_current_version(
    mlflow_conn: str, mlflow_tracking: dict[str, str], tmp_path: Path
) -> None:
    from airflow.providers.common.compat.sdk import AirflowSkipException

    from airflow_provider_mlops.sensors.drift import DriftSensor

    uri, name = lake(tmp_path), "orders_monitored"
    trained = train(uri, name, mlflow_conn, tmp_path)
    DeployModelOperator(
        task_id="deploy",
        registered_model_name=name,
        candidate_version=trained["version"],
        evaluation_uri=uri,
        label_column="returned",
        mlflow_conn_id=mlflow_conn,
    ).execute(task_context(tmp_path))
    assert replace_day(uri, "2026-01-02", seed=9) == 2

    sensor = DriftSensor(
        task_id="drift",
        current_uri=uri,
        registered_model_name=name,
        mlflow_conn_id=mlflow_conn,
        report_uri=(tmp_path / "report").as_uri(),
    )
    with contextlib.suppress(AirflowSkipException):  # no drift: the report is written all the same
        sensor.poke(task_context(tmp_path))
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["reference"]["training_data"]["uris"] == [f"{uri}@v1"]
    assert report["current_uri"] == uri and report["current_version"] == 2 and report["rows"] == 350
    assert f"computed from {uri}@v1" in (tmp_path / "report" / "report.html").read_text()

    client = mlflow.MlflowClient(tracking_uri=mlflow_tracking["tracking_uri"])
    experiment = client.get_experiment_by_name(f"{name}-monitoring")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.data.tags["mlops.reference_data.uri"] == uri
    assert run.data.tags["mlops.reference_data.version"] == "1"
    assert run.data.tags["mlops.current_data.version"] == "2"
    facets = sensor.get_openlineage_facets_on_complete(None)
    assert [d.facets["version"].datasetVersion for d in facets.inputs] == ["2", "1"]


def test_openlineage_inputs_carry_the_version_trained_on(
    mlflow_conn: str, mlflow_tracking: dict[str, str], tmp_path: Path
) -> None:
    uri = lake(tmp_path)
    op = TrainModelOperator(
        task_id="train",
        input_uri=f"{uri}@v0",
        label_column="returned",
        registered_model_name="orders_openlineage",
        features={"drop": ["day"]},
        mlflow_conn_id=mlflow_conn,
        model_output_uri=(tmp_path / "models").as_uri(),
        data=TrainingData(profile=False),
    )
    out = op.execute(task_context(tmp_path))
    assert out["training_data"] == [{"uri": uri, "version": 0}]
    lineage = op.get_openlineage_facets_on_complete(None)
    (dataset,) = lineage.inputs
    assert dataset.name == str(tmp_path / "lake" / "orders")
    assert dataset.facets["version"].datasetVersion == "0"
