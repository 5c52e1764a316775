"""
Statistics computed from the row sample: quantile bins, correlations (Pearson, Spearman),
associations (Cramer's V), the correlation ratio and the target's relationship with each feature.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

    from airflow_provider_mlops.ml.eda.accumulators import _Column
    from airflow_provider_mlops.ml.eda.options import ProfileOptions

from airflow_provider_mlops.ml.eda.accumulators import _as_float, _canonical


def _compact(*codes: np.ndarray) -> list[np.ndarray]:
    """Rows where every code is >= 0, each code renumbered 0..k-1."""
    import numpy as np

    valid = np.logical_and.reduce([c >= 0 for c in codes])
    return [np.unique(c[valid], return_inverse=True)[1].astype(np.int64) for c in codes]


def _table(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    import numpy as np

    r, k = int(x.max()) + 1, int(y.max()) + 1
    return np.bincount(x * k + y, minlength=r * k).reshape(r, k).astype(np.float64)


def _factorize(values: Any) -> np.ndarray:
    import numpy as np
    import pandas as pd

    return np.asarray(pd.factorize(pd.Series(values).astype(object), use_na_sentinel=True)[0], dtype=np.int64)


def cramers_v(x: Any, y: Any) -> float | None:
    """Bias-corrected Cramer's V (Bergsma 2013) of two aligned label arrays; None if undefined."""
    return _cramers_v(_factorize(x), _factorize(y))


def _cramers_v(x: np.ndarray, y: np.ndarray) -> float | None:
    x, y = _compact(x, y)
    n = len(x)
    if n < 2:
        return None
    table = _table(x, y)
    r, k = table.shape
    if r < 2 or k < 2:
        return None
    expected = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / n
    chi2 = float(((table - expected) ** 2 / expected).sum())
    phi2c = max(0.0, chi2 / n - (k - 1) * (r - 1) / (n - 1))
    rc = r - (r - 1) ** 2 / (n - 1)
    kc = k - (k - 1) ** 2 / (n - 1)
    denominator = min(kc - 1, rc - 1)
    if denominator <= 0:
        return None
    return float(min(1.0, math.sqrt(phi2c / denominator)))


def correlation_ratio(labels: Any, values: Any) -> float | None:
    """Correlation ratio (eta) of ``values`` grouped by ``labels``; None if undefined."""
    import numpy as np

    return _correlation_ratio(_factorize(labels), np.asarray(values, dtype=np.float64))


def _correlation_ratio(codes: np.ndarray, values: np.ndarray) -> float | None:
    import numpy as np

    valid = (codes >= 0) & np.isfinite(values)
    codes, values = np.unique(codes[valid], return_inverse=True)[1], values[valid]
    if len(values) < 2:
        return None
    mean = values.mean()
    total = float(((values - mean) ** 2).sum())
    if total <= 0:
        return None
    sums = np.bincount(codes, weights=values)
    counts = np.bincount(codes)
    between = float((counts * (sums / counts - mean) ** 2).sum())
    return float(min(1.0, math.sqrt(between / total)))


def predictive_power(labels: Any, classes: Any) -> float | None:
    """
    How much better than the majority class the majority class *per label* predicts ``classes``:
    ``(accuracy - baseline) / (1 - baseline)``, 1 = the label determines the class. The accuracy is
    leave-one-out: each row is predicted from the *other* rows with its label (a label seen once
    predicts the overall majority), so labels held by one or two rows (many quantile bins over few
    values) are not trivially pure.
    """
    return _predictive_power(_factorize(labels), _factorize(classes))


def _predictive_power(x: np.ndarray, y: np.ndarray) -> float | None:
    import numpy as np

    x, y = _compact(x, y)
    n = len(y)
    if n < 2:
        return None
    table = _table(x, y)
    totals = table.sum(0)
    baseline = totals.max() / n
    if baseline >= 1:
        return None
    # each row of cell (label b, class c) left out: its label's other rows hold table[b] - e_c; it is
    # predicted right when its class then has strictly the most rows (a tie shares the credit), or,
    # when no other row has its label, when its class is the overall majority
    k = table.shape[1]
    others = np.where(np.eye(k, dtype=bool)[None, :, :], -np.inf, table[:, None, :])  # [b, c, c']
    rival = others.max(2)  # the most rows of another class in the label, row's class left out
    ties = (others == rival[:, :, None]).sum(2)
    own = table - 1
    credit = np.where(own > rival, 1.0, np.where(own == rival, 1.0 / (ties + 1), 0.0))
    alone = (own == 0) & (rival == 0)
    majority = np.zeros(k)
    majority[totals == totals.max()] = 1.0 / float((totals == totals.max()).sum())
    credit = np.where(alone, majority[None, :], credit)
    accuracy = float((table * credit).sum() / n)
    return float(max(0.0, (accuracy - baseline) / (1 - baseline)))


def _bin_codes(values: np.ndarray, bins: int) -> np.ndarray:
    """Quantile-bin codes of numbers (-1 where not finite)."""
    import numpy as np

    finite = np.isfinite(values)
    codes = np.full(len(values), -1, dtype=np.int64)
    if finite.any():
        edges = np.unique(np.quantile(values[finite], np.linspace(0, 1, bins + 1)))
        codes[finite] = np.searchsorted(edges[1:-1], values[finite], side="right")
    return codes


def _category_codes(array: Any, top: int) -> np.ndarray:
    """Dictionary codes of a sample column (-1 missing); categories past the ``top`` most frequent as one."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    array = _canonical(array)
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    if pa.types.is_fixed_size_binary(array.type):
        array = array.cast(pa.binary())
    if not (
        pa.types.is_string(array.type)
        or pa.types.is_large_string(array.type)
        or pa.types.is_binary(array.type)
        or pa.types.is_large_binary(array.type)
    ):
        array = array.cast(pa.string())
    encoded = pc.dictionary_encode(array)
    codes = np.asarray(pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False), dtype=np.int64)
    valid = codes >= 0
    if valid.any():
        counts = np.bincount(codes[valid])
        if len(counts) > top:
            keep = np.zeros(len(counts), dtype=bool)
            keep[np.argsort(-counts, kind="stable")[:top]] = True
            codes = np.where(valid & ~keep[np.maximum(codes, 0)], len(counts), codes)
    return codes


def _sample_arrays(
    table: pa.Table, columns: dict[str, _Column], options: ProfileOptions
) -> dict[str, tuple[str, np.ndarray]]:
    """Each sample column once: ("num", float64 with NaN for missing / inf) or ("cat", codes)."""
    import numpy as np

    out: dict[str, tuple[str, np.ndarray]] = {}
    for name, column in columns.items():
        if column.error:
            continue
        try:
            if column.kind in ("numeric", "datetime"):
                values = _as_float(_canonical(table[name]), column.kind)
                out[name] = ("num", np.where(np.isfinite(values), values, np.nan))
            elif column.kind in ("categorical", "boolean"):
                out[name] = ("cat", _category_codes(table[name], options.max_association_categories))
        except Exception as exc:  # reported as the column error, never fatal
            column.error = f"{type(exc).__name__}: {exc}"
    return out


def _finite(arrays: dict[str, tuple[str, np.ndarray]], name: str) -> np.ndarray:
    import numpy as np

    kind, values = arrays.get(name, ("other", np.empty(0)))
    return values[np.isfinite(values)] if kind == "num" else np.empty(0)


def _correlations(
    arrays: dict[str, tuple[str, np.ndarray]], columns: dict[str, _Column], options: ProfileOptions
) -> dict[str, Any] | None:
    import numpy as np

    names = [
        c.name
        for c in columns.values()
        if c.kind == "numeric" and c.moments.n > 1 and c.moments.m2 > 0 and c.name in arrays
    ][: options.max_correlation_columns]
    if len(names) < 2:
        return None
    out: dict[str, Any] = {
        "columns": names,
        "method": "on the sample, each pair over the rows where both are finite (Spearman: Pearson of "
        "each column's average ranks among its own finite values)",
    }
    values = np.column_stack([arrays[n][1] for n in names])
    out["pearson"] = _pairwise(values, rank=False)
    out["spearman"] = _pairwise(values, rank=True)
    return out


def _pairwise(values: np.ndarray, *, rank: bool) -> list[list[float | None]]:
    """
    Pairwise-complete correlations in a few matrix products (each pair over the rows where both
    are finite; Spearman ranks each column once over its own finite values).
    """
    import numpy as np

    if rank:
        values = np.column_stack([_ranks(values[:, j]) for j in range(values.shape[1])])
    mask = np.isfinite(values)
    centered = np.where(mask, values - np.nanmean(np.where(mask, values, np.nan), axis=0), 0.0)
    m = mask.astype(np.float64)
    n = m.T @ m
    sx = centered.T @ m  # sx[i, j]: sum of column i over the rows where i and j are both finite
    sxx = (centered * centered).T @ m
    sxy = centered.T @ centered
    with np.errstate(invalid="ignore", divide="ignore"):
        cov = n * sxy - sx * sx.T
        r = cov / np.sqrt((n * sxx - sx * sx) * (n * sxx.T - sx.T * sx.T))
    r[n < 3] = np.nan
    r = np.clip(r, -1.0, 1.0)
    out = [[float(v) if math.isfinite(v) else None for v in row] for row in r]
    for i in range(len(out)):
        if out[i][i] is not None:
            out[i][i] = 1.0
    return out


def _pearson(x: np.ndarray, y: np.ndarray) -> float | None:
    import numpy as np

    valid = np.isfinite(x) & np.isfinite(y)
    if valid.sum() < 3:
        return None
    a, b = x[valid] - x[valid].mean(), y[valid] - y[valid].mean()
    den = math.sqrt(float((a * a).sum()) * float((b * b).sum()))
    return float((a * b).sum() / den) if den > 0 else None


def _ranks(values: np.ndarray) -> np.ndarray:
    """Average ranks of the finite values (NaN stays NaN), like pandas' ``rank()`` (no pandas import)."""
    import numpy as np

    out = np.full(len(values), np.nan)
    finite = np.isfinite(values)
    if finite.any():
        _, inverse, counts = np.unique(values[finite], return_inverse=True, return_counts=True)
        ends = np.cumsum(counts).astype(np.float64)
        out[finite] = ((ends - counts + 1 + ends) / 2)[inverse]
    return out


def _associations(
    arrays: dict[str, tuple[str, np.ndarray]],
    columns: dict[str, _Column],
    options: ProfileOptions,
    skipped: dict[str, str],
) -> dict[str, Any] | None:
    names = [
        c.name
        for c in columns.values()
        if c.kind in ("categorical", "boolean") and c.name not in skipped and c.name in arrays
    ][: options.max_correlation_columns]
    if len(names) < 2:
        return None
    matrix: list[list[float | None]] = [[None] * len(names) for _ in names]
    for i, a in enumerate(names):
        matrix[i][i] = 1.0
        for j in range(i + 1, len(names)):
            matrix[i][j] = matrix[j][i] = _cramers_v(arrays[a][1], arrays[names[j]][1])
    return {
        "columns": names,
        "cramers_v": matrix,
        "method": "bias-corrected Cramer's V (Bergsma 2013) on the sample, rows with both values, "
        f"top {options.max_association_categories} categories (rest grouped)",
        "skipped": {n: r for n, r in skipped.items() if columns[n].kind in ("categorical", "boolean")},
    }


def _target_relations(
    arrays: dict[str, tuple[str, np.ndarray]],
    columns: dict[str, _Column],
    target: str,
    options: ProfileOptions,
    skipped: dict[str, str],
) -> dict[str, Any]:
    import numpy as np

    tcol = columns[target]
    tkind, tvalues = arrays.get(target, ("other", np.empty(0)))
    categorical_target = tkind == "cat" or (
        tcol.kind == "numeric" and tcol.distinct.count() <= 20 and _integral(tvalues)
    )
    if tkind == "num" and categorical_target:
        classes = np.where(np.isfinite(tvalues), tvalues, np.nan)
        tcodes = np.full(len(classes), -1, dtype=np.int64)
        finite = np.isfinite(classes)
        tcodes[finite] = np.unique(classes[finite], return_inverse=True)[1]
    else:
        tcodes = tvalues if tkind == "cat" else np.empty(0, dtype=np.int64)
    out: dict[str, Any] = {
        "target": target,
        "kind": "categorical" if categorical_target else "numeric",
        "features": [],
    }
    for name in columns:
        if name == target or name not in arrays:
            continue
        if name in skipped:
            out["features"].append({"feature": name, "skipped": skipped[name]})
            continue
        kind, values = arrays[name]
        if categorical_target:
            both = (tcodes >= 0) & (np.isfinite(values) if kind == "num" else values >= 0)
        else:
            both = np.isfinite(tvalues) & (np.isfinite(values) if kind == "num" else values >= 0)
        entry: dict[str, Any] = {"feature": name, "rows": int(both.sum())}
        if entry["rows"] < 3:
            entry["skipped"] = "fewer than 3 rows with both values"
            out["features"].append(entry)
            continue
        if categorical_target:
            codes = _bin_codes(values, options.target_bins) if kind == "num" else values
            entry["cramers_v"] = _cramers_v(codes, tcodes)
            entry["predictive_power"] = _predictive_power(codes, tcodes)
            if kind == "num":
                entry["correlation_ratio"] = _correlation_ratio(tcodes, values)
            entry["score"] = entry["predictive_power"]
            entry["method"] = (
                "predictive power of the feature's "
                + (f"{options.target_bins} quantile bins" if kind == "num" else "categories")
                + " (majority class per bin vs overall, leave-one-out)"
            )
        elif kind == "num":
            entry["pearson"] = _pearson(values, tvalues)
            entry["spearman"] = _pearson(
                _ranks(np.where(both, values, np.nan)), _ranks(np.where(both, tvalues, np.nan))
            )
            scores = [abs(v) for v in (entry["pearson"], entry["spearman"]) if v is not None]
            entry["score"] = max(scores) if scores else None
            entry["method"] = "max(|Pearson|, |Spearman|)"
        else:
            entry["correlation_ratio"] = _correlation_ratio(values, tvalues)
            entry["score"] = entry["correlation_ratio"]
            entry["method"] = "correlation ratio (eta) of the target by category"
        out["features"].append(entry)
    out["features"].sort(key=lambda e: -(e.get("score") if e.get("score") is not None else -1.0))
    return out


def _integral(values: Any) -> bool:
    import numpy as np

    numbers = np.asarray(values, dtype=np.float64)
    numbers = numbers[np.isfinite(numbers)]
    return bool(len(numbers)) and bool(np.all(numbers == np.round(numbers)))
