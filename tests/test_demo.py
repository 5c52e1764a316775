"""The README's main command, shortened: the demo bootstraps a champion on day one and serves it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_demo_runs_two_days_and_bootstraps_a_champion(tmp_path: Path) -> None:
    import datetime as dt

    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLOPS_"))}
    began = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "airflow_provider_mlops.demo",
            "--days",
            "2",
            "--home",
            str(tmp_path / "demo"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout.splitlines()
    header = [c.strip() for c in next(line for line in out if line.split("|")[0].strip() == "day").split("|")]
    lines = [line for line in out if line.startswith("2026-01-0")]
    assert len(lines) == 2
    days = [dict(zip(header, (c.strip() for c in line.split("|")), strict=True)) for line in lines]
    first = days[0]
    assert first["day"] == "2026-01-01" and first["drift"] == "bootstrap" and first["champion"] == "v1"
    # The model server started on the first champion: its live /version and a prediction from it.
    for day in days:
        assert day["served"] == day["champion"], day
        assert 0.0 <= float(day["pred_churn"]) <= 1.0, day
    assert "Model server on http://127.0.0.1:" in result.stdout and "stopped cleanly" in result.stdout
    assert "Done: 2 day(s)" in result.stdout
    assert (tmp_path / "demo" / "mlflow.db").exists()
    # The training day profiled the rows it learnt from: a report and its JSON summary, per logical date.
    [report] = (tmp_path / "demo" / "storage" / "mlops_train_model" / "profile_training_data").glob(
        "*/profile/report.html"
    )
    summary = json.loads((report.parent / "profile.json").read_text())
    assert summary["rows"] > 0 and summary["column_summaries"], summary.keys()
    assert "churned" in report.read_text()
    _check_airflow_home(tmp_path / "demo", result.stdout, began)


def _check_airflow_home(home: Path, stdout: str, began: object) -> None:
    """#27 Deliver 1: the home is what `./dev ui` opens; its records say when and why each run ran."""
    import configparser
    import datetime as dt
    import sqlite3

    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(home / "airflow.cfg")
    assert Path(cfg["core"]["dags_folder"]) == ROOT / "example_dags"
    assert cfg["core"]["load_examples"] == "False"
    assert cfg["mlops"]["staging_uri"] == (home / "storage").as_uri()
    assert cfg["logging"]["base_log_folder"] == str(home / "logs")
    assert f"./dev ui --home {home}" in stdout
    with sqlite3.connect(home / "airflow.db") as db:
        connections = {row[0] for row in db.execute("SELECT conn_id FROM connection")}
        runs = db.execute(
            "SELECT r.id, r.dag_id, r.run_id, r.run_type, r.start_date, r.end_date, n.content "
            "FROM dag_run r LEFT JOIN dag_run_note n ON n.dag_run_id = r.id ORDER BY r.id"
        ).fetchall()
        consumed = dict(db.execute("SELECT dag_run_id, count(*) FROM dagrun_asset_event GROUP BY dag_run_id"))
        tis = db.execute("SELECT dag_id, run_id, task_id, try_number FROM task_instance").fetchall()
    assert connections >= {
        "mlops_api",
        "mlops_source_db",
        "mlops_warehouse",
        "mlops_alerts",
        "mlops_model_server",
    }
    types = [(dag_id, run_type) for _, dag_id, _, run_type, *_ in runs]
    assert types == [
        ("mlops_etl_daily", "scheduled"),
        ("mlops_monitor_model", "asset_triggered"),
        ("mlops_train_model", "asset_triggered"),
        ("mlops_etl_daily", "scheduled"),
        ("mlops_monitor_model", "asset_triggered"),
    ], types
    for run_pk, dag_id, run_id, run_type, start, end, note in runs:
        started, ended = dt.datetime.fromisoformat(start), dt.datetime.fromisoformat(end)
        # real wall-clock times (dag.test() alone starts a run at its simulated logical date)
        assert began <= started <= ended and (ended - started).total_seconds() < 300, (run_id, start, end)
        assert note and "Day 2026-01-0" in note, (run_id, note)
        if run_type == "asset_triggered":
            assert consumed.get(run_pk) == 1 and "Asset event of " in note, (run_id, note)
    assert "no champion yet (bootstrap)" in runs[2][6]
    # every task attempt has its log file where the Airflow UI reads it
    assert len(tis) >= 14
    for dag_id, run_id, task_id, try_number in tis:
        log = (
            home
            / "logs"
            / f"dag_id={dag_id}"
            / f"run_id={run_id}"
            / f"task_id={task_id}"
            / f"attempt={try_number}.log"
        )
        lines = log.read_text().splitlines()
        assert lines and all(json.loads(line)["event"] is not None for line in lines), log


def test_recovery_counts_the_days_from_the_first_drift_until_the_auc_is_back() -> None:
    """#26 item 4: 'recovered in N day(s)', against the mean of the last five pre-drift days."""
    from airflow_provider_mlops.demo.__main__ import recovery, recovery_line

    def day(i: int, drift: str, auc: str) -> dict:
        return {"day": f"2026-01-{i:02d}", "drift": drift, "champion_auc": auc}

    before = [day(1, "bootstrap", "")] + [
        day(i, "ok", a) for i, a in zip(range(2, 8), ["0.70", "0.78", "0.78", "0.79", "0.77", "0.78"])
    ]
    # the mean of days 3-7 is 0.78: 0.765 is back within 0.02, 0.755 is not
    after = [day(8, "DRIFT", "0.533"), day(9, "DRIFT", "0.755"), day(10, "ok", "0.765")]
    assert recovery(before + after)["days"] == 2
    assert recovery([*before, day(8, "DRIFT", "0.533"), day(9, "ok", "0.77")])["days"] == 1
    assert "Recovered in 1 day(s): drift from 2026-01-08" in recovery_line(
        [*before, day(8, "DRIFT", "0.5"), day(9, "ok", "0.77")]
    )
    assert recovery(before + after[:2])["days"] is None
    assert "Not recovered" in recovery_line(before + after[:2])
    assert recovery(before)["why"] == "no drift day in this run"
