"""
The server's fast paths (issue #29, item 5: throughput at 1,000 and 10,000 rows) change nothing a
client sees: a ``dataframe_split`` or ``dataframe_records`` request read by msgspec gives the table the
general path
(``json.loads`` and per-column checks) gives, or the same refusal; the answer written by msgspec reads
back to the same numbers ``json.dumps`` writes; a one-hot block written by comparison or by scattering
is the Pipeline's.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_mlops.serving import protocol
from airflow_provider_mlops.serving.protocol import InputSchema, RequestError, parse_table, predictions_body
from tests.serving.helpers import COLUMNS, SCHEMA

#: The churn columns with an integer one, so the int64 conversion is covered too.
LONG_SCHEMA = InputSchema(COLUMNS, ("double", "long", "string", "string"))


def _general(monkeypatch: pytest.MonkeyPatch, *args: object, **kwargs: object) -> object:
    """What the general path (json.loads and the per-column checks) makes of the request."""
    with monkeypatch.context() as patch:
        patch.setattr(protocol, "_fast_table", lambda *_, **__: None)
        return _outcome(*args, **kwargs)


def _outcome(body: bytes, schema: InputSchema, **limits: object) -> object:
    try:
        table = parse_table(body, "application/json", schema, max_rows=50, **limits)
    except RequestError as err:
        return ("refused", err.status, err.code, str(err))
    columns = {}
    for name, values in (table.values or {}).items():
        if values.dtype == object:  # the Python values themselves (NaN for a missing category)
            columns[name] = ("object", [(type(v).__name__, "nan" if v != v else v) for v in values])
        else:
            columns[name] = (str(values.dtype), values.tobytes())  # bit for bit, -0.0 and NaN included
    return ("table", table.rows, table.columns, table.params, columns)


def test_the_common_request_takes_the_fast_path_and_others_do_not() -> None:
    split = {"columns": list(COLUMNS), "data": [[1.5, 2, "free", "eu"], [None, 0, "pro", "na"]]}
    fast = protocol._fast_table(
        json.dumps({"dataframe_split": split}).encode(), SCHEMA, max_rows=10, max_columns=10
    )
    assert fast is not None and fast.rows == 2 and fast.text == {"plan", "region"}
    assert np.array_equal(fast.values["minutes"], [1.5, np.nan], equal_nan=True)
    assert fast.values["plan"].tolist() == ["free", "pro"]
    records = [dict(zip(COLUMNS, r, strict=True)) for r in split["data"]]
    fast = protocol._fast_table(
        json.dumps({"dataframe_records": records}).encode(), SCHEMA, max_rows=10, max_columns=10
    )
    assert fast is not None and fast.rows == 2 and fast.values["region"].tolist() == ["eu", "na"]
    # anything else is the general path's: a missing category, extra or missing columns, two data keys
    others = [
        {"dataframe_split": {**split, "data": [[1.5, 2, None, "eu"]]}},
        {"dataframe_split": {"columns": [*COLUMNS, "extra"], "data": [[1.5, 2, "free", "eu", 1]]}},
        {"dataframe_records": [{**records[0], "extra": 1}]},
        {"dataframe_records": [{k: v for k, v in records[0].items() if k != "minutes"}]},
        {"dataframe_records": records, "dataframe_split": split},
        {"instances": records},
        {"dataframe_split": split, "inputs": None},
        {"dataframe_split": split, "params": [1]},
    ]
    for payload in others:
        assert protocol._fast_table(json.dumps(payload).encode(), SCHEMA, max_rows=10, max_columns=10) is None


# JSON number literals as text, so msgspec's number parser (not json.dumps' output) is what is compared
number_text = st.one_of(
    st.from_regex(r"\A-?(0|[1-9][0-9]{0,24})(\.[0-9]{1,24})?([eE][+-]?[0-9]{1,3})?\Z"),
    st.sampled_from(
        [
            "9007199254740993",
            "9007199254740993.0",
            "18446744073709551617",
            "-9223372036854775809",
            "1" + "0" * 400,
            "1e309",
            "-1e309",
            "1e-400",
            "2.2250738585072011e-308",
            "4.9406564584124654e-324",
            "0.1000000000000000055511151231257827",
            "-0.0",
            "NaN",
            "Infinity",
        ]
    ),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
)
other_text = st.sampled_from(['"7"', '"free"', "true", "false", "null", "[]", "{}", '"\\u00e9t\\u00e9"'])
# mostly what the fast path takes, sometimes what it leaves to the general path (each draw decides)
cell = st.one_of(number_text, number_text, number_text, number_text, other_text)
category = st.one_of(
    st.sampled_from(['"free"', '"pro"', '"eu"', '""', '"\\u00e9"']),
    st.text(max_size=4).map(json.dumps),
    st.text(st.characters(codec="utf-8"), max_size=4).map(lambda t: json.dumps(t, ensure_ascii=False)),
    st.sampled_from(['"\\ud800"', "null", "3", "1.5", "true"]),
)
row = st.tuples(cell, cell, category, category).map(list)
schema_columns = json.dumps(list(COLUMNS))
columns_text = st.sampled_from(
    [
        *[schema_columns] * 6,
        "null",
        "[]",
        json.dumps(list(reversed(COLUMNS))),
        json.dumps([*COLUMNS, "extra"]),
        json.dumps(list(COLUMNS[:3])),
        json.dumps([*COLUMNS[:3], 4]),
    ]
)
extra_text = st.sampled_from(
    [
        *[""] * 4,
        ', "params": {"predict_method": "predict_proba"}',
        ', "params": null',
        ', "params": 3',
        ', "inputs": null',
    ]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.lists(row, min_size=0, max_size=4),
    columns=columns_text,
    extra=extra_text,
    index=st.booleans(),
    schema=st.sampled_from([SCHEMA, LONG_SCHEMA]),
    width=st.sampled_from([4, 4, 4, 4, 3, 5]),
)
def test_fast_parse_builds_what_the_general_path_builds(
    monkeypatch: pytest.MonkeyPatch,
    rows: list[list[str]],
    columns: str,
    extra: str,
    index: bool,
    schema: InputSchema,
    width: int,
) -> None:
    data = "[" + ",".join("[" + ",".join(r[:width] + ["1"] * (width - 4)) + "]" for r in rows) + "]"
    split = f'{{"columns": {columns}, "data": {data}' + (', "index": [0]' if index else "") + "}"
    body = f'{{"dataframe_split": {split}{extra}}}'.encode()
    assert _outcome(body, schema) == _general(monkeypatch, body, schema)


# the keys of one record: the schema's, one left out, one more, one twice, another order
record_keys = st.sampled_from(
    [
        *[list(COLUMNS)] * 6,
        list(COLUMNS[1:]),
        [*COLUMNS, "extra"],
        [*COLUMNS, "minutes"],
        list(reversed(COLUMNS)),
    ]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.lists(st.tuples(row, record_keys), min_size=0, max_size=4),
    extra=extra_text,
    schema=st.sampled_from([SCHEMA, LONG_SCHEMA]),
    strict=st.booleans(),
)
def test_fast_records_build_what_the_general_path_builds(
    monkeypatch: pytest.MonkeyPatch,
    rows: list[tuple[list[str], list[str]]],
    extra: str,
    schema: InputSchema,
    strict: bool,
) -> None:
    records = []
    for cells, keys in rows:
        by_name = dict(zip(COLUMNS, cells, strict=True))
        records.append("{" + ",".join(f'"{k}": {by_name.get(k, "7")}' for k in keys) + "}")
    body = f'{{"dataframe_records": [{",".join(records)}]{extra}}}'.encode()
    limits = {"strict_columns": strict}
    assert _outcome(body, schema, **limits) == _general(monkeypatch, body, schema, **limits)


def test_fast_parse_refuses_what_the_general_path_refuses(monkeypatch: pytest.MonkeyPatch) -> None:
    row = [1.5, 2, "free", "eu"]
    cases = [
        (
            json.dumps({"dataframe_split": {"columns": list(COLUMNS), "data": [row] * 51}}).encode(),
            {},
        ),  # rows
        (
            json.dumps({"dataframe_split": {"columns": list(COLUMNS), "data": [row]}}).encode(),
            {"max_columns": 3},
        ),
        (json.dumps({"dataframe_split": {"columns": list(COLUMNS), "data": []}}).encode(), {}),
        (
            b'{"dataframe_split": {"columns": ["minutes","tickets","plan","region"], "data": [[1e999, 1, "a", "b"]]}}',
            {},
        ),
        (b'\xef\xbb\xbf{"dataframe_split": {"data": [[1, 1, "a", "b"]]}}', {}),
        (b"[" * 100_000, {}),
    ]
    for body, limits in cases:
        expected = _general(monkeypatch, body, SCHEMA, **limits)
        assert _outcome(body, SCHEMA, **limits) == expected


def test_answers_read_back_to_the_same_numbers() -> None:
    rng = np.random.default_rng(0)
    floats = np.concatenate(
        [
            rng.random(5000),
            rng.standard_normal(5000) * 1e300,
            rng.random(100) * 1e-310,
            [5e-324, -0.0, 0.1, 1 / 3, 1e16, 1e22, 2.0**53 + 2, 1.7976931348623157e308],
        ]
    )
    for values in (floats, floats.reshape(-1, 2), np.arange(-5, 5, dtype=np.int64), np.array([True, False])):
        body = predictions_body(values)
        assert body.startswith(b'{"predictions":')
        read = np.asarray(json.loads(body)["predictions"], dtype=values.dtype)
        assert read.tobytes() == values.tobytes()  # bit for bit, -0.0 included
    # NaN and infinity as MLflow's server writes them (json.dumps): msgspec would write null
    assert predictions_body(np.array([1.5, np.nan, -np.inf])) == b'{"predictions":[1.5,NaN,-Infinity]}'
    assert predictions_body(np.array(["yes", "no"], dtype=object)) == b'{"predictions":["yes","no"]}'
    assert predictions_body([1, 2.5]) == b'{"predictions":[1,2.5]}'
    assert math.isnan(json.loads(predictions_body(np.array([np.nan])))["predictions"][0])


@pytest.mark.parametrize("categories", [3, 40])
def test_one_hot_blocks_are_the_pipelines(categories: int) -> None:
    """Up to 32 categories a block is written by comparison, above by scattering: both bit for bit."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    from airflow_provider_mlops.ml.features import build_preprocessor, model_inputs
    from airflow_provider_mlops.serving.compiled import compile_pipeline
    from tests.serving.helpers import churn_frame

    frame = churn_frame(2000, 5)
    rng = np.random.default_rng(5)
    frame["plan"] = rng.choice([f"plan {i}" for i in range(categories)], len(frame))
    x = model_inputs(frame, "churned")
    # max_categories above the count: every category keeps its own column (no infrequent group)
    spec = {"categorical": {"max_categories": 100}}
    pre, numeric, categorical = build_preprocessor(x, spec, target=None)
    model = Pipeline([("features", pre), ("model", LogisticRegression())]).fit(
        x[numeric + categorical], frame.churned
    )
    compiled = compile_pipeline(model)
    assert compiled is not None
    score = model_inputs(churn_frame(3000, 6), "churned")[list(COLUMNS)]
    score["plan"] = rng.choice([f"plan {i}" for i in range(categories + 5)], len(score))  # 5 unseen
    values = {c: score[c].to_numpy() for c in score.columns}
    for text in (frozenset(), frozenset({"plan", "region"})):
        features = compiled.features(values, len(score), text)
        assert features is not None
        assert np.array_equal(features, model[:-1].transform(score).to_numpy())
        assert np.array_equal(compiled.predict_proba(features), model.predict_proba(score))


def test_an_integer_column_beyond_int64_keeps_its_value() -> None:
    """A ``long`` column holding 1e20 stays float64 (1e20), not int64's wrapped -9223372036854775808."""
    body = json.dumps({"dataframe_split": {"data": [[1.5, 1e20, "free", "eu"], [1.5, 3, "pro", "na"]]}})
    table = parse_table(body.encode(), "application/json", LONG_SCHEMA, max_rows=10)
    assert table.values["tickets"].tolist() == [1e20, 3.0]
    small = json.dumps({"dataframe_split": {"data": [[1.5, 2**62, "free", "eu"]]}}).encode()
    kept = parse_table(small, "application/json", LONG_SCHEMA, max_rows=10).values["tickets"]
    assert kept.dtype == "int64" and kept.tolist() == [2**62]
