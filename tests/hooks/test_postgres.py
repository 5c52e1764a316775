from __future__ import annotations

import decimal
import hashlib
import uuid

import psycopg
import pyarrow as pa
import pytest

from airflow_provider_mlops.dialects.postgres_types import arrow_type_to_pg
from airflow_provider_mlops.hooks.postgres import PostgresBatchHook, PostgresWriteError
from airflow_provider_mlops.sinks.contract import KeyViolation, WriteContractError
from tests.conftest import set_connection
from tests.harness.servers import PostgresServer, free_port


@pytest.fixture(params=["adbc", "copy"])
def hook(pg_conn_id: str, request: pytest.FixtureRequest) -> PostgresBatchHook:
    """Every write test runs on both load engines: ADBC's binary COPY and psycopg's CSV COPY."""
    return PostgresBatchHook(postgres_conn_id=pg_conn_id, load_engine=request.param)


@pytest.fixture
def table() -> str:
    return f"t_{uuid.uuid4().hex[:10]}"


def _rows(server: PostgresServer, sql: str) -> list[tuple]:
    with psycopg.connect(server.dsn) as conn:
        return conn.execute(sql).fetchall()


def _checksum(server: PostgresServer, table: str) -> tuple[int, str]:
    rows = _rows(server, f'SELECT * FROM "{table}" ORDER BY 1')
    return len(rows), hashlib.sha256(repr(rows).encode()).hexdigest()


def _batches(ids: list[int], value: str = "v") -> list[pa.RecordBatch]:
    return [pa.RecordBatch.from_pydict({"id": ids, "value": [f"{value}{i}" for i in ids]})]


def test_test_connection_succeeds(hook: PostgresBatchHook) -> None:
    ok, message = hook.test_connection()
    assert ok, message
    assert "PostgreSQL 1" in message


def test_wrong_password_is_reported_without_the_secret(postgres_server: PostgresServer) -> None:
    secret = "Wr0ng-Pa55word-xyz"
    conn_id = set_connection(
        "pg_wrong_pw",
        conn_type="postgres",
        host=postgres_server.host,
        port=postgres_server.port,
        login=postgres_server.user,
        password=secret,
        schema=postgres_server.database,
    )
    ok, message = PostgresBatchHook(postgres_conn_id=conn_id).test_connection()
    assert not ok
    assert "password authentication failed" in message
    assert secret not in message
    for engine in ("adbc", "copy"):
        hook = PostgresBatchHook(postgres_conn_id=conn_id, load_engine=engine)
        with pytest.raises(ConnectionError, match="password authentication failed") as raised:
            hook.write_batches("never_written", _batches([1]))
        assert secret not in str(raised.value), engine


def test_closed_port_is_reported_readably() -> None:
    port = free_port()
    conn_id = set_connection(
        "pg_closed",
        conn_type="postgres",
        host="127.0.0.1",
        port=port,
        login="u",
        password="secret-123456",
        schema="db",
        extra={"connect_timeout": "2"},
    )
    ok, message = PostgresBatchHook(postgres_conn_id=conn_id).test_connection()
    assert not ok
    assert f"127.0.0.1:{port}" in message
    assert "refused" in message.lower()
    assert "secret-123456" not in message


def test_upsert_twice_leaves_the_same_rows(hook, table, postgres_server) -> None:
    first = hook.write_batches(table, _batches([1, 2, 3]), mode="upsert", keys=["id"])
    assert first == {"rows": 3, "inserted": 3, "updated": 0, "deleted": 0}
    before = _checksum(postgres_server, table)
    second = hook.write_batches(table, _batches([1, 2, 3]), mode="upsert", keys=["id"])
    assert second["inserted"] == 0
    assert second["updated"] == 3
    assert _checksum(postgres_server, table) == before
    hook.write_batches(table, _batches([3, 4], value="new"), mode="upsert", keys=["id"])
    assert _rows(postgres_server, f'SELECT id, value FROM "{table}" ORDER BY id') == [
        (1, "v1"),
        (2, "v2"),
        (3, "new3"),
        (4, "new4"),
    ]


def test_upsert_with_a_key_repeated_in_the_data_is_refused(hook, table, postgres_server) -> None:
    """The same rule on every sink (tests/hooks/test_write_contract.py): no silent choice of a row."""
    hook.write_batches(table, _batches([1]), mode="upsert", keys=["id"])
    batches = [
        pa.RecordBatch.from_pydict({"id": [1, 1], "value": ["old", "new"]}),
        pa.RecordBatch.from_pydict({"id": [1], "value": ["newest"]}),
    ]
    with pytest.raises(KeyViolation, match=r"id=1 at rows 0, 1, 2"):
        hook.write_batches(table, batches, mode="upsert", keys=["id"])
    assert _rows(postgres_server, f'SELECT id, value FROM "{table}"') == [(1, "v1")]


def test_replace_and_replace_partition_are_idempotent(hook, table, postgres_server) -> None:
    hook.write_batches(table, _batches([1, 2, 3]), mode="replace")
    hook.write_batches(table, _batches([7]), mode="replace")
    assert _rows(postgres_server, f'SELECT id FROM "{table}"') == [(7,)]

    part = f"{table}_p"
    day1 = [pa.RecordBatch.from_pydict({"ds": ["d1", "d1"], "id": [1, 2]})]
    day2 = [pa.RecordBatch.from_pydict({"ds": ["d2"], "id": [3]})]
    hook.write_batches(part, day1, mode="replace_partition", partition={"ds": "d1"})
    hook.write_batches(part, day2, mode="replace_partition", partition={"ds": "d2"})
    before = _checksum(postgres_server, part)
    counts = hook.write_batches(part, day1, mode="replace_partition", partition={"ds": "d1"})
    assert counts["deleted"] == 2
    assert counts["inserted"] == 2
    assert _checksum(postgres_server, part) == before


def test_replace_partition_refuses_rows_outside_the_partition(hook, table, postgres_server) -> None:
    hook.write_batches(
        table,
        [pa.RecordBatch.from_pydict({"ds": ["d1"], "id": [1]})],
        mode="replace_partition",
        partition={"ds": "d1"},
    )
    before = _checksum(postgres_server, table)
    bad = [pa.RecordBatch.from_pydict({"ds": ["d1", "d2"], "id": [1, 2]})]
    with pytest.raises(WriteContractError, match="must belong to the partition"):
        hook.write_batches(table, bad, mode="replace_partition", partition={"ds": "d1"})
    assert _checksum(postgres_server, table) == before


@pytest.mark.parametrize(
    ("mode", "staging"), [("append", False), ("append", True), ("replace", None), ("upsert", None)]
)
def test_failure_half_way_leaves_the_target_unchanged(hook, table, postgres_server, mode, staging) -> None:
    hook.write_batches(table, _batches([1, 2]), mode="upsert", keys=["id"])
    before = _checksum(postgres_server, table)

    def exploding():
        yield from _batches([10, 11])
        raise OSError("source went away half-way")

    with pytest.raises(PostgresWriteError, match=r"unchanged.*source went away"):
        hook.write_batches(table, exploding(), mode=mode, keys=["id"], staging=staging)
    assert _checksum(postgres_server, table) == before


def test_identifiers_are_quoted_not_formatted(hook, postgres_server) -> None:
    table = 'odd "name"; DROP TABLE x; --'
    batch = pa.RecordBatch.from_pydict({"weird col": [1], 'q"uote': ["a"], "select": [True]})
    hook.write_batches(table, [batch], mode="upsert", keys=["weird col"])
    hook.write_batches(table, [batch], mode="upsert", keys=["weird col"])
    rows = _rows(
        postgres_server, 'SELECT "weird col", "q""uote", "select" FROM "odd ""name""; DROP TABLE x; --"'
    )
    assert rows == [(1, "a", True)]


def test_unknown_column_is_named_in_the_error(hook, table) -> None:
    hook.write_batches(table, _batches([1]), mode="append")
    batch = pa.RecordBatch.from_pydict({"id": [2], "value": ["x"], "surprise": [1.5]})
    with pytest.raises(PostgresWriteError, match=r"\['surprise'\] do not exist"):
        hook.write_batches(table, [batch], mode="append")


def test_streaming_read_yields_bounded_batches_and_binds_parameters(hook, table) -> None:
    n = 120_000
    hook.write_batches(table, [pa.RecordBatch.from_pydict({"id": list(range(n)), "value": ["x"] * n})])
    sizes = [
        b.num_rows
        for b in hook.iter_batches(f'SELECT * FROM "{table}" WHERE id >= %s', [20_000], batch_size=7_000)
    ]
    assert sum(sizes) == n - 20_000
    assert max(sizes) <= 7_000
    assert len(sizes) >= 15
    # A parameter with quotes cannot escape its literal.
    empty = list(hook.iter_batches(f'SELECT * FROM "{table}" WHERE value = %s', ["x' OR '1'='1"]))
    assert [b.num_rows for b in empty] == [0] and empty[0].schema.names == ["id", "value"]


def test_query_schema_maps_postgres_types(hook) -> None:
    schema = hook.query_schema(
        "SELECT 1::int2 a, 1::int4 b, 1::int8 c, 1.5::float4 d, 1.5::float8 e, 1.5::numeric(10,3) f, "
        "'x'::text g, now() h, now()::timestamp i, current_date j, true k, '{}'::jsonb l, 1.5::numeric m"
    )
    assert [str(f.type) for f in schema] == [
        "int16",
        "int32",
        "int64",
        "float",
        "double",
        "decimal128(10, 3)",
        "string",
        "timestamp[us, tz=UTC]",
        "timestamp[us]",
        "date32[day]",
        "bool",
        "string",
        "string",
    ]


def test_arrow_types_map_to_postgres_columns() -> None:
    assert arrow_type_to_pg(pa.struct([("a", pa.int64())])) == "jsonb"
    assert arrow_type_to_pg(pa.timestamp("ns", tz="Europe/Paris")) == "timestamptz"
    assert arrow_type_to_pg(pa.dictionary(pa.int8(), pa.string())) == "text"


def test_upsert_with_newer_column_never_regresses(hook, table, postgres_server) -> None:
    import datetime as dt

    def batch(version: int, day: int) -> list[pa.RecordBatch]:
        when = dt.datetime(2026, 1, day, tzinfo=dt.UTC)
        return [
            pa.RecordBatch.from_pydict(
                {
                    "id": [1, 2],
                    "v": [f"v{version}"] * 2,
                    "updated_at": pa.array([when, when], pa.timestamp("us", tz="UTC")),
                }
            )
        ]

    hook.write_batches(table, batch(3, 3), mode="upsert", keys=["id"], newer_column="updated_at")
    hook.write_batches(
        table, batch(1, 1), mode="upsert", keys=["id"], newer_column="updated_at"
    )  # late old day
    assert _rows(postgres_server, f'SELECT id, v FROM "{table}" ORDER BY id') == [(1, "v3"), (2, "v3")]
    hook.write_batches(table, batch(4, 4), mode="upsert", keys=["id"], newer_column="updated_at")
    assert _rows(postgres_server, f'SELECT v FROM "{table}" WHERE id = 1') == [("v4",)]


def test_auto_engine_uses_adbc_for_exact_types_and_copy_for_the_rest(
    pg_conn_id, table, postgres_server, capsys
) -> None:
    hook = PostgresBatchHook(postgres_conn_id=pg_conn_id)  # load_engine="auto"
    capsys.readouterr()
    hook.write_batches(table, _batches([1, 2]), mode="upsert", keys=["id"])
    assert "with ADBC" in capsys.readouterr().out  # the task log says which engine loaded the rows
    nested = pa.RecordBatch.from_pydict(
        {"id": [3], "value": ["v3"], "doc": pa.array([{"a": 1, "b": [1, 2]}])}
    )
    other = f"{table}_nested"
    hook.write_batches(other, [nested], mode="upsert", keys=["id"])
    out = capsys.readouterr().out
    assert "with COPY (CSV) instead of ADBC" in out and "'doc'" in out
    assert _rows(postgres_server, f'SELECT id, value, doc FROM "{other}"') == [
        (3, "v3", {"a": 1, "b": [1, 2]})
    ]


def test_adbc_engine_refuses_a_column_it_cannot_write_exactly_and_creates_nothing(
    pg_conn_id, table, postgres_server
) -> None:
    hook = PostgresBatchHook(postgres_conn_id=pg_conn_id, load_engine="adbc")
    nested = pa.RecordBatch.from_pydict({"id": [1], "doc": pa.array([{"a": 1}])})
    with pytest.raises(PostgresWriteError, match=r"cannot write column 'doc'.*jsonb"):
        hook.write_batches(table, [nested])
    assert _rows(postgres_server, f"SELECT to_regclass('{table}')") == [(None,)]


def test_adbc_casts_into_wider_existing_columns_and_truncates_nanoseconds_like_copy(
    pg_conn_id, table, postgres_server
) -> None:
    import datetime as dt

    with psycopg.connect(postgres_server.dsn) as conn:
        conn.execute(f'CREATE TABLE "{table}" (id bigint, n numeric(14,2), at timestamptz, s varchar(10))')
    batch = pa.RecordBatch.from_pydict(
        {
            "id": pa.array([1, 2], pa.int16()),
            "n": pa.array([decimal.Decimal("1.25"), None], pa.decimal128(5, 2)),
            # 12:00:00.000001500 in Paris: PostgreSQL keeps microseconds
            "at": pa.array([1_700_000_000_000_001_500, None], pa.timestamp("ns", tz="Europe/Paris")),
            "s": pa.array(["é", None], pa.large_string()),
        }
    )
    results = {}
    for engine in ("adbc", "copy"):
        hook = PostgresBatchHook(postgres_conn_id=pg_conn_id, load_engine=engine)
        hook.write_batches(table, [batch], mode="replace")
        results[engine] = _rows(postgres_server, f'SELECT id, n, at, s FROM "{table}" ORDER BY id')
    expected_at = dt.datetime(2023, 11, 14, 22, 13, 20, 1, tzinfo=dt.UTC)
    assert results["adbc"] == results["copy"]
    assert results["adbc"][0][1] == decimal.Decimal("1.25") and results["adbc"][0][2] == expected_at


def test_adbc_type_mapping() -> None:
    from airflow_provider_mlops.dialects.postgres_types import adbc_arrow_type, adbc_castable

    assert adbc_arrow_type("numeric(12,2)") == pa.decimal128(12, 2)
    assert adbc_arrow_type("numeric") is None  # unbounded numeric: COPY
    assert adbc_arrow_type("character varying(20)") == pa.string()
    assert adbc_arrow_type("jsonb") is None and adbc_arrow_type("uuid") is None
    assert adbc_arrow_type("timestamp with time zone") == pa.timestamp("us", tz="UTC")
    assert adbc_castable(pa.int8(), pa.int64()) and not adbc_castable(pa.int64(), pa.float64())
    assert not adbc_castable(pa.timestamp("us"), pa.timestamp("us", tz="UTC")), "naive into zoned: COPY"
    assert not adbc_castable(pa.decimal128(10, 3), pa.decimal128(12, 2)), "a rescale could round: COPY"
    assert adbc_castable(pa.dictionary(pa.int8(), pa.string()), pa.string())


def test_zoned_timestamps_are_written_as_utc_with_an_explicit_zone() -> None:
    from airflow_provider_mlops.hooks.postgres import batch_to_copy_csv

    batch = pa.RecordBatch.from_pydict(
        {
            "at": pa.array([0, None], pa.timestamp("ms", tz="America/New_York")),
            "naive": pa.array([0, 0], pa.timestamp("s")),
        }
    )
    assert batch_to_copy_csv(batch).decode().splitlines() == [
        '"1970-01-01 00:00:00.000Z",1970-01-01 00:00:00',
        ",1970-01-01 00:00:00",
    ]


def test_schema_qualified_tables_on_both_engines(hook, postgres_server) -> None:
    schema = f"s_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_server.dsn, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    table = f"{schema}.events"
    hook.write_batches(table, _batches([1, 2]), mode="upsert", keys=["id"])  # created, with its key
    hook.write_batches(table, _batches([3]))  # appended (straight into the target)
    hook.write_batches(table, _batches([2, 3], value="w"), mode="upsert", keys=["id"], create_table=False)
    assert _rows(postgres_server, f'SELECT id, value FROM "{schema}"."events" ORDER BY id') == [
        (1, "v1"),
        (2, "w2"),
        (3, "w3"),
    ]
    assert _rows(postgres_server, "SELECT to_regclass('public.events')") == [(None,)]


def test_no_rows_follow_on_empty(hook, table, postgres_server) -> None:
    schema = pa.schema([("id", pa.int64()), ("value", pa.string())])
    # on_empty="skip" (the default) does not touch the database, not even to create the table
    assert hook.write_batches(table, [], schema=schema)["rows"] == 0
    assert _rows(postgres_server, f"SELECT to_regclass('{table}')") == [(None,)]
    assert hook.write_batches(table, [], schema=schema, on_empty="replace")["rows"] == 0
    assert _rows(postgres_server, f'SELECT count(*) FROM "{table}"') == [(0,)]
    hook.write_batches(table, _batches([1, 2]))
    empty = [pa.RecordBatch.from_pylist([], schema=schema)]
    assert hook.write_batches(table, empty, mode="replace")["deleted"] == 0
    assert _rows(postgres_server, f'SELECT count(*) FROM "{table}"') == [(2,)]
    assert hook.write_batches(table, empty, mode="replace", on_empty="replace")["deleted"] == 2
    assert _rows(postgres_server, f'SELECT count(*) FROM "{table}"') == [(0,)]


def test_a_value_out_of_the_columns_range_fails_cleanly_on_both_engines(hook, table, postgres_server) -> None:
    with psycopg.connect(postgres_server.dsn) as conn:
        conn.execute(f'CREATE TABLE "{table}" (id integer, value text)')
        conn.execute(f"INSERT INTO \"{table}\" VALUES (1, 'kept')")
    too_big = [pa.RecordBatch.from_pydict({"id": [2, 2**40], "value": ["a", "b"]})]
    with pytest.raises(PostgresWriteError, match=r"unchanged.*(out of range|overflow|Integer value)"):
        hook.write_batches(table, too_big)
    assert _rows(postgres_server, f'SELECT id, value FROM "{table}"') == [(1, "kept")]
