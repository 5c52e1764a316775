"""
Capture the tutorial's screenshots from a finished demo: ``python docs/capture_screenshots.py [.demo]``.

Starts Airflow's API server (the UI) on the demo's AIRFLOW_HOME, on 127.0.0.1 without login, and
renders with headless Chromium: the grid view of the monitoring and training DAGs, the drift
check's log on the first drift day, the first drift report that flagged drift and the newest
training data profile. The PNGs go to ``docs/_static/``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import requests
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.harness.browser import capture, find_browser  # noqa: E402
from tests.harness.servers import free_port  # noqa: E402

STATIC = ROOT / "docs" / "_static"


@contextlib.contextmanager
def api_server(home: Path):
    port = free_port()
    # The demo's airflow.cfg holds its settings (DAG folder, DB, logs, no login on 127.0.0.1): only
    # the port moves, so a UI already open on the demo's port does not collide.
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")},
        "PATH": os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")]),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "airflow", "api-server"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{url}/api/v2/monitor/health", timeout=2).status_code == 200:
                    break
            time.sleep(1)
        else:
            raise TimeoutError("the API server did not start")
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def main() -> None:
    home = Path(sys.argv[1] if len(sys.argv) > 1 else ".demo").resolve()
    if not (home / "airflow.db").exists():
        sys.exit(f"No demo at {home}: run ./dev demo first")
    browser = find_browser()
    if browser is None:
        sys.exit("chromium not found: apt-get install chromium")
    with api_server(home) as url:
        for dag_id, task_id, name, height in (
            ("mlops_monitor_model", "check_drift_and_accuracy", "airflow_grid_monitor.png", 310),
            ("mlops_train_model", None, "airflow_grid_train.png", 350),
        ):
            page = f"{url}/dags/{dag_id}" + (f"/tasks/{task_id}" if task_id else "")
            # The grid panel takes a share of the window's width: a very wide window shows every
            # run, then the picture is cropped to the grid and the page header.
            capture(
                page, STATIC / name, window=(3600, 700), wait_for_text=[task_id or dag_id], browser=browser
            )
            with Image.open(STATIC / name) as image:
                image.crop((0, 0, 1250, height)).save(STATIC / name)
            print(f"{page} -> {STATIC / name}")
        reports = sorted(
            home.glob("storage/mlops_monitor_model/check_drift_and_accuracy/*/drift_report/report.html")
        )
        flagged = [r for r in reports if "DRIFT DETECTED" in r.read_text(errors="replace")]
        if flagged:
            # the drift check's log on the first drift day: the summary line a person reads
            ds = flagged[0].parts[-3]
            run_id = quote(f"asset_triggered__{ds}T00:00:00+00:00", safe="")
            page = f"{url}/dags/mlops_monitor_model/runs/{run_id}/tasks/check_drift_and_accuracy"
            capture(
                page,
                STATIC / "airflow_log_drift.png",
                window=(1500, 650),
                wait_for_text=["rows vs churn_model v"],
                browser=browser,
            )
            print(f"{page} -> {STATIC / 'airflow_log_drift.png'}")
    if flagged:
        capture(flagged[0].as_uri(), STATIC / "drift_report.png", window=(1500, 700), browser=browser)
        print(f"{flagged[0]} -> {STATIC / 'drift_report.png'}")
    profiles = sorted(home.glob("storage/mlops_train_model/profile_training_data/*/profile/report.html"))
    if profiles:
        capture(profiles[-1].as_uri(), STATIC / "profile_report.png", window=(1500, 900), browser=browser)
        print(f"{profiles[-1]} -> {STATIC / 'profile_report.png'}")


if __name__ == "__main__":
    main()
