"""RecordBatcher: Python records to bounded Arrow batches with one schema."""

from __future__ import annotations

import pyarrow as pa
import pytest

from airflow_provider_mlops.utils.arrow import RecordBatcher, SchemaMismatchError


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


def test_a_field_unknown_to_the_schema_fixed_by_the_first_piece_is_named() -> None:
    batcher = RecordBatcher(batch_size=20_000)
    batcher.CONVERT_EVERY = 5
    records = [{"id": i} for i in range(5)] + [{"id": 5, "surprise": True}]
    with pytest.raises(SchemaMismatchError, match="surprise"):
        list(batcher.batches(records))
