"""
PostgresBatchHook.iter_batches with both read engines: ADBC's binary COPY (``read_engine="adbc"``) gives
exactly what the CSV COPY engine gives (schema and values) and what was inserted, or fails the same
way; ``auto`` falls back to CSV, saying why, when a column has no exact ADBC form.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
import time
import uuid
from typing import Any

import psycopg
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_mlops.hooks.postgres import PostgresBatchHook
from tests.harness.servers import PostgresServer

_TEXT = st.one_of(
    st.none(),
    st.sampled_from(["", "\n", "\r\n", '"', ",", "\\.", "\\N", "NULL", "a\tb", "🦆 ünï \u2028"]),
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=30),
    st.text(st.sampled_from('\n\r"\\,\t ab🦆'), min_size=1, max_size=4).map(lambda s: s * 50_000),
)


def _decimals(precision: int, scale: int) -> st.SearchStrategy[decimal.Decimal | None]:
    # Built from the unscaled integer: no decimal context (28 digits by default) rounds anything.
    wide = decimal.Context(prec=80)
    top = 10**precision - 1
    unscaled = st.one_of(st.sampled_from([top, -top, 0, 1, -1]), st.integers(-top, top))
    return st.one_of(st.none(), unscaled.map(lambda i: decimal.Decimal(i).scaleb(-scale, context=wide)))


_TS = st.datetimes(dt.datetime(1, 1, 1), dt.datetime(9999, 12, 31, 23, 59, 59, 999999))
# column -> (PostgreSQL type, values inserted as psycopg parameters)
_COLUMNS: dict[str, tuple[str, st.SearchStrategy[Any]]] = {
    "t": ("text", _TEXT),
    "vc": ("varchar(40)", st.one_of(st.none(), st.text(max_size=40).filter(lambda s: "\x00" not in s))),
    "i2": ("smallint", st.one_of(st.none(), st.integers(-(2**15), 2**15 - 1))),
    "i4": ("integer", st.one_of(st.none(), st.integers(-(2**31), 2**31 - 1))),
    "i8": ("bigint", st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1))),
    "f4": ("real", st.one_of(st.none(), st.floats(width=32))),
    "f8": ("double precision", st.one_of(st.none(), st.floats())),
    "n12": ("numeric(12,2)", _decimals(12, 2)),
    "n18": ("numeric(18,0)", _decimals(18, 0)),
    "n18s": ("numeric(18,18)", _decimals(18, 18)),
    "n38": ("numeric(38,9)", _decimals(38, 9)),
    "nany": (
        "numeric",
        st.one_of(
            st.none(),
            st.just(decimal.Decimal("NaN")),
            st.decimals(allow_nan=False, allow_infinity=False, places=4),
        ),
    ),
    "d": ("date", st.one_of(st.none(), st.dates(dt.date(1, 1, 1), dt.date(9999, 12, 31)))),
    "ts": ("timestamp", st.one_of(st.none(), _TS)),
    "tstz": ("timestamptz", st.one_of(st.none(), _TS.map(lambda v: v.replace(tzinfo=dt.UTC)))),
    "tm": ("time", st.one_of(st.none(), st.times())),
    "b": ("boolean", st.one_of(st.none(), st.booleans())),
    "by": ("bytea", st.one_of(st.none(), st.binary(max_size=30))),
    "u": ("uuid", st.one_of(st.none(), st.uuids())),
    "c4": ("char(4)", st.one_of(st.none(), st.text("ab ", max_size=4))),
    "o": ("oid", st.one_of(st.none(), st.integers(0, 2**32 - 1))),
    "iv": (
        "interval",
        st.one_of(st.none(), st.timedeltas(dt.timedelta(days=-(10**5)), dt.timedelta(days=10**5))),
    ),
    "ai": ("integer[]", st.one_of(st.none(), st.lists(st.integers(-(2**31), 2**31 - 1), max_size=3))),
}
_NAMES = list(_COLUMNS)
_ROW = st.fixed_dictionaries({name: strategy for name, (_, strategy) in _COLUMNS.items()})
_DDL = "(id int, " + ", ".join(f"{n} {t}" for n, (t, _) in _COLUMNS.items()) + ")"


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    return type(a) is type(b) and a == b


def _read(conn_id: str, engine: str, sql: str, **kwargs: Any) -> pa.Table:
    hook = PostgresBatchHook(postgres_conn_id=conn_id, read_engine=engine)  # type: ignore[arg-type]
    return pa.Table.from_batches(list(hook.iter_batches(sql, **kwargs)))


@settings(
    max_examples=25,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(rows=st.lists(_ROW, min_size=0, max_size=10))
def test_adbc_reads_exactly_what_csv_copy_reads_and_what_was_inserted(
    rows: list[dict[str, Any]], pg_conn_id: str, postgres_server: PostgresServer
) -> None:
    import numpy as np

    table = f"re_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres_server.dsn) as conn:
        conn.execute(f'CREATE TABLE "{table}" {_DDL}')
        conn.cursor().executemany(
            f'INSERT INTO "{table}" VALUES (%s, {", ".join(["%s"] * len(_NAMES))})',
            [(k, *(row[c] for c in _NAMES)) for k, row in enumerate(rows)],
        )
    try:
        sql = f'SELECT * FROM "{table}" ORDER BY id'
        fast = _read(pg_conn_id, "adbc", sql, batch_size=3)
        csv = _read(pg_conn_id, "copy", sql, batch_size=3)
        assert fast.schema == csv.schema
        assert fast.schema.field("n12").type == pa.decimal128(12, 2)
        assert fast.schema.field("n18s").type == pa.decimal128(18, 18)
        assert fast.schema.field("tstz").type == pa.timestamp("us", tz="UTC")
        got, want_csv = fast.to_pylist(), csv.to_pylist()
        assert len(got) == len(rows) == len(want_csv)
        for k, (want, have, other) in enumerate(zip(rows, got, want_csv, strict=True)):
            assert have["id"] == k
            for name in _NAMES:
                assert _same(have[name], other[name]) or (
                    have[name] == other[name] and type(have[name]) is type(other[name])
                ), f"row {k} column {name}: ADBC {have[name]!r}, CSV {other[name]!r}"
                expected = want[name]
                if expected is None:
                    assert have[name] is None, f"row {k} column {name}: inserted NULL, read {have[name]!r}"
                    continue
                if name == "f4":
                    expected = float(np.float32(expected))
                elif name in ("u", "iv", "ai", "nany"):
                    continue  # read as PostgreSQL's text form: compared with the CSV engine above
                elif name == "c4":
                    expected = expected.ljust(4)
                elif name == "tm":
                    expected = expected.replace(tzinfo=None)
                value = have[name]
                if isinstance(expected, decimal.Decimal):
                    ok = isinstance(value, decimal.Decimal) and value == expected
                else:
                    ok = _same(expected, value)
                assert ok, f"row {k} column {name}: inserted {expected!r}, ADBC read {value!r}"
    finally:
        with psycopg.connect(postgres_server.dsn) as conn:
            conn.execute(f'DROP TABLE "{table}"')


@pytest.mark.parametrize(
    ("expression", "column"),
    [
        ("'infinity'::timestamptz", "x"),
        ("'-infinity'::timestamp", "x"),
        ("'infinity'::date", "x"),
        ("'0044-03-15 BC'::timestamp", "x"),
        ("'10000-01-01'::date", "x"),
        ("'294276-12-31 23:59:59'::timestamp", "x"),
        ("'NaN'::numeric(12,2)", "x"),
        ("'NaN'::numeric(30,2)", "x"),
    ],
)
def test_values_arrow_cannot_hold_fail_with_both_engines(
    pg_conn_id: str, expression: str, column: str
) -> None:
    """A value outside Arrow's range fails the read, naming the column, never wraps around."""
    sql = f"SELECT {expression} AS {column} FROM generate_series(1, 3)"
    with pytest.raises(Exception) as csv_error:
        _read(pg_conn_id, "copy", sql)
    with pytest.raises((RuntimeError, ValueError)) as adbc_error:
        _read(pg_conn_id, "adbc", sql)
    assert csv_error.value is not None
    assert f"column '{column}'" in str(adbc_error.value) or f"Column '{column}'" in str(adbc_error.value)


def test_edge_values_inside_the_range_round_trip(pg_conn_id: str) -> None:
    sql = (
        "SELECT '0001-01-01 00:00:00'::timestamp AS a, '9999-12-31 23:59:59.999999+00'::timestamptz AS b, "
        "'0001-01-01'::date AS c, '9999-12-31'::date AS d, 9999999999.99::numeric(12,2) AS e, "
        "'-0.000000000000000001'::numeric(18,18) AS f, 4294967295::oid AS g, '-Infinity'::float8 AS h"
    )
    fast, csv = _read(pg_conn_id, "adbc", sql), _read(pg_conn_id, "copy", sql)
    assert fast.equals(csv)
    row = fast.to_pylist()[0]
    assert row["a"] == dt.datetime(1, 1, 1)
    assert row["b"] == dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC)
    assert row["e"] == decimal.Decimal("9999999999.99")
    assert row["f"] == decimal.Decimal("-0.000000000000000001")
    assert row["g"] == 4294967295


def _backends(dsn: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
        ).fetchone()
    return int(row[0]) if row else 0


def test_auto_falls_back_to_csv_copy_and_says_why(
    pg_conn_id: str, postgres_server: PostgresServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """inet's cast to text is not its output form (``/32``): no exact ADBC form, so CSV COPY reads it."""
    sql = "SELECT '10.0.0.1'::inet AS ip, 1 AS n"
    before = _backends(postgres_server.dsn)  # other tests' connections, if any
    capsys.readouterr()
    table = _read(pg_conn_id, "auto", sql)
    assert table.to_pylist() == [{"ip": "10.0.0.1", "n": 1}]
    out = capsys.readouterr().out  # the task log says which engine read the rows and why
    assert "with COPY (CSV) instead of ADBC" in out and "'ip'" in out
    with pytest.raises(ValueError, match=r"cannot read this result exactly.*'ip'"):
        _read(pg_conn_id, "adbc", sql)
    # The ADBC connection opened ahead (while psycopg described the query) is closed unused.
    deadline = time.monotonic() + 10
    while _backends(postgres_server.dsn) > before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _backends(postgres_server.dsn) <= before


def test_adbc_refuses_a_given_schema_and_auto_reads_it_with_csv(pg_conn_id: str) -> None:
    sql = "SELECT 1 AS n"
    schema = pa.schema([pa.field("n", pa.int64())])
    with pytest.raises(ValueError, match="schema given"):
        _read(pg_conn_id, "adbc", sql, schema=schema)
    assert _read(pg_conn_id, "auto", sql, schema=schema).schema == schema


def test_empty_result_and_duplicate_names(pg_conn_id: str) -> None:
    empty = _read(pg_conn_id, "adbc", "SELECT 1::int8 AS a, 'x'::text AS b WHERE false")
    assert empty.num_rows == 0 and empty.schema == pa.schema([("a", pa.int64()), ("b", pa.string())])
    # Two columns of one name cannot be wrapped in a SELECT: auto reads them with CSV COPY.
    twice = _read(pg_conn_id, "auto", "SELECT 1 AS a, 2 AS a")
    assert twice.column_names == ["a", "a"] and twice.to_pylist()  # read, not lost


def _backend_pids(dsn: str) -> set[int]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
        ).fetchall()
    return {int(row[0]) for row in rows}


def _new_backends(dsn: str, before: set[int], *, present: bool) -> set[int]:
    """The backends not in ``before``, once there are some (``present``) or none, or after 10 s."""
    deadline = time.monotonic() + 10
    while bool(new := _backend_pids(dsn) - before) != present and time.monotonic() < deadline:
        time.sleep(0.01)
    return new


def test_adbc_connects_when_the_read_is_set_up_and_an_unread_stream_closes_it(
    pg_conn_id: str, postgres_server: PostgresServer
) -> None:
    """
    A task hands ``iter_batches(...)`` to a writer that sets itself up (imports, table checks) before
    asking for the first batch: ADBC's connection (~0.05 s: its type catalog) is opened meanwhile,
    not after. A stream dropped unread closes that connection.
    """
    import gc

    dsn = postgres_server.dsn
    hook = PostgresBatchHook(postgres_conn_id=pg_conn_id)
    before = _backend_pids(dsn)  # other tests' connections, if any
    batches = hook.iter_batches("SELECT 1::int8 AS n")
    assert len(_new_backends(dsn, before, present=True)) == 1  # connected before the first next()
    assert pa.Table.from_batches(list(batches)).to_pylist() == [{"n": 1}]
    before = _backend_pids(dsn) - _new_backends(dsn, before, present=False)
    unread = hook.iter_batches("SELECT 1::int8 AS n")
    assert len(_new_backends(dsn, before, present=True)) == 1
    del unread
    gc.collect()
    assert _new_backends(dsn, before, present=False) == set()
    # the connection is looked up when the stream is read: an unknown one fails there, as before
    missing = PostgresBatchHook(postgres_conn_id="no_such_connection").iter_batches("SELECT 1")
    with pytest.raises(Exception, match="no_such_connection"):
        next(missing)
