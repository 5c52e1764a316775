"""Every sink writes the canonical mixed-type table and every source reads it back, exactly."""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pyarrow as pa
import pytest

from airflow_provider_mlops.hooks.mongo import MongoBatchHook
from airflow_provider_mlops.hooks.postgres import PostgresBatchHook
from airflow_provider_mlops.hooks.s3 import ObjectStorageHook
from airflow_provider_mlops.hooks.sql import SqlBatchHook
from tests.data import MIXED_SCHEMA, assert_rows_equal, mixed_rows, mixed_table, sorted_rows

Writer = Callable[[Iterator[pa.RecordBatch]], Any]
Reader = Callable[[], Iterator[pa.RecordBatch]]


def _postgres(engine: str) -> Callable[[pytest.FixtureRequest], tuple[Writer, Reader]]:
    def make(request: pytest.FixtureRequest) -> tuple[Writer, Reader]:
        hook = PostgresBatchHook(postgres_conn_id=request.getfixturevalue("pg_conn_id"), load_engine=engine)
        table = f"rt_{uuid.uuid4().hex[:8]}"
        return (
            lambda batches: hook.write_batches(table, batches, mode="append", schema=MIXED_SCHEMA),
            lambda: hook.iter_batches(f'SELECT * FROM "{table}" ORDER BY id', batch_size=2),
        )

    return make


def _mongo(request: pytest.FixtureRequest) -> tuple[Writer, Reader]:
    hook = MongoBatchHook(mongo_conn_id=request.getfixturevalue("mongo_conn_id"))
    collection = f"rt_{uuid.uuid4().hex[:8]}"
    return (
        lambda batches: hook.write_batches(
            collection, batches, mode="upsert", keys=["id"], json_columns=["payload"]
        ),
        lambda: hook.iter_batches(
            collection, projection={"_id": 0}, sort=[("id", 1)], batch_size=2, schema=MIXED_SCHEMA
        ),
    )


def _s3(fmt: str) -> Callable[[pytest.FixtureRequest], tuple[Writer, Reader]]:
    def make(request: pytest.FixtureRequest) -> tuple[Writer, Reader]:
        hook = ObjectStorageHook(aws_conn_id=request.getfixturevalue("s3_conn_id"))
        bucket = request.getfixturevalue("s3_server").bucket
        uri = f"s3://{bucket}/roundtrip/{fmt}/{uuid.uuid4().hex[:8]}"
        schema = None if fmt == "parquet" else MIXED_SCHEMA
        return (
            lambda batches: hook.write_dataset(uri, batches, format=fmt, max_rows_per_file=2),
            lambda: hook.iter_batches(uri, format=fmt, batch_size=2, schema=schema),
        )

    return make


def _sqlite(request: pytest.FixtureRequest) -> tuple[Writer, Reader]:
    """The generic common-sql path (DbApiHook cursor, executemany / fetchmany) on SQLite."""
    from tests.conftest import set_connection

    path = request.getfixturevalue("tmp_path") / f"rt_{uuid.uuid4().hex[:8]}.db"
    hook = SqlBatchHook(set_connection(f"rt_sqlite_{path.stem}", conn_type="sqlite", host=str(path)))
    return (
        lambda batches: hook.write_batches("rt", batches, mode="upsert", keys=["id"], schema=MIXED_SCHEMA),
        lambda: hook.iter_batches('SELECT * FROM "rt" ORDER BY id', batch_size=2, schema=MIXED_SCHEMA),
    )


def _finite(batch: pa.RecordBatch) -> pa.RecordBatch:
    """MariaDB refuses NaN and infinity (a clear error, tested in test_sql): they go in as NULL here."""
    import pyarrow.compute as pc

    ratio = batch.column("ratio")
    return batch.set_column(
        batch.schema.get_field_index("ratio"), "ratio", pc.if_else(pc.is_finite(ratio), ratio, None)
    )


def _mariadb(request: pytest.FixtureRequest) -> tuple[Writer, Reader]:
    """The generic common-sql path (PyMySQL hook, executemany / fetchmany) on a real MariaDB."""
    hook = SqlBatchHook(request.getfixturevalue("mariadb_conn_id"))
    table = f"rt_{uuid.uuid4().hex[:8]}"
    return (
        lambda batches: hook.write_batches(
            table, (_finite(b) for b in batches), mode="upsert", keys=["id"], schema=MIXED_SCHEMA
        ),
        lambda: hook.iter_batches(f"SELECT * FROM `{table}` ORDER BY id", batch_size=2, schema=MIXED_SCHEMA),
    )


def _local_parquet(request: pytest.FixtureRequest) -> tuple[Writer, Reader]:
    hook = ObjectStorageHook(aws_conn_id=None)
    uri = (request.getfixturevalue("tmp_path") / "ds").as_uri()
    return (
        lambda batches: hook.write_dataset(uri, batches, format="parquet"),
        lambda: hook.iter_batches(uri, batch_size=2),
    )


SYSTEMS: dict[str, Callable[[pytest.FixtureRequest], tuple[Writer, Reader]]] = {
    "postgres-adbc": _postgres("adbc"),
    "postgres-copy": _postgres("copy"),
    "mongo": _mongo,
    "s3-parquet": _s3("parquet"),
    "s3-csv": _s3("csv"),
    "local-parquet": _local_parquet,
    "sqlite": _sqlite,
    "mariadb": _mariadb,
}
# What a system cannot store, by its own rules (not the hook's): SQLite keeps NaN as NULL.
LIMITS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "sqlite": lambda row: {**row, "ratio": None if row["ratio"] != row["ratio"] else row["ratio"]},
    "mariadb": lambda row: {
        **row,
        "ratio": row["ratio"] if row["ratio"] is not None and math.isfinite(row["ratio"]) else None,
    },
}


def _expected(*systems: str) -> list[dict[str, Any]]:
    rows = mixed_rows()
    for system in systems:
        if system in LIMITS:
            rows = [LIMITS[system](r) for r in rows]
    return rows


@pytest.mark.parametrize("system", sorted(SYSTEMS))
def test_sink_then_source_round_trips_every_type(system: str, request: pytest.FixtureRequest) -> None:
    write, read = SYSTEMS[system](request)
    write(iter(mixed_table().to_batches(max_chunksize=2)))
    back = pa.Table.from_batches(list(read()))
    assert back.num_rows == 5
    assert all(b.num_rows <= 2 for b in read()), "batches must respect batch_size"
    assert_rows_equal(sorted_rows(back.select(MIXED_SCHEMA.names)), _expected(system))


@pytest.mark.parametrize(
    ("source", "sink"),
    [
        ("postgres-adbc", "s3-parquet"),
        ("s3-parquet", "mongo"),
        ("mongo", "postgres-adbc"),
        ("postgres-copy", "mongo"),
        ("mongo", "s3-csv"),
        ("s3-csv", "postgres-copy"),
        ("postgres-copy", "postgres-adbc"),
        ("sqlite", "postgres-adbc"),
        ("postgres-copy", "sqlite"),
        ("mariadb", "postgres-copy"),
        ("postgres-adbc", "mariadb"),
        ("mongo", "mariadb"),
    ],
)
def test_source_to_sink_pairs(source: str, sink: str, request: pytest.FixtureRequest) -> None:
    write_source, read_source = SYSTEMS[source](request)
    write_sink, read_sink = SYSTEMS[sink](request)
    write_source(iter(mixed_table().to_batches()))
    # Stream straight from the source into the sink, batch by batch.
    write_sink(read_source())
    back = pa.Table.from_batches(list(read_sink()))
    assert_rows_equal(sorted_rows(back.select(MIXED_SCHEMA.names)), _expected(source, sink))
