"""HerokuTarget against a local fake of the Platform API (heroku_fake.py); never run against Heroku."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from airflow_provider_mlops.deployment.heroku import HerokuTarget
from airflow_provider_mlops.deployment.targets import (
    DeploymentError,
    ModelRelease,
    deploy_all,
    resolve_targets,
)
from tests.conftest import set_connection
from tests.deployment.heroku_fake import FakeHeroku

KEY = "heroku-api-key-for-tests"
SMOKE = {"dataframe_records": [{"minutes": 1.0}, {"minutes": 2.0}]}


def release(version: str) -> ModelRelease:
    return ModelRelease(
        name="churn_model",
        version=version,
        sha256=version * 64,
        uri=f"s3://models/churn_model/v{version}/model.skops",
    )


@pytest.fixture
def fake() -> Iterator[FakeHeroku]:
    server = FakeHeroku(KEY, "churn-serve")
    yield server
    server.close()


@pytest.fixture
def target(fake: FakeHeroku) -> HerokuTarget:
    conn = set_connection("heroku_test", conn_type="http", host=fake.url, password=KEY)
    built = resolve_targets(
        [
            {
                "type": "heroku",
                "app": "churn-serve",
                "http_conn_id": conn,
                "requirement": "airflow-provider-mlops[ml,s3]==0.1.0",
                "config": {"MLOPS_SERVE_STORAGE_CONN_ID": "models"},
                "smoke_input": SMOKE,
                "poll_interval": 0.01,
                "wait_timeout": 5,
            }
        ]
    )[0]
    assert isinstance(built, HerokuTarget)
    return built


def test_build_once_then_release_versions_by_config_vars(fake: FakeHeroku, target: HerokuTarget) -> None:
    v1, v2 = release("1"), release("2")
    target.deploy(v1)
    target.smoke_test(v1)
    assert len(fake.builds) == 1 and fake.builds[0]["status"] == "succeeded"
    assert fake.last_source == {
        "Procfile": "web: python -m airflow_provider_mlops.serve --host 0.0.0.0\n",
        "requirements.txt": "airflow-provider-mlops[ml,s3]==0.1.0\n",
        ".python-version": "3.11\n",
    }
    assert fake.config["MLOPS_SERVE_VERSION"] == "1" and fake.config["MLOPS_SERVE_SHA256"] == v1.sha256
    assert (
        fake.config["MLOPS_SERVE_MODEL_URI"] == v1.uri
        and fake.config["MLOPS_SERVE_STORAGE_CONN_ID"] == "models"
    )
    assert fake.quantity == 1

    releases = len(fake.releases)
    target.deploy(v2)
    target.smoke_test(v2)
    assert len(fake.builds) == 1  # the server's source did not change: no rebuild
    assert len(fake.releases) == releases + 1 and target.describe()["version"] == "2"

    target.deploy(v2)  # already serving: no new release
    assert len(fake.releases) == releases + 1

    target.rollback(v1)
    assert target.describe() == {"version": "1", "sha256": v1.sha256, "app": "churn-serve"}
    target.smoke_test(v1)


def test_a_failed_build_reports_its_output(fake: FakeHeroku, target: HerokuTarget) -> None:
    target.requirement = "does-not-exist==1.0"
    with pytest.raises(DeploymentError, match="No matching distribution found for does-not-exist"):
        target.deploy(release("1"))
    assert fake.config == {}


def test_wrong_api_key_is_refused(fake: FakeHeroku) -> None:
    conn = set_connection("heroku_bad", conn_type="http", host=fake.url, password="wrong")
    target = HerokuTarget(app="churn-serve", http_conn_id=conn, poll_interval=0.01)
    with pytest.raises(DeploymentError, match="401: Invalid credentials"):
        target.describe()


def test_a_failed_smoke_test_rolls_back(fake: FakeHeroku, target: HerokuTarget) -> None:
    v1, v2 = release("1"), release("2")
    deploy_all([target], v1, None)
    fake.broken_predictions = True
    with pytest.raises(DeploymentError, match="answered the smoke request"):
        deploy_all([target], v2, v1)
    assert target.describe()["version"] == "1"
    # With nothing to go back to, the dynos are scaled to 0.
    with pytest.raises(DeploymentError, match="no previous version"):
        deploy_all([target], release("3"), None)
    assert fake.quantity == 0
