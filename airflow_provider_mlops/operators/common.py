"""
What every operator and sensor of the provider does the same way with storage, inputs and failures.

- :func:`input_uris` / :func:`require_inputs` / :func:`iter_inputs`: an ``input_uri`` given as a
  URI (``staging://`` resolved), an upstream XCom dict with ``uri``, or a list of either, and the
  batches of those datasets one after the other;
- :func:`pin_inputs`: each input pinned to the Delta version read (``uri@v12`` or the latest), the
  version recorded as lineage and the rows read through ``pin.read_uri``;
- :func:`resolve_output_uri`: the URI a task writes to: the one given (``staging://`` resolved) or the
  default per task and logical date (``<staging>/<dag_id>/<task_id>/<ds>``);
- :func:`fail_fast`: errors a retry cannot fix become ``AirflowFailException`` (no retries burnt).

The storage hook for dataset URIs is :func:`airflow_provider_mlops.hooks.s3.storage_hook`.
This module lives beside the operators, not in ``utils/``: it composes the storage hook and the task
context, and ``utils/`` sits below the hooks (importing a hook from there would point upward).
Like every provider module, it imports nothing heavy at module level (DAG files import it).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

    from airflow_provider_mlops.ml.lineage import DataPin


__all__ = [
    "fail_fast",
    "input_uris",
    "iter_inputs",
    "pin_inputs",
    "require_inputs",
    "resolve_output_uri",
    "static_uri",
]


def input_uris(value: Any) -> list[str]:
    """
    Accept a URI, an Extract/Transform XCom dict (``{"uri": ..., "version": ...}``) or a list of
    either. A dict's ``version`` (the Delta version the upstream task committed) pins the URI
    (``uri@vN``): a later commit to the table (a zombie attempt of the upstream task, another writer)
    does not change the rows a downstream task or its retry reads.
    """
    if value is None:
        return []
    from airflow_provider_mlops.utils.staging import resolve_uri

    if isinstance(value, str):
        return [resolve_uri(value)]
    if isinstance(value, Mapping):
        if "uri" not in value:
            raise ValueError(f"Input {value!r} has no 'uri'")
        from airflow_provider_mlops.datasets.delta import split_version

        uri, pinned = split_version(resolve_uri(str(value["uri"])))
        version = value.get("version")
        if pinned is None and version is not None:
            pinned = int(version)
        return [uri if pinned is None else f"{uri}@v{pinned}"]
    return [uri for item in value for uri in input_uris(item)]


def lineage_inputs(uris: list[str]) -> list[Any]:
    """
    OpenLineage datasets of input URIs: a pinned ``uri@vN`` is the dataset ``uri`` with its version
    facet (the name an upstream task's output has), never a dataset named ``...@vN``.
    """
    from airflow_provider_mlops.datasets.delta import split_version
    from airflow_provider_mlops.utils.lineage import dataset_for, versioned

    return [versioned(dataset_for("storage", None, base), v) for base, v in map(split_version, uris)]


def require_inputs(value: Any, name: str = "input_uri") -> list[str]:
    """:func:`input_uris`, refusing an empty answer with an error naming the argument."""
    inputs = input_uris(value)
    if not inputs:
        raise ValueError(f"{name} is empty")
    return inputs


def iter_inputs(
    storage: Any, inputs: list[str], *, format: str = "parquet", batch_size: int = 50_000
) -> Iterator[pa.RecordBatch]:
    """Every batch of every input dataset, one after the other."""
    for uri in inputs:
        yield from storage.iter_batches(uri, format=format, batch_size=batch_size)


def pin_inputs(storage: Any, inputs: list[str]) -> list[DataPin]:
    """
    Each input pinned to the Delta version read: the one its URI names (``uri@v12``), else the
    latest committed now; plain files (not a table) have no version. Read ``pin.read_uri`` afterwards:
    a commit landing meanwhile does not change the rows, and the version recorded is the one read.

    :raises DatasetError: a version that does not exist, naming the URI and the versions that do
        (a permanent error: :func:`fail_fast` makes it an ``AirflowFailException``); a version asked
        of a URI that is not a Delta table.
    """
    from airflow_provider_mlops.datasets import DatasetError
    from airflow_provider_mlops.datasets.delta import split_version
    from airflow_provider_mlops.ml.lineage import DataPin

    pins = []
    for uri in inputs:
        base, version = split_version(uri)
        if version is not None and not storage.is_table(base):
            raise DatasetError(
                f"{uri} asks for version {version}, but {base} is not a Delta table (no commit in "
                "_delta_log/): plain files have no versions; give the URI without @v"
            )
        try:
            info = storage.dataset_info(uri)
        except DatasetError as err:
            if version is None:
                raise
            raise DatasetError(
                f"{base} has no version {version}; its versions are {_versions(storage, base)}. "
                f"Read one of those ({base}@v<version>) or the latest ({base}). ({err})"
            ) from err
        pins.append(DataPin(base, None if info is None else int(info["version"])))
    return pins


def _versions(storage: Any, base: str) -> str:
    """The versions in a table's log, as ranges (``0-4, 6``); ``none`` when it has no log."""
    import re

    from airflow_provider_mlops.datasets import DELTA_LOG
    from airflow_provider_mlops.storage.uri import parse_uri

    prefix = parse_uri(base).child(DELTA_LOG).as_prefix().uri
    found = sorted(
        int(m.group(1))
        for u in storage.list_uris(prefix)
        if (m := re.search(r"(\d{20})\.json$", u)) is not None
    )
    ranges: list[list[int]] = []
    for number in found:
        if ranges and number == ranges[-1][1] + 1:
            ranges[-1][1] = number
        else:
            ranges.append([number, number])
    return ", ".join(f"{a}-{b}" if b > a else str(a) for a, b in ranges) or "none"


def resolve_output_uri(uri: str | None, context: Mapping[str, Any], *, suffix: str | None = None) -> str:
    """``uri`` with ``staging://`` resolved, or the task's default for this logical date."""
    from airflow_provider_mlops.utils.staging import resolve_uri, task_output_uri

    return resolve_uri(uri) if uri else task_output_uri(context, suffix=suffix)


def static_uri(uri: str | None) -> bool:
    """Whether ``uri`` is known at parse time (no template, no staging root): it can be an Asset."""
    return bool(uri) and "{{" not in str(uri) and not str(uri).startswith("staging://")


def _permanent_errors() -> tuple[type[BaseException], ...]:
    # ValueError covers the provider's own configuration and data errors (SchemaMismatchError,
    # SchemaViolation, ExpressionError, StepError, WriteContractError, TrainingError, the spec
    # errors of ml/) and pyarrow's ArrowInvalid; KeyError a missing column or key.
    from airflow_provider_mlops.datasets.errors import DatasetError
    from airflow_provider_mlops.ml.serialization import ModelIntegrityError

    return (ValueError, KeyError, DatasetError, ModelIntegrityError)


# MLflow's answers that name a permanent state: no such model / version / alias, a bad argument.
# Its other errors (a server that is down, an internal error) keep Airflow's retries.
MLFLOW_PERMANENT_CODES = frozenset({"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"})


def _permanent_mlflow_error(err: BaseException) -> bool:
    exceptions = sys.modules.get("mlflow.exceptions")  # loaded when the task used MLflow at all
    return (
        exceptions is not None
        and isinstance(err, exceptions.MlflowException)
        and getattr(err, "error_code", None) in MLFLOW_PERMANENT_CODES
    )


def _retryable_errors() -> tuple[type[BaseException], ...]:
    # The HTTP layer decides for itself what a retry may fix (a truncated or malformed page can be
    # a flaky proxy): its errors keep Airflow's retries even when they are ValueErrors.
    from airflow_provider_mlops.http.exceptions import HttpApiError

    return (HttpApiError,)


@contextlib.contextmanager
def fail_fast(*also: type[BaseException]) -> Iterator[None]:
    """
    Turn errors a retry cannot fix into ``AirflowFailException`` (message kept, cause chained).

    Bad configuration, a missing column, a schema or write-contract violation, an uncommitted or
    corrupt dataset, a model whose digest does not match, a registered model, version or alias
    MLflow says does not exist: the next try would meet the same
    arguments and the same data, so it fails now instead of burning its retries. ``also`` adds
    classes for one call (e.g. a missing MLflow model with ``on_missing_reference="fail"``).
    Airflow's own exceptions (skip, defer, sensor timeout) and network errors pass unchanged.

    Works as a context manager and as a decorator (``@fail_fast()`` on ``execute``).
    """
    try:
        yield
    except BaseException as err:
        from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException

        if isinstance(err, (AirflowException, *_retryable_errors())):
            raise
        if isinstance(err, _permanent_errors() + also) or _permanent_mlflow_error(err):
            message = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
            raise AirflowFailException(message or type(err).__name__) from err
        raise
