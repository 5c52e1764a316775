"""ProfileDataOperator: dataset URI(s) -> a data profile (HTML report + JSON summary) in object storage."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_provider_mlops.hooks.s3 import storage_hook
from airflow_provider_mlops.links.profile import XCOM_KEY, ProfileReportLink
from airflow_provider_mlops.operators.common import (
    fail_fast,
    require_inputs,
    resolve_output_uri,
    static_uri,
)

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from airflow.sdk import Context

REPORT_LINKS = ("uri", "presigned")


class ProfileDataOperator(BaseOperator):
    """
    Profile a dataset: per column type, missing share, distinct values, min / max / quantiles, a
    histogram or the top categories and outlier counts (the feature spec's rule); across columns
    correlations, Cramér's V, the target's relationship with each feature, duplicate rows, and
    warnings (constant, high cardinality, skew, many missing, text values differing only in case or
    whitespace, leakage suspects). Every Arrow type a source produces is profiled (dates, times,
    timestamps with or without a zone, durations, decimals, binary, dictionary-encoded columns);
    lists / structs / maps get counts and a ``not_summarised`` warning, and a column whose type a
    kernel refuses gets an ``unsupported`` warning naming it: neither fails the task.

    The data is streamed as Arrow batches in two passes, in bounded memory
    (:mod:`airflow_provider_mlops.ml.eda`). ``report.html`` (self-contained: open it from a
    bucket or a disk) and ``profile.json`` go to ``output_uri`` (default
    ``<staging>/<dag_id>/<task_id>/<ds>/profile``): the same path for a logical date, so a re-run
    overwrites it; each object is replaced whole (one PUT on S3, write + rename on disk), the JSON
    first, so a reader sees the previous or the new file, never a half-written one.

    The task's outlet is the Asset of ``output_uri`` when it is a static URI, otherwise
    ``x-mlops-profile://<dag_id>/<task_id>``; its events carry the report's URIs as ``extra``.
    The *Data profile* extra link opens the report (see ``report_link``); a task that failed before
    writing it has no link.

    Returns (XCom) ``{"report_uri", "json_uri", "rows", "columns", "warnings", "warning_kinds",
    "duplicate_rows"}``.

    :param input_uri: dataset URI(s) or upstream XCom dicts with ``uri``. (templated)
    :param target: the label column, if any: relationships and leakage warnings. (templated)
    :param output_uri: where the report goes; default per task and logical date. (templated)
    :param format: the format of plain files at ``input_uri`` (a committed dataset records its own).
    :param outliers: the outlier rule, as in the feature spec: ``{"method": "iqr" | "zscore",
        "factor": ...}``.
    :param sample_size: rows sampled for quantiles, correlations and associations.
    :param options: other :class:`~airflow_provider_mlops.ml.eda.ProfileOptions` fields.
    :param report_link: what the extra link holds: ``uri`` (the object URI) or ``presigned`` (an
        HTTPS URL signed with the storage connection, valid ``link_expires`` seconds; s3 only).
    :param link_expires: lifetime of a presigned link in seconds (at most 7 days).
    :param storage_conn_id: connection for ``s3://`` URIs.
    """

    template_fields: Sequence[str] = ("input_uri", "target", "output_uri")
    operator_extra_links = (ProfileReportLink(),)
    ui_color = "#e0f2f1"

    def __init__(
        self,
        *,
        input_uri: Any,
        target: str | None = None,
        output_uri: str | None = None,
        format: str = "parquet",
        outliers: Mapping[str, Any] | None = None,
        sample_size: int = 50_000,
        options: Mapping[str, Any] | None = None,
        report_link: str = "uri",
        link_expires: int = 7 * 24 * 3600,
        storage_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        if report_link not in REPORT_LINKS:
            raise ValueError(f"report_link must be one of {REPORT_LINKS}, got {report_link!r}")
        if not 0 < link_expires <= 7 * 24 * 3600:
            raise ValueError(f"link_expires must be between 1 s and 7 days (604800 s), got {link_expires}")
        outlets_given = "outlets" in kwargs
        super().__init__(**kwargs)
        self.input_uri = input_uri
        self.target = target
        self.output_uri = output_uri
        self.format = format
        self.outliers = outliers
        self.sample_size = sample_size
        self.options = options
        self.report_link = report_link
        self.link_expires = link_expires
        self.storage_conn_id = storage_conn_id
        #: what the *Data profile* link opens, set by execute once the report is written
        self.report_url: str | None = None
        if not outlets_given:
            from airflow.sdk import Asset

            from airflow_provider_mlops.assets import storage_asset

            self.outlets = [
                storage_asset(str(output_uri))
                if static_uri(output_uri)
                else Asset(
                    name=f"data_profile.{self.dag_id}.{self.task_id}",
                    uri=f"x-mlops-profile://{self.dag_id}/{self.task_id}",
                )
            ]

    def _options(self) -> Any:
        from airflow_provider_mlops.ml.eda import ProfileOptions

        fields = dict(self.options or {})
        fields["sample_size"] = self.sample_size
        if self.outliers is not None:
            fields["outliers"] = dict(self.outliers)
        return ProfileOptions(**fields)

    @fail_fast(TypeError)
    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_provider_mlops.ml.eda import READ_BATCH_SIZE, profile_batches, render_html
        from airflow_provider_mlops.operators.common import iter_inputs

        self.report_url = None
        inputs = require_inputs(self.input_uri)
        storage = storage_hook(self.storage_conn_id)
        options = self._options()
        profile = profile_batches(
            lambda: iter_inputs(storage, inputs, format=self.format, batch_size=READ_BATCH_SIZE),
            target=self.target,
            options=options,
            source=", ".join(inputs),
        )
        base = resolve_output_uri(self.output_uri, context, suffix="profile").rstrip("/")
        json_uri, report_uri = f"{base}/profile.json", f"{base}/report.html"
        storage.put_bytes(json_uri, json.dumps(profile, indent=1).encode(), content_type="application/json")
        storage.put_bytes(
            report_uri,
            render_html(profile, title=f"Data profile: {context['ti'].task_id}").encode(),
            content_type="text/html; charset=utf-8",
        )
        warnings = profile["warnings"]
        self.log.info(
            "Profiled %s rows x %s columns of %s: %s warnings; report %s",
            profile["rows"],
            profile["columns"],
            inputs,
            len(warnings),
            report_uri,
        )
        for warning in warnings:
            self.log.warning("%s %s: %s", warning["kind"], warning.get("column") or "", warning["message"])
        self.report_url = self._link(storage, report_uri)
        context["ti"].xcom_push(key=XCOM_KEY, value=self.report_url)
        summary = {
            "report_uri": report_uri,
            "json_uri": json_uri,
            "rows": profile["rows"],
            "columns": profile["columns"],
            "warnings": len(warnings),
            "warning_kinds": sorted({w["kind"] for w in warnings}),
            "duplicate_rows": profile["duplicates"]["rows"],
        }
        events = context.get("outlet_events")
        if events is not None:
            for outlet in self.outlets:
                events[outlet].extra = {"report_uri": report_uri, "json_uri": json_uri}
        return summary

    def _link(self, storage: Any, report_uri: str) -> str:
        if self.report_link == "presigned" and report_uri.startswith("s3://"):
            from airflow_provider_mlops.storage.uri import parse_uri

            location = parse_uri(report_uri)
            return str(
                storage.client.generate_presigned_url(
                    "get_object",
                    Params={"Bucket": location.bucket, "Key": location.key},
                    ExpiresIn=self.link_expires,
                )
            )
        return report_uri
