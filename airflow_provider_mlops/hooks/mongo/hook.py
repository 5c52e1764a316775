"""
MongoDB hook (pymongo) that streams documents as Arrow record batches and writes batches back.

Reads use a cursor with ``batch_size`` (``find`` or an aggregation pipeline); documents become
Arrow rows with ObjectId as string, datetimes kept (UTC), Decimal128 as decimal and nested
documents/arrays as JSON text or Arrow structs; the schema evolves as fields appear (or is a given,
fixed contract), so no field is ever dropped. Writes use unordered ``insert_many`` in chunks or
upserts by key with ``bulk_write`` in chunks.

This module holds the connection (client options, URI, *Test*); the read path is
:mod:`.reader`, the write path :mod:`.writer` and the BSON <-> Arrow values :mod:`.values`.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any
from urllib.parse import quote_plus

from airflow.providers.common.compat.sdk import BaseHook

from airflow_provider_mlops.hooks.mongo.reader import MongoReader
from airflow_provider_mlops.hooks.mongo.writer import MongoWriter
from airflow_provider_mlops.utils.connection import as_bool, as_int, redact

if TYPE_CHECKING:
    from pymongo import MongoClient

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


class MongoBatchHook(MongoReader, MongoWriter, BaseHook):
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
