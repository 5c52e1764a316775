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
import hashlib
import json
import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping

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


def _jsonify_nested(record: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(record)
    for key, value in record.items():
        if isinstance(value, dict | list):
            out[key] = dumps_json(value)
    return out


def _sanitize_inferred(schema: pa.Schema) -> pa.Schema:
    """
    Make an inferred schema fit later batches too: all-null columns become strings and decimals get
    the widest precision (inference takes the precision of the first values seen).
    """
    import pyarrow as pa

    fields = []
    for field in schema:
        if pa.types.is_null(field.type):
            field = field.with_type(pa.string())
        elif pa.types.is_decimal(field.type) and field.type.precision < 38:
            field = field.with_type(pa.decimal128(38, field.type.scale))
        fields.append(field)
    return pa.schema(fields, metadata=schema.metadata)


class RecordBatcher:
    """
    Turn a stream of Python records (dicts) into record batches with one stable schema.

    The schema is either given or inferred from the first batch. Later batches are made to fit it:
    values are cast where Arrow can cast them losslessly-enough (e.g. an int into a float column);
    a field that the schema does not know, or a value that cannot be cast, raises
    :class:`SchemaMismatchError` naming the field, rather than being dropped silently.

    :param batch_size: rows per emitted batch.
    :param schema: the schema to produce; inferred from the first batch when None.
    :param nested: ``"json"`` stores dicts and lists as JSON text, ``"struct"`` keeps them as Arrow
        struct / list columns.
    :param convert: optional per-record converter applied before Arrow conversion.
    """

    CONVERT_EVERY = 5_000

    def __init__(
        self,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        schema: pa.Schema | None = None,
        nested: str = "json",
        convert: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = None,
    ) -> None:
        if batch_size <= 0:
            raise ValueError("batch_size must be positive")
        if nested not in ("json", "struct"):
            raise ValueError("nested must be 'json' or 'struct'")
        self.batch_size = batch_size
        self.schema = schema
        self.nested = nested
        self.convert = convert
        self.rows = 0

    def _to_batch(self, records: list[Mapping[str, Any]]) -> pa.RecordBatch:
        import pyarrow as pa

        if self.convert is not None:
            records = [self.convert(r) for r in records]
        if self.nested == "json":
            records = [_jsonify_nested(r) for r in records]
        if self.schema is None:
            batch = pa.RecordBatch.from_pylist(records)
            self.schema = _sanitize_inferred(batch.schema)
            return batch.cast(self.schema) if batch.schema != self.schema else batch
        known = set(self.schema.names)
        for record in records:
            unknown = [k for k in record if k not in known]
            if unknown:
                raise SchemaMismatchError(
                    f"Field(s) {unknown} appear after the schema was fixed by the first batch "
                    f"(known: {sorted(known)}). Pass an explicit schema that includes them."
                )
        try:
            return pa.RecordBatch.from_pylist(records, schema=self.schema)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):
            pass
        # The slow path: infer this batch on its own, then cast column by column to find the culprit.
        loose = pa.RecordBatch.from_pylist(records)
        arrays = []
        for field in self.schema:
            if field.name not in loose.schema.names:
                arrays.append(pa.nulls(loose.num_rows, field.type))
                continue
            column = loose.column(field.name)
            try:
                arrays.append(column.cast(field.type))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as err:
                raise SchemaMismatchError(
                    f"Field {field.name!r}: values of type {column.type} do not fit the schema type "
                    f"{field.type} fixed by the first batch ({err}). Pass an explicit schema."
                ) from None
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema)

    def batches(self, records: Iterable[Mapping[str, Any]]) -> Iterator[pa.RecordBatch]:
        """
        Consume ``records`` lazily and yield batches of at most ``batch_size`` rows.

        Records are converted to Arrow every ``CONVERT_EVERY`` rows and the columnar pieces joined
        into a batch: a Python dict per row costs ~10x its Arrow form, so holding a whole batch of
        dicts would dominate memory (measured: 1M rows through the HTTP hook, 50k-row batches).
        """
        pending: list[pa.RecordBatch] = []
        pending_rows = 0
        buffer: list[Mapping[str, Any]] = []

        for record in records:
            buffer.append(record)
            # never past batch_size: the last piece of a batch takes only the rows still missing
            if len(buffer) >= min(self.CONVERT_EVERY, self.batch_size - pending_rows):
                piece = self._to_batch(buffer)
                buffer = []
                pending.append(piece)
                pending_rows += piece.num_rows
                if pending_rows >= self.batch_size:
                    batch = concat_batches(pending)
                    pending, pending_rows = [], 0
                    self.rows += batch.num_rows
                    yield batch
        if buffer:
            pending.append(self._to_batch(buffer))
        if pending:
            batch = concat_batches(pending)
            self.rows += batch.num_rows
            yield batch


def concat_batches(pieces: list[pa.RecordBatch]) -> pa.RecordBatch:
    """One record batch from pieces of the same schema (a single piece is returned as is)."""
    import pyarrow as pa

    return pieces[0] if len(pieces) == 1 else pa.Table.from_batches(pieces).combine_chunks().to_batches()[0]


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


def schema_fingerprint(schema: pa.Schema) -> str:
    """A short, stable hash of column names, types and nullability (metadata ignored)."""
    text = "|".join(f"{f.name}:{f.type}:{int(f.nullable)}" for f in schema)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def schema_to_json(schema: pa.Schema) -> list[dict[str, Any]]:
    """A small JSON description of a schema, fit for XCom and lineage facets."""
    return [{"name": f.name, "type": str(f.type), "nullable": f.nullable} for f in schema]


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


def is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


# --------------------------------------------------------------------------------------------------
# schema evolution: one rule shared by record sources (new fields appear late) and the dataset
# writer (files written per schema, unified by the manifest)
# --------------------------------------------------------------------------------------------------
def _widen_type(name: str, current: pa.DataType, incoming: pa.DataType, *, to_string: bool) -> pa.DataType:
    """
    The narrowest type that holds every value of ``current`` and ``incoming`` exactly, or
    :class:`SchemaMismatchError` naming the field.

    Lossless widenings only: null -> anything; a narrower int -> int64; int -> float64 (the cast
    itself refuses an int beyond 2**53, so no value changes silently); float32 -> float64; decimals
    -> decimal128(38, larger scale); string -> large_string; timestamps of one zone -> the finer
    unit; structs field by field; lists element-wise. With ``to_string`` any other conflict becomes
    a string column (a documented choice for loosely typed APIs), never a silent drop.
    """
    import pyarrow as pa
    import pyarrow.types as t

    if current.equals(incoming):
        return current
    if t.is_null(current):
        return incoming
    if t.is_null(incoming):
        return current
    if t.is_integer(current) and t.is_integer(incoming):
        if t.is_uint64(current) or t.is_uint64(incoming):
            if t.is_unsigned_integer(current) and t.is_unsigned_integer(incoming):
                return pa.uint64()
        else:
            return pa.int64()
    numeric = (t.is_integer, t.is_floating)
    if any(f(current) for f in numeric) and any(f(incoming) for f in numeric):
        if not (t.is_uint64(current) or t.is_uint64(incoming)):
            return pa.float64()
    if t.is_decimal(current) and t.is_decimal(incoming):
        return pa.decimal128(38, max(current.scale, incoming.scale))
    if {str(current), str(incoming)} <= {"string", "large_string"}:
        return pa.large_string()
    if t.is_timestamp(current) and t.is_timestamp(incoming) and current.tz == incoming.tz:
        units = ["s", "ms", "us", "ns"]
        return pa.timestamp(max(current.unit, incoming.unit, key=units.index), current.tz)
    if t.is_struct(current) and t.is_struct(incoming):
        merged = evolve_schema(
            pa.schema(list(current)), pa.schema(list(incoming)), to_string=to_string, prefix=f"{name}."
        )
        return pa.struct(list(merged))
    if (t.is_list(current) or t.is_large_list(current)) and (
        t.is_list(incoming) or t.is_large_list(incoming)
    ):
        value = _widen_type(f"{name}[]", current.value_type, incoming.value_type, to_string=to_string)
        return pa.list_(value)
    if to_string:
        return pa.string()
    raise SchemaMismatchError(
        f"Field {name!r} changes type from {current} to {incoming}: no lossless type holds both. "
        "Give the source an explicit schema, fix the data, or choose type_conflict='string'."
    )


def evolve_schema(
    current: pa.Schema, incoming: pa.Schema, *, to_string: bool = False, prefix: str = ""
) -> pa.Schema:
    """
    ``current`` extended by the fields only ``incoming`` has (appended in their order) and with
    conflicting types widened losslessly (see :func:`_widen_type`). Returns ``current`` itself when
    nothing changes, so callers can test ``evolved is current``.
    """
    import pyarrow as pa

    fields = []
    changed = False
    incoming_index = {f.name: f for f in incoming}
    for field in current:
        other = incoming_index.get(field.name)
        if other is None:
            fields.append(field if field.nullable else field.with_nullable(True))
            changed = changed or not field.nullable
            continue
        widened = _widen_type(prefix + field.name, field.type, other.type, to_string=to_string)
        if not widened.equals(field.type):
            field = field.with_type(widened)
            changed = True
        fields.append(field)
    known = set(current.names)
    for other in incoming:
        if other.name not in known:
            fields.append(other.with_nullable(True))
            changed = True
    if not changed:
        return current
    return pa.schema(fields, metadata=current.metadata)
