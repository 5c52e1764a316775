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

    What the link holds is decided at run time by the operator's ``report_link``: by default
    (``uri``) the report's page in the provider's plugin (``<base_url>/mlops/reports/...``, behind
    Airflow's login; the XCom keeps the object URI, which carries no credential), or a presigned
    HTTPS URL of the object (opens without Airflow, valid for a limited time, and readable by anyone
    who sees the task's XCom until it expires).
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
        if not url:
            return ""
        if str(url).startswith(("http://", "https://")):
            return str(url)  # presigned: opens as it is
        # An object URI (file://, s3://) does not open in a browser (Airflow's UI drops it):
        # the provider's plugin serves the report behind Airflow's login.
        from airflow_provider_mlops.links.reports import report_page_url

        return report_page_url(ti_key)
