"""
The ML lifecycle under the CeleryExecutor, on this host: Debian's redis-server as the broker, a
PostgreSQL metadata DB (and Celery result backend), api-server + scheduler + dag-processor and two
``airflow celery worker`` processes, each with its own AIRFLOW_HOME, HOME, TMPDIR, log-server port and
hostname.

ETL (two days) -> monitor (Asset-triggered by the ETL's load) -> train (Asset-triggered by the
monitor's retrain signal: no champion yet) run on the example DAGs. Tasks share nothing but object
storage (S3 on moto: staging datasets, the lake, MLflow's artifacts), the databases they read and write
(PostgreSQL: source, warehouse, MLflow's tracking store) and XCom metadata. Asserted:

* both workers ran tasks, and each task instance's worker log shows the workload it received;
* no XCom value and no file under the test's folders points at a local path: datasets, models and
  reports went through S3;
* a worker SIGKILLed in the middle of day 2's ``load_activity`` (its ``COPY`` into the warehouse held
  in flight by a TCP gate until the test killed the worker running it) is detected by the scheduler
  (task heartbeat timeout, set to seconds here) and the retry runs on the other worker; the warehouse
  then holds exactly the simulated rows of both days: same row count, same content checksum, no
  duplicates, nothing of the killed transaction;
* training registered a champion whose model lives in S3.

The example DAGs get two test-only edits (checked to apply): an ``end_date`` in January 2026, so the
scheduler starts only the runs the test triggers and the Asset-triggered ones (not the ETL's latest
interval nor the weekly training, which would compete for the two worker slots), and a 1 s ETL retry
delay instead of 30 s.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.util
import json
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from airflow_provider_mlops.demo.api import DEMO_TOKEN, ProfileApi, serve
from airflow_provider_mlops.demo.simulate import World, activity, current_profiles
from airflow_provider_mlops.scaffold import _templates
from tests.conftest import _unavailable
from tests.harness import servers
from tests.harness.celery import CeleryCluster, start_celery_airflow, tcp_gate

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
WORLD = World(customers=400, active_per_day=200)
DAYS = 2
ETL, MONITOR, TRAIN = "mlops_etl_daily", "mlops_monitor_model", "mlops_train_model"
ACTIVITY_COLUMNS = (
    "customer_id",
    "day",
    "sessions",
    "minutes_used",
    "support_tickets",
    "payment_failures",
    "churned",
)
# Seconds instead of the defaults' minutes: how a dead worker's task is noticed and retried.
FAST_RECOVERY = {
    "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "2",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "15",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "2",
}


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


def _edit(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"the example DAG changed: {old!r} not found exactly once"
    return text.replace(old, new)


def _copy_dags(dags: Path) -> None:
    end = "start_date=datetime(2026, 1, 1),\n    end_date=datetime(2026, 1, 10),"
    for name in ("etl_daily.py", "monitor_model.py", "train_model.py"):
        text = (ROOT / "example_dags" / name).read_text()
        if name != "monitor_model.py":  # Asset-scheduled only: nothing starts on its own
            text = _edit(text, "start_date=datetime(2026, 1, 1),", end)
        if name == "etl_daily.py":
            text = _edit(
                text, '"retry_delay": timedelta(seconds=30),', '"retry_delay": timedelta(seconds=1),'
            )
        (dags / name).write_text(text)


def _is_activity_copy(chunk: bytes) -> bool:
    """The load's COPY into the warehouse's activity table (reads use COPY ... TO STDOUT)."""
    upper = chunk.upper()
    return b"COPY" in upper and b"FROM STDIN" in upper and b"ACTIVITY" in upper


def _task_instance(cluster: CeleryCluster, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
    return cluster.get_json(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}")


def _wait_running(cluster: CeleryCluster, run_id: str, task_id: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ti = _task_instance(cluster, ETL, run_id, task_id)
        if ti.get("state") == "running" and ti.get("hostname"):
            return ti
        time.sleep(0.5)
    raise TimeoutError(f"{task_id} not running with a hostname after {timeout}s: {ti}")


def _checksum(rows: list[tuple[Any, ...]]) -> str:
    """sha256 of the sorted rows, numpy scalars as plain Python values."""
    plain = sorted(tuple(v.item() if hasattr(v, "item") else v for v in row) for row in rows)
    return hashlib.sha256(repr(plain).encode()).hexdigest()


def test_lifecycle_across_two_celery_workers_survives_a_killed_worker(
    tmp_path: Path, postgres_server: servers.PostgresServer, s3_server: servers.S3Server
) -> None:
    try:
        redis_cm = servers.start_redis()
        redis = redis_cm.__enter__()
    except servers.ServerUnavailable as err:
        _unavailable(str(err))
    # Own databases on the session's cluster: the metadata DB (fresh), the source, the warehouse and
    # MLflow's tracking store.
    suffix = dt.datetime.now().strftime("%H%M%S%f")
    names = {k: f"{k}_{suffix}" for k in ("airflow", "source", "warehouse", "mlflow")}
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
    _copy_dags(dags)
    api, api_url = serve(ProfileApi(WORLD))
    prefix = f"s3://{s3_server.bucket}/celery-{suffix}"
    mlflow_uri = (
        f"postgresql+psycopg2://{postgres_server.user}:{postgres_server.password}"
        f"@{postgres_server.host}:{postgres_server.port}/{names['mlflow']}"
    )
    s3_env = {
        "AWS_ACCESS_KEY_ID": s3_server.access_key,
        "AWS_SECRET_ACCESS_KEY": s3_server.secret_key,
        "AWS_DEFAULT_REGION": s3_server.region,
        "MLFLOW_S3_ENDPOINT_URL": s3_server.endpoint_url,
    }
    # MLflow's schema is created once here: two first tasks migrating it at once would race.
    import mlflow

    mlflow.MlflowClient(tracking_uri=mlflow_uri).search_experiments()

    gate_cm = tcp_gate(postgres_server.port, _is_activity_copy)
    gate = gate_cm.__enter__()
    warehouse = {**_pg_conn(postgres_server, names["warehouse"]), "port": gate.port}
    connections = {
        "mlops_api": {"conn_type": "mlops-http", "host": api_url, "password": DEMO_TOKEN},
        "mlops_alerts": {"conn_type": "mlops-http", "host": f"{api_url}/alerts"},
        "mlops_source_db": _pg_conn(postgres_server, names["source"]),
        # Through the gate: day 2's COPY into activity is held until its worker is killed.
        "mlops_warehouse": warehouse,
        "mlops_s3": {
            "conn_type": "mlops-s3",
            "login": s3_server.access_key,
            "password": s3_server.secret_key,
            "extra": {"endpoint_url": s3_server.endpoint_url, "region_name": s3_server.region},
        },
    }
    env = {f"AIRFLOW_CONN_{k.upper()}": json.dumps(v) for k, v in connections.items()}
    env |= {
        # Workers share no disk: datasets, models and reports go through object storage.
        "AIRFLOW__MLOPS__STAGING_URI": f"{prefix}/staging",
        "AIRFLOW__MLOPS__STORAGE_CONN_ID": "mlops_s3",
        "MLOPS_LAKE_URI": f"{prefix}/lake",
        "AIRFLOW__MLOPS__MLFLOW_TRACKING_URI": mlflow_uri,
        "AIRFLOW__MLOPS__MLFLOW_ARTIFACT_LOCATION": f"{prefix}/mlflow",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        **s3_env,
        **FAST_RECOVERY,
    }
    metadata = servers.PostgresServer(
        postgres_server.host,
        postgres_server.port,
        postgres_server.user,
        postgres_server.password,
        names["airflow"],
    )
    ran_on: dict[str, str] = {}
    started = time.monotonic()
    try:
        with start_celery_airflow(
            tmp_path / "airflow", dags, env, metadata=metadata, broker=redis
        ) as cluster:
            for dag_id in (ETL, MONITOR, TRAIN):
                cluster.wait_for_dag(dag_id)
            run_ids = []
            for index in range(DAYS):
                logical = dt.datetime.combine(
                    WORLD.day(index) + dt.timedelta(days=1), dt.time(0), tzinfo=dt.UTC
                )
                if index == DAYS - 1:
                    gate.arm()
                run_id = cluster.trigger(ETL, logical.isoformat())
                run_ids.append(run_id)
                if index == DAYS - 1:
                    # The load's COPY is in flight inside its transaction (the partition's DELETE
                    # done): kill the worker running it, with its task processes, as a crash would.
                    assert gate.held.wait(240), cluster.task_states(ETL, run_id)
                    victim = _wait_running(cluster, run_id, "load_activity")["hostname"]
                    cluster.kill(victim)
                    gate.release()
                    killed_at = time.monotonic()
                state = cluster.wait_for_run(ETL, run_id, timeout=300)
                assert state == "success", (
                    cluster.task_states(ETL, run_id),
                    {n: cluster.worker_log(n)[-3000:] for n in cluster.workers},
                )
            recovered_in = time.monotonic() - killed_at
            tries = cluster.get_json(f"/dags/{ETL}/dagRuns/{run_ids[-1]}/taskInstances/load_activity/tries")[
                "task_instances"
            ]
            # Asset-driven, no trigger from us: the ETL's loads schedule the monitor, whose bootstrap
            # signal (no champion yet) schedules training.
            monitor_run = cluster.wait_for_any_run(MONITOR, timeout=300, run_type="asset_triggered")
            assert monitor_run["state"] == "success", cluster.task_states(MONITOR, monitor_run["dag_run_id"])
            train_run = cluster.wait_for_any_run(TRAIN, timeout=300, run_type="asset_triggered")
            assert train_run["state"] == "success", cluster.task_states(TRAIN, train_run["dag_run_id"])
            for dag_id, run_id in [
                *((ETL, r) for r in run_ids),
                (MONITOR, monitor_run["dag_run_id"]),
                (TRAIN, train_run["dag_run_id"]),
            ]:
                tis = cluster.get_json(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]
                for ti in tis:
                    if ti["state"] == "success":
                        ran_on[f"{dag_id}.{run_id}.{ti['task_id']}"] = ti["hostname"]
                        assert ti["queue"] == "default"
            worker_logs = {n: cluster.worker_log(n) for n in cluster.workers}
    finally:
        gate_cm.__exit__(None, None, None)
        api.shutdown()
        redis_cm.__exit__(None, None, None)
    elapsed = time.monotonic() - started

    # The kill: the first try ran on the victim and ended without success; the retry ran on the
    # other worker and succeeded, within seconds of the kill (heartbeat timeout 15 s).
    by_try = {t["try_number"]: t for t in tries}
    assert sorted(by_try) == [1, 2], tries
    assert by_try[1]["hostname"] == victim and by_try[1]["state"] != "success", tries
    survivor = ({"worker1", "worker2"} - {victim}).pop()
    assert by_try[2]["hostname"] == survivor and by_try[2]["state"] == "success", tries
    assert recovered_in < 150, recovered_in
    # The gate held exactly the load's COPY into activity.
    assert b"activity" in gate.held_chunk and b"FROM STDIN" in gate.held_chunk.upper()

    # Both workers ran tasks; each task instance names the worker that ran it, and that worker's log
    # shows the workload it received.
    assert set(ran_on.values()) == {"worker1", "worker2"}, ran_on
    for key, worker in ran_on.items():
        task_id = key.rsplit(".", 1)[1]
        assert f"task_id='{task_id}'" in worker_logs[worker], (key, worker)
    assert any(k.startswith(f"{TRAIN}.") for k in ran_on), ran_on

    # The warehouse: exactly the simulated rows of both days, nothing of the killed transaction.
    with psycopg.connect(dsn("warehouse")) as conn:
        loaded = conn.execute(f"SELECT {', '.join(ACTIVITY_COLUMNS)} FROM activity").fetchall()
        distinct = conn.execute("SELECT count(DISTINCT (customer_id, day)) FROM activity").fetchone()[0]
        customers = dict(conn.execute("SELECT customer_id, monthly_charges FROM customers").fetchall())
    expected = [tuple(r[c] for c in ACTIVITY_COLUMNS) for i in range(DAYS) for r in activity(WORLD, i)]
    assert len(loaded) == len(expected) == distinct == DAYS * WORLD.active_per_day
    assert _checksum([tuple(r) for r in loaded]) == _checksum(expected)
    final = current_profiles(WORLD, DAYS - 1)
    assert customers == pytest.approx({cid: p["monthly_charges"] for cid, p in final.items()})

    # The lake: one Delta table partitioned by day, each partition equal to that day's warehouse partition.
    import pyarrow as pa

    from airflow_provider_mlops.hooks.s3 import ObjectStorageHook
    from tests.conftest import set_connection

    set_connection("mlops_s3_celery", **connections["mlops_s3"])
    hook = ObjectStorageHook(aws_conn_id="mlops_s3_celery")
    lake = pa.Table.from_batches(list(hook.iter_batches(f"{prefix}/lake/activity")))
    for index in range(DAYS):
        day = WORLD.day(index).isoformat()
        rows = [tuple(r[c] for c in ACTIVITY_COLUMNS) for r in lake.to_pylist() if str(r["day"]) == day]
        assert _checksum(rows) == _checksum([e for e in expected if e[1] == day])

    # The model: registered in the PostgreSQL tracking store, its files in S3.
    client = mlflow.MlflowClient(tracking_uri=mlflow_uri)
    champion = client.get_model_version_by_alias("churn_model", "champion")
    assert champion.tags["mlops.promoted_by"].startswith(f"{TRAIN}.deploy_if_better")
    assert client.get_run(champion.run_id).info.artifact_uri.startswith(f"{prefix}/mlflow/")

    # Shared nothing local: every XCom is metadata or an s3:// URI (no file path), and no dataset,
    # model or tracking file was written under the test's folders (staging, lake, MLflow: all remote)
    # but a worker's own TMPDIR (scratch space of a task cut short when the cluster stopped).
    with psycopg.connect(dsn("airflow")) as conn:
        xcoms = conn.execute("SELECT dag_id, task_id, key, value::text FROM xcom").fetchall()
    assert xcoms
    assert any(f"{prefix}/staging" in v for *_, v in xcoms), xcoms
    for dag_id, task_id, key, value in xcoms:
        assert "file:" not in value and str(tmp_path) not in value, (dag_id, task_id, key, value)
    scratch = [tmp_path / "airflow" / name / "tmp" for name in ("worker1", "worker2")]
    local = [
        p.relative_to(tmp_path)
        for pattern in ("*.parquet", "*.arrow", "*.db", "*.pkl", "*.joblib", "*.skops", "MLmodel", "*.html")
        for p in tmp_path.rglob(pattern)
        if not any(p.is_relative_to(s) for s in scratch)
    ]
    assert not local, local
    print(f"celery lifecycle: {elapsed:.0f} s, retry {recovered_in:.0f} s after the kill")
