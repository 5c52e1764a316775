"""
The chaos harness's own parts, fast: the seeded plan, the verdict's comparison and the wire gate
against a real PostgreSQL (the whole run is tests/integration/test_chaos.py).
"""

from __future__ import annotations

import psycopg
import pytest

from tests.chaos import plan as P
from tests.chaos.verdict import compare, rows_lost_duplicated
from tests.chaos.wire import WireGate, terminate_client
from tests.harness import servers
from tests.harness.injectors import Injection


def test_the_plan_is_the_seeds_and_keeps_within_the_dags_retries() -> None:
    first = P.make_plan(6, 3, 10, {0, 2})
    again = P.make_plan(6, 3, 10, {0, 2})
    assert [(p.kind, p.day, p.moment, p.seconds) for p in first] == [
        (p.kind, p.day, p.moment, p.seconds) for p in again
    ]
    assert len({p.kind for p in first}) == 10  # dealt from a deck: no kind twice before all once
    long = P.make_plan(1, 14, 42, {0, 7})
    assert len(long) == 42
    for day in range(14):
        for dag, most in P._PER_RUN.items():
            assert sum(p.day == day and p.dag == dag for p in long) <= most
    assert all(p.day in {0, 7} for p in long if p.dag == P.TRAIN)
    assert [p.day for p in long if p.kind == "model_server_kill"] == [0]
    assert not [p for p in long if p.day == 0 and p.moment in P._NEEDS_A_CHAMPION]


def test_reported_only_fields_are_notes_everything_else_a_difference() -> None:
    clean = {
        "warehouse": {"activity": {"count": 600, "distinct_keys": 600, "sha256": "a"}},
        "lake": {"activity": {"count": 600, "distinct_keys": 600, "sha256": "b", "version": 3}},
        "registry": {"1": {"model_sha256": "x", "training_data_digest": "d1", "aliases": ["champion"]}},
    }
    chaos = {
        "warehouse": {"activity": {"count": 601, "distinct_keys": 600, "sha256": "c"}},
        "lake": {"activity": {"count": 600, "distinct_keys": 600, "sha256": "b", "version": 4}},
        "registry": {"1": {"model_sha256": "y", "training_data_digest": "d1", "aliases": []}},
    }
    # the served model's version is judged (only the lake table's version number is reported)
    clean["served"] = {"version": "2", "model_sha256": "m1"}
    chaos["served"] = {"version": "1", "model_sha256": "m2"}
    differences, notes = compare(clean, chaos)
    assert differences == [
        "registry.1.aliases: clean ['champion'] / chaos []",
        "served.version: clean '2' / chaos '1'",
        "warehouse.activity.count: clean 600 / chaos 601",
        "warehouse.activity.sha256: clean 'a' / chaos 'c'",
    ]
    assert notes == [
        "lake.activity.version: clean 3 / chaos 4",
        "registry.1.model_sha256: clean 'x' / chaos 'y'",
        "served.model_sha256: clean 'm1' / chaos 'm2'",
    ]
    assert rows_lost_duplicated(clean, chaos) == (0, 1)


def test_the_wire_gate_ends_the_matching_copy_in_flight(postgres_server: servers.PostgresServer) -> None:
    pg = postgres_server
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS chaos_gate")
        conn.execute("CREATE TABLE chaos_gate (id int)")
        conn.execute("INSERT INTO chaos_gate VALUES (1)")
    gate = WireGate(pg.port)
    gate.start()
    try:
        injection = Injection("pg_terminate", "COPY chaos_gate")
        gate.arm(
            lambda c: b"COPY" in c and b"chaos_gate" in c, lambda port: terminate_client(pg, port), injection
        )

        def load() -> None:
            with (
                psycopg.connect(pg.dsn.replace(f"port={pg.port}", f"port={gate.port}")) as conn,
                conn.cursor() as cur,
            ):
                with cur.copy("COPY chaos_gate (id) FROM STDIN") as copy:
                    for i in range(1000):
                        copy.write_row((i,))
                conn.commit()

        with pytest.raises(psycopg.OperationalError):
            load()
        assert injection.fired and "COPY chaos_gate" in injection.detail, injection
        # one shot: the next connection through the gate passes
        with psycopg.connect(pg.dsn.replace(f"port={pg.port}", f"port={gate.port}")) as conn:
            assert conn.execute("SELECT count(*) FROM chaos_gate").fetchone() == (1,)
    finally:
        gate.stop()
