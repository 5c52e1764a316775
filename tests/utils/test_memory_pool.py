"""The streaming hooks put the configured Arrow allocator in place (checked in fresh processes)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import pyarrow as pa
from airflow_provider_mlops.hooks.s3 import S3Hook
before = pa.default_memory_pool().backend_name
S3Hook(aws_conn_id=None).write_dataset({uri!r}, [pa.RecordBatch.from_pydict({{"a": [1, 2]}})])
print(before, pa.default_memory_pool().backend_name)
"""


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "system"),
        ({"AIRFLOW__MLOPS__ARROW_MEMORY_POOL": "default"}, "mimalloc"),
        ({"ARROW_DEFAULT_MEMORY_POOL": "jemalloc"}, "jemalloc"),
    ],
)
def test_memory_pool_follows_configuration(env: dict[str, str], expected: str, tmp_path: Path) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("ARROW_", "AIRFLOW__MLOPS__"))}
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(uri=(tmp_path / "ds").as_uri())],
        env={**clean, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    before, after = proc.stdout.split()[-2:]
    assert after == expected, proc.stderr[-2000:]
    if not env:
        assert before == "mimalloc", "the switch is made by the hook, not at import"


def test_an_unknown_pool_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_provider_mlops.utils import arrow

    monkeypatch.setattr(arrow, "_pool_configured", False)
    monkeypatch.delenv("ARROW_DEFAULT_MEMORY_POOL", raising=False)
    monkeypatch.setenv("AIRFLOW__MLOPS__ARROW_MEMORY_POOL", "tcmalloc")
    with pytest.raises(ValueError, match="arrow_memory_pool must be one of"):
        arrow.configure_memory_pool()
