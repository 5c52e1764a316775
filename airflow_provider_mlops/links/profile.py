"""Extra link from a task to the data profile report it wrote."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import TaskInstanceKey

XCOM_KEY = "profile_report_url"


class ProfileReportLink(BaseOperatorLink):
    """
    Opens the HTML data profile the task wrote (the URL is also pushed to XCom as
    ``profile_report_url``). A task that failed before writing its report has no link.

    What the link holds is decided at run time by the operator's ``report_link``: the report's
    object URI (``s3://...`` / ``file://...``; the default: it carries no credential) or a
    presigned HTTPS URL of it (opens in the browser, valid for a limited time, and readable by
    anyone who sees the task's XCom until it expires).
    """

    name = "Data profile"

    def get_link(self, operator: Any, *, ti_key: TaskInstanceKey) -> str:
        """
        The URL the task wrote, read from the operator that ran (``report_url``), "" when it wrote
        none. Airflow 3 calls this once, in the task process when the task ends (success or not),
        and stores the result for the UI; asking XCom for a key a failed task never pushed only
        logged a misleading "XCom not found" error.
        """
        url = getattr(operator, "report_url", None)
        return str(url) if url else ""
