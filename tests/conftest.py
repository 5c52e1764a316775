"""
Session-wide test harness: real servers on 127.0.0.1 and an Airflow home with a migrated metadata DB.

A server fixture skips only when its binary is absent from the machine, and says why. With
``MLOPS_REQUIRE_SERVERS=1`` (set by ``.ci/run``) a missing server fails the run instead.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

# Airflow reads its configuration at import time: point it at a throwaway home first.
_AIRFLOW_HOME = tempfile.mkdtemp(prefix="mlops-airflow-home-")
os.environ["AIRFLOW_HOME"] = _AIRFLOW_HOME
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{_AIRFLOW_HOME}/airflow.db"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(Path(__file__).resolve().parents[1] / "example_dags")
os.environ["AIRFLOW__CORE__TEST_CONNECTION"] = "Enabled"
# One Fernet key for this process and every Airflow process the tests start (api-server, migrate):
# otherwise each generates its own and connections saved by one cannot be read by another.
os.environ.setdefault("AIRFLOW__CORE__FERNET_KEY", base64.urlsafe_b64encode(os.urandom(32)).decode())
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")

import pytest  # noqa: E402

from tests.harness import servers  # noqa: E402

REQUIRE_SERVERS = os.environ.get("MLOPS_REQUIRE_SERVERS", "") == "1"
T = TypeVar("T")
ARTIFACTS = Path(
    os.environ.get("MLOPS_TEST_ARTIFACTS", Path(__file__).resolve().parents[1] / "test-artifacts")
)


def _unavailable(reason: str) -> None:
    if REQUIRE_SERVERS:
        pytest.fail(f"server required (MLOPS_REQUIRE_SERVERS=1) but unavailable: {reason}", pytrace=False)
    pytest.skip(reason)


def set_connection(conn_id: str, **fields: object) -> str:
    """Register an Airflow connection through the environment (``AIRFLOW_CONN_<ID>`` as JSON)."""
    os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(fields)
    return conn_id


def s3_connection(
    conn_id: str,
    s3_server: servers.S3Server,
    endpoint_url: str | None = None,
    *,
    conn_type: str = "aws",
    **extra: object,
) -> str:
    """A connection with the S3 test server's keys and region, at ``endpoint_url`` (default: the
    server itself; a fault proxy's or a TLS relay's to go through them) and ``extra``."""
    return set_connection(
        conn_id,
        conn_type=conn_type,
        login=s3_server.access_key,
        password=s3_server.secret_key,
        extra={
            "endpoint_url": endpoint_url or s3_server.endpoint_url,
            "region_name": s3_server.region,
            **extra,
        },
    )


# --------------------------------------------------------------------------------------------------
# servers
# --------------------------------------------------------------------------------------------------
def _serve(factory: Callable[[], contextlib.AbstractContextManager[T]]) -> Iterator[T]:
    """Start a server for the session; skip (or fail, with MLOPS_REQUIRE_SERVERS=1) when its binary is absent."""
    try:
        manager = factory()
        server = manager.__enter__()
    except servers.ServerUnavailable as err:
        _unavailable(str(err))
    try:
        yield server
    finally:
        manager.__exit__(None, None, None)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[servers.PostgresServer]:
    yield from _serve(servers.start_postgres)


@pytest.fixture(scope="session")
def mariadb_server() -> Iterator[servers.MariaDbServer]:
    yield from _serve(servers.start_mariadb)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[servers.S3Server]:
    yield from _serve(servers.start_s3)


@pytest.fixture(scope="session")
def s3_auth_server() -> Iterator[servers.S3Server]:
    """A second S3 server that checks request signatures (for wrong-credential tests)."""
    yield from _serve(lambda: servers.start_s3(enforce_auth=True))


@pytest.fixture(scope="session")
def mongo_server() -> Iterator[servers.MongoServer]:
    yield from _serve(servers.start_mongo)


@pytest.fixture(scope="session")
def mlflow_tracking(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A local MLflow: sqlite backend store and an artifact folder."""
    pytest.importorskip("mlflow")
    root = tmp_path_factory.mktemp("mlflow")
    return {
        "tracking_uri": f"sqlite:///{root}/mlflow.db",
        "artifact_location": (root / "artifacts").as_uri(),
    }


@pytest.fixture(scope="session")
def httpserver_listen_address() -> tuple[str, int]:
    """pytest-httpserver's server on loopback, on a free port."""
    return ("127.0.0.1", 0)


# --------------------------------------------------------------------------------------------------
# Airflow connections pointing at the servers
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def pg_conn_id(postgres_server: servers.PostgresServer) -> str:
    return set_connection(
        "mlops_pg_test",
        conn_type="mlops-postgres",
        host=postgres_server.host,
        port=postgres_server.port,
        login=postgres_server.user,
        password=postgres_server.password,
        schema=postgres_server.database,
    )


@pytest.fixture(scope="session")
def mariadb_conn_id(mariadb_server: servers.MariaDbServer) -> str:
    """The generic common-sql path on MariaDB (the provider's PyMySQL hook)."""
    return set_connection(
        "mlops_mariadb_test",
        conn_type="mlops-mysql",
        host=mariadb_server.host,
        port=mariadb_server.port,
        login=mariadb_server.user,
        password=mariadb_server.password,
        schema=mariadb_server.database,
    )


@pytest.fixture(scope="session")
def s3_conn_id(s3_server: servers.S3Server) -> str:
    return s3_connection("mlops_s3_test", s3_server, conn_type="mlops-s3", bucket=s3_server.bucket)


@pytest.fixture(scope="session")
def mongo_conn_id(mongo_server: servers.MongoServer) -> str:
    if not mongo_server.direct:
        return set_connection(
            "mlops_mongo_test", conn_type="mlops-mongo", schema="mlops_test", extra={"uri": mongo_server.uri}
        )
    return set_connection(
        "mlops_mongo_test",
        conn_type="mlops-mongo",
        host=mongo_server.host,
        port=mongo_server.port,
        login=mongo_server.user,
        password=mongo_server.password,
        schema="mlops_test",
        extra={"directConnection": "true", "authSource": "admin", "serverSelectionTimeoutMS": "5000"},
    )


# --------------------------------------------------------------------------------------------------
# Airflow metadata DB
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def airflow_db() -> str:
    """``airflow db migrate`` on the session's sqlite metadata DB; returns AIRFLOW_HOME."""
    result = subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
    )
    if result.returncode != 0:
        raise RuntimeError(f"airflow db migrate failed:\n{result.stdout}\n{result.stderr}")
    return _AIRFLOW_HOME


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Where tests leave files worth looking at (screenshots, reports)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


# --------------------------------------------------------------------------------------------------
# ML: a labelled churn dataset and an MLflow connection to the session's local MLflow
# --------------------------------------------------------------------------------------------------
@pytest.fixture
def dataset(tmp_path: Path) -> str:
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    from airflow_provider_mlops.hooks.s3 import ObjectStorageHook

    rng = np.random.default_rng(0)
    n = 1500
    frame = pd.DataFrame(
        {
            "minutes": rng.gamma(2, 25, n),
            "tickets": rng.poisson(0.6, n).astype("int64"),
            "plan": rng.choice(["free", "basic", "pro"], n),
            "region": rng.choice(["eu", "na"], n),
        }
    )
    frame.loc[rng.random(n) < 0.05, "minutes"] = np.nan
    score = -1 + 0.9 * frame.tickets - 0.03 * frame.minutes.fillna(50) + (frame.plan == "free") * 1.2
    frame["churned"] = (score + rng.logistic(size=n) > 0).astype("int64")
    uri = (tmp_path / "train").as_uri()
    ObjectStorageHook(aws_conn_id=None).write_dataset(
        uri, pa.Table.from_pandas(frame, preserve_index=False).to_batches()
    )
    return uri


@pytest.fixture
def mlflow_conn(mlflow_tracking: dict[str, str]) -> str:
    return set_connection(
        "mlflow_test",
        conn_type="mlops-mlflow",
        host="",
        extra={
            "tracking_uri": mlflow_tracking["tracking_uri"],
            "artifact_location": mlflow_tracking["artifact_location"],
            "ui_url": "http://127.0.0.1:5000",
        },
    )


# --------------------------------------------------------------------------------------------------
# test tiers: `./dev test -m unit` runs what needs no server and no Airflow DB, in seconds
# --------------------------------------------------------------------------------------------------
_SERVER_FIXTURES = {
    "postgres_server",
    "s3_server",
    "s3_auth_server",
    "mongo_server",
    "mariadb_server",
    "pg_conn_id",
    "s3_conn_id",
    "mongo_conn_id",
    "mariadb_conn_id",
    "airflow_db",
    "mlflow_tracking",
    "mlflow_conn",
    "httpserver",
    "dataset",
}


# Serverless but not quick: subprocesses, servers of their own, browsers, model fitting, the demo.
_NOT_UNIT = (
    "tests/test_demo.py",
    "tests/test_lazy_imports.py",
    "tests/hooks/test_write_contract.py",
    "tests/hooks/test_roundtrip.py",
    "tests/hooks/test_http_faults.py",
    "tests/hooks/test_http_logscan.py",
    "tests/faults/test_injectors.py",  # servers and processes of its own (restarts, kills)
    "tests/ml/test_training.py",
    "tests/notifications/",
    "tests/sensors/",
    "tests/example_dags/",
    "tests/ml/test_drift.py::test_same_distribution_rarely_raises_drift",
    "tests/ml/test_drift_calibration.py",
    "tests/ml/test_candidates.py",
    "tests/ml/test_tuning.py",
    "tests/ml/test_keras_tuner.py",
    "tests/ml/test_trusted_loader.py",
    "tests/serving/",
    "tests/deployment/",
    "tests/runtime/",
    "tests/triggers/",
    "tests/hooks/test_mlflow_hook.py",
    "tests/datasets/test_roundtrip_property.py",
    "tests/utils/test_record_properties.py",
    "tests/hooks/test_system_properties.py",
    "tests/hooks/test_sql.py",
    "tests/ml/test_stats.py::test_decay_false_alarms_and_detection",
    "tests/ml/test_ml_path_properties.py",
    "tests/ml/test_plots.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """
    Mark ``unit`` every test that needs no server, no subprocess and no model fit: pure logic that
    runs in seconds (``./dev test -m unit``). The rest is the integration tier, run by default too.
    """
    for item in items:
        if item.get_closest_marker("integration") or item.get_closest_marker("unit"):
            continue
        if item.nodeid.startswith(_NOT_UNIT):
            continue
        if not _SERVER_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.unit)
