"""
Model files, and the one trusted way to load a registered model version.

Writing: :func:`dump_model` serializes a fitted Pipeline with skops when every type inside it comes
from a trusted package (scikit-learn, NumPy, SciPy, this provider's transformers), otherwise with
cloudpickle (with a warning). :func:`record_model_file` writes the bytes to a path unique to the
registered version and records their sha256 (and where they live) as **tags of the MLflow model
version**, through the tracking API.

Loading: :func:`load_model_version` is the only function in the provider that deserializes a
model (deployment scoring, the DriftSensor's accuracy check, the model server and batch prediction
all call it). Its trust model:

* the expected sha256 comes from the MLflow model version (the ``mlops.sha256`` tag), or from a
  digest pinned by the caller's configuration; never from a file stored beside the model, because
  whoever can write the bucket could rewrite that file too;
* the bytes are hashed and compared **before** anything is deserialized; a mismatch raises
  :class:`ModelIntegrityError` naming the version and both digests;
* the format and the trusted types come from code and configuration (:class:`LoadPolicy`): skops
  with an allowlist of type prefixes; cloudpickle only when the policy explicitly allows it;
  Keras models (``tuning.method="keras_tuner"``) as a ``keras`` bundle: the model in Keras' native
  ``.keras`` format, loaded with ``safe_mode=True``, beside its preprocessing Pipeline, which goes
  through the same skops / cloudpickle rules. The bundle's sha256 is checked here like any other
  model: this loader was extended for the format, there is no second loading path.
  ``model.json`` / ``model.sha256`` files beside a model are informational and never read here.

Reading the trusted record: the loader reads the version, the alias and the tags through
``MlflowClient`` (``get_model_version`` / ``get_model_version_by_alias``), on every backend MLflow
supports (a SQLite or SQL store, a tracking server, Databricks); docs/performance.md has the measured
cost against MLflow's REST API over plain HTTP.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_provider_mlops.ml.tags import (
    TAG_BYTES,
    TAG_FORMAT,
    TAG_KERAS_SHA256,
    TAG_MLFLOW_SHA256,
    TAG_MLFLOW_URI,
    TAG_MODEL_URI,
    TAG_SHA256,
)

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

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


FORMATS = ("skops", "cloudpickle", "keras")
# the file name's extension per format: a keras bundle is a zip holding the native model.keras
EXTENSIONS = {"skops": "skops", "cloudpickle": "cloudpickle", "keras": "keras.zip"}


class ModelIntegrityError(RuntimeError):
    """A model's bytes do not match the recorded sha256, or the policy does not allow loading them."""


@dataclass(frozen=True)
class LoadPolicy:
    """
    What the loader may deserialize: decided by code and configuration, never by the model's files.

    :param allow_cloudpickle: load cloudpickle files (arbitrary code runs on load: only for models
        whose digest you trust and whose types skops cannot persist).
    :param trusted_types: extra type names (or prefixes ending in ``.``) that skops may construct,
        beyond :data:`TRUSTED_PREFIXES`.
    """

    allow_cloudpickle: bool = False
    trusted_types: tuple[str, ...] = ()

    @classmethod
    def of(cls, *, allow_cloudpickle: bool = False, trusted_types: Sequence[str] | None = None) -> LoadPolicy:
        return cls(allow_cloudpickle=bool(allow_cloudpickle), trusted_types=tuple(trusted_types or ()))

    def trusts(self, type_name: str) -> bool:
        return type_name.startswith(TRUSTED_PREFIXES) or any(
            type_name == t or (t.endswith(".") and type_name.startswith(t)) for t in self.trusted_types
        )


@dataclass(frozen=True)
class VerifiedModel:
    """A model loaded by :func:`load_model_version`, with where it came from."""

    model: Any
    name: str
    version: str
    sha256: str
    uri: str
    format: str
    blob: bytes = field(repr=False)
    loaded_at: str = field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "sha256": self.sha256,
            "uri": self.uri,
            "format": self.format,
            "loaded_at": self.loaded_at,
        }


def sha256(blob: bytes) -> str:
    return hashlib.sha256(blob).hexdigest()


@contextlib.contextmanager
def quiet_skops() -> Iterator[None]:
    """
    Around skops calls: keep Airflow's deprecated-module shims from warning.

    skops looks up the module of objects without ``__module__`` (NumPy / SciPy ufuncs) by calling
    ``getattr`` on every module in ``sys.modules`` (at ``import skops.io`` too, for each of
    ``scipy.special``'s ufuncs); in a worker, that includes Airflow's deprecated-import shims
    (``airflow.utils.timezone``, ``airflow.utils.trigger_rule``...), each of which emits a
    ``DeprecatedImportWarning`` when touched: ~1,160 lines in every training, deployment and
    monitoring task log. Nothing the provider imports is deprecated; the warnings are the scan's.
    """
    try:
        from airflow.utils.deprecation_tools import DeprecatedImportWarning
    except ImportError:  # outside Airflow (the model server): no shims, nothing to silence
        yield
        return
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecatedImportWarning)
        yield


def _skops_io() -> Any:
    """
    ``skops.io``, imported under :func:`quiet_skops`: the import itself runs the scan, once per
    process, for every ufunc of ``scipy.special`` (the names of its trusted types).
    """
    with quiet_skops():
        import skops.io
    return skops.io


def float_example(frame: Any) -> Any:
    """
    ``frame`` with integer columns as float64: the input example and signature MLflow logs.

    An integer column in a signature cannot hold a missing value at serving time, and MLflow warns
    about it on every ``log_model`` ("Hint: Inferred schema contains integer column(s)"). Serving
    converts JSON numbers to the signature's double either way, and the Pipeline imputes NaN.
    """
    import pandas as pd

    ints = [c for c in frame.columns if pd.api.types.is_integer_dtype(frame[c])]
    return frame.astype(dict.fromkeys(ints, "float64")) if ints else frame


def trusted_types_for(blob: bytes) -> tuple[list[str], list[str]]:
    """(types in the skops blob that are trusted by prefix, the ones that are not)."""
    skops_io = _skops_io()
    with quiet_skops():
        untrusted = list(skops_io.get_untrusted_types(data=blob))
    ok = [t for t in untrusted if t.startswith(TRUSTED_PREFIXES)]
    return ok, [t for t in untrusted if not t.startswith(TRUSTED_PREFIXES)]


def dump_model(model: Any) -> tuple[bytes, str, list[str]]:
    """Serialize ``model``: (bytes, format, trusted types for skops)."""
    steps = getattr(model, "steps", None)
    if steps and getattr(steps[-1][1], "_mlops_keras", False):
        from airflow_provider_mlops.ml.keras_tuning import dump_bundle

        return dump_bundle(model, dump_model), "keras", []
    skops_io = _skops_io()
    try:
        with quiet_skops():
            blob = skops_io.dumps(model)
        trusted, other = trusted_types_for(blob)
        if not other:
            return blob, "skops", trusted
        log.warning("Types outside the trusted packages %s: saving with cloudpickle instead of skops", other)
    except Exception as err:
        log.warning("skops could not persist the model (%s): saving with cloudpickle", err)
    import cloudpickle

    return cloudpickle.dumps(model), "cloudpickle", []


def write_model_bytes(
    storage: Any,
    prefix: str,
    blob: bytes,
    fmt: str,
    *,
    metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """
    Write ``model.<format>`` under ``prefix``, with ``model.sha256`` and ``model.json`` for people
    and tools. The loader never reads those two files: the digest it trusts is in MLflow.
    """
    digest = sha256(blob)
    base = prefix.rstrip("/")
    filename = f"model.{EXTENSIONS.get(fmt, fmt)}"
    file_uri = f"{base}/{filename}"
    storage.put_bytes(file_uri, blob)
    storage.put_bytes(f"{base}/model.sha256", f"{digest}  {filename}\n".encode())
    info = {"uri": file_uri, "format": fmt, "sha256": digest, "bytes": len(blob), **(metadata or {})}
    storage.put_bytes(f"{base}/model.json", json.dumps(info, indent=1, default=str).encode())
    return info


def version_prefix(root: str, name: str, version: str) -> str:
    """Where a registered version's file lives: unique per version, so a retrain never overwrites it."""
    return f"{root.rstrip('/')}/{name}/v{version}"


def record_model_file(
    client: Any, storage: Any, root: str, name: str, version: str, blob: bytes, fmt: str
) -> dict[str, Any]:
    """
    Write ``blob`` below :func:`version_prefix` and record its sha256, URI and format as tags of the
    MLflow model version (the trusted record :func:`load_model_version` checks against).
    """
    if fmt not in FORMATS:
        raise ValueError(f"Unknown model format {fmt!r} (expected one of {FORMATS})")
    info = write_model_bytes(
        storage,
        version_prefix(root, name, version),
        blob,
        fmt,
        metadata={"registered_model_name": name, "version": version},
    )
    for key, value in {
        TAG_SHA256: info["sha256"],
        TAG_MODEL_URI: info["uri"],
        TAG_FORMAT: fmt,
        TAG_BYTES: str(len(blob)),
        **({TAG_KERAS_SHA256: _keras_native_sha256(blob)} if fmt == "keras" else {}),
    }.items():
        client.set_model_version_tag(name, version, key, value)
    return info


def _keras_native_sha256(blob: bytes) -> str:
    """sha256 of the native ``model.keras`` inside a keras bundle (informational: the bundle's is checked)."""
    import io
    import zipfile

    with zipfile.ZipFile(io.BytesIO(blob)) as archive:
        return sha256(archive.read("model.keras"))


def record_mlflow_artifact(client: Any, name: str, version: str, model_info: Any) -> str | None:
    """
    Record the sha256 of the model file MLflow logged for ``version`` (its ``MLmodel`` names it),
    so the registry's own copy can be loaded through the same check.
    """
    import mlflow

    logged = client.get_logged_model(model_info.model_id)
    root = str(logged.artifact_location).rstrip("/")
    flavor = (model_info.flavors or {}).get("sklearn") or {}
    filename = flavor.get("pickled_model")
    if not filename:
        return None
    uri = f"{root}/{filename}"
    path = mlflow.artifacts.download_artifacts(artifact_uri=uri, **_client_uris(client))
    with open(path, "rb") as handle:
        digest = sha256(handle.read())
    client.set_model_version_tag(name, version, TAG_MLFLOW_SHA256, digest)
    client.set_model_version_tag(name, version, TAG_MLFLOW_URI, uri)
    return digest


# --------------------------------------------------------------------------------------------------
# loading
# --------------------------------------------------------------------------------------------------
def resolve_version(client: Any, name: str, *, version: Any = None, alias: str = "champion") -> str:
    """``version`` as a string, or the version holding ``alias``."""
    if version not in (None, ""):
        if isinstance(version, dict):
            version = version.get("version")
        return str(int(str(version)))
    return str(client.get_model_version_by_alias(name, alias).version)


def _client_uris(client: Any) -> dict[str, str]:
    """
    The tracking / registry URIs of ``client``, for MLflow functions that would otherwise read the
    process-wide ones (``models:/`` and ``mlflow-artifacts:`` URIs resolve against them).
    """
    uris: dict[str, str] = {}
    for key, attr in (("tracking_uri", "tracking_uri"), ("registry_uri", "_registry_uri")):
        value = getattr(client, attr, None)
        if isinstance(value, str) and value:
            uris[key] = value
    return uris


def _read(storage: Any, uri: str, client: Any = None) -> bytes:
    if storage is not None and not uri.startswith(("models:/", "runs:/", "mlflow-artifacts:")):
        return bytes(storage.get_bytes(uri))
    import tempfile

    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        path = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=tmp, **_client_uris(client))
        with open(path, "rb") as handle:
            return handle.read()


def sniff_format(blob: bytes) -> str:
    """
    skops files are zip archives, and so are keras bundles (they hold ``model.keras`` and
    ``estimator.json``); anything else is treated as (cloud)pickle.
    """
    if blob[:4] != b"PK\x03\x04":
        return "cloudpickle"
    import io
    import zipfile

    try:
        with zipfile.ZipFile(io.BytesIO(blob)) as archive:
            names = set(archive.namelist())
    except zipfile.BadZipFile:
        return "skops"
    return "keras" if {"model.keras", "estimator.json"} <= names else "skops"


def deserialize_verified(
    blob: bytes, *, expected_sha256: str, policy: LoadPolicy, label: str
) -> tuple[Any, str]:
    """
    Compare ``blob`` with ``expected_sha256``, then deserialize it under ``policy``.

    The format is read from the bytes only after they matched the trusted digest; whether that
    format may be loaded at all is the policy's decision. Returns (model, format).
    """
    actual = sha256(blob)
    if not expected_sha256 or actual != expected_sha256.strip().lower():
        raise ModelIntegrityError(
            f"{label}: the model file has sha256 {actual}, but the registry records "
            f"{expected_sha256 or '(nothing)'}: refusing to load it"
        )
    fmt = sniff_format(blob)
    return _deserialize(blob, fmt, policy=policy, label=label), fmt


def _deserialize(blob: bytes, fmt: str, *, policy: LoadPolicy, label: str) -> Any:
    """Deserialize bytes whose digest was verified, under ``policy``."""
    if fmt == "keras":
        from airflow_provider_mlops.ml.keras_tuning import load_bundle

        return load_bundle(
            blob,
            lambda inner: _deserialize(
                inner, sniff_format(inner), policy=policy, label=f"{label} preprocessing"
            ),
        )
    if fmt == "skops":
        skops_io = _skops_io()
        with quiet_skops():
            untrusted = list(skops_io.get_untrusted_types(data=blob))
        refused = [t for t in untrusted if not policy.trusts(t)]
        if refused:
            raise ModelIntegrityError(
                f"{label}: the skops file holds types outside the allowlist: {refused} "
                "(add them to trusted_types if you trust them)"
            )
        with quiet_skops():
            return skops_io.loads(blob, trusted=untrusted)
    if not policy.allow_cloudpickle:
        raise ModelIntegrityError(
            f"{label} is a cloudpickle file and loading cloudpickle runs code: refused unless "
            "allow_cloudpickle=True is configured"
        )
    import cloudpickle

    return cloudpickle.loads(blob)


def load_model_version(
    client: Any,
    name: str,
    version: Any = None,
    *,
    alias: str = "champion",
    storage: Any = None,
    policy: LoadPolicy | None = None,
    uri: str | None = None,
    expected_sha256: str | None = None,
    source: str = "auto",
) -> VerifiedModel:
    """
    Load a registered model version, verified against the digest MLflow holds for it.

    :param client: an ``MlflowClient`` (None only with ``expected_sha256`` and ``uri`` pinned).
    :param name: the registered model.
    :param version: the version (number, string or ``{"version": ...}``); None for ``alias``.
    :param alias: the alias resolved when ``version`` is None.
    :param storage: the hook that reads ``s3://`` / ``file://`` URIs (an ``ObjectStorageHook``).
    :param policy: the formats and types that may be deserialized (default: skops, built-in allowlist).
    :param uri: read the bytes from here (e.g. a published copy named by ``latest.json``) instead of
        the location recorded in MLflow. The digest is still the registry's.
    :param expected_sha256: a digest pinned by configuration; must agree with the registry's when
        both exist.
    :param source: ``auto`` (the provider's file, else MLflow's artifact), ``storage`` or ``mlflow``.
    :raises ModelIntegrityError: no recorded digest, a digest mismatch, or a format/type the policy
        refuses. Nothing is deserialized in these cases.
    """
    policy = policy or LoadPolicy()
    tags: dict[str, str] = {}
    if client is not None:
        version = resolve_version(client, name, version=version, alias=alias)
        tags = dict(client.get_model_version(name, version).tags or {})
    elif version in (None, "") or not (uri and expected_sha256):
        raise ModelIntegrityError(
            f"{name}: without MLflow, a version, a uri and a pinned sha256 are required"
        )
    version = str(version)
    label = f"{name} version {version}"
    if source == "mlflow" or (source == "auto" and not uri and not tags.get(TAG_MODEL_URI)):
        expected, location = tags.get(TAG_MLFLOW_SHA256), tags.get(TAG_MLFLOW_URI)
    else:
        expected, location = tags.get(TAG_SHA256), uri or tags.get(TAG_MODEL_URI)
    if expected_sha256:
        if expected and expected != expected_sha256:
            raise ModelIntegrityError(
                f"{label}: the pinned sha256 {expected_sha256} differs from the registry's {expected}"
            )
        expected = expected_sha256
    if not expected or not location:
        raise ModelIntegrityError(
            f"{label} has no recorded model digest (tags {TAG_SHA256!r} / {TAG_MLFLOW_SHA256!r}): "
            "register it with TrainModelOperator, or record one with record_model_file()"
        )
    blob = _read(storage, location, client)
    model, fmt = deserialize_verified(blob, expected_sha256=expected, policy=policy, label=label)
    log.info("Loaded %s from %s (sha256 %s, %s)", label, location, expected, fmt)
    return VerifiedModel(
        model=model, name=name, version=version, sha256=expected, uri=location, format=fmt, blob=blob
    )
