"""E-mail (SMTP) notifier."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseNotifier

from airflow_provider_mlops.notifications.base import (
    build_message,
    message_text,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.sdk import Context


class EmailNotifier(BaseNotifier):
    """
    Send the message by e-mail through an SMTP connection.

    :param to: recipient(s). (templated)
    :param smtp_conn_id: an ``smtp`` connection: host, port, login, password; extras ``from_email``,
        ``starttls`` (default true unless port 25 or SSL), ``ssl``, ``timeout``.
    :param subject: default: the message title. (templated)
    :param details: extra facts. (templated)
    :param from_email: overrides the connection's ``from_email``.
    """

    template_fields: Sequence[str] = ("to", "subject", "details")

    def __init__(
        self,
        *,
        to: str | Sequence[str],
        smtp_conn_id: str = "smtp_default",
        subject: str | None = None,
        details: Any = None,
        from_email: str | None = None,
    ) -> None:
        super().__init__()
        self.to = to
        self.smtp_conn_id = smtp_conn_id
        self.subject = subject
        self.details = details
        self.from_email = from_email

    def notify(self, context: Context) -> None:
        import smtplib
        from email.message import EmailMessage

        from airflow.providers.common.compat.sdk import BaseHook

        from airflow_provider_mlops.utils.connection import as_bool, as_float, redact

        conn = BaseHook.get_connection(self.smtp_conn_id)
        extra = conn.extra_dejson
        message = build_message(context, self.subject, self.details)
        recipients = [self.to] if isinstance(self.to, str) else list(self.to)
        email = EmailMessage()
        email["Subject"] = str(message["title"])
        email["From"] = self.from_email or extra.get("from_email") or conn.login or "airflow@localhost"
        email["To"] = ", ".join(recipients)
        email.set_content(message_text(message))
        use_ssl = bool(as_bool(extra.get("ssl"), name="ssl", default=False))
        port = conn.port or (465 if use_ssl else 25)
        timeout = as_float(extra.get("timeout"), name="timeout", default=30.0) or 30.0
        starttls = as_bool(extra.get("starttls"), name="starttls", default=not use_ssl and port != 25)
        smtp_class = smtplib.SMTP_SSL if use_ssl else smtplib.SMTP
        try:
            with smtp_class(conn.host or "localhost", port, timeout=timeout) as smtp:
                if starttls:
                    smtp.starttls()
                if conn.login:
                    smtp.login(conn.login, conn.password or "")
                smtp.send_message(email)
        except (smtplib.SMTPException, OSError) as err:
            raise RuntimeError(
                redact(f"Sending e-mail through {conn.host}:{port} failed: {err}", [conn.password])
            ) from None
        self.log.info("E-mail notification sent to %s: %s", recipients, message["title"])
