"""ProfileDataOperator against moto S3 and the local disk: report + JSON, idempotent paths, link, Asset."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import requests
from airflow.providers.common.compat.sdk import AirflowFailException
from airflow.sdk import Asset

from airflow_provider_mlops.hooks.s3 import ObjectStorageHook
from airflow_provider_mlops.links.profile import XCOM_KEY
from airflow_provider_mlops.ml.eda import SCHEMA, SCHEMA_VERSION
from airflow_provider_mlops.operators.profile import ProfileDataOperator
from tests.harness.servers import S3Server
from tests.operators.helpers import task_context


def _frame(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "minutes": rng.gamma(2, 25, n),
            "plan": rng.choice(["free", "pro", "<script>x</script>"], n),
            "tickets": rng.poisson(0.6, n).astype("int64"),
        }
    )
    frame["churned"] = (frame.tickets > 1).astype("int64")
    return frame


def test_profile_to_s3_is_idempotent_per_logical_date(
    s3_conn_id: str, s3_server: S3Server, tmp_path: Path
) -> None:
    storage = ObjectStorageHook(aws_conn_id=s3_conn_id)
    prefix = f"s3://{s3_server.bucket}/profile-test/{uuid.uuid4().hex[:8]}"
    first, second = _frame(1200, 1), _frame(700, 2)
    storage.write_dataset(f"{prefix}/in1", pa.Table.from_pandas(first, preserve_index=False).to_batches())
    storage.write_dataset(f"{prefix}/in2", pa.Table.from_pandas(second, preserve_index=False).to_batches())
    op = ProfileDataOperator(
        task_id="profile",
        input_uri=[f"{prefix}/in1", {"uri": f"{prefix}/in2"}],
        target="churned",
        output_uri=f"{prefix}/profile/2026-01-08",
        storage_conn_id=s3_conn_id,
        report_link="presigned",
    )
    context = task_context(tmp_path)
    result = op.execute(context)
    assert result["report_uri"] == f"{prefix}/profile/2026-01-08/report.html"
    assert result["rows"] == len(first) + len(second) and result["columns"] == 4
    summary = json.loads(storage.get_bytes(result["json_uri"]))
    assert (summary["schema"], summary["version"], summary["rows"]) == (SCHEMA, SCHEMA_VERSION, 1900)
    plan = next(c for c in summary["column_summaries"] if c["name"] == "plan")
    expected = pd.concat([first, second]).plan.value_counts()
    assert {t["value"]: t["count"] for t in plan["top"]} == expected.to_dict()
    assert result["warnings"] == len(summary["warnings"])
    assert any(w["kind"] == "leakage" and w["column"] == "tickets" for w in summary["warnings"])
    page = storage.get_bytes(result["report_uri"]).decode()
    assert "<script>x" not in page and "&lt;script&gt;x&lt;/script&gt;" in page

    link = context["ti"].pushed[XCOM_KEY]
    assert link.startswith("http") and "Signature" in link
    fetched = requests.get(link, timeout=10)
    assert fetched.status_code == 200 and fetched.text == page, "the presigned link serves the report"

    # A re-run for the same logical date overwrites the same objects (not a second copy).
    storage.write_dataset(
        f"{prefix}/in1", pa.Table.from_pandas(first.head(100), preserve_index=False).to_batches()
    )
    again = op.execute(task_context(tmp_path))
    assert again["report_uri"] == result["report_uri"] and again["rows"] == 800
    assert json.loads(storage.get_bytes(result["json_uri"]))["rows"] == 800
    listed = storage.list_uris(f"{prefix}/profile/2026-01-08")
    assert sorted(u.rsplit("/", 1)[1] for u in listed) == ["profile.json", "report.html"]


def test_default_output_is_per_task_and_logical_date_and_the_asset_is_declared(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW__MLOPS__STAGING_URI", (tmp_path / "staging").as_uri())
    uri = (tmp_path / "data").as_uri()
    ObjectStorageHook(aws_conn_id=None).write_dataset(
        uri, pa.Table.from_pandas(_frame(300), preserve_index=False).to_batches()
    )
    op = ProfileDataOperator(task_id="profile", input_uri=uri)
    assert [a.uri for a in op.outlets] == [f"x-mlops-profile://{op.dag_id}/profile"]
    assert isinstance(op.outlets[0], Asset)
    context = task_context(tmp_path)
    result = op.execute(context)
    expected = tmp_path / "staging" / "train_dag" / "train" / "2026-01-08" / "profile"
    assert result["report_uri"] == (expected / "report.html").as_uri()
    assert context["ti"].pushed[XCOM_KEY] == result["report_uri"], "report_link='uri': the object URI"
    assert (expected / "report.html").read_text().startswith("<!doctype html>")
    assert json.loads((expected / "profile.json").read_text())["rows"] == 300
    static = ProfileDataOperator(task_id="p2", input_uri=uri, output_uri=(tmp_path / "fixed").as_uri())
    assert [a.uri for a in static.outlets] == [(tmp_path / "fixed").as_uri()]


def test_bad_arguments_fail_at_parse_or_without_retries(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="report_link"):
        ProfileDataOperator(task_id="p", input_uri="x", report_link="http")
    with pytest.raises(ValueError, match="link_expires"):
        ProfileDataOperator(task_id="p", input_uri="x", link_expires=10**7)
    uri = (tmp_path / "data").as_uri()
    ObjectStorageHook(aws_conn_id=None).write_dataset(
        uri, pa.Table.from_pandas(_frame(50), preserve_index=False).to_batches()
    )
    op = ProfileDataOperator(task_id="p", input_uri=uri, target="nope", output_uri=(tmp_path / "o").as_uri())
    with pytest.raises(AirflowFailException, match="target 'nope'"):
        op.execute(task_context(tmp_path))
    assert op.template_fields == ("input_uri", "target", "output_uri")
