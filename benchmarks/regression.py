"""
The JSON of each benchmark run, and the warning when a ratio regresses against the committed one.

A run's JSON: ``{"meta": {...}, "results": {case: {...}}, "ratios": {name: value}}``. Every ratio is
"higher is better" (throughput against a baseline of the same run, speed-up or memory headroom
against another tool), so a regression is a ratio that fell by more than ``tolerance`` (20%)
below the committed baseline's (``benchmarks/results/baseline.json``). Only ratios present in both
are compared: a run of some groups (``--only``) checks only those. Absolute times and rows/s are
recorded but not compared: they move with the machine and its load, ratios much less.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
BASELINE = RESULTS / "baseline.json"
TOLERANCE = 0.2


@dataclass(frozen=True)
class Regression:
    name: str
    baseline: float
    current: float

    @property
    def change(self) -> float:
        """The relative change, negative for a drop (-0.25: 25% lower)."""
        return self.current / self.baseline - 1.0

    def message(self) -> str:
        return (
            f"WARNING: {self.name} regressed {-self.change:.0%}: {self.current:.3g} "
            f"against {self.baseline:.3g} in the committed baseline"
        )


def compare(
    current: dict[str, float], baseline: dict[str, float], tolerance: float = TOLERANCE
) -> list[Regression]:
    """The ratios of ``current`` more than ``tolerance`` below ``baseline``'s (common names only)."""
    if not 0 <= tolerance < 1:
        raise ValueError(f"tolerance must be in [0, 1), got {tolerance}")
    found = []
    for name in sorted(set(current) & set(baseline)):
        now, before = current[name], baseline[name]
        if not _usable(now) or not _usable(before) or before <= 0:
            continue
        if now < before * (1.0 - tolerance):
            found.append(Regression(name, float(before), float(now)))
    return found


def _usable(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def machine() -> dict[str, Any]:
    """What the numbers were measured on: CPU, cores, memory, load at the time."""
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        memory_kb = next(
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal:")
        )
    except (OSError, StopIteration):
        memory_kb = 0
    return {
        "cpu": cpu or platform.processor(),
        "cores": os.cpu_count(),
        "memory_gb": round(memory_kb / 1024**2, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def document(results: dict[str, Any], ratios: dict[str, float], meta: dict[str, Any]) -> dict[str, Any]:
    return {
        "meta": {"date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), **machine(), **meta},
        "ratios": dict(sorted(ratios.items())),
        "results": results,
    }


def default_path(now: dt.datetime | None = None) -> Path:
    stamp = (now or dt.datetime.now(dt.UTC)).strftime("%Y%m%dT%H%M%SZ")
    return RESULTS / f"run-{stamp}.json"


def load_ratios(path: Path) -> dict[str, float]:
    """The ratios of a run's JSON (empty when the file does not exist)."""
    if not path.exists():
        return {}
    data = json.loads(path.read_text())
    ratios = data.get("ratios")
    if not isinstance(ratios, dict):
        raise ValueError(f"{path} has no 'ratios' object: is it a benchmark run's JSON?")
    return {k: float(v) for k, v in ratios.items() if _usable(v)}


def merge_baseline(baseline: dict[str, Any] | None, run: dict[str, Any]) -> dict[str, Any]:
    """The baseline updated with a (possibly partial) run: its ratios and results replace the old ones."""
    merged = json.loads(json.dumps(baseline or {"meta": {}, "ratios": {}, "results": {}}))
    merged.setdefault("ratios", {}).update(run.get("ratios", {}))
    merged.setdefault("results", {}).update(run.get("results", {}))
    merged.setdefault("runs", []).append(run.get("meta", {}))
    merged["meta"] = run.get("meta", {})
    merged["ratios"] = dict(sorted(merged["ratios"].items()))
    return merged


def report(
    run: dict[str, Any], baseline_path: Path = BASELINE, tolerance: float = TOLERANCE
) -> list[Regression]:
    """Print a warning per regressed ratio; return them."""
    baseline = load_ratios(baseline_path)
    if not baseline:
        print(f"(no committed baseline at {baseline_path}: nothing to compare with)")
        return []
    # Ratios move with the size (fixed costs weigh more on small runs): compare like with like only.
    measured_at = json.loads(baseline_path.read_text()).get("meta", {}).get("rows")
    rows = run.get("meta", {}).get("rows")
    if measured_at and rows and measured_at != rows:
        print(
            f"(the baseline {baseline_path.name} was measured at {measured_at:,} rows, this run at "
            f"{rows:,}: ratios not compared)"
        )
        return []
    found = compare(run.get("ratios", {}), baseline, tolerance)
    common = len(set(run.get("ratios", {})) & set(baseline))
    for regression in found:
        print(regression.message())
    if not found:
        print(
            f"No ratio regressed by more than {tolerance:.0%} against {baseline_path.name} ({common} compared)"
        )
    return found
