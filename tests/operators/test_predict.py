"""BatchPredictOperator: bounded batches through the trusted loader, exact against model.predict."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import mlflow
import numpy as np
import pyarrow as pa
import pytest
from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_mlops.hooks.s3 import ObjectStorageHook
from airflow_provider_mlops.ml import serialization
from airflow_provider_mlops.ml.features import model_inputs
from airflow_provider_mlops.ml.serialization import ModelIntegrityError, load_model_version
from airflow_provider_mlops.ml.specs import Model
from airflow_provider_mlops.operators.predict import BatchPredictOperator
from airflow_provider_mlops.operators.train import TrainModelOperator
from tests.operators.helpers import task_context


class _Spy:
    """Wraps the model and records how many rows each call scores."""

    def __init__(self, model) -> None:
        self.model, self.calls = model, []

    def __getattr__(self, name):
        return getattr(self.model, name)

    def predict(self, x):
        self.calls.append(len(x))
        return self.model.predict(x)


def test_scores_in_bounded_batches_exactly_like_the_model(
    dataset: str, mlflow_conn: str, mlflow_tracking: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = "churn_batch"
    trained = TrainModelOperator(
        task_id="train",
        input_uri=dataset,
        label_column="churned",
        registered_model_name=name,
        mlflow_conn_id=mlflow_conn,
        model_output_uri=(tmp_path / "models").as_uri(),
        model=Model(
            estimator="sklearn.ensemble.RandomForestClassifier", params={"n_estimators": 15, "max_depth": 5}
        ),
    ).execute(task_context(tmp_path))
    client = mlflow.MlflowClient(tracking_uri=mlflow_tracking["tracking_uri"])
    client.set_registered_model_alias(name, "champion", trained["version"])

    spies: list[_Spy] = []
    real = serialization.load_model_version

    def spying(*args, **kwargs):
        loaded = real(*args, **kwargs)
        spies.append(_Spy(loaded.model))
        return dataclasses.replace(loaded, model=spies[-1])

    monkeypatch.setattr(serialization, "load_model_version", spying)
    out_uri = (tmp_path / "predictions").as_uri()
    op = BatchPredictOperator(
        task_id="score",
        input_uri={"uri": dataset},
        registered_model_name=name,
        output_uri=out_uri,
        batch_size=400,
        mlflow_conn_id=mlflow_conn,
    )
    assert [a.uri for a in op.outlets] == [out_uri]
    result = op.execute(task_context(tmp_path))
    assert result["rows"] == 1500 and result["model_version"] == trained["version"]
    assert result["sha256"] == trained["sha256"]
    # Bounded: 1500 rows in batches of at most 400, never the whole input at once.
    assert spies[0].calls == [400, 400, 400, 300]

    storage = ObjectStorageHook(aws_conn_id=None)
    source = pa.Table.from_batches(list(storage.iter_batches(dataset))).to_pandas()
    scored = pa.Table.from_batches(list(storage.iter_batches(out_uri))).to_pandas()
    model = load_model_version(client, name, trained["version"], storage=storage).model
    x = model_inputs(source, "churned")
    assert list(scored.columns[: source.shape[1]]) == list(source.columns)
    assert (scored["prediction"].to_numpy() == model.predict(x)).all()
    probabilities = model.predict_proba(x)
    assert np.array_equal(scored[["proba_0", "proba_1"]].to_numpy(), probabilities)
    assert set(scored["model_version"]) == {trained["version"]} and set(scored["model_name"]) == {name}
    assert storage.dataset_info(out_uri)["metadata"]["model_sha256"] == trained["sha256"]

    # Idempotent per logical date: a re-run replaces the dataset, it does not append to it.
    op.execute(task_context(tmp_path))
    assert sum(b.num_rows for b in storage.iter_batches(out_uri)) == 1500

    # A tampered model file: nothing is scored.
    path = Path(trained["model_file"].removeprefix("file://"))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(AirflowFailException, match=f"{name} version {trained['version']}") as failed:
        BatchPredictOperator(
            task_id="score2",
            input_uri=dataset,
            registered_model_name=name,
            version=trained["version"],
            output_uri=(tmp_path / "p2").as_uri(),
            mlflow_conn_id=mlflow_conn,
        ).execute(task_context(tmp_path))
    assert isinstance(failed.value.__cause__, ModelIntegrityError)  # no retries for a tampered file


def test_missing_feature_columns_are_named(dataset: str, mlflow_conn: str, tmp_path: Path) -> None:
    trained = TrainModelOperator(
        task_id="train",
        input_uri=dataset,
        label_column="churned",
        registered_model_name="churn_batch_cols",
        mlflow_conn_id=mlflow_conn,
        model_output_uri=(tmp_path / "models").as_uri(),
        model=Model(estimator="sklearn.linear_model.LogisticRegression"),
    ).execute(task_context(tmp_path))
    storage = ObjectStorageHook(aws_conn_id=None)
    narrow = (tmp_path / "narrow").as_uri()
    table = pa.Table.from_batches(list(storage.iter_batches(dataset))).drop(["plan"])
    storage.write_dataset(narrow, table.to_batches())
    with pytest.raises(AirflowFailException, match=r"lacks the model's input column\(s\) \['plan'\]"):
        BatchPredictOperator(
            task_id="score",
            input_uri=narrow,
            registered_model_name="churn_batch_cols",
            version={"version": trained["version"]},
            mlflow_conn_id=mlflow_conn,
        ).execute(task_context(tmp_path))


def test_compiled_and_pipeline_batches_match_the_model_bit_for_bit(
    mlflow_conn: str, mlflow_tracking: dict, tmp_path: Path
) -> None:
    """
    The example Pipeline is scored through the compiled preprocessing; a batch holding a missing
    category goes through the Pipeline itself. Either way every prediction and probability is the
    model's own, bit for bit.
    """
    from airflow_provider_mlops.serving.compiled import compile_pipeline
    from tests.serving.helpers import churn_frame

    storage = ObjectStorageHook(aws_conn_id=None)
    train_uri = (tmp_path / "train").as_uri()
    storage.write_dataset(
        train_uri, pa.Table.from_pandas(churn_frame(1500, 3), preserve_index=False).to_batches()
    )
    name = "churn_compiled"
    trained = TrainModelOperator(
        task_id="train",
        input_uri=train_uri,
        label_column="churned",
        registered_model_name=name,
        mlflow_conn_id=mlflow_conn,
        model_output_uri=(tmp_path / "models").as_uri(),
        model=Model(estimator="sklearn.linear_model.LogisticRegression"),
    ).execute(task_context(tmp_path))
    score = churn_frame(2000, 11).drop(columns=["churned"])
    score.loc[1100:1110, "plan"] = None  # only the third 500-row batch has a missing category
    score.loc[::97, "plan"] = "never seen"
    score.loc[::13, "minutes"] = np.nan
    score_uri = (tmp_path / "score").as_uri()
    storage.write_dataset(score_uri, pa.Table.from_pandas(score, preserve_index=False).to_batches())
    out_uri = (tmp_path / "scored").as_uri()
    BatchPredictOperator(
        task_id="score",
        input_uri=score_uri,
        registered_model_name=name,
        version=trained["version"],
        output_uri=out_uri,
        batch_size=500,
        mlflow_conn_id=mlflow_conn,
    ).execute(task_context(tmp_path))

    client = mlflow.MlflowClient(tracking_uri=mlflow_tracking["tracking_uri"])
    model = load_model_version(client, name, trained["version"], storage=storage).model
    assert compile_pipeline(model) is not None
    source = pa.Table.from_batches(list(storage.iter_batches(score_uri))).to_pandas()
    scored = pa.Table.from_batches(list(storage.iter_batches(out_uri))).to_pandas()
    x = model_inputs(source.assign(churned=0), "churned")
    assert len(scored) == 2000
    assert np.array_equal(scored["prediction"].to_numpy(), model.predict(x))
    assert np.array_equal(scored[["proba_0", "proba_1"]].to_numpy(), model.predict_proba(x))
