"""The daily ETL example DAG end to end with dag.test: embedded defaults and real servers."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pymongo
import pytest

from airflow_provider_mlops.demo.api import DEMO_TOKEN, ProfileApi, serve
from airflow_provider_mlops.demo.simulate import World, activity, write_activity
from airflow_provider_mlops.hooks.postgres import PostgresBatchHook
from airflow_provider_mlops.hooks.s3 import ObjectStorageHook
from tests.conftest import set_connection

WORLD = World(customers=600, active_per_day=300)


def _logical(index: int) -> dt.datetime:
    return dt.datetime.combine(WORLD.day(index) + dt.timedelta(days=1), dt.time(0), tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def profile_api() -> Iterator[str]:
    server, url = serve(ProfileApi(WORLD))
    yield url
    server.shutdown()


@pytest.fixture
def etl_dag(airflow_db: str, profile_api: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    monkeypatch.setenv("AIRFLOW__MLOPS__STAGING_URI", (tmp_path / "staging").as_uri())
    set_connection("mlops_api", conn_type="mlops-http", host=profile_api, password=DEMO_TOKEN)
    import importlib
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "example_dags"))
    try:
        module = importlib.reload(importlib.import_module("etl_daily"))
    finally:
        sys.path.pop(0)
    return module.dag


def _sqlite_checksum(path: Path, table: str) -> tuple[int, str]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall()
    return len(rows), hashlib.sha256(repr(rows).encode()).hexdigest()


def _lake_checksum(hook: ObjectStorageHook, uri: str, day: object) -> str:
    """The rows of one day's partition of the lake's Delta table."""
    import pyarrow as pa
    import pyarrow.compute as pc

    table = pa.Table.from_batches(list(hook.iter_batches(uri)))
    table = table.filter(pc.equal(table.column("day"), str(day)))
    assert table.num_rows
    return hashlib.sha256(
        repr(sorted(table.to_pylist(), key=lambda r: r["customer_id"])).encode()
    ).hexdigest()


def test_embedded_defaults_run_and_rerun_identically(etl_dag: Any, tmp_path: Path) -> None:
    source, warehouse = tmp_path / "source.db", tmp_path / "warehouse.db"
    set_connection("mlops_source_db", conn_type="sqlite", host=str(source))
    set_connection("mlops_warehouse", conn_type="sqlite", host=str(warehouse))
    for index in (0, 1):
        write_activity(str(source), WORLD, index)
        assert etl_dag.test(logical_date=_logical(index)).state == "success"
    first = (_sqlite_checksum(warehouse, "activity"), _sqlite_checksum(warehouse, "customers"))
    assert first[0][0] == 2 * WORLD.active_per_day and first[1][0] == WORLD.customers
    lake = ObjectStorageHook(aws_conn_id=None)
    lake_uri = (tmp_path / "staging" / "lake" / "activity").as_uri()
    lake_before = _lake_checksum(lake, lake_uri, WORLD.day(1))

    # Re-running day 0 and day 1 changes nothing: same counts, same content.
    for index in (0, 1):
        assert etl_dag.test(logical_date=_logical(index)).state == "success"
    assert (_sqlite_checksum(warehouse, "activity"), _sqlite_checksum(warehouse, "customers")) == first
    assert _lake_checksum(lake, lake_uri, WORLD.day(1)) == lake_before


@pytest.fixture
def real_servers(
    etl_dag: Any,
    postgres_server: Any,
    mongo_conn_id: str,
    s3_conn_id: str,
    s3_server: Any,
    monkeypatch: pytest.MonkeyPatch,
    pg_conn_id: str,
) -> dict[str, Any]:
    schema = f"etl_{dt.datetime.now().strftime('%H%M%S%f')}"
    source = f"{schema}_src"
    with psycopg.connect(postgres_server.dsn, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(f"CREATE SCHEMA {source}")
        conn.execute(
            f"CREATE TABLE {source}.activity (customer_id bigint, day text, event_time timestamptz, sessions int, "
            "minutes_used double precision, support_tickets int, payment_failures int, churned int)"
        )
    fields = {
        "conn_type": "postgres",
        "host": postgres_server.host,
        "port": postgres_server.port,
        "login": postgres_server.user,
        "password": postgres_server.password,
        "schema": postgres_server.database,
    }
    set_connection("mlops_source_db", **fields, extra={"options": f"-c search_path={source}"})
    set_connection("mlops_warehouse", **fields, extra={"options": f"-c search_path={schema}"})
    monkeypatch.setenv("MLOPS_ETL_MONGO_CONN_ID", mongo_conn_id)
    monkeypatch.setenv("MLOPS_LAKE_URI", f"s3://{s3_server.bucket}/lake-{schema}")
    monkeypatch.setenv("AIRFLOW__MLOPS__STAGING_URI", f"s3://{s3_server.bucket}/staging-{schema}")
    monkeypatch.setenv("AIRFLOW__MLOPS__STORAGE_CONN_ID", s3_conn_id)
    import importlib
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "example_dags"))
    try:
        dag = importlib.reload(importlib.import_module("etl_daily")).dag
    finally:
        sys.path.pop(0)
    return {"dag": dag, "schema": schema, "dsn": postgres_server.dsn, "bucket": s3_server.bucket}


def _load_pg_source(dsn: str, schema: str, index: int) -> None:
    rows = activity(WORLD, index)
    with psycopg.connect(dsn, autocommit=True) as conn, conn.cursor() as cur:
        cur.executemany(
            f"INSERT INTO {schema}_src.activity VALUES (%(customer_id)s, %(day)s, (%(event_time)s || '+00')::timestamptz, "
            "%(sessions)s, %(minutes_used)s, %(support_tickets)s, %(payment_failures)s, %(churned)s)",
            rows,
        )


def _pg_checksum(dsn: str, sql: str) -> tuple[int, str]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(sql).fetchall()
    return len(rows), hashlib.sha256(repr(rows).encode()).hexdigest()


def test_real_servers_by_connection_ids_only(real_servers: dict[str, Any], mongo_server: Any) -> None:
    dag, schema, dsn = real_servers["dag"], real_servers["schema"], real_servers["dsn"]
    assert "load_customers_mongo" in dag.task_ids
    _load_pg_source(dsn, schema, 0)
    assert dag.test(logical_date=_logical(0)).state == "success"
    activity_sql = f"SELECT * FROM {schema}.activity ORDER BY customer_id, day"
    customers_sql = f"SELECT * FROM {schema}.customers ORDER BY customer_id"
    before = (_pg_checksum(dsn, activity_sql), _pg_checksum(dsn, customers_sql))
    assert before[0][0] == WORLD.active_per_day and before[1][0] == WORLD.customers
    mongo = pymongo.MongoClient(mongo_server.uri)["mlops_test"]["customers"]
    docs_before = sorted(json.dumps(d, default=str) for d in mongo.find({}, {"_id": 0}))
    assert len(docs_before) == WORLD.customers
    lake = ObjectStorageHook(aws_conn_id="mlops_s3_test")
    lake_uri = f"s3://{real_servers['bucket']}/lake-{schema}/activity"
    lake_before = _lake_checksum(lake, lake_uri, WORLD.day(0))

    assert dag.test(logical_date=_logical(0)).state == "success"
    assert (_pg_checksum(dsn, activity_sql), _pg_checksum(dsn, customers_sql)) == before
    assert sorted(json.dumps(d, default=str) for d in mongo.find({}, {"_id": 0})) == docs_before
    assert _lake_checksum(lake, lake_uri, WORLD.day(0)) == lake_before


def test_failure_between_staging_and_merge_leaves_the_target_and_a_retry_completes(
    real_servers: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    dag, schema, dsn = real_servers["dag"], real_servers["schema"], real_servers["dsn"]
    _load_pg_source(dsn, schema, 0)
    assert dag.test(logical_date=_logical(0)).state == "success"
    customers_sql = f"SELECT * FROM {schema}.customers ORDER BY customer_id"
    before = _pg_checksum(dsn, customers_sql)

    real_merge = PostgresBatchHook._merge
    calls: list[tuple[int, str]] = []

    def failing_merge(self: PostgresBatchHook, *args: Any, **kwargs: Any) -> None:
        calls.append(_pg_checksum(dsn, customers_sql))
        if len(calls) == 1:
            raise ConnectionResetError("injected: the connection dropped between staging and merge")
        return real_merge(self, *args, **kwargs)

    monkeypatch.setattr(PostgresBatchHook, "_merge", failing_merge)
    task = dag.get_task("load_customers")
    monkeypatch.setattr(task, "retry_delay", dt.timedelta(seconds=0))
    monkeypatch.setattr(task, "retry_exponential_backoff", False)
    run = dag.test(logical_date=_logical(0))
    assert run.state == "success"
    assert len(calls) == 2, "the first try failed and the retry ran the merge"
    assert calls[1] == before, "after the failed try the table was exactly as before"
    assert _pg_checksum(dsn, customers_sql) == before


def test_a_failing_task_sends_the_failure_alert(
    etl_dag: Any, tmp_path: Path, httpserver: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "source.db"
    write_activity(str(source), WORLD, 0)
    set_connection("mlops_source_db", conn_type="sqlite", host=str(source))
    set_connection("mlops_warehouse", conn_type="sqlite", host=str(tmp_path / "warehouse.db"))
    set_connection(
        "mlops_api", conn_type="mlops-http", host=httpserver.url_for("/api/v1"), password="revoked-token"
    )
    set_connection("mlops_alerts", conn_type="http", host=httpserver.url_for("/alerts"))
    httpserver.expect_request("/api/v1/customers").respond_with_json({"error": "token revoked"}, status=401)
    httpserver.expect_request("/alerts", method="POST").respond_with_data("ok")
    for task in etl_dag.tasks:
        monkeypatch.setattr(task, "retries", 0)
    assert etl_dag.test(logical_date=_logical(0)).state == "failed"
    alerts = [json.loads(r.data) for r, _ in httpserver.log if r.path == "/alerts"]
    assert len(alerts) == 1
    alert = alerts[0]
    assert alert["title"] == f"ETL extract_customers failed for {WORLD.day(0)}"
    assert "HTTP 401" in alert["exception"] and "revoked-token" not in json.dumps(alert)


def test_train_dag_trains_registers_and_promotes(
    etl_dag: Any, tmp_path: Path, mlflow_tracking: dict[str, str]
) -> None:
    import importlib
    import sys

    import mlflow

    source, warehouse = tmp_path / "source.db", tmp_path / "warehouse.db"
    set_connection("mlops_source_db", conn_type="sqlite", host=str(source))
    set_connection("mlops_warehouse", conn_type="sqlite", host=str(warehouse))
    for index in (0, 1):
        write_activity(str(source), WORLD, index)
        assert etl_dag.test(logical_date=_logical(index)).state == "success"
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "example_dags"))
    try:
        train_dag = importlib.reload(importlib.import_module("train_model")).dag
    finally:
        sys.path.pop(0)
    import os

    for task in train_dag.tasks:  # a failure should fail the test now, not after retries
        task.retries = 0
    os.environ["AIRFLOW__MLOPS__MLFLOW_TRACKING_URI"] = mlflow_tracking["tracking_uri"]
    try:
        run = train_dag.test(logical_date=_logical(1))
    finally:
        del os.environ["AIRFLOW__MLOPS__MLFLOW_TRACKING_URI"]
    assert run.state == "success"
    client = mlflow.MlflowClient(tracking_uri=mlflow_tracking["tracking_uri"])
    versions = client.search_model_versions("name='churn_model'")
    assert versions, "a version of churn_model is registered"
    latest = max(versions, key=lambda v: int(v.version))
    assert float(latest.tags["metric.accuracy"]) > 0.6
    # The first candidate meets no champion: it is promoted and published.
    assert str(client.get_model_version_by_alias("churn_model", "champion").version) == str(latest.version)
    assert latest.tags["mlops.promotion_reason"] == "no champion yet"
