"""
The provider's alert message, and the formatter the official notifiers use to send it.

``build_message`` turns a callback context into a small JSON-able dict; ``message_text``,
``message_html`` and ``slack_blocks`` render it for each channel. ``FormattedMessageMixin`` puts that
rendering into an official notifier's own fields (``text``/``blocks``, ``subject``/``html_content``,
``json``) just before it sends, on both its sync ``notify`` and its ``async_notify`` path, unless the
user gave those fields (then the official notifier sends them as given, templated as usual).
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.sdk import Context


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


def message_html(message: Mapping[str, Any]) -> str:
    """An HTML e-mail body: the title as a heading, the facts as preformatted text (all escaped)."""
    title, _, facts = message_text(message).partition("\n")
    body = f"<h3>{html.escape(title)}</h3><pre>{html.escape(facts)}</pre>"
    if message.get("log_url"):
        body += f'<p><a href="{html.escape(str(message["log_url"]), quote=True)}">Task log</a></p>'
    return body


def slack_blocks(message: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Slack Block Kit blocks: a header, the facts as a code block, a link to the task log."""
    facts = message_text(message).split("\n", 1)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": str(message["title"])[:150]}},
    ]
    if len(facts) > 1:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"```{facts[1][:2900]}```"}})
    if message.get("log_url"):
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": f"<{message['log_url']}|Task log>"}}
        )
    return blocks


class FormattedMessageMixin:
    """
    Fill an official notifier's message fields from :func:`build_message` right before it sends.

    Put it first in the bases (``class X(FormattedMessageMixin, OfficialNotifier)``). A subclass
    names its ``title`` and ``details`` attributes and implements :meth:`format_fields`; fields the
    user passed explicitly (listed in ``_given_fields``) are never overwritten.
    """

    title: str | None
    details: Any
    _given_fields: frozenset[str] = frozenset()

    def format_fields(self, message: dict[str, Any]) -> dict[str, Any]:
        """The official notifier's attributes for this message, e.g. ``{"text": ..., "blocks": ...}``."""
        raise NotImplementedError

    def _fill_fields(self, context: Context) -> None:
        message = build_message(context, self.title, self.details)
        for field, value in self.format_fields(message).items():
            if field not in self._given_fields:
                setattr(self, field, value)

    def notify(self, context: Context) -> None:
        self._fill_fields(context)
        super().notify(context)  # type: ignore[misc]

    async def async_notify(self, context: Context) -> None:
        self._fill_fields(context)
        await super().async_notify(context)  # type: ignore[misc]


def missing_extra(err: ImportError, provider: str) -> ImportError:
    """An ImportError that says which extra installs the official provider a notifier builds on."""
    return ImportError(
        f"This notifier builds on apache-airflow-providers-{provider}, which is not installed ({err}). "
        "Install it with: pip install 'airflow-provider-mlops[alerts]'"
    )
