"""
A test-only shim in front of moto's server for what moto 5.2.5's SageMaker lacks.

moto implements CreateModel / CreateEndpointConfig / CreateEndpoint / Describe* (endpoints are
InService at once) but answers ``UpdateEndpoint`` with HTTP 500, and a second ``CreateEndpoint`` on an
existing name silently replaces it. This proxy forwards every request to moto except:

* ``UpdateEndpoint``: carried out as moto's overwriting ``CreateEndpoint`` with the new config (so
  DescribeEndpoint then reports it); the next ``updating_polls`` DescribeEndpoint answers say
  ``Updating``, as SageMaker does while it brings up the new fleet;
* with ``fail_next_update`` set, an ``UpdateEndpoint`` is accepted but the endpoint stays on its old
  config, and DescribeEndpoint carries ``FailureReason``: what SageMaker reports after a failed
  blue/green update (it rolls back to the old fleet).

It records each SageMaker operation name in ``calls``. It depends on moto's overwrite behaviour,
hence the exact moto pin in the test dependency group.

Role sessions: moto's STS honours ``DurationSeconds`` in the ``Expiration`` it returns but accepts any
key afterwards. STS requests sent through this proxy are relayed and every ``AssumeRole`` answer is
recorded (``sessions``: key id -> its credentials and expiry); a SageMaker request signed with a
recorded key after its expiry gets ``ExpiredTokenException`` (HTTP 400), as AWS answers, and lands in
``refused``. ``signed_with`` lists (operation, key id) of every SageMaker request.
"""

from __future__ import annotations

import json
import re
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import requests


class SageMakerShim:
    def __init__(self, moto_url: str, access_key: str, secret_key: str, region: str = "us-east-1") -> None:
        self.moto_url = moto_url
        self.calls: list[str] = []
        self.updating_polls = 0
        self.fail_next_update: str | None = None
        self.failure_reason: dict[str, str] = {}
        self._pending_updating: dict[str, int] = {}
        self.sessions: dict[str, dict[str, Any]] = {}
        self.signed_with: list[tuple[str, str]] = []
        self.refused: list[tuple[str, str]] = []
        self._moto = boto3.client(
            "sagemaker",
            endpoint_url=moto_url,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            region_name=region,
        )
        shim = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _relay(self, body: bytes) -> tuple[int, dict[str, str], bytes]:
                headers = {
                    k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")
                }
                answer = requests.request(
                    self.command, shim.moto_url + self.path, data=body, headers=headers, timeout=30
                )
                keep = {
                    k: v
                    for k, v in answer.headers.items()
                    if k.lower() in ("content-type", "x-amzn-requestid")
                }
                return answer.status_code, keep, answer.content

            def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _handle(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                target = self.headers.get("X-Amz-Target", "")
                operation = target.split(".", 1)[1] if target.startswith("SageMaker.") else None
                if operation:
                    shim.calls.append(operation)
                    key = re.search(r"Credential=([^/]+)/", self.headers.get("Authorization", ""))
                    key_id = key.group(1) if key else ""
                    shim.signed_with.append((operation, key_id))
                    session = shim.sessions.get(key_id)
                    if session and datetime.now(UTC) >= session["expiration"]:
                        shim.refused.append((operation, key_id))
                        error = {
                            "__type": "com.amazon.coral.service#ExpiredTokenException",
                            "message": "The security token included in the request is expired",
                        }
                        self._send(
                            400, {"Content-Type": "application/x-amz-json-1.1"}, json.dumps(error).encode()
                        )
                        return
                if operation == "UpdateEndpoint":
                    self._send(
                        200, {"Content-Type": "application/x-amz-json-1.1"}, shim.update(json.loads(body))
                    )
                    return
                status, headers, out = self._relay(body)
                if b"Action=AssumeRole" in body and status == 200:
                    shim.record_session(out)
                if operation == "DescribeEndpoint" and status == 200:
                    out = shim.patch_describe(json.loads(body)["EndpointName"], out)
                self._send(status, headers, out)

            do_GET = do_POST = do_PUT = do_DELETE = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def record_session(self, answer: bytes) -> None:
        """Remember an AssumeRole answer's key and expiry (moto answers STS in XML)."""
        text = answer.decode()

        def field(name: str) -> str:
            return re.search(rf"<{name}>([^<]+)</{name}>", text).group(1)  # type: ignore[union-attr]

        expiration = datetime.fromisoformat(field("Expiration").replace("Z", "+00:00"))
        self.sessions[field("AccessKeyId")] = {
            "secret": field("SecretAccessKey"),
            "token": field("SessionToken"),
            "expiration": expiration if expiration.tzinfo else expiration.replace(tzinfo=UTC),
            "issued": datetime.now(UTC),
        }

    def update(self, request: dict[str, Any]) -> bytes:
        name, config = request["EndpointName"], request["EndpointConfigName"]
        if self.fail_next_update:
            self.failure_reason[name] = self.fail_next_update
            self.fail_next_update = None
            arn = self._moto.describe_endpoint(EndpointName=name)["EndpointArn"]
        else:
            self.failure_reason.pop(name, None)
            arn = self._moto.create_endpoint(EndpointName=name, EndpointConfigName=config)["EndpointArn"]
        self._pending_updating[name] = self.updating_polls
        return json.dumps({"EndpointArn": arn}).encode()

    def patch_describe(self, name: str, raw: bytes) -> bytes:
        described = json.loads(raw)
        if self._pending_updating.get(name):
            self._pending_updating[name] -= 1
            described["EndpointStatus"] = "Updating"
        elif name in self.failure_reason:
            described["FailureReason"] = self.failure_reason[name]
        return json.dumps(described).encode()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
