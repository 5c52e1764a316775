"""
PostgreSQL: the statements of the COPY hook (staging, merge, partition), composed with ``psycopg.sql``.

Identifiers are ``psycopg.sql.Identifier`` and values ``psycopg.sql.Literal``, so no statement is
built by pasting text. The hook (:mod:`airflow_provider_mlops.hooks.postgres`) runs them inside its
transaction; the text-level methods (watermark window) are the generic dialect's with ``%s``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_provider_mlops.dialects.base import AnsiDialect

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    import pyarrow as pa
    from psycopg import sql as pgsql

#: the column the staging table numbers its rows with (the last row of a key wins an upsert)
SEQ_COLUMN = "__mlops_seq"
#: the staging table: temporary, private to the session, dropped at commit
STAGE_TABLE = "_mlops_stage"


class PostgresDialect(AnsiDialect):
    """PostgreSQL (psycopg 3): ``%s`` placeholders, double quotes, ``ON CONFLICT`` upserts."""

    name = "postgresql"

    def __init__(self, placeholder: str = "%s") -> None:
        super().__init__(placeholder)

    # PostgreSQL cuts identifiers longer than NAMEDATALEN - 1 bytes (63) with only a NOTICE: a
    # column "a" * 70 would come back as "a" * 63. Refuse instead, naming it.
    MAX_IDENTIFIER_BYTES = 63

    def check_identifier(self, name: str) -> None:
        super().check_identifier(name)
        size = len(name.encode("utf-8"))
        if size > self.MAX_IDENTIFIER_BYTES:
            raise ValueError(
                f"PostgreSQL names are at most {self.MAX_IDENTIFIER_BYTES} bytes; {name!r} has {size} "
                "(PostgreSQL would silently shorten it): rename it, e.g. with a transform rename step"
            )

    def check_names(self, table: str, names: Sequence[str]) -> None:
        """The target table and every column name fit (before anything is written)."""
        for part in table.split("."):
            self.check_identifier(part)
        for name in names:
            self.check_identifier(name)

    # ----------------------------------------------------------------------------------------------
    # identifiers and catalog
    # ----------------------------------------------------------------------------------------------
    @staticmethod
    def table_ident(table: str) -> pgsql.Identifier:
        """``name`` or ``schema.name`` as an identifier."""
        from psycopg import sql as pgsql

        parts = table.split(".")
        if len(parts) > 2:
            raise ValueError(f"Table name {table!r} has more than schema.table parts")
        return pgsql.Identifier(*parts)

    @staticmethod
    def columns(names: Sequence[str]) -> pgsql.Composed:
        from psycopg import sql as pgsql

        return pgsql.SQL(", ").join(map(pgsql.Identifier, names))

    def regclass_sql(self, table: str) -> pgsql.Composed:
        """The table's oid, or NULL when it does not exist."""
        from psycopg import sql as pgsql

        regclass = pgsql.Literal(self.table_ident(table).as_string())
        return pgsql.SQL("SELECT to_regclass({})::oid").format(regclass)

    @staticmethod
    def table_columns_sql(oid: int) -> pgsql.Composed:
        """Column name and type (``format_type``) of the table ``oid``, in column order."""
        from psycopg import sql as pgsql

        return pgsql.SQL(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = {} AND attnum > 0 AND NOT attisdropped ORDER BY attnum"
        ).format(pgsql.Literal(oid))

    def create_table_statement(
        self, table: str, schema: pa.Schema, keys: Sequence[str] | None = None
    ) -> pgsql.Composed:
        """``CREATE TABLE IF NOT EXISTS`` for an Arrow schema, identifiers quoted."""
        from psycopg import sql as pgsql

        from airflow_provider_mlops.dialects.postgres_types import arrow_type_to_pg

        columns = [
            pgsql.SQL("{} {}{}").format(
                pgsql.Identifier(f.name),
                pgsql.SQL(arrow_type_to_pg(f.type)),
                pgsql.SQL("" if f.nullable else " NOT NULL"),
            )
            for f in schema
        ]
        if keys:
            columns.append(pgsql.SQL("PRIMARY KEY ({})").format(self.columns(keys)))
        return pgsql.SQL("CREATE TABLE IF NOT EXISTS {} ({})").format(
            self.table_ident(table), pgsql.SQL(", ").join(columns)
        )

    # ----------------------------------------------------------------------------------------------
    # reading
    # ----------------------------------------------------------------------------------------------
    @staticmethod
    def describe_sql(query: str) -> pgsql.Composed:
        """The query with no rows: its result description gives the schema."""
        from psycopg import sql as pgsql

        return pgsql.SQL("SELECT * FROM ({}) AS q LIMIT 0").format(pgsql.SQL(query))

    @staticmethod
    def copy_out_sql(query: str) -> pgsql.Composed:
        from psycopg import sql as pgsql

        return pgsql.SQL("COPY ({}) TO STDOUT (FORMAT csv)").format(pgsql.SQL(query))

    # ----------------------------------------------------------------------------------------------
    # writing
    # ----------------------------------------------------------------------------------------------
    def copy_in_sql(self, target: pgsql.Composable, names: Sequence[str]) -> pgsql.Composed:
        from psycopg import sql as pgsql

        return pgsql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(target, self.columns(names))

    def stage_sql(self, stage: pgsql.Composable, names: Sequence[str], target: pgsql.Composable) -> list[Any]:
        """A temporary staging table with the target's columns, its rows numbered in arrival order."""
        from psycopg import sql as pgsql

        return [
            pgsql.SQL("CREATE TEMP TABLE {} ON COMMIT DROP AS SELECT {} FROM {} WITH NO DATA").format(
                stage, self.columns(names), target
            ),
            pgsql.SQL("ALTER TABLE {} ADD COLUMN {} bigint GENERATED ALWAYS AS IDENTITY").format(
                stage, pgsql.Identifier(SEQ_COLUMN)
            ),
        ]

    @staticmethod
    def count_sql(target: pgsql.Composable) -> pgsql.Composed:
        from psycopg import sql as pgsql

        return pgsql.SQL("SELECT count(*) FROM {}").format(target)

    @staticmethod
    def truncate_sql(target: pgsql.Composable) -> pgsql.Composed:
        from psycopg import sql as pgsql

        return pgsql.SQL("TRUNCATE {}").format(target)

    def partition_condition(self, partition: Mapping[str, Any]) -> pgsql.Composed:
        """``a IS NOT DISTINCT FROM 'x' AND ...``: a NULL partition value matches NULL."""
        from psycopg import sql as pgsql

        return pgsql.SQL(" AND ").join(
            pgsql.SQL("{} IS NOT DISTINCT FROM {}").format(pgsql.Identifier(c), pgsql.Literal(v))
            for c, v in partition.items()
        )

    def delete_partition_sql(self, target: pgsql.Composable, partition: Mapping[str, Any]) -> pgsql.Composed:
        from psycopg import sql as pgsql

        return pgsql.SQL("DELETE FROM {} WHERE {}").format(target, self.partition_condition(partition))

    def count_partition_sql(self, target: pgsql.Composable, partition: Mapping[str, Any]) -> pgsql.Composed:
        from psycopg import sql as pgsql

        return pgsql.SQL("SELECT count(*) FROM {} WHERE {}").format(
            target, self.partition_condition(partition)
        )

    def insert_select_sql(
        self, target: pgsql.Composable, names: Sequence[str], stage: pgsql.Composable
    ) -> pgsql.Composed:
        from psycopg import sql as pgsql

        cols = self.columns(names)
        return pgsql.SQL("INSERT INTO {} ({}) SELECT {} FROM {}").format(target, cols, cols, stage)

    def merge_sql(
        self,
        target: pgsql.Composable,
        stage: pgsql.Composable,
        names: Sequence[str],
        keys: Sequence[str],
        newer_column: str | None = None,
    ) -> pgsql.Composed:
        """
        Upsert the staged rows into the target by ``keys``, the last staged row of a key winning
        (with ``newer_column``: a stored row is replaced only by one at least as new).

        Returns one row: how many rows were inserted and how many updated.
        """
        from psycopg import sql as pgsql

        key_cols = self.columns(keys)
        others = [n for n in names if n not in keys]
        action: pgsql.Composable
        if others:
            action = pgsql.SQL("DO UPDATE SET {}").format(
                pgsql.SQL(", ").join(
                    pgsql.SQL("{} = EXCLUDED.{}").format(pgsql.Identifier(n), pgsql.Identifier(n))
                    for n in others
                )
            )
        else:
            action = pgsql.SQL("DO NOTHING")
        order = pgsql.SQL("{} DESC").format(pgsql.Identifier(SEQ_COLUMN))
        if newer_column:
            newer = pgsql.Identifier(newer_column)
            if others:
                action = pgsql.SQL("{} WHERE {}.{} IS NULL OR {}.{} <= EXCLUDED.{}").format(
                    action, target, newer, target, newer, newer
                )
            order = pgsql.SQL("{} DESC NULLS LAST, {}").format(newer, order)
        return pgsql.SQL(
            "WITH up AS (INSERT INTO {target} ({cols}) "
            "SELECT DISTINCT ON ({keys}) {cols} FROM {stage} ORDER BY {keys}, {order} "
            "ON CONFLICT ({keys}) {action} RETURNING (xmax = 0) AS inserted) "
            "SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM up"
        ).format(
            target=target,
            cols=self.columns(names),
            keys=key_cols,
            stage=stage,
            order=order,
            action=action,
        )
