"""
A keras bundle (:func:`airflow_provider_mlops.ml.keras_tuning.dump_bundle`) logged to MLflow as a
pyfunc model whose loading goes through the trusted loader
(:func:`airflow_provider_mlops.ml.serialization.deserialize_verified`) with the digest written at
logging time: the same check and loader, no second path.

Above both :mod:`~airflow_provider_mlops.ml.keras_tuning` (the format) and
:mod:`~airflow_provider_mlops.ml.serialization` (the loader), so neither imports the other back.
"""

# lazy-imports: runtime-only (mlflow; imported only inside tasks)
from __future__ import annotations

import os
import tempfile
from typing import Any


def pyfunc_model() -> Any:
    """
    An MLflow ``PythonModel`` for the registry's copy of a keras bundle. Its ``load_context`` goes
    through :func:`airflow_provider_mlops.ml.serialization.deserialize_verified` with the digest
    written at logging time (``model_config``): the same check and loader, no second path.
    """
    return KerasBundlePyfunc()


try:  # mlflow is in the ml extra; this module is only imported inside a task
    from mlflow.pyfunc import PythonModel

    class KerasBundlePyfunc(PythonModel):
        def load_context(self, context: Any) -> None:
            from airflow_provider_mlops.ml.serialization import LoadPolicy, deserialize_verified

            with open(context.artifacts["bundle"], "rb") as handle:
                blob = handle.read()
            self.pipeline, _ = deserialize_verified(
                blob,
                expected_sha256=str((context.model_config or {}).get("sha256", "")),
                policy=LoadPolicy(),
                label="keras bundle",
            )

        def predict(self, context: Any, model_input: Any, params: Any = None) -> Any:
            return self.pipeline.predict(model_input)

except ImportError:  # pragma: no cover
    pass


def log_keras_model(
    pipeline: Any,
    *,
    name: str,
    blob: bytes,
    signature: Any = None,
    input_example: Any = None,
    registered_model_name: str | None = None,
    pip_requirements: list[str] | None = None,
) -> Any:
    """Log (and register) a keras bundle to MLflow as a pyfunc model; ``blob`` is :func:`dump_bundle`'s output."""
    from importlib.metadata import version

    import mlflow

    from airflow_provider_mlops.ml.serialization import sha256

    requirements = [*(pip_requirements or [])]
    for package in ("keras", "keras-tuner", "jax", "six"):
        try:
            requirements.append(f"{package}=={version(package)}")
        except Exception:  # pragma: no cover - not installed under this name
            requirements.append(package)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.keras.zip")
        with open(path, "wb") as handle:
            handle.write(blob)
        # No input example: MLflow would load the model in this process only to validate it.
        return mlflow.pyfunc.log_model(
            name=name,
            python_model=pyfunc_model(),
            artifacts={"bundle": path},
            model_config={"sha256": sha256(blob)},
            signature=signature,
            registered_model_name=registered_model_name,
            pip_requirements=requirements,
        )
