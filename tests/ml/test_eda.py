"""The data profile (ml/eda): statistics against pandas / scipy, any batch split, escaping, warnings."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import math
import re

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_mlops.ml.eda import ProfileOptions, profile_batches, profile_table, render_html
from airflow_provider_mlops.ml.eda.profiler import correlation_ratio, cramers_v

NAMES = st.sampled_from(["a", "<script>alert(1)</script>", "q\"uote'", "ünï ✓", "", "x y", "&amp;"])
FLOATS = st.one_of(
    st.none(),
    st.floats(min_value=-1e12, max_value=1e12),
    st.floats(min_value=-1e3, max_value=1e3),
    st.sampled_from([0.0, -0.0, 1.5, math.nan, math.inf, -math.inf]),
)


@st.composite
def tables(draw: st.DrawFn) -> pa.Table:
    rows = draw(st.integers(1, 60))
    names = draw(st.lists(NAMES, min_size=1, max_size=5, unique=True))
    columns: dict[str, pa.Array] = {}
    for name in names:
        kind = draw(
            st.sampled_from(["float", "int8", "int64", "uint32", "str", "bool", "ts", "null", "const"])
        )
        if kind == "float":
            values = draw(st.lists(FLOATS, min_size=rows, max_size=rows))
            columns[name] = pa.array(values, pa.float64())
        elif kind in ("int8", "int64", "uint32"):
            typ = {"int8": pa.int8(), "int64": pa.int64(), "uint32": pa.uint32()}[kind]
            lo, hi = {"int8": (-128, 127), "int64": (-(2**62), 2**62), "uint32": (0, 2**32 - 1)}[kind]
            values = draw(st.lists(st.one_of(st.none(), st.integers(lo, hi)), min_size=rows, max_size=rows))
            columns[name] = pa.array(values, typ)
        elif kind == "str":
            values = draw(
                st.lists(
                    st.one_of(st.none(), st.sampled_from(["", "<b>", "x", "é", "\u2028"])),
                    min_size=rows,
                    max_size=rows,
                )
            )
            columns[name] = pa.array(values, pa.string())
        elif kind == "bool":
            columns[name] = pa.array(
                draw(st.lists(st.one_of(st.none(), st.booleans()), min_size=rows, max_size=rows))
            )
        elif kind == "ts":
            values = draw(
                st.lists(
                    st.one_of(
                        st.none(),
                        st.datetimes(min_value=dt.datetime(1990, 1, 1), max_value=dt.datetime(2040, 1, 1)),
                    ),
                    min_size=rows,
                    max_size=rows,
                )
            )
            columns[name] = pa.array(values, pa.timestamp("us"))
        elif kind == "null":
            columns[name] = pa.array([None] * rows, pa.float64())
        else:
            columns[name] = pa.array([7] * rows, pa.int64())
    return pa.table(columns)


def _split(table: pa.Table, cuts: list[int]) -> list[pa.RecordBatch]:
    bounds = sorted({0, table.num_rows, *(c % (table.num_rows + 1) for c in cuts)})
    return [b for lo, hi in itertools.pairwise(bounds) for b in table.slice(lo, hi - lo).to_batches()]


def _same(a: object, b: object) -> None:
    """Equal, floats up to rounding (moments merged in another order)."""
    if isinstance(a, dict) and isinstance(b, dict):
        assert a.keys() == b.keys()
        for key in a:
            _same(a[key], b[key])
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _same(x, y)
    elif isinstance(a, float) and isinstance(b, float):
        assert a == pytest.approx(b, rel=1e-9, abs=1e-12)
    else:
        assert a == b


def _check_numeric(summary: dict, series: pd.Series) -> None:
    values = pd.to_numeric(series, errors="coerce").astype("float64")
    finite = values[np.isfinite(values)]
    assert summary["missing"] == int(series.isna().sum()), "nulls + NaN, like pandas"
    assert summary["pos_inf"] == int(np.isposinf(values).sum())
    assert summary["neg_inf"] == int(np.isneginf(values).sum())
    assert summary["finite"] == len(finite)
    if len(finite):
        assert summary["min"] == pytest.approx(finite.min()) and summary["max"] == pytest.approx(finite.max())
        # float64 moments of values near 2**62 carry rounding of that size: compare against the scale
        scale = max(1.0, float(finite.abs().max()))
        assert summary["mean"] == pytest.approx(finite.mean(), rel=1e-9, abs=max(1e-6, 1e-12 * scale))
        if len(finite) > 1:
            assert summary["std"] == pytest.approx(finite.std(ddof=1), rel=1e-6, abs=1e-6)
        expected_skew = finite.skew()
        if (
            len(finite) > 2
            and np.isfinite(expected_skew)
            and finite.std() > 1e-6 * max(1.0, finite.abs().max())
        ):
            assert summary["skewness"] == pytest.approx(expected_skew, rel=1e-5, abs=1e-5)
        quantiles = np.quantile(finite.to_numpy(), [0.05, 0.5, 0.95])
        got = [summary["quantiles"][k] for k in ("0.05", "0.5", "0.95")]
        assert got == pytest.approx(list(quantiles), rel=1e-9, abs=1e-9), "the sample holds every row here"
        assert sum(summary["histogram"]["counts"]) == len(finite)
        q1, q3 = np.percentile(finite, [25, 75])
        low, high = q1 - 1.5 * (q3 - q1), q3 + 1.5 * (q3 - q1)
        assert summary["outliers"]["count"] == int(((finite < low) | (finite > high)).sum())
    else:
        assert summary["min"] is None and "histogram" not in summary


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(table=tables(), cuts=st.lists(st.integers(0, 100), max_size=4))
def test_statistics_match_pandas_for_any_batch_split(table: pa.Table, cuts: list[int]) -> None:
    one_shot = profile_batches(lambda: table.to_batches())
    split = _split(table, cuts)
    streamed = profile_batches(lambda: split)
    assert json.loads(json.dumps(one_shot)) == one_shot, "JSON-ready (no NaN, no objects)"

    frame = table.to_pandas()
    assert one_shot["rows"] == streamed["rows"] == len(frame)
    for a, b in zip(one_shot["column_summaries"], streamed["column_summaries"], strict=True):
        # merged float64 moments differ by rounding relative to the values' scale (ints near 2**62)
        ends = [abs(v) for v in (a.get("min"), a.get("max")) if isinstance(v, int | float)]
        scale = max([1.0, *ends])
        for key, value in a.items():
            if isinstance(value, float):
                assert b[key] == pytest.approx(value, rel=1e-9, abs=max(1e-9, 1e-12 * scale)), key
            elif key != "quantiles":
                assert b[key] == value, key
    assert one_shot["duplicates"]["rows"] == streamed["duplicates"]["rows"]

    for summary, name in zip(one_shot["column_summaries"], table.column_names, strict=True):
        series = frame[name]
        column = table[name]
        assert summary["name"] == name
        assert summary["missing"] == column.null_count + (
            int(pd.isna(series).sum()) - column.null_count if pa.types.is_floating(column.type) else 0
        )
        non_missing = series.dropna()
        if summary["kind"] == "numeric":
            _check_numeric(summary, series)
            if pa.types.is_integer(column.type) and len(non_missing):
                import pyarrow.compute as pc

                low, high = pc.min_max(column).values()
                assert (summary["min"], summary["max"]) == (low.as_py(), high.as_py()), "integers stay exact"
        if summary["kind"] in ("numeric", "categorical", "boolean", "datetime"):
            if pa.types.is_integer(column.type):  # pandas would turn big ints into (merged) floats
                import pyarrow.compute as pc

                expected = pc.count_distinct(column, mode="only_valid").as_py()
            else:
                expected = non_missing.nunique()
            assert summary["distinct"] == expected, name
        if summary["kind"] in ("categorical", "boolean"):
            counts = non_missing.astype(str).str.lower() if summary["kind"] == "boolean" else non_missing
            top = counts.value_counts()
            assert sum(t["count"] for t in summary["top"]) == top.iloc[: len(summary["top"])].sum()
        if summary["kind"] == "datetime" and len(non_missing):
            assert summary["min"] == non_missing.min().isoformat()

    def canonical(value: object) -> object:  # the row hash's equality: -0.0 == 0.0, NaN == NaN, null apart
        if isinstance(value, float):
            return "nan" if value != value else (0.0 if value == 0 else value)
        return value

    seen: set = set()
    duplicates = 0
    for row in table.to_pylist():
        key = tuple(canonical(v) for v in row.values())
        duplicates += key in seen
        seen.add(key)
    assert one_shot["duplicates"]["rows"] == duplicates

    page = render_html(one_shot)
    _assert_no_markup_from_data(page, table)


def _assert_no_markup_from_data(page: str, table: pa.Table) -> None:
    assert "<script" not in page.lower(), "data reaches the page escaped"
    assert "http://" not in page and "https://" not in page, "self-contained: no external URL"
    for name in table.column_names:
        if "<" in name or '"' in name:
            assert name not in page


def test_hostile_names_and_values_are_escaped() -> None:
    table = pa.table(
        {
            "<script>alert('x')</script>": pa.array(
                ["<img src=x onerror=alert(1)>", '"><svg onload=1>', "", None]
            ),
            "": pa.array([1.0, 2.0, float("nan"), float("inf")]),
            "ünï ✓\u2028": pa.array(["a", "a", "a", "a"]),
            "label": pa.array(["<b id=x>", "'", "<b id=x>", "'"]),
        }
    )
    profile = profile_table(table, target="label")
    page = render_html(profile, title="<title>")
    assert (
        "<img" not in page and "<svg onload" not in page and "<script>" not in page and "<b id=x>" not in page
    )
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "&quot;&gt;&lt;svg onload=1&gt;" in page
    assert "ünï ✓" in page and "(empty name)" in page and "(empty string)" in page
    assert re.search(r"<title>Data profile|<title>&lt;title&gt;", page)
    summary = {c["name"]: c for c in profile["column_summaries"]}
    assert summary[""]["nan"] == 1 and summary[""]["pos_inf"] == 1
    assert summary["<script>alert('x')</script>"]["empty_strings"] == 1


def test_warnings_name_constant_skewed_missing_high_cardinality_duplicates_and_leakage() -> None:
    rng = np.random.default_rng(1)
    n = 5000
    frame = pd.DataFrame(
        {
            "const": np.ones(n),
            "skewed": rng.lognormal(0, 1.5, n),
            "holes": np.where(rng.random(n) < 0.5, np.nan, rng.normal(size=n)),
            "ident": [f"user-{i}" for i in range(n)],
            "noise": rng.normal(size=n),
            "plan": rng.choice(["a", "b", "c"], n),
        }
    )
    frame["churned"] = rng.random(n) < 0.3
    frame["leak"] = frame["churned"].astype(float) * 10 + rng.random(n)
    frame = pd.concat([frame, frame.iloc[:40]], ignore_index=True)  # 40 duplicate rows
    profile = profile_table(frame, target="churned")
    kinds = {(w["kind"], w["column"]) for w in profile["warnings"]}
    assert {
        ("constant", "const"),
        ("skewed", "skewed"),
        ("many_missing", "holes"),
        ("high_cardinality", "ident"),
        ("leakage", "leak"),
        ("duplicates", None),
    } <= kinds
    assert not any(k == "leakage" and c in ("noise", "plan", "skewed") for k, c in kinds), kinds
    assert profile["duplicates"] == {**profile["duplicates"], "rows": 40, "exact": True}
    relations = {e["feature"]: e for e in profile["target_relations"]["features"]}
    assert relations["ident"].get("skipped", "").startswith("high cardinality")
    assert relations["leak"]["score"] > 0.95 and relations["noise"]["score"] < 0.2


def test_regression_target_uses_correlations_and_correlation_ratio() -> None:
    rng = np.random.default_rng(2)
    n = 3000
    x = rng.normal(size=n)
    group = rng.choice(["lo", "hi"], n)
    y = 3 * x + np.where(group == "hi", 5, 0) + rng.normal(size=n) * 0.1
    frame = pd.DataFrame({"x": x, "group": group, "y": y, "z": rng.normal(size=n)})
    profile = profile_table(frame, target="y")
    assert profile["target_relations"]["kind"] == "numeric"
    relations = {e["feature"]: e for e in profile["target_relations"]["features"]}
    assert relations["x"]["pearson"] == pytest.approx(frame.x.corr(frame.y), abs=1e-9)
    assert relations["x"]["spearman"] == pytest.approx(frame.x.corr(frame.y, method="spearman"), abs=1e-9)
    assert relations["group"]["correlation_ratio"] == pytest.approx(correlation_ratio(frame.group, frame.y))
    corr = profile["correlations"]
    i, j = corr["columns"].index("x"), corr["columns"].index("y")
    assert corr["pearson"][i][j] == pytest.approx(frame.x.corr(frame.y), abs=1e-9)
    assert corr["spearman"][i][j] == pytest.approx(frame.x.corr(frame.y, method="spearman"), abs=1e-9)


def test_pairwise_correlations_match_pandas_with_missing_values() -> None:
    rng = np.random.default_rng(3)
    n = 2000
    frame = pd.DataFrame({"a": rng.normal(size=n)})
    frame["b"] = frame.a * 0.5 + rng.normal(size=n)
    frame["c"] = rng.gamma(2, size=n)
    frame.loc[rng.random(n) < 0.2, "b"] = np.nan
    frame.loc[rng.random(n) < 0.1, "c"] = np.nan
    corr = profile_table(frame)["correlations"]
    expected = frame.corr()
    for i, a in enumerate(corr["columns"]):
        for j, b in enumerate(corr["columns"]):
            assert corr["pearson"][i][j] == pytest.approx(expected.loc[a, b], abs=1e-9)


def test_cramers_v_matches_scipy_bias_corrected() -> None:
    from scipy.stats.contingency import association, crosstab

    rng = np.random.default_rng(4)
    x = rng.choice(list("abcd"), 4000)
    y = np.where(rng.random(4000) < 0.6, x, rng.choice(list("abcd"), 4000))
    table = crosstab(x, y).count
    n = table.sum()
    chi2 = (
        (table - table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / n) ** 2
        / (table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / n)
    ).sum()
    r, k = table.shape
    phi2c = max(0, chi2 / n - (k - 1) * (r - 1) / (n - 1))
    expected = math.sqrt(phi2c / min(k - (k - 1) ** 2 / (n - 1) - 1, r - (r - 1) ** 2 / (n - 1) - 1))
    assert cramers_v(x, y) == pytest.approx(expected)
    assert cramers_v(x, y) == pytest.approx(association(table, method="cramer"), abs=0.01), (
        "close to uncorrected"
    )
    assert cramers_v(x, x) == pytest.approx(1.0)


def test_sampled_and_sketched_figures_say_so_and_stay_close() -> None:
    rng = np.random.default_rng(5)
    n = 60_000
    frame = pd.DataFrame({"v": rng.normal(size=n), "id": np.arange(n).astype(str)})
    frame = pd.concat([frame, frame.iloc[:5000]], ignore_index=True)
    options = ProfileOptions(sample_size=5000, distinct_exact_limit=1000, duplicate_hash_limit=20_000)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    profile = profile_batches(lambda: table.to_batches(max_chunksize=7000), options=options)
    assert profile["sampling"]["rows"] == 5000 and profile["sampling"]["exact"] is False
    v = profile["column_summaries"][0]
    assert v["distinct_exact"] is False and v["distinct"] == pytest.approx(n, rel=0.06)
    assert v["quantiles"]["0.5"] == pytest.approx(frame.v.median(), abs=0.06)
    assert v["mean"] == pytest.approx(frame.v.mean(), rel=1e-9), "moments stay exact"
    dup = profile["duplicates"]
    assert dup["exact"] is False and dup["rows"] == pytest.approx(5000, rel=0.2) and "scaled" in dup["method"]
    again = profile_batches(lambda: table.to_batches(max_chunksize=3001), options=options)
    _same(again["column_summaries"], profile["column_summaries"])  # same sample and sketch for any split
    assert again["duplicates"] == dup


def test_empty_and_mismatched_inputs_fail_with_a_named_cause() -> None:
    with pytest.raises(ValueError, match="no batches"):
        profile_batches(lambda: [])
    with pytest.raises(KeyError, match=r"target 'nope'"):
        profile_table(pd.DataFrame({"a": [1]}), target="nope")
    with pytest.raises(ValueError, match=r"outliers\.method"):
        profile_table(pd.DataFrame({"a": [1.0]}), options=ProfileOptions(outliers={"method": "mad"}))


def test_zscore_rule_counts_against_exact_mean_and_std() -> None:
    values = np.r_[np.zeros(50), 100.0, -100.0]
    profile = profile_table(
        pd.DataFrame({"v": values}), options=ProfileOptions(outliers={"method": "zscore", "factor": 3})
    )
    out = profile["column_summaries"][0]["outliers"]
    mean, std = values.mean(), values.std()
    assert out["lower"] == pytest.approx(mean - 3 * std) and out["count"] == int(
        (np.abs(values - mean) > 3 * std).sum()
    )


def test_values_at_the_float64_limits_do_not_break_the_profile() -> None:
    table = pa.table({"v": pa.array([1e308, -1e308, 5e307, 1e-308, None, math.nan])})
    profile = profile_table(table)
    v = profile["column_summaries"][0]
    assert v["min"] == -1e308 and v["max"] == 1e308 and v["finite"] == 4 and v["missing"] == 2
    assert sum(v["histogram"]["counts"]) == 4
    json.dumps(profile, allow_nan=False)
    render_html(profile)
