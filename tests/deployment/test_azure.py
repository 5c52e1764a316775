"""AzureMLTarget against a local fake of the Azure ML REST API (azure_fake.py); never run against Azure."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_provider_mlops.deployment.azure import AzureMLTarget, deployment_name
from airflow_provider_mlops.deployment.targets import (
    DeploymentError,
    ModelRelease,
    deploy_all,
    resolve_targets,
)
from tests.conftest import set_connection
from tests.deployment.azure_fake import FakeAzureML

TENANT, CLIENT, SECRET = "tenant-1", "client-1", "secret-1"
IMAGE = "churnacr.azurecr.io/mlops-serve:0.1.0"
SMOKE = {"dataframe_records": [{"minutes": 1.0}, {"minutes": 2.0}, {"minutes": 3.0}]}


def release(version: str) -> ModelRelease:
    return ModelRelease(
        name="churn_model", version=version, sha256=version * 64, uri=f"azureml://m/v{version}/model.skops"
    )


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeAzureML]:
    server = FakeAzureML(TENANT, CLIENT, SECRET, tmp_path)
    yield server
    server.close()


def make(fake: FakeAzureML, secret: str = SECRET) -> AzureMLTarget:
    conn = set_connection(
        "azure_ml_test",
        conn_type="azure",
        login=CLIENT,
        password=secret,
        extra={"tenantId": TENANT, "subscriptionId": "sub-1"},
    )
    built = resolve_targets(
        [
            {
                "type": "azure_ml",
                "endpoint_name": "churn",
                "image_uri": IMAGE,
                "resource_group": "rg",
                "workspace": "ws",
                "location": "westeurope",
                "azure_conn_id": conn,
                "smoke_input": SMOKE,
                "management_url": fake.url,
                "authority_host": fake.url,
                "connection_verify": fake.ca_file,
                "poll_interval": 0.01,
                "wait_timeout": 5,
            }
        ]
    )[0]
    assert isinstance(built, AzureMLTarget)
    return built


def test_deployments_per_release_traffic_and_rollback(fake: FakeAzureML) -> None:
    target = make(fake)
    v1, v2, v3 = release("1"), release("2"), release("3")
    target.deploy(v1)
    target.smoke_test(v1)
    (env,) = fake.environments.values()
    routes = env["properties"]["inferenceConfig"]
    assert env["properties"]["image"] == IMAGE and routes["scoringRoute"] == {
        "port": 8080,
        "path": "/invocations",
    }
    assert routes["livenessRoute"]["path"] == routes["readinessRoute"]["path"] == "/ping"
    deployed = fake.deployments["churn"][deployment_name(v1)]["properties"]
    assert deployed["environmentVariables"]["MLOPS_SERVE_SHA256"] == v1.sha256
    assert fake.scored_by == [deployment_name(v1)]  # the smoke request targets the deployment

    target.deploy(v2)
    target.smoke_test(v2)
    traffic = fake.endpoints["churn"]["properties"]["traffic"]
    assert traffic == {deployment_name(v1): 0, deployment_name(v2): 100}
    target.deploy(v3)
    assert set(fake.deployments["churn"]) == {deployment_name(v2), deployment_name(v3)}
    target.rollback(v2)
    assert target.describe()["version"] == "2" and set(fake.deployments["churn"]) == {deployment_name(v2)}


def test_failures_are_reported_and_rolled_back(fake: FakeAzureML) -> None:
    target = make(fake)
    deploy_all([target], release("1"), None)
    fake.fail_next_deployment = "ResourceNotReady: the container did not pass the readiness probe on /ping"
    with pytest.raises(DeploymentError, match="readiness probe"):
        deploy_all([target], release("2"), release("1"))
    assert target.describe()["version"] == "1"
    fake.broken_predictions = True
    with pytest.raises(DeploymentError, match="answered the smoke request"):
        deploy_all([target], release("3"), release("1"))
    assert target.describe()["version"] == "1" and set(fake.deployments["churn"]) == {
        deployment_name(release("1"))
    }


def test_first_deploy_failing_leaves_nothing_serving(fake: FakeAzureML) -> None:
    target = make(fake)
    fake.broken_predictions = True
    with pytest.raises(DeploymentError, match="nothing"):
        deploy_all([target], release("1"), None)
    assert fake.deployments["churn"] == {} and target.describe()["version"] is None


def test_a_wrong_secret_is_refused(fake: FakeAzureML) -> None:
    with pytest.raises(DeploymentError, match="Invalid client secret"):
        make(fake, secret="wrong").describe()


def test_the_token_comes_from_azure_identity_and_is_renewed_when_it_expires(fake: FakeAzureML) -> None:
    target = make(fake)
    target.deploy(release("1"))
    # one token for the whole deployment (azure-identity caches it, the pipeline reuses it)
    assert fake.token_requests == 1 and fake.expired_refusals == 0

    # Tokens that live 1 s, and a deployment whose operations take longer than that.
    fake.token_seconds = 1
    target.poll_interval = 0.3
    fake.tokens.clear()  # the cached token is revoked: the next request is refused ...
    requests_before = fake.token_requests
    with pytest.raises(DeploymentError, match="access token is invalid"):
        target.describe()
    # ... a new credential (a new task) asks for a token and deploys through several expiries.
    target = make(fake)
    target.poll_interval = 0.3
    fake.in_progress_reads = 3
    started = time.monotonic()
    target.deploy(release("2"))
    assert time.monotonic() - started > fake.token_seconds
    assert target.describe()["version"] == "2"
    assert fake.expired_refusals == 0 and fake.token_requests - requests_before >= 2


def test_an_operation_that_does_not_end_in_time_is_an_error(fake: FakeAzureML) -> None:
    target = make(fake)
    target.deploy(release("1"))
    fake.in_progress_reads = 10_000
    target.poll_interval, target.wait_timeout = 0.05, 0.3
    with pytest.raises(DeploymentError, match=r"PUT .*/deployments/v2-2222.* still InProgress after 0.3 s"):
        target.deploy(release("2"))
    fake.in_progress_reads = 0  # lets the abandoned poller finish
