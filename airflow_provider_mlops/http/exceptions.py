"""Errors an HTTP API request ends with (plain module: no Airflow, no requests)."""

from __future__ import annotations


class HttpApiError(RuntimeError):
    """
    A request failed for good (after retries, or with a status that is not retried).

    :param message: the error text, already free of secrets.
    :param status: the HTTP status, ``None`` (or ``0``) when no response arrived.
    """

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class RetryableHttpError(HttpApiError):
    """
    A failure worth another try: 429, 5xx, a reset, a timeout, a body cut short.

    :param retry_after: seconds the server asked us to wait (``Retry-After``), if it said.
    """

    def __init__(self, message: str, status: int, retry_after: float | None) -> None:
        super().__init__(message, status)
        self.retry_after = retry_after


class TruncatedResponseError(RetryableHttpError):
    """
    The connection dropped mid-response: a chunked body that never ended, a body shorter than its
    ``Content-Length``, or JSON that stops half-way. Retried like a reset: the page is fetched again
    whole, so nothing of it is kept twice or lost.
    """

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message, status, None)


class MalformedPageError(HttpApiError, ValueError):
    """
    A page whose body is not JSON (e.g. an HTML error page answered with status 200), or has no
    list of records at the configured path. Not retried: the server answered in full.

    Also a :class:`ValueError`, as ``response.json()``'s error was before, so callers catching that
    keep working.
    """
