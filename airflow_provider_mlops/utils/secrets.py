"""Register secrets with Airflow's log masker."""

from __future__ import annotations

from typing import Any


def mask_secret(secret: Any, name: str | None = None) -> None:
    """Ask Airflow to redact ``secret`` from every log line from now on."""
    if not secret:
        return
    # airflow.sdk.log from Airflow 3.2, airflow.sdk.execution_time.secrets_masker before: the shim finds it.
    from airflow.providers.common.compat.sdk import mask_secret as airflow_mask_secret

    airflow_mask_secret(secret, name)
