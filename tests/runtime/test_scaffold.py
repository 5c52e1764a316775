"""
The scaffolded projects (``python -m airflow_provider_mlops.scaffold astro|compose DIR``), checked
without a Docker engine: the compose files against the compose specification (and by Debian's
``docker-compose config`` when it is installed), the Dockerfiles by hadolint, the rendered project's
own DAG tests, and the connections it defines against those the DAGs use.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from airflow_provider_mlops.get_provider_info import CONN_TYPES
from airflow_provider_mlops.scaffold import Options, render
from airflow_provider_mlops.scaffold.__main__ import main

BIN = Path(sys.executable).parent
SERVICES = {"warehouse", "minio", "minio-init", "mongo", "mlflow", "model-server", "demo-source"}


def _tool(name: str) -> str:
    path = shutil.which(name) or str(BIN / name)
    if not os.path.exists(path):
        pytest.fail(f"{name} not installed: it is in the test dependency group")
    return path


@pytest.fixture(scope="module")
def astro(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("astro") / "project"
    assert main(["astro", str(dest)]) == 0
    return dest


@pytest.fixture(scope="module")
def compose(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("compose") / "project"
    assert main(["compose", str(dest)]) == 0
    return dest


def test_astro_project_has_what_astro_dev_init_writes(astro: Path) -> None:
    for name in (
        "Dockerfile",
        "requirements.txt",
        "packages.txt",
        "airflow_settings.yaml",
        "docker-compose.override.yml",
        ".env",
        ".dockerignore",
        ".gitignore",
        ".astro/config.yaml",
        "plugins/.gitkeep",
        "include/demo_source.py",
        "tests/dags/test_dag_integrity.py",
        "dags/etl_daily.py",
        "dags/monitor_model.py",
        "dags/train_model.py",
    ):
        assert (astro / name).is_file(), name
    from_line = next(
        line for line in (astro / "Dockerfile").read_text().splitlines() if line.startswith("FROM")
    )
    # An Astro Runtime 3.x image (Airflow 3), never an untagged or "latest" one.
    assert re.fullmatch(r"FROM \S+/runtime:3\.\d+-\d+", from_line), from_line
    assert "airflow-provider-mlops[postgres,mongo,s3,ml,alerts]" in (astro / "requirements.txt").read_text()
    override = yaml.safe_load((astro / "docker-compose.override.yml").read_text())
    assert set(override["services"]) == SERVICES
    # Astro's own services live on its "airflow" network: ours must join it to be reachable by name.
    assert all(s["networks"] == ["airflow"] for s in override["services"].values())
    assert "python" in override["services"]["model-server"]["entrypoint"]
    assert "airflow_provider_mlops.serve" in override["services"]["model-server"]["entrypoint"]
    assert "mc mb --ignore-existing local/mlops" in override["services"]["minio-init"]["command"][0]


def test_compose_stack_runs_celery_with_two_workers(compose: Path) -> None:
    stack = yaml.safe_load((compose / "docker-compose.yaml").read_text())
    services = stack["services"]
    airflow = {
        "airflow-init",
        "airflow-apiserver",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-triggerer",
        "airflow-worker-1",
        "airflow-worker-2",
    }
    assert set(services) == airflow | SERVICES | {"postgres", "redis"}
    workers = [services[f"airflow-worker-{i}"] for i in (1, 2)]
    assert [w["command"][:2] for w in workers] == [["celery", "worker"]] * 2
    assert workers[0]["hostname"] != workers[1]["hostname"]
    for name in airflow:
        env = services[name]["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        # The traps: psycopg2 for Celery's result backend, one JWT secret and execution API URL.
        assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql+psycopg2://"), name
        assert (
            env["AIRFLOW__API_AUTH__JWT_SECRET"]
            == services["airflow-scheduler"]["environment"]["AIRFLOW__API_AUTH__JWT_SECRET"]
        )
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
        assert env["AIRFLOW__MLOPS__STAGING_URI"].startswith("s3://"), "workers share no disk"
    assert (compose / ".env.example").is_file()


def test_placeholders_are_all_substituted(astro: Path, compose: Path, tmp_path: Path) -> None:
    for root in (astro, compose):
        for path in root.rglob("*"):
            if path.is_file():
                assert "@@" not in path.read_text(), path
    custom = render("compose", tmp_path / "p", Options(provider_spec="/wheels/x.whl[all]"))
    assert "/wheels/x.whl[all]" in (tmp_path / "p" / "requirements.txt").read_text()
    assert custom


def test_refuses_a_non_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    assert main(["astro", str(tmp_path)]) == 1
    assert main(["astro", str(tmp_path), "--force"]) == 0
    assert (tmp_path / "keep.txt").read_text() == "mine"


def test_compose_files_follow_the_compose_specification(astro: Path, compose: Path) -> None:
    result = subprocess.run(
        [
            _tool("check-jsonschema"),
            "--builtin-schema",
            "vendor.compose-spec",
            str(astro / "docker-compose.override.yml"),
            str(compose / "docker-compose.yaml"),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_check_jsonschema_catches_a_broken_compose_file(tmp_path: Path) -> None:
    """The validator is not a no-op: a misspelled key fails it."""
    broken = tmp_path / "docker-compose.yaml"
    broken.write_text("services:\n  web:\n    image: nginx\n    port: ['80:80']\n")
    result = subprocess.run(
        [_tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(broken)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1 and "port" in result.stdout


# What the Astro CLI itself contributes when it merges the override (its network and services), so
# Debian's docker-compose can resolve the override's references the way `astro dev start` does.
ASTRO_BASE = """
networks:
  airflow:
    driver: bridge
services:
  postgres:
    image: postgres:16
    networks: [airflow]
  scheduler:
    image: astro-project/airflow:latest
    networks: [airflow]
"""


def test_docker_compose_config_when_installed(astro: Path, compose: Path, tmp_path: Path) -> None:
    exe = shutil.which("docker-compose")
    if exe is None:
        pytest.skip("docker-compose not installed (optional: Debian's docker-compose package)")
    base = tmp_path / "astro-base.yml"
    base.write_text(ASTRO_BASE)
    for args, cwd in (
        (["-f", str(base), "-f", str(astro / "docker-compose.override.yml")], astro),
        (["-f", str(compose / "docker-compose.yaml")], compose),
    ):
        result = subprocess.run([exe, *args, "config", "-q"], cwd=cwd, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr


def test_dockerfiles_pass_hadolint(astro: Path, compose: Path) -> None:
    for dockerfile in (astro / "Dockerfile", compose / "Dockerfile"):
        result = subprocess.run(
            [_tool("hadolint"), "--failure-threshold", "info", str(dockerfile)],
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, f"{dockerfile}:\n{result.stdout}{result.stderr}"


def _defined_connections(project: Path) -> dict[str, str]:
    """conn_id -> conn_type, from airflow_settings.yaml (Astro) or airflow-connections.env (compose)."""
    settings = project / "airflow_settings.yaml"
    if settings.exists():
        data = yaml.safe_load(settings.read_text())
        return {c["conn_id"]: c["conn_type"] for c in data["airflow"]["connections"]}
    found = {}
    for line in (project / "airflow-connections.env").read_text().splitlines():
        if m := re.match(r"AIRFLOW_CONN_([A-Z0-9_]+)=(.*)$", line):
            found[m.group(1).lower()] = json.loads(m.group(2))["conn_type"]
    return found


def test_both_projects_define_the_same_connections_with_provider_types(astro: Path, compose: Path) -> None:
    ours, theirs = _defined_connections(astro), _defined_connections(compose)
    assert ours == theirs
    assert set(ours.values()) <= set(CONN_TYPES.values())
    # Every id the example DAGs name is there (the rendered tests check the parsed DAGs too).
    source = "".join(p.read_text() for p in (astro / "dags").glob("*.py"))
    named = set(re.findall(r'_CONN_ID = "([a-z_]+)"', source))
    assert named and named <= set(ours)


@pytest.mark.parametrize("kind", ["astro", "compose"])
def test_rendered_projects_own_dag_tests_pass(kind: str, astro: Path, compose: Path, tmp_path: Path) -> None:
    """``pytest tests/dags`` inside the rendered project, as ``astro dev pytest`` would run it."""
    project = astro if kind == "astro" else compose
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYTEST"))}
    env["AIRFLOW_HOME"] = str(tmp_path / "airflow-home")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/dags", "-q", "-p", "no:cacheprovider", "-W", "ignore"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert re.search(r"\b8 passed\b", result.stdout), result.stdout[-2000:]


def test_demo_source_loads_the_simulated_activity_into_postgres(
    astro: Path, postgres_server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stack's demo-source service writes the same rows as the embedded demo (idempotently)."""
    import importlib.util

    import psycopg

    from airflow_provider_mlops.demo.simulate import World, activity

    spec = importlib.util.spec_from_file_location("demo_source", astro / "include" / "demo_source.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    world = World(customers=200, active_per_day=100)
    for _ in range(2):  # a restarted container writes the same rows again
        assert module.load_activity(postgres_server.dsn, world, 2) == 200
    with psycopg.connect(postgres_server.dsn) as conn:
        rows = conn.execute(
            "SELECT customer_id, day, churned FROM activity ORDER BY day, customer_id"
        ).fetchall()
        conn.execute("DROP TABLE activity")
    expected = [(r["customer_id"], r["day"], r["churned"]) for i in range(2) for r in activity(world, i)]
    assert rows == sorted(expected, key=lambda row: (row[1], row[0]))
