"""Evaluation plots as PNG bytes: confusion matrix and (permutation) feature importance."""

from __future__ import annotations

import io
from typing import Any


def _png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(figure)
    return buffer.getvalue()


def confusion_matrix_png(model: Any, x: Any, y: Any) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    from sklearn.metrics import ConfusionMatrixDisplay

    display = ConfusionMatrixDisplay.from_estimator(model, x, y, cmap="Blues", colorbar=False)
    display.ax_.set_title("Confusion matrix (holdout)")
    return _png(display.figure_)


def permutation_importance(
    model: Any,
    x: Any,
    y: Any,
    *,
    seed: int = 0,
    max_rows: int = 2000,
    n_repeats: int = 3,
    max_cells: int = 4_000_000,
) -> dict[str, float]:
    """
    Mean drop in score when each input column is shuffled (model-agnostic, on the holdout): the
    estimator's own score, accuracy for a classifier and R2 for a regressor, as scikit-learn's
    ``permutation_importance`` with its default scoring.

    Every (column, repeat) shuffle is scored, but the shuffled copies of the holdout are stacked and
    predicted together, in blocks of at most ``max_cells`` values: a wide table costs a few
    ``predict`` calls instead of one per column and repeat (1,000 columns x 3 repeats were 3,000
    Pipeline calls, ~130 s on 12 holdout rows, before). A model that is neither a classifier nor a
    regressor goes through scikit-learn's function.
    """
    import numpy as np
    import pandas as pd
    from sklearn.base import is_classifier, is_regressor
    from sklearn.metrics import accuracy_score, r2_score

    if len(x) > max_rows:
        index = x.sample(max_rows, random_state=seed).index
        x, y = x.loc[index], y.loc[index]
    columns = list(x.columns)
    if not (is_classifier(model) or is_regressor(model)):
        from sklearn.inspection import permutation_importance as sk_permutation_importance

        result = sk_permutation_importance(model, x, y, n_repeats=n_repeats, random_state=seed, n_jobs=1)
        return {str(c): float(v) for c, v in zip(columns, result.importances_mean, strict=True)}
    rows = len(x)
    if rows == 0 or not columns:
        return {}
    score = accuracy_score if is_classifier(model) else r2_score
    truth = np.asarray(y)
    baseline = score(truth, model.predict(x))
    rng = np.random.default_rng(seed)
    shuffles = [(column, repeat) for column in columns for repeat in range(n_repeats)]
    per_block = max(1, max_cells // (rows * len(columns)))
    drops: dict[str, list[float]] = {str(c): [] for c in columns}
    for start in range(0, len(shuffles), per_block):
        block = shuffles[start : start + per_block]
        copies = []
        for column, _ in block:
            shuffled = x.copy()
            shuffled[column] = x[column].array[rng.permutation(rows)]
            copies.append(shuffled)
        predicted = np.asarray(model.predict(pd.concat(copies, ignore_index=True)))
        for i, (column, _) in enumerate(block):
            drops[str(column)].append(baseline - score(truth, predicted[i * rows : (i + 1) * rows]))
    return {column: float(np.mean(values)) for column, values in drops.items()}


def importance_png(importance: dict[str, float], top: int = 20) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    items = sorted(importance.items(), key=lambda kv: kv[1])[-top:]
    figure, axis = plt.subplots(figsize=(6, 0.35 * len(items) + 1))
    axis.barh([k for k, _ in items], [v for _, v in items], color="#4c72b0")
    axis.set_xlabel("mean score drop when shuffled")
    axis.set_title("Permutation feature importance (holdout)")
    return _png(figure)


def leaderboard_png(board: Any) -> bytes:
    """Candidates' mean CV score with the spread over the folds (one standard deviation) as error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(board)[::-1]  # best at the top
    figure, axis = plt.subplots(figsize=(6, 0.45 * len(rows) + 1.2))
    axis.barh(
        [r["candidate"] for r in rows],
        [r["mean_cv_score"] for r in rows],
        xerr=[r["std_cv_score"] for r in rows],
        color=["#55a868" if r["rank"] == 1 else "#4c72b0" for r in rows],
        capsize=4,
    )
    scoring = rows[0]["scoring"] if rows else ""
    axis.set_xlabel(f"mean CV {scoring} (error bar: std over the same folds)")
    axis.set_title("Candidate leaderboard")
    return _png(figure)


# --------------------------------------------------------------------------------------------------
# evaluation curves (numbers from airflow_provider_mlops.ml.evaluation)
# --------------------------------------------------------------------------------------------------
DPI = 100
CURVE_SIZE = (6.4, 4.8)  # inches: 640 x 480 px at DPI (saved without a tight bounding box)
TABLE_SIZE = (10.0, 6.4)  # 1000 x 640 px
COMPARISON_SIZE = (12.8, 4.8)  # 1280 x 480 px


def _figure(size: tuple[float, float], ncols: int = 1) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(1, ncols, figsize=size, dpi=DPI, layout="constrained")


def _fixed_png(figure: Any) -> bytes:
    """PNG at the figure's exact pixel size (figsize x DPI)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    import matplotlib.pyplot as plt

    plt.close(figure)
    return buffer.getvalue()


def _score(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _averaged_title(name: str, score_name: str, curves: dict[str, Any], binary: bool) -> str:
    if binary:
        curve = next(iter(curves.values()))
        return f"{name}: {score_name} = {_score(curve.score)}"
    parts = [f"{k} {score_name} = {_score(curves[k].score)}" for k in ("micro", "macro") if k in curves]
    return f"{name}, one-vs-rest: " + ", ".join(parts)


def roc_png(result: Any, *, label: str = "holdout") -> bytes:
    figure, axis = _figure(CURVE_SIZE)
    binary = result.positive is not None
    for key, curve in result.roc.items():
        style = {"linestyle": "--", "linewidth": 2} if key in ("micro", "macro") else {"linewidth": 1.5}
        name = f"positive = {key}" if binary else key
        axis.plot(curve.x, curve.y, label=f"{name} (AUC {curve.score:.3f})", **style)
    axis.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1, label="chance")
    axis.set_xlabel("false positive rate")
    axis.set_ylabel("true positive rate")
    axis.set_title(
        f"{_averaged_title('ROC', 'AUC', result.roc, binary)} ({label}, {result.rows} rows)", fontsize=10
    )
    axis.legend(loc="lower right", fontsize=8)
    axis.set_xlim(0, 1)
    axis.set_ylim(0, 1.02)
    return _fixed_png(figure)


def pr_png(result: Any, *, label: str = "holdout") -> bytes:
    figure, axis = _figure(CURVE_SIZE)
    binary = result.positive is not None
    for key, curve in result.pr.items():
        if not curve.x:  # the macro average has a score but no single curve
            continue
        style = {"linestyle": "--", "linewidth": 2} if key == "micro" else {"linewidth": 1.5}
        name = f"positive = {key}" if binary else key
        axis.plot(curve.x, curve.y, drawstyle="steps-post", label=f"{name} (AP {curve.score:.3f})", **style)
    axis.set_xlabel("recall")
    axis.set_ylabel("precision")
    title = _averaged_title("Precision-recall", "AP", result.pr, binary)
    axis.set_title(f"{title} ({label}, {result.rows} rows)", fontsize=10)
    axis.legend(loc="lower left", fontsize=8)
    axis.set_xlim(0, 1)
    axis.set_ylim(0, 1.02)
    return _fixed_png(figure)


def calibration_png(result: Any, *, label: str = "holdout") -> bytes:
    figure, axis = _figure(CURVE_SIZE)
    for key, curve in result.calibration.items():
        name = f"positive = {key}" if result.positive is not None else key
        axis.plot(curve.x, curve.y, marker="o", markersize=3, label=f"{name} (Brier {curve.score:.3f})")
    axis.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1, label="perfectly calibrated")
    axis.set_xlabel("mean predicted probability (10 bins)")
    axis.set_ylabel("observed share of the class")
    axis.set_title(f"Calibration (reliability) curve ({label}, {result.rows} rows)", fontsize=10)
    axis.legend(loc="upper left", fontsize=8)
    axis.set_xlim(0, 1)
    axis.set_ylim(0, 1.02)
    return _fixed_png(figure)


def threshold_png(result: Any, *, label: str = "holdout") -> bytes:
    """The threshold table as curves (left) and as a table of every other row (right)."""
    figure, (curves, table) = _figure(TABLE_SIZE, ncols=2)
    rows = result.thresholds
    xs = [r["threshold"] for r in rows]
    for key in ("precision", "recall", "f1", "fpr", "predicted_positive_share"):
        curves.plot(xs, [r[key] for r in rows], marker=".", label=key.replace("_", " "))
    kind = "probability" if result.score_kind == "predict_proba" else "decision score (quantiles)"
    curves.set_xlabel(f"threshold on the {kind} of class '{result.positive}'")
    curves.set_title(f"Threshold table ({label}, {result.rows} rows)", fontsize=10)
    curves.legend(fontsize=8)
    table.axis("off")
    shown = rows[::2] if len(rows) > 12 else rows
    cells = [
        [
            f"{r['threshold']:.3g}",
            *(f"{r[k]:.3f}" for k in ("precision", "recall", "f1", "fpr")),
            f"{r['predicted_positive_share']:.3f}",
        ]
        for r in shown
    ]
    grid = table.table(
        cellText=cells,
        colLabels=["threshold", "precision", "recall", "F1", "FPR", "pred. pos."],
        loc="center",
    )
    grid.auto_set_font_size(False)
    grid.set_fontsize(8)
    return _fixed_png(figure)


def predicted_vs_actual_png(result: Any, *, label: str = "holdout") -> bytes:
    figure, axis = _figure(CURVE_SIZE)
    axis.scatter(result.actual, result.predicted, s=6, alpha=0.5, color="#4c72b0")
    low = min(min(result.actual), min(result.predicted))
    high = max(max(result.actual), max(result.predicted))
    axis.plot([low, high], [low, high], color="grey", linestyle=":", label="predicted = actual")
    numbers = result.summary_numbers
    axis.set_xlabel("actual")
    axis.set_ylabel("predicted")
    sample = f", {len(result.actual)} plotted" if result.sampled else ""
    axis.set_title(
        f"Predicted vs actual: R2 = {numbers['r2']:.3f}, RMSE = {numbers['rmse']:.4g} "
        f"({label}, {int(numbers['rows'])} rows{sample})",
        fontsize=10,
    )
    axis.legend(loc="upper left", fontsize=8)
    return _fixed_png(figure)


def residuals_png(result: Any, *, label: str = "holdout") -> bytes:
    """Residual (actual - predicted) against the prediction, and their histogram."""
    figure, (scatter, histogram) = _figure(COMPARISON_SIZE, ncols=2)
    residual = [a - p for a, p in zip(result.actual, result.predicted, strict=True)]
    scatter.scatter(result.predicted, residual, s=6, alpha=0.5, color="#4c72b0")
    scatter.axhline(0, color="grey", linestyle=":")
    scatter.set_xlabel("predicted")
    scatter.set_ylabel("residual (actual - predicted)")
    numbers = result.summary_numbers
    scatter.set_title(
        f"Residuals ({label}): mean {numbers['mean']:.4g}, std {numbers['std']:.4g}, MAE {numbers['mae']:.4g}",
        fontsize=10,
    )
    histogram.hist(residual, bins=40, color="#4c72b0")
    histogram.set_xlabel("residual")
    histogram.set_ylabel("rows")
    histogram.set_title(
        f"Residual distribution: 5%-95% [{numbers['q05']:.4g}, {numbers['q95']:.4g}]", fontsize=10
    )
    return _fixed_png(figure)


def comparison_png(results: dict[str, Any], *, label: str = "fresh data") -> bytes:
    """
    Several models on the same rows, overlaid: ROC and precision-recall (the positive class, or the
    micro average) for classifiers; predicted vs actual and the residual distribution for regressors.
    """
    figure, (left, right) = _figure(COMPARISON_SIZE, ncols=2)
    regression = any(hasattr(r, "summary_numbers") for r in results.values())
    for name, result in results.items():
        if regression:
            numbers = result.summary_numbers
            left.scatter(
                result.actual, result.predicted, s=6, alpha=0.4, label=f"{name} (RMSE {numbers['rmse']:.4g})"
            )
            residual = [a - p for a, p in zip(result.actual, result.predicted, strict=True)]
            right.hist(residual, bins=40, alpha=0.5, label=f"{name} (MAE {numbers['mae']:.4g})")
            continue
        key = str(result.positive) if result.positive is not None else "micro"
        if key in result.roc:
            left.plot(result.roc[key].x, result.roc[key].y, label=f"{name} (AUC {result.roc[key].score:.3f})")
        if key in result.pr:
            right.plot(
                result.pr[key].x,
                result.pr[key].y,
                drawstyle="steps-post",
                label=f"{name} (AP {result.pr[key].score:.3f})",
            )
    if regression:
        left.set_xlabel("actual")
        left.set_ylabel("predicted")
        left.set_title(f"Predicted vs actual ({label})", fontsize=10)
        right.set_xlabel("residual (actual - predicted)")
        right.set_title(f"Residuals ({label})", fontsize=10)
    else:
        left.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
        left.set_xlabel("false positive rate")
        left.set_ylabel("true positive rate")
        left.set_title(f"ROC ({label})", fontsize=10)
        right.set_xlabel("recall")
        right.set_ylabel("precision")
        right.set_title(f"Precision-recall ({label})", fontsize=10)
    left.legend(fontsize=8)
    right.legend(fontsize=8)
    return _fixed_png(figure)
