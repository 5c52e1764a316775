"""
The object storage hook's read path for a :class:`~airflow_provider_mlops.sources.Files` source:
Parquet and CSV through the hook's ``iter_batches``, JSON Lines as records (like an API's), and the
window applied to the batches.

A mixin of :class:`~airflow_provider_mlops.hooks.s3.ObjectStorageHook`, which gives it ``filesystem`` and
``iter_batches``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from collections.abc import Iterator

    import pyarrow as pa
    import pyarrow.fs as pafs

    from airflow_provider_mlops.sources import SourceSpec, Window
    from airflow_provider_mlops.storage.uri import StorageLocation


class FilesReader:
    """``read`` of :class:`~airflow_provider_mlops.hooks.s3.ObjectStorageHook`."""

    if TYPE_CHECKING:  # what the hook provides

        def filesystem(self, uri: str) -> tuple[pafs.FileSystem, StorageLocation]: ...

        def iter_batches(
            self, uri: str, *, format: Any = "parquet", batch_size: int = 50_000, schema: Any = None
        ) -> Iterator[pa.RecordBatch]: ...

    def read(
        self,
        spec: SourceSpec,
        window: Window | None = None,
        *,
        schema: pa.Schema | None = None,
        extra: Literal["error", "ignore"] = "error",
        type_conflict: Literal["error", "string"] = "error",
    ) -> Iterator[pa.RecordBatch]:
        """
        Stream a :class:`~airflow_provider_mlops.sources.Files` source; with a ``watermark_column``
        only the rows inside ``window`` are kept.

        JSON Lines go through :class:`~airflow_provider_mlops.utils.records.RecordBatcher`: Arrow's
        JSON reader fixes the schema from the first block and a dataset scan from the first file,
        dropping later fields; the batcher evolves it.

        :param schema: the schema to read with (Parquet / CSV) or a contract (JSON Lines).
        :param extra: JSON Lines with ``schema``: an undeclared field is an ``error`` or left out.
        :param type_conflict: JSON Lines: ``error`` or ``string`` for values of no common type.
        """
        from airflow_provider_mlops.sources import Files, Window, filter_batches_by_window
        from airflow_provider_mlops.utils.staging import resolve_uri

        if not isinstance(spec, Files):
            raise ValueError(
                f"{type(self).__name__} reads files: give source=Files(...), not {type(spec).__name__}"
            )
        path = resolve_uri(spec.path)
        if spec.format == "jsonl":
            from airflow_provider_mlops.utils.records import RecordBatcher

            batcher = RecordBatcher(
                batch_size=spec.batch_size,
                schema=schema,
                nested=spec.nested,
                extra=extra,
                type_conflict=type_conflict,
            )
            batches = batcher.batches(self.iter_json_lines(path))
        else:
            batches = self.iter_batches(path, format=spec.format, batch_size=spec.batch_size, schema=schema)
        if spec.watermark_column:
            batches = filter_batches_by_window(batches, spec.watermark_column, window or Window())
        return batches

    def iter_json_lines(self, uri: str) -> Iterator[dict[str, Any]]:
        """
        The records of a JSON Lines file, or of every file below a prefix (names starting with
        ``_`` or ``.`` skipped, in name order), one line at a time; a line that is not a JSON object
        is an error naming the file and line.
        """
        import io
        import json

        import pyarrow.fs as pafs

        fs, location = self.filesystem(uri)
        info = fs.get_file_info(location.path)
        if info.type == pafs.FileType.NotFound:
            raise FileNotFoundError(f"No JSON Lines file or prefix at {uri}")
        if info.type == pafs.FileType.File:
            files = [location.path]
        else:
            selector = pafs.FileSelector(location.path, recursive=True)
            files = sorted(
                item.path
                for item in fs.get_file_info(selector)
                if item.type == pafs.FileType.File and not item.base_name.startswith(("_", "."))
            )
        for file in files:
            with fs.open_input_stream(file) as raw:
                text = io.TextIOWrapper(io.BufferedReader(raw), encoding="utf-8", newline="\n")
                for number, line in enumerate(text, start=1):
                    if not line.strip():
                        continue
                    try:
                        record = json.loads(line)
                    except ValueError as err:
                        raise ValueError(f"{file} line {number} is not JSON: {err}") from None
                    if not isinstance(record, dict):
                        raise ValueError(
                            f"{file} line {number} is a JSON {type(record).__name__}, not an object"
                        )
                    yield record
