"""
The HTTP hook against a fault-injecting server: every record arrives exactly once despite drops
mid-body, 429 bursts, 5xx, slow answers and JSON cut short; an HTML page with status 200 is a
clear error. Records are compared with a clean run's by count and content checksum.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pytest

from airflow_provider_mlops.hooks.http import HttpApiError, HttpApiHook, MalformedPageError
from tests.conftest import set_connection
from tests.harness import faults
from tests.harness.faults import FaultServer, start_fault_server

PAGE = 10
# Mixed values (unicode, quotes, newlines, nested, nulls) so a page cut at any byte is invalid JSON.
RECORDS = [
    {
        "id": i,
        "name": f'rec {i} \u00e9\u00e8 "q" \n line',
        "score": i * 1.25,
        "tags": ["a", str(i)],
        "meta": {"k": i, "none": None},
    }
    for i in range(95)
]
CURSOR = {"type": "cursor", "cursor_path": "next", "cursor_param": "offset"}


@pytest.fixture
def api() -> Iterator[FaultServer]:
    with start_fault_server(RECORDS, default_limit=PAGE) as server:
        yield server


def _hook(api: FaultServer, conn_id: str, **extra: Any) -> HttpApiHook:
    set_connection(conn_id, conn_type="mlops-http", host=api.url, extra={"timeout": 0.5, **extra})
    return HttpApiHook(conn_id, backoff_initial=0.01, backoff_max=2.0)


def _extract(hook: HttpApiHook) -> pa.Table:
    batches = hook.iter_batches(
        "records", params={"limit": PAGE}, records_path="data", pagination=CURSOR, batch_size=25
    )
    return pa.Table.from_batches(list(batches))


def _checksum(table: pa.Table) -> str:
    rows = table.sort_by("id").to_pylist()
    return hashlib.sha256(json.dumps(rows, sort_keys=True, default=str).encode()).hexdigest()


@pytest.fixture
def clean(api: FaultServer) -> tuple[int, str]:
    table = _extract(_hook(api, "clean"))
    return table.num_rows, _checksum(table)


def test_every_record_exactly_once_despite_faults_on_every_kind_of_page(
    api: FaultServer, clean: tuple[int, str]
) -> None:
    assert clean[0] == len(RECORDS)
    api.served.clear()
    api.script(10, faults.drop(100))  # Content-Length promised, connection closed after 100 bytes
    api.script(20, faults.chunked_drop(50))  # chunked body that never ends
    api.script(30, faults.truncated_json(60))  # a complete HTTP answer holding half a JSON document
    api.script(40, faults.status(500), faults.status(502))
    api.script(50, faults.status(429, "1"))
    api.script(60, faults.slow(1.5))  # longer than the 0.5 s timeout
    api.script(70, faults.status(503), faults.drop(10), faults.chunked_drop(0))
    hook = _hook(api, "faulty")
    table = _extract(hook)
    ids = table.column("id").to_pylist()
    assert table.num_rows == clean[0] and len(set(ids)) == len(ids), "0 lost, 0 duplicated"
    assert _checksum(table) == clean[1]
    assert api.faults_left() == 0
    injected = 10
    assert hook.requests_sent == len(RECORDS) // PAGE + 1 + injected
    # Each page was asked for again until whole, never the pages before it.
    offsets = [int(s.query["offset"]) for s in api.served if "offset" in s.query]
    assert offsets == sorted(offsets)


def test_a_429_burst_waits_as_told_then_gets_every_record(api: FaultServer, clean: tuple[int, str]) -> None:
    import time

    api.script(10, faults.status(429, "1"), faults.status(429, "1"))
    api.script(40, faults.status(429, "1"))
    hook = _hook(api, "burst")
    start = time.monotonic()
    table = _extract(hook)
    assert time.monotonic() - start >= 2.9  # three Retry-After: 1
    assert (table.num_rows, _checksum(table)) == clean
    # A burst longer than the attempts: a clear error, no partial success.
    api.script(0, faults.status(429, "0", sticky=True))
    with pytest.raises(HttpApiError, match=r"HTTP 429 \(gave up after 3 attempts\)"):
        _extract(_hook(api, "burst2", max_attempts=3))


def test_a_connection_that_keeps_dropping_fails_clearly(api: FaultServer) -> None:
    api.script(20, faults.Fault(kind="drop", after_bytes=30, sticky=True))
    hook = _hook(api, "drops", max_attempts=3)
    with pytest.raises(HttpApiError, match=r"connection dropped mid-response.*\(gave up after 3 attempts\)"):
        _extract(hook)
    assert hook.requests_sent == 2 + 3


def test_html_with_200_is_a_clear_error_not_retried(api: FaultServer) -> None:
    api.script(20, faults.html())
    hook = _hook(api, "html")
    with pytest.raises(
        MalformedPageError, match=r"Page 3 of GET .*offset=20.*: is not JSON but an HTML page"
    ) as info:
        _extract(hook)
    assert info.value.status == 200
    assert hook.requests_sent == 3  # pages 1, 2 and the HTML one, once
    # The same from run(): an error, not a parse crash or None.
    api.script(0, faults.html())
    with pytest.raises(MalformedPageError, match="HTML page"):
        hook.run("records")
