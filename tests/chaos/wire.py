"""
A fault point on a database wire: a TCP pass-through on 127.0.0.1 in front of the data PostgreSQL
cluster (source, warehouse, MLflow's store) or MongoDB. When armed with a matcher, the first client
chunk that matches (``COPY ... FROM STDIN`` into ``activity``, an update of ``customers``) is
forwarded, then the connection is frozen in both directions (the client hears nothing more), the
action runs (terminate that very backend, found by its client port in ``pg_stat_activity``; restart
the cluster; SIGKILL and restart MongoDB) and the client's connection is closed: the statement dies
in flight, at a known moment, however fast it would have been.

It generalises :class:`tests.harness.tcp.TcpGate` / :func:`tests.harness.injectors.kill_mongo_when`
(one pattern, one shot per gate) to a gate that stays in front of the server for the whole run and
is armed day by day, with several patterns at once.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.harness.tcp import accept_loop, close_both

Matcher = Callable[[bytes], bool]
# action(upstream_local_port) -> a detail for the report (the port names a PostgreSQL backend)
Action = Callable[[int], str]


@dataclass
class _Armed:
    match: Matcher
    action: Action
    injection: Any  # tests.harness.injectors.Injection


@dataclass
class WireGate:
    upstream_port: int
    port: int = 0
    armed: list[_Armed] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _listener: socket.socket | None = None

    def arm(self, match: Matcher, action: Action, injection: Any) -> None:
        with self._lock:
            self.armed.append(_Armed(match, action, injection))

    def disarm(self) -> None:
        with self._lock:
            self.armed.clear()

    def start(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True, name="wire-gate").start()

    def stop(self) -> None:
        if self._listener is not None:
            self._listener.close()

    def _accept(self) -> None:
        assert self._listener is not None

        def relay(client: socket.socket, upstream: socket.socket) -> None:
            frozen = threading.Event()
            backend_port = upstream.getsockname()[1]  # the backend's client_port in pg_stat_activity
            for src, dst, from_client in ((client, upstream, True), (upstream, client, False)):
                threading.Thread(
                    target=self._pump, args=(src, dst, from_client, frozen, backend_port), daemon=True
                ).start()

        accept_loop(self._listener, self.upstream_port, relay)

    def _take(self, chunk: bytes) -> _Armed | None:
        if (log := os.environ.get("MLOPS_CHAOS_GATE_LOG")) and b"COPY" in chunk:
            with open(log, "ab") as handle:
                handle.write(chunk[:300] + b"\n")
        with self._lock:
            for armed in self.armed:
                if armed.match(chunk):
                    self.armed.remove(armed)
                    return armed
        return None

    def _pump(
        self,
        src: socket.socket,
        dst: socket.socket,
        from_client: bool,
        frozen: threading.Event,
        backend_port: int,
    ) -> None:
        try:
            while chunk := src.recv(65536):
                if frozen.is_set():
                    return  # the other direction acts, then closes both sockets
                hit = self._take(chunk) if from_client and self.armed else None
                if hit is not None:
                    frozen.set()  # before the server can answer: the client hears nothing more
                dst.sendall(chunk)
                if hit is not None:
                    time.sleep(0.2)  # the server is executing it now
                    hit.injection.detail = hit.action(backend_port)
                    hit.injection.at = time.time()
                    break
        except OSError:
            pass
        close_both(src, dst)


def terminate_client(pg: Any, client_port: int) -> str:
    """pg_terminate_backend of the backend serving ``client_port``; its query head for the report."""
    import psycopg

    with psycopg.connect(
        host=pg.host, port=pg.port, user=pg.user, password=pg.password, dbname="postgres", autocommit=True
    ) as conn:
        row = conn.execute(
            "SELECT pid, state, left(query, 60) FROM pg_stat_activity WHERE client_port = %s", (client_port,)
        ).fetchone()
        if row is None:
            return f"no backend for client port {client_port}"
        conn.execute("SELECT pg_terminate_backend(%s)", (row[0],))
        return f"backend {row[0]} ({row[1]}): {row[2]}"
