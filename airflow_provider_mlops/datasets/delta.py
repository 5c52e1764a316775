"""
Datasets as Delta Lake tables, through delta-rs (``deltalake``: Rust, Arrow in and out, no JVM).

Every Parquet dataset (a task's hand-off, the lake) is a Delta table. The guarantees come from its
transaction log (``_delta_log/``):

- **Commit**: data files are written first, under names no reader looks at until the log names
  them; the commit is one new log entry ``_delta_log/<version>.json``, created only if absent (a
  conditional put on S3, a hard link locally). Readers see the last committed version, never a part.
  Unpartitioned writes with an unchanged schema (every hand-off) write their Parquet files here, in
  order, through the hook's storage, and commit them with delta-rs; the others (partitions,
  predicates, MERGE, a new schema) use delta-rs's writer, which does not keep row order.
- **Nothing committed** (no log) is :class:`~.errors.NoCommittedDatasetError`, never 0 rows.
- **A failed write** (the source died, the storage refused a part, ``before_commit`` refused)
  commits nothing: the previous version stays readable. Its data files stay behind, unnamed by the
  log and invisible to every Delta reader, until :func:`vacuum` removes them.
- **A task replaces its own output**: ``mode="overwrite"`` (the whole table, or with a
  ``predicate`` one partition) is one commit, so a retry converges to the clean run's rows.
- **Racing writers** (a zombie task and its retry): the second commit of one version fails and
  delta-rs checks whether it conflicts with what won; it either commits on top (appends) or fails
  with :class:`~.errors.DatasetConflictError`. Files are never deleted by a write, so no committed
  version names a missing file (only :func:`vacuum`, past its retention, removes files).
- **Schema evolution** is never silent: within a write, late fields become columns and types widen
  losslessly (:func:`~airflow_provider_mlops.utils.schema.evolve_schema`); against an existing table
  (append, partition overwrite, upsert) new columns are added, and a type the table cannot hold
  without rewriting it fails naming the column (delta-rs would cast it silently: 1.5 -> 1).

The exact Arrow schema of each write (types Delta has not, e.g. ``uint32``, ``timestamp[ns]``
with whole microseconds, time zones other than UTC) is kept in the commit's metadata
(``mlops.arrow_schema``) and restored on read; other engines see the Delta types.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import re
import tempfile
import threading
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar
from urllib.parse import quote

from airflow_provider_mlops.datasets.errors import (
    DELTA_LOG,
    DatasetConflictError,
    DatasetCorruptError,
    DatasetError,
    NoCommittedDatasetError,
)
from airflow_provider_mlops.storage.uri import parse_uri

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Sequence

    import pyarrow as pa
    import pyarrow.fs as pafs
    from deltalake import DeltaTable

    from airflow_provider_mlops.storage.streams import OutputStream
    from airflow_provider_mlops.storage.uri import StorageLocation

log = logging.getLogger(__name__)
T = TypeVar("T")

ARROW_SCHEMA_KEY = "mlops.arrow_schema"
METADATA_KEY = "mlops.metadata"
WRITE_ID_KEY = "mlops.write_id"
#: ``s3://bucket/table@v12``: the table at version 12
_VERSIONED = re.compile(r"^(?P<uri>.+)@v(?P<version>\d+)$")
#: Characters Delta Lake (Spark, Databricks) refuses in a column name without column mapping.
INVALID_NAME_CHARACTERS = " ,;{}()\n\t="
DEFAULT_RETENTION_HOURS = 168.0


class ObjectStore(Protocol):
    """What the dataset layer needs from a storage hook (:class:`~..hooks.s3.ObjectStorageHook` provides it)."""

    def filesystem(self, uri: str) -> tuple[pafs.FileSystem, StorageLocation]: ...
    def exists(self, uri: str) -> bool: ...
    def list_uris(self, uri: str) -> list[str]: ...
    def delete_uris(self, uris: list[str]) -> int: ...
    def get_bytes(self, uri: str) -> bytes: ...
    def open_output_stream(self, uri: str) -> OutputStream: ...
    def delta_storage_options(self) -> dict[str, str]: ...


@dataclass
class PendingVersion:
    """What ``before_commit`` sees: the version about to be committed."""

    uri: str
    rows: int
    schema: pa.Schema


# --------------------------------------------------------------------------------------------------
# locations and versions
# --------------------------------------------------------------------------------------------------
def split_version(uri: str, version: int | None = None) -> tuple[str, int | None]:
    """``("s3://b/t", 12)`` for ``s3://b/t@v12``; ``version`` wins when both are given and differ is an error."""
    match = _VERSIONED.match(str(uri))
    if not match:
        return str(uri), version
    pinned = int(match.group("version"))
    if version is not None and version != pinned:
        raise ValueError(f"{uri} pins version {pinned}, but version={version} was given")
    return match.group("uri"), pinned


def table_path(store: ObjectStore, uri: str) -> tuple[str, dict[str, str] | None]:
    """What delta-rs opens: ``s3://bucket/key`` with the hook's credentials, or a local path."""
    location = parse_uri(uri)
    if "%" in location.key:
        raise DatasetError(
            f"The table path {uri} holds '%': delta-rs 1.6 decodes '%20' in a table path on some calls and "
            "not on others (a table 'a%20b' would be read as 'a b'). Name the table without '%'."
        )
    if location.scheme == "s3":
        # percent-encoded: delta-rs parses a URL ("run#1" would lose its "#1"); the keys stay literal
        key = quote(location.key.rstrip("/"), safe="/")
        return f"s3://{location.bucket}/{key}", store.delta_storage_options()
    return location.key.rstrip("/") or "/", None


def _in_client_scope(store: ObjectStore, call: Callable[..., T]) -> Callable[..., T]:
    """
    ``call`` (a delta-rs call that builds its S3 client) run within the store's ``delta_client_scope``
    when it has one: the hook's TLS settings that delta-rs takes from the environment (a CA bundle).
    """
    scope = getattr(store, "delta_client_scope", None)
    if scope is None:
        return call

    def run(*args: Any, **kwargs: Any) -> T:
        with scope():
            return call(*args, **kwargs)

    return run


def has_commit(store: ObjectStore, uri: str) -> bool:
    """
    Whether ``uri`` is a Delta table with a commit (one listing of its ``_delta_log/``; no delta-rs).
    Listed through the file system the data files are read with: a read then needs no second S3
    client (boto3's costs ~14 MB of RSS).
    """
    import pyarrow.fs as pafs

    fs, location = store.filesystem(split_version(uri)[0])
    selector = pafs.FileSelector(location.child(DELTA_LOG).path, allow_not_found=True)
    return any(
        info.type == pafs.FileType.File and info.base_name.endswith((".json", ".checkpoint.parquet"))
        for info in fs.get_file_info(selector)
    )


def open_table(store: ObjectStore, uri: str, *, version: int | None = None) -> DeltaTable:
    """The Delta table at ``uri`` (``@vN`` or ``version`` for an older version)."""
    from deltalake import DeltaTable
    from deltalake.exceptions import DeltaError, TableNotFoundError

    base, version = split_version(uri, version)
    path, options = table_path(store, base)
    try:
        return _in_client_scope(store, DeltaTable)(path, storage_options=options, version=version)
    except TableNotFoundError as err:
        raise NoCommittedDatasetError(
            f"No committed dataset at {base} (no Delta commit in {DELTA_LOG}/). If a task writes it, that "
            "task has not finished successfully yet."
        ) from err
    except DeltaError as err:
        if version is not None and "version" in str(err).lower():
            raise DatasetError(
                f"{base} has no version {version} (it never existed, or its log entries were cleaned up "
                f"after the log retention): {err}"
            ) from err
        raise


def current_version(store: ObjectStore, uri: str) -> int:
    """The table's latest committed version (raises NoCommittedDatasetError when there is none)."""
    return int(open_table(store, split_version(uri)[0]).version())


# --------------------------------------------------------------------------------------------------
# schemas: what Delta holds, and the Arrow schema this provider wrote
# --------------------------------------------------------------------------------------------------
def encode_schema(schema: pa.Schema) -> str:
    return base64.b64encode(schema.serialize().to_pybytes()).decode("ascii")


def decode_schema(text: str) -> pa.Schema:
    import pyarrow as pa

    return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(text)))


def check_names(schema: pa.Schema, uri: str) -> None:
    """Refuse, by name, column names Delta readers (Spark, Databricks, Athena) cannot hold as they are."""
    bad = [f.name for f in schema if any(c in f.name for c in INVALID_NAME_CHARACTERS) or not f.name]
    if bad:
        raise DatasetError(
            f"Column name(s) {bad} of {uri} hold characters a Delta table cannot store without column "
            f"mapping (any of {INVALID_NAME_CHARACTERS!r}, or empty). Rename them before the write, e.g. a "
            "TransformOperator step {'rename': {'a b': 'a_b'}}, or write an export (format='csv'/'jsonl'). "
            "Column mapping is not used: delta-rs 1.6 writes NULLs into columns of a column-mapped table."
        )


def _storage_type(data_type: pa.DataType) -> pa.DataType | None:
    """The Delta type a top-level Arrow type is stored as, when it is not stored as itself."""
    import pyarrow as pa
    import pyarrow.types as t

    if t.is_timestamp(data_type) and (data_type.unit == "ns" or (data_type.tz not in (None, "UTC"))):
        return pa.timestamp("us", tz="UTC" if data_type.tz else None)
    if t.is_uint8(data_type):
        return pa.int16()
    if t.is_uint16(data_type):
        return pa.int32()
    if t.is_uint32(data_type):
        return pa.int64()
    if t.is_uint64(data_type):
        return pa.decimal128(20, 0)
    if t.is_float16(data_type):
        return pa.float32()
    if t.is_time(data_type) or t.is_duration(data_type):
        return pa.int64()
    if t.is_large_string(data_type) or (t.is_dictionary(data_type) and t.is_string(data_type.value_type)):
        return pa.string()
    return None


def storage_schema(schema: pa.Schema) -> pa.Schema:
    """``schema`` with each top-level type Delta lacks replaced by one that holds it losslessly."""
    import pyarrow as pa

    return pa.schema([f.with_type(_storage_type(f.type) or f.type) for f in schema])


def to_storage(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """Cast a batch to :func:`storage_schema`, refusing (by column) what would lose precision."""
    import pyarrow as pa
    import pyarrow.types as t

    if batch.schema.equals(schema, check_metadata=False):
        return batch
    # only here: pyarrow.compute costs ~12 MB of RSS, and a batch already in Delta's types needs none
    import pyarrow.compute as pc

    arrays = []
    for field, column in zip(schema, batch.columns, strict=True):
        if column.type == field.type:
            arrays.append(column)
            continue
        source = column
        if t.is_time(column.type) or t.is_duration(column.type):
            source = column.view(pa.int64()) if column.type.bit_width == 64 else column.cast(pa.int32())
        try:
            arrays.append(pc.cast(source, field.type, safe=True))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
            raise DatasetError(
                f"Column {field.name!r} ({column.type}) cannot be stored in a Delta table as {field.type} "
                f"without losing values ({err}). Delta keeps microseconds: round the column, or write it as text."
            ) from None
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def from_storage(batch: pa.RecordBatch, target: pa.Schema) -> pa.RecordBatch:
    """A batch read from Delta, cast back to the Arrow types that were written."""
    import pyarrow as pa
    import pyarrow.types as t

    if batch.schema.equals(target, check_metadata=False):
        return batch
    arrays = []
    for field in target:
        if field.name not in batch.schema.names:
            arrays.append(pa.nulls(batch.num_rows, field.type))
            continue
        column = batch.column(field.name)
        if column.type == field.type:
            arrays.append(column)
        elif (t.is_time(field.type) or t.is_duration(field.type)) and t.is_integer(column.type):
            width = pa.int64() if field.type.bit_width == 64 else pa.int32()
            arrays.append(column.cast(width).view(field.type))
        else:
            arrays.append(column.cast(field.type))
    return pa.RecordBatch.from_arrays(arrays, schema=target)


def table_schema(
    store: ObjectStore, uri: str, table: DeltaTable, *, fs: pafs.FileSystem | None = None
) -> pa.Schema:
    """
    The Arrow schema to read ``table`` with: the one written (kept in the commit), else Delta's.

    :param fs: read the commit through this file system (see :func:`commit_info`).
    """
    import pyarrow as pa

    delta_schema = pa.schema(table.schema().to_arrow())
    written = commit_info(store, uri, table.version(), fs=fs).get(ARROW_SCHEMA_KEY)
    if not written:
        return delta_schema
    schema = decode_schema(written)
    if schema.names != delta_schema.names:  # another engine changed the table: trust Delta
        return delta_schema
    return schema


def commit_info(
    store: ObjectStore, uri: str, version: int, *, fs: pafs.FileSystem | None = None
) -> dict[str, Any]:
    """
    The ``commitInfo`` of one version, read from its log entry (one small GET). Read here rather than
    with ``DeltaTable.history``, which returns nothing for tables whose path holds ``#`` or a space
    (delta-rs 1.6.6). Empty when the entry is gone (log retention) or has no commit info.

    :param fs: read through this file system (a read's: it then needs no boto3 client) instead of
        the store's ``get_bytes``.
    """
    location = _log_entry(uri, version)
    entry = location.uri
    try:
        if fs is not None:
            with fs.open_input_stream(location.path) as stream:
                raw = stream.read()
        else:
            raw = store.get_bytes(entry)
    except Exception as err:  # optional in Delta: read without it
        log.debug("No commit info for %s: %s", entry, err)
        return {}
    return _parse_commit_info(raw)


def _log_entry(uri: str, version: int) -> StorageLocation:
    """Where the log entry of ``version`` lives (``_delta_log/<20 digits>.json``)."""
    return parse_uri(split_version(uri)[0]).child(DELTA_LOG, f"{version:020d}.json")


def _parse_commit_info(raw: bytes) -> dict[str, Any]:
    for line in raw.splitlines():
        if b"commitInfo" in line:
            with contextlib.suppress(ValueError):
                return dict(json.loads(line).get("commitInfo") or {})
    return {}


def _write_id_at(store: ObjectStore, uri: str, version: int, *, attempts: int = 3) -> str | None:
    """
    The write id the log entry of ``version`` names; None when the entry does not exist or names
    none. Unlike :func:`commit_info` a read error is not "no entry": it is retried, then raised
    (deciding "not this write" on a failed GET would delete committed files or report another
    writer's version).
    """
    import time

    entry = _log_entry(uri, version).uri
    for attempt in range(attempts):
        try:
            raw = store.get_bytes(entry)
            break
        except FileNotFoundError:
            return None
        except Exception:
            if attempt == attempts - 1:
                raise
            time.sleep(0.5 * (attempt + 1))
    found = _parse_commit_info(raw).get(WRITE_ID_KEY)
    return None if found is None else str(found)


# --------------------------------------------------------------------------------------------------
# write
# --------------------------------------------------------------------------------------------------
#: a column chunk's dictionary past this size falls back to plain pages (Arrow's default: 1 MB). A row
#: group holds one batch (<= 50,000 rows): a dictionary that large holds mostly distinct values, which
#: cost hashing and made larger files (extract of 1M rows: 0.26 -> 0.23 s CPU, 37.9 -> 36.2 MB).
DICTIONARY_PAGE_LIMIT = 128 << 10


class _Spool:
    """Batches staged on local disk (Arrow IPC, LZ4) while the stream's final schema is not known."""

    def __init__(self) -> None:
        self._dir = tempfile.mkdtemp(prefix="mlops-delta-spool-")
        self._files: list[str] = []
        self._writer: Any = None
        self._schema: pa.Schema | None = None

    def write(self, batch: pa.RecordBatch) -> None:
        import pyarrow as pa

        if self._writer is None or not batch.schema.equals(self._schema, check_metadata=False):
            self._close()
            path = os.path.join(self._dir, f"{len(self._files):05d}.arrows")
            self._files.append(path)
            self._schema = batch.schema
            options = pa.ipc.IpcWriteOptions(compression="lz4")
            self._writer = pa.ipc.new_stream(pa.OSFile(path, "wb"), batch.schema, options=options)
        self._writer.write_batch(batch)

    def _close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def read(self) -> Iterator[pa.RecordBatch]:
        import pyarrow as pa

        self._close()
        for path in self._files:
            with pa.OSFile(path, "rb") as source:
                yield from pa.ipc.open_stream(source)

    def remove(self) -> None:
        import shutil

        self._close()
        shutil.rmtree(self._dir, ignore_errors=True)


def _on_own_thread(batches: Iterable[pa.RecordBatch], depth: int = 2) -> Iterator[pa.RecordBatch]:
    """
    ``batches``, produced on a thread of their own and handed over through a queue of ``depth``.

    delta-rs pulls the batches of a write from one of its runtime's threads; a source that itself
    calls delta-rs there (reading another table: a transform's input) would panic ("Cannot start a
    runtime from within a runtime"). On its own thread the source may do anything; memory stays
    bounded by the queue.
    """
    import queue

    handoff: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def produce() -> None:
        try:
            for batch in batches:
                while not stop.is_set():
                    try:
                        handoff.put(batch, timeout=0.2)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            item: Any = done
        except BaseException as err:
            item = err
        while not stop.is_set():
            try:
                handoff.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    thread = threading.Thread(target=produce, name="mlops-delta-source", daemon=True)
    thread.start()
    try:
        while True:
            item = handoff.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=10)


def _evolving(batches: Iterable[pa.RecordBatch], to_string: bool) -> tuple[pa.Schema | None, _Spool]:
    from airflow_provider_mlops.utils.schema import evolve_schema

    spool = _Spool()
    schema = None
    try:
        for batch in batches:
            schema = (
                batch.schema if schema is None else evolve_schema(schema, batch.schema, to_string=to_string)
            )
            if batch.num_rows:
                spool.write(batch)
    except BaseException:
        spool.remove()
        raise
    return schema, spool


def check_evolution(current: pa.Schema, incoming: pa.Schema, uri: str) -> pa.Schema:
    """
    The table's schema once ``incoming`` is added to a table of schema ``current``: new columns are
    added; a type the table does not already hold fails, naming the column (Delta cannot change the
    type of committed files without rewriting them, and delta-rs would cast silently).
    """
    from airflow_provider_mlops.utils.schema import evolve_schema

    try:
        evolved = evolve_schema(current, incoming)
    except Exception as err:
        raise DatasetError(f"Cannot add this data to {uri}: {err}") from err
    for field in current:
        if not evolved.field(field.name).type.equals(field.type):
            raise DatasetError(
                f"Column {field.name!r} is {field.type} in {uri} but {incoming.field(field.name).type} in this "
                "write: a Delta table cannot widen a committed column in place. Cast the column to "
                f"{field.type} in a transform, or replace the whole table (mode='replace')."
            )
    return evolved


def write_table(
    store: ObjectStore,
    uri: str,
    batches: Iterable[pa.RecordBatch],
    *,
    schema: pa.Schema | None = None,
    mode: str = "overwrite",
    predicate: str | None = None,
    partition_by: Sequence[str] | None = None,
    metadata: dict[str, Any] | None = None,
    before_commit: Callable[[PendingVersion], None] | None = None,
    type_conflict: str = "error",
    compression: str | None = "zstd",
    target_file_size: int | None = None,
    max_rows_per_file: int = 1_000_000,
) -> dict[str, Any]:
    """
    Write ``batches`` as one new version of the Delta table at ``uri`` (one commit).

    :param schema: a fixed schema every batch is cast to; the batches then stream straight into the
        table. Without it the stream is staged on local disk (Arrow IPC, LZ4) until its final schema
        is known (late fields, widened types), then written: memory stays bounded either way.
    :param mode: ``overwrite`` (the whole table, or the rows ``predicate`` selects) or ``append``.
    :param predicate: with ``overwrite``: the rows replaced, e.g. ``"day" = '2026-01-01'``; every
        written row must match it.
    :param partition_by: partition columns (when the table is created).
    :param metadata: JSON-able values kept with the commit (``mlops.metadata``).
    :param before_commit: called with the :class:`PendingVersion` before the commit; raising commits
        nothing.
    :param type_conflict: ``string``: a field of conflicting types was turned into text by the source.
    :return: the summary of the committed version (see :func:`describe`).
    """
    import pyarrow as pa
    from deltalake import CommitProperties, WriterProperties, write_deltalake
    from deltalake.exceptions import CommitFailedError

    from airflow_provider_mlops.utils.arrow import conform

    if mode not in ("overwrite", "append"):
        raise ValueError(f"mode must be overwrite or append, got {mode!r}")
    if max_rows_per_file <= 0:
        raise ValueError("max_rows_per_file must be positive")
    if type_conflict not in ("error", "string"):
        raise ValueError(f"type_conflict must be error or string, got {type_conflict!r}")
    base, pinned = split_version(uri)
    if pinned is not None:
        raise ValueError(f"Cannot write to a version of a table ({uri}): write to {base}")
    if schema is not None:
        check_names(schema, base)
    if mode == "overwrite" and not predicate and not partition_by:
        table = None
        with contextlib.suppress(NoCommittedDatasetError):
            table = open_table(store, base)
        if table is None or not table.metadata().partition_columns:
            # A task's own output (every hand-off): streamed into Parquet files in order, committed once.
            write_id = uuid.uuid4().hex
            written = _write_ordered(
                store,
                base,
                batches,
                fixed=schema,
                table=table,
                mode=mode,
                compression=compression,
                write_id=write_id,
                metadata=metadata,
                before_commit=before_commit,
                to_string=type_conflict == "string",
                max_rows_per_file=max_rows_per_file,
            )
            if written is None:
                return _no_columns(store, base, mode, predicate, metadata, before_commit, type_conflict)
            return _committed(store, base, write_id, written)
    spool = None
    if schema is None:
        schema, spool = _evolving(batches, type_conflict == "string")
        if schema is None:
            spool.remove()
            return _no_columns(store, base, mode, predicate, metadata, before_commit, type_conflict)
        source: Iterable[pa.RecordBatch] = spool.read()
        fill = True
    else:
        source, fill = batches, False
    check_names(schema, base)
    existing = None
    with contextlib.suppress(NoCommittedDatasetError):
        if mode == "append" or predicate:
            existing = open_table(store, base)
    schema_mode = "overwrite" if mode == "overwrite" and not predicate else None
    if existing is not None:
        current = table_schema(store, base, existing)
        evolved = check_evolution(current, schema, base)
        if not evolved.equals(current, check_metadata=False):
            schema_mode = "merge"
        schema = evolved
        fill = True
    stored = storage_schema(schema)
    write_id = uuid.uuid4().hex
    state: dict[str, Any] = {"rows": 0, "error": None}

    def stream() -> Iterator[pa.RecordBatch]:
        try:
            for batch in conform(source, schema, fill_missing=fill):
                state["rows"] += batch.num_rows
                yield to_storage(batch, stored)
            if before_commit is not None:
                before_commit(PendingVersion(uri=base, rows=state["rows"], schema=schema))
        except BaseException as err:  # delta-rs wraps it in its own error: keep the original
            state["error"] = err
            raise

    path, options = table_path(store, base)
    custom = {ARROW_SCHEMA_KEY: encode_schema(schema), WRITE_ID_KEY: write_id}
    if metadata:
        custom[METADATA_KEY] = json.dumps(metadata, default=str)
    current_table = existing
    if current_table is None and not predicate:
        with contextlib.suppress(NoCommittedDatasetError):
            current_table = open_table(store, base)
    partitioned = bool(partition_by or predicate) or bool(
        current_table is not None and current_table.metadata().partition_columns
    )
    # a commit of add actions does not change the table's schema: a new schema goes through delta-rs's writer
    same_schema = current_table is None or pa.schema(current_table.schema().to_arrow()).equals(
        storage_schema_as_delta(stored), check_metadata=False
    )
    if not partitioned and same_schema:
        # Hand-offs and unpartitioned tables: written here, in the order given (delta-rs's writer
        # interleaves the batches of one write), then committed by delta-rs.
        try:
            _write_ordered(
                store,
                base,
                stream(),
                fixed=stored,
                table=current_table,
                mode=mode,
                compression=compression,
                write_id=write_id,
                metadata=metadata,
                before_commit=None,  # stream() calls it
                arrow_schema=schema,
                max_rows_per_file=max_rows_per_file,
            )
        finally:
            if spool is not None:
                spool.remove()
    else:
        try:
            _in_client_scope(store, write_deltalake)(
                path,
                pa.RecordBatchReader.from_batches(stored, _on_own_thread(stream())),
                mode=mode,  # type: ignore[arg-type]
                predicate=predicate,
                partition_by=list(partition_by) if partition_by else None,
                schema_mode=schema_mode,  # type: ignore[arg-type]
                storage_options=options,
                target_file_size=target_file_size,
                # row groups of at most 64k rows: a reader holds one at a time (delta-rs's default
                # made a 1M-row file one row group, held whole by every reader)
                writer_properties=WriterProperties(
                    compression=(compression or "uncompressed").upper(), max_row_group_size=65_536
                ),
                commit_properties=CommitProperties(custom_metadata=custom),
            )
        except BaseException as err:
            if state["error"] is not None and state["error"] is not err:
                raise state["error"] from None
            if isinstance(err, CommitFailedError):
                raise DatasetConflictError(
                    f"Another writer committed to {base} while this write ran, and the two conflict: nothing of "
                    f"this write was committed ({err}). A retry writes again on top of the new version."
                ) from err
            raise
        finally:
            if spool is not None:
                spool.remove()
    return _committed(store, base, write_id, state["rows"])


def _committed(store: ObjectStore, uri: str, write_id: str, rows: int) -> dict[str, Any]:
    """The summary of the version this write committed."""
    table = open_table(store, uri)
    version = _version_of(store, uri, table, write_id)
    log.info("Committed %s rows to %s as version %s", rows, uri, version)
    if version is None:  # committed, version unknown: no summary of another writer's version
        summary = describe(store, uri, table)
        summary.update(version=None, rows=rows)
    else:
        summary = describe(
            store, uri, open_table(store, uri, version=version) if version != table.version() else table
        )
    summary["rows_written"] = rows
    return summary


def storage_schema_as_delta(schema: pa.Schema) -> pa.Schema:
    """``schema`` as delta-rs reports it back (its own Arrow types for the Delta types)."""
    import pyarrow as pa
    from deltalake import Schema as DeltaSchema

    return pa.schema(DeltaSchema.from_arrow(schema).to_arrow())


def _write_ordered(
    store: ObjectStore,
    uri: str,
    batches: Iterable[pa.RecordBatch],
    *,
    fixed: pa.Schema | None,
    table: DeltaTable | None,
    mode: str,
    compression: str | None,
    write_id: str,
    metadata: dict[str, Any] | None,
    before_commit: Callable[[PendingVersion], None] | None,
    to_string: bool = False,
    arrow_schema: pa.Schema | None = None,
    max_rows_per_file: int = 1_000_000,
) -> int | None:
    """
    Write ``batches`` as Parquet files of the table, in order (one row group per batch, streamed
    through the hook: multipart on S3, one part in memory), then commit them with delta-rs as one
    version. A failure removes the files this write made (names no other writer uses) and commits
    nothing.

    Without a ``fixed`` schema the schema evolves as batches bring new fields (a new file starts;
    older files lack the column, which Delta reads as null) or wider types (the files written so far
    are rewritten with the wider type: Delta files must hold the table's types).

    :param arrow_schema: the Arrow schema ``fixed`` stores (what readers get back); default ``fixed``.
    :return: the rows committed, or None when there was no batch and no schema (nothing written).
    """
    import time

    import pyarrow.parquet as pq
    import pyarrow.types as pa_types
    from deltalake import CommitProperties
    from deltalake import Schema as DeltaSchema
    from deltalake.exceptions import CommitFailedError
    from deltalake.transaction import AddAction, create_table_with_add_actions

    from airflow_provider_mlops.utils.arrow import conform
    from airflow_provider_mlops.utils.schema import evolve_schema

    root = parse_uri(uri)
    since = -1 if table is None else int(table.version())  # this write's commit comes after it
    written: list[tuple[str, int, int]] = []  # name, bytes, rows
    state: dict[str, Any] = {
        "stream": None, "writer": None, "name": None, "rows": 0, "total": 0, "committing": False,
    }  # fmt: skip
    suffix = f".{compression.lower()}" if compression else ""
    current = arrow_schema or fixed

    def close() -> None:
        if state["writer"] is None:
            return
        state["writer"].close()
        size = state["stream"].tell()
        state["stream"].close()
        written.append((state["name"], size, state["rows"]))
        state.update(stream=None, writer=None, name=None, rows=0)

    def write(batch: pa.RecordBatch) -> None:
        offset = 0
        while offset < batch.num_rows:
            if state["writer"] is None or state["rows"] >= max_rows_per_file:
                close()
                name = f"part-{len(written):05d}-{uuid.uuid4()}-c000{suffix}.parquet"
                stream = store.open_output_stream(root.join(name))
                state.update(stream=stream, name=name, rows=0)
                # dictionary-encode text and binary only (Arrow's default tries every column: 1.6x slower)
                text = [
                    f.name for f in batch.schema if pa_types.is_string(f.type) or pa_types.is_binary(f.type)
                ]
                state["writer"] = pq.ParquetWriter(
                    getattr(stream, "native", stream),
                    batch.schema,
                    compression=compression or "none",
                    use_dictionary=text,
                    dictionary_pagesize_limit=DICTIONARY_PAGE_LIMIT,
                )
            take = min(max_rows_per_file - state["rows"], batch.num_rows - offset)
            state["writer"].write_batch(batch.slice(offset, take))
            state["rows"] += take
            offset += take

    def rewrite(schema: pa.Schema) -> None:
        """The files written so far, again with a wider schema (then the old ones removed)."""
        from airflow_provider_mlops.datasets.files import _iter_parquet_file

        # the file system only here: on S3 the files are written through the hook's stream, and
        # Arrow's S3 client costs ~6 MB of RSS
        fs, _ = store.filesystem(root.uri)
        old = list(written)
        written.clear()
        stored = storage_schema(schema)
        for name, _, _ in old:
            for batch in _iter_parquet_file(fs, root.child(name).path, 50_000, None):
                (fitted,) = conform(
                    [from_storage(batch, _narrow(schema, batch.schema))], schema, fill_missing=True
                )
                write(to_storage(fitted, stored))
        close()
        store.delete_uris([root.join(name) for name, _, _ in old])

    try:
        for raw in batches:
            if fixed is not None:
                (batch,) = conform([raw], fixed, fill_missing=arrow_schema is not None)
                write(batch)
                state["total"] += batch.num_rows
                continue
            if current is None:
                current = raw.schema
                check_names(current, uri)
            else:
                evolved = evolve_schema(current, raw.schema, to_string=to_string)
                if evolved is not current:
                    check_names(evolved, uri)
                    close()
                    widened = any(not evolved.field(f.name).type.equals(f.type) for f in current)
                    current = evolved
                    if widened:
                        rewrite(current)
            (batch,) = conform([raw], current, fill_missing=True)
            write(to_storage(batch, storage_schema(current)))
            state["total"] += batch.num_rows
        close()
        if current is None:
            return None
        if before_commit is not None:
            before_commit(PendingVersion(uri=uri, rows=state["total"], schema=current))
        now = int(time.time() * 1000)
        actions = [
            AddAction(name, size, {}, now, True, json.dumps({"numRecords": rows}))
            for name, size, rows in written
        ]
        custom = {ARROW_SCHEMA_KEY: encode_schema(current), WRITE_ID_KEY: write_id}
        if metadata:
            custom[METADATA_KEY] = json.dumps(metadata, default=str)
        commit = CommitProperties(custom_metadata=custom)
        stored = fixed if arrow_schema is not None else storage_schema(current)
        state["committing"] = True
        if table is None:
            path, options = table_path(store, uri)
            _in_client_scope(store, create_table_with_add_actions)(
                path,
                DeltaSchema.from_arrow(stored),
                actions,
                mode=mode,  # type: ignore[arg-type]
                storage_options=options,
                commit_properties=commit,
            )
        else:
            table.create_write_transaction(actions, mode=mode, schema=stored, commit_properties=commit)
    except BaseException as err:
        if state["stream"] is not None:
            with contextlib.suppress(Exception):
                state["writer"].close()
            with contextlib.suppress(Exception):
                state["stream"].abort()
        # A commit that raised may still have landed (its answer lost, a timeout just after the
        # log write): its files are only deleted once the log shows it did not.
        landed = state["committing"] and not isinstance(err, CommitFailedError)
        if landed and _commit_absent(store, uri, write_id, since=since):
            landed = False
        if written and not landed:
            try:
                store.delete_uris([root.join(name) for name, _, _ in written])
            except Exception as cleanup:  # the original error matters more; vacuum removes them
                log.warning("Could not remove the uncommitted files of %s: %s", uri, cleanup)
        elif written:
            log.warning("%s: the commit may have landed; its files are kept (%s)", uri, err)
        if isinstance(err, CommitFailedError):
            raise DatasetConflictError(
                f"Another writer committed to {uri} while this write ran, and the two conflict: nothing of "
                f"this write was committed ({err}). A retry writes again on top of the new version."
            ) from err
        raise
    return int(state["total"])


def _narrow(schema: pa.Schema, file_schema: pa.Schema) -> pa.Schema:
    """The fields of ``schema`` a file written before the schema grew holds (its older types kept)."""
    import pyarrow as pa

    return pa.schema([file_schema.field(f.name) for f in schema if f.name in file_schema.names])


def _no_columns(
    store: ObjectStore,
    uri: str,
    mode: str,
    predicate: str | None,
    metadata: dict[str, Any] | None,
    before_commit: Callable[[PendingVersion], None] | None,
    type_conflict: str,
) -> dict[str, Any]:
    """
    No batch and no schema (a record source that returned nothing). An existing table is written
    empty with its own schema (an overwrite still replaces the task's output); without a table
    nothing can be created (Delta needs a column), so nothing is committed and readers keep getting
    :class:`~.errors.NoCommittedDatasetError`.
    """
    import pyarrow as pa

    try:
        existing = open_table(store, uri)
    except NoCommittedDatasetError:
        if before_commit is not None:
            before_commit(PendingVersion(uri=uri, rows=0, schema=pa.schema([])))
        log.warning("Nothing written to %s: no rows and no columns, and no table to keep the schema of", uri)
        return {
            "uri": parse_uri(uri).uri.rstrip("/"),
            "format": "delta",
            "version": None,
            "rows": 0,
            "rows_written": 0,
            "bytes": 0,
            "files": [],
            "schema": [],
            "schema_fingerprint": None,
            "partition_by": [],
            "committed_at": None,
            "metadata": metadata,
        }
    return write_table(
        store,
        uri,
        iter(()),
        schema=table_schema(store, uri, existing),
        mode=mode,
        predicate=predicate,
        metadata=metadata,
        before_commit=before_commit,
        type_conflict=type_conflict,
    )


def _commit_absent(store: ObjectStore, uri: str, write_id: str, *, since: int) -> bool:
    """
    True only when the log is readable and no commit after version ``since`` (the table's version
    when the write began; -1 for a new table) is this write's: every commit it could have made is
    looked at, however many other writers committed meanwhile.
    """
    try:
        if not has_commit(store, uri):
            return True  # a first write whose commit did not land
        latest = int(open_table(store, uri).version())
        return all(_write_id_at(store, uri, version) != write_id for version in range(latest, since, -1))
    except Exception:  # the log cannot be read now: not known to be absent, so the files stay
        return False


def _version_of(store: ObjectStore, uri: str, table: DeltaTable, write_id: str) -> int | None:
    """
    The version this write committed (other writers may have committed after it): searched from the
    newest back, one small log read per version, never guessed (a hand-off's XCom pins it). None
    when the log cannot tell: the write has committed, so it must not fail (a retry of an append
    would commit the rows twice); the caller then reports no version.
    """
    latest = int(table.version())
    try:
        for version in range(latest, -1, -1):
            if _write_id_at(store, uri, version) == write_id:
                return version
    except Exception as err:
        log.warning("%s: committed, but its log could not be read to find the version (%s)", uri, err)
        return None
    log.warning(
        "%s: committed, but no log entry from version %s down to 0 names write %s", uri, latest, write_id
    )
    return None


def merge_table(
    store: ObjectStore,
    uri: str,
    batches: Iterable[pa.RecordBatch],
    *,
    keys: Sequence[str],
    schema: pa.Schema | None = None,
    partition_by: Sequence[str] | None = None,
    metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """
    Upsert: MERGE ``batches`` into the table on ``keys`` (update matched rows, insert the others), one
    commit. A NULL key or a key repeated within the batches fails before anything commits (the same
    :class:`~airflow_provider_mlops.sinks.contract.KeyCheck` as every other sink). A missing table is
    created from the batches.
    """
    import pyarrow as pa
    from deltalake import CommitProperties
    from deltalake.exceptions import CommitFailedError

    from airflow_provider_mlops.sinks.contract import KeyCheck, KeyViolation
    from airflow_provider_mlops.utils.arrow import conform, peek_schema

    keys = list(keys)
    if not keys:
        raise ValueError("An upsert needs keys")
    try:
        table = open_table(store, uri)
    except NoCommittedDatasetError:
        check = KeyCheck(keys)

        def checked() -> Iterator[pa.RecordBatch]:
            yield from check.watch(batches)
            check.verify()

        return write_table(store, uri, checked(), schema=schema, partition_by=partition_by, metadata=metadata)
    schema, stream = peek_schema(batches, schema)
    current = table_schema(store, uri, table)
    if schema is None:
        return describe(store, uri, table) | {"rows_written": 0}
    check_names(schema, uri)
    missing = [k for k in keys if k not in schema.names or k not in current.names]
    if missing:
        raise KeyViolation(f"Upsert key column(s) {missing} are not in both the data and {uri}")
    evolved = check_evolution(current, schema, uri)
    stored = storage_schema(evolved)
    check = KeyCheck(keys)
    state: dict[str, Any] = {"rows": 0, "error": None}

    def source() -> Iterator[pa.RecordBatch]:
        try:
            for batch in conform(check.watch(stream), evolved, fill_missing=True):
                state["rows"] += batch.num_rows
                yield to_storage(batch, stored)
            check.verify()
        except BaseException as err:
            state["error"] = err
            raise

    predicate = " AND ".join(f"t.{_quote(k)} = s.{_quote(k)}" for k in keys)
    write_id = uuid.uuid4().hex
    custom = {ARROW_SCHEMA_KEY: encode_schema(evolved), WRITE_ID_KEY: write_id}
    if metadata:
        custom[METADATA_KEY] = json.dumps(metadata, default=str)
    try:
        metrics = (
            table.merge(
                pa.RecordBatchReader.from_batches(stored, _on_own_thread(source())),
                predicate=predicate,
                source_alias="s",
                target_alias="t",
                merge_schema=not evolved.equals(current, check_metadata=False),
                commit_properties=CommitProperties(custom_metadata=custom),
            )
            .when_matched_update_all()
            .when_not_matched_insert_all()
            .execute()
        )
    except BaseException as err:
        if state["error"] is not None and state["error"] is not err:
            raise state["error"] from None
        if check.error is not None:
            raise check.error from None
        if isinstance(err, CommitFailedError):
            raise DatasetConflictError(
                f"Another writer committed to {uri} during this upsert: {err}"
            ) from err
        raise
    latest = open_table(store, uri)
    version = _version_of(store, uri, latest, write_id)
    summary = describe(store, uri, latest if version is None else open_table(store, uri, version=version))
    if version is None:  # committed, version unknown (see _version_of)
        summary["version"] = None
    summary.update(
        rows_written=state["rows"],
        inserted=int(metrics.get("num_target_rows_inserted", 0)),
        updated=int(metrics.get("num_target_rows_updated", 0)),
    )
    return summary


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def partition_predicate(partition: dict[str, Any]) -> str:
    """``{"day": "2026-01-01"}`` as a Delta predicate: ``"day" = '2026-01-01'`` (values as SQL literals)."""
    import datetime as dt

    if not partition:
        raise ValueError("A partition replace needs partition={column: value}")
    parts = []
    for column, value in partition.items():
        if value is None:
            parts.append(f"{_quote(column)} IS NULL")
        elif isinstance(value, bool):
            parts.append(f"{_quote(column)} = {'true' if value else 'false'}")
        elif isinstance(value, int | float):
            parts.append(f"{_quote(column)} = {value!r}")
        elif isinstance(value, dt.date | dt.datetime | str):
            text = value.isoformat() if isinstance(value, dt.date) else value
            parts.append(f"{_quote(column)} = '" + str(text).replace("'", "''") + "'")
        else:
            raise ValueError(f"Partition value {value!r} of {column!r} is not a string, number, date or None")
    return " AND ".join(parts)


# --------------------------------------------------------------------------------------------------
# read
# --------------------------------------------------------------------------------------------------
def iter_table(
    store: ObjectStore,
    uri: str,
    *,
    version: int | None = None,
    batch_size: int = 50_000,
    columns: list[str] | None = None,
    schema: pa.Schema | None = None,
) -> Iterator[pa.RecordBatch]:
    """
    The committed version of the table (the latest, or ``version`` / ``@vN``) as bounded batches.

    The table is opened now, not at the first batch: a missing table fails here, and the batches
    may then be pulled from any thread (also one of delta-rs's own, when they feed another write).
    """
    import pyarrow as pa

    table = open_table(store, uri, version=version)
    fs, _ = store.filesystem(split_version(uri)[0])
    target = schema or table_schema(store, uri, table, fs=fs)
    if columns:
        unknown = [c for c in columns if c not in target.names]
        if unknown:
            raise KeyError(f"Column(s) {unknown} are not in the dataset {uri} (columns: {target.names})")
        target = pa.schema([target.field(c) for c in columns])
    protocol = table.protocol()
    if protocol.min_reader_version > 1 or protocol.reader_features:
        # column mapping, deletion vectors...: delta-rs's own scan knows them
        return _scan_dataset(table.to_pyarrow_dataset(), table, uri, target, batch_size)
    files = add_actions(table)
    return _scan_files(store, uri, table, files, target, batch_size)


def add_actions(table: DeltaTable) -> pa.Table:
    """
    The version's data files (``path``, ``size_bytes``, ``num_records``, ``partition.<column>``...).
    Through the Arrow stream interface: ``pa.table()`` on delta-rs's result imports pandas (+52 MB).
    """
    import pyarrow as pa

    return pa.RecordBatchReader.from_stream(table.get_add_actions(flatten=True)).read_all()


def _scan_files(
    store: ObjectStore, uri: str, table: DeltaTable, files: pa.Table, target: pa.Schema, batch_size: int
) -> Iterator[pa.RecordBatch]:
    """
    The version's data files one after the other, one row group in memory at a time, through the
    hook's own file system. Not delta-rs's pyarrow dataset: its file system handler reads keys that
    hold ``%`` (``a%20b``) as other keys (``a b``).
    """
    import pyarrow as pa
    import pyarrow.fs as pafs

    from airflow_provider_mlops.datasets.files import _iter_parquet_file
    from airflow_provider_mlops.utils.arrow import rebatch

    root = parse_uri(split_version(uri)[0])
    fs, _ = store.filesystem(root.uri)
    partition_columns = [n for n in files.column_names if n.startswith("partition.")]
    paths = [root.child(_unquote(p)).path for p in files.column("path").to_pylist()] if files.num_rows else []
    for info in fs.get_file_info(paths):
        if info.type != pafs.FileType.File:
            raise DatasetCorruptError(
                f"{info.path}, committed in version {table.version()} of {uri}, is missing: it was removed "
                "under the table (vacuum with a retention shorter than this read, or by hand). Re-run the "
                "task that wrote it."
            )
    for row, path in enumerate(paths):
        constants = {name[len("partition.") :]: files.column(name)[row] for name in partition_columns}
        read = [c for c in target.names if c not in constants]
        for batch in rebatch(_iter_parquet_file(fs, path, batch_size, None), batch_size):
            if not batch.num_rows:
                continue
            present = [c for c in read if c in batch.schema.names]
            arrays = {c: batch.column(c) for c in present}
            for name, value in constants.items():
                if name in target.names:
                    # not pa.array([...]): pyarrow imports pandas for that (+40 MB of RSS)
                    arrays[name] = pa.repeat(value, batch.num_rows)
            yield from_storage(pa.RecordBatch.from_pydict(arrays), target)


def _unquote(path: str) -> str:
    from urllib.parse import unquote

    return unquote(path)


def _scan_dataset(
    dataset: Any, table: DeltaTable, uri: str, target: pa.Schema, batch_size: int
) -> Iterator[pa.RecordBatch]:
    from airflow_provider_mlops.utils.arrow import rebatch

    read = [c for c in target.names if c in dataset.schema.names]
    try:
        scanned = dataset.to_batches(
            columns=read, batch_size=batch_size, batch_readahead=1, fragment_readahead=1, use_threads=False
        )
        for batch in rebatch(scanned, batch_size):
            if batch.num_rows:
                yield from_storage(batch, target)
    except (FileNotFoundError, OSError) as err:
        if "not found" in str(err).lower() or "no such file" in str(err).lower():
            raise DatasetCorruptError(
                f"A file committed in version {table.version()} of {uri} is missing ({err}): it was removed "
                "under the table (vacuum with a retention shorter than this read, or by hand). Re-run the "
                "task that wrote it."
            ) from err
        raise


def describe(
    store: ObjectStore, uri: str, table: DeltaTable, *, fs: pafs.FileSystem | None = None
) -> dict[str, Any]:
    """
    A small, JSON-able summary of the version ``table`` is at (what writes return and XCom holds).

    :param fs: read the commit through this file system (see :func:`commit_info`).
    """
    from airflow_provider_mlops.utils.schema import schema_fingerprint, schema_to_json

    base = split_version(uri)[0]
    info = commit_info(store, base, table.version(), fs=fs)
    schema = table_schema(store, base, table, fs=fs)
    actions = add_actions(table)
    raw = info.get(METADATA_KEY)
    return {
        "uri": parse_uri(base).uri.rstrip("/"),
        "format": "delta",
        "version": int(table.version()),
        # one value per data file: summed in Python, without pyarrow.compute (~12 MB of RSS)
        "rows": sum(v or 0 for v in actions.column("num_records").to_pylist()),
        "bytes": sum(v or 0 for v in actions.column("size_bytes").to_pylist()),
        "files": sorted(actions.column("path").to_pylist()),
        "schema_fingerprint": schema_fingerprint(schema),
        "schema": schema_to_json(schema),
        "partition_by": list(table.metadata().partition_columns),
        "committed_at": info.get("timestamp"),
        "metadata": json.loads(raw) if raw else None,
    }


# --------------------------------------------------------------------------------------------------
# maintenance
# --------------------------------------------------------------------------------------------------
def vacuum(
    store: ObjectStore, uri: str, *, retention_hours: float = DEFAULT_RETENTION_HOURS, dry_run: bool = False
) -> list[str]:
    """
    Delete the files no version younger than ``retention_hours`` needs (replaced partitions, older
    table versions, the files of failed writes). Time travel to a version older than the retention
    fails afterwards: keep the retention longer than any model's training data must stay readable.
    """
    from deltalake.exceptions import DeltaError

    if retention_hours < 0:
        raise ValueError("retention_hours must be >= 0")
    table = open_table(store, uri)
    try:
        return list(
            table.vacuum(
                retention_hours=int(retention_hours),
                dry_run=dry_run,
                enforce_retention_duration=retention_hours >= DEFAULT_RETENTION_HOURS,
            )
        )
    except DeltaError as err:
        raise DatasetError(f"vacuum of {uri} failed: {err}") from err


def optimize(store: ObjectStore, uri: str, *, target_size: int | None = None) -> dict[str, Any]:
    """
    Compact small files into larger ones (one commit; the rows do not change). The replaced files stay
    for time travel until :func:`vacuum` removes them.
    """
    table = open_table(store, uri)
    return dict(table.optimize.compact(target_size=target_size))


def rows_in_partition(
    batches: Iterable[pa.RecordBatch], partition: dict[str, Any]
) -> Iterator[pa.RecordBatch]:
    """
    ``batches``, refusing (before the commit) a row outside ``partition``: a partition replace must
    not write rows its predicate does not delete, or a re-run would duplicate them.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    from airflow_provider_mlops.sinks.contract import WriteContractError

    for batch in batches:
        for column, value in partition.items():
            if column not in batch.schema.names:
                raise WriteContractError(
                    f"replace_partition: the partition column {column!r} is not in the data "
                    f"(columns: {batch.schema.names})"
                )
            values = batch.column(column)
            if value is None:
                outside = pc.invert(pc.is_null(values))
            else:
                expected = pa.scalar(value).cast(values.type) if not isinstance(value, str) else value
                try:
                    outside = pc.fill_null(pc.not_equal(values, pa.scalar(expected).cast(values.type)), True)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
                    raise WriteContractError(
                        f"replace_partition: {column}={value!r} does not fit the column's type {values.type}: {err}"
                    ) from None
            bad = pc.sum(pc.cast(outside, pa.int64())).as_py() or 0
            if bad:
                first = values.filter(outside)[0].as_py()
                raise WriteContractError(
                    f"replace_partition: {bad} row(s) of this batch have {column}={first!r}, outside the partition "
                    f"{dict(partition)}: every written row must belong to the partition; nothing was committed"
                )
        yield batch
