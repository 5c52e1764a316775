"""
The PostgreSQL hook's write path: one transaction per write, straight or through a staging table.

A mixin of :class:`~airflow_provider_mlops.hooks.postgres.PostgresBatchHook`. It checks the write
contract (:mod:`airflow_provider_mlops.sinks.contract`), plans the write once, and runs it through a
write session (:mod:`.sessions`: ADBC binary COPY or psycopg CSV COPY) with the statements of
:class:`~airflow_provider_mlops.dialects.postgres.PostgresDialect`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from airflow_provider_mlops.dialects.postgres import STAGE_TABLE, PostgresDialect
from airflow_provider_mlops.dialects.postgres_types import arrow_type_to_pg
from airflow_provider_mlops.hooks.postgres.errors import PostgresSchemaError, PostgresWriteError
from airflow_provider_mlops.hooks.postgres.sessions import (
    AdbcSession,
    PsycopgSession,
    Session,
    UseCopy,
    WritePlan,
)
from airflow_provider_mlops.hooks.sql_sink import SqlSinkMixin
from airflow_provider_mlops.sinks.contract import WRITE_MODES, OnEmpty, WriteContractError
from airflow_provider_mlops.utils.connection import redact

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping, Sequence

    import psycopg
    import pyarrow as pa
    from airflow.sdk import Connection

WriteMode = Literal["append", "replace", "replace_partition", "upsert"]


class PostgresWriter(SqlSinkMixin):
    """
    ``write(spec, ...)`` (:class:`~airflow_provider_mlops.hooks.sql_sink.SqlSinkMixin`),
    ``write_batches`` and the table helpers of :class:`~airflow_provider_mlops.hooks.postgres.PostgresBatchHook`.
    """

    if TYPE_CHECKING:  # what the hook provides
        log: Any

        @property
        def sql_dialect(self) -> PostgresDialect: ...

        @property
        def load_engine(self) -> str: ...

        def get_conn(self) -> psycopg.Connection: ...

        def get_conn_id(self) -> str: ...

        def get_connection(self, conn_id: str) -> Connection: ...

        def _connect_kwargs(self, conn: Connection) -> dict[str, Any]: ...

    def table_columns(self, connection: Any, table: str) -> dict[str, str] | None:
        """
        Column name -> type (``format_type``) of an existing table, or None when it does not exist.

        :param connection: a psycopg connection or a write session of this hook.
        """
        row = connection.execute(self.sql_dialect.regclass_sql(table)).fetchone()
        if not row or row[0] is None:
            return None
        rows = connection.execute(self.sql_dialect.table_columns_sql(int(row[0]))).fetchall()
        return {name: type_ for name, type_ in rows}

    def create_table_sql(
        self, table: str, schema: pa.Schema, *, primary_key: Sequence[str] | None = None
    ) -> Any:
        """``CREATE TABLE IF NOT EXISTS`` for an Arrow schema, identifiers quoted."""
        return self.sql_dialect.create_table_statement(table, schema, primary_key)

    def write_batches(
        self,
        table: str,
        batches: Iterable[pa.RecordBatch],
        *,
        mode: WriteMode = "append",
        keys: Sequence[str] | None = None,
        partition: Mapping[str, Any] | None = None,
        create_table: bool = True,
        staging: bool | None = None,
        schema: pa.Schema | None = None,
        newer_column: str | None = None,
        on_empty: OnEmpty = "skip",
    ) -> dict[str, int]:
        """
        Write record batches into ``table`` in one transaction.

        Either everything is written or, on any error, nothing: the target stays as it was.

        :param table: target table, ``name`` or ``schema.name`` (quoted as identifiers).
        :param batches: the record batches; they all must have the same columns.
        :param mode: ``append``; ``replace`` (all rows replaced); ``replace_partition`` (rows matching
            ``partition`` replaced; every written row must match it); ``upsert`` (insert or update
            by ``keys``).
        :param keys: key columns for ``upsert`` (the target needs a unique index on them; a table
            created here gets them as primary key). A NULL key or a key repeated within the written
            rows is an error (:class:`~airflow_provider_mlops.sinks.contract.KeyViolation`), found
            before the commit: the table is unchanged.
        :param partition: column -> value identifying the partition for ``replace_partition``.
        :param create_table: create the target from the Arrow schema when it does not exist.
        :param staging: COPY into a temporary staging table first and merge at the end (short lock
            window on the target). Default: on for ``replace`` and ``upsert``, off otherwise.
        :param schema: the batches' schema, when ``batches`` may be empty.
        :param newer_column: ``upsert`` only: a stored row is replaced only by a row whose value in
            this column (e.g. ``updated_at``) is at least as new, so loading days out of order or
            re-running an old day never regresses the table.
        :param on_empty: when there are no rows: ``skip`` (the table is not touched, not even
            created), ``replace`` (``replace`` / ``replace_partition`` empty the table / partition)
            or ``fail`` (:class:`~airflow_provider_mlops.sinks.contract.EmptySourceError`).
        :return: counts: ``rows`` written, ``inserted``, ``updated``, ``deleted``.
        """
        from airflow_provider_mlops.sinks import contract

        started = contract.begin_write(
            batches,
            target=f"table {table!r}",
            log=self.log,
            mode=mode,
            modes=WRITE_MODES,
            keys=keys,
            partition=partition,
            on_empty=on_empty,
            newer_column=newer_column,
            schema=schema,
        )
        if started is None:
            return contract.new_counts()
        schema, stream = started
        assert schema is not None  # begin_write peeks it
        self.sql_dialect.check_names(table, schema.names)
        use_staging = staging if staging is not None else mode in ("replace", "upsert")
        if mode == "upsert":
            use_staging = True
        plan = WritePlan(table, schema, mode, keys, partition, create_table, use_staging, newer_column)
        if self._adbc_wanted():
            try:
                counts = self._write(self._adbc_session(), plan, stream)
            except UseCopy as why:
                # Decided before the first batch is consumed: nothing was written yet.
                self.log.info("Loading %s with COPY (CSV) instead of ADBC: %s", table, why)
            else:
                self.log.info(
                    "Wrote %s rows to %s with ADBC (mode=%s): %s", counts["rows"], table, mode, counts
                )
                return counts
        counts = self._write(PsycopgSession(self.get_conn()), plan, stream)
        self.log.info("Wrote %s rows to %s (mode=%s): %s", counts["rows"], table, mode, counts)
        return counts

    def _adbc_wanted(self) -> bool:
        if self.load_engine == "copy":
            return False
        try:
            import adbc_driver_manager  # noqa: F401
            import adbc_driver_postgresql  # noqa: F401
        except ImportError:
            if self.load_engine == "adbc":
                raise ImportError(
                    "load_engine='adbc' needs adbc-driver-postgresql: pip install 'airflow-provider-mlops[postgres]'"
                ) from None
            return False
        return True

    def _adbc_session(self) -> AdbcSession:
        import adbc_driver_postgresql
        from psycopg.conninfo import make_conninfo

        conn = self.get_connection(self.get_conn_id())
        kwargs = self._connect_kwargs(conn)
        try:
            # The database handle connects lazily: connecting the session proves the credentials.
            return AdbcSession(
                adbc_driver_postgresql.connect(make_conninfo(**kwargs)), strict=self.load_engine == "adbc"
            )
        except Exception as err:
            raise ConnectionError(
                f"Cannot connect to PostgreSQL at {kwargs['host']}:{kwargs['port']} "
                f"as {kwargs.get('user')!r} (connection {self.get_conn_id()!r}): "
                + redact(str(err).strip(), [conn.password])
            ) from None

    def _write(self, session: Session, plan: WritePlan, stream: Iterator[pa.RecordBatch]) -> dict[str, int]:
        """Apply ``plan`` in one transaction of ``session``; on any error the target is unchanged."""
        from psycopg import sql as pgsql

        from airflow_provider_mlops.sinks import contract

        table, schema, mode, keys = plan.table, plan.schema, plan.mode, plan.keys
        dialect = self.sql_dialect
        names = list(schema.names)
        target = dialect.table_ident(table)
        counts = contract.new_counts()
        key_check = contract.KeyCheck(keys) if mode == "upsert" and keys else None
        try:
            with session.transaction():
                existing = self.table_columns(session, table)
                if existing is None:
                    if not plan.create_table:
                        raise PostgresSchemaError(f"Table {table!r} does not exist and create_table=False")
                    # Checked before anything is created: a fallback to COPY finds the database as it was.
                    session.check_types(schema, {f.name: arrow_type_to_pg(f.type) for f in schema})
                    session.execute(
                        self.create_table_sql(table, schema, primary_key=keys if mode == "upsert" else None)
                    )
                else:
                    contract.check_target_columns(
                        names, list(existing), table=table, error=PostgresSchemaError
                    )
                    session.check_types(schema, existing)
                if plan.use_staging:
                    # Temporary tables are private to the session and dropped at commit.
                    stage = pgsql.Identifier(STAGE_TABLE)
                    for statement in dialect.stage_sql(stage, names, target):
                        session.execute(statement)
                    if key_check is not None:
                        stream = key_check.watch(stream)
                    counts["rows"] = session.copy_in(stage, None, names, stream, schema)
                    if key_check is not None:
                        # Staged, not merged: a refused load leaves the target as it was.
                        key_check.verify()
                    self._merge(
                        session, mode, target, stage, names, keys, plan.partition, counts, plan.newer_column
                    )
                else:
                    self._clear(session, mode, target, plan.partition, counts)
                    counts["rows"] = session.copy_in(target, table, names, stream, schema)
                    counts["inserted"] = counts["rows"]
                    if mode == "replace_partition":
                        self._check_partition(session, target, plan.partition or {}, counts["rows"])
        except (PostgresWriteError, UseCopy, WriteContractError):
            raise
        except Exception as err:
            if key_check is not None and key_check.error is not None:
                raise key_check.error from None
            conn = self.get_connection(self.get_conn_id())
            raise PostgresWriteError(
                f"Writing to {table!r} (mode={mode}) failed; the table is unchanged: "
                + redact(str(err), [conn.password])
            ) from err
        finally:
            session.close()
        return counts

    def _clear(
        self,
        session: Session,
        mode: str,
        target: Any,
        partition: Mapping[str, Any] | None,
        counts: dict[str, int],
    ) -> None:
        """``replace`` empties the target, ``replace_partition`` the partition; ``deleted`` counts the rows."""
        dialect = self.sql_dialect
        if mode == "replace":
            # TRUNCATE reports no rows: counted first, as every sink's ``deleted``.
            row = session.execute(dialect.count_sql(target)).fetchone()
            session.execute(dialect.truncate_sql(target))
            counts["deleted"] = int(row[0]) if row else 0
        elif mode == "replace_partition":
            counts["deleted"] = int(
                session.execute(dialect.delete_partition_sql(target, partition or {})).rowcount
            )

    def _check_partition(
        self, session: Session, target: Any, partition: Mapping[str, Any], expected: int
    ) -> None:
        from airflow_provider_mlops.sinks import contract

        row = session.execute(self.sql_dialect.count_partition_sql(target, partition)).fetchone()
        contract.check_partition_rows(expected, row[0] if row else 0, partition)

    def _merge(
        self,
        session: Session,
        mode: str,
        target: Any,
        stage: Any,
        names: list[str],
        keys: Sequence[str] | None,
        partition: Mapping[str, Any] | None,
        counts: dict[str, int],
        newer_column: str | None = None,
    ) -> None:
        """Move the staged rows into the target (inside the caller's transaction)."""
        dialect = self.sql_dialect
        if mode != "upsert":
            self._clear(session, mode, target, partition, counts)
            counts["inserted"] = session.execute(dialect.insert_select_sql(target, names, stage)).rowcount
            if mode == "replace_partition":
                self._check_partition(session, target, partition or {}, counts["rows"])
            return
        row = session.execute(dialect.merge_sql(target, stage, names, keys or [], newer_column)).fetchone()
        counts["inserted"], counts["updated"] = (int(row[0]), int(row[1])) if row else (0, 0)
