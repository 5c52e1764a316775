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
