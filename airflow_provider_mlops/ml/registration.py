"""
Registering a trained model once per task try: identity tags, reuse or replacement on retry, and
roll-back when anything after the registration fails.

A model version carries the Airflow task that made it (``mlops.airflow.dag_id``, ``task_id``,
``run_id``, ``map_index``; keys in :mod:`airflow_provider_mlops.ml.tags`) from the moment it is
created, and ``mlops.complete = true`` once every
step after the registration has succeeded (model file written and recorded, tags set, the task's
result stored in the run as ``training_result.json``). A retry of the same task and logical date
therefore finds its own version by tags before training again:

* a complete version is reused as it is (no training, no second version), its stored result returned;
* an incomplete one (the worker died between registration and completion) is deleted with its
  model files, then training runs again.

A failure after the registration inside the task (an artifact upload, the XCom push...) deletes the
version it has just created before the error propagates, so a failed try leaves no version behind.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from airflow_provider_mlops.ml.tags import TAG_AIRFLOW_RUN_ID, TAG_COMPLETE, TAG_RUN_ID, TAG_TASK_PREFIX

if TYPE_CHECKING:
    from collections.abc import Mapping

    from airflow_provider_mlops.ml.reporting import TrainingArtifacts

log = logging.getLogger(__name__)

IDENTITY_KEYS = ("dag_id", "task_id", "run_id", "map_index")
RESULT_ARTIFACT = "training_result.json"


def task_identity(context: Mapping[str, Any]) -> dict[str, str]:
    """The version tags naming the task try's task (dag, task, run / logical date, map index)."""
    ti = context["ti"]
    return {
        f"{TAG_TASK_PREFIX}dag_id": str(ti.dag_id),
        f"{TAG_TASK_PREFIX}task_id": str(ti.task_id),
        f"{TAG_TASK_PREFIX}run_id": str(context["run_id"]),
        f"{TAG_TASK_PREFIX}map_index": str(getattr(ti, "map_index", -1)),
        f"{TAG_TASK_PREFIX}logical_date": str(context.get("logical_date")),
    }


def find_task_versions(hook: Any, name: str, identity: Mapping[str, str]) -> list[Any]:
    """The versions of ``name`` registered by this task (its identity tags), oldest first."""
    wanted = {f"{TAG_TASK_PREFIX}{k}": identity[f"{TAG_TASK_PREFIX}{k}"] for k in IDENTITY_KEYS}
    return [
        v
        for v in hook.model_versions(name)
        if all((v.tags or {}).get(k) == value for k, value in wanted.items())
    ]


def is_complete(version: Any) -> bool:
    return (version.tags or {}).get(TAG_COMPLETE) == "true"


def delete_version(hook: Any, storage: Any, name: str, version: Any, model_root: str | None) -> None:
    """Delete a version and the model files written for it below ``model_root`` (when known)."""
    from airflow_provider_mlops.ml.serialization import version_prefix

    number = str(version.version if hasattr(version, "version") else version)
    hook.delete_version(name, number)
    if storage is not None and model_root:
        try:
            storage.delete_prefix(version_prefix(model_root, name, number) + "/")
        except Exception as err:  # the version is gone; leftover files are only untrusted bytes
            log.warning("Could not delete the model files of %s version %s: %s", name, number, err)


def stored_result(hook: Any, version: Any) -> dict[str, Any]:
    """
    The task result a complete version stored in its run. Raises ``RuntimeError`` when it cannot be
    read: a complete version is never deleted or trained over because a read failed.
    """
    import os
    import tempfile

    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = hook.download_artifact(version.run_id, RESULT_ARTIFACT, tmp)
            with open(os.path.join(tmp, path) if not os.path.isabs(path) else path) as handle:
                result = json.load(handle)
    except Exception as err:
        raise RuntimeError(
            f"{version.name} version {version.version} was registered and completed by an earlier try "
            f"of this task, but its {RESULT_ARTIFACT} (run {version.run_id}) cannot be read: {err}. "
            "Not training again (that would register a second version); retry when the artifact "
            "store answers."
        ) from err
    if str(result.get("version")) != str(version.version):
        raise RuntimeError(
            f"{version.name} version {version.version}: its {RESULT_ARTIFACT} names version "
            f"{result.get('version')!r}; not reusing it"
        )
    return dict(result)


def reuse_or_clear(
    hook: Any, storage: Any, name: str, identity: Mapping[str, str], model_root: str | None
) -> dict[str, Any] | None:
    """
    On a retry: the stored result of this task's complete version (reused, nothing trained or
    registered), after deleting any incomplete version of this task; None when training must run.
    A complete version is never deleted, nor one that holds an alias.
    """
    versions = find_task_versions(hook, name, identity)
    run_id = identity[f"{TAG_TASK_PREFIX}run_id"]
    for version in versions:
        if is_complete(version) or getattr(version, "aliases", None):
            continue
        log.warning(
            "Deleting %s version %s: an earlier try of this task (%s) registered it but did not "
            "complete (model file, tags or result missing)",
            name,
            version.version,
            run_id,
        )
        delete_version(hook, storage, name, version, model_root)
    complete = [v for v in versions if is_complete(v)]
    if not complete:
        return None
    version = complete[0]
    result = stored_result(hook, version)
    log.info(
        "%s version %s was registered by an earlier try of this task (%s): reusing it, not training again",
        name,
        version.version,
        run_id,
    )
    return result


def check_result(result: Mapping[str, Any]) -> None:
    """
    The task result as XCom stores it: strict JSON, every number finite; the error names the key and
    the value (Airflow's own message, "Out of range float values are not JSON compliant", does not).
    """
    from airflow_provider_mlops.ml.training import check_finite

    check_finite(result, "task result (XCom)")
    json.dumps(result, allow_nan=False)


def publish(
    hook: Any,
    storage: Any,
    *,
    name: str,
    experiment_id: str,
    run_tags: Mapping[str, str],
    identity: Mapping[str, str],
    artifacts: TrainingArtifacts,
    model_root: str,
    result: Mapping[str, Any],
    on_registered: Any = None,
    version_tags: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """
    One MLflow run with the artifacts, the model logged, then registered as a new version of
    ``name`` tagged with ``identity``; then the model file, the version's tags and the task result.
    ``result`` is the task result without the version's fields; ``on_registered(result)`` runs
    last (e.g. an XCom push). ``version_tags`` (the training data's URIs, versions and digest) are
    set on the version from its creation, with the identity. Any failure after the registration deletes the version (and its
    files) before the error propagates; success marks the version complete.
    """
    import os
    import tempfile

    import sklearn

    from airflow_provider_mlops.ml.evaluation import write_files
    from airflow_provider_mlops.ml.serialization import version_prefix

    check_result(dict(result))  # what XCom will hold, checked before anything is registered
    with hook.start_run(experiment_id, run_tags) as run, tempfile.TemporaryDirectory() as tmp:
        run_id = run.info.run_id
        hook.log_params(run_id, artifacts.params)
        hook.log_metrics(run_id, artifacts.metrics)
        write_files(artifacts.files, tmp)
        hook.log_artifacts(run_id, tmp)
        common: dict[str, Any] = {
            "name": "model",
            "signature": artifacts.signature,
            "input_example": artifacts.example,
            "pip_requirements": [f"scikit-learn=={sklearn.__version__}", "airflow-provider-mlops"],
        }
        if artifacts.fmt == "keras":
            # the keras bundle is a pyfunc flavor: the same scoped fluent API, its own logger
            import mlflow

            from airflow_provider_mlops.ml.keras_mlflow import log_keras_model

            with hook.fluent(), mlflow.start_run(run_id=run_id):
                info = log_keras_model(artifacts.pipeline, **common, blob=artifacts.blob)
        else:
            kwargs: dict[str, Any] = {"serialization_format": artifacts.fmt}
            if artifacts.fmt == "skops":
                kwargs["skops_trusted_types"] = artifacts.trusted
            info = hook.log_sklearn_model(run_id, artifacts.pipeline, **common, **kwargs)
        metric_tags = {f"metric.{k}": f"{v:.6f}" for k, v in result["metrics"].items()}
        version_tags = {
            **(version_tags or {}),
            **identity,
            TAG_RUN_ID: run_id,
            TAG_AIRFLOW_RUN_ID: identity[f"{TAG_TASK_PREFIX}run_id"],
            **metric_tags,
        }
        registered = hook.register_model_version(info.model_uri, name, version_tags)
        version = str(registered.version)
        try:
            model_file = hook.record_model_file(
                storage, model_root, name, version, artifacts.blob, artifacts.fmt
            )
            hook.record_mlflow_artifact(name, version, info)
            profile_uri = f"{version_prefix(model_root, name, version)}/reference_profile.json"
            storage.put_bytes(profile_uri, json.dumps(artifacts.profile).encode())
            out = {
                "model_uri": f"models:/{name}/{version}",
                "registered_model_name": name,
                "version": version,
                "run_id": run_id,
                "experiment_id": experiment_id,
                **result,
                "model_file": model_file["uri"],
                "sha256": model_file["sha256"],
                "profile_uri": profile_uri,
            }
            check_result(out)
            if on_registered is not None:
                on_registered(out)
            path = os.path.join(tmp, RESULT_ARTIFACT)
            with open(path, "w") as handle:
                json.dump(out, handle, allow_nan=False)
            hook.log_artifact(run_id, path)
            hook.set_version_tags(name, version, {TAG_COMPLETE: "true"})
        except BaseException as err:
            log.error(
                "Deleting %s version %s: the task failed after registering it (%s: %s)",
                name,
                version,
                type(err).__name__,
                err,
            )
            try:
                delete_version(hook, storage, name, version, model_root)
            except Exception as cleanup:  # the retry finds it by its tags (incomplete) and deletes it
                log.error("Could not delete %s version %s: %s", name, version, cleanup)
            raise
    return out
