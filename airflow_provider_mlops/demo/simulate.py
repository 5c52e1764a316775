"""
A deterministic customer-churn world for the demo: profiles behind an HTTP API and daily activity
in a SQL database, with missing values, outliers, categorical columns and, from ``drift_day`` on, a
shifted distribution and a changed label relation.

Everything is a pure function of (seed, day), so regenerating a day gives identical rows.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from dataclasses import dataclass
from typing import Any

PLANS = ("free", "basic", "pro", "business")
REGIONS = ("eu", "na", "apac", "latam")
CONTRACTS = ("monthly", "annual")


@dataclass(frozen=True)
class World:
    """Parameters of the simulated business."""

    start: dt.date = dt.date(2026, 1, 1)
    customers: int = 4000
    active_per_day: int = 2500
    drift_day: int = 7  # 0-based: the 8th day is the first drifted one
    seed: int = 42

    def day(self, index: int) -> dt.date:
        return self.start + dt.timedelta(days=index)

    def index(self, day: dt.date) -> int:
        return (day - self.start).days

    def drifted(self, index: int) -> bool:
        return index >= self.drift_day


def _rng(world: World, *key: int) -> Any:
    import numpy as np

    return np.random.default_rng([world.seed, *key])


def profiles(world: World) -> list[dict[str, Any]]:
    """Every customer's profile as of the start (the API's first full load)."""
    rng = _rng(world, 0)
    n = world.customers
    plan = rng.choice(PLANS, size=n, p=[0.35, 0.3, 0.25, 0.1])
    region = rng.choice(REGIONS, size=n, p=[0.35, 0.35, 0.2, 0.1])
    contract = rng.choice(CONTRACTS, size=n, p=[0.6, 0.4])
    age = rng.normal(41, 12, size=n).clip(18, 90).round()
    base_charge = {"free": 0.0, "basic": 19.0, "pro": 49.0, "business": 199.0}
    charges = [base_charge[p] + float(v) for p, v in zip(plan, rng.gamma(2.0, 6.0, size=n), strict=True)]
    tenure = rng.integers(1, 72, size=n)
    missing_age = rng.random(n) < 0.05
    outlier = rng.random(n) < 0.01
    start = dt.datetime.combine(world.start, dt.time(0, 0), tzinfo=dt.UTC)
    rows = []
    for i in range(n):
        rows.append(
            {
                "customer_id": i + 1,
                "plan": str(plan[i]),
                "region": str(region[i]),
                "contract": str(contract[i]),
                "age": None if missing_age[i] else int(age[i]),
                "monthly_charges": round(charges[i] * (25 if outlier[i] else 1), 2),
                "tenure_months": int(tenure[i]),
                "updated_at": (start + dt.timedelta(minutes=int(i % 1440))).isoformat(),
            }
        )
    return rows


def profile_updates(world: World, index: int) -> list[dict[str, Any]]:
    """Profiles changed on day ``index`` (all of them on day 0): plan upgrades, charge changes."""
    base = profiles(world)
    if index == 0:
        return base
    rng = _rng(world, 1, index)
    chosen = rng.choice(world.customers, size=world.customers // 20, replace=False)
    day_start = dt.datetime.combine(world.day(index), dt.time(0, 0), tzinfo=dt.UTC)
    out = []
    for k, i in enumerate(sorted(int(c) for c in chosen)):
        row = dict(base[i])
        row["tenure_months"] += index // 30
        if world.drifted(index):
            # A price increase after the drift day: charges move up for everyone touched.
            row["monthly_charges"] = round(row["monthly_charges"] * 1.3 + 5, 2)
        row["plan"] = PLANS[min(PLANS.index(row["plan"]) + int(rng.random() < 0.3), len(PLANS) - 1)]
        row["updated_at"] = (day_start + dt.timedelta(seconds=30 * k)).isoformat()
        out.append(row)
    return out


def current_profiles(world: World, index: int) -> dict[int, dict[str, Any]]:
    """The profile of every customer as of the end of day ``index``."""
    state = {p["customer_id"]: p for p in profiles(world)}
    for day in range(1, index + 1):
        for row in profile_updates(world, day):
            state[row["customer_id"]] = row
    return state


def activity(world: World, index: int) -> list[dict[str, Any]]:
    """Day ``index``'s activity rows with the churn label."""
    import numpy as np

    rng = _rng(world, 2, index)
    state = current_profiles(world, index)
    ids = np.sort(rng.choice(world.customers, size=world.active_per_day, replace=False)) + 1
    drifted = world.drifted(index)
    day = world.day(index)
    day_start = dt.datetime.combine(day, dt.time(0, 0), tzinfo=dt.UTC)
    sessions = rng.poisson(6, size=ids.size)
    minutes = rng.gamma(2.0, 25.0, size=ids.size)
    if drifted:
        minutes = minutes * 0.45  # usage collapses after the drift day
    tickets = rng.poisson(0.6 if not drifted else 1.1, size=ids.size)
    failures = rng.binomial(2, 0.08, size=ids.size)
    missing_minutes = rng.random(ids.size) < 0.04
    noise = rng.logistic(size=ids.size)
    rows = []
    for k, cid in enumerate(ids):
        p = state[int(cid)]
        charges = min(p["monthly_charges"], 400.0)
        if not drifted:
            score = (
                -1.2
                + 1.6 * failures[k]
                + 0.9 * tickets[k]
                - 0.03 * minutes[k]
                + (0.9 if p["contract"] == "monthly" else -0.8)
                + (0.6 if p["plan"] == "free" else 0.0)
                - 0.02 * p["tenure_months"]
            )
        else:
            # The label relation changes: price sensitivity dominates, usage no longer protects.
            score = (
                -3.2
                + 1.2 * failures[k]
                + 0.2 * tickets[k]
                + 0.035 * charges
                + (1.6 if p["region"] in ("na", "latam") else -0.6)
                + (0.4 if p["contract"] == "monthly" else -0.2)
                - 0.01 * p["tenure_months"]
            )
        rows.append(
            {
                "customer_id": int(cid),
                "day": day.isoformat(),
                # SQLite's own datetime format (UTC): text that sorts and compares as time does.
                "event_time": (day_start + dt.timedelta(seconds=int(k * 86400 / ids.size))).strftime(
                    "%Y-%m-%d %H:%M:%S"
                ),
                "sessions": int(sessions[k]),
                "minutes_used": None if missing_minutes[k] else round(float(minutes[k]), 1),
                "support_tickets": int(tickets[k]),
                "payment_failures": int(failures[k]),
                "churned": int(score + noise[k] > 0),
            }
        )
    return rows


ACTIVITY_DDL = (
    "CREATE TABLE IF NOT EXISTS activity (customer_id INTEGER NOT NULL, day TEXT NOT NULL, event_time TEXT NOT NULL, "
    "sessions INTEGER, minutes_used REAL, support_tickets INTEGER, payment_failures INTEGER, churned INTEGER, "
    "PRIMARY KEY (customer_id, day))"
)


def write_activity(path: str, world: World, index: int) -> int:
    """Put day ``index``'s activity into the SQLite source database (idempotent)."""
    rows = activity(world, index)
    with sqlite3.connect(path) as conn:
        conn.execute(ACTIVITY_DDL)
        conn.execute("DELETE FROM activity WHERE day = ?", (world.day(index).isoformat(),))
        conn.executemany(
            "INSERT INTO activity VALUES (:customer_id, :day, :event_time, :sessions, :minutes_used, "
            ":support_tickets, :payment_failures, :churned)",
            rows,
        )
    return len(rows)
