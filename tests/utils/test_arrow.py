"""RecordBatcher: Python records to bounded Arrow batches with one schema."""

from __future__ import annotations

import pyarrow as pa
import pytest

from airflow_provider_mlops.utils.arrow import SchemaMismatchError, conform
from airflow_provider_mlops.utils.records import RecordBatcher
from airflow_provider_mlops.utils.schema import evolve_schema


@pytest.mark.parametrize(
    ("rows", "batch_size"), [(0, 10), (7, 10), (25_000, 12_000), (30_000, 5_000), (10, 1)]
)
def test_batches_are_bounded_complete_and_in_order(rows: int, batch_size: int) -> None:
    records = ({"id": i, "name": f"n{i}", "score": i / 2} for i in range(rows))
    batches = list(RecordBatcher(batch_size=batch_size).batches(records))
    assert all(0 < b.num_rows <= batch_size for b in batches)
    # full batches until the last one (no under-filled batch in the middle)
    assert all(b.num_rows == batch_size for b in batches[:-1])
    table = pa.Table.from_batches(batches) if batches else pa.table({"id": pa.array([], pa.int64())})
    assert table.column("id").to_pylist() == list(range(rows))
    assert len({b.schema for b in batches}) <= 1


def _table(batches: list[pa.RecordBatch]) -> pa.Table:
    """The emitted batches unified the way the dataset manifest does (evolve_schema, then cast)."""
    schema = pa.schema([])
    for batch in batches:
        schema = evolve_schema(schema, batch.schema)
    return pa.Table.from_batches(
        [conform([_with_all(b, schema)], schema).__next__() for b in batches], schema
    )


def _with_all(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """``batch`` with the columns only later batches have, as null (what readers do)."""
    arrays = [
        batch.column(f.name) if f.name in batch.schema.names else pa.nulls(batch.num_rows, f.type)
        for f in schema
    ]
    return pa.RecordBatch.from_arrays(arrays, names=schema.names)


def test_a_field_the_first_records_lack_becomes_a_column_on_small_inputs() -> None:
    # the case: `tags` on 280 of 300 documents, the first ones without it
    records = [{"n": i} if i < 20 else {"n": i, "tags": [f"t{i}"]} for i in range(300)]
    batches = list(RecordBatcher(batch_size=1000).batches(records))
    assert len(batches) == 1
    assert batches[0].schema.names == ["n", "tags"]
    assert batches[0].column("tags").null_count == 20
    assert batches[0].column("tags")[20].as_py() == '["t20"]'  # nested="json": JSON text


def test_an_api_omitting_null_fields_keeps_every_measurement_when_the_first_record_is_all_null() -> None:
    records = [{"id": 0}] + [{"id": i, "temp": i / 2, "station": f"s{i}"} for i in range(1, 344)]
    batcher = RecordBatcher(batch_size=100)
    batcher.CONVERT_EVERY = 1  # the all-null record alone in the first piece
    table = _table(list(batcher.batches(records)))
    assert table.schema.field("temp").type == pa.float64()
    assert table.column("temp").null_count == 1
    assert table.column("station").to_pylist()[1:] == [f"s{i}" for i in range(1, 344)]


def test_all_null_columns_take_the_type_of_later_values_instead_of_string() -> None:
    records = [{"id": i, "score": None} for i in range(10)] + [{"id": 10, "score": 7}]
    batches = list(RecordBatcher(batch_size=5).batches(records))
    assert batches[0].schema.field("score").type == pa.null()
    assert batches[-1].schema.field("score").type == pa.int64()
    assert _table(batches).column("score").to_pylist() == [None] * 10 + [7]


def test_a_field_first_seen_in_batch_40_is_a_column_from_then_on() -> None:
    records = [{"id": i} for i in range(400)] + [{"id": 400 + i, "late": f"v{i}"} for i in range(30)]
    batches = list(RecordBatcher(batch_size=10).batches(records))
    assert len(batches) == 43
    assert all(b.schema.names == ["id"] for b in batches[:40])
    assert all(b.schema.names == ["id", "late"] for b in batches[40:])
    table = _table(batches)
    assert table.num_rows == 430
    assert table.column("late").to_pylist() == [None] * 400 + [f"v{i}" for i in range(30)]


def test_pieces_of_one_batch_are_unified_before_they_are_joined() -> None:
    batcher = RecordBatcher(batch_size=100)
    batcher.CONVERT_EVERY = 3
    records = [{"a": 1}, {"a": 2}, {"a": 3}, {"a": 4.5, "b": "x"}, {"a": None}, {"c": {"k": 1}}]
    (batch,) = batcher.batches(records)
    assert batch.schema == pa.schema([("a", pa.float64()), ("b", pa.string()), ("c", pa.string())])
    assert batch.column("a").to_pylist() == [1.0, 2.0, 3.0, 4.5, None, None]


def test_int_then_float_widens_and_int_then_string_fails_naming_field_record_and_value() -> None:
    batcher = RecordBatcher(batch_size=2)
    table = _table(list(batcher.batches([{"x": 1}, {"x": 2}, {"x": 2.5}])))
    assert table.column("x").to_pylist() == [1.0, 2.0, 2.5]

    records = [{"id": "a", "x": 1}, {"id": "b", "x": 2}, {"id": "c", "x": "n/a"}]
    with pytest.raises(SchemaMismatchError, match=r"'x'.*int64 to string.*'n/a'.*record 2 \(id='c'\)"):
        list(RecordBatcher(batch_size=2, key="id").batches(records))
    # ... in the same piece too
    with pytest.raises(SchemaMismatchError, match=r"'x'.*'n/a'.*record 2"):
        list(RecordBatcher(batch_size=10).batches(records))
    # an int that a float64 cannot hold exactly is an error, never a rounded value
    with pytest.raises(SchemaMismatchError, match=r"'x' of record 0: value 9007199254740993"):
        list(RecordBatcher(batch_size=10).batches([{"x": 2**53 + 1}, {"x": 0.5}]))


def test_type_conflict_string_makes_the_column_text() -> None:
    records = [{"x": 1}, {"x": 2}, {"x": "n/a"}, {"x": {"k": [1]}}]
    (batch,) = RecordBatcher(batch_size=10, type_conflict="string", nested="struct").batches(records)
    assert batch.column("x").to_pylist() == ["1", "2", "n/a", '{"k":[1]}']


def test_nested_struct_evolves_inside_structs_and_lists() -> None:
    records = [
        {"doc": {"a": 1}, "items": [{"k": 1}]},
        {"doc": {"a": 2, "b": "new"}, "items": [{"k": 2, "v": "x"}]},
    ]
    batcher = RecordBatcher(batch_size=10, nested="struct")
    batcher.CONVERT_EVERY = 1
    (batch,) = batcher.batches(records)
    assert batch.schema.field("doc").type == pa.struct([("a", pa.int64()), ("b", pa.string())])
    assert batch.to_pylist() == [
        {"doc": {"a": 1, "b": None}, "items": [{"k": 1, "v": None}]},
        {"doc": {"a": 2, "b": "new"}, "items": [{"k": 2, "v": "x"}]},
    ]
    with pytest.raises(SchemaMismatchError, match=r"'doc\.a'.*int64 to string"):
        list(RecordBatcher(batch_size=10, nested="struct").batches([{"doc": {"a": 1}}, {"doc": {"a": "x"}}]))


def test_explicit_schema_is_a_contract_unexpected_fields_fail_or_are_ignored_by_choice() -> None:
    schema = pa.schema(
        [("id", pa.int64()), ("doc", pa.struct([("a", pa.int64())])), ("at", pa.timestamp("us"))]
    )
    records = [{"id": 1, "doc": {"a": 1}, "at": "2024-01-02T03:04:05"}, {"id": 2, "surprise": True}]
    with pytest.raises(SchemaMismatchError, match=r"'surprise' of record 1 is not in the schema"):
        list(RecordBatcher(schema=schema).batches(records))
    (batch,) = RecordBatcher(schema=schema, extra="ignore").batches(records)
    assert batch.schema == schema
    assert batch.column("id").to_pylist() == [1, 2]
    assert str(batch.column("at")[0].as_py()) == "2024-01-02 03:04:05"

    nested = [{"id": 1, "doc": {"a": 1, "b": 2}}]
    with pytest.raises(SchemaMismatchError, match=r"'doc\.b' \(record 0\) is not in the schema"):
        list(RecordBatcher(schema=schema).batches(nested))
    (batch,) = RecordBatcher(schema=schema, extra="ignore").batches(nested)
    assert batch.column("doc").to_pylist() == [{"a": 1}]
    # a value that does not fit the contract is named, never truncated
    with pytest.raises(SchemaMismatchError, match=r"'id' of record 0: value 1.5"):
        list(RecordBatcher(schema=schema).batches([{"id": 1.5}]))
    required = pa.schema([pa.field("id", pa.int64(), nullable=False)])
    with pytest.raises(SchemaMismatchError, match=r"'id' is required.*record 1"):
        list(RecordBatcher(schema=required).batches([{"id": 1}, {}]))


def test_empty_records_keep_their_row_count() -> None:
    batcher = RecordBatcher(batch_size=10)
    batcher.CONVERT_EVERY = 2
    table = _table(list(batcher.batches([{}, {}, {}, {"a": 1}])))
    assert table.num_rows == 4
    assert table.column("a").to_pylist() == [None, None, None, 1]
