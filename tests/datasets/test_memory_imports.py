"""
What a worker process loads to move a dataset: a task that writes or reads a Delta table (or
deduplicates rows in a transform) must not pull in pandas (+40 MB of RSS) or ``pyarrow.compute``
(+12 MB) when the data needs neither. pyarrow imports pandas behind ``pa.array`` on Python values
or numpy arrays, ``pa.scalar``, ``pa.table(dict)`` and ``to_pylist`` of timestamps, and
``pyarrow.compute`` behind casts and filters: the peaks of the 1M-row benchmark cases depend on it.
Each check runs in a fresh interpreter (this test process has imported everything already).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from airflow_provider_mlops.hooks.s3 import storage_hook

ROWS = pa.table(
    {
        "id": list(range(6)),
        "day": ["2026-01-01"] * 3 + ["2026-01-02"] * 3,
        "amount": [1.5, 2.5, None, 4.0, 5.0, 6.5],
        "who": ["a", "b", "a", "c", "b", "a"],
    }
)


def _loaded_after(code: str, *args: str) -> dict:
    """Run ``code`` in a fresh interpreter; it prints JSON, to which the loaded heavy modules are added."""
    script = (
        "import json, sys\n"
        f"{code}\n"
        "out['loaded'] = [m for m in ('pandas', 'pyarrow.compute') if m in sys.modules]\n"
        "print(json.dumps(out))\n"
    )
    run = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_a_hand_off_is_written_and_read_without_pandas_or_compute(tmp_path: Path) -> None:
    source = tmp_path / "source.parquet"
    pq.write_table(ROWS, source)
    code = (
        "from airflow_provider_mlops.hooks.s3 import ObjectStorageHook\n"
        "hook = ObjectStorageHook(aws_conn_id=None)\n"
        "written = hook.write_dataset(sys.argv[2], hook.iter_batches(sys.argv[1]))\n"
        "back = [b for b in hook.iter_batches(sys.argv[2])]\n"
        "out = {'rows': written['rows'], 'read': sum(b.num_rows for b in back),\n"
        "       'ids': [i for b in back for i in b.column('id').to_pylist()]}\n"
    )
    out = _loaded_after(code, str(source), (tmp_path / "t").as_uri())
    assert (out["rows"], out["read"], out["ids"]) == (6, 6, list(range(6)))
    assert out["loaded"] == []


def test_a_partitioned_table_is_read_without_pandas(tmp_path: Path) -> None:
    uri = (tmp_path / "lake").as_uri()
    storage_hook(None).write_dataset(uri, ROWS.to_batches(), partition_by=["day"])
    code = (
        "from airflow_provider_mlops.hooks.s3 import ObjectStorageHook\n"
        "back = list(ObjectStorageHook(aws_conn_id=None).iter_batches(sys.argv[1]))\n"
        "out = {'rows': sorted((i, d) for b in back\n"
        "                      for i, d in zip(b.column('id').to_pylist(), b.column('day').to_pylist()))}\n"
    )
    out = _loaded_after(code, uri)
    assert out["rows"] == [[i, "2026-01-01" if i < 3 else "2026-01-02"] for i in range(6)]
    assert "pandas" not in out["loaded"]


def test_drop_duplicates_does_not_import_pandas(tmp_path: Path) -> None:
    source = tmp_path / "source.parquet"
    pq.write_table(ROWS, source)
    code = (
        "import pyarrow.parquet as pq\n"
        "from airflow_provider_mlops.etl.steps import Pipeline\n"
        "batches = pq.ParquetFile(sys.argv[1]).iter_batches(batch_size=4)\n"
        "kept = list(Pipeline([{'drop_duplicates': ['who']}]).apply(batches))\n"
        "out = {'ids': [i for b in kept for i in b.column('id').to_pylist()]}\n"
    )
    out = _loaded_after(code, str(source))
    assert out["ids"] == [0, 1, 3]
    assert "pandas" not in out["loaded"]


def test_reading_an_s3_table_builds_one_s3_client(s3_conn_id: str, s3_server) -> None:
    """The data files are read with Arrow's S3 client; the log listing and commit info use it too
    (a boto3 client on top costs ~14 MB of RSS in every reading task)."""
    from airflow_provider_mlops.hooks.s3 import ObjectStorageHook

    uri = f"s3://{s3_server.bucket}/memory/one-client"
    ObjectStorageHook(aws_conn_id=s3_conn_id).write_dataset(uri, ROWS.to_batches())
    reader = ObjectStorageHook(aws_conn_id=s3_conn_id)
    back = pa.Table.from_batches(list(reader.iter_batches(uri)))
    assert back.column("id").to_pylist() == list(range(6))
    assert reader.read_schema(uri) == ROWS.schema
    assert reader.dataset_info(uri)["rows"] == 6
    assert "client" not in vars(reader)  # the boto3 client (a cached property) was never built
