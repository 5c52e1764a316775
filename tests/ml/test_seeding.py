"""Seeded everywhere (issue #26, item 6): the same data and seed give the same model, byte for byte."""

from __future__ import annotations

import hashlib
import pickle

import numpy as np
import pandas as pd
import pytest

from airflow_provider_mlops.ml.training import train


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(5)
    n = 600
    data = pd.DataFrame(
        {
            "x1": rng.normal(size=n),
            "x2": rng.normal(size=n),
            "city": rng.choice([f"c{i}" for i in range(12)], size=n),
            "plan": rng.choice(["a", "b", "c"], size=n),
        }
    )
    logit = 1.5 * data.x1 + (data.city.str[1:].astype(int) % 3 - 1) * 1.2
    data["y"] = (logit + rng.logistic(size=n) > 0).astype(int)
    return data


def _digest(model: object) -> str:
    return hashlib.sha256(pickle.dumps(model)).hexdigest()


@pytest.mark.parametrize(
    ("estimator", "tuning"),
    [
        (
            "sklearn.ensemble.RandomForestClassifier",
            {"method": "random", "n_iter": 3, "cv": 3, "param_grid": {"max_depth": [3, 5, 8]}},
        ),
        ("sklearn.neural_network.MLPClassifier", None),
        (
            "sklearn.linear_model.SGDClassifier",
            {"method": "grid", "cv": 3, "param_grid": {"alpha": [1e-4, 1e-3]}},
        ),
    ],
)
def test_target_encoding_and_every_estimator_take_the_seed(frame, estimator, tuning) -> None:
    """TargetEncoder shuffles its cross-fitting folds: without random_state two runs differ."""

    def once():
        return train(
            frame,
            label_column="y",
            features={"categorical": {"encode": "target"}},
            selection=[
                {"method": "model", "estimator": "random_forest", "estimator_params": {"n_estimators": 10}}
            ],
            estimator=estimator,
            estimator_params={"max_iter": 50} if "MLP" in estimator else None,
            tuning=tuning,
            seed=7,
        )

    first, second = once(), once()
    encoder = first.pipeline.named_steps["features"].named_transformers_["categorical"].named_steps["encode"]
    assert getattr(encoder.cv, "random_state", encoder.random_state) == 7
    assert _digest(first.pipeline) == _digest(second.pipeline)
    assert first.metrics == second.metrics
