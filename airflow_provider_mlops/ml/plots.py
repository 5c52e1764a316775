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
    model: Any, x: Any, y: Any, *, seed: int = 0, max_rows: int = 2000
) -> dict[str, float]:
    """Mean drop in score when each input column is shuffled (model-agnostic, on the holdout)."""
    from sklearn.inspection import permutation_importance as sk_permutation_importance

    if len(x) > max_rows:
        x, y = x.sample(max_rows, random_state=seed), y.loc[x.sample(max_rows, random_state=seed).index]
    result = sk_permutation_importance(model, x, y, n_repeats=3, random_state=seed, n_jobs=1)
    return {str(c): float(v) for c, v in zip(x.columns, result.importances_mean, strict=True)}


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
