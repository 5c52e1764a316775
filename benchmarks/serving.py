"""
The serving benchmark's setup: one churn model (the example Pipeline: imputation, scaling, one-hot,
LogisticRegression) trained by TrainModelOperator and registered in a local MLflow, a scoring data
set, and the two servers compared on it: this provider's ``mlops-serve`` and ``mlflow models serve
--env-manager local``, both one process on 127.0.0.1 serving the same registered version.

``python -m benchmarks.serving prepare WORK_DIR ROWS`` prints the JSON the cases need.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from airflow_provider_mlops.ml.specs import Model

NAME = "churn_bench"


def prepare(work: Path, rows: int) -> dict[str, Any]:
    import pyarrow as pa

    from airflow_provider_mlops.hooks.s3 import ObjectStorageHook
    from airflow_provider_mlops.operators.train import TrainModelOperator
    from tests.operators.helpers import task_context
    from tests.serving.helpers import churn_frame

    tracking = f"sqlite:///{work / 'mlflow.db'}"
    os.environ["AIRFLOW_CONN_BENCH_MLFLOW"] = json.dumps(
        {
            "conn_type": "mlops-mlflow",
            "host": "",
            "extra": {"tracking_uri": tracking, "artifact_location": (work / "artifacts").as_uri()},
        }
    )
    storage = ObjectStorageHook(aws_conn_id=None)
    train_uri = (work / "train").as_uri()
    storage.write_dataset(
        train_uri, pa.Table.from_pandas(churn_frame(5000, 0), preserve_index=False).to_batches()
    )
    trained = TrainModelOperator(
        task_id="train",
        input_uri=train_uri,
        label_column="churned",
        registered_model_name=NAME,
        mlflow_conn_id="bench_mlflow",
        model_output_uri=(work / "models").as_uri(),
        model=Model(estimator="sklearn.linear_model.LogisticRegression"),
    ).execute(task_context(work))

    # The scoring set: `rows` rows without the label, written in bounded batches.
    score_uri = (work / "score").as_uri()
    chunk = 100_000

    def batches() -> Any:
        for seed, start in enumerate(range(0, rows, chunk)):
            frame = churn_frame(min(chunk, rows - start), 100 + seed).drop(columns=["churned"])
            yield from pa.Table.from_pandas(frame, preserve_index=False).to_batches()

    storage.write_dataset(score_uri, batches())
    sample = churn_frame(10_000, 9).drop(columns=["churned"])
    sample_path = work / "sample.json"  # too big for a command line: the cases read it from here
    sample_path.write_text(sample.to_json(orient="split", index=False))
    return {
        "tracking_uri": tracking,
        "name": NAME,
        "version": str(trained["version"]),
        "score_uri": score_uri,
        "sample": str(sample_path),
    }


def start(argv: list[str], url: str, log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    import requests

    handle = log.open("wb")
    process = subprocess.Popen(
        argv,
        stdout=handle,
        stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})},
        start_new_session=True,
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{argv[:4]} exited ({process.returncode}):\n{log.read_text()[-3000:]}")
        try:
            if requests.get(f"{url}/ping", timeout=1).status_code == 200:
                return process
        except requests.RequestException:
            pass
        time.sleep(0.3)
    process.kill()
    raise RuntimeError(f"{argv[:4]} did not answer /ping:\n{log.read_text()[-3000:]}")


def stop(process: subprocess.Popen[bytes]) -> None:
    import signal

    try:
        os.killpg(process.pid, signal.SIGTERM)  # mlflow's server runs uvicorn as a child
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


if __name__ == "__main__":
    if sys.argv[1] == "prepare":
        print(json.dumps(prepare(Path(sys.argv[2]), int(sys.argv[3]))))
