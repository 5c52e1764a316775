"""The SQL text each dialect builds (pure logic: no database)."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from airflow_provider_mlops.dialects import AnsiDialect, get_dialect
from airflow_provider_mlops.dialects.mysql import MySqlDialect
from airflow_provider_mlops.dialects.postgres import PostgresDialect
from airflow_provider_mlops.dialects.sqlite import SqliteDialect

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("name", "kwargs", "expected"),
    [
        ("mysql", {}, MySqlDialect),
        ("mariadb", {}, MySqlDialect),
        ("sqlite", {}, SqliteDialect),
        ("", {"sqlite": True}, SqliteDialect),
        ("postgresql", {}, PostgresDialect),
        ("duckdb", {}, AnsiDialect),
        (None, {}, AnsiDialect),
    ],
)
def test_get_dialect_picks_by_the_hooks_dialect_name(name: str | None, kwargs: dict, expected: type) -> None:
    assert type(get_dialect(name, "%s", **kwargs)) is expected


def test_identifiers_are_quoted_per_dialect() -> None:
    assert AnsiDialect().quote('a"b') == '"a""b"'
    assert AnsiDialect().quote("s.t") == '"s"."t"'
    assert MySqlDialect().quote("we`ird") == "`we``ird`"
    with pytest.raises(ValueError, match="Invalid"):
        AnsiDialect().quote("")


def test_upsert_clauses() -> None:
    generic = AnsiDialect("?").insert_sql('"t"', ["id", "v", "ts"], "upsert", ["id"], "ts")
    assert generic == (
        'INSERT INTO "t" ("id", "v", "ts") VALUES (?, ?, ?) ON CONFLICT ("id") DO UPDATE SET '
        '"v" = excluded."v", "ts" = excluded."ts" WHERE "t"."ts" IS NULL OR "t"."ts" <= excluded."ts"'
    )
    assert (
        AnsiDialect("?").insert_sql('"t"', ["id"], "upsert", ["id"]).endswith('ON CONFLICT ("id") DO NOTHING')
    )
    assert AnsiDialect("?").insert_sql('"t"', ["id"], "append") == 'INSERT INTO "t" ("id") VALUES (?)'
    mysql = MySqlDialect("%s").insert_sql("`t`", ["id", "ts", "v"], "upsert", ["id"], "ts")
    # the newer column is assigned last: later assignments see the earlier ones
    assert mysql.index("`v` = IF(") < mysql.index("`ts` = IF(")
    assert (
        MySqlDialect("%s")
        .insert_sql("`t`", ["id"], "upsert", ["id"])
        .endswith("ON DUPLICATE KEY UPDATE `id` = `id`")
    )


def test_partition_and_key_conditions() -> None:
    assert AnsiDialect("?").partition_where({"ds": "d1", "region": None}) == (
        '"ds" = ? AND "region" IS NULL',
        ["d1"],
    )
    assert AnsiDialect("?").keys_where(["id"], 3) == '"id" IN (?, ?, ?)'
    assert AnsiDialect("?").keys_where(["a", "b"], 2) == '("a" = ? AND "b" = ?) OR ("a" = ? AND "b" = ?)'


def test_watermark_window() -> None:
    start = dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    query, params = AnsiDialect("%s").watermark_query(
        "SELECT * FROM t WHERE a LIKE 'x%'", "ts", start, None, escape_percent=True
    )
    assert query == "SELECT * FROM (SELECT * FROM t WHERE a LIKE 'x%%') AS mlops_src WHERE \"ts\" >= %s"
    assert params == [start]
    assert AnsiDialect().watermark_query("SELECT 1", "ts", None, None) == ("SELECT 1", [])
    assert SqliteDialect().watermark_bound(start) == "2024-01-02 03:04:05"
    assert AnsiDialect().watermark_bound(start) is start


def test_column_types_per_dialect() -> None:
    assert AnsiDialect().column_type(pa.decimal128(10, 2)) == "DECIMAL(10,2)"
    assert SqliteDialect().column_type(pa.decimal128(10, 2)) == "TEXT"
    assert MySqlDialect().column_type(pa.string(), key=True) == "VARCHAR(255)"
    assert MySqlDialect().column_type(pa.timestamp("us")) == "DATETIME(6)"
    schema = pa.schema([("id", pa.int64()), ("name", pa.string())])
    assert MySqlDialect().create_table_sql("t", schema, ["id"]) == (
        "CREATE TABLE IF NOT EXISTS `t` (`id` BIGINT, `name` LONGTEXT, PRIMARY KEY (`id`))"
    )


def test_driver_values_per_dialect() -> None:
    ts = pa.array([dt.datetime(2024, 1, 2, tzinfo=dt.UTC), None], pa.timestamp("us", tz="UTC"))
    assert SqliteDialect().to_driver(ts) == ["2024-01-02 00:00:00.000000+00:00", None]
    assert MySqlDialect().to_driver(ts) == [dt.datetime(2024, 1, 2), None]
    assert AnsiDialect().to_driver(pa.array([{"a": 1}, None])) == ['{"a":1}', None]
    with pytest.raises(ValueError, match="cannot store NaN"):
        MySqlDialect().to_driver(pa.array([1.0, float("nan")]), "x")


def test_postgres_merge_statement() -> None:
    pytest.importorskip("psycopg")
    from psycopg import sql as pgsql

    dialect = PostgresDialect()
    target, stage = dialect.table_ident("s.t"), pgsql.Identifier("_mlops_stage")
    text = dialect.merge_sql(target, stage, ["id", "v"], ["id"], "v").as_string(None)
    assert text.startswith('WITH up AS (INSERT INTO "s"."t" ("id", "v") SELECT DISTINCT ON ("id")')
    assert 'ORDER BY "id", "v" DESC NULLS LAST, "__mlops_seq" DESC' in text
    assert 'DO UPDATE SET "v" = EXCLUDED."v" WHERE "s"."t"."v" IS NULL' in text
    where = dialect.partition_condition({"ds": "d1"}).as_string(None)
    assert where == "\"ds\" IS NOT DISTINCT FROM 'd1'"
    with pytest.raises(ValueError, match=r"more than schema\.table"):
        dialect.table_ident("a.b.c")
