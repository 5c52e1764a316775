"""Each notifier sends to a real local server started by the test, and the message is asserted."""

from __future__ import annotations

import datetime as dt
import json
from types import SimpleNamespace
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from airflow_provider_mlops.notifications.base import build_message
from airflow_provider_mlops.notifications.slack import SlackWebhookNotifier
from airflow_provider_mlops.notifications.smtp import EmailNotifier
from airflow_provider_mlops.notifications.webhook import WebhookNotifier
from tests.conftest import set_connection
from tests.harness.servers import free_port


def _context() -> dict[str, Any]:
    ti = SimpleNamespace(
        dag_id="mlops_etl_daily",
        task_id="load_activity",
        try_number=2,
        state="failed",
        log_url="http://localhost:8080/dags/mlops_etl_daily/runs/r1/tasks/load_activity",
    )
    from airflow.sdk import DAG

    return {
        "ti": ti,
        "dag": DAG("mlops_etl_daily", schedule=None),
        "run_id": "scheduled__2026-01-08",
        "logical_date": dt.datetime(2026, 1, 8, tzinfo=dt.UTC),
        "exception": ValueError("column 'age' broke"),
    }


def test_message_carries_the_facts() -> None:
    message = build_message(_context(), details={"top_features": ["minutes_used"]})
    assert message["title"] == "mlops_etl_daily.load_activity: failed"
    assert message["logical_date"] == "2026-01-08T00:00:00+00:00"
    assert message["exception"] == "ValueError: column 'age' broke"
    assert message["log_url"].endswith("/tasks/load_activity")
    assert message["details"] == {"top_features": ["minutes_used"]}


def test_webhook_posts_json_and_retries_a_503(httpserver: HTTPServer) -> None:
    received: list[dict] = []
    calls = {"n": 0}

    def handler(request: Any) -> Any:
        from werkzeug import Response

        calls["n"] += 1
        if calls["n"] == 1:
            return Response("busy", status=503)
        received.append(request.get_json())
        return Response("ok")

    httpserver.expect_request("/hook", method="POST").respond_with_handler(handler)
    WebhookNotifier(url=httpserver.url_for("/hook"), details={"drifted": 3})(_context())
    assert calls["n"] == 2
    assert received[0]["dag_id"] == "mlops_etl_daily" and received[0]["details"] == {"drifted": 3}


def test_slack_webhook_from_a_connection(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/services/T000/B000/XXXX", method="POST").respond_with_data("ok")
    set_connection(
        "slack_test", conn_type="http", host=httpserver.url_for("/services"), password="T000/B000/XXXX"
    )
    SlackWebhookNotifier(slack_conn_id="slack_test", title="Drift detected")(_context())
    ((request, _),) = httpserver.log
    body = json.loads(request.data)
    assert body["blocks"][0]["text"]["text"] == "Drift detected"
    assert "ValueError: column 'age' broke" in body["text"]
    assert any("Task log" in b["text"]["text"] for b in body["blocks"][1:])


def test_webhook_error_does_not_leak_the_secret_url() -> None:
    port = free_port()
    notifier = WebhookNotifier(url=f"http://127.0.0.1:{port}/secret-token-path")
    with pytest.raises(RuntimeError) as info:
        notifier(_context())
    assert "secret-token-path" not in str(info.value)


@pytest.fixture
def smtp_server():
    from aiosmtpd.controller import Controller

    messages: list[Any] = []

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            messages.append(envelope)
            return "250 OK"

    port = free_port()
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    yield port, messages
    controller.stop()


def test_email_notifier_sends_through_smtp(smtp_server: tuple[int, list]) -> None:
    port, messages = smtp_server
    set_connection(
        "smtp_test",
        conn_type="smtp",
        host="127.0.0.1",
        port=port,
        extra={"from_email": "airflow@example.com", "starttls": False},
    )
    EmailNotifier(to=["oncall@example.com"], smtp_conn_id="smtp_test", details={"top_features": "age"})(
        _context()
    )
    assert len(messages) == 1
    envelope = messages[0]
    assert envelope.rcpt_tos == ["oncall@example.com"]
    text = envelope.content.decode()
    assert "Subject: mlops_etl_daily.load_activity: failed" in text
    assert "top_features: age" in text and "log_url: http://localhost:8080" in text
