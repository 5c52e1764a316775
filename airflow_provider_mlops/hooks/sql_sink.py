"""
``write(spec, batches, ...)`` of the SQL hooks: a :class:`~airflow_provider_mlops.sinks.SqlTable`
written by the hook's ``write_batches`` (COPY on PostgreSQL, ``executemany`` elsewhere).

A mixin of :class:`~airflow_provider_mlops.hooks.postgres.PostgresBatchHook` (through its writer)
and :class:`~airflow_provider_mlops.hooks.sql.SqlBatchHook`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    import pyarrow as pa

    from airflow_provider_mlops.sinks.contract import OnEmpty
    from airflow_provider_mlops.sinks.specs import SinkSpec


class SqlSinkMixin:
    """Writes a :class:`~airflow_provider_mlops.sinks.SqlTable` spec."""

    if TYPE_CHECKING:  # what the hook provides

        def write_batches(
            self,
            table: str,
            batches: Iterable[pa.RecordBatch],
            /,
            *,
            mode: Any = ...,
            keys: Any = ...,
            partition: Any = ...,
            create_table: bool = ...,
            schema: Any = ...,
            newer_column: Any = ...,
            on_empty: Any = ...,
        ) -> dict[str, int]: ...

    def write(
        self,
        spec: SinkSpec,
        batches: Iterable[pa.RecordBatch],
        *,
        mode: str | None = None,
        partition: Mapping[str, Any] | None = None,
        on_empty: OnEmpty = "skip",
        schema: pa.Schema | None = None,
    ) -> dict[str, Any]:
        """
        Write ``batches`` into the spec's table in one transaction (the write contract of
        :mod:`airflow_provider_mlops.sinks.contract`).

        :param mode: one of the sink's modes (default ``append``, ``upsert`` with the spec's ``keys``).
        :param partition: column -> value of ``replace_partition``.
        :param on_empty: when there are no rows: ``skip``, ``replace`` or ``fail``.
        :param schema: the input's schema (an empty input still creates the table with it).
        :return: the counts (``rows``, ``inserted``, ``updated``, ``deleted``) and ``target``.
        """
        from airflow_provider_mlops.sinks.specs import SqlTable

        if not isinstance(spec, SqlTable):
            raise ValueError(
                f"{type(self).__name__} writes a SQL table: give sink=SqlTable(...), not {type(spec).__name__}"
            )
        counts = self.write_batches(
            spec.table,
            batches,
            mode=spec.check_mode(mode, partition),
            keys=spec.upsert_keys,
            partition=partition,
            create_table=spec.create_table,
            schema=schema,
            newer_column=spec.newer_column,
            on_empty=on_empty,
        )
        return {**counts, "target": spec.table}
