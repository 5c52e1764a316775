"""
The demo's customer-profile API: a real HTTP server on 127.0.0.1 with bearer auth and cursor
pagination, serving the simulated profile updates of a time window.

``GET /api/v1/customers?updated_since=ISO&updated_before=ISO&cursor=N&limit=M`` returns
``{"data": [...], "next_cursor": N | null}``; ``GET /api/v1/health`` returns ``{"status": "ok"}``.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

from airflow_provider_mlops.demo.simulate import World, profile_updates

DEMO_TOKEN = "demo-token-not-a-secret"  # noqa: S105 - the demo API's fixed token, local only


def _parse(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


class ProfileApi:
    """Serves ``profile_updates`` for the days that overlap the requested window."""

    def __init__(self, world: World, *, token: str = DEMO_TOKEN, days: int = 60) -> None:
        self.world = world
        self.token = token
        self.days = days
        self.requests = 0
        self.alerts: list[Any] = []

    @lru_cache(maxsize=64)  # noqa: B019 - one instance per demo run
    def _day(self, index: int) -> list[dict[str, Any]]:
        return profile_updates(self.world, index)

    def records(self, since: dt.datetime | None, before: dt.datetime | None) -> list[dict[str, Any]]:
        out = []
        for index in range(self.days):
            day_start = dt.datetime.combine(self.world.day(index), dt.time(0), tzinfo=dt.UTC)
            if before is not None and day_start >= before:
                break
            if since is not None and day_start + dt.timedelta(days=1) <= since:
                continue
            for row in self._day(index):
                updated = dt.datetime.fromisoformat(row["updated_at"])
                if (since is None or updated >= since) and (before is None or updated < before):
                    out.append(row)
        return out

    def handle(self, path: str, query: dict[str, list[str]], headers: Any) -> tuple[int, Any]:
        self.requests += 1
        if path == "/api/v1/alerts":
            return 200, self.alerts
        if path == "/api/v1/health":
            return 200, {"status": "ok"}
        if headers.get("Authorization") != f"Bearer {self.token}":
            return 401, {"error": "missing or wrong bearer token"}
        if path != "/api/v1/customers":
            return 404, {"error": f"no route {path}"}
        try:
            since = _parse(query.get("updated_since", [None])[0])
            before = _parse(query.get("updated_before", [None])[0])
            cursor = int(query.get("cursor", ["0"])[0])
            limit = min(int(query.get("limit", ["500"])[0]), 1000)
        except ValueError as err:
            return 400, {"error": str(err)}
        rows = self.records(since, before)
        page = rows[cursor : cursor + limit]
        nxt = cursor + limit if cursor + limit < len(rows) else None
        return 200, {"data": page, "next_cursor": nxt}


def serve(api: ProfileApi, host: str = "127.0.0.1", port: int = 0) -> tuple[ThreadingHTTPServer, str]:
    """Start the API in a daemon thread; returns the server and its base URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parsed = urlparse(self.path)
            status, body = api.handle(parsed.path, parse_qs(parsed.query), self.headers)
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_POST(self) -> None:
            # The demo's alert inbox: notifiers post here (POST /api/v1/alerts).
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            status = 404
            if urlparse(self.path).path == "/api/v1/alerts":
                api.alerts.append(json.loads(body or b"null"))
                status = 200
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer((host, port), Handler)
    thread = threading.Thread(target=server.serve_forever, name="mlops-demo-api", daemon=True)
    thread.start()
    return server, f"http://{host}:{server.server_address[1]}/api/v1"
