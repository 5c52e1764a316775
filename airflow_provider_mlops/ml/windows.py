"""
Training windows (issue #26): which rows a retrain learns from, and how much each counts.

A window spec is plain data (TrainModelOperator's ``window``)::

    {"time_column": "day", "days": 28, "since_drift": True, "min_rows": 3000, "half_life": 2}

``time_column``
    the column ordering the rows (dates, timestamps, or ISO text); default the operator's
    ``time_column``. The window ends at its newest value.
``days``
    keep the rows newer than ``days`` before the newest (``days=7`` on a daily column: the seven
    newest days).
``since_drift``
    keep the rows from the first day of the drift onset on
    (:func:`airflow_provider_mlops.ml.onset.read_onset`); with ``days`` too, the later start wins.
    Without a recorded onset the other limits apply (logged).
``min_rows``
    when the limits above keep fewer rows, the window reaches back to the newest ``min_rows`` rows
    (the older rows are the pre-drift world: with ``half_life`` they count for little); when the
    data holds fewer in all, all of them (logged; ``short_of_min_rows`` in the summary).
``half_life``
    in days: each row gets ``sample_weight = 0.5 ** (age / half_life)``, its age counted from the
    newest row, scaled so that the weights average 1. The weight reaches the estimator as
    ``model__sample_weight`` (every search passes it to each fit); the scores comparing
    configurations and the holdout metrics are not weighted.

No Airflow here; pandas is imported inside the functions.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from airflow_provider_mlops.ml.onset import Onset

log = logging.getLogger(__name__)

WINDOW_KEYS = ("time_column", "days", "since_drift", "min_rows", "half_life")


class WindowSpecError(ValueError):
    """The ``window`` spec is malformed."""


def _positive(spec: Mapping[str, Any], key: str, *, integer: bool = False) -> float | None:
    value = spec.get(key)
    if value is None:
        return None
    if isinstance(value, dt.timedelta) and not integer:
        value = value.total_seconds() / 86400
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise WindowSpecError(f"window.{key} must be a positive number, got {value!r}")
    if integer and int(value) != value:
        raise WindowSpecError(f"window.{key} must be a whole number of rows, got {value!r}")
    return float(value)


def check_window(spec: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Validate a window spec (DAG parse time: imports nothing heavy); return it as a plain dict."""
    if spec is None:
        return None
    if not isinstance(spec, Mapping):
        raise WindowSpecError(f"window must be a dict ({', '.join(WINDOW_KEYS)}), got {spec!r}")
    unknown = sorted(set(spec) - set(WINDOW_KEYS))
    if unknown:
        raise WindowSpecError(f"window has unknown keys {unknown} (expected {', '.join(WINDOW_KEYS)})")
    for key in ("days", "half_life"):
        _positive(spec, key)
    _positive(spec, "min_rows", integer=True)
    if not isinstance(spec.get("since_drift", False), bool):
        raise WindowSpecError(f"window.since_drift must be true or false, got {spec['since_drift']!r}")
    if spec.get("time_column") is not None and not isinstance(spec["time_column"], str):
        raise WindowSpecError(f"window.time_column must be a column name, got {spec['time_column']!r}")
    return dict(spec)


def _times(frame: pd.DataFrame, column: str) -> pd.Series:
    import pandas as pd

    if column not in frame.columns:
        raise WindowSpecError(
            f"window.time_column {column!r} is not in the training data (columns: {list(frame.columns)})"
        )
    values = frame[column]
    try:
        times = pd.to_datetime(values, utc=True)
    except (ValueError, TypeError) as err:
        raise WindowSpecError(
            f"window.time_column {column!r} is not dates or timestamps (e.g. {values.iloc[0]!r}): {err}"
        ) from None
    missing = int(times.isna().sum())
    if missing:
        raise WindowSpecError(
            f"window.time_column {column!r} has no value in {missing} of {len(frame)} rows: a window "
            "needs the time of every row (fill or drop them upstream)"
        )
    return times


def apply_window(
    frame: pd.DataFrame,
    spec: Mapping[str, Any],
    *,
    time_column: str | None = None,
    onset: Onset | None = None,
) -> tuple[pd.DataFrame, pd.Series | None, dict[str, Any]]:
    """
    The rows of ``frame`` inside the window, their sample weights (None without ``half_life``) and
    a summary (``time_column``, ``start``, ``end``, ``rows``, ``rows_before``, ``post_drift_rows``,
    ``onset``, ``extended_to_min_rows``, ``half_life``) for the log and the MLflow run.
    """
    import pandas as pd

    spec = check_window(spec) or {}
    if not frame.index.is_unique:  # e.g. days concatenated: rows are picked by label below
        frame = frame.reset_index(drop=True)
    column = spec.get("time_column") or time_column
    if not column:
        raise WindowSpecError("window needs a time_column (in the window spec or the operator's time_column)")
    times = _times(frame, column)
    end = times.max()
    keep = pd.Series(True, index=frame.index)
    starts = []
    days = _positive(spec, "days")
    if days is not None:
        keep &= times > end - pd.Timedelta(days=days)
        starts.append(f"the {days:g} day(s) before {end.isoformat()}")
    if spec.get("since_drift"):
        if onset is None:
            log.warning("window.since_drift: no drift onset is recorded; the other limits apply")
        else:
            keep &= times >= pd.Timestamp(onset.start)
            starts.append(f"the drift onset {onset.first_day.isoformat()}")
    min_rows = _positive(spec, "min_rows", integer=True)
    extended = False
    if min_rows is not None and int(keep.sum()) < min_rows:
        newest = times.sort_values(kind="stable").index[-int(min_rows) :]
        if len(frame) < min_rows:  # a young model: all the history there is (said, and in the summary)
            log.warning(
                "The window (%s) holds %s rows and the training data %s in all, fewer than min_rows=%s: "
                "training on all of them (extract more history to reach min_rows)",
                " and ".join(starts) or "all rows",
                int(keep.sum()),
                len(frame),
                int(min_rows),
            )
        else:
            log.warning(
                "The window (%s) holds %s rows, fewer than min_rows=%s: it reaches back to the newest %s rows",
                " and ".join(starts) or "all rows",
                int(keep.sum()),
                int(min_rows),
                int(min_rows),
            )
        keep = pd.Series(frame.index.isin(newest), index=frame.index)
        extended = True
    if not keep.any():
        raise WindowSpecError(f"The window ({' and '.join(starts)}) holds no row of the training data")
    kept, kept_times = frame[keep], times[keep]
    weights = None
    half_life = _positive(spec, "half_life")
    if half_life is not None:
        age_days = (end - kept_times).dt.total_seconds() / 86400
        raw = 0.5 ** (age_days / half_life)
        weights = raw / raw.mean()
    summary = {
        "time_column": column,
        "start": kept_times.min().isoformat(),
        "end": end.isoformat(),
        "rows": len(kept),
        "rows_before": len(frame),
        "onset": None if onset is None else onset.first_day.isoformat(),
        "post_drift_rows": None if onset is None else int((kept_times >= pd.Timestamp(onset.start)).sum()),
        "extended_to_min_rows": extended,
        "short_of_min_rows": max(0, int(min_rows) - len(kept)) if min_rows is not None else 0,
        "half_life": half_life,
    }
    return kept, weights, summary


def post_drift_start(summary: Mapping[str, Any] | None) -> dt.datetime | None:
    """
    Midnight UTC of the onset's first day when the window (its :func:`apply_window` summary) holds
    post-drift rows: training's time split takes its holdout from those rows only
    (:func:`airflow_provider_mlops.ml.training.split`'s ``since``), so the model learns from the rest.
    """
    if not summary or not summary.get("onset") or not summary.get("post_drift_rows"):
        return None
    return dt.datetime.combine(dt.date.fromisoformat(str(summary["onset"])[:10]), dt.time(), tzinfo=dt.UTC)
