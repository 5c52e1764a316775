"""
The stack's demo data source (the ``demo-source`` service): the simulated business of
``airflow_provider_mlops.demo`` as real systems.

* ``DEMO_DAYS`` days of activity written into the source database (``DEMO_SOURCE_DSN``, the
  ``source`` database of the warehouse server; the ``mlops_source_db`` connection reads it);
* the customer-profile API (bearer token, cursor pagination) on ``0.0.0.0:8099`` for the
  ``mlops_api`` connection, with the alert inbox at ``/api/v1/alerts`` for ``mlops_alerts``.

Then trigger ``mlops_etl_daily`` for those days (logical dates 2026-01-02 ...), e.g.
``airflow dags backfill mlops_etl_daily -s 2026-01-02 -e 2026-01-08`` or from the UI.
"""

from __future__ import annotations

import os
import time
from typing import Any

from airflow_provider_mlops.demo.api import ProfileApi, serve
from airflow_provider_mlops.demo.simulate import World, activity

ACTIVITY_DDL = (
    "CREATE TABLE IF NOT EXISTS activity (customer_id BIGINT NOT NULL, day TEXT NOT NULL, "
    "event_time TIMESTAMPTZ NOT NULL, sessions BIGINT, minutes_used DOUBLE PRECISION, support_tickets BIGINT, "
    "payment_failures BIGINT, churned BIGINT, PRIMARY KEY (customer_id, day))"
)


def load_activity(dsn: str, world: World, days: int) -> int:
    """Write days ``0..days-1`` into ``activity`` (idempotent: each day's rows are replaced)."""
    import psycopg

    total = 0
    with psycopg.connect(dsn) as conn:
        conn.execute(ACTIVITY_DDL)
        for index in range(days):
            rows: list[dict[str, Any]] = activity(world, index)
            conn.execute("DELETE FROM activity WHERE day = %s", (world.day(index).isoformat(),))
            with conn.cursor() as cur:
                cur.executemany(
                    # The simulation's times are naive UTC text; the watermark compares timestamps.
                    "INSERT INTO activity VALUES (%(customer_id)s, %(day)s, (%(event_time)s || '+00')::timestamptz, "
                    "%(sessions)s, "
                    "%(minutes_used)s, %(support_tickets)s, %(payment_failures)s, %(churned)s)",
                    rows,
                )
            total += len(rows)
    return total


def _wait_for(dsn: str, timeout: float = 120.0) -> None:
    """The database container may still be initialising when this one starts."""
    import psycopg

    deadline = time.monotonic() + timeout
    while True:
        try:
            psycopg.connect(dsn, connect_timeout=3).close()
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(2)


def main() -> None:
    world = World(
        customers=int(os.environ.get("DEMO_CUSTOMERS", "4000")),
        active_per_day=int(os.environ.get("DEMO_ACTIVE_PER_DAY", "2500")),
    )
    days = int(os.environ.get("DEMO_DAYS", "14"))
    dsn = os.environ["DEMO_SOURCE_DSN"]
    _wait_for(dsn)
    rows = load_activity(dsn, world, days)
    print(f"demo-source: {rows} activity rows for {days} days from {world.start}", flush=True)
    _server, url = serve(ProfileApi(world, days=max(days, 60)), host="0.0.0.0", port=8099)  # noqa: S104
    print(f"demo-source: profile API on {url}", flush=True)
    while True:  # the API runs in a daemon thread
        time.sleep(3600)


if __name__ == "__main__":
    main()
