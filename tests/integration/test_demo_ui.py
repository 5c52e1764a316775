"""
#27 Deliver 5: after a short demo, the UI the demo prints (``./dev ui`` = ``python -m
airflow_provider_mlops.demo ui``) shows the lifecycle in headless Chromium: the three DAGs, runs
with real durations that say why they ran (scheduled day, asset-triggered monitor and training with
their Asset events), a task log with the drift check's summary line, the demo's connections, and
the report links answering 200 with the reports. Screenshots go to the test artifacts.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from importlib.metadata import entry_points
from pathlib import Path
from urllib.parse import quote

import pytest
import requests

from airflow_provider_mlops.utils.processes import stop_process_group
from tests.harness.browser import find_browser, open_page
from tests.harness.servers import free_port

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
DAGS = ("mlops_etl_daily", "mlops_monitor_model", "mlops_train_model")


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLOPS_"))}


@contextlib.contextmanager
def _ui(home: Path, mlflow_port: int, log: Path):
    """The command the demo prints, in its own process group; stopped by SIGTERM as Ctrl-C would."""
    with open(log, "wb") as handle:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "airflow_provider_mlops.demo",
                "ui",
                "--home",
                str(home),
                "--mlflow-port",
                str(mlflow_port),
            ],
            cwd=ROOT,
            env=_env(),
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 300
            while "Ctrl-C stops both." not in log.read_text(errors="replace"):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"./dev ui did not start:\n{log.read_text(errors='replace')[-3000:]}")
                time.sleep(1)
            yield proc
        finally:
            stop_process_group(proc, grace=60)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, dt.datetime]:
    """A two-day demo home (with the report plugin), its UI port, and when it began."""
    home, port = tmp_path_factory.mktemp("demo_ui") / "demo", free_port()
    began = dt.datetime.now(dt.UTC)
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "airflow_provider_mlops.demo",
            "--days",
            "2",
            "--home",
            str(home),
            "--ui-port",
            str(port),
        ],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert f"./dev ui --home {home}" in run.stdout and f"http://127.0.0.1:{port}" in run.stdout
    if not any(ep.name == "mlops_reports" for ep in entry_points(group="airflow.plugins")):
        # an environment installed before the entry point existed: load the plugin from the home
        (home / "plugins").mkdir(exist_ok=True)
        (home / "plugins" / "mlops_reports_plugin.py").write_text(
            "from airflow_provider_mlops.plugins.reports import MlopsReportsPlugin  # noqa: F401\n"
        )
    return home, port, began


def test_the_demo_in_the_airflow_ui(
    demo: tuple[Path, int, dt.datetime], tmp_path: Path, artifacts_dir: Path
) -> None:
    from tests.conftest import _unavailable

    browser = find_browser()
    if browser is None:
        _unavailable("chromium not found: apt-get install chromium")
        return
    home, port, began = demo
    mlflow_port = free_port()
    url = f"http://127.0.0.1:{port}"
    with _ui(home, mlflow_port, tmp_path / "ui.log"):

        def api(path: str) -> dict:
            response = requests.get(f"{url}/api/v2{path}", timeout=30)
            response.raise_for_status()
            return dict(response.json())

        runs = {dag: api(f"/dags/{dag}/dagRuns?order_by=id")["dag_runs"] for dag in DAGS}
        assert [r["run_type"] for r in runs["mlops_etl_daily"]] == ["scheduled", "scheduled"]
        assert [r["run_type"] for r in runs["mlops_monitor_model"]] == ["asset_triggered"] * 2
        [training] = runs["mlops_train_model"]
        assert training["run_type"] == "asset_triggered" and "bootstrap" in training["note"]
        for run in (r for rs in runs.values() for r in rs):
            start = dt.datetime.fromisoformat(run["start_date"])
            end = dt.datetime.fromisoformat(run["end_date"])
            assert began <= start < end and (end - start).total_seconds() < 300, run
        sources = api(
            f"/dags/mlops_train_model/dagRuns/{quote(training['dag_run_id'], safe='')}/upstreamAssetEvents"
        )
        assert [e["source_dag_id"] for e in sources["asset_events"]] == ["mlops_monitor_model"]

        monitor_run = quote(runs["mlops_monitor_model"][-1]["dag_run_id"], safe="")
        train_run = quote(training["dag_run_id"], safe="")
        links = {
            **api(
                f"/dags/mlops_monitor_model/dagRuns/{monitor_run}/taskInstances/check_drift_and_accuracy/links"
            )["extra_links"],
            **api(f"/dags/mlops_train_model/dagRuns/{train_run}/taskInstances/profile_training_data/links")[
                "extra_links"
            ],
        }
        deploy = api(f"/dags/mlops_train_model/dagRuns/{train_run}/taskInstances/deploy_if_better/links")
        version_link = deploy["extra_links"].get("MLflow model version", "")
        assert version_link.startswith(f"{url}/mlops/model-version/"), deploy
        redirect = requests.get(version_link, allow_redirects=False, timeout=30)
        assert redirect.status_code == 307, redirect.text
        assert redirect.headers["location"] == "http://127.0.0.1:5000/#/models/churn_model/versions/1"
        assert links.get("Drift report", "").startswith(f"{url}/mlops/reports/"), links
        assert links.get("Data profile", "").startswith(f"{url}/mlops/reports/"), links

        with open_page(browser, window=(1500, 900)) as page:
            page.goto(f"{url}/dags", wait_until="networkidle")
            for dag in DAGS:
                page.get_by_text(dag, exact=True).first.wait_for(timeout=60_000)
            page.screenshot(path=artifacts_dir / "demo_ui_dags.png")

            page.goto(
                f"{url}/dags/mlops_monitor_model/runs/{monitor_run}/tasks/check_drift_and_accuracy",
                wait_until="networkidle",
            )
            page.get_by_text("2500 rows vs churn_model v", exact=False).first.wait_for(timeout=60_000)
            page.screenshot(path=artifacts_dir / "demo_ui_drift_log.png")

            page.goto(f"{url}/connections", wait_until="networkidle")
            for conn_id in ("mlops_api", "mlops_warehouse", "mlops_model_server"):
                page.get_by_text(conn_id, exact=True).first.wait_for(timeout=60_000)
            page.screenshot(path=artifacts_dir / "demo_ui_connections.png")

            for name, heading in (("Drift report", "Data drift report"), ("Data profile", "Data profile")):
                response = page.goto(links[name], wait_until="load")
                assert response is not None and response.status == 200, (name, links[name])
                assert heading in page.content(), name
            page.screenshot(path=artifacts_dir / "demo_ui_profile_report.png")


def test_the_report_pages_need_a_login_when_airflow_asks_for_one(
    demo: tuple[Path, int, dt.datetime], tmp_path: Path
) -> None:
    """The plugin is behind Airflow's auth: with the simple auth manager's login on, no token -> 401."""
    home, _, _ = demo
    port = free_port()
    env = {
        **_env(),
        "PATH": os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")]),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__API__WORKERS": "1",
    }
    log = tmp_path / "api-server.log"
    url = f"http://127.0.0.1:{port}"
    with open(log, "wb") as handle:
        proc = subprocess.Popen(
            [sys.executable, "-m", "airflow", "api-server", "--port", str(port)],
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 180
            while True:
                with contextlib.suppress(requests.RequestException):
                    if requests.get(f"{url}/api/v2/monitor/health", timeout=2).status_code == 200:
                        break
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"api-server did not start:\n{log.read_text(errors='replace')[-3000:]}"
                    )
                time.sleep(1)
            run_id = quote("asset_triggered__2026-01-03T00:00:00+00:00", safe="")
            page = f"{url}/mlops/reports/mlops_monitor_model/{run_id}/check_drift_and_accuracy"
            assert requests.get(page, timeout=30).status_code == 401
            passwords = json.loads((home / "simple_auth_manager_passwords.json.generated").read_text())
            token = requests.post(
                f"{url}/auth/token",
                json={"username": "admin", "password": passwords["admin"]},
                timeout=30,
            ).json()["access_token"]
            answer = requests.get(page, headers={"Authorization": f"Bearer {token}"}, timeout=30)
            assert answer.status_code == 200 and "Data drift report" in answer.text
            # the browser's session cookie after a login works the same
            assert requests.get(page, cookies={"_token": token}, timeout=30).status_code == 200
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
