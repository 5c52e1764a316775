"""
A second real data set through a user's DAG (issue 28, deliver 4): scikit-learn's wine data (178 lots,
three cultivars; it ships inside the scikit-learn wheel), given what a warehouse table has (a DATE per
lot, a boolean, a field that appears late), loaded into the real PostgreSQL and run end to end by a
DAG written from the docs only (tests/integration/dags/wine_lots.py): extract -> profile -> train ->
deploy -> batch predict -> monitor, first with ``dag.test()``, then under a real scheduler.

What is asserted is what the user sees: row counts, holdout accuracy above the dummy baseline, the
model server's predictions equal to the batch predictions, and the data against its own reference =
no drift (the monitor skips).
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.harness import servers
from tests.ml import ml_path

pytestmark = pytest.mark.integration

DAGS = Path(__file__).resolve().parent / "dags"
DAG_ID = "wine_lots_model"
MODEL = "wine_cultivar"
LOGICAL = dt.datetime(2026, 1, 15, tzinfo=dt.UTC)
DS = "2026-01-15"
CULTIVARS = ("barolo", "grignolino", "barbera")  # the three Piedmont cultivars of the UCI data set
LOTS = 178


def wine_lots() -> list[dict[str, Any]]:
    """
    The wine data as warehouse rows: ``lot_id``, ``measured_on`` (DATE, three lots a day, in a seeded
    shuffled order, so every cultivar is measured throughout), ``is_organic`` (derived: alcohol above
    13 %), the 13 measurements, ``sulphites_mg_l`` (only lots measured in the last 40 % of the days
    carry it) and ``cultivar`` (text).
    """
    import numpy as np
    from sklearn.datasets import load_wine

    frame = load_wine(as_frame=True).frame
    frame.columns = [c.replace("/", "_") for c in frame.columns]
    order = np.random.default_rng(28).permutation(len(frame))
    start = dt.date(2025, 9, 1)
    rows = []
    for i, record in enumerate(frame.to_dict("records")):
        day = int(order[i]) // 3
        measurements = {k: float(v) for k, v in record.items() if k != "target"}
        rows.append(
            {
                "lot_id": 1000 + i,
                "measured_on": start + dt.timedelta(days=day),
                "is_organic": measurements["alcohol"] > 13.0,
                **measurements,
                "sulphites_mg_l": round(20 + 4 * measurements["color_intensity"], 1)
                if day >= 0.6 * (len(frame) // 3)
                else None,
                "cultivar": CULTIVARS[int(record["target"])],
            }
        )
    return rows


def load_into_postgres(server: servers.PostgresServer, rows: list[dict[str, Any]]) -> None:
    measurements = [k for k in rows[0] if k not in ("lot_id", "measured_on", "is_organic", "cultivar")]
    columns = ", ".join(f"{c} double precision" for c in measurements)
    with psycopg.connect(server.dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS wine_lots")
        conn.execute(
            f"CREATE TABLE wine_lots (lot_id integer PRIMARY KEY, measured_on date NOT NULL, "
            f"is_organic boolean NOT NULL, {columns}, cultivar text NOT NULL)"
        )
        names = list(rows[0])
        with conn.cursor() as cursor:
            cursor.executemany(
                f"INSERT INTO wine_lots ({', '.join(names)}) VALUES ({', '.join(['%s'] * len(names))})",
                [tuple(r[n] for n in names) for r in rows],
            )


@pytest.fixture(scope="module")
def warehouse(postgres_server: servers.PostgresServer) -> list[dict[str, Any]]:
    rows = wine_lots()
    assert len(rows) == LOTS and {r["cultivar"] for r in rows} == set(CULTIVARS)
    load_into_postgres(postgres_server, rows)
    return rows


def _connections(postgres_server: servers.PostgresServer, root: Path) -> dict[str, dict[str, Any]]:
    return {
        "wine_warehouse": {
            "conn_type": "mlops-postgres",
            "host": postgres_server.host,
            "port": postgres_server.port,
            "login": postgres_server.user,
            "password": postgres_server.password,
            "schema": postgres_server.database,
        },
        "wine_mlflow": {
            "conn_type": "mlops-mlflow",
            "host": "",
            "extra": {
                "tracking_uri": f"sqlite:///{root / 'mlflow.db'}",
                "artifact_location": (root / "mlartifacts").as_uri(),
            },
        },
    }


def _check_results(staging: Path, tracking_uri: str, rows: list[dict[str, Any]], log: Path) -> None:
    """What the user looks at after the run: profile, registry, predictions, server, drift report."""
    profile = json.loads((staging / "profiles" / "wine_lots" / DS / "profile.json").read_text())
    assert profile["rows"] == LOTS

    client = ml_path.mlflow_client(tracking_uri)
    champion = client.get_model_version_by_alias(MODEL, "champion")
    assert ml_path.registered_versions(client, MODEL) == [str(champion.version)]
    metrics = client.get_run(champion.run_id).data.metrics
    assert metrics["accuracy"] > metrics["baseline_accuracy"] + 0.2, metrics

    predictions = ml_path.read_dataset((staging / "predictions" / "wine_lots").as_uri())
    assert predictions.num_rows == LOTS
    batch = dict(zip(predictions["lot_id"].to_pylist(), predictions["prediction"].to_pylist(), strict=True))
    assert set(batch) == {r["lot_id"] for r in rows} and set(batch.values()) <= set(CULTIVARS)

    # A client of the model server sends the warehouse rows as JSON (dates as ISO text).
    from tests.serving.helpers import start_server, stop_server

    server = start_server(["--model-name", MODEL, "--tracking-uri", tracking_uri], log)
    try:
        inputs = [str(c["name"]) for c in server.get("/version").json()["inputs"]]
        body = {
            "dataframe_split": {
                "columns": inputs,
                "data": [[ml_path.json_value(r[c]) for c in inputs] for r in rows],
            }
        }
        response = server.post("/invocations", json=body)
        assert response.status_code == 200, response.text[:2000]
        served = dict(zip((r["lot_id"] for r in rows), response.json()["predictions"], strict=True))
    finally:
        stop_server(server)
    assert served == batch

    report = json.loads((staging / "monitoring" / "wine_lots" / DS / "report.json").read_text())
    drifted = {f["name"]: f.get("reasons") for f in report["features"] if f.get("drifted")}
    assert report["rows"] == LOTS and drifted == {} and not report["drift"], drifted
    assert not (report.get("accuracy") or {}).get("decayed"), report.get("accuracy")


def _load_dag() -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location("wine_lots_dag", DAGS / "wine_lots.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module.dag


def test_wine_lots_end_to_end_with_dag_test(
    warehouse: list[dict[str, Any]],
    postgres_server: servers.PostgresServer,
    airflow_db: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    staging = tmp_path / "staging"
    monkeypatch.setenv("AIRFLOW__MLOPS__STAGING_URI", staging.as_uri())
    # dag.test() finds the DAG in the DAGs folder's bundle (it serializes what it parses there)
    import airflow.settings

    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(DAGS))
    monkeypatch.setattr(airflow.settings, "DAGS_FOLDER", str(DAGS))  # the bundle reads it at import
    for conn_id, fields in _connections(postgres_server, tmp_path).items():
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(fields))
    run = _load_dag().test(logical_date=LOGICAL)
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert run.state == "success", states
    assert states == {
        "extract_lots": "success",
        "profile_lots": "success",
        "train_cultivar_model": "success",
        "deploy_if_better": "success",
        "predict_lots": "success",
        "monitor_lots": "skipped",  # no drift: nothing downstream, no retraining request
    }, states
    _check_results(staging, f"sqlite:///{tmp_path / 'mlflow.db'}", warehouse, tmp_path / "serve.log")


def test_wine_lots_end_to_end_under_the_scheduler(
    warehouse: list[dict[str, Any]], postgres_server: servers.PostgresServer, tmp_path: Path
) -> None:
    from tests.harness.scheduler import start_airflow

    dags = tmp_path / "dags"
    dags.mkdir()
    shutil.copy(DAGS / "wine_lots.py", dags / "wine_lots.py")
    staging = tmp_path / "staging"
    env = {
        f"AIRFLOW_CONN_{k.upper()}": json.dumps(v) for k, v in _connections(postgres_server, tmp_path).items()
    }
    env["AIRFLOW__MLOPS__STAGING_URI"] = staging.as_uri()
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    with start_airflow(tmp_path / "airflow", dags, env) as airflow:
        airflow.wait_for_dag(DAG_ID)
        run_id = airflow.trigger(DAG_ID, LOGICAL.isoformat())
        state = airflow.wait_for_run(DAG_ID, run_id, timeout=600)
        states = airflow.task_states(DAG_ID, run_id)
        assert state == "success", (states, airflow.tail())
    assert states["monitor_lots"] == "skipped" and all(
        s == "success" for t, s in states.items() if t != "monitor_lots"
    ), states
    _check_results(staging, f"sqlite:///{tmp_path / 'mlflow.db'}", warehouse, tmp_path / "serve.log")
