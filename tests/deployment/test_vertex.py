"""
VertexAITarget against a local fake of the Vertex AI REST API (vertex_fake.py); google-auth's
service-account flow runs against the fake's token endpoint. Never run against Google Cloud.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from airflow_provider_mlops.deployment.targets import (
    DeploymentError,
    ModelRelease,
    deploy_all,
    resolve_targets,
)
from airflow_provider_mlops.deployment.vertex import VertexAITarget
from tests.conftest import set_connection
from tests.deployment.vertex_fake import FakeVertex

SMOKE = {"instances": [[1.0, 2.0], [3.0, 4.0]]}
IMAGE = "europe-west4-docker.pkg.dev/churn-project/serve/mlops-serve:0.1.0"


def release(version: str) -> ModelRelease:
    return ModelRelease(
        name="churn_model", version=version, sha256=version * 64, uri=f"gs://m/v{version}/model.skops"
    )


@pytest.fixture
def fake() -> Iterator[FakeVertex]:
    server = FakeVertex("churn-project", "europe-west4")
    yield server
    server.close()


@pytest.fixture
def conn(fake: FakeVertex) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    keyfile = {
        "type": "service_account",
        "project_id": "churn-project",
        "private_key_id": "k1",
        "private_key": pem,
        "client_email": "deployer@churn-project.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": f"{fake.url}/token",
    }
    return set_connection("vertex_test", conn_type="google_cloud_platform", extra={"keyfile_dict": keyfile})


@pytest.fixture
def target(fake: FakeVertex, conn: str) -> VertexAITarget:
    built = resolve_targets(
        [
            {
                "type": "vertex_ai",
                "endpoint_display_name": "churn",
                "image_uri": IMAGE,
                "region": "europe-west4",
                "gcp_conn_id": conn,
                "api_endpoint": fake.url,
                "smoke_input": SMOKE,
                "poll_interval": 0.01,
                "wait_timeout": 5,
            }
        ]
    )[0]
    assert isinstance(built, VertexAITarget)
    return built


def test_upload_deploy_shift_traffic_and_roll_back(fake: FakeVertex, target: VertexAITarget) -> None:
    v1, v2, v3 = release("1"), release("2"), release("3")
    target.deploy(v1)
    target.smoke_test(v1)
    assert fake.token_requests == 1  # one JWT exchange, then the token is reused
    (model,) = fake.models.values()
    spec = model["containerSpec"]
    assert spec["imageUri"] == IMAGE and spec["ports"] == [{"containerPort": 8080}]
    assert (spec["healthRoute"], spec["predictRoute"]) == ("/ping", "/invocations")
    env = {e["name"]: e["value"] for e in spec["env"]}
    assert env["MLOPS_SERVE_VERSION"] == "1" and env["MLOPS_SERVE_SHA256"] == v1.sha256

    target.deploy(v2)
    target.smoke_test(v2)
    (endpoint,) = fake.endpoints.values()
    # v2 has all the traffic; v1 stays deployed at 0% for a quick rollback.
    assert sorted(endpoint["trafficSplit"].values()) == [0, 100] and target.describe()["version"] == "2"

    target.deploy(v3)  # v1 is now older than the previous: undeployed
    assert len(endpoint["deployedModels"]) == 2 and target.describe()["version"] == "3"

    target.rollback(v2)
    assert target.describe()["version"] == "2" and len(endpoint["deployedModels"]) == 1
    assert len(fake.models) == 3  # one Model per release, re-used on redeploy
    target.deploy(v2)
    assert len(fake.models) == 3


def test_a_failed_smoke_test_rolls_back_and_a_failed_operation_is_reported(
    fake: FakeVertex, target: VertexAITarget
) -> None:
    deploy_all([target], release("1"), None)
    fake.broken_predictions = True
    with pytest.raises(DeploymentError, match="answered the smoke request"):
        deploy_all([target], release("2"), release("1"))
    assert target.describe()["version"] == "1"
    fake.broken_predictions = False
    fake.fail_deploy = "Model server never became ready. Please validate that your model file or container configuration are valid."
    with pytest.raises(DeploymentError, match="never became ready"):
        target.deploy(release("3"))
    assert target.describe()["version"] == "1"


def test_credentials_only_from_the_connection(fake: FakeVertex) -> None:
    empty = set_connection("vertex_empty", conn_type="google_cloud_platform", extra={"project": "p"})
    target = VertexAITarget(
        endpoint_display_name="churn",
        image_uri=IMAGE,
        region="europe-west4",
        gcp_conn_id=empty,
        api_endpoint=fake.url,
    )
    with pytest.raises(DeploymentError, match="no keyfile_dict or key_path"):
        target.describe()
