"""
Retraining that did not help: when to stop asking for it.

The monitor asks for a retrain when the data drifts or the champion's accuracy decays. When the
retrain that answered the request was not promoted (it tied or lost against the decayed champion
on fresh data), asking again the next day, on the same drift, trains the same model again: the
request is **held** until something changes:

* new drift: a feature drifts that had not when the retrain was asked for, or the data set drifts
  where the request was for accuracy decay alone;
* a new champion (the request was about another one);
* the champion's accuracy decay persists and the post-drift data has at least **doubled** since
  the request that did not help (re-arm; needs the drift onset record): a retrain that lost on the
  first post-drift day had little of the new world to learn from and to be judged on; with twice
  the post-drift days it may win. Retries thus come on the 1st, 2nd, 4th, 8th ... post-drift day
  of a decay that does not go away: at most ``log2(days) + 1`` retrains, never one a day;
* the cool-down elapses (counted in the monitor's logical dates, so a backfill or a simulated
  day counts as a day).

Post-drift days are counted from the onset's ``first_day`` to the newest day of the checked data
(the report's ``data_day``, from the sensor's ``time_column``; the request keeps its own as
``data_day``). Without a ``time_column`` nothing tells new rows from the same rows checked again,
so there is no re-arm: the cool-down rules. The same records and report give the same decision: a
rerun of a logical date that held holds again. (A request no retrain has answered yet is asked
again: the retrain it asked for may have failed.)

The state is two JSON records the sensor keeps as tags of the registered model (and puts in the
Asset event's ``extra`` when it asks):

``mlops.retrain_request``
    the last request: ``at`` (logical date), ``data_day`` (the newest day of the checked data, when
    the sensor has a ``time_column``), ``requested_at`` (wall clock, UTC: what version
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
    days = report.get("data_day") or []
    record = {
        "at": _time(at).isoformat(),
        "data_day": str(days[-1])[:10] if days else None,
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
    onset: Mapping[str, Any] | None = None,
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
    :param onset: the :data:`~airflow_provider_mlops.ml.tags.TAG_DRIFT_ONSET` record, if any: with
        an open episode, a persisting decay re-arms the request once the post-drift data has doubled.
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
    rearm = _rearm(report=report, request=request, onset=onset)
    if rearm:
        return Decision(False, f"v{failed['version']} did not help, but {rearm}", failed=failed)
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


GROWTH = 2  # the post-drift data must have grown this many times since the request that did not help


def _day(value: Any) -> dt.date | None:
    try:
        return dt.date.fromisoformat(str(value)[:10]) if value else None
    except ValueError:
        return None


def post_drift_days(onset: Mapping[str, Any], data_day: Any) -> int | None:
    """
    Days of post-drift data at a check: from the onset's ``first_day`` to ``data_day`` (the newest
    day of the checked data), both counted; 0 for data older than the onset; None when either day
    is unknown.
    """
    first, newest = _day(onset.get("first_day")), _day(data_day)
    if first is None or newest is None:
        return None
    return max(0, (newest - first).days + 1)


def _rearm(
    *, report: Mapping[str, Any], request: Mapping[str, Any], onset: Mapping[str, Any] | None
) -> str | None:
    """Why a held request is asked again (decay persists, post-drift data doubled), or None."""
    accuracy = report.get("accuracy") or {}
    if not accuracy.get("decayed") or not onset or onset.get("ended"):
        return None
    days = report.get("data_day") or []
    current = post_drift_days(onset, days[-1] if days else None)
    asked = post_drift_days(onset, request.get("data_day"))
    # without the data's days (no time_column) nothing says new rows arrived: the cool-down rules
    if current is None or asked is None or current < GROWTH * max(asked, 1):
        return None
    return (
        f"{accuracy.get('metric') or 'the metric'} still decays ({_number(accuracy.get('current'))} vs "
        f"baseline {_number(accuracy.get('baseline'))}) and the post-drift data has grown from {asked} to "
        f"{current} day(s) since {onset.get('first_day')} (x{GROWTH} re-arms): retrying on the new rows"
    )


def _number(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, int | float) else "?"
