"""
Smoke test of an installation: run with the Python of an environment where the provider was
installed next to some Airflow 3.x (tox -e airflow-30 / airflow-31 / airflow-32 / airflow-oldest /
airflow-newest; tests/runtime/test_installs.py).

    python tests/runtime/smoke_install.py WORKDIR [REPORT.json]

In a fresh AIRFLOW_HOME under WORKDIR (SQLite metadata DB, DAGs serialized as the DAG processor would
do it): Airflow lists the provider, every example
DAG imports without error, and the example ETL runs with ``dag.test()`` on its embedded defaults (SQLite
source and warehouse, local staging, the demo's profile API) for one simulated day; the warehouse then
holds exactly that day's simulated rows (count and checksum); then the training example trains,
registers and promotes a first model on that day. Prints one JSON line with the versions
that were resolved (also written to REPORT.json when given). Plain Python with no pytest: the environments under test carry only the provider.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COLUMNS = ("customer_id", "day", "sessions", "minutes_used", "support_tickets", "payment_failures", "churned")


def _checksum(rows: list[tuple[object, ...]]) -> str:
    plain = sorted(tuple(v.item() if hasattr(v, "item") else v for v in row) for row in rows)  # type: ignore[attr-defined]
    return hashlib.sha256(repr(plain).encode()).hexdigest()


def main(workdir: Path, report_path: Path | None = None) -> int:
    # Everything fresh each time (an environment is reused across runs; its databases must not be).
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    home = workdir / "airflow"
    os.environ.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "example_dags"),
            "AIRFLOW__MLOPS__STAGING_URI": (workdir / "staging").as_uri(),
            "MLFLOW_DISABLE_TELEMETRY": "true",
        }
    )
    # The DAG processor's part, as in a deployment: on Airflow 3.0 `dag.test()` does not register the
    # DAGs' assets, and a task with an unregistered outlet fails ("inactive assets in its inlets or outlets").
    for step in (["db", "migrate"], ["dags", "reserialize"]):
        done = subprocess.run(
            [sys.executable, "-m", "airflow", *step], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            print(" ".join(step), done.stdout[-3000:], done.stderr[-3000:], file=sys.stderr)
            return 1

    from importlib.metadata import version

    from airflow.providers_manager import ProvidersManager

    providers = ProvidersManager().providers
    assert "airflow-provider-mlops" in providers, sorted(providers)

    sys.path.insert(0, str(ROOT))  # tests.airflow_compat: where this Airflow keeps the DagBag
    from tests.airflow_compat import dag_bag_class

    bag = dag_bag_class()(dag_folder=str(ROOT / "example_dags"))  # [core] load_examples is off above
    assert not bag.import_errors, bag.import_errors
    assert {"mlops_etl_daily", "mlops_monitor_model", "mlops_train_model"} <= set(bag.dag_ids), bag.dag_ids

    from airflow_provider_mlops.demo.api import DEMO_TOKEN, ProfileApi, serve
    from airflow_provider_mlops.demo.simulate import World, activity, write_activity

    world = World(customers=400, active_per_day=200)
    source, warehouse = workdir / "source.db", workdir / "warehouse.db"
    write_activity(str(source), world, 0)
    server, api_url = serve(ProfileApi(world))
    connections = {
        "mlops_api": {"conn_type": "mlops-http", "host": api_url, "password": DEMO_TOKEN},
        "mlops_alerts": {"conn_type": "mlops-http", "host": f"{api_url}/alerts"},
        "mlops_source_db": {"conn_type": "sqlite", "host": str(source)},
        "mlops_warehouse": {"conn_type": "sqlite", "host": str(warehouse)},
    }
    for conn_id, conn in connections.items():
        os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(conn)
    try:
        sys.path.insert(0, str(ROOT / "example_dags"))
        import etl_daily

        # Fail at the first error: the example's retries (30 s backoff) would only delay the verdict.
        for task in etl_daily.dag.tasks:
            task.retries = 0
        logical = dt.datetime.combine(world.day(0) + dt.timedelta(days=1), dt.time(0), tzinfo=dt.UTC)
        run = etl_daily.dag.test(logical_date=logical)
        assert run.state == "success", run.state
        with sqlite3.connect(warehouse) as conn:
            loaded = conn.execute(f"SELECT {', '.join(COLUMNS)} FROM activity").fetchall()
        expected = [tuple(r[c] for c in COLUMNS) for r in activity(world, 0)]
        assert len(loaded) == len(expected) == world.active_per_day, (len(loaded), len(expected))
        assert _checksum(loaded) == _checksum(expected), "warehouse rows differ from the simulated day"
        _check_training(home, logical)
    finally:
        server.shutdown()
    from importlib.metadata import PackageNotFoundError

    resolved: dict[str, str | None] = {}
    for name in (
        "apache-airflow-core",
        "apache-airflow-task-sdk",
        "pydantic",
        "fastapi",
        "svcs",
        "sqlalchemy",
        "numpy",
    ):
        try:
            resolved[name] = version(name)
        except PackageNotFoundError:  # an Airflow that does not depend on it
            resolved[name] = None
    report = json.dumps({"direct": _direct_dependencies(), "other": resolved}, sort_keys=True)
    if report_path is not None:
        report_path.write_text(report)
    print("SMOKE OK " + report)
    return 0


def _direct_dependencies() -> dict[str, dict[str, str | None]]:
    """
    The provider's requirements with the ``all`` extra (expanded by the build backend): name -> the
    declared lower bound (``>=``) and the version installed here.
    """
    from importlib.metadata import requires, version

    from packaging.requirements import Requirement

    found: dict[str, dict[str, str | None]] = {}
    for line in requires("airflow-provider-mlops") or []:
        req = Requirement(line)
        if req.marker is not None and not req.marker.evaluate({"extra": "all"}):
            continue
        lower = [spec.version for spec in req.specifier if spec.operator == ">="]
        found[req.name] = {"lower_bound": lower[0] if lower else None, "installed": version(req.name)}
    return found


def _check_training(home: Path, logical: dt.datetime) -> None:
    """
    The ML side of the bounds (scikit-learn, scipy, pandas, MLflow): the training example on the
    loaded day (feature pipeline, selection, halving search, MLflow registry on SQLite, promotion).
    """
    import train_model

    for task in train_model.dag.tasks:
        task.retries = 0
    run = train_model.dag.test(logical_date=logical)
    assert run.state == "success", run.state
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{home / 'mlflow.db'}")
    champion = client.get_model_version_by_alias("churn_model", "champion")
    assert int(champion.version) == 1, champion


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve() if len(sys.argv) > 2 else None))
