"""
The MongoDB hook's write path: inserts, upserts by key and replaces, all-or-nothing where it can be.

A mixin of :class:`~airflow_provider_mlops.hooks.mongo.MongoBatchHook`. It checks the write contract
(:mod:`airflow_provider_mlops.sinks.contract`), then writes in a transaction when the server has
them, or through a staging collection when it has not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from airflow_provider_mlops.hooks.mongo.values import to_bson_value

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping, Sequence

    import pyarrow as pa
    from pymongo import MongoClient

    from airflow_provider_mlops.sinks.contract import OnEmpty
    from airflow_provider_mlops.sinks.specs import SinkSpec

MongoWriteMode = Literal["append", "replace", "replace_partition", "upsert"]


class MongoWriter:
    """``write`` and ``write_batches`` of :class:`~airflow_provider_mlops.hooks.mongo.MongoBatchHook`."""

    if TYPE_CHECKING:  # what the hook provides
        log: Any

        @property
        def client(self) -> MongoClient: ...

        def _database(self, database: str | None) -> Any: ...

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
        Write ``batches`` into the collection of a :class:`~airflow_provider_mlops.sinks.MongoCollection`
        (see :meth:`write_batches`).

        :param mode: one of the sink's modes (default ``append``, ``upsert`` with the spec's ``keys``).
        :param partition: field -> value of ``replace_partition``.
        :param on_empty: when there are no rows: ``skip``, ``replace`` or ``fail``.
        :param schema: unused (a collection takes any fields).
        :return: the counts of :meth:`write_batches` and ``target``.
        """
        from airflow_provider_mlops.sinks.specs import MongoCollection

        if not isinstance(spec, MongoCollection):
            raise ValueError(
                f"{type(self).__name__} writes a MongoDB collection: give sink=MongoCollection(...), "
                f"not {type(spec).__name__}"
            )
        mode = spec.check_mode(mode, partition)
        if mode == "append":
            self.log.warning("mode='append' into MongoDB is not idempotent: a re-run inserts the rows again")
        counts = self.write_batches(
            spec.collection,
            batches,
            database=spec.database,
            mode=mode,  # type: ignore[arg-type]
            keys=spec.upsert_keys,
            partition=partition,
            json_columns=spec.json_columns,
            on_empty=on_empty,
        )
        return {**counts, "target": spec.collection}

    def write_batches(
        self,
        collection: str,
        batches: Iterable[pa.RecordBatch],
        *,
        database: str | None = None,
        mode: MongoWriteMode = "append",
        keys: Sequence[str] | None = None,
        partition: Mapping[str, Any] | None = None,
        json_columns: Sequence[str] = (),
        chunk_size: int = 5_000,
        on_empty: OnEmpty = "skip",
        transactions: bool | None = None,
    ) -> dict[str, int]:
        """
        Write record batches into a collection.

        ``upsert``, ``replace`` and ``replace_partition`` are all-or-nothing: on a server with transactions (a replica set,
        a sharded cluster, secantusdb) they run in one transaction; elsewhere the documents go into a
        staging collection first, and only once every batch is in (and the keys are checked) does
        the target change: ``replace`` renames the staging collection over the
        target (atomic, indexes copied first); ``replace_partition`` deletes the partition and copies the
        staged documents in; ``upsert`` copies them in by key (both leave a window in which a failure
        leaves part of the change applied; a retry converges).
        MongoDB aborts transactions older than ``transactionLifetimeLimitSeconds`` (60 s by
        default): for very large replace loads raise it on the server or pass
        ``transactions=False``.

        :param mode: the write modes of every sink (:data:`~airflow_provider_mlops.sinks.contract.WRITE_MODES`):
            ``append`` (unordered ``insert_many``; not idempotent); ``upsert`` (``ReplaceOne`` by
            ``keys`` with ``upsert=True``: running it twice leaves the same documents); ``replace``
            (every document replaced); ``replace_partition`` (the documents matching ``partition``
            replaced; every written document must match it, or nothing changes and the error says
            how many did not: a re-run would not delete them, so they would pile up).
        :param keys: the fields identifying a document for ``upsert`` (an ``_id`` column is used as
            is). A NULL key or a key repeated within the load is an error before the commit.
        :param partition: field -> value filter of the documents ``replace_partition`` deletes first.
        :param json_columns: columns holding JSON text to store as sub-documents.
        :param chunk_size: documents per ``insert_many`` / ``bulk_write`` call.
        :param on_empty: when there are no rows: ``skip`` (the collection is not touched),
            ``replace`` (a replace mode deletes the partition / every document) or ``fail``.
        :param transactions: use a transaction (True), the staging collection (False), or decide
            from the server's ``hello`` (None).
        :return: ``rows``, ``inserted`` (new documents), ``updated`` (documents matched by key),
            ``deleted``, and pymongo's ``matched``, ``modified``, ``upserted``.
        """
        from airflow_provider_mlops.sinks import contract

        counts = contract.new_counts("matched", "modified", "upserted")
        started = contract.begin_write(
            batches,
            target=f"collection {collection!r}",
            log=self.log,
            mode=mode,
            modes=contract.WRITE_MODES,
            keys=keys,
            partition=partition,
            on_empty=on_empty,
            peek=False,
        )
        if started is None:
            return counts
        _, stream = started
        key_check = contract.KeyCheck(keys) if mode == "upsert" and keys else None
        if key_check is not None:
            stream = key_check.watch(stream)
        if mode == "replace":
            partition = None  # the whole collection
        elif mode == "replace_partition":
            from airflow_provider_mlops.utils.arrow import peek_schema

            schema, stream = peek_schema(stream, None)
            partition = _partition_filter(partition or {}, schema)
            stream = _check_partition_fields(stream, partition)
        db = self._database(database)
        coll = db[collection]
        if mode == "append":
            self._insert_chunks(coll, stream, counts, json_columns, chunk_size, collection)
        elif transactions if transactions is not None else self._supports_transactions():
            try:
                with self.client.start_session() as session, session.start_transaction():
                    if mode in ("replace", "replace_partition"):
                        counts["deleted"] = coll.delete_many(
                            dict(partition or {}), session=session
                        ).deleted_count
                        self._insert_chunks(
                            coll, stream, counts, json_columns, chunk_size, collection, session
                        )
                        if mode == "replace_partition":  # inside the transaction: a refusal aborts it
                            stored = coll.count_documents(dict(partition or {}), session=session)
                            contract.check_partition_rows(counts["rows"], stored, partition or {})
                    else:
                        self._upsert_chunks(
                            coll, stream, counts, keys or [], json_columns, chunk_size, session
                        )
                    if key_check is not None:
                        key_check.verify()
            except Exception:
                # The abort of a transaction the server already dropped (it outlived the server's
                # transaction lifetime) must not hide the reason the load was refused.
                if key_check is not None and key_check.error is not None:
                    raise key_check.error from None
                raise
        else:
            self._write_staged(
                db, collection, stream, mode, keys, partition, counts, json_columns, chunk_size, key_check
            )
        self.log.info("Wrote %s documents to %s (mode=%s): %s", counts["rows"], collection, mode, counts)
        return counts

    def _supports_transactions(self) -> bool:
        """A replica set member or mongos (``hello`` says so) runs multi-document transactions."""
        hello = self.client.admin.command("hello")
        return bool(
            hello.get("logicalSessionTimeoutMinutes") is not None
            and (hello.get("setName") or hello.get("msg") == "isdbgrid")
        )

    @staticmethod
    def _documents(
        stream: Iterable[pa.RecordBatch], json_columns: Sequence[str], chunk_size: int
    ) -> Iterator[list[dict[str, Any]]]:
        from airflow_provider_mlops.utils.arrow import batch_to_records

        # Documents are built one chunk at a time: a Python dict per row costs ~10x its Arrow
        # form, so a whole batch of them would dominate the task's memory.
        for batch in stream:
            _refuse_sub_millisecond(batch)
            for start in range(0, batch.num_rows, chunk_size):
                yield [
                    to_bson_value(r)
                    for r in batch_to_records(batch.slice(start, chunk_size), json_columns=json_columns)
                ]

    def _insert_chunks(
        self,
        coll: Any,
        stream: Iterable[pa.RecordBatch],
        counts: dict[str, int],
        json_columns: Sequence[str],
        chunk_size: int,
        name: str,
        session: Any = None,
    ) -> None:
        from pymongo.errors import BulkWriteError

        for chunk in self._documents(stream, json_columns, chunk_size):
            try:
                counts["inserted"] += len(
                    coll.insert_many(chunk, ordered=False, session=session).inserted_ids
                )
            except BulkWriteError as err:
                details = err.details or {}
                first = (details.get("writeErrors") or [{}])[0]
                raise RuntimeError(
                    f"Writing to {name!r} failed for {len(details.get('writeErrors', []))} of "
                    f"{len(chunk)} documents in a chunk (first error: {first.get('errmsg')}); "
                    f"{counts['inserted'] + details.get('nInserted', 0)} inserted so far"
                    + (" (rolled back)" if session is not None else "")
                ) from None
            counts["rows"] += len(chunk)

    def _upsert_chunks(
        self,
        coll: Any,
        stream: Iterable[pa.RecordBatch] | Iterable[list[dict[str, Any]]],
        counts: dict[str, int],
        keys: Sequence[str],
        json_columns: Sequence[str],
        chunk_size: int,
        session: Any = None,
        *,
        documents: bool = False,
    ) -> None:
        from pymongo import ReplaceOne

        chunks: Any = stream if documents else self._documents(stream, json_columns, chunk_size)  # type: ignore[arg-type]
        for chunk in chunks:
            ops = [ReplaceOne({k: doc[k] for k in keys}, doc, upsert=True) for doc in chunk]
            # Ordered: keys are unique within the load (checked), so order costs nothing and an
            # error stops at the first failing document.
            result = coll.bulk_write(ops, ordered=True, session=session)
            counts["matched"] += result.matched_count
            counts["modified"] += result.modified_count
            counts["upserted"] += result.upserted_count
            counts["updated"] += result.matched_count
            counts["inserted"] += result.upserted_count
            counts["rows"] += len(chunk)

    def _write_staged(
        self,
        db: Any,
        collection: str,
        stream: Iterable[pa.RecordBatch],
        mode: str,
        keys: Sequence[str] | None,
        partition: Mapping[str, Any] | None,
        counts: dict[str, int],
        json_columns: Sequence[str],
        chunk_size: int,
        key_check: Any,
    ) -> None:
        """No transactions: stage every document, check, then change the target (see write_batches)."""
        import uuid

        from airflow_provider_mlops.sinks import contract

        stage_name = f"{collection}.__mlops_stage_{uuid.uuid4().hex[:12]}"
        stage, coll = db[stage_name], db[collection]
        staged = {"rows": 0, "inserted": 0}
        fields: set[str] = set()

        def noting_fields() -> Iterator[pa.RecordBatch]:
            for batch in stream:
                fields.update(batch.schema.names)
                yield batch

        try:
            # Created up front: an empty load still has a collection to rename over the target.
            db.create_collection(stage_name)
            self._insert_chunks(stage, noting_fields(), staged, json_columns, chunk_size, stage_name)
            if key_check is not None:
                key_check.verify()
            if mode == "replace":
                for name, info in coll.index_information().items():
                    if name == "_id_":
                        continue
                    options = {k: v for k, v in info.items() if k not in ("key", "v", "ns")}
                    stage.create_index(info["key"], name=name, **options)
                counts["deleted"] = coll.estimated_document_count()
                # One atomic rename: readers see the old documents or the new ones, never a mix.
                self.client.admin.command(
                    "renameCollection",
                    f"{db.name}.{stage_name}",
                    to=f"{db.name}.{collection}",
                    dropTarget=True,
                )
                counts["rows"] = counts["inserted"] = staged["rows"]
                return
            # The staging insert gave documents without an _id one of its own: not theirs to keep.
            projection = None if "_id" in fields else {"_id": 0}
            if mode == "replace_partition":
                # Checked on the staged documents, before the target is touched.
                stored = stage.count_documents(dict(partition or {}))
                contract.check_partition_rows(staged["rows"], stored, partition or {})
                counts["deleted"] = coll.delete_many(dict(partition or {})).deleted_count
                self._copy(stage.find({}, projection, batch_size=chunk_size), coll, counts, chunk_size)
            else:
                documents = _chunked(stage.find({}, projection, batch_size=chunk_size), chunk_size)
                self._upsert_chunks(
                    coll, documents, counts, keys or [], json_columns, chunk_size, documents=True
                )
        finally:
            db.drop_collection(stage_name)

    @staticmethod
    def _copy(cursor: Any, coll: Any, counts: dict[str, int], chunk_size: int) -> None:
        for chunk in _chunked(cursor, chunk_size):
            counts["inserted"] += len(coll.insert_many(chunk, ordered=False).inserted_ids)
            counts["rows"] += len(chunk)


def _chunked(cursor: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    for document in cursor:
        chunk.append(document)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _partition_filter(partition: Mapping[str, Any], schema: pa.Schema | None) -> dict[str, Any]:
    """
    The partition as the documents store it: ``{"day": "{{ ds }}"}`` on a date or timestamp column
    is matched as the BSON date the rows become (a string never matches a date: the partition's
    documents would not be deleted, and the new ones counted outside it).
    """
    import datetime as dt

    import pyarrow.types as t

    from airflow_provider_mlops.hooks.mongo.values import to_bson_value

    fields = {f.name: f.type for f in schema} if schema is not None else {}
    out: dict[str, Any] = {}
    for name, value in partition.items():
        kind = fields.get(name)
        if isinstance(value, str) and kind is not None:
            try:
                if t.is_date(kind):
                    value = dt.date.fromisoformat(value)
                elif t.is_timestamp(kind):
                    parsed = dt.datetime.fromisoformat(value)
                    value = parsed if parsed.tzinfo or kind.tz is None else parsed.replace(tzinfo=dt.UTC)
            except ValueError:
                pass  # left as given: the partition check then refuses the load, naming the partition
        out[name] = to_bson_value(value)
    return out


def _check_partition_fields(
    stream: Iterable[pa.RecordBatch], partition: Mapping[str, Any]
) -> Iterator[pa.RecordBatch]:
    """Partition fields must be columns of the data (a misspelled one would delete nothing)."""
    from airflow_provider_mlops.sinks.contract import check_columns

    for batch in stream:
        check_columns(batch.schema.names, partition=partition)
        yield batch


def _refuse_sub_millisecond(batch: pa.RecordBatch) -> None:
    """
    BSON dates hold milliseconds: pymongo would silently drop the microseconds of a timestamp.
    Refuse a value that would change, naming the column and the value (vectorized per column).
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.types as t

    for field, column in zip(batch.schema, batch.columns, strict=True):
        if not t.is_timestamp(field.type) or field.type.unit in ("s", "ms"):
            continue
        per_ms = 1_000 if field.type.unit == "us" else 1_000_000
        ticks = column.cast(pa.int64())
        lost = pc.not_equal(pc.subtract(ticks, pc.multiply(pc.divide(ticks, per_ms), per_ms)), 0)
        if pc.any(lost).as_py():
            first = column.filter(lost)[0].as_py()
            raise ValueError(
                f"Column {field.name!r}: MongoDB stores dates to the millisecond, and {first!r} has a "
                "finer part that would be lost. Round the column to milliseconds first (e.g. a cast "
                "step to timestamp[ms, tz=UTC]) if that is acceptable."
            )
