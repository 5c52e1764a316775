"""
The simulated world (:mod:`airflow_provider_mlops.demo.simulate`: the demo's, or the chaos run's
small one) as the example DAGs see it, for the plain-Python lifecycle tests of retraining and decay.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_provider_mlops.demo.simulate import World, activity, current_profiles

if TYPE_CHECKING:
    import pandas as pd

#: the profile columns the warehouse joins to each activity row
PROFILE = ("plan", "region", "contract", "age", "monthly_charges", "tenure_months")


def examples() -> tuple[Any, Any]:
    """The example DAG modules ``train_model`` and ``monitor_model``, imported from example_dags/."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "example_dags"))
    try:
        import monitor_model
        import train_model
    finally:
        sys.path.pop(0)
    return train_model, monitor_model


def day_frame(world: World, index: int, as_of: int | None = None) -> pd.DataFrame:
    """Day ``index``'s activity joined with the profiles as of day ``as_of`` (default: that day)."""
    import pandas as pd

    profiles = current_profiles(world, index if as_of is None else as_of)
    rows = [{**r, **{k: profiles[r["customer_id"]][k] for k in PROFILE}} for r in activity(world, index)]
    return pd.DataFrame(rows).drop(columns="event_time")


def in_cohort(frame: pd.DataFrame) -> pd.Series:
    """The example training DAG's HOLDOUT cohort (``customer_id % 4 = 0``): never trained on."""
    return frame["customer_id"] % 4 == 0
