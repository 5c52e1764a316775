"""
#27 Deliver 4: reports a person reads. The drift report says what it compares (model version,
reference profile, data day) and labels both axes of every histogram; the profile report's share
labels fit inside their chart.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pyarrow as pa

from airflow_provider_mlops.ml.drift import columns_from_batches, detect_drift
from airflow_provider_mlops.ml.profile import build_profile


def _drift_report() -> dict:
    rng = np.random.default_rng(0)
    reference = pd.DataFrame(
        {"monthly_charges": rng.gamma(2.0, 20.0, 3000), "plan": rng.choice(["free", "pro"], 3000)}
    )
    current = pd.DataFrame(
        {"monthly_charges": rng.gamma(2.0, 30.0, 2000), "plan": rng.choice(["free", "pro"], 2000)}
    )
    profile = build_profile(reference, numeric=["monthly_charges"], categorical=["plan"])
    columns, rows = columns_from_batches(pa.Table.from_pandas(current).to_batches(), profile)
    return detect_drift(profile, columns, rows=rows)


def test_the_drift_report_names_the_model_version_the_reference_and_the_data_day() -> None:
    from airflow_provider_mlops.ml.report import render_html

    report = {
        **_drift_report(),
        "reference": {"model": "churn_model", "version": "3", "run_id": "e94d9a76"},
        "current_uri": "file:///demo/storage/mlops_monitor_model/extract_newest_day/2026-01-09",
        "data_day": "2026-01-08",
    }
    text = re.sub(r"<[^>]+>", "", render_html(report))
    assert "churn_model version 3" in text
    assert "training-data profile logged with churn_model version 3 (MLflow run e94d9a76)" in text
    assert "data day 2026-01-08" in text
    assert "2,000 rows from file:///demo/storage/mlops_monitor_model/extract_newest_day/2026-01-09" in text
    # a span of days, a profile named by URI, and a report without the day (said, not guessed)
    span = render_html(
        {**report, "data_day": ["2026-01-07", "2026-01-08"], "reference": {"uri": "s3://b/p.json"}}
    )
    assert "data days 2026-01-07 to 2026-01-08" in re.sub(r"<[^>]+>", "", span)
    assert "reference profile s3://b/p.json" in re.sub(r"<[^>]+>", "", span)
    unknown = re.sub(r"<[^>]+>", "", render_html({**report, "data_day": None}))
    assert "data day not recorded" in unknown and "churn_model version 3 vs the current data" in unknown


def test_every_drift_histogram_labels_both_axes() -> None:
    from airflow_provider_mlops.ml.report import render_html

    report = _drift_report()
    page = render_html(report)
    charts = re.findall(r'<svg class="hist".*?</svg>', page, flags=re.S)
    assert len(charts) == 2
    for chart, feature in zip(charts, report["features"], strict=True):
        texts = [re.sub(r"<[^>]+>", "", t) for t in re.findall(r"<text[^>]*>.*?</text>", chart, flags=re.S)]
        assert "share of rows" in texts, texts
        assert any(t.startswith(feature["name"]) for t in texts), texts  # the x axis names the feature
        assert "0%" in texts and any(re.fullmatch(r"\d+%", t) and t != "0%" for t in texts), texts
        if feature["kind"] == "numeric":
            edges = feature["histogram"]["edges"]
            assert f"{edges[0]:.3g}" in texts and f"{edges[-1]:.3g}" in texts, texts
        else:
            assert {"free", "pro"} <= set(texts), texts


def _fits(svg: str) -> list[str]:
    """Texts whose right end (digits ~0.62 em) passes the SVG's width."""
    width = float(re.search(r'width="([\d.]+)"', svg).group(1))
    out = []
    for x, size, anchor, text in re.findall(
        r'<text x="([\d.]+)"[^>]*?font-size="(\d+)"( text-anchor="end")?[^>]*>([^<]*)</text>', svg
    ):
        right = float(x) if anchor else float(x) + len(text) * 0.62 * float(size)
        if right > width:
            out.append(f"{text!r} ends at {right:.0f} > {width:.0f}")
    return out


def test_the_profile_report_shows_its_share_labels_in_full() -> None:
    from airflow_provider_mlops.ml.eda import profile_table, render_html

    table = pa.table({"plan": ["pro"] * 50, "region": ["eu"] * 30 + ["na"] * 20})
    page = render_html(profile_table(table))
    tops = re.findall(r'<svg class="top".*?</svg>', page, flags=re.S)
    assert tops and "100.0%" in page
    for svg in tops:
        assert _fits(svg) == []
