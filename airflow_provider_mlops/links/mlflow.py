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
        from airflow.providers.common.compat.sdk import XCom

        url = XCom.get_value(ti_key=ti_key, key=XCOM_KEY)
        return str(url) if url else ""
