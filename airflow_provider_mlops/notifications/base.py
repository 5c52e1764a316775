"""The message every notifier sends, and the HTTP plumbing the webhook notifiers share."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def build_message(
    context: Mapping[str, Any], title: str | None = None, details: Any = None
) -> dict[str, Any]:
    """The facts of a callback context as a small JSON-able dict (no secrets, no data)."""
    ti = context.get("ti") or context.get("task_instance")
    dag = context.get("dag")
    dag_id = getattr(dag, "dag_id", None) or getattr(ti, "dag_id", None)
    task_id = getattr(ti, "task_id", None)
    state = getattr(ti, "state", None)
    logical = context.get("logical_date")
    exception = context.get("exception")
    message: dict[str, Any] = {
        "title": title or f"{dag_id}.{task_id or '*'}: {getattr(state, 'value', state) or 'event'}",
        "dag_id": dag_id,
        "task_id": task_id,
        "run_id": context.get("run_id"),
        "logical_date": logical.isoformat()
        if logical is not None and hasattr(logical, "isoformat")
        else logical,
        "try_number": getattr(ti, "try_number", None),
        "state": str(getattr(state, "value", state)) if state is not None else None,
        "log_url": getattr(ti, "log_url", None),
    }
    if exception is not None:
        message["exception"] = f"{type(exception).__name__}: {exception}"[:2000]
    if details is not None:
        message["details"] = details
    return {k: v for k, v in message.items() if v is not None}


def message_text(message: Mapping[str, Any]) -> str:
    """A plain-text rendering: the title, then one ``key: value`` line per fact."""
    lines = [str(message.get("title", ""))]
    for key in ("dag_id", "task_id", "logical_date", "run_id", "try_number", "state", "exception", "log_url"):
        if message.get(key) is not None:
            lines.append(f"{key}: {message[key]}")
    details = message.get("details")
    if isinstance(details, Mapping):
        lines.extend(f"{k}: {v}" for k, v in details.items())
    elif details is not None:
        lines.append(f"details: {details}")
    return "\n".join(lines)


class _HttpPostMixin:
    def _post(self, url: str, payload: Any, headers: Mapping[str, str] | None, timeout: float) -> None:
        import requests
        import tenacity

        from airflow_provider_mlops.utils.connection import redact

        def send() -> None:
            response = requests.post(url, json=payload, headers=dict(headers or {}), timeout=timeout)
            if response.status_code >= 500 or response.status_code == 429:
                raise ConnectionError(f"HTTP {response.status_code}")
            if response.status_code >= 400:
                raise RuntimeError(
                    f"Notification refused with HTTP {response.status_code}: {response.text[:300]}"
                )

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(
                (ConnectionError, requests.ConnectionError, requests.Timeout)
            ),
            stop=tenacity.stop_after_attempt(3),
            wait=tenacity.wait_exponential(multiplier=0.5, max=10) + tenacity.wait_random(0, 0.5),
            reraise=True,
        )
        try:
            retrying(send)
        except Exception as err:
            # Webhook URLs are secrets (Slack's path is the credential): the URL, its path and its
            # query never reach the message, however the HTTP library formats them.
            from urllib.parse import urlsplit

            parts = urlsplit(url)
            raise RuntimeError(
                redact(f"Sending the notification failed: {err}", [url, parts.path, parts.query])
            ) from None


def _url_from_connection(conn_id: str) -> tuple[str, dict[str, str]]:
    """A webhook URL kept in a connection: the host (full URL) or host + password as path."""
    from airflow.providers.common.compat.sdk import BaseHook

    from airflow_provider_mlops.utils.secrets import mask_secret

    conn = BaseHook.get_connection(conn_id)
    extra = conn.extra_dejson
    url = str(extra.get("webhook_url") or conn.host or "")
    if "://" not in url:
        url = f"{conn.schema or 'https'}://{url}"
    if conn.port and url.count(":") < 2:
        scheme, rest = url.split("://", 1)
        host, _, path = rest.partition("/")
        url = f"{scheme}://{host}:{conn.port}/{path}"
    if conn.password and not extra.get("webhook_url"):
        url = url.rstrip("/") + "/" + conn.password.lstrip("/")
    mask_secret(url)
    return url, dict(extra.get("headers") or {})
