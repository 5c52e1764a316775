"""
BatchPredictOperator reads the version, the alias and the digest tag with MlflowClient on every backend:
a SQLite store and an MLflow tracking server (``mlflow server`` over HTTP). Same loader, same refusals.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_mlops.hooks.s3 import ObjectStorageHook
from airflow_provider_mlops.ml.serialization import ModelIntegrityError, dump_model, record_model_file
from airflow_provider_mlops.operators.predict import BatchPredictOperator
from airflow_provider_mlops.utils.processes import stop_process_group
from tests.conftest import set_connection
from tests.harness.servers import free_port, wait_port
from tests.operators.helpers import task_context


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """``mlflow server`` on its own SQLite store: the registry read over HTTP."""
    pytest.importorskip("mlflow")
    root = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    log = (root / "server.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "mlflow", "server",
            "--backend-store-uri", f"sqlite:///{root}/mlflow.db",
            "--default-artifact-root", (root / "artifacts").as_uri(),
            "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"},
        start_new_session=True,  # the server's uvicorn workers are stopped with it, as one group
    )  # fmt: skip
    try:
        wait_port(port, timeout=90, proc=proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process_group(proc, grace=10)
        log.close()


@pytest.fixture(params=["sqlite", "server"])
def backend(request: pytest.FixtureRequest, mlflow_tracking: dict[str, str]) -> str:
    if request.param == "sqlite":
        return mlflow_tracking["tracking_uri"]
    return request.getfixturevalue("mlflow_server")


def test_batch_predict_reads_the_registry_through_mlflow_on_every_backend(
    backend: str, tmp_path: Path
) -> None:
    import mlflow
    from sklearn.linear_model import LogisticRegression

    client = mlflow.MlflowClient(tracking_uri=backend)
    name = f"backend_{tmp_path.name[:40]}"
    client.create_registered_model(name)
    storage = ObjectStorageHook(aws_conn_id=None)
    root = (tmp_path / "models").as_uri()
    rng = np.random.default_rng(7)
    x = rng.normal(size=(300, 3))
    models, infos = {}, {}
    for seed in (1, 2):
        model = LogisticRegression(C=seed).fit(x, (x[:, 0] + seed * x[:, 1] > 0).astype(int))
        # a label only (a tracking server refuses local paths outside a run)
        version = str(client.create_model_version(name, source=f"s3://sources/{name}/{seed}").version)
        blob, fmt, _ = dump_model(model)
        models[version], infos[version] = (
            model,
            record_model_file(client, storage, root, name, version, blob, fmt),
        )
    client.set_registered_model_alias(name, "champion", "2")
    conn = set_connection(
        f"mlflow_{tmp_path.name[:40]}", conn_type="mlops-mlflow", host="", extra={"tracking_uri": backend}
    )
    data_uri = (tmp_path / "data").as_uri()
    storage.write_dataset(data_uri, pa.table({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2]}).to_batches())

    def score(**kwargs: Any) -> dict[str, Any]:
        out = (tmp_path / f"out-{len(list(tmp_path.iterdir()))}").as_uri()
        result = BatchPredictOperator(task_id="score", input_uri=data_uri, registered_model_name=name, output_uri=out, mlflow_conn_id=conn, **kwargs,).execute(task_context(tmp_path))  # fmt: skip
        scored = pa.Table.from_batches(list(storage.iter_batches(out))).to_pandas()
        return {**result, "predictions": scored["prediction"].to_numpy()}

    # The alias resolves to version 2, whose digest is the one checked; predictions are its own.
    by_alias = score()
    assert (by_alias["model_version"], by_alias["sha256"]) == ("2", infos["2"]["sha256"])
    assert np.array_equal(by_alias["predictions"], models["2"].predict(x))
    pinned = score(version="1")
    assert (pinned["model_version"], pinned["sha256"]) == ("1", infos["1"]["sha256"])
    assert np.array_equal(pinned["predictions"], models["1"].predict(x))

    # Version 1's file swapped for version 2's (a valid model, not the registered one): refused
    # before deserializing, naming the digest the registry holds.
    Path(infos["1"]["uri"].removeprefix("file://")).write_bytes(
        Path(infos["2"]["uri"].removeprefix("file://")).read_bytes()
    )
    with pytest.raises(AirflowFailException, match=f"{name} version 1") as failed:
        score(version="1")
    assert isinstance(failed.value.__cause__, ModelIntegrityError)
    assert infos["1"]["sha256"] in str(failed.value.__cause__)
    # An alias that does not exist is MLflow's error, not a silent fallback.
    with pytest.raises(Exception, match="prod"):
        score(alias="prod")
