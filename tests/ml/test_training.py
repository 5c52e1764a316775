"""Feature engineering, selection, tuning and evaluation on data with known informative columns."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from airflow_provider_mlops.ml.features import FeatureSpecError, build_preprocessor
from airflow_provider_mlops.ml.profile import build_profile
from airflow_provider_mlops.ml.training import TrainingError, infer_task, train
from airflow_provider_mlops.ml.transformers import CorrelationFilter, OutlierClipper

INFORMATIVE = {"numeric__inf1", "numeric__inf2", "numeric__inf3"}


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 2000
    frame = pd.DataFrame(
        {
            "inf1": rng.normal(size=n),
            "inf2": rng.normal(size=n),
            "noise1": rng.normal(size=n),
            "noise2": rng.normal(size=n),
            "cat": rng.choice(["a", "b", "c"], size=n),
            "catnoise": rng.choice(["x", "y"], size=n),
        }
    )
    logit = 2.5 * frame.inf1 - 2.0 * frame.inf2 + (frame.cat == "a") * 3.0
    frame["y"] = (logit + rng.logistic(size=n) > 0).astype(int)
    frame.loc[rng.random(n) < 0.05, "noise1"] = np.nan
    frame.loc[rng.random(n) < 0.05, "cat"] = None
    frame.loc[rng.random(n) < 0.01, "inf2"] = 1e6  # outliers
    return frame


@pytest.fixture(scope="module")
def selection_data() -> pd.DataFrame:
    """Three informative numeric columns among numeric and categorical noise."""
    rng = np.random.default_rng(3)
    n = 2000
    frame = pd.DataFrame(
        {
            "inf1": rng.normal(size=n),
            "inf2": rng.normal(size=n),
            "inf3": rng.normal(size=n),
            "noise1": rng.normal(size=n),
            "noise2": rng.normal(size=n),
            "catnoise": rng.choice(["x", "y", "z"], size=n),
        }
    )
    frame["y"] = (2.5 * frame.inf1 - 2.0 * frame.inf2 + 1.5 * frame.inf3 + rng.logistic(size=n) > 0).astype(
        int
    )
    frame.loc[rng.random(n) < 0.05, "noise1"] = np.nan
    return frame


@pytest.mark.parametrize(
    "selection",
    [
        [{"method": "kbest", "k": 3}],
        [{"method": "kbest", "score": "mutual_info", "k": 3}],
        [{"method": "forward", "n_features": 3, "cv": 3}],
        [{"method": "backward", "n_features": 3, "cv": 3}],
        [{"method": "model", "estimator": "random_forest", "max_features": 3, "threshold": -np.inf}],
        [{"method": "model", "estimator": "decision_tree", "max_features": 3, "threshold": -np.inf}],
        [
            {
                "method": "model",
                "estimator": "random_forest",
                "estimator_params": {"n_estimators": 20, "max_depth": 4},
                "max_features": 3,
                "threshold": -np.inf,
            }
        ],
        [{"method": "rfe", "n_features": 3, "estimator": "decision_tree"}],
    ],
    ids=lambda s: (
        f"{s[0]['method']}-{s[0].get('score', s[0].get('estimator', ''))}"
        + ("-params" if "estimator_params" in s[0] else "")
    ),
)
def test_each_selection_method_keeps_the_informative_features(
    selection_data: pd.DataFrame, selection: list
) -> None:
    result = train(
        selection_data,
        label_column="y",
        selection=selection,
        estimator="sklearn.linear_model.LogisticRegression",
        features={"numeric": {"outliers": {"method": "iqr"}}},
    )
    assert set(result.selected_features) == INFORMATIVE


def test_correlation_filter_drops_one_of_a_correlated_pair() -> None:
    x = np.random.default_rng(1).normal(size=(500, 3))
    x = np.column_stack([x, x[:, 0] * 3 + 0.001])
    kept = CorrelationFilter(threshold=0.95).fit(x).get_support()
    assert kept.tolist() == [True, True, True, False]


def test_outlier_clipper_learns_bounds_at_fit() -> None:
    train_values = np.array([[1.0], [2.0], [3.0], [4.0], [100.0]])
    clipper = OutlierClipper(method="iqr", factor=1.5).fit(train_values)
    assert clipper.transform(np.array([[-50.0], [2.5], [1000.0]])).ravel().tolist() == [-1.0, 2.5, 7.0]


def test_tuning_picks_the_best_parameters_of_a_small_grid(data: pd.DataFrame) -> None:
    result = train(
        data,
        label_column="y",
        estimator="sklearn.linear_model.LogisticRegression",
        tuning={"method": "grid", "param_grid": {"C": [0.0001, 1.0]}, "cv": 3},
    )
    assert result.best_params == {"C": 1.0}
    assert len(result.cv_results) == 2


@pytest.mark.parametrize("method", ["random", "halving_grid", "halving_random", "optuna"])
def test_every_search_runs_and_reports_its_choice(data: pd.DataFrame, method: str) -> None:
    space = (
        {"C": [0.001, 0.1, 10.0]}
        if method == "halving_grid"
        else {"C": {"low": 0.001, "high": 10.0, "log": True}}
    )
    result = train(
        data,
        label_column="y",
        estimator="sklearn.linear_model.LogisticRegression",
        tuning={
            "method": method,
            "param_grid": space,
            "cv": 3,
            "n_iter": 4,
            "n_trials": 4,
            "n_candidates": 4,
        },
    )
    assert set(result.best_params) == {"C"} and 0.001 <= result.best_params["C"] <= 10.0
    assert result.metrics["f1"] > 0.8


def test_pipeline_beats_the_dummy_baseline_and_handles_unseen_categories(data: pd.DataFrame) -> None:
    result = train(
        data,
        label_column="y",
        features={"categorical": {"encode": "onehot"}},
        estimator="sklearn.ensemble.RandomForestClassifier",
        estimator_params={"n_estimators": 50},
    )
    assert result.metrics["accuracy"] > result.baseline_metrics["accuracy"] + 0.2
    assert result.metrics["roc_auc"] > 0.85
    unseen = result.x_test.head(5).copy()
    unseen["cat"] = ["never-seen-before", None, "a", "zzz", "b"]
    assert len(result.pipeline.predict(unseen)) == 5


@pytest.mark.parametrize("encode", ["ordinal", "target"])
@pytest.mark.parametrize("impute", ["mean", "constant", "knn"])
def test_feature_spec_variants_fit_and_predict(data: pd.DataFrame, encode: str, impute: str) -> None:
    # IQR bounds: z-score bounds are themselves inflated by 1e6 outliers (measured: 0.72 accuracy).
    result = train(
        data,
        label_column="y",
        features={
            "numeric": {"impute": impute, "scale": "robust", "outliers": {"method": "iqr", "factor": 1.5}},
            "categorical": {"encode": encode},
        },
        estimator="sklearn.linear_model.LogisticRegression",
        estimator_params={"max_iter": 1000},
    )
    assert result.metrics["accuracy"] > result.baseline_metrics["accuracy"] + 0.15


def test_regression_is_inferred_and_scored(data: pd.DataFrame) -> None:
    frame = data.assign(
        amount=data.inf1 * 3 + data.inf2 + np.random.default_rng(2).normal(scale=0.1, size=len(data))
    )
    frame = frame[frame.inf2 < 100]
    assert infer_task(frame["amount"]) == "regression"
    result = train(frame.drop(columns=["y"]), label_column="amount", estimator="sklearn.linear_model.Ridge")
    assert result.task == "regression" and result.metrics["r2"] > 0.95
    assert result.metrics["rmse"] < result.baseline_metrics["rmse"] / 5


def test_time_split_keeps_the_future_out_of_training(data: pd.DataFrame) -> None:
    frame = data.assign(ts=pd.date_range("2026-01-01", periods=len(data), freq="h"))
    result = train(
        frame,
        label_column="y",
        time_column="ts",
        features={"drop": ["ts"]},
        estimator="sklearn.linear_model.LogisticRegression",
    )
    assert result.test_rows == 400 and list(result.x_test.index) == list(range(1600, 2000))


def test_clear_errors(data: pd.DataFrame) -> None:
    with pytest.raises(TrainingError, match="Label column 'churn' is not in the data"):
        train(data, label_column="churn")
    with pytest.raises(TrainingError, match=r"estimator 'sklearn\.nope\.Model' is not allowed"):
        train(data, label_column="y", estimator="sklearn.nope.Model")
    with pytest.raises(FeatureSpecError, match=r"numeric column\(s\) \['ghost'\]"):
        build_preprocessor(data, {"numeric": {"columns": ["ghost"]}}, target="y")
    with pytest.raises(FeatureSpecError, match="Unknown feature spec key"):
        build_preprocessor(data, {"numerics": {}}, target="y")


def test_reference_profile_is_small_and_complete(data: pd.DataFrame) -> None:
    profile = build_profile(
        data,
        numeric=["inf1", "noise1"],
        categorical=["cat"],
        target="y",
        task="classification",
        metrics={"accuracy": 0.8},
    )
    inf1 = profile["features"]["inf1"]
    assert len(inf1["edges"]) == 9 and abs(sum(inf1["shares"]) - 1) < 1e-9
    assert 0.03 < profile["features"]["noise1"]["missing_share"] < 0.07
    assert set(profile["features"]["cat"]["frequencies"]) == {"a", "b", "c"}
    assert profile["baseline_metrics"] == {"accuracy": 0.8}
    assert len(profile["features"]["inf1"]["sample"]) == 2000


@pytest.mark.parametrize(
    "path",
    [
        "os.system",
        "subprocess.Popen",
        "collections.OrderedDict",  # a class, not an estimator
        "sklearn.base.BaseEstimator",  # sklearn, but not an allowlisted estimator
        "tests.ml.never_imported.Model",
        "RandomForestClassifier",
    ],
)
def test_the_single_estimator_path_uses_the_candidates_allowlist(data: pd.DataFrame, path: str) -> None:
    import sys

    from airflow_provider_mlops.ml.training import load_estimator

    with pytest.raises(
        TrainingError, match=rf"estimator '{re.escape(path)}' is not allowed .*register_estimator"
    ):
        train(data, label_column="y", estimator=path, estimator_params={"args": "true"})
    with pytest.raises(TrainingError, match="is not allowed"):
        load_estimator(path, {"args": "true"})
    assert "tests.ml.never_imported" not in sys.modules  # refused before any import


def test_allowlisted_paths_aliases_and_registered_estimators_load() -> None:
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.linear_model import LogisticRegression, Ridge

    from airflow_provider_mlops.ml import candidates
    from airflow_provider_mlops.ml.training import load_estimator

    assert isinstance(
        load_estimator("sklearn.linear_model.LogisticRegression", {"C": 2.0}), LogisticRegression
    )
    assert load_estimator("sklearn.linear_model.LogisticRegression", {"C": 2.0}).C == 2.0
    assert isinstance(load_estimator("ridge", task="regression"), Ridge)
    assert isinstance(load_estimator("random_forest", task="regression"), RandomForestRegressor)
    candidates.register_estimator("not_a_model", dict)
    candidates.register_estimator("my_ridge", "sklearn.linear_model.Ridge")
    try:
        assert isinstance(load_estimator("my_ridge", {"alpha": 3.0}), Ridge)
        with pytest.raises(TrainingError, match=r"'not_a_model' \(builtins.dict\) is not an estimator class"):
            load_estimator("not_a_model")
    finally:
        candidates._REGISTERED.pop("not_a_model", None)
        candidates._REGISTERED.pop("my_ridge", None)
    with pytest.raises(TrainingError, match=r"Bad parameters for sklearn\.linear_model\.Ridge"):
        load_estimator("sklearn.linear_model.Ridge", {"nope": 1})


def test_selection_estimator_params_reach_the_estimator_or_are_refused() -> None:
    from airflow_provider_mlops.ml.selection import SelectionSpecError, build_selectors

    [(_, selector)] = build_selectors(
        [{"method": "model", "estimator_params": {"n_estimators": 7, "max_depth": 3}}],
        task="classification",
        seed=4,
    )
    params = selector.estimator.get_params()
    assert (params["n_estimators"], params["max_depth"], params["random_state"]) == (7, 3, 4)
    with pytest.raises(
        SelectionSpecError, match=r"\['n_trees'\] are not parameters of RandomForestClassifier"
    ):
        build_selectors([{"method": "model", "estimator_params": {"n_trees": 7}}], task="classification")


def test_stable_select_from_model_equals_scikit_learn_and_round_trips_skops() -> None:
    """The kept mask is SelectFromModel's, follows set_params, survives clone and skops."""
    from sklearn.base import clone
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.feature_selection import SelectFromModel

    from airflow_provider_mlops.ml.serialization import LoadPolicy, deserialize_verified, dump_model
    from airflow_provider_mlops.ml.transformers import StableSelectFromModel

    rng = np.random.default_rng(5)
    x = rng.normal(size=(600, 12))
    y = (x[:, 0] + x[:, 7] + rng.normal(size=600) > 0).astype(int)
    forest = RandomForestClassifier(n_estimators=30, random_state=0)
    plain = SelectFromModel(forest, threshold="mean").fit(x, y)
    stable = StableSelectFromModel(forest, threshold="mean").fit(x, y)
    assert stable.get_support().tolist() == plain.get_support().tolist()
    assert 2 <= stable.get_support().sum() < 12
    np.testing.assert_array_equal(stable.transform(x), plain.transform(x))
    for threshold in ("median", "0.1*mean", -np.inf):
        plain.set_params(threshold=threshold)
        stable.set_params(threshold=threshold)
        assert stable.get_support().tolist() == plain.get_support().tolist(), threshold
    assert not hasattr(clone(stable), "support_mask_")
    import hashlib

    blob, fmt, _ = dump_model(stable)
    loaded, _ = deserialize_verified(
        blob, expected_sha256=hashlib.sha256(blob).hexdigest(), policy=LoadPolicy.of(), label="selector"
    )
    assert fmt == "skops" and type(loaded) is StableSelectFromModel
    np.testing.assert_array_equal(loaded.transform(x), plain.transform(x))


# --------------------------------------------------------------------------------------------------
# issue #28 item 2: every metric finite or absent with a reason; a split that cannot train is refused
# --------------------------------------------------------------------------------------------------
def _time_ordered(labels: list[str]) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    n = len(labels)
    return pd.DataFrame(
        {"day": np.arange(n), "x": rng.normal(size=n) + (np.array(labels) == "b"), "y": labels}
    )


def test_a_binary_holdout_with_one_class_leaves_roc_auc_out_with_the_reason() -> None:
    frame = _time_ordered(["a", "b"] * 40 + ["a"] * 20)  # the latest 20 rows: only "a"
    result = train(
        frame,
        label_column="y",
        estimator="sklearn.linear_model.LogisticRegression",
        features={"drop": ["day"]},
        split_strategy="time",
        time_column="day",
    )
    assert result.metrics_unavailable == {"roc_auc": "class 'b' absent from holdout (20 rows)"}
    assert "roc_auc" not in result.metrics and "roc_auc" not in result.metric_uncertainty
    assert all(np.isfinite(v) for v in [*result.metrics.values(), *result.baseline_metrics.values()])


def test_a_class_only_in_the_latest_rows_is_refused_before_any_fitting() -> None:
    frame = _time_ordered(["a", "b"] * 40 + ["c"] * 20)
    with pytest.raises(
        TrainingError, match=r"Class 'c' of 'y' is absent from the training part of the 'time' split"
    ):
        train(
            frame,
            label_column="y",
            estimator="sklearn.linear_model.LogisticRegression",
            features={"drop": ["day"]},
            split_strategy="time",
            time_column="day",
            tuning={"method": "grid", "param_grid": {"C": [1.0]}, "time_budget": 1},
        )


def test_a_stratified_split_with_a_single_row_class_names_the_class() -> None:
    frame = _time_ordered(["a", "b"] * 40 + ["rare"])
    with pytest.raises(TrainingError, match=r"Class 'rare' of 'y' has 1 row: a stratified split needs"):
        train(
            frame,
            label_column="y",
            estimator="sklearn.linear_model.LogisticRegression",
            split_strategy="stratified",
        )


def test_a_stratified_holdout_smaller_than_the_class_count_names_target_classes_and_sizes() -> None:
    """12 rows, four classes of 3: a 20% holdout is 3 rows, too few to hold one row of each class."""
    frame = pd.DataFrame({"x": np.arange(12.0), "label_y": ["a", "b", "c", "d"] * 3})
    with pytest.raises(
        TrainingError,
        match=r"holdout of 3 rows.*'label_y' has 4 classes \['a', 'b', 'c', 'd'\].*test_size.*"
        r"split_strategy='random'",
    ):
        train(frame, label_column="label_y", estimator="sklearn.linear_model.LogisticRegression")
