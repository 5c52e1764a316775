"""
Derived features inside the model (issue #28): a model trained by TrainModelOperator with ``derive``
expressions and calendar features of a DATE column takes the raw columns, and the Pipeline, batch
prediction (compiled form and Pipeline) and the model server over HTTP give the same predictions on
the same rows, nulls and a division by zero included.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_mlops.hooks.s3 import ObjectStorageHook
from airflow_provider_mlops.ml.features import model_inputs
from airflow_provider_mlops.ml.serialization import load_model_version
from airflow_provider_mlops.ml.specs import Model, TrainingData
from airflow_provider_mlops.operators.predict import BatchPredictOperator
from airflow_provider_mlops.operators.train import TrainModelOperator
from airflow_provider_mlops.serving.compiled import compile_pipeline
from tests.conftest import set_connection
from tests.operators.helpers import task_context
from tests.serving.helpers import Server, start_server, stop_server

NAME = "weather_derived"
FEATURES = {
    "derive": {
        "humidity_per_rain": "humidity / rain_mm",  # rain_mm is 0 (and null) on some rows
        "windy_flag": "CASE WHEN windy THEN 1 ELSE 0 END",
        "station_code": "upper(trim(station))",
    },
    "datetime": {"columns": ["date"], "features": ["month", "day_of_week"]},
    "drop": ["windy"],
}
RAW = ["date", "temp", "rain_mm", "humidity", "windy", "station"]


def weather_table(n: int, seed: int) -> pa.Table:
    """A warehouse-like table: DATE, floats with nulls, integers with nulls and zeros, booleans, text."""
    rng = np.random.default_rng(seed)
    temp = rng.normal(12, 8, n)
    rain = rng.integers(0, 4, n)
    humidity = rng.uniform(30, 100, n)
    sky = np.where(humidity > 70, "rain", np.where(temp > 12, "sun", "cloud"))
    null = rng.random((5, n)) < 0.08
    return pa.table(
        {
            "date": pa.array([dt.date(2024, 1, 1) + dt.timedelta(days=int(i % 400)) for i in range(n)]),
            "temp": pa.array(temp, mask=null[0]),
            "rain_mm": pa.array(rain, type=pa.int64(), mask=null[1]),
            "humidity": pa.array(humidity, mask=null[2]),
            "windy": pa.array(rng.random(n) < 0.3, mask=null[3]),
            "station": pa.array(rng.choice(["north", "south", " east"], n), mask=null[4]),
            "sky": sky,
        }
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, mlflow_tracking: dict[str, str]) -> dict:
    root = tmp_path_factory.mktemp("derived")
    storage = ObjectStorageHook(aws_conn_id=None)
    uri = (root / "train").as_uri()
    storage.write_dataset(uri, weather_table(900, 0).to_batches())
    conn = set_connection(
        "mlflow_derived_test",
        conn_type="mlops-mlflow",
        host="",
        extra={
            "tracking_uri": mlflow_tracking["tracking_uri"],
            "artifact_location": mlflow_tracking["artifact_location"],
        },
    )
    out = TrainModelOperator(
        task_id="train",
        input_uri=uri,
        label_column="sky",
        registered_model_name=NAME,
        features=FEATURES,
        mlflow_conn_id=conn,
        model_output_uri=(root / "models").as_uri(),
        model=Model(estimator="sklearn.linear_model.LogisticRegression", params={"max_iter": 1000}),
        data=TrainingData(split="time", time_column="date", profile=False),
    ).execute(task_context(root))
    client = mlflow.MlflowClient(tracking_uri=mlflow_tracking["tracking_uri"])
    client.set_registered_model_alias(NAME, "champion", out["version"])
    model = load_model_version(client, NAME, out["version"], storage=storage).model
    scoring = (root / "score").as_uri()
    rows = weather_table(300, 5)
    storage.write_dataset(scoring, rows.to_batches())
    return {
        "root": root,
        "out": out,
        "conn": conn,
        "model": model,
        "rows": rows,
        "scoring": scoring,
        "tracking": mlflow_tracking,
    }


@pytest.fixture(scope="module")
def server(trained: dict) -> Iterator[Server]:
    root: Path = trained["root"]
    srv = start_server(
        ["--model-name", NAME, "--tracking-uri", trained["tracking"]["tracking_uri"]], root / "server.log"
    )
    yield srv
    stop_server(srv)


def _expected(trained: dict) -> tuple[np.ndarray, np.ndarray]:
    """What the Pipeline itself predicts on the scoring rows (read as every caller reads them)."""
    frame = trained["rows"].to_pandas()
    x = model_inputs(frame, "sky")
    return trained["model"].predict(x), trained["model"].predict_proba(x)


def test_the_model_takes_raw_columns_and_derives_inside(trained: dict) -> None:
    model = trained["model"]
    assert [name for name, _ in model.steps][:2] == ["derive", "features"]
    assert list(model.feature_names_in_) == RAW
    selected = trained["out"]["selected_features"]
    assert {"numeric__humidity_per_rain", "numeric__windy_flag", "numeric__date_month"} <= set(selected)
    assert "categorical__station_code_EAST" in selected  # ' east' stripped, upper-cased
    assert not any(s.startswith(("numeric__date_", "categorical__date")) and s.count("-") for s in selected)
    rows = trained["rows"].to_pandas()
    zero = (rows.rain_mm == 0) & rows.humidity.notna()
    derived = model.named_steps["derive"].transform(model_inputs(rows, "sky"))
    assert zero.sum() > 20 and derived.loc[zero, "humidity_per_rain"].isna().all()
    # the served input schema (the MLflow signature) is the raw columns
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(trained["tracking"]["tracking_uri"])
    try:
        info = mlflow.models.get_model_info(trained["out"]["model_uri"])
    finally:
        mlflow.set_tracking_uri(previous)
    assert [spec.name for spec in info.signature.inputs.inputs] == RAW


def test_batch_prediction_equals_the_pipeline_compiled_or_not(trained: dict, tmp_path: Path) -> None:
    model = trained["model"]
    compiled = compile_pipeline(model)
    assert compiled is not None  # the load-time probe accepts the derive step
    # Rows without a missing category are scored compiled (derive step included), bit for bit
    rows: pa.Table = trained["rows"]
    clean = rows.filter(pc.is_valid(rows["station"]))
    values = {c: clean.column(c).to_numpy(zero_copy_only=False) for c in compiled.columns}
    x = compiled.features(values, clean.num_rows)
    assert x is not None and clean.num_rows > 200
    assert np.array_equal(
        compiled.predict_proba(x), model.predict_proba(model_inputs(clean.to_pandas(), "sky"))
    )

    predictions, probabilities = _expected(trained)
    storage = ObjectStorageHook(aws_conn_id=None)
    out_uri = (tmp_path / "predictions").as_uri()
    BatchPredictOperator(
        task_id="score",
        input_uri=trained["scoring"],
        registered_model_name=NAME,
        output_uri=out_uri,
        batch_size=64,
        mlflow_conn_id=trained["conn"],
    ).execute(task_context(tmp_path))
    scored = pa.Table.from_batches(list(storage.iter_batches(out_uri))).to_pandas()
    assert len(scored) == 300
    assert (scored["prediction"].to_numpy() == predictions).all()
    classes = [str(c) for c in model.classes_]
    assert np.array_equal(scored[[f"proba_{c}" for c in classes]].to_numpy(), probabilities)


def _json_rows(table: pa.Table) -> dict:
    """The rows as a client sends them: dates as ISO text, nulls as null."""
    columns = {}
    for name in RAW:
        values = table.column(name).to_pylist()
        columns[name] = [
            None
            if v is None or (isinstance(v, float) and math.isnan(v))
            else v.isoformat()
            if isinstance(v, dt.date)
            else v
            for v in values
        ]
    return {
        "dataframe_split": {"columns": RAW, "data": [list(r) for r in zip(*columns.values(), strict=True)]}
    }


def test_the_server_requires_raw_columns_and_predicts_the_same(server: Server, trained: dict) -> None:
    version = server.get("/version").json()
    assert [c["name"] for c in version["inputs"]] == RAW
    predictions, _ = _expected(trained)
    response = server.post("/invocations", json=_json_rows(trained["rows"]))
    assert response.status_code == 200, response.text
    assert response.json()["predictions"] == predictions.tolist()
    # a derived column is not an input: leaving out a raw one is refused by name
    body = _json_rows(trained["rows"].slice(0, 3))
    body["dataframe_split"]["columns"] = [c if c != "humidity" else "humidity_per_rain" for c in RAW]
    refused = server.post("/invocations", data=json.dumps(body), headers={"Content-Type": "application/json"})
    assert refused.status_code == 400 and "'humidity'" in refused.json()["message"]
    # a date sent as a number is refused with the column named, not read in some epoch unit
    body = _json_rows(trained["rows"].slice(0, 3))
    for row in body["dataframe_split"]["data"]:
        row[0] = 1704067200000
    wrong = server.post("/invocations", json=body)
    assert wrong.status_code in (400, 422) and "'date'" in wrong.json()["message"]


def test_compiled_derive_declines_what_it_cannot_convert_and_the_pipeline_names_it(trained: dict) -> None:
    model = trained["model"]
    compiled = compile_pipeline(model)
    assert compiled is not None and compiled.derive is model.named_steps["derive"]
    rows = trained["rows"].slice(0, 4)
    values = {c: rows.column(c).to_numpy(zero_copy_only=False) for c in compiled.columns}
    values["date"] = np.arange(4) * 86_400_000  # epoch milliseconds: not a date the step will guess
    assert compiled.features(values, 4) is None
    frame = model_inputs(rows.to_pandas(), "sky").assign(date=values["date"])
    with pytest.raises(ValueError, match="'date' holds date32"):
        model.predict(frame)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_compiled_derive_is_the_pipeline_bit_for_bit_on_made_up_rows(trained: dict, data) -> None:
    model = trained["model"]
    compiled = compile_pipeline(model)
    n = data.draw(st.integers(1, 20))

    def column(values):
        return data.draw(st.lists(values, min_size=n, max_size=n))

    number = st.one_of(st.none(), st.floats(-1e4, 1e4), st.sampled_from([0.0, -0.0]))
    table = pa.table(
        {
            "date": pa.array(
                column(st.one_of(st.none(), st.dates(dt.date(1990, 1, 1), dt.date(2060, 1, 1))))
            ),
            "temp": pa.array(column(number), pa.float64()),
            "rain_mm": pa.array(column(st.one_of(st.none(), st.integers(-3, 3))), pa.int64()),
            "humidity": pa.array(column(number), pa.float64()),
            "windy": pa.array(column(st.one_of(st.none(), st.booleans())), pa.bool_()),
            "station": pa.array(column(st.sampled_from(["north", " east", "west", ""])), pa.string()),
        }
    )
    values = {c: table.column(c).to_numpy(zero_copy_only=False) for c in compiled.columns}
    ours = compiled.features(values, n)
    assert ours is not None
    frame = model_inputs(table.to_pandas().assign(sky="sun"), "sky")
    theirs = np.asarray(model[:-1].transform(frame), dtype=np.float64)
    assert np.array_equal(ours, theirs, equal_nan=True)
    assert np.array_equal(compiled.predict_proba(ours), model.predict_proba(frame))
