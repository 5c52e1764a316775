"""Tuning methods (Hyperopt TPE, genetic), param_grid step aliases, configuration-time checks."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from airflow_provider_mlops.ml.selection import SelectionSpecError
from airflow_provider_mlops.ml.training import train

SPACE = {
    "C": {"low": 0.001, "high": 10.0, "log": True},
    "kbest__k": {"low": 2, "high": 8},  # alias of the step select_0_kbest
    "class_weight": [None, "balanced"],
}


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=300, n_features=8, n_informative=4, random_state=0)
    data = pd.DataFrame(x, columns=[f"f{i}" for i in range(8)])
    data["y"] = y
    return data


def _train(frame: pd.DataFrame, tuning: dict, **kwargs):
    return train(
        frame,
        target="y",
        estimator="sklearn.linear_model.LogisticRegression",
        estimator_params={"max_iter": 300},
        selection=[{"method": "kbest", "k": 4}],
        tuning={"cv": 3, "param_grid": SPACE, **tuning},
        **kwargs,
    )


def test_hyperopt_tpe_searches_the_shared_space(frame: pd.DataFrame) -> None:
    pytest.importorskip("hyperopt", reason="the hyperopt extra is not installed")
    result = _train(frame, {"method": "hyperopt", "n_trials": 6})
    assert len(result.cv_results) == 6
    assert 0.001 <= result.best_params["C"] <= 10 and 2 <= result.best_params["select_0_kbest__k"] <= 8
    assert isinstance(result.best_params["select_0_kbest__k"], int)
    assert result.metrics["accuracy"] > result.baseline_metrics["accuracy"] + 0.1
    again = _train(frame, {"method": "hyperopt", "n_trials": 6})
    assert again.best_params == result.best_params, "seeded: reruns search the same points"


def test_genetic_search_on_the_pipeline(frame: pd.DataFrame) -> None:
    pytest.importorskip("sklearn_genetic", reason="the genetic extra is not installed")
    result = _train(frame, {"method": "genetic", "population_size": 4, "generations": 2})
    assert result.cv_results and set(result.best_params) == {"C", "class_weight", "select_0_kbest__k"}
    assert result.metrics["accuracy"] > result.baseline_metrics["accuracy"] + 0.1


def test_param_grid_aliases_and_full_step_names(frame: pd.DataFrame) -> None:
    result = train(
        frame,
        target="y",
        estimator="sklearn.linear_model.LogisticRegression",
        selection=[{"method": "variance"}, {"method": "kbest", "k": 4}],
        tuning={
            "method": "grid",
            "cv": 3,
            "param_grid": {
                "kbest__k": [3, 5],  # -> select_1_kbest__k
                "select_0__threshold": [0.0],  # -> select_0_variance__threshold
                "numeric__scale": ["passthrough"],  # -> features__numeric__scale
                "features__numeric__impute__strategy": ["median"],  # full names still work
            },
        },
    )
    assert set(result.best_params) == {
        "select_1_kbest__k",
        "select_0_variance__threshold",
        "features__numeric__scale",
        "features__numeric__impute__strategy",
    }


def test_chi2_after_standard_scaling_is_refused_before_fitting(frame: pd.DataFrame) -> None:
    with pytest.raises(SelectionSpecError, match=r"chi2 needs non-negative features.*minmax"):
        train(frame, target="y", selection=[{"method": "kbest", "score": "chi2", "k": 3}])
    result = train(
        frame,
        target="y",
        estimator="sklearn.linear_model.LogisticRegression",
        features={"numeric": {"scale": "minmax"}},
        selection=[{"method": "kbest", "score": "chi2", "k": 3}],
    )
    assert len(result.selected_features) == 3


def test_rows_without_a_target_are_counted_and_logged(frame: pd.DataFrame, caplog) -> None:
    holes = frame.copy()
    holes.loc[holes.index[:17], "y"] = np.nan
    with caplog.at_level(logging.INFO, logger="airflow_provider_mlops.ml.training"):
        result = train(
            holes, target="y", task="classification", estimator="sklearn.linear_model.LogisticRegression"
        )
    assert result.dropped_missing_target == 17
    assert "Dropped 17 of 300 rows whose target 'y' is missing" in caplog.text
