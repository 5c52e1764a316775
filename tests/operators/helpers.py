"""Shared pieces of the training / deployment tests."""

from __future__ import annotations

import itertools
from pathlib import Path
from types import SimpleNamespace
from typing import Any


class FakeTI(SimpleNamespace):
    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


_RUNS = itertools.count(1)


def task_context(tmp_path: Path) -> dict[str, Any]:
    """
    The context of a new DAG run's task (its own run_id: a training registers a new version); pass
    the same context again to act as a retry of that task.
    """
    ti = FakeTI(dag_id="train_dag", task_id="train", map_index=-1, pushed={})
    run_id = f"manual__{next(_RUNS)}"
    return {"ti": ti, "ds": "2026-01-08", "run_id": run_id, "logical_date": "2026-01-08T00:00:00+00:00"}


_MODEL_KEYS = {
    "task": "task",
    "estimator": "estimator",
    "estimator_params": "params",
    "candidates": "candidates",
}
_DATA_KEYS = {
    "split_strategy": "split",
    "time_column": "time_column",
    "test_size": "test_size",
    "seed": "seed",
    "max_rows": "max_rows",
    "window": "window",
    "profile_data": "profile",
}


def train_kwargs(**kwargs: Any) -> dict[str, Any]:
    """
    TrainModelOperator arguments from the flat names test helpers pass around (``estimator=``,
    ``profile_data=``...): those grouped into ``model=Model(...)`` and ``data=TrainingData(...)``.
    """
    from airflow_provider_mlops.ml.specs import Model, TrainingData

    model = {new: kwargs.pop(old) for old, new in _MODEL_KEYS.items() if old in kwargs}
    data = {new: kwargs.pop(old) for old, new in _DATA_KEYS.items() if old in kwargs}
    if model:
        kwargs["model"] = Model(**model)
    if data:
        kwargs["data"] = TrainingData(**data)
    return kwargs
