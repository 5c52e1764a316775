"""
Deployment targets: where DeployModelOperator puts a model version, and how it checks and undoes that.

A target implements four steps (:class:`DeploymentTarget`):

``deploy(release)``      make the target serve ``release`` (idempotent: deploying what it already
                         serves is harmless);
``describe()``           what the target serves now (a dict with at least ``version``);
``smoke_test(release)``  raise unless the target really serves ``release`` and answers;
``rollback(previous)``   return to ``previous`` (None: there was nothing before; the target decides).

The operator deploys and smoke-tests the targets one by one; only when every smoke test passed does
it move the ``champion`` alias and publish ``latest.json``. When one fails, every target already
touched is rolled back to the previous champion, the alias stays, and the task fails with
:class:`DeploymentError`.

Built in: :class:`LocalServerTarget` (this provider's model server),
:class:`~airflow_provider_mlops.deployment.sagemaker.SageMakerTarget` (``"sagemaker"``),
:class:`~airflow_provider_mlops.deployment.heroku.HerokuTarget` (``"heroku"``),
:class:`~airflow_provider_mlops.deployment.vertex.VertexAITarget` (``"vertex_ai"``) and
:class:`~airflow_provider_mlops.deployment.azure.AzureMLTarget` (``"azure_ml"``). Others plug
in the same way: subclass :class:`DeploymentTarget` and pass an instance, or register a class (or its
import path) in :data:`TARGET_TYPES` (or name it by import path) and pass ``{"type": ..., **kwargs}``.
"""

from __future__ import annotations

import importlib
import logging
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_mlops.serving.protocol import SMOKE_TEST_HEADER

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

log = logging.getLogger(__name__)


class DeploymentError(RuntimeError):
    """A target failed to deploy or its smoke test failed (the targets were rolled back)."""


@dataclass(frozen=True)
class ModelRelease:
    """
    A verified model version ready to deploy.

    :param name: the registered model.
    :param version: the version.
    :param sha256: the digest recorded on the MLflow version (verified when it was loaded).
    :param uri: the model file a target may read (the published copy, or the training output).
    :param latest_uri: the ``latest.json`` this release will be published to, if any.
    """

    name: str
    version: str
    sha256: str
    uri: str | None = None
    latest_uri: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class DeploymentTarget(ABC):
    """One place a model is deployed to. Subclasses must be cheap to construct (DAG files build them)."""

    #: a short label for logs and the task's XCom
    label: str = "target"

    @abstractmethod
    def deploy(self, release: ModelRelease) -> dict[str, Any]:
        """Make the target serve ``release``; return what it reported."""

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """What the target serves now (at least ``version``)."""

    @abstractmethod
    def smoke_test(self, release: ModelRelease) -> None:
        """Raise :class:`DeploymentError` unless the target serves ``release`` and answers."""

    @abstractmethod
    def rollback(self, previous: ModelRelease | None) -> None:
        """Return to ``previous`` (None when there was no earlier version)."""

    def page_url(self) -> str | None:
        """An http(s) page a person opens to see what the target serves (None: the target has none)."""
        return None


class LocalServerTarget(DeploymentTarget):
    """
    The model server of :mod:`airflow_provider_mlops.serve`, reached through an HTTP connection
    whose bearer token is the server's reload token.

    Deploy: ``POST /reload`` with the version, its sha256 and file (the server loads and verifies it
    against MLflow, then swaps). A server started before the first deployment (no champion yet: it
    answers 503) is loaded the same way, so a DAG's first deploy works. Smoke test: ``GET /version``
    must report the version and digest, and ``smoke_input`` (an MLflow scoring payload), when given,
    must get one prediction per row; it is sent with the ``X-MLOps-Smoke-Test: true`` header, so
    the server's prediction log marks those rows ``smoke_test = true``. Rollback: reload the previous
    version; with none, a server that served nothing before this deploy is emptied again.

    :param http_conn_id: the ``mlops_http`` connection of the server (host, bearer token).
    :param smoke_input: a request body for ``POST /invocations``, e.g. ``{"dataframe_records": [...]}``.
    :param label: the name in logs and XCom.
    """

    def __init__(
        self, *, http_conn_id: str, smoke_input: Mapping[str, Any] | None = None, label: str | None = None
    ) -> None:
        self.http_conn_id = http_conn_id
        self.smoke_input = dict(smoke_input) if smoke_input else None
        self.label = label or f"local_server:{http_conn_id}"
        #: what the server served before this target's last deploy (None: nothing, or not asked yet)
        self._before: str | None = None

    def _hook(self) -> Any:
        from airflow_provider_mlops.hooks.http import HttpApiHook

        return HttpApiHook(self.http_conn_id)

    def deploy(self, release: ModelRelease) -> dict[str, Any]:
        before = self.describe().get("version")
        self._before = None if before is None else str(before)
        return dict(
            self._hook().run(
                "reload",
                method="POST",
                json={
                    "model": release.name,
                    "version": release.version,
                    "sha256": release.sha256,
                    "uri": release.uri,
                },
            )
            or {}
        )

    def describe(self) -> dict[str, Any]:
        return dict(self._hook().run("version") or {})

    def page_url(self) -> str | None:
        """The server's ``GET /version`` (name, version, digest; no credentials needed)."""
        return str(self._hook().url_for("version"))

    def smoke_test(self, release: ModelRelease) -> None:
        served = self.describe()
        if str(served.get("version")) != release.version or served.get("sha256") != release.sha256:
            raise DeploymentError(
                f"{self.label} serves version {served.get('version')} (sha256 {served.get('sha256')}), "
                f"expected {release.version} (sha256 {release.sha256})"
            )
        if self.smoke_input:
            answer = (
                self._hook().run(
                    "invocations",
                    method="POST",
                    json=self.smoke_input,
                    headers={SMOKE_TEST_HEADER: "true"},  # the server's log marks these rows
                )
                or {}
            )
            check_smoke_answer(self.label, self.smoke_input, answer.get("predictions"), str(answer)[:300])

    def rollback(self, previous: ModelRelease | None) -> None:
        if previous is None:
            if self._before is None:
                # The server served nothing before this (first) deploy: empty it again.
                self._hook().run("reload", method="POST", json={"unload": True})
                log.warning("%s: no previous version; the server serves nothing again (503)", self.label)
                return
            log.warning(
                "%s: no previous champion to roll back to; the server keeps version %s",
                self.label,
                self.describe().get("version"),
            )
            return
        self.deploy(previous)


def check_smoke_answer(
    label: str, smoke_input: Mapping[str, Any], predictions: Any, shown: str, *, ok: bool = True
) -> None:
    """
    The one smoke-test rule every target applies: the answer is ``ok`` and holds one prediction per
    row sent, or :class:`DeploymentError` names the target and what it answered (``shown``).
    """
    expected = _rows(smoke_input)
    if not ok or not isinstance(predictions, list) or (expected is not None and len(predictions) != expected):
        raise DeploymentError(f"{label} answered the smoke request with {shown}")


def _rows(payload: Mapping[str, Any]) -> int | None:
    if "dataframe_split" in payload:
        return len(payload["dataframe_split"].get("data") or [])
    for key in ("dataframe_records", "instances", "inputs"):
        value = payload.get(key)
        if isinstance(value, list):
            return len(value)
    return None


#: ``{"type": name}`` specs resolve here first (a class, or the import path of one: cloud targets stay
#: unimported until used); anything else is an import path to a class.
TARGET_TYPES: dict[str, type[DeploymentTarget] | str] = {
    "local_server": LocalServerTarget,
    "sagemaker": "airflow_provider_mlops.deployment.sagemaker.SageMakerTarget",
    "heroku": "airflow_provider_mlops.deployment.heroku.HerokuTarget",
    "vertex_ai": "airflow_provider_mlops.deployment.vertex.VertexAITarget",
    "azure_ml": "airflow_provider_mlops.deployment.azure.AzureMLTarget",
}


def resolve_targets(specs: Sequence[Any] | None) -> list[DeploymentTarget]:
    """Instances pass through; ``{"type": ..., **kwargs}`` builds a registered or imported class."""
    targets = []
    for spec in specs or ():
        if isinstance(spec, DeploymentTarget):
            targets.append(spec)
            continue
        if not isinstance(spec, dict) or "type" not in spec:
            raise ValueError(f"A target is a DeploymentTarget or a dict with 'type', got {spec!r}")
        kwargs = {k: v for k, v in spec.items() if k != "type"}
        kind = str(spec["type"])
        registered = TARGET_TYPES.get(kind)
        if isinstance(registered, type):
            cls: Any = registered
        else:
            path = registered or kind
            module, _, attr = path.rpartition(".")
            if not module:
                raise ValueError(
                    f"Unknown target type {kind!r}: one of {sorted(TARGET_TYPES)} or an import path"
                )
            cls = getattr(importlib.import_module(module), attr)
            if not (isinstance(cls, type) and issubclass(cls, DeploymentTarget)):
                raise ValueError(f"{path} is not a DeploymentTarget subclass")
        targets.append(cls(**kwargs))
    return targets


def deploy_all(
    targets: Sequence[DeploymentTarget], release: ModelRelease, previous: ModelRelease | None
) -> list[dict[str, Any]]:
    """
    Deploy and smoke-test ``release`` on each target in turn. On the first failure, roll back every
    target touched so far (the failed one included) to ``previous`` and raise :class:`DeploymentError`.
    """
    touched: list[DeploymentTarget] = []
    for target in targets:
        touched.append(target)
        try:
            log.info("Deploying %s v%s to %s", release.name, release.version, target.label)
            target.deploy(release)
            target.smoke_test(release)
        except Exception as err:
            rolled, failed = [], []
            for done in reversed(touched):
                try:
                    done.rollback(previous)
                    rolled.append(done.label)
                except Exception as rollback_error:
                    log.error("Rolling back %s failed: %s", done.label, rollback_error)
                    failed.append(f"{done.label} ({rollback_error})")
            back = f"version {previous.version}" if previous else "nothing (no previous version)"
            message = (
                f"{target.label} failed for {release.name} v{release.version}: {type(err).__name__}: {err}. "
                f"Rolled back {rolled} to {back}"
            )
            if failed:
                message += f"; rollback FAILED on {failed}"
            raise DeploymentError(message) from err
        log.info("%s serves %s v%s and passed its smoke test", target.label, release.name, release.version)
    return [{"target": t.label, **t.describe()} for t in targets]
