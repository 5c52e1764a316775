"""
The example DAGs under a real scheduler (``airflow standalone``, LocalExecutor: every task in its own
process). The ETL is caught up over several days out of order and the final tables are what the
simulated world says they must be; its Asset events schedule the monitor (SQLite connections, as in
the demo). Training on the monitor's Asset, the promotion and the deploy to a model server under a
real scheduler are tests/integration/test_chaos.py's (PostgreSQL, faults, a clean run compared).
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
from tests.harness.browser import capture, find_browser
from tests.harness.scheduler import start_airflow

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
WORLD = World(customers=500, active_per_day=250)
DAYS = 3


def test_etl_catch_up_out_of_order_under_a_real_scheduler(tmp_path: Path, artifacts_dir: Path) -> None:
    dags = tmp_path / "dags"
    dags.mkdir()
    for name in ("etl_daily.py", "monitor_model.py", "train_model.py"):
        shutil.copy(ROOT / "example_dags" / name, dags / name)
    source, warehouse = tmp_path / "source.db", tmp_path / "warehouse.db"
    for index in range(DAYS):
        write_activity(str(source), WORLD, index)
    server, api_url = serve(ProfileApi(WORLD))
    connections = {
        "mlops_api": {"conn_type": "mlops-http", "host": api_url, "password": DEMO_TOKEN},
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
            # Asset-driven, no trigger from us: the ETL's Asset events schedule the monitor...
            monitor_run = airflow.wait_for_any_run(
                "mlops_monitor_model", timeout=300, run_type="asset_triggered"
            )
            assert monitor_run["state"] == "success", airflow.task_states(
                "mlops_monitor_model", monitor_run["dag_run_id"]
            )
            # The training the monitor's retrain Asset then schedules, its promotion and the model
            # server it deploys to are tested under a real scheduler by tests/integration/test_chaos.py
            # (every day of both of its runs): not waited for here a second time.
            _check_grid_view(airflow.url, artifacts_dir)
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


def _check_grid_view(url: str, artifacts_dir: Path) -> None:
    """The Airflow UI's grid view of the ETL, rendered by headless Chromium, shows its tasks."""
    from tests.conftest import _unavailable

    browser = find_browser()
    if browser is None:
        _unavailable("chromium not found: apt-get install chromium")
        return
    task_ids = ("extract_activity", "clean_activity", "load_activity", "publish_activity_parquet")
    png, dom = capture(
        f"{url}/dags/mlops_etl_daily",
        artifacts_dir / "airflow_grid_etl.png",
        window=(1600, 900),
        wait_for_text=task_ids,
        browser=browser,
    )
    for task_id in task_ids:
        assert task_id in dom, f"grid view without {task_id}: not logged in or not rendered"
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 30_000
