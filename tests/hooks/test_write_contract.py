"""
One rule for keys, empties and identifiers, on every sink against its real server: PostgreSQL (both
load engines), SQLite and MariaDB (the generic common-sql path) and MongoDB (in a transaction and
through the staging collection).

After every refused load the target is compared with what it held before (row count + checksum).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pytest

from airflow_provider_mlops.sinks.contract import EmptySourceError, KeyViolation, WriteContractError
from tests.conftest import set_connection


@dataclass
class Sink:
    """A target with the SQL mode names (Mongo's ``replace`` + partition stands for replace_partition)."""

    name: str
    write: Callable[..., dict[str, int]]
    rows: Callable[[], list[tuple[Any, ...]]]

    def snapshot(self) -> tuple[int, str]:
        rows = self.rows()
        return len(rows), hashlib.sha256(repr(rows).encode()).hexdigest()


def _sql_sink(name: str, hook: Any, table: str, read: Callable[[str], list[tuple[Any, ...]]]) -> Sink:
    def write(batches: Any, **kwargs: Any) -> dict[str, int]:
        return hook.write_batches(table, batches, **kwargs)

    return Sink(name, write, lambda: read(table))


def _postgres(engine: str) -> Callable[[pytest.FixtureRequest], Sink]:
    def make(request: pytest.FixtureRequest) -> Sink:
        import psycopg

        from airflow_provider_mlops.hooks.postgres import PostgresBatchHook

        server = request.getfixturevalue("postgres_server")
        hook = PostgresBatchHook(postgres_conn_id=request.getfixturevalue("pg_conn_id"), load_engine=engine)

        def read(table: str) -> list[tuple[Any, ...]]:
            with psycopg.connect(server.dsn) as conn:
                if conn.execute("SELECT to_regclass(%s)", [f'"{table}"']).fetchone()[0] is None:
                    return []
                return conn.execute(f'SELECT id, v, ds FROM "{table}" ORDER BY id').fetchall()

        return _sql_sink(f"postgres-{engine}", hook, f"w_{uuid.uuid4().hex[:8]}", read)

    return make


def _sqlite(request: pytest.FixtureRequest) -> Sink:
    import sqlite3

    from airflow_provider_mlops.hooks.sql import SqlBatchHook

    path = request.getfixturevalue("tmp_path") / f"w_{uuid.uuid4().hex[:8]}.db"
    hook = SqlBatchHook(set_connection(f"w_sqlite_{path.stem}", conn_type="sqlite", host=str(path)))

    def read(table: str) -> list[tuple[Any, ...]]:
        with sqlite3.connect(path) as conn:
            try:
                return conn.execute(f'SELECT id, v, ds FROM "{table}" ORDER BY id').fetchall()
            except sqlite3.OperationalError:
                return []

    return _sql_sink("sqlite", hook, "w", read)


def _mariadb(request: pytest.FixtureRequest) -> Sink:
    import pymysql

    from airflow_provider_mlops.hooks.sql import SqlBatchHook

    server = request.getfixturevalue("mariadb_server")
    hook = SqlBatchHook(request.getfixturevalue("mariadb_conn_id"))

    def read(table: str) -> list[tuple[Any, ...]]:
        conn = pymysql.connect(
            host=server.host,
            port=server.port,
            user=server.user,
            password=server.password,
            database=server.database,
        )
        try:
            with conn.cursor() as cur:
                try:
                    cur.execute(f"SELECT id, v, ds FROM `{table}` ORDER BY id")
                except pymysql.err.ProgrammingError:
                    return []
                return list(cur.fetchall())
        finally:
            conn.close()

    return _sql_sink("mariadb", hook, f"w_{uuid.uuid4().hex[:8]}", read)


def _mongo(transactions: bool) -> Callable[[pytest.FixtureRequest], Sink]:
    def make(request: pytest.FixtureRequest) -> Sink:
        from airflow_provider_mlops.hooks.mongo import MongoBatchHook

        hook = MongoBatchHook(mongo_conn_id=request.getfixturevalue("mongo_conn_id"))
        collection = f"w_{uuid.uuid4().hex[:8]}"

        def write(batches: Any, *, mode: str = "append", **kwargs: Any) -> dict[str, int]:
            # the same mode vocabulary as the SQL sinks
            return hook.write_batches(collection, batches, mode=mode, transactions=transactions, **kwargs)

        def read() -> list[tuple[Any, ...]]:
            docs = hook.client["mlops_test"][collection].find({}, {"_id": 0}, sort=[("id", 1)])
            return [(d.get("id"), d.get("v"), d.get("ds")) for d in docs]

        request.addfinalizer(hook.close)
        return Sink(f"mongo-{'tx' if transactions else 'staged'}", write, read)

    return make


SINKS: dict[str, Callable[[pytest.FixtureRequest], Sink]] = {
    "postgres-adbc": _postgres("adbc"),
    "postgres-copy": _postgres("copy"),
    "sqlite": _sqlite,
    "mariadb": _mariadb,
    "mongo-tx": _mongo(True),
    "mongo-staged": _mongo(False),
}


@pytest.fixture(params=sorted(SINKS))
def sink(request: pytest.FixtureRequest) -> Sink:
    return SINKS[request.param](request)


def _batch(ids: list[Any], ds: str = "d1", tag: str = "v") -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict(
        {"id": pa.array(ids, pa.int64()), "v": [f"{tag}{i}" for i in ids], "ds": [ds] * len(ids)}
    )


def _seed(sink: Sink) -> tuple[int, str]:
    sink.write(iter([_batch([1, 2, 3])]), mode="upsert", keys=["id"])
    before = sink.snapshot()
    assert before[0] == 3
    return before


def test_null_keys_are_refused_and_the_target_is_unchanged(sink: Sink) -> None:
    before = _seed(sink)
    # The NULLs are in the second and third batch: the first batch already streamed in.
    batches = [_batch([4, 5]), _batch([None, 6]), _batch([7, None])]
    with pytest.raises(KeyViolation, match=r"2 of 6 rows have a NULL .*row 2 \(id=None\); row 5 \(id=None\)"):
        sink.write(iter(batches), mode="upsert", keys=["id"])
    assert sink.snapshot() == before


def test_duplicate_keys_are_refused_and_the_target_is_unchanged(sink: Sink) -> None:
    before = _seed(sink)
    batches = [_batch([3, 4, 9]), _batch([9, 10]), _batch([3])]
    with pytest.raises(
        KeyViolation, match=r"2 upsert key value\(s\) \(id\) occur more than once .*id=3 at rows 0, 5"
    ):
        sink.write(iter(batches), mode="upsert", keys=["id"])
    assert sink.snapshot() == before


def test_reruns_converge_and_count_updates(sink: Sink) -> None:
    def load() -> dict[str, int]:
        return sink.write(iter([_batch([1, 2]), _batch([3])]), mode="upsert", keys=["id"])

    first = load()
    assert (first["rows"], first["inserted"], first["updated"]) == (3, 3, 0)
    after_one = sink.snapshot()
    for _ in range(2):
        again = load()
        assert (again["rows"], again["inserted"], again["updated"]) == (3, 0, 3), sink.name
    assert sink.snapshot() == after_one
    assert sink.rows() == [(1, "v1", "d1"), (2, "v2", "d1"), (3, "v3", "d1")]


@pytest.mark.parametrize("mode", ["replace", "replace_partition"])
@pytest.mark.parametrize("on_empty", ["skip", "replace", "fail"])
def test_an_empty_source_does_what_on_empty_says(sink: Sink, mode: str, on_empty: str) -> None:
    sink.write(iter([_batch([1, 2], ds="d1"), _batch([3], ds="d2")]), mode="upsert", keys=["id"])
    before = sink.snapshot()
    empty = iter([_batch([]), _batch([])])
    partition = {"ds": "d1"} if mode == "replace_partition" else None
    if on_empty == "fail":
        with pytest.raises(EmptySourceError, match="no rows"):
            sink.write(empty, mode=mode, partition=partition, on_empty=on_empty)
        assert sink.snapshot() == before
        return
    counts = sink.write(empty, mode=mode, partition=partition, on_empty=on_empty)
    assert counts["rows"] == 0
    if on_empty == "skip":
        assert sink.snapshot() == before
        assert counts["deleted"] == 0
    else:
        expected = [] if mode == "replace" else [(3, "v3", "d2")]
        assert sink.rows() == expected
        assert counts["deleted"] == 3 - len(expected)


def test_a_failure_mid_replace_leaves_the_old_rows(sink: Sink) -> None:
    before = _seed(sink)

    def failing() -> Iterator[pa.RecordBatch]:
        yield _batch([10, 11])
        yield _batch([12, 13])
        raise OSError("source died between batches")

    for mode, partition in (("replace", None), ("replace_partition", {"ds": "d1"})):
        with pytest.raises(Exception, match="source died"):
            sink.write(failing(), mode=mode, partition=partition)
        assert sink.snapshot() == before, mode


def test_misspelled_key_and_partition_columns_are_refused_before_any_write(sink: Sink) -> None:
    before = _seed(sink)
    with pytest.raises(WriteContractError, match=r"'ID' \(key\) are not in the data"):
        sink.write(iter([_batch([7])]), mode="upsert", keys=["ID"])
    with pytest.raises(WriteContractError, match=r"'dss' \(partition\) are not in the data"):
        sink.write(iter([_batch([7])]), mode="replace_partition", partition={"dss": "d1"})
    assert sink.snapshot() == before


def test_rows_outside_the_partition_are_refused_and_the_target_is_unchanged(sink: Sink) -> None:
    # A re-run of the same replace would not delete a row of another partition: it would pile up.
    before = _seed(sink)
    with pytest.raises(
        WriteContractError, match=r"replace_partition: 3 rows were written but 2 rows .*'ds': 'd1'"
    ):
        sink.write(
            iter([_batch([7, 8]), _batch([9], ds="d2")]), mode="replace_partition", partition={"ds": "d1"}
        )
    assert sink.snapshot() == before


@pytest.mark.parametrize("sink_name", ["postgres-adbc", "postgres-copy", "sqlite", "mariadb"])
def test_target_columns_the_table_lacks_are_refused_before_any_write(
    sink_name: str, request: pytest.FixtureRequest
) -> None:
    sink = SINKS[sink_name](request)
    before = _seed(sink)
    extra = _batch([1, 7]).append_column("vv", pa.array(["x", "y"]))
    with pytest.raises(WriteContractError, match=r"\['vv'\] do not exist in table"):
        sink.write(iter([extra]), mode="upsert", keys=["id"])
    assert sink.snapshot() == before


def test_the_mongo_replace_survives_the_server_dying_between_batches(request: pytest.FixtureRequest) -> None:
    """A private secantusdb, killed while a replace streams in: restarted, it holds the old documents."""
    import os
    import shutil
    import signal
    import subprocess
    import sys
    import tempfile

    import pymongo

    from airflow_provider_mlops.hooks.mongo import MongoBatchHook
    from tests.harness.servers import free_port, wait_port

    exe = shutil.which("secantusd-py") or os.path.join(os.path.dirname(sys.executable), "secantusd-py")
    if not os.path.exists(exe):
        pytest.skip("secantusd-py not installed")
    storage = tempfile.mkdtemp(prefix="mlops-mongo-kill-")
    request.addfinalizer(lambda: shutil.rmtree(storage, ignore_errors=True))
    port = free_port()
    cmd = [
        exe,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--storage-path",
        storage,
        "--log-level",
        "WARNING",
    ]

    def start() -> subprocess.Popen:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        request.addfinalizer(lambda: proc.poll() is None and proc.kill())
        wait_port(port, proc=proc)
        return proc

    proc = start()
    conn_id = set_connection(
        "mongo_kill",
        conn_type="mlops-mongo",
        host="127.0.0.1",
        port=port,
        schema="kill",
        extra={"directConnection": "true", "serverSelectionTimeoutMS": "3000", "retryWrites": "false"},
    )
    hook = MongoBatchHook(mongo_conn_id=conn_id)
    n = 20_000
    hook.write_batches("c", iter([_batch(list(range(n)))]), mode="replace")

    def dying() -> Iterator[pa.RecordBatch]:
        yield _batch(list(range(n, n + 5_000)))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        yield _batch(list(range(n + 5_000, n + 10_000)))

    # whatever the driver says when its server is gone
    with pytest.raises(Exception):
        hook.write_batches("c", dying(), mode="replace", chunk_size=1_000)
    hook.close()
    start()
    with pymongo.MongoClient(f"mongodb://127.0.0.1:{port}/?directConnection=true") as client:
        ids = sorted(d["id"] for d in client["kill"]["c"].find({}, {"_id": 0, "id": 1}))
    assert ids == list(range(n)), "the old documents, all of them and only them"
