"""
The MongoDB hook's read path: a :class:`~airflow_provider_mlops.sources.MongoFind` and its window,
a ``find`` or aggregation cursor turned into record batches.

A mixin of :class:`~airflow_provider_mlops.hooks.mongo.MongoBatchHook`, which gives it the database.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from airflow_provider_mlops.hooks.mongo.values import convert_document

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence

    import pyarrow as pa

    from airflow_provider_mlops.sources import SourceSpec, Window


class MongoReader:
    """``read`` and ``iter_batches`` of :class:`~airflow_provider_mlops.hooks.mongo.MongoBatchHook`."""

    if TYPE_CHECKING:  # what the hook provides

        def _database(self, database: str | None) -> Any: ...

    def read(
        self,
        spec: SourceSpec,
        window: Window | None = None,
        *,
        schema: pa.Schema | None = None,
        extra: Literal["error", "ignore"] = "error",
        type_conflict: Literal["error", "string"] = "error",
    ) -> Iterator[pa.RecordBatch]:
        """
        Stream a :class:`~airflow_provider_mlops.sources.MongoFind`. With a ``watermark_column`` the
        window is ``{column: {"$gte": start, "$lt": end}}`` in the ``find`` filter, or the
        pipeline's first ``$match`` stage (an open bound is left out).

        :param schema: / :param extra: / :param type_conflict: see :meth:`iter_batches`.
        """
        from airflow_provider_mlops.sources import MongoFind

        if not isinstance(spec, MongoFind):
            raise ValueError(
                f"MongoBatchHook reads MongoDB: give source=MongoFind(...), not {type(spec).__name__}"
            )
        find_filter = dict(spec.filter or {})
        pipeline = spec.pipeline
        if spec.watermark_column and window and (window.start or window.end):
            bounds: dict[str, Any] = {}
            if window.start:
                bounds["$gte"] = window.start
            if window.end:
                bounds["$lt"] = window.end
            if pipeline is not None:
                pipeline = [{"$match": {spec.watermark_column: bounds}}, *pipeline]
            else:
                find_filter[spec.watermark_column] = bounds
        return self.iter_batches(
            spec.collection,
            database=spec.database,
            filter=find_filter,
            projection=spec.projection,
            sort=spec.sort_pairs(),
            pipeline=pipeline,
            batch_size=spec.batch_size,
            schema=schema,
            nested=spec.nested,
            extra=extra,
            type_conflict=type_conflict,
        )

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
