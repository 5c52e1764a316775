"""
Arrow batch helpers shared by every source and sink hook.

Sources yield :class:`pyarrow.RecordBatch` objects of at most ``batch_size`` rows; sinks consume any
iterable of them. Nothing here holds more than one batch (plus one partially filled buffer of
Python records) in memory.

pyarrow is imported inside the functions, like everywhere in the provider, so that importing this
module costs nothing at DAG parse time.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import hashlib
import json
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


def _settle_inferred(data_type: pa.DataType) -> pa.DataType:
    """
    An inferred type made stable across pieces: decimals get the widest precision (inference takes
    the precision of the values it saw, so every piece would otherwise change the schema). Null
    types are kept: a column that has only been null so far widens to whatever a later piece brings.
    """
    import pyarrow as pa
    import pyarrow.types as t

    if t.is_decimal128(data_type) and data_type.precision < 38:
        return pa.decimal128(38, data_type.scale)
    if t.is_struct(data_type):
        fields = [data_type.field(i) for i in range(data_type.num_fields)]
        settled = [f.with_type(_settle_inferred(f.type)) for f in fields]
        return (
            data_type
            if all(a.equals(b) for a, b in zip(fields, settled, strict=True))
            else pa.struct(settled)
        )
    if t.is_list(data_type):
        value = _settle_inferred(data_type.value_type)
        return (
            data_type
            if value.equals(data_type.value_type)
            else pa.list_(data_type.value_field.with_type(value))
        )
    return data_type


def _is_nested(data_type: pa.DataType) -> bool:
    import pyarrow.types as t

    return t.is_struct(data_type) or t.is_list(data_type) or t.is_large_list(data_type) or t.is_map(data_type)


def _conversion_errors() -> tuple[type[BaseException], ...]:
    import pyarrow as pa

    return (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, TypeError, OverflowError)


class _UnexpectedNestedField(Exception):
    """A struct value carries a field the explicit schema does not declare (``extra="error"``)."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path


def _cast_array(array: pa.Array, target: pa.DataType, *, path: str, extra: str = "error") -> pa.Array:
    """
    ``array`` as ``target`` with Arrow's safe casts, never dropping data.

    Structs are rebuilt field by field (matched by name, missing fields null) and lists element-wise,
    so evolution inside nested values works whatever the pyarrow version. A struct field that
    ``target`` lacks is :class:`_UnexpectedNestedField` unless ``extra="ignore"``. Nested values
    into a text column become JSON text (Arrow has no such cast). Conversion errors propagate.
    """
    import pyarrow as pa
    import pyarrow.types as t

    source = array.type
    if source.equals(target):
        return array
    if t.is_null(source):
        return pa.nulls(len(array), target)
    mask = array.is_null() if array.null_count else None
    if t.is_struct(source) and t.is_struct(target):
        wanted = {target.field(i).name for i in range(target.num_fields)}
        for i in range(source.num_fields):
            name = source.field(i).name
            if name not in wanted and extra == "error":
                raise _UnexpectedNestedField(f"{path}.{name}")
        if target.num_fields == 0:
            return pa.array([{} if valid else None for valid in array.is_valid().to_pylist()], target)
        children = []
        for i in range(target.num_fields):
            field = target.field(i)
            index = source.get_field_index(field.name)
            if index < 0:
                children.append(pa.nulls(len(array), field.type))
            else:
                children.append(
                    _cast_array(array.field(index), field.type, path=f"{path}.{field.name}", extra=extra)
                )
        return pa.StructArray.from_arrays(
            children, fields=[target.field(i) for i in range(target.num_fields)], mask=mask
        )
    if (t.is_list(source) or t.is_large_list(source)) and (t.is_list(target) or t.is_large_list(target)):
        values = _cast_array(array.values, target.value_type, path=f"{path}[]", extra=extra)
        offsets = array.offsets
        if t.is_large_list(target):
            return pa.LargeListArray.from_arrays(offsets.cast(pa.int64()), values, type=target, mask=mask)
        return pa.ListArray.from_arrays(offsets.cast(pa.int32()), values, type=target, mask=mask)
    if (t.is_string(target) or t.is_large_string(target)) and _is_nested(source):
        return pa.array([None if v is None else dumps_json(v) for v in array.to_pylist()], target)
    return array.cast(target)


def _describe_value(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 200 else text[:200] + "..."


class RecordBatcher:
    """
    Turn a stream of Python records (dicts) into bounded record batches, never dropping a field.

    Without ``schema`` the schema *evolves*: a field first seen in a later record becomes a column
    from then on (appended at the end; the records before it hold null), a column that has only
    held nulls takes the type of the first values that arrive, and a type that changes widens where
    no value changes (int -> float64 for ints up to 2**53, narrower ints -> int64, decimals ->
    decimal128(38, larger scale), structs field by field, lists element-wise: see
    :func:`evolve_schema`). Every batch is emitted with the schema evolved so far, so a later batch
    may carry more (or wider) columns than an earlier one: the dataset writer starts a new file
    when the schema changes and readers see the union, older files' missing columns as null.

    With ``schema`` the schema is a fixed contract: values are converted to its types with Arrow's
    safe casts (ISO text into a timestamp column, ``1.0`` into an int column) and a field the
    schema does not declare, at the top level or inside a struct, is an error naming it
    (``extra="error"``) or is left out by choice (``extra="ignore"``).

    A value that fits neither (``"n/a"`` in an int column) raises :class:`SchemaMismatchError`
    naming the field, the record's index in the stream (and its ``key`` value when given) and the
    value; ``type_conflict="string"`` makes such a column text instead (values in Arrow's text
    form, nested ones as JSON), a choice for loosely typed APIs. Already-emitted batches keep their
    type, so a reader then unifies them as text.

    :param batch_size: rows per emitted batch.
    :param schema: a fixed schema (contract); the schema evolves from the data when None.
    :param nested: without ``schema``: ``"json"`` stores dicts and lists as JSON text, ``"struct"``
        keeps them as Arrow struct / list columns (with fields added inside structs as they
        appear). With ``schema`` its types decide (a text field gets JSON text).
    :param convert: optional per-record converter applied before Arrow conversion.
    :param extra: with ``schema``: ``"error"`` (default) or ``"ignore"`` for undeclared fields.
    :param type_conflict: ``"error"`` (default) or ``"string"`` for values that fit no common type.
    :param key: a field whose value identifies a record in error messages (e.g. ``"_id"``).
    """

    CONVERT_EVERY = 5_000

    def __init__(
        self,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        schema: pa.Schema | None = None,
        nested: str = "json",
        convert: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = None,
        extra: str = "error",
        type_conflict: str = "error",
        key: str | None = None,
    ) -> None:
        if batch_size <= 0:
            raise ValueError("batch_size must be positive")
        if nested not in ("json", "struct"):
            raise ValueError(f"nested must be 'json' or 'struct', got {nested!r}")
        if extra not in ("error", "ignore"):
            raise ValueError(f"extra must be 'error' or 'ignore', got {extra!r}")
        if type_conflict not in ("error", "string"):
            raise ValueError(f"type_conflict must be 'error' or 'string', got {type_conflict!r}")
        self.batch_size = batch_size
        self.schema = schema
        self.fixed = schema is not None
        self.nested = nested
        self.convert = convert
        self.extra = extra
        self.to_string = type_conflict == "string"
        self.key = key
        self.rows = 0
        self._seen = 0  # records converted so far: the stream index of the next record
        if schema is not None:
            self._known = frozenset(schema.names)
            # The contract's types decide how nested values land: JSON text unless the field is nested.
            self._text_fields = frozenset(f.name for f in schema if not _is_nested(f.type))

    # -- errors ------------------------------------------------------------------------------------
    def _where(self, index: int, key_value: Any = None) -> str:
        where = f"record {index}"
        if self.key is not None and key_value is not None:
            where += f" ({self.key}={_describe_value(key_value)})"
        return where

    def _record_key(self, record: Mapping[str, Any]) -> Any:
        return record.get(self.key) if self.key is not None else None

    def _piece_key(self, piece: pa.RecordBatch, row: int) -> Any:
        if self.key is None or self.key not in piece.schema.names:
            return None
        return piece.column(self.key)[row].as_py()

    # -- records -> one Arrow piece ------------------------------------------------------------------
    def _to_batch(self, records: list[Mapping[str, Any]]) -> pa.RecordBatch:
        """One piece: the records converted, the schema evolved (or checked), cast to the schema."""
        first = self._seen
        self._seen += len(records)
        if self.convert is not None:
            records = [self.convert(r) for r in records]
        if self.fixed:
            records = self._fit_contract(records, first)
        elif self.nested == "json":
            records = [_jsonify_nested(r) for r in records]
        piece = self._infer(records, first)
        if not self.fixed:
            self._evolve(piece, records, first)
        return self._align(piece, first, records)

    def _fit_contract(self, records: list[Mapping[str, Any]], first: int) -> list[Mapping[str, Any]]:
        known = self._known
        fitted: list[Mapping[str, Any]] = []
        for offset, record in enumerate(records):
            if not known.issuperset(record):
                unknown = [k for k in record if k not in known]
                if self.extra == "error":
                    raise SchemaMismatchError(
                        f"Field {unknown[0]!r} of {self._where(first + offset, self._record_key(record))} "
                        f"is not in the schema (fields: {sorted(known)}). Add it to the schema, or pass "
                        "extra='ignore' to leave undeclared fields out."
                    )
                record = {k: v for k, v in record.items() if k in known}
            if any(isinstance(v, dict | list) for v in record.values()):
                record = {
                    k: dumps_json(v) if isinstance(v, dict | list) and k in self._text_fields else v
                    for k, v in record.items()
                }
            fitted.append(record)
        return fitted

    def _infer(self, records: list[Mapping[str, Any]], first: int) -> pa.RecordBatch:
        import pyarrow as pa

        errors = _conversion_errors()
        try:
            # One struct array over all records: Arrow takes the union of their keys (in order of
            # first appearance), unlike RecordBatch.from_pylist, which takes the first record's keys
            # and silently drops every other field. It also keeps the row count of empty records.
            return pa.RecordBatch.from_struct_array(pa.array(records))
        except errors:
            pass
        # Some column mixes types (or holds a value Arrow cannot infer): build column by column.
        names = list(dict.fromkeys(k for r in records for k in r))
        for name in names:
            if not isinstance(name, str):
                raise SchemaMismatchError(
                    f"Field names must be text: {_describe_value(name)} in records from {first} on"
                )
        arrays = [self._infer_column(name, records, first) for name in names]
        return pa.RecordBatch.from_arrays(arrays, names=names)

    def _infer_column(self, name: str, records: list[Mapping[str, Any]], first: int) -> pa.Array:
        import pyarrow as pa

        errors = _conversion_errors()
        values = [r.get(name) for r in records]
        try:
            return pa.array(values)
        except errors:
            pass
        target = self.schema.field(name).type if self.fixed and self.schema is not None else None
        arrays: list[pa.Array] = []
        common = pa.null()
        for offset, value in enumerate(values):
            where = self._where(first + offset, self._record_key(records[offset]))
            try:
                single = pa.array([value])
            except errors as err:
                single = None
                if target is not None and not (isinstance(value, float) and pa.types.is_integer(target)):
                    # a value only the contract's type holds (an int past int64 into uint64)
                    with contextlib.suppress(*errors):
                        single = pa.array([value], type=target)
                if single is None and self.to_string:
                    single = pa.array([dumps_json(value) if isinstance(value, dict | list) else str(value)])
                if single is None:
                    raise SchemaMismatchError(
                        f"Field {name!r} of {where}: value {_describe_value(value)} has no Arrow type ({err})"
                    ) from None
            if target is None:
                try:
                    common = _widen_type(
                        name, common, _settle_inferred(single.type), to_string=self.to_string
                    )
                except SchemaMismatchError as err:
                    raise SchemaMismatchError(
                        f"{err} First value that does not fit: {_describe_value(value)} ({where})."
                    ) from None
            arrays.append(single)
        out_type = target if target is not None else common
        return pa.concat_arrays(
            [self._cast_value(a, out_type, name, first, offset, records) for offset, a in enumerate(arrays)]
        )

    def _cast_value(
        self,
        array: pa.Array,
        target: pa.DataType,
        name: str,
        first: int,
        offset: int,
        records: list[Mapping[str, Any]],
    ) -> pa.Array:
        try:
            return _cast_array(array, target, path=name, extra=self.extra)
        except _UnexpectedNestedField as err:
            raise self._unexpected_nested(
                err.path, self._where(first + offset, self._record_key(records[offset]))
            ) from None
        except _conversion_errors() as err:
            raise SchemaMismatchError(
                f"Field {name!r} of {self._where(first + offset, self._record_key(records[offset]))}: value "
                f"{_describe_value(array[0].as_py())} does not fit type {target} ({err})"
            ) from None

    def _unexpected_nested(self, path: str, where: str) -> SchemaMismatchError:
        return SchemaMismatchError(
            f"Field {path!r} ({where}) is not in the schema. Add it to the schema's struct, or pass "
            "extra='ignore' to leave undeclared fields out."
        )

    def _evolve(self, piece: pa.RecordBatch, records: list[Mapping[str, Any]], first: int) -> None:
        import pyarrow as pa

        incoming = pa.schema([f.with_type(_settle_inferred(f.type)) for f in piece.schema])
        current = self.schema if self.schema is not None else pa.schema([])
        try:
            self.schema = evolve_schema(current, incoming, to_string=self.to_string)
            return
        except SchemaMismatchError as err:
            reason = err
        # Name the record and value: the first whose own type does not widen into the schema's.
        catch: tuple[type[BaseException], ...] = (SchemaMismatchError, *_conversion_errors())
        for field in incoming:
            if field.name not in current.names:
                continue
            have = current.field(field.name).type
            try:
                _widen_type(field.name, have, field.type, to_string=self.to_string)
                continue
            except SchemaMismatchError:
                pass
            for offset, record in enumerate(records):
                value = record.get(field.name)
                try:
                    own = _settle_inferred(pa.array([value]).type)
                    _widen_type(field.name, have, own, to_string=self.to_string)
                except catch:
                    raise SchemaMismatchError(
                        f"{reason} First value that does not fit: {_describe_value(value)} "
                        f"({self._where(first + offset, self._record_key(record))})."
                    ) from None
        raise reason

    def _align(
        self, piece: pa.RecordBatch, first: int, records: list[Mapping[str, Any]] | None = None
    ) -> pa.RecordBatch:
        """``piece`` cast to the current schema; a value that does not fit is named with its record."""
        import pyarrow as pa

        schema = self.schema
        assert schema is not None
        if piece.schema.equals(schema, check_metadata=False):
            return piece
        if len(schema) == 0:
            # No columns yet (only empty records): keep the row count.
            return pa.RecordBatch.from_struct_array(pa.array([{}] * piece.num_rows, pa.struct([])))
        names = piece.schema.names
        arrays = []
        for field in schema:
            if field.name not in names:
                arrays.append(pa.nulls(piece.num_rows, field.type))
                continue
            column = piece.column(field.name)
            try:
                arrays.append(_cast_array(column, field.type, path=field.name, extra=self.extra))
            except (_UnexpectedNestedField, *_conversion_errors()):  # type: ignore[misc]
                arrays.append(self._culprit(piece, field, first, records))
        batch = pa.RecordBatch.from_arrays(arrays, schema=schema)
        if self.fixed:
            for field, column in zip(schema, batch.columns, strict=True):
                if not field.nullable and column.null_count:
                    row = column.is_null().to_pylist().index(True)
                    raise SchemaMismatchError(
                        f"Field {field.name!r} is required by the schema (not nullable) but "
                        f"{self._where(first + row, self._piece_key(piece, row))} has no value"
                    )
        return batch

    def _culprit(
        self, piece: pa.RecordBatch, field: pa.Field, first: int, records: list[Mapping[str, Any]] | None
    ) -> pa.Array:
        """Cast value by value to find the one that does not fit, and raise naming it."""
        column = piece.column(field.name)
        for row in range(piece.num_rows):
            key = self._record_key(records[row]) if records is not None else self._piece_key(piece, row)
            where = self._where(first + row, key)
            try:
                _cast_array(column.slice(row, 1), field.type, path=field.name, extra=self.extra)
            except _UnexpectedNestedField as err:
                raise self._unexpected_nested(err.path, where) from None
            except _conversion_errors() as err:
                raise SchemaMismatchError(
                    f"Field {field.name!r} of {where}: value {_describe_value(column[row].as_py())} does "
                    f"not fit type {field.type} ({err})"
                ) from None
        # Every value fits on its own (e.g. an undeclared struct field that only ever holds null).
        return _cast_array(column, field.type, path=field.name, extra="ignore")

    def batches(self, records: Iterable[Mapping[str, Any]]) -> Iterator[pa.RecordBatch]:
        """
        Consume ``records`` lazily and yield batches of at most ``batch_size`` rows.

        Records are converted to Arrow every ``CONVERT_EVERY`` rows and the columnar pieces joined
        into a batch: a Python dict per row costs ~10x its Arrow form, so holding a whole batch of
        dicts would dominate memory (measured: 1M rows through the HTTP hook, 50k-row batches).
        The pieces of one batch are cast to the schema evolved so far before they are joined.
        """
        pending: list[tuple[int, pa.RecordBatch]] = []
        pending_rows = 0
        buffer: list[Mapping[str, Any]] = []

        for record in records:
            buffer.append(record)
            # never past batch_size: the last piece of a batch takes only the rows still missing
            if len(buffer) >= min(self.CONVERT_EVERY, self.batch_size - pending_rows):
                first = self._seen
                piece = self._to_batch(buffer)
                buffer = []
                pending.append((first, piece))
                pending_rows += piece.num_rows
                if pending_rows >= self.batch_size:
                    batch = self._join(pending)
                    pending, pending_rows = [], 0
                    self.rows += batch.num_rows
                    yield batch
        if buffer:
            first = self._seen
            pending.append((first, self._to_batch(buffer)))
        if pending:
            batch = self._join(pending)
            self.rows += batch.num_rows
            yield batch

    def _join(self, pending: list[tuple[int, pa.RecordBatch]]) -> pa.RecordBatch:
        # A later piece may have evolved the schema: bring the earlier ones to it first.
        return concat_batches([self._align(piece, first) for first, piece in pending])


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
    if (
        any(f(current) for f in numeric)
        and any(f(incoming) for f in numeric)
        and not (t.is_uint64(current) or t.is_uint64(incoming))
    ):
        return pa.float64()
    if t.is_decimal(current) and t.is_decimal(incoming):
        scale = max(current.scale, incoming.scale)
        if t.is_decimal256(current) or t.is_decimal256(incoming):
            return pa.decimal256(76, scale)
        return pa.decimal128(38, scale)
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
        # never narrower than a large_string side
        return pa.large_string() if t.is_large_string(current) or t.is_large_string(incoming) else pa.string()
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


# --------------------------------------------------------------------------------------------------
# schemas given in DAG files: JSON-able, parsed at run time (no pyarrow import at parse time)
# --------------------------------------------------------------------------------------------------
def _split_top_level(text: str) -> list[str]:
    """``a: int64, b: struct<x: int64, y: string>`` -> its top-level comma-separated parts."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        if char in "<([":
            depth += 1
        elif char in ">)]":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


def parse_type(text: str) -> pa.DataType:
    """
    An Arrow type from its text form (what ``str(pa_type)`` prints): ``int64``, ``string``,
    ``float64``, ``bool``, ``date32``, ``timestamp[us]``, ``timestamp[us, tz=UTC]``,
    ``decimal128(38, 2)``, ``list<int64>`` (or ``list<item: int64>``), ``struct<a: int64, b: string>``.
    """
    import re

    import pyarrow as pa

    text = text.strip()
    if match := re.fullmatch(r"timestamp\[(s|ms|us|ns)(?:,\s*tz=([^\]]+))?\]", text):
        return pa.timestamp(match[1], tz=match[2].strip() if match[2] else None)
    if match := re.fullmatch(r"decimal(128|256)?\(\s*(\d+)\s*,\s*(\d+)\s*\)", text):
        factory = pa.decimal256 if match[1] == "256" else pa.decimal128
        return factory(int(match[2]), int(match[3]))
    if match := re.fullmatch(r"(large_list|list)<(.*)>", text, flags=re.S):
        inner = match[2].strip()
        if re.match(r"^item\s*:", inner):
            inner = inner.split(":", 1)[1]
        value = parse_type(inner)
        return pa.large_list(value) if match[1] == "large_list" else pa.list_(value)
    if match := re.fullmatch(r"struct<(.*)>", text, flags=re.S):
        fields = []
        for part in _split_top_level(match[1]):
            name, _, type_text = part.partition(":")
            fields.append(pa.field(name.strip(), parse_type(type_text)))
        return pa.struct(fields)
    try:
        return pa.type_for_alias(text)
    except (ValueError, KeyError):
        raise ValueError(f"Unknown Arrow type {text!r} (e.g. int64, string, timestamp[us, tz=UTC])") from None


def schema_from_spec(spec: Any) -> pa.Schema | None:
    """
    A :class:`pyarrow.Schema` from a schema, a list of ``{"name", "type"[, "nullable"]}`` (the
    form :func:`schema_to_json` and the dataset manifest use) or a dict ``{name: type text}``.
    """
    import pyarrow as pa

    if spec is None or isinstance(spec, pa.Schema):
        return spec
    if isinstance(spec, dict):
        return pa.schema(
            [pa.field(str(name), parse_type(str(type_text))) for name, type_text in spec.items()]
        )
    if isinstance(spec, list | tuple):
        fields = []
        for item in spec:
            if not isinstance(item, dict) or "name" not in item or "type" not in item:
                raise ValueError(f"Each schema field needs 'name' and 'type', got {item!r}")
            fields.append(
                pa.field(str(item["name"]), parse_type(str(item["type"])), bool(item.get("nullable", True)))
            )
        return pa.schema(fields)
    raise ValueError(
        f"schema must be a pyarrow.Schema, a list of {{'name', 'type'}} or a dict name -> type, got {type(spec).__name__}"
    )
