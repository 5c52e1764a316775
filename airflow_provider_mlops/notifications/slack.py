"""Slack alerts: the official ``SlackWebhookNotifier`` sending the provider's message."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_provider_mlops.notifications.base import (
    FormattedMessageMixin,
    message_text,
    missing_extra,
    slack_blocks,
)

try:
    from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier
except ImportError as err:  # pragma: no cover - depends on the installed extras
    raise missing_extra(err, "slack") from err

if TYPE_CHECKING:
    from collections.abc import Sequence


class SlackAlertNotifier(FormattedMessageMixin, SlackWebhookNotifier):
    """
    Post the provider's alert message through Slack's official incoming-webhook notifier.

    Everything about sending (the ``slackwebhook`` connection, proxy, timeout, ``retry_handlers``,
    ``async_notify`` for the triggerer) is the Slack provider's ``SlackWebhookNotifier``; this class
    only fills its ``text`` and ``blocks`` from :func:`~airflow_provider_mlops.notifications.base.build_message`
    when they are not given.

    :param slack_webhook_conn_id: a ``slackwebhook`` connection (the webhook token as password, or the
        full webhook URL as password; host for a non-default endpoint).
    :param title: the message title, default ``<dag_id>.<task_id>: <state>``. (templated)
    :param details: extra facts, e.g. the drifted features. (templated)
    :param text: the official ``text``: if given, sent as is instead of the provider's message. (templated)
    :param blocks: the official ``blocks``: if given, sent as is. (templated)
    :param kwargs: any other ``SlackWebhookNotifier`` argument (``timeout``, ``proxy``,
        ``retry_handlers``, ``unfurl_links`` ...).
    """

    template_fields: Sequence[str] = (*SlackWebhookNotifier.template_fields, "title", "details")

    def __init__(
        self,
        *,
        slack_webhook_conn_id: str = "slack_default",
        title: str | None = None,
        details: Any = None,
        text: str | None = None,
        blocks: list | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            slack_webhook_conn_id=slack_webhook_conn_id, text=text or "", blocks=blocks, **kwargs
        )
        self.title = title
        self.details = details
        self._given_fields = frozenset(
            name for name, value in (("text", text), ("blocks", blocks)) if value is not None
        )

    def format_fields(self, message: dict[str, Any]) -> dict[str, Any]:
        """Slack's ``text`` (the fallback shown in notifications) and the Block Kit ``blocks``."""
        return {"text": message_text(message)[:3000], "blocks": slack_blocks(message)}
