"""
Real faults on a real PostgreSQL: the server terminates the backend in the middle of a COPY (what a
failover, an OOM kill or an administrator does). After each, the target table and every dataset a
reader can see equal the previous committed state (row count and content checksum), and a retry
converges to exactly one clean run.
"""

from __future__ import annotations

import hashlib
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pyarrow as pa
import pytest

from airflow_provider_mlops.hooks.postgres import PostgresBatchHook
from airflow_provider_mlops.hooks.s3 import ObjectStorageHook
from tests.harness.servers import PostgresServer


def _checksum(server: PostgresServer, sql: str) -> tuple[int, str]:
    with psycopg.connect(server.dsn) as conn:
        rows = conn.execute(sql).fetchall()
    return len(rows), hashlib.sha256(repr(rows).encode()).hexdigest()


def _terminate_copy(server: PostgresServer, table: str) -> int:
    """Terminate every other backend that is running a COPY touching ``table``; returns how many."""
    with psycopg.connect(server.dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE pid <> pg_backend_pid() AND query ILIKE %s",
            (f"%COPY%{table}%",),
        ).fetchall()
    return len(rows)


def _batches(n: int, *, tag: str, size: int = 5_000) -> Iterator[pa.RecordBatch]:
    for start in range(0, n, size):
        ids = list(range(start, min(n, start + size)))
        yield pa.record_batch({"id": ids, "value": [f'{tag} {i}\nline two, "quoted"' for i in ids]})


@pytest.mark.parametrize("engine", ["adbc", "copy"])
@pytest.mark.parametrize("mode", ["replace", "upsert", "append"])
def test_backend_killed_mid_load_leaves_the_table_as_it_was(
    engine: str, mode: str, pg_conn_id: str, postgres_server: PostgresServer
) -> None:
    table = f"f_{uuid.uuid4().hex[:10]}"
    hook = PostgresBatchHook(postgres_conn_id=pg_conn_id, load_engine=engine)
    keys = ["id"] if mode == "upsert" else None
    # an upsert target has its key as primary key: created by a first upsert
    hook.write_batches(table, _batches(20_000, tag="old"), mode="upsert" if keys else "replace", keys=keys)
    before = _checksum(postgres_server, f'SELECT * FROM "{table}" ORDER BY id')
    killed: list[int] = []

    def killing() -> Iterator[pa.RecordBatch]:
        for i, batch in enumerate(_batches(30_000, tag="new")):
            yield batch
            if i == 2:  # the COPY is streaming by now
                # from another thread, as an administrator would
                thread = threading.Thread(target=lambda: killed.append(_terminate_copy(postgres_server, "")))
                thread.start()
                thread.join()

    with pytest.raises(Exception, match=r"terminat|connection|closed|server|ADBC|IO"):
        hook.write_batches(table, killing(), mode=mode, keys=keys)
    assert killed and killed[0] >= 1, "the fault was not injected"
    assert _checksum(postgres_server, f'SELECT * FROM "{table}" ORDER BY id') == before

    # the retry converges to exactly one clean run
    fresh = PostgresBatchHook(postgres_conn_id=pg_conn_id, load_engine=engine)
    expected = 20_000 + 30_000 if mode == "append" else 30_000
    fresh.write_batches(table, _batches(30_000, tag="new"), mode=mode, keys=keys)
    count, _ = _checksum(postgres_server, f'SELECT * FROM "{table}" ORDER BY id')
    assert count == expected


@pytest.mark.parametrize("engine", ["auto", "copy"])  # auto: ADBC's binary COPY for these columns
def test_backend_killed_mid_extract_keeps_the_previous_dataset(
    pg_conn_id: str, postgres_server: PostgresServer, tmp_path: Path, engine: str
) -> None:
    table = f"x_{uuid.uuid4().hex[:10]}"
    # large enough (~25 MB) that the server is still sending when the backend is terminated
    PostgresBatchHook(postgres_conn_id=pg_conn_id).write_batches(
        table, _batches(400_000, tag="v"), mode="replace"
    )
    storage = ObjectStorageHook(aws_conn_id=None)
    uri = (tmp_path / "extract").as_uri()
    query = f'SELECT * FROM "{table}" ORDER BY id'
    first = storage.write_dataset(
        uri, PostgresBatchHook(postgres_conn_id=pg_conn_id).iter_batches(query, batch_size=5_000)
    )
    assert first["rows"] == 400_000
    reference = pa.Table.from_batches(list(storage.iter_batches(uri)))

    def killing() -> Iterator[pa.RecordBatch]:
        with psycopg.connect(postgres_server.dsn, autocommit=True) as admin:
            hook = PostgresBatchHook(postgres_conn_id=pg_conn_id, read_engine=engine)  # type: ignore[arg-type]
            for i, batch in enumerate(hook.iter_batches(query, batch_size=5_000)):
                yield batch
                if i == 1:
                    admin.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE pid <> pg_backend_pid() AND query ILIKE %s",
                        (f"%{table}%",),
                    )

    with pytest.raises(Exception, match=r"terminat|connection|closed|server") as failed:
        storage.write_dataset(uri, killing())
    assert engine != "auto" or "ADBC" in str(failed.value)  # the failure names the engine that read
    back = pa.Table.from_batches(list(storage.iter_batches(uri)))
    assert back.num_rows == 400_000 and back.equals(reference)
    assert storage.table_version(uri) == first["version"] == 0
