"""The retrain cool-down (#28 item 9): a retrain that did not help holds further requests until something changes."""

from __future__ import annotations

import datetime as dt

from airflow_provider_mlops.ml.cooldown import decide, request_record

DAY = dt.timedelta(days=1)
T0 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
WALL = dt.datetime(2026, 12, 6, 10, 0, tzinfo=dt.UTC)
DECAY = {
    "dataset_drift": False,
    "drifted_features": ["temp"],
    "features": [{"name": "temp", "drifted": True, "psi": 0.3}],
    "accuracy": {"metric": "roc_auc", "current": 0.6, "baseline": 0.8, "decayed": True},
}


def _decide(now, report=DECAY, request=None, hold=None, versions=(), champion="3", cooldown=7 * DAY):
    return decide(
        now=now,
        champion=champion,
        report=report,
        request=request,
        hold=hold,
        versions=list(versions),
        cooldown=cooldown,
    )


def test_a_retrain_that_tied_holds_requests_until_the_cool_down_or_new_drift() -> None:
    # day 0: first request
    assert not _decide(T0).hold
    request = request_record(DECAY, at=T0, requested_at=WALL, champion="3", alias="champion")
    assert request["drifted_features"] == ["temp"] and request["accuracy"]["current"] == 0.6
    # day 1: the retrain has not run yet -> ask again (as before)
    assert not _decide(T0 + DAY, request=request).hold
    # the retrain ran after the request and the gate kept it out
    tie = {"version": "4", "created": WALL + dt.timedelta(minutes=5), "not_promoted": "better by +0.0000"}
    older = {"version": "2", "created": WALL - DAY, "not_promoted": "an older failure"}
    day2 = _decide(T0 + 2 * DAY, request=request, versions=[older, tie])
    assert day2.hold and "v4" in day2.reason and "better by +0.0000" in day2.reason
    assert day2.hold_record["since"] == (T0 + 2 * DAY).isoformat()
    assert day2.hold_record["until"] == (T0 + 9 * DAY).isoformat()
    # the following days keep the same hold (its start does not move)
    day5 = _decide(T0 + 5 * DAY, request=request, hold=day2.hold_record, versions=[older, tie])
    assert day5.hold and day5.hold_record["until"] == day2.hold_record["until"]
    # a feature that had not drifted drifts: ask
    wider = {**DECAY, "drifted_features": ["temp", "humidity"]}
    released = _decide(T0 + 5 * DAY, report=wider, request=request, hold=day2.hold_record, versions=[tie])
    assert not released.hold and "humidity" in released.reason
    # the data set drifts where the request was for decay alone: ask
    dataset = {**DECAY, "dataset_drift": True}
    assert not _decide(
        T0 + 5 * DAY, report=dataset, request=request, hold=day2.hold_record, versions=[tie]
    ).hold
    # the cool-down elapsed: ask again
    late = _decide(T0 + 9 * DAY, request=request, hold=day2.hold_record, versions=[tie])
    assert not late.hold and "cool-down" in late.reason
    # a new champion: the request was about another model
    assert not _decide(
        T0 + 5 * DAY, request=request, hold=day2.hold_record, versions=[tie], champion="5"
    ).hold


def test_the_request_record_is_strict_json() -> None:
    import json

    report = {
        **DECAY,
        "features": [{"name": "gone", "drifted": True, "score": float("inf"), "psi": float("nan")}],
        "accuracy": {"metric": "roc_auc", "current": float("nan"), "decayed": True},
    }
    record = request_record(report, at=T0, requested_at=WALL, champion="3", alias="champion")
    text = json.dumps(record, allow_nan=False)  # raises on NaN / inf
    assert json.loads(text)["features"][0]["score"] is None
