"""
DAG parse cost: what each example DAG adds to a parsing process over an empty DAG.

Each file is imported in a fresh interpreter (``python -c``: ``airflow.sdk`` imported first, as
every parsing process has it, then the clock around ``exec_module`` of the file, as the DAG
processor loads it), ``repeat`` times (default 10) after one warm-up run that writes the bytecode
caches; the figure is the median of the file minus the median of an empty DAG (one DAG object:
what any DAG costs, such as the timetable modules its first DAG loads). Wall time is the figure;
the CPU time of the same runs is recorded beside it (less disturbed by a loaded machine). ``PYTHONDONTWRITEBYTECODE`` is cleared for the
children: the provider and the DAG modules are timed compiled, as in a deployed environment.

``python -m benchmarks.parse [--repeat N] [FILE ...]``; ``-X importtime`` of a file with
``--importtime FILE`` shows where its time goes.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TARGET_MS = 50.0
EMPTY_DAG = """\
from __future__ import annotations

from airflow.sdk import DAG

with DAG("empty", schedule=None):
    pass
"""
PROBE = """\
import importlib.util, sys, time
import airflow.sdk  # every parsing process has it loaded: not on the clock
path = sys.argv[1]
wall, cpu = time.perf_counter(), time.process_time()
spec = importlib.util.spec_from_file_location("dag_under_test", path)
module = importlib.util.module_from_spec(spec)
sys.modules["dag_under_test"] = module
spec.loader.exec_module(module)
print(time.perf_counter() - wall, time.process_time() - cpu)
"""


def _env(home: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(
        {
            "PYTHONPATH": str(ROOT),
            "AIRFLOW_HOME": home,
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "false",
        }
    )
    return env


def time_file(path: Path, repeat: int, env: dict[str, str]) -> list[tuple[float, float]]:
    """(wall, CPU) seconds to import ``path`` in ``repeat`` fresh processes (after one warm-up)."""
    times = []
    for index in range(repeat + 1):
        proc = subprocess.run(
            [sys.executable, "-c", PROBE, str(path)],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=300,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"importing {path} failed:\n{proc.stderr[-3000:]}")
        if index:
            wall, cpu = proc.stdout.strip().splitlines()[-1].split()
            times.append((float(wall), float(cpu)))
    return times


def compile_bytecode(env: dict[str, str]) -> None:
    """Bytecode for the provider, the example DAGs and the environment's packages (once)."""
    import site
    import sysconfig

    folders = [str(ROOT / "airflow_provider_mlops"), str(ROOT / "example_dags")]
    folders += [p for p in {sysconfig.get_paths()["purelib"], *site.getsitepackages()} if Path(p).is_dir()]
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", "-j", "0", *folders],
        env=env,
        capture_output=True,
        check=False,
        timeout=1800,
    )


def run_parse(files: list[Path] | None = None, repeat: int = 10) -> dict[str, Any]:
    files = files or sorted((ROOT / "example_dags").glob("*.py"))
    with tempfile.TemporaryDirectory(prefix="mlops-parse-") as home:
        env = _env(home)
        compile_bytecode(env)
        empty = Path(home) / "empty_dag.py"
        empty.write_text(EMPTY_DAG)
        print(f"DAG parse (median of {repeat} fresh processes, minus an empty DAG)", flush=True)
        base = time_file(empty, repeat, env)
        base_ms = statistics.median(t[0] for t in base) * 1000
        base_cpu = statistics.median(t[1] for t in base) * 1000
        print(f"  {'empty DAG':<24} {base_ms:>8.1f} ms (CPU {base_cpu:.1f} ms)", flush=True)
        results: dict[str, Any] = {
            "parse_empty_dag": {"median_ms": round(base_ms, 1), "cpu_ms": round(base_cpu, 1)}
        }
        for path in files:
            times = time_file(path, repeat, env)
            median = statistics.median(t[0] for t in times) * 1000
            cpu = statistics.median(t[1] for t in times) * 1000
            extra = median - base_ms
            results[f"parse_{path.stem}"] = {
                "median_ms": round(median, 1),
                "over_empty_ms": round(extra, 1),
                "cpu_over_empty_ms": round(cpu - base_cpu, 1),
                "runs_ms": [round(t[0] * 1000, 1) for t in times],
            }
            print(
                f"  {path.name:<24} {median:>8.1f} ms  {extra:+.1f} ms over the empty DAG (CPU {cpu - base_cpu:+.1f} ms)",
                flush=True,
            )
    return results


def parse_targets(results: dict[str, Any]) -> int:
    failures = 0
    for name, value in results.items():
        if name.startswith("parse_") and "over_empty_ms" in value:
            ok = value["over_empty_ms"] <= TARGET_MS
            failures += not ok
            print(
                f"  [{'ok' if ok else 'FAIL'}] {name.removeprefix('parse_')}.py parse: "
                f"{value['over_empty_ms']:+.1f} ms over an empty DAG (target <= {TARGET_MS:.0f} ms)"
            )
    return failures


def importtime(path: Path) -> str:
    """``python -X importtime`` of one DAG file: the modules it imports, slowest first."""
    with tempfile.TemporaryDirectory(prefix="mlops-parse-") as home:
        proc = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", PROBE, str(path)],
            capture_output=True,
            text=True,
            env=_env(home),
            cwd=ROOT,
            timeout=300,
        )
    rows = []
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and "|" in line and "self [us]" not in line:
            own, total, name = line.removeprefix("import time:").split("|")
            rows.append((int(total), int(own), name.rstrip()))
    rows.sort(reverse=True)
    return "\n".join(f"{total / 1000:8.1f} ms {own / 1000:8.1f} ms {name}" for total, own, name in rows[:60])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("files", nargs="*", type=Path)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--importtime", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.importtime:
        print(importtime(args.importtime))
        return 0
    results = run_parse(args.files or None, args.repeat)
    print(json.dumps(results))
    return 1 if parse_targets(results) else 0


if __name__ == "__main__":
    sys.exit(main())
