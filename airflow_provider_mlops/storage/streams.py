"""
Write streams that publish nothing until they are closed.

``close()`` makes the object appear whole at its URI (a local temporary file renamed into place, an
S3 multipart upload completed, or a single PUT for a small object); ``abort()`` discards what was
written. A reader never sees a half-written object.
"""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path
from typing import Any


class OutputStream(io.RawIOBase):
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


class LocalAtomicStream(OutputStream):
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


class S3MultipartStream(OutputStream):
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
            # One copy of the part (slicing the bytearray first made two): 8 MB less at the peak.
            with memoryview(self.buffer) as buffered:
                part = bytes(buffered[: self.part_size])
            del self.buffer[: self.part_size]
            self._send_part(part)
            del part
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
