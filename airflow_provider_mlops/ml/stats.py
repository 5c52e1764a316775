"""
Decisions with their uncertainty: bootstrap intervals of a model metric, accuracy decay judged
against a baseline that has its own spread, and paired tests for promotion (the candidate and the
champion scored on the same rows).

Metrics are computed from predictions (labels, and probabilities for ROC AUC / log loss), so a model
is called once and the rows are resampled, not the model. No Airflow and no MLflow here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy as np

# Metrics where a smaller value is better.
LOWER_IS_BETTER = frozenset({"rmse", "mae", "log_loss"})
PAIRED_TESTS = ("bootstrap", "mcnemar")


@dataclass
class Predictions:
    """What a model said about some rows: enough to compute any metric on any resample of them."""

    y: np.ndarray
    predicted: np.ndarray
    task: str
    proba: np.ndarray | None = None
    labels: list[Any] | None = None
    # the F1 averaging of the full sample: a resample that loses a class must not change it
    f1_average: str = "weighted"

    @property
    def rows(self) -> int:
        return len(self.y)

    def take(self, index: np.ndarray) -> Predictions:
        return Predictions(
            self.y[index],
            self.predicted[index],
            self.task,
            None if self.proba is None else self.proba[index],
            self.labels,
            self.f1_average,
        )


def f1_average(y: Any) -> str:
    """
    How F1 is averaged: ``binary`` (the F1 of class 1) when the labels are 0/1, otherwise
    ``weighted`` (the per-class F1 averaged with each class's share of the true labels): for a
    multi-class target, and for a two-class target whose labels are not 0/1 (e.g. "yes"/"no").
    """
    import numpy as np

    classes = np.unique(np.asarray(y))
    return "binary" if len(classes) <= 2 and set(classes.tolist()) <= {0, 1} else "weighted"


def predictions(model: Any, x: Any, y: Any, task: str) -> Predictions:
    import numpy as np

    y_array = np.asarray(y)
    predicted = np.asarray(model.predict(x))
    proba = labels = None
    if task == "classification" and hasattr(model, "predict_proba"):
        proba = np.asarray(model.predict_proba(x))
        labels = list(getattr(model, "classes_", np.unique(y_array)))
    average = f1_average(y_array) if task == "classification" else "weighted"
    return Predictions(y_array, predicted, task, proba, labels, average)


def _f1(y: np.ndarray, predicted: np.ndarray, average: str, labels: list[Any] | None) -> np.ndarray:
    """F1 per row of ``y`` / ``predicted`` (2-D: one resample a row), as scikit-learn averages it."""
    import numpy as np

    def per_class(c: Any) -> tuple[np.ndarray, np.ndarray]:
        true, said = y == c, predicted == c
        tp = np.sum(true & said, axis=1)
        denominator = true.sum(axis=1) + said.sum(axis=1)
        f1 = np.divide(2.0 * tp, denominator, out=np.zeros(len(y)), where=denominator > 0)
        return f1, true.sum(axis=1)

    if average == "binary":
        return per_class(1)[0]
    classes = np.unique(np.concatenate([np.unique(y), np.unique(predicted)]))
    total = np.zeros(len(y))
    for c in classes:
        f1, support = per_class(c)
        total += f1 * support
    return total / y.shape[1]


def metric_value(metric: str, p: Predictions) -> float:
    """One metric on ``p`` (NaN when it is undefined there, e.g. ROC AUC with one class present)."""
    import numpy as np
    from sklearn import metrics

    if metric == "accuracy":
        return float(np.mean(p.y == p.predicted))
    if metric == "rmse":
        return float(np.sqrt(np.mean((p.y.astype(float) - p.predicted.astype(float)) ** 2)))
    if metric == "mae":
        return float(np.mean(np.abs(p.y.astype(float) - p.predicted.astype(float))))
    if metric == "r2":
        return float(metrics.r2_score(p.y, p.predicted))
    if metric == "f1":
        return float(_f1(p.y[None, :], p.predicted[None, :], p.f1_average, p.labels)[0])
    if metric in ("roc_auc", "log_loss"):
        if p.proba is None or p.labels is None:
            raise ValueError(f"Metric {metric!r} needs predict_proba")
        if metric == "log_loss":
            return float(metrics.log_loss(p.y, p.proba, labels=p.labels))
        if len(np.unique(p.y)) < 2:
            return float("nan")
        try:
            if len(p.labels) == 2:
                return float(metrics.roc_auc_score(p.y, p.proba[:, 1]))
            return float(metrics.roc_auc_score(p.y, p.proba, multi_class="ovr", labels=p.labels))
        except ValueError:
            return float("nan")
    raise ValueError(f"Unknown metric {metric!r}")


def _is_binary_auc(p: Predictions) -> bool:
    """Two classes with probabilities, and no label outside them."""
    import numpy as np

    if p.proba is None or p.labels is None or len(p.labels) != 2 or np.ndim(p.proba) != 2:
        return False
    return set(np.unique(p.y).tolist()) <= set(np.asarray(p.labels).tolist())


def _binary_auc_resamples(
    p: Predictions, rng: Any, n_boot: int, *, chunk_cells: int = 4_000_000
) -> np.ndarray | None:
    """
    Binary ROC AUC on ``n_boot`` resamples at once, or None when ``p`` is not a binary case this
    covers (the caller then loops over scikit-learn's ``roc_auc_score``).

    The AUC of a resample is the Mann-Whitney statistic with each row weighted by how often the
    resample drew it (ties count one half): what ``roc_auc_score`` returns for those rows, to
    rounding (the test compares both on resamples). The resamples are drawn as ``rng.integers(0, n,
    (n_boot, n))`` like the accuracy and F1 paths, in chunks of at most ``chunk_cells`` draws. One
    call of ``roc_auc_score`` costs ~2 ms; 1,000 resamples of 2,500 rows take ~0.1 s here.
    """
    import numpy as np

    if not _is_binary_auc(p) or p.proba is None or p.labels is None:
        return None
    # roc_auc_score's positive class is the greater label present; with both present that is
    # labels[1] (classes_ are sorted), the column the caller scores with.
    positive = np.asarray(p.y == p.labels[1])
    n = p.rows
    order = np.argsort(p.proba[:, 1], kind="stable")
    score = np.asarray(p.proba)[order, 1]
    positive = positive[order]
    starts = np.flatnonzero(np.r_[True, score[1:] != score[:-1]])  # groups of tied scores
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    out = []
    step = max(1, chunk_cells // max(n, 1))
    for first in range(0, n_boot, step):
        size = min(step, n_boot - first)
        draws = rank[rng.integers(0, n, (size, n))]
        counts = np.bincount((np.arange(size)[:, None] * n + draws).ravel(), minlength=size * n)
        counts = counts.reshape(size, n).astype("float64")
        pos = np.add.reduceat(counts * positive, starts, axis=1)
        neg = np.add.reduceat(counts * ~positive, starts, axis=1)
        below = np.cumsum(neg, axis=1) - neg
        u = (pos * (below + 0.5 * neg)).sum(axis=1)
        pairs = pos.sum(axis=1) * neg.sum(axis=1)
        out.append(np.divide(u, pairs, out=np.full(size, np.nan), where=pairs > 0))
    return np.concatenate(out) if out else np.empty(0)


def _log_loss_resamples(
    p: Predictions, rng: Any, n_boot: int, *, chunk_cells: int = 4_000_000
) -> np.ndarray | None:
    """
    Log loss on ``n_boot`` resamples at once (the mean of per-row losses, clipped as scikit-learn
    clips), or None when ``p`` is a case this does not cover (the caller loops over ``log_loss``).
    """
    import numpy as np

    if p.proba is None or p.labels is None or np.ndim(p.proba) != 2 or np.shape(p.proba)[1] != len(p.labels):
        return None
    labels = np.asarray(p.labels)
    try:
        if len(labels) < 2 or not bool(np.all(labels[:-1] < labels[1:])):  # log_loss orders labels sorted
            return None
        column = np.searchsorted(labels, p.y)
    except TypeError:
        return None
    if np.any(column >= len(labels)) or not bool(np.all(labels[np.minimum(column, len(labels) - 1)] == p.y)):
        return None  # a label the model does not know: log_loss raises, the caller says so
    proba = np.asarray(p.proba)
    if not np.issubdtype(proba.dtype, np.floating):
        proba = proba.astype("float64")
    eps = np.finfo(proba.dtype).eps
    n = p.rows
    loss = -np.log(np.clip(proba[np.arange(n), column], eps, 1 - eps))
    step = max(1, chunk_cells // max(n, 1))
    parts = [
        loss[rng.integers(0, n, (min(step, n_boot - first), n))].mean(axis=1)
        for first in range(0, n_boot, step)
    ]
    return np.concatenate(parts) if parts else np.empty(0)


def bootstrap(metric: str, p: Predictions, *, n_boot: int = 1000, seed: int = 0) -> np.ndarray:
    """The metric on ``n_boot`` resamples (with replacement) of the rows; undefined ones dropped."""
    import numpy as np

    rng = np.random.default_rng(seed)
    n = p.rows
    if metric == "accuracy":  # vectorized: the common case costs ~1 ms for 1,000 resamples of 1,000 rows
        correct = (p.y == p.predicted).astype("float64")
        return correct[rng.integers(0, n, (n_boot, n))].mean(axis=1)
    if metric == "f1":  # vectorized too: scikit-learn's f1_score costs ~3 ms a call
        index = rng.integers(0, n, (n_boot, n))
        return _f1(p.y[index], p.predicted[index], p.f1_average, p.labels)
    if metric == "roc_auc":  # vectorized for a binary target (the common case)
        auc = _binary_auc_resamples(p, rng, n_boot)
        if auc is not None:
            return auc[~np.isnan(auc)]
    if metric == "log_loss":
        loss = _log_loss_resamples(p, rng, n_boot)
        if loss is not None:
            return loss
    values = np.array([metric_value(metric, p.take(rng.integers(0, n, n))) for _ in range(n_boot)])
    return values[~np.isnan(values)]


def uncertainty(metric: str, p: Predictions, *, n_boot: int = 200, seed: int = 0) -> dict[str, float]:
    """Point value, bootstrap standard error and 95% percentile interval of one metric."""
    import numpy as np

    values = bootstrap(metric, p, n_boot=n_boot, seed=seed)
    point = metric_value(metric, p)
    if values.size < 2:
        return {"value": point, "std": float("nan"), "low": float("nan"), "high": float("nan"), "n": p.rows}
    low, high = np.percentile(values, [2.5, 97.5])
    return {
        "value": point,
        "std": float(values.std(ddof=1)),
        "low": float(low),
        "high": float(high),
        "n": p.rows,
    }


def _normal_sf(z: float) -> float:
    return 0.5 * math.erfc(z / math.sqrt(2))


# The champion's first checked days (rows it never trained on) that make up its served reference.
SERVED_DAYS = 3
# The checked days pooled into the current metric: the newest and the day before it.
POOLED_DAYS = 2
# The checked days kept for that (a rerun of one of them within this many days pools the same).
KEPT_DAYS = 14


def _usable(entry: Mapping[str, Any]) -> bool:
    value, std = entry.get("value"), entry.get("std")
    return (
        isinstance(value, int | float)
        and isinstance(std, int | float)
        and not math.isnan(value)
        and not math.isnan(std)
        and std > 0
        and bool(entry.get("rows"))
    )


def _entries(record: Mapping[str, Any] | None, key: str, metric: str) -> list[dict[str, Any]]:
    if not record or record.get("metric") != metric:
        return []
    kept = [dict(d) for d in record.get(key) or [] if isinstance(d, Mapping) and _usable(d)]
    return sorted(kept, key=lambda d: str(d.get("day")))


def served_reference(
    record: Mapping[str, Any] | None, *, metric: str, before: str | None = None
) -> list[dict[str, Any]]:
    """
    The served days of ``record`` (:func:`served_record`) that are the baseline of a check of day
    ``before``: its first :data:`SERVED_DAYS` days older than ``before`` (a rerun of a day judges
    against the same days as its first run), none when the record is of another metric.
    """
    days = [d for d in _entries(record, "days", metric) if before is None or str(d["day"]) < str(before)]
    return days[:SERVED_DAYS]


def _date(value: Any) -> Any:
    import datetime as dt

    try:
        return dt.date.fromisoformat(str(value)[:10])
    except ValueError:
        return None


def recent_days(record: Mapping[str, Any] | None, *, metric: str, before: str) -> list[dict[str, Any]]:
    """
    The checked days pooled with a check of day ``before`` into its current metric: those of the
    :data:`POOLED_DAYS` - 1 days just before it that were checked (a day further back, or days that
    are not dates, are not pooled).
    """
    today = _date(before)
    if today is None:
        return []
    out = []
    for entry in _entries(record, "recent", metric):
        day = _date(entry["day"])
        if day is not None and 0 < (today - day).days < POOLED_DAYS:
            out.append(entry)
    return out


def served_record(
    record: Mapping[str, Any] | None,
    *,
    metric: str,
    day: str,
    verdict: Mapping[str, Any],
    drift: bool,
) -> dict[str, Any] | None:
    """
    The champion's served record after the check of ``day``, or None when it does not change.

    ``days``, the served reference: a checked day joins it while it holds fewer than
    :data:`SERVED_DAYS` days older than ``day``, unless the check found drift or decay (a drifted
    day is not what the model serves normally) or a newer day was checked before it (a backfill);
    then the reference is frozen. ``recent``: the
    checked days of the newest :data:`KEPT_DAYS`, the day before a check is pooled into its current
    metric. A rerun of ``day`` replaces that day's entries and judges against the same days. ``verdict`` is
    :func:`judge_decay`'s answer (``current``, ``current_std``, ``rows``).
    """
    entry: dict[str, Any] = {
        "day": str(day),
        "value": verdict.get("current"),
        "std": verdict.get("current_std"),
        "rows": verdict.get("rows"),
    }
    usable = _usable(entry)
    if usable:
        entry.update(value=float(entry["value"]), std=float(entry["std"]), rows=int(entry["rows"]))
    reference = served_reference(record, metric=metric, before=day)
    served = _entries(record, "days", metric)
    later = [d for d in served if str(d["day"]) > str(day)]
    rerun = any(str(d["day"]) == str(day) for d in served)
    checked_later = any(str(d["day"]) > str(day) for d in [*served, *_entries(record, "recent", metric)])
    # a day older than one already checked (a backfill, an old run cleared) does not join: the
    # reference is the champion's first days in service, an older day may hold rows it was trained
    # on, and a later day's rerun must judge against the days its first run did
    joins = usable and not drift and len(reference) < SERVED_DAYS and (rerun or not checked_later)
    days = (reference + ([entry] if joins else []) + later)[:SERVED_DAYS]
    recent = [d for d in _entries(record, "recent", metric) if str(d["day"]) != str(day)]
    recent = sorted(recent + ([entry] if usable else []), key=lambda d: str(d["day"]))
    newest = _date(recent[-1]["day"]) if recent else None
    needed = recent_days(record, metric=metric, before=day)  # what a rerun of ``day`` pools again
    recent = [
        d
        for d in recent
        if d in needed
        or newest is None
        or _date(d["day"]) is None
        or (newest - _date(d["day"])).days < KEPT_DAYS
    ]
    new = {"metric": metric, "days": days, "recent": recent}
    old = {
        "metric": (record or {}).get("metric"),
        "days": list((record or {}).get("days") or []),
        "recent": list((record or {}).get("recent") or []),
    }
    return None if new == old else new


def inverse_variance(parts: Sequence[tuple[float, float, int]]) -> tuple[float, float, int]:
    """(value, standard error, rows) parts pooled, each weighted by the inverse of its variance."""
    weights = [1 / std**2 for _, std, _ in parts]
    value = sum(w * v for w, (v, _, _) in zip(weights, parts, strict=True)) / sum(weights)
    return value, 1 / math.sqrt(sum(weights)), sum(n for _, _, n in parts)


def pooled_baseline(
    baseline: float,
    baseline_std: float | None,
    baseline_rows: int | None,
    served: Sequence[Mapping[str, Any]],
) -> tuple[float, float | None, int | None]:
    """
    The baseline pooled from the training holdout and the served days (value, standard error, rows).

    Each part is weighted by the inverse of its variance. The holdout's spread is at least a served
    day's scaled to the holdout's size (a small holdout that scored high by chance has a small
    bootstrap spread exactly when it is far off, see :func:`judge_decay`); without a known holdout
    spread, the served days alone are the baseline.
    """
    if not served:
        return baseline, baseline_std, baseline_rows
    parts = [(float(d["value"]), float(d["std"]), int(d["rows"])) for d in served]
    if baseline_std is not None and not math.isnan(baseline_std) and baseline_rows:
        scaled = max(s * math.sqrt(n / baseline_rows) for _, s, n in parts)
        parts.append((float(baseline), max(float(baseline_std), scaled), int(baseline_rows)))
    return inverse_variance(parts)


def judge_decay(
    metric: str,
    current: Predictions,
    *,
    baseline: float | None,
    baseline_std: float | None = None,
    baseline_rows: int | None = None,
    served: Sequence[Mapping[str, Any]] = (),
    previous: Sequence[Mapping[str, Any]] = (),
    max_drop: float | None = 0.05,
    floor: float | None = None,
    alpha: float = 0.05,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """
    Has the model's ``metric`` decayed on ``current`` rows, beyond noise?

    The current metric's standard error comes from ``n_boot`` bootstrap resamples of the current
    rows; the baseline's (``baseline_std``, from the training holdout's bootstrap) is added in
    quadrature. Decay against the baseline needs both: the drop is larger than ``max_drop`` *and*
    the one-sided test that the metric fell at all has p < ``alpha``. Decay against ``floor`` needs
    the upper end of the one-sided (1 - ``alpha``) bound of the current metric below the floor.
    Without ``baseline_std`` (profiles written before it was stored) the baseline is taken as exact
    and the report says so.

    ``served``: the champion's first checked days (:func:`served_reference`): rows it never trained
    on, ~200 a day where the holdout of a small training set holds ~30. The baseline is then pooled
    from the holdout and them (:func:`pooled_baseline`); ``baseline_source`` says from what.
    ``previous``: the checked days just before (:func:`recent_days`, metric and standard error of
    each): the drop and its test are then on the current metric pooled with theirs (weighted by
    their inverse variance), so that one bad day alone is less often called decay while a fall
    that persists adds up; ``current`` stays the newest rows' metric, ``pooled_current`` /
    ``pooled_days`` say what was judged.

    Returns ``metric, current, current_std, baseline, baseline_source, drop, drop_low, drop_high, p_value, current_low,
    current_high, rows, decayed, reason, confidence``.
    """
    from statistics import NormalDist

    import numpy as np

    lower = metric in LOWER_IS_BETTER
    holdout_rows = baseline_rows
    source = f"training holdout ({holdout_rows} rows)" if holdout_rows else "training holdout"
    if baseline is not None and served:
        baseline, baseline_std, baseline_rows = pooled_baseline(baseline, baseline_std, baseline_rows, served)
        days = ", ".join(str(d["day"]) for d in served)
        source += f" + {len(served)} served day(s) ({sum(int(d['rows']) for d in served)} rows: {days})"
    point = metric_value(metric, current)
    values = bootstrap(metric, current, n_boot=n_boot, seed=seed)
    se_current = float(values.std(ddof=1)) if values.size > 1 else float("nan")
    z = NormalDist().inv_cdf(1 - alpha)
    out: dict[str, Any] = {
        "metric": metric,
        "current": point,
        "current_std": se_current,
        "current_low": float(np.percentile(values, 100 * alpha)) if values.size else float("nan"),
        "current_high": float(np.percentile(values, 100 * (1 - alpha))) if values.size else float("nan"),
        "baseline": baseline,
        "baseline_std": baseline_std,
        "baseline_rows": baseline_rows,
        "baseline_source": source,
        "rows": current.rows,
        "alpha": alpha,
        "drop": None,
        "drop_low": None,
        "drop_high": None,
        "p_value": None,
    }
    judged, se_judged, rows_judged = point, se_current, current.rows
    # a day of the served baseline is not pooled into the current figure too: on both sides of the
    # drop it would cancel out while its spread counts twice (the champion's 2nd-4th checked days)
    in_baseline = {str(d["day"]) for d in served or ()}
    pool = [d for d in previous if _usable(d) and str(d["day"]) not in in_baseline]
    if pool and not math.isnan(point) and not math.isnan(se_current) and se_current > 0:
        parts = [(point, se_current, current.rows)] + [
            (float(d["value"]), float(d["std"]), int(d["rows"])) for d in pool
        ]
        judged, se_judged, rows_judged = inverse_variance(parts)
        out.update(
            pooled_current=judged,
            pooled_std=se_judged,
            pooled_days=[str(d["day"]) for d in pool] + ["current"],
            pooled_rows=rows_judged,
        )
    reasons, notes = [], []
    if baseline is not None and not math.isnan(point):
        drop = (judged - baseline) if lower else (baseline - judged)
        known = baseline_std is not None and not math.isnan(baseline_std)
        se_now = se_judged if not math.isnan(se_judged) else 0.0
        se_base = float(baseline_std) if known else 0.0  # type: ignore[arg-type]
        if known and baseline_rows:
            # Under "no decay" the baseline rows are like the current ones: their metric's spread is
            # at least the current one's scaled to the holdout's size. A holdout that scored high by
            # chance has a small bootstrap spread exactly when its drop looks large; taking the larger
            # of the two keeps the false alarms near alpha (measured: 7% -> 5% on 100 splits, below).
            se_base = max(se_base, se_now * math.sqrt(rows_judged / baseline_rows))
        se = math.sqrt(se_now**2 + se_base**2)
        p_value = _normal_sf(drop / se) if se > 0 else (0.0 if drop > 0 else 1.0)
        out.update(drop=drop, drop_low=drop - z * se, drop_high=drop + z * se, p_value=p_value)
        if not known:
            notes.append("baseline spread unknown (profile without it): baseline taken as exact")
        if max_drop is not None:
            significant = p_value < alpha
            if drop > max_drop and significant:
                over = f" over {len(pool) + 1} checked days ({rows_judged} rows)" if pool else ""
                reasons.append(
                    f"{metric} fell {drop:.4f} below the baseline {baseline:.4f}{over} (more than "
                    f"{max_drop}; p = {p_value:.2g} < {alpha})"
                )
            elif drop > max_drop:
                notes.append(
                    f"{metric} is {drop:.4f} below the baseline, more than {max_drop}, but p = "
                    f"{p_value:.2g} on {rows_judged} rows: could be noise, not called decay"
                )
    if floor is not None and not math.isnan(point) and not math.isnan(se_current):
        bound = point - z * se_current if lower else point + z * se_current
        if (bound > floor) if lower else (bound < floor):
            reasons.append(
                f"{metric} {point:.4f} beyond the floor {floor} (one-sided {1 - alpha:.0%} bound {bound:.4f})"
            )
        elif (point > floor) if lower else (point < floor):
            notes.append(
                f"{metric} {point:.4f} is beyond the floor {floor} but its {1 - alpha:.0%} bound {bound:.4f} "
                "is not: could be noise, not called decay"
            )
    out["decayed"] = bool(reasons)
    out["reason"] = "; ".join(reasons) or "within limits"
    if out["drop"] is not None:
        spread = (
            f" +/- {baseline_std:.4f}" if baseline_std is not None and not math.isnan(baseline_std) else ""
        ) + (f" ({source})" if served else "")
        shown = (
            f"{metric} {point:.4f}, pooled with {', '.join(str(d['day']) for d in pool)}: {judged:.4f}"
            if "pooled_current" in out
            else f"{metric} {point:.4f}"
        )
        out["confidence"] = (
            f"{shown} vs baseline {baseline:.4f}{spread}: change {-out['drop']:+.4f}"
            if not lower
            else f"{shown} vs baseline {baseline:.4f}{spread}: change {out['drop']:+.4f}"
        ) + (
            f", {1 - 2 * alpha:.0%} interval of the worsening [{out['drop_low']:+.4f}, {out['drop_high']:+.4f}], "
            f"one-sided p of a fall {out['p_value']:.2g} ({rows_judged} current rows)"
        )
    else:
        out["confidence"] = (
            f"{metric} {point:.4f}, {1 - 2 * alpha:.0%} interval [{out['current_low']:.4f}, "
            f"{out['current_high']:.4f}] ({current.rows} current rows)"
        )
    if notes:
        out["confidence"] += "; " + "; ".join(notes)
    return out


def paired_test(
    metric: str,
    candidate: Predictions,
    champion: Predictions,
    *,
    method: str = "bootstrap",
    min_delta: float = 0.0,
    n_boot: int = 2000,
    seed: int = 0,
) -> dict[str, Any]:
    """
    Is the candidate better than the champion by more than ``min_delta``, on the same rows?

    ``bootstrap``: the rows are resampled together and the metric difference computed on each
    resample; the p-value is the share of resamples where the gain is not above ``min_delta``, with
    a 95% percentile interval of the gain. ``mcnemar`` (accuracy only): the exact one-sided binomial
    test on the rows where exactly one of the two models is right.
    """
    import numpy as np

    if method not in PAIRED_TESTS:
        raise ValueError(f"paired test must be one of {PAIRED_TESTS}, got {method!r}")
    if candidate.rows != champion.rows:
        raise ValueError("the paired test needs both models scored on the same rows")
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
    gain = sign * (metric_value(metric, candidate) - metric_value(metric, champion))
    if method == "mcnemar":
        from scipy.stats import binomtest

        if metric != "accuracy":
            raise ValueError("the McNemar test compares accuracies: use metric='accuracy' or 'bootstrap'")
        right_c = candidate.predicted == candidate.y
        right_k = champion.predicted == champion.y
        wins, losses = int(np.sum(right_c & ~right_k)), int(np.sum(~right_c & right_k))
        p_value = (
            float(binomtest(wins, wins + losses, 0.5, alternative="greater").pvalue) if wins + losses else 1.0
        )
        return {
            "method": "mcnemar",
            "gain": gain,
            "p_value": p_value,
            "wins": wins,
            "losses": losses,
            "rows": candidate.rows,
        }
    rng = np.random.default_rng(seed)
    n = candidate.rows
    if metric == "accuracy":  # vectorized
        difference = (candidate.predicted == candidate.y).astype("float64") - (
            champion.predicted == champion.y
        ).astype("float64")
        gains: Any = difference[rng.integers(0, n, (n_boot, n))].mean(axis=1)
    elif metric == "roc_auc" and _is_binary_auc(candidate) and _is_binary_auc(champion):
        # vectorized; both models on the same resamples: generators with one seed draw the same rows
        ours = _binary_auc_resamples(candidate, np.random.default_rng(seed), n_boot)
        theirs = _binary_auc_resamples(champion, np.random.default_rng(seed), n_boot)
        gains = sign * (np.asarray(ours) - np.asarray(theirs))  # neither is None: both binary
    else:
        gains = [
            sign * (metric_value(metric, candidate.take(i)) - metric_value(metric, champion.take(i)))
            for i in (rng.integers(0, n, n) for _ in range(n_boot))
        ]
    values = np.asarray(gains)
    values = values[~np.isnan(values)]
    low, high = np.percentile(values, [2.5, 97.5]) if values.size else (float("nan"), float("nan"))
    return {
        "method": "bootstrap",
        "gain": gain,
        "p_value": float((1 + np.sum(values <= min_delta)) / (1 + values.size)),
        "gain_low": float(low),
        "gain_high": float(high),
        "gain_se": float(values.std()) if values.size else float("nan"),
        "rows": n,
        "resamples": int(values.size),
    }
