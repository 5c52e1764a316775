"""Extra links to the reports a task wrote, served by the provider's plugin (``/mlops/reports``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import TaskInstanceKey


# where the provider's plugin (:mod:`airflow_provider_mlops.plugins.reports`) mounts its pages
URL_PREFIX = "/mlops"
#: the XCom key under which a deploy task records its model server's page (:class:`ServedModelLink`)
SERVED_MODEL_XCOM = "served_model_url"


def report_page_url(ti_key: TaskInstanceKey, *, route: str = "reports") -> str:
    """
    ``<[api] base_url>/mlops/reports/<dag_id>/<run_id>/<task_id>``: the task instance's report as a
    web page (:mod:`airflow_provider_mlops.plugins.reports`), behind Airflow's login.
    """
    from airflow.providers.common.compat.sdk import conf

    base = str(conf.get("api", "base_url", fallback="") or "").rstrip("/")
    path = "/".join(quote(str(part), safe="") for part in (ti_key.dag_id, ti_key.run_id, ti_key.task_id))
    map_index = getattr(ti_key, "map_index", -1)
    query = f"?map_index={map_index}" if map_index is not None and map_index >= 0 else ""
    return f"{base}{URL_PREFIX}/{route}/{path}{query}"


class DriftReportLink(BaseOperatorLink):
    """Opens the drift report the check wrote (HTML: what it compared, the verdict, the histograms)."""

    name = "Drift report"

    def get_link(self, operator: Any, *, ti_key: TaskInstanceKey) -> str:
        """The plugin's page for this task instance (it answers 404 when the check wrote no report)."""
        return report_page_url(ti_key)


class ModelVersionLink(BaseOperatorLink):
    """Opens the MLflow page of the model version the deploy task judged (through the plugin)."""

    name = "MLflow model version"

    def get_link(self, operator: Any, *, ti_key: TaskInstanceKey) -> str:
        """The plugin's redirect for this task instance, with the task's MLflow connection."""
        url = report_page_url(ti_key, route="model-version")
        conn_id = getattr(operator, "mlflow_conn_id", None)
        if conn_id:
            url += ("&" if "?" in url else "?") + f"mlflow_conn_id={quote(str(conn_id), safe='')}"
        return url


class ServedModelLink(BaseOperatorLink):
    """Opens the ``/version`` page of the model server the deploy task deploys to (what it serves now)."""

    name = "Served model"

    def get_link(self, operator: Any, *, ti_key: TaskInstanceKey) -> str:
        """The URL the task recorded in its ``served_model_url`` XCom ("" when it has no server)."""
        from airflow.providers.common.compat.sdk import XCom

        return str(XCom.get_value(ti_key=ti_key, key=SERVED_MODEL_XCOM) or "")
