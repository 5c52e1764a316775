"""
A fault-injecting HTTP reverse proxy in front of a real server (moto's S3, an API...).

Every request is forwarded to the upstream unchanged unless a rule returns a fault for it:

- ``Fault.fail(500)``: answer that status (with an S3-style XML error body, its ``code``, and, if
  given, a ``Retry-After`` header) instead of forwarding;
- ``Fault.reset()``: close the connection without answering (a dropped connection);
- ``Fault.delay(seconds)``: forward after a pause;
- ``Fault.cut(after_bytes)``: forward, then send the upstream's status and headers (its full
  ``Content-Length``) but only ``after_bytes`` of its body, and close: a drop mid-body (a body no
  longer than ``after_bytes`` arrives whole; HEAD answers are never cut).

An upstream that cannot be reached (a server being restarted) gets a 502 answer, as a load balancer
gives.

Rules see the method, the path with query and the request count so far, so a test can say "fail the
upload of part 3, every time" or "fail the first two PUTs, then recover". The proxy only forwards to
127.0.0.1 and stops with its context manager.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse


@dataclass(frozen=True)
class Fault:
    kind: str
    status: int = 0
    seconds: float = 0.0
    after_bytes: int = 0
    retry_after: str | None = None
    code: str = "InternalError"  # the S3 error code of the answer's XML body

    @staticmethod
    def fail(status: int = 500, retry_after: str | None = None, code: str = "InternalError") -> Fault:
        return Fault("status", status=status, retry_after=retry_after, code=code)

    @staticmethod
    def reset() -> Fault:
        return Fault("reset")

    @staticmethod
    def delay(seconds: float) -> Fault:
        return Fault("delay", seconds=seconds)

    @staticmethod
    def cut(after_bytes: int) -> Fault:
        return Fault("cut", after_bytes=after_bytes)


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    number: int  # 1-based, over the proxy's life


Rule = Callable[[Request], Fault | None]


def chain_rules(*rules: Rule) -> Rule:
    """One rule from several: each is asked in order, the first fault wins (later ones are not asked)."""

    def rule(request: Request) -> Fault | None:
        for each in rules:
            if (fault := each(request)) is not None:
                return fault
        return None

    return rule


@dataclass
class Proxy:
    upstream: str
    port: int = 0
    rule: Rule | None = None
    requests: list[Request] = field(default_factory=list)
    faults: list[tuple[Request, Fault]] = field(default_factory=list)

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade"}


@contextlib.contextmanager
def start_proxy(upstream: str, rule: Rule | None = None) -> Iterator[Proxy]:
    target = urlparse(upstream)
    assert target.hostname in ("127.0.0.1", "localhost"), "the proxy only forwards to loopback"
    proxy = Proxy(upstream=upstream, rule=rule)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # quiet
            pass

        def _handle(self) -> None:
            with lock:
                request = Request(self.command, self.path, len(proxy.requests) + 1)
                proxy.requests.append(request)
            fault = proxy.rule(request) if proxy.rule else None
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            if fault is not None:
                proxy.faults.append((request, fault))
                if fault.kind == "reset":
                    with contextlib.suppress(OSError):
                        self.connection.setsockopt(
                            socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                        )
                        self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                if fault.kind == "status":
                    payload = (
                        f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{fault.code}</Code>'
                        "<Message>injected by the test proxy</Message></Error>"
                    ).encode()
                    self.send_response(fault.status)
                    if fault.retry_after is not None:
                        self.send_header("Retry-After", fault.retry_after)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                if fault.kind == "delay":
                    time.sleep(fault.seconds)
            headers = {
                k: v for k, v in self.headers.items() if k.lower() not in _HOP and k.lower() != "expect"
            }
            conn = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
            try:
                try:
                    conn.request(self.command, self.path, body=body, headers=headers)
                    response = conn.getresponse()
                    data = response.read()
                except (OSError, http.client.HTTPException) as err:
                    payload = f"upstream {upstream} unreachable: {err}".encode()
                    self.send_response(502)
                    self.send_header("Content-Type", "text/plain")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                self.send_response(response.status, response.reason)
                for key, value in response.getheaders():
                    # HEAD answers carry the object's length with no body: pass it through
                    if key.lower() not in _HOP and (
                        key.lower() != "content-length" or self.command == "HEAD"
                    ):
                        self.send_header(key, value)
                if self.command != "HEAD":
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if fault is not None and fault.kind == "cut" and self.command != "HEAD":
                    self.wfile.write(data[: fault.after_bytes])
                    self.wfile.flush()
                    with contextlib.suppress(OSError):
                        self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                elif self.command != "HEAD":
                    self.wfile.write(data)
            finally:
                conn.close()

        do_GET = do_PUT = do_POST = do_PATCH = do_DELETE = do_HEAD = _handle

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    proxy.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, name="fault-proxy", daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        server.shutdown()
        server.server_close()
