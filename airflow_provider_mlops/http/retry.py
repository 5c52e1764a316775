"""
Which failures are worth another try, how long to wait, and the retry loop (tenacity).

Each request is retried on its own, so a flaky page is fetched again without repeating or losing
the pages before it. Retried: connection errors and timeouts, 408/425/429/5xx, and a response cut
short mid-body (a chunked body that never ends, a body shorter than its ``Content-Length``, JSON
that stops half-way), which is the same fault as a reset one packet later. Not retried: other 4xx,
and a complete body that is not JSON (an HTML error page with status 200 is an answer, not a
glitch).

Plain module: requests, urllib3 and tenacity are imported inside the functions (DAG parse time).
"""

from __future__ import annotations

import email.utils
import random
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from airflow_provider_mlops.http.exceptions import (
    HttpApiError,
    MalformedPageError,
    RetryableHttpError,
    TruncatedResponseError,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    import requests

T = TypeVar("T")
RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


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


def _mid_body_errors() -> tuple[type[BaseException], ...]:
    import http.client

    import requests
    import urllib3.exceptions

    # requests wraps urllib3's ProtocolError (which wraps http.client.IncompleteRead) as
    # ChunkedEncodingError while it reads the body; the raw ones can still surface from a streamed
    # body or another adapter, so they are listed too. A truncated gzip stream ends as
    # ContentDecodingError.
    return (
        requests.exceptions.ChunkedEncodingError,
        requests.exceptions.ContentDecodingError,
        urllib3.exceptions.ProtocolError,
        http.client.IncompleteRead,
    )


def classify_exception(error: BaseException, describe: Callable[[str], str]) -> RetryableHttpError | None:
    """
    The retryable error for an exception raised while sending a request or reading its body, or
    ``None`` when another try cannot help (e.g. an invalid URL).

    :param error: what requests (or urllib3, http.client) raised.
    :param describe: turns a detail into the full, secret-free message (method, URL, redaction).
    """
    import requests

    if isinstance(error, _mid_body_errors()):
        return TruncatedResponseError(describe(f"connection dropped mid-response: {error}"))
    if isinstance(error, (requests.ConnectionError, requests.Timeout)):
        return RetryableHttpError(describe(f"{type(error).__name__}: {error}"), 0, None)
    return None


def check_status(response: requests.Response, describe: Callable[[str], str]) -> None:
    """Raise :class:`RetryableHttpError` for 429/5xx and :class:`HttpApiError` for other >= 400."""
    status = response.status_code
    if status in RETRYABLE_STATUS:
        raise RetryableHttpError(
            describe(f"HTTP {status}"), status, parse_retry_after(response.headers.get("Retry-After"))
        )
    if status >= 400:
        raise HttpApiError(describe(f"failed with HTTP {status}: {response.text[:500]}"), status)


def check_complete(response: requests.Response, describe: Callable[[str], str]) -> None:
    """
    Raise :class:`TruncatedResponseError` when the body is shorter than its ``Content-Length``.

    urllib3 2 raises on its own (``enforce_content_length``); urllib3 1.26, which requests still
    accepts, returns the short body silently. Only comparable without a content coding (``content``
    is the decoded body).
    """
    declared = response.headers.get("Content-Length")
    coding = (response.headers.get("Content-Encoding") or "identity").strip().lower()
    if not declared or not declared.strip().isdigit() or coding != "identity" or response.raw is None:
        return
    if response.request is not None and response.request.method == "HEAD":
        return
    received = len(response.content)
    if received < int(declared):
        raise TruncatedResponseError(
            describe(f"connection dropped mid-response: {received} of {declared} bytes"),
            response.status_code,
        )


def decode_json(response: requests.Response, describe: Callable[[str], str]) -> Any:
    """
    The JSON body (``None`` when empty); a body that is not JSON is a clear error.

    A body that starts like JSON (or is declared JSON) but does not parse was cut short: retried.
    Anything else, such as an HTML error page sent with status 200, is a
    :class:`MalformedPageError`, not retried.
    """
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        pass
    content_type = (response.headers.get("Content-Type") or "").lower()
    text = response.text.lstrip()
    looks_html = text[:1] == "<" or "html" in content_type or "xml" in content_type
    looks_json = text[:1] in ("{", "[") or "json" in content_type
    if looks_json and not looks_html:
        raise TruncatedResponseError(
            describe(f"body is not valid JSON ({len(response.content)} bytes; cut short?)"),
            response.status_code,
        )
    kind = "an HTML page" if looks_html else "text"
    raise MalformedPageError(
        describe(
            f"is not JSON but {kind} (HTTP {response.status_code}, content-type "
            f"{content_type or None!r}: an error page from the API or a proxy?); "
            f"body starts {text[:200]!r}"
        ),
        response.status_code,
    )


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """
    Per-request retries: exponential backoff with full jitter, or the server's ``Retry-After``.

    :param max_attempts: attempts per request, the first one included.
    :param max_retry_seconds: give up once this much time has been spent on the request.
    :param backoff_initial: first backoff in seconds, doubled each attempt (with jitter).
    :param backoff_max: the longest single wait, also the cap on ``Retry-After``.
    """

    max_attempts: int = 5
    max_retry_seconds: float = 300.0
    backoff_initial: float = 0.5
    backoff_max: float = 60.0

    def wait(self, attempt: int, error: BaseException | None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based) ended with ``error``."""
        backoff = min(self.backoff_max, self.backoff_initial * (2 ** (attempt - 1)))
        wait = random.uniform(backoff / 2, backoff)  # noqa: S311 - jitter, not cryptography
        if isinstance(error, RetryableHttpError) and error.retry_after is not None:
            # A 401 after an OAuth2 token refresh asks for an immediate retry (retry_after=0).
            floor = wait if error.status != 401 else 0.0
            wait = max(floor, min(error.retry_after, self.backoff_max))
        return wait

    def call(
        self,
        func: Callable[[], T],
        *,
        on_retry: Callable[[int, BaseException, float], None] | None = None,
    ) -> T:
        """
        Call ``func`` until it returns, raises a non-retryable error, or the budget is spent.

        :param on_retry: told ``(attempt, error, seconds to wait)`` before each wait (for a log line).
        :raises HttpApiError: the last retryable error once attempts or time ran out, with the
            number of attempts in its text.
        """
        import tenacity

        def before_sleep(state: tenacity.RetryCallState) -> None:
            if on_retry is not None and state.outcome is not None:
                error = state.outcome.exception()
                pause = state.next_action.sleep if state.next_action else 0.0
                on_retry(state.attempt_number, error, pause)  # type: ignore[arg-type]

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(RetryableHttpError),
            stop=tenacity.stop_after_attempt(self.max_attempts)
            | tenacity.stop_after_delay(self.max_retry_seconds),
            wait=lambda state: self.wait(
                state.attempt_number, state.outcome.exception() if state.outcome else None
            ),
            reraise=True,
            before_sleep=before_sleep,
        )
        try:
            return retrying(func)
        except RetryableHttpError as err:
            attempts = retrying.statistics.get("attempt_number", self.max_attempts)
            raise HttpApiError(f"{err} (gave up after {attempts} attempts)", err.status) from None
