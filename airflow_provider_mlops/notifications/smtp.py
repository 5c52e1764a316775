"""E-mail alerts: the official ``SmtpNotifier`` sending the provider's message."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_provider_mlops.notifications.base import FormattedMessageMixin, message_html, missing_extra

try:
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier
except ImportError as err:  # pragma: no cover - depends on the installed extras
    raise missing_extra(err, "smtp") from err

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence


class EmailNotifier(FormattedMessageMixin, SmtpNotifier):
    """
    Send the provider's alert message by e-mail through the SMTP provider's official ``SmtpNotifier``.

    Sending (the ``smtp`` connection and its extras ``from_email``, ``disable_ssl``, ``disable_tls``,
    ``timeout``, ``retry_limit``, OAuth2 ``auth_type``; ``async_notify`` for the triggerer) is the SMTP
    provider's; this class fills ``subject`` and ``html_content`` from
    :func:`~airflow_provider_mlops.notifications.base.build_message` when they are not given.

    :param to: recipient(s). (templated)
    :param smtp_conn_id: an ``smtp`` connection.
    :param subject: default: the message title. (templated)
    :param details: extra facts. (templated)
    :param from_email: default: the connection's ``from_email`` extra. (templated)
    :param html_content: if given, sent as is instead of the provider's message. (templated)
    :param kwargs: any other ``SmtpNotifier`` argument (``cc``, ``bcc``, ``files``, ``auth_type`` ...).
    """

    template_fields: Sequence[str] = (*SmtpNotifier.template_fields, "details")

    def __init__(
        self,
        *,
        to: str | Iterable[str],
        smtp_conn_id: str = "smtp_default",
        subject: str | None = None,
        details: Any = None,
        from_email: str | None = None,
        html_content: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            to=to,
            from_email=from_email,
            subject=subject,
            html_content=html_content,
            smtp_conn_id=smtp_conn_id,
            **kwargs,
        )
        self.details = details
        self._given_fields = frozenset(
            name
            for name, value in (("subject", subject), ("html_content", html_content))
            if value is not None
        )

    @property
    def title(self) -> str | None:  # type: ignore[override]
        """The message title: the subject the user gave (rendered), else the default title."""
        return self.subject if "subject" in self._given_fields else None

    def format_fields(self, message: dict[str, Any]) -> dict[str, Any]:
        """The e-mail's ``subject`` (the title) and its HTML body."""
        return {"subject": str(message["title"]), "html_content": message_html(message)}
