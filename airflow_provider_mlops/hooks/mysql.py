"""
A common-sql ``DbApiHook`` for MySQL and MariaDB over PyMySQL (pure Python, no C build).

Airflow's MySQL provider needs ``mysqlclient``, which compiles against the MySQL client library;
this hook gives the generic batch path (:class:`~airflow_provider_mlops.hooks.sql.SqlBatchHook`) a
driver that installs anywhere. Connections of type ``mlops-mysql`` use it, and so do ``mysql`` /
``mariadb`` connections when the MySQL provider is not installed.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.sql.hooks.sql import DbApiHook

from airflow_provider_mlops.utils.connection import as_int, redact

if TYPE_CHECKING:
    import pymysql


class MySqlBatchHook(DbApiHook):
    """
    MySQL / MariaDB through PyMySQL, as a common-sql hook.

    Host, port (default 3306), login, password and schema (the database) as usual; extras:
    ``unix_socket``, ``charset`` (default ``utf8mb4``), ``connect_timeout`` (seconds, default 10),
    ``ssl_ca`` (path of a CA file: TLS on).

    :param mysql_conn_id: the Airflow connection id.
    """

    conn_name_attr = "mysql_conn_id"
    default_conn_name = "mysql_default"
    conn_type = "mlops-mysql"
    hook_name = "MySQL / MariaDB (MLOps, PyMySQL)"
    supports_autocommit = True
    _placeholder = "%s"

    @cached_property
    def dialect_name(self) -> str:
        return "mysql"

    def _connect_kwargs(self) -> dict[str, Any]:
        conn = self.get_connection(self.get_conn_id())
        extra = conn.extra_dejson
        kwargs: dict[str, Any] = {
            "host": conn.host or "localhost",
            "port": int(conn.port or 3306),
            "user": conn.login or None,
            "password": conn.password or "",
            "database": conn.schema or None,
            "charset": str(extra.get("charset") or "utf8mb4"),
            "connect_timeout": as_int(extra.get("connect_timeout", 10), name="connect_timeout"),
            # Transactions are ours to commit: one load is one transaction.
            "autocommit": False,
            "local_infile": False,
        }
        if extra.get("unix_socket"):
            kwargs["unix_socket"] = str(extra["unix_socket"])
        if extra.get("ssl_ca"):
            kwargs["ssl"] = {"ca": str(extra["ssl_ca"])}
        return kwargs

    def get_conn(self) -> pymysql.connections.Connection:
        import pymysql

        kwargs = self._connect_kwargs()
        try:
            return pymysql.connect(**kwargs)
        except pymysql.MySQLError as err:
            raise ConnectionError(
                f"Cannot connect to MySQL / MariaDB at {kwargs['host']}:{kwargs['port']} as "
                f"{kwargs['user']!r} (connection {self.get_conn_id()!r}): "
                + redact(str(err), [kwargs["password"]])
            ) from None

    def get_uri(self) -> str:
        from urllib.parse import quote

        kwargs = self._connect_kwargs()
        auth = quote(kwargs["user"] or "", safe="")
        return f"mysql+pymysql://{auth}@{kwargs['host']}:{kwargs['port']}/{kwargs['database'] or ''}"

    def test_connection(self) -> tuple[bool, str]:  # type: ignore[override]
        try:
            connection = self.get_conn()
            try:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT VERSION()")
                    row = cursor.fetchone()
            finally:
                connection.close()
        except Exception as err:
            return False, str(err)
        return True, f"Connection successfully tested (server {row[0] if row else '?'})"
