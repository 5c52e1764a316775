"""
The chaos lifecycle's fault injectors (tests/harness/injectors.py), each against a real server or
process: the fault really happens (the client sees the error, the backend or process is gone, the
server comes back with its data) and its Injection record says what was hit.

Restarts run on servers of their own (the session's servers stay up for the other tests).
"""

from __future__ import annotations

import contextlib
import os
import random
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psycopg
import pytest
import requests

from tests.conftest import _serve
from tests.harness import servers
from tests.harness.injectors import (
    Injection,
    SupervisedProcess,
    kill_mongo_when,
    kill_on_request,
    mongo_write_match,
    restart_mongo,
    restart_postgres,
    seeded_http_rule,
    terminate_backend_when,
)
from tests.harness.proxy import Fault, Request, chain_rules, start_proxy

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def own_postgres() -> Iterator[servers.PostgresServer]:
    """A cluster of this module's own: restarting it disturbs no other test."""
    yield from _serve(servers.start_postgres)


@pytest.fixture(scope="module")
def own_mongo() -> Iterator[servers.MongoServer]:
    if os.environ.get("MONGO_URI"):
        pytest.skip("MONGO_URI: an external MongoDB cannot be killed and restarted by the tests")
    yield from _serve(servers.start_mongo)


def _backend_alive(pg: servers.PostgresServer, pid: int) -> bool:
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()[0] > 0


def _process_alive(pid: int) -> bool:
    """Running (a zombie nobody reaped yet counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


def _gone(pid: int, timeout: float = 5.0) -> bool:
    """The process is gone, or goes within ``timeout`` (a SIGKILLed child takes a moment)."""
    deadline = time.monotonic() + timeout
    while _process_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _stream_copy(conn: psycopg.Connection, table: str, *, seconds: float) -> None:
    """A COPY FROM STDIN that streams rows for ``seconds`` (unless the server drops it first)."""
    started = time.monotonic()
    with conn.cursor() as cur, cur.copy(f"COPY {table} (id, v) FROM STDIN") as copy:
        i = 0
        while time.monotonic() - started < seconds:
            copy.write_row((i, "x" * 200))
            i += 1
            if i % 500 == 0:
                time.sleep(0.01)


# --------------------------------------------------------------------------------------------------
# PostgreSQL: terminate_backend_when
# --------------------------------------------------------------------------------------------------
def test_terminate_backend_when_kills_a_copy_in_flight(postgres_server: servers.PostgresServer) -> None:
    table = f"inj_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres_server.dsn, autocommit=True) as admin:
        admin.execute(f"CREATE TABLE {table} (id int, v text)")
    injection, thread = terminate_backend_when(postgres_server, rf"COPY\s+{table}\b", timeout=15, after=0.3)
    conn = psycopg.connect(postgres_server.dsn)
    pid = conn.info.backend_pid
    with pytest.raises(psycopg.OperationalError, match=r"terminat|closed|connection|lost"):
        _stream_copy(conn, table, seconds=10)
    conn.close()
    thread.join(5)
    assert injection.fired and injection.kind == "pg_terminate"
    assert injection.target == rf"COPY\s+{table}\b"
    assert (
        f"backend pid {pid} " in injection.detail and f"COPY {table} (id, v) FROM STDIN" in injection.detail
    )
    assert not _backend_alive(postgres_server, pid)
    with psycopg.connect(postgres_server.dsn) as check:
        assert check.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0  # rolled back


def test_terminate_backend_when_waits_for_a_long_select(postgres_server: servers.PostgresServer) -> None:
    injection, thread = terminate_backend_when(
        postgres_server, r"pg_sleep\(\s*30\s*\)", timeout=15, after=0.5, kind="pg_terminate_extract"
    )
    with psycopg.connect(postgres_server.dsn) as conn:
        pid = conn.info.backend_pid
        started = time.time()
        with pytest.raises(psycopg.errors.AdminShutdown, match="terminating connection"):
            conn.execute("SELECT 42 AS answer, pg_sleep(30)")
        elapsed = time.time() - started
    thread.join(5)
    assert injection.fired and injection.kind == "pg_terminate_extract"
    assert injection.at is not None and injection.at - started >= 0.5
    assert 0.5 <= elapsed < 5
    assert (
        f"backend pid {pid} " in injection.detail and "SELECT 42 AS answer, pg_sleep(30)" in injection.detail
    )
    assert not _backend_alive(postgres_server, pid)


def test_terminate_backend_when_never_fires_without_a_match(postgres_server: servers.PostgresServer) -> None:
    # pg_stat_activity appears in the poller's own query: the injector is never its own victim
    injection, thread = terminate_backend_when(postgres_server, "pg_stat_activity|no_such_query", timeout=0.5)
    with psycopg.connect(postgres_server.dsn) as conn:
        conn.execute("SELECT pg_sleep(0.8)")  # a query that does not match keeps running
    thread.join(3)
    assert not thread.is_alive()
    assert injection == Injection("pg_terminate", "pg_stat_activity|no_such_query")
    assert not injection.fired


# --------------------------------------------------------------------------------------------------
# PostgreSQL: restart
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_postgres_restart_keeps_committed_data(own_postgres: servers.PostgresServer, mode: str) -> None:
    pg = own_postgres
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS kept")
        conn.execute("CREATE TABLE kept (id int PRIMARY KEY)")
        conn.execute("INSERT INTO kept SELECT generate_series(1, 1000)")
        before = conn.execute(
            "SELECT pg_postmaster_start_time(), current_setting('data_directory')"
        ).fetchone()
    held = psycopg.connect(pg.dsn)
    held.execute("SELECT 1")
    # committed a moment before the restart (asynchronous commit: still in the WAL buffers)
    with psycopg.connect(pg.dsn) as conn:
        conn.execute("INSERT INTO kept SELECT generate_series(1001, 1500)")
    port = pg.port
    # an injector polling across the restart reconnects and still fires afterwards
    injection, thread = terminate_backend_when(pg, r"pg_sleep\(20\)", timeout=20)
    started = time.time()
    restarted = restart_postgres(pg, mode)  # PostgresServer.restart, recorded
    took = time.time() - started
    with pytest.raises(psycopg.OperationalError):
        held.execute("SELECT 1")
    held.close()
    with psycopg.connect(pg.dsn) as conn:
        after = conn.execute(
            "SELECT pg_postmaster_start_time(), current_setting('data_directory')"
        ).fetchone()
        count, top = conn.execute("SELECT count(*), max(id) FROM kept").fetchone()
    assert pg.port == port and after[1] == before[1]  # same port, same data directory
    assert after[0] > before[0]  # a new postmaster
    assert (count, top) == (1500, 1500)
    assert took < 15
    assert restarted.kind == "pg_restart" and restarted.target == f"postgresql :{port}"
    assert restarted.at is not None and started <= restarted.at <= started + 1
    assert restarted.detail.startswith(f"pg_ctl restart -m {mode}: accepting connections again after ")
    with psycopg.connect(pg.dsn) as conn, pytest.raises(psycopg.errors.AdminShutdown):
        conn.execute("SELECT pg_sleep(20)")
    thread.join(5)
    assert injection.fired and "SELECT pg_sleep(20)" in injection.detail


def test_postgres_restart_refuses_an_unknown_mode(postgres_server: servers.PostgresServer) -> None:
    with pytest.raises(ValueError, match="mode='kill'"):
        postgres_server.restart("kill")
    copy = servers.PostgresServer(postgres_server.host, postgres_server.port, "u", "p", "db")  # no control
    with pytest.raises(RuntimeError, match="not started by start_postgres"):
        copy.restart()


# --------------------------------------------------------------------------------------------------
# MongoDB (secantusdb): restart and kill_mongo_when
# --------------------------------------------------------------------------------------------------
def test_mongo_restart_keeps_journaled_data(own_mongo: servers.MongoServer) -> None:
    import pymongo

    with pymongo.MongoClient(own_mongo.uri, journal=True) as client:
        customers = client.restart_test.customers
        customers.insert_many([{"_id": i, "plan": "basic"} for i in range(500)])
        customers.update_one({"_id": 7}, {"$set": {"plan": "pro"}})
    pid = own_mongo.pid
    restarted = restart_mongo(own_mongo)  # MongoServer.restart, recorded
    assert own_mongo.pid != pid and pid is not None and _gone(pid)
    assert restarted.fired and restarted.kind == "mongo_restart"
    assert restarted.detail.startswith(
        f"server pid {pid} SIGKILLed, pid {own_mongo.pid} answering ping after"
    )
    with pymongo.MongoClient(own_mongo.uri, serverSelectionTimeoutMS=5000) as client:
        customers = client.restart_test.customers
        assert customers.count_documents({}) == 500
        assert customers.find_one({"_id": 7}) == {"_id": 7, "plan": "pro"}


def test_kill_mongo_when_kills_the_server_mid_write(own_mongo: servers.MongoServer) -> None:
    import pymongo
    from pymongo.errors import ConnectionFailure

    injection, gate = kill_mongo_when(
        own_mongo, mongo_write_match("customers", ("update",)), timeout=15, down_for=0.3
    )
    try:
        pid = own_mongo.pid
        # retryWrites=False: pymongo would otherwise retry the write once the server is back
        options = {"retryWrites": False, "serverSelectionTimeoutMS": 5000, "journal": True}
        with pymongo.MongoClient(gate.uri, **options) as client:
            customers = client.kill_test.customers
            customers.insert_many([{"_id": i, "plan": "basic"} for i in range(100)])  # not matched: passes
            assert not injection.fired
            with pytest.raises(ConnectionFailure):
                customers.update_many({}, {"$set": {"plan": "pro"}})
        assert injection.fired and injection.kind == "mongo_kill"
        assert injection.target == "update on customers"
        assert injection.detail == f"server pid {pid} SIGKILLed while an update on customers was in flight"
        assert _gone(pid)
        assert gate.restarted.wait(15) and gate.restart_error is None
        assert own_mongo.pid != pid
        # after the restart a new client works, through the gate (now a plain pass-through) and direct
        for uri in (gate.uri, own_mongo.uri):
            with pymongo.MongoClient(uri, serverSelectionTimeoutMS=5000) as client:
                customers = client.kill_test.customers
                assert customers.count_documents({}) == 100
                customers.update_one({"_id": 1}, {"$set": {"seen": uri}})
        assert own_mongo.pid != pid  # one kill only
    finally:
        gate.stop()


# --------------------------------------------------------------------------------------------------
# HTTP: Fault.cut and seeded_http_rule through the fault proxy
# --------------------------------------------------------------------------------------------------
BODY = bytes(range(256)) * 80  # 20,480 bytes


@contextlib.contextmanager
def _upstream() -> Iterator[str]:
    """A small HTTP API: GET answers BODY, PUT and POST answer what they got."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _answer(self, body: bytes) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            self._answer(BODY)

        def do_PUT(self) -> None:
            self._answer(self.rfile.read(int(self.headers.get("Content-Length") or 0)))

        do_POST = do_PUT

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_fault_cut_sends_the_headers_and_part_of_the_body() -> None:
    import http.client

    rule = lambda r: Fault.cut(1000) if r.path == "/customers" else None  # noqa: E731
    with _upstream() as upstream, start_proxy(upstream, rule) as proxy:
        conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
        conn.request("GET", "/customers")
        response = conn.getresponse()
        assert response.status == 200 and response.getheader("Content-Length") == str(len(BODY))
        with pytest.raises(http.client.IncompleteRead) as cut:
            response.read()
        conn.close()
        assert cut.value.partial == BODY[:1000]
        with pytest.raises(requests.exceptions.ChunkedEncodingError, match="IncompleteRead"):
            requests.get(f"{proxy.endpoint_url}/customers", timeout=5)
        assert requests.get(f"{proxy.endpoint_url}/other", timeout=5).content == BODY  # untouched
        assert [(r.path, f.kind) for r, f in proxy.faults] == [("/customers", "cut")] * 2


def test_seeded_http_rule_fires_each_planned_fault_once() -> None:
    plan = [
        ("status", 503, "PUT", "/_delta_log/"),
        ("status", 429, "GET", "/customers"),
        ("reset", "GET", "/customers"),
        ("cut", 100, "GET", "/customers"),
        ("delay", 0.5, "GET", "/customers"),
    ]
    injections, rule = seeded_http_rule(random.Random(30), plan)
    with _upstream() as upstream, start_proxy(upstream, rule) as proxy:
        url = f"{proxy.endpoint_url}/customers?page=1"
        throttled = requests.get(url, timeout=5)
        assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "1"
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(url, timeout=5)
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            requests.get(url, timeout=5)
        started = time.monotonic()
        slow = requests.get(url, timeout=5)
        assert slow.content == BODY and time.monotonic() - started >= 0.5
        assert requests.get(url, timeout=5).content == BODY  # every planned fault is used up
        log = f"{proxy.endpoint_url}/lake/t/_delta_log/00000.json"
        assert requests.put(log, data=b"{}", timeout=5).status_code == 503
        assert requests.put(log, data=b"{}", timeout=5).content == b"{}"
    assert [(i.kind, i.target) for i in injections] == [
        ("http_503", "PUT */_delta_log/*"),
        ("http_429", "GET */customers*"),
        ("http_reset", "GET */customers*"),
        ("http_cut", "GET */customers*"),
        ("http_delay", "GET */customers*"),
    ]
    assert [i.detail for i in injections] == [
        "PUT /lake/t/_delta_log/00000.json (request 6)",
        *(f"GET /customers?page=1 (request {n})" for n in (1, 2, 3, 4)),
    ]
    assert all(i.fired for i in injections)
    assert [f.kind for _, f in proxy.faults] == ["status", "reset", "cut", "delay", "status"]


@pytest.mark.unit
def test_seeded_http_rule_is_the_same_plan_for_the_same_seed() -> None:
    plan = [("status", 500, "GET", "/a"), ("reset", "GET", "/a"), ("delay", 0.0, "POST", "/b")]
    requests_ = [Request(m, p, n) for n, (m, p) in enumerate([("GET", "/a"), ("POST", "/b")] * 10, 1)]

    def hits(seed: int) -> list[int]:
        _, rule = seeded_http_rule(random.Random(seed), plan, spread=4, prefix="s3")
        return [r.number for r in requests_ if rule(r) is not None]

    assert hits(5) == hits(5) and len(hits(5)) == 3
    injections, rule = seeded_http_rule(random.Random(5), plan, spread=4, prefix="s3")
    for request in requests_:
        rule(request)
    assert [i.kind for i in injections] == ["s3_500", "s3_reset", "s3_delay"]
    assert sorted(int(i.detail.split("request ")[1][:-1]) for i in injections) == hits(5)
    with pytest.raises(ValueError, match="status, reset, cut or delay"):
        seeded_http_rule(random.Random(0), [("kill", "GET", "/")])


def test_seeded_http_rule_in_front_of_s3(s3_server: servers.S3Server) -> None:
    import boto3
    from botocore.exceptions import IncompleteReadError, ResponseStreamingError

    key = f"chaos/{uuid.uuid4().hex}.bin"
    injections, rule = seeded_http_rule(
        random.Random(1), [("status", 503, "PUT", key), ("cut", 64, "GET", key)], prefix="s3"
    )
    with start_proxy(s3_server.endpoint_url, rule) as proxy:
        s3 = boto3.client(
            "s3",
            endpoint_url=proxy.endpoint_url,
            aws_access_key_id=s3_server.access_key,
            aws_secret_access_key=s3_server.secret_key,
            region_name=s3_server.region,
        )
        s3.put_object(Bucket=s3_server.bucket, Key=key, Body=BODY)  # botocore retries the 503
        with pytest.raises((IncompleteReadError, ResponseStreamingError)):
            s3.get_object(Bucket=s3_server.bucket, Key=key)["Body"].read()
        assert s3.get_object(Bucket=s3_server.bucket, Key=key)["Body"].read() == BODY
    assert [(i.kind, i.fired) for i in injections] == [("s3_503", True), ("s3_cut", True)]
    puts = [r for r in proxy.requests if r.method == "PUT"]
    assert len(puts) == 2 and injections[0].detail == f"PUT /{s3_server.bucket}/{key} (request 1)"


# --------------------------------------------------------------------------------------------------
# Processes: SupervisedProcess and kill_on_request
# --------------------------------------------------------------------------------------------------
# A model-server-like process: answers its pid on GET /ping and POST /reload, and starts a child (a
# worker of its own) that must not outlive it.
_SERVER = """
import json, os, subprocess, sys
from http.server import BaseHTTPRequestHandler, HTTPServer

child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _answer(self):
        if self.path == "/crash":
            os._exit(3)
        body = json.dumps({"pid": os.getpid(), "child": child.pid, "path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer


print("serving", os.getpid(), flush=True)
HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"""


@pytest.fixture
def model_server(tmp_path: Path) -> Iterator[SupervisedProcess]:
    script = tmp_path / "server.py"
    script.write_text(_SERVER)
    port = servers.free_port()
    process = SupervisedProcess(
        [sys.executable, str(script), str(port)],
        os.environ,
        tmp_path / "model-server.log",
        ready_url=f"http://127.0.0.1:{port}/ping",
        restart_delay=0.3,
    )
    process.port = port  # type: ignore[attr-defined]
    with process:
        yield process


def test_kill_on_request_kills_the_model_server_during_a_reload(model_server: SupervisedProcess) -> None:
    url = f"http://127.0.0.1:{model_server.port}"  # type: ignore[attr-defined]
    first = requests.get(f"{url}/ping", timeout=5).json()
    assert first["pid"] == model_server.pid and model_server.restarts == 0
    injection, rule = kill_on_request(model_server, "POST", "/reload", nth=2)
    throttled, planned = seeded_http_rule(random.Random(0), [("status", 429, "POST", "/invocations")])
    with start_proxy(url, chain_rules(rule, planned)) as proxy:
        assert requests.post(f"{proxy.endpoint_url}/invocations", timeout=5).status_code == 429
        assert requests.post(f"{proxy.endpoint_url}/reload", timeout=5).json()["pid"] == first["pid"]
        assert requests.get(f"{proxy.endpoint_url}/reload", timeout=5).status_code == 200  # not a POST
        failed = requests.post(f"{proxy.endpoint_url}/reload?model=churn", timeout=5)
        assert failed.status_code == 502 and "unreachable" in failed.text
        assert injection.fired and injection.kind == "model_server_kill"
        assert injection.target == "model-server: POST /reload"
        assert injection.detail == f"pid {first['pid']} SIGKILLed on POST /reload?model=churn (request 4)"
        assert _gone(first["pid"]) and _gone(first["child"])  # its group too
        assert model_server.wait_ready(10)
        second = requests.post(f"{proxy.endpoint_url}/reload", timeout=5).json()  # the 3rd: not killed
        assert requests.post(f"{proxy.endpoint_url}/invocations", timeout=5).json()["pid"] == second["pid"]
    assert second["pid"] == model_server.pid != first["pid"]
    assert model_server.restarts == 1 and model_server.pids == [first["pid"], second["pid"]]
    assert throttled[0].fired and throttled[0].detail == "POST /invocations (request 1)"
    log = model_server.log.read_text()
    assert f"serving {first['pid']}" in log and f"serving {second['pid']}" in log  # appended


def test_supervised_process_restarts_after_a_crash_and_stops_for_good(tmp_path: Path) -> None:
    script = tmp_path / "server.py"
    script.write_text(_SERVER)
    port = servers.free_port()
    url = f"http://127.0.0.1:{port}"
    process = SupervisedProcess(
        [sys.executable, str(script), str(port)], os.environ, tmp_path / "s.log", f"{url}/ping", 0.2
    )
    process.start()
    try:
        first = requests.get(f"{url}/ping", timeout=5).json()
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(f"{url}/crash", timeout=5)  # exits on its own (code 3)
        deadline = time.monotonic() + 10
        while process.restarts < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert process.wait_ready(10)
        second = requests.get(f"{url}/ping", timeout=5).json()
        assert process.restarts == 1 and second["pid"] == process.pid != first["pid"]
        killed = process.kill()
        assert killed == second["pid"] and _gone(killed)
        assert process.wait_ready(10) and process.restarts == 2
        third = requests.get(f"{url}/ping", timeout=5).json()
    finally:
        process.stop()
    time.sleep(0.6)  # three restart delays: nothing comes back
    assert process.restarts == 2 and len(process.pids) == 3
    for run in (first, second, third):
        assert _gone(run["pid"]) and _gone(run["child"])  # no orphans
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"{url}/ping", timeout=2)


def test_supervised_process_that_cannot_start_says_so(tmp_path: Path) -> None:
    process = SupervisedProcess(
        [sys.executable, "-c", "import sys; print('no model'); sys.exit(4)"],
        os.environ,
        tmp_path / "broken.log",
        ready_url=f"http://127.0.0.1:{servers.free_port()}/version",
    )
    with pytest.raises(
        RuntimeError, match=r"broken exited with code 4 before it was ready: see .*broken.log"
    ):
        process.start()
    assert process.restarts == 0 and (tmp_path / "broken.log").read_text() == "no model\n"
