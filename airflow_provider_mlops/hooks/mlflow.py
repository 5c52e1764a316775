"""
MLflow hook: which tracking server / registry to use, a client for it, and a connection test.

Connection (``mlops_mlflow``): host is the tracking server URL (``http://mlflow:5000``), or the
``tracking_uri`` extra any MLflow URI (``sqlite:////data/mlflow.db``); extras ``registry_uri``,
``artifact_location`` (for experiments the provider creates) and ``ui_url`` (where people open
runs, when the tracking URI is not a web server). Without a connection the embedded default is a
SQLite store in ``AIRFLOW_HOME`` (``[mlops] mlflow_tracking_uri`` overrides it).

Authenticated servers: MLflow reads credentials from its own environment variables or
``~/.mlflow/credentials`` on the worker; the hook does not copy connection secrets into
``os.environ``.

No process-wide state: every call goes through the hook's own ``MlflowClient``, built with this
connection's tracking and registry URIs, so two tasks in one worker process (threads of a Celery
worker, ``dag.test``) each write to their own server. The one exception is
:meth:`MlflowHook.log_sklearn_model`: ``mlflow.sklearn.log_model`` exists only in MLflow's fluent API,
which reads the process-wide URIs; :meth:`MlflowHook.fluent` sets them for that call only, under a
lock, and puts back what was there.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseHook

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    from airflow_provider_mlops.ml.reporting import TrainingArtifacts
    from airflow_provider_mlops.ml.serialization import LoadPolicy, VerifiedModel

# One fluent MLflow call at a time in this process: the URIs it reads are module globals of MLflow.
_FLUENT_LOCK = threading.RLock()


class MlflowHook(BaseHook):
    """
    Resolve and talk to an MLflow tracking server and model registry.

    :param mlflow_conn_id: the connection, or None for the embedded default.
    """

    conn_name_attr = "mlflow_conn_id"
    default_conn_name = "mlflow_default"
    conn_type = "mlops-mlflow"
    hook_name = "MLflow tracking server (MLOps)"

    def __init__(self, mlflow_conn_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mlflow_conn_id = mlflow_conn_id

    @cached_property
    def settings(self) -> dict[str, Any]:
        from airflow.providers.common.compat.sdk import conf

        if not self.mlflow_conn_id:
            home = os.environ.get("AIRFLOW_HOME") or os.path.expanduser("~/airflow")
            default = conf.get("mlops", "mlflow_tracking_uri", fallback=None) or (
                f"sqlite:///{os.path.abspath(os.path.join(home, 'mlflow.db'))}"
            )
            artifacts = conf.get("mlops", "mlflow_artifact_location", fallback=None) or (
                "file://" + os.path.abspath(os.path.join(home, "mlflow-artifacts"))
            )
            return {
                "tracking_uri": default,
                "registry_uri": None,
                "artifact_location": artifacts,
                "ui_url": None,
            }
        conn = self.get_connection(self.mlflow_conn_id)
        extra = conn.extra_dejson
        tracking = extra.get("tracking_uri")
        if not tracking:
            host = conn.host or ""
            if "://" not in host:
                host = f"{conn.schema or 'http'}://{host}"
            if conn.port and host.count(":") < 2:
                host = f"{host}:{conn.port}"
            tracking = host
        return {
            "tracking_uri": str(tracking).rstrip("/"),
            "registry_uri": extra.get("registry_uri"),
            "artifact_location": extra.get("artifact_location"),
            "ui_url": extra.get("ui_url"),
        }

    @property
    def tracking_uri(self) -> str:
        return str(self.settings["tracking_uri"])

    @property
    def registry_uri(self) -> str:
        """The model registry: the ``registry_uri`` extra, else the tracking server."""
        return str(self.settings.get("registry_uri") or self.tracking_uri)

    @cached_property
    def client(self) -> Any:
        """An ``MlflowClient`` bound to this connection's URIs (no process-wide state)."""
        from mlflow.tracking import MlflowClient

        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.registry_uri)

    @contextlib.contextmanager
    def fluent(self) -> Iterator[None]:
        """
        MLflow's fluent API pointed at this server for the ``with`` block only.

        Some calls exist only in the fluent API (``mlflow.sklearn.log_model`` and the model
        registration it does). They read MLflow's process-wide tracking / registry URIs, so the
        block holds a process-wide lock, sets them, and restores the previous values (and the
        ``MLFLOW_TRACKING_URI`` / ``MLFLOW_REGISTRY_URI`` variables MLflow mirrors them into).
        """
        import mlflow
        from mlflow.tracking._model_registry import utils as registry_utils
        from mlflow.tracking._tracking_service import utils as tracking_utils

        with _FLUENT_LOCK:
            saved_env = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
            # Private module globals: the public getters resolve defaults, and restoring a resolved
            # default would pin it where the process had "unset".
            saved_tracking = getattr(tracking_utils, "_tracking_uri", None)
            saved_registry = getattr(registry_utils, "_registry_uri", None)
            mlflow.set_tracking_uri(self.tracking_uri)
            mlflow.set_registry_uri(self.registry_uri)
            try:
                yield
            finally:
                mlflow.set_tracking_uri(saved_tracking)  # type: ignore[arg-type]  # None: back to unset
                registry_utils._registry_uri = saved_registry
                for key, value in saved_env.items():
                    if value is None:
                        os.environ.pop(key, None)
                    else:
                        os.environ[key] = value

    # ---------------------------------------------------------------------------------------------
    # runs
    # ---------------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def start_run(self, experiment_id: str, tags: Mapping[str, str] | None = None) -> Iterator[Any]:
        """A new run (``mlflow.entities.Run``), ``FINISHED`` when the block ends, ``FAILED`` on error."""
        run = self.client.create_run(experiment_id, tags=dict(tags or {}))
        try:
            yield run
        except BaseException:
            self.client.set_terminated(run.info.run_id, "FAILED")
            raise
        self.client.set_terminated(run.info.run_id, "FINISHED")

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(str(k), str(v)) for k, v in params.items()]
        for start in range(0, len(items), 100):  # MLflow's limit per batch
            self.client.log_batch(run_id, params=items[start : start + 100])

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], *, step: int = 0) -> None:
        """
        Log ``metrics`` to the run. A NaN or infinite value is refused, naming the key and the value
        (:class:`~airflow_provider_mlops.ml.training.NonFiniteValueError`): leave a metric that
        cannot be computed out, with its reason, instead.
        """
        import time

        from mlflow.entities import Metric

        from airflow_provider_mlops.ml.training import check_finite

        check_finite(dict(metrics), f"metrics for MLflow run {run_id}")

        now = int(time.time() * 1000)
        items = [Metric(str(k), float(v), now, step) for k, v in metrics.items()]
        for start in range(0, len(items), 1000):  # MLflow's limit per batch
            self.client.log_batch(run_id, metrics=items[start : start + 1000])

    def set_run_tags(self, run_id: str, tags: Mapping[str, Any]) -> None:
        """Set tags of a run (values as text, at most MLflow's 5,000 characters)."""
        for key, value in tags.items():
            self.client.set_tag(run_id, key, str(value)[:5000])

    def log_artifact(self, run_id: str, path: str, artifact_path: str | None = None) -> None:
        self.client.log_artifact(run_id, path, artifact_path)

    def log_artifacts(self, run_id: str, folder: str, artifact_path: str | None = None) -> None:
        self.client.log_artifacts(run_id, folder, artifact_path)

    def download_artifact(self, run_id: str, path: str, dst_path: str | None = None) -> str:
        """A run's artifact on the local disk; its local path."""
        return str(self.client.download_artifacts(run_id, path, dst_path))

    def log_sklearn_model(self, run_id: str, model: Any, **kwargs: Any) -> Any:
        """
        ``mlflow.sklearn.log_model`` into ``run_id`` (and registration when
        ``registered_model_name`` is given); returns its ``ModelInfo``.

        The fluent API is unavoidable here (no client method logs a flavor), so it runs inside
        :meth:`fluent`, with the run resumed as the active run of this thread.
        """
        import mlflow

        from airflow_provider_mlops.ml.serialization import quiet_skops

        requirements = kwargs.pop("pip_requirements", None)
        if requirements is not None and "conda_env" not in kwargs:
            # The same requirements as a whole environment: given pip_requirements, MLflow builds a
            # conda.yaml and pins pip to the installed version, and in a venv without pip (uv
            # creates them so) it warns in every task log that it cannot find one.
            kwargs["conda_env"] = _conda_env(list(requirements))

        # skops (serialization_format="skops") scans sys.modules and touches Airflow's
        # deprecated-import shims: quiet_skops() keeps their warnings out of the task log.
        with self.fluent(), mlflow.start_run(run_id=run_id), quiet_skops(), model_logging_checked():
            return mlflow.sklearn.log_model(model, **kwargs)

    def register_model_version(self, model_uri: str, name: str, tags: Mapping[str, str]) -> Any:
        """
        Register a logged model (``ModelInfo.model_uri``) as a new version of ``name`` carrying
        ``tags`` from its creation (no window in which the version exists without them); returns
        the ``ModelVersion``.
        """
        import mlflow

        with self.fluent():
            return mlflow.register_model(model_uri, name, tags={k: str(v) for k, v in tags.items()})

    # ---------------------------------------------------------------------------------------------
    # registry: the vocabulary every operator and sensor speaks (tag keys in ml/tags.py)
    # ---------------------------------------------------------------------------------------------
    def set_version_tags(self, name: str, version: str, tags: Mapping[str, Any]) -> None:
        """Set tags of a model version (values as text, at most MLflow's 5,000 characters)."""
        for key, value in tags.items():
            self.client.set_model_version_tag(name, version, key, str(value)[:5000])

    def set_alias(self, name: str, alias: str, version: str) -> None:
        self.client.set_registered_model_alias(name, alias, version)

    def version_by_alias(self, name: str, alias: str) -> str | None:
        """The version holding ``alias``, or None when the model or the alias does not exist."""
        from mlflow.exceptions import MlflowException

        try:
            return str(self.client.get_model_version_by_alias(name, alias).version)
        except MlflowException:
            return None

    def model_version(self, name: str, version: str) -> Any:
        """The ``ModelVersion``; MLflow's error (naming it) when it does not exist."""
        return self.client.get_model_version(name, str(version))

    def model_versions(self, name: str) -> list[Any]:
        """Every version of ``name``, oldest first; empty when the model does not exist."""
        from mlflow.exceptions import MlflowException

        quoted = name.replace("'", "\\'")
        try:
            if not self.client.search_registered_models(filter_string=f"name = '{quoted}'"):
                return []
            versions = self.client.search_model_versions(filter_string=f"name = '{quoted}'")
        except MlflowException:
            return []
        return sorted(versions, key=lambda v: int(v.version))

    def delete_version(self, name: str, version: str) -> None:
        self.client.delete_model_version(name, str(version))

    def describe_version(self, name: str, version: str, text: str) -> None:
        """The version's description in the registry (e.g. the promotion decision)."""
        self.client.update_model_version(name, str(version), description=text[:5000])

    def model_tags(self, name: str) -> dict[str, str]:
        """The registered model's tags; empty when the model does not exist yet."""
        from mlflow.exceptions import MlflowException

        try:
            return dict(self.client.get_registered_model(name).tags or {})
        except MlflowException:
            return {}

    def set_model_tag(self, name: str, key: str, value: str) -> None:
        self.client.set_registered_model_tag(name, key, value)

    def delete_model_tag(self, name: str, key: str) -> bool:
        """Remove a registered model tag; False when it was not there."""
        if key not in self.model_tags(name):
            return False
        self.client.delete_registered_model_tag(name, key)
        return True

    def version_digest(self, name: str, version: str) -> dict[str, str | None]:
        """
        The trusted record of a version's model file: ``{"sha256", "uri", "format", "bytes",
        "mlflow_sha256", "mlflow_uri"}`` (None where not recorded).
        """
        from airflow_provider_mlops.ml import tags as t

        tags = self.model_version(name, version).tags or {}
        return {
            "sha256": tags.get(t.TAG_SHA256),
            "uri": tags.get(t.TAG_MODEL_URI),
            "format": tags.get(t.TAG_FORMAT),
            "bytes": tags.get(t.TAG_BYTES),
            "mlflow_sha256": tags.get(t.TAG_MLFLOW_SHA256),
            "mlflow_uri": tags.get(t.TAG_MLFLOW_URI),
        }

    def version_lineage(self, name: str, version: str) -> dict[str, Any]:
        """
        Where a version came from: its MLflow run, the datasets it was trained on (URI -> schema
        fingerprint), the task type, the label column and the Airflow task that registered it; and
        the exact rows: ``training_data`` (and ``evaluation_data`` once DeployModelOperator judged
        it) as ``{"data": [{"uri", "version"}...], "uris": ["<uri>@v<version>"...], "digest"}``, or
        None when not recorded. ``training_data["uris"]`` is what ``input_uri`` takes to train
        again on exactly those rows (:func:`airflow_provider_mlops.ml.lineage.read_data_tags`).
        """
        from airflow_provider_mlops.ml import tags as t
        from airflow_provider_mlops.ml.lineage import read_data_tags

        found = self.model_version(name, version)
        run_tags = dict(self.client.get_run(found.run_id).data.tags or {}) if found.run_id else {}
        version_tags = dict(found.tags or {})
        inputs = run_tags.get(t.TAG_INPUTS)
        prefix = t.TAG_TASK_PREFIX
        return {
            "run_id": found.run_id,
            "inputs": json.loads(inputs) if inputs else {},
            "task": run_tags.get(t.TAG_TASK),
            "label": run_tags.get(t.TAG_LABEL),
            "airflow": {k[len(prefix) :]: v for k, v in version_tags.items() if k.startswith(prefix)},
            "training_data": read_data_tags(version_tags, "training") or read_data_tags(run_tags, "training"),
            "evaluation_data": read_data_tags(version_tags, "evaluation"),
        }

    def promote(
        self,
        name: str,
        version: str,
        *,
        alias: str,
        who: str,
        when: str,
        reason: str,
        test: Mapping[str, Any] | None = None,
    ) -> None:
        """Move ``alias`` to ``version`` and tag it with who, when and why (and the paired test)."""
        from airflow_provider_mlops.ml import tags as t

        self.set_alias(name, alias, version)
        self.set_version_tags(
            name,
            version,
            {
                t.TAG_PROMOTED_BY: who,
                t.TAG_PROMOTED_AT: when,
                t.TAG_PROMOTION_REASON: reason,
                **({t.TAG_PROMOTION_TEST: json.dumps(dict(test))} if test is not None else {}),
            },
        )

    def keep_out(
        self, name: str, version: str, *, alias: str, reason: str, test: Mapping[str, Any] | None = None
    ) -> None:
        """A candidate that did not win: ``alias`` (the challenger's) and the reason as a tag."""
        from airflow_provider_mlops.ml import tags as t

        self.set_alias(name, alias, version)
        self.set_version_tags(
            name,
            version,
            {
                t.TAG_NOT_PROMOTED: reason,
                **({t.TAG_PROMOTION_TEST: json.dumps(dict(test))} if test is not None else {}),
            },
        )

    def roll_back(
        self, name: str, version: str, *, alias: str, who: str, when: str, previous: str | None
    ) -> None:
        """Point ``alias`` back at ``version``, tagged like a promotion (``rollback from version <previous>``)."""
        self.promote(
            name, version, alias=alias, who=who, when=when, reason=f"rollback from version {previous}"
        )

    # ---------------------------------------------------------------------------------------------
    # registering a training result (ml/registration.py holds the once-per-task protocol)
    # ---------------------------------------------------------------------------------------------
    def register_training(
        self,
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
        """One run, one new version of ``name``: :func:`airflow_provider_mlops.ml.registration.publish`."""
        from airflow_provider_mlops.ml.registration import publish

        return publish(
            self,
            storage,
            name=name,
            experiment_id=experiment_id,
            run_tags=run_tags,
            identity=identity,
            artifacts=artifacts,
            model_root=model_root,
            result=result,
            on_registered=on_registered,
            version_tags=version_tags,
        )

    def reuse_training(
        self, storage: Any, name: str, identity: Mapping[str, str], model_root: str | None
    ) -> dict[str, Any] | None:
        """On a retry, this task's complete version's result (:func:`~airflow_provider_mlops.ml.registration.reuse_or_clear`)."""
        from airflow_provider_mlops.ml.registration import reuse_or_clear

        return reuse_or_clear(self, storage, name, identity, model_root)

    def record_model_file(
        self, storage: Any, root: str, name: str, version: str, blob: bytes, fmt: str
    ) -> dict[str, Any]:
        """Write the model file and record its digest on the version (:func:`~airflow_provider_mlops.ml.serialization.record_model_file`)."""
        from airflow_provider_mlops.ml.serialization import record_model_file

        return record_model_file(self.client, storage, root, name, version, blob, fmt)

    def record_mlflow_artifact(self, name: str, version: str, model_info: Any) -> str | None:
        """Record the digest of MLflow's own copy of the model (:func:`~airflow_provider_mlops.ml.serialization.record_mlflow_artifact`)."""
        from airflow_provider_mlops.ml.serialization import record_mlflow_artifact

        return record_mlflow_artifact(self.client, name, version, model_info)

    def load_model_version(
        self,
        name: str,
        version: Any = None,
        *,
        alias: str = "champion",
        storage: Any = None,
        policy: LoadPolicy | None = None,
        **kwargs: Any,
    ) -> VerifiedModel:
        """A registered version through the trusted loader (:func:`~airflow_provider_mlops.ml.serialization.load_model_version`)."""
        from airflow_provider_mlops.ml.serialization import load_model_version

        return load_model_version(
            self.client, name, version, alias=alias, storage=storage, policy=policy, **kwargs
        )

    def get_or_create_experiment(self, name: str) -> str:
        """
        The experiment's id, created when missing. Tagged ``mlflow.experimentKind`` =
        ``custom_model_development`` (when it has no kind yet) so that MLflow 3's UI opens it in the
        model-training view, not the GenAI one.
        """
        from airflow_provider_mlops.ml.tags import EXPERIMENT_KIND_TRAINING, TAG_EXPERIMENT_KIND

        experiment = self.client.get_experiment_by_name(name)
        if experiment is None:
            return str(
                self.client.create_experiment(
                    name,
                    artifact_location=self.settings.get("artifact_location"),
                    tags={TAG_EXPERIMENT_KIND: EXPERIMENT_KIND_TRAINING},
                )
            )
        if TAG_EXPERIMENT_KIND not in (experiment.tags or {}):
            self.client.set_experiment_tag(
                experiment.experiment_id, TAG_EXPERIMENT_KIND, EXPERIMENT_KIND_TRAINING
            )
        return str(experiment.experiment_id)

    def run_url(self, experiment_id: str, run_id: str) -> str:
        """Where a person opens the run: the server's UI, or ``ui_url`` for non-web tracking URIs."""
        base = self.settings.get("ui_url")
        if not base and self.tracking_uri.startswith(("http://", "https://")):
            base = self.tracking_uri
        if not base:
            # A database or file store has no web server: `mlflow ui` on it serves here by default.
            base = "http://127.0.0.1:5000"
        return f"{str(base).rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"

    def test_connection(self) -> tuple[bool, str]:
        try:
            self.client.search_experiments(max_results=1)
        except Exception as err:  # MLflow raises many types; the message is what matters
            return False, f"Cannot reach MLflow at {self.tracking_uri}: {str(err).splitlines()[0][:300]}"
        return True, f"Connection successfully tested (MLflow at {self.tracking_uri})"


class ModelLoggingError(ValueError):
    """MLflow could not infer the signature or validate the input example of a model it logged."""


# What MLflow logs (and carries on) when the model's signature or input example does not work: the
# same input would then fail at serving time.
_SWALLOWED = (
    "Failed to validate serving input example",
    "Failed to infer schema",
    "Failed to infer the model signature",
    "Failed to enforce schema",
)


@contextlib.contextmanager
def model_logging_checked() -> Iterator[None]:
    """
    Raise :class:`ModelLoggingError` when MLflow, inside the block, logs that it could not validate
    the input example against the model or infer its schema (it only warns, and the model would
    then refuse the same input at serving time). The error carries MLflow's own reason (e.g.
    ``DateTime64DType could not be promoted by BoolDType``).
    """
    import logging

    caught: list[str] = []

    class _Catch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            message = record.getMessage()
            if record.levelno >= logging.WARNING and message.startswith(_SWALLOWED):
                caught.append(message)

    handler = _Catch()
    logger = logging.getLogger("mlflow.models")
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
    if caught:
        message = caught[0]
        reason = message.partition("Got error:")[2].strip() or message
        raise ModelLoggingError(
            "MLflow could not use the model's input example (the first holdout rows), so serving would "
            f"refuse the same input: {reason[:2000]}"
        )


def _conda_env(requirements: list[str]) -> dict[str, Any]:
    """MLflow's default conda environment for ``requirements``, with pip unpinned."""
    import platform

    return {
        "name": "mlflow-env",
        "channels": ["conda-forge"],
        "dependencies": [f"python={platform.python_version()}", "pip", {"pip": requirements}],
    }
