"""TrainModelOperator's window (#26 item 2): rows since the recorded drift onset, weighted by recency."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from airflow_provider_mlops.hooks.s3 import ObjectStorageHook
from airflow_provider_mlops.ml.specs import Model, TrainingData
from airflow_provider_mlops.ml.windows import WindowSpecError
from airflow_provider_mlops.operators.train import TrainModelOperator
from tests.operators.helpers import task_context


@pytest.fixture
def daily(tmp_path: Path) -> str:
    """Ten days of 150 rows; from day 8 the label follows ``usage`` the other way (the world changed)."""
    rng = np.random.default_rng(1)
    parts = []
    for d in range(1, 11):
        usage = rng.normal(size=150)
        sign = -1 if d >= 8 else 1
        parts.append(
            pd.DataFrame(
                {
                    "day": [f"2026-03-{d:02d}"] * 150,
                    "usage": usage,
                    "plan": rng.choice(["a", "b"], 150),
                    "churned": (sign * 3 * usage + rng.logistic(size=150) > 0).astype("int64"),
                }
            )
        )
    uri = (tmp_path / "daily").as_uri()
    ObjectStorageHook(aws_conn_id=None).write_dataset(
        uri, pa.Table.from_pandas(pd.concat(parts), preserve_index=False).to_batches()
    )
    return uri


class _Event:
    def __init__(self, extra: dict) -> None:
        self.extra = extra


def _train(daily: str, mlflow_conn: str, tmp_path: Path, name: str, window: dict | None, **kwargs) -> dict:
    op = TrainModelOperator(
        task_id="train",
        input_uri=daily,
        label_column="churned",
        registered_model_name=name,
        features={"drop": ["day"]},
        mlflow_conn_id=mlflow_conn,
        model_output_uri=(tmp_path / name).as_uri(),
        model=Model(estimator="logistic_regression"),
        data=TrainingData(time_column="day", test_size=0.25, window=window, profile=False),
    )
    return op.execute({**task_context(tmp_path), **kwargs})


def test_since_drift_trains_on_the_changed_world_and_says_so(
    daily: str, mlflow_conn: str, mlflow_tracking: dict, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    onset = {"first_day": "2026-03-08", "kind": "drift+decay", "drifted_features": ["usage"]}
    line = "Drift on 2026-03-08: 150 rows vs w_fresh v1's reference; 1 of 2 features drifted (50%)"
    events = {"churn_model_retrain": [_Event({"retrain_request": {}, "drift_onset": onset, "summary": line})]}
    # the holdout is the newest rows (day 9's end and day 10): post-drift in both runs
    blind = _train(daily, mlflow_conn, tmp_path, "w_blind", None)
    window = {"since_drift": True, "min_rows": 300, "half_life": 1}
    fresh = _train(daily, mlflow_conn, tmp_path, "w_fresh", window, triggering_asset_events=events)
    assert blind["metrics"]["roc_auc"] < 0.5 < 0.85 < fresh["metrics"]["roc_auc"]
    # the training task's log says why it runs: the monitor's summary line (#27 item 3)
    assert f"Triggered by churn_model_retrain: {line}" in capsys.readouterr().out
    summary = fresh["window"]
    assert summary["onset"] == "2026-03-08" and summary["rows"] == 450 and summary["post_drift_rows"] == 450
    assert summary["start"].startswith("2026-03-08") and summary["end"].startswith("2026-03-10")
    run = mlflow.MlflowClient(tracking_uri=mlflow_tracking["tracking_uri"]).get_run(fresh["run_id"])
    assert run.data.params["window.onset"] == "2026-03-08" and run.data.params["window.rows"] == "450"
    assert run.data.params["test_rows"] == str(round(450 * 0.25))


def test_the_onset_tag_of_the_registered_model_is_the_fallback(
    daily: str, mlflow_conn: str, mlflow_tracking: dict, tmp_path: Path
) -> None:
    client = mlflow.MlflowClient(tracking_uri=mlflow_tracking["tracking_uri"])
    client.create_registered_model("w_tag")
    client.set_registered_model_tag("w_tag", "mlops.drift_onset", json.dumps({"first_day": "2026-03-09"}))
    out = _train(daily, mlflow_conn, tmp_path, "w_tag", {"since_drift": True, "days": 5})
    assert out["window"]["onset"] == "2026-03-09" and out["window"]["rows"] == 300
    # no onset anywhere (a model never monitored): the other limits apply
    first = _train(daily, mlflow_conn, tmp_path, "w_new", {"since_drift": True, "days": 4})
    assert first["window"]["onset"] is None and first["window"]["rows"] == 600


def test_a_window_without_a_time_column_is_refused_at_parse() -> None:
    with pytest.raises(ValueError, match="window needs a time_column"):
        TrainModelOperator(
            task_id="t",
            input_uri="x",
            label_column="y",
            registered_model_name="m",
            data=TrainingData(window={"days": 3}),
        )
    with pytest.raises(WindowSpecError, match="unknown keys"):
        TrainModelOperator(
            task_id="t",
            input_uri="x",
            label_column="y",
            registered_model_name="m",
            data=TrainingData(window={"weeks": 3}),
        )
