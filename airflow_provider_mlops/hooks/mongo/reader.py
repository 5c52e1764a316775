"""
The MongoDB hook's read path: a ``find`` or aggregation cursor turned into record batches.

A mixin of :class:`~airflow_provider_mlops.hooks.mongo.MongoHook`, which gives it the database.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from airflow_provider_mlops.hooks.mongo.values import convert_document

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence

    import pyarrow as pa


class MongoReader:
    """``iter_batches`` of :class:`~airflow_provider_mlops.hooks.mongo.MongoHook`."""

    if TYPE_CHECKING:  # what the hook provides

        def _database(self, database: str | None) -> Any: ...

    def iter_batches(
        self,
        collection: str,
        *,
        database: str | None = None,
        filter: Mapping[str, Any] | None = None,
        projection: Mapping[str, Any] | Sequence[str] | None = None,
        sort: Sequence[tuple[str, int]] | None = None,
        pipeline: Sequence[Mapping[str, Any]] | None = None,
        batch_size: int = 50_000,
        schema: pa.Schema | None = None,
        nested: Literal["json", "struct"] = "json",
        extra: Literal["error", "ignore"] = "error",
        type_conflict: Literal["error", "string"] = "error",
    ) -> Iterator[pa.RecordBatch]:
        """
        Stream a query (``find``) or an aggregation ``pipeline`` as record batches.

        :param collection: the collection name.
        :param database: the database (default: the connection's schema).
        :param filter: ``find`` filter.
        :param projection: ``find`` projection.
        :param sort: ``find`` sort, e.g. ``[("updated_at", 1)]``.
        :param pipeline: an aggregation pipeline; used instead of ``find`` when given.
        :param batch_size: rows per batch (also the cursor's batch size, capped at 10,000).
        :param schema: a fixed Arrow schema (a contract). When None the schema evolves with the
            documents: a field that only later documents have becomes a column from then on (the
            batches before it lack it; readers of the dataset see it as null there), and a field
            whose type changes widens losslessly or fails naming the field, the document (its index
            and ``_id``) and the value. See :class:`~airflow_provider_mlops.utils.arrow.RecordBatcher`.
        :param nested: ``json`` stores sub-documents and arrays as JSON text, ``struct`` keeps them
            as Arrow structs / lists (fields that appear later inside a sub-document are added to
            the struct).
        :param extra: with ``schema``: a field the schema does not declare is an error (``error``)
            or left out (``ignore``).
        :param type_conflict: ``error``, or ``string`` to turn a column whose values fit no common
            type into text.
        """
        from airflow_provider_mlops.utils.records import RecordBatcher

        coll = self._database(database)[collection]
        cursor_batch = min(batch_size, 10_000)
        if pipeline is not None:
            cursor = coll.aggregate(list(pipeline), batchSize=cursor_batch, allowDiskUse=True)
        else:
            cursor = coll.find(
                filter or {}, projection, sort=list(sort) if sort else None, batch_size=cursor_batch
            )
        batcher = RecordBatcher(
            batch_size=batch_size,
            schema=schema,
            nested=nested,
            convert=convert_document,
            extra=extra,
            type_conflict=type_conflict,
            key="_id",
        )
        try:
            yield from batcher.batches(cursor)
        finally:
            cursor.close()
