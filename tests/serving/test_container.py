"""
The server image's contract without a Docker engine: the Dockerfile passes hadolint, its files ship
in the package, and the server starts the way the platforms start the container (SageMaker:
``serve`` argument and MLOPS_SERVE_* variables only, the digest pinned, no MLflow; Heroku: the
Procfile's command with ``$PORT``), then answers ``/ping`` and ``/invocations``. The image itself is
not built here (no Docker engine on the test machines).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest
import requests
from sklearn.linear_model import LogisticRegression

from airflow_provider_mlops.ml.serialization import dump_model, sha256
from tests.serving.helpers import _free_port, churn_frame

CONTAINER = resources.files("airflow_provider_mlops.serving") / "container"
FEATURES = ["minutes", "tickets"]


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> dict:
    frame = churn_frame(400, 3).fillna({"minutes": 50.0})
    model = LogisticRegression().fit(frame[FEATURES], frame["churned"])
    blob, fmt, _ = dump_model(model)
    assert fmt == "skops"
    path = tmp_path_factory.mktemp("container") / "v7" / "model.skops"
    path.parent.mkdir()
    path.write_bytes(blob)
    return {"uri": path.as_uri(), "sha256": sha256(blob), "model": model, "frame": frame}


def _run(argv: list[str], env: dict[str, str], port: int, log: Path) -> subprocess.Popen:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_SERVE_", "MLFLOW_"))}
    base.pop("PORT", None)
    handle = log.open("w")
    process = subprocess.Popen(argv, env={**base, **env}, stdout=handle, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    import time

    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the server exited ({process.returncode}):\n{log.read_text()[-3000:]}")
        try:
            if requests.get(url + "/ping", timeout=1).status_code == 200:
                return process
        except requests.ConnectionError:
            time.sleep(0.2)
    process.kill()
    raise AssertionError(f"no /ping answer:\n{log.read_text()[-3000:]}")


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _check(port: int, model_file: dict) -> None:
    url = f"http://127.0.0.1:{port}"
    described = requests.get(url + "/version", timeout=10).json()
    assert (described["version"], described["sha256"]) == ("7", model_file["sha256"])
    rows = model_file["frame"][FEATURES].head(5)
    body = {"dataframe_split": {"columns": FEATURES, "data": rows.values.tolist()}}
    answer = requests.post(url + "/invocations", json=body, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json()["predictions"] == model_file["model"].predict(rows).tolist()


def test_dockerfile_passes_hadolint() -> None:
    exe = Path(sys.executable).parent / "hadolint"
    dockerfile = Path(str(CONTAINER / "Dockerfile"))
    result = subprocess.run(
        [str(exe), "--failure-threshold", "info", str(dockerfile)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    text = dockerfile.read_text()
    assert 'ENTRYPOINT ["python", "-m", "airflow_provider_mlops.serve"]' in text
    assert "EXPOSE 8080" in text and "MLOPS_SERVE_HOST=0.0.0.0" in text
    # Heroku must get $PORT: the image may not pin the port through the environment.
    assert "MLOPS_SERVE_PORT" not in text.split("ENV", 1)[1].split("WORKDIR", 1)[0]
    for name in ("Procfile", "requirements.txt", "heroku.yml"):
        assert (CONTAINER / name).is_file(), name


def test_started_like_sagemaker_starts_the_container(model_file: dict, tmp_path: Path) -> None:
    port = _free_port()
    env = {
        "MLOPS_SERVE_MODEL_NAME": "churn_model",
        "MLOPS_SERVE_VERSION": "7",
        "MLOPS_SERVE_SHA256": model_file["sha256"],
        "MLOPS_SERVE_MODEL_URI": model_file["uri"],
        "MLOPS_SERVE_PORT": str(port),  # SageMaker's is 8080, the default; a free port here
    }
    process = _run(
        [sys.executable, "-m", "airflow_provider_mlops.serve", "serve"], env, port, tmp_path / "sm.log"
    )
    try:
        _check(port, model_file)
    finally:
        _stop(process)


def test_a_wrong_pinned_digest_never_serves(model_file: dict, tmp_path: Path) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_SERVE_", "MLFLOW_"))},
        "MLOPS_SERVE_MODEL_NAME": "churn_model",
        "MLOPS_SERVE_VERSION": "7",
        "MLOPS_SERVE_SHA256": "0" * 64,
        "MLOPS_SERVE_MODEL_URI": model_file["uri"],
        "MLOPS_SERVE_PORT": "1",
    }
    refused = subprocess.run(
        [sys.executable, "-m", "airflow_provider_mlops.serve", "serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode == 1 and model_file["sha256"] in refused.stderr


def test_procfile_command_serves_on_heroku_port(model_file: dict, tmp_path: Path) -> None:
    line = (CONTAINER / "Procfile").read_text().strip()
    kind, _, command = line.partition(":")
    assert kind == "web"
    argv = shlex.split(command)
    assert argv[:3] == ["python", "-m", "airflow_provider_mlops.serve"] and "--port" not in argv
    argv = [sys.executable, *argv[1:]]
    argv[argv.index("--host") + 1] = "127.0.0.1"  # Heroku needs 0.0.0.0; the test stays on loopback
    port = _free_port()
    env = {
        "PORT": str(port),
        "MLOPS_SERVE_MODEL_NAME": "churn_model",
        "MLOPS_SERVE_VERSION": "7",
        "MLOPS_SERVE_SHA256": model_file["sha256"],
        "MLOPS_SERVE_MODEL_URI": model_file["uri"],
    }
    process = _run(argv, env, port, tmp_path / "heroku.log")
    try:
        _check(port, model_file)
    finally:
        _stop(process)


def _dockerfile() -> tuple[list[str], dict[str, str]]:
    """The image's ENTRYPOINT (exec form) and its ENV variables, read from the Dockerfile."""
    import json
    import re

    text = (CONTAINER / "Dockerfile").read_text()
    entrypoint = json.loads(re.search(r"^ENTRYPOINT (\[.*\])$", text, re.M).group(1))
    env_block = re.search(r"^ENV ((?:.*\\\n)*.*)$", text, re.M).group(1).replace("\\\n", " ")
    env = dict(pair.split("=", 1) for pair in shlex.split(env_block))
    return entrypoint, env


def test_sagemaker_command_line_on_port_8080(model_file: dict, tmp_path: Path) -> None:
    """`docker run IMAGE serve`: the image's ENTRYPOINT + `serve`, its ENV, no port given: 8080."""
    import socket

    entrypoint, image_env = _dockerfile()
    assert entrypoint == ["python", "-m", "airflow_provider_mlops.serve"]
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", 8080)) == 0:
            pytest.skip("port 8080 is taken on this machine")
    env = {
        **image_env,
        "MLOPS_SERVE_HOST": "127.0.0.1",  # the image listens on 0.0.0.0; the test stays on loopback
        "MLOPS_SERVE_MODEL_NAME": "churn_model",
        "MLOPS_SERVE_VERSION": "7",
        "MLOPS_SERVE_SHA256": model_file["sha256"],
        "MLOPS_SERVE_MODEL_URI": model_file["uri"],
    }
    process = _run([sys.executable, *entrypoint[1:], "serve"], env, 8080, tmp_path / "sagemaker.log")
    try:
        _check(8080, model_file)
        # SageMaker posts CSV as often as JSON
        rows = model_file["frame"][FEATURES].head(3)
        answer = requests.post(
            "http://127.0.0.1:8080/invocations",
            data=rows.to_csv(index=False),
            headers={"Content-Type": "text/csv"},
            timeout=30,
        )
        assert answer.status_code == 200 and answer.json()["predictions"] == (
            model_file["model"].predict(rows).tolist()
        )
    finally:
        _stop(process)
