"""The provider picks Arrow's system allocator by default, before pyarrow is imported; a deployment's choice wins."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

_PROBE = "import airflow_provider_mlops, pyarrow; print(pyarrow.default_memory_pool().backend_name)"


@pytest.mark.parametrize(("setting", "expected"), [(None, "system"), ("mimalloc", "mimalloc")])
def test_arrow_memory_pool_default(setting: str | None, expected: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    if setting:
        env["ARROW_DEFAULT_MEMORY_POOL"] = setting
    out = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == expected


def test_pyarrow_imported_first_keeps_arrows_default() -> None:
    """Too late to choose once pyarrow is loaded: the provider leaves the environment alone."""
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    probe = "import pyarrow, os, airflow_provider_mlops; print(os.environ.get('ARROW_DEFAULT_MEMORY_POOL'))"
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "None"
