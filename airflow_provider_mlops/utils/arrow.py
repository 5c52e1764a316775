"""
Arrow batch helpers shared by every source and sink hook.

Sources yield :class:`pyarrow.RecordBatch` objects of at most ``batch_size`` rows; sinks consume any
iterable of them. Nothing here holds more than one batch (plus one partially filled buffer of
Python records) in memory.

pyarrow is imported inside the functions, like everywhere in the provider, so that importing this
module costs nothing at DAG parse time.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    import pyarrow as pa

DEFAULT_BATCH_SIZE = 50_000


class SchemaMismatchError(ValueError):
    """A batch does not fit the schema fixed by the first batch (or given by the user)."""


def json_default(value: Any) -> Any:
    """``json.dumps`` fallback for the values that sources produce (datetimes, decimals, bytes...)."""
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    return str(value)


def dumps_json(value: Any) -> str:
    """Serialize nested values as compact JSON text, NaN/inf kept as JSON5-style literals."""
    return json.dumps(value, default=json_default, separators=(",", ":"), ensure_ascii=False)


def concat_batches(pieces: list[pa.RecordBatch]) -> pa.RecordBatch:
    """One record batch from pieces of the same schema (a single piece is returned as is)."""
    import pyarrow as pa

    if len(pieces) == 1:
        return pieces[0]
    if not pieces[0].num_columns:
        # A table without columns has no chunks to combine: keep the row count explicitly.
        rows = sum(p.num_rows for p in pieces)
        return pa.RecordBatch.from_struct_array(pa.array([{}] * rows, pa.struct([])))
    return pa.Table.from_batches(pieces).combine_chunks().to_batches()[0]


def rebatch(batches: Iterable[pa.RecordBatch], batch_size: int) -> Iterator[pa.RecordBatch]:
    """Slice batches larger than ``batch_size``; smaller ones pass through unchanged (no copy)."""
    for batch in batches:
        if batch.num_rows <= batch_size:
            yield batch
            continue
        for offset in range(0, batch.num_rows, batch_size):
            yield batch.slice(offset, batch_size)


def peek_schema(
    batches: Iterable[pa.RecordBatch], schema: pa.Schema | None = None
) -> tuple[pa.Schema | None, Iterator[pa.RecordBatch]]:
    """
    Return the schema of a batch stream and an iterator over the same stream.

    When the stream is empty and no schema was given the schema is None.
    """
    iterator = iter(batches)
    if schema is not None:
        return schema, iterator
    first = next(iterator, None)
    if first is None:
        return None, iter(())

    def chained() -> Iterator[pa.RecordBatch]:
        yield first
        yield from iterator

    return first.schema, chained()


def conform(
    batches: Iterable[pa.RecordBatch], schema: pa.Schema, *, fill_missing: bool = False
) -> Iterator[pa.RecordBatch]:
    """
    Cast every batch to ``schema`` (same column order), naming the column that does not fit.

    :param fill_missing: a column the batch lacks becomes all-null (files written before a field
        first appeared) instead of an error. Only for nullable fields.
    """
    import pyarrow as pa

    for batch in batches:
        if batch.schema.equals(schema, check_metadata=False):
            yield batch
            continue
        missing = [name for name in schema.names if name not in batch.schema.names]
        if missing and not (fill_missing and all(schema.field(n).nullable for n in missing)):
            raise SchemaMismatchError(f"Batch is missing column(s) {missing}")
        arrays = []
        for field in schema:
            if field.name in missing:
                arrays.append(pa.nulls(batch.num_rows, field.type))
                continue
            column = batch.column(field.name)
            try:
                arrays.append(column if column.type == field.type else column.cast(field.type))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
                raise SchemaMismatchError(
                    f"Column {field.name!r} of type {column.type} cannot be cast to {field.type}: {err}"
                ) from None
        yield pa.RecordBatch.from_arrays(arrays, schema=schema)


def batch_to_records(batch: pa.RecordBatch, *, json_columns: Iterable[str] = ()) -> list[dict[str, Any]]:
    """Convert a batch to Python dicts, parsing the given JSON-text columns back into objects."""
    records = batch.to_pylist()
    parse = [c for c in json_columns if c in batch.schema.names]
    if parse:
        for record in records:
            for column in parse:
                value = record[column]
                if isinstance(value, str):
                    record[column] = json.loads(value)
    return records


# Moved to their own modules (records -> Arrow, schemas); importable from here as before.
_MOVED = {
    "RecordBatcher": "records",
    "evolve_schema": "schema",
    "_widen_type": "schema",
    "parse_type": "schema",
    "schema_from_spec": "schema",
    "schema_fingerprint": "schema",
    "schema_to_json": "schema",
    "_cast_array": "records",
    "_settle_inferred": "records",
}


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        import importlib

        return getattr(importlib.import_module(f"airflow_provider_mlops.utils.{_MOVED[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
