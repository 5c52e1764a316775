"""
The reference profile of the training features: what drift detection compares new data with.

Numeric features keep their decile edges (bins for PSI), the share of rows per bin, the missing
share, mean/std/min/max and a bounded sample (for KS and Wasserstein); categorical features keep
their category frequencies, counts and missing share (the counts make the categorical drift test a
two-sample test: the reference is a sample too). The label keeps its distribution and the holdout
metrics are the accuracy baseline. The profile is small JSON, whatever the size of the data.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    import pandas as pd

# 2: categorical features keep their counts (``counts``, ``other_count``, ``present``).
PROFILE_VERSION = 2
SAMPLE_SIZE = 5_000
MAX_CATEGORIES = 200


def numeric_profile(values: pd.Series, *, bins: int = 10, seed: int = 0) -> dict[str, Any]:
    import numpy as np

    data = values.to_numpy(dtype="float64", na_value=np.nan)
    present = data[~np.isnan(data)]
    missing = float(1 - present.size / max(data.size, 1))
    if present.size == 0:
        return {
            "kind": "numeric",
            "missing_share": missing,
            "count": int(data.size),
            "edges": [],
            "shares": [],
        }
    edges = np.unique(np.quantile(present, np.linspace(0, 1, bins + 1)[1:-1]))
    counts = np.bincount(np.searchsorted(edges, present, side="right"), minlength=edges.size + 1)
    rng = np.random.default_rng(seed)
    sample = present if present.size <= SAMPLE_SIZE else rng.choice(present, SAMPLE_SIZE, replace=False)
    return {
        "kind": "numeric",
        "count": int(data.size),
        "missing_share": missing,
        "edges": edges.tolist(),
        "shares": (counts / present.size).tolist(),
        "mean": float(present.mean()),
        "std": float(present.std()),
        "min": float(present.min()),
        "max": float(present.max()),
        "sample": np.sort(sample).tolist(),
    }


def categorical_profile(values: pd.Series) -> dict[str, Any]:
    present = values.dropna().astype(str)
    missing = float(1 - len(present) / max(len(values), 1))
    counts = present.value_counts()
    n = max(len(present), 1)
    top = counts.iloc[:MAX_CATEGORIES]
    other = int(counts.iloc[MAX_CATEGORIES:].sum())
    return {
        "kind": "categorical",
        "count": len(values),
        "present": len(present),
        "missing_share": missing,
        "frequencies": {str(k): float(v / n) for k, v in top.items()},
        "other_share": float(other / n),
        "counts": {str(k): int(v) for k, v in top.items()},
        "other_count": other,
    }


def build_profile(
    frame: pd.DataFrame,
    *,
    numeric: Sequence[str],
    categorical: Sequence[str],
    target: str | None = None,
    task: str | None = None,
    metrics: Mapping[str, float] | None = None,
    uncertainty: Mapping[str, Mapping[str, float]] | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """The profile of ``frame`` (the training features), JSON-able."""
    features: dict[str, Any] = {}
    for column in numeric:
        features[column] = numeric_profile(frame[column], seed=seed)
    for column in categorical:
        features[column] = categorical_profile(frame[column])
    profile: dict[str, Any] = {"version": PROFILE_VERSION, "rows": len(frame), "features": features}
    if target is not None and target in frame.columns:
        label = frame[target]
        profile["target"] = {
            "name": target,
            "task": task,
            "distribution": categorical_profile(label)
            if task == "classification"
            else numeric_profile(label),
        }
    if metrics:
        profile["baseline_metrics"] = {k: float(v) for k, v in metrics.items()}
    if uncertainty:
        # {metric: {"value", "std", "low", "high", "n"}}: the holdout's bootstrap spread
        profile["baseline_uncertainty"] = {k: dict(v) for k, v in uncertainty.items()}
    return profile
