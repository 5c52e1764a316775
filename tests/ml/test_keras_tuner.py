"""
tuning.method="keras_tuner" (the ``keras`` extra, not in the default test environment: ~600 MB).

Run it with::

    uv pip install '.[keras]'        # keras>=3.9, keras-tuner, jax[cpu], six
    pytest tests/ml/test_keras_tuner.py

It skips when keras_tuner does not import; then tests/ml/test_keras_tuner_env.py runs it in a cached
venv with the extra installed (how CI runs it).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

if "KERAS_BACKEND" not in os.environ and importlib.util.find_spec("tensorflow") is None:
    os.environ["KERAS_BACKEND"] = "jax"
pytest.importorskip(
    "keras_tuner", reason="the keras extra is not installed: uv pip install '.[keras]'", exc_type=ImportError
)

from airflow_provider_mlops.ml.serialization import (
    LoadPolicy,
    ModelIntegrityError,
    deserialize_verified,
    dump_model,
    sha256,
    sniff_format,
)
from airflow_provider_mlops.ml.training import train

BUILD = "tests.ml.test_keras_tuner:build_model"


def build_model(hp, n_features: int, n_outputs: int):  # the user's module:function
    import keras

    model = keras.Sequential(
        [
            keras.Input((n_features,)),
            keras.layers.Dense(hp.Int("units", 4, 16, step=4), activation="relu"),
            keras.layers.Dense(
                1 if n_outputs == 2 else n_outputs, activation="sigmoid" if n_outputs == 2 else "softmax"
            ),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(hp.Float("learning_rate", 1e-3, 3e-2, sampling="log")),
        loss="binary_crossentropy" if n_outputs == 2 else "sparse_categorical_crossentropy",
    )
    return model


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=300, n_features=8, n_informative=4, random_state=0)
    data = pd.DataFrame(x, columns=[f"f{i}" for i in range(8)])
    data["y"] = np.where(y == 1, "yes", "no")
    return data


def _train(frame: pd.DataFrame, **tuning):
    return train(
        frame,
        label_column="y",
        selection=[{"method": "kbest", "k": 6}],
        tuning={"method": "keras_tuner", "build_model": BUILD, "cv": 3, "epochs": 5, **tuning},
    )


def test_random_search_behind_the_sklearn_preprocessing_and_the_verified_bundle(frame: pd.DataFrame) -> None:
    result = _train(frame, tuner="random", max_trials=2)
    assert (
        result.pipeline.steps[0][0] == "features" and type(result.pipeline[-1]).__name__ == "KerasClassifier"
    )
    assert set(result.best_params) == {"units", "learning_rate"} and len(result.cv_results) == 2
    assert result.metrics["accuracy"] > result.baseline_metrics["accuracy"] + 0.1
    assert set(result.pipeline.predict(result.x_test.head(5))) <= {"yes", "no"}

    blob, fmt, _ = dump_model(result.pipeline)
    assert fmt == "keras" and sniff_format(blob) == "keras"
    loaded, fmt = deserialize_verified(blob, expected_sha256=sha256(blob), policy=LoadPolicy(), label="t")
    assert fmt == "keras"
    assert np.allclose(
        loaded.predict_proba(result.x_test), result.pipeline.predict_proba(result.x_test), atol=1e-6
    )
    tampered = bytearray(blob)
    tampered[len(tampered) // 2] ^= 0xFF
    with pytest.raises(ModelIntegrityError, match="refusing to load"):
        deserialize_verified(bytes(tampered), expected_sha256=sha256(blob), policy=LoadPolicy(), label="t")


@pytest.mark.parametrize("tuner", ["bayesian", "hyperband"])
def test_bayesian_and_hyperband(frame: pd.DataFrame, tuner: str) -> None:
    result = _train(frame, tuner=tuner, max_trials=2, epochs=2)
    assert result.cv_results and result.metrics["accuracy"] > result.baseline_metrics["accuracy"]


def test_operator_registers_the_keras_bundle(
    dataset: str, mlflow_conn: str, mlflow_tracking: dict[str, str], tmp_path: Path
) -> None:
    import mlflow

    from airflow_provider_mlops.hooks.s3 import ObjectStorageHook
    from airflow_provider_mlops.ml.serialization import load_model_version
    from airflow_provider_mlops.operators.train import TrainModelOperator
    from tests.operators.helpers import task_context

    op = TrainModelOperator(
        task_id="train",
        input_uri=dataset,
        label_column="churned",
        registered_model_name="churn_keras",
        tuning={"method": "keras_tuner", "build_model": BUILD, "max_trials": 1, "epochs": 3, "cv": 3},
        mlflow_conn_id=mlflow_conn,
        model_output_uri=(tmp_path / "mk").as_uri(),
    )
    out = op.execute(task_context(tmp_path))
    assert out["model_file"].endswith(f"churn_keras/v{out['version']}/model.keras.zip")
    client = mlflow.MlflowClient(tracking_uri=mlflow_tracking["tracking_uri"])
    tags = client.get_model_version("churn_keras", out["version"]).tags
    assert (
        tags["mlops.format"] == "keras"
        and tags["mlops.sha256"] == out["sha256"]
        and tags["mlops.keras_sha256"]
    )
    stored = load_model_version(
        client, "churn_keras", out["version"], storage=ObjectStorageHook(aws_conn_id=None)
    )
    assert stored.format == "keras"
    mlflow.set_tracking_uri(mlflow_tracking["tracking_uri"])  # models:/ URIs resolve through it
    registered = mlflow.pyfunc.load_model(out["model_uri"])
    import pyarrow as pa

    rows = (
        pa.Table.from_batches(list(ObjectStorageHook(aws_conn_id=None).iter_batches(dataset)))
        .to_pandas()
        .head(20)
    )
    features = rows.drop(columns=["churned"]).astype({"plan": object, "region": object})
    assert (registered.predict(features) == stored.model.predict(features)).all()
