"""Register secrets with Airflow's log masker (a no-op where it is unavailable)."""

from __future__ import annotations

from typing import Any


def mask_secret(secret: Any, name: str | None = None) -> None:
    """Ask Airflow to redact ``secret`` from every log line from now on."""
    if not secret:
        return
    try:
        from airflow.sdk.log import mask_secret as _mask
    except ImportError:  # pragma: no cover - older Task SDK layouts
        try:
            from airflow.sdk.execution_time.secrets_masker import mask_secret as _mask
        except ImportError:
            return
    _mask(secret, name)
