"""
PostgreSQL hook that streams Arrow record batches in and out (psycopg 3 and ADBC).

Reads run ``COPY (query) TO STDOUT (FORMAT csv)``, gather the rows into blocks of whole rows and parse
each block with Arrow's CSV reader, typed from the query's result description, a couple of batches
ahead in worker threads, so memory stays flat whatever the table size and any value goes (quoted
newlines, values of any size up to PostgreSQL's 1 GB). Writes go, in one transaction, either
straight into the target or into a temporary staging table, then apply the write mode (append,
replace, replace a partition, upsert). The rows travel with ADBC's binary ``COPY`` when every
column maps exactly to its target column, and otherwise as CSV encoded by Arrow and sent with
psycopg's ``COPY ... FROM STDIN``. Identifiers are composed with ``psycopg.sql.Identifier``.

The statements are :class:`~airflow_provider_mlops.dialects.postgres.PostgresDialect`'s, the CSV
codec is in :mod:`.copy_codec`, the psycopg and ADBC write sessions in :mod:`.sessions` and the type
tables in :mod:`.types`.
"""

from __future__ import annotations

import contextlib
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

from airflow.providers.common.sql.hooks.sql import DbApiHook

from airflow_provider_mlops.dialects.postgres import PostgresDialect
from airflow_provider_mlops.hooks.postgres.reader import PostgresReader
from airflow_provider_mlops.hooks.postgres.writer import PostgresWriter
from airflow_provider_mlops.hooks.sql_source import SqlSourceMixin
from airflow_provider_mlops.utils.connection import as_int, redact

if TYPE_CHECKING:
    import psycopg
    from airflow.sdk import Connection

LoadEngine = Literal["auto", "adbc", "copy"]
LOAD_ENGINES: tuple[str, ...] = ("auto", "adbc", "copy")
ReadEngine = Literal["auto", "adbc", "copy"]
READ_ENGINES: tuple[str, ...] = ("auto", "adbc", "copy")

# libpq parameters that may be given as connection extras.
_LIBPQ_EXTRAS = (
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "sslpassword",
    "sslcrl",
    "application_name",
    "options",
    "target_session_attrs",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_count",
    "client_encoding",
    "gssencmode",
    "channel_binding",
)


class PostgresBatchHook(PostgresReader, PostgresWriter, SqlSourceMixin, DbApiHook):
    """
    Interact with PostgreSQL through psycopg 3, streaming Arrow record batches in and out.

    Works with connections of this provider's ``mlops_postgres`` type and with the official
    provider's ``postgres`` connections alike. Extras: any libpq parameter (``sslmode``,
    ``sslrootcert``, ``application_name``, ``options``...), ``connect_timeout``.

    :param postgres_conn_id: the Airflow connection id.
    :param load_engine: how :meth:`write_batches` sends rows: ``auto`` (ADBC's binary COPY when
        every column maps exactly, else CSV COPY), ``adbc`` or ``copy``. Default: the connection
        extra ``load_engine``, else ``auto``.
    :param read_engine: how :meth:`iter_batches` reads rows: ``auto`` (ADBC's binary COPY when every
        column of the result has an exact ADBC form, else CSV COPY; the task log says which ran and
        why), ``adbc`` (refuse when a column has none) or ``copy``. Both give the same schema and
        values. Default: the connection extra ``read_engine``, else ``auto``.
    """

    conn_name_attr = "postgres_conn_id"
    default_conn_name = "postgres_default"
    conn_type = "mlops-postgres"
    hook_name = "PostgreSQL (MLOps)"
    supports_autocommit = True
    supports_executemany = True
    _test_connection_sql = "SELECT 1"

    def __init__(
        self,
        *args: Any,
        load_engine: LoadEngine | None = None,
        read_engine: ReadEngine | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.database: str | None = kwargs.get("database")
        if load_engine is not None and load_engine not in LOAD_ENGINES:
            raise ValueError(f"load_engine must be one of {LOAD_ENGINES}, got {load_engine!r}")
        if read_engine is not None and read_engine not in READ_ENGINES:
            raise ValueError(f"read_engine must be one of {READ_ENGINES}, got {read_engine!r}")
        self._load_engine = load_engine
        self._read_engine = read_engine

    @property
    def load_engine(self) -> str:
        """``auto`` (ADBC when installed and every column maps exactly, else COPY CSV), ``adbc`` or ``copy``."""
        if self._load_engine is not None:
            return self._load_engine
        engine = self.get_connection(self.get_conn_id()).extra_dejson.get("load_engine") or "auto"
        if engine not in LOAD_ENGINES:
            raise ValueError(f"Connection extra load_engine must be one of {LOAD_ENGINES}, got {engine!r}")
        return str(engine)

    @property
    def read_engine(self) -> str:
        """``auto`` (ADBC when installed and every column has an exact ADBC form, else COPY CSV), ``adbc`` or ``copy``."""
        if self._read_engine is not None:
            return self._read_engine
        engine = self.get_connection(self.get_conn_id()).extra_dejson.get("read_engine") or "auto"
        if engine not in READ_ENGINES:
            raise ValueError(f"Connection extra read_engine must be one of {READ_ENGINES}, got {engine!r}")
        return str(engine)

    @property
    def dialect_name(self) -> str:
        return "postgresql"

    @cached_property
    def sql_dialect(self) -> PostgresDialect:
        """The statements this hook runs (common-sql's ``dialect`` stays the one ``insert_rows`` uses)."""
        return PostgresDialect()

    # ----------------------------------------------------------------------------------------------
    # connection
    # ----------------------------------------------------------------------------------------------
    def _connect_kwargs(self, conn: Connection) -> dict[str, Any]:
        extra = conn.extra_dejson
        kwargs: dict[str, Any] = {
            "host": conn.host or "localhost",
            "port": conn.port or 5432,
            "user": conn.login,
            "password": conn.password,
            "dbname": self.database or conn.schema or extra.get("dbname") or "postgres",
            "connect_timeout": as_int(extra.get("connect_timeout"), name="connect_timeout", default=10),
        }
        kwargs.update({k: extra[k] for k in _LIBPQ_EXTRAS if extra.get(k) not in (None, "")})
        return {k: v for k, v in kwargs.items() if v is not None}

    def get_conn(self) -> psycopg.Connection:
        """A new psycopg 3 connection (not in autocommit mode) with the session in UTC and ISO dates."""
        import psycopg

        conn = self.get_connection(self.get_conn_id())
        kwargs = self._connect_kwargs(conn)
        try:
            connection = psycopg.connect(**kwargs)
        except psycopg.Error as err:
            raise ConnectionError(
                f"Cannot connect to PostgreSQL at {kwargs['host']}:{kwargs['port']} "
                f"as {kwargs.get('user')!r} (connection {self.get_conn_id()!r}): "
                + redact(str(err).strip(), [conn.password])
            ) from None
        with connection.cursor() as cur:
            cur.execute("SET TIME ZONE 'UTC'; SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'iso_8601'")
        connection.commit()
        return connection

    def get_uri(self) -> str:
        from urllib.parse import quote

        conn = self.get_connection(self.get_conn_id())
        auth = ""
        if conn.login:
            auth = quote(conn.login, safe="")
            if conn.password:
                auth += ":" + quote(conn.password, safe="")
            auth += "@"
        dbname = self.database or conn.schema or "postgres"
        return f"postgresql+psycopg://{auth}{conn.host or 'localhost'}:{conn.port or 5432}/{dbname}"

    def test_connection(self) -> tuple[bool, str]:  # type: ignore[override]
        """Connect and run ``SELECT 1``; the message is free of secrets."""
        try:
            with contextlib.closing(self.get_conn()) as connection:
                version = connection.execute("SHOW server_version").fetchone()
        except Exception as err:
            conn = self.get_connection(self.get_conn_id())
            # Airflow's Test button runs the hook under a random temporary id ("LPuPtxOc"): naming it
            # would only confuse the person who pressed the button.
            message = str(err).replace(f" (connection {self.get_conn_id()!r})", "")
            return False, redact(message, [conn.password])
        return True, f"Connection successfully tested (PostgreSQL {version[0] if version else '?'})"
