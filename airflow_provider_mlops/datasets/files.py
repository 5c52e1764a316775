"""
Plain files: what users hand in from elsewhere, and the CSV / JSON Lines exports.

A URI that is not a Delta table is read as plain files: a single file, or every file below a prefix
whose name does not start with ``_`` or ``.``. Finding no file there is an error, never 0 rows, and
so are the data files of a Delta write that never committed (no ``_delta_log``).

Exports (:func:`write_export`) are for people who want files, not the format tasks hand each other:
one file, written whole, then committed by one atomic step (the completion of a multipart upload on
S3, a rename locally), so a reader sees the previous file or the new one, never a part.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from airflow_provider_mlops.datasets.errors import EXTENSIONS, DatasetError, NoCommittedDatasetError
from airflow_provider_mlops.storage.uri import StorageLocation, parse_uri

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    import pyarrow as pa
    import pyarrow.fs as pafs

    from airflow_provider_mlops.datasets.delta import ObjectStore

# Data files of a Delta write that never committed (``part-00000-<uuid>-c000.zstd.parquet``, no
# ``_delta_log``): a half-written dataset, not user data; unless a ``_SUCCESS`` marker says a
# Spark / Hadoop job (same file names) finished writing the folder.
_UNCOMMITTED_PART = re.compile(r"^part-\d{5}-[0-9a-f-]{36}-c\d{3}(\.[a-z0-9]+)?\.parquet$")


def _read_file(
    fs: pafs.FileSystem,
    path: str,
    format: str,
    schema: pa.Schema,
    batch_size: int,
    columns: list[str] | None,
    *,
    committed: bool = False,
) -> Iterator[pa.RecordBatch]:
    """One file with its known schema (a committed file's, or a user's)."""
    if format == "parquet":
        yield from _iter_parquet_file(fs, path, batch_size, columns)
    elif format == "csv":
        yield from _iter_csv_file(fs, path, schema, batch_size, columns, committed=committed)
    else:
        yield from _iter_jsonl_file(fs, path, schema, batch_size, columns)


def _iter_parquet_file(
    fs: pafs.FileSystem, path: str, batch_size: int, columns: list[str] | None
) -> Iterator[pa.RecordBatch]:
    """One row group in memory at a time (no pre-buffering, no read-ahead): the flattest profile."""
    import pyarrow.parquet as pq

    with fs.open_input_file(path) as handle:
        parquet = pq.ParquetFile(handle, pre_buffer=False)
        # One thread: measured on 1M rows x 10 columns, as fast here and ~28 MB lower at peak
        # (each decoding thread keeps its own allocator heap).
        yield from parquet.iter_batches(batch_size=batch_size, columns=columns, use_threads=False)


def _iter_csv_file(
    fs: pafs.FileSystem,
    path: str,
    schema: pa.Schema | None,
    batch_size: int,
    columns: list[str] | None,
    *,
    committed: bool = False,
) -> Iterator[pa.RecordBatch]:
    """
    CSV exactly as the writer writes it: only an unquoted empty field is NULL (Arrow's defaults would
    also turn "nan", "NA", "null"... into NULL); quoted values may hold newlines and be of any size
    (:func:`~airflow_provider_mlops.utils.csv.iter_csv_batches`); binary is hex.
    """

    from airflow_provider_mlops.utils.csv import iter_csv_batches

    hex_columns: dict[str, pa.DataType] = {}
    read_schema = None
    if schema is not None:
        read_schema = binary_as_hex_schema(schema)
        hex_columns = {f.name: f.type for f in schema if read_schema.field(f.name).type != f.type}
    batches = iter_csv_batches(
        lambda: fs.open_input_stream(path),
        schema=read_schema,
        columns=columns,
        batch_size=batch_size,
        # a one-column row holding NULL is an empty line (an export of this provider writes it so):
        # a row when the schema says the file has one column
        ignore_empty_lines=not committed and not (schema is not None and len(schema) == 1),
    )
    for batch in batches:
        yield _from_text(batch, hex_columns) if hex_columns else batch


def _iter_jsonl_file(
    fs: pafs.FileSystem, path: str, schema: pa.Schema | None, batch_size: int, columns: list[str] | None
) -> Iterator[pa.RecordBatch]:
    """
    JSON Lines. With a known schema, the types Arrow's JSON parser cannot take from the text the
    writer produces (dates and times as ISO text, binary as hex) are read as strings and converted.
    """
    import pyarrow.json as pajson

    text_columns = _jsonl_text_columns(schema) if schema is not None else {}
    parse = None
    if schema is not None:
        read_schema = pa_schema_with_strings(schema, text_columns)
        parse = pajson.ParseOptions(explicit_schema=read_schema, unexpected_field_behavior="error")
    if fs.get_file_info(path).size == 0:  # an export of no rows: no line at all
        return
    with fs.open_input_stream(path) as stream:
        reader = pajson.open_json(
            stream, read_options=pajson.ReadOptions(block_size=8 << 20), parse_options=parse
        )
        for batch in reader:
            if text_columns:
                batch = _from_text(batch, text_columns)
            yield batch.select(columns) if columns else batch


def _jsonl_text_columns(schema: pa.Schema) -> dict[str, pa.DataType]:
    import pyarrow.types as t

    return {
        f.name: f.type
        for f in schema
        if t.is_date(f.type) or t.is_time(f.type) or t.is_binary(f.type) or t.is_large_binary(f.type)
    }


def pa_schema_with_strings(schema: pa.Schema, names: dict[str, pa.DataType]) -> pa.Schema:
    import pyarrow as pa

    return pa.schema([f.with_type(pa.string()) if f.name in names else f for f in schema])


def _from_text(batch: pa.RecordBatch, columns: dict[str, pa.DataType]) -> pa.RecordBatch:
    import pyarrow as pa
    import pyarrow.types as t

    arrays = []
    for field, array in zip(batch.schema, batch.columns, strict=True):
        target = columns.get(field.name)
        if target is None:
            arrays.append(array)
        elif t.is_binary(target) or t.is_large_binary(target):
            # written as hex by json_default; Arrow has no hex kernel
            values = [None if v is None else bytes.fromhex(v) for v in array.to_pylist()]
            arrays.append(pa.array(values, type=target))
        else:
            arrays.append(array.cast(target))
    names = batch.schema.names
    return pa.RecordBatch.from_arrays(
        arrays, schema=pa.schema([pa.field(n, a.type) for n, a in zip(names, arrays, strict=True)])
    )


def iter_files(
    store: ObjectStore,
    uri: str,
    *,
    format: str = "parquet",
    batch_size: int = 50_000,
    columns: list[str] | None = None,
    schema: pa.Schema | None = None,
) -> Iterator[pa.RecordBatch]:
    """
    Plain files: one file, or every file below a prefix (names starting with ``_`` or ``.`` are
    skipped). Later files are cast to the first file's schema (or ``schema``), naming a column that
    does not fit.
    """
    from airflow_provider_mlops.utils.arrow import conform, rebatch

    fs, location = store.filesystem(uri)
    files = _list_files(fs, location)
    target = schema
    for path in files:
        batches = _read_file(fs, path, format, schema, batch_size, columns)  # type: ignore[arg-type]
        for batch in rebatch(batches, batch_size):
            if target is None:
                target = batch.schema
            for fitted in conform([batch], target):
                if fitted.num_rows:
                    yield fitted


def _list_files(fs: pafs.FileSystem, location: StorageLocation) -> list[str]:
    import pyarrow.fs as pafs

    info = fs.get_file_info(location.path)
    if info.type == pafs.FileType.File:
        return [location.path]
    if info.type == pafs.FileType.NotFound:
        raise NoCommittedDatasetError(f"Nothing at {location.uri}: no committed dataset and no data file")
    files = []
    for item in fs.get_file_info(pafs.FileSelector(location.path, recursive=True)):
        if item.type != pafs.FileType.File:
            continue
        rel = item.path[len(location.path) :].lstrip("/")
        if any(part.startswith(("_", ".")) for part in rel.split("/")):
            continue
        files.append(item.path)
    files.sort()
    if not files:
        raise NoCommittedDatasetError(
            f"No committed dataset at {location.uri} (no Delta table: no {location.join('_delta_log')}) "
            "and no data file below it. If a task writes it, that task has not finished successfully yet."
        )
    if all(_UNCOMMITTED_PART.match(path.rsplit("/", 1)[-1]) for path in files):
        # Spark / Hadoop name their files the same way and mark a finished job with _SUCCESS.
        marker = fs.get_file_info(f"{location.path.rstrip('/')}/_SUCCESS")
        if marker.type != pafs.FileType.File:
            raise NoCommittedDatasetError(
                f"{location.uri} holds part files of a dataset write that never committed (no Delta "
                "commit in _delta_log, no _SUCCESS marker of a finished Spark/Hadoop job): refusing to "
                "read a possibly partial dataset. Re-run the job or task that writes it (a Spark job "
                "writing with mapreduce.fileoutputcommitter.marksuccessfuljobs=false leaves no marker: "
                "read its files by their own URIs)."
            )
    return files


def list_files(store: ObjectStore, uri: str) -> list[str]:
    """The plain data files :func:`iter_files` would read at ``uri`` (raises when there are none)."""
    fs, location = store.filesystem(uri)
    return _list_files(fs, location)


def export_uri(uri: str, format: str) -> str:
    """The file an export to ``uri`` writes: ``uri`` itself when it names a file, else ``<uri>/part-00000.<ext>``."""
    location = parse_uri(uri)
    name = location.key.rstrip("/").rsplit("/", 1)[-1].lower()
    if name.endswith(("." + EXTENSIONS[format], ".json", ".ndjson")):
        return location.uri
    return location.join(f"part-00000.{EXTENSIONS[format]}")


def write_export(
    store: ObjectStore,
    uri: str,
    batches: Iterable[pa.RecordBatch],
    *,
    format: str,
    schema: pa.Schema | None = None,
) -> dict[str, object]:
    """
    Write ``batches`` as one CSV or JSON Lines file, committed by one atomic step.

    The file replaces the previous export at the same place in that step; a failure leaves the
    previous one as it was. CSV holds no nested column (refused by name); binary is written as hex.

    :return: ``uri`` (the file), ``rows``, ``bytes``, ``files``, ``format``, ``schema`` (JSON),
        ``schema_fingerprint``.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    from airflow_provider_mlops.utils.arrow import conform
    from airflow_provider_mlops.utils.schema import evolve_schema, schema_fingerprint, schema_to_json

    if format not in ("csv", "jsonl"):
        raise ValueError(f"An export is csv or jsonl, got {format!r}")
    target = export_uri(uri, format)
    stream = store.open_output_stream(target)
    sink = getattr(stream, "native", stream)
    writer = None
    current = schema
    rows = 0
    try:
        for batch in batches:
            if current is None:
                current = batch.schema
            elif schema is None:
                evolved = evolve_schema(current, batch.schema)
                if evolved is not current and format == "csv" and writer is not None:
                    raise DatasetError(
                        f"The CSV export {target} met new or wider columns after its header was written "
                        f"({batch.schema} vs {current}): give the export a schema, or write jsonl"
                    )
                current = evolved
            (batch,) = conform([batch], current, fill_missing=schema is None)
            if format == "csv":
                if writer is None:
                    _refuse_nested(current, target)
                    writer = pacsv.CSVWriter(sink, binary_as_hex_schema(current))
                writer.write_batch(binary_as_hex(batch))
            else:
                stream.write(_batch_to_jsonl(batch))
            rows += batch.num_rows
        if format == "csv" and writer is None and current is not None:
            _refuse_nested(current, target)
            writer = pacsv.CSVWriter(sink, binary_as_hex_schema(current))
        if writer is not None:
            writer.close()
        size = stream.tell()
        stream.close()
    except BaseException:
        stream.abort()
        raise
    final = current if current is not None else pa.schema([])
    return {
        "uri": target,
        "format": format,
        "rows": rows,
        "bytes": size,
        "files": [target],
        "schema": schema_to_json(final),
        "schema_fingerprint": schema_fingerprint(final),
    }


def _refuse_nested(schema: pa.Schema, target: str) -> None:
    import pyarrow as pa

    nested = [f"{f.name!r} ({f.type})" for f in schema if pa.types.is_nested(f.type)]
    if nested:
        raise DatasetError(
            f"CSV cannot hold the nested column(s) {', '.join(nested)} of {target}: write parquet or jsonl, "
            "or extract nested values as JSON text (nested='json')"
        )


def _is_binary(data_type: pa.DataType) -> bool:
    import pyarrow.types as t

    return bool(t.is_binary(data_type) or t.is_large_binary(data_type) or t.is_fixed_size_binary(data_type))


def binary_as_hex_schema(schema: pa.Schema) -> pa.Schema:
    """CSV holds text: binary columns are written as hex (as JSON Lines does) and decoded on read."""
    import pyarrow as pa

    return pa.schema([f.with_type(pa.string()) if _is_binary(f.type) else f for f in schema])


def binary_as_hex(batch: pa.RecordBatch) -> pa.RecordBatch:
    import pyarrow as pa

    if not any(_is_binary(f.type) for f in batch.schema):
        return batch
    # Arrow has no hex kernel; binary in CSV is rare enough for a Python loop.
    arrays = [
        pa.array([None if v is None else v.hex() for v in a.to_pylist()], pa.string())
        if _is_binary(a.type)
        else a
        for a in batch.columns
    ]
    return pa.RecordBatch.from_arrays(arrays, schema=binary_as_hex_schema(batch.schema))


def _batch_to_jsonl(batch: pa.RecordBatch) -> bytes:
    from airflow_provider_mlops.utils.arrow import dumps_json

    return b"".join((dumps_json(record) + "\n").encode() for record in batch.to_pylist())
