"""
One canonical encoding on both sides of drift (issue #28, item 1): a data set against its own
reference is "no drift" for every Arrow type, and the same values arriving another way (pandas vs
Arrow, booleans as CSV / JSON text, int64 vs float64 with nulls, other units and zones) too.
"""

from __future__ import annotations

import datetime as dt
import decimal
import io
import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_mlops.ml.canonical import EncodingError, category_counts, numeric_values
from airflow_provider_mlops.ml.drift import columns_from_batches, detect_drift
from airflow_provider_mlops.ml.profile import build_profile
from airflow_provider_mlops.ml.report import render_html


def _check(profile: dict, table: pa.Table, **kwargs) -> dict:
    columns, rows = columns_from_batches(table.to_batches(max_chunksize=700), profile)
    return detect_drift(profile, columns, rows=rows, **kwargs)


def _weather(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "rain_today": rng.random(rows) < 0.3,
            "windy": rng.random(rows) < 0.5,
            "temp": rng.normal(12, 5, rows),
            "sky": rng.choice(["clear", "cloudy", "overcast"], rows),
        }
    )


def test_booleans_profiled_by_pandas_do_not_drift_against_json_text() -> None:
    """The reported case: the profile from the training frame, the current day as JSON text."""
    reference = _weather(5_000, 0)
    profile = build_profile(reference, numeric=["temp"], categorical=["rain_today", "windy", "sky"])
    day = _weather(3_000, 1)
    lines = "\n".join(
        json.dumps({**r, "rain_today": str(r["rain_today"]).lower(), "windy": str(r["windy"]).upper()})
        for r in day.to_dict(orient="records")
    )
    table = pajson.read_json(io.BytesIO(lines.encode()))
    assert table.schema.field("rain_today").type == pa.string()
    report = _check(profile, table)
    assert report["drifted_features"] == [], report["features"]
    rain = next(f for f in report["features"] if f["name"] == "rain_today")
    assert rain["psi"] < 0.01 and rain["histogram"]["new_categories"] == []
    # the same day as Arrow booleans, and as CSV (Arrow reads True/False as booleans)
    assert _check(profile, pa.Table.from_pandas(day, preserve_index=False))["drifted_features"] == []
    csv = pacsv.read_csv(io.BytesIO(day.to_csv(index=False).encode()))
    assert _check(profile, csv)["drifted_features"] == []


def test_a_version_2_profile_with_pandas_texts_still_compares() -> None:
    """Profiles already in registries stored "True"/"False" and "3.0": canonicalised on read."""
    frame = pd.DataFrame(
        {
            "flag": [True, False, True, True] * 250,
            "code": pd.array([1, 2, None, 3] * 250, dtype="Int64").astype("float64"),
        }
    )
    legacy = {
        "version": 2,
        "rows": 1000,
        "features": {
            name: {
                "kind": "categorical",
                "count": 1000,
                "present": int(frame[name].notna().sum()),
                "missing_share": float(frame[name].isna().mean()),
                "frequencies": {
                    str(k): float(v) for k, v in frame[name].dropna().astype(str).value_counts(True).items()
                },
                "other_share": 0.0,
                "counts": {
                    str(k): int(v) for k, v in frame[name].dropna().astype(str).value_counts().items()
                },
                "other_count": 0,
            }
            for name in ("flag", "code")
        },
    }
    assert set(legacy["features"]["flag"]["counts"]) == {"True", "False"}
    assert set(legacy["features"]["code"]["counts"]) == {"1.0", "2.0", "3.0"}
    current = pa.table(
        {
            "flag": pa.array([True, False, True, True] * 200),
            "code": pa.array([1, 2, None, 3] * 200, type=pa.int64()),
        }
    )
    report = _check(legacy, current)
    assert report["drifted_features"] == [], report["features"]
    assert all(f["psi"] < 1e-6 for f in report["features"])


def test_the_html_report_names_new_and_missing_categories() -> None:
    profile = build_profile(_weather(5_000, 0), numeric=[], categorical=["sky"])
    day = _weather(3_000, 2)
    day["sky"] = day["sky"].replace({"overcast": "fog"})
    report = _check(profile, pa.Table.from_pandas(day, preserve_index=False))
    sky = report["features"][0]
    assert sky["drifted"]
    assert sky["histogram"]["new_categories"] == ["fog"]
    assert sky["histogram"]["missing_categories"] == ["overcast"]
    page = render_html({**report, "drift": True})
    assert "new: fog" in page and "missing: overcast" in page


def test_a_very_high_cardinality_column_against_itself_is_no_drift() -> None:
    ids = pa.table({"id": pa.array([f"user-{i % 3_000}" for i in range(9_000)])})
    profile = build_profile(ids.to_pandas(), numeric=[], categorical=["id"])
    assert len(profile["features"]["id"]["counts"]) == 200 and profile["features"]["id"]["other_share"] > 0.9
    report = _check(profile, ids)
    assert report["drifted_features"] == []
    page = render_html(report)
    assert "new or among the reference&#x27;s rarest" in page


@pytest.mark.parametrize(
    ("values", "texts"),
    [
        ([True, False, None], {"true": 1, "false": 1}),
        (["True", " FALSE", "true"], {"true": 2, "false": 1}),
        ([3, 3.0, decimal.Decimal("3.00")], {"3": 3}),
        ([0.1, decimal.Decimal("0.1"), float("nan"), 1e-05], {"0.1": 2, "0.00001": 1}),
        ([dt.date(2024, 1, 2), None], {"2024-01-02": 1}),
        ([dt.time(3, 4, 5, 500000)], {"03:04:05.5": 1}),
        ([b"abc", b"\xff\x00"], {"abc": 1, "0xff00": 1}),
        (["Clear", "clear", " clear"], {"Clear": 1, "clear": 1, " clear": 1}),
    ],
    ids=["bool", "bool-text", "numbers", "floats", "date", "time", "binary", "text-kept"],
)
def test_canonical_category_texts(values: list, texts: dict) -> None:
    assert category_counts(values).counts == texts


def test_timestamps_meet_across_units_and_zones() -> None:
    instant = dt.datetime(2024, 3, 1, 12, 30, tzinfo=dt.UTC)
    ways = [
        pa.array([instant], type=pa.timestamp("us", tz="UTC")),
        pa.array([instant], type=pa.timestamp("ns", tz="UTC")).cast(pa.timestamp("ns", tz="Europe/Paris")),
        pa.array([instant], type=pa.timestamp("s", tz="UTC")),
        pd.Series(pd.to_datetime([instant]).tz_convert("America/New_York")),
    ]
    assert {tuple(category_counts(w).counts) for w in ways} == {("2024-03-01T12:30:00Z",)}
    assert {float(numeric_values(w)[0]) for w in ways} == {instant.timestamp()}
    naive = pa.array([dt.datetime(2024, 3, 1, 12, 30)], type=pa.timestamp("ms"))
    assert list(category_counts(naive).counts) == ["2024-03-01T12:30:00"]


def test_numeric_text_is_parsed_as_the_reference_type_or_refused_by_name() -> None:
    profile = build_profile(
        pa.table({"day": pa.array([dt.date(2024, 1, d) for d in range(1, 29)] * 20)}),
        numeric=["day"],
        categorical=[],
    )
    assert profile["features"]["day"]["type"] == "date"
    text = pa.table({"day": pa.array([f"2024-01-{d:02d}" for d in range(1, 29)] * 20)})
    assert _check(profile, text)["drifted_features"] == []
    bad = pa.table({"day": pa.array(["2024-01-01", "yesterday"])})
    with pytest.raises(EncodingError, match=r"Column 'day'.*'yesterday'"):
        _check(profile, bad)


# --------------------------------------------------------------------------------------------------
# Property: every Arrow type, against its own reference and through other paths
SAFE_INT = st.integers(min_value=-(2**53), max_value=2**53)
FLOAT = st.floats(allow_nan=True, allow_infinity=True, width=64) | st.sampled_from([0.0, -0.0, 1e308, 5e-324])
TIMESTAMP = st.datetimes(min_value=dt.datetime(1678, 1, 1), max_value=dt.datetime(2261, 12, 31))
TEXT = st.sampled_from(["a", "A", " a", "a ", "b", "True", "false", "", "ünï 🚀", "x" * 40]) | st.text(
    max_size=8
)

TYPES: dict[str, tuple[pa.DataType, st.SearchStrategy, bool]] = {
    # name: (Arrow type, values, can be a numeric feature)
    "bool": (pa.bool_(), st.booleans(), True),
    "int64": (pa.int64(), SAFE_INT, True),
    "int8": (pa.int8(), st.integers(-128, 127), True),
    "float64": (pa.float64(), FLOAT, True),
    "float32": (pa.float32(), st.floats(width=32, allow_nan=True), True),
    "decimal": (
        pa.decimal128(20, 4),
        st.decimals(min_value=-(10**15), max_value=10**15, places=4, allow_nan=False),
        True,
    ),
    "date": (pa.date32(), st.dates(min_value=dt.date(1, 1, 1), max_value=dt.date(9999, 12, 31)), True),
    "time": (pa.time64("us"), st.times(), True),
    "timestamp": (pa.timestamp("us"), TIMESTAMP, True),
    "timestamp_tz": (pa.timestamp("ns", tz="UTC"), TIMESTAMP.map(lambda d: d.replace(tzinfo=dt.UTC)), True),
    "duration": (
        pa.duration("ms"),
        st.timedeltas(min_value=dt.timedelta(days=-999), max_value=dt.timedelta(days=999)),
        True,
    ),
    "string": (pa.string(), TEXT, False),
    "binary": (pa.binary(), st.binary(max_size=6), False),
    "list": (pa.list_(pa.int64()), st.lists(st.none() | SAFE_INT, max_size=3), False),
}
SETTINGS = settings(
    max_examples=40, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck), database=None
)


@st.composite
def columns(draw: st.DrawFn) -> tuple[str, pa.Array]:
    kind = draw(st.sampled_from(sorted(TYPES)))
    data_type, values, _ = TYPES[kind]
    shape = draw(st.sampled_from(["mixed", "all-null", "constant", "distinct"]))
    rows = draw(st.integers(min_value=1, max_value=60))
    if shape == "all-null":
        column = [None] * rows
    elif shape == "constant":
        column = [draw(values)] * rows
    elif shape == "distinct":
        column = draw(st.lists(values, min_size=rows, max_size=rows))
    else:
        pool = draw(st.lists(values, min_size=1, max_size=5))
        column = draw(st.lists(st.none() | st.sampled_from(pool), min_size=rows, max_size=rows))
    array = pa.array(column, type=data_type)
    if draw(st.booleans()):  # above small_sample rows: judged by effect size, not p-values
        array = pa.concat_arrays([array] * (1 + 1_200 // rows))
    return kind, array


@st.composite
def tables(draw: st.DrawFn) -> tuple[pa.Table, list[str], list[str]]:
    """A table of 1-5 columns of any types, and which of them a profile takes as numeric / categorical."""
    rows = draw(st.integers(min_value=1, max_value=40))
    kinds = draw(st.lists(st.sampled_from(sorted(TYPES)), min_size=1, max_size=5))
    arrays, numeric, categorical = {}, [], []
    for i, kind in enumerate(kinds):
        data_type, values, _ = TYPES[kind]
        pool = draw(st.lists(values, min_size=1, max_size=6))
        column = draw(st.lists(st.none() | st.sampled_from(pool), min_size=rows, max_size=rows))
        name = f"{kind}_{i}"
        arrays[name] = pa.array(column, type=data_type)
        (numeric if draw(st.sampled_from(_feature_kinds(kind))) == "numeric" else categorical).append(name)
    table = pa.table(arrays)
    if draw(st.booleans()):
        table = pa.concat_tables([table] * (1 + 1_200 // rows))
    return table, numeric, categorical


@SETTINGS
@given(drawn=tables())
def test_a_table_of_mixed_types_against_its_own_reference_is_no_drift(drawn: tuple) -> None:
    table, numeric, categorical = drawn
    for reference in (table, table.to_pandas()):
        profile = build_profile(reference, numeric=numeric, categorical=categorical)
        json.loads(json.dumps(profile, allow_nan=False))  # a strict JSON artifact
        _no_drift(profile, table)


def test_a_thousand_features_against_their_own_reference_is_no_drift() -> None:
    rng = np.random.default_rng(0)
    kinds = ["float64", "int64", "bool", "string", "date"]
    arrays = {}
    for i in range(1_000):
        kind = kinds[i % len(kinds)]
        if kind == "float64":
            arrays[f"f{i}"] = pa.array(rng.normal(size=300))
        elif kind == "int64":
            arrays[f"f{i}"] = pa.array(rng.integers(0, 9, 300))
        elif kind == "bool":
            arrays[f"f{i}"] = pa.array(rng.random(300) < 0.4)
        elif kind == "string":
            arrays[f"f{i}"] = pa.array(rng.choice(["a", "b", "c"], 300))
        else:
            arrays[f"f{i}"] = pa.array(rng.integers(19_000, 19_100, 300).astype("int32")).cast(pa.date32())
    table = pa.table(arrays)
    numeric = [n for i, n in enumerate(arrays) if kinds[i % 5] in ("float64", "int64")]
    categorical = [n for n in arrays if n not in set(numeric)]
    profile = build_profile(table.to_pandas(), numeric=numeric, categorical=categorical)
    report = _check(profile, table)
    assert len(report["features"]) == 1_000 and report["drifted_features"] == []


def _feature_kinds(kind: str) -> list[str]:
    return ["numeric", "categorical"] if TYPES[kind][2] else ["categorical"]


def _no_drift(profile: dict, current: pa.Table) -> None:
    report = _check(profile, current)
    assert not report["dataset_drift"]
    drifted = [(f["name"], f["reasons"], f["histogram"]) for f in report["features"] if f["drifted"]]
    assert drifted == []


@SETTINGS
@given(column=columns())
def test_a_data_set_against_its_own_reference_is_no_drift(column: tuple[str, pa.Array]) -> None:
    kind, array = column
    table = pa.table({"x": array})
    for feature in _feature_kinds(kind):
        spec = {
            "numeric": ["x"] if feature == "numeric" else [],
            "categorical": ["x"] if feature != "numeric" else [],
        }
        _no_drift(build_profile(table, **spec), table)  # Arrow on both sides
        frame = table.to_pandas()  # the training side: the table through pandas
        _no_drift(build_profile(frame, **spec), table)


@SETTINGS
@given(
    values=st.lists(st.none() | SAFE_INT, min_size=1, max_size=60),
    flags=st.lists(st.none() | st.booleans(), min_size=1, max_size=60),
)
def test_other_paths_to_the_same_values_are_no_drift(values: list, flags: list) -> None:
    ints = pa.table({"n": pa.array(values, type=pa.int64()), "c": pa.array(values, type=pa.int64())})
    floats = pa.table({"n": pa.array(values, type=pa.float64()), "c": pa.array(values, type=pa.float64())})
    profile = build_profile(ints.to_pandas(), numeric=["n"], categorical=["c"])  # pandas: float64 with NaN
    _no_drift(profile, ints)
    _no_drift(profile, floats)
    texts = pa.table({"f": pa.array([None if f is None else str(f) for f in flags])})  # "True"/"False"
    lower = pa.table({"f": pa.array([None if f is None else str(f).lower() for f in flags])})
    booleans = pa.table({"f": pa.array(flags, type=pa.bool_())})
    for reference in (booleans, booleans.to_pandas()):
        for spec in ({"numeric": [], "categorical": ["f"]}, {"numeric": ["f"], "categorical": []}):
            profile = build_profile(reference, **spec)
            for current in (booleans, texts, lower):
                _no_drift(profile, current)


def test_a_field_that_appears_late_counts_as_missing_where_it_is_absent() -> None:
    frame = _weather(2_000, 0)
    profile = build_profile(frame, numeric=["temp"], categorical=["sky"])
    table = pa.Table.from_pandas(frame, preserve_index=False)
    early = table.slice(0, 1_000).drop_columns(["temp", "sky"])
    batches = [*early.to_batches(), *table.slice(1_000).to_batches()]
    columns, rows = columns_from_batches(batches, profile)
    report = detect_drift(profile, columns, rows=rows)
    for feature in report["features"]:
        if feature["name"] in ("temp", "sky"):
            assert feature["missing_current"] == 0.5 and feature["drifted"], feature
            assert any("missing share 0.0% -> 50.0%" in r for r in feature["reasons"])
