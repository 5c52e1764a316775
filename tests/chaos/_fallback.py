"""
Stand-ins for tests/harness/injectors.py (helper "injectors", issue #30) with the same names, used
only while that module is not on this branch. Removed once it lands.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.harness.proxy import Fault, Request


@dataclass
class Injection:
    kind: str
    target: str
    at: float | None = None
    detail: str = ""

    @property
    def fired(self) -> bool:
        return self.at is not None


def _pg(pg: Any, dbname: str = "postgres") -> Any:
    import psycopg

    return psycopg.connect(
        host=pg.host, port=pg.port, user=pg.user, password=pg.password, dbname=dbname, autocommit=True
    )


def terminate_backend_when(
    pg: Any, pattern: str, *, timeout: float = 300.0, after: float = 0.0, kind: str = "pg_terminate"
) -> tuple[Injection, threading.Thread]:
    injection = Injection(kind, pattern)
    regex = re.compile(pattern, re.IGNORECASE)

    def watch() -> None:
        deadline = time.monotonic() + timeout
        with contextlib.suppress(Exception), _pg(pg) as conn:
            while time.monotonic() < deadline:
                rows = conn.execute(
                    "SELECT pid, query, extract(epoch FROM now() - query_start) FROM pg_stat_activity "
                    "WHERE state = 'active' AND pid <> pg_backend_pid()"
                ).fetchall()
                for pid, query, age in rows:
                    if query and regex.search(query) and float(age or 0) >= after:
                        conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
                        injection.at = time.time()
                        injection.detail = f"backend {pid}: {query[:80]}"
                        return
                time.sleep(0.02)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return injection, thread


def pg_restart(pg: Any, mode: str = "fast") -> None:
    with _pg(pg) as conn:
        data = conn.execute("SHOW data_directory").fetchone()[0]
    runner = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    from tests.harness.servers import postgres_bindir

    # -l: the new postmaster must not inherit our pipes (run() would wait for it to exit)
    log = os.path.join(os.path.dirname(data), "pg.log")
    subprocess.run(
        [*runner, f"{postgres_bindir()}/pg_ctl", "-D", data, "-l", log, "-m", mode, "-w", "restart"],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=120,
    )


def _listener_pid(port: int) -> int:
    import psutil

    for conn in psutil.net_connections("tcp"):
        if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN and conn.pid:
            return int(conn.pid)
    raise RuntimeError(f"no process listens on {port}")


def mongo_restart(mongo: Any) -> None:
    import psutil

    from tests.harness.servers import _mongo_ping

    proc = psutil.Process(_listener_pid(mongo.port))
    argv, cwd = proc.cmdline(), proc.cwd()
    proc.kill()
    proc.wait(10)
    _RELAUNCHED.append(subprocess.Popen(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    _mongo_ping(mongo.uri)


_RELAUNCHED: list[subprocess.Popen] = []


@atexit.register
def _stop_relaunched() -> None:
    for proc in _RELAUNCHED:
        proc.kill()


class SupervisedProcess:
    def __init__(
        self,
        argv: list[str],
        env: Mapping[str, str],
        log: Path,
        ready_url: str | None = None,
        restart_delay: float = 1.0,
    ) -> None:
        self.argv, self.env, self.log, self.ready_url, self.restart_delay = (
            argv,
            env,
            log,
            ready_url,
            restart_delay,
        )
        self.restarts = 0
        self.proc: subprocess.Popen | None = None
        self._stopping = False
        self._thread: threading.Thread | None = None

    def _spawn(self) -> None:
        with self.log.open("ab") as handle:
            self.proc = subprocess.Popen(
                self.argv, env=dict(self.env), stdout=handle, stderr=subprocess.STDOUT
            )

    def start(self) -> None:
        self._spawn()
        self._thread = threading.Thread(target=self._supervise, daemon=True)
        self._thread.start()
        if self.ready_url:
            import requests

            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                with contextlib.suppress(requests.RequestException):
                    requests.get(self.ready_url, timeout=1)
                    return
                time.sleep(0.2)

    def _supervise(self) -> None:
        while not self._stopping:
            assert self.proc is not None
            self.proc.wait()
            if self._stopping:
                return
            time.sleep(self.restart_delay)
            self.restarts += 1
            self._spawn()

    def kill(self) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGKILL)

    def stop(self) -> None:
        self._stopping = True
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def kill_on_request(
    target: SupervisedProcess, method: str, path_prefix: str, *, nth: int = 1, kind: str = "model_server_kill"
) -> tuple[Injection, Callable[[Request], Fault | None]]:
    injection = Injection(kind, f"{method} {path_prefix}")
    seen = [0]

    def rule(request: Request) -> Fault | None:
        if injection.fired or request.method != method or not request.path.startswith(path_prefix):
            return None
        seen[0] += 1
        if seen[0] == nth:
            target.kill()
            injection.at = time.time()
            injection.detail = f"{request.method} {request.path}"
            return Fault.reset()
        return None

    return injection, rule
