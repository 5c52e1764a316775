"""Extra link from a task to its MLflow run."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import TaskInstanceKey

XCOM_KEY = "mlflow_run_url"


class MlflowRunLink(BaseOperatorLink):
    """Opens the MLflow run the task logged (the URL is pushed to XCom as ``mlflow_run_url``)."""

    name = "MLflow run"

    def get_link(self, operator: Any, *, ti_key: TaskInstanceKey) -> str:
        """
        The run URL the task logged, read from the operator that ran (``mlflow_run_url``), "" when
        it logged none. Airflow 3 calls this in the task process when the task ends (success or not)
        and stores the result for the UI, so a task that failed before logging a run must not ask
        XCom for a key it never pushed (that only logged a misleading "XCom not found" error).
        """
        url = getattr(operator, "mlflow_run_url", None)
        return str(url) if url else ""
