from __future__ import annotations

import base64
import json
import time
from typing import Any

import pyarrow as pa
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from airflow_provider_mlops.hooks.http import (
    CallablePagination,
    HttpApiError,
    HttpApiHook,
    MalformedPageError,
    PageRequest,
    get_path,
    parse_retry_after,
)
from tests.conftest import set_connection
from tests.harness.servers import free_port

TOKEN = "tok-Very-Secret-123"


def _hook(server: HTTPServer, conn_id: str = "api", **extra: Any) -> HttpApiHook:
    fields: dict[str, Any] = {"conn_type": "mlops-http", "host": server.url_for("/").rstrip("/")}
    fields.update({k: extra.pop(k) for k in ("login", "password") if k in extra})
    set_connection(conn_id, **fields, extra=extra)
    return HttpApiHook(conn_id, backoff_initial=0.01, backoff_max=2.0)


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json", headers=headers)


ITEMS = [{"id": i, "name": f"item {i}"} for i in range(23)]


@pytest.mark.unit
def test_get_path() -> None:
    doc = {"data": {"items": [{"a": 1}, {"a": 2}]}}
    assert get_path(doc, "data.items.1.a") == 2
    assert get_path(doc, "data.missing") is None
    assert get_path(doc, "") is doc


def test_page_number_pagination_with_empty_last_page(httpserver: HTTPServer) -> None:
    def handler(request: Request) -> Response:
        page, size = int(request.args["page"]), int(request.args["per_page"])
        return _json({"data": {"items": ITEMS[(page - 1) * size : page * size]}})

    httpserver.expect_request("/items").respond_with_handler(handler)
    hook = _hook(httpserver, password=TOKEN)
    records = list(
        hook.iter_records("items", records_path="data.items", pagination={"type": "page", "page_size": 10})
    )
    assert records == ITEMS
    # 23 rows by 10: the short third page ends it.
    assert hook.requests_sent == 3
    # Without page_size the walk stops at the first empty page.
    hook2 = _hook(httpserver, "api2")
    assert (
        list(
            hook2.iter_records(
                "items",
                params={"per_page": 5},
                records_path="data.items",
                pagination={"type": "page", "size_param": None},
            )
        )
        == ITEMS
    )
    assert hook2.requests_sent == 6


def test_offset_pagination(httpserver: HTTPServer) -> None:
    def handler(request: Request) -> Response:
        offset, limit = int(request.args["offset"]), int(request.args["limit"])
        return _json(ITEMS[offset : offset + limit])

    httpserver.expect_request("/items").respond_with_handler(handler)
    assert list(_hook(httpserver).iter_records("items", pagination={"type": "offset", "limit": 7})) == ITEMS


def test_cursor_and_next_url_pagination(httpserver: HTTPServer) -> None:
    def cursor_handler(request: Request) -> Response:
        start = int(request.args.get("cursor", 0))
        nxt = start + 9 if start + 9 < len(ITEMS) else None
        return _json({"results": ITEMS[start : start + 9], "meta": {"next": nxt}})

    def url_handler(request: Request) -> Response:
        start = int(request.args.get("from", 0))
        nxt = f"/by-url?from={start + 10}" if start + 10 < len(ITEMS) else ""
        return _json({"results": ITEMS[start : start + 10], "next": nxt})

    httpserver.expect_request("/by-cursor").respond_with_handler(cursor_handler)
    httpserver.expect_request("/by-url").respond_with_handler(url_handler)
    hook = _hook(httpserver)
    assert (
        list(
            hook.iter_records(
                "by-cursor", records_path="results", pagination={"type": "cursor", "cursor_path": "meta.next"}
            )
        )
        == ITEMS
    )
    assert (
        list(
            hook.iter_records(
                "by-url", records_path="results", pagination={"type": "cursor", "next_url_path": "next"}
            )
        )
        == ITEMS
    )


def test_link_header_and_callable_pagination(httpserver: HTTPServer) -> None:
    def handler(request: Request) -> Response:
        page = int(request.args.get("p", 1))
        headers = {}
        if page * 8 < len(ITEMS):
            headers["Link"] = f'<{httpserver.url_for("/linked")}?p={page + 1}>; rel="next", <x>; rel="last"'
        return _json(ITEMS[(page - 1) * 8 : page * 8], headers=headers)

    httpserver.expect_request("/linked").respond_with_handler(handler)
    hook = _hook(httpserver)
    assert list(hook.iter_records("linked", pagination="link")) == ITEMS

    def next_page(request: PageRequest, response: Any, body: Any, records: list) -> dict | None:
        page = int(request.params.get("p", 1))
        return {"params": {"p": page + 1}} if records else None

    assert list(hook.iter_records("linked", pagination=CallablePagination(func=next_page))) == ITEMS


def test_a_page_failing_twice_with_503_is_retried_alone(httpserver: HTTPServer) -> None:
    failures = {"page2": 0}

    def handler(request: Request) -> Response:
        page = int(request.args["page"])
        if page == 2 and failures["page2"] < 2:
            failures["page2"] += 1
            return Response("upstream busy", status=503)
        return _json(ITEMS[(page - 1) * 10 : page * 10])

    httpserver.expect_request("/flaky").respond_with_handler(handler)
    hook = _hook(httpserver)
    records = list(hook.iter_records("flaky", pagination={"type": "page", "page_size": 10}))
    assert records == ITEMS, "no record lost or duplicated"
    assert failures["page2"] == 2
    assert hook.requests_sent == 5  # pages 1, 2 (x3), 3


def test_429_with_retry_after_is_honoured(httpserver: HTTPServer) -> None:
    seen: list[float] = []

    def handler(request: Request) -> Response:
        seen.append(time.monotonic())
        if len(seen) == 1:
            return Response("slow down", status=429, headers={"Retry-After": "1"})
        return _json([{"ok": True}])

    httpserver.expect_request("/limited").respond_with_handler(handler)
    assert list(_hook(httpserver).iter_records("limited")) == [{"ok": True}]
    assert len(seen) == 2
    assert seen[1] - seen[0] >= 0.95


def test_gives_up_after_max_attempts_with_a_clear_error(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/down").respond_with_data("no", status=502)
    hook = _hook(httpserver, max_attempts=3)
    with pytest.raises(HttpApiError, match=r"HTTP 502 \(gave up after 3 attempts\)"):
        hook.run("down")
    assert hook.requests_sent == 3


def test_client_errors_are_not_retried(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/missing").respond_with_data("no such thing", status=404)
    hook = _hook(httpserver)
    with pytest.raises(HttpApiError, match="HTTP 404: no such thing") as info:
        hook.run("missing")
    assert info.value.status == 404
    assert hook.requests_sent == 1


def test_malformed_pages_fail_with_the_page_number(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/html").respond_with_data("<html>oops</html>", content_type="text/html")
    httpserver.expect_request("/wrong-shape").respond_with_json({"data": {"items": "not a list"}})
    httpserver.expect_request("/no-path").respond_with_json({"other": []})
    hook = _hook(httpserver)
    with pytest.raises(MalformedPageError, match=r"Page 1 of GET .*/html: is not JSON but an HTML page"):
        list(hook.iter_records("html"))
    with pytest.raises(MalformedPageError, match=r"expected a list of records at 'data\.items', got str"):
        list(hook.iter_records("wrong-shape", records_path="data.items"))
    with pytest.raises(MalformedPageError, match=r"has no 'data.items' \(top-level keys: \['other'\]\)"):
        list(hook.iter_records("no-path", records_path="data.items"))


def test_auth_schemes(httpserver: HTTPServer) -> None:
    def check(expected: dict[str, str], query: dict[str, str] | None = None):
        def handler(request: Request) -> Response:
            for key, value in expected.items():
                if request.headers.get(key) != value:
                    return Response("unauthorized", status=401)
            for key, value in (query or {}).items():
                if request.args.get(key) != value:
                    return Response("unauthorized", status=401)
            return _json([{"ok": 1}])

        return handler

    basic = "Basic " + base64.b64encode(b"user:pw-secret").decode()
    httpserver.expect_request("/basic").respond_with_handler(check({"Authorization": basic}))
    httpserver.expect_request("/bearer").respond_with_handler(check({"Authorization": f"Bearer {TOKEN}"}))
    httpserver.expect_request("/key-header").respond_with_handler(check({"X-Api-Key": TOKEN}))
    httpserver.expect_request("/key-query").respond_with_handler(check({}, {"apikey": TOKEN}))
    assert _hook(httpserver, "b1", login="user", password="pw-secret").run("basic") == [{"ok": 1}]
    assert _hook(httpserver, "b2", password=TOKEN).run("bearer") == [{"ok": 1}]
    assert _hook(httpserver, "b3", password=TOKEN, auth_type="api_key", api_key_name="X-Api-Key").run(
        "key-header"
    ) == [{"ok": 1}]
    assert _hook(
        httpserver, "b4", auth_type="api_key", api_key=TOKEN, api_key_name="apikey", api_key_in="query"
    ).run("key-query") == [{"ok": 1}]


def test_api_key_in_query_never_reaches_error_messages(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/boom").respond_with_data(f"bad key {TOKEN}", status=400)
    hook = _hook(
        httpserver, "leak", auth_type="api_key", api_key=TOKEN, api_key_name="apikey", api_key_in="query"
    )
    with pytest.raises(HttpApiError) as info:
        hook.run("boom")
    assert TOKEN not in str(info.value)
    assert "***" in str(info.value)


def test_oauth2_client_credentials_with_expiry_and_refresh_on_401(httpserver: HTTPServer) -> None:
    issued: list[str] = []

    def token(request: Request) -> Response:
        assert request.form["grant_type"] == "client_credentials"
        assert request.form["scope"] == "read"
        assert request.authorization.username == "client-id"
        issued.append(f"access-{len(issued)}")
        return _json({"access_token": issued[-1], "expires_in": 3600})

    calls = {"n": 0}

    def data(request: Request) -> Response:
        calls["n"] += 1
        if calls["n"] == 2:  # the server revokes the first token
            return Response("expired", status=401)
        if request.headers.get("Authorization") != f"Bearer {issued[-1]}":
            return Response("bad token", status=401)
        return _json([{"call": calls["n"]}])

    httpserver.expect_request("/oauth/token", method="POST").respond_with_handler(token)
    httpserver.expect_request("/data").respond_with_handler(data)
    hook = _hook(
        httpserver,
        "oauth",
        login="client-id",
        password="client-secret",
        token_url="/oauth/token",
        scope="read",
    )
    assert hook.run("data") == [{"call": 1}]
    assert hook.run("data") == [{"call": 3}]
    assert issued == ["access-0", "access-1"]


def test_any_requests_auth_plugs_in(httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """requests-oauthlib's OAuth2 (a requests AuthBase the provider did not write) authenticates the hook."""
    from requests_oauthlib import OAuth2

    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # oauthlib's switch for a plain-HTTP test server

    def data(request: Request) -> Response:
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return Response("unauthorized", status=401)
        return _json([{"ok": 1}])

    httpserver.expect_request("/oauthlib").respond_with_handler(data)
    set_connection("plug", conn_type="mlops-http", host=httpserver.url_for("/").rstrip("/"), password="pw-x")
    auth = OAuth2(client_id="cid", token={"access_token": TOKEN, "token_type": "Bearer"})
    hook = HttpApiHook("plug", auth=auth, backoff_initial=0.01)
    assert hook.run("oauthlib") == [{"ok": 1}]
    # Without it, the connection's password is sent as a bearer token and refused.
    with pytest.raises(HttpApiError, match="401"):
        HttpApiHook("plug", max_attempts=1).run("oauthlib")


def test_rate_limit_spaces_requests(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/r").respond_with_json([1])
    hook = _hook(httpserver, "rl", rate_limit=20)
    start = time.monotonic()
    for _ in range(6):
        hook.run("r")
    assert time.monotonic() - start >= 5 / 20 * 0.95


def test_batches_are_bounded_and_typed(httpserver: HTTPServer) -> None:
    rows = [{"id": i, "tags": ["a", "b"], "meta": {"k": i}} for i in range(25)]
    httpserver.expect_request("/b").respond_with_json({"items": rows})
    batches = list(_hook(httpserver).iter_batches("b", records_path="items", batch_size=10))
    assert [b.num_rows for b in batches] == [10, 10, 5]
    table = pa.Table.from_batches(batches)
    assert table.column("meta").to_pylist()[3] == '{"k":3}'


def test_test_connection(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/health").respond_with_json({"status": "ok"})
    httpserver.expect_request("/private").respond_with_data("no", status=403)
    assert _hook(httpserver, "tc1", test_endpoint="/health").test_connection() == (
        True,
        "Connection successfully tested (HTTP 200)",
    )
    ok, message = _hook(httpserver, "tc2", password=TOKEN, test_endpoint="/private").test_connection()
    assert not ok
    assert "HTTP 403" in message
    assert TOKEN not in message
    port = free_port()
    set_connection("tc3", conn_type="http", host=f"http://127.0.0.1:{port}", password=TOKEN)
    ok, message = HttpApiHook("tc3").test_connection()
    assert not ok
    assert f"127.0.0.1:{port}" in message
    assert TOKEN not in message


def test_official_http_connection_extra_is_headers(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/h", headers={"X-Team": "data"}).respond_with_json([1])
    set_connection(
        "official",
        conn_type="http",
        host="127.0.0.1",
        port=httpserver.port,
        schema="http",
        extra={"X-Team": "data"},
    )
    assert HttpApiHook("official").run("h") == [1]


@pytest.mark.unit
def test_parse_retry_after() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(None) is None
    assert 0 <= parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") <= 0.001
