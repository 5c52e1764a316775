"""#27 Deliver 2: the report links open the plugin's page, which serves only reports under the staging root."""

from __future__ import annotations

from types import SimpleNamespace

from airflow_provider_mlops.plugins.reports import report_uri_from_xcoms, under_staging_root


def test_the_report_is_found_in_the_xcoms_each_task_pushes() -> None:
    profile = {"return_value": {"report_uri": "file:///s/d/profile/2026-01-02/report.html", "rows": 3}}
    assert report_uri_from_xcoms(profile) == "file:///s/d/profile/2026-01-02/report.html"
    drift = {"return_value": {"drift": True, "report_html": "s3://b/s/m/check/report.html"}}
    assert report_uri_from_xcoms(drift) == "s3://b/s/m/check/report.html"
    skipped = {"drift_report": {"drift": False, "report_html": "s3://b/s/m/check/report.html"}}
    assert report_uri_from_xcoms(skipped) == "s3://b/s/m/check/report.html"
    assert report_uri_from_xcoms({"return_value": {"version": "3"}}) is None
    assert report_uri_from_xcoms({"return_value": "s3://b/x.html"}) is None


def test_only_objects_under_the_staging_root_are_served() -> None:
    root = "file:///home/a/.demo/storage"
    assert under_staging_root(f"{root}/mlops_monitor_model/check/2026-01-09/drift_report/report.html", root)
    assert not under_staging_root("file:///etc/passwd", root)
    assert not under_staging_root(f"{root}/../airflow.cfg", root)
    assert not under_staging_root("file:///home/a/.demo/storage-other/x.html", root)
    assert under_staging_root("s3://bucket/staging/d/t/report.html", "s3://bucket/staging/")


def test_the_drift_link_names_the_task_instance_on_the_api_server(monkeypatch) -> None:
    from airflow_provider_mlops.links.reports import DriftReportLink

    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "http://127.0.0.1:8080/")
    key = SimpleNamespace(
        dag_id="mlops_monitor_model",
        run_id="asset_triggered__2026-01-09T00:00:00+00:00",
        task_id="check_drift_and_accuracy",
        map_index=-1,
    )
    assert DriftReportLink().get_link(None, ti_key=key) == (
        "http://127.0.0.1:8080/mlops/reports/mlops_monitor_model/"
        "asset_triggered__2026-01-09T00%3A00%3A00%2B00%3A00/check_drift_and_accuracy"
    )
    mapped = SimpleNamespace(**{**vars(key), "map_index": 2})
    assert DriftReportLink().get_link(None, ti_key=mapped).endswith("/check_drift_and_accuracy?map_index=2")


def test_the_deploy_link_redirects_through_the_plugin_with_the_task_s_mlflow_connection(monkeypatch) -> None:
    from airflow_provider_mlops.links.reports import ModelVersionLink
    from airflow_provider_mlops.plugins.reports import model_version_url

    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "http://127.0.0.1:8080")
    key = SimpleNamespace(dag_id="train", run_id="manual__1", task_id="deploy_if_better", map_index=-1)
    operator = SimpleNamespace(mlflow_conn_id="mlflow prod")
    assert ModelVersionLink().get_link(operator, ti_key=key) == (
        "http://127.0.0.1:8080/mlops/model-version/train/manual__1/deploy_if_better?mlflow_conn_id=mlflow%20prod"
    )
    assert ModelVersionLink().get_link(SimpleNamespace(), ti_key=key).endswith("/deploy_if_better")
    # the embedded default MLflow (a SQLite store) opens where `mlflow ui` serves it
    assert model_version_url("churn model", "3") == "http://127.0.0.1:5000/#/models/churn%20model/versions/3"
