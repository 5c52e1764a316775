"""
The numbers behind the evaluation plots: ROC and precision-recall curves (binary; one-vs-rest per
class plus micro and macro averages for more classes), calibration (reliability) curves, a threshold
table for binary classifiers, and residuals for regressors. Every curve and score comes from
scikit-learn's metrics (``roc_curve``, ``precision_recall_curve``, ``calibration_curve``,
``roc_auc_score``, ``average_precision_score``, ``precision_recall_fscore_support``,
``confusion_matrix``); :mod:`airflow_provider_mlops.ml.plots` draws them and
:func:`evaluation_files` bundles both into artifact files for MLflow.

A model without ``predict_proba`` is scored with ``decision_function`` (ROC, precision-recall and the
threshold table; no calibration curve: its scores are not probabilities); a model with neither, or a
holdout holding a single class, gets no curves and a reason in ``summary.json`` instead of an error.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

# Decision-function scores have no fixed scale: the threshold table uses their quantiles instead.
PROBABILITY_THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(1, 20))
QUANTILES = tuple(round(0.05 * i, 2) for i in range(1, 20))
MAX_PLOT_POINTS = 5000  # scatter plots of regressors: a seeded sample above this


@dataclass
class Curve:
    x: list[float]
    y: list[float]
    score: float | None = None  # AUC, average precision or Brier score, by curve type


@dataclass
class ClassifierEvaluation:
    score_kind: str | None  # "predict_proba", "decision_function" or None (no scores)
    classes: list[Any]
    positive: Any = None  # binary: the class whose score is thresholded
    rows: int = 0
    roc: dict[str, Curve] = field(default_factory=dict)  # class label (str), "micro", "macro"
    pr: dict[str, Curve] = field(default_factory=dict)
    calibration: dict[str, Curve] = field(default_factory=dict)
    thresholds: list[dict[str, float]] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # artifact -> why it is not there

    def summary(self) -> dict[str, Any]:
        return {
            "task": "classification",
            "rows": self.rows,
            "score_kind": self.score_kind,
            "classes": [_plain(c) for c in self.classes],
            "positive_class": _plain(self.positive),
            "roc_auc": {k: c.score for k, c in self.roc.items()},
            "average_precision": {k: c.score for k, c in self.pr.items()},
            "brier_score": {k: c.score for k, c in self.calibration.items()},
            "skipped": self.skipped,
        }


@dataclass
class RegressorEvaluation:
    actual: list[float]
    predicted: list[float]
    summary_numbers: dict[str, float]
    sampled: bool = False

    def summary(self) -> dict[str, Any]:
        return {"task": "regression", "residuals": self.summary_numbers, "plotted_sample": self.sampled}


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") and callable(value.item) else value


def _floats(values: Any) -> list[float]:
    return [float(v) for v in values]


def model_scores(model: Any, x: Any) -> tuple[str | None, Any]:
    """(kind, scores): ``predict_proba`` columns, else ``decision_function`` values, else (None, None)."""
    if hasattr(model, "predict_proba"):
        return "predict_proba", model.predict_proba(x)
    if hasattr(model, "decision_function"):
        return "decision_function", model.decision_function(x)
    return None, None


def threshold_table(y_true: Any, scores: Any, positive: Any, thresholds: Any) -> list[dict[str, float]]:
    """
    Per threshold (predicted positive when ``score >= threshold``): precision, recall, F1, false
    positive rate, the share of rows predicted positive, and the confusion counts. Precision (and F1)
    is 0 where nothing is predicted positive, as scikit-learn's ``zero_division=0``.
    """
    import numpy as np
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    truth = np.asarray(y_true) == positive
    scores = np.asarray(scores, dtype=float)
    rows = []
    for threshold in thresholds:
        predicted = scores >= threshold
        precision, recall, f1, _ = precision_recall_fscore_support(
            truth, predicted, average="binary", pos_label=True, zero_division=0
        )
        tn, fp, fn, tp = (int(v) for v in confusion_matrix(truth, predicted, labels=[False, True]).ravel())
        rows.append(
            {
                "threshold": float(threshold),
                "precision": float(precision),
                "recall": float(recall),
                "f1": float(f1),
                "fpr": fp / (fp + tn) if fp + tn else 0.0,
                "predicted_positive_share": (tp + fp) / len(truth),
                "tp": tp,
                "fp": fp,
                "tn": tn,
                "fn": fn,
            }
        )
    return rows


def evaluate_classifier(model: Any, x: Any, y: Any) -> ClassifierEvaluation:
    import numpy as np
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import (
        average_precision_score,
        brier_score_loss,
        precision_recall_curve,
        roc_auc_score,
        roc_curve,
    )
    from sklearn.preprocessing import label_binarize

    y = np.asarray(y)
    classes = list(getattr(model, "classes_", np.unique(y)))
    out = ClassifierEvaluation(score_kind=None, classes=classes, rows=len(y))
    curves = ("roc_curve", "precision_recall_curve", "calibration_curve", "threshold_table")
    kind, scores = model_scores(model, x)
    if kind is None:
        reason = f"{type(model).__name__} has neither predict_proba nor decision_function: no scores to rank"
        out.skipped = dict.fromkeys(curves, reason)
        return out
    out.score_kind = kind
    present = np.unique(y)
    if len(present) < 2:
        reason = (
            f"the evaluation rows hold a single class ({_plain(present[0]) if len(present) else 'none'}): "
            "ROC, precision-recall and calibration need both positives and negatives"
        )
        out.skipped = dict.fromkeys(curves, reason)
        return out
    if kind == "decision_function":
        out.skipped["calibration_curve"] = "decision_function scores are not probabilities"
    if len(classes) == 2:
        positive = classes[1]  # scikit-learn's convention: predict_proba[:, 1], decision_function > 0
        out.positive = positive
        score = scores[:, 1] if kind == "predict_proba" else np.asarray(scores).ravel()
        truth = y == positive
        fpr, tpr, _ = roc_curve(truth, score)
        out.roc[str(positive)] = Curve(_floats(fpr), _floats(tpr), float(roc_auc_score(truth, score)))
        precision, recall, _ = precision_recall_curve(truth, score)
        out.pr[str(positive)] = Curve(
            _floats(recall), _floats(precision), float(average_precision_score(truth, score))
        )
        if kind == "predict_proba":
            prob_true, prob_pred = calibration_curve(truth, score, n_bins=10, strategy="uniform")
            out.calibration[str(positive)] = Curve(
                _floats(prob_pred), _floats(prob_true), float(brier_score_loss(truth, score))
            )
            cuts: Any = PROBABILITY_THRESHOLDS
        else:
            cuts = sorted(set(_floats(np.quantile(score, QUANTILES))))
        out.thresholds = threshold_table(y, score, positive, cuts)
        return out

    # more classes: one-vs-rest per class, micro (every row x class pair pooled) and macro (mean of
    # the classes present) averages
    out.skipped["threshold_table"] = "binary classifiers only (more classes have no single threshold)"
    matrix = np.asarray(scores, dtype=float)
    onehot = label_binarize(y, classes=classes)
    kept = [i for i in range(len(classes)) if 0 < onehot[:, i].sum() < len(y)]
    for i, label in enumerate(classes):
        if i not in kept:
            out.skipped[f"roc_curve[{label}]"] = f"class {label!r} has no positives in the evaluation rows"
            continue
        fpr, tpr, _ = roc_curve(onehot[:, i], matrix[:, i])
        out.roc[str(label)] = Curve(
            _floats(fpr), _floats(tpr), float(roc_auc_score(onehot[:, i], matrix[:, i]))
        )
        precision, recall, _ = precision_recall_curve(onehot[:, i], matrix[:, i])
        out.pr[str(label)] = Curve(
            _floats(recall), _floats(precision), float(average_precision_score(onehot[:, i], matrix[:, i]))
        )
        if kind == "predict_proba":
            prob_true, prob_pred = calibration_curve(onehot[:, i], matrix[:, i], n_bins=10)
            out.calibration[str(label)] = Curve(
                _floats(prob_pred),
                _floats(prob_true),
                float(brier_score_loss(onehot[:, i], matrix[:, i])),
            )
    sub_y, sub_s = onehot[:, kept], matrix[:, kept]
    fpr, tpr, _ = roc_curve(sub_y.ravel(), sub_s.ravel())
    out.roc["micro"] = Curve(_floats(fpr), _floats(tpr), float(roc_auc_score(sub_y, sub_s, average="micro")))
    # macro curve: each class's TPR interpolated on a common FPR grid and averaged (the scikit-learn
    # gallery's construction); its score is roc_auc_score(average="macro")
    grid = np.linspace(0.0, 1.0, 201)
    mean_tpr = np.mean(
        [np.interp(grid, out.roc[str(classes[i])].x, out.roc[str(classes[i])].y) for i in kept], axis=0
    )
    out.roc["macro"] = Curve(
        _floats(grid), _floats(mean_tpr), float(roc_auc_score(sub_y, sub_s, average="macro"))
    )
    precision, recall, _ = precision_recall_curve(sub_y.ravel(), sub_s.ravel())
    out.pr["micro"] = Curve(
        _floats(recall), _floats(precision), float(average_precision_score(sub_y, sub_s, average="micro"))
    )
    out.pr["macro"] = Curve([], [], float(average_precision_score(sub_y, sub_s, average="macro")))
    return out


def evaluate_regressor(model: Any, x: Any, y: Any, *, seed: int = 0) -> RegressorEvaluation:
    import numpy as np
    from sklearn.metrics import mean_absolute_error, median_absolute_error, r2_score, root_mean_squared_error

    actual = np.asarray(y, dtype=float)
    predicted = np.asarray(model.predict(x), dtype=float).ravel()
    residual = actual - predicted
    q = np.quantile(residual, [0.05, 0.25, 0.5, 0.75, 0.95])
    numbers = {
        "rows": float(len(actual)),
        "mean": float(residual.mean()),  # bias: > 0 means the model predicts too low
        "std": float(residual.std(ddof=1)) if len(residual) > 1 else 0.0,
        "rmse": float(root_mean_squared_error(actual, predicted)),
        "mae": float(mean_absolute_error(actual, predicted)),
        "median_absolute_error": float(median_absolute_error(actual, predicted)),
        "r2": float(r2_score(actual, predicted)) if len(actual) > 1 else math.nan,
        "max_abs": float(np.abs(residual).max()),
        **{f"q{int(p * 100):02d}": float(v) for p, v in zip((0.05, 0.25, 0.5, 0.75, 0.95), q, strict=True)},
    }
    sampled = len(actual) > MAX_PLOT_POINTS
    if sampled:
        keep = np.random.default_rng(seed).choice(len(actual), MAX_PLOT_POINTS, replace=False)
        actual, predicted = actual[keep], predicted[keep]
    return RegressorEvaluation(_floats(actual), _floats(predicted), numbers, sampled)


def evaluate_model(model: Any, x: Any, y: Any, task: str, *, seed: int = 0) -> Any:
    if task == "regression":
        return evaluate_regressor(model, x, y, seed=seed)
    return evaluate_classifier(model, x, y)


def threshold_csv(rows: list[dict[str, float]]) -> bytes:
    import csv
    import io

    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return buffer.getvalue().encode()


def evaluation_files(
    model: Any,
    x: Any,
    y: Any,
    task: str,
    *,
    label: str = "holdout",
    prefix: str = "evaluation",
    seed: int = 0,
) -> tuple[Any, dict[str, bytes]]:
    """
    (the evaluation, ``{artifact path: bytes}``): the plots as PNG, ``summary.json`` (scores and the
    reasons of any skipped plot), the threshold table as CSV and JSON, or ``residual_summary.json``.
    ``label`` names the data in the titles (``holdout``, ``fresh data``...).
    """
    from airflow_provider_mlops.ml import plots

    result = evaluate_model(model, x, y, task, seed=seed)
    files: dict[str, bytes] = {}
    if isinstance(result, RegressorEvaluation):
        files["predicted_vs_actual.png"] = plots.predicted_vs_actual_png(result, label=label)
        files["residuals.png"] = plots.residuals_png(result, label=label)
        files["residual_summary.json"] = json.dumps(result.summary_numbers, indent=1).encode()
    else:
        if result.roc:
            files["roc_curve.png"] = plots.roc_png(result, label=label)
            files["precision_recall_curve.png"] = plots.pr_png(result, label=label)
        if result.calibration:
            files["calibration_curve.png"] = plots.calibration_png(result, label=label)
        if result.thresholds:
            files["threshold_table.csv"] = threshold_csv(result.thresholds)
            files["threshold_table.json"] = json.dumps(result.thresholds, indent=1).encode()
            files["threshold_table.png"] = plots.threshold_png(result, label=label)
    files["summary.json"] = json.dumps(result.summary(), indent=1, default=str).encode()
    return result, {f"{prefix.rstrip('/')}/{name}" if prefix else name: data for name, data in files.items()}


def write_files(files: dict[str, bytes], folder: Any) -> None:
    """Write ``{relative path: bytes}`` below ``folder`` (then ``log_artifacts(folder)`` keeps the paths)."""
    from pathlib import Path

    for name, data in files.items():
        path = Path(folder) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
