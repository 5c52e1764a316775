"""
MongoDB hook (pymongo) that streams documents as Arrow record batches and writes batches back.

Reads use a cursor with ``batch_size`` (``find`` or an aggregation pipeline); documents become
Arrow rows with ObjectId as string, datetimes kept (UTC), Decimal128 as decimal and nested
documents/arrays as JSON text or Arrow structs; the schema evolves as fields appear (or is a given,
fixed contract), so no field is ever dropped. Writes use unordered ``insert_many`` in chunks or
upserts by key with ``bulk_write`` in chunks.
"""

from __future__ import annotations

import datetime as dt
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote_plus

from airflow.sdk import BaseHook

from airflow_provider_mlops.utils.connection import as_bool, as_int, redact

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping, Sequence

    import pyarrow as pa
    from pymongo import MongoClient

    from airflow_provider_mlops.sinks.contract import OnEmpty

MongoWriteMode = Literal["insert", "upsert", "replace"]

# Extras passed to MongoClient, with their types (the form sends strings; JSON may send anything).
_BOOL_OPTIONS = (
    "tls",
    "ssl",
    "tlsAllowInvalidCertificates",
    "tlsAllowInvalidHostnames",
    "tlsInsecure",
    "directConnection",
    "retryWrites",
    "retryReads",
    "loadBalanced",
)
# Toggles whose false is pymongo's default (or, for tls, what pymongo decides from the scheme).
_FALSE_MEANS_DEFAULT = (
    "tls",
    "tlsAllowInvalidCertificates",
    "tlsAllowInvalidHostnames",
    "tlsInsecure",
    "directConnection",
    "loadBalanced",
)
_INT_OPTIONS = (
    "connectTimeoutMS",
    "socketTimeoutMS",
    "serverSelectionTimeoutMS",
    "maxPoolSize",
    "minPoolSize",
    "waitQueueTimeoutMS",
    "heartbeatFrequencyMS",
    "localThresholdMS",
    "maxIdleTimeMS",
)
_STR_OPTIONS = (
    "replicaSet",
    "authSource",
    "authMechanism",
    "tlsCAFile",
    "tlsCertificateKeyFile",
    "appname",
    "readPreference",
    "compressors",
    "w",
)


def _to_arrow_value(value: Any) -> Any:
    """BSON values Arrow cannot take as they are -> plain Python values."""
    from bson import Decimal128, ObjectId
    from bson.binary import Binary

    if isinstance(value, ObjectId):
        return str(value)
    if isinstance(value, Decimal128):
        return value.to_decimal()
    if isinstance(value, Binary):
        return bytes(value)
    if isinstance(value, dict):
        return {k: _to_arrow_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_arrow_value(v) for v in value]
    return value


_PLAIN = (str, int, float, bool, type(None), dt.datetime)


def _convert_document(document: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (v if isinstance(v, _PLAIN) else _to_arrow_value(v)) for k, v in document.items()}


def _to_bson_value(value: Any) -> Any:
    import decimal

    from bson import Decimal128

    if isinstance(value, decimal.Decimal):
        return Decimal128(value)
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
    if isinstance(value, dict):
        return {k: _to_bson_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_bson_value(v) for v in value]
    return value


class MongoHook(BaseHook):
    """
    Read and write MongoDB collections as Arrow record batches.

    Works with this provider's ``mlops_mongo`` connections and the official ``mongo`` ones. Host may
    list several ``host[:port]`` separated by commas; ``schema`` is the default database. Extras
    (typed: ``"false"`` is False): ``srv``, ``replicaSet``, ``authSource``, ``authMechanism``,
    ``tls``, ``tlsCAFile``, ``tlsAllowInvalidCertificates``, ``directConnection``, the ``*TimeoutMS``
    options; or a complete ``uri`` extra, which wins.

    :param mongo_conn_id: the Airflow connection id.
    """

    conn_name_attr = "mongo_conn_id"
    default_conn_name = "mongo_default"
    conn_type = "mlops-mongo"
    hook_name = "MongoDB (MLOps)"

    def __init__(self, mongo_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mongo_conn_id = mongo_conn_id

    @cached_property
    def _connection(self) -> Any:
        return self.get_connection(self.mongo_conn_id)

    def _client_options(self) -> dict[str, Any]:
        extra = self._connection.extra_dejson
        options: dict[str, Any] = {"tz_aware": True, "serverSelectionTimeoutMS": 10_000}
        for key in _BOOL_OPTIONS:
            if key in extra and extra[key] not in (None, ""):
                options[key] = as_bool(extra[key], name=key)
        for key in _INT_OPTIONS:
            if key in extra and extra[key] not in (None, ""):
                options[key] = as_int(extra[key], name=key)
        for key in _STR_OPTIONS:
            if extra.get(key) not in (None, ""):
                options[key] = str(extra[key])
        if "ssl" in options:  # legacy name used by the official hook's connections
            options.setdefault("tls", options.pop("ssl"))
        # The Airflow form saves every toggle, so a connection made there says "tls": false,
        # "tlsAllowInvalidCertificates": false, "directConnection": false although nobody chose
        # them. pymongo refuses any tls* option next to tls=false ("TLS has not been enabled but
        # the following tls parameters have been set"), and an explicit tls=false would also turn
        # TLS off for mongodb+srv:// (where it is on by default). A false toggle therefore means
        # "pymongo's default": only a true one is passed on. TLS off for mongodb+srv:// needs the
        # ``uri`` extra (``?tls=false``).
        for key in _FALSE_MEANS_DEFAULT:
            if options.get(key) is False:
                del options[key]
        return options

    def get_uri(self) -> str:
        """The connection's MongoDB URI (``mongodb://`` or ``mongodb+srv://``), credentials escaped."""
        conn = self._connection
        extra = conn.extra_dejson
        if extra.get("uri"):
            return str(extra["uri"])
        srv = as_bool(extra.get("srv"), name="srv", default=False) or (conn.conn_type or "").endswith("+srv")
        auth = ""
        if conn.login:
            auth = quote_plus(conn.login)
            if conn.password:
                auth += ":" + quote_plus(conn.password)
            auth += "@"
        hosts = []
        for host in (conn.host or "localhost").split(","):
            host = host.strip()
            if not srv and ":" not in host and conn.port:
                host = f"{host}:{conn.port}"
            hosts.append(host)
        scheme = "mongodb+srv" if srv else "mongodb"
        database = conn.schema or ""
        return f"{scheme}://{auth}{','.join(hosts)}/{database}"

    def _new_client(self) -> MongoClient:
        """A new MongoClient; settings pymongo refuses raise ValueError naming no connection id."""
        from pymongo import MongoClient

        try:
            return MongoClient(self.get_uri(), **self._client_options())
        except Exception as err:
            raise ValueError(
                "Invalid MongoDB connection settings: " + redact(str(err), [self._connection.password])
            ) from None

    def get_conn(self) -> MongoClient:
        """A new MongoClient (the caller closes it)."""
        try:
            return self._new_client()
        except ValueError as err:
            raise ConnectionError(f"Connection {self.mongo_conn_id!r}: {err}") from None

    @cached_property
    def client(self) -> MongoClient:
        return self.get_conn()

    def close(self) -> None:
        if "client" in self.__dict__:
            self.client.close()
            del self.__dict__["client"]

    def _database(self, database: str | None) -> Any:
        name = database or self._connection.schema
        if not name:
            raise ValueError(
                f"No database given and connection {self.mongo_conn_id!r} has no schema (default database)"
            )
        return self.client[name]

    def test_connection(self) -> tuple[bool, str]:
        """Ping the server and check that the credentials are accepted."""
        from pymongo.errors import OperationFailure, PyMongoError

        # No connection id in these messages: Airflow's Test button runs the hook under a random
        # temporary id ("LPuPtxOc") that would only confuse the person who pressed it.
        try:
            client = self._new_client()
        except ValueError as err:
            return False, str(err)
        try:
            try:
                client.admin.command("ping")
                if self._connection.login:
                    # ping needs no auth on some servers; listing databases does.
                    client.list_database_names()
                version = client.server_info().get("version", "?")
            finally:
                client.close()
        except OperationFailure as err:
            if err.code in (18, 13):
                return False, f"Authentication failed for user {self._connection.login!r} ({err.code})"
            return False, redact(f"MongoDB error: {err}", [self._connection.password])
        except (PyMongoError, ConnectionError, ValueError) as err:
            # Server-selection errors append the whole topology description: keep the first clause.
            reason = str(err).split(", Timeout:")[0].split(" (configured timeouts")[0]
            return False, redact(f"Cannot reach MongoDB: {reason}", [self._connection.password])
        return True, f"Connection successfully tested (MongoDB-compatible server {version})"

    # ----------------------------------------------------------------------------------------------
    # reading
    # ----------------------------------------------------------------------------------------------
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
        from airflow_provider_mlops.utils.arrow import RecordBatcher

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
            convert=_convert_document,
            extra=extra,
            type_conflict=type_conflict,
            key="_id",
        )
        try:
            yield from batcher.batches(cursor)
        finally:
            cursor.close()

    # ----------------------------------------------------------------------------------------------
    # writing
    # ----------------------------------------------------------------------------------------------
    def write_batches(
        self,
        collection: str,
        batches: Iterable[pa.RecordBatch],
        *,
        database: str | None = None,
        mode: MongoWriteMode = "insert",
        keys: Sequence[str] | None = None,
        partition: Mapping[str, Any] | None = None,
        json_columns: Sequence[str] = (),
        chunk_size: int = 5_000,
        on_empty: OnEmpty = "skip",
        transactions: bool | None = None,
    ) -> dict[str, int]:
        """
        Write record batches into a collection.

        ``upsert`` and ``replace`` are all-or-nothing: on a server with transactions (a replica set,
        a sharded cluster, secantusdb) they run in one transaction; elsewhere the documents go into a
        staging collection first, and only once every batch is in (and the keys are checked) does
        the target change: ``replace`` without ``partition`` renames the staging collection over the
        target (atomic, indexes copied first); ``replace`` of a partition deletes it and copies the
        staged documents in; ``upsert`` copies them in by key (both leave a window in which a failure
        leaves part of the change applied; a retry converges).
        MongoDB aborts transactions older than ``transactionLifetimeLimitSeconds`` (60 s by
        default): for very large replace loads raise it on the server or pass
        ``transactions=False``.

        :param mode: ``insert`` (unordered ``insert_many``; not idempotent); ``upsert``
            (``ReplaceOne`` by ``keys`` with ``upsert=True``: running it twice leaves the same
            documents); ``replace`` (the documents matching ``partition``, or all of them, replaced).
        :param keys: the fields identifying a document for ``upsert`` (an ``_id`` column is used as
            is). A NULL key or a key repeated within the load is an error before the commit.
        :param partition: field -> value filter of the documents ``replace`` deletes first.
        :param json_columns: columns holding JSON text to store as sub-documents.
        :param chunk_size: documents per ``insert_many`` / ``bulk_write`` call.
        :param on_empty: when there are no rows: ``skip`` (the collection is not touched),
            ``replace`` (``replace`` deletes the partition / every document) or ``fail``.
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
            modes=contract.MONGO_MODES,
            keys=keys,
            partition=partition,
            on_empty=on_empty,
            peek=False,
            partition_modes=(),
        )
        if started is None:
            return counts
        _, stream = started
        key_check = contract.KeyCheck(keys) if mode == "upsert" and keys else None
        if key_check is not None:
            stream = key_check.watch(stream)
        if partition and mode == "replace":
            stream = _check_partition_fields(stream, partition)
        db = self._database(database)
        coll = db[collection]
        if mode == "insert":
            self._insert_chunks(coll, stream, counts, json_columns, chunk_size, collection)
        elif transactions if transactions is not None else self._supports_transactions():
            with self.client.start_session() as session, session.start_transaction():
                if mode == "replace":
                    counts["deleted"] = coll.delete_many(dict(partition or {}), session=session).deleted_count
                    self._insert_chunks(coll, stream, counts, json_columns, chunk_size, collection, session)
                else:
                    self._upsert_chunks(coll, stream, counts, keys or [], json_columns, chunk_size, session)
                if key_check is not None:
                    key_check.verify()
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
            for start in range(0, batch.num_rows, chunk_size):
                yield [
                    _to_bson_value(r)
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
            if mode == "replace" and not partition:
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
            if mode == "replace":
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


def _check_partition_fields(
    stream: Iterable[pa.RecordBatch], partition: Mapping[str, Any]
) -> Iterator[pa.RecordBatch]:
    """Partition fields must be columns of the data (a misspelled one would delete nothing)."""
    from airflow_provider_mlops.sinks.contract import check_columns

    for batch in stream:
        check_columns(batch.schema.names, partition=partition)
        yield batch
