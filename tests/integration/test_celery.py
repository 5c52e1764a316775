"""
The example ETL under the CeleryExecutor, on this host: Debian's redis-server as the broker, a
PostgreSQL metadata DB (and Celery result backend), api-server + scheduler + dag-processor and two
``airflow celery worker`` processes with their own AIRFLOW_HOME, log-server port and hostname.

Tasks share nothing but object storage (S3 on moto: staging datasets and the lake), the databases
they read and write, and XCom metadata. Asserted: both workers ran tasks, and the warehouse tables and
lake datasets are exactly what the simulated world says, i.e. the values the LocalExecutor test
(tests/integration/test_scheduler.py) and the dag.test() tests assert for the same days.

Measured on 2 cores shared with other jobs: 3 min 44 s (three ETL runs: the scheduler's own
latest-interval run and the two triggered days) and ~2.8 GB peak summed RSS over the process tree.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import shutil
from pathlib import Path
from typing import Any

import psycopg
import pytest

from airflow_provider_mlops.demo.api import DEMO_TOKEN, ProfileApi, serve
from airflow_provider_mlops.demo.simulate import World, activity, current_profiles
from airflow_provider_mlops.scaffold import _templates
from tests.conftest import _unavailable
from tests.harness import servers
from tests.harness.celery import start_celery_airflow

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
WORLD = World(customers=400, active_per_day=200)
DAYS = 2
DAG_ID = "mlops_etl_daily"


def _demo_source() -> Any:
    """The compose stacks' demo-source script loads the source database here as it does there."""
    path = _templates() / "common" / "include" / "demo_source.py"
    spec = importlib.util.spec_from_file_location("demo_source", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _pg_conn(server: servers.PostgresServer, database: str) -> dict[str, Any]:
    return {
        "conn_type": "mlops-postgres",
        "host": server.host,
        "port": server.port,
        "login": server.user,
        "password": server.password,
        "schema": database,
    }


def test_etl_runs_across_two_celery_workers(
    tmp_path: Path, postgres_server: servers.PostgresServer, s3_server: servers.S3Server
) -> None:
    try:
        redis_cm = servers.start_redis()
        redis = redis_cm.__enter__()
    except servers.ServerUnavailable as err:
        _unavailable(str(err))
    # Own databases on the session's cluster: the metadata DB (fresh), the source and the warehouse.
    suffix = dt.datetime.now().strftime("%H%M%S%f")
    names = {k: f"{k}_{suffix}" for k in ("airflow", "source", "warehouse")}
    with psycopg.connect(
        host=postgres_server.host,
        port=postgres_server.port,
        user=postgres_server.user,
        password=postgres_server.password,
        dbname="postgres",
        autocommit=True,
    ) as conn:
        for name in names.values():
            conn.execute(f"CREATE DATABASE {name}")

    def dsn(key: str) -> str:
        return postgres_server.dsn.replace(f"dbname={postgres_server.database}", f"dbname={names[key]}")

    _demo_source().load_activity(dsn("source"), WORLD, DAYS)
    dags = tmp_path / "dags"
    dags.mkdir()
    shutil.copy(ROOT / "example_dags" / "etl_daily.py", dags / "etl_daily.py")
    api, api_url = serve(ProfileApi(WORLD))
    prefix = f"s3://{s3_server.bucket}/celery-{suffix}"
    connections = {
        "mlops_api": {"conn_type": "mlops-http", "host": api_url, "password": DEMO_TOKEN},
        "mlops_alerts": {"conn_type": "mlops-http", "host": f"{api_url}/alerts"},
        "mlops_source_db": _pg_conn(postgres_server, names["source"]),
        "mlops_warehouse": _pg_conn(postgres_server, names["warehouse"]),
        "mlops_s3": {
            "conn_type": "mlops-s3",
            "login": s3_server.access_key,
            "password": s3_server.secret_key,
            "extra": {"endpoint_url": s3_server.endpoint_url, "region_name": s3_server.region},
        },
    }
    env = {f"AIRFLOW_CONN_{k.upper()}": json.dumps(v) for k, v in connections.items()}
    env |= {
        # Workers share no disk: datasets go through object storage.
        "AIRFLOW__MLOPS__STAGING_URI": f"{prefix}/staging",
        "AIRFLOW__MLOPS__STORAGE_CONN_ID": "mlops_s3",
        "MLOPS_LAKE_URI": f"{prefix}/lake",
    }
    metadata = servers.PostgresServer(
        postgres_server.host,
        postgres_server.port,
        postgres_server.user,
        postgres_server.password,
        names["airflow"],
    )
    ran_on: dict[str, str] = {}
    try:
        with start_celery_airflow(
            tmp_path / "airflow", dags, env, metadata=metadata, broker=redis
        ) as cluster:
            cluster.wait_for_dag(DAG_ID)
            for index in range(DAYS):
                logical = dt.datetime.combine(
                    WORLD.day(index) + dt.timedelta(days=1), dt.time(0), tzinfo=dt.UTC
                )
                run_id = cluster.trigger(DAG_ID, logical.isoformat())
                state = cluster.wait_for_run(DAG_ID, run_id, timeout=300)
                tis = cluster.get_json(f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances")["task_instances"]
                assert state == "success", (
                    {t["task_id"]: t["state"] for t in tis},
                    {n: cluster.worker_log(n)[-3000:] for n in cluster.workers},
                )
                for ti in tis:
                    ran_on[f"{index}.{ti['task_id']}"] = ti["hostname"]
                    assert ti["queue"] == "default"
            worker_logs = {n: cluster.worker_log(n) for n in cluster.workers}
    finally:
        api.shutdown()
        redis_cm.__exit__(None, None, None)

    # Both workers ran tasks; each task instance names the worker that ran it, and that worker's
    # log shows the workload it received.
    assert set(ran_on.values()) == {"worker1", "worker2"}, ran_on
    for key, worker in ran_on.items():
        task_id = key.split(".", 1)[1]
        assert f"task_id='{task_id}'" in worker_logs[worker], (key, worker)

    with psycopg.connect(dsn("warehouse")) as conn:
        loaded = conn.execute("SELECT customer_id, day, churned FROM activity").fetchall()
        customers = dict(conn.execute("SELECT customer_id, monthly_charges FROM customers").fetchall())
    expected = sorted(
        (r["customer_id"], r["day"], r["churned"]) for i in range(DAYS) for r in activity(WORLD, i)
    )
    assert sorted(loaded) == expected
    final = current_profiles(WORLD, DAYS - 1)
    assert customers == pytest.approx({cid: p["monthly_charges"] for cid, p in final.items()})

    # The lake: one committed Parquet dataset per day, equal to that day's warehouse partition.
    import pyarrow as pa

    from airflow_provider_mlops.hooks.s3 import S3Hook
    from tests.conftest import set_connection

    set_connection("mlops_s3_celery", **connections["mlops_s3"])
    hook = S3Hook(aws_conn_id="mlops_s3_celery")
    for index in range(DAYS):
        day = WORLD.day(index).isoformat()
        table = pa.Table.from_batches(list(hook.iter_batches(f"{prefix}/lake/activity/day={day}")))
        rows = sorted((r["customer_id"], r["day"], r["churned"]) for r in table.to_pylist())
        assert rows == sorted(e for e in expected if e[1] == day)
