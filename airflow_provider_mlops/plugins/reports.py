"""
The provider's Airflow 3 plugin: a small FastAPI app in the API server, behind Airflow's auth, that
opens the reports tasks wrote to storage (``file://``, ``s3://``) as web pages.

``GET /mlops/reports/{dag_id}/{run_id}/{task_id}?map_index=-1`` answers the HTML report of that task
instance: the data profile (``ProfileDataOperator``: ``report_uri`` in its XCom) or the drift report
(``DriftSensor``: ``report_html`` in its ``return_value`` or, when it skipped, ``drift_report``
XCom). ``GET /mlops/model-version/{dag_id}/{run_id}/{task_id}`` redirects to the MLflow page of the
model version a ``DeployModelOperator`` judged. The caller needs read access to the DAG's task instances, as for the task's log; the
report must lie under the staging root (``[mlops] staging_uri``), so an XCom cannot make the API
server read another file. The extra links of :mod:`airflow_provider_mlops.links` point here.

Registered with the ``airflow.plugins`` entry point (Airflow 3.0+ loads it in the API server);
``airflow plugins`` lists it as ``mlops_reports``.
"""

from __future__ import annotations

import functools
from typing import Any

from airflow.plugins_manager import AirflowPlugin

#: The app's mount point in the API server.
from airflow_provider_mlops.links.reports import URL_PREFIX

#: Where a task's report is in its XComs: (key, field), first found wins.
REPORT_XCOMS = (
    ("return_value", "report_uri"),
    ("return_value", "report_html"),
    ("drift_report", "report_html"),
)


def report_uri_from_xcoms(values: dict[str, Any]) -> str | None:
    """The report URI among a task instance's XCom values (``{key: value}``), or None."""
    for key, field in REPORT_XCOMS:
        value = values.get(key)
        if isinstance(value, dict) and isinstance(value.get(field), str) and value[field]:
            return str(value[field])
    return None


def under_staging_root(uri: str, root: str) -> bool:
    """Whether ``uri`` names an object inside ``root`` (no ``..`` escape)."""
    if ".." in uri.split("/"):
        return False
    return uri.startswith(root.rstrip("/") + "/")


def create_app() -> Any:
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
    from airflow.api_fastapi.common.db.common import SessionDep
    from airflow.api_fastapi.core_api.security import requires_access_dag
    from airflow.models.xcom import XComModel
    from fastapi import Depends, FastAPI, HTTPException
    from fastapi.responses import Response
    from sqlalchemy import select

    app = FastAPI(title="airflow-provider-mlops reports", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get(
        "/reports/{dag_id}/{run_id}/{task_id}",
        dependencies=[Depends(requires_access_dag("GET", DagAccessEntity.TASK_INSTANCE))],
        response_model=None,
    )
    def report(
        dag_id: str,
        run_id: str,
        task_id: str,
        map_index: int = -1,
        # the API server's DB session (SessionDep's dependency: a local name cannot be an annotation here)
        session: Any = SessionDep.__metadata__[0],
    ) -> Any:
        from airflow_provider_mlops.hooks.s3 import storage_hook
        from airflow_provider_mlops.utils.staging import default_staging_uri

        rows = session.scalars(
            select(XComModel).where(
                XComModel.dag_id == dag_id,
                XComModel.run_id == run_id,
                XComModel.task_id == task_id,
                XComModel.map_index == map_index,
                XComModel.key.in_({key for key, _ in REPORT_XCOMS}),
            )
        ).all()
        uri = report_uri_from_xcoms({row.key: XComModel.deserialize_value(row) for row in rows})
        if uri is None:
            raise HTTPException(
                404, f"{dag_id}.{task_id} in {run_id} wrote no report (no report URI in its XCom)"
            )
        root = default_staging_uri()
        if not under_staging_root(uri, root):
            raise HTTPException(
                404,
                f"{uri} is outside the staging root {root}: only reports under [mlops] staging_uri are served",
            )
        try:
            body = storage_hook().get_bytes(uri)
        except FileNotFoundError as err:
            raise HTTPException(404, f"{uri} is gone from the storage: {err}") from err
        kind = "text/html; charset=utf-8" if uri.endswith(".html") else "application/json"
        # The reports are self-contained (inline CSS and SVG): no script, nothing fetched.
        headers = {"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:"}
        return Response(body, media_type=kind, headers=headers)

    @app.get(
        "/model-version/{dag_id}/{run_id}/{task_id}",
        dependencies=[Depends(requires_access_dag("GET", DagAccessEntity.TASK_INSTANCE))],
        response_model=None,
    )
    def model_version(
        dag_id: str,
        run_id: str,
        task_id: str,
        map_index: int = -1,
        mlflow_conn_id: str | None = None,
        session: Any = SessionDep.__metadata__[0],
    ) -> Any:
        """Redirects to the MLflow page of the model version the deploy task judged."""
        from airflow.models.renderedtifields import RenderedTaskInstanceFields as Rendered
        from fastapi.responses import RedirectResponse

        key = (dag_id, run_id, task_id, map_index)
        row = session.scalars(
            select(XComModel).where(
                XComModel.dag_id == dag_id,
                XComModel.run_id == run_id,
                XComModel.task_id == task_id,
                XComModel.map_index == map_index,
                XComModel.key == "return_value",
            )
        ).first()
        result = XComModel.deserialize_value(row) if row is not None else None
        fields = session.scalars(
            select(Rendered.rendered_fields).where(
                Rendered.dag_id == dag_id,
                Rendered.run_id == run_id,
                Rendered.task_id == task_id,
                Rendered.map_index == map_index,
            )
        ).first()
        name = (fields or {}).get("registered_model_name")
        version = result.get("candidate_version") if isinstance(result, dict) else None
        if not name or not version:
            raise HTTPException(
                404, f"{'.'.join(map(str, key))} judged no model version (no result in its XCom)"
            )
        return RedirectResponse(model_version_url(name, str(version), mlflow_conn_id), status_code=307)

    return app


def model_version_url(name: str, version: str, mlflow_conn_id: str | None = None) -> str:
    """The MLflow UI's page of a registered model version (the MLflow connection's UI address)."""
    from urllib.parse import quote

    from airflow_provider_mlops.hooks.mlflow import MlflowHook

    # run_url knows where the MLflow UI is (ui_url, the tracking server, or `mlflow ui`'s default)
    base = MlflowHook(mlflow_conn_id).run_url("0", "0").split("/#/", 1)[0]
    return f"{base}/#/models/{quote(name, safe='')}/versions/{quote(version, safe='')}"


class _App:
    """``fastapi_apps``, built on first read: task processes load plugins too and never need it."""

    def __get__(self, obj: Any, owner: Any) -> list[dict[str, Any]]:
        return [{"app": _app(), "url_prefix": URL_PREFIX, "name": "MLOps reports"}]


@functools.cache
def _app() -> Any:
    return create_app()


class MlopsReportsPlugin(AirflowPlugin):
    """Serves the provider's HTML reports from storage at ``/mlops/reports/...``."""

    name = "mlops_reports"
    fastapi_apps = _App()  # type: ignore[assignment]
