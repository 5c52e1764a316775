"""
Google Vertex AI online prediction as a deployment target, through its REST API (v1).

Each release is uploaded as its own Vertex Model (``models:upload``) whose container is the
provider's server image (port 8080, ``healthRoute=/ping``, ``predictRoute=/invocations``) with the
release in its environment (model name, version, file URI, the sha256 pinned from MLflow). Deploy
finds or creates the Endpoint by display name, deploys the Model to it with 100% of the traffic
(``deployModel`` with ``trafficSplit={"0": 100}``), keeps the previously serving deployed model at 0%
for a quick rollback and undeploys any older one. Rollback gives the traffic back to the previous
release's deployed model (deploying it again when it is gone) and undeploys the failed one. The
smoke test reads the Endpoint's traffic split and the serving Model's environment, then posts
``smoke_input`` to ``:rawPredict`` (passed to the container's ``/invocations`` as is).

Credentials: an Airflow ``google_cloud_platform`` connection (``keyfile_dict`` / ``key_path`` of a
service account, ``project``), through google-auth (the ``vertex`` extra); ``api_endpoint`` in
the target's arguments overrides ``https://{region}-aiplatform.googleapis.com`` (private endpoints,
tests). Not run against the live Vertex AI API: tested against a local fake of the documented REST
endpoints (tests/deployment/test_vertex.py).
"""

from __future__ import annotations

import json
import logging
import re
import time
from typing import TYPE_CHECKING, Any

from airflow_provider_mlops.deployment.sagemaker import (
    ENV_MODEL_NAME,
    ENV_SHA256,
    ENV_VERSION,
    release_environment,
    resource_name,
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

SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]
_LABEL = re.compile(r"[^a-z0-9_-]+")


class VertexAITarget(DeploymentTarget):
    """
    A Vertex AI Endpoint serving the provider's server image.

    :param endpoint_display_name: the Endpoint's display name (created on the first deploy).
    :param image_uri: the server image (Artifact Registry), built from the provider's Dockerfile.
    :param region: the Vertex AI region, e.g. ``europe-west4``.
    :param gcp_conn_id: an Airflow ``google_cloud_platform`` connection.
    :param project: the project; default: the connection's ``project`` extra.
    :param machine_type: the deployed model's machine type.
    :param min_replicas: / ``max_replicas``: the deployed model's replica range.
    :param environment: extra container environment.
    :param smoke_input: a JSON body for ``:rawPredict``; one prediction a row is required.
    :param service_account: the service account the container runs as (it must read the model file).
    :param api_endpoint: override the API base URL.
    :param wait_timeout: seconds to wait for a long-running operation.
    :param poll_interval: seconds between operation polls.
    :param label: the name in logs and XCom.
    """

    def __init__(
        self,
        *,
        endpoint_display_name: str,
        image_uri: str,
        region: str,
        gcp_conn_id: str = "google_cloud_default",
        project: str | None = None,
        machine_type: str = "n1-standard-2",
        min_replicas: int = 1,
        max_replicas: int = 1,
        environment: Mapping[str, str] | None = None,
        smoke_input: Mapping[str, Any] | None = None,
        service_account: str | None = None,
        api_endpoint: str | None = None,
        wait_timeout: float = 3600.0,
        poll_interval: float = 15.0,
        label: str | None = None,
    ) -> None:
        self.endpoint_display_name = endpoint_display_name
        self.image_uri = image_uri
        self.region = region
        self.gcp_conn_id = gcp_conn_id
        self.project = project
        self.machine_type = machine_type
        self.min_replicas = min_replicas
        self.max_replicas = max_replicas
        self.environment = dict(environment or {})
        self.smoke_input = dict(smoke_input) if smoke_input else None
        self.service_account = service_account
        self.api_endpoint = api_endpoint
        self.wait_timeout = wait_timeout
        self.poll_interval = poll_interval
        self.label = label or f"vertex:{endpoint_display_name}"
        self._session: Any = None
        self._credentials: Any = None
        self._endpoint_name: str | None = None

    # ----------------------------------------------------------------------------------------------
    # HTTP
    # ----------------------------------------------------------------------------------------------
    def _auth(self) -> None:
        """Credentials from the ``google_cloud_platform`` connection (never the worker's environment)."""
        from airflow.providers.common.compat.sdk import BaseHook
        from google.oauth2 import service_account

        conn = BaseHook.get_connection(self.gcp_conn_id)
        extra = {k.removeprefix("extra__google_cloud_platform__"): v for k, v in conn.extra_dejson.items()}
        info = extra.get("keyfile_dict")
        if isinstance(info, str):
            info = json.loads(info)
        if info:
            credentials = service_account.Credentials.from_service_account_info(info, scopes=SCOPES)
        elif extra.get("key_path"):
            credentials = service_account.Credentials.from_service_account_file(
                extra["key_path"], scopes=SCOPES
            )
        else:
            raise DeploymentError(
                f"Connection {self.gcp_conn_id!r} has no keyfile_dict or key_path: the Vertex AI target "
                "does not fall back to the worker's ambient credentials"
            )
        self.project = self.project or extra.get("project") or (info or {}).get("project_id")
        if not self.project:
            raise DeploymentError("No project: set project= or the connection's 'project' extra")
        self._credentials = credentials

    def _headers(self) -> dict[str, str]:
        from google.auth.transport.requests import Request

        if self._credentials is None:
            self._auth()
        if not self._credentials.valid:
            self._credentials.refresh(Request())
        return {"Authorization": f"Bearer {self._credentials.token}", "Content-Type": "application/json"}

    @property
    def _base(self) -> str:
        return (self.api_endpoint or f"https://{self.region}-aiplatform.googleapis.com").rstrip("/") + "/v1"

    @property
    def _parent(self) -> str:
        if self._credentials is None:
            self._auth()
        return f"projects/{self.project}/locations/{self.region}"

    def _call(self, method: str, path: str, body: Any = None, params: Mapping[str, str] | None = None) -> Any:
        import requests

        if self._session is None:
            self._session = requests.Session()
        response = self._session.request(
            method, f"{self._base}/{path}", json=body, params=params, headers=self._headers(), timeout=120
        )
        if response.status_code >= 400:
            try:
                detail = response.json().get("error", {}).get("message") or response.text
            except ValueError:
                detail = response.text
            raise DeploymentError(f"{self.label}: {method} {path} -> {response.status_code}: {detail[:500]}")
        return response.json() if response.content else {}

    def _operation(self, operation: dict[str, Any]) -> dict[str, Any]:
        """Wait for a long-running operation; its ``response``, or its ``error`` as DeploymentError."""
        deadline = time.monotonic() + self.wait_timeout
        while not operation.get("done"):
            if time.monotonic() > deadline:
                raise DeploymentError(
                    f"{self.label}: {operation.get('name')} not done after {self.wait_timeout:.0f} s"
                )
            time.sleep(self.poll_interval)
            operation = self._call("GET", operation["name"])
        if operation.get("error"):
            error = operation["error"]
            raise DeploymentError(
                f"{self.label}: {operation.get('name')} failed: {error.get('message', error)}"
            )
        return dict(operation.get("response") or {})

    # ----------------------------------------------------------------------------------------------
    # resources
    # ----------------------------------------------------------------------------------------------
    def _find(self, collection: str, display_name: str) -> dict[str, Any] | None:
        found = (
            self._call(
                "GET", f"{self._parent}/{collection}", params={"filter": f'display_name="{display_name}"'}
            ).get(collection)
            or []
        )
        return dict(found[0]) if found else None

    def _ensure_model(self, release: ModelRelease) -> str:
        display = resource_name(self.endpoint_display_name, release, limit=128)
        existing = self._find("models", display)
        if existing:
            return str(existing["name"])
        env = {**self.environment, **release_environment(release)}
        model = {
            "displayName": display,
            "containerSpec": {
                "imageUri": self.image_uri,
                "env": [{"name": k, "value": v} for k, v in env.items()],
                "ports": [{"containerPort": 8080}],
                "healthRoute": "/ping",
                "predictRoute": "/invocations",
            },
            "labels": {
                "mlops-model": _LABEL.sub("-", release.name.lower())[:63],
                "mlops-version": _LABEL.sub("-", release.version.lower())[:63],
            },
        }
        response = self._operation(self._call("POST", f"{self._parent}/models:upload", {"model": model}))
        log.info("%s: uploaded model %s", self.label, response.get("model"))
        return str(response["model"])

    def _endpoint(self, create: bool) -> dict[str, Any] | None:
        if self._endpoint_name:
            return dict(self._call("GET", self._endpoint_name))
        found = self._find("endpoints", self.endpoint_display_name)
        if found is None and create:
            response = self._operation(
                self._call("POST", f"{self._parent}/endpoints", {"displayName": self.endpoint_display_name})
            )
            found = self._call("GET", response["name"])
        if found is not None:
            self._endpoint_name = str(found["name"])
        return found

    @staticmethod
    def _serving(endpoint: Mapping[str, Any]) -> dict[str, Any] | None:
        split = endpoint.get("trafficSplit") or {}
        deployed = {d["id"]: d for d in endpoint.get("deployedModels") or []}
        if not split or not deployed:
            return None
        top = max(split, key=lambda k: split[k])
        return dict(deployed[top]) if split[top] > 0 and top in deployed else None

    def _set_traffic(self, endpoint: Mapping[str, Any], deployed_id: str) -> None:
        others = {d["id"]: 0 for d in endpoint.get("deployedModels") or [] if d["id"] != deployed_id}
        self._call(
            "PATCH",
            str(endpoint["name"]),
            {"trafficSplit": {deployed_id: 100, **others}},
            params={"updateMask": "traffic_split"},
        )

    def _undeploy(self, endpoint: Mapping[str, Any], deployed_id: str) -> None:
        self._operation(
            self._call("POST", f"{endpoint['name']}:undeployModel", {"deployedModelId": deployed_id})
        )

    def _deploy_model(self, model: str, display: str) -> str:
        endpoint = self._endpoint(create=True)
        assert endpoint is not None
        for deployed in endpoint.get("deployedModels") or []:
            if deployed.get("model") == model:
                self._set_traffic(endpoint, deployed["id"])
                return str(deployed["id"])
        deployed_model: dict[str, Any] = {
            "model": model,
            "displayName": display,
            "dedicatedResources": {
                "machineSpec": {"machineType": self.machine_type},
                "minReplicaCount": self.min_replicas,
                "maxReplicaCount": self.max_replicas,
            },
        }
        if self.service_account:
            deployed_model["serviceAccount"] = self.service_account
        response = self._operation(
            self._call(
                "POST",
                f"{endpoint['name']}:deployModel",
                {"deployedModel": deployed_model, "trafficSplit": {"0": 100}},
            )
        )
        return str(response["deployedModel"]["id"])

    # ----------------------------------------------------------------------------------------------
    # DeploymentTarget
    # ----------------------------------------------------------------------------------------------
    def deploy(self, release: ModelRelease) -> dict[str, Any]:
        model = self._ensure_model(release)
        before = self._endpoint(create=False)
        previous = self._serving(before) if before else None
        deployed_id = self._deploy_model(model, resource_name(self.endpoint_display_name, release, limit=128))
        endpoint = self._endpoint(create=False) or {}
        keep = {deployed_id, previous["id"] if previous else None}
        for deployed in endpoint.get("deployedModels") or []:
            if deployed["id"] not in keep:
                self._undeploy(endpoint, deployed["id"])
        return {"endpoint": endpoint.get("name"), "model": model, "deployed_model_id": deployed_id}

    def describe(self) -> dict[str, Any]:
        endpoint = self._endpoint(create=False)
        serving = self._serving(endpoint) if endpoint else None
        if serving is None:
            return {"version": None, "endpoint": endpoint.get("name") if endpoint else None}
        model = self._call("GET", serving["model"])
        env = {e["name"]: e.get("value") for e in (model.get("containerSpec") or {}).get("env") or []}
        return {
            "version": env.get(ENV_VERSION),
            "sha256": env.get(ENV_SHA256),
            "model": env.get(ENV_MODEL_NAME),
            "endpoint": endpoint.get("name") if endpoint else None,
            "deployed_model_id": serving["id"],
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
        answer = self._call("POST", f"{served['endpoint']}:rawPredict", self.smoke_input)
        predictions = answer.get("predictions") if isinstance(answer, dict) else None
        check_smoke_answer(self.label, self.smoke_input, predictions, str(answer)[:300])

    def rollback(self, previous: ModelRelease | None) -> None:
        endpoint = self._endpoint(create=False)
        if endpoint is None:
            return
        failed = self._serving(endpoint)
        if previous is not None:
            model = self._ensure_model(previous)
            self._deploy_model(model, resource_name(self.endpoint_display_name, previous, limit=128))
            endpoint = self._endpoint(create=False) or {}
        elif failed is None:
            return
        if failed is not None:
            current = self._serving(endpoint)
            if current is None or current["id"] != failed["id"]:
                self._undeploy(endpoint, failed["id"])
            elif previous is None:
                # Nothing earlier to serve: take the failed model off the endpoint.
                self._undeploy(endpoint, failed["id"])
                log.warning("%s: no previous version; undeployed %s", self.label, failed["id"])
