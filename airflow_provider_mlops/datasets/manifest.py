"""
The dataset manifest: the one object a reader trusts.

A dataset is a prefix. Its data files are written below ``_attempts/<attempt id>/``, a location
unique to the write attempt; the manifest ``_manifest.json`` at the prefix root lists them with
their row counts, sizes and schemas and is written last with one atomic PUT (a rename locally).
Writing the manifest *is* the commit: until then readers keep reading the previous manifest and its
files, which the new attempt never touches.

Format version 1 (before the commit protocol) listed ``part-NNNNN.<ext>`` files at the prefix root;
it is still read.
"""

from __future__ import annotations

import base64
import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import pyarrow as pa

DatasetFormat = Literal["parquet", "csv", "jsonl"]
FORMATS: tuple[str, ...] = ("parquet", "csv", "jsonl")
EXTENSIONS = {"parquet": "parquet", "csv": "csv", "jsonl": "jsonl"}
MANIFEST = "_manifest.json"
ATTEMPTS = "_attempts"
FORMAT_VERSION = 2


class DatasetError(RuntimeError):
    """A dataset cannot be read as committed."""


class NoCommittedDatasetError(DatasetError, FileNotFoundError):
    """The prefix holds no committed dataset (no manifest): never read as 0 rows."""


class DatasetCorruptError(DatasetError):
    """A committed file is missing, has another size, or holds another number of rows."""


def new_attempt_id() -> str:
    """Sortable by time, unique per attempt: ``20261129T231500123456Z-1a2b3c4d``."""
    now = dt.datetime.now(dt.UTC)
    return f"{now:%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex[:8]}"


def encode_schema(schema: pa.Schema) -> str:
    return base64.b64encode(schema.serialize().to_pybytes()).decode("ascii")


def decode_schema(text: str) -> pa.Schema:
    import pyarrow as pa

    return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(text)))


@dataclass
class DataFile:
    """One committed file: ``path`` relative to the dataset prefix."""

    path: str
    rows: int
    bytes: int
    schema: pa.Schema | None = None  # None: the dataset's schema


@dataclass
class Manifest:
    uri: str
    format: str
    schema: pa.Schema
    files: list[DataFile] = field(default_factory=list)
    attempt: str | None = None
    previous_attempt: str | None = None
    committed_at: str | None = None
    metadata: dict[str, Any] | None = None
    version: int = FORMAT_VERSION

    @property
    def rows(self) -> int:
        return sum(f.rows for f in self.files)

    @property
    def bytes(self) -> int:
        return sum(f.bytes for f in self.files)

    def summary(self) -> dict[str, Any]:
        """What ``write_dataset`` returns (and operators put in XCom): small, JSON-able."""
        from airflow_provider_mlops.utils.schema import schema_fingerprint, schema_to_json

        return {
            "uri": self.uri,
            "format": self.format,
            "rows": self.rows,
            "bytes": self.bytes,
            "files": [f.path for f in self.files],
            "schema_fingerprint": schema_fingerprint(self.schema),
            "schema": schema_to_json(self.schema),
            "attempt": self.attempt,
        }

    def to_json(self) -> dict[str, Any]:
        parts = []
        for f in self.files:
            part: dict[str, Any] = {"path": f.path, "rows": f.rows, "bytes": f.bytes}
            if f.schema is not None and not f.schema.equals(self.schema, check_metadata=False):
                part["arrow_schema"] = encode_schema(f.schema)
            parts.append(part)
        return {
            "format_version": self.version,
            **self.summary(),
            "previous_attempt": self.previous_attempt,
            "committed_at": self.committed_at,
            "parts": parts,
            # kept for readers of format version 1 (the summary carries "schema" too)
            "file_rows": {f.path: f.rows for f in self.files},
            "arrow_schema": encode_schema(self.schema),
            **({"metadata": self.metadata} if self.metadata else {}),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Manifest:
        import pyarrow as pa

        schema = decode_schema(data["arrow_schema"]) if data.get("arrow_schema") else pa.schema([])
        version = int(data.get("format_version", 1))
        if version > FORMAT_VERSION:
            raise DatasetError(
                f"The manifest of {data.get('uri')} has format version {version}; this provider reads up "
                f"to {FORMAT_VERSION}: upgrade airflow-provider-mlops on this worker"
            )
        if "parts" in data:
            files = [
                DataFile(
                    path=p["path"],
                    rows=int(p["rows"]),
                    bytes=int(p["bytes"]),
                    schema=decode_schema(p["arrow_schema"]) if p.get("arrow_schema") else None,
                )
                for p in data["parts"]
            ]
        else:  # version 1: names at the root, sizes unknown (-1: not checked)
            rows = data.get("file_rows") or {}
            files = [DataFile(path=name, rows=int(rows.get(name, -1)), bytes=-1) for name in data["files"]]
        return cls(
            uri=data["uri"],
            format=data.get("format", "parquet"),
            schema=schema,
            files=files,
            attempt=data.get("attempt"),
            previous_attempt=data.get("previous_attempt"),
            committed_at=data.get("committed_at"),
            metadata=data.get("metadata"),
            version=version,
        )
