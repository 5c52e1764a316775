"""ExtractOperator: any source -> a Parquet dataset in object storage, by reference through XCom."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from airflow.sdk import BaseOperator

from airflow_provider_mlops.hooks.s3 import storage_hook
from airflow_provider_mlops.operators.common import fail_fast, resolve_output_uri
from airflow_provider_mlops.sources import SourceSpec

if TYPE_CHECKING:
    from collections.abc import Sequence

    import jinja2
    from airflow.sdk import Context

EmptyPolicy = Literal["succeed", "skip", "fail"]


class ExtractOperator(BaseOperator):
    """
    Stream what ``source`` names into a Parquet dataset and return its URI.

    ``source`` is one spec of :mod:`airflow_provider_mlops.sources`: :class:`SqlQuery`,
    :class:`MongoFind`, :class:`HttpPages` or :class:`Files`. The connection's type chooses the hook
    that reads it (PostgreSQL with COPY, any other common-sql database, MongoDB, an HTTP API, S3 or
    local files; :func:`~airflow_provider_mlops.hooks.connection_types.get_batch_hook`), and the hook
    reads the spec with its window: with a ``watermark_column``, the run's data interval unless the
    spec gives ``watermark_start`` / ``watermark_end``. Memory stays bounded by the spec's
    ``batch_size``. The spec's templated fields are rendered when the task runs.

    The dataset goes to ``output_uri`` (default ``<staging>/<dag_id>/<task_id>/<ds>``) and replaces
    whatever a previous try wrote there, so re-running a logical date gives the same dataset.

    Returns (XCom) ``{"uri", "version", "rows", "bytes", "files", "schema_fingerprint", "format"}``: downstream
    tasks given this XCom read that committed version (``uri@vN``), whatever is committed later.

    :param source_conn_id: the source connection (None for local files). (templated)
    :param source: what to read, e.g. ``SqlQuery("SELECT ...", watermark_column="updated_at")``.
    :param output_uri: where to write; default a deterministic staging URI. (templated)
    :param storage_conn_id: connection for ``s3://`` output (default ``[mlops] storage_conn_id``).
    :param schema: a fixed schema (a contract) instead of one that evolves with the data: a
        ``pyarrow.Schema``, a list of ``{"name": ..., "type": ...}`` (the dataset manifest's form) or
        a dict ``{"name": "type"}``, types in Arrow's text form (``int64``, ``float64``, ``string``,
        ``bool``, ``timestamp[us, tz=UTC]``, ``decimal128(38, 2)``, ``list<string>``,
        ``struct<a: int64>``), so a DAG file needs no pyarrow import. Values are converted to these
        types with Arrow's safe casts (ISO text into a timestamp); a value that does not convert is
        an error naming the field, the record and the value. SQL and Parquet / CSV sources are read
        with it. (templated)
    :param extra: MongoDB / HTTP / JSON Lines with ``schema``: a field the schema does not declare
        is an error naming it (``error``, default) or is left out (``ignore``); never a silent drop.
    :param type_conflict: MongoDB / HTTP / JSON Lines: a field whose values fit no common lossless
        type (``1`` then ``"n/a"``) fails naming the field, the record and the value (``error``,
        default) or becomes a text column (``string``).
    :param on_empty: what an empty result does: ``succeed`` (0 rows), ``skip`` (downstream skipped)
        or ``fail``. The (empty) dataset is written in every case, replacing a previous try's.
    """

    # `source` is rendered by render_template_fields (a frozen spec refuses Airflow's setattr); it is
    # listed here so that the rendered spec shows in the task's Rendered Template view.
    template_fields: Sequence[str] = ("source_conn_id", "source", "output_uri", "schema")
    template_ext: Sequence[str] = (".sql",)
    ui_color = "#e3f2fd"

    def __init__(
        self,
        *,
        source_conn_id: str | None,
        source: SourceSpec,
        output_uri: str | None = None,
        storage_conn_id: str | None = None,
        schema: Any = None,
        extra: Literal["error", "ignore"] = "error",
        type_conflict: Literal["error", "string"] = "error",
        on_empty: EmptyPolicy = "succeed",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not isinstance(source, SourceSpec):
            raise TypeError(
                "source must be a spec of airflow_provider_mlops.sources (SqlQuery, MongoFind, HttpPages "
                f"or Files), got {type(source).__name__}"
            )
        if extra not in ("error", "ignore"):
            raise ValueError(f"extra must be error or ignore, got {extra!r}")
        if type_conflict not in ("error", "string"):
            raise ValueError(f"type_conflict must be error or string, got {type_conflict!r}")
        if on_empty not in ("succeed", "skip", "fail"):
            raise ValueError(f"on_empty must be succeed, skip or fail, got {on_empty!r}")
        self.source_conn_id = source_conn_id
        self.source = source
        self.output_uri = output_uri
        self.storage_conn_id = storage_conn_id
        self.schema = schema
        self.extra = extra
        self.type_conflict = type_conflict
        self.on_empty = on_empty
        self._lineage: dict[str, Any] = {}

    def render_template_fields(self, context: Context, jinja_env: jinja2.Environment | None = None) -> None:
        """Airflow's rendering, then the spec's templated fields, into a rendered copy of it."""
        jinja_env = jinja_env or self.get_template_env()
        super().render_template_fields(context, jinja_env)
        self.source = self.source.render(lambda value: self.render_template(value, context, jinja_env))

    def window(self, context: Context) -> Any:
        """
        The :class:`~airflow_provider_mlops.sources.Window` the source keeps: the spec's bounds,
        else the run's data interval; None without a ``watermark_column``.
        """
        from airflow_provider_mlops.sources import Window, parse_instant

        spec = self.source
        if not spec.watermark_column:
            return None
        start, end = spec.watermark_start, spec.watermark_end
        # Read from the context, not templated by default: asset-triggered and manual runs without a
        # logical date have no data interval, and only a watermark needs one.
        if start is None:
            start = context.get("data_interval_start")
        if end is None:
            end = context.get("data_interval_end")
        if start is None and end is None:
            raise ValueError(
                "watermark_column is set but this run has no data interval (e.g. an asset-triggered "
                "run): give watermark_start / watermark_end"
            )
        if start and parse_instant(start) == parse_instant(end):
            raise ValueError(
                f"The watermark window is empty ({start} .. {end}). Airflow 3's default cron schedule "
                "(CronTriggerTimetable) gives runs a zero-length data interval: schedule the DAG with "
                "CronDataIntervalTimetable, or give watermark_start / watermark_end explicitly."
            )
        return Window.of(start, end)

    @fail_fast()  # bad options, an empty window, on_empty="fail": a retry would meet the same
    def execute(self, context: Context) -> dict[str, Any]:
        from airflow.providers.common.compat.sdk import AirflowFailException, AirflowSkipException

        from airflow_provider_mlops.hooks.connection_types import connection_kind, get_batch_hook
        from airflow_provider_mlops.utils.schema import schema_from_spec

        window = self.window(context)
        kind = connection_kind(self.source_conn_id)
        hook = get_batch_hook(self.source_conn_id, kind)
        batches = hook.read(
            self.source,
            window,
            schema=schema_from_spec(self.schema),
            extra=self.extra,
            type_conflict=self.type_conflict,
        )
        source = {"kind": kind, "conn_id": self.source_conn_id, "name": self.source.name}
        uri = resolve_output_uri(self.output_uri, context)
        storage = storage_hook(self.storage_conn_id)
        self.log.info(
            "Extracting %s %r from %s into %s", source["kind"], source["name"], self.source_conn_id, uri
        )

        def refuse_empty(manifest: Any) -> None:
            # Before the commit: an empty source with on_empty="fail" keeps the previous dataset.
            if manifest.rows == 0 and self.on_empty == "fail":
                raise AirflowFailException(
                    f"The source returned no rows ({source['kind']} {source['name']!r}); "
                    f"nothing was committed to {uri}"
                )

        result = storage.write_dataset(
            uri,
            batches,
            metadata={"source": source, "dag_id": context["ti"].dag_id, "run_id": context["run_id"]},
            before_commit=refuse_empty,
            type_conflict=self.type_conflict,
        )
        # the committed schema comes back with the write: no second read of the manifest
        self._lineage = {"source": source, "output": uri, "schema": result["schema"]}
        summary = {k: result[k] for k in ("uri", "version", "rows", "bytes", "schema_fingerprint", "format")}
        summary["files"] = len(result["files"])
        if result["rows"] == 0:
            if self.on_empty == "skip":
                raise AirflowSkipException(f"The source returned no rows; downstream is skipped ({uri})")
            self.log.warning("The source returned no rows; an empty dataset was written to %s", uri)
        return summary

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        from airflow_provider_mlops.utils.lineage import LineageDataset, dataset_for, operator_lineage

        if not self._lineage:
            return None
        source = self._lineage["source"]
        output = dataset_for("storage", None, self._lineage["output"])
        return operator_lineage(
            [dataset_for(source["kind"], source["conn_id"], source["name"])],
            [LineageDataset(output.namespace, output.name, self._lineage["schema"])],
        )
