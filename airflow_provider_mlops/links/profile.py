"""Extra link from a task to the data profile report it wrote."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import TaskInstanceKey

XCOM_KEY = "profile_report_url"


class ProfileReportLink(BaseOperatorLink):
    """
    Opens the HTML data profile the task wrote (the URL is pushed to XCom as ``profile_report_url``).

    What the link holds is decided at run time by the operator's ``report_link``: the report's
    object URI (``s3://...`` / ``file://...``; the default: it carries no credential) or a
    presigned HTTPS URL of it (opens in the browser, valid for a limited time, and readable by
    anyone who sees the task's XCom until it expires).
    """

    name = "Data profile"

    def get_link(self, operator: Any, *, ti_key: TaskInstanceKey) -> str:
        from airflow.providers.common.compat.sdk import XCom

        url = XCom.get_value(ti_key=ti_key, key=XCOM_KEY)
        return str(url) if url else ""
