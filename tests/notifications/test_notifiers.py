"""Each notifier sends to a real local server started by the test, and the message is asserted."""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import json
from types import SimpleNamespace
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from airflow_provider_mlops.notifications.base import build_message
from airflow_provider_mlops.notifications.slack import SlackAlertNotifier
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
    set_connection("alerts_test", conn_type="http", host=httpserver.url_for("/"))
    WebhookNotifier(http_conn_id="alerts_test", endpoint="hook", details={"drifted": 3})(_context())
    assert calls["n"] == 2
    assert received[0]["dag_id"] == "mlops_etl_daily" and received[0]["details"] == {"drifted": 3}


def test_slack_webhook_from_a_connection(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/services/T000/B000/XXXX", method="POST").respond_with_data("ok")
    set_connection(
        "slack_test",
        conn_type="slackwebhook",
        host=httpserver.url_for("/services"),
        password="T000/B000/XXXX",
    )
    SlackAlertNotifier(slack_webhook_conn_id="slack_test", title="Drift detected")(_context())
    ((request, _),) = httpserver.log
    body = json.loads(request.data)
    assert body["blocks"][0]["text"]["text"] == "Drift detected"
    assert "ValueError: column 'age' broke" in body["text"]
    assert any("Task log" in b["text"]["text"] for b in body["blocks"][1:])


def test_webhook_error_does_not_leak_the_secret_url() -> None:
    port = free_port()
    set_connection("alerts_closed", conn_type="http", host=f"http://127.0.0.1:{port}/secret-token-path")
    notifier = WebhookNotifier(http_conn_id="alerts_closed", retries=0)
    # notify() itself: Airflow 3.0's BaseNotifier.__call__ logs a failed send and does not re-raise.
    with pytest.raises(RuntimeError) as info:
        notifier.notify(_context())
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
        extra={"from_email": "airflow@example.com", "disable_ssl": True, "disable_tls": True},
    )
    EmailNotifier(to=["oncall@example.com"], smtp_conn_id="smtp_test", details={"top_features": "age"})(
        _context()
    )
    assert len(messages) == 1
    envelope = messages[0]
    assert envelope.rcpt_tos == ["oncall@example.com"]
    subject, text = _mail(envelope)
    assert subject == "mlops_etl_daily.load_activity: failed"
    assert "top_features: age" in text and "log_url: http://localhost:8080" in text
    assert "ValueError: column &#x27;age&#x27; broke" in text  # escaped in the HTML body


def _mail(envelope: Any) -> tuple[str, str]:
    """The subject and the decoded HTML body of a received e-mail."""
    parsed = email.message_from_bytes(envelope.content)
    bodies = [
        p.get_payload(decode=True).decode() for p in parsed.walk() if p.get_content_type() == "text/html"
    ]
    return str(parsed["Subject"]), "".join(bodies)


# The official notifiers' async paths (the triggerer's, for deadline alerts) send the same message.


def test_webhook_async_path_posts_the_message(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    set_connection("alerts_async", conn_type="http", host=httpserver.url_for("/"))
    notifier = WebhookNotifier(http_conn_id="alerts_async", endpoint="hook", title="Drift for {{ run_id }}")
    notifier.render_template_fields(_context())
    asyncio.run(notifier.async_notify(_context()))
    ((request, _),) = httpserver.log
    body = json.loads(request.data)
    assert body["title"] == "Drift for scheduled__2026-01-08" and body["try_number"] == 2


def test_slack_async_path_and_templated_title(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/services/T000/B000/XXXX", method="POST").respond_with_data("ok")
    set_connection(
        "slack_async",
        conn_type="slackwebhook",
        host=httpserver.url_for("/services"),
        password="T000/B000/XXXX",
    )
    notifier = SlackAlertNotifier(slack_webhook_conn_id="slack_async", title="{{ dag.dag_id }} failed")
    notifier.render_template_fields(_context())
    asyncio.run(notifier.async_notify(_context()))
    ((request, _),) = httpserver.log
    body = json.loads(request.data)
    assert body["blocks"][0]["text"]["text"] == "mlops_etl_daily failed"


def test_slack_text_given_by_the_user_is_sent_as_is(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/services/T000/B000/XXXX", method="POST").respond_with_data("ok")
    set_connection(
        "slack_text",
        conn_type="slackwebhook",
        host=httpserver.url_for("/services"),
        password="T000/B000/XXXX",
    )
    SlackAlertNotifier(slack_webhook_conn_id="slack_text", text="{{ ti.task_id }} broke")(_context())
    ((request, _),) = httpserver.log
    body = json.loads(request.data)
    assert (
        body["text"] == "load_activity broke" and "blocks" in body and body["blocks"][0]["type"] == "header"
    )


def test_email_async_path(smtp_server: tuple[int, list]) -> None:
    import airflow
    from packaging.version import Version

    if Version(airflow.__version__) < Version("3.1"):
        # SmtpHook's async context needs BaseHook.aget_connection (Airflow 3.1+). Airflow calls
        # async_notify only from the triggerer, for deadline alerts, which 3.0 does not have.
        pytest.skip("the SMTP provider's async path needs Airflow 3.1+")
    port, messages = smtp_server
    set_connection(
        "smtp_async",
        conn_type="smtp",
        host="127.0.0.1",
        port=port,
        extra={"from_email": "airflow@example.com", "disable_ssl": True, "disable_tls": True},
    )
    notifier = EmailNotifier(
        to="oncall@example.com", smtp_conn_id="smtp_async", subject="Drift: {{ run_id }}"
    )
    notifier.render_template_fields(_context())
    asyncio.run(notifier.async_notify(_context()))
    assert len(messages) == 1
    subject, text = _mail(messages[0])
    assert subject == "Drift: scheduled__2026-01-08"
    assert "try_number: 2" in text


def test_no_class_shadows_an_official_notifier() -> None:
    from airflow.providers.http.notifications.http import HttpNotifier
    from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    import airflow_provider_mlops.notifications.slack as slack
    import airflow_provider_mlops.notifications.smtp as smtp
    import airflow_provider_mlops.notifications.webhook as webhook

    assert issubclass(slack.SlackAlertNotifier, SlackWebhookNotifier)
    assert issubclass(smtp.EmailNotifier, SmtpNotifier)
    assert issubclass(webhook.WebhookNotifier, HttpNotifier)
    official = {"SlackWebhookNotifier", "SlackNotifier", "SmtpNotifier", "HttpNotifier"}
    ours = {
        name
        for module in (slack, smtp, webhook)
        for name, obj in vars(module).items()
        if isinstance(obj, type) and obj.__module__ == module.__name__
    }
    assert ours == {"SlackAlertNotifier", "EmailNotifier", "WebhookNotifier"} and not ours & official
