"""The shared operator helpers: inputs, outputs, storage defaults, fail-fast errors."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException, AirflowSkipException

from airflow_provider_mlops.datasets import DatasetCorruptError
from airflow_provider_mlops.etl.expressions import ExpressionError
from airflow_provider_mlops.http.exceptions import MalformedPageError, RetryableHttpError
from airflow_provider_mlops.operators import common
from airflow_provider_mlops.utils.arrow import SchemaMismatchError


def _context() -> dict[str, Any]:
    return {"ti": SimpleNamespace(dag_id="d", task_id="t", map_index=-1), "ds": "2026-01-01", "run_id": "r"}


def test_input_uris_accept_a_uri_an_xcom_dict_or_a_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__MLOPS__STAGING_URI", "file:///stage")
    assert common.input_uris(None) == []
    assert common.input_uris("s3://b/x") == ["s3://b/x"]
    assert common.input_uris({"uri": "staging://a/b", "rows": 3}) == ["file:///stage/a/b"]
    assert common.input_uris(["s3://b/x", {"uri": "s3://b/y"}]) == ["s3://b/x", "s3://b/y"]
    # the version an upstream task committed is the one read (a later commit does not change the rows)
    assert common.input_uris({"uri": "s3://b/x", "version": 3}) == ["s3://b/x@v3"]
    assert common.input_uris({"uri": "s3://b/x", "version": None}) == ["s3://b/x"]
    assert common.input_uris({"uri": "s3://b/x@v2", "version": 2}) == ["s3://b/x@v2"]
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
    from airflow_provider_mlops.hooks.s3 import storage_hook

    assert storage_hook(None).aws_conn_id == "lake"
    assert storage_hook("other").aws_conn_id == "other"


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
