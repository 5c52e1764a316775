"""Shared pieces of the training / deployment tests."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any


class FakeTI(SimpleNamespace):
    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


def task_context(tmp_path: Path) -> dict[str, Any]:
    ti = FakeTI(dag_id="train_dag", task_id="train", map_index=-1, pushed={})
    return {"ti": ti, "ds": "2026-01-08", "run_id": "manual__1", "logical_date": "2026-01-08T00:00:00+00:00"}
