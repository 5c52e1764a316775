"""
Azure Machine Learning managed online endpoints as a deployment target, through the ARM REST API
(``Microsoft.MachineLearningServices``, api-version 2024-04-01).

The server image is registered as an environment version with its routes (liveness / readiness
``/ping``, scoring ``/invocations``, port 8080). Each release is its own deployment (``v<version>-
<sha8>``) on the endpoint, created with the release in its environment variables (model name,
version, file URI, the sha256 pinned from MLflow); then the endpoint's traffic moves to it (100%).
The deployment that served before is kept at 0% for a quick rollback and older ones are deleted.
Every create / update / delete is a long-running operation, polled by azure-core's ``LROPoller``
(``LROBasePolling`` through its ``Azure-AsyncOperation`` or ``Location`` URL, as the ARM SDKs poll); a
``Failed`` status raises with its error message.
The smoke test reads the traffic and the serving deployment's variables, then posts ``smoke_input``
to the endpoint's scoring URI with the endpoint key. Rollback gives the traffic back to the previous
release's deployment (recreating it if needed) and deletes the failed one; with no previous release
the failed deployment is deleted.

Credentials: an Airflow ``azure`` connection holding a service principal (login = client id,
password = secret, extras ``tenantId`` and ``subscriptionId``), turned into azure-identity's
``ClientSecretCredential``; azure-core's ``BearerTokenCredentialPolicy`` fetches and renews the token
and its ``RetryPolicy`` retries throttled and failed requests (the ``azure`` extra). Not run against
Azure: tested against a local https fake of the documented REST endpoints and of the identity
platform's token endpoint (tests/deployment/test_azure.py).
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

from airflow_provider_mlops.deployment.sagemaker import (
    ENV_MODEL_NAME,
    ENV_SHA256,
    ENV_VERSION,
    release_environment,
)
from airflow_provider_mlops.deployment.targets import (
    DeploymentError,
    DeploymentTarget,
    ModelRelease,
    check_smoke_answer,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

log = logging.getLogger(__name__)

API_VERSION = "2024-04-01"
_NAME = re.compile(r"[^a-zA-Z0-9-]+")


def _error_text(response: Any) -> str:
    """An ARM error body's message (``{"error": {"message": ...}}``), else the body as text."""
    if response is None:
        return "no response"
    try:
        error = response.json().get("error") or {}
        return str(error.get("message") or error or response.text())
    except (ValueError, AttributeError):
        return str(response.text())


def deployment_name(release: ModelRelease) -> str:
    """``v<version>-<sha8>``: starts with a letter, at most 32 characters, unique per release."""
    return f"v{_NAME.sub('-', release.version)}"[:23].rstrip("-") + f"-{release.sha256[:8]}"


class AzureMLTarget(DeploymentTarget):
    """
    An Azure ML managed online endpoint serving the provider's server image.

    :param endpoint_name: the online endpoint (created on the first deploy).
    :param image_uri: the server image (e.g. in Azure Container Registry).
    :param resource_group: / ``workspace``: where the endpoint lives.
    :param location: the Azure region, for resources this target creates.
    :param azure_conn_id: an Airflow ``azure`` connection (service principal).
    :param subscription_id: default: the connection's ``subscriptionId`` extra.
    :param instance_type: / ``instance_count``: the deployment's compute.
    :param environment_name: the environment the image is registered under.
    :param environment: extra container environment variables.
    :param smoke_input: a JSON body for the scoring URI; one prediction a row is required.
    :param management_url: / ``authority_host``: override the ARM and login URLs (sovereign clouds, tests;
        both https: azure-core sends bearer tokens over TLS only).
    :param connection_verify: TLS verification for ARM, login and scoring requests: True, or a CA bundle
        path (a private CA, a proxy).
    :param wait_timeout: seconds to wait for a long-running operation.
    :param poll_interval: seconds between polls.
    :param label: the name in logs and XCom.
    """

    def __init__(
        self,
        *,
        endpoint_name: str,
        image_uri: str,
        resource_group: str,
        workspace: str,
        location: str,
        azure_conn_id: str = "azure_default",
        subscription_id: str | None = None,
        instance_type: str = "Standard_DS3_v2",
        instance_count: int = 1,
        environment_name: str = "mlops-serve",
        environment: Mapping[str, str] | None = None,
        smoke_input: Mapping[str, Any] | None = None,
        management_url: str = "https://management.azure.com",
        authority_host: str = "https://login.microsoftonline.com",
        connection_verify: bool | str = True,
        wait_timeout: float = 3600.0,
        poll_interval: float = 15.0,
        label: str | None = None,
    ) -> None:
        self.endpoint_name = endpoint_name
        self.image_uri = image_uri
        self.resource_group = resource_group
        self.workspace = workspace
        self.location = location
        self.azure_conn_id = azure_conn_id
        self.subscription_id = subscription_id
        self.instance_type = instance_type
        self.instance_count = instance_count
        self.environment_name = environment_name
        self.environment = dict(environment or {})
        self.smoke_input = dict(smoke_input) if smoke_input else None
        self.management_url = management_url.rstrip("/")
        self.authority_host = authority_host.rstrip("/")
        self.connection_verify = connection_verify
        self.wait_timeout = wait_timeout
        self.poll_interval = poll_interval
        self.label = label or f"azureml:{endpoint_name}"
        self._client: Any = None

    # ----------------------------------------------------------------------------------------------
    # HTTP
    # ----------------------------------------------------------------------------------------------
    def _pipeline(self) -> Any:
        """azure-core's pipeline to ARM with the connection's service principal (built once)."""
        if self._client is not None:
            return self._client
        try:
            from azure.core import PipelineClient
            from azure.core.pipeline import policies
            from azure.core.pipeline.transport import RequestsTransport
            from azure.identity import AzureAuthorityHosts, ClientSecretCredential
        except ImportError as err:
            raise DeploymentError(
                f"{self.label} needs azure-identity: pip install 'airflow-provider-mlops[azure]' ({err})"
            ) from err
        from airflow.providers.common.compat.sdk import BaseHook

        conn = BaseHook.get_connection(self.azure_conn_id)
        extra = {k.removeprefix("extra__azure__"): v for k, v in conn.extra_dejson.items()}
        tenant = extra.get("tenantId") or extra.get("tenant_id")
        if not (conn.login and conn.password and tenant):
            raise DeploymentError(
                f"Connection {self.azure_conn_id!r} needs a service principal: login (client id), "
                "password (secret) and the tenantId extra"
            )
        self.subscription_id = (
            self.subscription_id or extra.get("subscriptionId") or extra.get("subscription_id")
        )
        if not self.subscription_id:
            raise DeploymentError(
                "No subscription: set subscription_id= or the connection's subscriptionId extra"
            )
        known = {v.rstrip("/") for k, v in vars(AzureAuthorityHosts).items() if k.isupper()}
        credential = ClientSecretCredential(
            tenant,
            conn.login,
            conn.password,
            authority=self.authority_host,
            # MSAL validates an authority it does not know against the public cloud's discovery
            # endpoint; a private authority (Azure Stack, a test double) is taken as given.
            disable_instance_discovery=self.authority_host.removeprefix("https://") not in known,
            connection_verify=self.connection_verify,
        )
        self._client = PipelineClient(
            base_url=self.management_url,
            policies=[
                policies.RequestIdPolicy(),
                policies.HeadersPolicy(),
                policies.UserAgentPolicy("airflow-provider-mlops"),
                policies.RetryPolicy(),
                policies.BearerTokenCredentialPolicy(credential, f"{self.management_url}/.default"),
            ],
            transport=RequestsTransport(connection_verify=self.connection_verify),
        )
        return self._client

    @property
    def _workspace_path(self) -> str:
        self._pipeline()
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}/providers/"
            f"Microsoft.MachineLearningServices/workspaces/{self.workspace}"
        )

    @property
    def _endpoint_path(self) -> str:
        return f"{self._workspace_path}/onlineEndpoints/{self.endpoint_name}"

    def _url(self, path: str) -> str:
        url = path if path.startswith("http") else f"{self.management_url}{path}"
        if "api-version=" not in url:
            url += ("&" if "?" in url else "?") + f"api-version={API_VERSION}"
        return url

    def _call(self, method: str, path: str, body: Any = None, *, missing_ok: bool = False) -> Any:
        """One ARM request; a long-running one (201/202 with a status URL) is polled to its end."""
        from azure.core.exceptions import AzureError, ClientAuthenticationError, HttpResponseError
        from azure.core.polling import LROPoller
        from azure.core.polling.base_polling import (
            LocationPolling,
            LROBasePolling,
            OperationResourcePolling,
            StatusCheckPolling,
        )
        from azure.core.rest import HttpRequest

        client = self._pipeline()
        request = HttpRequest(method, self._url(path), json=body)
        try:
            # what the generated SDKs do: the pipeline response is what the LRO poller starts from
            answer = client._pipeline.run(request)
        except ClientAuthenticationError as err:
            raise DeploymentError(f"{self.label}: token request failed: {err.message}") from err
        except AzureError as err:
            raise DeploymentError(f"{self.label}: {method} {path}: {err}") from err
        response = answer.http_response
        if missing_ok and response.status_code == 404:
            return None
        if response.status_code >= 400:
            raise DeploymentError(
                f"{self.label}: {method} {path} -> {response.status_code}: {_error_text(response)[:500]}"
            )
        result = response.json() if response.text() else None
        headers = {k.lower() for k in response.headers}
        if response.status_code in (201, 202) and headers & {"azure-asyncoperation", "location"}:
            polling = LROBasePolling(
                timeout=self.poll_interval,
                lro_algorithms=[
                    OperationResourcePolling(operation_location_header="azure-asyncoperation"),
                    LocationPolling(),
                    StatusCheckPolling(),
                ],
            )
            poller = LROPoller(client, answer, lambda final: result, polling)
            try:
                poller.wait(self.wait_timeout)
            except HttpResponseError as err:
                raise DeploymentError(
                    f"{self.label}: {method} {path} {poller.status()}: {_error_text(err.response)}"
                ) from err
            except AzureError as err:
                raise DeploymentError(f"{self.label}: {method} {path}: {err}") from err
            if not poller.done():
                raise DeploymentError(
                    f"{self.label}: {method} {path} still {poller.status()} after {self.wait_timeout:g} s"
                )
        return result

    # ----------------------------------------------------------------------------------------------
    # resources
    # ----------------------------------------------------------------------------------------------
    def _environment_id(self) -> str:
        version = re.sub(r"[^a-zA-Z0-9.-]+", "-", self.image_uri.rsplit(":", 1)[-1])[:30] or "1"
        path = f"{self._workspace_path}/environments/{self.environment_name}/versions/{version}"
        if self._call("GET", path, missing_ok=True) is None:
            route = {"port": 8080}
            self._call(
                "PUT",
                path,
                {
                    "properties": {
                        "image": self.image_uri,
                        "inferenceConfig": {
                            "livenessRoute": {**route, "path": "/ping"},
                            "readinessRoute": {**route, "path": "/ping"},
                            "scoringRoute": {**route, "path": "/invocations"},
                        },
                    }
                },
            )
        return path

    def _endpoint(self, create: bool) -> dict[str, Any] | None:
        found = self._call("GET", self._endpoint_path, missing_ok=True)
        if found is None and create:
            self._call(
                "PUT",
                self._endpoint_path,
                {
                    "location": self.location,
                    "identity": {"type": "SystemAssigned"},
                    "properties": {"authMode": "Key"},
                },
            )
            found = self._call("GET", self._endpoint_path)
        return found

    def _deployments(self) -> list[dict[str, Any]]:
        return list((self._call("GET", f"{self._endpoint_path}/deployments") or {}).get("value") or [])

    @staticmethod
    def _serving(endpoint: Mapping[str, Any] | None) -> str | None:
        traffic = ((endpoint or {}).get("properties") or {}).get("traffic") or {}
        top = max(traffic, key=lambda k: traffic[k]) if traffic else None
        return top if top and traffic[top] > 0 else None

    def _ensure_deployment(self, release: ModelRelease) -> str:
        name = deployment_name(release)
        path = f"{self._endpoint_path}/deployments/{name}"
        if self._call("GET", path, missing_ok=True) is None:
            self._call(
                "PUT",
                path,
                {
                    "location": self.location,
                    "sku": {"name": "Default", "capacity": self.instance_count},
                    "properties": {
                        "endpointComputeType": "Managed",
                        "instanceType": self.instance_type,
                        "environmentId": self._environment_id(),
                        "environmentVariables": {**self.environment, **release_environment(release)},
                    },
                },
            )
            log.info("%s: created deployment %s", self.label, name)
        return name

    def _route(self, deployment: str, keep: set[str]) -> None:
        """All traffic to ``deployment``; delete deployments not in ``keep``."""
        names = [d["name"] for d in self._deployments()]
        self._call(
            "PATCH",
            self._endpoint_path,
            {
                "properties": {
                    "traffic": {n: (100 if n == deployment else 0) for n in names if n in keep | {deployment}}
                }
            },
        )
        for name in names:
            if name not in keep | {deployment}:
                self._call("DELETE", f"{self._endpoint_path}/deployments/{name}")

    # ----------------------------------------------------------------------------------------------
    # DeploymentTarget
    # ----------------------------------------------------------------------------------------------
    def deploy(self, release: ModelRelease) -> dict[str, Any]:
        before = self._serving(self._endpoint(create=True))
        name = self._ensure_deployment(release)
        self._route(name, {before} if before else set())
        return {"endpoint": self.endpoint_name, "deployment": name}

    def describe(self) -> dict[str, Any]:
        serving = self._serving(self._endpoint(create=False))
        if serving is None:
            return {"version": None, "endpoint": self.endpoint_name}
        deployment = self._call("GET", f"{self._endpoint_path}/deployments/{serving}")
        env = (deployment.get("properties") or {}).get("environmentVariables") or {}
        return {
            "version": env.get(ENV_VERSION),
            "sha256": env.get(ENV_SHA256),
            "model": env.get(ENV_MODEL_NAME),
            "endpoint": self.endpoint_name,
            "deployment": serving,
        }

    def smoke_test(self, release: ModelRelease) -> None:
        served = self.describe()
        if served.get("version") != release.version or served.get("sha256") != release.sha256:
            raise DeploymentError(
                f"{self.label} serves version {served.get('version')} (sha256 {served.get('sha256')}), "
                f"expected {release.version} (sha256 {release.sha256})"
            )
        if not self.smoke_input:
            return
        import requests

        endpoint = self._endpoint(create=False) or {}
        scoring = (endpoint.get("properties") or {}).get("scoringUri")
        key = (self._call("POST", f"{self._endpoint_path}/listKeys") or {}).get("primaryKey")
        answer = requests.post(
            str(scoring),
            json=self.smoke_input,
            headers={"Authorization": f"Bearer {key}", "azureml-model-deployment": str(served["deployment"])},
            timeout=60,
            verify=self.connection_verify,
        )
        try:
            predictions = answer.json().get("predictions")
        except (ValueError, AttributeError):
            predictions = None
        check_smoke_answer(
            self.label,
            self.smoke_input,
            predictions,
            f"{answer.status_code}: {answer.text[:300]}",
            ok=answer.status_code == 200,
        )

    def rollback(self, previous: ModelRelease | None) -> None:
        endpoint = self._endpoint(create=False)
        if endpoint is None:
            return
        failed = self._serving(endpoint)
        if previous is not None:
            name = self._ensure_deployment(previous)
            self._route(name, set())  # the failed deployment (and any other) is deleted
            return
        if failed is not None:
            # Nothing earlier to serve: take the failed deployment off the endpoint.
            self._call("PATCH", self._endpoint_path, {"properties": {"traffic": {}}})
            self._call("DELETE", f"{self._endpoint_path}/deployments/{failed}")
            log.warning("%s: no previous version; deleted deployment %s", self.label, failed)
