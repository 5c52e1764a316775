"""TransformOperator: dataset URI(s) -> declarative steps and validation, batch by batch -> dataset URI."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from airflow.sdk import BaseOperator

from airflow_provider_mlops.hooks.s3 import storage_hook
from airflow_provider_mlops.operators.common import (
    fail_fast,
    input_uris,
    iter_inputs,
    lineage_inputs,
    require_inputs,
    resolve_output_uri,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from airflow.sdk import Context


# The helpers moved to operators/common.py; these names stay for code that imported them.
_input_uris = input_uris
_iter_inputs = iter_inputs


class TransformOperator(BaseOperator):
    """
    Apply declarative steps and/or a callable to a dataset, batch by batch, and validate the result.

    Steps (see :mod:`airflow_provider_mlops.etl.steps`): ``select``, ``drop``, ``rename``, ``cast``,
    ``filter`` (a DuckDB SQL condition such as ``"age >= 18 AND plan IN ('pro')"``), ``derive``
    (SQL expressions), ``fill_null``, ``clip``, ``drop_duplicates`` (by key, across the whole
    dataset), ``drop_nulls``, and ``sql`` (one SELECT over the whole input, ``FROM input``, and other
    datasets by name: joins, windows, aggregates; run by DuckDB out of core, see
    :mod:`airflow_provider_mlops.etl.sql`).
    A ``transform_callable`` then receives each batch as a ``pyarrow.RecordBatch`` (or a pandas
    DataFrame with ``callable_format="pandas"``) and returns the new batch.

    ``expected_schema`` (see :mod:`airflow_provider_mlops.etl.validation`) checks columns, types,
    nullability, ranges, allowed values and patterns. A violation fails the task naming the column,
    the rule and the count of bad rows; or, with ``on_violation="quarantine"``, the bad rows go to a
    quarantine dataset (with a ``_violations`` column) and the good ones continue.

    Returns (XCom) ``{"uri", "version", "rows", "rows_in", "bytes", "files", "schema_fingerprint", "format",
    "quarantine_uri", "bad_rows"}``.

    :param input_uri: a dataset URI, an upstream Extract/Transform XCom (``{"uri": ...}``) or a list
        of them (read one after the other; same columns expected). (templated)
    :param steps: the declarative steps, a list of one-key dicts. (templated)
    :param transform_callable: a function applied to each batch after the steps.
    :param callable_format: ``arrow`` or ``pandas``.
    :param expected_schema: the validation spec applied to the output.
    :param on_violation: ``fail`` or ``quarantine``.
    :param output_uri: default ``<staging>/<dag_id>/<task_id>/<ds>``. (templated)
    :param quarantine_uri: default ``<output_uri>_quarantine``. (templated)
    :param input_format: ``parquet``, ``csv`` or ``jsonl``.
    :param storage_conn_id: connection for ``s3://`` URIs (default ``[mlops] storage_conn_id``).
    :param batch_size: rows per batch.
    :param sql_memory_limit: DuckDB's memory limit for ``sql`` steps (e.g. ``"512MB"``); beyond it
        joins, aggregates and sorts spill to a directory in the task's temporary directory.
    """

    template_fields: Sequence[str] = ("input_uri", "steps", "output_uri", "quarantine_uri")
    template_fields_renderers = {"steps": "json"}
    ui_color = "#fff3e0"

    def __init__(
        self,
        *,
        input_uri: Any,
        steps: Sequence[Mapping[str, Any]] = (),
        transform_callable: Callable[[Any], Any] | None = None,
        callable_format: Literal["arrow", "pandas"] = "arrow",
        expected_schema: Mapping[str, Any] | None = None,
        on_violation: Literal["fail", "quarantine"] = "fail",
        output_uri: str | None = None,
        quarantine_uri: str | None = None,
        input_format: str = "parquet",
        storage_conn_id: str | None = None,
        batch_size: int = 50_000,
        sql_memory_limit: str = "512MB",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if on_violation not in ("fail", "quarantine"):
            raise ValueError("on_violation must be 'fail' or 'quarantine'")
        self.input_uri = input_uri
        self.steps = steps
        self.transform_callable = transform_callable
        self.callable_format = callable_format
        self.expected_schema = expected_schema
        self.on_violation = on_violation
        self.output_uri = output_uri
        self.quarantine_uri = quarantine_uri
        self.input_format = input_format
        self.storage_conn_id = storage_conn_id
        self.batch_size = batch_size
        self.sql_memory_limit = sql_memory_limit
        self._lineage: dict[str, Any] = {}

    @fail_fast()
    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_provider_mlops.etl.steps import Pipeline
        from airflow_provider_mlops.etl.validation import Validator
        from airflow_provider_mlops.utils.staging import resolve_uri

        inputs = require_inputs(self.input_uri)
        storage = storage_hook(self.storage_conn_id)
        # sql steps spill here (removed at the end, failed or not)
        spill = tempfile.TemporaryDirectory(prefix="mlops-sql-") if _has_sql(self.steps) else None

        def open_dataset(value: Any) -> Any:
            uris = require_inputs(value, "a sql step's input")
            named.extend(u for u in uris if u not in named)
            return iter_inputs(storage, uris, format=self.input_format, batch_size=self.batch_size)

        named: list[str] = []  # the datasets sql steps read, for lineage
        pipeline = Pipeline(
            list(self.steps),
            callable=self.transform_callable,
            callable_format=self.callable_format,
            open_dataset=open_dataset,
            sql_memory_limit=self.sql_memory_limit,
            sql_temp_directory=spill.name if spill else None,
            batch_size=self.batch_size,
        )
        validator = Validator(self.expected_schema) if self.expected_schema else None
        output = resolve_output_uri(self.output_uri, context)
        quarantine = resolve_uri(self.quarantine_uri or f"{output.rstrip('/')}_quarantine")
        quarantined: list[Any] = []

        def validated() -> Any:
            source = iter_inputs(storage, inputs, format=self.input_format, batch_size=self.batch_size)
            for batch in pipeline.apply(source):
                if validator is None:
                    yield batch
                    continue
                good, bad = validator.split(batch)
                if bad is not None and self.on_violation == "quarantine":
                    quarantined.append(bad)
                yield good

        def refuse_invalid(_manifest: Any) -> None:
            # Runs before the commit: a failed validation leaves the previous output in place and
            # no half-valid dataset for anyone to pick up by URI.
            if validator is not None and self.on_violation == "fail" and validator.report.bad_rows:
                self.log.info("Validation: %s", validator.report.as_dict())
                validator.raise_if_invalid()

        self.log.info("Transforming %s with %s step(s) into %s", inputs, len(pipeline.steps), output)
        try:
            result = storage.write_dataset(
                output,
                validated(),
                metadata={"inputs": inputs, "steps": list(self.steps)},
                before_commit=refuse_invalid,
            )
        finally:
            if spill is not None:
                spill.cleanup()
        inputs = [*inputs, *(u for u in named if u not in inputs)]
        bad_rows = validator.report.bad_rows if validator else 0
        if validator is not None:
            self.log.info("Validation: %s", validator.report.as_dict())
        quarantine_result = None
        if self.on_violation == "quarantine":
            # Bad rows are few by nature; written (and a stale quarantine replaced) on every run.
            quarantine_result = storage.write_dataset(quarantine, iter(quarantined)) if quarantined else None
            if quarantine_result is None and storage.exists(quarantine):
                storage.delete_prefix(quarantine)
            if validator is not None and bad_rows:
                self.log.warning(
                    "%s bad row(s) quarantined to %s: %s", bad_rows, quarantine, validator.report.summary()
                )
        self._lineage = {"inputs": inputs, "output": output, "schema": result["schema"]}
        self.log.info(
            "%s rows in, %s rows out (%s filtered out, %s duplicates dropped, %s bad)",
            pipeline.rows_in,
            result["rows"],
            pipeline.filtered_out,
            pipeline.duplicates_dropped,
            bad_rows,
        )
        return {
            "uri": result["uri"],
            "version": result["version"],
            "rows": result["rows"],
            "rows_in": pipeline.rows_in,
            "bytes": result["bytes"],
            "files": len(result["files"]),
            "schema_fingerprint": result["schema_fingerprint"],
            "format": result["format"],
            "quarantine_uri": quarantine_result["uri"] if quarantine_result else None,
            "bad_rows": bad_rows,
        }

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        from airflow_provider_mlops.utils.lineage import LineageDataset, dataset_for, operator_lineage

        if not self._lineage:
            return None
        output = dataset_for("storage", None, self._lineage["output"])
        return operator_lineage(
            lineage_inputs(self._lineage["inputs"]),
            [LineageDataset(output.namespace, output.name, self._lineage["schema"])],
        )


def _has_sql(steps: Any) -> bool:
    return any(isinstance(step, Mapping) and "sql" in step for step in steps or ())
