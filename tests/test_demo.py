"""The README's main command, shortened: the demo bootstraps a champion on day one."""

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
    lines = [line for line in result.stdout.splitlines() if line.startswith("2026-01-0")]
    assert len(lines) == 2
    first = [c.strip() for c in lines[0].split("|")]
    assert first[0] == "2026-01-01" and "bootstrap" in first and first[-1] == "v1"
    assert "Done: 2 day(s)" in result.stdout
    assert (tmp_path / "demo" / "mlflow.db").exists()
