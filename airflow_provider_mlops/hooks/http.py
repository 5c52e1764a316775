"""
HTTP JSON API hook: authentication, built-in pagination, per-request retries, streaming to Arrow.

Each request is retried on its own (connection errors, timeouts, a connection dropped mid-body,
429 and 5xx) with exponential backoff and jitter, honouring ``Retry-After``, so a flaky page is
fetched again without repeating or losing the pages before it. Records are taken from a JSON path
in each page and streamed into record batches of bounded size. Secrets are masked before the first
request goes out (log lines, urllib3's DEBUG request lines, exception texts).

The hook is the Airflow adapter over plain modules, one layer each (:mod:`airflow_provider_mlops.http`):
``paginators``, ``auth``, ``retry``, ``exceptions``, ``redaction``. The names this module always
exported are re-exported here, so DAGs and imports written against it keep working.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

from airflow.providers.common.compat.sdk import BaseHook

from airflow_provider_mlops.http import redaction
from airflow_provider_mlops.http.client import ApiClient
from airflow_provider_mlops.http.exceptions import (
    HttpApiError,
    MalformedPageError,
    RetryableHttpError,
    TruncatedResponseError,
)
from airflow_provider_mlops.http.paginators import (
    CallablePagination,
    CursorPagination,
    LinkHeaderPagination,
    OffsetPagination,
    PageNumberPagination,
    PageRequest,
    Pagination,
    get_path,
)
from airflow_provider_mlops.http.retry import RETRYABLE_STATUS, RetryPolicy, parse_retry_after
from airflow_provider_mlops.utils.connection import as_bool, as_float, as_int, redact

if TYPE_CHECKING:
    import pyarrow as pa
    import requests
    from requests.auth import AuthBase

    from airflow_provider_mlops.http.auth import AuthType
    from airflow_provider_mlops.sources import SourceSpec, Window

# http.auth subclasses requests' classes, so it imports requests: loaded on first use, not when a DAG
# file imports this hook.
_AUTH_EXPORTS = ("AuthType", "AUTH_TYPES")


def __getattr__(name: str) -> Any:
    if name in _AUTH_EXPORTS:
        from airflow_provider_mlops.http import auth

        return getattr(auth, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "RETRYABLE_STATUS",
    "AuthType",
    "CallablePagination",
    "CursorPagination",
    "HttpApiError",
    "HttpApiHook",
    "LinkHeaderPagination",
    "MalformedPageError",
    "OffsetPagination",
    "PageNumberPagination",
    "PageRequest",
    "Pagination",
    "RetryableHttpError",
    "TruncatedResponseError",
    "get_path",
    "parse_retry_after",
]

_KNOWN_EXTRAS = frozenset(
    {
        "auth_type",
        "token",
        "api_key",
        "api_key_name",
        "api_key_in",
        "token_url",
        "key_name",
        "key_location",
        "oauth2_url",
        "scope",
        "audience",
        "headers",
        "timeout",
        "verify",
        "rate_limit",
        "test_endpoint",
        "max_attempts",
        "max_retry_seconds",
        "base_url",
    }
)


class HttpApiHook(BaseHook):
    """
    Call a JSON HTTP API with authentication, pagination and per-request retries.

    Works with this provider's ``mlops_http`` connections and the official ``http`` ones (whose extra
    JSON, when it holds none of the keys below, is sent as headers, like the official hook does).

    Connection: host is the base URL (``https://api.example.com/v1``; or host + schema + port);
    login / password are the basic-auth user and password, the OAuth2 client id and secret, or
    (password) the bearer token / API key. Extras: ``auth_type`` (none, basic, bearer, api_key,
    oauth2), ``key_name``, ``key_location`` (header or query), ``oauth2_url``, ``scope``,
    ``audience``, ``headers`` (dict), ``timeout`` (s), ``verify`` (bool or CA path), ``rate_limit``
    (requests/s), ``max_attempts``, ``max_retry_seconds``, ``test_endpoint``. The old names
    ``api_key_name``, ``api_key_in`` and ``token_url`` are still read (Airflow's form masks fields
    whose name contains ``api_key`` or ``token``, hence the new ones).

    :param http_conn_id: the Airflow connection id.
    :param max_attempts: attempts per request (connection errors, timeouts, a body cut short, 429
        and 5xx are retried).
    :param max_retry_seconds: give up on a request once this much time has been spent retrying it.
    :param backoff_initial: first backoff in seconds, doubled each attempt (with jitter).
    :param backoff_max: the longest single wait, also the cap on ``Retry-After``.
    :param auth: any ``requests.auth.AuthBase`` to use instead of the connection's scheme
        (requests-oauthlib's ``OAuth2``, a Kerberos auth, requests' ``HTTPDigestAuth`` ...); the
        connection's password and ``token`` / ``api_key`` extras are still masked.
    """

    conn_name_attr = "http_conn_id"
    default_conn_name = "http_default"
    conn_type = "mlops-http"
    hook_name = "HTTP JSON API (MLOps)"

    def __init__(
        self,
        http_conn_id: str = default_conn_name,
        *,
        max_attempts: int | None = None,
        max_retry_seconds: float | None = None,
        backoff_initial: float = 0.5,
        backoff_max: float = 60.0,
        auth: AuthBase | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.http_conn_id = http_conn_id
        self._auth = auth
        self._max_attempts = max_attempts
        self._max_retry_seconds = max_retry_seconds
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max

    # ----------------------------------------------------------------------------------------------
    # configuration
    # ----------------------------------------------------------------------------------------------
    @cached_property
    def _connection(self) -> Any:
        return self.get_connection(self.http_conn_id)

    @cached_property
    def _extra(self) -> dict[str, Any]:
        return dict(self._connection.extra_dejson)

    @cached_property
    def base_url(self) -> str:
        conn = self._connection
        if base := self._extra.get("base_url"):
            return str(base).rstrip("/") + "/"
        host = conn.host or ""
        if "://" not in host:
            scheme = conn.schema if conn.schema in ("http", "https") else "https"
            host = f"{scheme}://{host}" if host else ""
            if conn.port:
                host = f"{host}:{conn.port}"
        elif conn.port:
            # The URL's own port wins; the Port field fills in only when the URL names none (and
            # goes into the authority, not after a path: https://h:8443/v1, never https://h/v1:8443).
            from urllib.parse import urlsplit, urlunsplit

            parts = urlsplit(host)
            if parts.port is None and parts.hostname:
                host = urlunsplit(parts._replace(netloc=f"{parts.netloc}:{conn.port}"))
        if not host:
            raise ValueError(f"Connection {self.http_conn_id!r} has no base URL (host)")
        return host.rstrip("/") + "/"

    @cached_property
    def auth_type(self) -> str:
        from airflow_provider_mlops.http.auth import resolve_auth_type

        return resolve_auth_type(self._connection.login, self._connection.password, self._extra)

    @property
    def max_attempts(self) -> int:
        return (
            self._max_attempts or as_int(self._extra.get("max_attempts"), name="max_attempts", default=5) or 5
        )

    @property
    def max_retry_seconds(self) -> float:
        if self._max_retry_seconds is not None:
            return self._max_retry_seconds
        return (
            as_float(self._extra.get("max_retry_seconds"), name="max_retry_seconds", default=300.0) or 300.0
        )

    @cached_property
    def timeout(self) -> float:
        return as_float(self._extra.get("timeout"), name="timeout", default=30.0) or 30.0

    @cached_property
    def rate_limit(self) -> float | None:
        return as_float(self._extra.get("rate_limit"), name="rate_limit", default=None)

    @property
    def retry_policy(self) -> RetryPolicy:
        """The per-request retry policy from the constructor arguments and the connection's extras."""
        return RetryPolicy(
            max_attempts=self.max_attempts,
            max_retry_seconds=self.max_retry_seconds,
            backoff_initial=self.backoff_initial,
            backoff_max=self.backoff_max,
        )

    @cached_property
    def _headers(self) -> dict[str, str]:
        headers = self._extra.get("headers")
        if headers is None and (self._connection.conn_type or "") == "http":
            # The official http connection keeps default headers as the whole extra.
            headers = {k: v for k, v in self._extra.items() if k not in _KNOWN_EXTRAS}
        if isinstance(headers, str):
            import json

            headers = json.loads(headers)
        return {str(k): str(v) for k, v in (headers or {}).items()}

    @cached_property
    def _verify(self) -> bool | str | None:
        verify = self._extra.get("verify")
        if verify is None:
            return None
        return verify if isinstance(verify, str) and "/" in verify else bool(as_bool(verify, name="verify"))

    @cached_property
    def auth(self) -> AuthBase:
        """
        The ``auth=`` given to the hook, else the connection's scheme (:mod:`airflow_provider_mlops.http.auth`).
        """
        if self._auth is not None:
            return self._auth
        from airflow_provider_mlops.http.auth import auth_from_connection

        conn = self._connection
        return auth_from_connection(
            login=conn.login,
            password=conn.password,
            extra=self._extra,
            base_url=self.base_url,
            timeout=self.timeout,
            verify=True if self._verify is None else self._verify,
        )

    @cached_property
    def client(self) -> ApiClient:
        """The plain client this hook configures from its connection (:mod:`airflow_provider_mlops.http`)."""
        conn = self._connection
        basic = redaction.basic_credentials(conn.login, conn.password) if conn.login and conn.password else ()
        return ApiClient(
            base_url=self.base_url,
            auth=self.auth,
            headers=self._headers,
            verify=self._verify,
            timeout=self.timeout,
            rate_limit=self.rate_limit,
            retry_policy=self.retry_policy,
            # Every field that can hold a secret, whatever the auth type says it is for.
            secrets=[conn.password, self._extra.get("token"), self._extra.get("api_key"), *basic],
            log=self.log,
        )

    @property
    def requests_sent(self) -> int:
        """Requests sent so far, retries included."""
        return self.client.requests_sent if "client" in self.__dict__ else 0

    def _secrets(self) -> list[str | None]:
        return self.client.secrets()

    def _redact(self, text: str) -> str:
        return self.client.redact(text)

    @property
    def session(self) -> requests.Session:
        """The requests session (secrets are registered for masking when it is built)."""
        return self.client.session

    def url_for(self, endpoint: str) -> str:
        """``endpoint`` joined to the base URL (an absolute URL is kept)."""
        return self.client.url_for(endpoint)

    def _send_once(
        self,
        method: str,
        url: str,
        params: Mapping[str, Any] | None,
        json: Any,
        headers: Mapping[str, str] | None,
    ) -> requests.Response:
        return self.client.send_once(method, url, params, json, headers)

    def request(
        self,
        method: str,
        endpoint: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> requests.Response:
        """
        Send one request, retried on connection errors, timeouts, a body cut short, 429 and 5xx.

        :param method: the HTTP method.
        :param endpoint: a path relative to the base URL, or an absolute URL.
        :param params: query parameters.
        :param json: a JSON body.
        :param headers: headers on top of the connection's.
        :raises HttpApiError: on a status that is not retried, or once retries are spent.
        """
        return self.client.request(method, endpoint, params=params, json=json, headers=headers)

    def run(self, endpoint: str, **kwargs: Any) -> Any:
        """
        GET (or ``method=``) an endpoint and return the decoded JSON body (``None`` when empty).

        :param endpoint: a path relative to the base URL, or an absolute URL.
        :param kwargs: ``method``, ``params``, ``json``, ``headers``.
        :raises MalformedPageError: when the body is complete but not JSON (an HTML error page).
        """
        method = kwargs.pop("method", "GET")
        params, json, headers = (
            kwargs.pop("params", None),
            kwargs.pop("json", None),
            kwargs.pop("headers", None),
        )
        if kwargs:
            raise TypeError(f"run() got unexpected keyword arguments {sorted(kwargs)}")
        self.client.register_call(endpoint, params, headers)
        return self.client.fetch_json(method, self.url_for(endpoint), params, json, headers)[1]

    def test_connection(self) -> tuple[bool, str]:
        """Request ``test_endpoint`` (default: the base URL); any status below 400 is a success."""
        endpoint = str(self._extra.get("test_endpoint") or "")
        # Settings first, and no connection id in the messages: the Test button runs the hook under
        # a random temporary id that means nothing to the person who pressed it.
        if not (self._connection.host or self._extra.get("base_url")):
            return False, "No base URL: fill in Base URL (e.g. https://api.example.com/v1)"
        try:
            self.auth  # noqa: B018 - builds the auth scheme: a bad auth setting is reported as such
        except ValueError as err:
            # Not self._redact: the client it uses needs the auth scheme that just failed.
            secrets = [self._connection.password, self._extra.get("token"), self._extra.get("api_key")]
            return False, redact(f"Invalid auth settings: {err}", secrets)
        try:
            response = self._send_once("GET", self.url_for(endpoint), None, None, None)
        except HttpApiError as err:
            if err.status in (401, 403):
                return False, f"Authentication rejected by {self._redact(self.base_url)} (HTTP {err.status})"
            return False, self._redact(str(err))
        except (ValueError, OSError) as err:
            return False, self._redact(f"Cannot reach {self.base_url}: {err}")
        return True, f"Connection successfully tested (HTTP {response.status_code})"

    # ----------------------------------------------------------------------------------------------
    # pages, records, batches
    # ----------------------------------------------------------------------------------------------
    def iter_pages(
        self,
        endpoint: str,
        *,
        method: str = "GET",
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        records_path: str | None = None,
        pagination: Pagination | Mapping[str, Any] | str | None = None,
        max_pages: int | None = None,
    ) -> Iterator[list[Any]]:
        """
        Yield the list of records of each page, following the pagination strategy.

        Each page is fetched and decoded as one retried unit, and the next page is only requested
        once this one is complete, so a retry never repeats or skips records.

        :param endpoint: a path relative to the base URL, or an absolute URL.
        :param method: the HTTP method.
        :param params: query parameters of the first request.
        :param json: a JSON body.
        :param headers: headers on top of the connection's.
        :param records_path: dotted path to the records list in each page (``data.items``); the
            body itself when empty (it must then be a list).
        :param pagination: a :class:`Pagination` or a spec such as ``{"type": "cursor",
            "cursor_path": "meta.next"}`` (types: none, page, offset, cursor, link).
        :param max_pages: stop after this many pages (a guard against endless APIs).
        """
        yield from self.client.iter_pages(
            endpoint,
            method=method,
            params=params,
            json=json,
            headers=headers,
            records_path=records_path,
            pagination=pagination,
            max_pages=max_pages,
        )

    def iter_records(self, endpoint: str, **kwargs: Any) -> Iterator[Any]:
        """Every record of every page (see :meth:`iter_pages` for the arguments)."""
        for records in self.iter_pages(endpoint, **kwargs):
            yield from records

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
        Stream the records of a :class:`~airflow_provider_mlops.sources.HttpPages` as record
        batches; with a ``watermark_column`` only the rows inside ``window`` are kept (client side).

        Non-object records (e.g. a list of strings) become a single ``value`` column.

        :param schema: a fixed schema (a contract), see
            :class:`~airflow_provider_mlops.utils.records.RecordBatcher`.
        :param extra: with ``schema``: an undeclared field is an ``error`` or left out (``ignore``).
        :param type_conflict: ``error``, or ``string`` for a field whose values fit no common type.
        """
        from airflow_provider_mlops.sources import HttpPages, Window, filter_batches_by_window
        from airflow_provider_mlops.utils.records import RecordBatcher

        if not isinstance(spec, HttpPages):
            raise ValueError(
                f"HttpApiHook reads an HTTP API: give source=HttpPages(...), not {type(spec).__name__}"
            )
        records = self.iter_records(
            spec.endpoint,
            method=spec.method,
            params=spec.params,
            json=spec.json,
            headers=spec.headers,
            records_path=spec.records_path,
            pagination=spec.pagination,
            max_pages=spec.max_pages,
        )
        batcher = RecordBatcher(
            batch_size=spec.batch_size,
            schema=schema,
            nested=spec.nested,
            extra=extra,
            type_conflict=type_conflict,
        )
        batches = batcher.batches(r if isinstance(r, Mapping) else {"value": r} for r in records)
        if spec.watermark_column:
            batches = filter_batches_by_window(batches, spec.watermark_column, window or Window())
        return batches

    def iter_batches(
        self,
        endpoint: str,
        *,
        batch_size: int = 10_000,
        schema: pa.Schema | None = None,
        nested: Literal["json", "struct"] = "json",
        **kwargs: Any,
    ) -> Iterator[pa.RecordBatch]:
        """
        Stream the records of every page as record batches of at most ``batch_size`` rows.

        Non-object records (e.g. a list of strings) become a single ``value`` column.
        """
        from airflow_provider_mlops.utils.records import RecordBatcher

        def as_dicts() -> Iterator[Mapping[str, Any]]:
            for record in self.iter_records(endpoint, **kwargs):
                yield record if isinstance(record, Mapping) else {"value": record}

        yield from RecordBatcher(batch_size=batch_size, schema=schema, nested=nested).batches(as_dicts())
