"""
Write sessions: the same transaction steps over psycopg (CSV ``COPY``) or ADBC (binary ``COPY``).

The hook (:meth:`PostgresBatchHook._write <airflow_provider_mlops.hooks.postgres.PostgresBatchHook._write>`)
plans a write once and runs it through whichever session loads the rows; a session only knows how
to run a statement, check the column types it can load exactly, and copy batches in.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from airflow_provider_mlops.dialects.postgres import STAGE_TABLE, PostgresDialect
from airflow_provider_mlops.dialects.postgres_types import adbc_arrow_type, adbc_castable
from airflow_provider_mlops.hooks.postgres.copy_codec import CSV_ENCODE_ROWS, encode_for_copy
from airflow_provider_mlops.hooks.postgres.errors import PostgresWriteError

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping, Sequence

    import psycopg
    import pyarrow as pa


class UseCopy(Exception):
    """ADBC cannot load these columns exactly: use the CSV COPY path instead."""


@dataclass(frozen=True)
class WritePlan:
    table: str
    schema: pa.Schema
    mode: str
    keys: Sequence[str] | None
    partition: Mapping[str, Any] | None
    create_table: bool
    use_staging: bool
    newer_column: str | None


class Session(Protocol):
    def transaction(self) -> contextlib.AbstractContextManager[Any]: ...

    def execute(self, query: Any) -> Any: ...

    def check_types(self, schema: pa.Schema, column_types: Mapping[str, str]) -> None: ...

    def copy_in(
        self,
        target: Any,
        table: str | None,
        names: list[str],
        batches: Iterable[pa.RecordBatch],
        schema: pa.Schema,
    ) -> int: ...

    def close(self) -> None: ...


class PsycopgSession:
    """psycopg 3: batches serialized as CSV by Arrow and sent with ``COPY ... FROM STDIN``."""

    def __init__(self, connection: psycopg.Connection) -> None:
        self.connection = connection

    def transaction(self) -> contextlib.AbstractContextManager[Any]:
        return self.connection.transaction()

    def execute(self, query: Any) -> Any:
        return self.connection.execute(query)

    def check_types(self, schema: pa.Schema, column_types: Mapping[str, str]) -> None:
        """COPY in CSV lets PostgreSQL parse every value: any column type goes."""

    def copy_in(
        self,
        target: Any,
        table: str | None,
        names: list[str],
        batches: Iterable[pa.RecordBatch],
        schema: pa.Schema,
    ) -> int:
        from airflow_provider_mlops.utils.arrow import conform, rebatch
        from airflow_provider_mlops.utils.pipeline import map_ahead

        rows = 0
        copy_sql = PostgresDialect().copy_in_sql(target, names)
        # Encoded in slices: the CSV text and Arrow's per-column string casts stay a few MB.
        nonempty = (b for b in rebatch(conform(batches, schema), CSV_ENCODE_ROWS) if b.num_rows)
        with self.connection.cursor() as cur, cur.copy(copy_sql) as copy:
            # Encoding batch n+1 (Arrow, no GIL) overlaps sending batch n.
            for num_rows, data in map_ahead(encode_for_copy, nonempty, name="mlops-copy-encode"):
                copy.write(data)
                rows += num_rows
        return rows

    def close(self) -> None:
        self.connection.close()


class AdbcResult:
    """The rows (few: counts, catalog lookups) and row count of one statement run through ADBC."""

    def __init__(self, rows: list[tuple[Any, ...]], rowcount: int) -> None:
        self.rows = rows
        self.rowcount = rowcount

    def fetchone(self) -> tuple[Any, ...] | None:
        return self.rows[0] if self.rows else None

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self.rows


class AdbcSession:
    """
    ADBC (``adbc-driver-postgresql``): Arrow batches written with binary ``COPY`` from libpq.

    Uses the driver manager's low-level API: its DB-API module imports ``pyarrow.dataset`` and
    with it pandas (~45 MB of a worker's memory) for features a bulk load does not use.
    """

    def __init__(self, database: Any, *, strict: bool) -> None:
        import adbc_driver_manager

        self.database = database
        self.connection = adbc_driver_manager.AdbcConnection(database)
        self.connection.set_autocommit(False)
        self.strict = strict
        self.target_schema: pa.Schema | None = None

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        try:
            self.execute("SET LOCAL TIME ZONE 'UTC'")
            yield
        except BaseException:
            self.connection.rollback()
            raise
        else:
            self.connection.commit()

    def execute(self, query: Any) -> AdbcResult:
        import adbc_driver_manager
        import pyarrow as pa

        with adbc_driver_manager.AdbcStatement(self.connection) as statement:
            statement.set_sql_query(query if isinstance(query, str) else query.as_string())
            handle, rowcount = statement.execute_query()
            table = pa.RecordBatchReader.from_stream(handle).read_all()
        rows = list(zip(*(column.to_pylist() for column in table.columns), strict=True))
        return AdbcResult(rows, rowcount)

    def check_types(self, schema: pa.Schema, column_types: Mapping[str, str]) -> None:
        import pyarrow as pa

        fields = []
        for field in schema:
            pg_type = column_types[field.name]
            arrow_type = adbc_arrow_type(pg_type)
            if arrow_type is None or not adbc_castable(field.type, arrow_type):
                message = f"column {field.name!r} ({field.type} into {pg_type})"
                if self.strict:
                    raise PostgresWriteError(f"load_engine='adbc' cannot write {message} exactly; use 'auto'")
                raise UseCopy(message)
            fields.append(pa.field(field.name, arrow_type))
        self.target_schema = pa.schema(fields)

    def copy_in(
        self,
        target: Any,
        table: str | None,
        names: list[str],
        batches: Iterable[pa.RecordBatch],
        schema: pa.Schema,
    ) -> int:
        import adbc_driver_manager
        import pyarrow as pa

        from airflow_provider_mlops.utils.arrow import conform

        target_schema = self.target_schema
        if target_schema is None:
            raise RuntimeError("check_types() decides the Arrow types before copy_in()")
        rows = 0

        def cast() -> Iterator[pa.RecordBatch]:
            nonlocal rows
            for batch in conform(batches, schema):
                if not batch.num_rows:
                    continue
                arrays = [
                    # timestamps truncate to PostgreSQL's microseconds, as the CSV path does
                    column.cast(field.type, safe=not pa.types.is_timestamp(field.type))
                    if column.type != field.type
                    else column
                    for column, field in zip(batch.columns, target_schema, strict=True)
                ]
                rows += batch.num_rows
                yield pa.RecordBatch.from_arrays(arrays, schema=target_schema)

        options: dict[str, str] = {"adbc.ingest.mode": "adbc.ingest.mode.append"}
        if table is None:
            options.update({"adbc.ingest.target_table": STAGE_TABLE, "adbc.ingest.temporary": "true"})
        else:
            db_schema, _, name = table.rpartition(".")
            options["adbc.ingest.target_table"] = name
            if db_schema:
                options["adbc.ingest.target_db_schema"] = db_schema
        reader = pa.RecordBatchReader.from_batches(target_schema, cast())
        with adbc_driver_manager.AdbcStatement(self.connection) as statement:
            statement.set_options(**options)
            statement.bind_stream(reader)
            statement.execute_update()
        return rows

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.connection.close()
        with contextlib.suppress(Exception):
            self.database.close()
