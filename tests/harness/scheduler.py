"""
A real Airflow (``airflow standalone``: scheduler, DAG processor, triggerer, API server with the
LocalExecutor, each task in its own process) on 127.0.0.1, driven through the REST API.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from airflow_provider_mlops.utils.processes import stop_process_group
from tests.harness.servers import free_port


@dataclass
class AirflowServer:
    url: str
    home: Path
    log: Path

    @property
    def headers(self) -> dict[str, str]:
        # simple_auth_manager_all_admins: the API and the UI need no login on this loopback server.
        return {}

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return requests.request(
            method, f"{self.url}/api/v2{path}", headers=self.headers, timeout=30, **kwargs
        )

    def get_json(self, path: str, **kwargs: Any) -> dict[str, Any]:
        """GET and decode; a transient 5xx (SQLite busy) or a non-JSON body reads as empty."""
        response = self.api("GET", path, **kwargs)
        try:
            return dict(response.json()) if response.status_code < 500 else {}
        except ValueError:
            return {}

    def wait_for_dag(self, dag_id: str, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            response = self.api("GET", f"/dags/{dag_id}")
            if response.status_code == 200:
                return
            time.sleep(1)
        raise TimeoutError(f"DAG {dag_id} not parsed after {timeout}s; log tail:\n{self.tail()}")

    def trigger(self, dag_id: str, logical_date: str) -> str:
        """Create a run; retried on 5xx (SQLite's metadata DB can be locked by the scheduler for a moment)."""
        for _ in range(10):
            response = self.api("POST", f"/dags/{dag_id}/dagRuns", json={"logical_date": logical_date})
            if response.status_code == 409:  # an earlier attempt did create it
                runs = self.get_json(f"/dags/{dag_id}/dagRuns").get("dag_runs", [])
                wanted = logical_date.replace("+00:00", "Z")
                for run in runs:
                    if str(run.get("logical_date", "")).replace("+00:00", "Z").startswith(wanted[:19]):
                        return str(run["dag_run_id"])
            if response.status_code < 500:
                response.raise_for_status()
                return str(response.json()["dag_run_id"])
            time.sleep(2)
        response.raise_for_status()
        raise RuntimeError("unreachable")

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 240) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.get_json(f"/dags/{dag_id}/dagRuns/{run_id}").get("state")
            if state in ("success", "failed"):
                return str(state)
            time.sleep(1)
        raise TimeoutError(
            f"run {run_id} of {dag_id} not finished after {timeout}s; log tail:\n{self.tail()}"
        )

    def wait_for_any_run(
        self, dag_id: str, timeout: float = 300, run_type: str | None = None
    ) -> dict[str, Any]:
        """The first finished run of ``dag_id`` (of ``run_type`` when given), however it was created."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            runs = self.get_json(f"/dags/{dag_id}/dagRuns", params={"order_by": "run_after"}).get(
                "dag_runs", []
            )
            done = [
                r
                for r in runs
                if r.get("state") in ("success", "failed")
                and (run_type is None or r.get("run_type") == run_type)
            ]
            if done:
                return dict(done[0])
            time.sleep(2)
        raise TimeoutError(f"no finished run of {dag_id} after {timeout}s; log tail:\n{self.tail()}")

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str]:
        items = self.get_json(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances").get("task_instances", [])
        return {ti["task_id"]: ti["state"] for ti in items}

    def tail(self, lines: int = 60) -> str:
        return (
            "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:]) if self.log.exists() else ""
        )


def airflow_env(home: Path, dags_folder: Path, port: int, db: str, env: Mapping[str, str]) -> dict[str, str]:
    """
    The environment of every Airflow process of one test deployment (standalone or separate
    components): this interpreter's ``airflow`` first on PATH, the metadata DB ``db``, loopback API on
    ``port`` with the execution API URL every task needs, free log-server ports, fast DAG refresh, no
    login (loopback only), DAGs unpaused; ``env`` last (it wins).
    """
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")},
        # standalone starts its components as `airflow ...`: the running interpreter's bin comes first.
        "PATH": os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")]),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": db,
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        # Triggered runs of a paused DAG stay queued: DAGs start unpaused here.
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        # The log servers have fixed default ports (8793, 8794): free ones, so runs never collide.
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "5",
        # No login, so a headless browser can show the UI (loopback only: never do this on a network).
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        **env,
    }


def wait_healthy(
    url: str, procs: Mapping[str, subprocess.Popen], logs: Mapping[str, Path], timeout: float = 180
) -> None:
    """Until the API server answers its health check; fails at once naming a component that exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if dead := [n for n, p in procs.items() if p.poll() is not None]:
            raise RuntimeError(
                f"{dead} exited:\n" + "\n".join(logs[n].read_text(errors="replace")[-3000:] for n in dead)
            )
        with contextlib.suppress(requests.RequestException):
            if requests.get(f"{url}/api/v2/monitor/health", timeout=2).status_code == 200:
                return
        time.sleep(1)
    raise TimeoutError(
        f"Airflow not healthy after {timeout:.0f}s:\n"
        + "\n".join(f"--- {n}\n{logs[n].read_text(errors='replace')[-1500:]}" for n in procs)
    )


@contextlib.contextmanager
def start_airflow(home: Path, dags_folder: Path, env: Mapping[str, str]) -> Iterator[AirflowServer]:
    """``airflow db migrate`` then ``airflow standalone`` in its own process group; stopped as a group."""
    port = free_port()
    full_env = airflow_env(home, dags_folder, port, f"sqlite:///{home}/airflow.db", env)
    home.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"], env=full_env, check=True, capture_output=True
    )
    log = home / "standalone.log"
    handle = open(log, "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "airflow", "standalone"],
        env=full_env,
        stdout=handle,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, {"standalone": proc}, {"standalone": log})
        yield AirflowServer(url, home, log)
    finally:
        stop_process_group(proc, grace=20)
        handle.close()
