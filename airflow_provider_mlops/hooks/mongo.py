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
    ) -> dict[str, int]:
        """
        Write record batches into a collection.

        :param mode: ``insert`` (unordered ``insert_many``); ``upsert`` (``ReplaceOne`` by ``keys``
            with ``upsert=True``: running it twice leaves the same documents); ``replace`` (delete the
            documents matching ``partition``, or all of them, then insert).
        :param keys: the fields identifying a document for ``upsert`` (an ``_id`` column is used as is).
        :param partition: field -> value filter of the documents ``replace`` deletes first.
        :param json_columns: columns holding JSON text to store as sub-documents.
        :param chunk_size: documents per ``insert_many`` / ``bulk_write`` call.
        :return: ``rows``, ``inserted``, ``matched``, ``modified``, ``upserted``, ``deleted``.
        """
        from pymongo import ReplaceOne
        from pymongo.errors import BulkWriteError

        from airflow_provider_mlops.utils.arrow import batch_to_records

        if mode not in ("insert", "upsert", "replace"):
            raise ValueError(f"mode must be insert, upsert or replace, got {mode!r}")
        if mode == "upsert" and not keys:
            raise ValueError("mode='upsert' needs keys=[...]")
        coll = self._database(database)[collection]
        counts = {"rows": 0, "inserted": 0, "matched": 0, "modified": 0, "upserted": 0, "deleted": 0}
        if mode == "replace":
            counts["deleted"] = coll.delete_many(dict(partition or {})).deleted_count
        for batch in batches:
            missing = [k for k in (keys or []) if k not in batch.schema.names]
            if missing:
                raise ValueError(
                    f"Key column(s) {missing} are not in the data (columns: {batch.schema.names})"
                )
            # Documents are built one chunk at a time: a Python dict per row costs ~10x its Arrow
            # form, so a whole batch of them would dominate the task's memory.
            for start in range(0, batch.num_rows, chunk_size):
                chunk = [
                    _to_bson_value(r)
                    for r in batch_to_records(batch.slice(start, chunk_size), json_columns=json_columns)
                ]
                try:
                    if mode == "upsert":
                        ops = [ReplaceOne({k: doc[k] for k in keys or []}, doc, upsert=True) for doc in chunk]
                        result = coll.bulk_write(ops, ordered=False)
                        counts["matched"] += result.matched_count
                        counts["modified"] += result.modified_count
                        counts["upserted"] += result.upserted_count
                    else:
                        counts["inserted"] += len(coll.insert_many(chunk, ordered=False).inserted_ids)
                except BulkWriteError as err:
                    details = err.details or {}
                    first = (details.get("writeErrors") or [{}])[0]
                    raise RuntimeError(
                        f"Writing to {collection!r} failed for {len(details.get('writeErrors', []))} of "
                        f"{len(chunk)} documents in a chunk (first error: {first.get('errmsg')}); "
                        f"{counts['inserted'] + details.get('nInserted', 0)} inserted so far"
                    ) from None
                counts["rows"] += len(chunk)
        self.log.info("Wrote %s documents to %s (mode=%s): %s", counts["rows"], collection, mode, counts)
        return counts
