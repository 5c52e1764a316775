"""
``./dev ui`` (``python -m airflow_provider_mlops.demo ui [--home .demo]``): the Airflow UI and the
MLflow UI on the demo's home, together, until Ctrl-C.

Airflow runs as ``airflow standalone`` (API server with the UI, scheduler, DAG processor,
triggerer; the LocalExecutor) on the settings the demo wrote to ``.demo/airflow.cfg``; MLflow as
``mlflow ui`` on the demo's ``mlflow.db``. Both listen on 127.0.0.1 only and ask for no login
(``simple_auth_manager_all_admins``: a local demo; never expose this home on a network). The demo's
DAGs stay paused as the demo left them: unpause one in the UI to let the scheduler run it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from airflow_provider_mlops.demo.home import AIRFLOW_PORT, MLFLOW_PORT
from airflow_provider_mlops.utils.processes import stop_process_group

if TYPE_CHECKING:
    from collections.abc import Iterator


def _wait_http(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"{process.args!r} exited with {process.returncode}; its log {log}:\n"
                + log.read_text(errors="replace")[-3000:]
            )
        with (
            contextlib.suppress(OSError, urllib.error.URLError),
            urllib.request.urlopen(url, timeout=2) as response,  # noqa: S310 - loopback URL
        ):
            if response.status == 200:
                return
        time.sleep(1)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f} s; see {log}")


def configured_port(home: Path) -> int:
    """The ``[api] port`` of ``home/airflow.cfg`` (the demo writes it), else Airflow's 8080."""
    import configparser

    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(home / "airflow.cfg")
    return cfg.getint("api", "port", fallback=AIRFLOW_PORT)


@contextlib.contextmanager
def running(
    home: Path, *, port: int | None = None, mlflow_port: int = MLFLOW_PORT
) -> Iterator[dict[str, str]]:
    """
    Start both UIs on ``home`` (each in its own process group), yield their URLs, stop both.
    ``port`` defaults to the one in ``home/airflow.cfg`` (the report links were made with it).
    """
    if not (home / "airflow.cfg").exists() or not (home / "airflow.db").exists():
        raise SystemExit(f"{home} holds no demo: run `./dev demo` first (or pass --home)")
    configured = configured_port(home)
    port = configured if port is None else port
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(
        {
            # standalone starts its components as `airflow ...`: this interpreter's bin comes first.
            "PATH": os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")]),
            "AIRFLOW_HOME": str(home),
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "DO_NOT_TRACK": "true",
        }
    )
    if port != configured:
        env["AIRFLOW__API__PORT"] = str(port)
        env["AIRFLOW__API__BASE_URL"] = f"http://127.0.0.1:{port}"
    commands = {
        "airflow": [sys.executable, "-m", "airflow", "standalone"],
        "mlflow": [
            sys.executable,
            "-m",
            "mlflow",
            "ui",
            "--backend-store-uri",
            f"sqlite:///{home / 'mlflow.db'}",
            "--host",
            "127.0.0.1",
            "--port",
            str(mlflow_port),
        ],
    }
    urls = {"airflow": f"http://127.0.0.1:{port}", "mlflow": f"http://127.0.0.1:{mlflow_port}"}
    health = {"airflow": f"{urls['airflow']}/api/v2/monitor/health", "mlflow": f"{urls['mlflow']}/health"}
    processes: dict[str, subprocess.Popen[bytes]] = {}
    handles = []
    try:
        for name, command in commands.items():
            log = home / f"ui-{name}.log"
            handle = open(log, "wb")  # noqa: SIM115 - closed below
            handles.append(handle)
            processes[name] = subprocess.Popen(
                command, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True, cwd=home
            )
        for name, process in processes.items():
            _wait_http(health[name], process, home / f"ui-{name}.log", timeout=240)
        yield urls
    finally:
        for process in processes.values():
            stop_process_group(process)
        for handle in handles:
            handle.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="./dev ui", description=__doc__)
    parser.add_argument("--home", type=Path, default=Path(".demo"), help="the demo's home (default .demo)")
    parser.add_argument(
        "--port", type=int, default=None, help="Airflow UI port (default: the demo's, in airflow.cfg)"
    )
    parser.add_argument(
        "--mlflow-port", type=int, default=MLFLOW_PORT, help=f"MLflow UI port ({MLFLOW_PORT})"
    )
    args = parser.parse_args(argv)
    home = args.home.resolve()
    stop = {"now": False}

    def on_signal(signum: int, frame: object) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print(f"Starting the Airflow UI and the MLflow UI on {home} (logs: {home}/ui-*.log)...", flush=True)
    with running(home, port=args.port, mlflow_port=args.mlflow_port) as urls:
        print(
            f"Airflow UI: {urls['airflow']}   (no login: local demo; DAGs paused as the demo left them)\n"
            f"MLflow UI:  {urls['mlflow']}\nCtrl-C stops both.",
            flush=True,
        )
        while not stop["now"]:
            time.sleep(0.5)
    return 0
