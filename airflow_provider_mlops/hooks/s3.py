"""
Object storage hook: S3 and any S3-compatible endpoint (boto3 + pyarrow.fs), or local paths.

Every call takes a URI: ``s3://bucket/prefix/...`` goes to S3 with the connection's credentials and
``endpoint_url``; a plain path or ``file://`` URI goes to the local file system, so the embedded
default needs no server. Datasets (Parquet, CSV, JSON Lines) are read and written as streams of
Arrow record batches: nothing holds a whole file in memory.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import shutil
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import unquote, urlparse

from airflow.sdk import BaseHook

from airflow_provider_mlops.utils.connection import as_bool, redact

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    import pyarrow as pa
    import pyarrow.fs as pafs

DatasetFormat = Literal["parquet", "csv", "jsonl"]
FORMATS: tuple[str, ...] = ("parquet", "csv", "jsonl")
MANIFEST = "_manifest.json"
_EXTENSIONS = {"parquet": "parquet", "csv": "csv", "jsonl": "jsonl"}


@dataclass(frozen=True)
class StorageLocation:
    """A parsed URI: ``scheme`` is ``s3`` or ``file``; ``bucket`` is empty for local paths."""

    scheme: str
    bucket: str
    key: str

    @property
    def path(self) -> str:
        """The path as pyarrow file systems expect it (``bucket/key`` for S3)."""
        if self.scheme == "s3":
            return f"{self.bucket}/{self.key}".rstrip("/")
        return self.key

    def join(self, *parts: str) -> str:
        base = self.uri.rstrip("/")
        return "/".join([base, *[p.strip("/") for p in parts]])

    @property
    def uri(self) -> str:
        if self.scheme == "s3":
            return f"s3://{self.bucket}/{self.key}"
        return f"file://{self.key}"


def parse_uri(uri: str) -> StorageLocation:
    """Split ``s3://bucket/key``, ``file:///path`` or ``/path`` into a :class:`StorageLocation`."""
    text = os.fspath(uri)
    parsed = urlparse(text)
    if parsed.scheme in ("s3", "s3a", "s3n"):
        if not parsed.netloc:
            raise ValueError(f"S3 URI {uri!r} has no bucket")
        return StorageLocation("s3", parsed.netloc, parsed.path.lstrip("/"))
    if parsed.scheme == "file":
        return StorageLocation("file", "", unquote(parsed.path))
    if parsed.scheme == "" or (len(parsed.scheme) == 1 and os.name == "nt"):
        return StorageLocation("file", "", os.path.abspath(text))
    raise ValueError(f"Unsupported storage URI {uri!r}: use s3://bucket/key, file:///path or a local path")


class S3Hook(BaseHook):
    """
    Read and write datasets and objects on S3 (or an S3-compatible server) and local storage.

    Works with this provider's ``mlops_s3`` connections and the Amazon provider's ``aws``
    connections. Login / password are the access key id / secret (or ``aws_access_key_id`` /
    ``aws_secret_access_key`` extras); extras ``endpoint_url``, ``region_name``, ``aws_session_token``,
    ``verify``, ``addressing_style`` and ``bucket`` (checked by :meth:`test_connection`). Without a
    connection, boto3's default credential chain is used (instance profile, environment...).

    :param aws_conn_id: the Airflow connection id, or None for the default credential chain.
    """

    conn_name_attr = "aws_conn_id"
    default_conn_name = "aws_default"
    conn_type = "mlops_s3"
    hook_name = "S3 / object storage (MLOps)"

    def __init__(self, aws_conn_id: str | None = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.aws_conn_id = aws_conn_id

    # ----------------------------------------------------------------------------------------------
    # configuration
    # ----------------------------------------------------------------------------------------------
    @cached_property
    def settings(self) -> dict[str, Any]:
        """Credentials and endpoint from the connection (empty when there is none)."""
        if not self.aws_conn_id:
            return {}
        conn = self.get_connection(self.aws_conn_id)
        extra = conn.extra_dejson
        service = (extra.get("service_config") or {}).get("s3") or {}
        endpoint = extra.get("endpoint_url") or service.get("endpoint_url") or extra.get("host")
        if not endpoint and conn.host:
            scheme = "https" if "://" not in conn.host else ""
            endpoint = f"{scheme}://{conn.host}" if scheme else conn.host
            if conn.port:
                endpoint = f"{endpoint}:{conn.port}"
        return {
            "access_key": conn.login or extra.get("aws_access_key_id"),
            "secret_key": conn.password or extra.get("aws_secret_access_key"),
            "session_token": extra.get("aws_session_token"),
            "region": extra.get("region_name") or extra.get("region") or "us-east-1",
            "endpoint_url": endpoint,
            "verify": extra.get("verify"),
            "addressing_style": extra.get("addressing_style") or ("path" if endpoint else None),
            "bucket": extra.get("bucket") or conn.schema or None,
        }

    def _secrets(self) -> list[str | None]:
        return [self.settings.get("secret_key"), self.settings.get("session_token")]

    @cached_property
    def client(self) -> Any:
        """A boto3 S3 client for the connection."""
        import boto3
        from botocore.config import Config

        s = self.settings
        verify: Any = s.get("verify")
        if verify is not None and not (isinstance(verify, str) and os.path.exists(verify)):
            verify = as_bool(verify, name="verify")
        config = Config(
            retries={"max_attempts": 5, "mode": "adaptive"},
            s3={"addressing_style": s["addressing_style"]} if s.get("addressing_style") else None,
        )
        return boto3.session.Session().client(
            "s3",
            aws_access_key_id=s.get("access_key"),
            aws_secret_access_key=s.get("secret_key"),
            aws_session_token=s.get("session_token"),
            region_name=s.get("region"),
            endpoint_url=s.get("endpoint_url"),
            verify=verify,
            config=config,
        )

    @cached_property
    def s3_filesystem(self) -> pafs.S3FileSystem:
        """A pyarrow S3 file system with the same credentials and endpoint."""
        import pyarrow.fs as pafs

        s = self.settings
        kwargs: dict[str, Any] = {"region": s.get("region") or "us-east-1"}
        if s.get("access_key"):
            kwargs.update(access_key=s["access_key"], secret_key=s["secret_key"])
            if s.get("session_token"):
                kwargs["session_token"] = s["session_token"]
        if endpoint := s.get("endpoint_url"):
            parsed = urlparse(endpoint)
            kwargs["endpoint_override"] = parsed.netloc or parsed.path
            kwargs["scheme"] = parsed.scheme or "https"
            kwargs["force_virtual_addressing"] = s.get("addressing_style") == "virtual"
        return pafs.S3FileSystem(**kwargs)

    def filesystem(self, uri: str) -> tuple[pafs.FileSystem, StorageLocation]:
        """The pyarrow file system for ``uri`` and the parsed location."""
        import pyarrow.fs as pafs

        location = parse_uri(uri)
        if location.scheme == "s3":
            return self.s3_filesystem, location
        return pafs.LocalFileSystem(), location

    # ----------------------------------------------------------------------------------------------
    # connection test
    # ----------------------------------------------------------------------------------------------
    def test_connection(self) -> tuple[bool, str]:
        """Check credentials and endpoint (``head_bucket`` on the ``bucket`` extra, else ``list_buckets``)."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            bucket = self.settings.get("bucket")
            if bucket:
                self.client.head_bucket(Bucket=bucket)
                return True, f"Connection successfully tested: bucket {bucket!r} is reachable"
            self.client.list_buckets()
            return True, "Connection successfully tested: credentials accepted"
        except ClientError as err:
            code = str(err.response.get("Error", {}).get("Code", ""))
            status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in ("404", "NoSuchBucket"):
                return False, f"Bucket {self.settings.get('bucket')!r} does not exist"
            if (
                code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch")
                or status == 403
            ):
                return False, f"Access denied ({code}): check the access key id and secret key"
            return False, redact(f"S3 error {code}: {err}", self._secrets())
        except (BotoCoreError, ValueError, OSError) as err:
            return False, redact(
                f"Cannot reach S3 endpoint {self.settings.get('endpoint_url')}: {err}", self._secrets()
            )

    # ----------------------------------------------------------------------------------------------
    # objects
    # ----------------------------------------------------------------------------------------------
    def list_uris(self, uri: str) -> list[str]:
        """Every object / file below the prefix ``uri`` (recursive), as URIs."""
        location = parse_uri(uri)
        if location.scheme == "file":
            root = Path(location.key)
            if root.is_file():
                return [root.as_uri()]
            if not root.exists():
                return []
            return sorted(p.as_uri() for p in root.rglob("*") if p.is_file())
        paginator = self.client.get_paginator("list_objects_v2")
        out: list[str] = []
        for page in paginator.paginate(Bucket=location.bucket, Prefix=location.key):
            out.extend(f"s3://{location.bucket}/{item['Key']}" for item in page.get("Contents", []))
        return sorted(out)

    def delete_prefix(self, uri: str) -> int:
        """Delete every object / file below ``uri``; returns how many were deleted."""
        location = parse_uri(uri)
        if location.scheme == "file":
            root = Path(location.key)
            if root.is_file():
                root.unlink()
                return 1
            if not root.exists():
                return 0
            count = sum(1 for p in root.rglob("*") if p.is_file())
            shutil.rmtree(root)
            return count
        prefix = location.key if location.key.endswith("/") or not location.key else location.key + "/"
        keys = [u.split("/", 3)[3] for u in self.list_uris(f"s3://{location.bucket}/{prefix}")]
        if location.key and self.exists(uri):
            keys.append(location.key)
        for start in range(0, len(keys), 1000):
            chunk = keys[start : start + 1000]
            response = self.client.delete_objects(
                Bucket=location.bucket, Delete={"Objects": [{"Key": k} for k in chunk], "Quiet": True}
            )
            if errors := response.get("Errors"):
                raise OSError(f"Could not delete {len(errors)} objects under {uri}: {errors[:3]}")
        return len(keys)

    def exists(self, uri: str) -> bool:
        location = parse_uri(uri)
        if location.scheme == "file":
            return os.path.exists(location.key)
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=location.bucket, Key=location.key)
            return True
        except ClientError as err:
            if str(err.response.get("Error", {}).get("Code")) in ("404", "NoSuchKey", "NotFound"):
                return False
            raise

    def put_bytes(self, uri: str, data: bytes, *, content_type: str | None = None) -> None:
        """Write a small object atomically (a single PUT on S3, write + rename locally)."""
        location = parse_uri(uri)
        if location.scheme == "file":
            path = Path(location.key)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
            tmp.write_bytes(data)
            os.replace(tmp, path)
            return
        extra = {"ContentType": content_type} if content_type else {}
        self.client.put_object(Bucket=location.bucket, Key=location.key, Body=data, **extra)

    def get_bytes(self, uri: str) -> bytes:
        """Read a small object whole."""
        location = parse_uri(uri)
        if location.scheme == "file":
            return Path(location.key).read_bytes()
        return self.client.get_object(Bucket=location.bucket, Key=location.key)["Body"].read()

    def copy(self, source_uri: str, dest_uri: str) -> None:
        """Copy one object (server-side on S3; streamed between different systems)."""
        src, dst = parse_uri(source_uri), parse_uri(dest_uri)
        if src.scheme == dst.scheme == "s3":
            self.client.copy({"Bucket": src.bucket, "Key": src.key}, dst.bucket, dst.key)
            return
        if src.scheme == dst.scheme == "file":
            Path(dst.key).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src.key, dst.key)
            return
        src_fs, _ = self.filesystem(source_uri)
        writer = self.open_output_stream(dest_uri)
        try:
            with src_fs.open_input_stream(src.path) as reader:
                while chunk := reader.read(8 << 20):
                    writer.write(chunk)
        except BaseException:
            writer.abort()
            raise
        writer.close()

    def open_output_stream(self, uri: str, *, part_size: int = 8 << 20) -> _OutputStream:
        """
        A writable binary stream to ``uri``: multipart upload on S3 (one part buffered at a time),
        a temporary file renamed at close locally. Nothing is visible at ``uri`` before ``close()``;
        ``abort()`` discards what was written.
        """
        location = parse_uri(uri)
        if location.scheme == "s3":
            return _S3MultipartStream(self.client, location.bucket, location.key, part_size)
        return _LocalAtomicStream(location.key)

    def upload_file(self, path: str, dest_uri: str) -> None:
        """Upload a local file (multipart on S3 for large files)."""
        dst = parse_uri(dest_uri)
        if dst.scheme == "file":
            Path(dst.key).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, dst.key)
            return
        self.client.upload_file(path, dst.bucket, dst.key)

    def download_file(self, source_uri: str, path: str) -> None:
        """Download an object to a local file."""
        src = parse_uri(source_uri)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        if src.scheme == "file":
            shutil.copyfile(src.key, path)
            return
        self.client.download_file(src.bucket, src.key, path)

    # ----------------------------------------------------------------------------------------------
    # datasets
    # ----------------------------------------------------------------------------------------------
    def iter_batches(
        self,
        uri: str,
        *,
        format: DatasetFormat = "parquet",
        batch_size: int = 50_000,
        columns: list[str] | None = None,
        schema: pa.Schema | None = None,
    ) -> Iterator[pa.RecordBatch]:
        """
        Stream a dataset (one file or every file below a prefix) as record batches.

        Files whose name starts with ``_`` or ``.`` (manifests, markers) are ignored. Read-ahead is
        kept small so memory stays bounded by a few batches.

        :param uri: a file or a prefix (``s3://...``, ``file://...`` or a local path).
        :param format: ``parquet``, ``csv`` or ``jsonl`` (JSON Lines).
        :param batch_size: the largest number of rows a batch holds.
        :param columns: read only these columns.
        :param schema: the schema to read with (CSV / JSON Lines otherwise infer it from the first file).
        """
        from airflow_provider_mlops.utils.arrow import rebatch

        if format not in FORMATS:
            raise ValueError(f"format must be one of {FORMATS}, got {format!r}")
        fs, location = self.filesystem(uri)
        files = self._dataset_files(fs, location, format)
        if not files:
            return
        if format == "parquet":
            yield from self._iter_parquet(fs, files, batch_size=batch_size, columns=columns, schema=schema)
            return
        # Only CSV / JSON Lines need the dataset scanner (importing it loads pandas too, ~45 MB).
        import pyarrow.dataset as pads

        file_format: Any = "json"
        if format == "csv":
            import pyarrow.csv as pacsv

            # Read CSV exactly as write_dataset writes it: only an unquoted empty field is NULL
            # (Arrow's defaults would also turn "nan", "NA", "null"... into NULL).
            file_format = pads.CsvFileFormat(
                convert_options=pacsv.ConvertOptions(
                    null_values=[""], strings_can_be_null=True, quoted_strings_can_be_null=False
                )
            )
        dataset = pads.dataset(files, format=file_format, filesystem=fs, schema=schema)
        scanner = dataset.scanner(
            columns=columns, batch_size=batch_size, batch_readahead=1, fragment_readahead=1, use_threads=True
        )
        for batch in rebatch(scanner.to_batches(), batch_size):
            if batch.num_rows:
                yield batch

    @staticmethod
    def _iter_parquet(
        fs: pafs.FileSystem,
        files: list[str],
        *,
        batch_size: int,
        columns: list[str] | None,
        schema: pa.Schema | None,
    ) -> Iterator[pa.RecordBatch]:
        """
        Parquet files one after the other, one row group in memory at a time (no pre-buffering, no
        read-ahead): the flattest memory profile Arrow offers. Later files are cast to the first
        file's schema (or ``schema``), naming a column that does not fit.
        """
        import pyarrow as pa
        import pyarrow.parquet as pq

        from airflow_provider_mlops.utils.arrow import conform

        target = schema
        for path in files:
            with fs.open_input_file(path) as handle:
                parquet = pq.ParquetFile(handle, pre_buffer=False)
                file_schema = parquet.schema_arrow
                if columns:
                    file_schema = pa.schema([file_schema.field(c) for c in columns])
                if target is None:
                    target = file_schema
                # One thread: measured on 1M rows x 10 columns, as fast here and ~28 MB lower at peak
                # (each decoding thread keeps its own allocator heap).
                batches = parquet.iter_batches(batch_size=batch_size, columns=columns, use_threads=False)
                for batch in conform(batches, target):
                    if batch.num_rows:
                        yield batch

    def _dataset_files(self, fs: pafs.FileSystem, location: StorageLocation, format: str) -> list[str]:
        import pyarrow.fs as pafs

        info = fs.get_file_info(location.path)
        if info.type == pafs.FileType.File:
            return [location.path]
        if info.type == pafs.FileType.NotFound:
            raise FileNotFoundError(f"No dataset at {location.uri}")
        selector = pafs.FileSelector(location.path, recursive=True)
        files = []
        for item in fs.get_file_info(selector):
            if item.type != pafs.FileType.File:
                continue
            rel = item.path[len(location.path) :].lstrip("/")
            if any(part.startswith(("_", ".")) for part in rel.split("/")):
                continue
            files.append(item.path)
        return sorted(files)

    def read_manifest(self, uri: str) -> dict[str, Any] | None:
        """The manifest written by :meth:`write_dataset` below ``uri``, if any."""
        location = parse_uri(uri)
        manifest = location.join(MANIFEST)
        if not self.exists(manifest):
            return None
        return json.loads(self.get_bytes(manifest))

    def read_schema(self, uri: str) -> pa.Schema | None:
        """The exact Arrow schema recorded in a dataset's manifest (None without a manifest)."""
        import pyarrow as pa

        manifest = self.read_manifest(uri)
        if not manifest or not manifest.get("arrow_schema"):
            return None
        return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(manifest["arrow_schema"])))

    def write_dataset(
        self,
        uri: str,
        batches: Iterable[pa.RecordBatch],
        *,
        format: DatasetFormat = "parquet",
        schema: pa.Schema | None = None,
        max_rows_per_file: int = 1_000_000,
        compression: str | None = "zstd",
        metadata: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """
        Write batches as a dataset below the prefix ``uri``, replacing whatever was there.

        Files are named ``part-00000.<ext>``, ``part-00001.<ext>``... (deterministic), and a
        ``_manifest.json`` listing them with row counts and the schema is written last, so a
        re-run writes the same files and a reader can tell a finished dataset from a partial one.

        :return: ``uri``, ``rows``, ``bytes``, ``files``, ``schema_fingerprint``, ``format``.
        """
        import pyarrow as pa

        from airflow_provider_mlops.utils.arrow import (
            conform,
            peek_schema,
            schema_fingerprint,
            schema_to_json,
        )

        if format not in FORMATS:
            raise ValueError(f"format must be one of {FORMATS}, got {format!r}")
        schema, stream = peek_schema(batches, schema)
        if schema is None:
            schema = pa.schema([])
        location = parse_uri(uri)
        removed = self.delete_prefix(location.uri.rstrip("/") + "/")
        if removed:
            self.log.info("Replaced %s files previously written under %s", removed, location.uri)
        if location.scheme == "file":
            os.makedirs(location.path, exist_ok=True)

        writer = _RotatingWriter(self, location, format, schema, max_rows_per_file, compression)
        try:
            for batch in conform(stream, schema):
                writer.write(batch)
        except BaseException:
            writer.abort()
            raise
        writer.close()
        result = {
            "uri": location.uri.rstrip("/"),
            "format": format,
            "rows": writer.rows,
            "bytes": sum(f["bytes"] for f in writer.files),
            "files": [f["name"] for f in writer.files],
            "schema_fingerprint": schema_fingerprint(schema),
        }
        manifest = {
            **result,
            "file_rows": {f["name"]: f["rows"] for f in writer.files},
            "schema": schema_to_json(schema),
            "arrow_schema": base64.b64encode(schema.serialize().to_pybytes()).decode("ascii"),
            **({"metadata": metadata} if metadata else {}),
        }
        self.put_bytes(location.join(MANIFEST), json.dumps(manifest, indent=1, default=str).encode())
        self.log.info(
            "Wrote %s rows in %s file(s), %s bytes, to %s",
            result["rows"],
            len(result["files"]),
            result["bytes"],
            result["uri"],
        )
        return result


class _OutputStream(io.RawIOBase):
    """Base of the write streams: counts bytes and offers ``abort``."""

    def __init__(self) -> None:
        super().__init__()
        self.position = 0

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def abort(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError


class _LocalAtomicStream(_OutputStream):
    """
    A temporary file renamed into place at close. Written through Arrow's native file, so the
    Parquet and CSV writers (given ``native``) write without calling back into Python.
    """

    def __init__(self, path: str) -> None:
        import pyarrow as pa

        super().__init__()
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")
        self.native = pa.OSFile(str(self.tmp), mode="wb")

    def write(self, data: Any) -> int:
        return int(self.native.write(data))

    def tell(self) -> int:
        return int(self.native.tell())

    def close(self) -> None:
        if not self.closed:
            self.native.close()
            os.replace(self.tmp, self.path)
        super().close()

    def abort(self) -> None:
        if not self.closed:
            self.native.close()
            self.tmp.unlink(missing_ok=True)
        super().close()


class _S3MultipartStream(_OutputStream):
    """Buffer one part at a time; a small object is sent with one PUT at close."""

    def __init__(self, client: Any, bucket: str, key: str, part_size: int) -> None:
        super().__init__()
        self.client, self.bucket, self.key = client, bucket, key
        self.part_size = max(part_size, 5 << 20)
        self.buffer = bytearray()
        self.upload_id: str | None = None
        self.parts: list[dict[str, Any]] = []

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self.buffer += view
        self.position += len(view)
        while len(self.buffer) >= self.part_size:
            self._send_part(bytes(self.buffer[: self.part_size]))
            del self.buffer[: self.part_size]
        return len(view)

    def _send_part(self, body: bytes) -> None:
        if self.upload_id is None:
            self.upload_id = self.client.create_multipart_upload(Bucket=self.bucket, Key=self.key)["UploadId"]
        number = len(self.parts) + 1
        response = self.client.upload_part(
            Bucket=self.bucket, Key=self.key, UploadId=self.upload_id, PartNumber=number, Body=body
        )
        self.parts.append({"PartNumber": number, "ETag": response["ETag"]})

    def close(self) -> None:
        if self.closed:
            return
        try:
            if self.upload_id is None:
                self.client.put_object(Bucket=self.bucket, Key=self.key, Body=bytes(self.buffer))
            else:
                if self.buffer:
                    self._send_part(bytes(self.buffer))
                self.client.complete_multipart_upload(
                    Bucket=self.bucket,
                    Key=self.key,
                    UploadId=self.upload_id,
                    MultipartUpload={"Parts": self.parts},
                )
        except BaseException:
            self.abort()
            raise
        self.buffer = bytearray()
        super().close()

    def abort(self) -> None:
        if self.upload_id is not None:
            with contextlib.suppress(Exception):
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self.upload_id)
            self.upload_id = None
        self.buffer = bytearray()
        io.RawIOBase.close(self)


class _RotatingWriter:
    """Write batches into numbered files of at most ``max_rows`` rows each, streaming."""

    def __init__(
        self,
        hook: S3Hook,
        location: StorageLocation,
        format: str,
        schema: pa.Schema,
        max_rows: int,
        compression: str | None,
    ) -> None:
        self.hook, self.location, self.format, self.schema = hook, location, format, schema
        self.max_rows, self.compression = max_rows, compression
        self.files: list[dict[str, Any]] = []
        self.rows = 0
        self._stream: Any = None
        self._writer: Any = None
        self._file_rows = 0

    def _open(self) -> None:
        import pyarrow.csv as pacsv
        import pyarrow.parquet as pq

        name = f"part-{len(self.files):05d}.{_EXTENSIONS[self.format]}"
        self.files.append({"name": name, "rows": 0, "bytes": 0})
        self._stream = self.hook.open_output_stream(self.location.join(name))
        sink = getattr(self._stream, "native", self._stream)
        if self.format == "parquet":
            self._writer = pq.ParquetWriter(
                sink,
                self.schema,
                compression=self.compression,
                use_dictionary=_dictionary_columns(self.schema),
            )
        elif self.format == "csv":
            self._writer = pacsv.CSVWriter(sink, self.schema)
        else:
            self._writer = None
        self._file_rows = 0

    def write(self, batch: pa.RecordBatch) -> None:
        offset = 0
        while offset < batch.num_rows:
            if self._stream is None or self._file_rows >= self.max_rows:
                self._close_file()
                self._open()
            take = min(self.max_rows - self._file_rows, batch.num_rows - offset)
            part = batch.slice(offset, take)
            if self.format == "jsonl":
                self._stream.write(_batch_to_jsonl(part))
            else:
                self._writer.write_batch(part)
            self._file_rows += take
            self.files[-1]["rows"] += take
            self.rows += take
            offset += take

    def _close_file(self) -> None:
        stream, writer = self._stream, self._writer
        self._stream = self._writer = None
        if stream is None:
            return
        if writer is not None:
            writer.close()
        self.files[-1]["bytes"] = stream.tell()
        stream.close()

    def abort(self) -> None:
        stream, self._stream, self._writer = self._stream, None, None
        if stream is not None:
            stream.abort()

    def close(self) -> None:
        if not self.files and self.format != "jsonl":
            # An empty dataset still gets one file carrying the schema.
            self._open()
        self._close_file()


def _dictionary_columns(schema: pa.Schema) -> list[str]:
    """
    Columns worth dictionary-encoding in Parquet: text and binary (repeated values are common).

    Arrow's default tries a dictionary on every column and falls back per page: measured on 1M
    rows x 10 mixed columns that made writing 1.6x slower and the file 20 % larger.
    """
    import pyarrow.types as t

    return [
        f.name
        for f in schema
        if t.is_string(f.type)
        or t.is_large_string(f.type)
        or t.is_binary(f.type)
        or t.is_large_binary(f.type)
        or t.is_dictionary(f.type)
    ]


def _batch_to_jsonl(batch: pa.RecordBatch) -> bytes:
    from airflow_provider_mlops.utils.arrow import dumps_json

    return b"".join((dumps_json(record) + "\n").encode() for record in batch.to_pylist())
