"""
The real server process under hostile requests (issue #29, items 3 and 4): oversized bodies (declared
or streamed), a million columns as JSON and CSV, deep nesting, overflowing literals, odd content types
and tokens. Each must be answered fast, with the right status, a small body, no file path, and no
memory growth of the server process (RSS read from /proc).
"""

from __future__ import annotations

import json
import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sklearn.linear_model import LogisticRegression

from airflow_provider_mlops.ml.serialization import dump_model, sha256
from tests.serving.helpers import TOKEN, Server, churn_frame, start_server, stop_server

FEATURES = ["minutes", "tickets"]
LIMIT = 4_000_000  # the server's body limit in this test


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    frame = churn_frame(400, 3).fillna({"minutes": 50.0})
    model = LogisticRegression().fit(frame[FEATURES], frame["churned"])
    blob, _, _ = dump_model(model)
    base = tmp_path_factory.mktemp("hostile")
    path = base / "secret-dir" / "model.skops"
    path.parent.mkdir()
    path.write_bytes(blob)
    srv = start_server(
        [
            "--model-name",
            "churn_model",
            "--version",
            "3",
            "--model-uri",
            path.as_uri(),
            "--sha256",
            sha256(blob),
            "--max-body-bytes",
            str(LIMIT),
        ],
        base / "server.log",
    )
    yield srv
    stop_server(srv)


def rss(server: Server) -> int:
    """The server process's resident memory in bytes."""
    for line in Path(f"/proc/{server.process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def _port(server: Server) -> int:
    return int(server.url.rsplit(":", 1)[1])


def _raw(server: Server, head: bytes, chunks: Iterator[bytes]) -> tuple[int, bytes]:
    """Send ``head`` then ``chunks`` until the server answers (or stops reading); the status and body."""
    with socket.create_connection(("127.0.0.1", _port(server)), timeout=30) as sock:
        sock.sendall(head)
        for chunk in chunks:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                break  # answered before the body ended
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
        answer = b""
        while b"\r\n\r\n" not in answer or len(answer) < answer.find(b"\r\n\r\n") + 4 + _length(answer):
            data = sock.recv(65536)
            if not data:
                break
            answer += data
    status = int(answer.split(b" ", 2)[1])
    return status, answer.split(b"\r\n\r\n", 1)[1]


def _length(answer: bytes) -> int:
    for line in answer.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


def _megabytes(total: int) -> Iterator[bytes]:
    block = b"[" + b"1," * 500_000
    sent = 0
    while sent < total:
        yield block
        sent += len(block)


def _chunked(total: int) -> Iterator[bytes]:
    for block in _megabytes(total):
        yield b"%x\r\n%s\r\n" % (len(block), block)


def _timed(send) -> tuple[object, float]:  # type: ignore[no-untyped-def]
    start = time.monotonic()
    result = send()
    return result, time.monotonic() - start


def test_oversized_bodies_get_413_before_parsing_without_memory_growth(server: Server) -> None:
    before = rss(server)
    # declared: 100 MB announced, refused from Content-Length alone
    head = (
        b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100000000\r\n\r\n"
    )
    (status, body), seconds = _timed(lambda: _raw(server, head, _megabytes(100_000_000)))
    assert status == 413 and json.loads(body)["error_code"] == "REQUEST_TOO_LARGE", body
    assert seconds < 5
    # streamed without a length: refused once the limit is crossed, the rest never read
    head = (
        b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    (status, body), seconds = _timed(lambda: _raw(server, head, _chunked(100_000_000)))
    assert status == 413, body
    assert seconds < 10
    assert rss(server) - before < 3 * LIMIT  # never the 100 MB (was +1.6 GB)
    assert server.get("/ping").status_code == 200


def test_wide_deep_and_overflowing_requests_get_a_small_400(server: Server) -> None:
    before = rss(server)
    columns = [f"c{i}" for i in range(200_000)]
    cases = {
        "json columns": (
            json.dumps({"dataframe_split": {"columns": columns, "data": [[0] * len(columns)]}}),
            "application/json",
        ),
        "json records": (json.dumps({"dataframe_records": [dict.fromkeys(columns, 0)]}), "application/json"),
        "csv columns": (",".join(columns) + "\n" + ",".join("0" * len(columns)) + "\n", "text/csv"),
        "deep nesting": ('{"inputs": ' + "[" * 100_000 + "]" * 100_000 + "}", "application/json"),
        "huge integer": (
            '{"dataframe_records": [{"minutes": ' + "1" + "0" * 400 + ', "tickets": 1}]}',
            "application/json",
        ),
    }
    for name, (body, kind) in cases.items():
        answer, seconds = _timed(
            lambda b=body, k=kind: server.post("/invocations", data=b.encode(), headers={"Content-Type": k})
        )
        assert answer.status_code == 400, (name, answer.status_code, answer.text[:300])
        assert len(answer.content) <= 2200, (name, len(answer.content))
        assert seconds < 5, (name, seconds)
    assert (
        "'minutes'"
        in server.post(
            "/invocations", data=cases["huge integer"][0], headers={"Content-Type": "application/json"}
        ).json()["message"]
    )
    unsupported = server.post("/invocations", data=b"<x/>", headers={"Content-Type": "application/xml"})
    assert unsupported.status_code == 415
    assert rss(server) - before < 200_000_000
    assert server.get("/ping").status_code == 200


def test_tokens_version_and_docs_expose_nothing(server: Server) -> None:
    for header in (
        "Bearer tökén",
        "Bearer a b c",
        "Bearer \xff\xfe",
        "Basic abc",
        "Bearer",
        "bearer  ",
        "Bearer " + "x" * 10_000,
    ):
        answer = server.post("/reload", json={}, headers={"Authorization": header.encode("utf-8")})
        assert answer.status_code == 401, (header[:20], answer.status_code)
    public = server.get("/version").json()
    assert public["version"] == "3" and len(public["sha256"]) == 64
    assert "uri" not in public and "secret-dir" not in json.dumps(public)
    private = server.get("/version", headers={"Authorization": f"Bearer {TOKEN}"}).json()
    assert "secret-dir" in private["uri"]
    assert server.get("/openapi.json").status_code == 404
    assert server.get("/docs").status_code == 404
    # a refused reload names neither the file nor where it is
    refused = server.post(
        "/reload",
        json={"version": "4", "uri": "file:///secret-dir/other/model.skops"},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert refused.status_code in (400, 409)
    assert "secret-dir" not in refused.text, refused.text
