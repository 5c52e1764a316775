"""
Drift onset as data (issue #26): when drift or accuracy decay began, and what it looked like.

The DriftSensor keeps one record, :data:`~airflow_provider_mlops.ml.tags.TAG_DRIFT_ONSET`, as a tag of the registered model and puts it
in the Asset event's ``extra`` (key :data:`EXTRA_KEY`) when it asks for a retrain:

``first_day``
    the first day (``YYYY-MM-DD``) of the data in which the episode's first check found drift or
    decay: the oldest value of the sensor's ``time_column`` in that data, else the check's logical
    date;
``at`` / ``last_seen``
    the first and the latest such check (ISO timestamps);
``ended``
    the first later check that found neither (None while the episode goes on): a drift that comes
    back after that is a new episode with a new ``first_day``;
``kind``
    ``drift``, ``decay`` or ``drift+decay`` on the first day;
``champion``
    the version that was monitored on the first day;
``drifted_features`` / ``features``
    on the first day: the drifted features, and for each its statistic (``method``, e.g.
    ``psi + wasserstein`` or ``ks p-value (bh)``), ``score``, ``psi``, ``distance``, ``p_value``;
``accuracy``
    on the first day: ``metric``, ``current``, ``baseline``, ``drop``, ``p_value``, ``decayed``,
    ``rows``.

The training side reads it with :func:`read_onset` (from the registered model's tags, an Asset
event's ``extra``, or the record itself): :mod:`airflow_provider_mlops.ml.windows` trains on the
rows since ``first_day`` (``since_drift``). No Airflow and no MLflow here.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_provider_mlops.ml.cooldown import _finite, _time
from airflow_provider_mlops.ml.tags import TAG_DRIFT_ONSET

if TYPE_CHECKING:
    from collections.abc import Iterable

EXTRA_KEY = "drift_onset"
_FEATURE_KEYS = ("name", "method", "score", "psi", "distance", "p_value")


@dataclass(frozen=True)
class Onset:
    """A drift onset record, read (see the module's docstring for the fields)."""

    first_day: dt.date
    at: dt.datetime
    kind: str
    champion: str | None = None
    drifted_features: list[str] = field(default_factory=list)
    features: list[dict[str, Any]] = field(default_factory=list)
    accuracy: dict[str, Any] | None = None
    last_seen: dt.datetime | None = None
    ended: dt.datetime | None = None

    @property
    def start(self) -> dt.datetime:
        """Midnight UTC of ``first_day``: rows at or after it are post-drift rows."""
        return dt.datetime.combine(self.first_day, dt.time(), tzinfo=dt.UTC)

    def describe(self) -> str:
        what = ", ".join(self.drifted_features[:5]) or "no feature"
        accuracy = ""
        if self.accuracy and self.accuracy.get("current") is not None:
            accuracy = f"; {self.accuracy.get('metric')} {self.accuracy.get('current'):.4f}" + (
                f" vs baseline {self.accuracy['baseline']:.4f}"
                if self.accuracy.get("baseline") is not None
                else ""
            )
        return f"{self.kind} since {self.first_day.isoformat()} (drifted: {what}{accuracy})"


def _kind(report: Mapping[str, Any]) -> str:
    drift = bool(report.get("dataset_drift") or report.get("drifted_features"))
    decay = bool((report.get("accuracy") or {}).get("decayed"))
    return "drift+decay" if drift and decay else ("decay" if decay else "drift")


def is_open(record: Mapping[str, Any] | None) -> bool:
    """Whether ``record`` is an episode that has not ended (a drifting check continues it)."""
    return bool(record and record.get("first_day") and not record.get("ended"))


def onset_record(
    report: Mapping[str, Any],
    *,
    at: dt.datetime,
    champion: str | None,
    previous: Mapping[str, Any] | None,
    first_day: dt.date | None = None,
) -> dict[str, Any]:
    """
    The onset record after a check that found drift or decay: ``previous`` continued (``last_seen``
    moves) while its episode is open, else a new episode starting at ``at``. ``first_day``: the
    first day of the checked data (its time column), when known; else ``at``'s date.
    """
    moment = _time(at).isoformat()
    if previous and is_open(previous):
        return {**previous, "last_seen": moment}
    accuracy = report.get("accuracy") or None
    drifted = [f for f in report.get("features", []) if f.get("drifted")][:10]
    return _finite(
        {
            "first_day": (first_day or _time(at).date()).isoformat(),
            "at": moment,
            "last_seen": moment,
            "ended": None,
            "kind": _kind(report),
            "champion": champion,
            "drifted_features": list(report.get("drifted_features") or []),
            "features": [{k: f.get(k) for k in _FEATURE_KEYS} for f in drifted],
            "accuracy": None
            if not accuracy
            else {
                k: accuracy.get(k)
                for k in ("metric", "current", "baseline", "drop", "p_value", "decayed", "rows")
            },
        }
    )


def closed(previous: Mapping[str, Any] | None, *, at: dt.datetime) -> dict[str, Any] | None:
    """``previous`` ended by a check at ``at`` that found neither drift nor decay (None: nothing to close)."""
    if not previous or previous.get("ended") or not previous.get("first_day"):
        return None
    return {**previous, "ended": _time(at).isoformat()}


def _record(source: Any) -> Mapping[str, Any] | None:
    if source is None:
        return None
    if isinstance(source, str | bytes):
        try:
            source = json.loads(source)
        except ValueError:
            raise ValueError(f"A drift onset record is not JSON: {source[:200]!r}") from None
    if not isinstance(source, Mapping) and hasattr(source, "extra"):  # an Asset event
        source = source.extra or {}
    if not hasattr(source, "get"):
        return None
    for key in (TAG_DRIFT_ONSET, EXTRA_KEY):  # registered model tags, or an Asset event's extra
        if source.get(key) is not None:
            return _record(source[key])
    return source if source.get("first_day") else None


def read_onset(source: Any) -> Onset | None:
    """
    The onset in ``source``: a registered model's tags (``{TAG_DRIFT_ONSET: "<json>"}``), an
    Asset event or its ``extra`` (``{"drift_onset": {...}}``), a JSON string or the record itself.
    None when it holds none.
    """
    record = _record(source)
    if not record:
        return None
    try:
        first_day = dt.date.fromisoformat(str(record["first_day"])[:10])
    except ValueError:
        raise ValueError(
            f"The drift onset's first_day {record['first_day']!r} is not a date (YYYY-MM-DD)"
        ) from None

    def moment(key: str) -> dt.datetime | None:
        return _time(record[key]) if record.get(key) else None

    return Onset(
        first_day=first_day,
        at=moment("at") or dt.datetime.combine(first_day, dt.time(), tzinfo=dt.UTC),
        kind=str(record.get("kind") or "drift"),
        champion=None if record.get("champion") is None else str(record["champion"]),
        drifted_features=list(record.get("drifted_features") or []),
        features=[dict(f) for f in record.get("features") or []],
        accuracy=dict(record["accuracy"]) if record.get("accuracy") else None,
        last_seen=moment("last_seen"),
        ended=moment("ended"),
    )


def latest_onset(sources: Iterable[Any]) -> Onset | None:
    """The onset with the latest ``first_day`` among ``sources`` (e.g. the triggering Asset events)."""
    found = [o for o in (read_onset(s) for s in sources) if o is not None]
    return max(found, key=lambda o: (o.first_day, o.at)) if found else None
