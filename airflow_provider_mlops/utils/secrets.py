"""Register secrets with Airflow's log masker."""

from __future__ import annotations

from typing import Any


def mask_secret(secret: Any, name: str | None = None) -> None:
    """Ask Airflow to redact ``secret`` from every log line from now on."""
    if not secret:
        return
    # airflow.sdk.log from Airflow 3.2, airflow.sdk.execution_time.secrets_masker before: the shim finds it.
    try:
        from airflow.providers.common.compat.sdk import mask_secret as airflow_mask_secret
    except ImportError as err:
        # Only a forced install gets here (a constraints file or --no-deps keeping an older shim).
        raise ImportError(
            "airflow-provider-mlops needs apache-airflow-providers-common-compat>=1.22.0 (the first whose "
            "shim has mask_secret); raise it in your requirements or constraints file "
            "(docs/installation.rst, 'Installing with Airflow's constraints')"
        ) from err

    airflow_mask_secret(secret, name)
