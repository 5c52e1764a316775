"""Candidate model families: tuned on the same CV folds, the better family wins, allowlisted only."""

from __future__ import annotations

import pandas as pd
import pytest

from airflow_provider_mlops.ml import candidates as cands
from airflow_provider_mlops.ml.candidates import CandidateSpecError, folds_digest
from airflow_provider_mlops.ml.training import TrainingError, split, train

CANDIDATES = [
    {"estimator": "logistic_regression", "params": {"max_iter": 500}, "search_space": {"C": [0.1, 1.0]}},
    {"estimator": "sklearn.tree.DecisionTreeClassifier", "param_grid": {"max_depth": [1, 2]}},
    {"estimator": "dummy", "params": {"strategy": "most_frequent"}},
]


@pytest.fixture(scope="module")
def cancer() -> pd.DataFrame:
    from sklearn.datasets import load_breast_cancer

    return load_breast_cancer(as_frame=True).frame


def test_the_better_family_wins_on_the_same_folds(cancer: pd.DataFrame) -> None:
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    result = train(
        cancer, label_column="target", candidates=CANDIDATES, tuning={"method": "grid", "cv": 3}, seed=3
    )
    board = result.leaderboard
    assert [r["candidate"] for r in board] == ["logistic_regression", "DecisionTreeClassifier", "dummy"]
    assert result.estimator == "sklearn.linear_model.LogisticRegression"
    assert result.pipeline.named_steps["model"].__class__.__name__ == "LogisticRegression"
    assert result.best_params["C"] in (0.1, 1.0) and board[0]["best_params"] == result.best_params
    assert board[1]["best_params"]["max_depth"] in (1, 2) and board[2]["best_params"] == {}
    assert board[0]["mean_cv_score"] > board[1]["mean_cv_score"] > board[2]["mean_cv_score"] + 0.2
    assert all(r["std_cv_score"] >= 0 and r["fit_seconds"] > 0 and len(r["fold_scores"]) == 3 for r in board)

    # One seeded splitter: every candidate (searched or not) saw exactly these folds.
    train_frame, _ = split(cancer, target="target", task="classification", seed=3)
    x, y = train_frame.drop(columns=["target"]), train_frame["target"]
    expected = list(StratifiedKFold(n_splits=3, shuffle=True, random_state=3).split(x, y))
    assert {r["folds_sha256"] for r in board} == {folds_digest(expected)}
    # ...and the reported fold scores are those folds' scores of the winning configuration.
    again = cross_val_score(result.pipeline, x, y, cv=expected, scoring="f1_weighted")
    assert board[0]["fold_scores"] == pytest.approx(list(again))
    assert result.metrics["accuracy"] > result.baseline_metrics["accuracy"] + 0.2


def test_other_tuning_methods_and_regression_use_the_same_folds() -> None:
    pytest.importorskip("hyperopt", reason="the hyperopt extra is not installed")
    from sklearn.datasets import make_regression

    x, y = make_regression(n_samples=200, n_features=5, noise=5.0, random_state=0)
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(5)]).assign(y=y)
    result = train(
        frame,
        label_column="y",
        candidates=[
            {"estimator": "ridge", "search_space": {"alpha": {"low": 0.01, "high": 10.0, "log": True}}},
            {"estimator": "decision_tree", "search_space": {"max_depth": {"low": 1, "high": 3}}},
        ],
        tuning={"method": "hyperopt", "cv": 3, "n_trials": 4},
    )
    board = result.leaderboard
    assert [r["candidate"] for r in board] == ["ridge", "decision_tree"]
    assert board[0]["configurations"] == 4 and board[0]["scoring"] == "neg_root_mean_squared_error"
    assert len({r["folds_sha256"] for r in board}) == 1
    assert result.estimator == "sklearn.linear_model.Ridge" and result.metrics["r2"] > 0.9


def test_unknown_estimators_and_bad_specs_are_refused_without_importing() -> None:
    with pytest.raises(CandidateSpecError, match=r"candidates\[1\]: estimator 'os.system' is not allowed"):
        cands.check_candidates([{"estimator": "random_forest"}, {"estimator": "os.system"}])
    with pytest.raises(CandidateSpecError, match="unknown keys"):
        cands.check_candidates([{"estimator": "knn", "grid": {}}])
    with pytest.raises(CandidateSpecError, match="duplicate name"):
        cands.check_candidates([{"estimator": "knn"}, {"estimator": "knn"}])
    with pytest.raises(CandidateSpecError, match="no regression estimator"):
        cands.resolve_estimator("logistic_regression", "regression")
    with pytest.raises(TrainingError, match="do not combine with keras_tuner"):
        cands.run_candidates(
            [{"estimator": "knn"}],
            make_pipeline=None,
            tuning={"method": "keras_tuner"},
            task="",
            seed=0,
            x=None,
            y=None,
        )


def test_a_registered_estimator_is_allowed(cancer: pd.DataFrame, monkeypatch: pytest.MonkeyPatch) -> None:
    from sklearn.naive_bayes import BernoulliNB

    monkeypatch.setattr(cands, "_REGISTERED", {})
    with pytest.raises(CandidateSpecError):
        cands.check_candidates([{"estimator": "bernoulli"}])
    cands.register_estimator("bernoulli", BernoulliNB)
    result = train(cancer, label_column="target", candidates=[{"estimator": "bernoulli"}], tuning={"cv": 3})
    assert result.estimator.endswith(".BernoulliNB")
    assert result.leaderboard[0]["configurations"] == 1
