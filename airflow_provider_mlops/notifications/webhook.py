"""Generic JSON webhook notifier."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseNotifier

from airflow_provider_mlops.notifications.base import (
    _HttpPostMixin,
    _url_from_connection,
    build_message,
)

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from airflow.sdk import Context


class WebhookNotifier(_HttpPostMixin, BaseNotifier):
    """
    POST the message as JSON to a webhook.

    :param url: the webhook URL (templated), or
    :param http_conn_id: a connection holding it (host = URL; or host + password as secret path;
        extra ``headers``).
    :param title: the message title. (templated)
    :param details: anything JSON-able to add, e.g. ``{"top_features": [...]}``. (templated)
    :param timeout: seconds per attempt (3 attempts on connection errors, 429 and 5xx).
    """

    template_fields: Sequence[str] = ("url", "title", "details")

    def __init__(
        self,
        *,
        url: str | None = None,
        http_conn_id: str | None = None,
        title: str | None = None,
        details: Any = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 10.0,
    ) -> None:
        super().__init__()
        if not url and not http_conn_id:
            raise ValueError("Give url=... or http_conn_id=...")
        self.url = url
        self.http_conn_id = http_conn_id
        self.title = title
        self.details = details
        self.headers = headers
        self.timeout = timeout

    def notify(self, context: Context) -> None:
        url, headers = self.url or "", dict[str, str]()
        if self.http_conn_id:
            url, headers = _url_from_connection(self.http_conn_id)
        message = build_message(context, self.title, self.details)
        self._post(url, message, {**headers, **dict(self.headers or {})}, self.timeout)
        self.log.info("Webhook notification sent: %s", message["title"])
