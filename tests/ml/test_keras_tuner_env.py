"""
Runs tests/ml/test_keras_tuner.py in CI, which runs exactly ``./dev test`` (the ``tests`` tox env).

The ``keras`` extra (~600 MB: keras, keras-tuner, jax[cpu]) is not in the test environment, so when
``keras_tuner`` does not import here this test builds a venv with uv holding the project with
``.[all,keras]`` and the ``test`` dependency group, caches it under ``.tox/keras-venv`` keyed by the
project's dependency pins (a change to them rebuilds it), and runs the Keras Tuner tests inside it as
a subprocess: they must pass, none skipped. Measured on the 2-core machine: building the venv ~16 s
with uv's cache warm (the wheels were cached; a cold download of ~600 MB adds its network time),
the Keras tests themselves ~80-100 s; a cached run skips the build (~0.1 s to check the key).

Without uv or the package index (offline) it skips, or fails with ``MLOPS_REQUIRE_SERVERS=1`` (CI),
like a missing server binary.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.conftest import _unavailable

ROOT = Path(__file__).resolve().parents[2]
KERAS_TESTS = "tests/ml/test_keras_tuner.py"
VENV = ROOT / ".tox" / "keras-venv"
EXTRAS = "all,keras"
AIRFLOW_CONSTRAINTS = ROOT / "tests" / "runtime" / "constraints" / "airflow-3.3.txt"
# Failures of the build that mean "no index reachable", not "the pins do not resolve".
OFFLINE_HINTS = (
    "failed to fetch",
    "dns error",
    "error sending request",
    "connection refused",
    "network is unreachable",
    "temporary failure in name resolution",
    "timed out",
    "offline",
)


def _uv() -> str | None:
    for candidate in (
        shutil.which("uv"),
        ROOT / ".tools" / "bin" / "uv",  # ./dev's tool venv (tox-uv brings uv)
        Path(sys.executable).parent / "uv",
        Path.home() / ".local" / "bin" / "uv",
    ):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def cache_key() -> str:
    """What the venv's contents depend on: the dependency pins, the extras, the interpreter, the path."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    pins = {
        "dependencies": project["project"].get("dependencies", []),
        "optional": project["project"].get("optional-dependencies", {}),
        "test": project.get("dependency-groups", {}).get("test", []),
        "extras": EXTRAS,
        "constraints": AIRFLOW_CONSTRAINTS.read_text(),
        "python": sys.version,
        "root": str(ROOT),  # the editable install points here
    }
    return hashlib.sha256(json.dumps(pins, sort_keys=True).encode()).hexdigest()


def _run(cmd: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False)


def ensure_venv(uv: str) -> Path:
    """The cached venv's python, (re)built under a lock when the key changed or it is incomplete."""
    VENV.parent.mkdir(parents=True, exist_ok=True)
    stamp = VENV / "mlops-cache-key"
    key = cache_key()
    with open(VENV.parent / "keras-venv.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two sessions on one checkout build it once
        python = VENV / "bin" / "python"
        if stamp.is_file() and stamp.read_text() == key and python.exists():
            return python
        shutil.rmtree(VENV, ignore_errors=True)
        steps = [
            [uv, "venv", "-q", "--python", sys.executable, str(VENV)],
            [
                uv,
                "pip",
                "install",
                "-q",
                "--python",
                str(python),
                "-e",
                f".[{EXTRAS}]",
                "--group",
                "test",
                "-c",  # the suite's Airflow minor, as tox's environments have it
                str(AIRFLOW_CONSTRAINTS),
            ],
        ]
        for cmd in steps:
            done = _run(cmd, timeout=1800)
            if done.returncode:
                output = (done.stdout + done.stderr)[-4000:]
                shutil.rmtree(VENV, ignore_errors=True)
                if any(hint in output.lower() for hint in OFFLINE_HINTS):
                    _unavailable(f"cannot build the keras venv (package index unreachable?): {output}")
                pytest.fail(f"building the keras venv failed: {' '.join(cmd)}\n{output}", pytrace=False)
        stamp.write_text(key)  # last: an interrupted build is not mistaken for a complete one
        return python


@pytest.mark.timeout(3600)
def test_keras_tuner_tests_pass_in_a_venv_with_the_keras_extra(tmp_path: Path) -> None:
    if importlib.util.find_spec("keras_tuner") is not None:
        pytest.skip(f"keras_tuner imports in this environment: {KERAS_TESTS} runs here directly")
    uv = _uv()
    if uv is None:
        _unavailable("uv not found (PATH, .tools/bin, ~/.local/bin): cannot build the keras venv")
        return
    python = ensure_venv(uv)
    report = tmp_path / "keras.xml"
    # The child builds its own harness (conftest): none of this session's Airflow settings leak in.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYTEST_", "VIRTUAL_ENV"))}
    env.setdefault("KERAS_BACKEND", "jax")
    try:
        done = subprocess.run(
            [
                str(python),
                "-m",
                "pytest",
                KERAS_TESTS,
                "-q",
                "-p",
                "no:cacheprovider",
                f"--junitxml={report}",
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=3000,
            check=False,
        )
    except subprocess.TimeoutExpired as err:
        pytest.fail(f"{KERAS_TESTS} did not finish in {err.timeout} s", pytrace=False)
    output = (done.stdout + done.stderr)[-12000:]
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    with contextlib.suppress(FileNotFoundError, ET.ParseError):
        suite = ET.parse(report).getroot()
        suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
        counts = {k: int(suite.get(k, 0)) for k in counts} if suite is not None else counts
    assert done.returncode == 0 and not counts["failures"] and not counts["errors"], (
        f"{KERAS_TESTS} failed in {VENV} ({counts}):\n{output}"
    )
    assert counts["tests"] >= 4 and counts["skipped"] == 0, (
        f"{KERAS_TESTS} did not run every test (want >= 4 run, 0 skipped; got {counts}):\n{output}"
    )
