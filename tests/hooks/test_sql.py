"""The generic common-sql path (SQLite here) and the hook chooser."""

from __future__ import annotations

import datetime as dt
import sqlite3
import uuid
from pathlib import Path

import pyarrow as pa
import pytest

from airflow_provider_mlops.dialects.base import quote_identifier
from airflow_provider_mlops.hooks.connection_types import get_sql_hook
from airflow_provider_mlops.hooks.postgres import PostgresBatchHook
from airflow_provider_mlops.hooks.sql import SqlBatchHook
from airflow_provider_mlops.sinks.contract import WriteContractError
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
    assert isinstance(get_sql_hook(pg_conn_id), PostgresBatchHook)
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


# --------------------------------------------------------------------------------------------------
# MariaDB (a real server) and the SQL the generic path builds
# --------------------------------------------------------------------------------------------------
@pytest.fixture
def maria(mariadb_conn_id: str) -> SqlBatchHook:
    return SqlBatchHook(mariadb_conn_id)


def test_mariadb_quotes_with_backticks_and_upserts_by_key(maria: SqlBatchHook) -> None:
    assert maria.quote("we`ird") == "`we``ird`"
    table = f"odd name {uuid.uuid4().hex[:6]}"
    batch = pa.RecordBatch.from_pydict({"key col": ["a", "b"], "v": [1, 2]})
    first = maria.write_batches(table, [batch], mode="upsert", keys=["key col"])
    second = maria.write_batches(
        table,
        [pa.RecordBatch.from_pydict({"key col": ["b", "c"], "v": [20, 30]})],
        mode="upsert",
        keys=["key col"],
    )
    assert (first["inserted"], first["updated"]) == (2, 0)
    assert (second["inserted"], second["updated"]) == (1, 1)
    back = pa.Table.from_batches(list(maria.iter_batches(f"SELECT * FROM `{table}` ORDER BY `key col`")))
    assert back.to_pylist() == [
        {"key col": "a", "v": 1},
        {"key col": "b", "v": 20},
        {"key col": "c", "v": 30},
    ]


def test_mariadb_upsert_with_newer_column_never_regresses(maria: SqlBatchHook) -> None:
    table = f"n_{uuid.uuid4().hex[:8]}"

    def batch(version: int, day: int) -> list[pa.RecordBatch]:
        return [
            pa.RecordBatch.from_pydict(
                {"id": [1], "v": [f"v{version}"], "updated_at": [dt.datetime(2026, 1, day, tzinfo=dt.UTC)]}
            )
        ]

    for version, day in ((3, 3), (1, 1), (4, 4), (2, 2)):
        maria.write_batches(table, batch(version, day), mode="upsert", keys=["id"], newer_column="updated_at")
    back = pa.Table.from_batches(list(maria.iter_batches(f"SELECT v, updated_at FROM `{table}`")))
    assert back.column("v").to_pylist() == ["v4"]
    assert back.column("updated_at").to_pylist() == [dt.datetime(2026, 1, 4)]


def test_mariadb_refuses_nan_naming_the_column(maria: SqlBatchHook) -> None:
    table = f"nan_{uuid.uuid4().hex[:8]}"
    with pytest.raises(ValueError, match=r"cannot store NaN or infinity: column 'x' holds nan"):
        maria.write_batches(table, [pa.RecordBatch.from_pydict({"id": [1, 2], "x": [0.5, float("nan")]})])


@pytest.mark.parametrize("system", ["sqlite", "mariadb", "postgres"])
def test_watermark_with_a_percent_in_the_sql_and_a_misspelled_column(
    system: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """``LIKE 'a%'`` keeps working once the watermark adds parameters (paramstyle format / qmark)."""
    from airflow_provider_mlops.hooks.connection_types import get_sql_hook
    from airflow_provider_mlops.sources import SqlQuery, Window

    if system == "sqlite":
        conn_id = set_connection("wm_sqlite", conn_type="sqlite", host=str(tmp_path / "wm.db"))
    else:
        conn_id = request.getfixturevalue("mariadb_conn_id" if system == "mariadb" else "pg_conn_id")
    table = f"wm_{uuid.uuid4().hex[:8]}"
    stamps = [dt.datetime(2026, 1, d, 12, tzinfo=dt.UTC) for d in (1, 2, 3)]
    get_sql_hook(conn_id).write_batches(
        table, [pa.RecordBatch.from_pydict({"name": ["ab", "ac", "bd"], "ts": stamps})]
    )
    quoted = f"`{table}`" if system == "mariadb" else f'"{table}"'
    sql = f"SELECT * FROM {quoted} WHERE name LIKE 'a%'"
    window = Window.of("2026-01-02T00:00:00Z", "2026-01-04T00:00:00Z")
    batches = get_sql_hook(conn_id).read(SqlQuery(sql, watermark_column="ts"), window)
    assert pa.Table.from_batches(list(batches)).column("name").to_pylist() == ["ac"]
    with pytest.raises(ValueError, match=r"Watermark column 'tss' is not a column of the query's result"):
        get_sql_hook(conn_id).read(SqlQuery(sql, watermark_column="tss"), window)


def test_sqlite_reruns_count_updates_and_unknown_columns_fail_before_writing(
    hook: SqlBatchHook, tmp_path: Path
) -> None:
    batch = pa.RecordBatch.from_pydict({"id": [1, 2], "v": ["a", "b"]})
    assert hook.write_batches("c", [batch], mode="upsert", keys=["id"])["inserted"] == 2
    again = hook.write_batches("c", [batch], mode="upsert", keys=["id"])
    assert (again["inserted"], again["updated"]) == (0, 2)
    with pytest.raises(WriteContractError, match=r"\['w'\] do not exist in table 'c'"):
        hook.write_batches("c", [pa.RecordBatch.from_pydict({"id": [3], "w": ["x"]})], mode="append")
    with pytest.raises(WriteContractError, match="does not exist"):
        hook.write_batches("missing", [batch], create_table=False)
    with sqlite3.connect(tmp_path / "db.sqlite") as conn:
        assert conn.execute("SELECT id, v FROM c ORDER BY id").fetchall() == [(1, "a"), (2, "b")]
