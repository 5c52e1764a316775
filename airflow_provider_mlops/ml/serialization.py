"""
Model files: chosen format, sha256 beside the file, verified before anything is deserialized.

The format is skops when every type inside the fitted Pipeline comes from a trusted package
(scikit-learn, NumPy, SciPy, this provider's transformers): loading skops runs no arbitrary code.
A Pipeline holding other types (e.g. a third-party estimator) falls back to cloudpickle, with a
warning; either way the bytes are checked against the recorded sha256 before loading.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

log = logging.getLogger(__name__)

TRUSTED_PREFIXES = (
    "sklearn.",
    "numpy.",
    "scipy.",
    "airflow_provider_mlops.ml.",
    "builtins.",
    "collections.",
    "functools.partial",
    "_operator.",
    "operator.",
)


class ModelIntegrityError(RuntimeError):
    """The model file does not match its recorded sha256 (or its metadata is missing)."""


def trusted_types_for(blob: bytes) -> tuple[list[str], list[str]]:
    """(types in the skops blob that are trusted by prefix, the ones that are not)."""
    import skops.io

    untrusted = list(skops.io.get_untrusted_types(data=blob))
    ok = [t for t in untrusted if t.startswith(TRUSTED_PREFIXES)]
    return ok, [t for t in untrusted if not t.startswith(TRUSTED_PREFIXES)]


def dump_model(model: Any) -> tuple[bytes, str, list[str]]:
    """Serialize ``model``: (bytes, format, trusted types for skops)."""
    import skops.io

    try:
        blob = skops.io.dumps(model)
        trusted, other = trusted_types_for(blob)
        if not other:
            return blob, "skops", trusted
        log.warning("Types outside the trusted packages %s: saving with cloudpickle instead of skops", other)
    except Exception as err:
        log.warning("skops could not persist the model (%s): saving with cloudpickle", err)
    import cloudpickle

    return cloudpickle.dumps(model), "cloudpickle", []


def load_model_bytes(blob: bytes, fmt: str, trusted: list[str]) -> Any:
    if fmt == "skops":
        import skops.io

        return skops.io.loads(blob, trusted=trusted)
    if fmt == "cloudpickle":
        import cloudpickle

        return cloudpickle.loads(blob)
    raise ModelIntegrityError(f"Unknown model format {fmt!r}")


def sha256(blob: bytes) -> str:
    return hashlib.sha256(blob).hexdigest()


def write_model(
    storage: Any, prefix: str, model: Any, *, metadata: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Serialize ``model`` (see :func:`dump_model`) and write it with :func:`write_model_bytes`."""
    blob, fmt, trusted = dump_model(model)
    return write_model_bytes(storage, prefix, blob, fmt, trusted, metadata=metadata)


def write_model_bytes(
    storage: Any,
    prefix: str,
    blob: bytes,
    fmt: str,
    trusted: list[str],
    *,
    metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """
    Write ``model.<format>``, ``model.sha256`` and ``model.json`` under ``prefix``.

    The metadata file is written last: a reader that finds it finds a complete model.
    """
    digest = sha256(blob)
    base = prefix.rstrip("/")
    file_uri = f"{base}/model.{fmt}"
    storage.put_bytes(file_uri, blob)
    storage.put_bytes(f"{base}/model.sha256", f"{digest}  model.{fmt}\n".encode())
    info = {
        "uri": file_uri,
        "format": fmt,
        "sha256": digest,
        "bytes": len(blob),
        "trusted_types": trusted,
        **(metadata or {}),
    }
    storage.put_bytes(f"{base}/model.json", json.dumps(info, indent=1, default=str).encode())
    return info


def load_verified_model(storage: Any, prefix: str) -> Any:
    """Load a model written by :func:`write_model`, refusing bytes whose sha256 does not match."""
    base = prefix.rstrip("/")
    try:
        info = json.loads(storage.get_bytes(f"{base}/model.json"))
    except (FileNotFoundError, OSError, ValueError) as err:
        raise ModelIntegrityError(f"No readable model.json under {base}: {err}") from None
    blob = storage.get_bytes(info["uri"])
    digest = sha256(blob)
    if digest != info["sha256"]:
        raise ModelIntegrityError(
            f"Model file {info['uri']} has sha256 {digest}, expected {info['sha256']}: refusing to load it"
        )
    return load_model_bytes(blob, info["format"], list(info.get("trusted_types") or []))
