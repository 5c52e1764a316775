"""Where tasks put the datasets they hand to each other, and how those URIs are named."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping

DEFAULT_FOLDER = "mlops-staging"


def default_staging_uri() -> str:
    """
    The root URI for intermediate datasets.

    Order: the ``[mlops] staging_uri`` Airflow option (``AIRFLOW__MLOPS__STAGING_URI``), then a
    ``mlops-staging`` folder in ``AIRFLOW_HOME`` (the embedded default; fine for one machine, use
    ``s3://...`` when workers do not share a disk).
    """
    from airflow.providers.common.compat.sdk import conf

    configured = conf.get("mlops", "staging_uri", fallback=None)
    if configured:
        return str(configured).rstrip("/")
    home = os.environ.get("AIRFLOW_HOME") or os.path.expanduser("~/airflow")
    return f"file://{os.path.abspath(os.path.join(home, DEFAULT_FOLDER))}"


def default_storage_conn_id() -> str | None:
    """The connection used for staging URIs on S3 (``[mlops] storage_conn_id``), or None."""
    from airflow.providers.common.compat.sdk import conf

    return conf.get("mlops", "storage_conn_id", fallback=None) or None


def task_output_uri(context: Mapping[str, Any], *, root: str | None = None, suffix: str | None = None) -> str:
    """
    ``<root>/<dag_id>/<task_id>[/<map_index>]/<ds>``: deterministic per task and logical date, so a
    retry or a re-run writes to the same place and replaces what was there.
    """
    ti = context["ti"]
    parts = [(root or default_staging_uri()).rstrip("/"), ti.dag_id, ti.task_id]
    map_index = getattr(ti, "map_index", -1)
    if map_index is not None and map_index >= 0:
        parts.append(f"map-{map_index}")
    parts.append(str(context.get("ds") or context["run_id"]).replace(":", "-"))
    if suffix:
        parts.append(suffix)
    return "/".join(parts)


STAGING_SCHEME = "staging://"


def resolve_uri(uri: str) -> str:
    """``staging://a/b`` -> ``<staging root>/a/b``; any other URI is returned unchanged."""
    if uri.startswith(STAGING_SCHEME):
        return f"{default_staging_uri()}/{uri[len(STAGING_SCHEME) :].lstrip('/')}"
    return uri
