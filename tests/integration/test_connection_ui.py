"""
Connections made in Airflow's own UI, by a headless browser, work with the hooks.

For each connection type a person opens Admin > Connections > Add Connection in headless Chromium
(driven by Playwright: tests/harness/browser.py), fills only the fields a person fills,
saves, and presses the row's Test button; the test reads what the button sent and what the API
answered, then loads the saved connection from the metadata DB and runs the hook against the real
server (PostgreSQL, secantusdb, moto S3, a local HTTP API with each auth type). Screenshots of every
form and of every Test result go to the test artifacts (docs/connections.rst shows the forms).

Caught before it was fixed: a form-made MongoDB connection that pymongo refused (tls toggles), an
API-key location saved as "***", Test answering 400 for connections without a port, messages
naming Airflow's temporary connection id, "Cannot reach S3 endpoint None".
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from airflow_provider_mlops.utils.processes import stop_process_group
from tests.harness.browser import find_browser
from tests.harness.servers import free_port

pytestmark = pytest.mark.integration

API_KEY = "k-7f3a9c1e"
BEARER = "tok-5d2b8e40"
USER, PASSWORD = "api-user", "pw-9c4e1a"


@dataclass
class ApiServer:
    url: str
    log: Path


@contextlib.contextmanager
def api_server(home: str) -> Iterator[ApiServer]:
    """``airflow api-server`` alone (UI + REST) on the session's metadata DB, in its own process group."""
    port = free_port()
    env = {
        **os.environ,
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        # No login, so the browser goes straight to the page (loopback only).
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
        "AIRFLOW__API__WORKERS": "1",
    }
    log = Path(home) / f"api-server-{port}.log"
    with open(log, "wb") as handle:
        proc = subprocess.Popen(
            [sys.executable, "-m", "airflow", "api-server", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    raise RuntimeError(f"api-server exited:\n{log.read_text()[-3000:]}")
                with contextlib.suppress(requests.RequestException):
                    if requests.get(f"{url}/api/v2/monitor/health", timeout=2).status_code == 200:
                        break
                time.sleep(1)
            else:
                raise TimeoutError(f"api-server not healthy:\n{log.read_text()[-3000:]}")
            yield ApiServer(url, log)
        finally:
            stop_process_group(proc, grace=20)


@dataclass
class Form:
    """What a person fills in: standard fields by name, extra fields by their conn-fields key."""

    conn_id: str
    type_label: str
    standard: dict[str, str] = field(default_factory=dict)
    extra_text: dict[str, str] = field(default_factory=dict)
    extra_select: dict[str, str] = field(default_factory=dict)
    extra_toggle: list[str] = field(default_factory=list)


TEST_PATH = "/api/v2/connections/test"


def _exactly(text: str) -> re.Pattern[str]:
    return re.compile(rf"^\s*{re.escape(text)}\s*$")


def fill_form(page: Any, form: Form, shots: Path) -> None:
    from playwright.sync_api import expect

    page.locator("button").filter(has_text=_exactly("Add Connection")).click(timeout=60_000)
    dialog = page.locator("[role=dialog]")
    dialog.locator("input[name=connection_id]").fill(form.conn_id)
    dialog.locator("input[role=combobox]").first.click()
    page.keyboard.type(form.type_label.split(" (")[0])
    page.locator("[role=option]:visible").filter(has_text=_exactly(form.type_label)).click()
    dialog.locator("input[name=login], input[name=host]").first.wait_for()
    for name, value in form.standard.items():
        dialog.locator(f"[name={name}]").fill(value)
    if form.extra_text or form.extra_select or form.extra_toggle:
        dialog.locator("button").filter(has_text=_exactly("Extra Fields")).click()
        for name, value in form.extra_text.items():
            dialog.locator(f"input[name=element_{name}]").fill(value)
        for name in form.extra_toggle:
            # The switch's visible control (the checkbox input itself is hidden).
            toggle = dialog.locator(f"input[name=element_{name}]")
            toggle.locator("xpath=ancestor::*[@data-scope='switch'][1]").locator(
                "[data-part=control]"
            ).click()
            expect(toggle).to_be_checked(timeout=5_000)
        for name, label in form.extra_select.items():
            # The smallest ancestor of the field's input that also holds its combobox (a select).
            root = dialog.locator(f"input[name=element_{name}]").locator(
                "xpath=ancestor::*[.//*[@role='combobox']][1]"
            )
            root.locator("[role=combobox]").first.click()
            page.locator("[role=option]:visible").filter(has_text=_exactly(label)).click()
    time.sleep(0.5)  # the last select's menu closes
    dialog.locator("input[name=connection_id]").evaluate("e => e.scrollIntoView({block: 'start'})")
    page.screenshot(path=shots / f"form-{form.conn_id}.png")
    dialog.locator("button").filter(has_text=_exactly("Save")).click()
    dialog.wait_for(state="detached", timeout=30_000)


def press_test(page: Any, conn_id: str, shots: Path) -> tuple[dict[str, Any], int, dict[str, Any]]:
    """Press the row's Test button; returns the request body the UI sent, the status and the answer."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    button = page.locator("tr").filter(has_text=conn_id).locator('button[aria-label="Test Connection"]')
    button.wait_for(timeout=30_000)
    for _ in range(8):
        try:
            with page.expect_request(lambda r: r.url.endswith(TEST_PATH), timeout=15_000) as sent:
                button.click()
            break
        except PlaywrightTimeout:
            # A click that landed while the list re-rendered (seen once under a loaded machine) sends
            # nothing: press again, as a person would. A sent request is never repeated.
            continue
    else:
        raise TimeoutError(f"pressing Test of {conn_id} sent nothing")
    request = sent.value
    response = request.response()  # waits for the answer
    assert response is not None, f"no answer to the Test of {conn_id}: {request.failure}"
    answer = response.json()
    time.sleep(0.7)  # the toast with the message
    page.screenshot(path=shots / f"test-{conn_id}.png")
    return json.loads(request.post_data or "{}"), response.status, answer


def saved_connection(conn_id: str) -> dict[str, Any]:
    """The connection as the UI saved it, read from the metadata DB (decrypted), as a JSON connection."""
    from airflow.models import Connection
    from airflow.utils.session import create_session
    from sqlalchemy import select

    # Straight from the metadata DB: after an in-process dag.test() (earlier tests), lookups through
    # the secrets backends go to the Task SDK's execution API instead, which does not see these rows.
    with create_session() as session:
        conn = session.scalar(select(Connection).where(Connection.conn_id == conn_id))
        assert conn is not None, f"the UI did not save {conn_id!r}"
        session.expunge(conn)
    return {
        "conn_type": conn.conn_type,
        "host": conn.host,
        "login": conn.login,
        "password": conn.password,
        "schema": conn.schema,
        "port": conn.port,
        "extra": conn.extra_dejson,
    }


def use(conn_id: str, saved: dict[str, Any]) -> str:
    """Hand the saved connection to the hooks of this process (they read connections from the env)."""
    os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(saved)
    return conn_id


def http_api(httpserver: Any) -> None:
    """A JSON API with one base path per auth type; 401 unless the request carries the right credential."""
    from werkzeug.wrappers import Response

    def handler(request: Any) -> Response:
        kind = request.path.strip("/").split("/")[0]
        ok = {
            "none": True,
            "basic": request.headers.get("Authorization")
            == "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode(),
            "bearer": request.headers.get("Authorization") == f"Bearer {BEARER}",
            "keyh": request.headers.get("X-Api-Key") == API_KEY,
            "keyq": request.args.get("api_key") == API_KEY,
        }.get(kind, False)
        if not ok:
            return Response('{"error": "unauthorized"}', status=401, content_type="application/json")
        return Response(
            json.dumps([{"id": 1, "kind": kind}, {"id": 2, "kind": kind}]), content_type="application/json"
        )

    httpserver.expect_request(re.compile(r"^/.*")).respond_with_handler(handler)


def test_connections_made_in_the_ui_test_green_and_work(
    airflow_db: str,
    postgres_server: Any,
    mongo_server: Any,
    s3_server: Any,
    httpserver: Any,
    artifacts_dir: Path,
) -> None:
    from tests.conftest import _unavailable
    from tests.harness.browser import open_page

    browser = find_browser()
    if browser is None:
        _unavailable("no chromium on this machine (./dev installs it)")

    shots = artifacts_dir / "connection-forms"
    http_api(httpserver)
    base = httpserver.url_for("").rstrip("/")
    api_port = str(httpserver.port)
    s3_endpoint = s3_server.endpoint_url

    forms = [
        Form(
            "ui_postgres",
            "PostgreSQL (MLOps)",
            standard={
                "host": postgres_server.host,
                "login": postgres_server.user,
                "password": postgres_server.password,
                "port": str(postgres_server.port),
                "schema": postgres_server.database,
            },
        ),
        Form(
            "ui_s3",
            "S3 / object storage (MLOps)",
            standard={"login": s3_server.access_key, "password": s3_server.secret_key, "port": "443"},
            extra_text={"endpoint_url": s3_endpoint, "bucket": s3_server.bucket},
        ),
        Form(
            "ui_http_none",
            "HTTP JSON API (MLOps)",
            standard={"host": f"{base}/none", "port": api_port},
            extra_select={"auth_type": "none"},
        ),
        Form(
            "ui_http_basic",
            "HTTP JSON API (MLOps)",
            standard={"host": f"{base}/basic", "port": api_port, "login": USER, "password": PASSWORD},
            extra_select={"auth_type": "basic"},
        ),
        Form(
            "ui_http_bearer",
            "HTTP JSON API (MLOps)",
            standard={"host": f"{base}/bearer", "port": api_port, "password": BEARER},
            extra_select={"auth_type": "bearer"},
        ),
        Form(
            "ui_http_key_header",
            "HTTP JSON API (MLOps)",
            standard={"host": f"{base}/keyh", "port": api_port, "password": API_KEY},
            extra_text={"key_name": "X-Api-Key"},
            extra_select={"auth_type": "api_key"},
        ),
        Form(
            "ui_http_key_query",
            "HTTP JSON API (MLOps)",
            standard={"host": f"{base}/keyq", "port": api_port, "password": API_KEY},
            extra_text={"key_name": "api_key"},
            extra_select={"auth_type": "api_key", "key_location": "query"},
        ),
    ]
    if mongo_server.direct:
        mongo_standard = {"host": mongo_server.host, "port": str(mongo_server.port), "schema": "ui_test"}
        if mongo_server.user:
            mongo_standard.update(login=mongo_server.user, password=mongo_server.password or "")
        forms.insert(
            1,
            Form(
                "ui_mongo",
                "MongoDB (MLOps)",
                standard=mongo_standard,
                extra_text={"authSource": "admin"} if mongo_server.user else {},
                extra_toggle=["directConnection"],
            ),
        )

    results: dict[str, tuple[dict[str, Any], int, dict[str, Any]]] = {}
    with api_server(airflow_db) as server, open_page(browser, window=(1280, 1500)) as page:
        page.goto(f"{server.url}/connections")
        for form in forms:
            fill_form(page, form, shots)
            results[form.conn_id] = press_test(page, form.conn_id, shots)
        log = server.log.read_text(errors="replace")

    failures = {k: v for k, v in results.items() if v[1] != 200 or not v[2].get("status")}
    assert not failures, f"Test answered: {failures}"
    for conn_id, (sent, _, answer) in results.items():
        assert answer["message"].startswith("Connection successfully tested"), (conn_id, answer)
        assert sent["connection_id"] == conn_id
    # Airflow logs this for every URI it builds from a type name with "_": none is built now.
    assert "shall not contain '_'" not in log

    # --- the saved connections, used by the hooks against the real servers ---------------------
    from airflow_provider_mlops.hooks.http import HttpApiHook
    from airflow_provider_mlops.hooks.postgres import PostgresBatchHook
    from airflow_provider_mlops.hooks.s3 import ObjectStorageHook

    saved = {form.conn_id: saved_connection(form.conn_id) for form in forms}
    for conn_id, conn in saved.items():
        assert "***" not in json.dumps(conn["extra"]), (conn_id, conn["extra"])
        assert "_" not in conn["conn_type"], conn

    pg = PostgresBatchHook(postgres_conn_id=use("ui_postgres", saved["ui_postgres"]))
    batches = list(pg.iter_batches("SELECT 1 AS one, 'x' AS letter"))
    assert batches[0].to_pylist() == [{"one": 1, "letter": "x"}]

    s3 = ObjectStorageHook(aws_conn_id=use("ui_s3", saved["ui_s3"]))
    uri = f"s3://{s3_server.bucket}/ui-test/one.txt"
    s3.put_bytes(uri, b"made in the UI")
    assert uri in s3.list_uris(f"s3://{s3_server.bucket}/ui-test/")
    assert s3.get_bytes(uri) == b"made in the UI"
    # and the pyarrow side of the hook (datasets read through it) with the same credentials
    with s3.s3_filesystem.open_input_stream(uri.removeprefix("s3://")) as handle:
        assert handle.read() == b"made in the UI"

    for kind in ("none", "basic", "bearer", "key_header", "key_query"):
        conn_id = f"ui_http_{kind}"
        records = list(HttpApiHook(use(conn_id, saved[conn_id])).iter_records("items"))
        assert [r["id"] for r in records] == [1, 2], conn_id
    assert saved["ui_http_key_query"]["extra"]["key_location"] == "query"

    if "ui_mongo" in saved:
        import pyarrow as pa

        from airflow_provider_mlops.hooks.mongo import MongoBatchHook

        mongo = MongoBatchHook(use("ui_mongo", saved["ui_mongo"]))
        assert saved["ui_mongo"]["extra"].get("tls") is False, "the form saves the toggle"
        mongo.write_batches("ui_docs", [pa.record_batch({"k": [1, 2], "v": ["a", "b"]})], mode="append")
        rows = [r for b in mongo.iter_batches("ui_docs", projection=["k", "v"]) for r in b.to_pylist()]
        assert sorted(r["k"] for r in rows) >= [1, 2]
        mongo.close()
