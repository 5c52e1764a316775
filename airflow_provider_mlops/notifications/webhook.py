"""JSON webhook alerts: the HTTP provider's official ``HttpNotifier`` posting the provider's message."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow_provider_mlops.notifications.base import FormattedMessageMixin, missing_extra

try:
    from airflow.providers.http.hooks.http import HttpHook
    from airflow.providers.http.notifications.http import HttpNotifier
except ImportError as err:  # pragma: no cover - depends on the installed extras
    raise missing_extra(err, "http") from err

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.sdk import Context

#: HTTP statuses worth another attempt (the async hook retries 5xx on its own).
RETRY_STATUSES = (429, 500, 502, 503, 504)


class WebhookNotifier(FormattedMessageMixin, HttpNotifier):
    """
    POST the provider's alert message as JSON through the HTTP provider's official ``HttpNotifier``.

    The URL is the ``http`` connection's base URL (host, schema, port; credentials and default headers
    as ``HttpHook`` reads them) plus ``endpoint``. The sync path retries connection errors, 429 and 5xx
    ``retries`` times (urllib3's ``Retry`` mounted on the hook's session, honouring ``Retry-After``);
    ``async_notify`` uses ``HttpAsyncHook``'s own retries. Webhook URLs are often secrets (the path is
    the credential), so a failure's message never contains the URL, its path or its query.

    :param http_conn_id: the ``http`` connection holding the webhook's base URL.
    :param endpoint: the path after the base URL. (templated)
    :param title: the message title. (templated)
    :param details: anything JSON-able to add, e.g. ``{"top_features": [...]}``. (templated)
    :param json: if given, posted as is instead of the provider's message. (templated)
    :param retries: extra attempts of the sync path (total attempts = retries + 1).
    :param kwargs: any other ``HttpNotifier`` argument (``headers``, ``extra_options``, ``method``).
    """

    template_fields: Sequence[str] = (*HttpNotifier.template_fields, "title", "details")

    def __init__(
        self,
        *,
        http_conn_id: str = "http_default",
        endpoint: str | None = None,
        title: str | None = None,
        details: Any = None,
        json: dict[str, Any] | None = None,
        retries: int = 2,
        **kwargs: Any,
    ) -> None:
        super().__init__(http_conn_id=http_conn_id, endpoint=endpoint, json=json, **kwargs)
        self.title = title
        self.details = details
        self.retries = retries
        self._given_fields = frozenset({"json"} if json is not None else ())

    @cached_property
    def hook(self) -> HttpHook:
        """The official hook, with a retrying adapter on its session."""
        from requests.adapters import HTTPAdapter
        from urllib3.util.retry import Retry

        retry = Retry(
            total=self.retries,
            status_forcelist=RETRY_STATUSES,
            allowed_methods=None,  # POST too: a webhook delivery is what is being retried
            backoff_factor=0.5,
            raise_on_status=False,  # the last response reaches check_response: "503:Service Unavailable"
        )
        return HttpHook(
            method=self.method, http_conn_id=self.http_conn_id, adapter=HTTPAdapter(max_retries=retry)
        )

    def format_fields(self, message: dict[str, Any]) -> dict[str, Any]:
        """The message dict itself is the JSON body."""
        return {"json": message}

    def _secret_parts(self) -> list[str]:
        from urllib.parse import urlsplit

        try:
            url = self.hook.url_from_endpoint(self.endpoint)
        except Exception:
            return [str(self.endpoint or "")]
        parts = urlsplit(url)
        return [url, parts.path, parts.query, str(self.endpoint or "")]

    def _redacted(self, err: Exception) -> RuntimeError:
        from airflow_provider_mlops.utils.connection import redact

        return RuntimeError(redact(f"Sending the notification failed: {err}", self._secret_parts()))

    def notify(self, context: Context) -> None:
        try:
            super().notify(context)
        except Exception as err:
            raise self._redacted(err) from None

    async def async_notify(self, context: Context) -> None:
        try:
            await super().async_notify(context)
        except Exception as err:
            raise self._redacted(err) from None
