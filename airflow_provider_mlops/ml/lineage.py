"""
Data lineage of the ML lifecycle: which exact rows a model learned from (and was judged on).

A dataset is a Delta table: its URI and a version name rows that never change (time travel,
``uri@v12``). The operators pin each input to the version they read (:class:`DataPin`), record it as
MLflow tags (:func:`data_tags`, keys in :mod:`airflow_provider_mlops.ml.tags`) with a digest of the
rows (:func:`frame_digest`), and :func:`read_data_tags` reads them back, with the URIs to pass as
``input_uri`` to train or evaluate again on exactly those rows.

Plain functions, no Airflow, no storage: the operators give the versions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_mlops.ml.tags import DATA_TAGS

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

#: the version tag of an input that is not a Delta table (plain files have no versions)
NO_VERSION = "none"


@dataclass(frozen=True)
class DataPin:
    """One input: the table's URI (no ``@v``) and the version read (None for plain files)."""

    uri: str
    version: int | None

    @property
    def read_uri(self) -> str:
        """The URI that reads exactly these rows: ``uri@v<version>`` (the URI itself for plain files)."""
        return self.uri if self.version is None else f"{self.uri}@v{self.version}"

    def as_dict(self) -> dict[str, Any]:
        return {"uri": self.uri, "version": self.version}


def data_tags(kind: str, pins: Sequence[DataPin], digest: str | None = None) -> dict[str, str]:
    """
    The MLflow tags naming ``pins`` as the ``kind`` data (``training``, ``evaluation``,
    ``reference``, ``current``): one input as plain text (``"file:///lake/t"``, ``"12"``), several
    as JSON lists in the same order; the digest when given and the kind records one.
    """
    uri_key, version_key, digest_key = DATA_TAGS[kind]
    if len(pins) == 1:
        pin = pins[0]
        tags = {uri_key: pin.uri, version_key: NO_VERSION if pin.version is None else str(pin.version)}
    else:
        tags = {
            uri_key: json.dumps([p.uri for p in pins]),
            version_key: json.dumps([p.version for p in pins]),
        }
    if digest is not None and digest_key is not None:
        tags[digest_key] = digest
    return tags


def read_data_tags(tags: Mapping[str, str], kind: str) -> dict[str, Any] | None:
    """
    What :func:`data_tags` wrote: ``{"data": [{"uri", "version"}...], "uris": ["<uri>@v<version>"...],
    "digest"}`` (``uris`` are what ``input_uri`` takes to read exactly those rows again); None when
    nothing was recorded (a model trained before lineage was recorded).
    """
    uri_key, version_key, digest_key = DATA_TAGS[kind]
    raw_uri, raw_version = tags.get(uri_key), tags.get(version_key)
    if not raw_uri:
        return None
    if raw_uri.startswith("["):
        uris, versions = json.loads(raw_uri), json.loads(raw_version or "[]")
    else:
        uris = [raw_uri]
        versions = [None if raw_version in (None, "", NO_VERSION) else int(str(raw_version))]
    if len(uris) != len(versions):  # tags edited by hand: pinning fewer inputs would change the rows
        raise ValueError(
            f"The {uri_key} and {version_key} tags name {len(uris)} and {len(versions)} inputs: "
            "they must list the same inputs in the same order"
        )
    pins = [DataPin(str(u), None if v is None else int(v)) for u, v in zip(uris, versions, strict=True)]
    return {
        "data": [p.as_dict() for p in pins],
        "uris": [p.read_uri for p in pins],
        "digest": tags.get(digest_key) if digest_key else None,
    }


def frame_digest(frame: Any) -> str:
    """
    ``sha256:<hex>`` of a DataFrame's rows: its column names and types, and the rows' hashes in
    sorted order, so the same rows give the same digest whatever order the table's files are read in,
    and any changed, added or removed row (or column) gives another.
    """
    import hashlib

    import numpy as np
    import pandas as pd

    columns = [str(c) for c in frame.columns]
    header = json.dumps([[c, str(t)] for c, t in zip(columns, frame.dtypes, strict=True)])
    try:
        rows = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    except TypeError:  # unhashable cells (lists, dicts, arrays): those columns hashed as their repr
        # (not astype(str) of the whole frame: it decodes bytes as UTF-8 and failed on binary data)
        hashable = frame.copy()
        for position, name in enumerate(frame.columns):
            try:
                pd.util.hash_pandas_object(frame.iloc[:, position], index=False)
            except TypeError:
                hashable[name] = frame.iloc[:, position].map(repr)
        rows = pd.util.hash_pandas_object(hashable, index=False).to_numpy()
    digest = hashlib.sha256(header.encode())
    digest.update(np.sort(rows.astype(np.uint64)).tobytes())
    return f"sha256:{digest.hexdigest()}"
