"""
What a source and a sink are, as types: the two methods the operators call on a hook.

Every source hook (PostgreSQL, any common-sql database, MongoDB, HTTP, object storage) has
``iter_batches(what, ..., batch_size=...)`` yielding Arrow record batches of bounded size; every
table or collection sink (PostgreSQL, common-sql, MongoDB) has ``write_batches(target, batches,
mode=..., keys=..., partition=..., on_empty=...)`` keeping the write contract of
:mod:`airflow_provider_mlops.sinks.contract` and returning its counts; every sink hook (those and
object storage) has ``write(spec, batches, mode=..., partition=...)`` for its sink specs. The operators and
:mod:`airflow_provider_mlops.etl.sources` depend on these protocols, not on hook classes, so a new
source or sink is a hook with these methods and a connection type (docs/architecture.md).

Structural: a hook does not inherit from them, mypy checks that it fits.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping, Sequence

    import pyarrow as pa

    from airflow_provider_mlops.sinks.contract import OnEmpty
    from airflow_provider_mlops.sinks.specs import SinkSpec


@runtime_checkable
class BatchSource(Protocol):
    """Reads ``what`` (a query, a collection, an endpoint, a path) as record batches of at most ``batch_size`` rows."""

    def iter_batches(self, what: str, /, *, batch_size: int = ...) -> Iterator[pa.RecordBatch]: ...


@runtime_checkable
class BatchSink(Protocol):
    """
    Writes record batches into ``target`` (a table, a collection) under the write contract.

    ``mode`` is one of :data:`~airflow_provider_mlops.sinks.contract.WRITE_MODES`, checked by the sink.
    """

    def write_batches(
        self,
        target: str,
        batches: Iterable[pa.RecordBatch],
        /,
        *,
        mode: Any = ...,
        keys: Sequence[str] | None = ...,
        partition: Mapping[str, Any] | None = ...,
        on_empty: OnEmpty = ...,
    ) -> dict[str, int]: ...


@runtime_checkable
class SpecSink(Protocol):
    """
    Writes a sink spec (:mod:`airflow_provider_mlops.sinks.specs`): what LoadOperator calls on the
    hook its connection gets. A spec of another kind than the hook writes is a ValueError naming both.
    """

    def write(
        self,
        spec: SinkSpec,
        batches: Iterable[pa.RecordBatch],
        *,
        mode: str | None = ...,
        partition: Mapping[str, Any] | None = ...,
        on_empty: OnEmpty = ...,
        schema: pa.Schema | None = ...,
    ) -> dict[str, Any]: ...


@runtime_checkable
class SqlBatchSource(BatchSource, Protocol):
    """A SQL source: a query with parameters, and the incremental window built by its dialect."""

    def iter_batches(
        self,
        what: str,
        parameters: Sequence[Any] | Mapping[str, Any] | None = ...,
        /,
        *,
        batch_size: int = ...,
        schema: pa.Schema | None = ...,
    ) -> Iterator[pa.RecordBatch]: ...

    def watermark_query(
        self,
        sql: str,
        parameters: Sequence[Any] | Mapping[str, Any] | None,
        column: str,
        start: Any,
        end: Any,
    ) -> tuple[str, list[Any]]: ...


@runtime_checkable
class SqlSourceSink(SqlBatchSource, BatchSink, Protocol):
    """What :func:`~airflow_provider_mlops.hooks.sql.get_sql_hook` returns: a SQL source and sink."""

    def write_batches(
        self,
        target: str,
        batches: Iterable[pa.RecordBatch],
        /,
        *,
        mode: Any = ...,
        keys: Sequence[str] | None = ...,
        partition: Mapping[str, Any] | None = ...,
        on_empty: OnEmpty = ...,
        create_table: bool = ...,
        schema: pa.Schema | None = ...,
        newer_column: str | None = ...,
    ) -> dict[str, int]: ...
