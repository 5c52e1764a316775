"""The one-line summaries of the ML decisions (#27 item 3): the numbers a person needs, in one line."""

from __future__ import annotations

from airflow_provider_mlops.ml.promotion import Decision, decide
from airflow_provider_mlops.ml.specs import Gate
from airflow_provider_mlops.ml.summary import drift_line, held_line, promotion_line

REPORT = {
    "drift": True,
    "dataset_drift": True,
    "drifted_share": 2 / 3,
    "drifted_features": ["minutes", "plan"],
    "rows": 1500,
    "logical_date": "2026-01-08",
    "data_day": ["2026-01-07", "2026-01-08"],
    "reference": {"model": "churn", "version": "3", "run_id": "abc"},
    "features": [
        {"name": "minutes", "method": "psi + wasserstein", "psi": 0.4123, "distance": 0.318, "p_value": None},
        {"name": "plan", "method": "chi2 p-value (bh)", "psi": None, "distance": None, "p_value": 1.2e-7},
        {"name": "tickets", "method": "psi + wasserstein", "psi": 0.01, "distance": 0.02, "p_value": None},
    ],
    "accuracy": {
        "decayed": True,
        "reason": "accuracy fell by 0.2250, more than max_drop 0.1",
        "confidence": "accuracy 0.5330 vs baseline 0.7580: change -0.2250, 90% interval of the worsening "
        "[+0.2010, +0.2490], one-sided p of a fall 1e-12 (1500 current rows)",
    },
}


def test_the_drift_line_names_day_rows_reference_features_and_both_accuracies() -> None:
    line = drift_line(REPORT)
    assert line.startswith(
        "Drift and decay on 2026-01-08 (rows of 2026-01-07..2026-01-08): 1500 rows vs churn v3's reference; "
        "2 of 3 features drifted (67%, dataset drift): minutes (psi 0.412, distance 0.318), plan (p 1.2e-07)"
    )
    assert "decayed: accuracy 0.5330 vs baseline 0.7580" in line and "[+0.2010, +0.2490]" in line
    assert "\n" not in line


def test_no_drift_and_a_profile_reference() -> None:
    report = {
        **REPORT,
        "drift": False,
        "dataset_drift": False,
        "drifted_share": 0.0,
        "drifted_features": [],
        "data_day": None,
        "accuracy": None,
        "reference": {"profile": "s3://b/profile.json"},
    }
    assert drift_line(report) == (
        "No drift on 2026-01-08: 1500 rows vs s3://b/profile.json's reference; 0 of 3 features drifted (0%)"
    )


def test_a_held_retrain_says_why_first() -> None:
    line = held_line(REPORT, "v4 did not improve on the champion v3; cool-down until 2026-01-16")
    assert line.startswith(
        "Retraining held (v4 did not improve on the champion v3; cool-down until 2026-01-16); Drift"
    )


def test_the_promotion_line_holds_both_scores_the_margin_the_rows_and_the_verdict() -> None:
    gate = Gate(metric="roc_auc", min_delta=0.01)
    decision = decide(gate, 0.7612, 0.7580, champion="3", rows="500 post-drift rows")
    line = promotion_line(
        decision,
        model="churn",
        candidate="4",
        champion="3",
        metric="roc_auc",
        scores={"candidate": 0.7612, "champion": 0.7580},
        rows="500 post-drift rows",
        by="retrain.deploy (scheduled__2026-01-08) at 2026-01-09T00:05:00+00:00",
    )
    assert line == (
        "Not promoted by retrain.deploy (scheduled__2026-01-08) at 2026-01-09T00:05:00+00:00: churn v4: "
        "roc_auc 0.7612 vs champion v3 0.7580 on 500 post-drift rows: not better by +0.0032 "
        "(must exceed min_delta 0.01)"
    )
    first = promotion_line(
        Decision(True, "no champion yet"),
        model="churn",
        candidate="1",
        champion=None,
        metric="roc_auc",
        scores={"candidate": 0.7580},
        rows="1500 fresh rows",
    )
    assert first == "Promoted: churn v1: roc_auc 0.7580 on 1500 fresh rows; no champion yet"
