"""
Fault injectors for the chaos lifecycle (issue #30): each one injects a real fault into a real server
or process at a chosen moment and records it as an :class:`Injection` (what the verdict table lists).

- :func:`terminate_backend_when`: a PostgreSQL backend running a matching query is terminated
  (``pg_terminate_backend``), as a failover, an OOM kill or an administrator does;
- :meth:`PostgresServer.restart <tests.harness.servers.PostgresServer.restart>` and
  :meth:`MongoServer.restart <tests.harness.servers.MongoServer.restart>`: a server restart;
- :func:`kill_mongo_when`: the MongoDB server is SIGKILLed while a chosen write is in flight to it;
- :func:`seeded_http_rule`: planned HTTP faults (5xx, 429 with ``Retry-After``, resets, drops
  mid-body, slow answers) for the fault proxy of tests/harness/proxy.py;
- :class:`SupervisedProcess` and :func:`kill_on_request`: a process restarted when it dies (what
  systemd or Kubernetes does for the model server) and killed on a chosen request (a reload).

Every injector is one-shot and thread-safe; ``Injection.at`` is set last, so a fired injection has
its ``detail``.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import signal
import struct
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from airflow_provider_mlops.utils.processes import stop_process_group
from tests.harness.proxy import Fault, Request, Rule
from tests.harness.servers import MongoServer, PostgresServer
from tests.harness.tcp import TcpGate

# Connections of the injectors themselves carry this application_name: never their own victims.
INJECTOR_APP = "mlops-injector"


@dataclass
class Injection:
    """One fault, as the verdict table reports it."""

    kind: str  # e.g. "pg_terminate", "pg_restart", "s3_5xx", "http_429", ...
    target: str  # what it hit: the query pattern / path / process name
    at: float | None = None  # time.time() when it fired; None = never fired
    detail: str = ""  # e.g. the SQL text head and backend pid, the request path

    @property
    def fired(self) -> bool:
        return self.at is not None

    def fire(self, detail: str) -> None:
        """Record that the fault happened now (``detail`` first, so a fired injection has it)."""
        self.detail = detail
        self.at = time.time()


def _head(text: str, limit: int = 120) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


# --------------------------------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------------------------------
def terminate_backend_when(
    pg: PostgresServer,
    pattern: str,
    *,
    timeout: float = 300.0,
    after: float = 0.0,
    kind: str = "pg_terminate",
    database: str | None = None,
    cancel: threading.Event | None = None,
) -> tuple[Injection, threading.Thread]:
    """
    Background thread: poll ``pg_stat_activity`` (every ~20 ms, its own connection, excluding itself
    and other injectors) for an *active* client query matching the regex ``pattern``
    (case-insensitive) that has run for >= ``after`` seconds; ``pg_terminate_backend`` it once (and
    wait up to 5 s until that backend is gone); fill the Injection with the backend's pid and the
    SQL text's head. Gives up after ``timeout`` (``fired`` stays False). The poller reconnects if the
    server restarts meanwhile.

    :param pg: the cluster (its DSN's user must be allowed to signal the victim: a superuser here).
    :param pattern: a Python regex searched in ``pg_stat_activity.query``, e.g. ``r"COPY .*customers"``.
    :param timeout: seconds to wait for a matching query.
    :param after: the query must have been running this long (e.g. to hit a COPY mid-stream).
    :param kind: the Injection's kind.
    :param database: only queries on this database (default: any).
    :param cancel: set it to stop waiting early (the thread then ends unfired).
    :returns: the Injection (filled when it fires) and the started thread (join it to wait).
    """
    import psycopg

    regex = re.compile(pattern, re.IGNORECASE)
    injection = Injection(kind, pattern)
    stop = cancel or threading.Event()
    sql = (
        "SELECT pid, query, query_start, extract(epoch FROM clock_timestamp() - query_start)::float8 "
        "FROM pg_stat_activity WHERE state = 'active' AND backend_type = 'client backend' "
        "AND pid <> pg_backend_pid() AND application_name <> %s AND (%s::text IS NULL OR datname = %s)"
    )

    def run() -> None:
        deadline = time.monotonic() + timeout
        conn: psycopg.Connection | None = None
        try:
            while time.monotonic() < deadline and not stop.is_set():
                try:
                    if conn is None:
                        conn = psycopg.connect(
                            pg.dsn, autocommit=True, application_name=INJECTOR_APP, connect_timeout=2
                        )
                    for pid, query, started, age in conn.execute(sql, (INJECTOR_APP, database, database)):
                        if age < after or not regex.search(query or ""):
                            continue
                        # Only if it still runs that query (not the next one of the same session).
                        row = conn.execute(
                            "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity "
                            "WHERE pid = %s AND state = 'active' AND query_start = %s",
                            (pid, started),
                        ).fetchone()
                        if row and row[0]:
                            injection.fire(f"backend pid {pid} after {age:.2f}s: {_head(query)}")
                            return
                except psycopg.OperationalError:  # the server restarts: poll again once it is back
                    if conn is not None:
                        with contextlib.suppress(Exception):
                            conn.close()
                    conn = None
                except psycopg.Error as err:  # e.g. not allowed to signal that backend: say so, unfired
                    injection.detail = f"gave up: {type(err).__name__}: {err}"
                    return
                stop.wait(0.02)
        finally:
            if conn is not None:
                conn.close()

    thread = threading.Thread(target=run, name=f"{kind}:{pattern[:30]}", daemon=True)
    thread.start()
    return injection, thread


def restart_postgres(pg: PostgresServer, mode: str = "fast", *, kind: str = "pg_restart") -> Injection:
    """:meth:`PostgresServer.restart` recorded as an Injection (``at``: when the stop began)."""
    injection = Injection(kind, f"postgresql :{pg.port}")
    started, clock = time.time(), time.monotonic()
    pg.restart(mode)
    injection.fire(
        f"pg_ctl restart -m {mode}: accepting connections again after {time.monotonic() - clock:.1f}s"
    )
    injection.at = started
    return injection


# --------------------------------------------------------------------------------------------------
# MongoDB
# --------------------------------------------------------------------------------------------------
def restart_mongo(mongo: MongoServer, down_for: float = 0.0, *, kind: str = "mongo_restart") -> Injection:
    """:meth:`MongoServer.restart` recorded as an Injection (``at``: when the server was killed)."""
    injection = Injection(kind, f"mongodb :{mongo.port}")
    started, clock, pid = time.time(), time.monotonic(), mongo.pid
    mongo.restart(down_for)
    took = time.monotonic() - clock
    injection.fire(f"server pid {pid} SIGKILLed, pid {mongo.pid} answering ping after {took:.1f}s")
    injection.at = started
    return injection


_OP_MSG = 2013
MONGO_WRITES = ("insert", "update", "delete", "findAndModify")


def mongo_command(chunk: bytes) -> tuple[str, str] | None:
    """
    The command name and its string argument (the collection) of an OP_MSG at the start of
    ``chunk``, e.g. ``("update", "customers")``; None for anything else (handshakes, other opcodes).
    """
    if len(chunk) < 27 or struct.unpack_from("<i", chunk, 12)[0] != _OP_MSG or chunk[20] != 0:
        return None
    offset = 21 + 4  # section kind 0, then the body document: int32 size, first element
    if chunk[offset] != 0x02:  # the command's value is a string (the collection)
        return None
    end = chunk.find(b"\x00", offset + 1)
    if end < 0 or end + 5 > len(chunk):
        return None
    name = chunk[offset + 1 : end].decode("utf-8", "replace")
    size = struct.unpack_from("<i", chunk, end + 1)[0]
    value = chunk[end + 5 : end + 5 + size - 1].decode("utf-8", "replace")
    return name, value


def mongo_write_match(collection: str, commands: tuple[str, ...] = MONGO_WRITES) -> Callable[[bytes], bool]:
    """A :func:`kill_mongo_when` matcher: a write command (insert, update...) on ``collection``."""

    def match(chunk: bytes) -> bool:
        command = mongo_command(chunk)
        return command is not None and command[0] in commands and command[1] == collection

    match.__name__ = f"{'/'.join(commands)} on {collection}"
    return match


@dataclass
class MongoKillGate(TcpGate):
    """The :class:`TcpGate` of :func:`kill_mongo_when`; ``restarted`` is set once the server is back."""

    mongo: MongoServer | None = None
    restarted: threading.Event = field(default_factory=threading.Event)
    restart_error: BaseException | None = None

    @property
    def uri(self) -> str:
        """The server's URI through the gate (what the code under test should connect to)."""
        assert self.mongo is not None
        return self.mongo.uri.replace(f":{self.mongo.port}/", f":{self.port}/", 1)


def kill_mongo_when(
    mongo: MongoServer,
    match: Callable[[bytes], bool],
    *,
    timeout: float = 300.0,
    down_for: float = 0.5,
    kind: str = "mongo_kill",
) -> tuple[Injection, MongoKillGate]:
    """
    A TCP pass-through in front of ``mongo`` (started and armed): the first client chunk that matches
    (e.g. :func:`mongo_write_match` ``("customers")``) is forwarded, then the server is SIGKILLed
    mid-write and that client connection closed; ``down_for`` seconds later the server starts again
    (same port and storage), and ``gate.restarted`` is set. Point the code under test at
    ``gate.port`` (or ``gate.uri``); after ``timeout`` seconds without a match the gate only forwards.
    Call ``gate.stop()`` when done.

    pymongo retries a failed write once by default (``retryWrites``): if the server is back within
    its server selection timeout, the retry may succeed and the caller sees no error at all.
    secantusdb keeps its data across the restart, but what it acknowledged in the last moment before
    the kill (a committed transaction even with ``j: true``) may be lost: see
    :class:`~tests.harness.servers.MongoServer`.

    :returns: the Injection (filled with the killed pid and the command) and the gate.
    """
    injection = Injection(kind, getattr(match, "__name__", repr(match)))
    gate = MongoKillGate(mongo.port, match, mongo=mongo)

    def restart() -> None:
        try:
            time.sleep(down_for)
            mongo.start_again()
        except BaseException as err:  # reported on the gate; the run's verdict shows it
            gate.restart_error = err
        finally:
            gate.restarted.set()

    def on_match(chunk: bytes) -> None:
        command = mongo_command(chunk)
        what = (
            f"{'an' if command[0][0] in 'aeiou' else 'a'} {command[0]} on {command[1]}"
            if command
            else f"a {len(chunk)}-byte message"
        )
        # Recorded just before the kill: the client sees its connection drop as the server dies.
        injection.fire(f"server pid {mongo.pid} SIGKILLed while {what} was in flight")
        mongo.kill()
        gate.release()
        threading.Thread(target=restart, name=f"{kind}-restart", daemon=True).start()

    gate.on_match = on_match
    gate.start()
    gate.arm()
    timer = threading.Timer(timeout, gate.disarm)
    timer.daemon = True
    timer.start()
    return injection, gate


# --------------------------------------------------------------------------------------------------
# HTTP (rules for tests/harness/proxy.py)
# --------------------------------------------------------------------------------------------------
def seeded_http_rule(
    rng: random.Random, faults: list[tuple[str, ...]], *, spread: int = 1, prefix: str = "http"
) -> tuple[list[Injection], Rule]:
    """
    A proxy Rule that applies a list of planned faults, each once:

    - ``("status", 503, "PUT", "/_delta_log/")``: a PUT whose path contains ``/_delta_log/`` gets 503
      (a 429 comes with ``Retry-After: 1``);
    - ``("reset", "GET", "/customers")``: the connection is closed without an answer;
    - ``("cut", 200, "GET", "/customers")``: the real answer with its full ``Content-Length`` but
      only its first 200 body bytes, then the connection is closed (a drop mid-body);
    - ``("delay", 3.0, "GET", "/customers")``: the real answer, 3 s late.

    Each fault hits the n-th matching request, n drawn from ``rng`` in [1, ``spread``] (so the first
    one with the default ``spread=1``; the same seed gives the same plan). One request gets at most
    one fault: a fault due on a request another fault took hits the next matching one.

    :param prefix: the Injections' kinds are ``{prefix}_{status}``, ``{prefix}_reset``,
        ``{prefix}_cut``, ``{prefix}_delay`` (e.g. ``prefix="s3"`` for the S3 proxy).
    :returns: one Injection per planned fault (in order) and the rule.
    """
    plan: list[tuple[Fault, str, str, Injection]] = []
    for spec in faults:
        name, *args = spec
        if name == "status":
            code, method, part = int(args[0]), str(args[1]), str(args[2])
            fault = Fault.fail(code, retry_after="1" if code == 429 else None)
            kind = f"{prefix}_{code}"
        elif name == "reset":
            method, part = str(args[0]), str(args[1])
            fault, kind = Fault.reset(), f"{prefix}_reset"
        elif name == "cut":
            fault, kind = Fault.cut(int(args[0])), f"{prefix}_cut"
            method, part = str(args[1]), str(args[2])
        elif name == "delay":
            fault, kind = Fault.delay(float(args[0])), f"{prefix}_delay"
            method, part = str(args[1]), str(args[2])
        else:
            raise ValueError(f"planned fault {spec!r}: the kind must be status, reset, cut or delay")
        plan.append((fault, method.upper(), part, Injection(kind, f"{method.upper()} *{part}*")))
    remaining = [rng.randint(1, max(1, spread)) for _ in plan]
    lock = threading.Lock()

    def rule(request: Request) -> Fault | None:
        with lock:
            chosen: Fault | None = None
            for index, (fault, method, part, injection) in enumerate(plan):
                if injection.fired or request.method != method or part not in request.path:
                    continue
                remaining[index] = max(0, remaining[index] - 1)
                if remaining[index] == 0 and chosen is None:
                    chosen = fault
                    injection.fire(f"{request.method} {request.path} (request {request.number})")
            return chosen

    return [injection for *_, injection in plan], rule


# --------------------------------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------------------------------
def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the process group ``proc`` leads (whatever of it is still there)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


class SupervisedProcess:
    """
    A process kept running, as systemd or Kubernetes keeps the model server: when it dies (killed
    or crashed), a supervisor thread starts it again after ``restart_delay`` seconds and counts it
    in ``restarts``. Each run is its own process group (``start_new_session``): :meth:`kill`,
    :meth:`stop` and a death of the process reach whatever it started too (no orphans, as with
    systemd's ``KillMode=control-group``). :meth:`stop` ends it for good.

    :param argv: the command.
    :param env: its whole environment.
    :param log: stdout and stderr of every run, appended.
    :param ready_url: polled after each start until it answers with a status below 500 (for the
        model server, ``/version``: ``/ping`` answers 503 until a model is loaded); ``ready`` is set
        then. None: ready once started.
    :param restart_delay: seconds between a death and the next start.
    :param ready_timeout: seconds :meth:`start` waits for readiness before it fails.
    :param name: the name Injections use (default: the log file's stem).
    """

    def __init__(
        self,
        argv: list[str],
        env: Mapping[str, str],
        log: Path,
        ready_url: str | None = None,
        restart_delay: float = 1.0,
        *,
        ready_timeout: float = 60.0,
        name: str | None = None,
    ) -> None:
        self.argv = list(argv)
        self.env = dict(env)
        self.log = Path(log)
        self.ready_url = ready_url
        self.restart_delay = restart_delay
        self.ready_timeout = ready_timeout
        self.name = name or self.log.stem
        self.restarts = 0
        self.pids: list[int] = []  # every run's pid, in order
        self.ready = threading.Event()
        self._proc: subprocess.Popen | None = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def __enter__(self) -> SupervisedProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Start it, wait until it is ready (or fail), then supervise it."""
        if self._thread is not None:
            raise RuntimeError(f"{self.name} is already started")
        with self._lock:
            self._spawn()
        try:
            if not self._wait_ready(self.ready_timeout):
                assert self._proc is not None
                if (code := self._proc.poll()) is not None:
                    raise RuntimeError(
                        f"{self.name} exited with code {code} before it was ready: see {self.log}"
                    )
                raise TimeoutError(f"{self.name} not ready at {self.ready_url} after {self.ready_timeout}s")
        except BaseException:
            self.stop()
            raise
        self._thread = threading.Thread(target=self._supervise, name=f"supervise-{self.name}", daemon=True)
        self._thread.start()

    def kill(self) -> int:
        """SIGKILL the running process (and its group), as a crash would; returns once it is gone.
        The supervisor starts it again. Returns the killed pid."""
        with self._lock:
            proc = self._proc
        if proc is None:
            raise RuntimeError(f"{self.name} is not started")
        self.ready.clear()
        _kill_group(proc)
        deadline = time.monotonic() + 10
        while proc.poll() is None and time.monotonic() < deadline:  # reaped by wait() or here
            time.sleep(0.01)
        return proc.pid

    def stop(self) -> None:
        """End it for good: no more restarts; SIGTERM to its group, SIGKILL after 10 s."""
        self._stopping.set()
        with self._lock:
            proc = self._proc
        if proc is not None:
            stop_process_group(proc, grace=10)
            _kill_group(proc)  # children that outlived a clean exit of the leader
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=15)
        self.ready.clear()

    def wait_ready(self, timeout: float = 30.0) -> bool:
        """Wait until a run is ready (after a restart: the new one)."""
        return self.ready.wait(timeout)

    def _spawn(self) -> None:
        with open(self.log, "ab") as handle:  # the child keeps its own copy of the descriptor
            self._proc = subprocess.Popen(
                self.argv, env=self.env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.pids.append(self._proc.pid)

    def _wait_ready(self, timeout: float) -> bool:
        proc = self._proc
        assert proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self._stopping.is_set():
            if proc.poll() is not None:
                return False
            if self.ready_url is None:
                self.ready.set()
                return True
            try:
                with urllib.request.urlopen(self.ready_url, timeout=1):
                    pass
            except urllib.error.HTTPError as err:
                if err.code < 500:
                    self.ready.set()
                    return True
            except OSError:
                pass
            else:
                self.ready.set()
                return True
            time.sleep(0.05)
        return False

    def _supervise(self) -> None:
        while True:
            proc = self._proc
            assert proc is not None
            proc.wait()
            self.ready.clear()
            _kill_group(proc)  # what it started dies with it (systemd's KillMode=control-group)
            if self._stopping.wait(self.restart_delay):
                return
            with self._lock:
                if self._stopping.is_set():
                    return
                self._spawn()
                self.restarts += 1
            self._wait_ready(self.ready_timeout)  # not ready (it died again): the loop restarts it


def kill_on_request(
    target: SupervisedProcess,
    method: str,
    path_prefix: str,
    *,
    nth: int = 1,
    kind: str = "model_server_kill",
) -> tuple[Injection, Rule]:
    """
    A proxy Rule (tests/harness/proxy.py) that, on the ``nth`` request with this method whose path
    starts with ``path_prefix``, SIGKILLs ``target`` before forwarding: the request then reaches a
    dead server and the client gets the proxy's 502. The supervisor brings the process back with a
    new pid after its ``restart_delay``. Records the Injection (killed pid, request).
    """
    injection = Injection(kind, f"{target.name}: {method.upper()} {path_prefix}")
    lock = threading.Lock()
    seen = [0]

    def rule(request: Request) -> Fault | None:
        with lock:
            if request.method != method.upper() or not request.path.startswith(path_prefix):
                return None
            seen[0] += 1
            if seen[0] != nth:
                return None
        pid = target.kill()
        injection.fire(f"pid {pid} SIGKILLed on {request.method} {request.path} (request {request.number})")
        return None

    return injection, rule
