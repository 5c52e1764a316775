"""
Pagination strategies: given one page's request and response, build the next request (or stop).

Plain module (no Airflow; requests only in type hints), so a strategy can be tested with canned
responses. :meth:`Pagination.from_spec` builds one from a DAG-friendly dict such as
``{"type": "cursor", "cursor_path": "meta.next"}``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin

if TYPE_CHECKING:
    import requests


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
        """
        Build a strategy from a dict (DAG-friendly), e.g. ``{"type": "offset", "limit": 500}``.

        ``type`` is one of ``none``, ``page`` / ``page_number`` (:class:`PageNumberPagination`),
        ``offset`` (:class:`OffsetPagination`), ``cursor`` (:class:`CursorPagination`), ``link`` /
        ``link_header`` (:class:`LinkHeaderPagination`); the other keys are that class's fields
        (an unknown key is a ``TypeError`` naming it). A string is a type with its defaults.
        """
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
    """
    ``?page=1&per_page=N``; stops on an empty page, or a short one when ``page_size`` is known.

    Spec: ``{"type": "page"}`` (or ``"page_number"``) with any of the keys below, e.g.
    ``{"type": "page", "page_param": "p", "size_param": "limit", "page_size": 200, "start": 0}``.

    :param page_param: the query parameter holding the page number (default ``page``).
    :param size_param: the query parameter holding the page size (default ``per_page``); None sends
        no size (the API's default applies).
    :param page_size: rows per page to ask for; when given, a page with fewer records is the last
        one (one request fewer). Without it, paging stops at the first empty page.
    :param start: the first page's number (default 1; some APIs count from 0).
    """

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
    """
    ``?offset=0&limit=N``; stops on an empty or short page (fewer records than ``limit``).

    Spec: ``{"type": "offset", "limit": 500}`` with any of the keys below.

    :param offset_param: the query parameter holding the offset (default ``offset``).
    :param limit_param: the query parameter holding the page size (default ``limit``).
    :param limit: rows per page (default 100); the next offset advances by the records received.
    :param start: the first offset (default 0).
    """

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

    Spec: ``{"type": "cursor", "cursor_path": "meta.next", "cursor_param": "after"}`` or
    ``{"type": "cursor", "next_url_path": "links.next"}``.

    :param cursor_path: dotted path of the cursor in the response body (default ``next_cursor``).
    :param cursor_param: the query parameter the cursor is sent back as (default ``cursor``).
    :param next_url_path: dotted path of a full (or relative) next-page URL in the body; when set,
        it is followed instead of a cursor.
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
    """
    RFC 5988 / 8288 ``Link: <url>; rel="next"`` headers (GitHub style).

    Spec: ``{"type": "link"}`` (or ``"link_header"``).

    :param rel: the relation to follow (default ``next``).
    """

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
