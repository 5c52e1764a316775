"""
Property-based round-trips through the dataset layer: generated tables with adversarial column
names and values, as Delta tables and as CSV / JSON Lines exports, on local storage and on a real S3
server. Each must come back exactly (same schema, same values, NULL vs empty string kept) or fail
with a clear error; never succeed with different data. A Delta table refuses, by name, the column
names Delta readers cannot hold without column mapping (and writes nothing).
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
import uuid
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_mlops.datasets import DatasetError
from airflow_provider_mlops.datasets.delta import INVALID_NAME_CHARACTERS
from airflow_provider_mlops.hooks.s3 import ObjectStorageHook
from airflow_provider_mlops.utils.arrow import SchemaMismatchError

NAMES = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1, max_size=12
) | st.sampled_from(["a b", 'q"uote', "semi;colon", "dot.ted", "MiXeD", "tab\tname", "new\nline", "ünï 🚀"])

TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40)
INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1) | st.sampled_from([0, -1, 2**63 - 1, -(2**63)])
FLOAT = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([0.0, -0.0, 1e308, 5e-324])
TIMESTAMP = st.datetimes(
    min_value=dt.datetime(1677, 9, 22), max_value=dt.datetime(2262, 4, 11), timezones=st.just(dt.UTC)
)
DATE = st.dates(min_value=dt.date(1, 1, 1), max_value=dt.date(9999, 12, 31))
DECIMAL = st.decimals(
    min_value=decimal.Decimal("-1e28"), max_value=decimal.Decimal("1e28"), places=9, allow_nan=False
)

COLUMN_TYPES: dict[str, tuple[pa.DataType, st.SearchStrategy[Any]]] = {
    "int64": (pa.int64(), INT64),
    "float64": (pa.float64(), FLOAT),
    "string": (pa.string(), TEXT),
    "bool": (pa.bool_(), st.booleans()),
    "timestamp": (pa.timestamp("us", tz="UTC"), TIMESTAMP),
    "date": (pa.date32(), DATE),
    "decimal": (pa.decimal128(38, 9), DECIMAL),
    "binary": (pa.binary(), st.binary(max_size=30)),
    "list": (pa.list_(pa.string()), st.lists(st.none() | TEXT, max_size=3)),
    "struct": (
        pa.struct([("k", pa.int64()), ("v", pa.string())]),
        st.fixed_dictionaries({"k": st.none() | INT64, "v": st.none() | TEXT}),
    ),
}


@st.composite
def tables(draw: st.DrawFn) -> pa.Table:
    names = draw(st.lists(NAMES, min_size=1, max_size=4, unique_by=str.lower))
    kinds = draw(st.lists(st.sampled_from(sorted(COLUMN_TYPES)), min_size=len(names), max_size=len(names)))
    rows = draw(st.integers(min_value=0, max_value=25))
    arrays = {}
    fields = []
    for name, kind in zip(names, kinds, strict=True):
        data_type, values = COLUMN_TYPES[kind]
        column = draw(st.lists(st.none() | values, min_size=rows, max_size=rows))
        arrays[name] = pa.array(column, type=data_type)
        fields.append(pa.field(name, data_type))
    return pa.table(arrays, schema=pa.schema(fields))


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    return a == b and type(a) is type(b)


def assert_same_table(back: pa.Table, table: pa.Table) -> None:
    assert back.schema.equals(table.schema, check_metadata=False), (back.schema, table.schema)
    assert back.num_rows == table.num_rows
    for name in table.column_names:
        for i, (got, want) in enumerate(zip(back[name].to_pylist(), table[name].to_pylist(), strict=True)):
            assert _same(got, want), f"column {name!r} row {i}: {got!r} != {want!r}"


def _roundtrip(hook: ObjectStorageHook, uri: str, table: pa.Table, fmt: str) -> None:
    if fmt == "csv" and any(pa.types.is_nested(f.type) for f in table.schema):
        with pytest.raises(DatasetError, match="CSV cannot hold the nested column"):
            hook.write_dataset(uri, table.to_batches(), format=fmt, schema=table.schema)
        assert not hook.list_uris(uri)
        return
    bad_names = [n for n in table.column_names if any(c in n for c in INVALID_NAME_CHARACTERS)]
    if fmt == "parquet" and bad_names:
        with pytest.raises(DatasetError, match=r"Column name\(s\) .* hold characters") as refused:
            hook.write_dataset(uri, table.to_batches(), schema=table.schema)
        assert repr(bad_names[0]) in str(refused.value)
        assert hook.dataset_info(uri) is None
        return
    try:
        # an empty table has no batch to carry its schema: give it, as sources do
        schema = table.schema if table.num_rows == 0 or fmt != "parquet" else None
        hook.write_dataset(uri, table.to_batches(max_chunksize=7), format=fmt, schema=schema)
        if fmt == "parquet":
            back = pa.Table.from_batches(
                list(hook.iter_batches(uri, batch_size=9)), schema=hook.read_schema(uri)
            )
        else:  # an export is plain files: read with the schema the user knows
            back = pa.Table.from_batches(
                list(hook.iter_batches(uri, format=fmt, batch_size=9, schema=table.schema)),
                schema=table.schema,
            )
    except (DatasetError, SchemaMismatchError, pa.ArrowInvalid, ValueError) as err:
        # Allowed only as a clear refusal that names what it refuses.
        pytest.fail(f"{fmt}: refused instead of round-tripping: {err}")
    assert_same_table(back, table)


PROFILE = settings(
    max_examples=25, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck), database=None
)


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl"])
@PROFILE
@given(table=tables())
def test_local_datasets_round_trip_exactly(fmt: str, table: pa.Table, tmp_path_factory) -> None:
    uri = (tmp_path_factory.mktemp("rt") / "ds").as_uri()
    _roundtrip(ObjectStorageHook(aws_conn_id=None), uri, table, fmt)


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl"])
@settings(PROFILE, max_examples=10)
@given(table=tables())
def test_s3_datasets_round_trip_exactly(fmt: str, table: pa.Table, s3_conn_id: str, s3_server) -> None:
    uri = f"s3://{s3_server.bucket}/rt/{uuid.uuid4().hex[:8]}/{fmt}"
    _roundtrip(ObjectStorageHook(aws_conn_id=s3_conn_id), uri, table, fmt)
