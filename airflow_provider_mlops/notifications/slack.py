"""Slack incoming-webhook notifier."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseNotifier

from airflow_provider_mlops.notifications.base import (
    _HttpPostMixin,
    _url_from_connection,
    build_message,
    message_text,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.sdk import Context


class SlackWebhookNotifier(_HttpPostMixin, BaseNotifier):
    """
    Post the message to a Slack incoming webhook (``{"text": ..., "blocks": [...]}``).

    :param webhook_url: the incoming-webhook URL (templated; a secret: prefer the connection), or
    :param slack_conn_id: a connection holding it (host ``https://hooks.slack.com/services`` and the
        secret path as password, or the full URL as extra ``webhook_url``).
    :param title: the message title. (templated)
    :param details: extra facts (templated).
    """

    template_fields: Sequence[str] = ("webhook_url", "title", "details")

    def __init__(
        self,
        *,
        webhook_url: str | None = None,
        slack_conn_id: str | None = None,
        title: str | None = None,
        details: Any = None,
        timeout: float = 10.0,
    ) -> None:
        super().__init__()
        if not webhook_url and not slack_conn_id:
            raise ValueError("Give webhook_url=... or slack_conn_id=...")
        self.webhook_url = webhook_url
        self.slack_conn_id = slack_conn_id
        self.title = title
        self.details = details
        self.timeout = timeout

    def notify(self, context: Context) -> None:
        url = self.webhook_url or ""
        if self.slack_conn_id:
            url, _ = _url_from_connection(self.slack_conn_id)
        message = build_message(context, self.title, self.details)
        facts = message_text(message).split("\n", 1)
        blocks: list[dict[str, Any]] = [
            {"type": "header", "text": {"type": "plain_text", "text": message["title"][:150]}},
        ]
        if len(facts) > 1:
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"```{facts[1][:2900]}```"}})
        if message.get("log_url"):
            blocks.append(
                {"type": "section", "text": {"type": "mrkdwn", "text": f"<{message['log_url']}|Task log>"}}
            )
        self._post(url, {"text": message_text(message)[:3000], "blocks": blocks}, None, self.timeout)
        self.log.info("Slack notification sent: %s", message["title"])
