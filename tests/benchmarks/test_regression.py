"""The benchmark run's JSON and the regression warning: pure logic, no benchmark is run."""

from __future__ import annotations

import datetime as dt
import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from benchmarks import regression
from benchmarks.drift import compare as compare_verdicts
from benchmarks.drift import rates

ratio = st.floats(min_value=1e-3, max_value=1e4, allow_nan=False, allow_infinity=False)


def test_a_drop_of_more_than_20_percent_is_a_regression() -> None:
    found = regression.compare({"pg_load": 0.79, "s3": 1.0}, {"pg_load": 1.0, "s3": 1.0})
    assert [(r.name, r.baseline, r.current) for r in found] == [("pg_load", 1.0, 0.79)]
    assert found[0].change == pytest.approx(-0.21)
    assert "pg_load regressed 21%" in found[0].message()


def test_a_drop_of_exactly_20_percent_or_a_gain_is_not() -> None:
    assert regression.compare({"a": 0.8, "b": 5.0}, {"a": 1.0, "b": 1.0}) == []


def test_only_ratios_present_in_both_are_compared() -> None:
    assert regression.compare({"new": 0.01}, {"old": 100.0}) == []


@pytest.mark.parametrize("bad", [math.nan, math.inf, True, "1.0", None])
def test_unusable_values_are_skipped_not_compared(bad: object) -> None:
    assert regression.compare({"a": bad}, {"a": 1.0}) == []  # type: ignore[dict-item]
    assert regression.compare({"a": 0.1}, {"a": bad}) == []  # type: ignore[dict-item]


def test_tolerance_outside_0_1_is_refused() -> None:
    with pytest.raises(ValueError, match="tolerance"):
        regression.compare({}, {}, tolerance=1.5)


@given(now=ratio, before=ratio, tolerance=st.floats(min_value=0, max_value=0.9))
def test_flagged_exactly_when_below_the_tolerated_floor(now: float, before: float, tolerance: float) -> None:
    found = regression.compare({"x": now}, {"x": before}, tolerance)
    assert bool(found) == (now < before * (1 - tolerance))


def test_report_warns_against_the_committed_file(tmp_path, capsys) -> None:
    baseline = tmp_path / "baseline.json"
    baseline.write_text(json.dumps({"ratios": {"drift_speedup": 50.0, "pg_load": 0.9}}))
    run = {"ratios": {"drift_speedup": 30.0, "pg_load": 0.95}}
    found = regression.report(run, baseline)
    assert [r.name for r in found] == ["drift_speedup"]
    assert "WARNING: drift_speedup regressed 40%" in capsys.readouterr().out


def test_runs_of_another_size_are_not_compared(tmp_path, capsys) -> None:
    baseline = tmp_path / "baseline.json"
    baseline.write_text(json.dumps({"meta": {"rows": 1_000_000}, "ratios": {"pg_load": 0.9}}))
    small = {"meta": {"rows": 20_000}, "ratios": {"pg_load": 0.3}}
    assert regression.report(small, baseline) == []
    assert "measured at 1,000,000 rows, this run at 20,000" in capsys.readouterr().out
    same = {"meta": {"rows": 1_000_000}, "ratios": {"pg_load": 0.3}}
    assert [r.name for r in regression.report(same, baseline)] == ["pg_load"]


def test_report_without_a_baseline_says_so(tmp_path, capsys) -> None:
    assert regression.report({"ratios": {"a": 1.0}}, tmp_path / "missing.json") == []
    assert "no committed baseline" in capsys.readouterr().out


def test_a_file_without_ratios_is_refused_with_its_name(tmp_path) -> None:
    path = tmp_path / "other.json"
    path.write_text("{}")
    with pytest.raises(ValueError, match=r"other\.json has no 'ratios'"):
        regression.load_ratios(path)


def test_merge_keeps_old_ratios_and_replaces_measured_ones() -> None:
    old = {"meta": {"date": "old"}, "ratios": {"a": 1.0, "b": 2.0}, "results": {"a": {"s": 1}}}
    run = {"meta": {"date": "new"}, "ratios": {"b": 3.0, "c": 4.0}, "results": {"c": {"s": 2}}}
    merged = regression.merge_baseline(old, run)
    assert merged["ratios"] == {"a": 1.0, "b": 3.0, "c": 4.0}
    assert merged["results"] == {"a": {"s": 1}, "c": {"s": 2}}
    assert merged["meta"] == {"date": "new"}
    assert old["ratios"] == {"a": 1.0, "b": 2.0}, "the old baseline is not changed in place"


def test_document_records_the_machine_and_sorted_ratios() -> None:
    doc = regression.document({"x": {}}, {"b": 1.0, "a": 2.0}, {"rows": 10})
    assert list(doc["ratios"]) == ["a", "b"]
    assert doc["meta"]["rows"] == 10
    assert doc["meta"]["cores"] >= 1 and len(doc["meta"]["load_average"]) == 3


def test_default_path_is_under_results_and_dated() -> None:
    path = regression.default_path(dt.datetime(2026, 11, 30, 3, 4, 5, tzinfo=dt.UTC))
    assert path.parent == regression.RESULTS and path.name == "run-20261130T030405Z.json"


def test_verdict_agreement_counts_features_both_sides_judge_alike() -> None:
    mine = {"features": {"a": {"drifted": True}, "b": {"drifted": False}, "c": {"drifted": False}}}
    other = {"features": {"a": {"drifted": True}, "b": {"drifted": True}, "c": {"drifted": False}}}
    out = compare_verdicts(mine, other, {"a"})
    assert out["summary"]["agree"] == 2 and out["summary"]["features"] == 3
    assert out["ours"] == {"flagged": ["a"], "as_expected": True}
    assert out["theirs"] == {"flagged": ["a", "b"], "as_expected": False}


def test_calibration_rates_separate_changed_and_unchanged_columns() -> None:
    from benchmarks.drift_data import CATEGORICAL, NUMERIC, POWER

    names = [*NUMERIC, *CATEGORICAL]
    flagged = {"n00", "n04"}  # one changed column caught, one unchanged column flagged
    pairs = [{"dataset_drift": False, "features": {n: {"drifted": n in flagged} for n in names}}] * 4
    out = rates(pairs, "power")
    assert out["dataset_alarms"] == 0
    assert out["feature_alarm_rate"] == pytest.approx(1 / (len(names) - len(POWER)))
    assert out["detect_n00"] == 1.0 and out["detect_n02"] == 0.0
    null = rates(pairs, "null")
    assert null["feature_alarm_rate"] == pytest.approx(2 / len(names))


def test_benchmark_data_is_reproducible_and_shifted_where_it_says() -> None:
    import numpy as np

    from benchmarks import drift_data

    same = drift_data.table(5, 20_000)
    assert drift_data.checksum(same) == drift_data.checksum(drift_data.table(5, 20_000))
    assert drift_data.checksum(same) != drift_data.checksum(drift_data.table(6, 20_000))
    assert same.num_rows == 20_000 and same.column_names == [*drift_data.NUMERIC, *drift_data.CATEGORICAL]
    shifted = drift_data.table(5, 20_000, {"mode": "shifted"})
    moved = {
        name: abs(
            np.nanmean(shifted[name].to_numpy(zero_copy_only=False).astype(float))
            - np.nanmean(same[name].to_numpy(zero_copy_only=False).astype(float))
        )
        / np.nanstd(same[name].to_numpy(zero_copy_only=False).astype(float))
        for name in drift_data.NUMERIC
    }
    assert {n for n, d in moved.items() if d > 0.15} == {n for n in drift_data.SHIFTED if n.startswith("n")}
    power = drift_data.table(5, 20_000, {"mode": "power"})
    assert power["n03"].null_count / 20_000 == pytest.approx(0.2, abs=0.02)
    assert power["c2"].null_count / 20_000 == pytest.approx(0.2, abs=0.02)
    assert "c0_new" in set(power["c0"].to_pylist()) and "c0_new" not in set(same["c0"].to_pylist())


def test_calibration_table_renders_every_change_for_both_formats() -> None:
    from benchmarks.drift import calibration_markdown, calibration_rst
    from benchmarks.drift_data import POWER

    power = {"pairs": 10, "dataset_alarms": 0, "feature_alarm_rate": 0.02}
    power.update({f"detect_{name}": 0.5 for name in POWER})
    side = {"null": {"pairs": 50, "dataset_alarms": 1, "feature_alarm_rate": 0.031}, "power": power}
    table = {"rows": {"300": {"ours": side, "evidently": side}}}
    markdown = calibration_markdown(table).splitlines()
    assert len(markdown) == 4 and markdown[2].startswith("| 300 | ours | 1 of 50 | 3.1% | 2.0% | 50%")
    assert "Evidently 0.7.23" in markdown[3]
    rst = calibration_rst(table)
    assert rst.startswith(".. csv-table::") and rst.count('"300"') == 2 and '"1 of 50"' in rst
