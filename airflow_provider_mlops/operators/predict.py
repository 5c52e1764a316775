"""BatchPredictOperator: score a dataset with a registered model, batch by batch, into a dataset."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_provider_mlops.hooks.s3 import storage_hook
from airflow_provider_mlops.ml.specs import PredictionColumns
from airflow_provider_mlops.operators.common import (
    fail_fast,
    require_inputs,
    resolve_output_uri,
    static_uri,
)

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    import pyarrow as pa
    from airflow.sdk import Context

    from airflow_provider_mlops.ml.serialization import LoadPolicy


class BatchPredictOperator(BaseOperator):
    """
    Score a dataset with the champion of a registered model (or a given version) and write the
    predictions as a dataset.

    The input is read as bounded Arrow record batches (``batch_size`` rows), each batch is scored and
    written before the next is read: memory stays flat whatever the input size. The model is loaded
    once, through :func:`airflow_provider_mlops.ml.serialization.load_model_version` (its bytes must
    match the sha256 recorded on the MLflow model version before anything is deserialized).

    Each output row holds the ``columns.keep`` columns of the input (default: all of them), the
    prediction, one ``<probability_prefix><class>`` column per class when the model has
    ``predict_proba``, and the model's name and version
    (:class:`~airflow_provider_mlops.ml.specs.PredictionColumns`). The output is written with the dataset commit protocol to a URI
    that is deterministic per task and logical date, so a retry or re-run replaces it (idempotent);
    a static ``output_uri`` is declared as the task's outlet Asset.

    Returns (XCom) ``{"uri", "version", "rows", "files", "bytes", "model_name", "model_version", "sha256"}``.

    :param input_uri: dataset URI(s) or upstream XCom dicts with ``uri``. (templated)
    :param registered_model_name: the registered model. (templated)
    :param version: score with this version instead of the alias (number or XCom dict). (templated)
    :param alias: the alias whose version scores when ``version`` is not given.
    :param output_uri: where the predictions go; default the task's staging URI for the logical
        date. (templated)
    :param columns: the output's columns (:class:`~airflow_provider_mlops.ml.specs.PredictionColumns`:
        input columns kept, the prediction's name, class probabilities and their prefix).
    :param batch_size: rows per batch read, scored and written.
    :param mlflow_conn_id: MLflow connection; None for the embedded default.
    :param storage_conn_id: connection for ``s3://`` URIs.
    :param load_policy: what the trusted loader may deserialize
        (:class:`~airflow_provider_mlops.ml.serialization.LoadPolicy`; default skops with the built-in
        allowlist, no cloudpickle).
    """

    template_fields: Sequence[str] = (
        "input_uri",
        "registered_model_name",
        "version",
        "output_uri",
    )
    ui_color = "#e8f5e9"

    def __init__(
        self,
        *,
        input_uri: Any,
        registered_model_name: str,
        version: Any = None,
        alias: str = "champion",
        output_uri: str | None = None,
        columns: PredictionColumns | None = None,
        batch_size: int = 50_000,
        mlflow_conn_id: str | None = None,
        storage_conn_id: str | None = None,
        load_policy: LoadPolicy | None = None,
        **kwargs: Any,
    ) -> None:
        if "outlets" not in kwargs and static_uri(output_uri):
            from airflow_provider_mlops.assets import storage_asset

            kwargs["outlets"] = [storage_asset(str(output_uri))]
        super().__init__(**kwargs)
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.input_uri = input_uri
        self.registered_model_name = registered_model_name
        self.version = version
        self.alias = alias
        self.output_uri = output_uri
        self.columns = columns or PredictionColumns()
        self.batch_size = batch_size
        self.mlflow_conn_id = mlflow_conn_id
        self.storage_conn_id = storage_conn_id
        self.load_policy = load_policy

    @fail_fast()
    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_provider_mlops.hooks.mlflow import MlflowHook

        inputs = require_inputs(self.input_uri)
        storage = storage_hook(self.storage_conn_id)
        # The version, alias and digest tag are read through the hook, whatever the backend
        # (docs/performance.md: its cost against MLflow's REST API over plain HTTP).
        loaded = MlflowHook(self.mlflow_conn_id).load_model_version(
            self.registered_model_name,
            self.version,
            alias=self.alias,
            storage=storage,
            policy=self.load_policy,
        )
        uri = resolve_output_uri(self.output_uri, context)
        self.log.info(
            "Scoring %s with %s version %s (sha256 %s) into %s",
            inputs,
            loaded.name,
            loaded.version,
            loaded.sha256,
            uri,
        )
        summary = storage.write_dataset(
            uri,
            self._scored(storage, inputs, loaded),
            metadata={
                "model_name": loaded.name,
                "model_version": loaded.version,
                "model_sha256": loaded.sha256,
                "inputs": inputs,
            },
        )
        self.log.info("Wrote %s predictions to %s", summary.get("rows"), uri)
        return {
            "uri": uri,
            "version": summary.get("version"),
            "rows": summary.get("rows"),
            "files": summary.get("files"),
            "bytes": summary.get("bytes"),
            "model_name": loaded.name,
            "model_version": loaded.version,
            "sha256": loaded.sha256,
        }

    def _scored(self, storage: Any, inputs: list[str], loaded: Any) -> Iterator[pa.RecordBatch]:
        """One output batch per input batch: nothing larger than ``batch_size`` rows is held."""
        import pyarrow as pa

        from airflow_provider_mlops.serving.compiled import compile_pipeline

        model = loaded.model
        features = [str(c) for c in getattr(model, "feature_names_in_", [])]
        spec = self.columns
        proba = spec.probabilities and hasattr(model, "predict_proba")
        classes = [str(c) for c in getattr(model, "classes_", [])] if proba else []
        # The example Pipeline's preprocessing as exact array operations (checked bit-for-bit against
        # the Pipeline when compiled); a batch holding a value it does not cover goes to the Pipeline.
        compiled = compile_pipeline(model)
        self.log.info(
            "Scoring with %s",
            "the compiled preprocessing (identical to the Pipeline's)" if compiled else "the Pipeline",
        )
        constants: dict[str, pa.Array] = {}

        def constant(value: str, rows: int) -> pa.Array:
            # one array per value, sliced per batch (zero-copy) instead of a list of strings per batch
            array = constants.get(value)
            if array is None or len(array) < rows:
                array = constants[value] = pa.array([value] * max(rows, self.batch_size), type=pa.string())
            return array.slice(0, rows)

        for uri in inputs:
            for batch in storage.iter_batches(uri, batch_size=self.batch_size):
                if batch.num_rows == 0:
                    continue
                names_in = batch.schema.names
                missing = [c for c in features if c not in names_in]
                if missing:
                    raise ValueError(
                        f"{uri} lacks the model's input column(s) {missing} (model expects {features})"
                    )
                keep = list(spec.keep) if spec.keep is not None else names_in
                absent = [c for c in keep if c not in names_in]
                if absent:
                    raise ValueError(f"PredictionColumns.keep {absent} are not in {uri}")
                predictions, probabilities = self._predict(batch, model, compiled, features, proba)
                arrays = [batch.column(c) for c in keep]
                names = list(keep)
                arrays.append(pa.array(predictions))
                names.append(spec.prediction)
                if proba:
                    for i, cls in enumerate(classes):
                        arrays.append(pa.array(probabilities[:, i], type=pa.float64()))
                        names.append(f"{spec.probability_prefix}{cls}")
                arrays.append(constant(loaded.name, batch.num_rows))
                names.append("model_name")
                arrays.append(constant(loaded.version, batch.num_rows))
                names.append("model_version")
                yield pa.RecordBatch.from_arrays(arrays, names=names)

    @staticmethod
    def _predict(batch: Any, model: Any, compiled: Any, features: list[str], proba: bool) -> tuple[Any, Any]:
        """(predictions, probabilities or None) for one Arrow batch: compiled when it covers the batch."""
        if compiled is not None:
            # numbers: float64 with NaN for nulls (as pandas reads them); text: str objects, None for
            # nulls (which the compiled form declines, sending the batch to the Pipeline)
            values = {c: batch.column(c).to_numpy(zero_copy_only=False) for c in compiled.columns}
            x = compiled.features(values, batch.num_rows)
            if x is not None:
                return compiled.predict(x), compiled.predict_proba(x) if proba else None
        from airflow_provider_mlops.ml.features import categorical_as_object

        frame = batch.select(features).to_pandas() if features else batch.to_pandas()
        text = [c for c in frame.columns if not _is_numeric(frame[c])]
        x = categorical_as_object(frame, text)
        return model.predict(x), model.predict_proba(x) if proba else None


def _is_numeric(column: Any) -> bool:
    import pandas as pd

    return bool(pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column))
