"""
The first deployment to the model server (issue 28, item 5): the server starts before the registered
model has a champion, answers 503 in MLflow's error shape until a deploy reloads one in, and the
``local_server`` target's first deploy works; smoke-test rows in the prediction log are marked
(item 11). A real server process, a real MLflow registry.
"""

from __future__ import annotations

import time
from pathlib import Path

import pyarrow as pa
import pytest

from airflow_provider_mlops.deployment.targets import DeploymentError
from airflow_provider_mlops.hooks.s3 import ObjectStorageHook
from airflow_provider_mlops.ml.specs import Model
from airflow_provider_mlops.operators.deploy import DeployModelOperator
from airflow_provider_mlops.operators.train import TrainModelOperator
from tests.conftest import set_connection
from tests.operators.helpers import task_context
from tests.serving.helpers import TOKEN, start_server, stop_server
from tests.serving.test_deploy_targets import FailingSmokeTarget

NAME = "churn_first_deploy"
SMOKE = {
    "dataframe_records": [
        {"minutes": 12.5, "tickets": 2, "plan": "free", "region": "eu"},
        {"minutes": 80.0, "tickets": 0, "plan": "pro", "region": "na"},
    ]
}


def _train(dataset: str, mlflow_conn: str, tmp_path: Path) -> str:
    return TrainModelOperator(
        task_id="train",
        input_uri=dataset,
        label_column="churned",
        registered_model_name=NAME,
        mlflow_conn_id=mlflow_conn,
        model_output_uri=(tmp_path / "models").as_uri(),
        model=Model(estimator="sklearn.linear_model.LogisticRegression"),
    ).execute(task_context(tmp_path))["version"]


def _no_model(response: object, status: int = 503) -> None:
    assert response.status_code == status, response.text  # type: ignore[attr-defined]
    body = response.json()  # type: ignore[attr-defined]
    assert body["error_code"] == "TEMPORARILY_UNAVAILABLE" and "no champion yet" in body["message"], body
    assert NAME in body["message"]


def test_the_server_starts_without_a_champion_and_the_first_deploy_loads_it(
    dataset: str, mlflow_conn: str, mlflow_tracking: dict, tmp_path: Path
) -> None:
    v1 = _train(dataset, mlflow_conn, tmp_path)  # registered, never promoted: no champion yet
    log_uri = (tmp_path / "predictions").as_uri()
    server = start_server(
        [
            "--model-name",
            NAME,
            "--tracking-uri",
            mlflow_tracking["tracking_uri"],
            "--log-predictions",
            log_uri,
            "--log-flush-seconds",
            "0.3",
        ],
        tmp_path / "server.log",
        ready="/health",
    )
    try:
        # Before the first deployment: up, not ready.
        _no_model(server.get("/ping"))
        _no_model(server.post("/invocations", json=SMOKE))
        version = server.get("/version")
        assert version.status_code == 200 and version.json()["version"] is None
        assert server.get("/health").status_code == 200, "alive (liveness), only not ready"
        assert "mlops_serve_model_version 0" in server.get("/metrics").text

        # Registered but no champion: a plain reload re-resolves the alias and still finds none.
        refused = server.post("/reload", json={}, headers={"Authorization": f"Bearer {TOKEN}"})
        assert refused.status_code == 409 and refused.json()["serving"] is None
        _no_model(server.get("/ping"))

        set_connection(
            "first_server",
            conn_type="mlops_http",
            host=server.url,
            password=TOKEN,
            extra={"auth_type": "bearer"},
        )
        local = {"type": "local_server", "http_conn_id": "first_server", "smoke_input": SMOKE}
        common = {
            "task_id": "deploy",
            "registered_model_name": NAME,
            "evaluation_uri": dataset,
            "label_column": "churned",
            "mlflow_conn_id": mlflow_conn,
        }
        # A first deploy whose other target fails: the server goes back to serving nothing.
        with pytest.raises(DeploymentError, match="smoke request timed out"):
            DeployModelOperator(
                candidate_version=v1,
                targets=[local, FailingSmokeTarget()],
                **common,
            ).execute(task_context(tmp_path))
        _no_model(server.get("/ping"))
        assert server.get("/version").json()["version"] is None

        # The first deploy: the target reloads the candidate into the empty server.
        result = DeployModelOperator(
            candidate_version=v1,
            targets=[local],
            **common,
        ).execute(task_context(tmp_path))
        assert result["promoted"] and result["targets"][0]["version"] == v1
        assert server.get("/ping").status_code == 200
        assert server.get("/version").json()["version"] == v1
        answered = server.post("/invocations", json=SMOKE)
        assert answered.status_code == 200 and len(answered.json()["predictions"]) == 2

        time.sleep(1.2)  # the log flushes every 0.3 s
        storage = ObjectStorageHook(aws_conn_id=None)
        logged = [p.parent for p in (tmp_path / "predictions").rglob("_delta_log")]
        table = pa.Table.from_batches([b for p in logged for b in storage.iter_batches(p.as_uri())])
        marks = table.column("smoke_test").to_pylist()
        # two deploys smoke-tested 2 rows each (the failed one too: it ran before the other target
        # failed), then one client request of 2 rows
        assert sorted(marks) == [False, False, True, True, True, True], marks
    finally:
        stop_server(server)


def test_a_server_for_a_model_not_registered_yet_starts_empty(tmp_path: Path, mlflow_tracking: dict) -> None:
    server = start_server(
        ["--model-name", NAME + "_unregistered", "--tracking-uri", mlflow_tracking["tracking_uri"]],
        tmp_path / "server.log",
        ready="/health",
    )
    try:
        ping = server.get("/ping")
        assert ping.status_code == 503 and ping.json()["error_code"] == "TEMPORARILY_UNAVAILABLE"
        assert server.get("/version").json()["version"] is None
    finally:
        stop_server(server)


def test_a_server_that_cannot_verify_its_model_still_exits(tmp_path: Path, mlflow_tracking: dict) -> None:
    """Starting empty is only for a missing champion: a configured version that does not exist exits."""
    import subprocess
    import sys

    refused = subprocess.run(
        [
            sys.executable,
            "-m",
            "airflow_provider_mlops.serve",
            "--model-name",
            "no_such_model_anywhere",
            "--version",
            "3",
            "--tracking-uri",
            mlflow_tracking["tracking_uri"],
            "--port",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode == 1 and "cannot load the model" in refused.stderr
