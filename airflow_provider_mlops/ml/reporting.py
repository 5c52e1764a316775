"""
What a run reports, as files: the artifacts of a training run, and the plots of a promotion.

Everything here is computed in memory, before anything is registered or uploaded: a
:class:`TrainingArtifacts` (parameters, metrics, files ``{relative path: bytes}``, the reference
profile and the serialized model) for :func:`airflow_provider_mlops.ml.registration.publish`, and
:func:`comparison_files` for the candidate and the champion judged on the same fresh rows.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping


class TrainingArtifacts:
    """
    Everything a trained model is published with, computed (and checked) before anything is
    registered: run parameters and metrics, artifact files, the reference profile, the model bytes,
    its input example and signature.
    """

    def __init__(self, **fields: Any) -> None:
        self.params: dict[str, str] = fields["params"]
        self.metrics: dict[str, float] = fields["metrics"]
        self.files: dict[str, bytes] = fields["files"]  # relative artifact path -> bytes
        self.profile: dict[str, Any] = fields["profile"]
        self.blob: bytes = fields["blob"]
        self.fmt: str = fields["fmt"]
        self.trusted: list[str] = fields["trusted"]
        self.example: Any = fields["example"]
        self.signature: Any = fields["signature"]
        self.pipeline: Any = fields["pipeline"]


def build_artifacts(
    result: Any,
    frame: Any,
    *,
    label: str,
    inputs: list[str],
    specs: Mapping[str, Any],
    params: Mapping[str, Any],
    profile_data: bool,
    seed: int,
) -> TrainingArtifacts:
    """
    Compute every artifact of a training result: plots, evaluation curves, importance, leaderboard,
    profiles, the serialized model, its example and signature. Raises (before any registration)
    when a metric or parameter is not finite.
    """
    from mlflow.models import infer_signature

    from airflow_provider_mlops.ml import evaluation, plots
    from airflow_provider_mlops.ml.profile import build_profile
    from airflow_provider_mlops.ml.serialization import dump_model, float_example
    from airflow_provider_mlops.ml.training import check_finite

    metrics = {
        **result.metrics,
        **{f"baseline_{k}": v for k, v in result.baseline_metrics.items()},
        "train_seconds": result.seconds,
    }
    check_finite(metrics, "metrics for MLflow")
    train_rows = frame.drop(index=result.x_test.index)
    if label in train_rows.columns:
        train_rows = train_rows[train_rows[label].notna()]
    profile = build_profile(
        train_rows,
        numeric=result.numeric_features,
        categorical=result.categorical_features,
        target=label,
        task=result.task,
        metrics=result.metrics,
        uncertainty=result.metric_uncertainty,
        seed=seed,
    )
    files: dict[str, bytes] = {
        "reference_profile.json": json.dumps(profile).encode(),
        "selected_features.json": json.dumps(result.selected_features).encode(),
        "specs.json": json.dumps(dict(specs), default=str).encode(),
        "cv_results.json": json.dumps(result.cv_results, default=str).encode(),
    }
    if result.metrics_unavailable:
        files["metrics_unavailable.json"] = json.dumps(result.metrics_unavailable).encode()
    if profile_data:
        from airflow_provider_mlops.ml.eda import profile_table, render_html

        data_profile = profile_table(frame, target=label, source=", ".join(inputs))
        files["data_profile.json"] = json.dumps(data_profile).encode()
        files["data_profile.html"] = render_html(data_profile, title="Training data profile").encode()
    importance = plots.permutation_importance(result.pipeline, result.x_test, result.y_test, seed=seed)
    files["feature_importance.json"] = json.dumps(importance).encode()
    if result.leaderboard:
        from airflow_provider_mlops.ml.candidates import leaderboard_files

        files.update(leaderboard_files(result.leaderboard))
    files["feature_importance.png"] = plots.importance_png(importance)
    if result.task == "classification":
        files["confusion_matrix.png"] = plots.confusion_matrix_png(
            result.pipeline, result.x_test, result.y_test
        )
    files = {(f"evaluation/{k}" if k.endswith(".png") else k): v for k, v in files.items()}
    # ROC / precision-recall / calibration / threshold table, or residuals (ml/evaluation.py)
    files.update(
        evaluation.evaluation_files(result.pipeline, result.x_test, result.y_test, result.task, seed=seed)[1]
    )
    blob, fmt, trusted = dump_model(result.pipeline)
    example = float_example(result.x_test.head(5))
    signature = infer_signature(example, result.pipeline.predict(example))
    return TrainingArtifacts(
        params={k: str(v)[:500] for k, v in params.items()},
        metrics=metrics,
        files=files,
        profile=profile,
        blob=blob,
        fmt=fmt,
        trusted=trusted,
        example=example,
        signature=signature,
        pipeline=result.pipeline,
    )


def comparison_files(
    models: Mapping[str, tuple[str, Any]], inputs: Any, labels: Any, task: str, *, base: str
) -> dict[str, bytes]:
    """
    The evaluation plots (:func:`~airflow_provider_mlops.ml.evaluation.evaluation_files`) of each
    model on the same rows, under ``<base>/<role>_v<version>/``, plus all of them overlaid in
    ``<base>/comparison.png``. ``models`` maps a role (``candidate``, ``champion``) to
    ``(version, model)``.
    """
    from airflow_provider_mlops.ml.evaluation import evaluation_files
    from airflow_provider_mlops.ml.plots import comparison_png

    files: dict[str, bytes] = {}
    results = {}
    for role, (version, model) in models.items():
        result, produced = evaluation_files(
            model,
            inputs,
            labels,
            task,
            label=f"fresh data, {role} v{version}",
            prefix=f"{base}/{role}_v{version}",
        )
        files.update(produced)
        results[f"{role} v{version}"] = result
    files[f"{base}/comparison.png"] = comparison_png(results, label=f"{len(labels)} fresh rows")
    return files
