"""
A JSON API client: one session, per-request retries, pagination, secrets masked before sending.

The layer under :class:`~airflow_provider_mlops.hooks.http.HttpApiHook` (which builds it from an
Airflow connection), like dlt's ``RESTClient``. Plain module: requests is imported inside.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urljoin, urlsplit

from airflow_provider_mlops.http import redaction
from airflow_provider_mlops.http.exceptions import HttpApiError, MalformedPageError
from airflow_provider_mlops.http.paginators import PageRequest, Pagination, get_path
from airflow_provider_mlops.http.retry import (
    RetryPolicy,
    check_complete,
    check_status,
    classify_exception,
    decode_json,
)

if TYPE_CHECKING:
    import requests
    from requests.auth import AuthBase

_log = logging.getLogger(__name__)


class ApiClient:
    """
    Send requests to one API.

    :param base_url: what relative endpoints are joined to (ends with ``/``).
    :param auth: any ``requests.auth.AuthBase`` (the schemes of :mod:`.auth`, requests-oauthlib's
        ``OAuth2``, a Kerberos auth ...), or a ``(user, password)`` tuple; none by default. Its secrets
        are masked when it names them (:func:`.auth.auth_secrets`); pass others in ``secrets``.
    :param headers: headers sent with every request.
    :param verify: TLS verification as requests takes it (``None``: requests' default).
    :param timeout: seconds per request (connect and each read).
    :param rate_limit: at most this many requests per second (``None``: unlimited).
    :param retry_policy: per-request retries (:class:`.retry.RetryPolicy`).
    :param secrets: more values to mask (e.g. a connection's password, in whatever role).
    :param log: where retries are logged (a stdlib or structlog logger: ``warning`` is all it needs).
    """

    def __init__(
        self,
        *,
        base_url: str,
        auth: AuthBase | tuple[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        verify: bool | str | None = None,
        timeout: float = 30.0,
        rate_limit: float | None = None,
        retry_policy: RetryPolicy | None = None,
        secrets: Iterable[str | None] = (),
        log: Any = None,
    ) -> None:
        self.base_url = base_url
        self.auth = auth
        self.headers = dict(headers or {})
        self.verify = verify
        self.timeout = timeout
        self.rate_limit = rate_limit
        self.retry_policy = retry_policy or RetryPolicy()
        self.log = log or _log
        self._extra_secrets = list(secrets)
        self._lock = threading.Lock()
        self._last_request = 0.0
        self.requests_sent = 0

    def secrets(self) -> list[str | None]:
        """Every secret this client knows, in each form it can take (the OAuth2 token too)."""
        found: list[str | None] = list(self._extra_secrets)
        for name, value in self.headers.items():
            found.extend(redaction.header_secrets(name, value))
        userinfo = urlsplit(self.base_url)
        if userinfo.password:
            found.append(userinfo.password)
            found.extend(redaction.basic_credentials(userinfo.username or "", userinfo.password))
        found.extend(self._auth_secrets())
        return found

    def _auth_secrets(self) -> list[str]:
        if isinstance(self.auth, tuple):
            user, password = (str(v) for v in self.auth)
            return [password, *redaction.basic_credentials(user, password)]
        if self.auth is None:
            return []
        from airflow_provider_mlops.http.auth import auth_secrets

        return auth_secrets(self.auth)

    def redact(self, text: str) -> str:
        """``text`` without any secret (see :func:`.redaction.redact`)."""
        return redaction.redact(text, self.secrets())

    @cached_property
    def session(self) -> requests.Session:
        import requests

        # Before anything is sent: urllib3 writes the request line (query string included) at
        # DEBUG as the request goes out, and Airflow's masker only hides what it was told about.
        redaction.register(*self.secrets())
        redaction.install_log_filter()
        session = requests.Session()
        session.headers.update(self.headers)
        if self.verify is not None:
            session.verify = self.verify
        session.auth = self.auth
        return session

    def register_call(
        self, endpoint: str, params: Mapping[str, Any] | None, headers: Mapping[str, str] | None
    ) -> None:
        """Mask the secrets a caller passes (sensitive headers and query parameters) before sending."""
        redaction.register_headers(headers)
        redaction.register_params(params)
        redaction.register_params(dict(parse_qsl(urlsplit(endpoint).query)))

    def url_for(self, endpoint: str) -> str:
        """``endpoint`` joined to the base URL (an absolute URL is kept)."""
        if "://" in endpoint:
            return endpoint
        return urljoin(self.base_url, endpoint.lstrip("/"))

    def _throttle(self) -> None:
        if not self.rate_limit:
            return
        with self._lock:
            wait = self._last_request + 1.0 / self.rate_limit - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            self._last_request = time.monotonic()

    def _describer(self, prefix: str) -> Callable[[str], str]:
        return lambda detail: self.redact(f"{prefix}: {detail}")

    def send_once(
        self,
        method: str,
        url: str,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> requests.Response:
        """One attempt: send, check the status and that the body arrived whole (no retries here)."""
        import requests

        session = self.session  # registers the secrets before the first send
        params = dict(params or {})
        all_headers = dict(headers or {})
        self._throttle()
        self.requests_sent += 1
        try:
            # stream=False (the default): the whole body is read here, so a connection dropped
            # mid-body surfaces now, inside this attempt, and the attempt is retried whole.
            response = session.request(
                method, url, params=params, json=json, headers=all_headers, timeout=self.timeout
            )
        except requests.RequestException as err:
            # Name the page (its query string) as a response's URL would; redaction masks secrets.
            try:
                full_url = requests.Request(method, url, params=params).prepare().url or url
            except requests.RequestException:
                full_url = url
            describe = self._describer(f"{method} {full_url}")
            retryable = classify_exception(err, describe)
            if retryable is not None:
                raise retryable from None
            raise HttpApiError(describe(f"{type(err).__name__}: {err}")) from None
        describe = self._describer(f"{method} {response.url}")
        check_status(response, describe)
        check_complete(response, describe)
        return response

    def _log_retry(self, attempt: int, error: BaseException, pause: float) -> None:
        # The error text was built redacted; the log filter and Airflow's masker are the backstop.
        self.log.warning("Attempt %s failed (%s); retrying in %.2fs", attempt, error, pause)

    def request(
        self,
        method: str,
        endpoint: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> requests.Response:
        """One request, retried per :attr:`retry_policy`; see :meth:`HttpApiHook.request`."""
        self.register_call(endpoint, params, headers)
        url = self.url_for(endpoint)
        return self.retry_policy.call(
            lambda: self.send_once(method, url, params, json, headers), on_retry=self._log_retry
        )

    def fetch_json(
        self,
        method: str,
        url: str,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        *,
        label: str = "",
    ) -> tuple[requests.Response, Any]:
        """Send and decode, retried as one unit: JSON cut short is fetched again like a reset."""

        def attempt() -> tuple[requests.Response, Any]:
            response = self.send_once(method, url, params, json, headers)
            return response, decode_json(response, self._describer(f"{label}{method} {response.url}"))

        return self.retry_policy.call(attempt, on_retry=self._log_retry)

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
        """The records of each page; see :meth:`HttpApiHook.iter_pages`."""
        self.register_call(endpoint, params, headers)
        strategy = Pagination.from_spec(pagination)
        request: PageRequest | None = strategy.first(
            PageRequest(self.url_for(endpoint), dict(params or {}), json)
        )
        pages = 0
        while request is not None:
            pages += 1
            response, body = self.fetch_json(
                method, request.url, request.params, request.json, headers, label=f"Page {pages} of "
            )
            records = get_path(body, records_path) if body is not None else []
            where = f"Page {pages} of {method} {self.redact(response.url)}"
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
