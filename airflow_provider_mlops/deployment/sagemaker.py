"""
AWS SageMaker real-time endpoint as a deployment target.

Blue/green by construction: every release gets its own SageMaker Model and EndpointConfig, named from
the endpoint, the version and the first digits of its sha256. Deploying creates the Endpoint the
first time and otherwise points it at the release's EndpointConfig (``UpdateEndpoint``: SageMaker
brings up the new fleet, shifts traffic, then retires the old one), then waits for ``InService``.
A failed update leaves the endpoint on its old config with a ``FailureReason``: that reason is in the
error. Rollback points the endpoint back at the previous release's EndpointConfig (recreated if it
was deleted), or, when there was no previous release, deletes the endpoint this target created.

The container is this provider's server image (``airflow_provider_mlops/serving/container/Dockerfile``:
port 8080, ``/ping`` and ``/invocations``); the release reaches it through environment variables: the model name,
version, file URI and the sha256 pinned from MLflow, so the container verifies the bytes it
downloads (with the SageMaker execution role) before deserializing them.

Clients come from the amazon provider's hooks (``SageMakerHook``, ``AwsBaseHook``; the ``sagemaker``
extra) on an Airflow ``aws`` connection, so every way that connection type authenticates works as in
the rest of Airflow: keys, ``profile_name``, ``role_arn`` with ``assume_role_kwargs`` (the assumed
role's session is refreshed by botocore before it expires, so a deployment that outlives one session
keeps going), ``region_name``, ``config_kwargs`` (botocore retries), and endpoints from
``service_config.<service>.endpoint_url`` or ``endpoint_url`` (STS for ``role_arn``: only
``service_config.sts.endpoint_url``, the amazon provider's rule). Waiting for ``InService`` is
SageMaker's own ``endpoint_in_service`` waiter. boto3 and the hooks are imported inside methods only
(DAG files construct targets).
"""

from __future__ import annotations

import json
import logging
import math
import re
from typing import TYPE_CHECKING, Any

from airflow_provider_mlops.deployment.targets import (
    DeploymentError,
    DeploymentTarget,
    ModelRelease,
    check_smoke_answer,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

log = logging.getLogger(__name__)

_NAME = re.compile(r"[^a-zA-Z0-9-]+")
#: environment variables the server image reads (see airflow_provider_mlops.serve)
ENV_MODEL_NAME = "MLOPS_SERVE_MODEL_NAME"
ENV_VERSION = "MLOPS_SERVE_VERSION"
ENV_SHA256 = "MLOPS_SERVE_SHA256"
ENV_MODEL_URI = "MLOPS_SERVE_MODEL_URI"


def release_environment(release: ModelRelease) -> dict[str, str]:
    """What a server container needs to serve ``release`` (the digest pinned: no MLflow needed)."""
    if not release.uri:
        raise DeploymentError(
            f"{release.name} v{release.version} has no model file URI a container could read: "
            "set publish_uri on DeployModelOperator (e.g. an s3:// prefix)"
        )
    return {
        ENV_MODEL_NAME: release.name,
        ENV_VERSION: release.version,
        ENV_SHA256: release.sha256,
        ENV_MODEL_URI: release.uri,
    }


def resource_name(prefix: str, release: ModelRelease, limit: int = 63) -> str:
    """``<prefix>-v<version>-<sha8>``: a valid SageMaker name, unique per release."""
    suffix = f"-v{release.version}-{release.sha256[:8]}"
    head = _NAME.sub("-", prefix).strip("-")[: limit - len(suffix)].rstrip("-")
    return f"{head}{suffix}"


class SageMakerTarget(DeploymentTarget):
    """
    A SageMaker real-time endpoint serving the provider's server image.

    :param endpoint_name: the Endpoint (created on the first deploy).
    :param image_uri: the server image in ECR (``airflow_provider_mlops/serving/container/Dockerfile``).
    :param execution_role_arn: the role SageMaker runs the container with (it must read the model file).
    :param aws_conn_id: an Airflow ``aws`` connection, read by the amazon provider's hooks (None: boto3's
        default credential chain).
    :param instance_type: the production variant's instance type.
    :param instance_count: initial instance count.
    :param environment: extra container environment (e.g. ``MLOPS_SERVE_MAX_ROWS``).
    :param smoke_input: a JSON body for ``InvokeEndpoint``; the answer must hold one prediction a row.
    :param deployment_config: passed to ``UpdateEndpoint`` as ``DeploymentConfig`` (blue/green traffic
        routing, auto-rollback alarms); None uses SageMaker's default blue/green all-at-once update.
    :param wait_timeout: seconds to wait for ``InService``.
    :param poll_interval: seconds between ``DescribeEndpoint`` calls (the waiter's delay).
    :param tags: tags for every resource created.
    :param label: the name in logs and XCom.
    """

    def __init__(
        self,
        *,
        endpoint_name: str,
        image_uri: str,
        execution_role_arn: str,
        aws_conn_id: str | None = "aws_default",
        instance_type: str = "ml.m5.large",
        instance_count: int = 1,
        environment: Mapping[str, str] | None = None,
        smoke_input: Mapping[str, Any] | None = None,
        deployment_config: Mapping[str, Any] | None = None,
        wait_timeout: float = 1800.0,
        poll_interval: float = 15.0,
        tags: Mapping[str, str] | None = None,
        label: str | None = None,
    ) -> None:
        self.endpoint_name = endpoint_name
        self.image_uri = image_uri
        self.execution_role_arn = execution_role_arn
        self.aws_conn_id = aws_conn_id
        self.instance_type = instance_type
        self.instance_count = instance_count
        self.environment = dict(environment or {})
        self.smoke_input = dict(smoke_input) if smoke_input else None
        self.deployment_config = dict(deployment_config) if deployment_config else None
        self.wait_timeout = wait_timeout
        self.poll_interval = poll_interval
        self.tags = dict(tags or {})
        self.label = label or f"sagemaker:{endpoint_name}"
        self._clients: dict[str, Any] = {}
        self._created_endpoint = False

    # ----------------------------------------------------------------------------------------------
    # clients
    # ----------------------------------------------------------------------------------------------
    def _client(self, service: str) -> Any:
        """The amazon provider's client for ``service`` on the connection (refreshing role sessions)."""
        if service not in self._clients:
            try:
                from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
                from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook
            except ImportError as err:
                raise DeploymentError(
                    f"{self.label} needs the amazon provider: pip install 'airflow-provider-mlops[sagemaker]' "
                    f"({err})"
                ) from err
            hook = (
                SageMakerHook(aws_conn_id=self.aws_conn_id)
                if service == "sagemaker"
                else AwsBaseHook(aws_conn_id=self.aws_conn_id, client_type=service)
            )
            self._clients[service] = hook.conn
        return self._clients[service]

    @property
    def sagemaker(self) -> Any:
        return self._client("sagemaker")

    @property
    def runtime(self) -> Any:
        return self._client("sagemaker-runtime")

    # ----------------------------------------------------------------------------------------------
    # resources
    # ----------------------------------------------------------------------------------------------
    def _tags(self, release: ModelRelease) -> list[dict[str, str]]:
        tags = {
            **self.tags,
            "mlops:model": release.name,
            "mlops:version": release.version,
            "mlops:sha256": release.sha256,
        }
        return [{"Key": k, "Value": str(v)} for k, v in tags.items()]

    @staticmethod
    def _missing(err: Exception) -> bool:
        code = getattr(err, "response", {}).get("Error", {}).get("Code", "")
        text = str(err)
        return code in ("ValidationException", "ResourceNotFound") and (
            "Could not find" in text or "does not exist" in text or "not found" in text.lower()
        )

    def _ensure_model(self, release: ModelRelease) -> str:
        name = resource_name(self.endpoint_name, release)
        try:
            self.sagemaker.describe_model(ModelName=name)
            return name
        except Exception as err:
            if not self._missing(err):
                raise
        self.sagemaker.create_model(
            ModelName=name,
            ExecutionRoleArn=self.execution_role_arn,
            PrimaryContainer={
                "Image": self.image_uri,
                "Mode": "SingleModel",
                "Environment": {**self.environment, **release_environment(release)},
            },
            Tags=self._tags(release),
        )
        log.info("%s: created model %s", self.label, name)
        return name

    def _ensure_config(self, release: ModelRelease) -> str:
        name = resource_name(self.endpoint_name, release)
        model = self._ensure_model(release)
        try:
            self.sagemaker.describe_endpoint_config(EndpointConfigName=name)
            return name
        except Exception as err:
            if not self._missing(err):
                raise
        self.sagemaker.create_endpoint_config(
            EndpointConfigName=name,
            ProductionVariants=[
                {
                    "VariantName": "AllTraffic",
                    "ModelName": model,
                    "InitialInstanceCount": self.instance_count,
                    "InstanceType": self.instance_type,
                    "InitialVariantWeight": 1.0,
                }
            ],
            Tags=self._tags(release),
        )
        log.info("%s: created endpoint config %s", self.label, name)
        return name

    def _endpoint(self) -> dict[str, Any] | None:
        try:
            return dict(self.sagemaker.describe_endpoint(EndpointName=self.endpoint_name))
        except Exception as err:
            if self._missing(err):
                return None
            raise

    def _wait(self, expected_config: str | None) -> dict[str, Any]:
        """Wait until the endpoint settles; raise with its FailureReason unless it serves ``expected_config``."""
        from botocore.exceptions import WaiterError

        attempts = max(1, math.ceil(self.wait_timeout / self.poll_interval))
        try:
            self.sagemaker.get_waiter("endpoint_in_service").wait(
                EndpointName=self.endpoint_name,
                WaiterConfig={"Delay": self.poll_interval, "MaxAttempts": attempts},
            )
        except WaiterError as err:
            # Failed, gone, or still not InService when the attempts ran out: the endpoint says which.
            log.info("%s: %s", self.label, err)
        endpoint = self._endpoint()
        if endpoint is None:
            raise DeploymentError(f"{self.label}: the endpoint disappeared while deploying")
        status = endpoint.get("EndpointStatus")
        reason = endpoint.get("FailureReason")
        if status not in ("InService", "Failed", "OutOfService"):
            raise DeploymentError(
                f"{self.label}: still {status} after {self.wait_timeout:g} s (waiting for InService)"
            )
        if status != "InService":
            raise DeploymentError(f"{self.label}: endpoint is {status}: {reason or 'no FailureReason given'}")
        if expected_config and endpoint.get("EndpointConfigName") != expected_config:
            # A failed update rolls SageMaker back to the old config and reports why.
            raise DeploymentError(
                f"{self.label}: the endpoint serves {endpoint.get('EndpointConfigName')}, not "
                f"{expected_config}: {reason or 'no FailureReason given'}"
            )
        return endpoint

    def _point_at(self, config: str) -> dict[str, Any]:
        endpoint = self._endpoint()
        if endpoint is None:
            self.sagemaker.create_endpoint(
                EndpointName=self.endpoint_name,
                EndpointConfigName=config,
                Tags=[{"Key": "mlops:target", "Value": "sagemaker"}],
            )
            self._created_endpoint = True
            log.info("%s: creating endpoint with %s", self.label, config)
            return self._wait(config)
        if endpoint.get("EndpointStatus") not in ("InService", "Failed", "OutOfService"):
            endpoint = self._wait(None)  # an earlier update still running: let it settle first
        if endpoint.get("EndpointConfigName") == config and endpoint.get("EndpointStatus") == "InService":
            return endpoint
        kwargs: dict[str, Any] = {"EndpointName": self.endpoint_name, "EndpointConfigName": config}
        if self.deployment_config:
            kwargs["DeploymentConfig"] = self.deployment_config
        self.sagemaker.update_endpoint(**kwargs)
        log.info("%s: updating endpoint %s -> %s", self.label, endpoint.get("EndpointConfigName"), config)
        return self._wait(config)

    # ----------------------------------------------------------------------------------------------
    # DeploymentTarget
    # ----------------------------------------------------------------------------------------------
    def deploy(self, release: ModelRelease) -> dict[str, Any]:
        self._created_endpoint = False
        config = self._ensure_config(release)
        endpoint = self._point_at(config)
        return {
            "endpoint": self.endpoint_name,
            "endpoint_config": config,
            "status": endpoint.get("EndpointStatus"),
        }

    def describe(self) -> dict[str, Any]:
        endpoint = self._endpoint()
        if endpoint is None:
            return {"version": None, "endpoint": self.endpoint_name, "status": "absent"}
        config_name = endpoint.get("EndpointConfigName")
        config = self.sagemaker.describe_endpoint_config(EndpointConfigName=config_name)
        model_name = config["ProductionVariants"][0]["ModelName"]
        env = (self.sagemaker.describe_model(ModelName=model_name).get("PrimaryContainer") or {}).get(
            "Environment"
        ) or {}
        return {
            "version": env.get(ENV_VERSION),
            "sha256": env.get(ENV_SHA256),
            "model": env.get(ENV_MODEL_NAME),
            "endpoint": self.endpoint_name,
            "endpoint_config": config_name,
            "status": endpoint.get("EndpointStatus"),
        }

    def smoke_test(self, release: ModelRelease) -> None:
        served = self.describe()
        if served.get("status") != "InService":
            raise DeploymentError(f"{self.label} is {served.get('status')}, not InService")
        if served.get("version") != release.version or served.get("sha256") != release.sha256:
            raise DeploymentError(
                f"{self.label} serves version {served.get('version')} (sha256 {served.get('sha256')}), "
                f"expected {release.version} (sha256 {release.sha256})"
            )
        if not self.smoke_input:
            return
        response = self.runtime.invoke_endpoint(
            EndpointName=self.endpoint_name,
            ContentType="application/json",
            Accept="application/json",
            Body=json.dumps(self.smoke_input).encode(),
        )
        raw = response["Body"].read()
        try:
            predictions = json.loads(raw).get("predictions")
        except (ValueError, AttributeError):
            predictions = None
        check_smoke_answer(self.label, self.smoke_input, predictions, repr(raw[:300]))

    def rollback(self, previous: ModelRelease | None) -> None:
        if previous is not None:
            self._point_at(self._ensure_config(previous))
            log.info("%s: rolled back to %s v%s", self.label, previous.name, previous.version)
            return
        if self._created_endpoint:
            # This deploy created the endpoint and there is nothing earlier to serve: remove it
            # rather than leave an unpromoted model answering.
            self.sagemaker.delete_endpoint(EndpointName=self.endpoint_name)
            self._created_endpoint = False
            log.warning("%s: no previous version; deleted the endpoint this deploy created", self.label)
            return
        log.warning("%s: no previous version to roll back to", self.label)
