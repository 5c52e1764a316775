"""The shared operator helpers: inputs, outputs, storage defaults, fail-fast errors, source options."""

from __future__ import annotations

import dataclasses
import inspect
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException, AirflowSkipException

from airflow_provider_mlops.datasets import DatasetCorruptError
from airflow_provider_mlops.etl.expressions import ExpressionError
from airflow_provider_mlops.etl.sources import SOURCE_OPTIONS, SourceOptions
from airflow_provider_mlops.http.exceptions import MalformedPageError, RetryableHttpError
from airflow_provider_mlops.operators import common
from airflow_provider_mlops.operators.extract import _OPERATOR_NAMES, ExtractOperator
from airflow_provider_mlops.utils.arrow import SchemaMismatchError


def _context() -> dict[str, Any]:
    return {"ti": SimpleNamespace(dag_id="d", task_id="t", map_index=-1), "ds": "2026-01-01", "run_id": "r"}


def test_input_uris_accept_a_uri_an_xcom_dict_or_a_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__MLOPS__STAGING_URI", "file:///stage")
    assert common.input_uris(None) == []
    assert common.input_uris("s3://b/x") == ["s3://b/x"]
    assert common.input_uris({"uri": "staging://a/b", "rows": 3}) == ["file:///stage/a/b"]
    assert common.input_uris(["s3://b/x", {"uri": "s3://b/y"}]) == ["s3://b/x", "s3://b/y"]
    with pytest.raises(ValueError, match="has no 'uri'"):
        common.input_uris({"rows": 3})
    with pytest.raises(ValueError, match="evaluation_uri is empty"):
        common.require_inputs([], "evaluation_uri")


def test_output_uri_is_the_given_one_or_the_tasks_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__MLOPS__STAGING_URI", "file:///stage")
    assert common.resolve_output_uri("s3://b/out", _context()) == "s3://b/out"
    assert common.resolve_output_uri("staging://x", _context()) == "file:///stage/x"
    assert common.resolve_output_uri(None, _context()) == "file:///stage/d/t/2026-01-01"
    assert common.resolve_output_uri(None, _context(), suffix="model") == "file:///stage/d/t/2026-01-01/model"
    assert common.static_uri("s3://b/x") and not common.static_uri("staging://x")
    assert not common.static_uri("s3://b/{{ ds }}") and not common.static_uri(None)


def test_storage_hook_falls_back_on_the_configured_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__MLOPS__STORAGE_CONN_ID", "lake")
    assert common.storage_hook(None).aws_conn_id == "lake"
    assert common.storage_hook("other").aws_conn_id == "other"


@pytest.mark.parametrize(
    "error",
    [
        ValueError("bad option"),
        KeyError("column 'x'"),
        SchemaMismatchError("column a: int64 vs string"),
        ExpressionError("unknown name"),
        DatasetCorruptError("file missing"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_fail_fast_turns_permanent_errors_into_airflow_fail(error: Exception) -> None:
    with pytest.raises(AirflowFailException) as failed, common.fail_fast():
        raise error
    assert failed.value.__cause__ is error
    assert str(failed.value) == (error.args[0] if isinstance(error, KeyError) else str(error))


@pytest.mark.parametrize(
    "error",
    [
        OSError("connection reset"),
        RetryableHttpError("503", 503, None),
        MalformedPageError("truncated JSON"),  # a ValueError, but the HTTP layer's call
        AirflowSkipException("nothing to do"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_fail_fast_leaves_retryable_and_airflow_errors_alone(error: Exception) -> None:
    with pytest.raises(type(error)), common.fail_fast():
        raise error


def test_fail_fast_knows_mlflow_answers_that_a_retry_cannot_change() -> None:
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST, TEMPORARILY_UNAVAILABLE

    missing = MlflowException(
        "Model Version (name=m, version=9) not found", error_code=RESOURCE_DOES_NOT_EXIST
    )
    with pytest.raises(AirflowFailException, match="version=9"), common.fail_fast():
        raise missing
    down = MlflowException("503 from the tracking server", error_code=TEMPORARILY_UNAVAILABLE)
    with pytest.raises(MlflowException), common.fail_fast():
        raise down


def test_fail_fast_decorates_and_takes_extra_classes() -> None:
    @common.fail_fast(LookupError)
    def run() -> None:
        raise IndexError("no such version")

    with pytest.raises(AirflowFailException, match="no such version"):
        run()


# --------------------------------------------------------------------------------------------------
# ExtractOperator's source options
# --------------------------------------------------------------------------------------------------
def test_the_operator_names_every_source_option_with_the_same_defaults() -> None:
    assert tuple(_OPERATOR_NAMES) == SOURCE_OPTIONS
    defaults = inspect.unwrap(ExtractOperator.__init__).__kwdefaults__
    for field in dataclasses.fields(SourceOptions):
        assert defaults[_OPERATOR_NAMES[field.name]] == field.default, field.name


def test_source_as_one_dict_or_options_object_or_keywords_is_the_same_task() -> None:
    keywords = ExtractOperator(
        task_id="a", source_conn_id="api", endpoint="items", request_params={"p": 1}, max_pages=2
    )
    as_dict = ExtractOperator(
        task_id="b", source_conn_id="api", source={"endpoint": "items", "params": {"p": 1}, "max_pages": 2}
    )
    as_options = ExtractOperator(
        task_id="c",
        source_conn_id="api",
        source=SourceOptions(endpoint="items", params={"p": 1}, max_pages=2),
    )
    for op in (keywords, as_dict, as_options):
        assert op.source_options() == SourceOptions(endpoint="items", params={"p": 1}, max_pages=2)
        assert op.endpoint == "items" and op.request_params == {"p": 1}  # the templated attributes


def test_source_options_refuse_unknown_names_and_conflicts() -> None:
    with pytest.raises(ValueError, match=r"Unknown source option\(s\) \['sqll'\]"):
        ExtractOperator(task_id="a", source_conn_id="db", source={"sqll": "SELECT 1"})
    with pytest.raises(ValueError, match="'sql' is given both"):
        ExtractOperator(task_id="a", source_conn_id="db", sql="SELECT 1", source={"sql": "SELECT 2"})
    with pytest.raises(ValueError, match="extra must be error or ignore"):
        ExtractOperator(task_id="a", source_conn_id="db", source={"extra": "drop"})
    # the same value both ways is no conflict
    op = ExtractOperator(task_id="a", source_conn_id="db", sql="SELECT 1", source={"sql": "SELECT 1"})
    assert op.sql == "SELECT 1"


def test_source_dict_values_are_templated() -> None:
    op = ExtractOperator(task_id="a", source_conn_id="db", source={"sql": "SELECT '{{ ds }}'"})
    op.render_template_fields({"ds": "2026-01-02"})  # type: ignore[arg-type]
    assert op.sql == "SELECT '2026-01-02'"
    assert op.source_options().sql == "SELECT '2026-01-02'"
