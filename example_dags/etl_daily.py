"""
### Daily ETL: customer profiles (HTTP API) + daily activity (SQL) -> warehouse, data lake (and MongoDB)

Every day (retries with exponential backoff, a webhook alert when a task fails) this DAG extracts the **customer profiles** changed during the data interval from an
HTTP JSON API (bearer auth, cursor pagination, each page retried on its own) and the day's
**activity** rows from a SQL database (incremental on ``event_time``), cleans and validates both
batch by batch, and loads them:

* the warehouse tables ``customers`` (upsert by ``customer_id``, newest ``updated_at`` wins) and
  ``activity`` (the day's partition replaced), so a re-run of a day leaves the tables exactly as one
  run would, and days caught up in any order give the same tables;
* the activity of the day into the lake: the Delta Lake table ``<lake>/activity`` (partitioned by
  ``day``; a re-run replaces its day's partition in one commit) in S3 or a local folder;
* with ``MLOPS_ETL_MONGO_CONN_ID`` set, the customer profiles into a MongoDB collection too.

Connections (only ids appear here; point them at real servers to go to production):

| connection id          | embedded demo default          | production example                 |
|------------------------|--------------------------------|------------------------------------|
| ``mlops_api``          | the demo's local profile API   | ``mlops-http`` / ``http``          |
| ``mlops_source_db``    | a SQLite file                  | ``postgres`` (any common-sql)      |
| ``mlops_warehouse``    | a SQLite file                  | ``postgres``                       |
| ``mlops_alerts``       | the demo's local alert inbox   | a webhook (``http``) connection    |
| ``MLOPS_ETL_MONGO_CONN_ID`` (env, optional) | not set   | ``mongo``                          |

Intermediate datasets go to ``[mlops] staging_uri`` (a local folder by default; ``s3://...`` when
workers do not share a disk). The ``activity`` table is an Asset: the training DAG is scheduled on it.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.sdk import DAG

# The Task SDK's timetable (Airflow 3.2+): airflow.timetables.* costs ~30 ms more to import when a DAG
# is parsed, so it is only the fallback for Airflow 3.0 / 3.1, whose Task SDK does not have it.
try:
    from airflow.sdk import CronDataIntervalTimetable
except ImportError:  # Airflow < 3.2
    from airflow.timetables.interval import CronDataIntervalTimetable

from airflow_provider_mlops.assets import table_asset
from airflow_provider_mlops.notifications.webhook import WebhookNotifier
from airflow_provider_mlops.operators.extract import ExtractOperator
from airflow_provider_mlops.operators.load import LoadOperator
from airflow_provider_mlops.operators.transform import TransformOperator
from airflow_provider_mlops.sinks import LakeTable, MongoCollection, SqlTable
from airflow_provider_mlops.sources import HttpPages, SqlQuery

API_CONN_ID = "mlops_api"
SOURCE_DB_CONN_ID = "mlops_source_db"
WAREHOUSE_CONN_ID = "mlops_warehouse"
# Alerts: a JSON webhook (use SlackAlertNotifier / EmailNotifier the same way; the `alerts` extra).
ALERTS_CONN_ID = "mlops_alerts"
MONGO_CONN_ID = os.environ.get("MLOPS_ETL_MONGO_CONN_ID")
# The lake root: an s3:// or file:// URI; by default a "lake" folder under [mlops] staging_uri.
LAKE_URI = os.environ.get("MLOPS_LAKE_URI", "staging://lake").rstrip("/")

# The training DAG is scheduled on this Asset (the warehouse activity table).
ACTIVITY_ASSET = table_asset(WAREHOUSE_CONN_ID, "activity")
DAY = "{{ data_interval_start | ds }}"

CUSTOMER_SCHEMA = {
    "columns": {
        "customer_id": {"type": "int64", "nullable": False, "min": 1},
        "plan": {"allowed": ["free", "basic", "pro", "business"]},
        "region": {"nullable": False},
        "contract": {"allowed": ["monthly", "annual"]},
        "age": {"min": 18, "max": 110},
        "monthly_charges": {"min": 0},
        "tenure_months": {"min": 0},
    }
}
ACTIVITY_SCHEMA = {
    "columns": {
        "customer_id": {"type": "int64", "nullable": False},
        "day": {"type": "string", "nullable": False, "regex": r"^\d{4}-\d{2}-\d{2}$"},
        "sessions": {"min": 0},
        "minutes_used": {"min": 0},
        "support_tickets": {"min": 0},
        "payment_failures": {"min": 0},
        "churned": {"allowed": [0, 1], "nullable": False},
    }
}

with DAG(
    dag_id="mlops_etl_daily",
    description="Daily ETL of customer profiles and activity into the warehouse and the lake",
    doc_md=__doc__,
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={
        "owner": "data-platform",
        "retries": 3,
        "retry_delay": timedelta(seconds=30),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=10),
        "on_failure_callback": [
            WebhookNotifier(
                http_conn_id=ALERTS_CONN_ID,
                title="ETL {{ ti.task_id }} failed for {{ data_interval_start | ds }}",
            )
        ],
    },
    tags=["mlops", "etl", "example"],
) as dag:
    # [START howto_operator_extract]
    extract_customers = ExtractOperator(
        task_id="extract_customers",
        source_conn_id=API_CONN_ID,
        source=HttpPages(
            "customers",
            params={
                "updated_since": "{{ data_interval_start | ts }}",
                "updated_before": "{{ data_interval_end | ts }}",
                "limit": 500,
            },
            records_path="data",
            pagination={"type": "cursor", "cursor_path": "next_cursor"},
        ),
    )
    extract_activity = ExtractOperator(
        task_id="extract_activity",
        source_conn_id=SOURCE_DB_CONN_ID,
        source=SqlQuery(
            "SELECT customer_id, day, event_time, sessions, minutes_used, support_tickets, "
            "payment_failures, churned FROM activity",
            watermark_column="event_time",
        ),
    )
    # [END howto_operator_extract]
    # [START howto_operator_transform]
    clean_customers = TransformOperator(
        task_id="clean_customers",
        input_uri=extract_customers.output,
        steps=[
            {"cast": {"customer_id": "int64", "updated_at": "timestamp[us, tz=UTC]"}},
            {"derive": {"plan": "lower(trim(plan))", "region": "lower(trim(region))"}},
            {"drop_duplicates": ["customer_id"]},
        ],
        expected_schema=CUSTOMER_SCHEMA,
        on_violation="quarantine",
    )
    clean_activity = TransformOperator(
        task_id="clean_activity",
        input_uri=extract_activity.output,
        steps=[
            {"cast": {"customer_id": "int64", "churned": "int64"}},
            {"drop_duplicates": ["customer_id", "day"]},
            {"drop": ["event_time"]},
        ],
        expected_schema=ACTIVITY_SCHEMA,
        on_violation="quarantine",
    )
    # [END howto_operator_transform]
    # [START howto_operator_load]
    load_customers = LoadOperator(
        task_id="load_customers",
        input_uri=clean_customers.output,
        # Backfills and re-runs of old days never overwrite a newer profile (newer_column).
        sink=SqlTable("customers", keys=["customer_id"], newer_column="updated_at"),
        conn_id=WAREHOUSE_CONN_ID,
        mode="upsert",
    )
    load_activity = LoadOperator(
        task_id="load_activity",
        input_uri=clean_activity.output,
        sink=SqlTable("activity"),
        conn_id=WAREHOUSE_CONN_ID,
        mode="replace_partition",
        partition={"day": DAY},
        outlets=[ACTIVITY_ASSET],
        # A day without profile changes skips load_customers (an empty load records no Asset event);
        # the day's activity still lands.
        trigger_rule="none_failed",
    )
    publish_activity = LoadOperator(
        task_id="publish_activity_parquet",
        input_uri=clean_activity.output,
        sink=LakeTable(f"{LAKE_URI}/activity", partition_by=["day"]),
        mode="replace_partition",
        partition={"day": DAY},
    )
    # [END howto_operator_load]
    extract_customers >> clean_customers >> load_customers
    extract_activity >> clean_activity >> [load_activity, publish_activity]
    # Facts after dimensions: the activity partition lands once the day's profiles are in.
    load_customers >> load_activity

    if MONGO_CONN_ID:
        LoadOperator(
            task_id="load_customers_mongo",
            input_uri=clean_customers.output,
            sink=MongoCollection("customers", keys=["customer_id"]),
            conn_id=MONGO_CONN_ID,
            mode="upsert",
        )
