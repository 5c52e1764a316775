"""Drift onset as data (#26 item 1): started, continued and ended by checks; read from tags and events."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from airflow_provider_mlops.ml.onset import closed, latest_onset, onset_record, read_onset
from airflow_provider_mlops.ml.tags import TAG_DRIFT_ONSET

DAY = dt.timedelta(days=1)
T8 = dt.datetime(2026, 3, 8, 2, 0, tzinfo=dt.UTC)
REPORT = {
    "dataset_drift": True,
    "drifted_features": ["minutes_used", "plan"],
    "features": [
        {
            "name": "minutes_used",
            "drifted": True,
            "method": "psi",
            "score": 0.41,
            "psi": 0.41,
            "p_value": None,
        },
        {"name": "plan", "drifted": True, "method": "chi2", "score": float("inf"), "p_value": 1e-9},
        {"name": "age", "drifted": False, "method": "psi", "score": 0.01},
    ],
    "accuracy": {"metric": "roc_auc", "current": 0.533, "baseline": 0.78, "drop": 0.247, "decayed": True},
}


def test_the_first_check_starts_the_episode_and_later_ones_continue_it() -> None:
    first = onset_record(REPORT, at=T8, champion="3", previous=None)
    assert first["first_day"] == "2026-03-08" and first["kind"] == "drift+decay" and first["ended"] is None
    assert [f["name"] for f in first["features"]] == ["minutes_used", "plan"]
    assert first["features"][1]["score"] is None, "infinite statistics become null (JSON)"
    assert first["accuracy"]["current"] == 0.533 and first["accuracy"]["baseline"] == 0.78
    # the next days (even with another champion, another report) continue the same episode
    later = onset_record({"drifted_features": ["age"]}, at=T8 + 2 * DAY, champion="4", previous=first)
    assert later["first_day"] == "2026-03-08" and later["drifted_features"] == ["minutes_used", "plan"]
    assert later["last_seen"] == (T8 + 2 * DAY).isoformat()
    # a calm check ends it; the next drift starts another
    ended = closed(later, at=T8 + 3 * DAY)
    assert ended["ended"] == (T8 + 3 * DAY).isoformat() and closed(ended, at=T8 + 4 * DAY) is None
    decay_only = {"accuracy": {"metric": "roc_auc", "current": 0.6, "decayed": True}}
    again = onset_record(decay_only, at=T8 + 5 * DAY, champion="4", previous=ended)
    assert again["first_day"] == "2026-03-13" and again["kind"] == "decay"


def test_read_from_tags_event_extra_json_and_record_alike() -> None:
    record = onset_record(REPORT, at=T8, champion="3", previous=None)
    tags = {TAG_DRIFT_ONSET: json.dumps(record), "other": "x"}
    extra = {"retrain_request": {"at": "..."}, "drift_onset": record}
    event = type("AssetEvent", (), {"extra": extra})()
    for source in (tags, extra, event, json.dumps(record), record):
        onset = read_onset(source)
        assert onset.first_day == dt.date(2026, 3, 8) and onset.champion == "3"
        assert onset.start == dt.datetime(2026, 3, 8, tzinfo=dt.UTC)
        assert onset.accuracy["metric"] == "roc_auc" and onset.drifted_features == ["minutes_used", "plan"]
    assert "drift+decay since 2026-03-08" in read_onset(tags).describe()
    assert read_onset({}) is None and read_onset(None) is None and read_onset({"other": 1}) is None
    newer = onset_record(REPORT, at=T8 + 9 * DAY, champion="5", previous=None)
    assert latest_onset([extra, {"drift_onset": newer}, {}]).first_day == dt.date(2026, 3, 17)
    with pytest.raises(ValueError, match="first_day 'soon' is not a date"):
        read_onset({"first_day": "soon"})
