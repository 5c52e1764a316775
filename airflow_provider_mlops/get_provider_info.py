"""Provider metadata read by Airflow's ProvidersManager (entry point ``apache_airflow_provider``)."""

from __future__ import annotations

from typing import Any

from airflow_provider_mlops import __version__

_PKG = "airflow_provider_mlops"
_INTEGRATION = "MLOps"

# Connection-type names: "-" rather than "_". Airflow builds a URI for every connection it caches or
# tests and logs "Connection schemes ... shall not contain '_' according to RFC3986" for each one
# made with an "_" type. Airflow turns "-" into "_" when it parses a URI back, so both spellings are
# registered: the old ``mlops_*`` names keep working for existing connections (a subclass of the
# same hook each, so Airflow's hook / connection-type consistency check stays quiet).
CONN_TYPES: dict[str, str] = {
    "postgres": "mlops-postgres",
    "mongo": "mlops-mongo",
    "s3": "mlops-s3",
    "http": "mlops-http",
    "mlflow": "mlops-mlflow",
    "mysql": "mlops-mysql",
}
LEGACY_CONN_TYPES: dict[str, str] = {kind: name.replace("-", "_") for kind, name in CONN_TYPES.items()}


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
        "connection-type": CONN_TYPES["postgres"],
        "hook-class-name": f"{_PKG}.hooks.postgres.PostgresBatchHook",
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
            "read_engine": _str(
                "Read engine",
                "auto: ADBC binary COPY when every column has an exact form, else CSV COPY",
                enum=["auto", "adbc", "copy"],
            ),
        },
        "ui-field-behaviour": {
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
        "connection-type": CONN_TYPES["mongo"],
        "hook-class-name": f"{_PKG}.hooks.mongo.MongoBatchHook",
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
        "connection-type": CONN_TYPES["mysql"],
        "hook-class-name": f"{_PKG}.hooks.mysql.MySqlBatchHook",
        "hook-name": "MySQL / MariaDB (MLOps, PyMySQL)",
        "conn-fields": {
            "unix_socket": _str("Unix socket", "Instead of host and port"),
            "charset": _str("Character set", default="utf8mb4"),
            "connect_timeout": _int("Connect timeout (s)", 10),
            "ssl_ca": _str("TLS CA file", "Path of the CA certificate: turns TLS on"),
        },
        "ui-field-behaviour": {
            "relabeling": {"schema": "Database"},
            "placeholders": {"host": "db.example.com", "port": "3306", "schema": "analytics"},
        },
    },
    {
        "connection-type": CONN_TYPES["s3"],
        "hook-class-name": f"{_PKG}.hooks.s3.ObjectStorageHook",
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
            # Port stays visible although S3 does not use it: the Test button of Airflow 3.3.2's
            # connection list sends port 0 for a connection saved without one, and the API answers
            # 400 (it reads a port change as a new destination). Any port makes Test work.
            "hidden-fields": ["host", "schema"],
            "relabeling": {
                "login": "Access key id",
                "password": "Secret access key",
                "port": "Port (not used; any number lets Test run)",
            },
            "placeholders": {"login": "AKIA... (empty: instance role / environment)", "port": "443"},
        },
    },
    {
        "connection-type": CONN_TYPES["http"],
        "hook-class-name": f"{_PKG}.hooks.http.HttpApiHook",
        "hook-name": "HTTP JSON API (MLOps)",
        "conn-fields": {
            "auth_type": _str(
                "Auth type", "Inferred when empty", enum=["none", "basic", "bearer", "api_key", "oauth2"]
            ),
            # Not "api_key_*" / "token_url": Airflow treats every field whose name contains api_key or
            # token as a secret and masks its value ("***") in the form, so a default such as "header"
            # was saved as "***". The hook still reads the old names of existing connections.
            "key_name": _str(
                "API key name", "Header or query parameter carrying the key (auth type api_key)"
            ),
            "key_location": _str("API key in", enum=["header", "query"], default="header"),
            "oauth2_url": _str(
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
            # The port is read from the base URL (https://api.example.com:8443/v1); the Port field
            # is only used when the URL has none. It stays visible because the Test button of
            # Airflow 3.3.2's connection list sends port 0 for a connection saved without one and
            # the API then answers 400. Extra headers go in the Extra JSON ({"headers": {...}}).
            "hidden-fields": ["schema"],
            "relabeling": {
                "host": "Base URL",
                "port": "Port (the base URL's wins; fill it so Test runs)",
                "login": "User / client id",
                "password": "Password / token / API key / client secret",
            },
            "placeholders": {"host": "https://api.example.com/v1", "port": "443"},
        },
    },
    {
        "connection-type": CONN_TYPES["mlflow"],
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
            "hidden-fields": ["schema", "login", "password"],
            "relabeling": {"host": "Tracking server URL"},
            "placeholders": {"host": "http://mlflow.example.com:5000"},
        },
    },
]


def _legacy(entry: dict[str, Any]) -> dict[str, Any]:
    """The same form under the old ``mlops_*`` name, served by the hook's subclass in hooks.legacy."""
    kind = next(k for k, v in CONN_TYPES.items() if v == entry["connection-type"])
    class_name = entry["hook-class-name"].rpartition(".")[2]
    return {
        **entry,
        "connection-type": LEGACY_CONN_TYPES[kind],
        "hook-class-name": f"{_PKG}.hooks.legacy.Legacy{class_name}",
        "hook-name": legacy_hook_name(entry["hook-name"], LEGACY_CONN_TYPES[kind]),
    }


def legacy_hook_name(hook_name: str, legacy_type: str) -> str:
    """
    What the connection-type list shows for an old type name: the same hook, marked as old. Airflow's
    type picker lists every registered type (a type that must resolve cannot be hidden from it) and
    sorts by this name: starting with "Old type name" keeps the old names together, away from the
    current ones (``PostgreSQL (MLOps)`` is listed once where people look for it).
    """
    return f"Old type name {legacy_type}: {hook_name}, for existing connections"


CONNECTION_TYPES += [_legacy(entry) for entry in list(CONNECTION_TYPES)]


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
                    f"{_PKG}.hooks.mysql",
                    f"{_PKG}.hooks.mlflow",
                    f"{_PKG}.hooks.legacy",
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
                    f"{_PKG}.operators.profile",
                ],
            }
        ],
        "sensors": [{"integration-name": _INTEGRATION, "python-modules": [f"{_PKG}.sensors.drift"]}],
        "triggers": [{"integration-name": _INTEGRATION, "python-modules": [f"{_PKG}.triggers.dataset"]}],
        "connection-types": CONNECTION_TYPES,
        "extra-links": [
            f"{_PKG}.links.mlflow.MlflowRunLink",
            f"{_PKG}.links.profile.ProfileReportLink",
            f"{_PKG}.links.reports.DriftReportLink",
            f"{_PKG}.links.reports.ModelVersionLink",
        ],
        "notifications": [
            f"{_PKG}.notifications.webhook.WebhookNotifier",
            f"{_PKG}.notifications.slack.SlackAlertNotifier",
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
