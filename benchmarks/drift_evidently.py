"""
The Evidently side of the drift benchmarks; runs in its own venv (Evidently 0.7.23 needs pandas < 3)
and imports nothing from the provider: ``python benchmarks/drift_evidently.py CASE '{json}'``.

Cases print one JSON line. ``check``: read the reference and current Parquet files, run the data
drift preset (Evidently's defaults), report each column's verdict. ``calibration``: the same on
generated pairs (see :mod:`benchmarks.drift_data`), verdicts only.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import drift_data


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _verdicts(snapshot: Any) -> dict[str, Any]:
    """Per column: drifted, value, method; and the dataset verdict, from the snapshot's metrics."""
    columns: dict[str, Any] = {}
    dataset = None
    for metric in snapshot.dict()["metrics"]:
        config = metric["config"]
        kind = config["type"].rsplit(":", 1)[-1]
        if kind == "ValueDrift":
            method, threshold, value = config["method"], float(config["threshold"]), float(metric["value"])
            # p-value tests drift below the threshold, distances at or above it (Evidently's rule)
            drifted = value < threshold if "p_value" in method else value >= threshold
            columns[config["column"]] = {"drifted": drifted, "value": value, "method": method}
        elif kind == "DriftedColumnsCount":
            dataset = metric["value"]["share"] >= float(config["drift_share"])
    return {"dataset_drift": dataset, "features": columns}


def _run(reference: Any, current: Any) -> dict[str, Any]:
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(
        numerical_columns=drift_data.NUMERIC, categorical_columns=drift_data.CATEGORICAL
    )
    snapshot = Report([DataDriftPreset()]).run(
        Dataset.from_pandas(current, data_definition=definition),
        Dataset.from_pandas(reference, data_definition=definition),
    )
    return _verdicts(snapshot)


def check(args: dict[str, Any]) -> dict[str, Any]:
    import pandas as pd

    start = time.perf_counter()
    reference = pd.read_parquet(args["reference"])
    current = pd.read_parquet(args["current"])
    result = _run(reference, current)
    result["seconds"] = round(time.perf_counter() - start, 3)
    return result


def calibration(args: dict[str, Any]) -> dict[str, Any]:
    verdicts = []
    sums = []
    for pair in range(int(args["pairs"])):
        seed = int(args["seed"]) + pair
        reference = drift_data.table(seed * 2, int(args["rows"]))
        current = drift_data.table(seed * 2 + 1, int(args["rows"]), {"mode": args.get("mode")})
        sums.append(drift_data.checksum(current))
        verdicts.append(_run(reference.to_pandas(), current.to_pandas()))
    return {"pairs": verdicts, "checksums": sums}


def main() -> None:
    name, args = sys.argv[1], json.loads(sys.argv[2])
    import evidently
    import pandas  # noqa: F401
    from evidently import Report  # noqa: F401
    from evidently.presets import DataDriftPreset  # noqa: F401

    imported = _rss_mb()
    start = time.perf_counter()
    result = {"check": check, "calibration": calibration}[name](args)
    result.setdefault("seconds", round(time.perf_counter() - start, 3))
    result["library"] = f"evidently {evidently.__version__}"
    result["rss_after_imports_mb"] = round(imported, 1)
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
