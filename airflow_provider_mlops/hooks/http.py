"""
HTTP JSON API hook: authentication, built-in pagination, per-request retries, streaming to Arrow.

Each request is retried on its own (connection errors, timeouts, 429 and 5xx) with exponential
backoff and jitter, honouring ``Retry-After``, so a flaky page is fetched again without repeating
or losing the pages before it. Records are taken from a JSON path in each page and streamed into
record batches of bounded size.
"""

from __future__ import annotations

import email.utils
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urljoin

from airflow.sdk import BaseHook

from airflow_provider_mlops.utils.connection import as_bool, as_float, as_int, redact

if TYPE_CHECKING:
    import pyarrow as pa
    import requests

AuthType = Literal["none", "basic", "bearer", "api_key", "oauth2"]
RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
_KNOWN_EXTRAS = frozenset(
    {
        "auth_type",
        "token",
        "api_key",
        "api_key_name",
        "api_key_in",
        "token_url",
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


class HttpApiError(RuntimeError):
    """A request failed for good (after retries, or with a status that is not retried)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class RetryableHttpError(HttpApiError):
    """A response whose status is worth another try (429, 5xx...)."""

    def __init__(self, message: str, status: int, retry_after: float | None) -> None:
        super().__init__(message, status)
        self.retry_after = retry_after


class MalformedPageError(HttpApiError):
    """A page whose body is not JSON, or has no list of records at the configured path."""


def get_path(document: Any, path: str | None) -> Any:
    """Follow a dotted path (``data.items``; list indexes allowed) into a JSON document."""
    if not path:
        return document
    current = document
    for part in path.split("."):
        if isinstance(current, Mapping):
            if part not in current:
                return None
            current = current[part]
        elif isinstance(current, list) and part.lstrip("-").isdigit():
            index = int(part)
            current = current[index] if -len(current) <= index < len(current) else None
        else:
            return None
    return current


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


# --------------------------------------------------------------------------------------------------
# pagination strategies
# --------------------------------------------------------------------------------------------------
@dataclass
class PageRequest:
    """What to send for one page: the URL (absolute or endpoint) and query parameters."""

    url: str
    params: dict[str, Any] = field(default_factory=dict)
    json: Any = None


class Pagination:
    """Base class: given the request and response of one page, build the next request or None."""

    def first(self, request: PageRequest) -> PageRequest:
        return request

    def next(
        self, request: PageRequest, response: requests.Response, body: Any, records: list[Any]
    ) -> PageRequest | None:
        return None

    @staticmethod
    def from_spec(spec: Pagination | Mapping[str, Any] | str | None) -> Pagination:
        """Build a strategy from a dict (DAG-friendly), e.g. ``{"type": "offset", "limit": 500}``."""
        if spec is None:
            return Pagination()
        if isinstance(spec, Pagination):
            return spec
        if isinstance(spec, str):
            spec = {"type": spec}
        options = dict(spec)
        kind = options.pop("type", None)
        classes: dict[str, type[Pagination]] = {
            "none": Pagination,
            "page": PageNumberPagination,
            "page_number": PageNumberPagination,
            "offset": OffsetPagination,
            "cursor": CursorPagination,
            "link": LinkHeaderPagination,
            "link_header": LinkHeaderPagination,
        }
        if kind not in classes:
            raise ValueError(f"Unknown pagination type {kind!r}; one of {sorted(classes)}")
        return classes[kind](**options)


@dataclass
class PageNumberPagination(Pagination):
    """``?page=1&per_page=N``; stops on an empty page, or a short one when ``page_size`` is known."""

    page_param: str = "page"
    size_param: str | None = "per_page"
    page_size: int | None = None
    start: int = 1

    def first(self, request: PageRequest) -> PageRequest:
        params = {**request.params, self.page_param: self.start}
        if self.size_param and self.page_size:
            params[self.size_param] = self.page_size
        return PageRequest(request.url, params, request.json)

    def next(self, request, response, body, records):  # type: ignore[no-untyped-def]
        if not records or (self.page_size and len(records) < self.page_size):
            return None
        params = {**request.params, self.page_param: int(request.params[self.page_param]) + 1}
        return PageRequest(request.url, params, request.json)


@dataclass
class OffsetPagination(Pagination):
    """``?offset=0&limit=N``; stops on an empty or short page."""

    offset_param: str = "offset"
    limit_param: str = "limit"
    limit: int = 100
    start: int = 0

    def first(self, request: PageRequest) -> PageRequest:
        params = {**request.params, self.offset_param: self.start, self.limit_param: self.limit}
        return PageRequest(request.url, params, request.json)

    def next(self, request, response, body, records):  # type: ignore[no-untyped-def]
        if len(records) < self.limit:
            return None
        params = {**request.params, self.offset_param: int(request.params[self.offset_param]) + len(records)}
        return PageRequest(request.url, params, request.json)


@dataclass
class CursorPagination(Pagination):
    """
    A cursor or next-page token in the body (``cursor_path``), sent back as ``cursor_param``; or a
    full next URL in the body (``next_url_path``). Stops when it is missing or empty.
    """

    cursor_path: str | None = "next_cursor"
    cursor_param: str = "cursor"
    next_url_path: str | None = None

    def next(self, request, response, body, records):  # type: ignore[no-untyped-def]
        if self.next_url_path:
            url = get_path(body, self.next_url_path)
            return PageRequest(urljoin(response.url, str(url)), {}, request.json) if url else None
        cursor = get_path(body, self.cursor_path)
        if cursor in (None, "", False):
            return None
        return PageRequest(request.url, {**request.params, self.cursor_param: cursor}, request.json)


@dataclass
class LinkHeaderPagination(Pagination):
    """RFC 5988 / 8288 ``Link: <url>; rel="next"`` headers (GitHub style)."""

    rel: str = "next"

    def next(self, request, response, body, records):  # type: ignore[no-untyped-def]
        link = response.links.get(self.rel)
        if not link or not link.get("url"):
            return None
        return PageRequest(urljoin(response.url, link["url"]), {}, request.json)


@dataclass
class CallablePagination(Pagination):
    """A user function ``(request, response, body, records) -> PageRequest | dict | None``."""

    func: Callable[..., Any] = field(default=lambda *a: None)

    def next(self, request, response, body, records):  # type: ignore[no-untyped-def]
        result = self.func(request, response, body, records)
        if result is None or isinstance(result, PageRequest):
            return result
        return PageRequest(result.get("url", request.url), result.get("params", {}), result.get("json"))


# --------------------------------------------------------------------------------------------------
# the hook
# --------------------------------------------------------------------------------------------------
class HttpApiHook(BaseHook):
    """
    Call a JSON HTTP API with authentication, pagination and per-request retries.

    Works with this provider's ``mlops_http`` connections and the official ``http`` ones (whose extra
    JSON, when it holds none of the keys below, is sent as headers, like the official hook does).

    Connection: host is the base URL (``https://api.example.com/v1``; or host + schema + port);
    login / password are the basic-auth user and password, the OAuth2 client id and secret, or
    (password) the bearer token / API key. Extras: ``auth_type`` (none, basic, bearer, api_key,
    oauth2), ``api_key_name``, ``api_key_in`` (header or query), ``token_url``, ``scope``,
    ``audience``, ``headers`` (dict), ``timeout`` (s), ``verify`` (bool or CA path), ``rate_limit``
    (requests/s), ``max_attempts``, ``max_retry_seconds``, ``test_endpoint``.

    :param http_conn_id: the Airflow connection id.
    :param max_attempts: attempts per request (connection errors, timeouts, 429, 5xx are retried).
    :param max_retry_seconds: give up on a request once this much time has been spent retrying it.
    :param backoff_initial: first backoff in seconds, doubled each attempt (with jitter).
    :param backoff_max: the longest single wait, also the cap on ``Retry-After``.
    """

    conn_name_attr = "http_conn_id"
    default_conn_name = "http_default"
    conn_type = "mlops_http"
    hook_name = "HTTP JSON API (MLOps)"

    def __init__(
        self,
        http_conn_id: str = default_conn_name,
        *,
        max_attempts: int | None = None,
        max_retry_seconds: float | None = None,
        backoff_initial: float = 0.5,
        backoff_max: float = 60.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.http_conn_id = http_conn_id
        self._max_attempts = max_attempts
        self._max_retry_seconds = max_retry_seconds
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self._token: str | None = None
        self._token_expiry = 0.0
        self._lock = threading.Lock()
        self._last_request = 0.0
        self.requests_sent = 0

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
        elif conn.port and host.count(":") < 2:
            host = f"{host.rstrip('/')}:{conn.port}"
        if not host:
            raise ValueError(f"Connection {self.http_conn_id!r} has no host (base URL)")
        return host.rstrip("/") + "/"

    @cached_property
    def auth_type(self) -> str:
        conn = self._connection
        auth = str(self._extra.get("auth_type") or "").lower()
        if not auth:
            if self._extra.get("token_url"):
                auth = "oauth2"
            elif self._extra.get("api_key_name"):
                auth = "api_key"
            elif conn.login and conn.password:
                auth = "basic"
            elif conn.password or self._extra.get("token"):
                auth = "bearer"
            else:
                auth = "none"
        if auth not in ("none", "basic", "bearer", "api_key", "oauth2"):
            raise ValueError(f"auth_type must be none, basic, bearer, api_key or oauth2, got {auth!r}")
        return auth

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

    def _secrets(self) -> list[str | None]:
        return [self._connection.password, self._extra.get("token"), self._extra.get("api_key"), self._token]

    @cached_property
    def session(self) -> requests.Session:
        import requests

        from airflow_provider_mlops.utils.secrets import mask_secret

        session = requests.Session()
        headers = self._extra.get("headers")
        if headers is None and (self._connection.conn_type or "") == "http":
            # The official http connection keeps default headers as the whole extra.
            headers = {k: v for k, v in self._extra.items() if k not in _KNOWN_EXTRAS}
        if headers:
            if isinstance(headers, str):
                import json

                headers = json.loads(headers)
            session.headers.update({str(k): str(v) for k, v in headers.items()})
        verify = self._extra.get("verify")
        if verify is not None:
            session.verify = (
                verify if isinstance(verify, str) and "/" in verify else bool(as_bool(verify, name="verify"))
            )
        conn = self._connection
        secret = self._extra.get("token") or self._extra.get("api_key") or conn.password
        if secret:
            mask_secret(secret)
        if self.auth_type == "basic":
            session.auth = (conn.login or "", conn.password or "")
        elif self.auth_type == "bearer":
            session.headers["Authorization"] = f"Bearer {secret}"
        elif self.auth_type == "api_key" and (self._extra.get("api_key_in") or "header") == "header":
            session.headers[str(self._extra.get("api_key_name") or "X-API-Key")] = str(secret)
        return session

    # ----------------------------------------------------------------------------------------------
    # auth
    # ----------------------------------------------------------------------------------------------
    def _oauth_token(self, *, force: bool = False) -> str:
        """An OAuth2 client-credentials access token, cached until shortly before it expires."""
        import requests

        from airflow_provider_mlops.utils.secrets import mask_secret

        with self._lock:
            if self._token and not force and time.monotonic() < self._token_expiry:
                return self._token
            conn = self._connection
            token_url = self._extra.get("token_url")
            if not token_url:
                raise ValueError("auth_type=oauth2 needs a token_url extra")
            data = {"grant_type": "client_credentials"}
            for key in ("scope", "audience"):
                if self._extra.get(key):
                    data[key] = self._extra[key]
            try:
                response = requests.post(
                    urljoin(self.base_url, token_url),
                    data=data,
                    auth=(conn.login or "", conn.password or ""),
                    timeout=self.timeout,
                    verify=self.session.verify,
                )
            except requests.RequestException as err:
                raise HttpApiError(redact(f"OAuth2 token request failed: {err}", self._secrets())) from None
            if response.status_code >= 400:
                raise HttpApiError(
                    f"OAuth2 token request to {token_url} was refused (HTTP {response.status_code})",
                    response.status_code,
                )
            payload = response.json()
            token = payload.get("access_token")
            if not token:
                raise HttpApiError("OAuth2 token response has no access_token")
            mask_secret(token)
            self._token = str(token)
            lifetime = float(payload.get("expires_in") or 3600)
            self._token_expiry = time.monotonic() + max(lifetime - 30.0, lifetime / 2)
            return self._token

    def _prepare(self, params: dict[str, Any], headers: dict[str, str]) -> None:
        if self.auth_type == "api_key" and (self._extra.get("api_key_in") or "header") == "query":
            secret = self._extra.get("api_key") or self._connection.password
            params[str(self._extra.get("api_key_name") or "api_key")] = secret
        elif self.auth_type == "oauth2":
            headers["Authorization"] = f"Bearer {self._oauth_token()}"

    # ----------------------------------------------------------------------------------------------
    # requests
    # ----------------------------------------------------------------------------------------------
    def _throttle(self) -> None:
        if not self.rate_limit:
            return
        with self._lock:
            wait = self._last_request + 1.0 / self.rate_limit - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            self._last_request = time.monotonic()

    def url_for(self, endpoint: str) -> str:
        if "://" in endpoint:
            return endpoint
        return urljoin(self.base_url, endpoint.lstrip("/"))

    def _send_once(
        self,
        method: str,
        url: str,
        params: Mapping[str, Any] | None,
        json: Any,
        headers: Mapping[str, str] | None,
    ) -> requests.Response:
        import requests

        params = dict(params or {})
        all_headers = dict(headers or {})
        self._prepare(params, all_headers)
        self._throttle()
        self.requests_sent += 1
        try:
            response = self.session.request(
                method, url, params=params, json=json, headers=all_headers, timeout=self.timeout
            )
        except (requests.ConnectionError, requests.Timeout) as err:
            raise RetryableHttpError(
                redact(f"{method} {url}: {type(err).__name__}: {err}", self._secrets()), 0, None
            ) from None
        if response.status_code == 401 and self.auth_type == "oauth2":
            self._oauth_token(force=True)
            raise RetryableHttpError(f"{method} {url}: HTTP 401, token refreshed", 401, 0.0)
        if response.status_code in RETRYABLE_STATUS:
            raise RetryableHttpError(
                f"{method} {_safe_url(response.url, self._secrets())}: HTTP {response.status_code}",
                response.status_code,
                parse_retry_after(response.headers.get("Retry-After")),
            )
        if response.status_code >= 400:
            snippet = redact(response.text[:500], self._secrets())
            raise HttpApiError(
                f"{method} {_safe_url(response.url, self._secrets())} failed with HTTP "
                f"{response.status_code}: {snippet}",
                response.status_code,
            )
        return response

    def _wait(self, retry_state: Any) -> float:
        """Exponential backoff with full jitter, or the server's ``Retry-After`` when it is longer."""
        import random

        attempt = retry_state.attempt_number
        backoff = min(self.backoff_max, self.backoff_initial * (2 ** (attempt - 1)))
        wait = random.uniform(backoff / 2, backoff)  # noqa: S311 - jitter, not cryptography
        error = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(error, RetryableHttpError) and error.retry_after is not None:
            wait = max(wait if error.status != 401 else 0.0, min(error.retry_after, self.backoff_max))
        return wait

    def request(
        self,
        method: str,
        endpoint: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> requests.Response:
        """Send one request, retried on connection errors, timeouts, 429 and 5xx."""
        import tenacity

        url = self.url_for(endpoint)
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(RetryableHttpError),
            stop=tenacity.stop_after_attempt(self.max_attempts)
            | tenacity.stop_after_delay(self.max_retry_seconds),
            wait=self._wait,
            reraise=True,
            before_sleep=lambda state: self.log.warning(
                "Attempt %s failed (%s); retrying in %.2fs",
                state.attempt_number,
                state.outcome.exception() if state.outcome else "?",
                state.next_action.sleep if state.next_action else 0,
            ),
        )
        try:
            return retrying(self._send_once, method, url, params, json, headers)
        except RetryableHttpError as err:
            raise HttpApiError(f"{err} (gave up after {self.max_attempts} attempts)", err.status) from None

    def run(self, endpoint: str, **kwargs: Any) -> Any:
        """GET (or ``method=``) an endpoint and return the decoded JSON body."""
        method = kwargs.pop("method", "GET")
        response = self.request(method, endpoint, **kwargs)
        return response.json() if response.content else None

    def test_connection(self) -> tuple[bool, str]:
        """Request ``test_endpoint`` (default: the base URL); any status below 400 is a success."""
        endpoint = str(self._extra.get("test_endpoint") or "")
        try:
            response = self._send_once("GET", self.url_for(endpoint), None, None, None)
        except HttpApiError as err:
            if err.status in (401, 403):
                return False, f"Authentication rejected by {self.base_url} (HTTP {err.status})"
            return False, redact(str(err), self._secrets())
        except (ValueError, OSError) as err:
            return False, redact(f"Cannot reach {self.base_url}: {err}", self._secrets())
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

        :param records_path: dotted path to the records list in each page (``data.items``); the
            body itself when empty (it must then be a list).
        :param pagination: a :class:`Pagination` or a spec such as ``{"type": "cursor",
            "cursor_path": "meta.next"}`` (types: none, page, offset, cursor, link).
        :param max_pages: stop after this many pages (a guard against endless APIs).
        """
        strategy = Pagination.from_spec(pagination)
        request: PageRequest | None = strategy.first(
            PageRequest(self.url_for(endpoint), dict(params or {}), json)
        )
        pages = 0
        while request is not None:
            response = self.request(
                method, request.url, params=request.params, json=request.json, headers=headers
            )
            pages += 1
            try:
                body = response.json() if response.content else None
            except ValueError:
                raise MalformedPageError(
                    f"Page {pages} of {method} {_safe_url(response.url, self._secrets())} is not JSON "
                    f"(content-type {response.headers.get('Content-Type')!r}): "
                    f"{redact(response.text[:200], self._secrets())!r}"
                ) from None
            records = get_path(body, records_path) if body is not None else []
            where = f"Page {pages} of {method} {_safe_url(response.url, self._secrets())}"
            if records is None and body is not None and records_path:
                top = sorted(body)[:20] if isinstance(body, dict) else type(body).__name__
                raise MalformedPageError(f"{where} has no {records_path!r} (top-level keys: {top})")
            if isinstance(records, Mapping):
                records = [records]
            if not isinstance(records, list):
                raise MalformedPageError(
                    f"{where}: expected a list of records at {records_path or 'the top level'!r}, "
                    f"got {type(records).__name__}"
                )
            yield records
            if max_pages is not None and pages >= max_pages:
                return
            request = strategy.next(request, response, body, records)

    def iter_records(self, endpoint: str, **kwargs: Any) -> Iterator[Any]:
        """Every record of every page (see :meth:`iter_pages` for the arguments)."""
        for records in self.iter_pages(endpoint, **kwargs):
            yield from records

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
        from airflow_provider_mlops.utils.arrow import RecordBatcher

        def as_dicts() -> Iterator[Mapping[str, Any]]:
            for record in self.iter_records(endpoint, **kwargs):
                yield record if isinstance(record, Mapping) else {"value": record}

        yield from RecordBatcher(batch_size=batch_size, schema=schema, nested=nested).batches(as_dicts())


def _safe_url(url: str, secrets: list[str | None]) -> str:
    return redact(url, secrets)
