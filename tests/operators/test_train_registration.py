"""
TrainModelOperator on data nobody designed (issue #28): daily weather observations with a DATE
column, booleans and five classes, one of them seasonal. Every metric is finite or absent with a
reason, nothing non-finite reaches MLflow or XCom, a task that fails leaves no model version
behind, and a retry of the same task and logical date never registers a second one.
"""

from __future__ import annotations

import json
import logging
import math
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pyarrow as pa
import pytest
from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_mlops.hooks.s3 import ObjectStorageHook
from airflow_provider_mlops.ml import registration
from airflow_provider_mlops.ml.specs import Model, TrainingData
from airflow_provider_mlops.ml.tags import TAG_COMPLETE
from airflow_provider_mlops.operators.train import TrainModelOperator
from tests.operators.helpers import task_context

DAYS = 500


def weather(tmp_path: Path, *, late_class: str | None = None) -> str:
    """
    One row a day. ``snow`` happens only in the first winter (absent from the latest 20 %, the
    holdout of a time split); ``late_class`` (when given) appears only in the last days.
    """
    rng = np.random.default_rng(7)
    days = [date(2024, 1, 1) + timedelta(days=i) for i in range(DAYS)]
    season = np.cos(2 * np.pi * np.arange(DAYS) / 365)
    temp = 12 - 10 * season + rng.normal(0, 3, DAYS)
    humidity = np.clip(60 + rng.normal(0, 15, DAYS), 5, 100)
    windy = rng.random(DAYS) < 0.3
    sky = np.where(humidity > 75, "rain", np.where(humidity > 62, "cloudy", "clear")).astype(object)
    sky[(humidity > 70) & (temp < 8)] = "fog"
    sky[(np.arange(DAYS) < 90) & (temp < 4)] = "snow"
    if late_class:
        sky[-8:] = late_class
    table = pa.table(
        {
            "day": pa.array(days, pa.date32()),
            "temp": temp,
            "humidity": humidity,
            "windy": pa.array(windy.tolist()),
            "rain_yesterday": pa.array(np.roll(sky == "rain", 1).tolist()),
            "sky": pa.array(sky.tolist(), pa.string()),
        }
    )
    uri = (tmp_path / ("weather_" + (late_class or "plain"))).as_uri()
    ObjectStorageHook(aws_conn_id=None).write_dataset(uri, table.to_batches())
    return uri


def operator(uri: str, name: str, mlflow_conn: str, tmp_path: Path, **kwargs: Any) -> TrainModelOperator:
    return TrainModelOperator(
        task_id="train",
        input_uri=uri,
        label_column="sky",
        registered_model_name=name,
        features={"drop": ["day"]},
        mlflow_conn_id=mlflow_conn,
        model_output_uri=(tmp_path / "models").as_uri(),
        **kwargs,
        model=Model(estimator="sklearn.linear_model.LogisticRegression", params={"max_iter": 500}),
        data=TrainingData(split="time", time_column="day", profile=False),
    )


def versions(tracking_uri: str, name: str) -> list[Any]:
    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    if not client.search_registered_models(filter_string=f"name = '{name}'"):
        return []
    return client.search_model_versions(filter_string=f"name = '{name}'")


def model_files(tmp_path: Path, name: str) -> list[str]:
    root = tmp_path / "models" / name
    return sorted(str(p.relative_to(root)) for p in root.rglob("model.*")) if root.exists() else []


def test_a_class_absent_from_the_time_split_holdout_leaves_roc_auc_out_with_the_reason(
    mlflow_conn: str, mlflow_tracking: dict[str, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    uri = weather(tmp_path)
    with caplog.at_level(logging.WARNING):
        out = operator(uri, "weather_holdout", mlflow_conn, tmp_path).execute(task_context(tmp_path))

    assert "roc_auc" not in out["metrics"]
    assert out["metrics_unavailable"] == {"roc_auc": "class 'snow' absent from holdout (100 rows)"}
    assert {"accuracy", "f1", "log_loss"} <= set(out["metrics"])
    json.dumps(out, allow_nan=False)  # what XCom does: no "Out of range float values"
    assert "class 'snow' absent from holdout" in caplog.text

    client = mlflow.MlflowClient(tracking_uri=mlflow_tracking["tracking_uri"])
    tags = client.get_model_version("weather_holdout", out["version"]).tags
    assert "metric.roc_auc" not in tags and tags["metric.accuracy"] == f"{out['metrics']['accuracy']:.6f}"
    assert tags[TAG_COMPLETE] == "true"
    run = client.get_run(out["run_id"])
    assert all(math.isfinite(v) for v in run.data.metrics.values())
    assert "roc_auc" not in run.data.metrics
    logged = Path(client.download_artifacts(out["run_id"], "metrics_unavailable.json", str(tmp_path)))
    assert json.loads(logged.read_text()) == out["metrics_unavailable"]


def test_a_class_absent_from_the_training_part_is_refused_before_training_with_the_class_named(
    mlflow_conn: str, mlflow_tracking: dict[str, str], tmp_path: Path
) -> None:
    uri = weather(tmp_path, late_class="hail")
    with pytest.raises(AirflowFailException, match="Class 'hail' of 'sky' is absent from the training part"):
        operator(uri, "weather_late_class", mlflow_conn, tmp_path).execute(task_context(tmp_path))
    assert versions(mlflow_tracking["tracking_uri"], "weather_late_class") == []


class FailingPush(Exception):
    pass


def test_a_failure_after_registration_leaves_no_version_and_retries_converge_to_one(
    mlflow_conn: str, mlflow_tracking: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = weather(tmp_path)
    name = "weather_retry"
    context = task_context(tmp_path)
    ti = context["ti"]

    def broken_push(key: str, value: Any) -> None:
        raise FailingPush("XCom backend unavailable")

    ti.xcom_push = broken_push
    with pytest.raises(FailingPush):
        operator(uri, name, mlflow_conn, tmp_path).execute(context)
    assert versions(mlflow_tracking["tracking_uri"], name) == []  # the version it registered is gone
    assert model_files(tmp_path, name) == []  # and so is its model file

    del ti.xcom_push  # the retry: same task, same logical date, a working XCom
    first = operator(uri, name, mlflow_conn, tmp_path).execute(context)
    assert [str(v.version) for v in versions(mlflow_tracking["tracking_uri"], name)] == [first["version"]]

    # The task succeeded but Airflow could not store its return value: the next try reuses the
    # version without training (train() would fail here) and returns the same result.
    def no_training(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a retry of a completed task must not train again")

    monkeypatch.setattr("airflow_provider_mlops.ml.training.train", no_training)
    again = operator(uri, name, mlflow_conn, tmp_path).execute(context)
    assert again == first
    assert [str(v.version) for v in versions(mlflow_tracking["tracking_uri"], name)] == [first["version"]]
    assert ti.pushed["mlflow_run_url"].endswith(first["run_id"])

    # The stored result cannot be read (artifact store down): neither deleted nor trained over.
    def store_down(*args: Any, **kwargs: Any) -> None:
        raise OSError("artifact store unreachable")

    monkeypatch.setattr(mlflow.MlflowClient, "download_artifacts", store_down)
    with pytest.raises(
        RuntimeError, match=r"training_result\.json .* cannot be read: artifact store unreachable"
    ):
        operator(uri, name, mlflow_conn, tmp_path).execute(context)
    assert [str(v.version) for v in versions(mlflow_tracking["tracking_uri"], name)] == [first["version"]]


def test_an_incomplete_version_of_an_earlier_try_is_replaced(
    mlflow_conn: str, mlflow_tracking: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = weather(tmp_path)
    name = "weather_incomplete"
    context = task_context(tmp_path)

    def upload_fails(*args: Any, **kwargs: Any) -> None:
        raise OSError("artifact store went away")

    # The worker dies after registering: the upload fails and the clean-up cannot run either.
    monkeypatch.setattr("airflow_provider_mlops.ml.serialization.record_mlflow_artifact", upload_fails)
    monkeypatch.setattr(registration, "delete_version", upload_fails)
    with pytest.raises(OSError, match="artifact store went away"):
        operator(uri, name, mlflow_conn, tmp_path).execute(context)
    [left] = versions(mlflow_tracking["tracking_uri"], name)
    assert TAG_COMPLETE not in left.tags
    assert (
        left.tags["mlops.airflow.task_id"] == "train"
        and left.tags["mlops.airflow.run_id"] == context["run_id"]
    )
    monkeypatch.undo()

    out = operator(uri, name, mlflow_conn, tmp_path).execute(context)
    assert [str(v.version) for v in versions(mlflow_tracking["tracking_uri"], name)] == [out["version"]]
    assert int(out["version"]) > int(left.version)
    assert {f.split("/")[0] for f in model_files(tmp_path, name)} == {f"v{out['version']}"}  # v1's are gone

    # Another logical date of the same task is another training: a second version.
    other = {**context, "run_id": "manual__other", "logical_date": "2026-01-09T00:00:00+00:00"}
    second = operator(uri, name, mlflow_conn, tmp_path).execute(other)
    assert second["version"] != out["version"]
    assert len(versions(mlflow_tracking["tracking_uri"], name)) == 2


def test_a_non_finite_value_headed_for_xcom_is_named() -> None:
    from airflow_provider_mlops.ml.training import NonFiniteValueError

    result = {"metrics": {"accuracy": 0.9, "roc_auc": float("nan")}, "leaderboard": [{"std": float("inf")}]}
    with pytest.raises(NonFiniteValueError, match=r"metrics\.roc_auc = nan, leaderboard\[0\]\.std = inf"):
        registration.check_result(result)
    registration.check_result({"metrics": {"accuracy": np.float64(0.9)}, "n": 3, "name": "x"})


def test_the_operator_docstring_and_train_rst_list_every_tuning_method() -> None:
    from airflow_provider_mlops.ml.search import TUNING_METHODS

    page = (Path(__file__).parents[2] / "docs" / "operators" / "train.rst").read_text()
    doc = TrainModelOperator.__doc__ or ""
    for method in TUNING_METHODS:
        assert f'"{method}"' in doc, f"TrainModelOperator's docstring does not list tuning method {method!r}"
        if method != "none":
            assert f"``{method}``" in page, f"docs/operators/train.rst does not list {method!r}"
    assert "time_budget" in doc and "time_budget" in page
