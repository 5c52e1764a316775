"""
The *Data profile* extra link under a real dag.test() run (issue 28, item 4): a failed profile task
leaves no link and logs no "XCom not found" error; a successful one links the report's page in the
provider's plugin (#27; the XCom keeps the object URI).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from urllib.parse import quote

import pyarrow as pa
import pytest
from airflow.providers.common.compat.sdk import conf

from airflow_provider_mlops.hooks.s3 import ObjectStorageHook
from airflow_provider_mlops.links.profile import ProfileReportLink
from tests.operators.dag_files import dag_from_source, xcom_value

DAG_FILE = """
import datetime as dt
from airflow.sdk import DAG
from airflow_provider_mlops.operators.profile import ProfileDataOperator

with DAG("{dag_id}", schedule=None, start_date=dt.datetime(2026, 1, 1)) as dag:
    ProfileDataOperator(task_id="profile", input_uri="INPUT", output_uri="OUTPUT")
"""


def _dag(input_uri: str, output_uri: str, folder: Path, monkeypatch: pytest.MonkeyPatch) -> object:
    source = DAG_FILE.replace("INPUT", input_uri).replace("OUTPUT", output_uri)
    return dag_from_source(source, folder, monkeypatch, prefix="profile_link")


def test_a_failed_profile_leaves_no_link_and_no_xcom_error(
    airflow_db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    dag = _dag((tmp_path / "missing").as_uri(), (tmp_path / "out").as_uri(), tmp_path / "dags", monkeypatch)
    run = dag.test(logical_date=dt.datetime(2026, 1, 2, tzinfo=dt.UTC))
    assert run.state == "failed"
    out = capsys.readouterr()
    logged = out.out + out.err
    assert "XCom not found" not in logged, "the link must not ask for an XCom the task never pushed"
    assert not xcom_value(dag.dag_id, run.run_id, "profile", ProfileReportLink().xcom_key), "no link"


def test_a_profile_of_a_date_column_links_its_report(
    airflow_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = (tmp_path / "weather").as_uri()
    days = [dt.date(2025, 1, 1) + dt.timedelta(days=i) for i in range(20)]
    ObjectStorageHook(aws_conn_id=None).write_dataset(
        data,
        pa.table(
            {"observed_on": pa.array(days, pa.date32()), "rain": [i % 2 == 0 for i in range(20)]}
        ).to_batches(),
    )
    dag = _dag(data, (tmp_path / "out").as_uri(), tmp_path / "dags", monkeypatch)
    run = dag.test(logical_date=dt.datetime(2026, 1, 2, tzinfo=dt.UTC))
    assert run.state == "success"
    link = xcom_value(dag.dag_id, run.run_id, "profile", ProfileReportLink().xcom_key)
    # #27: a file:// link is dropped by Airflow's UI; the link opens the plugin's page of the report
    base = str(conf.get("api", "base_url", fallback="") or "").rstrip("/")
    assert link == f"{base}/mlops/reports/{dag.dag_id}/{quote(run.run_id, safe='')}/profile"
    # ...which serves the object the XCom names
    from airflow_provider_mlops.plugins.reports import report_uri_from_xcoms

    pushed = xcom_value(dag.dag_id, run.run_id, "profile", "return_value")
    assert report_uri_from_xcoms({"return_value": pushed}) == (tmp_path / "out").as_uri() + "/report.html"
