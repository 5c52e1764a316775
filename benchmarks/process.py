"""Run one benchmark case in a fresh process and read its result: the JSON on its last stdout line."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


class CaseFailed(RuntimeError):
    """The case's process exited with an error; ``stderr`` holds what it printed."""

    def __init__(self, label: str, stderr: str) -> None:
        super().__init__(f"case {label} failed:\n{stderr[-4000:]}")
        self.stderr = stderr


def run_process(argv: list[str], *, label: str, timeout: int, quiet_airflow: bool = True) -> dict[str, Any]:
    """
    Run ``argv`` from the project's root (importable as ``benchmarks``) and return the JSON object
    it printed last; :class:`CaseFailed` when it exits non-zero.
    """
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if quiet_airflow:
        env["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "WARNING"
    proc = subprocess.run(
        argv, capture_output=True, text=True, cwd=ROOT, env=env, timeout=timeout, check=False
    )
    if proc.returncode != 0:
        raise CaseFailed(label, proc.stderr)
    return json.loads(proc.stdout.strip().splitlines()[-1])
