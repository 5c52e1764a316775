"""
The chaos lifecycle's fault injectors (tests/harness/injectors.py), each against a real server or
process: the fault really happens (the client sees the error, the backend or process is gone, the
server comes back with its data) and its Injection record says what was hit.

Restarts run on servers of their own (the session's servers stay up for the other tests).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.conftest import _serve
from tests.harness import servers
from tests.harness.injectors import (
    Injection,
    kill_mongo_when,
    mongo_write_match,
    terminate_backend_when,
)

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
    started = time.monotonic()
    pg.restart(mode)
    took = time.monotonic() - started
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
    own_mongo.restart()
    assert own_mongo.pid != pid and pid is not None and not _process_alive(pid)
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
        assert not _process_alive(pid)
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
