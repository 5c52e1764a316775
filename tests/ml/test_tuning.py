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
        label_column="y",
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
        label_column="y",
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
        train(frame, label_column="y", selection=[{"method": "kbest", "score": "chi2", "k": 3}])
    result = train(
        frame,
        label_column="y",
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
            holes,
            label_column="y",
            task="classification",
            estimator="sklearn.linear_model.LogisticRegression",
        )
    assert result.dropped_missing_label == 17
    assert "Dropped 17 of 300 rows whose label 'y' is missing" in caplog.text


# --------------------------------------------------------------------------------------------------
# issue #28 item 6: a progress line per configuration, collapsed warnings, a time budget everywhere
# --------------------------------------------------------------------------------------------------
FIT_SECONDS = 0.05


def _slow_logistic() -> type:
    from sklearn.linear_model import LogisticRegression

    class SlowLogistic(LogisticRegression):
        """A model whose every fit takes FIT_SECONDS: a search's duration becomes predictable."""

        def fit(self, x, y, sample_weight=None):  # type: ignore[no-untyped-def]
            import time

            time.sleep(FIT_SECONDS)
            return super().fit(x, y, sample_weight=sample_weight)

    SlowLogistic.__module__ = __name__
    SlowLogistic.__qualname__ = "SlowLogistic"
    globals()["SlowLogistic"] = SlowLogistic
    return SlowLogistic


BUDGET_CASES = {
    "grid": ({"param_grid": {"C": [round(0.01 * i, 2) for i in range(1, 41)]}}, 40),
    "random": ({"n_iter": 40}, 40),
    "halving_grid": ({"param_grid": {"C": [round(0.01 * i, 2) for i in range(1, 41)]}}, 40),
    "halving_random": ({"n_candidates": 40}, 40),
    "optuna": ({"n_trials": 40}, 40),
    "hyperopt": ({"n_trials": 40}, 40),
    "genetic": ({"population_size": 6, "generations": 30}, 180),
}
EXTRAS = {"optuna": "optuna_integration", "hyperopt": "hyperopt", "genetic": "sklearn_genetic"}


@pytest.mark.parametrize("method", sorted(BUDGET_CASES))
def test_every_search_method_stops_at_its_time_budget_and_keeps_the_best_so_far(
    frame: pd.DataFrame, method: str, caplog: pytest.LogCaptureFixture
) -> None:
    import time

    from airflow_provider_mlops.ml.candidates import register_estimator

    if method in EXTRAS:
        pytest.importorskip(EXTRAS[method])
    register_estimator("slow_logistic", _slow_logistic())
    extra, planned = BUDGET_CASES[method]
    # A full search would take at least planned * 3 folds * FIT_SECONDS (6 s, 27 s for genetic).
    budget = 1.0
    started = time.monotonic()
    with caplog.at_level(logging.INFO, logger="airflow_provider_mlops"):
        result = train(
            frame,
            label_column="y",
            estimator="slow_logistic",
            tuning={
                "method": method,
                "cv": 3,
                "param_grid": {"C": {"low": 0.01, "high": 10.0, "log": True}},
                "time_budget": budget,
                **extra,
            },
        )
    seconds = time.monotonic() - started
    assert seconds < budget + 4, f"{method} ran {seconds:.1f} s with a time_budget of {budget} s"
    progress = [r.getMessage() for r in caplog.records if ": configuration " in r.getMessage()]
    assert 1 <= len(progress) < planned, progress
    assert all("score" in line and "s elapsed" in line for line in progress)
    stopped = [r.getMessage() for r in caplog.records if "time_budget of 1.0 s reached" in r.getMessage()]
    assert len(stopped) == 1 and "keeping the best so far" in stopped[0]
    # the kept model is the best of what was evaluated, refitted: it predicts
    assert result.metrics["accuracy"] > result.baseline_metrics["accuracy"]
    assert "C" in result.best_params


def test_a_grid_search_logs_one_line_per_configuration_and_each_repeated_warning_once(
    frame: pd.DataFrame, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="airflow_provider_mlops"):
        train(
            frame,
            label_column="y",
            estimator="sklearn.linear_model.LogisticRegression",
            estimator_params={"max_iter": 1},  # a ConvergenceWarning from every fit
            tuning={"method": "grid", "cv": 3, "param_grid": {"C": [0.1, 1.0, 10.0, 100.0]}},
        )
    lines = [r.getMessage() for r in caplog.records]
    progress = [line for line in lines if line.startswith("Tuning LogisticRegression: configuration ")]
    assert [line.split(" ")[3] for line in progress] == ["1/4", "2/4", "3/4", "4/4"]
    assert "{'C': 10.0}" in progress[2]
    convergence = [line for line in lines if "ConvergenceWarning" in line]
    # 4 configurations x 3 folds + the refit: 13 warnings, one line
    assert len(convergence) == 1 and convergence[0].endswith("(raised 13 times)"), convergence


@pytest.mark.parametrize(
    ("tuning", "message"),
    [
        ({"method": "keras_tuner", "time_budget": 60}, "keras_tuner cannot stop a search at a deadline"),
        ({"method": "none", "time_budget": 60}, "there is no search to stop"),
        ({"method": "grid", "time_budget": -1, "param_grid": {"C": [1]}}, "positive number of seconds"),
        ({"method": "optuna", "time_budget": 5, "timeout": 9}, "give time_budget only"),
    ],
)
def test_a_time_budget_a_method_cannot_honour_is_refused_by_name(tuning: dict, message: str) -> None:
    from airflow_provider_mlops.ml.search import TrainingError, time_budget

    with pytest.raises(TrainingError, match=message):
        time_budget(tuning)


def test_the_time_budget_covers_all_candidates_and_each_still_gets_a_score(
    frame: pd.DataFrame, caplog: pytest.LogCaptureFixture
) -> None:
    from airflow_provider_mlops.ml.candidates import register_estimator

    register_estimator("slow_logistic", _slow_logistic())
    grid = {"C": [round(0.01 * i, 2) for i in range(1, 41)]}
    with caplog.at_level(logging.INFO, logger="airflow_provider_mlops"):
        result = train(
            frame,
            label_column="y",
            candidates=[
                {"estimator": "slow_logistic", "name": "first", "search_space": grid},
                {"estimator": "slow_logistic", "name": "second", "search_space": grid},
            ],
            tuning={"method": "grid", "cv": 3, "time_budget": 0.5},
        )
    board = {row["candidate"]: row for row in result.leaderboard}
    assert 1 <= board["first"]["configurations"] < 40
    assert board["second"]["configurations"] == 1  # its turn came after the budget: one configuration
    assert all(np.isfinite(row["mean_cv_score"]) for row in result.leaderboard)
    assert any(
        "Candidate second (2 of 2) starts after the time_budget" in r.getMessage() for r in caplog.records
    )


def test_a_search_from_before_scikit_learn_1_7_gets_no_callback_context_and_still_reports_progress() -> None:
    # scikit-learn 1.6 (the oldest release the provider supports) calls _run_search(evaluate_candidates)
    # and its own _run_search takes no callback_ctx: the budgeted subclass must not pass one on.
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, ParameterGrid

    from airflow_provider_mlops.ml.search import SearchProgress, budgeted

    class OldGridSearchCV(GridSearchCV):
        def _run_search(self, evaluate_candidates):  # the 1.6 signature
            evaluate_candidates(ParameterGrid(self.param_grid))

    search = budgeted(OldGridSearchCV)(LogisticRegression(), {"C": [0.1, 1.0, 10.0]}, cv=2)
    search.progress = progress = SearchProgress("logistic")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 3))
    y = (x[:, 0] > 0).astype(int)
    search.fit(x, y)
    assert search.best_params_["C"] in (0.1, 1.0, 10.0)
    assert len(search.cv_results_["params"]) == 3
    assert progress.evaluated == 3
