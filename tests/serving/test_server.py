"""The model server as a real process on 127.0.0.1, called over HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
import requests

from airflow_provider_mlops.hooks.s3 import ObjectStorageHook
from airflow_provider_mlops.ml.serialization import load_model_version
from airflow_provider_mlops.ml.specs import Model
from airflow_provider_mlops.operators.train import TrainModelOperator
from airflow_provider_mlops.utils.processes import stop_process_group
from tests.conftest import set_connection
from tests.operators.helpers import task_context
from tests.serving.helpers import TOKEN, Server, churn_frame, start_server, stop_server

NAME = "churn_served"


@pytest.fixture(scope="module")
def registered(tmp_path_factory: pytest.TempPathFactory, mlflow_tracking: dict[str, str]) -> dict:
    """Two versions of a registered churn model, trained by TrainModelOperator; v1 is champion."""
    import mlflow

    root = tmp_path_factory.mktemp("served")
    uri = (root / "train").as_uri()
    ObjectStorageHook(aws_conn_id=None).write_dataset(
        uri, pa.Table.from_pandas(churn_frame(1200, 0), preserve_index=False).to_batches()
    )
    conn = set_connection(
        "mlflow_serve_test",
        conn_type="mlops_mlflow",
        host="",
        extra={
            "tracking_uri": mlflow_tracking["tracking_uri"],
            "artifact_location": mlflow_tracking["artifact_location"],
        },
    )
    versions = []
    for estimator, params in (
        ("sklearn.linear_model.LogisticRegression", {}),
        ("sklearn.ensemble.RandomForestClassifier", {"n_estimators": 20, "max_depth": 4}),
    ):
        out = TrainModelOperator(
            task_id="train",
            input_uri=uri,
            label_column="churned",
            registered_model_name=NAME,
            mlflow_conn_id=conn,
            model_output_uri=(root / "models").as_uri(),
            model=Model(estimator=estimator, params=params),
        ).execute(task_context(root))
        versions.append(out)
    client = mlflow.MlflowClient(tracking_uri=mlflow_tracking["tracking_uri"])
    client.set_registered_model_alias(NAME, "champion", versions[0]["version"])
    storage = ObjectStorageHook(aws_conn_id=None)
    models = {
        v["version"]: load_model_version(client, NAME, v["version"], storage=storage).model for v in versions
    }
    return {
        "root": root,
        "client": client,
        "versions": versions,
        "models": models,
        "tracking": mlflow_tracking,
    }


@pytest.fixture(scope="module")
def server(registered: dict) -> Iterator[Server]:
    root: Path = registered["root"]
    srv = start_server(
        [
            "--model-name",
            NAME,
            "--tracking-uri",
            registered["tracking"]["tracking_uri"],
            "--max-rows",
            "500",
            "--log-predictions",
            (root / "predictions").as_uri(),
            "--log-flush-seconds",
            "0.3",
        ],
        root / "server.log",
    )
    yield srv
    stop_server(srv)


def _rows(n: int = 25) -> pd.DataFrame:
    return churn_frame(n, 7).drop(columns=["churned"])


def _split(frame: pd.DataFrame) -> dict:
    data = json.loads(frame.to_json(orient="split", index=False))
    return {"dataframe_split": {"columns": data["columns"], "data": data["data"]}}


def test_ping_version_and_predictions_equal_the_models_own(server: Server, registered: dict) -> None:
    v1 = registered["versions"][0]
    assert server.get("/ping").status_code == 200
    version = server.get("/version").json()
    assert version["name"] == NAME and version["version"] == v1["version"]
    assert version["sha256"] == v1["sha256"] and version["loaded_at"]
    assert [c["name"] for c in version["inputs"]] == ["minutes", "tickets", "plan", "region"]

    rows = _rows()
    expected = registered["models"][v1["version"]].predict(rows).tolist()
    records = json.loads(rows.to_json(orient="records"))
    bodies = [
        {"json": _split(rows)},
        {"json": {"dataframe_records": records}},
        {"json": {"instances": records}},
        {"json": {"inputs": {c: json.loads(rows[c].to_json(orient="values")) for c in rows.columns}}},
        {"data": rows.to_csv(index=False), "headers": {"Content-Type": "text/csv"}},
    ]
    for body in bodies:
        response = server.post("/invocations", **body)
        assert response.status_code == 200, response.text
        assert response.json() == {"predictions": expected}


def test_bad_requests_get_a_4xx_naming_the_problem(server: Server) -> None:
    rows = _rows(3)
    missing = server.post("/invocations", json=_split(rows.drop(columns=["plan"])))
    assert missing.status_code == 400 and "plan" in missing.json()["message"]
    renamed = server.post("/invocations", json=_split(rows.rename(columns={"region": "regoin"})))
    assert renamed.status_code == 400
    assert "'regoin'" in renamed.json()["message"] and "'region'" in renamed.json()["message"]
    wrong_type = rows.astype({"tickets": object})
    wrong_type.loc[1, "tickets"] = "many"
    typed = server.post(
        "/invocations", json={"dataframe_records": json.loads(wrong_type.to_json(orient="records"))}
    )
    assert (
        typed.status_code == 400
        and "'tickets'" in typed.json()["message"]
        and "'many'" in typed.json()["message"]
    )
    too_many = server.post("/invocations", json=_split(_rows(501)))
    assert too_many.status_code == 413 and "500" in too_many.json()["message"]
    assert server.post("/invocations", data=b"{not json").status_code == 400
    assert server.post("/invocations", json={"rows": []}).status_code == 400
    assert server.post("/invocations", data=b"x", headers={"Content-Type": "text/plain"}).status_code == 415


def test_reload_needs_the_token_and_a_tampered_version_is_refused_while_the_old_one_serves(
    server: Server, registered: dict
) -> None:
    v1, v2 = (v["version"] for v in registered["versions"])
    assert server.post("/reload", json={"version": v2}).status_code == 401
    assert (
        server.post("/reload", json={"version": v2}, headers={"Authorization": "Bearer nope"}).status_code
        == 401
    )

    path = Path(registered["versions"][1]["model_file"].removeprefix("file://"))
    original = path.read_bytes()
    path.write_bytes(original[:-10] + b"0123456789")
    try:
        refused = server.post("/reload", json={"version": v2}, headers={"Authorization": f"Bearer {TOKEN}"})
    finally:
        path.write_bytes(original)
    assert refused.status_code == 409
    message = refused.json()["message"]
    assert f"{NAME} version {v2}" in message and registered["versions"][1]["sha256"] in message
    assert server.get("/version").json()["version"] == v1
    rows = _rows(5)
    response = server.post("/invocations", json=_split(rows))
    assert response.json()["predictions"] == registered["models"][v1].predict(rows).tolist()


def test_reload_under_concurrent_requests_fails_none(server: Server, registered: dict) -> None:
    v1, v2 = (v["version"] for v in registered["versions"])
    rows = _rows(10)
    answers = {v: registered["models"][v].predict(rows).tolist() for v in (v1, v2)}
    body = _split(rows)
    failures: list[str] = []
    seen: list[list] = []
    stop = threading.Event()

    def hammer() -> None:
        with requests.Session() as session:
            while not stop.is_set():
                try:
                    r = session.post(server.url + "/invocations", json=body, timeout=30)
                    if r.status_code != 200:
                        failures.append(f"{r.status_code} {r.text}")
                    else:
                        seen.append(r.json()["predictions"])
                except Exception as err:
                    failures.append(repr(err))

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    registered["client"].set_registered_model_alias(NAME, "champion", v2)
    reloaded = server.post("/reload", json={}, headers={"Authorization": f"Bearer {TOKEN}"})
    time.sleep(0.5)
    stop.set()
    for t in threads:
        t.join()
    assert reloaded.status_code == 200, reloaded.text
    assert reloaded.json()["version"] == v2 and reloaded.json()["previous"]["version"] == v1
    assert not failures, failures[:3]
    assert len(seen) > 20 and all(p in (answers[v1], answers[v2]) for p in seen)
    assert server.get("/version").json()["version"] == v2
    assert server.post("/invocations", json=body).json()["predictions"] == answers[v2]


def test_metrics_and_the_prediction_log(server: Server, registered: dict) -> None:
    text = server.get("/metrics").text
    assert 'mlops_serve_requests_total{endpoint="/invocations",code="200"}' in text
    assert 'mlops_serve_requests_total{endpoint="/invocations",code="400"}' in text
    assert 'mlops_serve_request_duration_seconds_bucket{le="+Inf"}' in text
    assert 'mlops_serve_reloads_total{result="failed"} 1' in text
    version = registered["versions"][1]["version"]
    assert f"mlops_serve_model_version {version}" in text
    time.sleep(1.0)  # the log flushes every 0.3 s
    storage = ObjectStorageHook(aws_conn_id=None)
    logged = [p.parent for p in (registered["root"] / "predictions").rglob("_delta_log")]
    assert logged
    table = pa.Table.from_batches([b for p in logged for b in storage.iter_batches(p.as_uri())])
    assert {"minutes", "plan", "prediction", "model_version", "predicted_at"} <= set(table.column_names)
    assert set(table.column("model_version").to_pylist()) == {v["version"] for v in registered["versions"]}


def test_latest_json_needs_a_trusted_digest(registered: dict, tmp_path: Path) -> None:
    v1 = registered["versions"][0]
    pointer = tmp_path / "latest.json"
    pointer.write_text(
        json.dumps(
            {
                "registered_model_name": NAME,
                "version": v1["version"],
                "uri": v1["model_file"],
                "sha256": "f" * 64,
            }
        )
    )
    # Without MLflow and without a pinned digest, the digest in latest.json is not enough.
    refused = subprocess.run(
        [sys.executable, "-m", "airflow_provider_mlops.serve", "--latest", pointer.as_uri(), "--port", "1"],
        capture_output=True,
        text=True,
        env={**os.environ, "MLFLOW_TRACKING_URI": ""},
        timeout=120,
    )
    assert refused.returncode == 1 and "pinned sha256" in refused.stderr
    srv = start_server(["--latest", pointer.as_uri(), "--sha256", v1["sha256"]], tmp_path / "latest.log")
    try:
        assert srv.get("/version").json()["version"] == v1["version"]
        rows = _rows(4)
        assert srv.post("/invocations", json=_split(rows)).json()["predictions"] == (
            registered["models"][v1["version"]].predict(rows).tolist()
        )
    finally:
        stop_server(srv)


@pytest.fixture(scope="module")
def mlflow_server(registered: dict) -> Iterator[str]:
    """``mlflow models serve --env-manager local`` on the champion (v1), one worker, on loopback."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = registered["root"] / "mlflow-serve.log"
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": registered["tracking"]["tracking_uri"],
        "MLFLOW_DISABLE_TELEMETRY": "true",
        # it execs `uvicorn` from PATH: the venv's bin may not be on it
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    v1 = registered["versions"][0]["version"]
    argv = [sys.executable, "-m", "mlflow", "models", "serve", "-m", f"models:/{NAME}/{v1}"]
    argv += ["--env-manager", "local", "-h", "127.0.0.1", "-p", str(port), "-w", "1"]
    process = subprocess.Popen(
        argv,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,  # its uvicorn is a child: stop the group
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"mlflow models serve did not start:\n{log.read_text()[-3000:]}")
            try:
                if requests.get(url + "/ping", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            time.sleep(0.3)
        yield url
    finally:
        stop_process_group(process, grace=20)


def test_same_answers_as_mlflow_models_serve(server: Server, mlflow_server: str, registered: dict) -> None:
    """The cases unchanged MLflow clients depend on, sent to both servers serving the same version."""
    v1 = registered["versions"][0]["version"]
    reloaded = server.post("/reload", json={"version": v1}, headers={"Authorization": f"Bearer {TOKEN}"})
    assert reloaded.status_code == 200 and reloaded.json()["version"] == v1
    rows = json.loads(_rows(4).to_json(orient="records"))
    first = {**rows[0]}
    cases = {
        "extra column": {"dataframe_records": [{**r, "customer_id": 7} for r in rows]},
        "number in a string column": {"dataframe_records": [{**first, "plan": 5}, *rows[1:]]},
        "missing column": {"dataframe_records": [{k: v for k, v in r.items() if k != "plan"} for r in rows]},
        "no input format": {"rows": rows},
        "split": {"dataframe_split": json.loads(_rows(3).to_json(orient="split", index=False))},
    }
    differences = []
    for name, payload in cases.items():
        ours = server.post("/invocations", json=payload)
        theirs = requests.post(mlflow_server + "/invocations", json=payload, timeout=60)
        same = ours.status_code == theirs.status_code
        if same and ours.status_code == 200:
            same = ours.json() == theirs.json()
        elif same:
            same = ours.json().get("error_code") == theirs.json().get("error_code")
        if not same:
            differences.append(
                (name, ours.status_code, ours.text[:200], theirs.status_code, theirs.text[:200])
            )
    kind = "application/xml"
    ours = server.post("/invocations", data=b"<x/>", headers={"Content-Type": kind})
    theirs = requests.post(
        mlflow_server + "/invocations", data=b"<x/>", headers={"Content-Type": kind}, timeout=60
    )
    if ours.status_code != theirs.status_code:
        differences.append(("content type", ours.status_code, "", theirs.status_code, ""))
    assert not differences, differences
    # the one deliberate difference here: MLflow passes params only to a model whose signature declares
    # them (TrainModelOperator's do not) and answers classes; this server answers probabilities
    payload = {"dataframe_records": rows, "params": {"predict_method": "predict_proba"}}
    theirs = requests.post(mlflow_server + "/invocations", json=payload, timeout=60).json()["predictions"]
    ours = server.post("/invocations", json=payload).json()["predictions"]
    model = registered["models"][v1]
    sent = pd.DataFrame(rows)  # the rows as JSON carried them (to_json rounds the floats)
    assert theirs == model.predict(sent).tolist()
    assert ours == model.predict_proba(sent).tolist()
