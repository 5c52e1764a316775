"""
The PostgreSQL hook's read path: ``COPY (query) TO STDOUT`` parsed by Arrow in whole-row blocks.

A mixin of :class:`~airflow_provider_mlops.hooks.postgres.PostgresBatchHook`, which gives it the
connection (``get_conn``) and the dialect.
"""

from __future__ import annotations

import contextlib
import weakref
from typing import TYPE_CHECKING, Any

from airflow_provider_mlops.dialects.postgres_types import pg_type_to_arrow
from airflow_provider_mlops.hooks.postgres.adbc_read import discard
from airflow_provider_mlops.hooks.postgres.copy_codec import CopyReader, decode_bytea

if TYPE_CHECKING:
    import logging
    from collections.abc import Iterator, Mapping, Sequence
    from concurrent.futures import Future

    import psycopg
    import pyarrow as pa
    from airflow.sdk import Connection

    from airflow_provider_mlops.dialects.postgres import PostgresDialect
    from airflow_provider_mlops.hooks.postgres.adbc_read import AdbcHandles, AdbcReadPlan


class PostgresReader:
    """``query_schema`` and ``iter_batches`` of :class:`~airflow_provider_mlops.hooks.postgres.PostgresBatchHook`."""

    if TYPE_CHECKING:  # what the hook provides
        log: logging.Logger

        @property
        def sql_dialect(self) -> PostgresDialect: ...

        @property
        def read_engine(self) -> str: ...

        def get_conn(self) -> psycopg.Connection: ...

        def get_conn_id(self) -> str: ...

        def get_connection(self, conn_id: str) -> Connection: ...

        def _connect_kwargs(self, conn: Connection) -> dict[str, Any]: ...

    def query_schema(
        self, sql: str, parameters: Sequence[Any] | Mapping[str, Any] | None = None
    ) -> pa.Schema:
        """The Arrow schema of a query's result, from its description (the query returns no rows)."""
        with contextlib.closing(self.get_conn()) as connection, connection.cursor() as cur:
            cur.execute(self.sql_dialect.describe_sql(sql), parameters)
            return self._schema_from_description(connection, cur.description or [])

    @staticmethod
    def _schema_from_description(connection: psycopg.Connection, description: Sequence[Any]) -> pa.Schema:
        import pyarrow as pa
        from psycopg.types import TypeInfo

        fields = []
        for column in description:
            info = connection.adapters.types.get(column.type_code)
            if info is None:
                info = TypeInfo.fetch(connection, column.type_code)
            type_name = info.name if info is not None else "text"
            if info is not None and column.type_code != info.oid:
                # psycopg files an array type under its element's name: an int4[] is text, not int32.
                type_name = "array"
            fields.append(pa.field(column.name, pg_type_to_arrow(type_name, column.precision, column.scale)))
        return pa.schema(fields)

    def iter_batches(
        self,
        sql: str,
        parameters: Sequence[Any] | Mapping[str, Any] | None = None,
        *,
        batch_size: int = 50_000,
        schema: pa.Schema | None = None,
    ) -> Iterator[pa.RecordBatch]:
        """
        Stream the result of ``sql`` as record batches of at most ``batch_size`` rows.

        With ``read_engine="auto"`` (the default) the rows come as ADBC's binary ``COPY`` stream
        decoded to Arrow in C, when every column of the result has an exact form there
        (:mod:`.adbc_read` says which); otherwise, or with ``read_engine="copy"``, as
        ``COPY (sql) TO STDOUT (FORMAT csv)``: the server streams rows as CSV, gathered into
        blocks of whole rows of ~1 MiB and parsed by Arrow. Both engines give the same schema and
        values, and memory stays flat whatever the result size. Any value goes: newlines, carriage returns, quotes and backslashes in text, and values up
        to PostgreSQL's 1 GB limit (a row larger than a block is a block of its own; memory is then
        proportional to the largest row). Bind parameters are applied client-side with proper
        quoting (COPY takes no server-side parameters).

        :param sql: a SELECT (or any statement COPY accepts as a query).
        :param parameters: bind parameters for ``sql`` (psycopg style, ``%s`` or ``%(name)s``).
        :param batch_size: the largest number of rows a batch holds (a batch holds at most one
            block's rows, so batches of large rows are smaller).
        :param schema: override the Arrow schema derived from the result description (read with
            the CSV engine, which parses the text into it).
        """
        # Two engines (docs/performance.md). ADBC's binary COPY spares the server formatting text and
        # the client parsing it, but decodes some types inexactly or opaquely (numeric as an opaque
        # string type, oid as int32, timestamps past year ~292,000 wrapped around, enums and inet as
        # wire bytes): :mod:`.adbc_read` wraps the query so ADBC only gets what it decodes exactly and
        # says when it cannot. The CSV engine keeps every type's text form: rows gathered in whole-row
        # blocks parsed by Arrow (psycopg's binary COPY decoded row by row in Python took 5.5 s
        # against 1.5 s for the raw COPY loop).
        # ADBC connects (~0.05-0.1 s: its type catalog) from now, while the consumer sets itself up
        # (a dataset writer imports delta-rs and checks its table before asking for a batch) and
        # psycopg describes the query; closed unused if CSV COPY reads or the stream is never read.
        # A connection that cannot be looked up fails when the stream is read, as before.
        opening = None
        if schema is None:
            with contextlib.suppress(Exception):
                if self.read_engine != "copy":
                    opening = self._connect_adbc_ahead()
        batches = self._iter_batches(sql, parameters, batch_size, schema, opening)
        if opening is not None:
            weakref.finalize(batches, discard, opening)  # closes the handles of a stream never started
        return batches

    def _iter_batches(
        self,
        sql: str,
        parameters: Sequence[Any] | Mapping[str, Any] | None,
        batch_size: int,
        schema: pa.Schema | None,
        opening: Future[AdbcHandles] | None,
    ) -> Iterator[pa.RecordBatch]:
        """:meth:`iter_batches`' stream, with ADBC's connection (when it may read) already opening."""
        import pyarrow as pa
        from psycopg import ClientCursor

        from airflow_provider_mlops.utils.arrow import rebatch
        from airflow_provider_mlops.utils.csv import CsvRowsParser
        from airflow_provider_mlops.utils.pipeline import map_ahead, prefetch

        try:
            engine = self.read_engine
        except BaseException:
            if opening is not None:
                discard(opening)
            raise
        try:
            connection = self.get_conn()
        except BaseException:
            if opening is not None:
                discard(opening)
            raise
        plan: AdbcReadPlan | None = None
        try:
            query = sql.strip().rstrip(";")
            with ClientCursor(connection) as client:
                # COPY cannot take server-side parameters: bind them client-side, quoted by psycopg.
                query = client.mogrify(query, parameters) if parameters else query
            if schema is None:
                with connection.cursor() as cur:
                    cur.execute(self.sql_dialect.describe_sql(query))
                    description = cur.description or []
                    schema = self._schema_from_description(connection, description)
                if engine != "copy":
                    plan = self._adbc_read_plan(connection, query, description, schema, engine)
            elif engine == "adbc":
                raise ValueError(
                    "read_engine='adbc' reads the result's own types: with a schema given, use read_engine='auto' or 'copy'"
                )
            if plan is not None and opening is not None:
                connection.close()
                handles, opening = opening, None
                yield from self._iter_adbc(plan, batch_size, handles)
                return
            binary = [f.name for f in schema if pa.types.is_binary(f.type)]
            read_schema = pa.schema([f.with_type(pa.string()) if f.name in binary else f for f in schema])
            parse = CsvRowsParser(
                read_schema,
                null_values=[""],
                quoted_strings_can_be_null=False,
                true_values=["t"],
                false_values=["f"],
            )
            copy_sql = self.sql_dialect.copy_out_sql(query)
            with connection.cursor() as cur, cur.copy(copy_sql) as copy:
                if not schema.names:
                    return

                def batches() -> Iterator[pa.RecordBatch]:
                    # Runs in the prefetch thread, which owns the cursor from here: it gathers block
                    # n+1 from libpq (Python, holds the GIL) while a second worker parses block n
                    # (Arrow, no GIL) and the consumer writes the batches before.
                    for batch in map_ahead(parse, CopyReader(copy), name="mlops-copy-parse"):
                        if binary:
                            batch = decode_bytea(batch, binary, schema)
                        yield from rebatch([batch], batch_size)

                empty = True
                for batch in prefetch(batches(), depth=2, name="mlops-copy-read"):
                    empty = False
                    yield batch
                if empty:
                    # No rows: an empty batch still carries the result's schema downstream.
                    yield pa.RecordBatch.from_pylist([], schema=schema)
        finally:
            connection.close()
            if opening is not None:
                discard(opening)

    def _connect_adbc_ahead(self) -> Future[AdbcHandles] | None:
        """ADBC handles opening in a background thread, or None when the driver is not installed."""
        from psycopg.conninfo import make_conninfo

        from airflow_provider_mlops.hooks.postgres.adbc_read import SESSION_OPTIONS, connect_ahead

        try:
            import adbc_driver_manager  # noqa: F401
            import adbc_driver_postgresql  # noqa: F401
        except ImportError:
            return None
        kwargs = self._connect_kwargs(self.get_connection(self.get_conn_id()))
        # The CSV engine's session (UTC, ISO dates and intervals), set at connection time.
        options = " ".join(filter(None, [kwargs.pop("options", None), SESSION_OPTIONS]))
        return connect_ahead(make_conninfo(**kwargs, client_encoding="UTF8", options=options))

    def _adbc_read_plan(
        self,
        connection: psycopg.Connection,
        query: str,
        description: Sequence[Any],
        schema: pa.Schema,
        engine: str,
    ) -> AdbcReadPlan | None:
        """The ADBC plan, or None (logged) when the CSV engine reads this result."""
        from airflow_provider_mlops.hooks.postgres.adbc_read import UseCopyRead, plan_read

        try:
            import adbc_driver_manager  # noqa: F401
            import adbc_driver_postgresql  # noqa: F401
        except ImportError:
            if engine == "adbc":
                raise ImportError(
                    "read_engine='adbc' needs adbc-driver-postgresql: pip install 'airflow-provider-mlops[postgres]'"
                ) from None
            return None
        try:
            return plan_read(connection, query, description, schema)
        except UseCopyRead as why:
            if engine == "adbc":
                raise ValueError(
                    f"read_engine='adbc' cannot read this result exactly: {why}; use 'auto'"
                ) from None
            self.log.info("Reading with COPY (CSV) instead of ADBC: %s", why)
            return None

    def _iter_adbc(
        self, plan: AdbcReadPlan, batch_size: int, opening: Future[AdbcHandles]
    ) -> Iterator[pa.RecordBatch]:
        """The plan's batches read ahead in a worker thread (ADBC decodes without the GIL)."""
        import adbc_driver_manager
        import pyarrow as pa

        from airflow_provider_mlops.hooks.postgres.adbc_read import read_batches
        from airflow_provider_mlops.utils.arrow import rebatch
        from airflow_provider_mlops.utils.connection import redact
        from airflow_provider_mlops.utils.pipeline import prefetch

        conn = self.get_connection(self.get_conn_id())

        def batches() -> Iterator[pa.RecordBatch]:
            try:
                for batch in read_batches(opening.result(), plan):
                    yield from rebatch([batch], batch_size)
            except (adbc_driver_manager.Error, OSError) as err:  # OSError: an error met mid-stream
                raise RuntimeError(
                    f"Reading from PostgreSQL (connection {self.get_conn_id()!r}) with ADBC failed: "
                    + redact(str(err).strip(), [conn.password])
                ) from None

        empty = True
        for batch in prefetch(batches(), depth=2, name="mlops-adbc-read"):
            empty = False
            yield batch
        if empty:
            yield pa.RecordBatch.from_pylist([], schema=plan.schema)
