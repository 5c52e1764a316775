"""
Installs that resolve to something that works: the provider with ``.[all]`` next to the oldest
dependencies it declares and next to the newest, each in its own environment without the test
packages (tox -e airflow-oldest / airflow-newest, built with uv and kept under .tox/), each running
tests/runtime/smoke_install.py: the provider listed by Airflow, the example DAGs importing, the
example ETL by ``dag.test()`` on embedded defaults with the exact rows loaded, and the training
example registering a first champion.

Asserted besides both smoke tests passing: in the oldest environment every direct dependency resolved
to exactly its declared lower bound (so each bound in pyproject.toml is one that is tested; a bound
the resolver cannot reach fails here and says which), and the newest environment's Airflow is not
older than the oldest's.

Both run at once (tox run-parallel). Cost on 2 cores: see docs/deployment-runtimes.rst ("Installs
that resolve").
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from packaging.version import Version

from tests.conftest import _unavailable

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
ENVS = ("airflow-oldest", "airflow-newest")


def _tox() -> str | None:
    local = ROOT / ".tools" / "bin" / "tox"
    return str(local) if local.exists() else shutil.which("tox")


def test_oldest_and_newest_installs_run_the_smoke_test() -> None:
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
    # Both at once (tox's run-parallel shares the package build safely): the suite itself is serial,
    # so the second core is otherwise idle.
    result = subprocess.run(
        [tox, "run-parallel", "-e", ",".join(ENVS), "--parallel", str(len(ENVS)), "--parallel-no-spinner"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert result.returncode == 0, f"{result.stdout[-8000:]}\n{result.stderr[-3000:]}"
    reports = {name: json.loads(path.read_text()) for name, path in reports_paths.items()}

    oldest = reports["airflow-oldest"]["direct"]
    unreached = {
        name: dep
        for name, dep in oldest.items()
        if dep["lower_bound"] is not None and Version(dep["installed"]) != Version(dep["lower_bound"])
    }
    assert not unreached, (
        "declared lower bounds that the oldest resolution does not reach (raise them in pyproject.toml "
        f"to the installed version, or find what holds them up): {unreached}"
    )
    newest = reports["airflow-newest"]["direct"]
    assert Version(newest["apache-airflow"]["installed"]) >= Version(oldest["apache-airflow"]["installed"])
    print(json.dumps(reports, indent=1, sort_keys=True))
