"""
Object storage hook: S3 and any S3-compatible endpoint (boto3 + pyarrow.fs), or local paths.

Every call takes a URI: ``s3://bucket/prefix/...`` goes to S3 with the connection's credentials and
``endpoint_url``; a plain path or ``file://`` URI goes to the local file system, so the embedded
default needs no server. Datasets (Parquet, CSV, JSON Lines) are read and written as streams of
Arrow record batches: nothing holds a whole file in memory.
"""

from __future__ import annotations

import os
import shutil
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from airflow.providers.common.compat.sdk import BaseHook

from airflow_provider_mlops.datasets.manifest import FORMATS, MANIFEST, DatasetFormat
from airflow_provider_mlops.hooks.files_source import FilesReader
from airflow_provider_mlops.storage.uri import StorageLocation, parse_uri
from airflow_provider_mlops.utils.connection import as_bool, redact

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

    import pyarrow as pa
    import pyarrow.fs as pafs

    from airflow_provider_mlops.datasets.manifest import Manifest
    from airflow_provider_mlops.storage.streams import OutputStream

# Kept importable from here: the URI model and the dataset format moved to their own layers.
__all__ = ["FORMATS", "MANIFEST", "DatasetFormat", "S3Hook", "StorageLocation", "parse_uri"]


class S3Hook(FilesReader, BaseHook):
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
    conn_type = "mlops-s3"
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
        method = extra.get("assume_role_method") or "assume_role"
        if method != "assume_role":
            # The amazon provider's SAML / web-identity flows need its own machinery: refuse
            # rather than silently connect with other credentials.
            raise ValueError(
                f"Connection {self.aws_conn_id!r}: assume_role_method={method!r} is not supported by "
                "airflow-provider-mlops; use role_arn with assume_role, a profile, or keys"
            )
        settings = {
            "access_key": conn.login or extra.get("aws_access_key_id"),
            "secret_key": conn.password or extra.get("aws_secret_access_key"),
            "session_token": extra.get("aws_session_token"),
            "region": extra.get("region_name") or extra.get("region") or "us-east-1",
            "endpoint_url": endpoint,
            "verify": extra.get("verify"),
            "addressing_style": extra.get("addressing_style") or ("path" if endpoint else None),
            "bucket": extra.get("bucket") or conn.schema or None,
        }
        profile, role_arn = extra.get("profile_name"), extra.get("role_arn")
        if profile or role_arn:
            settings.update(self._resolved_credentials(settings, extra, profile, role_arn))
        return settings

    def _resolved_credentials(
        self, settings: dict[str, Any], extra: dict[str, Any], profile: str | None, role_arn: str | None
    ) -> dict[str, Any]:
        """
        The ``aws`` connection's ``profile_name`` and ``role_arn`` (the amazon provider's extras),
        resolved once into temporary keys that both boto3 and pyarrow's S3 file system use.

        Not the amazon provider's refreshing session: its connection wrapper would add the provider
        as a dependency; role credentials last ``duration_seconds`` (default 3600), which bounds a
        task's storage work.
        """
        import boto3

        session = boto3.session.Session(
            profile_name=profile or None,
            aws_access_key_id=None if profile else settings["access_key"],
            aws_secret_access_key=None if profile else settings["secret_key"],
            aws_session_token=None if profile else settings["session_token"],
            region_name=settings["region"],
        )
        if role_arn:
            kwargs = dict(extra.get("assume_role_kwargs") or {})
            kwargs.setdefault("RoleSessionName", f"airflow-mlops-{self.aws_conn_id}"[:64])
            if extra.get("external_id"):
                kwargs.setdefault("ExternalId", extra["external_id"])
            if extra.get("duration_seconds"):
                kwargs.setdefault("DurationSeconds", int(extra["duration_seconds"]))
            sts = session.client(
                "sts", endpoint_url=extra.get("sts_endpoint_url") or settings["endpoint_url"] or None
            )
            credentials = sts.assume_role(RoleArn=role_arn, **kwargs)["Credentials"]
            return {
                "access_key": credentials["AccessKeyId"],
                "secret_key": credentials["SecretAccessKey"],
                "session_token": credentials["SessionToken"],
            }
        frozen = session.get_credentials()
        if frozen is None:
            raise ValueError(f"Connection {self.aws_conn_id!r}: AWS profile {profile!r} has no credentials")
        frozen = frozen.get_frozen_credentials()
        return {
            "access_key": frozen.access_key,
            "secret_key": frozen.secret_key,
            "session_token": frozen.token,
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
            return False, redact(f"Cannot reach {self._endpoint_description()}: {err}", self._secrets())

    def _endpoint_description(self) -> str:
        """The endpoint as a person would name it: without ``endpoint_url``, AWS's own for the region."""
        if endpoint := self.settings.get("endpoint_url"):
            return f"S3 endpoint {endpoint}"
        return f"the AWS default S3 endpoint for region {self.settings.get('region') or 'us-east-1'}"

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
        uris = self.list_uris(f"s3://{location.bucket}/{prefix}")
        if location.key and not location.key.endswith("/") and self.exists(uri):
            uris.append(uri)
        return self.delete_uris(uris)

    def delete_uris(self, uris: list[str]) -> int:
        """Delete these objects / files (missing ones are fine); returns how many were asked for."""
        by_bucket: dict[str, list[str]] = {}
        for uri in uris:
            location = parse_uri(uri)
            if location.scheme == "file":
                Path(location.key).unlink(missing_ok=True)
            else:
                by_bucket.setdefault(location.bucket, []).append(location.key)
        for bucket, keys in by_bucket.items():
            for start in range(0, len(keys), 1000):
                chunk = keys[start : start + 1000]
                response = self.client.delete_objects(
                    Bucket=bucket, Delete={"Objects": [{"Key": k} for k in chunk], "Quiet": True}
                )
                if errors := response.get("Errors"):
                    raise OSError(f"Could not delete {len(errors)} objects in bucket {bucket}: {errors[:3]}")
        return len(uris)

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
        from botocore.exceptions import ClientError

        try:
            return self.client.get_object(Bucket=location.bucket, Key=location.key)["Body"].read()
        except ClientError as err:
            if str(err.response.get("Error", {}).get("Code")) in ("404", "NoSuchKey", "NotFound"):
                raise FileNotFoundError(f"No object at {uri}") from err
            raise

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

    def open_output_stream(self, uri: str, *, part_size: int = 8 << 20) -> OutputStream:
        """
        A writable binary stream to ``uri``: multipart upload on S3 (one part buffered at a time),
        a temporary file renamed at close locally. Nothing is visible at ``uri`` before ``close()``;
        ``abort()`` discards what was written.
        """
        from airflow_provider_mlops.storage.streams import LocalAtomicStream, S3MultipartStream

        location = parse_uri(uri)
        if location.scheme == "s3":
            return S3MultipartStream(self.client, location.bucket, location.key, part_size)
        return LocalAtomicStream(location.key)

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
    # datasets (the format and its commit protocol live in airflow_provider_mlops.datasets)
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
        Stream the committed dataset at ``uri`` (or plain files there) as record batches.

        A dataset written by :meth:`write_dataset` is read from its manifest: only committed files,
        checked for size and row count. A prefix without a manifest is read as plain files (names
        starting with ``_`` or ``.`` are skipped); nothing there raises
        :class:`~airflow_provider_mlops.datasets.NoCommittedDatasetError`, never 0 rows.

        :param uri: a file or a prefix (``s3://...``, ``file://...`` or a local path).
        :param format: ``parquet``, ``csv`` or ``jsonl`` (JSON Lines) for plain files.
        :param batch_size: the largest number of rows a batch holds.
        :param columns: read only these columns.
        :param schema: the schema to read plain files with (otherwise inferred from the first file).
        """
        from airflow_provider_mlops.datasets import reader

        return reader.iter_batches(
            self, uri, format=format, batch_size=batch_size, columns=columns, schema=schema
        )

    def read_committed(self, uri: str) -> Manifest | None:
        """The committed :class:`~airflow_provider_mlops.datasets.Manifest` at ``uri``, if any."""
        from airflow_provider_mlops.datasets import read_manifest

        return read_manifest(self, uri)

    def read_manifest(self, uri: str) -> dict[str, Any] | None:
        """The committed manifest below ``uri`` as JSON (None when nothing was committed there)."""
        manifest = self.read_committed(uri)
        return manifest.to_json() if manifest else None

    def read_schema(self, uri: str) -> pa.Schema | None:
        """The exact Arrow schema of the committed dataset (None without a manifest)."""
        manifest = self.read_committed(uri)
        return manifest.schema if manifest else None

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
        before_commit: Callable[[Manifest], None] | None = None,
        type_conflict: str = "error",
    ) -> dict[str, Any]:
        """
        Write batches as a new committed version of the dataset at ``uri``.

        Files go to a location unique to this attempt; the manifest is written last, in one atomic
        put, and is what readers trust. The previous version stays readable until then and is
        removed after the commit, as are abandoned attempts (see :mod:`airflow_provider_mlops.datasets`).

        :param before_commit: called with the finished manifest before the commit; raising keeps the
            previous version and discards this one.
        :param type_conflict: ``string`` when the source turned a field of conflicting types into text.
        :return: ``uri``, ``rows``, ``bytes``, ``files``, ``schema_fingerprint``, ``format``, ``attempt``.
        """
        from airflow_provider_mlops.datasets import write_dataset

        manifest = write_dataset(
            self,
            uri,
            batches,
            format=format,
            schema=schema,
            max_rows_per_file=max_rows_per_file,
            compression=compression,
            metadata=metadata,
            before_commit=before_commit,
            type_conflict=type_conflict,
        )
        return manifest.summary()
