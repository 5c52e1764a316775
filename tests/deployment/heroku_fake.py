"""
A local fake of the Heroku Platform API endpoints HerokuTarget uses, as documented
(https://devcenter.heroku.com/articles/platform-api-reference): sources, builds, releases (with the
``Range`` header), config-vars, formation and apps, behind ``Authorization: Bearer`` and the
``Accept: application/vnd.heroku+json; version=3`` header. Builds succeed when the tarball has a
``web`` Procfile entry and a requirements.txt (and no requirement containing ``does-not-exist``).

The app's dynos are simulated, not run: ``<url>/web/<app>/version`` reports the model the config
vars name (503 once after each release, as a restarting dyno; always 503 at 0 dynos) and
``/invocations`` answers one prediction a row. That the server really serves a model from those
variables is tested on the process itself (tests/serving/test_container.py).
"""

from __future__ import annotations

import io
import json
import tarfile
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeHeroku:
    def __init__(self, api_key: str, app: str) -> None:
        self.api_key = api_key
        self.app = app
        self.blobs: dict[str, bytes] = {}
        self.builds: list[dict[str, Any]] = []
        self.releases: list[dict[str, Any]] = [
            {"id": str(uuid.uuid4()), "version": 1, "status": "succeeded", "description": "Initial release"}
        ]
        self.config: dict[str, str] = {}
        self.quantity = 0
        self.restarting = False
        self.broken_predictions = False
        self.calls: list[str] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: Any, content_type: str = "application/json") -> None:
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                path = self.path.split("?")[0]
                if path.startswith("/blobs/") or path.startswith("/web/") or path.startswith("/output/"):
                    status, body = fake.public(self.command, path, raw)
                    self._send(
                        status,
                        body,
                        "application/octet-stream" if path.startswith("/blobs/") else "application/json",
                    )
                    return
                if self.headers.get("Authorization") != f"Bearer {fake.api_key}":
                    self._send(401, {"id": "unauthorized", "message": "Invalid credentials provided."})
                    return
                if "version=3" not in (self.headers.get("Accept") or ""):
                    self._send(400, {"id": "bad_request", "message": "Accept header must name version=3"})
                    return
                fake.calls.append(f"{self.command} {path}")
                body = json.loads(raw) if raw else None
                status, answer = fake.api(self.command, path, body, self.headers.get("Range"))
                self._send(status, answer)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    # -- the API --------------------------------------------------------------------------------
    def _release(self, description: str) -> dict[str, Any]:
        release = {
            "id": str(uuid.uuid4()),
            "version": self.releases[-1]["version"] + 1,
            "status": "pending",
            "description": description,
        }
        self.releases.append(release)
        self.restarting = True
        return release

    def api(self, method: str, path: str, body: Any, range_header: str | None) -> tuple[int, Any]:
        base = f"/apps/{self.app}"
        if method == "POST" and path == "/sources":
            blob = uuid.uuid4().hex
            return 201, {
                "source_blob": {"get_url": f"{self.url}/blobs/{blob}", "put_url": f"{self.url}/blobs/{blob}"}
            }
        if not path.startswith(base):
            return 404, {"id": "not_found", "message": "Couldn't find that app."}
        rest = path[len(base) :]
        if method == "GET" and rest == "":
            return 200, {"name": self.app, "web_url": f"{self.url}/web/{self.app}/"}
        if method == "POST" and rest == "/builds":
            url = body["source_blob"]["url"]
            build = {
                "id": str(uuid.uuid4()),
                "status": "pending",
                "source_blob": {"url": url, "version": body["source_blob"].get("version")},
                "output_stream_url": None,
                "release": None,
            }
            build["_verdict"] = self._judge(self.blobs.get(url.rsplit("/", 1)[1], b""), build["id"])
            self.builds.append(build)
            return 201, _public(build)
        if method == "GET" and rest == "/builds":
            return 200, [_public(b) for b in self.builds]
        if method == "GET" and rest.startswith("/builds/"):
            build = next(b for b in self.builds if b["id"] == rest.split("/")[2])
            if build["status"] == "pending":  # the first poll sees it pending, the next finished
                build["status"], build["output_stream_url"] = "__next__", f"{self.url}/output/{build['id']}"
                return 200, {**_public(build), "status": "pending"}
            if build["status"] == "__next__":
                ok, _ = build["_verdict"]
                build["status"] = "succeeded" if ok else "failed"
                if ok:
                    build["release"] = {"id": self._release("Deploy")["id"]}
            return 200, _public(build)
        if method == "GET" and rest == "/config-vars":
            return 200, dict(self.config)
        if method == "PATCH" and rest == "/config-vars":
            for key, value in body.items():
                if value is None:
                    self.config.pop(key, None)
                else:
                    self.config[key] = str(value)
            self._release(f"Set {', '.join(sorted(body))} config vars")
            return 200, dict(self.config)
        if method == "GET" and rest == "/releases":
            ordered = list(self.releases)
            if range_header and "order=desc" in range_header:
                ordered.reverse()
            if range_header and "max=" in range_header:
                ordered = ordered[: int(range_header.split("max=")[1].split(";")[0].split(",")[0])]
            return 206, ordered
        if method == "GET" and rest.startswith("/releases/"):
            key = rest.split("/")[2]
            release = next(r for r in self.releases if str(r["version"]) == key or r["id"] == key)
            answer = dict(release)
            if release["status"] == "pending":
                release["status"] = "succeeded"
            return 200, answer
        if method == "PATCH" and rest == "/formation/web":
            self.quantity = int(body["quantity"])
            return 200, {"type": "web", "quantity": self.quantity}
        return 404, {"id": "not_found", "message": f"{method} {path}"}

    def _judge(self, tarball: bytes, build_id: str) -> tuple[bool, str]:
        try:
            with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as tar:
                files = {m.name: tar.extractfile(m).read().decode() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]
        except tarfile.TarError as err:
            return False, f"not a tarball: {err}"
        self.last_source = files
        if not files.get("Procfile", "").startswith("web:"):
            return False, "-----> No web process type in the Procfile"
        if "requirements.txt" not in files:
            return False, "-----> App not compatible with buildpack: no requirements.txt"
        if "does-not-exist" in files["requirements.txt"]:
            return False, "ERROR: No matching distribution found for does-not-exist\n-----> Build failed"
        return True, "-----> Python app detected\n-----> Build succeeded!"

    # -- what is not the API: blob storage, build output, the app's dynos -------------------------
    def public(self, method: str, path: str, raw: bytes) -> tuple[int, Any]:
        if path.startswith("/blobs/"):
            key = path.split("/")[2]
            if method == "PUT":
                self.blobs[key] = raw
                return 200, b""
            return (200, self.blobs[key]) if key in self.blobs else (404, b"")
        if path.startswith("/output/"):
            build = next(b for b in self.builds if b["id"] == path.split("/")[2])
            return 200, build["_verdict"][1].encode()
        endpoint = path.split("/", 3)[3] if path.count("/") >= 3 else ""
        if self.quantity == 0 or self.restarting:
            self.restarting = False
            return 503, {"error": "H10 app crashed / restarting"}
        if endpoint == "version":
            return 200, {
                "version": self.config.get("MLOPS_SERVE_VERSION"),
                "sha256": self.config.get("MLOPS_SERVE_SHA256"),
            }
        if endpoint == "invocations" and method == "POST":
            payload = json.loads(raw)
            rows = len(payload.get("dataframe_records") or payload.get("instances") or [])
            return 200, {"predictions": [0] * (rows - 1 if self.broken_predictions else rows)}
        return 404, {"error": "no route"}

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _public(build: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in build.items() if not k.startswith("_")}
