"""
A fault-injecting HTTP JSON API on 127.0.0.1, scripted per request.

:class:`FaultServer` serves ``records`` page by page (``GET /records?offset=O&limit=L`` answers
``{"data": [...], "next": O+L or null}``) and, for each request, first consumes the next fault
scripted for its page (the ``offset``): drop the connection after N bytes of the body (with a
``Content-Length`` or chunked), answer a status (429 with ``Retry-After``, 500...), answer an HTML
page with status 200, answer late, send JSON cut short with a consistent ``Content-Length`` (what a
proxy that gave up half-way sends), or answer 401 echoing the request's credentials (as some servers
do). A page with no fault left is served clean, so a client that retries the page whole gets exactly
the clean run's records.

Every request is recorded (:attr:`FaultServer.served`) with the fault it got.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

FaultKind = Literal["drop", "chunked_drop", "status", "html", "slow", "truncated_json", "echo_401"]


@dataclass(frozen=True, kw_only=True)
class Fault:
    """
    What one request gets instead of a clean answer.

    :param kind: see the module docstring.
    :param after_bytes: for drops and cut JSON: how much of the body is sent.
    :param status: for ``status``: the HTTP status.
    :param retry_after: for ``status``: the ``Retry-After`` header, if any.
    :param seconds: for ``slow``: the delay before the (clean) answer.
    :param sticky: applies to every request of its page, never used up (a persistent fault).
    """

    kind: FaultKind
    after_bytes: int = 0
    status: int = 500
    retry_after: str | None = None
    seconds: float = 0.0
    sticky: bool = False


def drop(after_bytes: int) -> Fault:
    """Send the headers (full ``Content-Length``) and ``after_bytes`` of the body, then close."""
    return Fault(kind="drop", after_bytes=after_bytes)


def chunked_drop(after_bytes: int) -> Fault:
    """Send a chunked body's first ``after_bytes`` and close before the last chunk."""
    return Fault(kind="chunked_drop", after_bytes=after_bytes)


def status(code: int, retry_after: str | None = None, *, sticky: bool = False) -> Fault:
    """Answer ``code`` (with ``Retry-After`` when given)."""
    return Fault(kind="status", status=code, retry_after=retry_after, sticky=sticky)


def html() -> Fault:
    """Answer an HTML error page with status 200."""
    return Fault(kind="html")


def slow(seconds: float) -> Fault:
    """Wait ``seconds`` before answering (clean)."""
    return Fault(kind="slow", seconds=seconds)


def truncated_json(after_bytes: int) -> Fault:
    """Answer 200 with only ``after_bytes`` of the JSON body, and a ``Content-Length`` that matches."""
    return Fault(kind="truncated_json", after_bytes=after_bytes)


def echo_401(*, sticky: bool = True) -> Fault:
    """Answer 401 with a body that echoes the request's headers and query string."""
    return Fault(kind="echo_401", status=401, sticky=sticky)


@dataclass
class Served:
    """One request as the server saw it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    fault: Fault | None = None


@dataclass
class FaultServer:
    """
    The scripted API; use :func:`start_fault_server` to run it.

    :param records: what ``/records`` pages through.
    :param default_limit: the page size when the request gives no ``limit``.
    """

    records: Sequence[Any]
    default_limit: int = 10
    served: list[Served] = field(default_factory=list)
    _script: dict[str, list[Fault]] = field(default_factory=lambda: defaultdict(list))
    _lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def script(self, offset: int | str, *faults: Fault) -> None:
        """Faults for the requests of the page at ``offset``, in order (``"*"``: every page)."""
        with self._lock:
            self._script[str(offset)].extend(faults)

    def faults_left(self) -> int:
        """Scripted one-shot faults not yet consumed."""
        with self._lock:
            return sum(1 for faults in self._script.values() for f in faults if not f.sticky)

    def _next_fault(self, key: str) -> Fault | None:
        with self._lock:
            for name in (key, "*"):
                queue = self._script.get(name)
                if queue:
                    fault = queue[0]
                    if not fault.sticky:
                        queue.pop(0)
                    return fault
        return None

    def page(self, query: dict[str, str]) -> bytes:
        """The clean body of a page."""
        offset = int(query.get("offset") or 0)
        limit = int(query.get("limit") or self.default_limit)
        end = offset + limit
        rows = list(self.records[offset:end])
        return json.dumps({"data": rows, "next": end if end < len(self.records) else None}).encode()

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        length = int(handler.headers.get("Content-Length") or 0)
        if length:
            handler.rfile.read(length)
        served = Served(handler.command, parts.path, query, dict(handler.headers.items()))
        served.fault = fault = self._next_fault(query.get("offset") or "0")
        with self._lock:
            self.served.append(served)
        if parts.path.rstrip("/") not in ("/records", ""):
            return _answer(handler, 404, b'{"error": "no such endpoint"}')
        body = self.page(query)
        if fault is None:
            return _answer(handler, 200, body)
        if fault.kind == "slow":
            time.sleep(fault.seconds)
            return _answer(handler, 200, body)
        if fault.kind == "status":
            extra = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
            return _answer(handler, fault.status, b'{"error": "try later"}', extra)
        if fault.kind == "html":
            page = b"<!DOCTYPE html><html><body><h1>Service temporarily unavailable</h1></body></html>"
            return _answer(handler, 200, page, content_type="text/html; charset=utf-8")
        if fault.kind == "echo_401":
            echo = json.dumps({"error": "invalid credentials", "headers": served.headers, "query": query})
            return _answer(handler, 401, echo.encode())
        if fault.kind == "truncated_json":
            return _answer(handler, 200, body[: fault.after_bytes])
        # Drops: the status line and headers promise the whole body; part of it comes, then EOF.
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        if fault.kind == "chunked_drop":
            handler.send_header("Transfer-Encoding", "chunked")
            handler.end_headers()
            chunk = body[: fault.after_bytes]
            if chunk:  # (a zero-length chunk would be the terminator: a complete, empty body)
                handler.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        else:
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body[: fault.after_bytes])
        _hang_up(handler)
        return None


def _answer(
    handler: BaseHTTPRequestHandler,
    code: int,
    body: bytes,
    headers: dict[str, str] | None = None,
    *,
    content_type: str = "application/json",
) -> None:
    handler.send_response(code)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body)))
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(body)


def _hang_up(handler: BaseHTTPRequestHandler) -> None:
    handler.wfile.flush()
    handler.close_connection = True
    with contextlib.suppress(OSError):
        handler.connection.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real APIs: a drop must also retire the connection
    server: _Server

    def do_GET(self) -> None:
        try:
            self.server.api.handle(self)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up first (timeouts)
            self.close_connection = True

    do_POST = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the tests read the client's output, not the server's."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    api: FaultServer


@contextlib.contextmanager
def start_fault_server(
    records: Sequence[Any], *, default_limit: int = 10, setup: Callable[[FaultServer], None] | None = None
) -> Iterator[FaultServer]:
    """Run a :class:`FaultServer` on a free port of 127.0.0.1 for the ``with`` block."""
    api = FaultServer(records=records, default_limit=default_limit)
    if setup is not None:
        setup(api)
    server = _Server(("127.0.0.1", 0), _Handler)
    server.api = api
    api.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, name="fault-server", daemon=True)
    thread.start()
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
