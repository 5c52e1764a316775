"""
Retraining repairs the model the day after drift (#26 item 4), on the demo's simulated world.

The example training DAG's choices (window, features, selection, the gate's evaluation slice and its
tie rule) applied to the simulation's days in plain Python, with a lighter forest and no search so
that it runs in seconds: the champion trained before the drift decays on the drift day; the
candidate trained that day on the rows since the onset wins the gate beyond the uncertainty; on the
next day its ROC AUC is within 0.02 of the champion's last five pre-drift days (recovered in 1 day).
The old window (the seven days before the newest) does not recover: the test can fail.
"""

from __future__ import annotations

import pandas as pd
import pytest

from airflow_provider_mlops.demo.simulate import World
from airflow_provider_mlops.ml.onset import read_onset
from airflow_provider_mlops.ml.stats import paired_test, predictions
from airflow_provider_mlops.ml.training import train
from airflow_provider_mlops.ml.windows import apply_window
from tests.ml.small_world import day_frame, examples


def _fit(example, frame: pd.DataFrame, window: dict, onset=None):
    kept, weights, summary = apply_window(frame, window, onset=onset)
    result = train(
        kept,
        label_column="churned",
        task="classification",
        features=example.FEATURES,
        selection=example.SELECTION,
        estimator="random_forest",
        estimator_params={"n_jobs": 1, "class_weight": "balanced", "n_estimators": 60, "max_depth": 8},
        time_column="day",
        seed=42,
        sample_weight=weights,
    )
    return result.pipeline, summary


def _auc(model, frame: pd.DataFrame) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(frame["churned"], model.predict_proba(frame.drop(columns="churned"))[:, 1]))


@pytest.mark.parametrize("seed", [42, 3])
def test_the_model_promoted_on_the_drift_day_is_good_the_next_day(seed: int) -> None:
    example = examples()[0]
    world = World(seed=seed)
    drift = world.drift_day  # 0-based index of the first drifted day
    days = {i: day_frame(world, i) for i in range(drift + 2)}
    held_out = lambda f: f["customer_id"] % 4 == 0  # noqa: E731  the example's HOLDOUT slice
    first = days[0][~held_out(days[0])]
    champion, _ = _fit(example, first, example.WINDOW)
    before = [_auc(champion, days[i]) for i in range(drift - 5, drift)]
    baseline = sum(before) / len(before)
    assert _auc(champion, days[drift]) < baseline - 0.15, "the drift day decays the champion"

    history = pd.concat([days[i] for i in range(drift + 1)], ignore_index=True)
    newest = history["day"] == str(world.day(drift))
    onset = read_onset({"first_day": str(world.day(drift))})
    candidate, summary = _fit(example, history[~(newest & held_out(history))], example.WINDOW, onset)
    assert summary["post_drift_rows"] >= 1800 and summary["rows"] == 2000
    # the gate: post-drift held-out rows, a gain beyond its standard error
    evaluation = days[drift][held_out(days[drift])]
    x, y = evaluation.drop(columns="churned"), evaluation["churned"]
    test = paired_test(
        "roc_auc",
        predictions(candidate, x, y, "classification"),
        predictions(champion, x, y, "classification"),
        n_boot=300,
    )
    assert test["gain"] > max(test["gain_se"], 0.1), test
    # recovered in one day: the next day's AUC is back within 0.02 of the pre-drift level
    assert _auc(candidate, days[drift + 1]) >= baseline - 0.02

    # the old window, the seven days before the newest, learns the old world: not recovered
    old_rows = history[history["day"] < str(world.day(drift))]
    blind, _ = _fit(example, old_rows, {"time_column": "day", "days": 7})
    assert _auc(blind, days[drift + 1]) < baseline - 0.1
