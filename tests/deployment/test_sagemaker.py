"""
SageMakerTarget against moto's server (the harness's S3 moto serves SageMaker too) through a small
UpdateEndpoint shim (sagemaker_shim.py).

What this checks: the resources the target creates (one Model + EndpointConfig per version, the
release in the container environment), create-then-update of the Endpoint, waiting through
``Updating``, the FailureReason of a failed update, rollback re-pointing to the previous config,
credentials from an ``aws`` connection through the amazon provider's hooks (keys, and role_arn via
moto's STS, with role sessions that expire during a deployment and are renewed), and how the smoke test
reads an InvokeEndpoint answer.

What moto cannot check: InvokeEndpoint answers with canned bodies queued by the test (moto runs no
container), so no model is scored here; that the image really serves the model is tested with the
server process itself (tests/serving). Instance provisioning, traffic shifting and IAM are not
simulated.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import boto3
import pytest
import requests
from botocore.exceptions import ClientError

from airflow_provider_mlops.deployment.sagemaker import (
    ENV_MODEL_URI,
    ENV_SHA256,
    ENV_VERSION,
    SageMakerTarget,
)
from airflow_provider_mlops.deployment.targets import (
    DeploymentError,
    ModelRelease,
    deploy_all,
    resolve_targets,
)
from tests.conftest import set_connection
from tests.deployment.sagemaker_shim import SageMakerShim
from tests.harness.servers import S3Server

ROLE = "arn:aws:iam::123456789012:role/sagemaker-execution"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/mlops-serve:0.1.0"
SMOKE = {"dataframe_records": [{"minutes": 12.5, "plan": "free"}, {"minutes": 80.0, "plan": "pro"}]}


def release(version: str) -> ModelRelease:
    sha = (version * 64)[:64] if version.isdigit() else "f" * 64
    return ModelRelease(
        name="churn_model",
        version=version,
        sha256=sha,
        uri=f"s3://models/published/churn_model/v{version}/model.skops",
    )


@pytest.fixture
def shim(s3_server: S3Server) -> Iterator[SageMakerShim]:
    proxy = SageMakerShim(s3_server.endpoint_url, s3_server.access_key, s3_server.secret_key)
    yield proxy
    proxy.close()


@pytest.fixture
def aws_conn(s3_server: S3Server, shim: SageMakerShim) -> str:
    return set_connection(
        "sagemaker_test",
        conn_type="aws",
        login=s3_server.access_key,
        password=s3_server.secret_key,
        extra={"region_name": "us-east-1", "endpoint_url": shim.url},
    )


def make_target(conn_id: str, **kwargs: object) -> SageMakerTarget:
    options: dict = {
        "endpoint_name": f"churn-{uuid.uuid4().hex[:8]}",
        "image_uri": IMAGE,
        "execution_role_arn": ROLE,
        "aws_conn_id": conn_id,
        "smoke_input": SMOKE,
        "poll_interval": 0.01,
        "wait_timeout": 10,
    }
    options.update(kwargs)
    return SageMakerTarget(**options)  # type: ignore[arg-type]


def queue_answer(s3_server: S3Server, body: object) -> None:
    """moto's canned InvokeEndpoint answer (the next call on an endpoint/body pair gets it)."""
    response = requests.post(
        f"{s3_server.endpoint_url}/moto-api/static/sagemaker/endpoint-results",
        json={
            "account_id": "123456789012",
            "region": "us-east-1",
            "results": [{"Body": json.dumps(body), "ContentType": "application/json"}],
        },
        timeout=10,
    )
    response.raise_for_status()


def test_create_update_and_roll_back_an_endpoint(
    s3_server: S3Server, shim: SageMakerShim, aws_conn: str
) -> None:
    target = resolve_targets(
        [
            {
                "type": "sagemaker",
                "endpoint_name": f"churn-{uuid.uuid4().hex[:8]}",
                "image_uri": IMAGE,
                "execution_role_arn": ROLE,
                "aws_conn_id": aws_conn,
                "smoke_input": SMOKE,
                "poll_interval": 0.01,
                "wait_timeout": 10,
                "environment": {"MLOPS_SERVE_MAX_ROWS": "500"},
            }
        ]
    )[0]
    assert isinstance(target, SageMakerTarget)
    v1, v2 = release("1"), release("2")

    target.deploy(v1)
    queue_answer(s3_server, {"predictions": [0, 1]})
    target.smoke_test(v1)
    described = target.describe()
    assert (described["version"], described["sha256"], described["status"]) == ("1", v1.sha256, "InService")

    # The container gets the release: version, file and the digest pinned from MLflow.
    sm = target.sagemaker
    model = sm.describe_model(ModelName=described["endpoint_config"])
    env = model["PrimaryContainer"]["Environment"]
    assert env[ENV_VERSION] == "1" and env[ENV_SHA256] == v1.sha256 and env[ENV_MODEL_URI] == v1.uri
    assert env["MLOPS_SERVE_MAX_ROWS"] == "500" and model["PrimaryContainer"]["Image"] == IMAGE

    # v2: a new Model + EndpointConfig, the same endpoint updated (blue/green), waited through Updating.
    shim.updating_polls = 2
    shim.calls.clear()
    target.deploy(v2)
    assert shim.calls.count("UpdateEndpoint") == 1 and "CreateEndpoint" not in shim.calls
    assert shim.calls.count("DescribeEndpoint") >= 4  # before, 2x Updating, InService
    assert target.describe()["version"] == "2"
    configs = sm.list_endpoint_configs(NameContains=target.endpoint_name)["EndpointConfigs"]
    assert len(configs) == 2

    # Deploying what is served is a no-op.
    shim.calls.clear()
    target.deploy(v2)
    assert "UpdateEndpoint" not in shim.calls and "CreateModel" not in shim.calls

    target.rollback(v1)
    assert target.describe()["version"] == "1"
    assert target.describe()["endpoint_config"].endswith(f"-v1-{v1.sha256[:8]}")


def test_failed_update_reports_the_failure_reason(shim: SageMakerShim, aws_conn: str) -> None:
    target = make_target(aws_conn, smoke_input=None)
    target.deploy(release("1"))
    shim.fail_next_update = (
        "The primary container for production variant AllTraffic did not pass the ping health check."
    )
    with pytest.raises(DeploymentError, match="did not pass the ping health check") as caught:
        target.deploy(release("2"))
    assert "-v1-" in str(caught.value)  # still on the old config
    assert target.describe()["version"] == "1"


def test_failed_smoke_test_rolls_back_through_deploy_all(
    s3_server: S3Server, shim: SageMakerShim, aws_conn: str
) -> None:
    target = make_target(aws_conn, smoke_input={"instances": [[1.0], [2.0], [3.0]]})
    v1, v2 = release("1"), release("2")
    queue_answer(s3_server, {"predictions": [0, 0, 1]})
    deploy_all([target], v1, None)
    # The canned answer for v2's smoke request has one prediction for three rows: refused.
    target.smoke_input = {"instances": [[4.0], [5.0], [6.0]]}
    queue_answer(s3_server, {"predictions": [1]})
    with pytest.raises(DeploymentError, match="answered the smoke request") as caught:
        deploy_all([target], v2, v1)
    assert "Rolled back" in str(caught.value)
    assert target.describe()["version"] == "1"


def test_first_deploy_failing_deletes_the_endpoint_it_created(
    s3_server: S3Server, shim: SageMakerShim, aws_conn: str
) -> None:
    target = make_target(aws_conn, smoke_input={"instances": [[7.0]]})
    queue_answer(s3_server, "not the scoring protocol")
    with pytest.raises(DeploymentError, match="nothing"):
        deploy_all([target], release("1"), None)
    assert target.describe()["status"] == "absent"


def role_connection(conn_id: str, s3_server: S3Server, shim: SageMakerShim, **extra: object) -> str:
    """An ``aws`` connection assuming a role; STS (the amazon provider's ``service_config.sts``) via the shim."""
    return set_connection(
        conn_id,
        conn_type="aws",
        login=s3_server.access_key,
        password=s3_server.secret_key,
        extra={
            "region_name": "eu-west-1",
            "role_arn": "arn:aws:iam::123456789012:role/deployer",
            "endpoint_url": s3_server.endpoint_url,
            "service_config": {"sagemaker": {"endpoint_url": shim.url}, "sts": {"endpoint_url": shim.url}},
            **extra,
        },
    )


def test_role_arn_credentials_come_from_the_aws_connection(s3_server: S3Server, shim: SageMakerShim) -> None:
    target = make_target(role_connection("sagemaker_role_test", s3_server, shim))
    assert target.describe()["status"] == "absent"
    client = target.sagemaker
    # moto's STS hands out temporary keys: the client signs with them, not the connection's keys.
    ((operation, key_id),) = shim.signed_with
    assert operation == "DescribeEndpoint" and key_id in shim.sessions and key_id != s3_server.access_key
    assert client.meta.region_name == "eu-west-1" and client.meta.endpoint_url == shim.url


SESSION_SECONDS = 2


def test_a_deployment_outlives_its_first_role_session(s3_server: S3Server, shim: SageMakerShim) -> None:
    # A role session of 2 s (botocore refuses DurationSeconds < 900 before sending unless parameter
    # validation is off; moto's STS honours any value) and an update that takes ~3 s of polling.
    conn_id = role_connection(
        "sagemaker_short_role",
        s3_server,
        shim,
        region_name="us-east-1",  # the shim's UpdateEndpoint works in moto's us-east-1
        assume_role_kwargs={"DurationSeconds": SESSION_SECONDS},
        config_kwargs={"parameter_validation": False},
    )
    target = make_target(conn_id, smoke_input=None, poll_interval=0.25)
    v1, v2 = release("1"), release("2")
    target.deploy(v1)
    shim.updating_polls = 12
    target.deploy(v2)
    assert target.describe()["version"] == "2"

    first_key = shim.signed_with[0][1]
    first = shim.sessions[first_key]
    # The deployment went on after its first session had expired ...
    assert (first["expiration"] - first["issued"]).total_seconds() <= SESSION_SECONDS + 1
    assert (datetime.now(UTC) - first["expiration"]).total_seconds() > 0.5
    # ... every SageMaker request was signed with an assumed-role key that was still valid (none refused),
    # and the keys changed as sessions were renewed.
    assert shim.refused == []
    keys = [key for _, key in shim.signed_with]
    assert set(keys) <= set(shim.sessions) and s3_server.access_key not in keys
    assert len(set(keys)) >= 2
    assert shim.calls.count("DescribeEndpoint") >= 12

    # What the target did before (keys resolved once, never refreshed) now fails: the shim refuses them.
    frozen = boto3.client(
        "sagemaker",
        endpoint_url=shim.url,
        region_name="us-east-1",
        aws_access_key_id=first_key,
        aws_secret_access_key=first["secret"],
        aws_session_token=first["token"],
    )
    with pytest.raises(ClientError, match="ExpiredTokenException"):
        frozen.describe_endpoint(EndpointName=target.endpoint_name)
    assert shim.refused == [("DescribeEndpoint", first_key)]


def test_boto3_is_not_needed_to_build_a_target() -> None:
    # DAG files build targets at parse time: construction touches no client.
    target = SageMakerTarget(endpoint_name="e", image_uri=IMAGE, execution_role_arn=ROLE)
    assert target._clients == {} and target.label == "sagemaker:e"


def test_an_update_that_does_not_settle_in_time_is_an_error(shim: SageMakerShim, aws_conn: str) -> None:
    target = make_target(aws_conn, smoke_input=None, poll_interval=0.05, wait_timeout=0.3)
    target.deploy(release("1"))
    shim.updating_polls = 100
    with pytest.raises(DeploymentError, match=r"still Updating after 0.3 s \(waiting for InService\)"):
        target.deploy(release("2"))
    # the waiter polled DescribeEndpoint every poll_interval until its attempts ran out
    assert 6 <= shim.calls.count("DescribeEndpoint") <= 12
