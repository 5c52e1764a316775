"""
The KubernetesExecutor's side of a deployment (``python -m airflow_provider_mlops.scaffold kubernetes
DIR``), checked offline: no cluster can run here.

* the pod template and the connections' Secret against the Kubernetes OpenAPI schema, strictly (no
  unknown fields), with ``kubernetes-validate``'s bundled schemas;
* the pod the cncf.kubernetes provider's ``PodGenerator.construct_pod`` makes of the template for a
  task, as the KubernetesExecutor does (the template, then the task's coordinates and workload args,
  then a task's ``pod_override``): the worker image with the provider, the connections as Secret
  references, resource limits, nothing shared between pods; and that pod validated again;
* the worker image's Dockerfile by hadolint (it installs the provider and bakes in the DAGs).

Not run: scheduling a pod on a cluster, pulling or building the image (docs/deployment-runtimes.rst).
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from airflow_provider_mlops.get_provider_info import CONN_TYPES
from airflow_provider_mlops.scaffold import render
from tests.runtime.test_scaffold import _defined_connections, _tool

kubernetes_validate = pytest.importorskip("kubernetes_validate")
# The oldest Kubernetes release still maintained upstream when this was written, and the newest
# schema kubernetes-validate bundles: the files must be valid on both.
K8S_VERSIONS = ("1.32", kubernetes_validate.utils.latest_version())
CONNECTIONS_SECRET = "mlops-connections"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("kubernetes") / "project"
    render("kubernetes", dest)
    return dest


def _documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("name", ["pod-template.yaml", "secret-connections.example.yaml"])
def test_manifests_follow_the_kubernetes_schema(project: Path, name: str, version: str) -> None:
    (document,) = _documents(project / name)
    kubernetes_validate.validate(document, version, strict=True)


def test_the_schema_check_catches_a_misspelt_field(project: Path) -> None:
    """The validator is not a no-op: a typo in the container's fields fails strictly."""
    (pod,) = _documents(project / "pod-template.yaml")
    broken = copy.deepcopy(pod)
    broken["spec"]["containers"][0]["resource"] = broken["spec"]["containers"][0].pop("resources")
    with pytest.raises(kubernetes_validate.ValidationError, match="resource"):
        kubernetes_validate.validate(broken, K8S_VERSIONS[-1], strict=True)


def test_secret_holds_the_connections_the_dags_use(project: Path, tmp_path: Path) -> None:
    (secret,) = _documents(project / "secret-connections.example.yaml")
    values = {key: json.loads(value) for key, value in secret["stringData"].items()}
    assert set(CONN_TYPES.values()) >= {v["conn_type"] for v in values.values()}
    # The same connections (ids and types) as the compose stack, but MongoDB (optional in the DAGs).
    compose = tmp_path / "compose"
    render("compose", compose)
    expected = {k: t for k, t in _defined_connections(compose).items() if k != "mlops_mongo"}
    assert {k: v["conn_type"] for k, v in values.items()} == expected
    source = "".join(p.read_text() for p in (project / "dags").glob("*.py"))
    named = set(re.findall(r'_CONN_ID = "([a-z_]+)"', source))
    assert named and named <= set(values)


def _generated_pod(project: Path, override: Any = None) -> dict[str, Any]:
    """The pod the KubernetesExecutor would create for one task from the template (no cluster)."""
    pod_generator = pytest.importorskip("airflow.providers.cncf.kubernetes.pod_generator")
    from kubernetes.client import ApiClient

    base = pod_generator.PodGenerator.deserialize_model_file(str(project / "pod-template.yaml"))
    # What kubernetes_executor_utils passes: the Task SDK workload as the container's args.
    args = ["python", "-m", "airflow.sdk.execution_time.execute_workload", "--json-string", "{}"]
    pod = pod_generator.PodGenerator.construct_pod(
        dag_id="mlops_train_model",
        task_id="train_and_tune",
        pod_id="mlops-train-model-train-and-tune-1a2b3c4d",
        try_number=1,
        kube_image=None,  # [kubernetes_executor] worker_container_repository unset: the template's image
        date=None,
        args=args,
        pod_override_object=override,
        base_worker_pod=base,
        namespace="airflow",
        scheduler_job_id="42",
        run_id="manual__2026-01-02T00:00:00+00:00",
        map_index=-1,
    )
    return dict(ApiClient().sanitize_for_serialization(pod))


def test_generated_worker_pod(project: Path) -> None:
    pod = _generated_pod(project)
    for version in K8S_VERSIONS:
        kubernetes_validate.validate(pod, version, strict=True)
    (container,) = pod["spec"]["containers"]
    assert container["name"] == "base"
    assert container["args"][:3] == ["python", "-m", "airflow.sdk.execution_time.execute_workload"]
    # The image the Dockerfile builds: the provider installed, the DAGs baked in.
    assert container["image"].startswith("airflow-mlops-worker:")
    dockerfile = (project / "Dockerfile").read_text()
    assert "-r /requirements.txt" in dockerfile and "COPY --chown=airflow:root dags/" in dockerfile
    assert (
        (project / "requirements.txt")
        .read_text()
        .strip()
        .splitlines()[-1]
        .startswith("airflow-provider-mlops[")
    )
    # Connections only as Secret references: no credential in the pod spec.
    env = {e["name"]: e for e in container["env"]}
    conns = {n: e for n, e in env.items() if n.startswith("AIRFLOW_CONN_")}
    assert {"AIRFLOW_CONN_MLOPS_WAREHOUSE", "AIRFLOW_CONN_MLOPS_S3", "AIRFLOW_CONN_MLFLOW_DEFAULT"} <= set(
        conns
    )
    for name, entry in conns.items():
        ref = entry["valueFrom"]["secretKeyRef"]
        assert "value" not in entry and ref["name"] == CONNECTIONS_SECRET, name
        assert f"AIRFLOW_CONN_{ref['key'].upper()}" == name
    assert "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN" not in env  # task pods use the execution API only
    assert env["AIRFLOW_IS_K8S_EXECUTOR_POD"]["value"] == "True"  # added by the executor
    # Nothing shared between pods: data in S3, /tmp the pod's own emptyDir.
    assert env["AIRFLOW__MLOPS__STAGING_URI"]["value"].startswith("s3://")
    assert env["MLOPS_LAKE_URI"]["value"].startswith("s3://")
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert set(volumes) == {"tmp"} and "emptyDir" in volumes["tmp"]
    # Bounded: every task pod has requests and limits.
    assert container["resources"]["limits"] == {"cpu": "2", "memory": "3Gi"}
    assert set(container["resources"]["requests"]) == {"cpu", "memory"}
    assert pod["spec"]["restartPolicy"] == "Never"
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    # The executor's labels: how it finds the pod of a task instance again.
    labels = pod["metadata"]["labels"]
    assert labels["dag_id"] == "mlops_train_model" and labels["task_id"] == "train_and_tune"
    assert labels["airflow-worker"] == "42"
    assert labels["app.kubernetes.io/name"] == "airflow-mlops-worker"


def test_pod_override_of_one_task_keeps_the_template(project: Path) -> None:
    """The README's executor_config for training: more resources, everything else from the template."""
    from kubernetes.client import models as k8s

    override = k8s.V1Pod(
        spec=k8s.V1PodSpec(
            containers=[
                k8s.V1Container(
                    name="base",
                    resources=k8s.V1ResourceRequirements(
                        requests={"cpu": "2", "memory": "4Gi"}, limits={"cpu": "4", "memory": "8Gi"}
                    ),
                )
            ]
        )
    )
    readme = (project / "README.md").read_text()
    assert 'limits={"cpu": "4", "memory": "8Gi"}' in readme
    pod = _generated_pod(project, override)
    kubernetes_validate.validate(pod, K8S_VERSIONS[-1], strict=True)
    (container,) = pod["spec"]["containers"]
    assert container["resources"]["limits"] == {"cpu": "4", "memory": "8Gi"}
    assert container["image"].startswith("airflow-mlops-worker:")
    names = {e["name"] for e in container["env"]}
    assert {"AIRFLOW_CONN_MLOPS_WAREHOUSE", "AIRFLOW__MLOPS__STAGING_URI"} <= names


def test_worker_dockerfile_passes_hadolint(project: Path) -> None:
    result = subprocess.run(
        [_tool("hadolint"), "--failure-threshold", "info", str(project / "Dockerfile")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_placeholder_left(project: Path) -> None:
    for path in project.rglob("*"):
        if path.is_file() and path.suffix != ".py":
            assert "@@" not in path.read_text(), path
