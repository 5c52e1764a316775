"""
Python records (dicts from MongoDB, HTTP APIs, JSON Lines) -> Arrow record batches.

:class:`RecordBatcher` evolves the schema as fields appear (or holds an explicit one as a contract),
widens conflicting types losslessly with :func:`~airflow_provider_mlops.utils.schema.evolve_schema`,
and names the field, the record and the value when a value fits nowhere.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from airflow_provider_mlops.utils.arrow import (
    DEFAULT_BATCH_SIZE,
    SchemaMismatchError,
    concat_batches,
    dumps_json,
)
from airflow_provider_mlops.utils.schema import _widen_type, evolve_schema

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping

    import pyarrow as pa


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
