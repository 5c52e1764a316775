"""
Declarative transformation steps, applied batch by batch (plain Python, no Airflow).

A pipeline is a list of one-key dicts, YAML/JSON friendly::

    [
        {"rename": {"Customer ID": "customer_id"}},
        {"cast": {"age": "int64", "signup": "timestamp[us, tz=UTC]"}},
        {"filter": "age >= 18 AND country IN ('FR', 'DE')"},
        {"derive": {"yearly_charges": "monthly_charges * 12", "kg": '"body mass (g)" / 1000'}},
        {"fill_null": {"country": "unknown", "age": 0}},
        {"clip": {"monthly_charges": [0, 1000]}},
        {"drop_duplicates": ["customer_id"]},
        {"select": ["customer_id", "age", "country", "yearly_charges"]},
    ]

``filter`` and ``derive`` take DuckDB SQL expressions over the batch's columns (see
:mod:`airflow_provider_mlops.etl.expressions`); a derive's columns are added in order, so a later
expression may read an earlier one. ``sql`` runs one SELECT over the whole input (and other
datasets), out of core: see :mod:`airflow_provider_mlops.etl.sql`.

``drop_duplicates`` keeps the first row of each key across the whole stream; it remembers one
hash per distinct key (memory grows with the number of keys, not with the data).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_mlops.etl.expressions import evaluate_columns, filter_rows

if TYPE_CHECKING:
    import pyarrow as pa

STEP_NAMES = (
    "select",
    "drop",
    "rename",
    "cast",
    "filter",
    "derive",
    "fill_null",
    "clip",
    "drop_duplicates",
    "drop_nulls",
    "sql",
)


class StepError(ValueError):
    """A step is malformed or does not fit the data (e.g. names a missing column)."""


def parse_type(text: str | pa.DataType) -> pa.DataType:
    """
    An Arrow type from its text form, from an allowlist only (see
    :func:`airflow_provider_mlops.utils.schema.parse_type`); a bad name is a :class:`StepError`.
    """
    from airflow_provider_mlops.utils.schema import TypeSpecError
    from airflow_provider_mlops.utils.schema import parse_type as parse

    try:
        return parse(text)
    except TypeSpecError as err:
        raise StepError(str(err)) from None


def _require(batch: pa.RecordBatch, columns: Iterable[str], step: str) -> None:
    missing = [c for c in columns if c not in batch.schema.names]
    if missing:
        raise StepError(f"Step {step!r}: column(s) {missing} not in the data (columns: {batch.schema.names})")


class Pipeline:
    """Compiled steps plus an optional per-batch user callable, applied lazily to a batch stream."""

    def __init__(
        self,
        steps: Sequence[Mapping[str, Any]] = (),
        *,
        callable: Callable[[Any], Any] | None = None,
        callable_format: str = "arrow",
        open_dataset: Callable[[Any], Iterable[pa.RecordBatch]] | None = None,
        sql_memory_limit: str = "512MB",
        sql_temp_directory: str | None = None,
        sql_threads: int | None = None,
        batch_size: int = 50_000,
    ) -> None:
        """
        :param steps: the steps, one-key dicts.
        :param callable: applied to each batch after the steps.
        :param callable_format: ``arrow`` or ``pandas``.
        :param open_dataset: the batches of a dataset a ``sql`` step names in its ``inputs`` (given
            the value there: a URI or an XCom dict).
        :param sql_memory_limit: DuckDB's memory limit for a ``sql`` step (it spills beyond).
        :param sql_temp_directory: where a ``sql`` step spills.
        :param sql_threads: DuckDB's threads for a ``sql`` step (default: one per core; each needs
            memory of its own within the limit).
        :param batch_size: rows per batch out of a ``sql`` step.
        """
        for index, step in enumerate(steps):
            if not isinstance(step, Mapping) or len(step) != 1:
                raise StepError(
                    f"Step {index} must be a one-key dict such as {{'filter': 'x > 0'}}, got {step!r}"
                )
            (name,) = step
            if name not in STEP_NAMES:
                raise StepError(f"Step {index}: unknown step {name!r}; one of {STEP_NAMES}")
        if callable_format not in ("arrow", "pandas"):
            raise StepError("callable_format must be 'arrow' or 'pandas'")
        for index, step in enumerate(steps):
            if "sql" in step:
                try:
                    _sql_spec(step["sql"])
                except StepError as err:
                    raise StepError(f"Step {index}: {err}") from None
        self.steps = [dict(s) for s in steps]
        self.open_dataset = open_dataset
        self.sql_memory_limit = sql_memory_limit
        self.sql_temp_directory = sql_temp_directory
        self.sql_threads = sql_threads
        self.batch_size = batch_size
        self.callable = callable
        self.callable_format = callable_format
        self._seen: set[bytes] = set()
        self.rows_in = 0
        self.rows_out = 0
        self.duplicates_dropped = 0
        self.filtered_out = 0

    def apply(self, batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        """
        The steps applied to ``batches``, lazily. Row-wise steps run batch by batch; a ``sql`` step
        takes the whole stream the steps before it give (as ``input``) and gives its result's stream
        to the steps after it. The callable runs last, on each batch.
        """
        stream: Iterable[pa.RecordBatch] = self._count_in(batches)
        segment: list[dict[str, Any]] = []
        for step in self.steps:
            if "sql" in step:
                stream = self._sql(self._row_wise(stream, segment, last=False), step["sql"])
                segment = []
            else:
                segment.append(step)
        for out in self._row_wise(stream, segment, last=True):
            # Empty batches still flow: they carry the schema to an otherwise empty output.
            self.rows_out += out.num_rows
            yield out

    def _count_in(self, batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            self.rows_in += batch.num_rows
            yield batch

    def _row_wise(
        self, batches: Iterable[pa.RecordBatch], steps: list[dict[str, Any]], *, last: bool
    ) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            yield self.apply_batch(batch, steps, call=last)

    def apply_batch(
        self, batch: pa.RecordBatch, steps: list[dict[str, Any]] | None = None, *, call: bool = True
    ) -> pa.RecordBatch:
        """``steps`` (default: all; row-wise ones only) and then the callable applied to one batch."""
        for step in self.steps if steps is None else steps:
            (name, arg), *_ = step.items()
            if name == "sql":
                raise StepError("A sql step reads the whole stream: use apply(), not apply_batch()")
            # Empty batches go through the steps too: their schema is the output's when all are empty.
            batch = getattr(self, f"_{name}")(batch, arg)
        if call and self.callable is not None and batch.num_rows:
            batch = self._call_user(batch)
        return batch

    def _sql(self, batches: Iterable[pa.RecordBatch], spec: Any) -> Iterator[pa.RecordBatch]:
        from airflow_provider_mlops.etl.sql import run_query

        query, inputs = _sql_spec(spec)

        def opener(value: Any) -> Callable[[], Iterable[pa.RecordBatch]]:
            if self.open_dataset is None:
                raise StepError("Step 'sql': this pipeline cannot read other datasets (no open_dataset)")
            return lambda: self.open_dataset(value)  # type: ignore[misc]

        yield from run_query(
            query,
            batches,
            {name: opener(value) for name, value in inputs.items()},
            memory_limit=self.sql_memory_limit,
            temp_directory=self.sql_temp_directory,
            batch_size=self.batch_size,
            threads=self.sql_threads,
        )

    def _call_user(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        import pyarrow as pa

        if self.callable_format == "pandas":
            frame = self.callable(batch.to_pandas())  # type: ignore[misc]
            return pa.RecordBatch.from_pandas(frame, preserve_index=False)
        result = self.callable(batch)  # type: ignore[misc]
        if isinstance(result, pa.Table):
            return (
                result.combine_chunks().to_batches()[0]
                if result.num_rows
                else pa.RecordBatch.from_pylist([], schema=result.schema)
            )
        if not isinstance(result, pa.RecordBatch):
            raise StepError(
                f"The transform callable must return a RecordBatch or Table, got {type(result).__name__}"
            )
        return result

    # -------------------------------------------------------------------------------------------- steps
    @staticmethod
    def _select(batch: pa.RecordBatch, columns: Sequence[str]) -> pa.RecordBatch:
        _require(batch, columns, "select")
        return batch.select(list(columns))

    @staticmethod
    def _drop(batch: pa.RecordBatch, columns: Sequence[str]) -> pa.RecordBatch:
        _require(batch, columns, "drop")
        return batch.select([n for n in batch.schema.names if n not in set(columns)])

    @staticmethod
    def _rename(batch: pa.RecordBatch, mapping: Mapping[str, str]) -> pa.RecordBatch:
        _require(batch, mapping, "rename")
        return batch.rename_columns([mapping.get(n, n) for n in batch.schema.names])

    @staticmethod
    def _cast(batch: pa.RecordBatch, mapping: Mapping[str, str]) -> pa.RecordBatch:
        import pyarrow as pa

        _require(batch, mapping, "cast")
        arrays, fields = [], []
        for field, column in zip(batch.schema, batch.columns, strict=True):
            if field.name in mapping:
                target = parse_type(mapping[field.name])
                try:
                    column = column.cast(target)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
                    raise StepError(f"Step 'cast': column {field.name!r} to {target}: {err}") from None
                field = field.with_type(target)
            arrays.append(column)
            fields.append(field)
        return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields))

    def _filter(self, batch: pa.RecordBatch, expression: str) -> pa.RecordBatch:
        table = filter_rows(batch, expression, what="Step 'filter'")
        self.filtered_out += batch.num_rows - table.num_rows
        return _one_batch(table)

    @staticmethod
    def _derive(batch: pa.RecordBatch, mapping: Mapping[str, str]) -> pa.RecordBatch:
        columns = evaluate_columns(batch, list(mapping.items()), what="Step 'derive'")
        for name, values in columns.items():
            column = values.combine_chunks()
            if name in batch.schema.names:
                batch = batch.set_column(batch.schema.get_field_index(name), name, column)
            else:
                batch = batch.append_column(name, column)
        return batch

    @staticmethod
    def _fill_null(batch: pa.RecordBatch, mapping: Mapping[str, Any]) -> pa.RecordBatch:
        import pyarrow as pa
        import pyarrow.compute as pc

        _require(batch, mapping, "fill_null")
        for name, value in mapping.items():
            index = batch.schema.get_field_index(name)
            column = batch.column(index)
            try:
                filled = pc.fill_null(column, pa.scalar(value).cast(column.type))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
                raise StepError(
                    f"Step 'fill_null': value {value!r} does not fit column {name!r} ({column.type}): {err}"
                ) from None
            batch = batch.set_column(index, batch.schema.field(index), filled)
        return batch

    @staticmethod
    def _clip(batch: pa.RecordBatch, mapping: Mapping[str, Sequence[float | None]]) -> pa.RecordBatch:
        import pyarrow as pa
        import pyarrow.compute as pc

        _require(batch, mapping, "clip")
        for name, bounds in mapping.items():
            if len(bounds) != 2:
                raise StepError(f"Step 'clip': {name!r} needs [low, high] (null for no bound)")
            low, high = bounds
            index = batch.schema.get_field_index(name)
            column = batch.column(index)
            if low is not None:
                column = pc.max_element_wise(column, pa.scalar(low).cast(column.type))
            if high is not None:
                column = pc.min_element_wise(column, pa.scalar(high).cast(column.type))
            batch = batch.set_column(index, batch.schema.field(index), column)
        return batch

    def _drop_duplicates(self, batch: pa.RecordBatch, keys: Sequence[str]) -> pa.RecordBatch:
        _require(batch, keys, "drop_duplicates")
        columns = [batch.column(k).to_pylist() for k in keys]
        mask = []
        for values in zip(*columns, strict=True):
            digest = hashlib.blake2b(repr(values).encode(), digest_size=16).digest()
            if digest in self._seen:
                mask.append(False)
                self.duplicates_dropped += 1
            else:
                self._seen.add(digest)
                mask.append(True)
        return batch.filter(_bool_array(mask))

    @staticmethod
    def _drop_nulls(batch: pa.RecordBatch, columns: Sequence[str]) -> pa.RecordBatch:
        import pyarrow.compute as pc

        _require(batch, columns, "drop_nulls")
        mask = None
        for name in columns:
            valid = pc.is_valid(batch.column(name))
            mask = valid if mask is None else pc.and_(mask, valid)
        return batch.filter(mask) if mask is not None else batch


def _bool_array(values: Sequence[bool]) -> pa.Array:
    """
    A boolean Arrow array built from its bits: ``pa.array`` on Python values or a numpy array makes
    pyarrow 25 import pandas (+40 MB of RSS in a task that never uses it).
    """
    import numpy as np
    import pyarrow as pa

    bits = np.packbits(np.fromiter(values, dtype=bool, count=len(values)), bitorder="little")
    return pa.Array.from_buffers(pa.bool_(), len(values), [None, pa.py_buffer(bits)])


def _sql_spec(spec: Any) -> tuple[str, dict[str, Any]]:
    """(query, {name: dataset}) of a ``sql`` step: a query, or ``{"query": ..., "inputs": {...}}``."""
    if isinstance(spec, str):
        return spec, {}
    if isinstance(spec, Mapping) and isinstance(spec.get("query"), str) and set(spec) <= {"query", "inputs"}:
        inputs = spec.get("inputs") or {}
        if not isinstance(inputs, Mapping) or not all(isinstance(k, str) and k for k in inputs):
            raise StepError(f"Step 'sql': inputs maps names to datasets (URIs or XComs), got {inputs!r}")
        if any(k.lower() == "input" for k in inputs):
            raise StepError("Step 'sql': 'input' is the step's own input; name the other datasets otherwise")
        return spec["query"], dict(inputs)
    raise StepError(
        "Step 'sql' takes a SELECT (text) or {'query': 'SELECT ...', 'inputs': {name: dataset URI}}, "
        f"got {spec!r}"
    )


def _one_batch(table: pa.Table) -> pa.RecordBatch:
    import pyarrow as pa

    combined = table.combine_chunks()
    batches = combined.to_batches()
    if not batches:
        return pa.RecordBatch.from_pylist([], schema=table.schema)
    return batches[0]
