"""Provider metadata read by Airflow's ProvidersManager (entry point ``apache_airflow_provider``)."""

from __future__ import annotations

from typing import Any

from airflow_provider_mlops import __version__

_PKG = "airflow_provider_mlops"
_INTEGRATION = "MLOps"


def _str(label: str, description: str | None = None, **schema: Any) -> dict[str, Any]:
    field: dict[str, Any] = {"label": label, "schema": {"type": ["string", "null"], **schema}}
    if description:
        field["description"] = description
    return field


def _bool(label: str, default: bool, description: str | None = None) -> dict[str, Any]:
    field: dict[str, Any] = {"label": label, "schema": {"type": ["boolean", "null"], "default": default}}
    if description:
        field["description"] = description
    return field


def _int(label: str, default: int | None = None, description: str | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": ["integer", "null"]}
    if default is not None:
        schema["default"] = default
    field: dict[str, Any] = {"label": label, "schema": schema}
    if description:
        field["description"] = description
    return field


CONNECTION_TYPES: list[dict[str, Any]] = [
    {
        "connection-type": "mlops_postgres",
        "hook-class-name": f"{_PKG}.hooks.postgres.PostgresHook",
        "hook-name": "PostgreSQL (MLOps)",
        "conn-fields": {
            "sslmode": _str(
                "SSL mode",
                "libpq sslmode",
                enum=["disable", "allow", "prefer", "require", "verify-ca", "verify-full"],
            ),
            "sslrootcert": _str("SSL root certificate", "Path to the CA certificate file"),
            "application_name": _str("Application name", "Shown in pg_stat_activity"),
            "connect_timeout": _int("Connect timeout (s)", 10),
            "load_engine": _str(
                "Load engine",
                "auto: ADBC binary COPY when every column maps exactly, else CSV COPY",
                enum=["auto", "adbc", "copy"],
            ),
        },
        "ui-field-behaviour": {
            "hidden-fields": ["extra"],
            "relabeling": {"schema": "Database"},
            "placeholders": {
                "host": "db.example.com",
                "port": "5432",
                "schema": "analytics",
                "login": "etl_user",
            },
        },
    },
    {
        "connection-type": "mlops_mongo",
        "hook-class-name": f"{_PKG}.hooks.mongo.MongoHook",
        "hook-name": "MongoDB (MLOps)",
        "conn-fields": {
            "srv": _bool("Use mongodb+srv://", False, "DNS seed list (Atlas); no port then"),
            "replicaSet": _str("Replica set name"),
            "authSource": _str("Auth source", "Database holding the user, usually admin"),
            "authMechanism": _str(
                "Auth mechanism", enum=["SCRAM-SHA-256", "SCRAM-SHA-1", "MONGODB-X509", "PLAIN"]
            ),
            "tls": _bool("TLS", False),
            "tlsCAFile": _str("TLS CA file"),
            "tlsAllowInvalidCertificates": _bool("Allow invalid certificates", False),
            "directConnection": _bool("Direct connection", False, "Connect to this host only, no discovery"),
            "serverSelectionTimeoutMS": _int("Server selection timeout (ms)", 10000),
        },
        "ui-field-behaviour": {
            "hidden-fields": ["extra"],
            "relabeling": {"schema": "Default database", "host": "Host(s)"},
            "placeholders": {
                "host": "mongo1.example.com,mongo2.example.com or cluster0.abcde.mongodb.net",
                "port": "27017",
                "schema": "app",
                "login": "etl_user",
            },
        },
    },
    {
        "connection-type": "mlops_s3",
        "hook-class-name": f"{_PKG}.hooks.s3.S3Hook",
        "hook-name": "S3 / object storage (MLOps)",
        "conn-fields": {
            "endpoint_url": _str("Endpoint URL", "For S3-compatible servers (MinIO, Ceph...); empty for AWS"),
            "region_name": _str("Region", default="us-east-1"),
            "bucket": _str("Bucket", "Checked by 'Test'; also the default bucket"),
            "addressing_style": _str("Addressing style", enum=["path", "virtual", "auto"]),
            "aws_session_token": {
                "label": "Session token",
                "schema": {"type": ["string", "null"], "format": "password"},
            },
            "verify": _bool("Verify TLS certificates", True),
        },
        "ui-field-behaviour": {
            "hidden-fields": ["host", "port", "schema", "extra"],
            "relabeling": {"login": "Access key id", "password": "Secret access key"},
            "placeholders": {"login": "AKIA... (empty: instance role / environment)"},
        },
    },
    {
        "connection-type": "mlops_http",
        "hook-class-name": f"{_PKG}.hooks.http.HttpApiHook",
        "hook-name": "HTTP JSON API (MLOps)",
        "conn-fields": {
            "auth_type": _str(
                "Auth type", "Inferred when empty", enum=["none", "basic", "bearer", "api_key", "oauth2"]
            ),
            "api_key_name": _str("API key name", "Header or query parameter carrying the key"),
            "api_key_in": _str("API key in", enum=["header", "query"], default="header"),
            "token_url": _str(
                "OAuth2 token URL", "Client-credentials grant; client id/secret = login/password"
            ),
            "scope": _str("OAuth2 scope"),
            "timeout": _int("Timeout (s)", 30),
            "rate_limit": {"label": "Rate limit (requests/s)", "schema": {"type": ["number", "null"]}},
            "max_attempts": _int("Attempts per request", 5),
            "verify": _bool("Verify TLS certificates", True),
            "test_endpoint": _str("Test endpoint", "Requested by 'Test', e.g. /health"),
        },
        "ui-field-behaviour": {
            "hidden-fields": ["schema"],
            "relabeling": {
                "host": "Base URL",
                "login": "User / client id",
                "password": "Password / token / API key / client secret",
                "extra": "Extra (JSON; 'headers': {...})",
            },
            "placeholders": {
                "host": "https://api.example.com/v1",
                "extra": '{"headers": {"Accept": "application/json"}}',
            },
        },
    },
    {
        "connection-type": "mlops_mlflow",
        "hook-class-name": f"{_PKG}.hooks.mlflow.MlflowHook",
        "hook-name": "MLflow tracking server (MLOps)",
        "conn-fields": {
            "tracking_uri": _str(
                "Tracking URI", "Overrides host: any MLflow URI, e.g. sqlite:////data/mlflow.db"
            ),
            "registry_uri": _str("Registry URI", "When different from the tracking URI"),
            "artifact_location": _str("Artifact root", "For experiments the provider creates"),
            "ui_url": _str("UI URL", "Where people open runs when the tracking URI is not a web server"),
        },
        "ui-field-behaviour": {
            "hidden-fields": ["schema", "login", "password", "extra"],
            "relabeling": {"host": "Tracking server URL"},
            "placeholders": {"host": "http://mlflow.example.com:5000"},
        },
    },
]


def get_provider_info() -> dict[str, Any]:
    """Return the provider description Airflow discovers through the entry point."""
    return {
        "package-name": "airflow-provider-mlops",
        "name": "MLOps",
        "description": (
            "Streaming ETL hooks and operators (HTTP APIs, MongoDB, PostgreSQL and any common-sql "
            "database, S3 and local files) and the ML lifecycle: training with feature engineering, "
            "selection and tuning, MLflow tracking and registry, gated deployment, drift monitoring."
        ),
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": _INTEGRATION,
                "external-doc-url": "https://github.com/airflow-provider-mlops/airflow-provider-mlops",
                "tags": ["software"],
            }
        ],
        "hooks": [
            {
                "integration-name": _INTEGRATION,
                "python-modules": [
                    f"{_PKG}.hooks.http",
                    f"{_PKG}.hooks.mongo",
                    f"{_PKG}.hooks.postgres",
                    f"{_PKG}.hooks.s3",
                    f"{_PKG}.hooks.sql",
                    f"{_PKG}.hooks.mlflow",
                ],
            }
        ],
        "operators": [
            {
                "integration-name": _INTEGRATION,
                "python-modules": [
                    f"{_PKG}.operators.extract",
                    f"{_PKG}.operators.transform",
                    f"{_PKG}.operators.load",
                    f"{_PKG}.operators.train",
                    f"{_PKG}.operators.deploy",
                    f"{_PKG}.operators.predict",
                ],
            }
        ],
        "sensors": [{"integration-name": _INTEGRATION, "python-modules": [f"{_PKG}.sensors.drift"]}],
        "triggers": [{"integration-name": _INTEGRATION, "python-modules": [f"{_PKG}.triggers.dataset"]}],
        "connection-types": CONNECTION_TYPES,
        "extra-links": [f"{_PKG}.links.mlflow.MlflowRunLink"],
        "notifications": [
            f"{_PKG}.notifications.webhook.WebhookNotifier",
            f"{_PKG}.notifications.slack.SlackWebhookNotifier",
            f"{_PKG}.notifications.smtp.EmailNotifier",
        ],
        "config": {
            "mlops": {
                "description": "airflow-provider-mlops settings.",
                "options": {
                    "staging_uri": {
                        "description": "Root URI of the datasets tasks hand to each other (s3://... or "
                        "file://...). Default: a mlops-staging folder in AIRFLOW_HOME (one machine only).",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "s3://my-bucket/airflow-staging",
                        "default": None,
                    },
                    "mlflow_tracking_uri": {
                        "description": "MLflow tracking URI used when a task names no MLflow connection. "
                        "Default: a SQLite store in AIRFLOW_HOME.",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "http://mlflow:5000",
                        "default": None,
                    },
                    "storage_conn_id": {
                        "description": "Connection used for s3:// staging URIs.",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "aws_default",
                        "default": None,
                    },
                },
            }
        },
    }
