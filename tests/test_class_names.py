"""No class of the provider shares its name with an official Airflow provider's class (a DAG imports both)."""

from __future__ import annotations

import re
from pathlib import Path

import airflow.providers

PACKAGE = Path(__file__).resolve().parents[1] / "airflow_provider_mlops"
CLASS = re.compile(r"^class (\w+)", re.M)
# official classes whose providers are not installed in the test environment: the names users meet
# most beside ours (apache-airflow-providers-postgres / -mongo / -mysql / -amazon / -slack)
NOT_INSTALLED = {
    "PostgresHook", "MongoHook", "MySqlHook", "S3Hook", "SageMakerHook", "SlackWebhookNotifier",
    "SlackNotifier", "SmtpNotifier", "HttpHook", "HttpOperator", "HttpSensor", "SQLExecuteQueryOperator",
}  # fmt: skip


def _classes(root: Path) -> dict[str, Path]:
    return {
        name: path for path in root.rglob("*.py") for name in CLASS.findall(path.read_text(errors="replace"))
    }


def test_no_class_shadows_an_official_provider_class() -> None:
    official = set(NOT_INSTALLED)
    for root in airflow.providers.__path__:
        official |= set(_classes(Path(root)))
    assert len(official) > 100  # the installed providers were read (common-sql, http, slack, smtp ...)
    ours = _classes(PACKAGE)
    clashes = sorted(
        f"{name} ({path.relative_to(PACKAGE.parent)})" for name, path in ours.items() if name in official
    )
    assert not clashes, f"Rename these: an official provider has a class of the same name: {clashes}"
