"""Register secrets with Airflow's log masker (a no-op where it is unavailable)."""

from __future__ import annotations

from typing import Any


def mask_secret(secret: Any, name: str | None = None) -> None:
    """Ask Airflow to redact ``secret`` from every log line from now on."""
    if not secret:
        return
    try:
        from airflow.sdk.log import mask_secret as airflow_mask_secret
    except ImportError:  # pragma: no cover - a Task SDK without it: nothing to register with
        return
    airflow_mask_secret(secret, name)
