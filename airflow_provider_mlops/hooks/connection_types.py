"""
Which hook serves a connection: the connection types this provider registers, by kind.

The names come from the provider's own table (:data:`~airflow_provider_mlops.get_provider_info.CONN_TYPES`
and its ``hook-class-name`` entries): ``mlops-postgres``, and ``mlops_postgres``, which is what
Airflow makes of ``mlops-postgres://`` when it parses a URI (``airflow connections test`` does), plus
the official providers' types the hooks also accept (``postgres``, ``mongo``, ``http``, ``aws``...).
A low module: it imports no hook module, it loads a hook class by its name in the provider's table
when one is asked for, so the hooks may import it without a cycle (``tests/test_import_layers.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_provider_mlops.get_provider_info import CONN_TYPES, CONNECTION_TYPES, LEGACY_CONN_TYPES

if TYPE_CHECKING:
    from airflow_provider_mlops.sinks.protocols import SqlSourceSink


#: the hook of every other (common-sql) connection, loaded by name like the table's hook classes
SQL_HOOK_CLASS = "airflow_provider_mlops.hooks.sql.SqlBatchHook"


def _names(kind: str, *accepted: str) -> frozenset[str]:
    return frozenset({*accepted, CONN_TYPES[kind], LEGACY_CONN_TYPES[kind]})


POSTGRES_TYPES = _names("postgres", "postgres", "postgresql")
MONGO_TYPES = _names("mongo", "mongo", "mongodb")
HTTP_TYPES = _names("http", "http", "https")
STORAGE_TYPES = _names("s3", "aws", "s3")
MYSQL_TYPES = _names("mysql", "mysql", "mariadb")

#: kind -> (connection types, the provider's kind in CONN_TYPES); any other type is a common-sql ``sql``
KINDS: dict[str, tuple[frozenset[str], str]] = {
    "postgres": (POSTGRES_TYPES, "postgres"),
    "mongo": (MONGO_TYPES, "mongo"),
    "http": (HTTP_TYPES, "http"),
    "storage": (STORAGE_TYPES, "s3"),
}


def kind_of(conn_type: str | None) -> str:
    """``postgres``, ``mongo``, ``http``, ``storage`` or ``sql`` for a connection type."""
    conn_type = (conn_type or "").lower()
    return next((kind for kind, (types, _) in KINDS.items() if conn_type in types), "sql")


def connection_kind(conn_id: str | None) -> str:
    """The kind of a connection id; no connection id is the default object storage."""
    if not conn_id:
        return "storage"
    from airflow.providers.common.compat.sdk import BaseHook

    return kind_of(BaseHook.get_connection(conn_id).conn_type)


def hook_class(kind: str) -> type[Any]:
    """The hook class the provider registers for ``kind`` (its ``hook-class-name``; ``sql``: SqlBatchHook)."""
    import importlib

    if kind == "sql":
        path = SQL_HOOK_CLASS
    else:
        conn_type = CONN_TYPES[KINDS[kind][1]]
        path = next(e for e in CONNECTION_TYPES if e["connection-type"] == conn_type)["hook-class-name"]
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return]


def get_batch_hook(conn_id: str | None, kind: str | None = None) -> Any:
    """
    The batch hook for a connection, as ``Connection.get_hook()`` builds one (the class's
    ``conn_name_attr`` gets the id): PostgreSQL's COPY hook, MongoDB, HTTP, object storage, or the
    generic common-sql hook for any other type.
    """
    kind = kind or connection_kind(conn_id)
    cls = hook_class(kind)
    return cls(**{cls.conn_name_attr: conn_id if kind == "storage" else conn_id or ""})


def get_sql_hook(conn_id: str) -> SqlSourceSink:
    """The batch hook for a SQL connection: COPY-based for PostgreSQL, generic common-sql otherwise."""
    kind = connection_kind(conn_id)
    return get_batch_hook(conn_id, "postgres" if kind == "postgres" else "sql")  # type: ignore[no-any-return]


if TYPE_CHECKING:
    # mypy proves here that the hooks fit the protocols the operators depend on.
    from airflow_provider_mlops.hooks.http import HttpApiHook
    from airflow_provider_mlops.hooks.mongo import MongoBatchHook
    from airflow_provider_mlops.hooks.postgres import PostgresBatchHook
    from airflow_provider_mlops.hooks.s3 import ObjectStorageHook
    from airflow_provider_mlops.hooks.sql import SqlBatchHook
    from airflow_provider_mlops.sinks.protocols import BatchSink, BatchSource, SpecSink

    def _hooks_fit_their_protocols(
        pg: PostgresBatchHook,
        sql: SqlBatchHook,
        mongo: MongoBatchHook,
        http: HttpApiHook,
        s3: ObjectStorageHook,
    ) -> None:
        sql_hooks: list[SqlSourceSink] = [pg, sql]
        sinks: list[BatchSink] = [pg, sql, mongo]
        spec_sinks: list[SpecSink] = [pg, sql, mongo, s3]
        sources: list[BatchSource] = [pg, sql, mongo, http, s3]
        del sql_hooks, sinks, spec_sinks, sources
