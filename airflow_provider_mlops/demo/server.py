"""
The demo's model server: ``python -m airflow_provider_mlops.serve`` as a subprocess on a free
loopback port, serving the champion of ``churn_model`` from the demo's MLflow store.

It starts once the first champion exists (the server refuses to start without a verified model);
from then on the training DAG's deploy task reloads it through the ``local_server`` target on every
promotion, and the daily summary asks it for ``/version`` and one prediction.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

CONN_ID = "mlops_model_server"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class DemoModelServer:
    """One server subprocess; :meth:`stop` ends it (SIGTERM, then SIGKILL after a grace period)."""

    def __init__(self, home: Path, model_name: str) -> None:
        self.home = home
        self.model_name = model_name
        self.token = secrets.token_urlsafe(24)
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = home / "model_server.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._ready = False

    def start(self) -> None:
        """Start the process without waiting for it (it loads while the demo goes on)."""
        env = {
            **os.environ,
            "MLOPS_SERVE_TOKEN": self.token,
            "MLFLOW_DISABLE_TELEMETRY": "true",
        }
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "airflow_provider_mlops.serve",
                    "--model-name",
                    self.model_name,
                    "--tracking-uri",
                    f"sqlite:///{self.home / 'mlflow.db'}",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--log-level",
                    "warning",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
            )

    def connection(self) -> dict[str, Any]:
        """The ``mlops-http`` connection the ``local_server`` target reaches the server through."""
        return {"conn_type": "mlops-http", "host": self.url, "password": self.token, "extra": {"timeout": 60}}

    def wait_ready(self, timeout: float = 120.0) -> None:
        import requests

        if self._ready:
            return
        if self.process is None:
            raise RuntimeError("the model server was not started")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"the model server exited ({self.process.returncode}): see {self.log_path}\n"
                    + self.log_path.read_text(errors="replace")[-2000:]
                )
            try:
                if requests.get(f"{self.url}/ping", timeout=1).status_code == 200:
                    self._ready = True
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise RuntimeError(
            f"the model server did not answer /ping within {timeout:.0f} s: see {self.log_path}"
        )

    def version(self) -> dict[str, Any]:
        import requests

        self.wait_ready()
        response = requests.get(f"{self.url}/version", timeout=10)
        response.raise_for_status()
        return dict(response.json())

    def predict(self, records: list[dict[str, Any]]) -> list[Any]:
        import requests

        self.wait_ready()
        response = requests.post(f"{self.url}/invocations", json={"dataframe_records": records}, timeout=30)
        if response.status_code != 200:
            raise RuntimeError(f"/invocations answered {response.status_code}: {response.text[:300]}")
        return list(response.json()["predictions"])

    def stop(self, grace: float = 15.0) -> str:
        """SIGTERM (uvicorn finishes in-flight requests), SIGKILL after ``grace`` seconds."""
        if self.process is None:
            return "never started"
        if self.process.poll() is not None:
            return f"had already exited ({self.process.returncode})"
        self.process.terminate()
        try:
            code = self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            return f"killed: no exit {grace:.0f} s after SIGTERM"
        # uvicorn shuts down gracefully, then re-raises the SIGTERM it caught: -15 is a clean stop.
        return "stopped cleanly" if code in (0, -signal.SIGTERM) else f"exited with code {code}"
