"""
SqliteRegistry (the trusted record read without importing mlflow) against MlflowClient on the same
SQLite store: same versions, same tags, same alias resolution, same refusals by the one loader.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from airflow_provider_mlops.hooks.s3 import S3Hook
from airflow_provider_mlops.ml.serialization import (
    ModelIntegrityError,
    SqliteRegistry,
    dump_model,
    load_model_version,
    record_model_file,
    registry_client,
)


@pytest.fixture
def registered(mlflow_tracking: dict[str, str], tmp_path: Path):
    import mlflow
    from sklearn.linear_model import LogisticRegression

    uri = mlflow_tracking["tracking_uri"]
    client = mlflow.MlflowClient(tracking_uri=uri)
    name = f"reader_{tmp_path.name[:30]}"
    client.create_registered_model(name)
    storage = S3Hook(aws_conn_id=None)
    root = (tmp_path / "models").as_uri()
    infos = {}
    for seed in (1, 2, 3):
        rng = np.random.default_rng(seed)
        x = rng.normal(size=(100, 3))
        model = LogisticRegression().fit(x, (x[:, 0] > 0).astype(int))
        version = client.create_model_version(name, source=f"{root}/src{seed}").version
        blob, fmt, _ = dump_model(model)
        infos[str(version)] = record_model_file(client, storage, root, name, str(version), blob, fmt)
    client.set_registered_model_alias(name, "champion", "2")
    client.delete_model_version(name, "3")
    return uri, client, storage, name, infos


def test_reads_what_mlflow_reads(registered) -> None:
    uri, client, _, name, _ = registered
    reader = SqliteRegistry.for_uri(uri)
    assert reader is not None, "the test store's schema revision should be a known one"
    for version in ("1", "2"):
        ours, theirs = reader.get_model_version(name, version), client.get_model_version(name, version)
        assert ours.version == str(theirs.version)
        assert ours.tags == dict(theirs.tags)
        assert ours.tags  # the digest, uri, format and size tags are there
    assert reader.get_model_version_by_alias(name, "champion").version == "2"
    assert str(client.get_model_version_by_alias(name, "champion").version) == "2"
    with pytest.raises(LookupError, match="no alias 'prod'"):
        reader.get_model_version_by_alias(name, "prod")
    with pytest.raises(LookupError, match="version 3 is not registered"):  # deleted in MLflow
        reader.get_model_version(name, "3")
    with pytest.raises(LookupError, match="version 9"):
        reader.get_model_version(name, "9")


def test_the_loader_checks_the_same_digest_through_it(registered) -> None:
    uri, _, storage, name, infos = registered
    reader = registry_client(uri, alias="champion")
    assert isinstance(reader, SqliteRegistry)
    loaded = load_model_version(reader, name, None, alias="champion", storage=storage)
    assert (loaded.version, loaded.sha256) == ("2", infos["2"]["sha256"])
    # tampered bytes: refused before deserializing, naming both digests
    path = Path(infos["1"]["uri"].removeprefix("file://"))
    path.write_bytes(Path(infos["2"]["uri"].removeprefix("file://")).read_bytes())
    with pytest.raises(ModelIntegrityError, match=infos["1"]["sha256"]):
        load_model_version(reader, name, "1", storage=storage)


def test_falls_back_to_mlflow_when_unsure(
    registered, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow.tracking import MlflowClient

    uri = registered[0]
    # MLflow computes the `latest` alias
    assert isinstance(registry_client(uri, alias="latest"), MlflowClient)
    # a schema revision this reader was not checked against
    copy = tmp_path / "other.db"
    shutil.copy(uri.removeprefix("sqlite:///"), copy)
    with sqlite3.connect(copy) as db:
        db.execute("UPDATE alembic_version SET version_num = 'ffffffffffff'")
    assert SqliteRegistry.for_uri(f"sqlite:///{copy}") is None
    # MLflow workspaces, a server, a missing file
    monkeypatch.setenv("MLFLOW_WORKSPACE", "team-a")
    assert SqliteRegistry.for_uri(uri) is None
    monkeypatch.delenv("MLFLOW_WORKSPACE")
    assert SqliteRegistry.for_uri("http://127.0.0.1:5000") is None
    assert SqliteRegistry.for_uri(f"sqlite:///{tmp_path / 'absent.db'}") is None
