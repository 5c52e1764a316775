"""
Property: sparse records with adversarial keys and values either come back exactly from the
emitted batches (unified the way the dataset manifest does) or fail with SchemaMismatchError naming
a field; never a silently different value.
"""

from __future__ import annotations

import math
from typing import Any

import pyarrow as pa
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from airflow_provider_mlops.utils.arrow import SchemaMismatchError, dumps_json
from airflow_provider_mlops.utils.records import RecordBatcher, _cast_array
from airflow_provider_mlops.utils.schema import evolve_schema

KEYS = ["a", "A", "a b", "a.b", 'q"uote', "it's", "ünï", "😀", " ", "_id", "x\ny"]
INTS = st.one_of(
    st.integers(-(2**63), 2**63 - 1),
    st.sampled_from([2**63 - 1, -(2**63), 2**53 + 1, 2**63, 2**64, 0, -1]),
)
FLOATS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.0, -0.0, 1e308, 5e-324])
)
TEXT = st.one_of(
    st.text(max_size=12), st.sampled_from(["", "line\nbreak", "cr\r\n", "😀 emoji", '"q" \\ \t'])
)
SCALARS = st.one_of(st.none(), st.booleans(), INTS, FLOATS, TEXT)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(KEYS), inner, max_size=3)
    ),
    max_leaves=6,
)
RECORDS = st.lists(st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=4), max_size=25)


def _unify(batches: list[pa.RecordBatch]) -> list[dict[str, Any]]:
    """What a dataset reader does: the evolved union schema, missing columns null, casts named."""
    schema = pa.schema([])
    for batch in batches:
        schema = evolve_schema(schema, batch.schema)
    rows: list[dict[str, Any]] = []
    for batch in batches:
        arrays = []
        for field in schema:
            if field.name not in batch.schema.names:
                arrays.append(pa.nulls(batch.num_rows, field.type))
                continue
            try:
                arrays.append(_cast_array(batch.column(field.name), field.type, path=field.name))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
                raise SchemaMismatchError(f"Field {field.name!r}: {err}") from None
        aligned = pa.RecordBatch.from_arrays(arrays, schema=schema)
        # a batch without columns (only empty records) still has its rows
        rows.extend(aligned.to_pylist() if len(schema) else [{}] * batch.num_rows)
    return rows


def _same(expected: Any, actual: Any) -> bool:
    """Exact equality where ints may have widened to float64 (exactly) and missing == null."""
    if expected is None:
        return actual is None
    if isinstance(expected, bool) or isinstance(actual, bool):
        return type(expected) is type(actual) and expected == actual
    if isinstance(expected, int):
        if isinstance(actual, float):
            return float(expected) == expected and actual == expected
        return type(actual) is int and actual == expected
    if isinstance(expected, float):
        if math.isnan(expected):
            return isinstance(actual, float) and math.isnan(actual)
        return (
            isinstance(actual, float)
            and actual == expected
            and math.copysign(1, actual) == math.copysign(1, expected)
        )
    if isinstance(expected, str):
        return actual == expected
    if isinstance(expected, list):
        return isinstance(actual, list) and len(actual) == len(expected) and all(map(_same, expected, actual))
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            _same(expected.get(k), actual.get(k)) for k in {*expected, *actual}
        )
    raise AssertionError(f"unexpected value {expected!r}")


@settings(
    max_examples=50,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    records=RECORDS,
    batch_size=st.integers(1, 6),
    convert_every=st.integers(1, 4),
    nested=st.sampled_from(["json", "struct"]),
)
def test_records_round_trip_exactly_or_fail_naming_a_field(
    records: list[dict[str, Any]], batch_size: int, convert_every: int, nested: str
) -> None:
    batcher = RecordBatcher(batch_size=batch_size, nested=nested)
    batcher.CONVERT_EVERY = convert_every
    try:
        batches = list(batcher.batches(records))
        rows = _unify(batches)
    except SchemaMismatchError as err:
        failure = str(err)
    else:
        failure = None
    event("fails naming a field" if failure is not None else "round-trips")
    if failure is not None:
        assert "Field " in failure or "field" in failure, failure
        return
    assert sum(b.num_rows for b in batches) == len(records)
    assert all(b.num_rows <= batch_size for b in batches)
    for index, (record, row) in enumerate(zip(records, rows, strict=True)):
        assert set(record) <= set(row), (index, record, row)
        for key in row:
            value = record.get(key)
            if nested == "json" and isinstance(value, dict | list):
                value = dumps_json(value)
            assert _same(value, row[key]), (index, key, value, row[key])
