"""SQLite: no decimal, timestamp or date storage, so those travel as exact text."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from airflow_provider_mlops.dialects.base import AnsiDialect

if TYPE_CHECKING:
    import pyarrow as pa


class SqliteDialect(AnsiDialect):
    """
    SQLite: ``ON CONFLICT`` upserts as the generic dialect; decimals, timestamps and dates as text.

    SQLite has no decimal or date/time types and Python 3.12 deprecates its datetime adapters:
    decimals, timestamps and dates go as text that casts back exactly (``1234.5000``,
    ``2024-01-02 03:04:05.123000+00:00``, ``2024-01-02``).
    """

    name = "sqlite"

    def column_type(self, data_type: pa.DataType, *, key: bool = False) -> str:
        import pyarrow.types as t

        if t.is_decimal(data_type):
            # NUMERIC affinity would turn '1234.5000' into a float: TEXT keeps every digit.
            return "TEXT"
        return super().column_type(data_type, key=key)

    def watermark_bound(self, value: Any) -> Any:
        """SQLite has no timestamp type: compare with its ``datetime()`` text form, in UTC."""
        if value is None:
            return None
        return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")

    def _driver_values(self, column: pa.Array, values: list[Any], name: str) -> list[Any]:
        import pyarrow.types as t

        if t.is_decimal(column.type):
            return [None if v is None else str(v) for v in values]
        if t.is_timestamp(column.type):
            return [None if v is None else v.isoformat(sep=" ", timespec="microseconds") for v in values]
        if t.is_date(column.type) or t.is_time(column.type):
            return [None if v is None else v.isoformat() for v in values]
        return values
