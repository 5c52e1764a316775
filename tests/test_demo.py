"""The README's main command, shortened: the demo bootstraps a champion on day one and serves it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_demo_runs_two_days_and_bootstraps_a_champion(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLOPS_"))}
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
    import json

    [report] = (tmp_path / "demo" / "storage" / "mlops_train_model" / "profile_training_data").glob(
        "*/profile/report.html"
    )
    summary = json.loads((report.parent / "profile.json").read_text())
    assert summary["rows"] > 0 and summary["column_summaries"], summary.keys()
    assert "churned" in report.read_text()


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
