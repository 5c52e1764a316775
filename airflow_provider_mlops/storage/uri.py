"""
Storage URIs: ``s3://bucket/key``, ``file:///path`` or a plain local path.

A storage URI names an object, never a query: ``#``, ``?``, ``%`` and spaces are part of the key.
Python's ``urlparse`` would cut ``s3://b/run#1`` at the ``#`` (so ``run#1`` and ``run#2`` collided),
so the URI is split by hand:

- ``s3://bucket/key``: the key is everything after the bucket, taken literally (as the AWS CLI and
  S3 itself do; ``%20`` stays ``%20``).
- ``file://`` URIs follow RFC 8089: percent escapes are decoded (``Path.as_uri()`` writes them),
  and a ``#`` or ``?`` that was not escaped is still taken as part of the path.
- A plain path is taken literally.

:attr:`StorageLocation.uri` writes a URI that :func:`parse_uri` reads back to the same location.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import quote, unquote

S3_SCHEMES = ("s3", "s3a", "s3n")
# Characters a file:// URI keeps as they are (RFC 3986 pchar without '%', '#', '?').
_FILE_SAFE = "/:@!$&'()*+,;=-._~"


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

    @property
    def uri(self) -> str:
        if self.scheme == "s3":
            return f"s3://{self.bucket}/{self.key}"
        return "file://" + quote(self.key, safe=_FILE_SAFE)

    def child(self, *parts: str) -> StorageLocation:
        """The location ``parts`` below this one (each part taken literally)."""
        key = "/".join([self.key.rstrip("/"), *[p.strip("/") for p in parts if p.strip("/")]])
        if self.scheme == "s3" and not self.key:
            key = key.lstrip("/")
        return StorageLocation(self.scheme, self.bucket, key)

    def join(self, *parts: str) -> str:
        """The URI ``parts`` below this location."""
        return self.child(*parts).uri

    def as_prefix(self) -> StorageLocation:
        """This location with a trailing ``/`` (a folder / key prefix)."""
        if not self.key or self.key.endswith("/"):
            return self
        return StorageLocation(self.scheme, self.bucket, self.key + "/")


def parse_uri(uri: str | os.PathLike[str]) -> StorageLocation:
    """Split ``s3://bucket/key``, ``file:///path`` or ``/path`` into a :class:`StorageLocation`."""
    text = os.fspath(uri)
    scheme, sep, rest = text.partition("://")
    if sep and scheme.lower() in S3_SCHEMES:
        bucket, _, key = rest.partition("/")
        if not bucket:
            raise ValueError(f"S3 URI {text!r} has no bucket")
        return StorageLocation("s3", bucket, key)
    if sep and scheme.lower() == "file":
        # file:///path (empty authority) or file://localhost/path
        authority, slash, path = rest.partition("/")
        if authority not in ("", "localhost"):
            raise ValueError(f"file URI {text!r} names a remote host {authority!r}: use a local path")
        return StorageLocation("file", "", unquote(slash + path))
    if sep:
        raise ValueError(
            f"Unsupported storage URI {text!r}: use s3://bucket/key, file:///path or a local path"
        )
    return StorageLocation("file", "", os.path.abspath(text))
