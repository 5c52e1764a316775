"""
The data profile benchmark: this provider's profiler (``airflow_provider_mlops.ml.eda``) against
skrub's ``TableReport`` and ydata-profiling (minimal mode and default) on the same 1M rows x 25
columns (20 numeric, 5 categorical) Parquet file, each in its own process, time and peak RSS.

skrub and ydata-profiling run in their own venv (``.tox/eda-bench``, built with uv on first use):
ydata-profiling pins pandas < 3 and other versions the provider's test env does not share.

``python -m benchmarks.profile [--rows N] [--only ours,skrub,ydata_minimal,ydata_default]``
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.process import CaseFailed, run_process

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".tox" / "eda-bench"
RSS_LIMIT_MB = 300.0
# ydata-profiling 4.18 imports pkg_resources, which setuptools 81 removed.
OTHERS = {"skrub": "skrub==0.11.*", "ydata": "ydata-profiling==4.18.*", "setuptools": "setuptools<81"}


def generate(path: Path, rows: int) -> None:
    """20 numeric columns (normal, skewed, ints, with NaN) and 5 categorical (2 to 5,000 values)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(11)
    writer = None
    chunk = 100_000
    words = np.array([f"cat_{i}" for i in range(5_000)])
    for offset in range(0, rows, chunk):
        n = min(chunk, rows - offset)
        base = rng.normal(size=n)
        columns: dict[str, Any] = {}
        for i in range(20):
            if i % 4 == 0:
                values = rng.normal(50, 10, n) + base * i
            elif i % 4 == 1:
                values = rng.gamma(2, 10, n)
            elif i % 4 == 2:
                values = rng.integers(0, 1000, n).astype(np.float64)
            else:
                values = rng.lognormal(0, 1, n)
            values[rng.random(n) < 0.02] = np.nan
            columns[f"num_{i:02d}"] = pa.array(values, from_pandas=True)
        for i, size in enumerate((2, 5, 20, 300, 5_000)):
            picked = words[rng.integers(0, size, n)]
            columns[f"cat_{i}"] = pa.array(np.where(rng.random(n) < 0.01, None, picked).tolist(), pa.string())
        columns["cat_0"] = pa.array(np.where(base > 0, "yes", "no").tolist(), pa.string())
        table = pa.table(columns)
        if writer is None:
            writer = pq.ParquetWriter(path, table.schema, compression="zstd")
        writer.write_table(table, row_group_size=chunk)
    assert writer is not None
    writer.close()


# --------------------------------------------------------------------------------------------------
# the cases (each runs in a fresh process: python -m benchmarks.profile case NAME DATA OUT)
# --------------------------------------------------------------------------------------------------
def _case(name: str, data: str, out: str) -> dict[str, Any]:
    t0 = time.perf_counter()
    if name == "read":  # the baseline: the same imports and the same two reads, no statistics
        from airflow_provider_mlops.hooks.s3 import ObjectStorageHook
        from airflow_provider_mlops.ml.eda import READ_BATCH_SIZE

        storage = ObjectStorageHook(aws_conn_id=None)
        uri = Path(data).as_uri()
        rows = sum(b.num_rows for b in storage.iter_batches(uri, batch_size=READ_BATCH_SIZE))
        rows = sum(b.num_rows for b in storage.iter_batches(uri, batch_size=READ_BATCH_SIZE))
        Path(out).write_text("")
    elif name == "ours":
        from airflow_provider_mlops.hooks.s3 import ObjectStorageHook
        from airflow_provider_mlops.ml.eda import READ_BATCH_SIZE, profile_batches, render_html

        storage = ObjectStorageHook(aws_conn_id=None)
        uri = Path(data).as_uri()
        profile = profile_batches(
            lambda: storage.iter_batches(uri, batch_size=READ_BATCH_SIZE), target="cat_0", source=uri
        )
        Path(out).write_text(render_html(profile))
        rows = profile["rows"]
    else:
        import pandas as pd

        frame = pd.read_parquet(data)
        rows = len(frame)
        if name == "skrub":
            from skrub import TableReport

            Path(out).write_text(TableReport(frame).html())
        else:
            from ydata_profiling import ProfileReport

            report = ProfileReport(frame, minimal=name == "ydata_minimal", progress_bar=False)
            report.to_file(out)
    seconds = time.perf_counter() - t0
    return {
        "case": name,
        "rows": rows,
        "seconds": seconds,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "html_mb": Path(out).stat().st_size / 1e6,
    }


def other_python() -> tuple[str | None, str]:
    """The venv with skrub and ydata-profiling (built once under .tox/), or why there is none."""
    python = VENV / "bin" / "python"
    if python.exists():
        return str(python), ""
    uv = os.environ.get("UV") or next(
        (p for p in (ROOT / ".tools/bin/uv", Path.home() / ".local/bin/uv") if p.exists()), None
    )
    if uv is None:
        return None, "uv not found (set UV=/path/to/uv)"
    made = subprocess.run(
        [str(uv), "venv", "-q", "-p", "3.11", str(VENV)], capture_output=True, text=True, check=False
    )
    installed = made.returncode == 0 and (
        subprocess.run(
            [str(uv), "pip", "install", "-q", "--python", str(python), *OTHERS.values(), "pyarrow"],
            capture_output=True,
            text=True,
            check=False,
        )
    )
    if made.returncode != 0 or not installed or installed.returncode != 0:
        error = made.stderr if made.returncode else (installed.stderr if installed else "")
        return None, f"could not install {', '.join(OTHERS.values())}: {error.strip()[-500:]}"
    return str(python), ""


def run(work: Path, rows: int, only: set[str] | None = None) -> dict[str, dict[str, Any]]:
    """Generate the data, run every case in its own process, print and return the results."""
    data = work / "profile.parquet"
    if not data.exists():
        print(f"Generating {rows:,} rows x 25 columns (20 numeric, 5 categorical)...", flush=True)
        generate(data, rows)
    cases = ["read", "ours", "skrub", "ydata_minimal", "ydata_default"]
    results: dict[str, dict[str, Any]] = {}
    python, why = (None, "")
    for name in cases:
        if only and name not in only and not (name == "read" and "ours" in only):
            continue
        if name in ("read", "ours"):
            exe = sys.executable
        else:
            if python is None and not why:
                python, why = other_python()
            if python is None:
                results[name] = {"case": name, "error": why}
                print(f"  profile {name:<16} not run: {why}", flush=True)
                continue
            exe = python
        argv = [exe, "-m", "benchmarks.profile", "case", name, str(data), str(work / f"{name}.html")]
        try:
            result = run_process(argv, label=f"profile {name}", timeout=3600, quiet_airflow=False)
        except CaseFailed as err:
            if name in ("ours", "read"):
                raise
            results[name] = {"case": name, "error": err.stderr.strip()[-1500:]}
            print(f"  profile {name:<16} failed: {err.stderr.strip()[-300:]}", flush=True)
            continue
        results[name] = result
        print(
            f"  profile {name:<16} {result['rows']:>10,} rows {result['seconds']:>8.2f} s  "
            f"peak RSS {result['peak_rss_mb']:>8.1f} MB  html {result['html_mb']:.1f} MB",
            flush=True,
        )
    ours = results.get("ours", {})
    for name, result in results.items():
        if name not in ("ours", "read") and "seconds" in result and "seconds" in ours:
            result["time_ratio_vs_ours"] = result["seconds"] / ours["seconds"]
            result["rss_ratio_vs_ours"] = result["peak_rss_mb"] / ours["peak_rss_mb"]
    if "peak_rss_mb" in ours:
        verdict = "ok" if ours["peak_rss_mb"] < RSS_LIMIT_MB else "OVER"
        print(
            f"  profile ours peak RSS {ours['peak_rss_mb']:.0f} MB vs bound {RSS_LIMIT_MB:.0f} MB: {verdict}"
        )
    return {f"profile_{k}": v for k, v in results.items()}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] == "case":
        print(json.dumps(_case(*args[1:4])))
        return 0
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--only", default="")
    parser.add_argument("--json", type=Path, default=None)
    parsed = parser.parse_args(args)
    work = Path(tempfile.mkdtemp(prefix="mlops-bench-profile-"))
    results = run(work, parsed.rows, {c for c in parsed.only.split(",") if c} or None)
    if parsed.json:
        parsed.json.write_text(json.dumps(results, indent=1, default=str))
    over = results.get("profile_ours", {}).get("peak_rss_mb", 0) >= RSS_LIMIT_MB
    return 1 if over else 0


if __name__ == "__main__":
    raise SystemExit(main())
