"""
A local fake of the Vertex AI REST API (v1) endpoints VertexAITarget uses, as documented
(https://cloud.google.com/vertex-ai/docs/reference/rest): ``models:upload``, ``models`` and
``endpoints`` lists with a ``display_name`` filter, endpoint create / get / patch (``traffic_split``),
``:deployModel``, ``:undeployModel``, ``:rawPredict`` and long-running operations (not done on
the first read); plus an OAuth2 token endpoint, so google-auth's service-account JWT flow runs for
real against it. Bearer tokens are checked.

Predictions are simulated: ``:rawPredict`` answers one prediction a row from whichever deployed
model has the traffic (``broken_predictions`` answers one fewer). No container runs here.
"""

from __future__ import annotations

import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse


class FakeVertex:
    def __init__(self, project: str, region: str) -> None:
        self.prefix = f"projects/{project}/locations/{region}"
        self.models: dict[str, dict[str, Any]] = {}
        self.endpoints: dict[str, dict[str, Any]] = {}
        self.operations: dict[str, dict[str, Any]] = {}
        self.tokens: set[str] = set()
        self.token_requests = 0
        self.broken_predictions = False
        self.fail_deploy: str | None = None
        self.calls: list[str] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                url = urlparse(self.path)
                if url.path == "/token":
                    fake.token_requests += 1
                    token = uuid.uuid4().hex
                    fake.tokens.add(token)
                    self._send(200, {"access_token": token, "expires_in": 3600, "token_type": "Bearer"})
                    return
                auth = self.headers.get("Authorization", "")
                if not auth.startswith("Bearer ") or auth[7:] not in fake.tokens:
                    self._send(
                        401,
                        {
                            "error": {
                                "code": 401,
                                "message": "Request had invalid authentication credentials.",
                            }
                        },
                    )
                    return
                body = json.loads(raw) if raw else None
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                fake.calls.append(f"{self.command} {url.path}")
                status, answer = fake.api(self.command, url.path.removeprefix("/v1/"), body, query)
                self._send(status, answer)

            do_GET = do_POST = do_PATCH = do_DELETE = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def _operation(self, response: dict[str, Any] | None, error: str | None = None) -> dict[str, Any]:
        name = f"{self.prefix}/operations/{uuid.uuid4().int % 10**12}"
        final = {"name": name, "done": True}
        final.update({"error": {"code": 9, "message": error}} if error else {"response": response or {}})
        self.operations[name] = {"reads": 0, "final": final}
        return {"name": name, "done": False}

    def api(self, method: str, path: str, body: Any, query: dict[str, str]) -> tuple[int, Any]:
        if method == "GET" and path in self.operations:
            op = self.operations[path]
            op["reads"] += 1
            return 200, op["final"] if op["reads"] > 1 else {"name": path, "done": False}
        if method == "POST" and path == f"{self.prefix}/models:upload":
            name = f"{self.prefix}/models/{uuid.uuid4().int % 10**12}"
            self.models[name] = {"name": name, **body["model"]}
            return 200, self._operation({"model": name})
        for collection, store in (("models", self.models), ("endpoints", self.endpoints)):
            if method == "GET" and path == f"{self.prefix}/{collection}":
                wanted = query.get("filter", "").removeprefix("display_name=").strip('"')
                return 200, {
                    collection: [v for v in store.values() if not wanted or v["displayName"] == wanted]
                }
        if method == "GET" and path in self.models:
            return 200, self.models[path]
        if method == "POST" and path == f"{self.prefix}/endpoints":
            name = f"{self.prefix}/endpoints/{uuid.uuid4().int % 10**12}"
            self.endpoints[name] = {
                "name": name,
                "displayName": body["displayName"],
                "deployedModels": [],
                "trafficSplit": {},
            }
            return 200, self._operation({"name": name})
        base, _, verb = path.partition(":")
        endpoint = self.endpoints.get(base)
        if endpoint is None:
            return 404, {"error": {"code": 404, "message": f"{path} not found"}}
        if method == "GET" and not verb:
            return 200, endpoint
        if method == "PATCH" and not verb:
            assert query.get("updateMask") == "traffic_split"
            split = {k: int(v) for k, v in body["trafficSplit"].items()}
            ids = {d["id"] for d in endpoint["deployedModels"]}
            if set(split) != ids or sum(split.values()) != 100:
                return 400, {
                    "error": {
                        "code": 400,
                        "message": f"traffic split {split} must cover {ids} and sum to 100",
                    }
                }
            endpoint["trafficSplit"] = split
            return 200, endpoint
        if method == "POST" and verb == "deployModel":
            if self.fail_deploy:
                message, self.fail_deploy = self.fail_deploy, None
                return 200, self._operation(None, error=message)
            deployed = {**body["deployedModel"], "id": str(uuid.uuid4().int % 10**10)}
            split = {k: int(v) for k, v in body["trafficSplit"].items()}
            new = {("" if k == "0" else k): v for k, v in split.items()}
            endpoint["deployedModels"].append(deployed)
            traffic = {d["id"]: 0 for d in endpoint["deployedModels"]}
            traffic.update({(deployed["id"] if k == "" else k): v for k, v in new.items()})
            endpoint["trafficSplit"] = traffic
            return 200, self._operation({"deployedModel": {"id": deployed["id"]}})
        if method == "POST" and verb == "undeployModel":
            gone = body["deployedModelId"]
            if endpoint["trafficSplit"].get(gone, 0) > 0 and len(endpoint["deployedModels"]) > 1:
                return 400, {"error": {"code": 400, "message": "cannot undeploy a model that has traffic"}}
            endpoint["deployedModels"] = [d for d in endpoint["deployedModels"] if d["id"] != gone]
            endpoint["trafficSplit"].pop(gone, None)
            return 200, self._operation({})
        if method == "POST" and verb == "rawPredict":
            if not any(v > 0 for v in endpoint["trafficSplit"].values()):
                return 400, {"error": {"code": 400, "message": "no deployed model has traffic"}}
            rows = len(body.get("dataframe_records") or body.get("instances") or [])
            return 200, {"predictions": [1] * (rows - 1 if self.broken_predictions else rows)}
        return 404, {"error": {"code": 404, "message": f"{method} {path}"}}

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
