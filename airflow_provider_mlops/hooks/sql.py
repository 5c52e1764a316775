"""
Batches in and out of any common-sql database (sqlite, MySQL, ...) through its DbApiHook cursor.

This is the generic, slower path with the same interface as :class:`PostgresBatchHook`: reads use
``fetchmany`` and build Arrow batches; writes use ``executemany`` inside one transaction. PostgreSQL
connections get the COPY-based :class:`~airflow_provider_mlops.hooks.postgres.PostgresBatchHook`
instead (see :func:`~airflow_provider_mlops.hooks.connection_types.get_sql_hook`). The SQL text (quoting, types, upsert and partition clauses, the
values a driver takes) is the connection's dialect's (:mod:`airflow_provider_mlops.dialects`).
"""

from __future__ import annotations

import contextlib
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseHook

from airflow_provider_mlops.hooks.connection_types import MYSQL_TYPES
from airflow_provider_mlops.hooks.sql_sink import SqlSinkMixin
from airflow_provider_mlops.hooks.sql_source import SqlSourceMixin

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping, Sequence

    import pyarrow as pa
    from airflow.providers.common.sql.hooks.sql import DbApiHook

    from airflow_provider_mlops.dialects import AnsiDialect
    from airflow_provider_mlops.sinks.contract import OnEmpty


class SqlBatchHook(SqlSourceMixin, SqlSinkMixin, BaseHook):
    """
    Stream Arrow batches from and into any database that has a common-sql ``DbApiHook``.

    :param conn_id: an Airflow connection whose hook is a ``DbApiHook`` (sqlite, mysql, ...).
    """

    conn_name_attr = "conn_id"
    default_conn_name = "sql_default"
    ROWS_PER_FETCH = 5_000
    hook_name = "Generic SQL batches (MLOps)"

    def __init__(self, conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.conn_id = conn_id

    @cached_property
    def db_hook(self) -> DbApiHook:
        from airflow.providers.common.sql.hooks.sql import DbApiHook

        connection = self.get_connection(self.conn_id)
        try:
            hook = connection.get_hook()
        except Exception:
            from airflow_provider_mlops.hooks.mysql import MySqlBatchHook

            if (connection.conn_type or "").lower() not in MYSQL_TYPES:
                raise
            # Airflow's MySQL provider is not installed: the PyMySQL hook serves the same connection.
            hook = MySqlBatchHook(mysql_conn_id=self.conn_id)
        if not isinstance(hook, DbApiHook):
            raise TypeError(
                f"Connection {self.conn_id!r} has hook {type(hook).__name__}, not a common-sql DbApiHook"
            )
        return hook

    @cached_property
    def sql_dialect(self) -> AnsiDialect:
        """The SQL text of this connection's database (from the common-sql hook's ``dialect_name``)."""
        from airflow_provider_mlops.dialects import get_dialect

        return get_dialect(
            self.db_hook.dialect_name,
            self.db_hook.placeholder,
            sqlite=type(self.db_hook).__name__ == "SqliteHook",
        )

    @property
    def quote_char(self) -> str:
        return self.sql_dialect.quote_char

    @property
    def is_sqlite(self) -> bool:
        """SQLite has no decimal, timestamp or date storage: those travel as exact ISO / decimal text."""
        return self.sql_dialect.name == "sqlite"

    def quote(self, name: str) -> str:
        return self.sql_dialect.quote(name)

    def test_connection(self) -> tuple[bool, str]:
        # common-sql annotates DbApiHook.test_connection as returning None; it returns (bool, str).
        result: Any = self.db_hook.test_connection()  # type: ignore[func-returns-value]
        return bool(result[0]), str(result[1])

    def iter_batches(
        self,
        sql: str,
        parameters: Sequence[Any] | Mapping[str, Any] | None = None,
        *,
        batch_size: int = 50_000,
        schema: pa.Schema | None = None,
    ) -> Iterator[pa.RecordBatch]:
        """
        Run ``sql`` and stream the rows as record batches of at most ``batch_size`` rows.

        Rows are fetched and turned into Arrow columns ``ROWS_PER_FETCH`` at a time (a Python tuple
        per row costs ~10x its Arrow form), and the pieces joined into batches. Without ``schema``
        the first fetch fixes the column types (all-null columns become text).
        """
        import pyarrow as pa

        from airflow_provider_mlops.utils.arrow import concat_batches

        with contextlib.closing(self.db_hook.get_conn()) as connection:
            cursor = connection.cursor()
            try:
                if parameters:
                    cursor.execute(sql, parameters)
                else:
                    cursor.execute(sql)
                names = [d[0] for d in cursor.description or []]
                emitted = False
                pending: list[pa.RecordBatch] = []
                pending_rows = 0
                while rows := cursor.fetchmany(min(self.ROWS_PER_FETCH, batch_size - pending_rows)):
                    columns = list(zip(*rows, strict=True))
                    if schema is None:
                        first = [pa.array(list(c)) for c in columns]
                        schema = pa.schema(
                            [
                                pa.field(n, pa.string() if pa.types.is_null(a.type) else a.type)
                                for n, a in zip(names, first, strict=True)
                            ]
                        )
                        arrays = [a.cast(f.type) for a, f in zip(first, schema, strict=True)]
                    else:
                        arrays = [_typed_array(c, f, sql) for c, f in zip(columns, schema, strict=True)]
                    pending.append(pa.RecordBatch.from_arrays(arrays, schema=schema))
                    pending_rows += len(rows)
                    if pending_rows >= batch_size:
                        emitted = True
                        yield concat_batches(pending)
                        pending, pending_rows = [], 0
                if pending:
                    emitted = True
                    yield concat_batches(pending)
                if not emitted and names:
                    # No rows: still hand the columns on (as text unless a schema was given).
                    empty = schema or pa.schema([pa.field(n, pa.string()) for n in names])
                    yield pa.RecordBatch.from_pylist([], schema=empty)
            finally:
                cursor.close()

    @property
    def is_mysql(self) -> bool:
        """MySQL / MariaDB: backtick identifiers, ``ON DUPLICATE KEY UPDATE``, no NaN or infinity."""
        return self.sql_dialect.name == "mysql"

    def table_columns(self, cursor: Any, table: str) -> list[str] | None:
        """
        The column names of ``table`` (from a query that returns no rows), or None when the
        database does not know the table.
        """
        try:
            cursor.execute(self.sql_dialect.probe_sql(table))
            names = [d[0] for d in cursor.description or []]
            cursor.fetchall()
        except Exception:
            return None
        return names

    def write_batches(
        self,
        table: str,
        batches: Iterable[pa.RecordBatch],
        *,
        mode: str = "append",
        keys: Sequence[str] | None = None,
        partition: Mapping[str, Any] | None = None,
        create_table: bool = True,
        schema: pa.Schema | None = None,
        newer_column: str | None = None,
        on_empty: OnEmpty = "skip",
        **_: Any,
    ) -> dict[str, int]:
        """
        Write batches with ``executemany`` in one transaction (modes, keys, ``on_empty`` and counts
        as in :meth:`PostgresBatchHook.write_batches
        <airflow_provider_mlops.hooks.postgres.PostgresBatchHook.write_batches>`).

        ``upsert`` uses ``INSERT ... ON CONFLICT (keys) DO UPDATE`` (SQLite, PostgreSQL) or
        ``ON DUPLICATE KEY UPDATE`` (MySQL, MariaDB); ``updated`` counts the rows whose key was
        already stored (with ``newer_column``, also those kept because the stored row is newer).
        Unknown target columns, NULL keys and keys repeated within the load are errors found
        before the commit: the table is left as it was.
        """
        from airflow_provider_mlops.sinks import contract
        from airflow_provider_mlops.utils.arrow import conform, rebatch

        started = contract.begin_write(
            batches,
            target=f"table {table!r}",
            log=self.log,
            mode=mode,
            modes=contract.WRITE_MODES,
            keys=keys,
            partition=partition,
            on_empty=on_empty,
            newer_column=newer_column,
            schema=schema,
        )
        counts = contract.new_counts()
        if started is None:
            return counts
        schema, stream = started
        assert schema is not None  # begin_write peeks it
        dialect = self.sql_dialect
        names = list(schema.names)
        target = self.quote(table)
        insert = dialect.insert_sql(target, names, mode, keys, newer_column)
        key_check = contract.KeyCheck(keys) if mode == "upsert" and keys else None
        if key_check is not None:
            stream = key_check.watch(stream)
        connection = self.db_hook.get_conn()
        try:
            cursor = connection.cursor()
            existing = self.table_columns(cursor, table)
            if existing is None:
                # A failed probe may have aborted the transaction on some databases: nothing is written yet.
                connection.rollback()
                if not create_table:
                    raise contract.WriteContractError(
                        f"Table {table!r} does not exist (or cannot be read) and create_table=False"
                    )
                cursor.execute(self.create_table_sql(table, schema, keys if mode == "upsert" else None))
            else:
                # SQLite and MySQL match column names case-insensitively, as their INSERT does.
                contract.check_target_columns(names, existing, table=table, casefold=True)
            if mode == "replace":
                cursor.execute(f"DELETE FROM {target}")
                counts["deleted"] = max(cursor.rowcount, 0)
            elif mode == "replace_partition":
                where, values = dialect.partition_where(partition or {})
                cursor.execute(f"DELETE FROM {target} WHERE {where}", values)
                counts["deleted"] = max(cursor.rowcount, 0)
            # executemany per 5,000-row slice: the Python tuples never hold a whole batch.
            for batch in rebatch(conform(stream, schema), self.ROWS_PER_FETCH):
                columns = [dialect.to_driver(c, n) for c, n in zip(batch.columns, names, strict=True)]
                rows = list(zip(*columns, strict=True))
                if not rows:
                    continue
                if key_check is not None:
                    positions = [names.index(k) for k in keys or []]
                    counts["updated"] += self._count_stored(cursor, target, keys or [], positions, rows)
                cursor.executemany(insert, rows)
                counts["rows"] += len(rows)
            counts["inserted"] = counts["rows"] - counts["updated"]
            if key_check is not None:
                key_check.verify()
            if mode == "replace_partition":
                where, values = dialect.partition_where(partition or {})
                cursor.execute(f"SELECT COUNT(*) FROM {target} WHERE {where}", values)
                contract.check_partition_rows(counts["rows"], int(cursor.fetchone()[0]), partition or {})
            connection.commit()
        except Exception:
            connection.rollback()
            raise
        finally:
            connection.close()
        self.log.info("Wrote %s rows to %s (mode=%s): %s", counts["rows"], table, mode, counts)
        return counts

    def create_table_sql(self, table: str, schema: pa.Schema, keys: Sequence[str] | None = None) -> str:
        """``CREATE TABLE IF NOT EXISTS`` for an Arrow schema in this database's types."""
        return self.sql_dialect.create_table_sql(table, schema, keys)

    def _count_stored(
        self, cursor: Any, target: str, keys: Sequence[str], positions: list[int], rows: list[tuple[Any, ...]]
    ) -> int:
        """How many of ``rows`` have a key already stored in ``target`` (so upsert updates them)."""
        stored = 0
        # Chunks of 200 rows stay far below every driver's parameter limit (SQLite's is 999 on old builds).
        for start in range(0, len(rows), 200):
            chunk = rows[start : start + 200]
            where = self.sql_dialect.keys_where(keys, len(chunk))
            values = [row[p] for row in chunk for p in positions]
            cursor.execute(f"SELECT COUNT(*) FROM {target} WHERE {where}", values)
            stored += int(cursor.fetchone()[0])
        return stored


def _typed_array(values: Sequence[Any], field: pa.Field, sql: str) -> pa.Array:
    """
    ``values`` as an array of ``field.type``: directly, or through Arrow's cast from what the driver
    returned (text decimals and timestamps from SQLite, 0/1 booleans), naming the column otherwise.
    """
    import pyarrow as pa

    from airflow_provider_mlops.utils.arrow import SchemaMismatchError

    try:
        return pa.array(list(values), type=field.type)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
        pass
    try:
        return pa.array(list(values)).cast(field.type)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, TypeError) as err:
        raise SchemaMismatchError(
            f"Column {field.name!r} of {sql[:80]!r} does not fit {field.type} ({err}); pass a schema that does"
        ) from None
