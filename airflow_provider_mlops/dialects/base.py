"""
The generic SQL dialect: quoting, types, insert / upsert / partition / watermark SQL as text.

What SQLite and PostgreSQL share (double-quoted identifiers, ``INSERT ... ON CONFLICT (keys) DO
UPDATE`` with ``excluded``) and what any other common-sql database gets; the subclasses change only
what their database does differently.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    import pyarrow as pa


def quote_identifier(name: str, quote: str = '"') -> str:
    """Quote one SQL identifier (``a"b`` -> ``"a""b"``); a dotted name is quoted part by part."""
    if not name or "\x00" in name:
        raise ValueError(f"Invalid SQL identifier {name!r}")
    return ".".join(quote + part.replace(quote, quote * 2) + quote for part in name.split("."))


class AnsiDialect:
    """
    SQL text for one database family.

    :param placeholder: the driver's bind placeholder (``?``, ``%s``...).
    """

    name = "sql"
    quote_char = '"'

    def __init__(self, placeholder: str = "?") -> None:
        self.placeholder = placeholder

    def __repr__(self) -> str:
        return f"{type(self).__name__}(placeholder={self.placeholder!r})"

    def quote(self, name: str) -> str:
        """A table name (a dotted ``schema.table`` part by part), quoted for this database."""
        return ".".join(self.quote_column(part) for part in name.split("."))

    def quote_column(self, name: str) -> str:
        """One column name, quoted whole: a ``.`` in a column name is part of the name."""
        self.check_identifier(name)
        return self.quote_char + name.replace(self.quote_char, self.quote_char * 2) + self.quote_char

    def check_identifier(self, name: str) -> None:
        """Refuse a name this database cannot hold, naming it (never a cryptic server error)."""
        if not name or "\x00" in name:
            raise ValueError(f"Invalid SQL identifier {name!r}")

    # ----------------------------------------------------------------------------------------------
    # reading: the incremental window
    # ----------------------------------------------------------------------------------------------
    def watermark_bound(self, value: Any) -> Any:
        """A window bound (an aware datetime or None) as the database compares it."""
        return value

    def watermark_query(
        self, sql: str, column: str, start: Any, end: Any, *, escape_percent: bool = False
    ) -> tuple[str, list[Any]]:
        """
        Wrap ``sql`` so only rows with ``start <= column < end`` come back (identifier quoted).

        :param escape_percent: the query had no parameters and the driver's paramstyle is ``format``
            / ``pyformat`` (``%s``): once parameters are added a literal ``%`` (``LIKE 'a%'``) must
            be ``%%``.
        :return: the query and the parameters to append to the query's own.
        """
        conditions, params = [], []
        ident = self.quote_column(column)
        if start is not None:
            conditions.append(f"{ident} >= {self.placeholder}")
            params.append(start)
        if end is not None:
            conditions.append(f"{ident} < {self.placeholder}")
            params.append(end)
        if not conditions:
            return sql, []
        inner = sql.strip().rstrip(";")
        if escape_percent:
            inner = inner.replace("%", "%%")
        return f"SELECT * FROM ({inner}) AS mlops_src WHERE {' AND '.join(conditions)}", params

    # ----------------------------------------------------------------------------------------------
    # writing
    # ----------------------------------------------------------------------------------------------
    def column_type(self, data_type: pa.DataType, *, key: bool = False) -> str:
        """The column type a table created from an Arrow schema gets (``key``: a primary-key column)."""
        import pyarrow.types as t

        if t.is_boolean(data_type):
            return "BOOLEAN"
        if t.is_integer(data_type):
            return "BIGINT"
        if t.is_floating(data_type):
            return "DOUBLE PRECISION"
        if t.is_decimal(data_type):
            return f"DECIMAL({data_type.precision},{data_type.scale})"
        if t.is_timestamp(data_type):
            return "TIMESTAMP"
        if t.is_date(data_type):
            return "DATE"
        if t.is_binary(data_type) or t.is_large_binary(data_type):
            return "BLOB"
        return "TEXT"

    def create_table_sql(self, table: str, schema: pa.Schema, keys: Sequence[str] | None = None) -> str:
        """``CREATE TABLE IF NOT EXISTS`` for an Arrow schema in this database's types."""
        columns = [
            f"{self.quote_column(f.name)} " + self.column_type(f.type, key=f.name in (keys or []))
            for f in schema
        ]
        if keys:
            columns.append(f"PRIMARY KEY ({', '.join(self.quote_column(k) for k in keys)})")
        return f"CREATE TABLE IF NOT EXISTS {self.quote(table)} ({', '.join(columns)})"

    def probe_sql(self, table: str) -> str:
        """A query that returns no rows but the columns of ``table`` (fails when there is no table)."""
        return f"SELECT * FROM {self.quote(table)} WHERE 1 = 0"

    def insert_sql(
        self,
        target: str,
        names: Sequence[str],
        mode: str,
        keys: Sequence[str] | None = None,
        newer_column: str | None = None,
    ) -> str:
        """
        The ``executemany`` statement for one row of ``names``; for ``upsert``, with the clause that
        updates a stored key (only by a row at least as new in ``newer_column``, when given).

        :param target: the quoted table name.
        """
        cols = ", ".join(self.quote_column(n) for n in names)
        insert = f"INSERT INTO {target} ({cols}) VALUES ({', '.join([self.placeholder] * len(names))})"
        if mode != "upsert":
            return insert
        others = [n for n in names if n not in (keys or [])]
        return insert + self.upsert_clause(target, keys or [], others, newer_column)

    def upsert_clause(
        self, target: str, keys: Sequence[str], others: Sequence[str], newer_column: str | None
    ) -> str:
        """What follows the ``INSERT ... VALUES (...)`` of an upsert (``others``: the non-key columns)."""
        conflict = ", ".join(self.quote_column(k) for k in keys)
        updates = ", ".join(f"{self.quote_column(n)} = excluded.{self.quote_column(n)}" for n in others)
        clause = f" ON CONFLICT ({conflict}) " + (f"DO UPDATE SET {updates}" if others else "DO NOTHING")
        if newer_column and others:
            column = self.quote_column(newer_column)
            clause += f" WHERE {target}.{column} IS NULL OR {target}.{column} <= excluded.{column}"
        return clause

    def partition_where(self, partition: Mapping[str, Any]) -> tuple[str, list[Any]]:
        """``a = ? AND b IS NULL`` and its parameters (a NULL partition value matches NULL)."""
        parts, values = [], []
        for column, value in partition.items():
            if value is None:
                parts.append(f"{self.quote_column(column)} IS NULL")
            else:
                parts.append(f"{self.quote_column(column)} = {self.placeholder}")
                values.append(value)
        return " AND ".join(parts), values

    def keys_where(self, keys: Sequence[str], rows: int) -> str:
        """A condition matching ``rows`` key tuples, given as ``rows * len(keys)`` parameters in row order."""
        if len(keys) == 1:
            return f"{self.quote_column(keys[0])} IN ({', '.join([self.placeholder] * rows)})"
        match = "(" + " AND ".join(f"{self.quote_column(k)} = {self.placeholder}" for k in keys) + ")"
        return " OR ".join([match] * rows)

    # ----------------------------------------------------------------------------------------------
    # values
    # ----------------------------------------------------------------------------------------------
    def to_driver(self, column: pa.Array, name: str = "") -> list[Any]:
        """The values of ``column`` as the DB-API driver takes them: nested values as JSON text."""
        import pyarrow.types as t

        from airflow_provider_mlops.utils.arrow import dumps_json

        values = column.to_pylist()
        if t.is_struct(column.type) or t.is_list(column.type) or t.is_map(column.type):
            return [None if v is None else dumps_json(v) for v in values]
        return self._driver_values(column, values, name)

    def _driver_values(self, column: pa.Array, values: list[Any], name: str) -> list[Any]:
        """Values of a flat column (timezone-aware datetimes kept): what a subclass converts."""
        return values
