"""Evaluation curves, threshold table and residuals (ml/evaluation.py) and their PNGs (ml/plots.py)."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn import metrics

from airflow_provider_mlops.ml.evaluation import (
    PROBABILITY_THRESHOLDS,
    evaluate_classifier,
    evaluation_files,
    threshold_table,
)
from airflow_provider_mlops.ml.plots import CURVE_SIZE, DPI, TABLE_SIZE, comparison_png

pytestmark = pytest.mark.unit


def png_shape(data: bytes) -> tuple[int, ...]:
    import matplotlib.image

    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return matplotlib.image.imread(io.BytesIO(data), format="png").shape


def pixels(size: tuple[float, float]) -> tuple[int, int]:
    return round(size[1] * DPI), round(size[0] * DPI)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.lists(
        st.tuples(st.booleans(), st.floats(0, 1, allow_nan=False, allow_subnormal=False)),
        min_size=1,
        max_size=60,
    ),
    labels=st.sampled_from([(0, 1), ("no", "yes"), (False, True)]),
    cuts=st.lists(st.floats(-0.5, 1.5, allow_nan=False), min_size=1, max_size=8),
)
def test_threshold_table_equals_scikit_learn(rows: list, labels: tuple, cuts: list) -> None:
    y = np.array([labels[1] if positive else labels[0] for positive, _ in rows], dtype=object)
    scores = np.array([s for _, s in rows])
    table = threshold_table(y, scores, labels[1], cuts)
    assert [r["threshold"] for r in table] == cuts
    truth = np.array([positive for positive, _ in rows])
    for row in table:
        predicted = scores >= row["threshold"]
        assert row["precision"] == metrics.precision_score(truth, predicted, zero_division=0)
        assert row["recall"] == metrics.recall_score(truth, predicted, zero_division=0)
        assert row["f1"] == pytest.approx(metrics.f1_score(truth, predicted, zero_division=0), abs=1e-12)
        tn, fp, fn, tp = metrics.confusion_matrix(truth, predicted, labels=[False, True]).ravel()
        assert (row["tp"], row["fp"], row["tn"], row["fn"]) == (tp, fp, tn, fn)
        assert row["fpr"] == (fp / (fp + tn) if fp + tn else 0.0)
        assert row["predicted_positive_share"] == predicted.mean()
        assert row["tp"] + row["fp"] + row["tn"] + row["fn"] == len(rows)


@settings(max_examples=40, deadline=None)
@given(
    data=st.lists(
        st.tuples(st.booleans(), st.floats(0, 1, allow_nan=False, allow_subnormal=False)),
        min_size=2,
        max_size=80,
    ).filter(lambda r: len({p for p, _ in r}) == 2)
)
def test_curves_and_scores_are_scikit_learns(data: list) -> None:
    y = np.array(["yes" if p else "no" for p, _ in data])
    score = np.array([s for _, s in data])

    class Fixed:  # a "model" whose probabilities are the generated scores
        classes_ = np.array(["no", "yes"])

        def predict_proba(self, x: object) -> np.ndarray:
            return np.column_stack([1 - score, score])

    result = evaluate_classifier(Fixed(), None, y)
    fpr, tpr, _ = metrics.roc_curve(y == "yes", score)
    assert result.positive == "yes" and result.roc["yes"].x == list(fpr) and result.roc["yes"].y == list(tpr)
    assert result.roc["yes"].score == metrics.roc_auc_score(y == "yes", score)
    assert result.pr["yes"].score == metrics.average_precision_score(y == "yes", score)
    assert result.calibration["yes"].score == metrics.brier_score_loss(y == "yes", score)
    assert [r["threshold"] for r in result.thresholds] == list(PROBABILITY_THRESHOLDS)


@pytest.fixture(scope="module")
def binary() -> tuple[pd.DataFrame, np.ndarray]:
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=400, n_features=6, random_state=1)
    return pd.DataFrame(x, columns=[f"f{i}" for i in range(6)]), np.where(y == 1, "churn", "stay")


def test_binary_files_pngs_and_string_labels(binary: tuple) -> None:
    from sklearn.linear_model import LogisticRegression

    x, y = binary
    model = LogisticRegression().fit(x[:300], y[:300])
    _, files = evaluation_files(model, x[300:], y[300:], "classification")
    assert set(files) == {
        f"evaluation/{n}"
        for n in (
            "roc_curve.png",
            "precision_recall_curve.png",
            "calibration_curve.png",
            "threshold_table.png",
            "threshold_table.csv",
            "threshold_table.json",
            "summary.json",
        )
    }
    for name in ("roc_curve", "precision_recall_curve", "calibration_curve"):
        assert png_shape(files[f"evaluation/{name}.png"]) == (*pixels(CURVE_SIZE), 4)
    assert png_shape(files["evaluation/threshold_table.png"]) == (*pixels(TABLE_SIZE), 4)
    summary = json.loads(files["evaluation/summary.json"])
    proba = model.predict_proba(x[300:])[:, 1]
    assert (
        summary["positive_class"] == "stay"
    )  # classes_[1], scikit-learn's positive and summary["skipped"] == {}
    assert summary["roc_auc"]["stay"] == metrics.roc_auc_score(y[300:] == "stay", proba) > 0.8
    rows = json.loads(files["evaluation/threshold_table.json"])
    csv = pd.read_csv(io.BytesIO(files["evaluation/threshold_table.csv"]))
    assert len(csv) == len(rows) == 19 and np.allclose(csv["f1"], [r["f1"] for r in rows])
    assert rows[9]["threshold"] == 0.5
    assert rows[9]["precision"] == metrics.precision_score(y[300:], model.predict(x[300:]), pos_label="stay")


def test_decision_function_no_scores_and_a_single_class(binary: tuple) -> None:
    from sklearn.linear_model import Perceptron
    from sklearn.svm import LinearSVC

    x, y = binary
    svm = LinearSVC().fit(x[:300], y[:300])
    result, files = evaluation_files(svm, x[300:], y[300:], "classification")
    assert result.score_kind == "decision_function"
    assert "evaluation/calibration_curve.png" not in files and "evaluation/roc_curve.png" in files
    assert result.skipped == {"calibration_curve": "decision_function scores are not probabilities"}
    assert result.roc["stay"].score == metrics.roc_auc_score(
        y[300:] == "stay", svm.decision_function(x[300:])
    )
    assert len(result.thresholds) >= 10  # at the scores' quantiles

    class PredictOnly:
        classes_ = np.array(["churn", "stay"])

        def predict(self, x: object) -> np.ndarray:
            return np.full(len(x), "stay")

    result, files = evaluation_files(PredictOnly(), x, y, "classification")
    assert set(files) == {"evaluation/summary.json"}
    assert (
        "neither predict_proba nor decision_function"
        in json.loads(files["evaluation/summary.json"])["skipped"]["roc_curve"]
    )

    one_class = y == "stay"
    result, files = evaluation_files(Perceptron().fit(x, y), x[one_class], y[one_class], "classification")
    assert set(files) == {"evaluation/summary.json"}
    assert result.skipped["roc_curve"].startswith("the evaluation rows hold a single class (stay)")


def test_multiclass_one_vs_rest_micro_and_macro() -> None:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import label_binarize

    x, y = load_iris(return_X_y=True)
    names = np.array(["setosa", "versicolor", "virginica"])[y]
    rng = np.random.default_rng(0)
    order = rng.permutation(len(y))
    train, test = order[:90], order[90:]
    model = LogisticRegression(max_iter=50, C=0.05).fit(x[train], names[train])
    result, files = evaluation_files(model, x[test], names[test], "classification")
    proba = model.predict_proba(x[test])
    onehot = label_binarize(names[test], classes=model.classes_)
    assert set(result.roc) == {"setosa", "versicolor", "virginica", "micro", "macro"}
    assert result.roc["micro"].score == metrics.roc_auc_score(onehot, proba, average="micro")
    assert result.roc["macro"].score == metrics.roc_auc_score(onehot, proba, average="macro")
    assert result.pr["macro"].score == metrics.average_precision_score(onehot, proba, average="macro")
    assert result.roc["versicolor"].score == metrics.roc_auc_score(onehot[:, 1], proba[:, 1])
    assert "evaluation/threshold_table.csv" not in files and "threshold_table" in result.skipped
    assert png_shape(files["evaluation/roc_curve.png"]) == (*pixels(CURVE_SIZE), 4)
    assert png_shape(files["evaluation/calibration_curve.png"]) == (*pixels(CURVE_SIZE), 4)
    # a class absent from the evaluation rows: skipped with its reason, the others still drawn
    no_virginica = names[test] != "virginica"
    result, _ = evaluation_files(model, x[test][no_virginica], names[test][no_virginica], "classification")
    assert "virginica" not in result.roc and "no positives" in result.skipped["roc_curve[virginica]"]
    assert {"setosa", "versicolor", "micro", "macro"} <= set(result.roc)


def test_regression_residuals() -> None:
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Ridge

    x, y = load_diabetes(return_X_y=True)
    model = Ridge(alpha=0.1).fit(x[:300], y[:300])
    result, files = evaluation_files(model, x[300:], y[300:], "regression", prefix="")
    assert set(files) == {"predicted_vs_actual.png", "residuals.png", "residual_summary.json", "summary.json"}
    numbers = json.loads(files["residual_summary.json"])
    residual = y[300:] - model.predict(x[300:])
    assert numbers["rows"] == len(residual) and numbers["mean"] == pytest.approx(residual.mean())
    assert numbers["rmse"] == pytest.approx(metrics.root_mean_squared_error(y[300:], model.predict(x[300:])))
    assert numbers["r2"] == pytest.approx(metrics.r2_score(y[300:], model.predict(x[300:])))
    assert numbers["q50"] == pytest.approx(np.median(residual))
    assert png_shape(files["predicted_vs_actual.png"]) == (*pixels(CURVE_SIZE), 4)
    assert png_shape(files["residuals.png"])[:2] == (480, 1280)
    assert png_shape(comparison_png({"a": result, "b": result}))[:2] == (480, 1280)
