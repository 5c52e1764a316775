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
"""

from __future__ import annotations

import os
from functools import cached_property
from typing import Any

from airflow.sdk import BaseHook


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
        from airflow.sdk.configuration import conf

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

    @cached_property
    def client(self) -> Any:
        from mlflow.tracking import MlflowClient

        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.settings.get("registry_uri"))

    def activate(self) -> None:
        """Point MLflow's fluent API (used by ``log_model``) at this server, in this process."""
        import mlflow

        mlflow.set_tracking_uri(self.tracking_uri)
        if self.settings.get("registry_uri"):
            mlflow.set_registry_uri(self.settings["registry_uri"])

    def get_or_create_experiment(self, name: str) -> str:
        experiment = self.client.get_experiment_by_name(name)
        if experiment is not None:
            return str(experiment.experiment_id)
        return str(
            self.client.create_experiment(name, artifact_location=self.settings.get("artifact_location"))
        )

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
