"""MySQL and MariaDB: backtick identifiers, ``ON DUPLICATE KEY UPDATE``, no NaN or infinity."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from airflow_provider_mlops.dialects.base import AnsiDialect

if TYPE_CHECKING:
    from collections.abc import Sequence

    import pyarrow as pa


class MySqlDialect(AnsiDialect):
    """
    MySQL / MariaDB: backticks, ``ON DUPLICATE KEY UPDATE``, ``DATETIME(6)``.

    ``DATETIME`` has no time zone: aware timestamps go as UTC wall time; NaN and infinity, which it
    cannot store, are an error naming the column.
    """

    name = "mysql"
    quote_char = "`"

    def __init__(self, placeholder: str = "%s") -> None:
        super().__init__(placeholder)

    def check_identifier(self, name: str) -> None:
        # MySQL / MariaDB identifiers: at most 64 characters of the Basic Multilingual Plane, no
        # trailing space. The server's own error ("Invalid utf8mb4 character string") names neither
        # the column nor the rule.
        super().check_identifier(name)
        if len(name) > 64:
            raise ValueError(f"MySQL/MariaDB names are at most 64 characters: {name!r} has {len(name)}")
        if any(ord(c) > 0xFFFF for c in name):
            raise ValueError(
                f"MySQL/MariaDB cannot name a column or table {name!r}: characters outside the Basic "
                "Multilingual Plane (emoji, U+10000 and above) are not allowed in identifiers; rename it"
            )
        if name.endswith(" "):
            raise ValueError(f"MySQL/MariaDB names cannot end with a space: {name!r}")

    def column_type(self, data_type: pa.DataType, *, key: bool = False) -> str:
        import pyarrow.types as t

        if t.is_string(data_type) or t.is_large_string(data_type):
            # A TEXT column cannot be a key; 255 characters of utf8mb4 fit InnoDB's 3,072-byte key limit.
            return "VARCHAR(255)" if key else "LONGTEXT"
        if t.is_binary(data_type) or t.is_large_binary(data_type):
            return "VARBINARY(255)" if key else "LONGBLOB"
        if t.is_timestamp(data_type):
            # TIMESTAMP would convert through the session time zone and stop in 2038.
            return "DATETIME(6)"
        return super().column_type(data_type, key=key)

    def upsert_clause(
        self, target: str, keys: Sequence[str], others: Sequence[str], newer_column: str | None
    ) -> str:
        if not others:
            # A no-op assignment: a stored key is left as it is, as DO NOTHING does.
            first = self.quote_column(keys[0])
            return f" ON DUPLICATE KEY UPDATE {first} = {first}"
        if newer_column:
            newer = self.quote_column(newer_column)
            keep = f"{target}.{newer} IS NULL OR {target}.{newer} <= VALUES({newer})"
            # Assignments run left to right and see earlier ones: the newer column goes last.
            ordered = sorted(others, key=lambda n: n == newer_column)
            updates = ", ".join(
                f"{self.quote_column(n)} = IF({keep}, VALUES({self.quote_column(n)}), {self.quote_column(n)})"
                for n in ordered
            )
        else:
            updates = ", ".join(f"{self.quote_column(n)} = VALUES({self.quote_column(n)})" for n in others)
        return f" ON DUPLICATE KEY UPDATE {updates}"

    def _driver_values(self, column: pa.Array, values: list[Any], name: str) -> list[Any]:
        import pyarrow.types as t

        if t.is_floating(column.type):
            import pyarrow.compute as pc

            bad = pc.invert(pc.fill_null(pc.is_finite(column), True))
            if pc.any(bad).as_py():
                row = pc.indices_nonzero(bad)[0].as_py()
                raise ValueError(
                    f"MySQL / MariaDB cannot store NaN or infinity: column {name!r} holds {values[row]} "
                    f"(row {row} of a batch); map them to NULL or a number upstream"
                )
        if t.is_timestamp(column.type) and column.type.tz is not None:
            return [None if v is None else v.astimezone(dt.UTC).replace(tzinfo=None) for v in values]
        return values
