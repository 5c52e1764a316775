"""
The lake: LoadOperator writes Delta tables (partition replace, append, upsert, vacuum, optimize), and
other engines read them and the hand-off datasets (Polars ``scan_delta``, DuckDB over the Arrow
dataset delta-rs returns) with the same counts and checksums as the warehouse, also after a day is
re-run.
"""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pyarrow as pa
import pytest
from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_mlops.datasets import DatasetCorruptError
from airflow_provider_mlops.hooks.s3 import ObjectStorageHook, storage_hook
from airflow_provider_mlops.operators.load import LoadOperator
from airflow_provider_mlops.sinks import FileExport, LakeTable, SqlTable
from tests.conftest import set_connection

SCHEMA = pa.schema([("id", pa.int64()), ("day", pa.string()), ("amount", pa.float64()), ("who", pa.string())])


def _context(ds: str) -> dict[str, Any]:
    return {"ti": SimpleNamespace(dag_id="d", task_id="load", map_index=-1), "ds": ds, "run_id": f"r{ds}"}


def _day(ds: str, n: int, *, start: int = 0, scale: float = 1.0) -> pa.Table:
    ids = list(range(start, start + n))
    return pa.table(
        {"id": ids, "day": [ds] * n, "amount": [i * scale for i in ids], "who": [f"c{i % 7}" for i in ids]},
        schema=SCHEMA,
    )


def _digest(rows: list[tuple]) -> tuple[int, str]:
    digest = hashlib.sha256()
    for row in sorted(rows):
        digest.update(repr(row).encode())
    return len(rows), digest.hexdigest()


def _arrow_digest(table: pa.Table) -> tuple[int, str]:
    return _digest([tuple(r[c] for c in SCHEMA.names) for r in table.select(SCHEMA.names).to_pylist()])


def _polars(uri: str, options: dict | None = None) -> tuple[int, str]:
    import polars as pl

    frame = pl.scan_delta(uri, storage_options=options).select(SCHEMA.names).collect()
    return _digest([tuple(r) for r in frame.rows()])


def _duckdb(uri: str, options: dict | None = None) -> tuple[int, str]:
    import duckdb
    from deltalake import DeltaTable

    lake = DeltaTable(uri, storage_options=options).to_pyarrow_dataset()  # noqa: F841 (DuckDB reads it by name)
    columns = ", ".join(SCHEMA.names)
    return _digest(duckdb.sql(f"SELECT {columns} FROM lake").fetchall())


@pytest.fixture
def warehouse(tmp_path: Path) -> tuple[str, Path]:
    path = tmp_path / "warehouse.db"
    sqlite3.connect(path).close()
    return set_connection("lake_warehouse", conn_type="sqlite", host=str(path)), path


def _load_day(
    storage: ObjectStorageHook, tmp_path: Path, warehouse_conn: str, lake: str, ds: str, data: pa.Table, **kw
):
    day_uri = (tmp_path / "staging" / ds).as_uri()
    storage.write_dataset(day_uri, data.to_batches(max_chunksize=40), schema=SCHEMA)
    partition = {"day": ds}
    LoadOperator(
        task_id="wh",
        input_uri=day_uri,
        conn_id=warehouse_conn,
        sink=SqlTable("sales"),
        mode="replace_partition",
        partition=partition,
    ).execute(_context(ds))
    return LoadOperator(
        task_id="lake",
        input_uri=day_uri,
        sink=LakeTable(lake, partition_by=["day"]),
        mode="replace_partition",
        partition=partition,
        **kw,
    ).execute(_context(ds)), day_uri


@pytest.mark.parametrize("where", ["local", "s3"])
def test_the_lake_matches_the_warehouse_in_polars_and_duckdb_also_after_a_rerun(
    where: str, warehouse, tmp_path: Path, s3_conn_id: str, s3_server
) -> None:
    conn, db = warehouse
    storage = ObjectStorageHook(aws_conn_id=s3_conn_id if where == "s3" else None)
    lake = (
        (tmp_path / "lake" / "sales").as_uri()
        if where == "local"
        else f"s3://{s3_server.bucket}/lake/{tmp_path.name}"
    )
    target = dict(conn_id=s3_conn_id) if where == "s3" else {}
    # what any engine needs for this S3 (Polars takes no delta-rs retry settings)
    options = (
        {k: v for k, v in storage.delta_storage_options().items() if k.startswith("AWS_")}
        if where == "s3"
        else None
    )
    engine_uri = lake if where == "s3" else str(tmp_path / "lake" / "sales")

    first, _ = _load_day(storage, tmp_path, conn, lake, "2026-01-01", _day("2026-01-01", 120), **target)
    _load_day(storage, tmp_path, conn, lake, "2026-01-02", _day("2026-01-02", 80, start=500), **target)
    # the first day is re-run with corrected rows: one commit replaces its partition only
    rerun, day_uri = _load_day(
        storage, tmp_path, conn, lake, "2026-01-01", _day("2026-01-01", 100, scale=2.0), **target
    )
    assert (first["version"], rerun["version"]) == (0, 2)
    assert rerun["rows"] == 100 and rerun["table_rows"] == 180

    with sqlite3.connect(db) as wh:
        expected = _digest(wh.execute("SELECT id, day, amount, who FROM sales").fetchall())
    assert expected[0] == 180
    assert _polars(engine_uri, options) == expected
    assert _duckdb(engine_uri, options) == expected
    assert _arrow_digest(pa.Table.from_batches(list(storage.iter_batches(lake)))) == expected
    # the day before the re-run is still there, by version
    before = pa.Table.from_batches(list(storage.iter_batches(f"{lake}@v1")))
    assert before.num_rows == 200
    assert storage_hook(s3_conn_id if where == "s3" else None).table_version(lake) == 2

    # a hand-off dataset reads the same in every engine
    hand_off = day_uri if where == "local" else None
    if hand_off:
        path = str(tmp_path / "staging" / "2026-01-01")
        expected_day = _arrow_digest(_day("2026-01-01", 100, scale=2.0))
        assert _polars(path) == _duckdb(path) == expected_day


def test_upsert_merges_on_keys_and_refuses_null_or_repeated_keys_before_any_commit(tmp_path: Path) -> None:
    storage = ObjectStorageHook(aws_conn_id=None)
    lake = (tmp_path / "lake" / "customers").as_uri()

    def upsert(rows: list[dict], name: str) -> dict:
        uri = (tmp_path / "in" / name).as_uri()
        storage.write_dataset(uri, [pa.RecordBatch.from_pylist(rows, schema=SCHEMA)], schema=SCHEMA)
        return LoadOperator(task_id="u", input_uri=uri, sink=LakeTable(lake, keys=["id"])).execute(
            _context("2026-01-01")
        )

    upsert(
        [{"id": 1, "day": "d", "amount": 1.0, "who": "a"}, {"id": 2, "day": "d", "amount": 2.0, "who": "b"}],
        "a",
    )
    second = upsert(
        [{"id": 2, "day": "d", "amount": 20.0, "who": "B"}, {"id": 3, "day": "d", "amount": 3.0, "who": "c"}],
        "b",
    )
    assert (second["inserted"], second["updated"], second["version"]) == (1, 1, 1)
    rows = sorted(pa.Table.from_batches(list(storage.iter_batches(lake))).to_pylist(), key=lambda r: r["id"])
    assert [(r["id"], r["who"]) for r in rows] == [(1, "a"), (2, "B"), (3, "c")]

    with pytest.raises(AirflowFailException, match=r"(?i)null"):
        upsert(
            [
                {"id": 4, "day": "d", "amount": 4.0, "who": "d"},
                {"id": None, "day": "d", "amount": 0.0, "who": "x"},
            ],
            "c",
        )
    with pytest.raises(AirflowFailException, match=r"(?i)repeat|duplicate|more than once"):
        upsert(
            [
                {"id": 5, "day": "d", "amount": 5.0, "who": "e"},
                {"id": 5, "day": "d", "amount": 6.0, "who": "f"},
            ],
            "d",
        )
    assert storage.table_version(lake) == 1  # nothing committed by the refused loads


def test_a_row_outside_the_replaced_partition_is_refused_before_the_commit(tmp_path: Path) -> None:
    storage = ObjectStorageHook(aws_conn_id=None)
    uri = (tmp_path / "in").as_uri()
    storage.write_dataset(uri, _day("2026-01-02", 5).to_batches(), schema=SCHEMA)
    lake = (tmp_path / "lake").as_uri()
    op = LoadOperator(
        task_id="l",
        input_uri=uri,
        sink=LakeTable(lake, partition_by=["day"]),
        mode="replace_partition",
        partition={"day": "2026-01-01"},
    )
    with pytest.raises(AirflowFailException, match=r"day='2026-01-02', outside the partition"):
        op.execute(_context("2026-01-01"))
    assert not storage.is_table(lake)


def test_append_optimize_and_vacuum(tmp_path: Path) -> None:
    storage = ObjectStorageHook(aws_conn_id=None)
    lake = (tmp_path / "lake").as_uri()
    for i in range(3):
        uri = (tmp_path / f"in{i}").as_uri()
        storage.write_dataset(uri, _day("2026-01-01", 10, start=10 * i).to_batches(), schema=SCHEMA)
        result = LoadOperator(task_id="a", input_uri=uri, sink=LakeTable(lake), mode="append").execute(
            _context("x")
        )
    assert result["table_rows"] == 30 and result["version"] == 2
    # compaction: one more version, the same rows; the default retention (7 days) keeps every file
    uri = (tmp_path / "in0").as_uri()
    done = LoadOperator(
        task_id="o",
        input_uri=uri,
        sink=LakeTable(lake, optimize=True, vacuum_retention_hours=168),
        mode="append",
    ).execute(_context("x"))
    assert done["version"] == 4 and done["optimized_files"] == 4 and done["vacuumed_files"] == 0
    assert sum(b.num_rows for b in storage.iter_batches(lake)) == 40
    assert sum(b.num_rows for b in storage.iter_batches(f"{lake}@v1")) == 20  # time travel still works
    # a retention of 0 removes what older versions need: they can no longer be read
    removed = storage.vacuum_dataset(lake, retention_hours=0)
    assert len(removed) == 4
    assert sum(b.num_rows for b in storage.iter_batches(lake)) == 40
    with pytest.raises(DatasetCorruptError, match="missing"):
        list(storage.iter_batches(f"{lake}@v1"))


def test_exports_are_one_file_replaced_whole(tmp_path: Path) -> None:
    storage = ObjectStorageHook(aws_conn_id=None)
    uri = (tmp_path / "in").as_uri()
    storage.write_dataset(uri, _day("2026-01-01", 30).to_batches(), schema=SCHEMA)
    out = tmp_path / "export"
    for fmt in ("csv", "jsonl"):
        result = LoadOperator(
            task_id="x", input_uri=uri, sink=FileExport((out / fmt).as_uri(), format=fmt)
        ).execute(_context("x"))
        assert result["rows"] == 30 and result["files"] == 1
        assert [p.name for p in (out / fmt).iterdir()] == [f"part-00000.{fmt}"]
        back = pa.Table.from_batches(
            list(storage.iter_batches((out / fmt).as_uri(), format=fmt, schema=SCHEMA))
        )
        assert _arrow_digest(back) == _arrow_digest(_day("2026-01-01", 30))


def test_a_fresh_worker_process_reads_a_table_summary(tmp_path: Path) -> None:
    """What a Celery / Kubernetes worker does first in LoadOperator: no module imported before it."""
    import subprocess
    import sys

    uri = (tmp_path / "t").as_uri()
    storage_hook(None).write_dataset(uri, [pa.RecordBatch.from_pylist([{"a": 1}, {"a": 2}])])
    code = (
        "import sys; from airflow_provider_mlops.hooks.s3 import ObjectStorageHook; "
        "print(ObjectStorageHook(aws_conn_id=None).dataset_info(sys.argv[1])['rows'])"
    )
    out = subprocess.run([sys.executable, "-c", code, uri], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "2"
