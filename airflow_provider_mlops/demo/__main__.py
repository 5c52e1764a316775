"""
The main job: the example lifecycle over simulated days on embedded defaults.

``python -m airflow_provider_mlops.demo [--days 14] [--home .demo] [--dags-folder example_dags]``;
``python -m airflow_provider_mlops.demo ui [--home .demo]`` (``./dev ui``) opens its Airflow and MLflow UIs.

It creates an Airflow home with a SQLite metadata DB, a local folder as object storage, SQLite
files as source database and warehouse, serves the simulated customer-profile API on 127.0.0.1,
registers the connections, and runs the example DAGs day after day through the provider. Once the
first champion exists it starts the model server (``python -m airflow_provider_mlops.serve``) on a
free loopback port; every later promotion deploys to it through the ``local_server`` target (reload,
then ``/version`` and a smoke prediction must match before the alias moves). At the end it prints
one line per day (with the version the server reports live, its predicted churn share for the
day's customers and the day's seconds), stops the server, says where the time went (setup, ETL,
monitor, training with the gated deploy, server start) and where to look next.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from airflow_provider_mlops.demo.home import AIRFLOW_PORT, MLFLOW_PORT


def _prepare_environment(home: Path, dags_folder: Path, ui_port: int = AIRFLOW_PORT) -> None:
    """Everything Airflow reads at import time: must run before the first airflow import."""
    from airflow_provider_mlops.demo.home import write_config

    # The settings go to home/airflow.cfg (not this process's environment): `./dev ui` and any
    # `AIRFLOW_HOME=.demo airflow ...` command afterwards see the Airflow the demo ran.
    write_config(home, dags_folder, port=ui_port)
    os.environ["AIRFLOW_HOME"] = str(home)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def _connections(home: Path, api_url: str, token: str) -> dict[str, dict[str, Any]]:
    return {
        "mlops_api": {
            "conn_type": "mlops-http",
            "host": api_url,
            "password": token,
            "extra": {"test_endpoint": "health", "timeout": 30},
        },
        "mlops_source_db": {"conn_type": "sqlite", "host": str(home / "source.db")},
        "mlops_warehouse": {"conn_type": "sqlite", "host": str(home / "warehouse.db")},
        "mlops_alerts": {"conn_type": "http", "host": f"{api_url}/alerts"},
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["ui"]:
        from airflow_provider_mlops.demo.ui import main as ui_main

        return ui_main(argv[1:])
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_mlops.demo",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--days", type=int, default=14, help="simulated days to run (default 14)")
    parser.add_argument(
        "--home", type=Path, default=Path(".demo"), help="AIRFLOW_HOME for the demo (default .demo)"
    )
    parser.add_argument(
        "--dags-folder", type=Path, default=Path("example_dags"), help="the example DAGs folder"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the previous demo state instead of starting afresh"
    )
    parser.add_argument(
        "--ui-port",
        type=int,
        default=AIRFLOW_PORT,
        help=f"the Airflow UI's port written to airflow.cfg for `./dev ui` and the report links (default {AIRFLOW_PORT})",
    )
    parser.add_argument(
        "--seed", type=int, default=42, help="the simulated world's seed (default 42; docs/monitoring.rst)"
    )
    args = parser.parse_args(argv)

    home = args.home.resolve()
    dags_folder = args.dags_folder.resolve()
    if not (dags_folder / "etl_daily.py").exists():
        parser.error(f"{dags_folder} has no etl_daily.py: run from the repository root or pass --dags-folder")
    if home.exists() and not args.keep:
        import shutil

        shutil.rmtree(home)
    _prepare_environment(home, dags_folder, args.ui_port)
    started = time.monotonic()

    from airflow_provider_mlops.demo.api import DEMO_TOKEN, ProfileApi, serve
    from airflow_provider_mlops.demo.simulate import World

    world = World(seed=args.seed)
    api = ProfileApi(world)
    server, api_url = serve(api)

    print(f"Airflow home: {home}\nProfile API:  {api_url}\nMigrating the metadata DB...", flush=True)
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)
    from airflow_provider_mlops.demo.home import RunRecords, store_connections

    # In the metadata DB, so the Connections page lists them (the API's port lives as long as the demo).
    store_connections(_connections(home, api_url, DEMO_TOKEN))

    sys.path.insert(0, str(dags_folder))
    import etl_daily  # type: ignore[import-not-found]
    import monitor_model  # type: ignore[import-not-found]
    import train_model  # type: ignore[import-not-found]

    # The demo runs each DAG once per day in this process: a failure should stop it at once, not
    # wait for the retry delays the DAGs declare for production.
    for module in (etl_daily, monitor_model, train_model):
        for task in module.dag.tasks:
            task.retries = 0

    from airflow_provider_mlops.demo.server import CONN_ID, DemoModelServer

    model_server = DemoModelServer(home, train_model.MODEL_NAME)
    store_connections({CONN_ID: model_server.connection()})
    records = RunRecords(home / "logs")
    try:
        with records.installed():
            return _run_days(
                args,
                home,
                world,
                api,
                model_server,
                (etl_daily, monitor_model, train_model),
                started,
                records,
            )
    finally:
        model_server.stop()
        server.shutdown()


def _run_days(
    args: Any,
    home: Path,
    world: Any,
    api: Any,
    model_server: Any,
    dags: tuple[Any, Any, Any],
    started: float,
    records: Any,
) -> int:
    import datetime as dt

    etl_daily, monitor_model, train_model = dags
    from airflow_provider_mlops.demo.simulate import write_activity

    rows: list[dict[str, Any]] = []
    # Where the time goes, per phase (printed at the end; the daily line has the day's total).
    spent: dict[str, float] = dict.fromkeys(("simulate", "etl", "monitor", "train", "server", "summary"), 0.0)
    clock = time.monotonic()

    def lap(phase: str) -> None:
        nonlocal clock
        now = time.monotonic()
        spent[phase] += now - clock
        clock = now

    for index in range(args.days):
        day_started = time.monotonic()
        day = world.day(index)
        write_activity(str(home / "source.db"), world, index)
        lap("simulate")
        # A manual run's data interval is the day before its logical date (CronDataIntervalTimetable).
        logical = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), tzinfo=dt.UTC)
        records.plan(
            "scheduled",
            f"Day {day} of the simulated world (data interval {day} to {day + dt.timedelta(days=1)}), run by "
            "the demo as the daily schedule would. The tasks ran in the demo's process (dag.test()).",
        )
        etl = etl_daily.dag.test(logical_date=logical)
        lap("etl")
        if etl.state != "success":
            print(f"The ETL run for {day} ended {etl.state}: see the task logs above.", file=sys.stderr)
            return 1
        records.plan(
            "asset_triggered",
            f"Day {day}: the warehouse activity table was loaded (the ETL's Asset event).",
            consume_from=(etl.dag_id, etl.run_id),
        )
        monitor = monitor_model.dag.test(logical_date=logical)
        check_state = _task_state(monitor, "request_retrain")  # success: retrain requested
        lap("monitor")
        retrained = promoted = False
        if check_state == "success":
            # The sensor emitted the churn_model_retrain Asset event: run what a scheduler would run.
            records.plan(
                "asset_triggered",
                f"Day {day}: the monitor asked for a retrain (its churn_model_retrain Asset event): "
                f"{_retrain_reason(home, logical)}.",
                consume_from=(monitor.dag_id, monitor.run_id),
            )
            train = train_model.dag.test(logical_date=logical)
            retrained = train.state == "success"
            promoted = (
                retrained and _task_state(train, "deploy_if_better") == "success" and _promoted(home, logical)
            )
            lap("train")
        if promoted and model_server.process is None:
            # The first champion: start the server on it; later promotions go through the target.
            model_server.start()
            _wire_target(train_model, model_server, home, day)  # waits for the server's /ping
            lap("server")
        rows.append(
            {
                **_day_summary(home, day, logical, etl.state),
                **_monitor_summary(home, logical, check_state),
                "retrained": "yes" if retrained else "",
                "promoted": "yes" if promoted else "",
                **_champion(),
                **_served(model_server, home, day),
            }
        )
        lap("summary")
        rows[-1]["seconds"] = f"{time.monotonic() - day_started:.1f}"
        _print_row(rows[-1], header=index == 0)
    if model_server.process is not None:
        print(
            f"\nModel server on {model_server.url}: {model_server.stop()}; its log: {model_server.log_path}"
        )
    elapsed = time.monotonic() - started
    drift_days = [r["day"] for r in rows if r["drift"] == "DRIFT"]
    promotions = [r["day"] for r in rows if r["promoted"]]
    print(
        f"\nDone: {args.days} day(s) in {elapsed:.0f} s. Drift on {len(drift_days)} day(s) {drift_days}; "
        f"promotions on {promotions}. Alerts received: {len(api.alerts)}."
    )
    print(f"  {recovery_line(rows)}")
    trainings = sum(1 for r in rows if r["retrained"])
    print(
        f"  Time: setup (metadata DB, DAG imports) {elapsed - sum(spent.values()):.0f} s, "
        f"ETL {spent['etl']:.0f} s, monitor {spent['monitor']:.0f} s, "
        f"training + gated deploy {spent['train']:.0f} s ({trainings} run(s)), "
        f"model server start {spent['server']:.0f} s, daily summary {spent['summary']:.0f} s, "
        f"simulated source data {spent['simulate']:.0f} s."
    )
    print(
        f"  Drift reports (HTML): {home / 'storage' / 'mlops_monitor_model' / 'check_drift_and_accuracy'}/*/drift_report/report.html"
    )
    print(f"  Warehouse (SQLite):   {home / 'warehouse.db'}")
    print(f"  Data lake (Delta):    {home / 'storage' / 'lake' / 'activity'}")
    print(f"  Task logs:            {home / 'logs'}")
    print(
        f"  Airflow + MLflow UI:  {_ui_command(home)}   (Airflow http://127.0.0.1:{args.ui_port}, "
        f"MLflow http://127.0.0.1:{MLFLOW_PORT}; no login: local demo)"
    )
    return 0


def _ui_command(home: Path) -> str:
    """The one command that opens this home's UIs: ``./dev ui`` for the default home."""
    default = (Path.cwd() / ".demo").resolve()
    return "./dev ui" if home == default else f"./dev ui --home {home}"


def recovery(
    rows: list[dict[str, Any]], *, tolerance: float = 0.02, baseline_days: int = 5
) -> dict[str, Any]:
    """
    Days from the first drift day until the champion's ROC AUC on that day's rows is back within
    ``tolerance`` of the mean of its last ``baseline_days`` pre-drift days (issue #26). ``days`` is
    None when the run has no drift day, no pre-drift AUC, or did not recover.
    """
    import datetime as dt

    def auc(row: dict[str, Any]) -> float | None:
        return float(row["champion_auc"]) if row.get("champion_auc") else None

    first = next((i for i, r in enumerate(rows) if r.get("drift") == "DRIFT"), None)
    if first is None:
        return {"days": None, "why": "no drift day in this run"}
    before = [a for a in (auc(r) for r in rows[:first]) if a is not None][-baseline_days:]
    if not before:
        return {"days": None, "why": "no pre-drift ROC AUC to compare with"}
    baseline = sum(before) / len(before)
    start = dt.date.fromisoformat(rows[first]["day"])
    for row in rows[first:]:
        value = auc(row)
        if value is not None and value >= baseline - tolerance:
            days = (dt.date.fromisoformat(row["day"]) - start).days
            return {"days": days, "baseline": baseline, "first_drift_day": start.isoformat(), "auc": value}
    return {"days": None, "baseline": baseline, "first_drift_day": start.isoformat(), "why": "not recovered"}


def recovery_line(rows: list[dict[str, Any]]) -> str:
    found = recovery(rows)
    if found["days"] is not None:
        return (
            f"Recovered in {found['days']} day(s): drift from {found['first_drift_day']}; the champion's ROC AUC "
            f"{found['auc']:.3f} vs {found['baseline']:.3f} before the drift (within 0.02)."
        )
    if "baseline" in found:
        return (
            f"Not recovered by the last day: drift from {found['first_drift_day']}; the champion's ROC AUC "
            f"did not come back within 0.02 of {found['baseline']:.3f}."
        )
    return f"Recovery: not measured ({found['why']})."


def _day_inputs(home: Path, day: Any, columns: list[str]) -> list[dict[str, Any]]:
    """The day's customers as model inputs (the columns the server's schema asks for)."""
    with sqlite3.connect(home / "warehouse.db") as conn:
        conn.row_factory = sqlite3.Row
        found = conn.execute(
            "SELECT * FROM activity a JOIN customers c ON c.customer_id = a.customer_id WHERE a.day = ?",
            (day.isoformat(),),
        ).fetchall()
    if not found:
        return []
    present = [c for c in columns if c in set(found[0].keys())]
    return [{c: row[c] for c in present} for row in found]


def _input_columns(model_server: Any) -> list[str]:
    inputs = model_server.version().get("inputs") or []
    return [str(i["name"]) for i in inputs]


def _wire_target(train_model: Any, model_server: Any, home: Path, day: Any) -> None:
    """From now on the deploy task deploys to the running server before it moves the alias."""
    from airflow_provider_mlops.demo.server import CONN_ID
    from airflow_provider_mlops.deployment.targets import LocalServerTarget

    smoke = _day_inputs(home, day, _input_columns(model_server))[:3]
    train_model.dag.get_task("deploy_if_better").targets = [
        LocalServerTarget(
            http_conn_id=CONN_ID,
            smoke_input={"dataframe_records": smoke},
            label="demo model server",
        )
    ]


def _served(model_server: Any, home: Path, day: Any) -> dict[str, Any]:
    """What the live server says: its ``/version`` and its predicted churn share for the day."""
    if model_server.process is None:
        return {"served": "-", "pred_churn": ""}
    served = model_server.version()
    records = _day_inputs(home, day, [str(i["name"]) for i in served.get("inputs") or []])
    predictions = model_server.predict(records) if records else []
    share = sum(1 for p in predictions if p in (1, "1", True)) / len(predictions) if predictions else 0.0
    return {"served": f"v{served.get('version')}", "pred_churn": f"{share:.3f}"}


def _task_state(run: Any, task_id: str) -> str | None:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        ti = (
            session.query(TaskInstance)
            .filter_by(dag_id=run.dag_id, run_id=run.run_id, task_id=task_id)
            .one_or_none()
        )
        return (
            str(ti.state.value if hasattr(ti.state, "value") else ti.state)
            if ti is not None and ti.state
            else None
        )


def _promoted(home: Path, logical: Any) -> bool:
    """Whether the deploy task promoted (its published latest.json names the day's new version)."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{home / 'mlflow.db'}")
    try:
        champion = client.get_model_version_by_alias("churn_model", "champion")
    except Exception:
        return False
    latest = max(client.search_model_versions("name='churn_model'"), key=lambda v: int(v.version))
    return str(champion.version) == str(latest.version)


def _champion() -> dict[str, Any]:
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{Path(os.environ['AIRFLOW_HOME']) / 'mlflow.db'}")
    try:
        version = client.get_model_version_by_alias("churn_model", "champion")
    except Exception:
        return {"champion": "-"}
    return {"champion": f"v{version.version}"}


def _monitor_summary(home: Path, logical: Any, state: str | None) -> dict[str, Any]:
    ds = logical.date().isoformat()
    path = (
        home
        / "storage"
        / "mlops_monitor_model"
        / "check_drift_and_accuracy"
        / ds
        / "drift_report"
        / "report.json"
    )
    if not path.exists():
        return {"drift": "bootstrap" if state == "success" else "-", "top_feature": "", "champion_auc": ""}
    report = json.loads(path.read_text())
    accuracy = report.get("accuracy") or {}
    verdict = "DRIFT" if report.get("drift") else "ok"
    top = (report.get("drifted_features") or [""])[0]
    if accuracy.get("decayed") and not top:
        top = f"({accuracy.get('metric')} decay)"
    f1 = accuracy.get("current")
    return {"drift": verdict, "top_feature": top, "champion_auc": f"{f1:.3f}" if f1 is not None else ""}


def _retrain_reason(home: Path, logical: Any) -> str:
    """Why the monitor asked for training, from its drift report (none: no champion yet)."""
    path = (
        home
        / "storage"
        / "mlops_monitor_model"
        / "check_drift_and_accuracy"
        / logical.date().isoformat()
        / "drift_report"
        / "report.json"
    )
    if not path.exists():
        return "no champion yet (bootstrap)"
    report = json.loads(path.read_text())
    reasons = []
    if report.get("drift"):
        reasons.append("drift in " + ", ".join(report.get("drifted_features") or []))
    accuracy = report.get("accuracy") or {}
    if accuracy.get("decayed"):
        reasons.append(
            f"{accuracy.get('metric')} decayed: {accuracy.get('reason') or accuracy.get('current')}"
        )
    return "; ".join(reasons) or "see the drift report"


def _day_summary(home: Path, day: Any, logical: Any, state: str) -> dict[str, Any]:
    storage = home / "storage" / "mlops_etl_daily"
    ds = logical.date().isoformat()

    def manifest_rows(task: str) -> int:  # the rows of the task's Delta table for the day
        from airflow_provider_mlops.hooks.s3 import ObjectStorageHook

        info = ObjectStorageHook(aws_conn_id=None).dataset_info(str(storage / task / ds))
        return int(info["rows"]) if info else 0

    with sqlite3.connect(home / "warehouse.db") as conn:
        loaded = conn.execute("SELECT count(*) FROM activity WHERE day = ?", (day.isoformat(),)).fetchone()[0]
        customers = conn.execute("SELECT count(*) FROM customers").fetchone()[0]
    return {
        "day": day.isoformat(),
        "state": state,
        "profiles_in": manifest_rows("extract_customers"),
        "activity_in": manifest_rows("extract_activity"),
        "activity_loaded": loaded,
        "customers": customers,
    }


def _print_row(row: dict[str, Any], *, header: bool) -> None:
    columns = [c for c in row if c != "state"]
    widths = {c: max(len(c), 10) for c in columns}
    if header:
        print(" | ".join(f"{c:>{widths[c]}}" for c in columns))
        print("-+-".join("-" * widths[c] for c in columns))
    print(" | ".join(f"{row[c]!s:>{widths[c]}}" for c in columns), flush=True)


if __name__ == "__main__":
    sys.exit(main())
