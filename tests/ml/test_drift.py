"""Drift statistics against a reference profile: false alarms, shifts, new categories, nulls."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from airflow_provider_mlops.ml.drift import Thresholds, columns_from_batches, detect_drift
from airflow_provider_mlops.ml.profile import build_profile

NUMERIC = [f"n{i}" for i in range(20)]
CATEGORICAL = [f"c{i}" for i in range(5)]


def _frame(
    rows: int, seed: int, *, shift: float = 0.0, new_category: bool = False, nulls: float = 0.0
) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data: dict[str, object] = {}
    for i, name in enumerate(NUMERIC):
        values = rng.gamma(2.0 + i % 3, 1.0 + i % 5, rows) if i % 2 else rng.normal(i, 1 + i % 4, rows)
        data[name] = values
    for name in CATEGORICAL:
        data[name] = rng.choice(["a", "b", "c", "d"], rows, p=[0.4, 0.3, 0.2, 0.1])
    frame = pd.DataFrame(data)
    if shift:
        frame["n0"] = frame["n0"] + shift * frame["n0"].std()
    if new_category:
        frame.loc[rng.random(rows) < 0.3, "c0"] = "brand-new"
    if nulls:
        frame.loc[rng.random(rows) < nulls, "n3"] = np.nan
    return frame


def _profile(seed: int = 0, rows: int = 20_000) -> dict:
    return build_profile(_frame(rows, seed), numeric=NUMERIC, categorical=CATEGORICAL)


def _check(profile: dict, frame: pd.DataFrame, **kwargs) -> dict:
    table = pa.Table.from_pandas(frame, preserve_index=False)
    columns, rows = columns_from_batches(table.to_batches(max_chunksize=3000), profile)
    return detect_drift(profile, columns, rows=rows, **kwargs)


@pytest.mark.parametrize("rows", [300, 20_000], ids=["small-sample-tests", "large-sample-effect-size"])
def test_same_distribution_rarely_raises_drift(rows: int) -> None:
    profile = _profile()
    reports = [_check(profile, _frame(rows, seed)) for seed in range(1, 51)]
    dataset_alarms = sum(r["dataset_drift"] for r in reports)
    feature_alarms = sum(len(r["drifted_features"]) for r in reports)
    assert dataset_alarms <= 2, "at most 5% of 50 undrifted pairs"
    assert feature_alarms / (50 * 25) < 0.02


def test_a_mean_shift_is_detected_and_ranked_first() -> None:
    report = _check(_profile(), _frame(20_000, 7, shift=0.5))
    assert report["drifted_features"] == ["n0"]
    assert report["top_features"][0] == "n0"
    n0 = report["features"][0]
    assert n0["psi"] > 0.2 or n0["distance"] >= 0.1


def test_a_small_mean_shift_on_a_small_sample_is_found_by_the_corrected_test() -> None:
    report = _check(_profile(), _frame(800, 9, shift=0.4))
    assert "n0" in report["drifted_features"] and report["method"] == "p-values"


def test_a_new_category_is_detected() -> None:
    report = _check(_profile(), _frame(20_000, 3, new_category=True))
    assert report["drifted_features"] == ["c0"]
    assert report["features"][0]["histogram"]["new_categories"] == ["brand-new"]


def test_a_surge_of_missing_values_is_drift_not_an_error() -> None:
    report = _check(_profile(), _frame(20_000, 4, nulls=0.4))
    assert "n3" in report["drifted_features"]
    n3 = next(f for f in report["features"] if f["name"] == "n3")
    assert any("missing share" in r for r in n3["reasons"])


def test_dataset_verdict_share_and_per_feature_overrides() -> None:
    drifted = _frame(20_000, 5)
    for name in NUMERIC[:13]:
        drifted[name] = drifted[name] * 3 + 5
    report = _check(_profile(), drifted)
    assert report["dataset_drift"] and report["drifted_share"] >= 0.5
    relaxed = _check(
        _profile(), _frame(20_000, 6, shift=0.5), per_feature={"n0": {"psi": 10, "distance": 10}}
    )
    assert relaxed["drifted_features"] == []
    with pytest.raises(ValueError, match="Unknown drift threshold"):
        Thresholds().override({"psy": 1})


def test_a_missing_column_is_reported() -> None:
    report = _check(_profile(), _frame(5_000, 8).drop(columns=["c4"]))
    assert "c4" in report["drifted_features"]


def test_per_feature_effect_size_limits_apply_on_small_samples_too() -> None:
    """#28 item 7: below small_sample rows a feature's own psi / distance were silently ignored."""
    shifted = _frame(800, 9, shift=0.4)
    assert "n0" in _check(_profile(), shifted)["drifted_features"]  # the corrected test finds it
    relaxed = _check(_profile(), shifted, per_feature={"n0": {"psi": 10, "distance": 10}})
    n0 = next(f for f in relaxed["features"] if f["name"] == "n0")
    assert relaxed["method"] == "p-values" and not n0["drifted"]
    assert "own psi / distance" in n0["method"]
    # global psi / distance decide only above small_sample rows: said, not silent
    noted = _check(_profile(), shifted, thresholds={"psi": 10})
    assert "psi / distance thresholds apply above small_sample rows" in noted["notes"][0]
    # a limit the change does pass: drift, with both reasons
    strict = _check(_profile(), shifted, per_feature={"n0": {"distance": 0.05}})
    n0 = next(f for f in strict["features"] if f["name"] == "n0")
    assert n0["drifted"] and any("p-value" in r for r in n0["reasons"])
    assert any("wasserstein" in r for r in n0["reasons"])


def test_columns_can_be_left_out_of_drift_and_misspellings_are_refused() -> None:
    seasonal = _frame(20_000, 6, shift=0.5)  # n0 moves with the season
    assert _check(_profile(), seasonal)["drifted_features"] == ["n0"]
    for kwargs in ({"exclude": ["n0"]}, {"per_feature": {"n0": {"ignore": True}}}):
        report = _check(_profile(), seasonal, **kwargs)
        assert report["drifted_features"] == [] and report["excluded"] == ["n0"]
        assert "n0" not in [f["name"] for f in report["features"]] and len(report["features"]) == 24
    with pytest.raises(ValueError, match=r"exclude names feature\(s\) \['n00'\]"):
        _check(_profile(), seasonal, exclude=["n00"])
    with pytest.raises(ValueError, match=r"per_feature names feature\(s\) \['age'\]"):
        _check(_profile(), seasonal, per_feature={"age": {"psi": 0.3}})
    with pytest.raises(ValueError, match=r"per_feature\['n1'\]: Unknown drift threshold"):
        _check(_profile(), seasonal, per_feature={"n1": {"psy": 0.3}})


def test_the_html_report_says_the_accuracy_verdict_once() -> None:
    from airflow_provider_mlops.ml.report import render_html

    report = _check(_profile(), _frame(2_000, 2))
    fine = {
        "metric": "roc_auc",
        "current": 0.81,
        "baseline": 0.8,
        "decayed": False,
        "reason": "within limits",
    }
    page = render_html({**report, "accuracy": fine})
    assert "within limits" in page and "within limits: within limits" not in page
    decayed = {**fine, "current": 0.6, "decayed": True, "reason": "roc_auc fell 0.2000 below the baseline"}
    assert "<b>decayed</b>: roc_auc fell 0.2000 below the baseline" in render_html(
        {**report, "accuracy": decayed}
    )
    # no baseline (a profile without metrics): said, not a crash formatting None
    assert "(baseline n/a)" in render_html({**report, "accuracy": {**fine, "baseline": None}})


def test_missing_share_on_a_tiny_sample_is_decided_by_a_test_not_by_a_fixed_difference() -> None:
    """
    Found by the ML path property tests: 12 rows, a bool feature null in 10 of them, 9 in training
    (all null). 0 of 9 present against 2 of 12 is noise (Fisher's exact p ~0.49), not drift.
    """
    values = [None] * 9 + [True, None, False]
    reference = build_profile(
        pd.DataFrame({"b": pd.Series(values[:9], dtype=object)}), numeric=[], categorical=["b"]
    )
    table = pa.table({"b": pa.array(values, pa.bool_())})
    columns, rows = columns_from_batches(table.to_batches(), reference)
    report = detect_drift(reference, columns, rows=rows)
    feature = report["features"][0]
    assert report["drifted_features"] == [] and feature["missing_current"] == pytest.approx(10 / 12)
    assert 0.3 < feature["missing_p_value"] < 0.7
    # the same on a numeric feature
    numbers = [np.nan] * 9 + [1.0, np.nan, 2.0]
    reference = build_profile(pd.DataFrame({"x": numbers[:9]}), numeric=["x"], categorical=[])
    assert detect_drift(reference, {"x": np.array(numbers)}, rows=12)["drifted_features"] == []


def test_a_real_surge_of_missing_values_on_a_small_sample_is_still_drift() -> None:
    """300 current rows, 0% -> 40% missing: significant and larger than the missing threshold."""
    reference = _profile(rows=2_000)
    report = _check(reference, _frame(300, 4, nulls=0.4))
    assert report["method"] == "p-values" and "n3" in report["drifted_features"]
    n3 = next(f for f in report["features"] if f["name"] == "n3")
    assert any("missing share" in r and "p-value" in r for r in n3["reasons"])
    assert n3["missing_p_value"] < 1e-10
