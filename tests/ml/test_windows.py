"""Training windows and recency weights (#26 item 2): rows since the drift, weights in every search."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from airflow_provider_mlops.ml.candidates import register_estimator
from airflow_provider_mlops.ml.onset import read_onset
from airflow_provider_mlops.ml.training import TrainingError, train
from airflow_provider_mlops.ml.windows import WindowSpecError, apply_window, check_window

ONSET_DAY8 = read_onset({"first_day": "2026-03-08", "kind": "drift"})


def _days(
    n_days: int = 10, per_day: int = 100, *, flip_from: int | None = None, seed: int = 0
) -> pd.DataFrame:
    """Daily rows; from ``flip_from`` on, the label's relation to ``x`` is reversed (the world changed)."""
    rng = np.random.default_rng(seed)
    parts = []
    for d in range(1, n_days + 1):
        x = rng.normal(size=per_day)
        sign = -1 if flip_from is not None and d >= flip_from else 1
        parts.append(
            pd.DataFrame(
                {
                    "day": [f"2026-03-{d:02d}"] * per_day,
                    "x": x,
                    "noise": rng.normal(size=per_day),
                    "y": (sign * 3 * x + rng.logistic(size=per_day) > 0).astype(int),
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def test_days_since_drift_and_min_rows_pick_the_rows() -> None:
    frame = _days()
    kept, weights, summary = apply_window(frame, {"days": 3}, time_column="day")
    assert sorted(kept.day.unique()) == ["2026-03-08", "2026-03-09", "2026-03-10"] and weights is None
    kept, _, summary = apply_window(
        frame, {"since_drift": True, "days": 7}, time_column="day", onset=ONSET_DAY8
    )
    assert sorted(kept.day.unique()) == ["2026-03-08", "2026-03-09", "2026-03-10"]
    assert summary["post_drift_rows"] == 300 and summary["onset"] == "2026-03-08"
    # too few post-drift rows: back to the newest min_rows rows, pre-drift ones included
    kept, _, summary = apply_window(
        frame, {"since_drift": True, "min_rows": 500, "time_column": "day"}, onset=ONSET_DAY8
    )
    assert len(kept) == 500 and kept.day.min() == "2026-03-06" and summary["extended_to_min_rows"]
    assert summary["post_drift_rows"] == 300 and summary["rows_before"] == 1000
    # fewer rows in all than min_rows (a young model): all of them, and the summary says how many short
    kept, _, summary = apply_window(frame, {"days": 1, "min_rows": 1200}, time_column="day")
    assert len(kept) == 1000 and summary["short_of_min_rows"] == 200 and summary["extended_to_min_rows"]
    # no onset recorded: since_drift leaves the other limits
    kept, _, _ = apply_window(frame, {"since_drift": True, "days": 2}, time_column="day")
    assert sorted(kept.day.unique()) == ["2026-03-09", "2026-03-10"]


def test_frames_with_a_repeated_index_keep_weights_and_rows_together() -> None:
    """Days concatenated without ignore_index repeat their labels: weights still follow their rows."""
    days = [
        _days(n_days=10, per_day=50, flip_from=9).query("day == @d") for d in ("2026-03-01", "2026-03-10")
    ]
    frame = pd.concat([d.reset_index(drop=True) for d in days])
    kept, weights, _ = apply_window(frame, {"days": 1, "min_rows": 60, "half_life": 1}, time_column="day")
    assert len(kept) == 60 and kept.day.value_counts().to_dict() == {"2026-03-10": 50, "2026-03-01": 10}
    result = train(
        kept, label_column="y", time_column="day", estimator="logistic_regression", sample_weight=weights
    )
    assert result.train_rows + result.test_rows == 60
    with pytest.raises(TrainingError, match="sample_weight has 3 weights for 60 rows"):
        train(
            kept,
            label_column="y",
            time_column="day",
            estimator="logistic_regression",
            sample_weight=[1, 1, 1],
        )


def test_half_life_weights_halve_per_half_life_and_average_one() -> None:
    _, weights, summary = apply_window(_days(), {"half_life": 2}, time_column="day")
    by_day = weights.groupby(_days().day).first()
    assert by_day["2026-03-08"] / by_day["2026-03-10"] == pytest.approx(0.5)
    assert by_day["2026-03-06"] / by_day["2026-03-10"] == pytest.approx(0.25)
    assert weights.mean() == pytest.approx(1.0) and summary["half_life"] == 2


def test_bad_specs_are_refused_by_name() -> None:
    with pytest.raises(WindowSpecError, match=r"unknown keys \['day'\]"):
        check_window({"day": 7})
    with pytest.raises(WindowSpecError, match=r"window.half_life must be a positive number"):
        check_window({"half_life": 0})
    with pytest.raises(WindowSpecError, match=r"window.min_rows must be a whole number"):
        check_window({"min_rows": 2.5})
    with pytest.raises(WindowSpecError, match="window needs a time_column"):
        apply_window(_days(), {"days": 2})
    with pytest.raises(WindowSpecError, match=r"'when' is not in the training data"):
        apply_window(_days(), {"days": 2}, time_column="when")
    frame = _days()
    frame.loc[3, "day"] = None
    with pytest.raises(WindowSpecError, match=r"'day' has no value in 1 of 1000 rows"):
        apply_window(frame, {"days": 2}, time_column="day")


def test_recency_weights_let_the_model_learn_the_changed_world() -> None:
    """Eight days of the old relation, the two newest reversed: weighted by recency, the model follows."""
    frame = _days(flip_from=9, per_day=200)
    common = {"label_column": "y", "estimator": "logistic_regression", "time_column": "day", "test_size": 0.1}
    common["features"] = {"drop": ["day"]}
    plain = train(frame, **common)
    _, weights, _ = apply_window(frame, {"half_life": 0.25}, time_column="day")
    weighted = train(frame, sample_weight=weights, **common)
    # the holdout is the newest 10% (the reversed day): time-ordered evaluation
    assert set(plain.x_test.index) == set(frame.index[-200:])
    assert plain.metrics["roc_auc"] < 0.2 and weighted.metrics["roc_auc"] > 0.8


class WeightSpy(LogisticRegression):
    """Records the sample_weight every fit receives."""

    seen: list = []

    def fit(self, X, y, sample_weight=None):
        WeightSpy.seen.append(None if sample_weight is None else len(sample_weight))
        return super().fit(X, y, sample_weight=sample_weight)


register_estimator("weight_spy", WeightSpy)

METHODS = {
    "none": {},
    "grid": {"param_grid": {"C": [0.1, 1.0]}},
    "random": {"param_grid": {"C": [0.1, 1.0, 10.0]}, "n_iter": 2},
    "halving_grid": {"param_grid": {"C": [0.1, 1.0, 10.0]}},
    "halving_random": {"param_grid": {"C": {"low": 0.01, "high": 10.0, "log": True}}, "n_candidates": 3},
    "optuna": {"param_grid": {"C": {"low": 0.01, "high": 10.0, "log": True}}, "n_trials": 2},
    "hyperopt": {"param_grid": {"C": {"low": 0.01, "high": 10.0, "log": True}}, "n_trials": 2},
}
EXTRA = {"optuna": "optuna_integration", "hyperopt": "hyperopt"}


@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize("with_candidates", [False, True])
def test_sample_weights_reach_every_fit_of_every_search(method: str, with_candidates: bool) -> None:
    if method in EXTRA:
        pytest.importorskip(EXTRA[method], reason=f"the {method} extra is not installed")
    frame = _days(n_days=6, per_day=60)
    _, weights, _ = apply_window(frame, {"half_life": 1}, time_column="day")
    WeightSpy.seen = []
    spec = {"estimator": "weight_spy", "params": {"max_iter": 200}}
    train(
        frame,
        label_column="y",
        features={"drop": ["day"]},
        time_column="day",
        tuning={"method": method, "cv": 3, **METHODS[method]},
        sample_weight=weights,
        **({"candidates": [spec]} if with_candidates else {"estimator": "weight_spy"}),
    )
    assert WeightSpy.seen and None not in WeightSpy.seen, WeightSpy.seen


def test_methods_and_estimators_without_sample_weight_are_refused_by_name() -> None:
    frame = _days(n_days=4, per_day=50)
    _, weights, _ = apply_window(frame, {"half_life": 1}, time_column="day")
    with pytest.raises(TrainingError, match=r"tuning.method 'genetic' cannot take sample weights"):
        train(
            frame,
            label_column="y",
            time_column="day",
            estimator="logistic_regression",
            sample_weight=weights,
            tuning={"method": "genetic", "param_grid": {"C": [0.1, 1.0]}},
        )
    with pytest.raises(TrainingError, match=r"estimator 'knn' .*takes no sample_weight"):
        train(frame, label_column="y", time_column="day", estimator="knn", sample_weight=weights)
    with pytest.raises(TrainingError, match=r"candidate 'knn'.*takes no sample_weight"):
        train(
            frame,
            label_column="y",
            time_column="day",
            candidates=[{"estimator": "knn"}],
            sample_weight=weights,
        )
