"""
The data profile renders in headless Chromium. The tutorial's ``docs/_static/profile_report.png`` is
this test's ``profile_report.png`` in the artifacts folder (or ``docs/capture_screenshots.py`` after
a demo).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from airflow_provider_mlops.hooks.s3 import ObjectStorageHook
from airflow_provider_mlops.operators.profile import ProfileDataOperator
from tests.operators.helpers import task_context


def _churn(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(8)
    frame = pd.DataFrame(
        {
            "customer_id": np.arange(n),
            "sessions": rng.poisson(6, n),
            "minutes_used": rng.gamma(2, 60, n),
            "support_tickets": rng.poisson(0.5, n),
            "plan": rng.choice(["basic", "standard", "premium"], n, p=[0.5, 0.3, 0.2]),
            "region": rng.choice(["north", "south", "east", "west"], n),
            "monthly_charges": rng.normal(60, 15, n),
            "tenure_months": rng.integers(1, 72, n),
        }
    )
    frame.loc[rng.random(n) < 0.08, "minutes_used"] = np.nan
    score = 0.8 * frame.support_tickets - 0.01 * frame.minutes_used.fillna(100) + (frame.plan == "basic")
    frame["churned"] = (score + rng.logistic(size=n) > 0.5).astype("int64")
    frame["cancel_reason_code"] = np.where(frame.churned == 1, rng.integers(1, 5, n), 0)  # a leak
    return frame


@pytest.mark.integration
def test_profile_report_renders_in_headless_chromium(tmp_path: Path, artifacts_dir: Path) -> None:
    from tests.conftest import _unavailable
    from tests.harness.browser import capture, find_browser

    browser = find_browser()
    if browser is None:
        _unavailable("chromium not found: apt-get install chromium")
    uri = (tmp_path / "data").as_uri()
    ObjectStorageHook(aws_conn_id=None).write_dataset(
        uri, pa.Table.from_pandas(_churn(20_000), preserve_index=False).to_batches()
    )
    result = ProfileDataOperator(
        task_id="profile_training_data",
        input_uri=uri,
        target="churned",
        output_uri=(tmp_path / "profile").as_uri(),
    ).execute(task_context(tmp_path))
    url = result["report_uri"]
    data, dom = capture(url, artifacts_dir / "profile_report.png", window=(1500, 900), browser=browser)
    assert "cancel_reason_code" in dom and "leakage" in dom and "minutes_used" in dom
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000, "a rendered page, not a blank one"
