"""
Property-based round-trips through every database sink and source, on the real servers: generated
tables with adversarial column names and values are written by a hook and read back by the same
system's source. Each must come back exactly, or the write must fail with an error naming the column
(never succeed with different data). Values a system cannot store by its own rules (MariaDB has no
NaN; BSON dates hold milliseconds) must be refused by name, not coerced.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
import uuid
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_mlops.hooks.mongo import MongoBatchHook
from airflow_provider_mlops.hooks.postgres import PostgresBatchHook
from airflow_provider_mlops.hooks.sql import SqlBatchHook
from tests.conftest import set_connection

NAME_CHARS = st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\x00")
NAMES = st.text(NAME_CHARS, min_size=1, max_size=20).map(str.strip).filter(bool) | st.sampled_from(
    [
        "a b",
        'q"uote',
        "semi;colon",
        "dot.ted",
        "MiXeD",
        "ünï 🚀",
        "select",
        "x'y",
        "back`tick",
        "$dollar",
        "a" * 70,
    ]
)
TEXT = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=30
) | st.sampled_from(["", "line\nbreak", "cr\r\nlf", 'quote " and \\ backslash', "tab\tcomma,", "🚀" * 5])
INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
FINITE = st.floats(allow_nan=False, allow_infinity=False)
TIMESTAMP_MS = st.datetimes(
    min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(2200, 1, 1), timezones=st.just(dt.UTC)
).map(lambda t: t.replace(microsecond=t.microsecond // 1000 * 1000))
DECIMAL = st.decimals(min_value=-(10**20), max_value=10**20, places=6, allow_nan=False)

KINDS: dict[str, tuple[pa.DataType, st.SearchStrategy[Any]]] = {
    "int64": (pa.int64(), INT64),
    "float64": (pa.float64(), FINITE),
    "string": (pa.string(), TEXT),
    "bool": (pa.bool_(), st.booleans()),
    "timestamp": (pa.timestamp("us", tz="UTC"), TIMESTAMP_MS),
    "timestamp_us": (
        pa.timestamp("us", tz="UTC"),
        st.datetimes(
            min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(2200, 1, 1), timezones=st.just(dt.UTC)
        ),
    ),
    "decimal": (pa.decimal128(38, 6), DECIMAL),
}


@st.composite
def tables(draw: st.DrawFn) -> pa.Table:
    names = draw(st.lists(NAMES, min_size=1, max_size=4, unique_by=lambda n: n.casefold()))
    rows = draw(st.integers(min_value=1, max_value=12))
    columns: dict[str, pa.Array] = {"row_id": pa.array(range(rows), pa.int64())}
    for name in names:
        if name.casefold() == "row_id":
            continue
        data_type, values = KINDS[draw(st.sampled_from(sorted(KINDS)))]
        columns[name] = pa.array(draw(st.lists(st.none() | values, min_size=rows, max_size=rows)), data_type)
    return pa.table(columns)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    if isinstance(a, decimal.Decimal) and isinstance(b, decimal.Decimal):
        return a == b
    return a == b and type(a) is type(b)


def _check(back: pa.Table, table: pa.Table) -> None:
    back = back.sort_by("row_id")
    assert back.num_rows == table.num_rows
    for name in table.column_names:
        assert name in back.column_names, f"column {name!r} missing after the round-trip: {back.column_names}"
        got, want = back[name].to_pylist(), table[name].to_pylist()
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            assert _same(g, w), f"column {name!r} row {i}: {g!r} != {w!r}"


Roundtrip = Callable[[pa.Table], pa.Table]


def _postgres(engine: str) -> Callable[[pytest.FixtureRequest], Roundtrip]:
    def make(request: pytest.FixtureRequest) -> Roundtrip:
        hook = PostgresBatchHook(postgres_conn_id=request.getfixturevalue("pg_conn_id"), load_engine=engine)

        def run(table: pa.Table) -> pa.Table:
            name = f"p_{uuid.uuid4().hex[:10]}"
            hook.write_batches(name, table.to_batches(max_chunksize=5), mode="replace", schema=table.schema)
            return pa.Table.from_batches(list(hook.iter_batches(f'SELECT * FROM "{name}"', batch_size=4)))

        return run

    return make


def _generic(fixture: str | None) -> Callable[[pytest.FixtureRequest], Roundtrip]:
    def make(request: pytest.FixtureRequest) -> Roundtrip:
        if fixture:
            hook = SqlBatchHook(request.getfixturevalue(fixture))
        else:
            path = request.getfixturevalue("tmp_path_factory").mktemp("sqlite") / "p.db"
            hook = SqlBatchHook(
                set_connection(f"prop_sqlite_{uuid.uuid4().hex[:6]}", conn_type="sqlite", host=str(path))
            )
        quote = hook.sql_dialect.quote

        def run(table: pa.Table) -> pa.Table:
            name = f"p_{uuid.uuid4().hex[:10]}"
            hook.write_batches(name, table.to_batches(max_chunksize=5), mode="replace", schema=table.schema)
            query = f"SELECT * FROM {quote(name)}"
            return pa.Table.from_batches(list(hook.iter_batches(query, batch_size=4, schema=table.schema)))

        return run

    return make


def _mongo(request: pytest.FixtureRequest) -> Roundtrip:
    hook = MongoBatchHook(mongo_conn_id=request.getfixturevalue("mongo_conn_id"))

    def run(table: pa.Table) -> pa.Table:
        name = f"p_{uuid.uuid4().hex[:10]}"
        hook.write_batches(name, table.to_batches(max_chunksize=5), mode="append")
        return pa.Table.from_batches(
            list(hook.iter_batches(name, projection={"_id": 0}, batch_size=4, schema=table.schema))
        )

    return run


SYSTEMS = {
    "postgres-adbc": _postgres("adbc"),
    "postgres-copy": _postgres("copy"),
    "sqlite": _generic(None),
    "mariadb": _generic("mariadb_conn_id"),
    "mongo": _mongo,
}

PROFILE = settings(
    max_examples=12, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck), database=None
)


def _names_a_column(system: str, err: Exception, table: pa.Table) -> None:
    text = str(err)
    if not any(name in text or repr(name) in text for name in table.column_names):
        raise AssertionError(f"{system}: refused without naming a column: {type(err).__name__}: {text[:500]}")


@pytest.mark.parametrize("system", sorted(SYSTEMS))
def test_generated_tables_round_trip_or_fail_naming_the_column(
    system: str, request: pytest.FixtureRequest
) -> None:
    roundtrip = SYSTEMS[system](request)

    @PROFILE
    @given(table=tables())
    def check(table: pa.Table) -> None:
        try:
            back = roundtrip(table)
        except Exception as err:  # allowed only as a refusal that names a column
            _names_a_column(system, err, table)
            return
        _check(back, table)

    check()
