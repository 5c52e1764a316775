"""
The PostgreSQL hook's fast read engine: ADBC's binary ``COPY`` stream, decoded to Arrow in C.

Binary ``COPY`` spares the server formatting every value as text and the client parsing it back, but
ADBC (``adbc-driver-postgresql``) does not return every type as the CSV engine does, nor always
exactly: ``numeric`` comes back as an opaque string extension type, ``oid`` as int32 (wrapping values
above 2^31), intervals, enums, inet... as opaque wire data, and timestamps outside what an int64 of
microseconds since 1970 holds (``infinity``, year 294276) silently wrap into wrong values. So the
query is wrapped in a ``SELECT`` that hands ADBC only what it decodes exactly, and the batches get
the schema the CSV engine gives:

- ``bool``, integers, floats, ``text``/``varchar``/``bpchar``/``name``, ``bytea``, ``time``: as they are;
- ``date``/``timestamp``/``timestamptz``: as they are, each batch checked to lie inside years
  1-9999 (what the CSV engine parses): any other value (``infinity``, BC, year 10000+, which ADBC
  would wrap around) fails the read with an error naming the column, as the CSV engine fails on it;
- ``numeric(p,s)`` with p <= 18: sent as the int64 ``value * 10^s`` and rebuilt as
  ``decimal128(p,s)`` without any arithmetic on the client (NaN fails, naming the column);
  with 18 < p <= 38 as text cast by Arrow to ``decimal128(p,s)``;
- ``oid`` as ``int8``; every other type as its text form (``::text`` where that is the type's output
  function, as ``COPY`` writes it).

When a column fits none of these (a type whose cast to text is not its output form, a domain, a
duplicate column name, a caller-given schema...), the plan says why and the hook reads with the CSV
engine instead (``read_engine="auto"``) or refuses (``read_engine="adbc"``).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from concurrent.futures import Future

    import psycopg
    import pyarrow as pa

#: ADBC's read batches: its default is 16 MB; smaller ones keep the extract's peak RSS lower at the
#: same speed (measured: 4 MB batches, 1M rows x 10 columns).
BATCH_HINT_BYTES = 4 << 20

#: types ADBC decodes exactly into the Arrow type the CSV engine gives them
_NATIVE = {
    "bool",
    "int2",
    "int4",
    "int8",
    "float4",
    "float8",
    "text",
    "varchar",
    "bpchar",
    "name",
    "bytea",
    "time",
}


def _temporal_types() -> dict[str, pa.DataType]:
    import pyarrow as pa

    return {"date": pa.date32(), "timestamp": pa.timestamp("us"), "timestamptz": pa.timestamp("us", tz="UTC")}


#: the years Arrow's CSV parser reads (PostgreSQL writes years < 1 with " BC", > 9999 with 5+ digits),
#: as days and microseconds since 1970-01-01
_DAYS = (-719162, 2932897)
_MICROS = (_DAYS[0] * 86_400_000_000, _DAYS[1] * 86_400_000_000)


class UseCopyRead(Exception):
    """The ADBC read engine cannot give these columns exactly; the message says which and why."""


@dataclass
class AdbcReadPlan:
    """The wrapped query ADBC runs and how each column becomes the CSV engine's Arrow type."""

    sql: str
    schema: pa.Schema
    #: column index -> (precision, scale) of numerics sent as scaled int64
    scaled: dict[int, tuple[int, int]] = field(default_factory=dict)
    #: column indexes sent as text and cast by Arrow to decimal128
    decimal_text: list[int] = field(default_factory=list)
    #: date and timestamp column indexes whose values must lie in years 1-9999
    ranged: list[int] = field(default_factory=list)


def plan_read(
    connection: psycopg.Connection, query: str, description: Sequence[Any], schema: pa.Schema
) -> AdbcReadPlan:
    """
    The ADBC query for ``query`` whose result has ``description`` and (as the CSV engine reads it) ``schema``.

    :raises UseCopyRead: when a column cannot be read exactly this way.
    """
    import pyarrow as pa
    from psycopg import sql as pgsql

    names = [c.name for c in description]
    if not names:
        raise UseCopyRead("the query returns no columns")
    if len(set(names)) != len(names):
        raise UseCopyRead("the query returns duplicate column names")
    encoding = connection.info.parameter_status("server_encoding")
    if encoding != "UTF8":
        raise UseCopyRead(f"the database encoding is {encoding}, not UTF8")
    oids = sorted({c.type_code for c in description})
    catalog = {
        oid: (name, typtype, fn_cast)
        for oid, name, typtype, fn_cast in connection.execute(
            "SELECT t.oid::int8, t.typname, t.typtype::text, EXISTS (SELECT 1 FROM pg_cast c "
            "WHERE c.castsource = t.oid AND c.casttarget = 'text'::regtype AND c.castmethod = 'f') "
            "FROM pg_type t WHERE t.oid = ANY(%s)",
            [oids],
        ).fetchall()
    }
    exprs = []
    plan = AdbcReadPlan(sql="", schema=schema)
    for index, (column, arrow_field) in enumerate(zip(description, schema, strict=True)):
        ident = pgsql.Identifier(column.name)
        type_name, typtype, fn_cast = catalog.get(column.type_code, (None, None, True))
        want = arrow_field.type
        if type_name in _NATIVE and typtype == "b":
            expr: pgsql.Composable = ident
        elif type_name in ("date", "timestamp", "timestamptz") and want == _temporal_types().get(
            type_name or ""
        ):
            # Checked on the client (see ``_check_range``): no per-row work for the server.
            expr = ident
            plan.ranged.append(index)
        elif type_name == "oid":
            expr = pgsql.SQL("{}::int8").format(ident)
        elif type_name == "numeric" and pa.types.is_decimal(want):
            precision, scale = want.precision, want.scale
            if not 0 <= scale <= precision:
                raise UseCopyRead(f"column {column.name!r} is numeric({precision},{scale})")
            if precision <= 18:
                message = pgsql.Literal(
                    f"mlops: column {column.name!r} holds NaN, which decimal128 cannot hold: "
                )
                expr = pgsql.SQL(
                    "CASE WHEN {c} = 'NaN' THEN ({msg} || {c}::text)::int8 ELSE ({c} * {f})::int8 END"
                ).format(c=ident, msg=message, f=pgsql.Literal(10**scale))
                plan.scaled[index] = (precision, scale)
            else:
                expr = pgsql.SQL("{}::text").format(ident)
                plan.decimal_text.append(index)
        elif pa.types.is_string(want) and typtype in ("b", "e", "r", "m", "c") and not fn_cast:
            # No function cast to text: ``::text`` is the type's output function, what COPY writes.
            expr = pgsql.SQL("{}::text").format(ident)
        else:
            raise UseCopyRead(
                f"column {column.name!r} ({type_name or column.type_code}) has no exact ADBC form"
            )
        exprs.append(pgsql.SQL("{} AS {}").format(expr, ident))
    plan.sql = (
        pgsql.SQL("SELECT {} FROM ({}) AS q")
        .format(pgsql.SQL(", ").join(exprs), pgsql.SQL(query))
        .as_string(connection)
    )
    return plan


#: the CSV engine's session settings, given at connection time (no round trip): the text forms of
#: intervals, zoned times in arrays... come out the same with both engines
SESSION_OPTIONS = "-c TimeZone=UTC -c DateStyle=ISO,YMD -c IntervalStyle=iso_8601"


class AdbcHandles:
    """An ADBC database and connection, closed together."""

    def __init__(self, conninfo: str) -> None:
        import adbc_driver_manager
        import adbc_driver_postgresql

        # Both connect (the database handle loads the server's type catalog): ~0.1 s, which the
        # hook spends while psycopg describes the query (:func:`connect_ahead`).
        self.database = adbc_driver_postgresql.connect(conninfo)
        try:
            self.connection = adbc_driver_manager.AdbcConnection(self.database)
        except BaseException:
            self.database.close()
            raise

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.connection.close()
        with contextlib.suppress(Exception):
            self.database.close()


def connect_ahead(conninfo: str) -> Future[AdbcHandles]:
    """Open :class:`AdbcHandles` in a background thread; :func:`discard` closes them if unused."""
    import threading
    from concurrent.futures import Future

    future: Future[AdbcHandles] = Future()

    def run() -> None:
        try:
            future.set_result(AdbcHandles(conninfo))
        except BaseException as err:  # handed to whoever waits for the handles
            future.set_exception(err)

    threading.Thread(target=run, name="mlops-adbc-connect", daemon=True).start()
    return future


def discard(future: Future[AdbcHandles]) -> None:
    """Close the handles once connected (at once if they already are); a failed connect is dropped."""

    def close(done: Future[AdbcHandles]) -> None:
        if done.exception() is None:
            done.result().close()

    future.add_done_callback(close)


def read_batches(handles: AdbcHandles, plan: AdbcReadPlan) -> Iterator[pa.RecordBatch]:
    """Run ``plan`` on ``handles`` (connected with :data:`SESSION_OPTIONS`), yield its batches, close them."""
    import adbc_driver_manager
    import pyarrow as pa

    try:
        with adbc_driver_manager.AdbcStatement(handles.connection) as statement:
            statement.set_options(**{"adbc.postgresql.batch_size_hint_bytes": str(BATCH_HINT_BYTES)})
            statement.set_sql_query(plan.sql)
            handle, _ = statement.execute_query()
            reader = pa.RecordBatchReader.from_stream(handle)
            try:
                for batch in reader:
                    yield to_plan_schema(batch, plan)
            finally:
                reader.close()
    finally:
        handles.close()


def to_plan_schema(batch: pa.RecordBatch, plan: AdbcReadPlan) -> pa.RecordBatch:
    """The batch as the CSV engine types it: scaled numerics rebuilt, metadata dropped, types checked."""
    import pyarrow as pa

    arrays = list(batch.columns)
    for index in plan.ranged:
        _check_range(arrays[index], plan.schema.field(index).name)
    for index, (precision, scale) in plan.scaled.items():
        arrays[index] = _scaled_to_decimal(arrays[index], pa.decimal128(precision, scale))
    for index in plan.decimal_text:
        target = plan.schema.field(index)
        try:
            arrays[index] = arrays[index].cast(target.type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
            raise ValueError(
                f"Column {target.name!r}: a value does not fit {target.type} ({err}); "
                "cast the column to text in the query to read it as text"
            ) from None
    for index, (array, target) in enumerate(zip(arrays, plan.schema, strict=True)):
        if array.type == target.type:
            continue
        if (
            pa.types.is_timestamp(array.type)
            and pa.types.is_timestamp(target.type)
            and array.type.unit == target.type.unit
            and (array.type.tz is None) == (target.type.tz is None)
        ):
            arrays[index] = array.cast(target.type)  # another name of the same zone: metadata only
            continue
        raise TypeError(f"ADBC returned column {target.name!r} as {array.type}, expected {target.type}")
    return pa.RecordBatch.from_arrays(arrays, schema=plan.schema)


def _check_range(array: pa.Array, name: str) -> None:
    """
    Fail on a date or timestamp outside years 1-9999, as the CSV engine fails to parse it.

    ADBC shifts PostgreSQL's epoch (2000) to Arrow's (1970) in 64-bit (32-bit for dates) integers:
    ``infinity`` and years past ~292,000 wrap around to values before year 1, so this range check
    also catches every wrapped value.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if array.null_count == len(array):
        return
    low, high = _DAYS if pa.types.is_date32(array.type) else _MICROS
    integers = array.view(pa.int32() if pa.types.is_date32(array.type) else pa.int64())
    bounds = pc.min_max(integers)
    lowest, highest = bounds["min"].as_py(), bounds["max"].as_py()
    if lowest < low or highest >= high:
        raise ValueError(
            f"Column {name!r} holds a value outside years 1-9999 (infinity, a BC date or a year past 9999), "
            f"which the Arrow {array.type} of this extract cannot hold: cast the column to text in the query"
        )


def _scaled_to_decimal(array: pa.Array, data_type: pa.DataType) -> pa.Array:
    """
    The int64 ``value * 10^scale`` as decimal128(p, s): the same integer, sign-extended to 128 bits.

    No arithmetic, so nothing to round. Arrow stores decimal128 as two little-endian 64-bit words.
    """
    import numpy as np
    import pyarrow as pa

    if not pa.types.is_int64(array.type):
        raise TypeError(f"expected the scaled numeric as int64, got {array.type}")
    if array.offset:
        array = pa.concat_arrays([array])
    count = len(array)
    validity, values = array.buffers()[:2]
    unscaled = np.frombuffer(values, dtype=np.int64, count=count) if count else np.empty(0, np.int64)
    words = np.empty((count, 2), dtype=np.int64)
    words[:, 0] = unscaled
    words[:, 1] = unscaled >> 63
    return pa.Array.from_buffers(
        data_type, count, [validity, pa.py_buffer(words)], null_count=array.null_count
    )
