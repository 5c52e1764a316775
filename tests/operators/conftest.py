"""Fixtures for the training / deployment tests: a churn dataset and a local MLflow connection."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from airflow_provider_mlops.hooks.s3 import S3Hook
from tests.conftest import set_connection


@pytest.fixture
def dataset(tmp_path: Path) -> str:
    rng = np.random.default_rng(0)
    n = 1500
    frame = pd.DataFrame(
        {
            "minutes": rng.gamma(2, 25, n),
            "tickets": rng.poisson(0.6, n).astype("int64"),
            "plan": rng.choice(["free", "basic", "pro"], n),
            "region": rng.choice(["eu", "na"], n),
        }
    )
    frame.loc[rng.random(n) < 0.05, "minutes"] = np.nan
    score = -1 + 0.9 * frame.tickets - 0.03 * frame.minutes.fillna(50) + (frame.plan == "free") * 1.2
    frame["churned"] = (score + rng.logistic(size=n) > 0).astype("int64")
    uri = (tmp_path / "train").as_uri()
    S3Hook(aws_conn_id=None).write_dataset(
        uri, pa.Table.from_pandas(frame, preserve_index=False).to_batches()
    )
    return uri


@pytest.fixture
def mlflow_conn(mlflow_tracking: dict[str, str]) -> str:
    return set_connection(
        "mlflow_test",
        conn_type="mlops_mlflow",
        host="",
        extra={
            "tracking_uri": mlflow_tracking["tracking_uri"],
            "artifact_location": mlflow_tracking["artifact_location"],
            "ui_url": "http://127.0.0.1:5000",
        },
    )
