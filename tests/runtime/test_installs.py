"""
Installs that resolve to something that works, on every Airflow 3 minor the provider supports: the
provider with ``.[all]`` in its own environment without the test packages (built with uv, kept under
.tox/), each running tests/runtime/smoke_install.py: the provider listed by Airflow, the example DAGs
importing, the example ETL by ``dag.test()`` on embedded defaults with the exact rows loaded, and the
training example registering a first champion.

=============== ================ ===========================================================
tox env         Airflow          other dependencies
=============== ================ ===========================================================
airflow-30      3.0.6            lowest declared (uv lowest-direct); fastapi<0.117
airflow-31      3.1.8            newest that resolve
airflow-32      3.2.2            newest that resolve; fastapi<0.137, svcs<26
airflow-oldest  3.3.0 (lowest)   lowest declared
airflow-newest  newest           newest that resolve
=============== ================ ===========================================================

Airflow's version and the pins for its own bugs come from tests/runtime/constraints/ (the tox envs'
``constraints``). Asserted besides every smoke test passing: each environment runs the Airflow its
constraints name; in the lowest-declared environments every direct dependency but Airflow resolved to
exactly its declared lower bound (so each bound in pyproject.toml is one that is tested on the oldest
minor and on 3.3; a bound the resolver cannot reach fails here and says which); the newest
environment's Airflow is not older than the oldest's.

The environments are built once and rebuilt only when pyproject.toml or a constraints file changes
(tox's own cache); the smoke runs go two at a time (tox run-parallel, 2 cores). Cost: see
docs/installation.rst ("Tested with").
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from packaging.version import Version

from tests.conftest import _unavailable

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
CONSTRAINTS = ROOT / "tests" / "runtime" / "constraints"
# tox env -> its constraints file (None: unconstrained), and whether it resolves the lowest declared versions
ENVS: dict[str, tuple[str | None, bool]] = {
    "airflow-30": ("airflow-3.0.txt", True),
    "airflow-31": ("airflow-3.1.txt", False),
    "airflow-32": ("airflow-3.2.txt", False),
    "airflow-oldest": ("airflow-3.3.txt", True),
    "airflow-newest": (None, False),
}
# The smoke runs at once: two (the machine's cores; each holds a training run and Airflow's API in memory).
PARALLEL = int(os.environ.get("MLOPS_INSTALLS_PARALLEL", "2"))


def airflow_pin(constraints: str) -> str | None:
    """The exact Airflow version a constraints file pins (``apache-airflow==X``), or None for a range."""
    text = (CONSTRAINTS / constraints).read_text()
    found = re.search(r"^apache-airflow==(\S+)", text, re.MULTILINE)
    return found.group(1) if found else None


def _tox() -> str | None:
    local = ROOT / ".tools" / "bin" / "tox"
    return str(local) if local.exists() else shutil.which("tox")


# Five environments to build on a cold package cache (each downloads its own Airflow): more than the
# default 600 s may go by before the first smoke test starts.
@pytest.mark.timeout(2400)
def test_every_supported_airflow_minor_runs_the_smoke_test() -> None:
    tox = _tox()
    if tox is None:
        _unavailable("tox not found: ./dev installs it into .tools")
        return
    # A clean environment: nothing of this test environment's venv or tox run leaks into the others.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TOX_", "VIRTUAL_ENV", "PYTEST", "AIRFLOW", "_TOX")) and k != "PYTHONPATH"
    }
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", "").split(os.pathsep) if not p.startswith(str(ROOT / ".tox"))
    )
    reports_paths = {name: ROOT / ".tox" / name / "smoke-report.json" for name in ENVS}
    for path in reports_paths.values():
        path.unlink(missing_ok=True)
    # tox's run-parallel shares the package build safely; the suite itself is serial, so the second
    # core is otherwise idle.
    result = subprocess.run(
        [tox, "run-parallel", "-e", ",".join(ENVS), "--parallel", str(PARALLEL), "--parallel-no-spinner"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=2400,
    )
    assert result.returncode == 0, f"{result.stdout[-8000:]}\n{result.stderr[-3000:]}"
    reports = {name: json.loads(path.read_text()) for name, path in reports_paths.items()}

    for name, (constraints, _) in ENVS.items():
        pinned = airflow_pin(constraints) if constraints else None
        installed = reports[name]["direct"]["apache-airflow"]["installed"]
        if pinned is not None:
            assert Version(installed) == Version(pinned), (name, installed, pinned)
        assert reports[name]["other"]["apache-airflow-core"] == installed, (name, reports[name]["other"])
    assert Version(reports["airflow-oldest"]["direct"]["apache-airflow"]["installed"]) == Version("3.3.0")

    for name, (_, lowest) in ENVS.items():
        if not lowest:
            continue
        unreached = {
            dep_name: dep
            for dep_name, dep in reports[name]["direct"].items()
            if dep_name != "apache-airflow"  # held to the environment's minor by its constraints
            and dep["lower_bound"] is not None
            and Version(dep["installed"]) != Version(dep["lower_bound"])
        }
        assert not unreached, (
            f"declared lower bounds that the lowest resolution in {name} does not reach (raise them in "
            f"pyproject.toml to the installed version, or find what holds them up): {unreached}"
        )
    oldest, newest = (
        reports[n]["direct"]["apache-airflow"]["installed"] for n in ("airflow-oldest", "airflow-newest")
    )
    assert Version(newest) >= Version(oldest)
    print(json.dumps(reports, indent=1, sort_keys=True))
    # tox's per-environment cost (setup = build or reuse of the environment, cmd = the smoke test)
    print("\n".join(line.strip() for line in result.stdout.splitlines() if "=setup[" in line))
