"""The one trusted loader: the digest comes from the MLflow model version, never from files beside the model."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from airflow_provider_mlops.hooks.s3 import ObjectStorageHook
from airflow_provider_mlops.ml.serialization import (
    LoadPolicy,
    ModelIntegrityError,
    dump_model,
    load_model_version,
    record_model_file,
    sha256,
)


class _Payload:
    """Unpickling this creates a marker file: proof that code ran on load."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _fit(seed: int):
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(200, 3))
    y = (x[:, 0] + seed * x[:, 1] > 0).astype(int)
    return LogisticRegression().fit(x, y), x


@pytest.fixture
def registry(mlflow_tracking: dict[str, str], tmp_path: Path, request: pytest.FixtureRequest):
    """A registered model with two versions whose files were recorded like the training task does."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=mlflow_tracking["tracking_uri"])
    name = f"trust_{request.node.name[:40]}"
    client.create_registered_model(name)
    storage = ObjectStorageHook(aws_conn_id=None)
    root = (tmp_path / "models").as_uri()
    versions = {}
    for seed in (1, 2):
        model, x = _fit(seed)
        version = client.create_model_version(name, source=f"{root}/src{seed}").version
        blob, fmt, _ = dump_model(model)
        info = record_model_file(client, storage, root, name, str(version), blob, fmt)
        versions[str(version)] = {"model": model, "x": x, "info": info}
    return client, storage, name, versions


def _path(info: dict) -> Path:
    return Path(info["uri"].removeprefix("file://"))


def test_loads_a_recorded_version_at_a_path_unique_to_it(registry) -> None:
    client, storage, name, versions = registry
    paths = {_path(v["info"]) for v in versions.values()}
    assert len(paths) == 2 and all(p.name == "model.skops" for p in paths)
    for version, expected in versions.items():
        loaded = load_model_version(client, name, version, storage=storage)
        assert loaded.version == version and loaded.format == "skops"
        assert loaded.sha256 == client.get_model_version(name, version).tags["mlops.sha256"]
        assert (loaded.model.predict(expected["x"]) == expected["model"].predict(expected["x"])).all()
    client.set_registered_model_alias(name, "champion", "2")
    assert load_model_version(client, name, storage=storage).version == "2"


def test_tampered_bytes_are_refused_naming_the_version_and_both_digests(registry) -> None:
    client, storage, name, versions = registry
    path = _path(versions["1"]["info"])
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError) as err:
        load_model_version(client, name, "1", storage=storage)
    message = str(err.value)
    assert f"{name} version 1" in message
    assert sha256(bytes(data)) in message and versions["1"]["info"]["sha256"] in message


def test_rewriting_the_digest_files_beside_the_model_does_not_help(registry) -> None:
    client, storage, name, versions = registry
    path = _path(versions["1"]["info"])
    data = bytearray(path.read_bytes())
    data[100] ^= 0x01
    path.write_bytes(bytes(data))
    forged = sha256(bytes(data))
    (path.parent / "model.sha256").write_text(f"{forged}  model.skops\n")
    meta = json.loads((path.parent / "model.json").read_text())
    (path.parent / "model.json").write_text(json.dumps({**meta, "sha256": forged}))
    with pytest.raises(ModelIntegrityError, match="refusing to load"):
        load_model_version(client, name, "1", storage=storage)


def test_a_cloudpickle_payload_with_a_side_file_saying_cloudpickle_never_runs(
    registry, tmp_path: Path
) -> None:
    client, storage, name, versions = registry
    marker = tmp_path / "pwned"
    path = _path(versions["1"]["info"])
    payload = pickle.dumps(_Payload(marker))
    path.write_bytes(payload)
    (path.parent / "model.sha256").write_text(f"{sha256(payload)}  model.cloudpickle\n")
    (path.parent / "model.json").write_text(
        json.dumps({"uri": path.as_uri(), "format": "cloudpickle", "sha256": sha256(payload)})
    )
    for policy in (LoadPolicy(), LoadPolicy(allow_cloudpickle=True)):
        with pytest.raises(ModelIntegrityError, match="refusing to load"):
            load_model_version(client, name, "1", storage=storage, policy=policy)
    assert not marker.exists()


def test_a_different_valid_model_at_the_path_is_refused(registry) -> None:
    client, storage, name, versions = registry
    _path(versions["1"]["info"]).write_bytes(_path(versions["2"]["info"]).read_bytes())
    with pytest.raises(ModelIntegrityError, match=f"{name} version 1"):
        load_model_version(client, name, "1", storage=storage)
    # ...and so is a published copy of version 2 offered as version 1.
    with pytest.raises(ModelIntegrityError):
        load_model_version(client, name, "1", storage=storage, uri=versions["2"]["info"]["uri"])


def test_cloudpickle_loads_only_when_configured(registry, tmp_path: Path) -> None:
    client, storage, name, _ = registry
    marker = tmp_path / "ran"
    version = client.create_model_version(name, source="x").version
    payload = pickle.dumps(_Payload(marker))
    record_model_file(
        client, storage, (tmp_path / "models").as_uri(), name, str(version), payload, "cloudpickle"
    )
    with pytest.raises(ModelIntegrityError, match="allow_cloudpickle=True"):
        load_model_version(client, name, version, storage=storage)
    assert not marker.exists()
    # Explicitly configured and matching the registry's digest: the operator chose to trust it.
    load_model_version(client, name, version, storage=storage, policy=LoadPolicy(allow_cloudpickle=True))
    assert marker.exists()


def test_unrecorded_versions_and_disagreeing_pins_are_refused(registry) -> None:
    client, storage, name, versions = registry
    bare = client.create_model_version(name, source="x").version
    with pytest.raises(ModelIntegrityError, match="no recorded model digest"):
        load_model_version(client, name, bare, storage=storage)
    with pytest.raises(ModelIntegrityError, match="pinned sha256"):
        load_model_version(client, name, "1", storage=storage, expected_sha256="0" * 64)
    # Without MLflow, the digest must be pinned by configuration.
    info = versions["1"]["info"]
    pinned = load_model_version(
        None, name, "1", storage=storage, uri=info["uri"], expected_sha256=info["sha256"]
    )
    assert pinned.sha256 == info["sha256"]
    with pytest.raises(ModelIntegrityError, match="pinned sha256"):
        load_model_version(None, name, "1", storage=storage, uri=info["uri"])
