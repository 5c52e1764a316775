"""
The example ETL under a real scheduler (``airflow standalone``, LocalExecutor: every task in its own
process), caught up over several days out of order: the final tables are what the simulated world
says they must be.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from airflow_provider_mlops.demo.api import DEMO_TOKEN, ProfileApi, serve
from airflow_provider_mlops.demo.simulate import World, activity, current_profiles, write_activity
from tests.harness.scheduler import start_airflow

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
WORLD = World(customers=500, active_per_day=250)
DAYS = 3


def test_etl_catch_up_out_of_order_under_a_real_scheduler(tmp_path: Path) -> None:
    dags = tmp_path / "dags"
    dags.mkdir()
    shutil.copy(ROOT / "example_dags" / "etl_daily.py", dags / "etl_daily.py")
    source, warehouse = tmp_path / "source.db", tmp_path / "warehouse.db"
    for index in range(DAYS):
        write_activity(str(source), WORLD, index)
    server, api_url = serve(ProfileApi(WORLD))
    connections = {
        "mlops_api": {"conn_type": "mlops_http", "host": api_url, "password": DEMO_TOKEN},
        "mlops_source_db": {"conn_type": "sqlite", "host": str(source)},
        "mlops_warehouse": {"conn_type": "sqlite", "host": str(warehouse)},
        "mlops_alerts": {"conn_type": "http", "host": f"{api_url}/alerts"},
    }
    env = {f"AIRFLOW_CONN_{k.upper()}": json.dumps(v) for k, v in connections.items()}
    env["AIRFLOW__MLOPS__STAGING_URI"] = (tmp_path / "staging").as_uri()
    try:
        with start_airflow(tmp_path / "airflow", dags, env) as airflow:
            airflow.wait_for_dag("mlops_etl_daily")
            # Out of order: the last day first, then the first, then the middle one.
            for index in (2, 0, 1):
                logical = dt.datetime.combine(
                    WORLD.day(index) + dt.timedelta(days=1), dt.time(0), tzinfo=dt.UTC
                )
                run_id = airflow.trigger("mlops_etl_daily", logical.isoformat())
                state = airflow.wait_for_run("mlops_etl_daily", run_id)
                assert state == "success", (airflow.task_states("mlops_etl_daily", run_id), airflow.tail())
    finally:
        server.shutdown()

    with sqlite3.connect(warehouse) as conn:
        loaded = conn.execute(
            "SELECT customer_id, day, churned FROM activity ORDER BY day, customer_id"
        ).fetchall()
        customers = dict(conn.execute("SELECT customer_id, monthly_charges FROM customers").fetchall())
    expected = sorted(
        (r["customer_id"], r["day"], r["churned"]) for i in range(DAYS) for r in activity(WORLD, i)
    )
    assert sorted(loaded) == expected
    # Every customer holds its newest profile although day 0 (the full load) ran after day 2.
    final = current_profiles(WORLD, DAYS - 1)
    assert customers == {cid: p["monthly_charges"] for cid, p in final.items()}
