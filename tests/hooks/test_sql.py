"""The generic common-sql path (SQLite here) and the hook chooser."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pyarrow as pa
import pytest

from airflow_provider_mlops.hooks.postgres import PostgresHook
from airflow_provider_mlops.hooks.sql import SqlBatchHook, get_sql_hook, quote_identifier
from tests.conftest import set_connection


@pytest.fixture
def hook(tmp_path: Path) -> SqlBatchHook:
    return SqlBatchHook(
        set_connection("generic_sqlite", conn_type="sqlite", host=str(tmp_path / "db.sqlite"))
    )


def test_quote_identifier() -> None:
    assert quote_identifier('we"ird') == '"we""ird"'
    assert quote_identifier("s.t") == '"s"."t"'
    assert quote_identifier("a`b", "`") == "`a``b`"
    with pytest.raises(ValueError, match="Invalid"):
        quote_identifier("")


def test_get_sql_hook_picks_copy_for_postgres(pg_conn_id: str, hook: SqlBatchHook) -> None:
    assert isinstance(get_sql_hook(pg_conn_id), PostgresHook)
    assert isinstance(get_sql_hook(hook.conn_id), SqlBatchHook)


def test_write_modes_and_read_back_in_batches(hook: SqlBatchHook, tmp_path: Path) -> None:
    batch = pa.RecordBatch.from_pydict(
        {"id": [1, 2, 3], "name": ["a", None, "c"], "x": [0.5, float("nan"), None]}
    )
    hook.write_batches("t", [batch], mode="upsert", keys=["id"])
    counts = hook.write_batches("t", [batch], mode="upsert", keys=["id"])
    assert counts["rows"] == 3
    batches = list(hook.iter_batches("SELECT * FROM t ORDER BY id", batch_size=2))
    assert [b.num_rows for b in batches] == [2, 1]
    table = pa.Table.from_batches(batches)
    assert table.column("name").to_pylist() == ["a", None, "c"]

    hook.write_batches(
        "p",
        [pa.RecordBatch.from_pydict({"ds": ["d1", "d1"], "v": [1, 2]})],
        mode="replace_partition",
        partition={"ds": "d1"},
    )
    hook.write_batches(
        "p",
        [pa.RecordBatch.from_pydict({"ds": ["d1"], "v": [3]})],
        mode="replace_partition",
        partition={"ds": "d1"},
    )
    with sqlite3.connect(tmp_path / "db.sqlite") as conn:
        assert conn.execute("SELECT ds, v FROM p").fetchall() == [("d1", 3)]


def test_a_failed_write_rolls_back(hook: SqlBatchHook, tmp_path: Path) -> None:
    hook.write_batches("r", [pa.RecordBatch.from_pydict({"id": [1]})], mode="append")

    def exploding():
        yield pa.RecordBatch.from_pydict({"id": [2]})
        raise OSError("boom")

    with pytest.raises(OSError, match="boom"):
        hook.write_batches("r", exploding(), mode="replace")
    with sqlite3.connect(tmp_path / "db.sqlite") as conn:
        assert conn.execute("SELECT id FROM r").fetchall() == [(1,)]


def test_empty_result_still_has_columns(hook: SqlBatchHook) -> None:
    hook.write_batches("e", [pa.RecordBatch.from_pydict({"id": [1], "v": ["x"]})])
    batches = list(hook.iter_batches("SELECT * FROM e WHERE id < 0"))
    assert [b.num_rows for b in batches] == [0] and batches[0].schema.names == ["id", "v"]


def test_upsert_with_newer_column_never_regresses(hook: SqlBatchHook, tmp_path: Path) -> None:
    def batch(version: int, day: int) -> list[pa.RecordBatch]:
        return [
            pa.RecordBatch.from_pydict(
                {"id": [1], "v": [f"v{version}"], "updated_at": [f"2026-01-0{day} 00:00:00"]}
            )
        ]

    hook.write_batches("n", batch(3, 3), mode="upsert", keys=["id"], newer_column="updated_at")
    hook.write_batches("n", batch(1, 1), mode="upsert", keys=["id"], newer_column="updated_at")
    with sqlite3.connect(tmp_path / "db.sqlite") as conn:
        assert conn.execute("SELECT v FROM n").fetchall() == [("v3",)]


@pytest.mark.parametrize("batch_size", [1, 7, 12_000, 50_000])
def test_batches_are_bounded_and_complete_across_fetch_pieces(hook: SqlBatchHook, batch_size: int) -> None:
    n = 23_456
    table = f"pieces_{batch_size}"
    rows = pa.RecordBatch.from_pydict({"id": list(range(n)), "v": [i * 0.5 for i in range(n)]})
    hook.write_batches(table, [rows])
    hook.ROWS_PER_FETCH = 5_000
    batches = list(hook.iter_batches(f'SELECT * FROM "{table}" ORDER BY id', batch_size=batch_size))
    assert all(0 < b.num_rows <= batch_size for b in batches)
    assert all(b.num_rows == batch_size for b in batches[:-1])
    assert pa.Table.from_batches(batches).column("id").to_pylist() == list(range(n))
