"""
A local fake of the Azure ML REST endpoints AzureMLTarget uses, as documented for
``Microsoft.MachineLearningServices`` (api-version 2024-04-01): environment versions, online
endpoints (GET / PUT / PATCH ``traffic``, ``listKeys``), online deployments (GET / PUT / DELETE /
list), long-running operations through ``Azure-AsyncOperation`` (``InProgress`` for the first ``in_progress_reads`` reads),
and the identity platform's tenant discovery document and client-credentials token endpoint (what
azure-identity's ClientSecretCredential asks, through MSAL). It serves https with a self-signed
certificate made at start (``ca_file``: the bundle clients verify against), since azure-core sends
bearer tokens over TLS only. Bearer tokens and ``api-version`` are checked: a token lives
``token_seconds`` (``expires_in``), is refused after that with ``ExpiredAuthenticationToken`` (counted in
``expired_refusals``), and ``token_requests`` counts the token endpoint's answers; traffic must name existing deployments and sum to 100 (or be empty), and a deployment
with traffic cannot be deleted, as Azure refuses both.

The scoring URI is simulated: it answers one prediction a row (``broken_predictions``: one fewer)
for the deployment named by ``azureml-model-deployment``, else by traffic. No container runs here.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from tests.harness.tls import make_private_ca, server_context


class FakeAzureML:
    def __init__(self, tenant: str, client_id: str, secret: str, tls_dir: Path) -> None:
        self.tenant, self.client_id, self.secret = tenant, client_id, secret
        self.tokens: dict[str, float] = {}
        self.token_seconds = 3599
        self.token_requests = 0
        self.expired_refusals = 0
        #: status reads answered ``InProgress`` before an operation ends
        self.in_progress_reads = 1
        self.environments: dict[str, dict[str, Any]] = {}
        self.endpoints: dict[str, dict[str, Any]] = {}
        self.deployments: dict[str, dict[str, dict[str, Any]]] = {}
        self.operations: dict[str, dict[str, Any]] = {}
        self.fail_next_deployment: str | None = None
        self.broken_predictions = False
        self.scored_by: list[str] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
                data = b"" if body is None else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                url = urlparse(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                if url.path == f"/{fake.tenant}/v2.0/.well-known/openid-configuration":
                    base = f"{fake.url}/{fake.tenant}"
                    self._send(
                        200,
                        {
                            "token_endpoint": f"{base}/oauth2/v2.0/token",
                            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                            "issuer": f"{base}/v2.0",
                        },
                    )
                    return
                if url.path == f"/{fake.tenant}/oauth2/v2.0/token":
                    fake.token_requests += 1
                    form = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
                    if (form.get("client_id"), form.get("client_secret")) != (fake.client_id, fake.secret):
                        self._send(
                            401,
                            {
                                "error": "invalid_client",
                                "error_description": "AADSTS7000215: Invalid client secret provided.",
                            },
                        )
                        return
                    token = uuid.uuid4().hex
                    fake.tokens[token] = time.monotonic() + fake.token_seconds
                    self._send(
                        200, {"access_token": token, "expires_in": fake.token_seconds, "token_type": "Bearer"}
                    )
                    return
                auth = self.headers.get("Authorization", "")
                if url.path.startswith("/score/"):
                    status, body = fake.score(
                        url.path.split("/")[2], auth, self.headers.get("azureml-model-deployment"), raw
                    )
                    self._send(status, body)
                    return
                expiry = fake.tokens.get(auth[7:])
                if expiry is not None and time.monotonic() >= expiry:
                    fake.expired_refusals += 1
                    self._send(
                        401,
                        {
                            "error": {
                                "code": "ExpiredAuthenticationToken",
                                "message": "The access token expiry UTC time is earlier than current UTC time.",
                            }
                        },
                    )
                    return
                if expiry is None:
                    self._send(
                        401,
                        {
                            "error": {
                                "code": "InvalidAuthenticationToken",
                                "message": "The access token is invalid.",
                            }
                        },
                    )
                    return
                if query.get("api-version") != "2024-04-01":
                    self._send(
                        400,
                        {"error": {"code": "InvalidApiVersionParameter", "message": "api-version missing"}},
                    )
                    return
                status, body, headers = fake.api(self.command, url.path, json.loads(raw) if raw else None)
                self._send(status, body, headers)

            do_GET = do_PUT = do_PATCH = do_POST = do_DELETE = _handle

        ca = make_private_ca(tls_dir)
        self.ca_file = ca.ca_file
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.socket = server_context(ca).wrap_socket(self._server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def _async(self, error: str | None = None) -> dict[str, str]:
        op = uuid.uuid4().hex
        self.operations[op] = {"reads": 0, "error": error}
        return {"Azure-AsyncOperation": f"{self.url}/operations/{op}?api-version=2024-04-01"}

    def api(self, method: str, path: str, body: Any) -> tuple[int, Any, dict[str, str] | None]:
        if path.startswith("/operations/"):
            op = self.operations[path.split("/")[2]]
            op["reads"] += 1
            if op["reads"] <= self.in_progress_reads:
                return 200, {"status": "InProgress"}, None
            if op["error"]:
                return (
                    200,
                    {"status": "Failed", "error": {"code": "DeploymentFailed", "message": op["error"]}},
                    None,
                )
            return 200, {"status": "Succeeded"}, None
        parts = path.split("/")
        if "environments" in parts:
            key = "/".join(parts[-3:])
            if method == "PUT":
                self.environments[key] = body
                return 201, {"id": path, **body}, None
            return (
                (200, {"id": path, **self.environments[key]}, None)
                if key in self.environments
                else (404, {"error": {"message": "not found"}}, None)
            )
        index = parts.index("onlineEndpoints")
        name = parts[index + 1]
        rest = parts[index + 2 :]
        endpoint = self.endpoints.get(name)
        if not rest:
            if method == "GET":
                return (
                    (200, endpoint, None)
                    if endpoint
                    else (404, {"error": {"code": "NotFound", "message": "endpoint not found"}}, None)
                )
            if method == "PUT":
                self.endpoints[name] = {
                    "name": name,
                    "location": body["location"],
                    "properties": {
                        **body["properties"],
                        "traffic": {},
                        "scoringUri": f"{self.url}/score/{name}",
                    },
                }
                self.deployments[name] = {}
                return 201, self.endpoints[name], self._async()
            if method == "PATCH":
                traffic = {k: int(v) for k, v in body["properties"]["traffic"].items()}
                unknown = set(traffic) - set(self.deployments[name])
                if unknown or (traffic and sum(traffic.values()) != 100):
                    return (
                        400,
                        {"error": {"code": "BadArgument", "message": f"traffic {traffic} is invalid"}},
                        None,
                    )
                endpoint["properties"]["traffic"] = traffic
                return 202, None, self._async()
        if rest == ["listKeys"] and method == "POST":
            return 200, {"primaryKey": f"key-{name}", "secondaryKey": "k2"}, None
        if rest == ["deployments"] and method == "GET":
            return 200, {"value": list(self.deployments[name].values())}, None
        deployment = rest[1]
        existing = self.deployments[name].get(deployment)
        if method == "GET":
            return (
                (200, existing, None)
                if existing
                else (404, {"error": {"code": "NotFound", "message": "no deployment"}}, None)
            )
        if method == "PUT":
            if body["properties"]["environmentId"].split("/environments/")[1].replace(
                "/versions/", "/"
            ) not in {k.replace("/versions/", "/").split("environments/")[-1] for k in self.environments}:
                return 400, {"error": {"code": "BadArgument", "message": "environment not found"}}, None
            error, self.fail_next_deployment = self.fail_next_deployment, None
            if not error:
                self.deployments[name][deployment] = {"name": deployment, **body}
            return 201, {"name": deployment, **body}, self._async(error)
        if method == "DELETE":
            if endpoint["properties"]["traffic"].get(deployment, 0) > 0:
                return 400, {"error": {"code": "BadArgument", "message": "deployment has traffic"}}, None
            self.deployments[name].pop(deployment, None)
            return 202, None, self._async()
        return 404, {"error": {"message": f"{method} {path}"}}, None

    def score(self, name: str, auth: str, deployment: str | None, raw: bytes) -> tuple[int, Any]:
        if auth != f"Bearer key-{name}":
            return 401, {"message": "auth failed"}
        traffic = self.endpoints[name]["properties"]["traffic"]
        target = deployment or (max(traffic, key=lambda k: traffic[k]) if traffic else None)
        if target not in self.deployments[name]:
            return 404, {"message": f"deployment {target} not found"}
        self.scored_by.append(target)
        payload = json.loads(raw)
        rows = len(payload.get("dataframe_records") or payload.get("instances") or [])
        return 200, {"predictions": [0] * (rows - 1 if self.broken_predictions else rows)}

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
