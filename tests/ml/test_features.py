"""
Feature specs on data shaped like a warehouse table (issue #28): date / time / timestamp columns never
reach an encoder raw, ``time_column`` is not a feature unless listed, and ``derive`` expressions are
computed inside the model from the raw columns, identically for any caller, and the model stays
loadable by the trusted (skops) loader.
"""

from __future__ import annotations

import datetime as dt
import logging
import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_mlops.ml.features import FeatureSpecError, build_features, temporal_columns
from airflow_provider_mlops.ml.serialization import LoadPolicy, deserialize_verified, dump_model, sha256
from airflow_provider_mlops.ml.training import train


def weather(n: int = 240, seed: int = 0) -> pd.DataFrame:
    """Daily observations as a Parquet file reads back: DATE as datetime.date objects, a tz timestamp."""
    rng = np.random.default_rng(seed)
    days = [dt.date(2024, 1, 1) + dt.timedelta(days=i) for i in range(n)]
    table = pa.table(
        {
            "date": pa.array(days, pa.date32()),
            "observed_at": pa.array(
                [dt.datetime(d.year, d.month, d.day, 6 + i % 12, tzinfo=dt.UTC) for i, d in enumerate(days)],
                pa.timestamp("us", tz="UTC"),
            ),
            "sunrise": pa.array([dt.time(6, i % 60) for i in range(n)], pa.time64("us")),
            "temp": rng.normal(12, 8, n),
            "rain_mm": rng.integers(0, 4, n),  # zeros: a division by zero in the derive tests
            "humidity": rng.uniform(30, 100, n),
            "windy": rng.random(n) < 0.3,
            "station": rng.choice(["north", "south", "east"], n),
        }
    )
    frame = table.to_pandas()
    frame.loc[rng.random(n) < 0.05, "temp"] = np.nan
    frame["sky"] = np.where(frame.humidity.fillna(60) > 70, "rain", np.where(frame.temp > 12, "sun", "cloud"))
    return frame


def _trusted_roundtrip(model):
    blob, fmt, _ = dump_model(model)
    assert fmt == "skops"  # nothing outside the allowlist (datetime.date was, before)
    loaded, _ = deserialize_verified(blob, expected_sha256=sha256(blob), policy=LoadPolicy(), label="t")
    return loaded


def test_the_object_date_column_is_temporal_as_pandas_reads_it() -> None:
    frame = weather(20)
    assert frame["date"].dtype == object  # how pyarrow hands a date32 column to pandas
    assert temporal_columns(frame) == {"date": "date", "observed_at": "timestamp", "sunrise": "time"}


def test_time_column_and_dates_are_not_features_and_the_model_stays_skops(
    caplog: pytest.LogCaptureFixture,
) -> None:
    frame = weather()
    with caplog.at_level(logging.INFO, logger="airflow_provider_mlops.ml.features"):
        result = train(
            frame,
            label_column="sky",
            time_column="date",
            split_strategy="time",
            estimator="sklearn.linear_model.LogisticRegression",
            estimator_params={"max_iter": 500},
        )
    used = " ".join(result.selected_features)
    for column in ("date", "observed_at", "sunrise"):
        assert column not in used
        assert column not in result.x_test.columns
    logged = caplog.text
    assert "'date'" in logged and "time_column" in logged
    assert "'observed_at'" in logged and "'sunrise'" in logged
    loaded = _trusted_roundtrip(result.pipeline)
    assert list(loaded.predict(result.x_test)) == list(result.pipeline.predict(result.x_test))


def test_calendar_features_on_request_with_their_values() -> None:
    frame = weather()
    spec = {"datetime": {"columns": ["date", "observed_at"], "features": ["month", "day_of_year", "hour"]}}
    result = train(
        frame,
        label_column="sky",
        features=spec,
        time_column="date",
        split_strategy="time",
        estimator="sklearn.linear_model.LogisticRegression",
        estimator_params={"max_iter": 500},
    )
    names = result.selected_features
    assert {"numeric__date_month", "numeric__date_day_of_year", "numeric__observed_at_hour"} <= set(names)
    assert "numeric__date_hour" not in names  # a date has no hour: not derived
    assert list(result.x_test.columns[:2]) == ["date", "observed_at"]  # raw inputs of the model
    derive = result.pipeline.named_steps["derive"]
    rows = frame.iloc[[0, 45, 100]]
    out = derive.transform(rows)
    assert out["date_month"].tolist() == [1.0, 2.0, 4.0]
    assert out["date_day_of_year"].tolist() == [1.0, 46.0, 101.0]
    assert out["observed_at_hour"].tolist() == [6.0, 15.0, 10.0]
    loaded = _trusted_roundtrip(result.pipeline)
    assert np.array_equal(loaded.predict_proba(result.x_test), result.pipeline.predict_proba(result.x_test))


def test_a_date_listed_as_categorical_is_refused_with_the_way_out() -> None:
    frame = weather(30)
    with pytest.raises(FeatureSpecError, match=r"categorical.columns lists \['date'\].*'datetime'"):
        build_features(frame, {"categorical": {"columns": ["station", "date"]}}, target="sky")
    with pytest.raises(FeatureSpecError, match=r"datetime.columns lists \['station'\]"):
        build_features(frame, {"datetime": {"columns": ["station"], "features": ["month"]}}, target="sky")
    with pytest.raises(FeatureSpecError, match="'fortnight'"):
        build_features(frame, {"datetime": {"features": ["fortnight"]}}, target="sky")


def test_a_time_column_that_is_not_a_date_is_a_feature_only_when_listed() -> None:
    frame = weather(40).assign(day_index=np.arange(40))
    plan = build_features(frame, None, target="sky", time_column="day_index")
    assert "day_index" not in plan.numeric and "day_index" in plan.left_out
    plan = build_features(
        frame, {"numeric": {"columns": ["temp", "day_index"]}}, target="sky", time_column="day_index"
    )
    assert plan.numeric == ["temp", "day_index"]


DERIVE = {
    "rain_per_humidity": "rain_mm / humidity",
    "humidity_per_rain": "humidity / rain_mm",  # rain_mm is 0 on about a quarter of the rows
    "warm_and_dry": "temp > 15 AND rain_mm = 0",
    "station_code": "upper(station)",
    "double_ratio": "humidity_per_rain * 2",  # reads an earlier derived column
}


def test_derived_features_are_computed_inside_the_model_from_the_raw_columns() -> None:
    frame = weather()
    result = train(
        frame,
        label_column="sky",
        features={"derive": DERIVE, "drop": ["humidity"]},
        estimator="sklearn.linear_model.LogisticRegression",
        estimator_params={"max_iter": 500},
    )
    # The model takes raw columns only; humidity is dropped as a feature but read by expressions.
    assert list(result.x_test.columns) == ["temp", "rain_mm", "humidity", "windy", "station"]
    assert list(result.pipeline.feature_names_in_) == list(result.x_test.columns)
    assert {"numeric__humidity_per_rain", "numeric__warm_and_dry", "categorical__station_code_NORTH"} <= set(
        result.selected_features
    )
    assert "numeric__humidity" not in result.selected_features
    derive = result.pipeline.named_steps["derive"]
    rows = frame.iloc[:30]
    out = derive.transform(rows)
    zero = (rows.rain_mm == 0).to_numpy()
    assert zero.any() and (~zero).any()
    assert np.isnan(out["humidity_per_rain"].to_numpy()[zero]).all()  # division by zero: missing
    expected = (rows.humidity / rows.rain_mm).to_numpy()[~zero]
    assert np.array_equal(out["humidity_per_rain"].to_numpy()[~zero], expected)
    assert np.array_equal(out["double_ratio"].to_numpy()[~zero], expected * 2)
    warm = ((rows.temp > 15) & zero).astype(float).where(rows.temp.notna() | ~zero)  # null and false: false
    assert np.array_equal(out["warm_and_dry"].to_numpy(), warm.to_numpy(), equal_nan=True)
    assert out["station_code"].tolist() == rows.station.str.upper().tolist()

    loaded = _trusted_roundtrip(result.pipeline)
    assert np.array_equal(loaded.predict_proba(result.x_test), result.pipeline.predict_proba(result.x_test))


def test_derived_features_are_the_same_from_json_shaped_inputs() -> None:
    """What the server parses (float64 for integers and booleans, ISO text for dates) derives the same."""
    frame = weather(60)
    spec = {
        "derive": {"r": "humidity / rain_mm", "w": "CASE WHEN windy THEN 1 ELSE 0 END"},
        "datetime": {"features": ["month", "hour"]},
    }
    plan = build_features(frame, spec, target="sky")
    step = plan.derive.fit(frame[plan.inputs])
    x = frame[plan.inputs]
    served = x.assign(
        rain_mm=x.rain_mm.astype("float64"),
        windy=x.windy.astype("float64"),
        date=x.date.map(lambda t: t.isoformat()),
        observed_at=x.observed_at.map(lambda t: t.isoformat()),
        sunrise=x.sunrise.map(lambda t: t.isoformat()),
    )
    assert {"date_month", "observed_at_hour", "sunrise_hour"} <= set(step.get_feature_names_out())
    assert step.transform(served).equals(step.transform(x).assign(**{c: served[c] for c in served}))
    with pytest.raises(ValueError, match=r"'observed_at'.*ISO 8601"):
        step.transform(x.assign(observed_at=np.arange(60) * 1000))
    with pytest.raises(ValueError, match="'rain_mm' was int64"):
        step.transform(x.assign(rain_mm=x.rain_mm + 0.5))


def test_derive_spec_errors_name_the_expression() -> None:
    frame = weather(30)
    with pytest.raises(FeatureSpecError, match=r"'leak'.*target 'sky'"):
        build_features(frame, {"derive": {"leak": "sky == 'sun'"}}, target="sky")
    with pytest.raises(FeatureSpecError, match=r"derive 'x'.*\['tmep'\].*did you mean \"temp\""):
        build_features(frame, {"derive": {"x": "tmep * 2"}}, target="sky")
    with pytest.raises(FeatureSpecError, match=r"\['temp'\] are already columns"):
        build_features(frame, {"derive": {"temp": "humidity * 2"}}, target="sky")
    with pytest.raises(FeatureSpecError, match=r"'next_day'.*date32"):
        build_features(frame, {"derive": {"next_day": "date"}}, target="sky")
    with pytest.raises(FeatureSpecError, match="derive must map"):
        build_features(frame, {"derive": ["temp * 2"]}, target="sky")


def test_the_expression_language_reports_columns_and_can_make_zero_divisions_null() -> None:
    from airflow_provider_mlops.etl.expressions import ExpressionError, evaluate_column, referenced_columns

    text = 'CASE WHEN "rain mm" = 0 THEN NULL ELSE humidity / "rain mm" END + length(lower(x)) + 1'
    assert referenced_columns(text) == ["rain mm", "humidity", "x"]
    table = pa.table({"a": [1, 2, None, 7], "b": [0, 4, 1, -2]})
    with pytest.raises(ExpressionError, match="Division by zero"):
        evaluate_column(table, "a / b")  # the ETL's rule is unchanged
    assert evaluate_column(table, "a / b", zero_division="null").to_pylist() == [None, 0.5, None, -3.5]
    assert evaluate_column(table, "a % b", zero_division="null").to_pylist() == [None, 2, None, 1]


def test_a_model_saved_with_the_retired_expression_language_asks_to_be_retrained() -> None:
    from airflow_provider_mlops.ml.transformers import DerivedFeatures

    frame = pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0]})
    step = DerivedFeatures(derive=[["s", "a + b"]]).fit(frame)
    assert step.language == "duckdb"  # what new models store
    assert step.transform(frame)["s"].tolist() == [4.0, 6.0]
    step.language = "arrow"  # a model trained before issue #24
    loaded = _trusted_roundtrip(step)
    with pytest.raises(ValueError, match=r"expression language 'arrow'.*re-train the model"):
        loaded.transform(frame)


def _derive_step():
    from airflow_provider_mlops.ml.transformers import DerivedFeatures

    train_rows = pa.table(
        {
            "a": pa.array([0, 1, 2, 3, -4], pa.int64()),
            "b": [0.5, -1.0, 2.0, 0.0, 3.0],
            "flag": [True, False, True, False, True],
            "s": ["x", "Y", " z", "x", "y"],
            "d": pa.array([dt.date(2024, m, 1) for m in (1, 3, 5, 7, 9)], pa.date32()),
        }
    ).to_pandas()
    step = DerivedFeatures(
        derive=[
            ["ratio", "b / a"],
            ["rest", "a % 3"],
            ["picked", "CASE WHEN flag THEN a ELSE 0 END"],
            ["low", "lower(trim(s))"],
            ["twice", "coalesce(b, 0) * 2 + ratio"],
        ],
        calendar=[["d", "month"], ["d", "day_of_week"]],
    )
    return step.fit(train_rows)


_STEP = None


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_derived_columns_are_identical_however_the_raw_rows_arrive(data) -> None:
    """A DataFrame (training, the Pipeline), Arrow arrays (batch prediction), JSON values (the server)."""
    global _STEP
    _STEP = _STEP or _derive_step()
    n = data.draw(st.integers(1, 12))
    maybe = lambda values: st.lists(st.one_of(st.none(), values), min_size=n, max_size=n)  # noqa: E731
    table = pa.table(
        {
            "a": pa.array(data.draw(maybe(st.integers(-5, 5))), pa.int64()),
            "b": pa.array(data.draw(maybe(st.floats(-1e6, 1e6))), pa.float64()),
            "flag": pa.array(data.draw(maybe(st.booleans())), pa.bool_()),
            "s": pa.array(data.draw(maybe(st.sampled_from(["x", "Y", " z", "", "new"]))), pa.string()),
            "d": pa.array(data.draw(maybe(st.dates(dt.date(1990, 1, 1), dt.date(2040, 1, 1)))), pa.date32()),
        }
    )
    frame = table.to_pandas()
    from_frame = _STEP.transform(frame)
    from_arrow = _STEP.derived_columns(
        {c: table.column(c).to_numpy(zero_copy_only=False) for c in table.column_names}, n
    )
    json_like = {
        "a": np.array([np.nan if v is None else float(v) for v in table.column("a").to_pylist()]),
        "b": np.array([np.nan if v is None else v for v in table.column("b").to_pylist()], dtype=float),
        "flag": np.array([np.nan if v is None else float(v) for v in table.column("flag").to_pylist()]),
        "s": np.array([np.nan if v is None else v for v in table.column("s").to_pylist()], dtype=object),
        "d": np.array(
            [None if v is None else v.isoformat() for v in table.column("d").to_pylist()], dtype=object
        ),
    }
    from_json = _STEP.derived_columns(json_like, n)
    for name in _STEP.derived_names():
        expected = from_frame[name].to_numpy()
        for other in (from_arrow[name], from_json[name]):
            if name == "low":
                assert [None if v is np.nan else v for v in other] == [
                    None if v is np.nan else v for v in expected
                ]
            else:
                assert np.array_equal(other, expected, equal_nan=True), name
    a, b = table.column("a").to_pylist(), table.column("b").to_pylist()
    for i in range(n):  # a zero or missing divisor gives a missing ratio, never an error or inf
        if a[i] in (0, None) or b[i] is None:
            assert math.isnan(from_frame["ratio"].iloc[i])
        else:
            assert from_frame["ratio"].iloc[i] == b[i] / a[i]


def test_derive_reads_categorical_and_decimal_columns_and_survives_a_skops_round_trip() -> None:
    import decimal

    from airflow_provider_mlops.ml.transformers import DerivedFeatures

    frame = pa.table(
        {
            "price": pa.array(
                [decimal.Decimal("1.50"), None, decimal.Decimal("-2.25")], pa.decimal128(10, 2)
            ),
            "kind": pa.array(["a", "b", None]).dictionary_encode(),
        }
    ).to_pandas()
    assert isinstance(frame["kind"].dtype, pd.CategoricalDtype)
    step = DerivedFeatures(derive=[["p2", "price * 2"], ["k", "upper(kind)"]]).fit(frame)
    loaded = _trusted_roundtrip(step)
    out = loaded.transform(frame.assign(price=[1.5, 2.0, None]))  # as a JSON request sends decimals
    assert np.array_equal(out["p2"].to_numpy(), [3.0, 4.0, np.nan], equal_nan=True)
    assert out["k"].tolist()[:2] == ["A", "B"] and out["k"].isna().tolist() == [False, False, True]


# --------------------------------------------------------------------------------------------------
# data nobody designed (#28, found by tests/ml/test_ml_path_properties.py)
# --------------------------------------------------------------------------------------------------
def _ledger(n: int = 60, seed: int = 1) -> pa.Table:
    """A warehouse table: a NUMERIC amount (decimal128), a list of tags, a float score, a label."""
    import decimal

    rng = np.random.default_rng(seed)
    labels = np.array([0, 1] * (n // 2))
    return pa.table(
        {
            "amount": pa.array(
                [decimal.Decimal(f"{100 + 50 * y + rng.normal(0, 5):.4f}") for y in labels],
                pa.decimal128(18, 4),
            ),
            "tags": pa.array([["x", "y"][: i % 3] for i in range(n)], pa.list_(pa.string())),
            "score": labels + rng.uniform(0, 0.5, n),
            "label_y": pa.array(labels, pa.int64()),
        }
    )


def test_a_decimal_column_is_a_number_in_training_and_for_every_caller(caplog) -> None:
    """PostgreSQL NUMERIC reaches pandas as Decimal objects: a numeric feature, not one-hot categories."""
    import decimal

    from airflow_provider_mlops.ml.features import categorical_as_object, model_inputs

    frame = _ledger().to_pandas()
    assert isinstance(frame["amount"].iloc[0], decimal.Decimal)
    result = train(
        frame, label_column="label_y", features={"drop": ["tags"]}, estimator_params={"n_estimators": 5}
    )
    assert "amount" in result.numeric_features and "amount" not in result.categorical_features
    assert result.x_test["amount"].dtype == np.float64  # what MLflow's input example is made of
    assert _trusted_roundtrip(result.pipeline) is not None  # no decimal.Decimal in the model: skops
    # batch prediction (Decimal objects), the model server (JSON numbers) and model_inputs agree
    rows = frame.drop(columns=["label_y"])
    as_batch = categorical_as_object(rows, ["amount", "tags"])
    assert as_batch["amount"].dtype == np.float64
    as_json = rows.assign(amount=[float(v) for v in rows["amount"]])
    expected = result.pipeline.predict(as_json)
    assert np.array_equal(result.pipeline.predict(as_batch), expected)
    assert np.array_equal(result.pipeline.predict(model_inputs(frame, "label_y")), expected)


def test_a_decimal_with_more_digits_than_a_float_holds_is_read_rounded_with_a_log_line(caplog) -> None:
    import decimal

    from airflow_provider_mlops.ml.features import categorical_as_object

    exact = decimal.Decimal("12345678901234567890.1234")
    frame = pd.DataFrame({"big": [exact, decimal.Decimal("1.5"), None]})
    with caplog.at_level(logging.INFO, logger="airflow_provider_mlops.ml.features"):
        out = categorical_as_object(frame, ["big"])
    assert out["big"].iloc[0] == float(exact) and out["big"].iloc[1] == 1.5 and math.isnan(out["big"].iloc[2])
    assert "'big'" in caplog.text and "1 of 2" in caplog.text and "float64" in caplog.text


def test_infinity_in_a_numeric_feature_is_refused_before_fitting_naming_column_and_counts() -> None:
    frame = _ledger().to_pandas().drop(columns=["tags"])
    frame.loc[[3, 7], "score"] = np.inf
    frame.loc[9, "score"] = -np.inf
    with pytest.raises(
        FeatureSpecError,
        match=r"'score' holds 3 infinite values \(2 inf, 1 -inf\) in 60 rows.*clip",
    ):
        train(frame, label_column="label_y", estimator_params={"n_estimators": 5})


def test_a_list_column_is_left_out_of_auto_and_refused_by_name_when_listed(caplog) -> None:
    frame = _ledger().to_pandas()
    with caplog.at_level(logging.INFO, logger="airflow_provider_mlops.ml.features"):
        plan = build_features(frame, None, target="label_y")
    assert "tags" not in plan.inputs and "list" in plan.left_out["tags"]
    assert "'tags'" in caplog.text
    with pytest.raises(FeatureSpecError, match=r"\['tags'\].*list"):
        build_features(frame, {"categorical": {"columns": ["tags"]}}, target="label_y")
    struct = pa.table(
        {
            "s": pa.array([{"a": 1}] * 4),
            "m": pa.array([[("k", 1)]] * 4, pa.map_(pa.string(), pa.int64())),
            "x": [1.0, 2, 3, 4],
            "y": [0, 1] * 2,
        }
    ).to_pandas()
    plan = build_features(struct, None, target="y")
    assert plan.inputs == ["x"] and set(plan.left_out) == {"s", "m"}


def test_a_binary_column_is_left_out_of_auto_and_refused_by_name_when_listed() -> None:
    # raw bytes have no JSON form a model server client sends back (a client's base64 text was refused)
    table = pa.table(
        {
            "blob": pa.array([b"\xb1\x00", None, b"ab", b"\xff"] * 5, pa.binary()),
            "x": [float(i) for i in range(20)],
            "y": [0, 1] * 10,
        }
    )
    plan = build_features(table.to_pandas(), None, target="y")
    assert plan.inputs == ["x"] and "binary" in plan.left_out["blob"]
    with pytest.raises(FeatureSpecError, match=r"\['blob'\].*binary"):
        build_features(table.to_pandas(), {"categorical": {"columns": ["blob"]}}, target="y")


def test_features_that_are_all_missing_are_refused_before_fitting_by_name() -> None:
    frame = pa.table({"f0_bool": pa.nulls(40, pa.bool_()), "label_y": [0, 1] * 20}).to_pandas()
    with pytest.raises(FeatureSpecError, match=r"\['f0_bool'\].*every row"):
        train(frame, label_column="label_y", estimator_params={"n_estimators": 5})


def test_a_spec_that_selects_no_column_says_what_was_left_out_and_why() -> None:
    days = [dt.date(2024, 1, 1) + dt.timedelta(days=i) for i in range(20)]
    frame = pa.table({"f0_date": pa.array(days, pa.date32()), "label_y": [0, 1] * 10}).to_pandas()
    with pytest.raises(FeatureSpecError, match=r"selects no column.*f0_date: a date column.*'datetime'"):
        build_features(frame, None, target="label_y")
