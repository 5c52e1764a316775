"""PostgresBatchHook.iter_batches with any value: quoted newlines, CR, quotes, backslashes, unicode, 50 MB."""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import json
import math
import subprocess
import sys
import uuid
from typing import Any

import psycopg
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_mlops.hooks.postgres import PostgresBatchHook
from tests.harness.servers import PostgresServer

TRICKY = [
    "line1\nline2",
    "cr\ronly",
    "crlf\r\nend",
    'say "hi", "bye"',
    "back\\slash \\N \\. \\\\",
    "tab\there",
    "emoji 🦆 ünïcödé 中文 \u2028 \u00a0",
    "",
    None,
    "\n",
    '"',
    ",",
    "\\.",
]


@pytest.fixture
def hook(pg_conn_id: str) -> PostgresBatchHook:
    return PostgresBatchHook(postgres_conn_id=pg_conn_id)


@pytest.fixture
def table() -> str:
    return f"v_{uuid.uuid4().hex[:10]}"


def _digest(rows: list[tuple[Any, ...]]) -> str:
    return hashlib.sha256(repr(sorted(rows, key=repr)).encode()).hexdigest()


def _extract(hook: PostgresBatchHook, sql: str, **kwargs: Any) -> pa.Table:
    batches = list(hook.iter_batches(sql, **kwargs))
    return pa.Table.from_batches(batches)


def test_a_table_over_2_mib_with_tricky_text_round_trips_exactly(
    hook: PostgresBatchHook, table: str, postgres_server: PostgresServer
) -> None:
    n = 40_000
    rows = [
        (
            i,
            TRICKY[i % len(TRICKY)] if i % 5 else f'row {i}\n{"x" * (i % 500)}\r\n"{i}"\\',
            TRICKY[(i * 7) % len(TRICKY)],
        )
        for i in range(n)
    ]
    with psycopg.connect(postgres_server.dsn) as conn:
        conn.execute(f'CREATE TABLE "{table}" (id bigint, a text, b varchar)')
        with conn.cursor() as cur, cur.copy(f'COPY "{table}" FROM STDIN') as copy:
            for row in rows:
                copy.write_row(row)
        size = conn.execute(f'SELECT sum(octet_length(a)) + sum(octet_length(b)) FROM "{table}"').fetchone()
    assert size and size[0] > 2 << 20
    back = _extract(hook, f'SELECT * FROM "{table}"', batch_size=4_000)
    assert back.schema == pa.schema([("id", pa.int64()), ("a", pa.string()), ("b", pa.string())])
    got = [tuple(r.values()) for r in back.to_pylist()]
    assert len(got) == n
    assert _digest(got) == _digest(rows)


def test_a_single_2_mb_value_among_small_rows(hook: PostgresBatchHook, table: str, postgres_server) -> None:
    big = ('multi\nline "quoted" \\ 🦆\r' * 80_000)[:2_000_000]
    with psycopg.connect(postgres_server.dsn) as conn:
        conn.execute(f'CREATE TABLE "{table}" (id int, t text, b bytea)')
        conn.execute(f"INSERT INTO \"{table}\" SELECT i, 'small ' || i, NULL FROM generate_series(1, 3000) i")
        conn.execute(f'INSERT INTO "{table}" VALUES (%s, %s, %s)', (0, big, big.encode()[:1_500_000]))
    back = _extract(hook, f'SELECT * FROM "{table}" ORDER BY id')
    assert back.num_rows == 3001
    first = back.slice(0, 1).to_pylist()[0]
    assert first == {"id": 0, "t": big, "b": big.encode()[:1_500_000]}
    assert back.column("t")[3000].as_py() == "small 3000"


_PROBE = """
import hashlib, json, resource, sys
from airflow_provider_mlops.hooks.postgres import PostgresBatchHook

def rss_mb():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024

hook = PostgresBatchHook(postgres_conn_id=sys.argv[1])
list(hook.iter_batches("SELECT 1 AS id, 'warm' AS t"))  # imports, connection, thread pools
before = rss_mb()
peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
rows, digest, length = 0, None, 0
for batch in hook.iter_batches(sys.argv[2]):
    column = batch.column("t")
    for i in range(batch.num_rows):
        rows += 1
        value = column[i].as_buffer()  # the UTF-8 bytes in Arrow's memory: no Python str copy
        if value is not None and value.size > length:
            length, digest = value.size, hashlib.sha256(memoryview(value)).hexdigest()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"rows": rows, "length": length, "sha256": digest, "rss_before": before,
                  "peak_before": peak_before, "peak": peak}))
"""


@pytest.mark.timeout(120)
def test_a_50_mb_value_is_extracted_at_bounded_memory(pg_conn_id: str) -> None:
    # Generated server-side with repeat(): 11 bytes x 4,545,454 = 50 MB, every awkward character
    # in it. Extracted in a fresh process so its peak RSS belongs to this extract alone.
    unit = 'ab\n"\\\r\t🦆'
    count = 50_000_000 // len(unit.encode())
    sql = (
        f"SELECT i AS id, CASE WHEN i = 2 THEN repeat(E'ab\\n\"\\\\\\r\\t🦆', {count}) ELSE 'x' END AS t "
        "FROM generate_series(1, 3) i"
    )
    probe = subprocess.run(
        [sys.executable, "-c", _PROBE, pg_conn_id, sql], capture_output=True, text=True, timeout=110
    )
    assert probe.returncode == 0, probe.stderr[-3000:]
    result = json.loads(probe.stdout.strip().splitlines()[-1])
    expected = unit * count
    assert result["rows"] == 3
    assert result["length"] == len(expected.encode())
    assert result["sha256"] == hashlib.sha256(expected.encode()).hexdigest()
    value_mb = len(expected.encode()) / 2**20
    grown = result["peak"] - max(result["rss_before"], result["peak_before"])
    assert grown < PEAK_FACTOR * value_mb, result


# libpq's input buffer and its row copy, Arrow's parsed block and the string array: measured
# +193-195 MB of peak RSS for the 47.7 MiB value (~4.1x); the bound leaves room for allocator noise.
PEAK_FACTOR = 6


# --------------------------------------------------------------------------------------------------
# property: whatever psycopg inserts with parameters, iter_batches returns exactly
# --------------------------------------------------------------------------------------------------
_texts = st.one_of(
    st.none(),
    st.sampled_from(TRICKY),
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40),
    st.text(st.sampled_from('\n\r"\\,\t ab🦆'), min_size=1, max_size=5).map(lambda s: s * 200_000),
)
_ROW = st.fixed_dictionaries(
    {
        "t": _texts,
        "i": st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)),
        "f": st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
        "r": st.one_of(st.none(), st.floats(width=32, allow_nan=True, allow_infinity=True)),
        "d": st.one_of(st.none(), st.dates(dt.date(1, 1, 1), dt.date(9999, 12, 31))),
        "ts": st.one_of(
            st.none(),
            st.datetimes(dt.datetime(1, 1, 2), dt.datetime(9999, 12, 30), timezones=st.just(dt.UTC)),
        ),
        "n": st.one_of(
            st.none(),
            st.decimals(
                min_value=-(10**29) + 1, max_value=10**29 - 1, places=9, allow_nan=False, allow_infinity=False
            ),
        ),
        "b": st.one_of(st.none(), st.booleans()),
    }
)
_NAMES = ["t", "i", "f", "r", "d", "ts", "n", "b"]
_DDL = "(id int, t text, i bigint, f float8, r float4, d date, ts timestamptz, n numeric(38,9), b boolean)"


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    return type(a) is type(b) and a == b


@settings(
    max_examples=20,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@pytest.mark.parametrize("engine", ["auto", "copy"])  # auto: ADBC's binary COPY for these types
@given(rows=st.lists(_ROW, min_size=0, max_size=12))
def test_generated_values_round_trip_exactly(
    rows: list[dict[str, Any]], engine: str, pg_conn_id: str, postgres_server: PostgresServer
) -> None:
    import numpy as np

    hook = PostgresBatchHook(postgres_conn_id=pg_conn_id, read_engine=engine)  # type: ignore[arg-type]

    table = f"p_{uuid.uuid4().hex[:10]}"
    names = _NAMES
    with psycopg.connect(postgres_server.dsn) as conn:
        conn.execute(f'CREATE TABLE "{table}" {_DDL}')
        conn.cursor().executemany(
            f'INSERT INTO "{table}" VALUES (%s, {", ".join(["%s"] * len(names))})',
            [(k, *(row[c] for c in names)) for k, row in enumerate(rows)],
        )
    try:
        back = _extract(hook, f'SELECT * FROM "{table}" ORDER BY id', batch_size=5)
        assert back.schema.field("n").type == pa.decimal128(38, 9)
        assert back.schema.field("r").type == pa.float32()
        got = back.to_pylist()
        assert len(got) == len(rows)
        for k, (want, have) in enumerate(zip(rows, got, strict=True)):
            assert have["id"] == k
            for name in names:
                expected = want[name]
                if name == "r" and expected is not None:
                    expected = float(np.float32(expected))  # what float4 stores
                value = have[name]
                if isinstance(expected, decimal.Decimal):
                    ok = isinstance(value, decimal.Decimal) and value == expected
                else:
                    ok = _same(expected, value)
                assert ok, f"row {k} column {name}: inserted {expected!r}, extracted {value!r}"
    finally:
        with psycopg.connect(postgres_server.dsn) as conn:
            conn.execute(f'DROP TABLE "{table}"')


def test_one_column_null_rows_are_rows(pg_conn_id: str) -> None:
    """COPY writes a one-column NULL row as an empty line: it must count, never be skipped."""
    hook = PostgresBatchHook(postgres_conn_id=pg_conn_id)
    query = "SELECT CASE WHEN i % 2 = 0 THEN NULL ELSE i::text END AS x FROM generate_series(1, 7) AS i"
    batches = list(hook.iter_batches(query))
    values = [v for b in batches for v in b.column("x").to_pylist()]
    assert values == ["1", None, "3", None, "5", None, "7"]
