"""
The reference profile of the training features: what drift detection compares new data with.

Numeric features keep their decile edges (bins for PSI), the share of rows per bin, the missing
share, mean/std/min/max and a bounded sample (for KS and Wasserstein); categorical features keep
their category frequencies, counts and missing share (the counts make the categorical drift test a
two-sample test: the reference is a sample too). The label keeps its distribution and the holdout
metrics are the accuracy baseline. The profile is small JSON, whatever the size of the data.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence

    import pandas as pd

# 2: categorical features keep their counts (``counts``, ``other_count``, ``present``).
# 3: every value goes through the canonical encoding (:mod:`airflow_provider_mlops.ml.canonical`)
#    and each feature records its canonical ``type``; older profiles are canonicalised on read.
PROFILE_VERSION = 3
SAMPLE_SIZE = 5_000
MAX_CATEGORIES = 200


def numeric_profile(values: Any, *, bins: int = 10, seed: int = 0, name: str = "") -> dict[str, Any]:
    """
    Decile edges and shares, moments and a sample of a numeric column (pandas, Arrow, numpy),
    read with :func:`~airflow_provider_mlops.ml.canonical.numeric_values`. Infinite values count in
    the outer bins; the edges, moments and the sample are of the finite ones.
    """
    import numpy as np

    from airflow_provider_mlops.ml.canonical import arrow_values, numeric_values, type_name

    array = values if isinstance(values, np.ndarray) else arrow_values(values)
    kind = "float" if isinstance(array, np.ndarray) else type_name(array.type)
    data = numeric_values(array, name=name)
    present = data[~np.isnan(data)]
    finite = present[np.isfinite(present)]
    missing = float(1 - present.size / max(data.size, 1))
    if finite.size == 0:
        return {
            "kind": "numeric",
            "type": kind,
            "missing_share": missing,
            "count": int(data.size),
            "edges": [],
            "shares": [],
        }
    edges = np.unique(np.quantile(finite, np.linspace(0, 1, bins + 1)[1:-1]))
    counts = np.bincount(np.searchsorted(edges, present, side="right"), minlength=edges.size + 1)
    scale = float(np.abs(finite).max()) or 1.0
    rng = np.random.default_rng(seed)
    sample = finite if finite.size <= SAMPLE_SIZE else rng.choice(finite, SAMPLE_SIZE, replace=False)
    return {
        "kind": "numeric",
        "type": kind,
        "count": int(data.size),
        "missing_share": missing,
        "edges": edges.tolist(),
        "shares": (counts / present.size).tolist(),
        # at the values' scale: the mean of values near 1e308 overflows, their scaled mean does not
        "mean": float((finite / scale).mean() * scale),
        "std": float((finite / scale).std() * scale),
        "min": float(finite.min()),
        "max": float(finite.max()),
        "sample": np.sort(sample).tolist(),
    }


def categorical_profile(values: Any) -> dict[str, Any]:
    """Counts and shares of the canonical categories of a column (pandas, Arrow, numpy, list)."""
    from airflow_provider_mlops.ml.canonical import arrow_values, category_counts, type_name

    array = arrow_values(values)
    counted = category_counts(array)
    ranked = sorted(counted.counts.items(), key=lambda item: (-item[1], item[0]))
    n = max(counted.present, 1)
    top = ranked[:MAX_CATEGORIES]
    other = sum(count for _, count in ranked[MAX_CATEGORIES:])
    return {
        "kind": "categorical",
        "type": type_name(array.type),
        "count": counted.total,
        "present": counted.present,
        "missing_share": float(counted.missing / max(counted.total, 1)),
        "frequencies": {k: float(v / n) for k, v in top},
        "other_share": float(other / n),
        "counts": {k: int(v) for k, v in top},
        "other_count": other,
    }


def canonical_profile(profile: Mapping[str, Any]) -> dict[str, Any]:
    """
    ``profile`` with the categories of every categorical feature (and of a categorical target) in
    the canonical encoding. Profiles written before it (version < 3: pandas' ``"True"``,
    ``"3.0"``, ``"2024-01-02 00:00:00"``) are translated with
    :func:`~airflow_provider_mlops.ml.canonical.legacy_categories`, merging categories that meet
    (``"True"`` and ``"true"``); a current profile is returned as it is.
    """
    from airflow_provider_mlops.ml.canonical import legacy_categories

    if int(profile.get("version") or 1) >= PROFILE_VERSION:
        return dict(profile)

    def translate(feature: Mapping[str, Any]) -> dict[str, Any]:
        if feature.get("kind") != "categorical":
            return dict(feature)
        out = dict(feature)
        frequencies = dict(feature.get("frequencies") or {})
        texts = legacy_categories(list(frequencies))
        merged: dict[str, float] = {}
        for key, share in frequencies.items():
            merged[texts[key]] = merged.get(texts[key], 0.0) + float(share)
        out["frequencies"] = merged
        if feature.get("counts") is not None:
            counts: dict[str, int] = {}
            for key, count in feature["counts"].items():
                text = texts.get(key, key)
                counts[text] = counts.get(text, 0) + int(count)
            out["counts"] = counts
        return out

    result = dict(profile)
    result["features"] = {name: translate(f) for name, f in (profile.get("features") or {}).items()}
    target = profile.get("target")
    if target and isinstance(target.get("distribution"), Mapping):
        result["target"] = {**target, "distribution": translate(target["distribution"])}
    return result


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
    """
    The profile of ``frame`` (the training features: pandas or an Arrow table), JSON-able. Every
    column goes through :mod:`airflow_provider_mlops.ml.canonical`, as the current data does.
    """
    features: dict[str, Any] = {}
    for column in numeric:
        features[column] = numeric_profile(frame[column], seed=seed, name=column)
    for column in categorical:
        features[column] = categorical_profile(frame[column])
    profile: dict[str, Any] = {"version": PROFILE_VERSION, "rows": len(frame), "features": features}
    if target is not None and target in _columns(frame):
        label = frame[target]
        profile["target"] = {
            "name": target,
            "task": task,
            "distribution": categorical_profile(label)
            if task == "classification"
            else numeric_profile(label, name=target),
        }
    if metrics:
        profile["baseline_metrics"] = {k: float(v) for k, v in metrics.items()}
    if uncertainty:
        # {metric: {"value", "std", "low", "high", "n"}}: the holdout's bootstrap spread
        profile["baseline_uncertainty"] = {k: dict(v) for k, v in uncertainty.items()}
    return profile


def _columns(frame: Any) -> list[str]:
    names = getattr(frame, "column_names", None)  # an Arrow table
    return list(names) if names is not None else list(frame.columns)
