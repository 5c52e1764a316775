"""The HTTP client's plain layers (paginators, retry, redaction, auth) with canned inputs: no server."""

from __future__ import annotations

import base64
import http.client
import logging
from types import SimpleNamespace
from typing import Any

import pytest
import requests
import urllib3.exceptions
from requests.auth import AuthBase

from airflow_provider_mlops.http import redaction
from airflow_provider_mlops.http.auth import (
    ApiKeyAuth,
    BasicAuth,
    BearerAuth,
    NoAuth,
    OAuth2ClientCredentials,
    auth_from_connection,
    auth_secrets,
)
from airflow_provider_mlops.http.exceptions import (
    HttpApiError,
    MalformedPageError,
    RetryableHttpError,
    TruncatedResponseError,
)
from airflow_provider_mlops.http.paginators import (
    CursorPagination,
    LinkHeaderPagination,
    OffsetPagination,
    PageNumberPagination,
    PageRequest,
    Pagination,
    get_path,
)
from airflow_provider_mlops.http.retry import (
    RetryPolicy,
    check_complete,
    classify_exception,
    decode_json,
    parse_retry_after,
)

pytestmark = pytest.mark.unit


def _response(
    body: bytes, *, headers: dict[str, str] | None = None, status: int = 200, url: str = "https://api/x"
) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = body
    response.headers.update(headers or {})
    response.url = url
    response.raw = SimpleNamespace()  # any non-None raw: check_complete only looks at headers
    return response


def test_get_path() -> None:
    doc = {"data": {"items": [{"a": 1}, {"a": 2}]}}
    assert get_path(doc, "data.items.1.a") == 2
    assert get_path(doc, "data.items.-1.a") == 2
    assert get_path(doc, "data.missing") is None
    assert get_path(doc, "") is doc


def test_paginators_with_canned_responses() -> None:
    first = PageRequest("https://api/items", {"q": "x"})
    page = PageNumberPagination(page_size=2)
    req = page.first(first)
    assert req.params == {"q": "x", "page": 1, "per_page": 2}
    nxt = page.next(req, _response(b""), None, [1, 2])
    assert nxt is not None and nxt.params["page"] == 2
    assert page.next(nxt, _response(b""), None, [3]) is None  # short page ends it

    offset = OffsetPagination(limit=3)
    req = offset.first(first)
    nxt = offset.next(req, _response(b""), None, [1, 2, 3])
    assert nxt is not None and nxt.params == {"q": "x", "offset": 3, "limit": 3}
    assert offset.next(nxt, _response(b""), None, [4]) is None

    cursor = CursorPagination(cursor_path="meta.next")
    nxt = cursor.next(first, _response(b""), {"meta": {"next": "abc"}}, [1])
    assert nxt is not None and nxt.params["cursor"] == "abc"
    assert cursor.next(first, _response(b""), {"meta": {"next": ""}}, [1]) is None
    by_url = CursorPagination(next_url_path="links.next")
    nxt = by_url.next(first, _response(b"", url="https://api/v1/items?p=1"), {"links": {"next": "?p=2"}}, [1])
    assert nxt is not None and nxt.url == "https://api/v1/items?p=2" and nxt.params == {}

    linked = _response(b"", headers={"Link": '<https://api/items?page=2>; rel="next"'})
    nxt = LinkHeaderPagination().next(first, linked, None, [1])
    assert nxt is not None and nxt.url == "https://api/items?page=2"
    assert LinkHeaderPagination().next(first, _response(b""), None, [1]) is None

    assert isinstance(Pagination.from_spec({"type": "offset", "limit": 5}), OffsetPagination)
    assert type(Pagination.from_spec(None)) is Pagination
    with pytest.raises(ValueError, match="Unknown pagination type 'pages'"):
        Pagination.from_spec("pages")


def test_parse_retry_after() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert 0 <= parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") <= 0.001


def test_retry_policy_waits_for_retry_after_capped_by_backoff_max() -> None:
    policy = RetryPolicy(backoff_initial=0.1, backoff_max=5.0)
    assert 0.05 <= policy.wait(1, None) <= 0.1
    assert policy.wait(1, RetryableHttpError("429", 429, 3.0)) == 3.0
    assert policy.wait(1, RetryableHttpError("429", 429, 600.0)) == 5.0
    assert policy.wait(1, RetryableHttpError("401 refreshed", 401, 0.0)) == 0.0


def test_retry_policy_retries_then_gives_up_naming_the_attempts() -> None:
    policy = RetryPolicy(max_attempts=3, backoff_initial=0.001, backoff_max=0.01)
    calls: list[int] = []
    retries: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise TruncatedResponseError("GET x: connection dropped mid-response")
        return "ok"

    assert policy.call(flaky, on_retry=lambda attempt, err, pause: retries.append(attempt)) == "ok"
    assert retries == [1, 2]

    def always() -> str:
        raise RetryableHttpError("GET x: HTTP 503", 503, None)

    with pytest.raises(HttpApiError, match=r"HTTP 503 \(gave up after 3 attempts\)") as info:
        policy.call(always)
    assert info.value.status == 503 and not isinstance(info.value, RetryableHttpError)

    def refused() -> str:
        calls.append(1)
        raise HttpApiError("GET x: failed with HTTP 404", 404)

    before = len(calls)
    with pytest.raises(HttpApiError, match="404"):
        policy.call(refused)
    assert len(calls) == before + 1  # not retried


@pytest.mark.parametrize(
    "error",
    [
        requests.exceptions.ChunkedEncodingError("Connection broken: IncompleteRead(40 bytes read)"),
        requests.exceptions.ContentDecodingError("incomplete gzip stream"),
        urllib3.exceptions.ProtocolError("Connection broken", http.client.IncompleteRead(b"x", 10)),
        http.client.IncompleteRead(b"partial", 100),
    ],
    ids=["chunked", "content-decoding", "protocol", "incomplete-read"],
)
def test_a_body_cut_short_is_retryable(error: BaseException) -> None:
    classified = classify_exception(error, lambda detail: f"GET x: {detail}")
    assert isinstance(classified, TruncatedResponseError)
    assert str(classified).startswith("GET x: connection dropped mid-response")


def test_resets_and_timeouts_are_retryable_but_not_a_bad_url() -> None:
    describe = lambda detail: detail  # noqa: E731
    assert isinstance(classify_exception(requests.ConnectionError("reset"), describe), RetryableHttpError)
    assert isinstance(classify_exception(requests.ReadTimeout("slow"), describe), RetryableHttpError)
    assert classify_exception(requests.exceptions.InvalidURL("no host"), describe) is None


def test_a_body_shorter_than_its_content_length_is_truncated() -> None:
    describe = lambda detail: detail  # noqa: E731
    with pytest.raises(TruncatedResponseError, match="40 of 100 bytes"):
        check_complete(_response(b"x" * 40, headers={"Content-Length": "100"}), describe)
    check_complete(_response(b"x" * 40, headers={"Content-Length": "40"}), describe)
    # With a content coding, content is the decoded body: lengths cannot be compared.
    check_complete(
        _response(b"x" * 400, headers={"Content-Length": "100", "Content-Encoding": "gzip"}), describe
    )


def test_decode_json_tells_a_cut_body_from_an_html_page() -> None:
    describe = lambda detail: f"Page 2 of GET x: {detail}"  # noqa: E731
    assert decode_json(_response(b'{"data": [1]}'), describe) == {"data": [1]}
    assert decode_json(_response(b""), describe) is None
    cut = _response(b'{"data": [{"id": 1}, {"id"', headers={"Content-Type": "application/json"})
    with pytest.raises(TruncatedResponseError, match="not valid JSON"):
        decode_json(cut, describe)
    page = _response(b"<html><body>Maintenance</body></html>", headers={"Content-Type": "text/html"})
    with pytest.raises(
        MalformedPageError, match=r"Page 2 of GET x: is not JSON but an HTML page \(HTTP 200"
    ) as info:
        decode_json(page, describe)
    assert isinstance(info.value, ValueError)  # as response.json()'s error was
    with pytest.raises(MalformedPageError, match="is not JSON but text"):
        decode_json(_response(b"OK", headers={"Content-Type": "text/plain"}), describe)


def test_redactor_masks_every_form_of_a_secret() -> None:
    secret = "p+s/w=rd Ü42"
    red = redaction.Redactor()
    red.add(secret)
    for form in redaction.variants(secret):
        assert red.redact(f"x {form} y") == "x *** y"
    # Secret-looking query values and URL passwords are masked without being registered.
    line = '"GET /items?offset=0&api_key=k-9&Signature=abc%2F HTTP/1.1" 200 12'
    assert red.redact(line) == '"GET /items?offset=0&api_key=***&Signature=*** HTTP/1.1" 200 12'
    assert red.redact("https://user:hunter2@host/x") == "https://user:***@host/x"


def test_header_and_basic_secrets() -> None:
    token = base64.b64encode(b"alice:pw-9").decode()
    assert redaction.basic_credentials("alice", "pw-9") == {token}
    assert redaction.header_secrets("Authorization", f"Basic {token}") >= {token, "alice:pw-9", "pw-9"}
    assert "c-1234" in redaction.header_secrets("Cookie", "sid=c-1234; theme=dark")
    assert redaction.header_secrets("X-Team", "data") == set()
    assert redaction.is_sensitive_name("X-API-Key") and redaction.is_sensitive_name("access_token")


def test_redacting_filter_rewrites_the_record() -> None:
    red = redaction.Redactor()
    red.add("tok-abc-123")
    record = logging.LogRecord(
        "urllib3.connectionpool", logging.DEBUG, __file__, 1, "%s %s", ("GET", "/x?t=tok-abc-123"), None
    )
    assert redaction.RedactingFilter(red).filter(record)
    assert record.getMessage() == "GET /x?t=***"


def test_auth_from_connection() -> None:
    def auth(login: str | None = None, password: str | None = None, **extra: Any) -> AuthBase:
        return auth_from_connection(login=login, password=password, extra=extra)

    basic = auth("u", "pw-123")
    assert isinstance(basic, BasicAuth)
    assert base64.b64encode(b"u:pw-123").decode() in basic.secrets()
    assert isinstance(auth(password="tok-1"), BearerAuth)
    assert isinstance(auth(token="tok-1"), BearerAuth)
    key = auth(api_key="k-1", api_key_name="key", api_key_in="query")
    assert isinstance(key, ApiKeyAuth) and key.location == "query"
    sent = key(requests.Request("GET", "https://api.example.com/v1/x?page=2").prepare())
    assert sent.url == "https://api.example.com/v1/x?page=2&key=k-1"
    assert isinstance(auth("id", "sec", token_url="/token"), OAuth2ClientCredentials)
    assert type(auth()) is NoAuth
    with pytest.raises(ValueError, match="must be 'header' or 'query'"):
        auth(api_key="k", api_key_name="k", api_key_in="body")
    with pytest.raises(ValueError, match="auth_type must be"):
        auth(auth_type="digest")
    with pytest.raises(ValueError, match="needs a token_url"):
        auth("id", "sec", auth_type="oauth2")


def test_every_scheme_is_a_requests_auth() -> None:
    schemes = [
        NoAuth(),
        BasicAuth(username="u", password="pw-123"),
        BearerAuth(token="tok-1"),
        ApiKeyAuth(key="k-1", name="X-Key"),
        OAuth2ClientCredentials(token_url="https://idp/token", client_id="id", client_secret="sec"),
    ]
    assert all(isinstance(s, AuthBase) for s in schemes)
    assert not any(hasattr(s, "apply") or hasattr(s, "prepare") for s in schemes)
    headers = {
        type(s).__name__: s(requests.Request("GET", "https://h/x").prepare()).headers for s in schemes[:4]
    }
    assert headers["BasicAuth"]["Authorization"] == "Basic " + base64.b64encode(b"u:pw-123").decode()
    assert headers["BearerAuth"]["Authorization"] == "Bearer tok-1"
    assert headers["ApiKeyAuth"]["X-Key"] == "k-1" and "Authorization" not in headers["NoAuth"]


def test_secrets_of_any_requests_auth() -> None:
    from requests.auth import HTTPBasicAuth, HTTPDigestAuth

    plain = auth_secrets(HTTPBasicAuth("alice", "pw-9"))
    assert "pw-9" in plain and base64.b64encode(b"alice:pw-9").decode() in plain
    assert auth_secrets(BearerAuth(token="tok-1")) == ["tok-1"]
    # An auth object that names no secrets masks nothing by itself (the hook adds the connection's).
    assert auth_secrets(HTTPDigestAuth("bob", "pw-7")) == [] and auth_secrets(None) == []
