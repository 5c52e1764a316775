"""
Log scan: run the HTTP hook (and ExtractOperator) succeeding and failing (wrong host, 401, 500)
with every logger at DEBUG (urllib3's request lines included) and a secret in every connection
field, header and query string; no secret may appear in anything captured (log records, stdout,
stderr, exception texts, tracebacks, test-connection messages) as is, URL-encoded, JSON-escaped
or as the base64 of ``user:password``.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote, quote_plus

import pytest

from airflow_provider_mlops.hooks.http import HttpApiHook
from tests.conftest import set_connection
from tests.harness import faults
from tests.harness.faults import FaultServer, start_fault_server
from tests.harness.servers import free_port

USER = "scan-user"
BASIC_PW = "basic-Pw+/= \u00fc1"
EXTRA_TOKEN = "tok-extra-Zq9x"
HEADER_KEY = "hdr-key-Xy7/+"
COOKIE = "cookie-Val-Mn3"
QUERY_KEY = "query-Key+/=Wv5"
PARAM_TOKEN = "param-Tok-Rs2&?"
CALL_BEARER = "call-Bearer-Jk8"
HOST_PW = "host-Pw-Lm4q"
BEARER = "bearer-Tok-Qa1"
SECRETS = (BASIC_PW, EXTRA_TOKEN, HEADER_KEY, COOKIE, QUERY_KEY, PARAM_TOKEN, CALL_BEARER, HOST_PW, BEARER)
BASIC_PAIRS = ((USER, BASIC_PW), (USER, HOST_PW))
HEADERS = {"X-Api-Key": HEADER_KEY, "Cookie": f"sid={COOKIE}; theme=dark"}
CALL = {
    "params": {"limit": 10, "access_token": PARAM_TOKEN},
    "headers": {"Authorization": f"Bearer {CALL_BEARER}"},
}
RECORDS = [{"id": i, "v": f"value {i}"} for i in range(25)]


def forms() -> set[str]:
    found = set()
    for secret in SECRETS:
        found |= {secret, quote(secret, safe=""), quote(secret), quote_plus(secret), json.dumps(secret)[1:-1]}
    for user, password in BASIC_PAIRS:
        raw = f"{user}:{password}"
        found |= {
            raw,
            base64.b64encode(raw.encode()).decode(),
            base64.b64encode(raw.encode("latin1")).decode(),
        }
    return found


@pytest.fixture
def captured(capfd: pytest.CaptureFixture[str]) -> Iterator[Callable[[], str]]:
    """Every logger at DEBUG into a buffer; returns a function giving all output so far."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    handler.setLevel(logging.DEBUG)
    loggers = [logging.getLogger()] + [
        lg for lg in logging.root.manager.loggerDict.values() if isinstance(lg, logging.Logger)
    ]
    saved = [(lg, lg.level) for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.DEBUG)
        if lg is logging.getLogger() or not lg.propagate:
            lg.addHandler(handler)
    chunks: list[str] = []

    def output() -> str:
        out, err = capfd.readouterr()
        chunks.extend([out, err])
        return stream.getvalue() + "".join(chunks)

    try:
        yield output
    finally:
        for lg, level in saved:
            lg.setLevel(level)
            if handler in lg.handlers:
                lg.removeHandler(handler)


def _connections(url: str) -> dict[str, dict[str, Any]]:
    host_with_password = url.replace("http://", f"http://{USER}:{HOST_PW}@")
    common = {"headers": HEADERS, "token": EXTRA_TOKEN, "timeout": 2, "max_attempts": 2}
    return {
        "basic": {
            "host": url,
            "login": USER,
            "password": BASIC_PW,
            "extra": {**common, "auth_type": "basic"},
        },
        "query": {
            "host": url,
            "password": BEARER,
            "extra": {
                **common,
                "auth_type": "api_key",
                "api_key": QUERY_KEY,
                "api_key_name": "api_key",
                "api_key_in": "query",
            },
        },
        "bearer": {"host": url, "password": BEARER, "extra": {**common, "auth_type": "bearer"}},
        "userinfo": {"host": host_with_password, "extra": {**common, "auth_type": "none"}},
    }


def _run_all(url: str, expect_ok: bool) -> list[str]:
    """Extract through each connection; return every error text and traceback."""
    texts: list[str] = []
    for name, fields in _connections(url).items():
        conn_id = set_connection(f"scan_{name}", conn_type="mlops-http", **fields)
        hook = HttpApiHook(conn_id, backoff_initial=0.01, backoff_max=0.05)
        try:
            batches = list(
                hook.iter_batches(
                    "records",
                    records_path="data",
                    pagination={"type": "cursor", "cursor_path": "next", "cursor_param": "offset"},
                    **CALL,
                )
            )
            assert expect_ok, f"{name}: expected a failure"
            assert sum(b.num_rows for b in batches) == len(RECORDS)
        except Exception as err:
            if expect_ok:
                raise
            texts.append("".join(traceback.format_exception(err)))
        texts.append(repr(HttpApiHook(conn_id).test_connection()))
    return texts


def _assert_clean(text: str) -> None:
    leaked = sorted(form for form in forms() if form in text)
    assert not leaked, f"secrets in the output: {leaked}"


def _scenario(
    setup: Callable[[FaultServer], None] | None, *, wrong_host: bool = False
) -> tuple[str, list[str]]:
    with start_fault_server(RECORDS, setup=setup) as api:
        url = f"http://127.0.0.1:{free_port()}" if wrong_host else api.url
        return url, _run_all(url, expect_ok=setup is None and not wrong_host)


@pytest.mark.parametrize(
    "case",
    ["success", "wrong_host", "unauthorized_echoing_credentials", "server_error"],
)
def test_no_secret_reaches_any_output(case: str, captured: Callable[[], str]) -> None:
    setups: dict[str, Callable[[FaultServer], None] | None] = {
        "success": None,
        "wrong_host": None,
        "unauthorized_echoing_credentials": lambda api: api.script("*", faults.echo_401()),
        "server_error": lambda api: api.script("*", faults.status(500, sticky=True)),
    }
    _, texts = _scenario(setups[case], wrong_host=case == "wrong_host")
    output = captured() + "\n".join(texts)
    _assert_clean(output)
    # Not vacuous: urllib3's DEBUG lines were captured, with the query-string key masked.
    if case != "wrong_host":
        assert '"GET /records?' in output and "api_key=***" in output
    else:
        assert "Starting new HTTP connection" in output and "ConnectionError" in output
    if case == "unauthorized_echoing_credentials":
        assert "HTTP 401" in output and "invalid credentials" in output


def test_extract_operator_keeps_secrets_out_of_its_output(
    captured: Callable[[], str], tmp_path: Path
) -> None:
    from airflow_provider_mlops.operators.extract import ExtractOperator
    from airflow_provider_mlops.sources import HttpPages

    context = {
        "ti": SimpleNamespace(dag_id="d", task_id="t", map_index=-1),
        "ds": "2026-01-01",
        "run_id": "r1",
    }
    texts: list[str] = []
    for setup, expect_ok in ((None, True), (lambda api: api.script("*", faults.echo_401()), False)):
        with start_fault_server(RECORDS, setup=setup) as api:
            fields = _connections(api.url)["query"]
            set_connection("scan_extract", conn_type="mlops-http", **fields)
            operator = ExtractOperator(
                task_id="extract",
                source_conn_id="scan_extract",
                source=HttpPages(
                    "records",
                    params=CALL["params"],
                    headers=CALL["headers"],
                    records_path="data",
                    pagination={"type": "cursor", "cursor_path": "next", "cursor_param": "offset"},
                ),
                output_uri=(tmp_path / "out").as_uri(),
            )
            try:
                result = operator.execute(context)
                assert expect_ok and result["rows"] == len(RECORDS)
            except Exception as err:
                if expect_ok:
                    raise
                texts.append("".join(traceback.format_exception(err)))
    assert texts and "HTTP 401" in texts[0]
    _assert_clean(captured() + "\n".join(texts))
