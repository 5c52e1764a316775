"""
Retraining that did not help: when to stop asking for it.

The monitor asks for a retrain when the data drifts or the champion's accuracy decays. When the
retrain that answered the request was not promoted (it tied or lost against the decayed champion
on fresh data), asking again the next day, on the same drift, trains the same model again: the
request is **held** until something changes:

* new drift: a feature drifts that had not when the retrain was asked for, or the data set drifts
  where the request was for accuracy decay alone;
* a new champion (the request was about another one);
* the cool-down elapses (counted in the monitor's logical dates, so a backfill or a simulated
  day counts as a day).

The state is two JSON records the sensor keeps as tags of the registered model (and puts in the
Asset event's ``extra`` when it asks):

``mlops.retrain_request``
    the last request: ``at`` (logical date), ``requested_at`` (wall clock, UTC: what version
    creation times are compared with), ``champion``, ``alias``, ``dataset_drift``,
    ``drifted_features``, ``features`` (statistics of the drifted ones), ``accuracy`` (metric,
    current, baseline, drop, p-value), ``report``. The first request of a drift episode is where a
    drift onset (issue #26) can be read.
``mlops.retrain_hold``
    present while requests are held: ``since``, ``until``, ``candidate`` (the version that did not
    help), ``candidate_reason`` (the promotion gate's words), ``champion`` and ``reason``.

No Airflow and no MLflow here: the sensor reads the records and the versions and writes what
:func:`decide` returns.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence


@dataclass
class Decision:
    """Ask for a retrain (``hold`` False) or hold; ``reason`` says why; ``hold_record`` when held."""

    hold: bool
    reason: str
    hold_record: dict[str, Any] | None = None
    failed: dict[str, Any] | None = field(default=None)


def _time(value: Any) -> dt.datetime:
    moment = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _finite(value: Any) -> Any:
    """``value`` with NaN and infinities as None: the record goes into tags and Asset event JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def request_record(
    report: Mapping[str, Any],
    *,
    at: dt.datetime,
    requested_at: dt.datetime,
    champion: str | None,
    alias: str,
) -> dict[str, Any]:
    """What a retraining request records (see the module's docstring), from a drift report."""
    accuracy = report.get("accuracy") or None
    drifted = [f for f in report.get("features", []) if f.get("drifted")][:10]
    record = {
        "at": _time(at).isoformat(),
        "requested_at": _time(requested_at).isoformat(),
        "champion": champion,
        "alias": alias,
        "dataset_drift": bool(report.get("dataset_drift")),
        "drifted_features": list(report.get("drifted_features") or []),
        "features": [
            {k: f.get(k) for k in ("name", "method", "score", "psi", "distance", "p_value", "reasons")}
            for f in drifted
        ],
        "accuracy": None
        if not accuracy
        else {
            k: accuracy.get(k)
            for k in ("metric", "current", "baseline", "drop", "p_value", "decayed", "rows")
        },
        "report": report.get("report_html"),
    }
    return _finite(record)


def decide(
    *,
    now: dt.datetime,
    champion: str | None,
    report: Mapping[str, Any],
    request: Mapping[str, Any] | None,
    hold: Mapping[str, Any] | None,
    versions: Sequence[Mapping[str, Any]],
    cooldown: dt.timedelta,
) -> Decision:
    """
    Ask or hold, for a check that found drift or decay.

    :param now: the monitor's logical date.
    :param champion: the champion's version now.
    :param report: this check's drift report (``drifted_features``, ``dataset_drift``).
    :param request: the last :data:`~airflow_provider_mlops.ml.tags.TAG_RETRAIN_REQUEST` record, if any.
    :param hold: the current :data:`~airflow_provider_mlops.ml.tags.TAG_RETRAIN_HOLD` record, if any.
    :param versions: the registered model's versions: ``version``, ``created`` (UTC datetime),
        ``not_promoted`` (the gate's reason, or None).
    :param cooldown: how long a futile retrain holds further requests.
    """
    if not request:
        return Decision(False, "first request")
    if str(request.get("champion")) != str(champion):
        return Decision(
            False, f"the champion is v{champion} now (the last request was for v{request.get('champion')})"
        )
    asked = _time(request["requested_at"])
    answers = [v for v in versions if v.get("not_promoted") and _time(v["created"]) >= asked]
    if not answers:
        return Decision(False, "no retrain has answered the last request yet")
    failed = dict(max(answers, key=lambda v: _time(v["created"])))
    before = set(request.get("drifted_features") or [])
    new = [f for f in report.get("drifted_features") or [] if f not in before]
    if new:
        return Decision(False, f"new drift since the last request: {', '.join(new)}", failed=failed)
    if report.get("dataset_drift") and not request.get("dataset_drift"):
        return Decision(
            False, "the data set drifts now (the last request was for accuracy decay)", failed=failed
        )
    same = hold and str(hold.get("candidate")) == str(failed["version"])
    since = _time(hold["since"]) if same and hold else _time(now)
    until = since + cooldown
    if _time(now) >= until:
        return Decision(
            False,
            f"the cool-down of {cooldown} after v{failed['version']} did not help has elapsed",
            failed=failed,
        )
    why = str(failed.get("not_promoted") or "not promoted")
    reason = (
        f"the last retrain (v{failed['version']}, asked for on {request.get('at')}) did not improve on the "
        f"champion v{champion}: {why}. Holding retraining requests until {until.isoformat()} or until "
        "new features drift"
    )
    record = {
        "since": since.isoformat(),
        "until": until.isoformat(),
        "candidate": str(failed["version"]),
        "candidate_reason": why[:2000],
        "champion": str(champion),
        "reason": reason[:4000],
    }
    return Decision(True, reason, hold_record=record, failed=failed)
