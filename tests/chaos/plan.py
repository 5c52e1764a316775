"""
The fault plan: from ``random.Random(seed)``, K faults among the kinds of issue #30, each on a day
and at a moment (a statement on the PostgreSQL wire, an S3 or API request, a task while it runs).
The same seed gives the same plan; :func:`describe` prints it.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

ETL, MONITOR, TRAIN = "mlops_etl_daily", "mlops_monitor_model", "mlops_train_model"


def _copy_in(table: bytes) -> Callable[[bytes], bool]:
    return lambda c: b"COPY" in c and b"FROM STDIN" in c and table in c


def _copy_out(*needles: bytes, without: bytes | None = None) -> Callable[[bytes], bool]:
    """A read: ``COPY (query) TO STDOUT`` (psycopg's CSV or ADBC's binary) whose text has ``needles``."""
    return lambda c: (
        b"COPY (" in c
        and b"TO STDOUT" in c
        and all(n in c for n in needles)
        and (without is None or without not in c)
    )


# The statements a PostgreSQL fault can hit: name -> (DAG, matcher on the client's bytes).
PG_MOMENTS: dict[str, tuple[str, Callable[[bytes], bool]]] = {
    "mid-COPY into warehouse activity (load_activity)": (ETL, _copy_in(b"activity")),
    # the upsert streams into a temporary stage first, then merges
    "mid-COPY into warehouse customers (load_customers)": (
        ETL,
        _copy_in(b'"_mlops_stage" ("customer_id", "plan"'),
    ),
    "mid-extract of the source activity (extract_activity)": (ETL, _copy_out(b"event_time")),
    "mid-extract of the newest day (extract_newest_day)": (MONITOR, _copy_out(b"max(day)", without=b"% 4")),
    "mid-extract of the training rows (ingest_training_data)": (TRAIN, _copy_out(b"DESC LIMIT")),
    "mid-extract of the evaluation rows (ingest_evaluation_data)": (
        TRAIN,
        _copy_out(b"% 4 = 0", without=b"DESC LIMIT"),
    ),
}
# Requests through the S3 proxy: name -> (DAG, method, path fragment[, fragment it must not have]).
S3_MOMENTS: dict[str, tuple[str, ...]] = {
    "lake commit, PUT _delta_log/ (publish_activity_parquet)": (ETL, "PUT", "/lake/activity/_delta_log/"),
    "staging write of the ETL (PUT)": (ETL, "PUT", "/staging/mlops_etl_daily/"),
    "staging read of the ETL (GET)": (ETL, "GET", "/staging/mlops_etl_daily/"),
    "drift report write, PUT (check_drift_and_accuracy)": (
        MONITOR,
        "PUT",
        "/staging/mlops_monitor_model/check_drift_and_accuracy/",
    ),
    # the monitor logs its drift report to MLflow too (artifacts/drift/), before the day's training
    "MLflow artifact write, PUT (train_and_tune)": (TRAIN, "PUT", "/mlflow/", "/artifacts/drift/"),
    "training staging read (GET)": (TRAIN, "GET", "/staging/mlops_train_model/"),
}
# Tasks a worker kill or a scheduler restart can hit while they run.
TASK_MOMENTS: dict[str, tuple[str, str]] = {
    "extract_activity": (ETL, "extract_activity"),
    "clean_customers": (ETL, "clean_customers"),
    "load_customers": (ETL, "load_customers"),
    "load_activity": (ETL, "load_activity"),
    "publish_activity_parquet": (ETL, "publish_activity_parquet"),
    "load_customers_mongo": (ETL, "load_customers_mongo"),
    "check_drift_and_accuracy": (MONITOR, "check_drift_and_accuracy"),
    "ingest_training_data": (TRAIN, "ingest_training_data"),
    "train_and_tune": (TRAIN, "train_and_tune"),
    "deploy_if_better": (TRAIN, "deploy_if_better"),
}

KINDS: dict[str, str] = {
    "pg_terminate": "PostgreSQL backend terminated",
    "pg_restart": "PostgreSQL restarted (fast)",
    "s3_5xx": "S3 answers 503",
    "s3_reset": "S3 connection reset",
    "s3_slow": "S3 answers 5 s late",
    "http_5xx": "profile API answers 503",
    "http_429": "profile API answers 429",
    "http_cut": "profile API drops mid-body",
    "mongo_kill": "MongoDB SIGKILLed mid-write, restarted 0.5 s later",
    "model_server_kill": "model server SIGKILLed during a reload, restarted by its supervisor",
    "worker_kill": "worker SIGKILLed mid-task",
    "scheduler_restart": "scheduler restarted",
}
# Moments that exist only once a champion does (the first day's monitor has nothing to report on).
_NEEDS_A_CHAMPION = {"drift report write, PUT (check_drift_and_accuracy)"}
# Faults per DAG run and day: fewer than its retries (ETL 3, monitor and training 2).
_PER_RUN = {ETL: 3, MONITOR: 2, TRAIN: 2}
_ONCE_A_DAY = {"pg_restart", "mongo_kill", "model_server_kill", "scheduler_restart"}


@dataclass
class Planned:
    """One fault of the plan; ``injection`` is filled when it fires (``tests.harness.injectors.Injection``)."""

    kind: str
    day: int
    dag: str
    moment: str
    seconds: float = 0.0  # worker kill / scheduler restart: how long the task has run first
    injection: Any = None
    absorbed_by: str = ""
    how: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def task(self) -> str | None:
        """The task the moment names (``... (load_activity)`` or a task moment), if any."""
        if self.moment in TASK_MOMENTS:
            return TASK_MOMENTS[self.moment][1]
        match = re.search(r"\((\w+)\)$", self.moment)
        return match.group(1) if match else None

    @property
    def fired(self) -> bool:
        return self.injection is not None and self.injection.fired

    def as_dict(self) -> dict[str, Any]:
        inj = self.injection
        return {
            "kind": self.kind,
            "day": self.day,
            "dag": self.dag,
            "moment": self.moment,
            "fired": self.fired,
            "at": inj.at if inj is not None else None,
            "detail": inj.detail if inj is not None else "",
            "absorbed_by": self.absorbed_by,
            "how": self.how,
        }


def _moments(kind: str) -> list[tuple[str, str]]:
    """(moment, DAG) pairs a kind can hit."""
    if kind in ("pg_terminate", "pg_restart"):
        return [(m, dag) for m, (dag, _) in PG_MOMENTS.items()]
    if kind.startswith("s3_"):
        return [(m, dag) for m, (dag, *_rest) in S3_MOMENTS.items()]
    if kind.startswith("http_"):
        return [("GET /api/v1/customers (extract_customers)", ETL)]
    if kind == "mongo_kill":
        return [("a write on customers (load_customers_mongo)", ETL)]
    if kind == "model_server_kill":
        return [("POST /reload (deploy_if_better)", TRAIN)]
    return [(m, dag) for m, (dag, _) in TASK_MOMENTS.items()]


def make_plan(
    seed: int, days: int, faults: int, training_days: set[int], deploy_days: frozenset[int] = frozenset({0})
) -> list[Planned]:
    """
    ``faults`` faults over ``days`` days. Kinds are dealt from a shuffled deck (every kind once before
    any twice); a day gets at most as many faults per DAG run as the DAG has retries (3 ETL, 2 others) and at
    most one of each disruptive kind; training faults land on days that train (``training_days``), the
    model server's reload on days that deploy (``deploy_days``: the first model is always promoted; a
    later candidate may stay challenger, and then nothing reloads).
    """
    rng = random.Random(seed)
    deck: list[str] = []
    plan: list[Planned] = []
    per_run: Counter[tuple[int, str]] = Counter()
    attempts = 0
    tries = 0
    while len(plan) < faults and attempts < 10_000:
        attempts += 1
        if not deck:
            deck = list(KINDS)
            rng.shuffle(deck)
        kind = deck[-1]
        tries += 1
        if tries > 200:  # no day left for this kind (e.g. the reload: once, on a promoting day)
            deck.pop()
            tries = 0
            continue
        day = rng.randrange(days)
        options = [
            (m, dag)
            for m, dag in _moments(kind)
            if (dag != TRAIN or day in training_days) and not (day == 0 and m in _NEEDS_A_CHAMPION)
        ]
        if kind == "model_server_kill" and day not in deploy_days:
            options = []
        if not options:
            continue
        moment, dag = rng.choice(options)
        if per_run[(day, dag)] >= _PER_RUN[dag]:
            continue
        if kind in _ONCE_A_DAY and any(p.kind == kind and p.day == day for p in plan):
            continue
        if any(p.kind == kind and p.day == day and p.moment == moment for p in plan):
            continue
        deck.pop()
        tries = 0
        per_run[(day, dag)] += 1
        seconds = round(rng.uniform(0.3, 2.0), 1) if kind in ("worker_kill", "scheduler_restart") else 0.0
        plan.append(Planned(kind, day, dag, moment, seconds))
    plan.sort(key=lambda p: (p.day, p.dag, p.kind))
    return plan


def describe(plan: list[Planned]) -> str:
    return "\n".join(
        f"  day {p.day + 1}: {p.kind:<18} {p.moment}" + (f" after {p.seconds:.1f} s" if p.seconds else "")
        for p in plan
    )
