"""DeployModelOperator with targets: a real local model server, smoke tests, rollback on failure."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest
import requests

from airflow_provider_mlops.deployment.targets import DeploymentError, DeploymentTarget, ModelRelease
from airflow_provider_mlops.ml.specs import Gate, Model
from airflow_provider_mlops.operators.deploy import DeployModelOperator, RollbackModelOperator
from airflow_provider_mlops.operators.train import TrainModelOperator
from tests.conftest import set_connection
from tests.operators.helpers import task_context
from tests.serving.helpers import TOKEN, start_server, stop_server

NAME = "churn_targets"


class FailingSmokeTarget(DeploymentTarget):
    """Accepts every deploy, fails every smoke test, records rollbacks."""

    label = "always_fails"

    def __init__(self) -> None:
        self.deployed: list[str] = []
        self.rolled_back_to: list[str | None] = []

    def deploy(self, release: ModelRelease) -> dict:
        self.deployed.append(release.version)
        return {}

    def describe(self) -> dict:
        return {"version": self.deployed[-1] if self.deployed else None}

    def smoke_test(self, release: ModelRelease) -> None:
        raise DeploymentError("the smoke request timed out")

    def rollback(self, previous: ModelRelease | None) -> None:
        self.rolled_back_to.append(previous.version if previous else None)


def test_targets_gate_the_promotion_and_roll_back(
    dataset: str, mlflow_conn: str, mlflow_tracking: dict, tmp_path: Path
) -> None:
    versions = []
    for estimator, params in (
        ("sklearn.linear_model.LogisticRegression", {}),
        ("sklearn.ensemble.RandomForestClassifier", {"n_estimators": 10, "max_depth": 4}),
        ("sklearn.linear_model.LogisticRegression", {"C": 0.1}),
    ):
        versions.append(
            TrainModelOperator(
                task_id="train",
                input_uri=dataset,
                label_column="churned",
                registered_model_name=NAME,
                mlflow_conn_id=mlflow_conn,
                model_output_uri=(tmp_path / "models").as_uri(),
                model=Model(estimator=estimator, params=params),
            ).execute(task_context(tmp_path))["version"]
        )
    v1, v2, v3 = versions
    client = mlflow.MlflowClient(tracking_uri=mlflow_tracking["tracking_uri"])
    published = tmp_path / "published"
    common = {
        "task_id": "deploy",
        "registered_model_name": NAME,
        "mlflow_conn_id": mlflow_conn,
        "publish_uri": published.as_uri(),
    }
    # the gate is not under test here: every candidate may win
    judged = {"evaluation_uri": dataset, "label_column": "churned", "gate": Gate(min_delta=-1.0)}
    DeployModelOperator(
        candidate_version=v1,
        **common,
        **judged,
    ).execute(task_context(tmp_path))

    server = start_server(
        ["--model-name", NAME, "--tracking-uri", mlflow_tracking["tracking_uri"]], tmp_path / "server.log"
    )
    try:
        set_connection(
            "model_server",
            conn_type="mlops_http",
            host=server.url,
            password=TOKEN,
            extra={"auth_type": "bearer"},
        )
        assert server.get("/version").json()["version"] == v1
        smoke = {
            "dataframe_records": [
                {"minutes": 12.5, "tickets": 2, "plan": "free", "region": "eu"},
                {"minutes": 80.0, "tickets": 0, "plan": "pro", "region": "na"},
            ]
        }
        local = {"type": "local_server", "http_conn_id": "model_server", "smoke_input": smoke}

        # Promotion: the server reloads the candidate and proves it serves it before the alias moves.
        context = task_context(tmp_path)
        result = DeployModelOperator(
            candidate_version=v2,
            **judged,
            targets=[local],
            **common,
        ).execute(context)
        assert result["promoted"] and result["targets"][0]["version"] == v2
        # the task's "Served model" link opens the server's /version page, which names v2
        page = context["ti"].pushed["served_model_url"]
        assert page == server.url.rstrip("/") + "/version"
        assert requests.get(page, timeout=10).json()["version"] == v2
        assert server.get("/version").json()["version"] == v2
        assert str(client.get_model_version_by_alias(NAME, "champion").version) == v2
        assert json.loads((published / "latest.json").read_text())["version"] == v2

        # A second target fails its smoke test: both roll back to v2, the alias and latest.json stay.
        failing = FailingSmokeTarget()
        with pytest.raises(
            DeploymentError, match=r"always_fails failed .*v" + v3 + r".*smoke request timed out"
        ):
            DeployModelOperator(
                candidate_version=v3,
                **judged,
                targets=[local, failing],
                **common,
            ).execute(task_context(tmp_path))
        assert failing.deployed == [v3] and failing.rolled_back_to == [v2]
        assert not client.get_model_version(NAME, v3).description  # no "Promoted" on a version never served
        assert "romot" in client.get_model_version(NAME, v2).description  # the promotion that took effect
        assert server.get("/version").json()["version"] == v2
        assert str(client.get_model_version_by_alias(NAME, "champion").version) == v2
        assert json.loads((published / "latest.json").read_text())["version"] == v2

        # Rollback re-points the server, the alias and latest.json.
        rolled = RollbackModelOperator(
            version=v1,
            targets=[local],
            **common,
        ).execute(task_context(tmp_path))
        assert rolled["reason"] == "rollback" and rolled["targets"][0]["version"] == v1
        assert server.get("/version").json()["version"] == v1
        assert str(client.get_model_version_by_alias(NAME, "champion").version) == v1
        assert json.loads((published / "latest.json").read_text())["version"] == v1
    finally:
        stop_server(server)
