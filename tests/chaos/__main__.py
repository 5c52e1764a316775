"""
``python -m tests.chaos --days N --seed S [--executor local|celery] [--faults K] [--out DIR]``
(``./dev chaos ...``): the example lifecycle for N simulated days under K faults planned from the
seed, then the same days clean on a fresh system, then the verdict (docs/reliability.md). Exit code 1
on any difference or a run that did not succeed; the result as JSON in ``DIR/result.json``.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from airflow_provider_mlops.demo.simulate import World
from tests.chaos import verdict as V
from tests.chaos.plan import describe, make_plan
from tests.chaos.system import System, start_servers


def run(
    *, days: int, seed: int, executor: str, faults: int, out: Path, customers: int = 400, active: int = 200
) -> dict[str, Any]:
    started = time.monotonic()
    # The drift day falls inside the run (the 8th day of a long run, the last day of a short one), so
    # training happens on two days: the first (no champion yet) and the drift day.
    drift_day = min(7, days - 1)
    world = World(customers=customers, active_per_day=active, drift_day=drift_day, seed=seed)
    plan = make_plan(seed, days, faults, {0, drift_day})
    print(
        f"chaos: {days} day(s), seed {seed}, {executor} executor, {len(plan)} fault(s) planned:", flush=True
    )
    print(describe(plan), flush=True)
    out.mkdir(parents=True, exist_ok=True)
    runs: dict[str, Any] = {}
    with start_servers(out, executor) as srv:
        for name, faults_of in (("chaos", plan), ("clean", [])):
            phase = time.monotonic()
            with System(srv, name, world, days, executor) as system:
                print(f"{name}: system up in {time.monotonic() - phase:.0f} s", flush=True)
                results = []
                for index in range(days):
                    result = system.run_day(index, [p for p in faults_of if p.day == index])
                    results.append(result)
                    print(
                        f"{name}: day {index + 1} {result.day} {result.seconds:.0f} s "
                        f"{result.states} drift={result.verdict.get('drift')} {result.decision}"
                        + (f" ERROR {result.error}" if result.error else ""),
                        flush=True,
                    )
                    if result.error:
                        break
                snap = V.snapshot(system, results)
            runs[name] = {"days": results, "snapshot": snap, "seconds": time.monotonic() - phase}
    chaos, clean = runs["chaos"], runs["clean"]
    V.absorb(plan, chaos["days"])
    differences, notes = V.compare(clean["snapshot"], chaos["snapshot"])
    errors = [
        f"{name} day {d.index + 1}: {d.error}" for name, r in runs.items() for d in r["days"] if d.error
    ]
    lost, duplicated = V.rows_lost_duplicated(clean["snapshot"], chaos["snapshot"])
    fired = sum(p.fired for p in plan)
    summary = {
        "days": days,
        "seed": seed,
        "executor": executor,
        "faults_planned": len(plan),
        "faults_fired": fired,
        "tasks_retried": V.retried_tasks(chaos["days"]),
        "rows_lost": lost,
        "rows_duplicated": duplicated,
        "differences": len(differences),
        "failed_runs": len(errors),
        "seconds": round(time.monotonic() - started),
        "chaos_seconds": round(chaos["seconds"]),
        "clean_seconds": round(clean["seconds"]),
    }
    return {
        "summary": summary,
        "faults": [p.as_dict() for p in plan],
        "differences": differences,
        "notes": notes,
        "errors": errors,
        "chaos": chaos["snapshot"],
        "clean": clean["snapshot"],
        "tries": {name: [t for d in r["days"] for t in d.tries] for name, r in runs.items()},
        "table": V.table(plan),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__)
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--executor", choices=("local", "celery"), default="local")
    parser.add_argument("--faults", type=int, default=None, help="faults to inject (default 3 per day)")
    parser.add_argument("--out", type=Path, default=None, help="folder for result.json and the logs")
    args = parser.parse_args(argv)

    def stop(signum: int, frame: Any) -> None:
        # SIGTERM (a CI timeout, Ctrl-C from a wrapper) unwinds the context managers: every server
        # and Airflow component started is stopped, none is left running
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    out = (args.out or Path(tempfile.mkdtemp(prefix="mlops-chaos-"))).resolve()
    faults = args.faults if args.faults is not None else 3 * args.days
    result = run(days=args.days, seed=args.seed, executor=args.executor, faults=faults, out=out)
    (out / "result.json").write_text(json.dumps(result, indent=1, default=str))
    s = result["summary"]
    print("\nFaults:\n" + result["table"])
    print("\nDifferences (chaos run against the clean run):")
    print("\n".join(f"  {d}" for d in result["differences"]) or "  none")
    if result["notes"]:
        print(
            "Reported, not judged (Delta versions may move after a retried commit; model files differ by skops zip names):"
        )
        print("\n".join(f"  {n}" for n in result["notes"]))
    for error in result["errors"]:
        print(f"  run did not succeed: {error}")
    print(
        f"\nSummary: faults injected {s['faults_fired']}/{s['faults_planned']}, tasks retried "
        f"{s['tasks_retried']}, rows lost {s['rows_lost']}, rows duplicated {s['rows_duplicated']}, "
        f"differences {s['differences']}, runs failed {s['failed_runs']} ({s['seconds']} s: chaos "
        f"{s['chaos_seconds']} s, clean {s['clean_seconds']} s). Result: {out / 'result.json'}"
    )
    return 1 if s["differences"] or s["failed_runs"] else 0


if __name__ == "__main__":
    sys.exit(main())
