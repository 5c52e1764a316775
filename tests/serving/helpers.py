"""Shared by the serving tests: a churn-like frame, and the model server as a subprocess."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import requests

from airflow_provider_mlops.ml.serialization import VerifiedModel
from airflow_provider_mlops.serving.app import ModelServer, ServeConfig, Served
from airflow_provider_mlops.serving.compiled import compile_pipeline
from airflow_provider_mlops.serving.protocol import InputSchema

TOKEN = "test-reload-token"
COLUMNS = ("minutes", "tickets", "plan", "region")
SCHEMA = InputSchema(COLUMNS, ("double", "double", "string", "string"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def churn_frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "minutes": rng.gamma(2, 25, n),
            "tickets": rng.poisson(0.6, n).astype("int64"),
            "plan": rng.choice(["free", "basic", "pro"], n),
            "region": rng.choice(["eu", "na"], n),
        }
    )
    frame.loc[rng.random(n) < 0.05, "minutes"] = np.nan
    score = -1 + 0.9 * frame.tickets - 0.03 * frame.minutes.fillna(50) + (frame.plan == "free") * 1.2
    frame["churned"] = (score + rng.logistic(size=n) > 0).astype("int64")
    return frame


class Server:
    def __init__(self, url: str, process: subprocess.Popen, log: Path) -> None:
        self.url, self.process, self.log = url, process, log

    def get(self, path: str, **kw) -> requests.Response:
        return requests.get(self.url + path, timeout=30, **kw)

    def post(self, path: str, **kw) -> requests.Response:
        return requests.post(self.url + path, timeout=60, **kw)


def start_server(args: list[str], log: Path, ready: str = "/ping") -> Server:
    """The server as a subprocess, once ``ready`` answers 200 (``/health``: up, with or without a model)."""
    port = _free_port()
    # mlflow.set_tracking_uri() exports MLFLOW_TRACKING_URI: a test that called it earlier in the
    # session must not point this server at its store (servers here get --tracking-uri when they use one)
    inherited = {
        k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
    }
    env = {**inherited, "MLOPS_SERVE_TOKEN": TOKEN, "MLFLOW_DISABLE_TELEMETRY": "true"}
    handle = log.open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "airflow_provider_mlops.serve", "--port", str(port), *args],
        stdout=handle,
        stderr=subprocess.STDOUT,
        env=env,
    )
    server = Server(f"http://127.0.0.1:{port}", process, log)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited ({process.returncode}):\n{log.read_text()[-3000:]}")
        try:
            if requests.get(server.url + ready, timeout=1).status_code == 200:
                return server
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"the server did not answer {ready}:\n{log.read_text()[-3000:]}")


def stop_server(server: Server) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


class _Loader:
    def __init__(self, served: Served) -> None:
        self.served = served
        self.storage = None

    def load(self, **_: object) -> Served:
        return self.served


def server_for(model: object, **config: object) -> ModelServer:
    """A ModelServer (no HTTP) serving ``model`` with the churn columns' typed schema."""
    verified = VerifiedModel(
        model=model,
        name="m",
        version="1",
        sha256="0" * 64,
        uri="/secret/path/model.skops",
        format="skops",
        blob=b"",
    )
    served = Served(verified=verified, schema=SCHEMA, loaded_epoch=0.0, compiled=compile_pipeline(model))
    return ModelServer(ServeConfig(model_name="m", **config), loader=_Loader(served))
