"""
A pyarrow file system over a boto3 S3 client, for the reads of a connection with ``verify: false``.

pyarrow's own ``S3FileSystem`` (the AWS C++ SDK) can be given a CA bundle (``tls_ca_file_path``) but
has no option to skip certificate verification. A connection that asks for that (an S3-compatible
store with a self-signed certificate) has its Delta logs, data files and exports read through this
handler instead: the hook's boto3 client, which honours ``verify: false``. It implements what the
provider reads with (file info, listings, streams and random-access files by ranged GETs); writes go
through the hook's own streams, so they are refused here.

Imported only by :attr:`ObjectStorageHook.s3_filesystem` when such a connection is used.
"""

from __future__ import annotations

import io
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.fs as pafs

_MISSING = ("404", "NoSuchKey", "NotFound")
_NO_BUCKET = ("NoSuchBucket",)


def _split(path: str) -> tuple[str, str]:
    bucket, _, key = path.strip("/").partition("/")
    return bucket, key


_CHUNK = 1 << 20  # a ranged body is read into the caller's buffer this much at a time


@cache
def _body_errors() -> tuple[type[BaseException], ...]:
    """A response body cut midway, as botocore / urllib3 report it."""
    from botocore.exceptions import IncompleteReadError, ResponseStreamingError
    from urllib3.exceptions import ProtocolError, ReadTimeoutError

    return (IncompleteReadError, ResponseStreamingError, ProtocolError, ReadTimeoutError, ConnectionError)


def _code(err: Exception) -> str:
    return str(getattr(err, "response", {}).get("Error", {}).get("Code", ""))


class _Body(io.RawIOBase):
    """A GET's streaming body as a readable raw stream."""

    def __init__(self, body: Any) -> None:
        super().__init__()
        self._body = body

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        # full reads until the end: Arrow's readers take a short read for the end of the stream
        view, filled = memoryview(buffer).cast("B"), 0
        while filled < len(view):
            data = self._body.read(len(view) - filled)
            if not data:
                break
            view[filled : filled + len(data)] = data
            filled += len(data)
        return filled

    def close(self) -> None:
        self._body.close()
        super().close()


class _Ranges(io.RawIOBase):
    """An object as a seekable file: each read is one ranged GET (Parquet reads footers, then chunks)."""

    def __init__(self, client: Any, bucket: str, key: str, size: int) -> None:
        super().__init__()
        self._client, self._bucket, self._key, self._size = client, bucket, key, size
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        self._position = max(0, base + offset)
        return self._position

    def readinto(self, buffer: Any) -> int:
        """
        One ranged GET straight into ``buffer``, a chunk at a time (the range is held once); a body
        cut midway is resumed once, by a ranged GET of the bytes still missing.
        """
        view = memoryview(buffer).cast("B")
        end = min(self._size, self._position + len(view))
        if end <= self._position:
            return 0
        wanted, filled, resumed = end - self._position, 0, False
        while True:
            start = self._position + filled
            body = self._client.get_object(
                Bucket=self._bucket, Key=self._key, Range=f"bytes={start}-{end - 1}"
            )["Body"]
            try:
                while filled < wanted and (data := body.read(min(_CHUNK, wanted - filled))):
                    view[filled : filled + len(data)] = data
                    filled += len(data)
            except _body_errors():
                if resumed:
                    raise
                resumed = True  # the connection dropped midway: the missing bytes, once more
                continue
            finally:
                body.close()
            break
        self._position += filled
        return filled

    def read(self, size: int = -1) -> bytearray:
        """
        ``size`` bytes from the position in a buffer filled in place: pyarrow's ``PythonFile`` wraps
        what ``read`` returns without a copy (``RawIOBase.read`` would copy its buffer into bytes).
        """
        remaining = max(0, self._size - self._position)
        buffer = bytearray(remaining if size is None or size < 0 else min(size, remaining))
        del buffer[self.readinto(buffer) :]
        return buffer

    readall = read


@cache
def _handler_class() -> type:
    """The handler class, defined on first use (pyarrow is not imported with this module)."""
    import pyarrow as pa
    import pyarrow.fs as pafs

    class Boto3ReadHandler(pafs.FileSystemHandler):
        """pyarrow's ``FileSystemHandler`` over the client (paths are ``bucket/key``)."""

        def __init__(self, client: Any) -> None:
            self.client = client

        def get_type_name(self) -> str:
            return "s3-boto3"

        def equals(self, other: Any) -> bool:
            return isinstance(other, Boto3ReadHandler) and other.client is self.client

        def normalize_path(self, path: str) -> str:
            return path

        def _info(self, path: str) -> pafs.FileInfo:
            from botocore.exceptions import ClientError

            bucket, key = _split(path)
            if not key:
                return pafs.FileInfo(bucket, pafs.FileType.Directory)
            try:
                head = self.client.head_object(Bucket=bucket, Key=key)
                return pafs.FileInfo(
                    path, pafs.FileType.File, size=head["ContentLength"], mtime=head.get("LastModified")
                )
            except ClientError as err:
                if _code(err) not in _MISSING:
                    raise
            try:
                listed = self.client.list_objects_v2(Bucket=bucket, Prefix=key.rstrip("/") + "/", MaxKeys=1)
            except ClientError as err:
                if _code(err) not in _NO_BUCKET:
                    raise
                listed = {}
            kind = pafs.FileType.Directory if listed.get("KeyCount", 0) else pafs.FileType.NotFound
            return pafs.FileInfo(path, kind)

        def get_file_info(self, paths: list[str]) -> list[pafs.FileInfo]:
            return [self._info(path) for path in paths]

        def get_file_info_selector(self, selector: pafs.FileSelector) -> list[pafs.FileInfo]:
            from botocore.exceptions import ClientError

            bucket, key = _split(selector.base_dir)
            prefix = key.rstrip("/") + "/" if key else ""
            kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
            if not selector.recursive:
                kwargs["Delimiter"] = "/"
            infos: list[pafs.FileInfo] = []
            directories: set[str] = set()
            try:
                pages = list(self.client.get_paginator("list_objects_v2").paginate(**kwargs))
            except ClientError as err:
                if _code(err) not in _NO_BUCKET:
                    raise
                pages = []  # as pyarrow's S3FileSystem: a missing bucket lists nothing
            for page in pages:
                for item in page.get("Contents", []):
                    parts = item["Key"][len(prefix) :].split("/")[:-1]
                    directories.update(prefix + "/".join(parts[: i + 1]) for i in range(len(parts)))
                    if item["Key"].endswith("/"):
                        continue  # a folder marker (S3 console, Hadoop s3a): a directory, not a file
                    infos.append(
                        pafs.FileInfo(
                            f"{bucket}/{item['Key']}",
                            pafs.FileType.File,
                            size=item["Size"],
                            mtime=item.get("LastModified"),
                        )
                    )
                for common in page.get("CommonPrefixes", []):
                    directories.add(common["Prefix"].rstrip("/"))
            missing = not infos and not directories and not selector.allow_not_found and key
            if missing and self._info(selector.base_dir).type == pafs.FileType.NotFound:
                raise FileNotFoundError(f"s3://{selector.base_dir}: no such directory")
            infos.extend(pafs.FileInfo(f"{bucket}/{d}", pafs.FileType.Directory) for d in sorted(directories))
            return infos

        def _get(self, path: str, **kwargs: Any) -> dict[str, Any]:
            from botocore.exceptions import ClientError

            bucket, key = _split(path)
            try:
                return self.client.get_object(Bucket=bucket, Key=key, **kwargs)
            except ClientError as err:
                if _code(err) in _MISSING:
                    raise FileNotFoundError(f"s3://{path}: no such object") from err
                raise

        def open_input_stream(self, path: str) -> pa.NativeFile:
            return pa.PythonFile(_Body(self._get(path)["Body"]), mode="r")

        def open_input_file(self, path: str) -> pa.NativeFile:
            info = self._info(path)
            if info.type != pafs.FileType.File:
                raise FileNotFoundError(f"s3://{path}: no such object")
            bucket, key = _split(path)
            return pa.PythonFile(_Ranges(self.client, bucket, key, info.size), mode="r")

        def _read_only(self, *_: Any, **__: Any) -> Any:
            raise NotImplementedError(
                "this file system reads only; the provider writes S3 objects through the hook's own streams"
            )

        create_dir = delete_dir = delete_dir_contents = delete_root_dir_contents = _read_only
        delete_file = move = copy_file = open_output_stream = open_append_stream = _read_only

    return Boto3ReadHandler


def boto3_filesystem(client: Any) -> pafs.FileSystem:
    """A pyarrow file system (``bucket/key`` paths, reads only) over this boto3 S3 client."""
    import pyarrow.fs as pafs

    return pafs.PyFileSystem(_handler_class()(client))
